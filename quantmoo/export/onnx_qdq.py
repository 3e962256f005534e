"""Export a config as an ONNX QDQ model: the artefact onnxruntime (and its QNN, CoreML and TensorRT
execution providers) runs, and the graph :class:`~quantmoo.accuracy.onnx_eval.OnnxEvaluator` measures.

:func:`export_qdq` rewrites the fp32 ONNX model a :class:`~quantmoo.models.spec.ModelSpec` was
imported from (:func:`~quantmoo.models.onnx_import.from_onnx`), layer by layer:

Weights
    Stored as integers with a ``DequantizeLinear`` whose output keeps the weight's tensor name, so
    every node that used the fp32 weight reads the dequantized one. The integers are exactly the
    grid values of :func:`quantmoo.quant.quantize_dequantize` (same range, same half-to-even
    rounding); scales are float32 and zero points are stored for asymmetric weights only.

    ==========================  ===============  ==========================================
    weight                      ONNX type        scale layout
    ==========================  ===============  ==========================================
    symmetric / power_of_two    INT4 (2-4 bits)  per_tensor: scalar; per_channel: ``axis``
                                INT8 (5-8 bits)  of the output channels; per_group: blocked
    asymmetric                  UINT4 / UINT8    quantization (``axis`` + ``block_size``,
                                + zero point     opset 21) along the input features
    16 bits                     FLOAT16 + Cast   none
    ==========================  ===============  ==========================================

    ONNX has no 2-, 3-, 5- or 6-bit type: such weights are stored in the next wider type with
    their values restricted to the narrower grid (recorded per layer in the metadata, and as
    ``width_overhead`` bytes in the size report). A convolution's groups run along its flattened
    ``C_in * k`` axis, which blocked quantization cannot express on the 4-D tensor: such a weight
    is stored as a 2-D ``(C_out, C_in*k)`` tensor followed by a ``Reshape``.
Activations
    Every quantized layer's input gets ``QuantizeLinear -> DequantizeLinear`` (per tensor, UINT8
    for asymmetric, INT8 otherwise) with the static range the config's ``calibration`` method
    chooses on the fp32 model's activations over ``calibration_data``, as quantmoo's NumPy
    emulation does. Where the quantmoo grid is narrower than the type (every symmetric grid, whose
    int8 range is [-127, 127] while ONNX saturates to [-128, 127], and grids under 8 bits) a
    ``Clip`` on the integers keeps them on the grid. 16-bit activations are a Cast to fp16 and
    back. Embedding (``Gather``) inputs are indices and are left alone.
Biases
    Stored fp16 with a Cast (quantmoo's size accounting and emulation keep biases in fp16).

The result runs in onnxruntime; with ``graph_optimization_level`` at basic (no QDQ fusion) its
outputs equal quantmoo's NumPy emulation of the same config to float rounding.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..config import QuantConfig
from ..errors import QuantmooError, require
from ..quant.bits import as_matrix, check_config, group_view, ungroup
from ..quant.calibration import calibrate, calibrate_groups
from ..quant.packing import packed_bytes
from ..quant.schemes import grid_params, quantize_grid

__all__ = ["export_qdq", "qdq_plan", "activation_tensors", "size_report", "QDQ_OPSET"]

#: Opset of an exported model that uses INT4/UINT4 or blocked quantization (both need 21).
QDQ_OPSET = 21
_MIN_OPSET = 13  # per-axis DequantizeLinear
#: TensorProto element types.
_FLOAT, _UINT8, _INT8, _FLOAT16, _UINT4, _INT4 = 1, 2, 3, 10, 21, 22
_TYPE_NAMES = {_UINT8: "uint8", _INT8: "int8", _UINT4: "uint4", _INT4: "int4", _FLOAT16: "float16"}


class QDQPlan:
    """What the export needs to know about an ONNX model: its layers and where they are used."""

    def __init__(self, path, spec, model, rows, names):
        from ..models.onnx_import import _Consts
        self.path, self.spec, self.model = Path(path), spec, model
        # layer name -> the importer's row: weight tensor, layout, kind, use nodes, bias tensors
        self.layers: Dict[str, Any] = {names[t]: row for t, row in rows.items()}
        self.canonical = _Consts(model.graph).canonical


def qdq_plan(onnx_path, **overrides) -> QDQPlan:
    """Import ``onnx_path`` once for export: the spec plus the graph and every weight's uses."""
    from ..models.onnx_import import from_onnx
    keep: dict = {}
    spec = from_onnx(onnx_path, _keep=keep, **overrides)
    return QDQPlan(onnx_path, spec, keep["model"], keep["rows"], keep["names"])


def activation_tensors(plan: QDQPlan) -> Dict[str, List[str]]:
    """Layer name -> the activation tensors its uses read (one per use; deduplicated)."""
    out = {}
    for name, row in plan.layers.items():
        xs = [node.input[a] for node in row.nodes
              for a in [_activation_input(plan, row, node)] if a is not None]
        out[name] = list(dict.fromkeys(xs))
    return out


def _uses_weight_at(plan, row, node) -> int:
    """Which input of ``node`` reads the weight (directly or through ``Identity`` aliases)."""
    for k, x in enumerate(node.input[:2]):
        if plan.canonical(x) == row.tensor:
            return k
    raise QuantmooError(f"Node '{node.name}' ({node.op_type}) does not read the weight '{row.tensor}'")


def _activation_input(plan, row, node) -> Optional[int]:
    """Index of the activation input of one use of a weight (None for an embedding lookup)."""
    if node.op_type == "Gather":
        return None
    if node.op_type in ("Conv", "ConvTranspose"):
        return 0
    return 1 - _uses_weight_at(plan, row, node)


# -- calibration -------------------------------------------------------------------------------------

def _batches(data) -> List[Dict[str, np.ndarray]]:
    if data is None:
        return []
    if isinstance(data, Mapping):
        return [dict(data)]
    return [dict(b) for b in data]


def collect_activations(plan: QDQPlan, data, threads: int = 1) -> Dict[str, np.ndarray]:
    """fp32 values of every quantized layer's input tensor over ``data`` (batches concatenated on axis 0)."""
    onnx = require("onnx", "onnx", "the ONNX QDQ export")
    from .. import onnx as qonnx
    tensors = sorted({x for xs in activation_tensors(plan).values() for x in xs})
    m = onnx.ModelProto()
    m.CopyFrom(plan.model)
    outputs = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in outputs:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = qonnx.session(m, threads)
    names = [o.name for o in sess.get_outputs()]
    got: Dict[str, list] = {t: [] for t in tensors}
    for batch in _batches(data):
        outs = sess.run(names, qonnx.feed(sess, batch, plan.path))
        for n, v in zip(names, outs):
            if n in got:
                got[n].append(np.asarray(v, dtype=np.float32))
    return {t: np.concatenate(v, axis=0) if len(v) > 1 else v[0] for t, v in got.items()}


# -- weights -----------------------------------------------------------------------------------------

def quantize_weight(w: np.ndarray, bits: int, scheme: str, granularity: str, group_size: int,
                    method: str = "min_max", percentile: float = 99.99):
    """Integer grid values of a weight ``(out, ...)`` in quantmoo's matrix layout.

    Returns ``q`` (int64, ``(out, in)``), ``scale`` and ``zero_point`` (float64, ``(out, n_groups)``;
    ``(1, 1)`` per tensor), ``qmin``, ``qmax`` and the group length. ``(q - zp) * scale`` per group
    is exactly :func:`quantmoo.quant.quantize_dequantize` of the same arguments.
    """
    bits, scheme, granularity, group_size, method, percentile = check_config(
        bits, scheme, granularity, group_size, method, percentile)
    m = as_matrix(np.ascontiguousarray(w, dtype=np.float32), 0)
    v, mask = group_view(m, granularity, group_size)
    lo, hi = calibrate_groups(v, mask, bits, scheme, granularity, method, percentile)
    scale, zp, qmin, qmax = grid_params(lo, hi, bits, scheme)
    q = quantize_grid(v, scale, zp, qmin, qmax)
    q = ungroup(q, m.shape).astype(np.int64)
    return q, scale[..., 0], zp[..., 0], qmin, qmax, v.shape[-1]


def _storage_type(bits: int, scheme: str) -> Tuple[int, int]:
    """(ONNX element type, stored bits) of a weight grid."""
    signed = scheme != "asymmetric"
    if bits <= 4:
        return (_INT4 if signed else _UINT4), 4
    return (_INT8 if signed else _UINT8), 8


def _int_tensor(name: str, q: np.ndarray, dtype: int):
    """A TensorProto of integers; 4-bit types are packed two per byte, low nibble first."""
    from onnx import helper
    flat = np.asarray(q, dtype=np.int64).reshape(-1)
    if dtype in (_INT4, _UINT4):
        nib = (flat & 0xF).astype(np.uint8)
        if nib.size % 2:
            nib = np.append(nib, np.uint8(0))
        raw = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
    else:
        raw = flat.astype(np.int8 if dtype == _INT8 else np.uint8).tobytes()
    return helper.make_tensor(name, dtype, list(q.shape), raw, raw=True)


def _float_tensor(name: str, a: np.ndarray, dtype: int = _FLOAT):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(a, dtype=np.float16 if dtype == _FLOAT16 else np.float32), name)


class _Builder:
    """Collects the new initializers and nodes of the exported graph."""

    def __init__(self):
        from onnx import helper
        self.helper = helper
        self.inits: list = []
        self.pre: list = []          # nodes that only read initializers: they go first
        self.opset = _MIN_OPSET

    def init(self, t):
        self.inits.append(t)
        return t.name

    def node(self, op, inputs, outputs, **attrs):
        n = self.helper.make_node(op, inputs, outputs, **attrs)
        return n


def _weight_nodes(b: _Builder, name: str, tensor: str, row, w_onnx: np.ndarray, lq, method: str,
                  percentile: float) -> dict:
    """Nodes producing ``tensor`` (the dequantized weight, ONNX layout); returns the storage record."""
    n = int(w_onnx.size)
    if lq.weight_bits >= 16:
        b.pre.append(b.node("Cast", [b.init(_float_tensor(f"{tensor}__fp16", w_onnx, _FLOAT16))], [tensor],
                            to=_FLOAT))
        return {"tensor": tensor, "n": n, "bits": 16, "stored_as": "float16", "stored_bits": 16, "bytes": 2 * n,
                "scale_bytes": 0, "zero_point_bytes": 0}
    w = row.layout(w_onnx) if row.layout is not None else w_onnx   # quantmoo layout (out, ...)
    gran = lq.granularity
    q, scale, zp, qmin, qmax, g = quantize_weight(w, lq.weight_bits, lq.weight_scheme, gran, lq.group_size,
                                                  method, percentile)
    dtype, sbits = _storage_type(lq.weight_bits, lq.weight_scheme)
    transposed = row.layout is not None and w_onnx.ndim == 2
    if gran == "per_tensor":
        scale, zp, attrs = scale.reshape(()), zp.reshape(()), {}
    elif gran == "per_channel":
        scale, zp = scale.reshape(-1), zp.reshape(-1)
        attrs = {"axis": 1 if transposed else 0}
    else:
        attrs = {"axis": 0 if transposed else 1, "block_size": int(g)}
        b.opset = QDQ_OPSET
    if dtype in (_INT4, _UINT4):
        b.opset = QDQ_OPSET
    # the stored tensor: ONNX layout when the scales fit it, else quantmoo's 2-D matrix + reshape
    direct = row.layout is None and (gran != "per_group" or w.ndim == 2)
    if transposed:
        qs, scale, zp = q.T, scale.T, zp.T
    elif direct:
        qs = q.reshape(w.shape)
    else:
        qs = q
    inputs = [b.init(_int_tensor(f"{tensor}__q", qs, dtype)),
              b.init(_float_tensor(f"{tensor}__scale", scale))]
    zp_bytes = 0
    if lq.weight_scheme == "asymmetric":
        zt = _int_tensor(f"{tensor}__zero_point", zp, dtype)
        zp_bytes = len(zt.raw_data)
        inputs.append(b.init(zt))
    out = tensor if (direct or transposed) else f"{tensor}__dq"
    b.pre.append(b.node("DequantizeLinear", inputs, [out], **attrs))
    if not (direct or transposed):
        _inverse_layout(b, out, tensor, row, w.shape, w_onnx.shape)
    return {"tensor": tensor, "n": n, "bits": lq.weight_bits, "stored_as": _TYPE_NAMES[dtype], "stored_bits": sbits,
            "grid": [int(qmin), int(qmax)], "bytes": (n * sbits + 7) // 8, "scale_bytes": 4 * int(np.size(scale)),
            "zero_point_bytes": zp_bytes, "n_scales": int(np.size(scale))}


def _inverse_layout(b: _Builder, src: str, dst: str, row, qshape, onnx_shape) -> None:
    """Nodes taking the dequantized ``(out, in)`` matrix back to the weight's ONNX shape."""
    def shape_init(tag, dims):
        return b.init(_int64(f"{dst}__{tag}", dims))
    if row.layout is None:          # a conv weight, grouped along C_in*k
        b.pre.append(b.node("Reshape", [src, shape_init("shape", qshape)], [dst]))
        return
    # ConvTranspose: (g*co_g, ci_g*k) -> (g, co_g, ci_g, k...) -> (g, ci_g, co_g, k...) -> (C_in, co_g, k...)
    c_in, co_g, k = onnx_shape[0], onnx_shape[1], tuple(onnx_shape[2:])
    groups = qshape[0] // co_g
    ci_g = c_in // groups
    b.pre.append(b.node("Reshape", [src, shape_init("s1", (groups, co_g, ci_g) + k)], [f"{dst}__r1"]))
    perm = [0, 2, 1] + list(range(3, 3 + len(k)))
    b.pre.append(b.node("Transpose", [f"{dst}__r1"], [f"{dst}__t"], perm=perm))
    b.pre.append(b.node("Reshape", [f"{dst}__t", shape_init("s2", (c_in, co_g) + k)], [dst]))


def _int64(name, values):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


# -- activations -------------------------------------------------------------------------------------

def _activation_nodes(b: _Builder, x: str, bits: int, scheme: str, lo, hi) -> Tuple[str, list]:
    """``QuantizeLinear -> [Clip] -> DequantizeLinear`` on ``x``; returns the new name and nodes."""
    tag = f"{x}__a{bits}{scheme[:3]}"
    if bits >= 16:
        return tag, [b.node("Cast", [x], [f"{tag}__h"], to=_FLOAT16), b.node("Cast", [f"{tag}__h"], [tag], to=_FLOAT)]
    scale, zp, qmin, qmax = grid_params(lo, hi, bits, scheme)
    scale, zp = float(scale), int(zp)
    dtype = _UINT8 if scheme == "asymmetric" else _INT8
    npt = np.uint8 if dtype == _UINT8 else np.int8
    from onnx import numpy_helper
    s = b.init(_float_tensor(f"{tag}__scale", np.float32(scale)))
    z = b.init(numpy_helper.from_array(np.asarray(zp, dtype=npt), f"{tag}__zero_point"))
    if not scale > 0:    # an all-zero calibration range: quantmoo's grid maps everything to 0
        return tag, [b.node("Mul", [x, b.init(_float_tensor(f"{tag}__zero", np.float32(0.0)))], [tag])]
    nodes = [b.node("QuantizeLinear", [x, s, z], [f"{tag}__q"])]
    qname = f"{tag}__q"
    tmin, tmax = (0, 255) if dtype == _UINT8 else (-128, 127)
    if (qmin, qmax) != (tmin, tmax):
        lo_i = b.init(numpy_helper.from_array(np.asarray(qmin, dtype=npt), f"{tag}__qmin"))
        hi_i = b.init(numpy_helper.from_array(np.asarray(qmax, dtype=npt), f"{tag}__qmax"))
        nodes.append(b.node("Clip", [qname, lo_i, hi_i], [f"{tag}__c"]))
        qname = f"{tag}__c"
    nodes.append(b.node("DequantizeLinear", [qname, s, z], [tag]))
    return tag, nodes


def activation_ranges(plan: QDQPlan, config: QuantConfig, activations: Mapping[str, np.ndarray],
                      percentile: float = 99.99, cache: Optional[dict] = None) -> Dict[tuple, tuple]:
    """Static ranges ``(tensor, bits, scheme, method) -> (lo, hi)`` the config's activations need."""
    cache = {} if cache is None else cache
    out = {}
    for name, xs in activation_tensors(plan).items():
        lq = config.layers[name]
        if lq.activation_bits >= 16:
            continue
        for x in xs:
            key = (x, lq.activation_bits, lq.activation_scheme, config.calibration)
            if key not in cache:
                if x not in activations:
                    raise QuantmooError(f"No calibration activations for tensor '{x}' (input of layer '{name}')")
                cache[key] = calibrate(activations[x], lq.activation_bits, lq.activation_scheme, "per_tensor",
                                       128, config.calibration, percentile)
            out[key] = cache[key]
    return out


# -- the export --------------------------------------------------------------------------------------

def build_qdq(plan: QDQPlan, config: QuantConfig, ranges: Mapping[tuple, tuple], *,
              weight_calibration: str = "min_max", percentile: float = 99.99, weight_cache: Optional[dict] = None):
    """The QDQ ModelProto of ``config`` with activation ``ranges`` (see :func:`activation_ranges`)."""
    onnx = require("onnx", "onnx", "the ONNX QDQ export")
    from onnx import numpy_helper
    config = config.check_model(plan.spec) if isinstance(config, QuantConfig) else config
    method = config.calibration if weight_calibration == "config" else weight_calibration
    b = _Builder()
    src = plan.model
    graph = src.graph
    replaced, storage = set(), {}
    consts = {t.name: t for t in graph.initializer}
    const_nodes = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
    biases = {}
    for name, row in plan.layers.items():
        lq = config.layers[name]
        t = consts.get(row.tensor)
        t = t if t is not None else next(a.t for a in const_nodes[row.tensor].attribute if a.name == "value")
        w = np.asarray(numpy_helper.to_array(t), dtype=np.float32)
        storage[name] = _weight_nodes(b, name, row.tensor, row, w, lq, method, percentile)
        storage[name]["packed_bytes"] = _packed(plan.spec, name, lq)
        replaced.add(row.tensor)
        for bias in row.bias:
            biases[bias] = name
    bias_bytes = 0
    for bias in biases:
        bt = consts.get(bias)
        bt = bt if bt is not None else next(a.t for a in const_nodes[bias].attribute if a.name == "value")
        arr = np.asarray(numpy_helper.to_array(bt), dtype=np.float32)
        bias_bytes += 2 * arr.size
        b.pre.append(b.node("Cast", [b.init(_float_tensor(f"{bias}__fp16", arr, _FLOAT16))], [bias], to=_FLOAT))
        replaced.add(bias)

    # activation QDQ: one chain per (tensor, bits, scheme), placed before its first reader
    chains: Dict[tuple, str] = {}
    before: Dict[int, list] = {}
    rewire: Dict[int, Dict[int, str]] = {}
    node_index = {id(n): i for i, n in enumerate(graph.node)}
    for name, row in plan.layers.items():
        lq = config.layers[name]
        for node in row.nodes:
            a = _activation_input(plan, row, node)
            if a is None:
                continue
            x = node.input[a]
            key = (x, lq.activation_bits, lq.activation_scheme)
            i = node_index[id(node)]
            if key not in chains:
                lo, hi = (None, None) if lq.activation_bits >= 16 else ranges[key + (config.calibration,)]
                new, nodes = _activation_nodes(b, x, lq.activation_bits, lq.activation_scheme, lo, hi)
                chains[key] = new
                before.setdefault(i, []).extend(nodes)
            rewire.setdefault(i, {})[a] = chains[key]

    out = onnx.ModelProto()
    out.CopyFrom(src)
    g = out.graph
    del g.node[:]
    g.node.extend(b.pre)
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant" and node.output and node.output[0] in replaced:
            continue
        g.node.extend(before.get(i, []))
        if i in rewire:
            n2 = onnx.NodeProto()
            n2.CopyFrom(node)
            for a, new in rewire[i].items():
                n2.input[a] = new
            node = n2
        g.node.append(node)
    kept = [t for t in graph.initializer if t.name not in replaced]
    del g.initializer[:]
    g.initializer.extend(kept)
    g.initializer.extend(b.inits)
    inputs = [v for v in g.input if v.name not in replaced]
    del g.input[:]
    g.input.extend(inputs)
    _set_opset(onnx, out, b.opset)
    report = _size_record(plan, storage, bias_bytes)
    meta = {"quantmoo.config": config.to_json() if hasattr(config, "to_json") else json.dumps(config.to_dict()),
            "quantmoo.storage": json.dumps(storage, sort_keys=True),
            "quantmoo.size": json.dumps(report, sort_keys=True)}
    del out.metadata_props[:]
    for k, v in list((p.key, p.value) for p in src.metadata_props if not p.key.startswith("quantmoo.")) + \
            list(meta.items()):
        out.metadata_props.add(key=k, value=v)
    out.producer_name, out.producer_version = "quantmoo", _version()
    return out


def _version():
    from .._version import __version__
    return __version__


def _set_opset(onnx, model, needed: int) -> None:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if current < needed:
        from onnx import version_converter
        try:
            conv = version_converter.convert_version(model, needed)
        except Exception as e:
            raise QuantmooError(f"Cannot raise the model's opset from {current} to {needed} (needed for int4 or "
                                f"per-group weights): {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                                "use 5-8-bit per-tensor/per-channel weights or convert the model first") from None
        model.CopyFrom(conv)
    model.ir_version = max(model.ir_version, 10 if needed >= QDQ_OPSET else 7)


def _packed(spec, name, lq) -> int:
    layer = spec.layers[spec.index(name)]
    n = int(layer.n_params)
    out = int(layer.weight_shape[0])
    return int(packed_bytes(n, lq.weight_bits, lq.weight_scheme, lq.granularity, lq.group_size,
                            out_channels=out, in_features=n // out))


def _size_record(plan, storage: dict, bias_bytes: int) -> dict:
    """quantmoo's packed bytes next to what the ONNX file stores for the same weights."""
    grid = {n: (2 * s["n"] if s["bits"] == 16 else (s["n"] * s["bits"] + 7) // 8) for n, s in storage.items()}
    packed = sum(s["packed_bytes"] for s in storage.values())
    stored = sum(s["bytes"] + s["scale_bytes"] + s["zero_point_bytes"] for s in storage.values())
    width = sum(s["bytes"] - grid[n] for n, s in storage.items())
    return {"quantmoo_weight_bytes": packed, "onnx_weight_bytes": stored, "width_overhead": width,
            "scale_zero_point_overhead": stored - packed - width, "bias_bytes": bias_bytes,
            "other_params_fp32_overhead": 2 * int(plan.spec.other_params)}


def size_report(model) -> dict:
    """The size accounting of an exported model, checked against the initializers in it.

    ``onnx_weight_bytes = quantmoo_weight_bytes + width_overhead + scale_zero_point_overhead``:
    the width overhead is 2/3-bit weights kept in 4-bit and 5/6-bit ones in 8-bit types; scales
    are float32 in the file (quantmoo counts fp16, or an int8 exponent for power-of-two), and
    4-bit zero points pack two per byte (quantmoo counts one byte each). ``onnx_weight_bytes_in_file``
    sums the weight initializers actually stored; ``graph_bytes`` is the rest of the file (the
    graph, names, activation scales, fp32 parameters that are not layers, which quantmoo counts
    as fp16: ``other_params_fp32_overhead``).
    """
    from onnx import numpy_helper
    m = {p.key: p.value for p in model.metadata_props}
    if "quantmoo.size" not in m:
        raise QuantmooError("This ONNX model was not exported by quantmoo (no 'quantmoo.size' metadata)")
    rep = json.loads(m["quantmoo.size"])
    inits = {t.name: t for t in model.graph.initializer}
    found = 0
    for s in json.loads(m["quantmoo.storage"]).values():
        for suffix in ("q", "scale", "zero_point", "fp16"):
            t = inits.get(f"{s['tensor']}__{suffix}")
            if t is not None:
                found += len(t.raw_data) if t.raw_data else numpy_helper.to_array(t).nbytes
    rep["onnx_weight_bytes_in_file"] = found
    rep["file_bytes"] = model.ByteSize()
    rep["graph_bytes"] = rep["file_bytes"] - found - rep["bias_bytes"]
    return rep


def export_qdq(onnx_path, config: QuantConfig, calibration_data=None, *, percentile: float = 99.99,
               weight_calibration: str = "min_max", **overrides):
    """The QDQ ONNX model of ``config`` applied to the fp32 model at ``onnx_path``.

    Parameters
    ----------
    onnx_path : path
        The fp32 ONNX model (the one ``quantmoo.zoo.load`` imported the config's layers from).
    config : QuantConfig
        Must name exactly the model's layers.
    calibration_data : dict or list of dict, optional
        Input batches ``{input name: array}`` on which activation ranges are calibrated with the
        config's ``calibration`` method. Needed unless every layer keeps 16-bit activations.
    percentile : float
        For the ``percentile`` calibration method.
    weight_calibration : str
        How weight ranges are chosen: ``"min_max"`` (default, as quantmoo's evaluators) or
        ``"config"`` (the config's calibration method).
    **overrides
        ``batch``, ``seq_len`` as for :func:`~quantmoo.models.onnx_import.from_onnx`.

    Returns
    -------
    onnx.ModelProto
        Save it with ``onnx.save(model, "model.q.onnx")``. Its ``metadata_props`` hold the config
        (``quantmoo.config``), the per-layer storage (``quantmoo.storage``: ONNX type, stored and
        grid bits) and the size accounting (``quantmoo.size``, see :func:`size_report`).
    """
    plan = qdq_plan(onnx_path, **overrides)
    if not isinstance(config, QuantConfig):
        raise QuantmooError(f"The 'config' must be a QuantConfig; got {type(config).__name__}")
    config.check_model(plan.spec)
    needs = any(lq.activation_bits < 16 for lq in config.layers.values())
    acts = {}
    if needs:
        if calibration_data is None:
            from ..onnx import input_requirements
            raise QuantmooError(f"The config quantizes activations: pass calibration_data (input batches "
                                f"{input_requirements(plan.model)}; on the command line --data FILE.npz) to "
                                "calibrate their ranges")
        acts = collect_activations(plan, calibration_data)
    ranges = activation_ranges(plan, config, acts, percentile)
    return build_qdq(plan, config, ranges, weight_calibration=weight_calibration, percentile=percentile)
