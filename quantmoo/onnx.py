"""onnxruntime as quantmoo's runtime for any ONNX model: QDQ export and measured accuracy.

* :func:`export_qdq` - a config as a QDQ model (:mod:`quantmoo.export.onnx_qdq`);
* :func:`size_report` - its size next to quantmoo's ``size_mb`` accounting;
* :class:`OnnxEvaluator` - ``loss(config)`` / ``details(config)`` measured by running the QDQ model
  in onnxruntime (:mod:`quantmoo.accuracy.onnx_eval`);
* :func:`load_inputs` - input batches from an ``.npz`` whose arrays are named after the model inputs.

Sessions run on the CPU execution provider with one intra-op thread and basic graph optimizations
(constant folding, no QDQ fusion), so the QDQ graph is computed as written: in float, equal to
quantmoo's NumPy emulation to float rounding. A deployment runtime that fuses the QDQ pairs into
integer kernels computes the same grid values with integer accumulation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

import numpy as np

from .errors import QuantmooError, require

__all__ = ["export_qdq", "size_report", "OnnxEvaluator", "load_inputs", "input_requirements", "session"]

#: onnxruntime element type strings -> NumPy dtypes of the inputs quantmoo feeds.
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def session(model, threads: int = 1, optimization: str = "none"):
    """An onnxruntime CPU session of a ModelProto, serialized bytes or a path (one thread)."""
    ort = require("onnxruntime", "onnx", "running an ONNX model")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    so.log_severity_level = 3
    src = model.SerializeToString() if hasattr(model, "SerializeToString") else (
        str(model) if isinstance(model, Path) else model)
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise QuantmooError(f"onnxruntime cannot load the model: {str(e).strip().splitlines()[0]}") from None


def _graph_inputs(model) -> List[tuple]:
    """``(name, elem_type, dims)`` of the real graph inputs (initializers excluded)."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for v in model.graph.input:
        if v.name in inits:
            continue
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim] \
            if tt.HasField("shape") else None
        out.append((v.name, tt.elem_type, dims))
    return out


def input_requirements(model) -> str:
    """A readable list of the inputs a model needs, e.g. ``"'x' float32[batch, 64]"``."""
    from onnx import helper
    parts = []
    for name, et, dims in _graph_inputs(model):
        try:
            t = np.dtype(helper.tensor_dtype_to_np_dtype(et)).name
        except Exception:
            t = f"type {et}"
        shape = "[" + ", ".join(str(d) for d in dims) + "]" if dims is not None else "[any shape]"
        parts.append(f"'{name}' {t}{shape}")
    return ", ".join(parts)


def check_inputs(model, batch: Mapping[str, np.ndarray], source: str = "the input data") -> Dict[str, np.ndarray]:
    """Arrays for every graph input, cast to its type and checked against its static dims.

    Raises one :class:`QuantmooError` naming every input (name, type, shape) when one is
    missing or does not fit.
    """
    from onnx import helper
    need = _graph_inputs(model)
    names = [n for n, _, _ in need]
    missing = [n for n in names if n not in batch]
    if missing:
        raise QuantmooError(f"{source} lacks the model input(s) {missing}; the model needs arrays "
                            f"{input_requirements(model)} (e.g. an .npz with arrays named after the inputs)")
    out = {}
    for name, et, dims in need:
        a = np.asarray(batch[name])
        want = np.dtype(helper.tensor_dtype_to_np_dtype(et))
        if a.dtype.kind not in "biuf" or (want.kind == "f" and a.dtype.kind not in "biuf"):
            raise QuantmooError(f"{source}: the array '{name}' must hold numbers; got dtype {a.dtype}")
        bad = dims is not None and (a.ndim != len(dims) or any(isinstance(d, int) and d > 0 and d != s
                                                               for d, s in zip(dims, a.shape)))
        if bad:
            raise QuantmooError(f"{source}: the array '{name}' has shape {list(a.shape)}; the model needs "
                                f"{input_requirements(model)}")
        if want.kind == "f" and not np.isfinite(a).all():
            raise QuantmooError(f"{source}: the array '{name}' contains NaN or inf values")
        out[name] = np.ascontiguousarray(a, dtype=want)
    return out


def feed(sess, batch: Mapping[str, np.ndarray], path=None) -> Dict[str, np.ndarray]:
    """The feed dict of one batch for ``sess`` (only the inputs the session reads)."""
    names = [i.name for i in sess.get_inputs()]
    missing = [n for n in names if n not in batch]
    if missing:
        where = f" of {path}" if path else ""
        need = ", ".join(f"'{i.name}' {i.type}{i.shape}" for i in sess.get_inputs())
        raise QuantmooError(f"The input data lacks the model input(s) {missing}{where}; it needs {need}")
    return {n: batch[n] for n in names}


def load_inputs(path, model=None) -> Dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file (never unpickled); checked against ``model``'s inputs if given."""
    p = Path(path)
    if not p.is_file():
        raise QuantmooError(f"The data file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # not a zip, object arrays (pickle refused), truncated
        raise QuantmooError(f"The data file {p} cannot be read as an .npz of arrays: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if model is not None:
        data.update(check_inputs(model, data, f"The data file {p}"))
    return data


def __getattr__(name):  # lazy: onnx and onnxruntime load only when used
    if name in ("export_qdq", "size_report"):
        from .export import onnx_qdq
        return getattr(onnx_qdq, name)
    if name == "OnnxEvaluator":
        from .accuracy.onnx_eval import OnnxEvaluator
        return OnnxEvaluator
    raise AttributeError(f"module 'quantmoo.onnx' has no attribute {name!r}")
