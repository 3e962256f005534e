"""Transformer architectures as layer tables, from arguments or from a Hugging Face ``config.json``.

One generic builder, :func:`transformer`, covers decoder LLMs (Llama, Mistral, Qwen2, GPT-2) and
BERT-style encoders. Rows are the weight matrices a quantizer touches, in execution order:
the token embedding, per block the attention projections and the feed-forward projections, then
the LM head (decoders) or the pooler (encoders with ``pooler=True``).

What is not a row
    Biases are the ``extra_params`` of their layer. Norm parameters (LayerNorm weight + bias,
    RMSNorm weight), learned position tables and token-type tables are never quantized and are
    counted in ``ModelSpec.other_params``; ``meta["other_params_breakdown"]`` splits that number.
    Attention score and value matmuls have no weights and are not rows either; their MACs are
    recorded in ``meta["attention_macs"]`` (all blocks) and ``meta["attention_macs_per_layer"]``,
    ``pairs * head_dim * n_heads * 2`` per block (:func:`attention_pairs`: every (query, key) pair
    of an encoder; the causal triangle of a decoder's prompt). For decoders the cost model adds them,
    with the KV-cache traffic, as one constant per model
    (:func:`quantmoo.hardware.cost.decoder_attention`); for encoders ``meta["graph_ops"]``
    (:func:`encoder_graph_ops`: attention matmuls, softmax, norms, GELU, residual adds) is charged as
    one constant per model (:func:`quantmoo.hardware.cost.graph_ops_cost`).

Tied embeddings (GPT-2, small Qwen2)
    The shared matrix is one tensor, so it is one row: ``lm_head`` (kind ``"lm_head"``, shape
    ``(vocab, hidden)``), placed last, with ``meta["tied"] = {"lm_head": <embedding name>}``.
    Its parameters are counted once and its MACs (``tokens * hidden * vocab``) are those of the
    output projection; the embedding lookup itself (no MACs) has no separate row, and quantizing
    ``lm_head`` quantizes the lookup table too.

Workloads
    Decoders process ``tokens`` tokens per pass: ``batch`` in ``mode="decode"`` (one new token per
    sequence, the default), ``batch * prefill_tokens`` in ``mode="prefill"``. Each attends to
    ``context`` keys: 1024 by default when decoding, ``prefill_tokens`` when prefilling (an empty
    KV cache; pass a larger ``context`` for a chunk that follows cached tokens). Linear MACs are
    ``tokens * in * out``; the LM head is applied to every processed token, as in a plain
    Hugging Face forward pass. Encoders process ``batch * seq_len`` tokens that attend to
    ``seq_len`` keys; the pooler sees only the first token of each sequence. Embedding rows have
    no MACs, ``act_in = tokens`` (the ids) and ``act_out = tokens * hidden``.

Tie groups are left unset: in the transformer recipes quantmoo targets (weight-only and W8A8
LLM quantization) the residual stream stays in floating point, so no two quantized outputs meet
in a quantized add.

Layer names follow the Hugging Face checkpoints of the family (``naming``):

============  ====================================  ======================================
naming        embedding / head                      one block ``i``
============  ====================================  ======================================
``llama``     ``embed_tokens``, ``lm_head``         ``layers.{i}.self_attn.{q,k,v,o}_proj``,
                                                    ``layers.{i}.mlp.{gate,up,down}_proj``
``gpt2``      ``wte``, ``lm_head``                  ``h.{i}.attn.c_attn`` (fused q, k, v),
                                                    ``h.{i}.attn.c_proj``, ``h.{i}.mlp.c_fc``,
                                                    ``h.{i}.mlp.c_proj``
``bert``      ``embeddings.word_embeddings``,       ``encoder.layer.{i}.attention.self.{query,
              ``pooler.dense``                      key,value}``, ``...attention.output.dense``,
                                                    ``...intermediate.dense``, ``...output.dense``
============  ====================================  ======================================

Weight shapes are always ``(out_features, in_features)`` (GPT-2 stores its Conv1D weights
transposed; the table does not).
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union

from ..errors import QuantmooError, brief
from ..io import load_json
from .spec import LayerSpec, ModelSpec

__all__ = ["transformer", "from_hf_config", "HF_MODEL_TYPES", "NAMINGS", "BIAS_ROLES",
           "DECODER_WORKLOAD_KEYS", "ENCODER_WORKLOAD_KEYS"]

NAMINGS = ("llama", "gpt2", "bert")
NORMS = ("rmsnorm", "layernorm")
MODES = ("decode", "prefill")
#: Projections that can carry a bias (``bias=`` accepts True/False or a subset of these).
BIAS_ROLES = ("q", "k", "v", "o", "gate", "up", "down")
#: Workload keywords accepted by decoders and encoders (also the override keys of the zoo).
DECODER_WORKLOAD_KEYS = ("batch", "mode", "context", "prefill_tokens")
ENCODER_WORKLOAD_KEYS = ("batch", "seq_len")
#: Hugging Face ``model_type`` values :func:`from_hf_config` understands.
HF_MODEL_TYPES = ("bert", "gpt2", "llama", "mistral", "qwen2")

_DEFAULT_CONTEXT = 1024
_DEFAULT_SEQ_LEN = 128

#: Upper bounds on architecture numbers, far above any published model (the deepest LLMs have
#: ~130 blocks, the widest vocabularies ~256k): a typo or a fuzzed ``num_hidden_layers: 1e9``
#: must be an error, not hours spent building a billion-row layer table.
MAX_BLOCKS = 1024
MAX_DIM = 2 ** 20
#: Workload numbers (batch, tokens, context); the layer table's own 2**53 bound catches products.
MAX_WORKLOAD = 2 ** 31

# Row names per naming style; "{i}" is the block index. A None qkv name means separate q/k/v rows.
_NAMES = {
    "llama": dict(embed="embed_tokens", block="layers.{i}", qkv=None, q="self_attn.q_proj",
                  k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj", gate="mlp.gate_proj",
                  up="mlp.up_proj", down="mlp.down_proj", lm_head="lm_head", pooler="pooler.dense"),
    "gpt2": dict(embed="wte", block="h.{i}", qkv="attn.c_attn", o="attn.c_proj", gate=None,
                 up="mlp.c_fc", down="mlp.c_proj", lm_head="lm_head", pooler="pooler.dense"),
    "bert": dict(embed="embeddings.word_embeddings", block="encoder.layer.{i}", qkv=None,
                 q="attention.self.query", k="attention.self.key", v="attention.self.value",
                 o="attention.output.dense", gate=None, up="intermediate.dense", down="output.dense",
                 lm_head="lm_head", pooler="pooler.dense"),
}


def _int(field: str, value: Any, owner: str, minimum: int = 1, maximum: int = MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise QuantmooError(f"The '{field}' of {owner} must be an integer >= {minimum}; got {brief(value)}")
    if value > maximum:
        raise QuantmooError(f"The '{field}' of {owner} must be an integer <= {maximum}; got {brief(value)}")
    return int(value)


def _bias_roles(bias: Union[bool, Iterable[str]], owner: str) -> frozenset:
    if isinstance(bias, bool):
        return frozenset(BIAS_ROLES) if bias else frozenset()
    if isinstance(bias, str) or not isinstance(bias, Iterable):
        raise QuantmooError(f"The 'bias' of {owner} must be True, False or a subset of "
                            f"{{{', '.join(BIAS_ROLES)}}}; got {bias!r}")
    roles = frozenset(bias)
    bad = sorted(map(str, roles - set(BIAS_ROLES)))
    if bad:
        raise QuantmooError(f"The 'bias' roles of {owner} must be in {{{', '.join(BIAS_ROLES)}}}; got {bad}")
    return roles



def attention_pairs(batch: int, new_tokens: int, keys: int) -> int:
    """(query, key) pairs a causal decoder computes: ``batch`` sequences of ``new_tokens`` new tokens
    after ``keys - new_tokens`` cached ones; new token ``i`` (0-based) sees ``keys - new_tokens + i + 1``
    keys. Decoding (one new token) sees all ``keys``; a prompt attending to itself, the triangle.

    >>> attention_pairs(1, 1, 100), attention_pairs(2, 8, 8), attention_pairs(1, 8, 100)
    (100, 72, 772)
    """
    return batch * (new_tokens * (keys - new_tokens) + new_tokens * (new_tokens + 1) // 2)



def encoder_graph_ops(batch: int, seq: int, n_layers: int, h: int, n_heads: int, head_dim: int, ffn: int,
                      act_bytes: int = 4) -> dict:
    """The non-layer work of a BERT-family encoder (the ``meta["graph_ops"]`` the cost model charges),
    per op type: nodes, activation bytes read + written (float32) and the MACs of the activation x
    activation matmuls. Per block: the score and value ``MatMul`` (``batch * seq * seq * head_dim *
    n_heads`` MACs each), the scale and the mask on the scores (``Mul``, ``Add``), ``Softmax``, the
    head split / merge (``Transpose`` of q, k, v and the context), two residual ``Add`` and two
    ``LayerNormalization``, the FFN's ``Gelu``; plus the embedding sum (two ``Add``) and its
    ``LayerNormalization``. An estimate of the graph's structure (the ops the NumPy forward pass and a
    BERT ONNX export both run), not a profile.

    One block, 2 tokens, 2 heads of 2: q, k, v are 2 x 2 x 2 float32 (32 B), the scores 2 x 2 x 2 (32 B);
    scores read q and k, write the scores (96 B), values read the scores and v, write the context (96 B);
    each does 2 x 2 x 2 x 2 = 16 MACs:

    >>> encoder_graph_ops(1, 2, 1, 4, 2, 2, 8)["MatMul"]
    {'nodes': 2, 'bytes': 192, 'macs': 32}
    """
    t = batch * seq
    x, sc, f, qkv = t * h * act_bytes, batch * n_heads * seq * seq * act_bytes, t * ffn * act_bytes, t * n_heads * head_dim * act_bytes
    macs = batch * seq * seq * head_dim * n_heads
    per_block = {"MatMul": (2, (2 * qkv + sc) + (sc + 2 * qkv), 2 * macs), "Mul": (1, 2 * sc, 0),
                 "Add": (3, 2 * sc + 2 * 3 * x, 0), "Softmax": (1, 2 * sc, 0), "Transpose": (4, 4 * 2 * qkv, 0),
                 "LayerNormalization": (2, 2 * 2 * x, 0), "Gelu": (1, 2 * f, 0)}
    ops = {k: {"nodes": n * n_layers, "bytes": b * n_layers, "macs": m * n_layers} for k, (n, b, m) in per_block.items()}
    ops["Add"]["nodes"] += 2            # word + position + token-type embeddings
    ops["Add"]["bytes"] += 2 * 3 * x
    ops["LayerNormalization"]["nodes"] += 1
    ops["LayerNormalization"]["bytes"] += 2 * x
    return dict(sorted(ops.items()))


def transformer(name: str, *, hidden_size: int, n_layers: int, n_heads: int, ffn_size: int,
                vocab_size: int, n_kv_heads: Optional[int] = None, head_dim: Optional[int] = None,
                gated_ffn: bool = True, tied_embeddings: bool = False, max_positions: int = 0,
                norm: str = "rmsnorm", bias: Union[bool, Iterable[str]] = False, encoder: bool = False,
                pooler: bool = False, type_vocab_size: int = 0, naming: str = "llama",
                batch: int = 1, mode: Optional[str] = None, context: Optional[int] = None,
                prefill_tokens: Optional[int] = None, seq_len: Optional[int] = None,
                meta: Optional[Mapping] = None) -> ModelSpec:
    """Layer table of a decoder LLM or a BERT-style encoder.

    Parameters
    ----------
    name : str
        Model name.
    hidden_size, n_layers, n_heads, ffn_size, vocab_size : int
        Width, number of blocks, query heads, feed-forward width, vocabulary size.
    n_kv_heads : int, optional
        Key/value heads (grouped-query attention): ``k`` and ``v`` have ``n_kv_heads * head_dim``
        outputs. Defaults to ``n_heads`` (multi-head attention); must divide ``n_heads``.
    head_dim : int, optional
        Per-head width; ``hidden_size // n_heads`` by default (which must then divide exactly).
    gated_ffn : bool, default True
        SwiGLU feed-forward (``gate``, ``up``, ``down``) instead of ``up``, ``down``.
    tied_embeddings : bool, default False
        The LM head shares the token-embedding matrix: one ``lm_head`` row (see module notes).
    max_positions : int, default 0
        Rows of a learned position table (counted in ``other_params``); 0 for RoPE models.
    norm : {"rmsnorm", "layernorm"}, default "rmsnorm"
        Norm type: RMSNorm has a weight, LayerNorm a weight and a bias, of ``hidden_size`` each.
        Blocks have two norms; decoders add a final norm, encoders an embedding norm.
    bias : bool or iterable of str, default False
        Which projections have biases: all (True), none (False), or a subset of
        ``{"q", "k", "v", "o", "gate", "up", "down"}`` (Qwen2: ``("q", "k", "v")``).
    encoder : bool, default False
        BERT-style encoder (bidirectional, no LM head) instead of a decoder.
    pooler : bool, default False
        Encoders only: a ``hidden x hidden`` pooler with bias on the first token.
    type_vocab_size : int, default 0
        Rows of a token-type table (BERT: 2), counted in ``other_params``.
    naming : {"llama", "gpt2", "bert"}, default "llama"
        Row-name style (see module notes); ``"gpt2"`` fuses q, k, v into one ``c_attn`` row.
    batch : int, default 1
        Sequences per pass.
    mode : {"decode", "prefill"}, optional
        Decoders: one new token per sequence (default ``"decode"``) or ``prefill_tokens``.
    context : int, optional
        Decoders: keys each token attends to; 1024 when decoding, ``prefill_tokens`` when
        prefilling. Must be at least ``prefill_tokens``.
    prefill_tokens : int, optional
        Decoders in ``mode="prefill"``: prompt tokens per sequence (default 1).
    seq_len : int, optional
        Encoders: tokens per sequence (default 128).
    meta : mapping, optional
        Extra provenance merged into ``ModelSpec.meta``.

    Returns
    -------
    ModelSpec
        ``workload`` is ``{"batch", "seq_len"}`` for encoders, ``{"batch", "mode", "context"}``
        when decoding and ``{"batch", "mode", "prefill_tokens", "context"}`` when prefilling.
    """
    owner = f"transformer '{name}'"
    if not isinstance(name, str) or not name:
        raise QuantmooError(f"The 'name' of a transformer must be a non-empty string; got {brief(name)}")
    h = _int("hidden_size", hidden_size, owner)
    L = _int("n_layers", n_layers, owner, maximum=MAX_BLOCKS)
    nh = _int("n_heads", n_heads, owner)
    ffn = _int("ffn_size", ffn_size, owner)
    vocab = _int("vocab_size", vocab_size, owner)
    nkv = nh if n_kv_heads is None else _int("n_kv_heads", n_kv_heads, owner)
    if nh % nkv:
        raise QuantmooError(f"The 'n_kv_heads' of {owner} must divide 'n_heads' ({nh}); got {nkv}")
    if head_dim is None:
        if h % nh:
            raise QuantmooError(f"The 'hidden_size' of {owner} must be divisible by 'n_heads' ({nh}) "
                                f"unless 'head_dim' is given; got {h}")
        hd = h // nh
    else:
        hd = _int("head_dim", head_dim, owner)
    max_positions = _int("max_positions", max_positions, owner, minimum=0)
    type_vocab_size = _int("type_vocab_size", type_vocab_size, owner, minimum=0)
    if norm not in NORMS:
        raise QuantmooError(f"The 'norm' of {owner} must be one of {{{', '.join(NORMS)}}}; got {norm!r}")
    if naming not in NAMINGS:
        raise QuantmooError(f"The 'naming' of {owner} must be one of {{{', '.join(NAMINGS)}}}; got {naming!r}")
    for flag, v in (("gated_ffn", gated_ffn), ("tied_embeddings", tied_embeddings), ("encoder", encoder),
                    ("pooler", pooler)):
        if not isinstance(v, bool):
            raise QuantmooError(f"The '{flag}' of {owner} must be True or False; got {v!r}")
    roles = _bias_roles(bias, owner)
    names = _NAMES[naming]
    if gated_ffn and names["gate"] is None:
        raise QuantmooError(f"The 'gated_ffn' of {owner} must be False with naming={naming!r} "
                            "(that family has no gate projection); use naming='llama'")
    if pooler and not encoder:
        raise QuantmooError(f"The 'pooler' of {owner} needs encoder=True (decoders have an LM head instead)")
    batch = _int("batch", batch, owner, maximum=MAX_WORKLOAD)

    # Workload: which keywords apply depends on the family, and a keyword of the other family is
    # a mistake worth reporting rather than silently ignoring.
    if encoder:
        for k, v in (("mode", mode), ("context", context), ("prefill_tokens", prefill_tokens)):
            if v is not None:
                raise QuantmooError(f"The '{k}' option applies to decoders only; {owner} is an encoder "
                                    f"(its workload options are {{{', '.join(ENCODER_WORKLOAD_KEYS)}}})")
        seq = _DEFAULT_SEQ_LEN if seq_len is None else _int("seq_len", seq_len, owner, maximum=MAX_WORKLOAD)
        tokens, keys = batch * seq, seq
        workload = {"batch": batch, "seq_len": seq}
    else:
        if seq_len is not None:
            raise QuantmooError(f"The 'seq_len' option applies to encoders only; {owner} is a decoder "
                                f"(its workload options are {{{', '.join(DECODER_WORKLOAD_KEYS)}}})")
        mode = "decode" if mode is None else mode
        if mode not in MODES:
            raise QuantmooError(f"The 'mode' of {owner} must be one of {{{', '.join(MODES)}}}; got {brief(mode)}")
        if mode == "decode":
            if prefill_tokens is not None:
                raise QuantmooError(f"The 'prefill_tokens' option of {owner} needs mode='prefill'; got mode='decode'")
            keys = _DEFAULT_CONTEXT if context is None else _int("context", context, owner, maximum=MAX_WORKLOAD)
            tokens = batch
            workload = {"batch": batch, "mode": mode, "context": keys}
        else:
            per_seq = 1 if prefill_tokens is None else _int("prefill_tokens", prefill_tokens, owner,
                                                            maximum=MAX_WORKLOAD)
            keys = per_seq if context is None else _int("context", context, owner, maximum=MAX_WORKLOAD)
            if keys < per_seq:
                raise QuantmooError(f"The 'context' of {owner} must be >= 'prefill_tokens' ({per_seq}) in "
                                    f"prefill mode (the prompt attends to itself); got {keys}")
            tokens = batch * per_seq
            workload = {"batch": batch, "mode": mode, "prefill_tokens": per_seq, "context": keys}

    layers: List[LayerSpec] = []

    def linear(row: str, n_in: int, n_out: int, has_bias: bool, block: Optional[int], n_tok: int = tokens,
               kind: str = "linear") -> None:
        layers.append(LayerSpec(name=row, kind=kind, weight_shape=(n_out, n_in), macs=n_tok * n_in * n_out,
                                act_in=n_tok * n_in, act_out=n_tok * n_out,
                                extra_params=n_out if has_bias else 0, block=block))

    if not tied_embeddings or encoder:
        layers.append(LayerSpec(name=names["embed"], kind="embedding", weight_shape=(vocab, h), macs=0,
                                act_in=tokens, act_out=tokens * h))
    q_out, kv_out = nh * hd, nkv * hd
    for i in range(L):
        p = names["block"].format(i=i) + "."
        if names["qkv"] is not None:
            linear(p + names["qkv"], h, q_out + 2 * kv_out, bool(roles & {"q", "k", "v"}), i)
        else:
            linear(p + names["q"], h, q_out, "q" in roles, i)
            linear(p + names["k"], h, kv_out, "k" in roles, i)
            linear(p + names["v"], h, kv_out, "v" in roles, i)
        linear(p + names["o"], q_out, h, "o" in roles, i)
        if gated_ffn:
            linear(p + names["gate"], h, ffn, "gate" in roles, i)
        linear(p + names["up"], h, ffn, "up" in roles, i)
        linear(p + names["down"], ffn, h, "down" in roles, i)
    if encoder:
        if pooler:  # BERT's pooler always has a bias and reads the first token of each sequence
            linear(names["pooler"], h, h, True, None, n_tok=batch)
    else:
        linear(names["lm_head"], h, vocab, False, None, kind="lm_head")

    per_norm = h if norm == "rmsnorm" else 2 * h
    n_norms = 2 * L + 1  # two per block, plus the final norm (decoders) or embedding norm (encoders)
    breakdown = {"norms": n_norms * per_norm, "position_embeddings": max_positions * h,
                 "token_type_embeddings": type_vocab_size * h}
    # scores (q.k) and weighted values, per query head, over the (query, key) pairs that attend
    attn_per_layer = (tokens * keys if encoder else attention_pairs(batch, tokens // batch, keys)) * hd * nh * 2
    info = {
        "family": "encoder" if encoder else "decoder",
        "architecture": {
            "hidden_size": h, "n_layers": L, "n_heads": nh, "n_kv_heads": nkv, "head_dim": hd,
            "ffn_size": ffn, "vocab_size": vocab, "gated_ffn": gated_ffn, "tied_embeddings": tied_embeddings,
            "max_positions": max_positions, "norm": norm, "bias": sorted(roles), "encoder": encoder,
            "pooler": pooler, "type_vocab_size": type_vocab_size, "naming": naming},
        "tokens": tokens,
        "attention_macs_per_layer": attn_per_layer,
        "attention_macs": attn_per_layer * L,
        "other_params_breakdown": breakdown,
    }
    if encoder:
        info["graph_ops"] = encoder_graph_ops(batch, keys, L, h, nh, hd, ffn)
    if not encoder:
        # K and V of every block for every cached position: what a KV cache holds (elements).
        info["kv_cache_elements"] = 2 * L * batch * keys * kv_out
    if tied_embeddings and not encoder:
        info["tied"] = {names["lm_head"]: names["embed"]}
    if meta:
        info.update(dict(meta))
    return ModelSpec(name=name, layers=layers, workload=workload, other_params=sum(breakdown.values()),
                     meta=info)


# -- Hugging Face config.json ----------------------------------------------------------------

def _read_hf_config(path_or_dict) -> tuple:
    """Return ``(config dict, source label, default name)``."""
    if isinstance(path_or_dict, Mapping):
        cfg = dict(path_or_dict)
        src, default = "config.json", None
    elif isinstance(path_or_dict, (str, os.PathLike)):
        path = Path(path_or_dict)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise QuantmooError(f"{path}: the directory has no config.json")
            path = path / "config.json"
        cfg = load_json(path)
        src = str(path)
        # A checkpoint directory's name is the best default name ("Llama-2-7b-hf").
        default = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
        if not isinstance(cfg, Mapping):
            raise QuantmooError(f"{src}: must be a JSON object; got {type(cfg).__name__}")
    else:
        raise QuantmooError(f"Expected a path to a config.json, its directory, or a dict; "
                            f"got {type(path_or_dict).__name__}")
    name = cfg.get("_name_or_path")
    if isinstance(name, str) and name.strip("/"):
        default = name.rstrip("/").split("/")[-1]
    return cfg, src, default or str(cfg.get("model_type") or "model")


_LLAMA_FIELDS = {"n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
                 "n_kv_heads": "num_key_value_heads", "ffn_size": "intermediate_size"}
#: transformer() argument -> the config.json field it comes from, per model_type (for messages).
_HF_FIELDS = {
    "llama": _LLAMA_FIELDS, "mistral": _LLAMA_FIELDS, "qwen2": _LLAMA_FIELDS,
    "gpt2": {"hidden_size": "n_embd", "n_layers": "n_layer", "n_heads": "n_head", "ffn_size": "n_inner",
             "max_positions": "n_positions"},
    "bert": {"n_layers": "num_hidden_layers", "n_heads": "num_attention_heads", "ffn_size": "intermediate_size",
             "max_positions": "max_position_embeddings"},
}


def from_hf_config(path_or_dict, **overrides) -> ModelSpec:
    """Build a layer table from a Hugging Face ``config.json``.

    Parameters
    ----------
    path_or_dict : str, path or mapping
        The ``config.json`` file, the checkpoint directory holding it, or its parsed content.
    **overrides
        Workload options (decoders: ``batch``, ``mode``, ``context``, ``prefill_tokens``;
        encoders: ``batch``, ``seq_len``) and ``name``.

    Returns
    -------
    ModelSpec
        ``meta["source"]`` names the file; ``meta["hf_model_type"]`` the model type.

    Notes
    -----
    Supported ``model_type`` values and the fields read:

    - ``llama``, ``mistral``, ``qwen2``: ``hidden_size``, ``num_hidden_layers``,
      ``num_attention_heads``, ``intermediate_size``, ``vocab_size``; optional
      ``num_key_value_heads`` (default: ``num_attention_heads``, as in transformers),
      ``head_dim``, ``tie_word_embeddings`` (default False). Llama also reads ``attention_bias``
      and ``mlp_bias``; Qwen2 always has q/k/v biases. RMSNorm, SwiGLU, RoPE.
    - ``gpt2``: ``n_embd``, ``n_layer``, ``n_head``, ``n_positions``, ``vocab_size``; optional
      ``n_inner`` (default ``4 * n_embd``), ``tie_word_embeddings`` (default True).
    - ``bert``: ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
      ``intermediate_size``, ``vocab_size``, ``max_position_embeddings``, ``type_vocab_size``;
      the pooler of ``BertModel`` is included.
    """
    cfg, src, default_name = _read_hf_config(path_or_dict)
    if "model_type" not in cfg:
        raise QuantmooError(f"{src}: missing field 'model_type'")
    model_type = cfg["model_type"]
    if model_type not in HF_MODEL_TYPES:
        raise QuantmooError(f"{src}: unsupported model_type {brief(model_type)}; supported model types are "
                            f"{{{', '.join(HF_MODEL_TYPES)}}}")

    def req(field: str) -> int:
        if field not in cfg or cfg[field] is None:
            raise QuantmooError(f"{src}: missing field '{field}'")
        return opt_int(field, cfg[field])

    def opt_int(field: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise QuantmooError(f"{src}: field '{field}' must be an integer >= 1; got {brief(v)}")
        top = MAX_BLOCKS if field in ("num_hidden_layers", "n_layer") else MAX_DIM
        if v > top:
            raise QuantmooError(f"{src}: field '{field}' must be an integer <= {top}; got {brief(v)}")
        return v

    def opt(field: str, default: Any, kind: type = int) -> Any:
        v = cfg.get(field)
        if v is None:
            return default
        if kind is bool:
            if not isinstance(v, bool):
                raise QuantmooError(f"{src}: field '{field}' must be true or false; got {brief(v)}")
            return v
        return opt_int(field, v)

    encoder = model_type == "bert"
    allowed = ("name",) + (ENCODER_WORKLOAD_KEYS if encoder else DECODER_WORKLOAD_KEYS)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise QuantmooError(f"Unknown override(s) {unknown} for {src} ({model_type}); "
                            f"allowed overrides are {{{', '.join(allowed)}}}")
    name = overrides.pop("name", default_name)

    if model_type in ("llama", "mistral", "qwen2"):
        n_heads = req("num_attention_heads")
        bias: Any = ()
        if model_type == "qwen2":
            bias = ("q", "k", "v")
        elif model_type == "llama":
            bias = (("q", "k", "v", "o") if opt("attention_bias", False, bool) else ()) + \
                   (("gate", "up", "down") if opt("mlp_bias", False, bool) else ())
        arch = dict(hidden_size=req("hidden_size"), n_layers=req("num_hidden_layers"), n_heads=n_heads,
                    n_kv_heads=opt("num_key_value_heads", n_heads), head_dim=opt("head_dim", None),
                    ffn_size=req("intermediate_size"), vocab_size=req("vocab_size"),
                    tied_embeddings=opt("tie_word_embeddings", False, bool), bias=bias,
                    gated_ffn=True, norm="rmsnorm", naming="llama")
    elif model_type == "gpt2":
        n_embd = req("n_embd")
        arch = dict(hidden_size=n_embd, n_layers=req("n_layer"), n_heads=req("n_head"),
                    ffn_size=opt("n_inner", 4 * n_embd), vocab_size=req("vocab_size"),
                    max_positions=req("n_positions"), tied_embeddings=opt("tie_word_embeddings", True, bool),
                    bias=True, gated_ffn=False, norm="layernorm", naming="gpt2")
    else:  # bert
        arch = dict(hidden_size=req("hidden_size"), n_layers=req("num_hidden_layers"),
                    n_heads=req("num_attention_heads"), ffn_size=req("intermediate_size"),
                    vocab_size=req("vocab_size"), max_positions=req("max_position_embeddings"),
                    type_vocab_size=req("type_vocab_size"), bias=True, gated_ffn=False, norm="layernorm",
                    encoder=True, pooler=True, naming="bert")
    source = src if src != "config.json" else "config dict"
    try:
        return transformer(name, **arch, **overrides, meta={"source": source, "hf_model_type": model_type})
    except QuantmooError as e:
        # name the config.json fields, not the builder's arguments they were passed as
        msg = str(e)
        for arg, hf_field in _HF_FIELDS[model_type].items():
            msg = msg.replace(f"'{arg}'", f"'{hf_field}'")
        raise QuantmooError(f"{src}: {msg}") from None
