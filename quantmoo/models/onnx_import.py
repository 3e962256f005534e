"""Import an ONNX model: its layer table and its real weights (:func:`from_onnx`).

The nodes of the main graph are walked in graph order; every weight-bearing node whose weight
is a floating-point initializer (or a ``Constant``, possibly behind ``Identity`` nodes) becomes
one :class:`~quantmoo.models.spec.LayerSpec`, counted the way :mod:`quantmoo.models.cnn` and
:mod:`quantmoo.models.transformer` count theirs:

============================  =====================  ========================================
node                          kind                   MACs (``act_in`` = input elements)
============================  =====================  ========================================
``Gemm``, ``MatMul`` (weight  ``linear``             ``rows * in * out``: the activation's
on either side)                                      elements / ``in``, times the weight size
``Conv``                      ``conv``, or           ``output elements * C_in/groups * kernel``
                              ``depthwise_conv``     (depthwise: ``groups > 1`` and one input
                              (one input channel     channel per group)
                              per output channel)
``ConvTranspose``             ``conv``               ``input elements * C_out/groups * kernel``
``Gather`` on axis 0 of a     ``embedding``          0 (``act_in`` = index count, ``act_out``
2-D table                                            = indices * width)
============================  =====================  ========================================

Weights are stored output-channels first, as everywhere in quantmoo: a ``Gemm``/``MatMul``
weight as ``(out_features, in_features)`` (``x @ W`` weights and ``Gemm`` weights without
``transB`` are transposed), a ``ConvTranspose`` weight ``(C_in, C_out/g, k...)`` as
``(C_out, C_in/g, k...)``. ``ModelSpec.weights(name)`` returns that float32 array, converted
from the initializer when asked for (fp16/bf16/fp64 initializers are read as float32).

Parameters that are not rows
    Biases (``Gemm`` input C, the ``Conv``/``ConvTranspose`` bias, and the initializer of an
    ``Add`` that is the only consumer of an ``x @ W`` ``MatMul``) are the ``extra_params`` of
    their layer. Every other floating-point initializer or ``Constant`` with more than one
    element (norm weights, position tables that are added rather than gathered, ...) counts in
    ``ModelSpec.other_params``, except the running mean and variance of ``BatchNormalization``
    (buffers, not parameters, as in torchvision's counts). Integer tensors (shapes, indices)
    and scalars are not parameters.

Shared weights
    A tensor used by several weight-bearing nodes is one row (named after its first use) whose
    MACs are the sum over its uses; a table that is both gathered and multiplied (tied
    embeddings) gets the kind ``lm_head``, as in :mod:`quantmoo.models.transformer`.
    ``meta["shared_weights"]`` lists the nodes of each shared tensor.

Layer names
    The weight tensor's name without a trailing ``.weight`` (``fc1.weight`` -> ``fc1``); for a
    name an exporter generated (``onnx::MatMul_123``) the node's name when it has one. If two
    rows would get the same name, both keep their full tensor name (unique in a graph).
    ``meta["onnx_tensors"]`` maps each layer name to its tensor.

The graph's other work
    ``meta["graph_ops"]``: per op type, the nodes onnxruntime runs that are not layers (elementwise,
    normalisation, pooling, reshapes, transposes, activation x activation ``MatMul``), with the
    activation bytes they read and write and their MACs, from onnxruntime's profiler over one run on
    zero inputs at ``ORT_ENABLE_EXTENDED`` (its fusions and constant folding applied, so folded Casts
    and fused activations do not count). The cost model charges them as one constant per model.
    Without onnxruntime (or if the run fails) ``meta["graph_ops_missing"]`` says why.
    ``meta["matmul_layers"]``: linear layers that are an ``x @ W`` ``MatMul`` (their weight is stored
    ``(in, out)``; with a dequantized weight and a float input onnxruntime fuses them into MatMulNBits).
    ``meta["bias_add_layers"]``: convolutions followed (through layout-only nodes) by a separate
    per-channel bias ``Add``, which onnxruntime fuses only while the conv's weight is a constant.

Not searched, and said so
    ``LSTM``/``GRU``/``RNN`` gate weights and weights inside control-flow subgraphs (``If``,
    ``Loop``, ``Scan``) are not rows: ``meta["not_searched"]`` lists each such node with its
    parameter count and the reason (recurrent weights count in ``other_params``; subgraph weights
    are not walked), and a graph whose only weights are there gets an error naming them.

Not covered
    Sparse initializers and already-quantized graphs (``DequantizeLinear`` in front of the
    weights, ``MatMulInteger``, ``QLinearConv``): import the floating-point model. Tie groups and
    blocks are left unset.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import QuantmooError, brief, require
from ..io import read_bytes
from .spec import LayerSpec, ModelSpec

__all__ = ["from_onnx", "ONNX_OVERRIDES", "WEIGHT_OPS"]

#: Keyword overrides :func:`from_onnx` (and ``zoo.load`` for an ``.onnx`` path) accepts.
ONNX_OVERRIDES = ("batch", "seq_len", "name", "input_shapes")
#: Node types that become rows when their weight is a floating-point initializer.
WEIGHT_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose", "Gather")

_DEFAULT_SEQ_LEN = 128
_MAX_WORKLOAD = 2 ** 31
#: TensorProto data types read as weights: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
_FLOAT_TYPES = (1, 10, 11, 16)
#: Ops that mean the graph is already quantized (its float weights are behind them).
_QUANTIZED_OPS = ("DequantizeLinear", "QuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearConv",
                  "QLinearMatMul", "DynamicQuantizeLinear")
_META_LIST_CAP = 50


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _workload_int(field: str, value: Any, src: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= _MAX_WORKLOAD:
        raise QuantmooError(f"The '{field}' override of {src} must be an integer in [1, 2**31]; got {brief(value)}")
    return int(value)


def from_onnx(path, _keep: Optional[dict] = None, **overrides) -> ModelSpec:
    """Build a layer table with real weights from an ONNX file.

    Parameters
    ----------
    path : str or path
        The ``.onnx`` file. Tensors saved as external data are read from the files it names,
        relative to its directory.
    **overrides
        ``batch`` (int, default 1) and ``seq_len`` (int, default 128): the values given to
        *symbolic* dimensions of the graph inputs before shape inference. The first axis of an
        input is its batch and takes ``batch``; every other symbolic dimension (a sequence
        length, or a dynamic image height or width) takes ``seq_len``. A named dimension keeps
        its first value everywhere (``input_ids`` and ``attention_mask`` share ``"seq"``).
        Passing one that matches no symbolic dimension is an error (it would change nothing).
        ``input_shapes`` (``{input name: [d0, d1, ...]}``): the full shape of those inputs (e.g.
        a detector's real ``[1, 3, 736, 736]``), before the substitution above.
        ``name`` (str): the model name, by default the file name without ``.onnx``.

        When static shape inference cannot give a weight-bearing node's input or output shape
        (a dynamic ``Reshape``, control flow), the model is run once in onnxruntime on zero
        inputs of those shapes and the shapes it produces are used (``meta["runtime_shapes"]``
        counts them).

    Returns
    -------
    ModelSpec
        Rows in graph order (see the module notes for what becomes a row and how it is
        counted), ``weights(name)`` giving each row's float32 weight (output channels first),
        ``workload`` the substituted dimensions (``{"batch", "seq_len"}``, or
        ``{"shapes": "static"}`` when the graph has none), and ``meta`` with the source file,
        the producer, the opset, ``onnx_tensors`` (layer name -> tensor name) and
        ``symbolic_dims`` (dimension name -> value used).

    Raises
    ------
    QuantmooError
        One line naming the file: missing or unreadable, not an ONNX protobuf (random bytes, a
        truncated file), an invalid graph, external data whose file is missing, a NaN or an
        infinity in a weight or bias (naming the tensor), no weight-bearing layer, or a
        weight-bearing node whose input shape cannot be inferred. Without the ``onnx``
        package, a :class:`~quantmoo.errors.MissingDependencyError` with the install hint.

    Examples
    --------
    >>> spec = quantmoo.zoo.load("model.onnx", seq_len=256)          # doctest: +SKIP
    >>> table = quantmoo.sensitivity(spec, measure="omega")         # doctest: +SKIP
    """
    path = Path(path)
    src = f"the ONNX file {path}"
    unknown = sorted(set(overrides) - set(ONNX_OVERRIDES))
    if unknown:
        raise QuantmooError(f"Unknown override(s) {unknown} for {src}; "
                            f"allowed overrides are {{{', '.join(ONNX_OVERRIDES)}}}")
    batch = _workload_int("batch", overrides.get("batch", 1), src)
    seq_len = _workload_int("seq_len", overrides.get("seq_len", _DEFAULT_SEQ_LEN), src)
    name = overrides.get("name", path.stem if path.suffix.lower() == ".onnx" else path.name)
    if not isinstance(name, str) or not name.strip():
        raise QuantmooError(f"The 'name' override of {src} must be a non-empty string; got {brief(name)}")

    onnx = require("onnx", "onnx", "reading an ONNX model")
    require("onnx.numpy_helper", "onnx", "reading an ONNX model")
    require("onnx.shape_inference", "onnx", "reading an ONNX model")
    require("onnx.external_data_helper", "onnx", "reading an ONNX model")

    model = _read(onnx, path)
    _load_external_data(onnx, model, path)
    graph = model.graph
    consts = _Consts(graph)
    input_shapes = _input_shapes(overrides.get("input_shapes"), model, src)
    sk, symbols, shapeless = _skeleton(onnx, model, batch, seq_len, input_shapes)
    # The checker insists on a shape for every graph input; one without (legal for runtimes,
    # rank unknown) is reported below only if a weight-bearing node needs its shape.
    if not shapeless:
        try:
            onnx.checker.check_model(sk)
        except Exception as e:  # onnx.checker.ValidationError and friends
            raise QuantmooError(f"{path}: not a valid ONNX model: {_first_line(e)}") from None
    for key, given in (("batch", "batch" in overrides), ("seq_len", "seq_len" in overrides)):
        if given and not any(v[1] == key for v in symbols.values()):
            raise QuantmooError(f"The '{key}' override of {src} has no effect: no graph input has a symbolic "
                                f"{'batch (first) ' if key == 'batch' else 'non-batch '}dimension")
    try:
        inferred = onnx.shape_inference.infer_shapes(sk, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx.shape_inference.InferenceError, RuntimeError
        raise QuantmooError(f"{path}: shape inference failed: {_first_line(e)}") from None
    shapes = _Shapes(inferred.graph, consts, batch, seq_len, {k: v[0] for k, v in symbols.items()})
    shapes.runtime = lambda: _runtime_shapes(model, sk, graph)

    walker = _Walker(path, graph, consts, shapes)
    walker.walk()
    if not walker.rows:
        quantized = sorted({n.op_type for n in graph.node if n.op_type in _QUANTIZED_OPS})
        hint = (f"; the graph is already quantized ({', '.join(quantized)}): import its floating-point version"
                if quantized else "")
        if walker.not_searched:
            hint += "; " + _not_searched_text(walker.not_searched)
        ops = ", ".join(WEIGHT_OPS[:-1]) + " or " + WEIGHT_OPS[-1]
        raise QuantmooError(f"{path}: no weight-bearing layers: no {ops} node has a floating-point "
                            f"initializer as its weight{hint}")
    spec = walker.spec(name, model, batch, seq_len, symbols, shapes)
    if input_shapes:
        spec.workload.pop("shapes", None)
        spec.workload["input_shapes"] = {k: list(v) for k, v in input_shapes.items()}
    ops = _runtime_graph_ops(model, sk, graph)
    if isinstance(ops, str):
        spec.meta["graph_ops_missing"] = f"no onnxruntime run: {ops}"
    else:
        spec.meta["graph_ops"] = ops
    if _keep is not None:   # the ONNX export needs the graph and the node of every use
        _keep.update(model=model, rows=walker.rows, names=walker._names())
    return spec


#: Recurrent ops: their gate weights are reported in ``meta["not_searched"]``, not searched.
_RECURRENT_OPS = ("LSTM", "GRU", "RNN")
#: Control-flow ops whose subgraphs may hold weights the walk does not enter.
_CONTROL_FLOW_OPS = ("If", "Loop", "Scan")


def _subgraph_weights(node) -> int:
    """Floating-point parameters (initializers and Constants of >1 element) inside a node's subgraphs."""
    total = 0
    graphs = [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
    for g in graphs:
        tensors = list(g.initializer) + [a.t for n in g.node if n.op_type == "Constant"
                                         for a in n.attribute if a.HasField("t")]
        total += sum(_size(t) for t in tensors if _is_float(t) and _size(t) > 1)
        for n in g.node:
            if n.op_type in _CONTROL_FLOW_OPS:
                total += _subgraph_weights(n)
    return total


def _not_searched_text(items: List[dict]) -> str:
    ops = ", ".join(sorted({f"{d['op']} ('{d['node']}', {d['params']:,} parameters)" for d in items}))
    return f"weights quantmoo does not search: {ops}"


# -- reading -----------------------------------------------------------------------------------------

def _read(onnx, path: Path):
    data = read_bytes(path)
    if not data:
        raise QuantmooError(f"{path}: the file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # google.protobuf.message.DecodeError (truncated or not a protobuf)
        raise QuantmooError(f"{path}: not a valid ONNX model: the file cannot be parsed as an ONNX protobuf "
                            f"({_first_line(e)}); is it truncated, or not an .onnx file?") from None
    missing = [what for what, ok in (("ir_version", model.ir_version > 0), ("graph", model.HasField("graph")),
                                     ("opset_import", len(model.opset_import) > 0)) if not ok]
    if missing or not len(model.graph.node):
        what = f"no {missing[0]}" if missing else "its graph has no nodes"
        raise QuantmooError(f"{path}: not a valid ONNX model: {what} (is it truncated, or not an .onnx file?)")
    return model


def _load_external_data(onnx, model, path: Path) -> None:
    """Check that every external-data file exists and is long enough, then read them in."""
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    external = [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return
    base = path.parent
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location")
        if not loc:
            raise QuantmooError(f"{path}: the tensor '{t.name}' is stored as external data but names no file")
        f = base / loc
        if not f.is_file():
            raise QuantmooError(f"{path}: the tensor '{t.name}' is stored in the external data file '{loc}', "
                                f"which is missing (looked for {f})")
        try:
            end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        except ValueError:
            raise QuantmooError(f"{path}: the tensor '{t.name}' has a malformed external-data offset or "
                                f"length") from None
        if end > f.stat().st_size:
            raise QuantmooError(f"{path}: the external data file '{loc}' is truncated: the tensor '{t.name}' "
                                f"needs {end} bytes, the file has {f.stat().st_size}")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(base))
    except Exception as e:  # a location outside the model's directory, an unreadable file
        raise QuantmooError(f"{path}: cannot read its external data: {_first_line(e)}") from None


class _Consts:
    """Constant tensors of the main graph: initializers and ``Constant`` outputs (canonical names),
    plus the ``Identity`` outputs that alias them."""

    def __init__(self, graph):
        self.tensors: Dict[str, Any] = {t.name: t for t in graph.initializer}
        self.alias: Dict[str, str] = {n: n for n in self.tensors}
        for node in graph.node:
            if node.op_type == "Constant" and node.output and not node.domain:
                for a in node.attribute:
                    if a.name == "value" and a.HasField("t"):
                        self.tensors[node.output[0]] = a.t
                        self.alias[node.output[0]] = node.output[0]
            elif node.op_type == "Identity" and node.input and node.input[0] in self.alias and node.output:
                self.alias[node.output[0]] = self.alias[node.input[0]]

    def canonical(self, name: str) -> Optional[str]:
        """The initializer/Constant a value is (through Identity nodes), or None."""
        return self.alias.get(name) if name else None

    def __getitem__(self, canonical: str):
        return self.tensors[canonical]


def _is_float(t) -> bool:
    return t.data_type in _FLOAT_TYPES


def _size(t) -> int:
    return math.prod(int(d) for d in t.dims)


def _input_shapes(value, model, src: str) -> Dict[str, Tuple[int, ...]]:
    """Check the ``input_shapes`` override: ``{graph input name: dims}`` with every dim >= 1."""
    if value is None:
        return {}
    inits = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in inits]
    if not isinstance(value, dict):
        raise QuantmooError(f"The 'input_shapes' override of {src} must map input names to shapes; got {brief(value)}")
    out = {}
    for k, dims in value.items():
        if k not in names:
            raise QuantmooError(f"The 'input_shapes' override of {src} names '{k}', which is not a graph input; "
                                f"the inputs are {names}")
        if not isinstance(dims, (list, tuple)) or not dims or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) and 1 <= d <= _MAX_WORKLOAD for d in dims):
            raise QuantmooError(f"The 'input_shapes' override of {src} for '{k}' must be a list of integers >= 1; "
                                f"got {brief(dims)}")
        out[k] = tuple(int(d) for d in dims)
    return out


def _runtime_shapes(model, sk, graph):
    """Shapes of the weight-bearing nodes' values from one onnxruntime run on zero inputs
    (a dict), or a short reason why there are none (a str).

    The fallback when static shape inference cannot see through a dynamic ``Reshape`` and the
    like: the inputs get the concrete shapes of the skeleton (symbolic dims substituted).
    """
    try:
        import onnxruntime as ort
        from onnx import helper
    except ImportError:
        return "onnxruntime is not installed"
    inits = {t.name for t in graph.initializer}
    wanted = [x for n in graph.node if n.op_type in WEIGHT_OPS for x in list(n.input) + list(n.output)
              if x and x not in inits]
    m = type(model)()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for x in dict.fromkeys(wanted):
        if x not in have:
            m.graph.output.append(helper.make_empty_tensor_value_info(x))
    feed = {}
    for v in sk.graph.input:
        if v.name in inits or not _has_shape(v) or v.name not in {i.name for i in graph.input}:
            continue
        tt = v.type.tensor_type
        dims = [d.dim_value for d in tt.shape.dim]
        feed[v.name] = np.zeros(dims, dtype=helper.tensor_dtype_to_np_dtype(tt.elem_type))
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        outs = sess.run(names, feed)
    except Exception as e:  # the model cannot run on these inputs: keep the static result, say why
        return f"it failed: {_first_line(e)[:200]}"
    return {n: list(np.shape(o)) for n, o in zip(names, outs)}


#: Kernels that compute a row of the layer table when one input is a weight (``parameter_size`` > 0 in
#: onnxruntime's profile); the same ops on two activations are graph work.
_LAYER_KERNELS = ("Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "Gather")
#: The graph optimization level whose graph is recorded: every fusion onnxruntime applies to any graph,
#: without the NCHWc layout change, which it applies only to convolutions with constant weights (a
#: per-config effect the cost model's conv rates carry).
GRAPH_OPS_LEVEL = "ORT_ENABLE_EXTENDED"
#: Ops that only relabel a tensor (onnxruntime reuses the input buffer) or read its shape.
_VIEW_OPS = ("Shape", "Size", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


def _runtime_graph_ops(model, sk, graph):
    """The non-layer work of the graph as onnxruntime runs it: ``{op_type: {"nodes", "bytes", "macs"}}``
    from its profiler over one run on zero inputs (a dict), or a short reason why there is none (a str).

    Every node that is not a layer kernel counts (elementwise, normalisation, pooling, reshape,
    transpose, ...); nodes onnxruntime folded or fused away at ``GRAPH_OPS_LEVEL`` are not in its
    profile. ``bytes`` = activation bytes read + written (``activation_size + output_size``);
    ``macs`` = the multiply-accumulates of activation x activation ``MatMul`` nodes (attention
    scores and values): output elements x the shared dimension.
    """
    try:
        import onnxruntime as ort
        from onnx import helper
    except ImportError:
        return "onnxruntime is not installed"
    import json
    import os
    import tempfile
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    feed = {}
    for v in sk.graph.input:
        if v.name not in inputs or not _has_shape(v):
            continue
        tt = v.type.tensor_type
        feed[v.name] = np.zeros([d.dim_value for d in tt.shape.dim],
                                dtype=helper.tensor_dtype_to_np_dtype(tt.elem_type))
    with tempfile.TemporaryDirectory() as d:
        try:
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            so.log_severity_level = 3
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPS_LEVEL)
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(d, "graph_ops")
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            sess.run(None, feed)
            with open(sess.end_profiling(), encoding="utf-8") as f:
                events = json.load(f)
        except Exception as e:  # the model cannot run on these inputs: record nothing, say why
            return f"it failed: {_first_line(e)[:200]}"
    ops: Dict[str, Dict[str, int]] = {}
    for e in events:
        a = e.get("args", {})
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or "op_name" not in a:
            continue
        op, params = a["op_name"], int(a.get("parameter_size", 0))
        shapes = [next(iter(s.values())) for s in a.get("input_type_shape", []) if s]
        if op in _LAYER_KERNELS and params > 0 and not (op == "Gather" and shapes and
                                                        not any(k in ("float", "float16", "bfloat16", "double")
                                                                for k in a["input_type_shape"][0])):
            continue
        macs = 0
        if op in ("MatMul", "FusedMatMul") and len(shapes) >= 2 and shapes[0]:
            out = [next(iter(s.values())) for s in a.get("output_type_shape", []) if s]
            macs = math.prod(out[0]) * int(shapes[0][-1]) if out else 0
        rec = ops.setdefault(op, {"nodes": 0, "bytes": 0, "macs": 0})
        rec["nodes"] += 1
        if op not in _VIEW_OPS:   # views and shape reads move no tensor data
            rec["bytes"] += int(a.get("activation_size", 0)) + int(a.get("output_size", 0))
        rec["macs"] += macs
    return dict(sorted(ops.items()))


def _skeleton(onnx, model, batch: int, seq_len: int, input_shapes=None):
    """A weight-free copy of the model for checking and shape inference, with concrete inputs.

    Floating-point initializers become typed graph inputs (their shape is all inference needs),
    so neither the checker nor shape inference copies the weights. Symbolic dimensions of the
    real graph inputs get ``batch`` (first axis) or ``seq_len``. Graph outputs without a shape
    are left out (inference does not need them). Returns the model,
    ``{dimension name: (value, "batch" | "seq_len")}`` and the names of the graph inputs that
    have no shape.
    """
    from onnx import helper
    g = model.graph
    sk = onnx.ModelProto()
    sk.ir_version = model.ir_version
    sk.opset_import.extend(model.opset_import)
    sk.functions.extend(model.functions)
    sg = sk.graph
    sg.name = g.name or "graph"
    sg.node.extend(g.node)
    init_names = {t.name for t in g.initializer}
    symbols: Dict[str, Tuple[int, str]] = {}
    input_names, shapeless = set(), []
    for vi in g.input:
        v = sg.input.add()
        v.CopyFrom(vi)
        input_names.add(v.name)
        if v.name in init_names:
            continue
        if v.name in (input_shapes or {}):   # given on the command line: every dim concrete
            tt = v.type.tensor_type
            dims = input_shapes[v.name]
            if _has_shape(v) and len(tt.shape.dim) != len(dims):
                raise QuantmooError(f"The 'input_shapes' override for '{v.name}' has {len(dims)} dimensions; the "
                                    f"input has {len(tt.shape.dim)}")
            tt.shape.Clear()
            for d in dims:
                tt.shape.dim.add().dim_value = d
            continue
        if not _has_shape(v):
            shapeless.append(v.name)
            continue
        for axis, d in enumerate(v.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            key = d.dim_param    # (exporters also write -1 or 0 for a dynamic dimension)
            if key and key in symbols:
                value = symbols[key][0]
            else:
                value, role = (batch, "batch") if axis == 0 else (seq_len, "seq_len")
                symbols[key or f"{v.name}[{axis}]"] = (value, role)
            d.Clear()
            d.dim_value = value
    for t in g.initializer:
        if _is_float(t):
            if t.name not in input_names:
                sg.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            sg.initializer.append(t)
    # declared shapes elsewhere use the same names: give them the same values
    for src, dst in ((g.output, sg.output), (g.value_info, sg.value_info)):
        for vi in src:
            if not _has_shape(vi):
                continue
            v = dst.add()
            v.CopyFrom(vi)
            for d in v.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and d.dim_param in symbols:
                    value = symbols[d.dim_param][0]
                    d.Clear()
                    d.dim_value = value
    return sk, symbols, shapeless


def _has_shape(vi) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")


class _Shapes:
    """Shapes of graph values after shape inference.

    A dimension inference left symbolic takes the value its name got on the graph inputs, else
    ``batch`` on the first axis and ``seq_len`` elsewhere; such tensors are recorded in
    ``unresolved`` (reported in ``meta["assumed_shapes"]``).
    """

    def __init__(self, graph, consts: _Consts, batch: int, seq_len: int, named: Dict[str, int]):
        self.dims: Dict[str, list] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            if tt is None or not tt.HasField("shape"):
                continue
            self.dims[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                  for d in tt.shape.dim]
        self.consts, self.batch, self.seq_len, self.named = consts, batch, seq_len, named
        self.unresolved: List[str] = []
        self.runtime: Optional[Callable[[], Dict[str, list]]] = None
        self.from_runtime: List[str] = []
        self.runtime_error: Optional[str] = None

    def _known(self, dims) -> bool:
        """Every dimension a number or a graph input's named dimension. Inference's own names
        (``unk__0`` after a Pad whose pads are computed) are unknown sizes, not the workload's."""
        return dims is not None and all(isinstance(d, int) or d in self.named for d in dims)

    def shape(self, name: str) -> Optional[Tuple[int, ...]]:
        """Concrete shape of a value, or None when even its rank is unknown."""
        canon = self.consts.canonical(name)
        if canon is not None:
            return tuple(int(d) for d in self.consts[canon].dims)
        dims = self.dims.get(name)
        if self.runtime is not None and not self._known(dims):   # static inference gave up: ask onnxruntime once
            found, self.runtime = self.runtime(), None
            if isinstance(found, str):
                self.runtime_error, found = found, {}
            self.from_runtime = sorted(n for n in found if not self._known(self.dims.get(n)))
            for n in self.from_runtime:
                self.dims[n] = found[n]
            dims = self.dims.get(name)
        if dims is None:
            return None
        out = []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                out.append(d)
                continue
            if name not in self.unresolved:
                self.unresolved.append(name)
            default = self.batch if axis == 0 else self.seq_len
            out.append(self.named.get(d, default) if d else default)
        return tuple(out)


# -- the walk ----------------------------------------------------------------------------------------

def _attr(node, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name and a.type == 2:   # AttributeProto.INT
            return int(a.i)
    return default


def _transpose(w: np.ndarray) -> np.ndarray:
    return w.T


def _convtranspose_layout(groups: int) -> Callable[[np.ndarray], np.ndarray]:
    """``(C_in, C_out/g, k...)`` -> ``(C_out, C_in/g, k...)``."""
    def fn(w: np.ndarray) -> np.ndarray:
        c_in, co_g, k = w.shape[0], w.shape[1], w.shape[2:]
        w = w.reshape(groups, c_in // groups, co_g, *k).swapaxes(1, 2)
        return w.reshape(groups * co_g, c_in // groups, *k)
    return fn


class _Row:
    """A layer in the making (LayerSpec is frozen; shared weights add MACs after creation)."""

    __slots__ = ("tensor", "node", "kind", "shape", "layout", "macs", "act_in", "act_out", "bias", "uses", "nodes")

    def __init__(self, tensor: str, node, kind: str, shape, layout, macs: int, act_in: int, act_out: int):
        self.tensor, self.node, self.kind, self.shape, self.layout = tensor, node, kind, tuple(shape), layout
        self.macs, self.act_in, self.act_out = macs, act_in, act_out
        self.bias: List[str] = []
        self.uses: List[str] = []
        self.nodes: list = []   # every node using the weight (uses are their labels)


class _Walker:
    """Turns the weight-bearing nodes of a graph into rows, in graph order."""

    def __init__(self, path: Path, graph, consts: _Consts, shapes: _Shapes):
        self.path, self.graph, self.consts, self.shapes = path, graph, consts, shapes
        self.rows: Dict[str, _Row] = {}   # canonical weight tensor -> row (insertion order = graph order)
        self.skipped: List[dict] = []
        self.not_searched: List[dict] = []   # recurrent and control-flow weights, with the reason
        self.consumers: Dict[str, list] = {}
        for node in graph.node:
            for x in node.input:
                if x:
                    self.consumers.setdefault(x, []).append(node)

    # -- helpers
    @staticmethod
    def _label(node, i: int) -> str:
        return node.name or f"#{i} ({node.op_type})"

    def _const(self, name: str) -> Optional[str]:
        """The canonical name of a floating-point constant input, else None."""
        canon = self.consts.canonical(name)
        return canon if canon is not None and _is_float(self.consts[canon]) else None

    def _dims(self, canon: str) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.consts[canon].dims)

    def _numel(self, tensor: str, node, i: int) -> int:
        shape = self.shapes.shape(tensor)
        if shape is None:
            raise QuantmooError(f"{self.path}: cannot determine the shape of '{tensor}', an input or output of "
                                f"node '{self._label(node, i)}' ({node.op_type}), neither by shape inference nor "
                                f"from an onnxruntime run on zero inputs ({self.shapes.runtime_error or 'no run'}); "
                                "give the inputs their real shape (--input-shape NAME=1x3x48x320, or "
                                "input_shapes={...})")
        return math.prod(shape)

    def _per_feature(self, numel: int, k: int, node, i: int, tensor: str) -> int:
        if k < 1 or numel % k:
            raise QuantmooError(f"{self.path}: node '{self._label(node, i)}' ({node.op_type}) multiplies "
                                f"'{tensor}' ({numel} elements) by a weight with {k} input features: the "
                                "shapes do not match")
        return numel // k

    def _skip(self, node, i: int, reason: str) -> None:
        self.skipped.append({"node": self._label(node, i), "op": node.op_type, "reason": reason})

    def _add(self, node, i: int, w: str, kind: str, shape, layout, macs: int, act_in: int, act_out: int) -> _Row:
        label = self._label(node, i)
        row = self.rows.get(w)
        if row is not None:               # a shared (tied) weight: one row, the MACs of every use
            row.macs += macs
            row.uses.append(label)
            row.nodes.append(node)
            if {row.kind, kind} == {"embedding", "linear"}:
                row.kind = "lm_head"
            return row
        row = _Row(w, node, kind, shape, layout, macs, act_in, act_out)
        row.uses.append(label)
        row.nodes.append(node)
        self.rows[w] = row
        return row

    def _bias(self, row: _Row, node, k: int) -> None:
        b = self._const(node.input[k]) if len(node.input) > k else None
        if b is not None:
            row.bias.append(b)

    def walk(self) -> None:
        for i, node in enumerate(self.graph.node):
            if node.domain in ("", "ai.onnx") and node.op_type in WEIGHT_OPS and len(node.input) >= 2 \
                    and node.output:
                getattr(self, "_" + node.op_type.lower())(node, i)
            elif node.op_type in _RECURRENT_OPS:
                ws = [w for w in (self._const(x) for x in node.input[1:3]) if w is not None]
                if ws:
                    self.not_searched.append({
                        "node": self._label(node, i), "op": node.op_type, "tensors": ws,
                        "params": sum(_size(self.consts[w]) for w in ws),
                        "reason": f"{node.op_type} gate weights are not searched (quantmoo's kernels and the QDQ "
                                  "export cover Gemm/MatMul/Conv/ConvTranspose/Gather); counted in other_params"})
            elif node.op_type in _CONTROL_FLOW_OPS:
                n_w = _subgraph_weights(node)
                if n_w:
                    self.not_searched.append({
                        "node": self._label(node, i), "op": node.op_type, "params": n_w,
                        "reason": f"weights inside the {node.op_type} subgraph(s) are not imported (only the main "
                                  "graph is walked)"})

    # -- ops
    def _matmul(self, node, i: int) -> None:
        a, b = self._const(node.input[0]), self._const(node.input[1])
        if a is not None and b is not None:
            return self._skip(node, i, "both operands are constants")
        if b is not None:                 # x @ W, W: (in, out)
            if len(self._dims(b)) != 2:
                return self._skip(node, i, f"weight '{b}' has {len(self._dims(b))} dimensions (2 supported)")
            k, n = self._dims(b)
            x = self._numel(node.input[0], node, i)
            rows = self._per_feature(x, k, node, i, node.input[0])
            row = self._add(node, i, b, "linear", (n, k), _transpose, rows * k * n, x, rows * n)
            self._matmul_bias(node, row, n)
        elif a is not None:               # W @ x, W: (out, in)
            if len(self._dims(a)) != 2:
                return self._skip(node, i, f"weight '{a}' has {len(self._dims(a))} dimensions (2 supported)")
            m, k = self._dims(a)
            x = self._numel(node.input[1], node, i)
            cols = self._per_feature(x, k, node, i, node.input[1])
            self._add(node, i, a, "linear", (m, k), None, m * k * cols, x, m * cols)

    def _matmul_bias(self, node, row: _Row, n: int) -> None:
        """``x @ W + b``: the bias of an Add that is the only consumer of the product."""
        users = self.consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add" or users[0].domain not in ("", "ai.onnx"):
            return
        others = [x for x in users[0].input if x != node.output[0]]
        c = self._const(others[0]) if len(others) == 1 else None
        if c is not None and c not in self.rows:
            dims = self._dims(c)
            if math.prod(dims) == n and dims and dims[-1] == n:
                row.bias.append(c)

    def _gemm(self, node, i: int) -> None:
        a, b = self._const(node.input[0]), self._const(node.input[1])
        ta, tb = _attr(node, "transA", 0), _attr(node, "transB", 0)
        if a is not None and b is not None:
            return self._skip(node, i, "both operands are constants")
        if b is not None:                 # Y = A' B' with B' (K, N): the weight is (N, K)
            if len(self._dims(b)) != 2:
                return self._skip(node, i, f"weight '{b}' has {len(self._dims(b))} dimensions (2 expected)")
            d0, d1 = self._dims(b)
            n, k = (d0, d1) if tb else (d1, d0)
            x = self._numel(node.input[0], node, i)
            rows = self._per_feature(x, k, node, i, node.input[0])
            row = self._add(node, i, b, "linear", (n, k), None if tb else _transpose, rows * k * n, x, rows * n)
        elif a is not None:               # Y = A' B' with the weight A' (M, K)
            if len(self._dims(a)) != 2:
                return self._skip(node, i, f"weight '{a}' has {len(self._dims(a))} dimensions (2 expected)")
            d0, d1 = self._dims(a)
            m, k = (d1, d0) if ta else (d0, d1)
            x = self._numel(node.input[1], node, i)
            cols = self._per_feature(x, k, node, i, node.input[1])
            row = self._add(node, i, a, "linear", (m, k), _transpose if ta else None, m * k * cols, x, m * cols)
        else:
            return
        self._bias(row, node, 2)

    def _conv_weight(self, node, i: int):
        """``(weight name, dims, groups)`` of a Conv/ConvTranspose node, or None (skipped)."""
        w = self._const(node.input[1])
        if w is None:
            return None
        dims = self._dims(w)
        if len(dims) < 3:
            self._skip(node, i, f"weight '{w}' has {len(dims)} dimensions (3 or more expected)")
            return None
        return w, dims, _attr(node, "group", 1)

    def _conv(self, node, i: int) -> None:
        got = self._conv_weight(node, i)
        if got is None:
            return
        w, dims, groups = got
        c_in_g, kernel = dims[1], math.prod(dims[2:])
        x = self._numel(node.input[0], node, i)
        y = self._numel(node.output[0], node, i)
        kind = "depthwise_conv" if groups > 1 and c_in_g == 1 else "conv"
        row = self._add(node, i, w, kind, dims, None, y * c_in_g * kernel, x, y)
        self._bias(row, node, 2)

    def _convtranspose(self, node, i: int) -> None:
        got = self._conv_weight(node, i)
        if got is None:
            return
        w, dims, groups = got
        c_in, co_g, k = dims[0], dims[1], dims[2:]
        if groups < 1 or c_in % groups:
            return self._skip(node, i, f"group={groups} does not divide the {c_in} input channels")
        x = self._numel(node.input[0], node, i)
        y = self._numel(node.output[0], node, i)
        kind = "depthwise_conv" if groups > 1 and c_in // groups == 1 else "conv"
        row = self._add(node, i, w, kind, (groups * co_g, c_in // groups) + k, _convtranspose_layout(groups),
                        x * co_g * math.prod(k), x, y)
        self._bias(row, node, 2)

    def _gather(self, node, i: int) -> None:
        w = self._const(node.input[0])
        if w is None:
            return
        dims, axis = self._dims(w), _attr(node, "axis", 0)
        if len(dims) != 2 or axis not in (0, -2):
            return self._skip(node, i, f"gathers axis {axis} of a {len(dims)}-D table (axis 0 of a 2-D table "
                                       "is an embedding)")
        vocab, width = dims
        idx = self._numel(node.input[1], node, i)
        self._add(node, i, w, "embedding", (vocab, width), None, 0, idx, idx * width)

    def bias_adds(self) -> List[str]:
        """Weight tensors of the convolutions whose output goes (through Transpose/Cast/Identity/Reshape nodes
        only) to an ``Add`` of a constant with one value per output channel: a separate bias, which
        onnxruntime fuses into the conv only while the conv's weight is a constant."""
        passthrough = ("Transpose", "Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze")
        out = []
        for t, row in self.rows.items():
            if row.kind not in ("conv", "depthwise_conv") or len(row.nodes) != 1:
                continue
            name = row.node.output[0]
            for _ in range(8):
                users = self.consumers.get(name, [])
                if len(users) != 1:
                    break
                node = users[0]
                if node.op_type == "Add" and node.domain in ("", "ai.onnx"):
                    others = [x for x in node.input if x != name]
                    c = self._const(others[0]) if len(others) == 1 else None
                    if c is not None and _size(self.consts[c]) == row.shape[0]:
                        out.append(t)
                    break
                if node.op_type not in passthrough or not node.output:
                    break
                name = node.output[0]
        return out

    # -- the spec
    def _names(self) -> Dict[str, str]:
        """Layer name per weight tensor (see the module notes)."""
        def candidate(row: _Row) -> str:
            t = row.tensor
            if t.startswith("onnx::") and row.node.name:
                return row.node.name
            if t.endswith(".weight") and len(t) > len(".weight"):
                return t[: -len(".weight")]
            return t
        names = {r.tensor: candidate(r) for r in self.rows.values()}
        while True:   # tensor names are unique, so falling back to them always ends the clashes
            count: Dict[str, int] = {}
            for n in names.values():
                count[n] = count.get(n, 0) + 1
            clash = [t for t, n in names.items() if count[n] > 1 and n != t]
            if not clash:
                return names
            for t in clash:
                names[t] = t

    def _array(self, canon: str) -> np.ndarray:
        from onnx import numpy_helper
        try:
            a = np.asarray(numpy_helper.to_array(self.consts[canon]), dtype=np.float32)
        except Exception as e:  # raw data of the wrong length and the like
            raise QuantmooError(f"{self.path}: the tensor '{canon}' cannot be read: {_first_line(e)}") from None
        if a.shape != self._dims(canon):
            raise QuantmooError(f"{self.path}: the tensor '{canon}' holds {a.size} values for its shape "
                                f"{list(self._dims(canon))}")
        return a

    def _check_finite(self, canon: str, what: str) -> None:
        a = self._array(canon)
        bad = ~np.isfinite(a)
        if bad.any():
            vals = a[bad]
            kinds = [k for k, hit in (("NaN", np.isnan(vals).any()), ("inf", np.isinf(vals).any())) if hit]
            raise QuantmooError(f"{self.path}: the {what} tensor '{canon}' holds {' and '.join(kinds)} "
                                f"({int(bad.sum())} of {a.size} values); weights must be finite")

    def other_params(self) -> Tuple[int, int]:
        """``(parameters, tensors)`` of the float constants that are neither rows nor biases."""
        used = set(self.rows) | {b for r in self.rows.values() for b in r.bias}
        buffers = {self.consts.canonical(n.input[k]) for n in self.graph.node
                   if n.op_type == "BatchNormalization" for k in (3, 4) if len(n.input) > k}
        total = count = 0
        for canon, t in self.consts.tensors.items():
            if canon in used or canon in buffers or not _is_float(t):
                continue
            size = _size(t)
            if size > 1:
                total += size
                count += 1
        return total, count

    def spec(self, name: str, model, batch: int, seq_len: int, symbols, shapes: _Shapes) -> ModelSpec:
        path = self.path
        names = self._names()
        biases = list(dict.fromkeys(b for r in self.rows.values() for b in r.bias))
        for t in self.rows:
            self._check_finite(t, "weight")
        for b in biases:
            self._check_finite(b, "bias")
        layers = []
        for r in self.rows.values():
            extra = sum(_size(self.consts[b]) for b in dict.fromkeys(r.bias))
            try:
                layers.append(LayerSpec(name=names[r.tensor], kind=r.kind, weight_shape=r.shape, macs=r.macs,
                                        act_in=r.act_in, act_out=r.act_out, extra_params=extra))
            except QuantmooError as e:
                raise QuantmooError(f"{path}: {e}") from None
        other, n_other = self.other_params()

        layouts = {names[r.tensor]: (r.tensor, r.layout) for r in self.rows.values()}
        consts = self.consts

        def weights(layer: str) -> np.ndarray:
            """Float32 weight of ``layer``, output channels first (converted on each call)."""
            try:
                tensor, layout = layouts[layer]
            except (KeyError, TypeError):
                raise QuantmooError(f"Unknown layer name {brief(layer)} for the ONNX model {path}") from None
            from onnx import numpy_helper
            w = np.asarray(numpy_helper.to_array(consts[tensor]), dtype=np.float32)
            return np.ascontiguousarray(layout(w) if layout is not None else w, dtype=np.float32)

        roles = {role for _, role in symbols.values()}
        workload: Dict[str, Any] = {}
        if "batch" in roles:
            workload["batch"] = batch
        if "seq_len" in roles:
            workload["seq_len"] = seq_len
        if not workload:
            workload["shapes"] = "static"
        opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        meta: Dict[str, Any] = {
            "family": "onnx", "source": str(path),
            "producer": " ".join(x for x in (model.producer_name, model.producer_version) if x),
            "opset": opset, "onnx_tensors": {names[r.tensor]: r.tensor for r in self.rows.values()},
            "symbolic_dims": {k: v[0] for k, v in symbols.items()}, "other_params_tensors": n_other}
        matmuls = [names[t] for t, r in self.rows.items()
                   if r.kind == "linear" and len(r.nodes) == 1 and r.node.op_type == "MatMul" and r.layout is _transpose]
        if matmuls:
            meta["matmul_layers"] = matmuls
        bias_adds = self.bias_adds()
        if bias_adds:
            meta["bias_add_layers"] = [names[t] for t in bias_adds]
        shared = {names[r.tensor]: r.uses for r in self.rows.values() if len(r.uses) > 1}
        if shared:
            meta["shared_weights"] = shared
        if self.skipped:
            meta["skipped_nodes"] = self.skipped[:_META_LIST_CAP]
        if self.not_searched:
            meta["not_searched"] = self.not_searched[:_META_LIST_CAP]
        if shapes.unresolved:
            meta["assumed_shapes"] = shapes.unresolved[:_META_LIST_CAP]
        if shapes.from_runtime:
            meta["runtime_shapes"] = len(shapes.from_runtime)   # shapes onnxruntime measured
        try:
            return ModelSpec(name=name, layers=layers, workload=workload, other_params=other, weights=weights,
                             meta=meta)
        except QuantmooError as e:
            raise QuantmooError(f"{path}: {e}") from None
