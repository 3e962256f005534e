"""The ONNX form of a NumPy BERT sentence encoder (the bundled ``minilm-l6``), from its real weights.

:func:`bert_to_onnx` writes the graph :meth:`~quantmoo.accuracy.bert.BertModel.forward` computes,
op for op, with ``onnx.helper`` (opset 17, for ``LayerNormalization``):

* inputs ``input_ids`` and ``attention_mask``, int64 ``[batch, seq]`` (right padding, mask 1 on
  real tokens, what :func:`onnx_batches` gives); output ``sentence_embedding`` float32
  ``[batch, hidden]``, L2-normalised;
* word embeddings: a ``Gather`` on the flattened ids; position embeddings: a ``Slice`` of the
  first ``seq`` rows; token type 0: a ``Slice`` of row 0; their sum, then ``LayerNormalization``;
* per encoder layer: ``MatMul`` + ``Add`` (bias) for query, key, value, the attention output,
  the intermediate and output dense layers, all on the ``(batch * seq, hidden)`` token matrix as
  the NumPy forward runs them; scaled scores plus ``(1 - mask) * float32.min``, ``Softmax``; the
  residual ``Add`` and ``LayerNormalization``; exact GELU ``0.5 x (1 + erf(x / sqrt 2))``;
* mean pooling over the real tokens (``sum(x * mask) / sum(mask)``) and L2 normalisation.

The weight initializers keep the checkpoint's names (``encoder.layer.0.attention.self.query.weight``,
stored transposed, ``(in, out)``, as ``MatMul`` reads it), so :func:`quantmoo.zoo.load` of the saved
file (:func:`~quantmoo.models.onnx_import.from_onnx`) has the same 37 layers, in the same order and
with the same weights, as the zoo's ``minilm-l6``: a config found for one applies to the other, and
``quantmoo.onnx.export_qdq`` of the file runs the config in onnxruntime. The pooler is not in the
graph (mean pooling does not use it).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import QuantmooError, require

__all__ = ["bert_to_onnx", "minilm_to_onnx", "onnx_batches", "BERT_ONNX_OPSET", "BERT_ONNX_INPUTS",
           "BERT_ONNX_OUTPUT"]

#: Opset of the graph (LayerNormalization is in the default domain from 17).
BERT_ONNX_OPSET = 17
#: Names of the graph inputs (int64 ``[batch, seq]``).
BERT_ONNX_INPUTS = ("input_ids", "attention_mask")
#: Name of the graph output (float32 ``[batch, hidden]``).
BERT_ONNX_OUTPUT = "sentence_embedding"


def onnx_batches(model, sentences: Sequence[str], batch_size: int = 32) -> List[Dict[str, np.ndarray]]:
    """Padded input batches ``{"input_ids", "attention_mask"}`` (int64) of ``sentences``.

    The same length-bucketed batches :meth:`BertModel.batches` gives the NumPy forward (so the
    outputs come in its order, not the sentences' order). ``batch_size=1`` gives unpadded
    batches: activation calibration on them sees real tokens only, as the NumPy evaluator's does.
    """
    batches, _ = model.batches(sentences, batch_size)
    return [{"input_ids": ids, "attention_mask": mask.astype(np.int64)} for ids, mask in batches]


class _Graph:
    """Nodes and initializers with short unique names."""

    def __init__(self, helper, numpy_helper):
        self.h, self.nh = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def const(self, value, name: Optional[str] = None, dtype=np.float32) -> str:
        if name is None:
            self._n += 1
            name = f"const.{self._n}"
        self.inits.append(self.nh.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: Optional[str] = None, **attrs) -> str:
        if out is None:
            self._n += 1
            out = f"{op_type.lower()}.{self._n}"
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def bert_to_onnx(model):
    """The fp32 ONNX model of a :class:`~quantmoo.accuracy.bert.BertModel` (see the module notes).

    Parameters
    ----------
    model : BertModel
        A BERT encoder with ``gelu`` (erf form) or ``relu`` activations and mean pooling.

    Returns
    -------
    onnx.ModelProto
        Opset 17, IR version 8; save it with ``onnx.save`` (or use :func:`quantmoo.zoo.onnx_path`).

    Raises
    ------
    QuantmooError
        An activation other than ``gelu``/``relu`` or a pooling other than ``mean``.
    """
    onnx = require("onnx", "onnx", "the ONNX form of a BERT model")
    from onnx import TensorProto, helper, numpy_helper
    if model.act not in ("gelu", "relu"):
        raise QuantmooError(f"The ONNX form supports 'hidden_act' in {{gelu, relu}}; model '{model.name}' has "
                            f"{model.act!r}")
    if model.pooling != "mean":
        raise QuantmooError(f"The ONNX form supports pooling in {{mean}}; model '{model.name}' has "
                            f"{model.pooling!r}")
    H, nh = model.hidden, model.n_heads
    d = H // nh
    t = model.tensor
    g = _Graph(helper, numpy_helper)

    def weight(name):   # the checkpoint tensor under its own name
        return g.const(t(name), name)

    def linear(name, x):
        y = g.op("MatMul", [x, g.const(t(name + ".weight").T, name + ".weight")])
        return g.op("Add", [y, weight(name + ".bias")], name + ".out")

    def layer_norm(x, prefix, out=None):
        return g.op("LayerNormalization", [x, weight(prefix + ".weight"), weight(prefix + ".bias")], out,
                    axis=-1, epsilon=model.eps)

    # embeddings (word + position + token type 0), then LayerNorm, on the (batch*seq, H) token matrix
    shape = g.op("Shape", ["input_ids"])                                          # [B, T]
    seq = g.op("Slice", [shape, g.const([1], dtype=np.int64), g.const([2], dtype=np.int64)])
    flat = g.op("Reshape", ["input_ids", g.const([-1], dtype=np.int64)])
    words = g.op("Gather", [weight("embeddings.word_embeddings.weight"), flat])  # (B*T, H)
    bth = g.op("Concat", [shape, g.const([H], dtype=np.int64)], axis=0)
    zero = g.const([0], dtype=np.int64)
    pos = g.op("Slice", [weight("embeddings.position_embeddings.weight"), zero, seq, zero])
    typ = g.op("Slice", [weight("embeddings.token_type_embeddings.weight"), zero, g.const([1], dtype=np.int64),
                         zero])
    e = g.op("Add", [g.op("Add", [g.op("Reshape", [words, bth]), pos]), typ])
    rows = g.const([-1, H], dtype=np.int64)
    x = layer_norm(g.op("Reshape", [e, rows]), "embeddings.LayerNorm")

    # the padding mask: 0 on real tokens, float32.min on padding, (B, 1, 1, T)
    maskf = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = g.op("Mul", [g.op("Sub", [g.const(1.0), maskf]), g.const(np.finfo(np.float32).min)])
    neg = g.op("Unsqueeze", [neg, g.const([1, 2], dtype=np.int64)])
    bthd = g.op("Concat", [shape, g.const([nh, d], dtype=np.int64)], axis=0)
    scale = g.const(np.float32(1.0 / np.sqrt(d)))

    def heads(y, perm):   # (B*T, H) -> (B, nh, T, d) or, for keys, (B, nh, d, T)
        return g.op("Transpose", [g.op("Reshape", [y, bthd])], perm=perm)

    for i in range(model.n_layers):
        p = f"encoder.layer.{i}."
        q = heads(linear(p + "attention.self.query", x), [0, 2, 1, 3])
        k = heads(linear(p + "attention.self.key", x), [0, 2, 3, 1])
        v = heads(linear(p + "attention.self.value", x), [0, 2, 1, 3])
        s = g.op("Add", [g.op("MatMul", [g.op("Mul", [q, scale]), k]), neg])
        ctx = g.op("MatMul", [g.op("Softmax", [s], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), rows])
        a = g.op("Add", [linear(p + "attention.output.dense", ctx), x])
        x = layer_norm(a, p + "attention.output.LayerNorm")
        h = linear(p + "intermediate.dense", x)
        if model.act == "gelu":
            erf = g.op("Erf", [g.op("Mul", [h, g.const(np.float32(1.0 / np.sqrt(2.0)))])])
            h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.const(1.0)])]), g.const(0.5)])
        else:
            h = g.op("Relu", [h])
        o = g.op("Add", [linear(p + "output.dense", h), x])
        x = layer_norm(o, p + "output.LayerNorm", f"encoder.layer.{i}.hidden")

    # mean pooling over real tokens, then L2 normalisation
    m3 = g.op("Unsqueeze", [maskf, g.const([2], dtype=np.int64)])                # (B, T, 1)
    axis1 = g.const([1], dtype=np.int64)
    total = g.op("ReduceSum", [g.op("Mul", [g.op("Reshape", [x, bth]), m3]), axis1], keepdims=0)
    count = g.op("ReduceSum", [maskf, axis1], keepdims=1)
    emb = g.op("Div", [total, count])
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [emb, emb]), axis1], keepdims=1)])
    g.op("Div", [emb, g.op("Max", [norm, g.const(np.float32(1e-12))])], BERT_ONNX_OUTPUT)

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in BERT_ONNX_INPUTS]
    out = [helper.make_tensor_value_info(BERT_ONNX_OUTPUT, TensorProto.FLOAT, ["batch", H])]
    graph = helper.make_graph(g.nodes, model.name, ints, out, initializer=g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", BERT_ONNX_OPSET)], producer_name="quantmoo")
    m.ir_version = 8
    m.doc_string = (f"{model.name}: BERT sentence encoder ({model.n_layers} layers, hidden {H}, {nh} heads), mean "
                    "pooling and L2 normalisation; written by quantmoo from the checkpoint's weights")
    onnx.checker.check_model(m)
    return m


def minilm_to_onnx():
    """The bundled ``minilm-l6`` (all-MiniLM-L6-v2) as an ONNX model (see :func:`bert_to_onnx`)."""
    from .bert import load_minilm
    return bert_to_onnx(load_minilm().evaluator.model)
