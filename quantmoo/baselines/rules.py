"""llama.cpp-style rule presets for decoder LLMs (``Q4_K_M``, ``Q8_0``, ``Q4_0``).

llama.cpp's ``llama-quantize`` picks a GGML type per tensor from the file type (``ftype``)
with hand-written rules: ``llama_tensor_get_type`` / ``llama_tensor_get_type_impl`` in
``src/llama-quant.cpp`` of https://github.com/ggml-org/llama.cpp (formerly
``ggerganov/llama.cpp``; read at commit 007dbbf, the rules are the same in 059325d). What the
three presets here reproduce, for a dense (non-MoE, non-Falcon) model without an importance
matrix:

``Q4_K_M`` (default type ``Q4_K``)
    * the output matrix (``output.weight``, our ``lm_head``) -> ``Q6_K``; with tied embeddings
      the token embedding shares it (our single tied ``lm_head`` row);
    * the token embedding (untied) keeps the default ``Q4_K``;
    * ``attn_v`` -> ``Q6_K`` where ``use_more_bits(i, n)`` holds for the i-th of n attn_v
      tensors, else ``Q4_K``; ``use_more_bits(i, n) = i < n/8 or i >= 7n/8 or
      (i - n/8) % 3 == 2`` (integer division). For n = 32: blocks 0-3, 6, 9, ..., 27 and 28-31;
    * ``ffn_down`` -> ``Q6_K`` under the same ``use_more_bits`` rule on the block index;
    * a 70B Llama (80 blocks) bumps ``attn_v`` from ``Q4_K`` to ``Q5_K``;
    * fused ``attn_qkv`` (GPT-2's ``c_attn``) counts as attn_v-like in current llama.cpp
      (``category_is_attn_v``); older versions gave it ``Q5_K`` instead;
    * everything else (q, k, o, gate, up) -> ``Q4_K``.
``Q8_0``
    everything ``Q8_0`` (the output rule keeps ``Q8_0``).
``Q4_0``
    everything ``Q4_0`` except the output matrix, which llama.cpp's output rule raises to
    ``Q6_K`` for every file type whose default is not ``Q8_0``.

Not modelled: MoE rules (``n_expert == 8``), the GQA-dependent rules of other file types,
imatrix-only guards, and the fallback for row lengths not divisible by the block size.

Mapping to quantmoo's space: ``Q4_K`` = 4-bit asymmetric (scale + min per 32-element
sub-block), ``Q5_K`` = 5-bit asymmetric, ``Q6_K`` = 6-bit symmetric (16-element sub-blocks),
``Q8_0`` / ``Q4_0`` = 8 / 4-bit symmetric with one scale per 32 weights. Granularity is
``per_group`` (the space's group size, which may differ from GGML's 32/256 blocks) when
allowed, else ``per_channel``. A bit-width the space lacks maps to the nearest allowed one
(the higher on a tie); a scheme it lacks to the other of symmetric/asymmetric. These are
weight-only schemes: activations stay at 16 bits (fp16) if allowed, else the highest allowed.
Pinned genes keep their pins and tie groups are repaired as in the search.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import QuantmooError

#: GGML type -> (weight bits, weight scheme).
GGML_TYPES = {
    "Q4_0": (4, "symmetric"),
    "Q4_K": (4, "asymmetric"),
    "Q5_K": (5, "asymmetric"),
    "Q6_K": (6, "symmetric"),
    "Q8_0": (8, "symmetric"),
}
PRESETS = ("Q4_K_M", "Q8_0", "Q4_0")

_BLOCK = r"(?:^|\.)(?:layers|h)\.(\d+)\."
_ATTN_V = re.compile(_BLOCK + r"(?:self_attn\.v_proj|attn\.c_attn)$")        # v, or fused qkv (GPT-2)
_FFN_DOWN = re.compile(_BLOCK + r"mlp\.(?:down_proj|c_proj)$")
_BLOCK_ANY = re.compile(_BLOCK)


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's ``use_more_bits``: the first and last eighth, and every third in between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def is_decoder_llm(model) -> bool:
    """True for decoder LLMs with Llama- or GPT-2-style layer names."""
    if model.meta.get("family") not in (None, "decoder"):
        return False
    names = model.layer_names
    has_head = any(l.kind == "lm_head" or l.name.split(".")[-1] == "lm_head" for l in model.layers)
    return has_head and any(_ATTN_V.search(n) for n in names)


def preset_types(model, preset: str) -> dict:
    """GGML type llama.cpp would give each layer of ``model`` under ``preset``.

    Returns ``{layer_name: ggml_type}`` (empty for a model that is not a decoder LLM).
    """
    if preset not in PRESETS:
        raise QuantmooError(f"The 'preset' must be one of {{{', '.join(PRESETS)}}}; got {preset!r}")
    if not is_decoder_llm(model):
        return {}
    names = model.layer_names
    n_attn_v = sum(1 for n in names if _ATTN_V.search(n))
    blocks = {int(m.group(1)) for n in names if (m := _BLOCK_ANY.search(n))}
    n_blocks = max(blocks) + 1 if blocks else 0
    arch = model.meta.get("architecture") or {}
    is_70b = arch.get("naming", "llama") == "llama" and n_blocks == 80
    default = {"Q4_K_M": "Q4_K", "Q8_0": "Q8_0", "Q4_0": "Q4_0"}[preset]
    out, i_attn_v = {}, 0
    for layer in model.layers:
        name = layer.name
        t = default
        if layer.kind == "lm_head" or name.split(".")[-1] == "lm_head":
            t = "Q8_0" if default == "Q8_0" else "Q6_K"
        elif layer.kind == "embedding":
            t = default
        elif _ATTN_V.search(name):
            if preset == "Q4_K_M":
                t = "Q6_K" if use_more_bits(i_attn_v, n_attn_v) else "Q4_K"
                if is_70b and t == "Q4_K":
                    t = "Q5_K"
            i_attn_v += 1
        elif (m := _FFN_DOWN.search(name)) and preset == "Q4_K_M":
            if use_more_bits(int(m.group(1)), n_blocks):
                t = "Q6_K"
        out[name] = t
    return out


def _nearest(vals, v):
    vals = np.asarray(vals)
    d = np.abs(vals - v)
    return int(np.flatnonzero(d == d.min())[-1])     # higher value on a tie (values are sorted)


def _choice_for(problem, ggml_type: str, calib: int) -> np.ndarray:
    """(n_layers,) choice id per layer for one GGML type (activation scheme: lowest loss)."""
    enc, sp = problem.encoding, problem.space
    bits, scheme = GGML_TYPES[ggml_type]
    want = {"weight_bits": _nearest(sp.weight_bits, bits),
            "activation_bits": sp.activation_bits.index(16) if 16 in sp.activation_bits
            else len(sp.activation_bits) - 1}
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
    """llama.cpp-style presets as genomes of ``problem``'s space.

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


__all__ = ["GGML_TYPES", "PRESETS", "is_decoder_llm", "preset_types", "rule_presets", "use_more_bits"]
