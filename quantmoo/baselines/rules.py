"""llama.cpp's rule presets for decoder LLMs: ``Q8_0``, ``Q6_K``, ``Q5_K_M``, ``Q4_K_M``, ``Q4_0``, ``Q3_K_M``.

llama.cpp's ``llama-quantize`` picks a ggml type per tensor from the file type (``ftype``)
with hand-written rules: ``llama_tensor_get_type`` / ``llama_tensor_get_type_impl`` and
``tensor_type_fallback`` in ``src/llama-quant.cpp`` of https://github.com/ggml-org/llama.cpp
(read at commit 007dbbf). They work on GGUF tensor names (``blk.N.attn_v.weight`` ...); quantmoo's
Hugging Face-style layer names are mapped with :func:`gguf_name`. What is reproduced, for a dense
(non-MoE, non-Falcon) model without an importance matrix, with ``D`` the file type's default type
(Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, Q3_K):

* ``output.weight`` (and ``token_embd.weight`` when the embeddings are tied, as llama.cpp treats a
  model without ``output.weight``): ``Q8_0`` if its rows are not a multiple of ``D``'s block,
  else ``D`` if ``D`` is Q8_0, else ``Q6_K``;
* untied ``token_embd``: ``D``;
* ``attn_v`` (and fused ``attn_qkv``, which current llama.cpp counts as attn_v-like), the i-th of
  n: Q4_K_M/Q5_K_M -> ``Q6_K`` where ``use_more_bits(i, n)``; Q3_K_M -> ``Q5_K`` for i < 2, else
  ``Q4_K``; a 70B Llama (80 blocks) bumps Q3_K/Q4_K to ``Q5_K``;
* ``ffn_down`` of block i of n: Q4_K_M/Q5_K_M -> ``Q6_K`` where ``use_more_bits(i, n)``;
  Q3_K_M -> ``Q5_K`` for i < n/16, else ``Q4_K``;
* ``attn_output``: Q3_K_M -> ``Q4_K``;
* everything else (q, k, gate, up): ``D``;
* then the shape fallback (rows not a multiple of the block): Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
  Q5_K -> Q5_1, Q6_K -> Q8_0, F16 if not even a multiple of 32. :func:`preset_types` returns
  the types before this fallback (what llama-quantize is asked for); sizes and kernels apply it.

``use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2`` (integer division).

Bits per weight (:func:`preset_bpw`) follow llama.cpp's own report ("model size = ... MiB (... BPW)"):
every tensor's stored bytes (quantized matrices, plus the never-quantized norm vectors in F32, as
GGUF keeps them) times 8 over every parameter. That reproduces the published numbers: Llama-3-8B
Q4_K_M 4685.30 MiB = 4.894 bpw, Llama-2-7B Q4_K_M 4.844 bpw; every Q4_0 matrix is 4.5 bpw.

In a llama.cpp search space (:meth:`~quantmoo.SearchSpace.llama_cpp`) a preset is exactly those
types, with exact sizes and the real grids. In quantmoo's own integer space it is approximated:
``Q4_K`` = 4-bit asymmetric (scale + min), ``Q5_K`` = 5-bit asymmetric, ``Q6_K`` / ``Q3_K`` =
6 / 3-bit symmetric, ``Q8_0`` / ``Q4_0`` / ``Q5_0`` = 8 / 4 / 5-bit symmetric; granularity
``per_group`` at the space's group size (so its size differs from the real file: with groups of
128 it is 4-8% smaller), else ``per_channel``. A bit-width the space lacks maps to the nearest
allowed one (the higher on a tie); a scheme it lacks to the other of symmetric/asymmetric. These
are weight-only types: activations stay at 16 bits (fp16) if allowed, else the highest allowed.
Pinned genes keep their pins and tie groups are repaired as in the search.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import QuantmooError
from ..quant import ggml

#: ggml type -> (weight bits, weight scheme) in quantmoo's own integer space.
GGML_TYPES = {
    "Q3_K": (3, "symmetric"),
    "Q4_0": (4, "symmetric"),
    "Q4_K": (4, "asymmetric"),
    "Q5_0": (5, "symmetric"),
    "Q5_1": (5, "asymmetric"),
    "Q5_K": (5, "asymmetric"),
    "Q6_K": (6, "symmetric"),
    "Q8_0": (8, "symmetric"),
    "F16": (16, "symmetric"),
}
#: Presets, largest first; each maps to its default type.
PRESET_DEFAULT = {"Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q4_K_M": "Q4_K", "Q4_0": "Q4_0",
                  "Q3_K_M": "Q3_K"}
PRESETS = tuple(PRESET_DEFAULT)

_BLOCK = r"(?:^|\.)(?:layers|h|blk)\.(\d+)\."
_HF_TO_GGUF = (  # quantmoo (Hugging Face-style) layer name suffix -> GGUF tensor name suffix
    ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down"),
)
_HF_BLOCK = re.compile(r"^(?:model\.|transformer\.)?(?:layers|h)\.(\d+)\.(.+)$")
_GGUF_BLOCK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's ``use_more_bits``: the first and last eighth, and every third in between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def gguf_name(model, layer) -> str:
    """The GGUF tensor name of one of ``model``'s layers (a LayerSpec or its name).

    GGUF names pass through (``.weight`` is appended if missing). Hugging Face-style names map as
    ``layers.N.self_attn.q_proj`` -> ``blk.N.attn_q.weight`` (k, v, o -> attn_k, attn_v,
    attn_output; ``mlp.gate/up/down_proj`` -> ffn_gate/up/down; GPT-2's ``c_attn``, ``c_proj``,
    ``c_fc`` -> attn_qkv, attn_output / ffn_down, ffn_up), ``embed_tokens`` / ``wte`` ->
    ``token_embd.weight``, and ``lm_head`` -> ``output.weight``, or ``token_embd.weight`` when the
    model has no embedding layer of its own (tied embeddings: GGUF stores only ``token_embd``).

    Raises
    ------
    QuantmooError
        For a layer name that has no GGUF counterpart.
    """
    spec = layer if not isinstance(layer, str) else model.layers[model.index(layer)]
    name = spec.name
    if name.startswith("blk.") or name.split(".")[0] in ("token_embd", "output"):
        return name if name.endswith(".weight") else name + ".weight"
    last = name.split(".")[-1]
    if spec.kind == "lm_head" or last == "lm_head":
        tied = not any(l.kind == "embedding" for l in model.layers)
        return "token_embd.weight" if tied else "output.weight"
    if spec.kind == "embedding" and last in ("embed_tokens", "wte", "word_embeddings", "tok_embeddings"):
        return "token_embd.weight"
    m = _HF_BLOCK.match(name)
    if m:
        for hf, gg in _HF_TO_GGUF:
            if m.group(2) == hf:
                return f"blk.{m.group(1)}.{gg}.weight"
    raise QuantmooError(f"The layer '{name}' of model '{model.name}' has no GGUF tensor name; known are "
                        f"embed_tokens, lm_head and layers.N.{{self_attn.q/k/v/o_proj, mlp.gate/up/down_proj}}")


def is_decoder_llm(model) -> bool:
    """True for decoder LLMs whose layers all map to GGUF names and include attn_v (or fused qkv)."""
    if model.meta.get("family") not in (None, "decoder"):
        return False
    try:
        names = [gguf_name(model, l) for l in model.layers]
    except QuantmooError:
        return False
    return any(n in ("output.weight", "token_embd.weight") for n in names) and any(
        re.search(r"\.attn_(?:v|qkv)\.weight$", n) for n in names)


def _check_preset(preset):
    if preset not in PRESET_DEFAULT:
        raise QuantmooError(f"The 'preset' must be one of {{{', '.join(PRESETS)}}}; got {preset!r}")


def preset_types(model, preset: str) -> dict:
    """ggml type llama-quantize chooses for each layer of ``model`` under ``preset`` (before the shape fallback).

    Returns ``{layer_name: ggml_type}`` (empty for a model that is not a decoder LLM).
    """
    _check_preset(preset)
    if not is_decoder_llm(model):
        return {}
    default = PRESET_DEFAULT[preset]
    names = {l.name: gguf_name(model, l) for l in model.layers}
    tied = "output.weight" not in names.values()
    blocks = {int(m.group(1)) for g in names.values() if (m := _GGUF_BLOCK.match(g))}
    n_blocks = max(blocks) + 1 if blocks else 0
    arch = model.meta.get("architecture") or {}
    is_70b = arch.get("naming", "llama") == "llama" and n_blocks == 80
    n_attn_v = sum(1 for g in names.values() if re.search(r"\.attn_(?:v|qkv)\.weight$", g))
    n_down = sum(1 for g in names.values() if g.endswith(".ffn_down.weight"))
    out, i_attn_v, i_down = {}, 0, 0
    for layer in model.layers:
        g = names[layer.name]
        m = _GGUF_BLOCK.match(g)
        kind = m.group(2) if m else g[: -len(".weight")]
        t = default
        if kind == "output" or (kind == "token_embd" and tied):
            if layer.in_features % ggml.TYPES[default].block:
                t = "Q8_0"
            elif default != "Q8_0":
                t = "Q6_K"
        elif kind in ("attn_v", "attn_qkv"):
            if preset in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_attn_v, n_attn_v):
                t = "Q6_K"
            elif preset == "Q3_K_M":
                t = "Q5_K" if i_attn_v < 2 else "Q4_K"
            if is_70b and t in ("Q3_K", "Q4_K"):
                t = "Q5_K"
            i_attn_v += 1
        elif kind == "ffn_down":
            if preset in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_down, n_down):
                t = "Q6_K"
            elif preset == "Q3_K_M":
                t = "Q5_K" if i_down < n_down // 16 else "Q4_K"
            i_down += 1
        elif kind == "attn_output" and preset == "Q3_K_M":
            t = "Q4_K"
        out[layer.name] = t
    return out


def preset_bpw(model, preset: str, per_layer: bool = False):
    """Bits per weight of ``preset`` on ``model`` the way llama.cpp reports them.

    Stored bytes of every tensor (llama.cpp's shape fallback applied; norms and other
    never-quantized parameters in F32) times 8, over every parameter. With ``per_layer=True``
    returns ``{layer_name: (effective_type, bpw)}`` of the quantized matrices instead.
    """
    types = preset_types(model, preset)
    if not types:
        raise QuantmooError(f"Model '{model.name}' is not a decoder LLM with GGUF-mappable layers; "
                            f"the llama.cpp presets do not apply")
    total, layers = 0, {}
    for layer in model.layers:
        eff = ggml.effective_type(types[layer.name], layer.in_features)
        nbytes = int(ggml.type_bytes(eff.name, layer.n_params, layer.in_features))
        total += nbytes + 4 * getattr(layer, "extra_params", 0)        # biases stay F32 in GGUF
        layers[layer.name] = (eff.name, 8.0 * nbytes / max(layer.n_params, 1))
    if per_layer:
        return layers
    return 8.0 * (total + 4 * model.other_params) / model.n_params


def _nearest(vals, v):
    vals = np.asarray(vals)
    d = np.abs(vals - v)
    return int(np.flatnonzero(d == d.min())[-1])     # higher value on a tie (values are sorted)


def _choice_for(problem, ggml_type: str, calib: int) -> np.ndarray:
    """(n_layers,) choice id per layer for one ggml type (free attributes: lowest loss)."""
    enc, sp = problem.encoding, problem.space
    want = {"activation_bits": sp.activation_bits.index(16) if 16 in sp.activation_bits
            else len(sp.activation_bits) - 1}
    if sp.llama_cpp_types:
        fmts = sp.weight_formats
        want["weight_format"] = (fmts.index(ggml_type) if ggml_type in fmts else
                                 _nearest([ggml.TYPES[f].bpw for f in fmts], ggml.TYPES[ggml_type].bpw))
    else:
        bits, scheme = GGML_TYPES[ggml_type]
        want["weight_bits"] = _nearest(sp.weight_bits, bits)
        ws = sp.weight_schemes
        other = "asymmetric" if scheme == "symmetric" else "symmetric"
        want["weight_scheme"] = ws.index(scheme) if scheme in ws else (ws.index(other) if other in ws else 0)
        g = sp.granularities
        want["granularity"] = (g.index("per_group") if "per_group" in g
                               else g.index("per_channel") if "per_channel" in g else 0)
    match = np.ones(enc.n_choices, dtype=bool)
    for a, idx in want.items():
        match &= enc.choice_attr[a] == idx
    acc = problem.accuracy.separable(calib)
    # remaining free attribute (activation scheme): lowest loss, honouring pins where possible
    score = np.where(match[None, :], acc, np.inf) + np.where(problem.pin_mask(), 0.0, 1e300)
    return np.argmin(score, axis=1)


def rule_presets(problem, presets=PRESETS, calib: int = 0):
    """llama.cpp presets as genomes of ``problem``'s space.

    Parameters
    ----------
    problem : QuantizationProblem
    presets : sequence of str
        Any of ``PRESETS``.
    calib : int
        Calibration method index set in the genomes.

    Returns
    -------
    names : list of str
        ``"llama.cpp Q4_K_M"`` etc.; empty for models that are not decoder LLMs.
    X : ndarray (n, n_var)
    """
    from ..search.operators.repair import repair_genomes

    enc = problem.encoding
    model = problem.model
    for p in presets:
        _check_preset(p)
    if not is_decoder_llm(model):
        return [], np.zeros((0, enc.n_var), dtype=np.int64)
    cache, rows, names = {}, [], []
    for preset in presets:
        types = preset_types(model, preset)
        C = np.empty(enc.n_layers, dtype=np.int64)
        for l, name in enumerate(model.layer_names):
            t = types[name]
            if t not in cache:
                cache[t] = _choice_for(problem, t, calib)
            C[l] = cache[t][l]
        rows.append(C)
        names.append(f"llama.cpp {preset}")
    X = enc.genes_from_choices(np.array(rows), np.full(len(rows), calib))
    return names, repair_genomes(X, enc)


__all__ = ["GGML_TYPES", "PRESETS", "gguf_name", "is_decoder_llm", "preset_bpw", "preset_types", "rule_presets",
           "use_more_bits"]
