"""Measured accuracy of any ONNX model: the config's QDQ graph run in onnxruntime (:class:`OnnxEvaluator`).

The evaluator follows the :class:`~quantmoo.accuracy.evaluator.Evaluator` protocol, so
``sensitivity``, ``search(accuracy=MeasuredAccuracy(...))``, ``validate`` and the evaluation cache
work for an ONNX file as for the bundled models. Each evaluation builds the QDQ model that
``quantmoo export --format onnx`` writes (:func:`~quantmoo.export.onnx_qdq.build_qdq`): measured
accuracy and the deployed artefact are one thing.

Default metric: fidelity to the fp32 model on the same inputs, from the model's first output.

* **Classifier-like** output (2-D, at least 2 columns): ``loss`` is the mean KL divergence
  ``KL(p_fp32 || p_quant)`` in nats per input, with probabilities taken as they are when every
  fp32 row is a distribution (non-negative, sums to 1) and through a softmax otherwise (logits).
* **Otherwise**: ``loss`` is the relative L2 error ``||y - y_fp32|| / ||y_fp32||``.

``details`` also reports ``top1_agreement_pct`` (argmax over the last axis agrees with fp32),
``kl``/``rel_l2`` and the number of inputs. A user ``metric(outputs, targets) -> float or dict``
replaces the default; ``targets`` are the ``targets`` given to the evaluator, or the fp32 outputs.
"""
from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from ..config import QuantConfig
from ..errors import QuantmooError

__all__ = ["OnnxEvaluator", "fidelity", "onnx_evaluator"]


def _probabilities(y: np.ndarray, ref: np.ndarray):
    y64, r64 = y.astype(np.float64), ref.astype(np.float64)
    is_dist = bool(np.all(r64 >= 0) and np.allclose(r64.sum(axis=1), 1.0, atol=1e-3))
    if is_dist:
        return np.clip(y64, 0, None), r64
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return softmax(y64), softmax(r64)


def fidelity(y: np.ndarray, ref: np.ndarray) -> dict:
    """The default metric: KL (classifier-like) or relative L2 of ``y`` against ``ref``, and top-1 agreement."""
    y, ref = np.asarray(y), np.asarray(ref)
    rel = float(np.linalg.norm((y - ref).astype(np.float64)) / max(np.linalg.norm(ref.astype(np.float64)), 1e-30))
    agree = 100.0 * float(np.mean(y.argmax(-1) == ref.argmax(-1))) if y.ndim >= 1 and y.shape[-1] > 1 else None
    out = {"rel_l2": rel, "top1_agreement_pct": agree, "n_inputs": int(y.shape[0]) if y.ndim else 1}
    if y.ndim == 2 and y.shape[1] >= 2:
        q, p = _probabilities(y, ref)
        q = np.clip(q / np.maximum(q.sum(axis=1, keepdims=True), 1e-300), 1e-12, None)
        kl = np.sum(np.where(p > 0, p * (np.log(np.clip(p, 1e-300, None)) - np.log(q)), 0.0), axis=1)
        out["kl"] = float(np.mean(kl))
        out["loss"] = out["kl"]
        out["metric"] = "kl"
    else:
        out["loss"] = rel
        out["metric"] = "rel_l2"
    return out


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:12]


class OnnxEvaluator:
    """``accuracy_loss`` of a config measured by running its QDQ model in onnxruntime.

    Parameters
    ----------
    onnx_path : path
        The fp32 ONNX model.
    data : dict, path to .npz, or list of dict
        Evaluation inputs, arrays named after the model's inputs (a batch, or a list of batches).
        A missing or misshapen input raises one error naming every input and its shape.
    metric : callable, optional
        ``metric(outputs, targets) -> float or dict with "loss"``; default :func:`fidelity`.
        ``outputs`` is the first model output (all of them, as a list, for a multi-output model
        with a user metric).
    calibration_data : same as ``data``, optional
        Where activation ranges are calibrated (default: ``data`` itself; pass a disjoint split
        to keep calibration and evaluation apart).
    targets : array, optional
        What ``metric`` compares with (default: the fp32 model's outputs on ``data``).
    weight_calibration, percentile :
        As for :func:`~quantmoo.export.onnx_qdq.export_qdq`.
    threads : int
        onnxruntime intra-op threads (default 1: deterministic and fair to parallel workers).
    name : str, optional
        Evaluator name (cache key); default ``onnx-<model stem>-<digest of data and metric>``.
    **overrides
        ``batch``, ``seq_len`` for :func:`~quantmoo.models.onnx_import.from_onnx`.

    Attributes
    ----------
    spec : ModelSpec
        The imported model (its ``evaluator`` is not set; :func:`onnx_evaluator` returns a spec that has it).
    onnx_path, data_path, calibration_path : str or None
        Absolute paths of the model and of the ``.npz`` inputs when given as files (recorded in
        a search's ``results.json`` under ``model``, where ``validate`` finds them).
    recipe : functools.partial or None
        Rebuilds the model and this evaluator in a worker process (None for in-memory data).
    """

    metric = "kl_or_rel_l2_to_fp32"

    def __init__(self, onnx_path, data, metric: Optional[Callable] = None, *, calibration_data=None, targets=None,
                 weight_calibration: str = "min_max", percentile: float = 99.99, threads: int = 1,
                 name: Optional[str] = None, result_cache: int = 4096, **overrides):
        from ..export.onnx_qdq import qdq_plan
        if metric is not None and not callable(metric):
            raise QuantmooError(f"The 'metric' of OnnxEvaluator must be callable metric(outputs, targets); "
                                f"got {type(metric).__name__}")
        self._plan = plan = qdq_plan(onnx_path, **overrides)
        self.spec = plan.spec
        # provenance: results record the files, so a run can be validated without naming them again
        self.onnx_path = str(Path(onnx_path).resolve())
        self.data_path = str(Path(data).resolve()) if isinstance(data, (str, Path)) else None
        self.calibration_path = (str(Path(calibration_data).resolve()) if isinstance(calibration_data, (str, Path))
                                 else None)
        from_files = self.data_path is not None and (calibration_data is None or self.calibration_path is not None)
        #: A picklable factory rebuilding this evaluator's model in a worker process, or None when
        #: the data, targets or metric are in-memory objects.
        self.recipe = functools.partial(
            onnx_evaluator, self.onnx_path, self.data_path, calibration_data=self.calibration_path,
            weight_calibration=weight_calibration, percentile=percentile, threads=threads, name=name,
            **overrides) if from_files and metric is None and targets is None else None
        self._data = self._batches(data, "data")
        self._calib = self._batches(calibration_data, "calibration_data") if calibration_data is not None \
            else self._data
        self._metric = metric
        self._targets = targets
        self.weight_calibration = weight_calibration
        self.percentile = float(percentile)
        self.threads = int(threads)
        if metric is not None:
            self.metric = getattr(metric, "__name__", "user_metric")
        tag = _digest({f"{i}/{k}": v for i, b in enumerate(self._data) for k, v in b.items()})
        self.name = name or f"onnx-{Path(onnx_path).stem}-{tag}-{self.metric}"
        self._acts = None
        self._w32: dict = {}
        self._ranges: dict = {}
        self._reference = None
        self._results: "OrderedDict[str, dict]" = OrderedDict()
        self._result_cache = int(result_cache)

    def _batches(self, data, field: str) -> list:
        from ..onnx import check_inputs, load_inputs
        model = self._plan.model
        if isinstance(data, (str, Path)):
            return [load_inputs(data, model)]
        if isinstance(data, Mapping):
            return [check_inputs(model, data, f"The '{field}'")]
        if isinstance(data, (list, tuple)) and data and all(isinstance(b, Mapping) for b in data):
            return [check_inputs(model, b, f"The '{field}'") for b in data]
        from ..onnx import input_requirements
        raise QuantmooError(f"The '{field}' must be a dict of arrays named after the model inputs, a list of such "
                            f"dicts, or an .npz path; the model needs {input_requirements(model)}")

    # -- running --------------------------------------------------------------------------------
    def _run(self, model) -> list:
        from ..onnx import session
        sess = session(model, self.threads)
        names = [o.name for o in sess.get_outputs()]
        outs = [sess.run(names, {i.name: b[i.name] for i in sess.get_inputs()}) for b in self._data]
        return [np.concatenate([o[k] for o in outs], axis=0) if len(outs) > 1 else outs[0][k]
                for k in range(len(names))]

    def qdq_model(self, config: QuantConfig):
        """The QDQ ModelProto of ``config`` (what ``export --format onnx`` writes)."""
        from ..export.onnx_qdq import activation_ranges, build_qdq, collect_activations
        self.check_config(config)
        if any(lq.activation_bits < 16 for lq in config.layers.values()) and self._acts is None:
            self._acts = collect_activations(self._plan, self._calib, self.threads)
        ranges = activation_ranges(self._plan, config, self._acts or {}, self.percentile, self._ranges)
        return build_qdq(self._plan, config, ranges, weight_calibration=self.weight_calibration,
                         percentile=self.percentile)

    def outputs(self, config: Optional[QuantConfig] = None) -> list:
        """Every model output on ``data``: fp32 when ``config`` is None, else its QDQ model's."""
        if config is None:
            if self._reference is None:
                self._reference = self._run(self._plan.model)
            return self._reference
        return self._run(self.qdq_model(config))

    def fp32_weight(self, name: str) -> np.ndarray:
        """A layer's fp32 weight as the ``(out, in)`` matrix (a conv's ``C_in * k`` flattened), cached.

        The matrix the sensitivity error terms multiply with :meth:`calibration_inputs`;
        quantization groups are cut from this same matrix, so nothing changes for them.
        """
        w = self._w32.get(name)
        if w is None:
            w = self.spec.weights(name)
            w = self._w32[name] = np.ascontiguousarray(w.reshape(w.shape[0], -1))
            w.setflags(write=False)
        return w

    # -- what the measured-sensitivity proxy needs (quantmoo.accuracy.sensitivity) ---------------
    @property
    def _calibration_data(self) -> list:
        return self._calib

    def run(self, data, config: Optional[QuantConfig] = None) -> np.ndarray:
        """First model output on ``data`` (a batch dict or a list of them) under ``config``."""
        saved = self._data
        self._data = self._batches(data, "data") if not (isinstance(data, list) and data is self._calib) else data
        try:
            if config is None:
                return self._run(self._plan.model)[0]
            return self._run(self.qdq_model(config))[0]
        finally:
            self._data = saved

    def output_distortion(self, out, ref) -> float:
        """The fidelity loss of ``out`` against ``ref`` (the sensitivity probes' distortion)."""
        return float(fidelity(out, ref)["loss"])

    @property
    def distortion_in_loss_unit(self) -> bool:
        return self._metric is None

    def quantized_weight(self, name: str, choice, calibration: Optional[str] = None) -> np.ndarray:
        """A layer's fake-quantized weight (quantmoo layout), exactly as the QDQ model stores it."""
        from ..quant import quantize_dequantize
        from .evaluator import _as_layer_quant
        lq = _as_layer_quant(choice)
        w = self.fp32_weight(name)
        if lq.weight_bits >= 16:
            return w.astype(np.float16).astype(np.float32)
        method = (calibration or "min_max") if self.weight_calibration == "config" else self.weight_calibration
        return quantize_dequantize(w, lq.weight_bits, lq.weight_scheme, lq.granularity, lq.group_size, method,
                                   self.percentile)

    def _activations(self) -> dict:
        if self._acts is None:
            from ..export.onnx_qdq import collect_activations
            self._acts = collect_activations(self._plan, self._calib, self.threads)
        return self._acts

    def _input_tensor(self, layer: str) -> Optional[str]:
        from ..export.onnx_qdq import activation_tensors
        xs = activation_tensors(self._plan)[layer]
        return xs[0] if xs else None

    def calibration_inputs(self, layer: str, max_rows: int = 4096) -> np.ndarray:
        """Rows ``X`` with the layer's output ``X @ W.T`` on the calibration data (at most ``max_rows``).

        A linear layer's input rows; a 2-D convolution's input patches (im2col, evenly spaced
        output positions; grouped convolutions stack the patches of each group as rows); an
        embedding's token ids.
        """
        spec = self.spec.layers[self.spec.index(layer)]
        row = self._plan.layers[layer]
        x = self._activations().get(self._input_tensor(layer)) if spec.kind != "embedding" else None
        if spec.kind == "embedding":
            node = row.nodes[0]   # Gather(table, ids): the ids come straight from the data
            ids = [b[node.input[1]] for b in self._calib if node.input[1] in b]
            return np.concatenate([np.ravel(i) for i in ids]) if ids else np.zeros(0, np.int64)
        node = row.nodes[0]
        if node.op_type == "Conv" and x.ndim == 4:
            x = _patches(x, node, spec.weight_shape, max_rows)
        else:
            x = x.reshape(-1, spec.in_features)
        if len(x) > max_rows:
            x = x[np.linspace(0, len(x) - 1, max_rows).astype(np.int64)]
        return np.ascontiguousarray(x, dtype=np.float32)

    def activation_range(self, layer: str, bits: int, scheme: str, method: str):
        """Static range of the layer's input for one activation choice (what the QDQ model uses)."""
        from ..quant import calibrate
        x = self._input_tensor(layer)
        key = (x, int(bits), scheme, method)
        if key not in self._ranges:
            self._ranges[key] = calibrate(self._activations()[x], int(bits), scheme, "per_tensor", 128, method,
                                          self.percentile)
        return self._ranges[key]

    def _quantize_activation(self, x, bits, scheme, method, lo, hi) -> np.ndarray:
        from .evaluator import NumpyEvaluator
        return NumpyEvaluator._quantize_activation(self, x, bits, scheme, method, lo, hi)

    def check_config(self, config) -> QuantConfig:
        if not isinstance(config, QuantConfig):
            raise QuantmooError(f"Expected a QuantConfig; got {type(config).__name__}")
        return config.check_model(self.spec)

    def details(self, config: QuantConfig) -> dict:
        """Every metric of one evaluation, including ``"loss"`` (cached by the config's hash)."""
        self.check_config(config)
        key = config.config_hash()
        hit = self._results.get(key)
        if hit is not None:
            return dict(hit)
        outs = self.outputs(config)
        if self._metric is None:
            out = fidelity(outs[0], self.outputs(None)[0])
        else:
            targets = self._targets if self._targets is not None else (
                self.outputs(None)[0] if len(outs) == 1 else self.outputs(None))
            got = self._metric(outs[0] if len(outs) == 1 else outs, targets)
            out = dict(got) if isinstance(got, Mapping) else {"loss": got}
            if "loss" not in out:
                raise QuantmooError(f"The metric of evaluator '{self.name}' must return a number or a dict with 'loss'")
            out["loss"] = float(out["loss"])
        if self._result_cache > 0:
            self._results[key] = dict(out)
            while len(self._results) > self._result_cache:
                self._results.popitem(last=False)
        return out

    def loss(self, config: QuantConfig) -> float:
        """``accuracy_loss`` of ``config`` (see the module notes for the unit)."""
        return float(self.details(config)["loss"])


def _attr_ints(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else [int(a.i)]
    return default


def _patches(x: np.ndarray, node, wshape, max_rows: int) -> np.ndarray:
    """im2col rows of a 2-D convolution's input ``(N, C, H, W)`` at evenly spaced output positions."""
    from numpy.lib.stride_tricks import sliding_window_view
    kh, kw = int(wshape[2]), int(wshape[3])
    groups = _attr_ints(node, "group", [1])[0]
    sh, sw = (_attr_ints(node, "strides", [1, 1]) + [1, 1])[:2]
    dh, dw = (_attr_ints(node, "dilations", [1, 1]) + [1, 1])[:2]
    pads = _attr_ints(node, "pads", [0, 0, 0, 0])
    pads = (pads + [0, 0, 0, 0])[:4]
    auto = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):   # output = ceil(in / stride)
        ph = max((-(-x.shape[2] // sh) - 1) * sh + (kh - 1) * dh + 1 - x.shape[2], 0)
        pw = max((-(-x.shape[3] // sw) - 1) * sw + (kw - 1) * dw + 1 - x.shape[3], 0)
        lo_h, lo_w = (ph // 2, pw // 2) if auto == "SAME_UPPER" else (ph - ph // 2, pw - pw // 2)
        pads = [lo_h, lo_w, ph - lo_h, pw - lo_w]
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    n, c, oh, ow = win.shape[:4]
    pos = np.arange(n * oh * ow)
    if pos.size * groups > max_rows:
        pos = pos[np.linspace(0, pos.size - 1, max(1, max_rows // groups)).astype(np.int64)]
    b, rem = np.divmod(pos, oh * ow)
    i, j = np.divmod(rem, ow)
    rows = win[b, :, i, j]                                   # (P, C, kh, kw)
    return rows.reshape(len(pos) * groups, (c // groups) * kh * kw)


def onnx_evaluator(onnx_path, data, **kwargs):
    """The imported :class:`~quantmoo.models.spec.ModelSpec` of ``onnx_path`` with an :class:`OnnxEvaluator`.

    A module-level factory, so ``functools.partial(onnx_evaluator, path, data_path)`` is a
    picklable recipe for worker processes (``MeasuredAccuracy``, ``validate``).
    """
    ev = OnnxEvaluator(onnx_path, data, **kwargs)
    spec = ev.spec
    spec.evaluator = ev
    spec.meta["evaluator"] = ev.name
    return spec
