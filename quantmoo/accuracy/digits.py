"""A real classifier with measured accuracy: an MLP on scikit-learn's bundled digits data.

The data are the 1,797 8x8 handwritten digits that ship inside scikit-learn
(:func:`sklearn.datasets.load_digits`; no download). They are split once, stratified by class,
with a fixed seed into **train** (60 %, 1,078 images), **calibration** (20 %, 359 images; the
held-out split activation ranges are calibrated on) and **test** (20 %, 360 images; accuracy is
measured there only).

The model is a 64-256-256-128-10 ReLU MLP (four quantizable linear layers ``fc1``..``fc4``,
116,618 parameters) trained deterministically in NumPy by :func:`train_digits_mlp` (Adam,
softmax cross-entropy, ``np.random.default_rng(0)``). Inputs are standardised per pixel with
the training split's mean and standard deviation (floored at one grey level); those 128
preprocessing constants are not model parameters. The trained weights ship as
``data/digits_mlp.npz`` (made by ``scripts/train_digits.py``), so loading is instant and every
machine measures the same model.

``accuracy_loss`` of a config is the fp32 test accuracy minus the quantized test accuracy, in
percentage points (one test image is 0.28 pp).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import QuantmooError
from ..models.spec import LayerSpec, ModelSpec
from .evaluator import NumpyEvaluator

__all__ = ["DIGITS_WEIGHTS", "HIDDEN", "digits_split", "train_digits_mlp", "load_digits_weights",
           "digits_forward", "DigitsEvaluator", "load_digits_model", "digits_to_onnx"]

#: The shipped trained weights.
DIGITS_WEIGHTS = Path(__file__).with_name("data") / "digits_mlp.npz"
#: Hidden layer widths of the shipped MLP.
HIDDEN = (256, 256, 128)
_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _split_cached(seed: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float64)
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=seed)
    calib, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    out = {"x": x, "y": y, "train": np.sort(train), "calibration": np.sort(calib), "test": np.sort(test)}
    for v in out.values():
        v.setflags(write=False)
    return out


def digits_split(seed: int = _SPLIT_SEED) -> Dict[str, np.ndarray]:
    """The fixed stratified split of scikit-learn's digits.

    Returns
    -------
    dict
        ``x`` (1797, 64) raw pixels 0..16 as float64, ``y`` (1797,) labels, and index arrays
        ``train`` (1078), ``calibration`` (359) and ``test`` (360), disjoint and sorted.
    """
    return dict(_split_cached(int(seed)))


def train_digits_mlp(hidden: Sequence[int] = HIDDEN, epochs: int = 100, lr: float = 1e-3,
                     weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0) -> Dict[str, np.ndarray]:
    """Train the digits MLP deterministically (NumPy, float64, Adam, L2 weight decay).

    Takes about 4 s (single-threaded BLAS). Returns float32 arrays ``W1..Wk`` (shape ``(out, in)``),
    ``b1..bk``, and the input standardisation ``mean`` and ``scale`` (64,).
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # The matrices are small: one BLAS thread is as fast, and immune to the stalls that
    # multi-threaded OpenBLAS suffers when another process holds a core.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(hidden, epochs, lr, weight_decay, batch_size, seed)


def _train(hidden, epochs, lr, weight_decay, batch_size, seed) -> Dict[str, np.ndarray]:
    s = digits_split()
    x, y, tr = s["x"], s["y"], s["train"]
    mean = x[tr].mean(0)
    scale = np.maximum(x[tr].std(0), 1.0)
    xtr = (x[tr] - mean) / scale
    ytr = y[tr]
    sizes = [x.shape[1], *map(int, hidden), 10]
    rng = np.random.default_rng(seed)
    W = [rng.normal(0.0, np.sqrt(2.0 / sizes[i]), (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)]
    b = [np.zeros(sizes[i + 1]) for i in range(len(sizes) - 1)]
    params = W + b
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    t = 0
    n = len(tr)
    k = len(W)
    for _ in range(int(epochs)):
        perm = rng.permutation(n)
        for start in range(0, n, batch_size):
            bi = perm[start:start + batch_size]
            hs = [xtr[bi]]
            h = hs[0]
            for i in range(k):
                h = h @ W[i].T + b[i]
                if i < k - 1:
                    h = np.maximum(h, 0.0)
                hs.append(h)
            p = np.exp(h - h.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = p
            g[np.arange(len(bi)), ytr[bi]] -= 1.0
            g /= len(bi)
            grads_w = [None] * k
            grads_b = [None] * k
            for i in range(k - 1, -1, -1):
                grads_w[i] = g.T @ hs[i] + weight_decay * W[i]
                grads_b[i] = g.sum(0)
                if i > 0:
                    g = (g @ W[i]) * (hs[i] > 0)
            t += 1
            c1 = 1 - beta1 ** t
            c2 = 1 - beta2 ** t
            for j, gr in enumerate(grads_w + grads_b):
                m[j] = beta1 * m[j] + (1 - beta1) * gr
                v[j] = beta2 * v[j] + (1 - beta2) * gr * gr
                params[j] -= lr * (m[j] / c1) / (np.sqrt(v[j] / c2) + eps)
    out = {f"W{i + 1}": W[i].astype(np.float32) for i in range(k)}
    out.update({f"b{i + 1}": b[i].astype(np.float32) for i in range(k)})
    out["mean"] = mean.astype(np.float32)
    out["scale"] = scale.astype(np.float32)
    return out


def _check_arrays(arrs: Dict[str, np.ndarray], source: str) -> Dict[str, np.ndarray]:
    for key in ("mean", "scale", "W1", "b1"):
        if key not in arrs:
            raise QuantmooError(f"{source}: missing array '{key}'")
    for key, a in arrs.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise QuantmooError(f"{source}: array '{key}' contains NaN/inf values")
    return arrs


@functools.lru_cache(maxsize=4)
def _load_npz(path: str) -> Dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            arrs = {k: np.asarray(z[k]) for k in z.files}
    except FileNotFoundError:
        raise QuantmooError(f"The digits weights file {path} is missing; re-create it with "
                            "python scripts/train_digits.py") from None
    for a in arrs.values():
        a.setflags(write=False)
    return _check_arrays(arrs, path)


def load_digits_weights(path=None) -> Dict[str, np.ndarray]:
    """The shipped (or given) trained weights, as read-only float32 arrays."""
    return dict(_load_npz(str(path or DIGITS_WEIGHTS)))


def _layer_names(arrs) -> list:
    k = sum(1 for key in arrs if key.startswith("W"))
    return [f"fc{i + 1}" for i in range(k)]


def digits_forward(x: np.ndarray, ops) -> np.ndarray:
    """Logits of the MLP on standardised inputs ``x`` (n, 64), through :class:`LayerOps`."""
    names = ops.spec.layer_names
    h = x
    for i, name in enumerate(names):
        h = ops.linear(name, h)
        if i < len(names) - 1:
            np.maximum(h, 0.0, out=h)
    return h


class DigitsEvaluator(NumpyEvaluator):
    """Test accuracy (%) of the digits MLP under a config.

    ``loss`` is the fp32 test accuracy minus the quantized test accuracy in percentage points;
    :meth:`details` returns ``accuracy_pct``, ``fp32_accuracy_pct``, ``loss_pp`` (= ``loss``),
    ``n_correct`` and ``n_test``. One evaluation (360 test images) takes about a millisecond
    once the layer choices it uses are cached.

    Parameters
    ----------
    spec : ModelSpec
        The spec from :func:`load_digits_model`.
    weights : dict, optional
        Arrays as returned by :func:`load_digits_weights` (default: the shipped ones).
    **kwargs
        Passed to :class:`NumpyEvaluator` (``weight_calibration``, ``percentile``, ...).
    """

    name = "digits-test-accuracy"
    metric = "accuracy_pct"

    def __init__(self, spec: ModelSpec, weights: Optional[Dict[str, np.ndarray]] = None, **kwargs):
        arrs = weights if weights is not None else load_digits_weights()
        names = spec.layer_names
        s = digits_split()
        mean = np.asarray(arrs["mean"], dtype=np.float32)
        scale = np.asarray(arrs["scale"], dtype=np.float32)
        z = ((s["x"].astype(np.float32) - mean) / scale).astype(np.float32)
        self.labels = s["y"][s["test"]]
        kwargs.setdefault("blas_threads", 1)  # small matrices: one thread is fastest and stall-free
        super().__init__(spec, digits_forward, calibration_data=z[s["calibration"]], eval_data=z[s["test"]],
                         weights={n: arrs[f"W{i + 1}"] for i, n in enumerate(names)},
                         biases={n: arrs.get(f"b{i + 1}") for i, n in enumerate(names)}, **kwargs)
        self.fp32_accuracy_pct = self._accuracy(self.reference_outputs())

    def _accuracy(self, logits: np.ndarray) -> float:
        return 100.0 * float(np.mean(logits.argmax(1) == self.labels))

    def _compute_details(self, config) -> dict:
        logits = self.run(self._eval_data, config)
        correct = int(np.sum(logits.argmax(1) == self.labels))
        acc = 100.0 * correct / len(self.labels)
        loss = self.fp32_accuracy_pct - acc
        return {"accuracy_pct": acc, "fp32_accuracy_pct": self.fp32_accuracy_pct, "loss_pp": loss,
                "loss": loss, "n_correct": correct, "n_test": int(len(self.labels))}


def load_digits_model(weights_path=None) -> ModelSpec:
    """The ``digits`` model: layer table, shipped weights and a :class:`DigitsEvaluator`.

    Parameters
    ----------
    weights_path : path, optional
        An ``.npz`` written by ``scripts/train_digits.py`` (default: the shipped one).

    Returns
    -------
    ModelSpec
        Named ``"digits"``; ``weights(name)`` returns a layer's fp32 weight, ``evaluator`` is a
        :class:`DigitsEvaluator`, ``meta`` records the data split and the fp32 test accuracy.
    """
    arrs = load_digits_weights(weights_path)
    names = _layer_names(arrs)
    layers = []
    for i, name in enumerate(names):
        out_f, in_f = arrs[f"W{i + 1}"].shape
        bias = arrs.get(f"b{i + 1}")
        layers.append(LayerSpec(name=name, kind="linear", weight_shape=(out_f, in_f), macs=in_f * out_f,
                                act_in=in_f, act_out=out_f, extra_params=0 if bias is None else bias.size))
    widths = [layers[0].weight_shape[1]] + [l.weight_shape[0] for l in layers]

    def weights(name: str) -> np.ndarray:
        i = spec.index(name)
        return np.array(arrs[f"W{i + 1}"], dtype=np.float32)

    s = digits_split()
    spec = ModelSpec(
        name="digits", layers=layers, workload={"batch": 1, "input": "8x8 digit"}, other_params=0,
        weights=weights,
        meta={"family": "mlp", "architecture": "-".join(map(str, widths)) + " ReLU MLP",
              "dataset": "sklearn.datasets.load_digits (bundled, 1797 images)",
              "split": {"train": int(len(s["train"])), "calibration": int(len(s["calibration"])),
                        "test": int(len(s["test"])), "stratified": True, "seed": _SPLIT_SEED},
              "weights_file": str(Path(weights_path).name if weights_path else DIGITS_WEIGHTS.name),
              "accuracy_metric": "test accuracy (%)", "accuracy_loss_unit": "percentage points"})
    ev = DigitsEvaluator(spec, weights=arrs)
    spec.evaluator = ev
    spec.meta["fp32_test_accuracy_pct"] = round(float(ev.fp32_accuracy_pct), 4)
    return spec


def digits_to_onnx(weights: Optional[Dict[str, np.ndarray]] = None):
    """The fp32 digits MLP as an ONNX model (opset 13): ``Gemm`` (``transB=1``) and ``Relu``.

    Input ``x`` float32 ``[batch, 64]`` is the *standardised* image (as :func:`digits_forward`
    reads it), output ``logits`` ``[batch, 10]``. Weight tensors are named ``fc<i>.weight`` and
    ``fc<i>.bias``, so :func:`quantmoo.zoo.load` of the saved file has the layers ``fc1``..``fc4``
    of the ``digits`` model and the same configs apply to both.
    """
    from ..errors import require
    onnx = require("onnx", "onnx", "the ONNX form of the digits model")
    from onnx import helper, numpy_helper
    arrs = weights if weights is not None else load_digits_weights()
    names = _layer_names(arrs)
    nodes, inits, h = [], [], "x"
    for i, name in enumerate(names):
        inits += [numpy_helper.from_array(np.asarray(arrs[f"W{i + 1}"], np.float32), f"{name}.weight"),
                  numpy_helper.from_array(np.asarray(arrs[f"b{i + 1}"], np.float32), f"{name}.bias")]
        out = "logits" if i == len(names) - 1 else f"{name}.out"
        nodes.append(helper.make_node("Gemm", [h, f"{name}.weight", f"{name}.bias"], [out], name=name, transB=1))
        if i < len(names) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"{name}.relu"]))
            out = f"{name}.relu"
        h = out
    n_in = int(np.shape(arrs["W1"])[1])
    n_out = int(np.shape(arrs[f"W{len(names)}"])[0])
    graph = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", n_in])],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", n_out])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="quantmoo")
    model.ir_version = 8
    return model
