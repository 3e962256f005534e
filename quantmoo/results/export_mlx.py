"""Export a config as MLX's per-layer ``quantization`` dict (the Hugging Face ``config.json`` key).

MLX (``mlx-lm``, ``mlx-vlm``) reads mixed precision from a model's ``config.json``::

    "quantization": {"group_size": 64, "bits": 4,
                     "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6},
                     "model.layers.0.self_attn.q_proj": false, ...}

Its loaders build ``nn.quantize(model, group_size, bits, class_predicate)`` where the predicate
returns ``quantization[path]`` when a module path is a key: a mapping overrides the defaults for
that module and ``false`` keeps it unquantized. ``mlx_lm.convert(hf_path, quantize=True,
q_bits=q["bits"], q_group_size=q["group_size"], quant_predicate=lambda path, module: q.get(path,
True))`` quantizes a Hugging Face checkpoint that way and writes ``q`` into its ``config.json``;
:func:`mlx_quantization` gives ``q`` (``mlx_lm`` also writes it as ``quantization_config``).

MLX's quantization is weight-only, per-group and affine (a scale and a bias per group; bits 2, 3,
4, 5, 6, 8; groups of 32, 64 or 128). What quantmoo searched is mapped as follows, and every
approximation is counted in :func:`mlx_notes`:

* 16-bit weights stay unquantized (``false``);
* per-group weights keep their group size when MLX has it (otherwise the nearest one it has);
  per-channel and per-tensor weights become groups of 128, MLX's coarsest;
* symmetric and power-of-two grids become MLX's affine grid (at least as accurate);
* activation bits are not represented (MLX computes in fp16/bf16).
"""
from __future__ import annotations

import json
import re
from collections import Counter

from ..errors import QuantmooError

__all__ = ["mlx_quantization", "mlx_notes", "mlx_module_path", "mlx_json"]

MLX_BITS = (2, 3, 4, 5, 6, 8)
MLX_GROUPS = (32, 64, 128)

_GGUF_TO_HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}
_BLK = re.compile(r"^blk\.(\d+)\.([a-z_]+)(?:\.weight)?$")
_HF = re.compile(r"^(?:model\.)?layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$")


def mlx_module_path(name: str) -> str:
    """MLX's module path of a llama-family layer (``model.layers.N.self_attn.q_proj``, ``lm_head``).

    Takes Hugging Face-style names (``layers.N.mlp.down_proj``, ``embed_tokens``, ``lm_head``) and GGUF
    names (``blk.N.ffn_down.weight``, ``token_embd.weight``, ``output.weight``).
    """
    base = name[:-len(".weight")] if name.endswith(".weight") else name
    if base in ("lm_head", "output"):
        return "lm_head"
    if base in ("embed_tokens", "model.embed_tokens", "token_embd"):
        return "model.embed_tokens"
    m = _BLK.match(name)
    if m and m.group(2) in _GGUF_TO_HF:
        return f"model.layers.{m.group(1)}.{_GGUF_TO_HF[m.group(2)]}"
    if _HF.match(base):
        return base if base.startswith("model.") else f"model.{base}"
    raise QuantmooError(f"The layer '{name}' has no MLX module path: the MLX export covers llama-family models "
                        f"(layers.N.self_attn.{{q,k,v,o}}_proj, layers.N.mlp.{{gate,up,down}}_proj, embed_tokens, "
                        f"lm_head, or their GGUF names)")


def _layer_entry(lq):
    """(MLX value, list of approximation notes) for one LayerQuant."""
    if getattr(lq, "weight_format", None) not in (None, "int"):
        raise QuantmooError(f"A llama.cpp type ({lq.weight_format}) has no MLX equivalent; export it with "
                            f"--format llama.cpp")
    if lq.weight_bits >= 16:
        return False, []
    notes = []
    if lq.granularity == "per_group":
        group = min(MLX_GROUPS, key=lambda g: (abs(g - lq.group_size), g))
        if group != lq.group_size:
            notes.append(f"group size {lq.group_size} -> {group}")
    else:
        group = MLX_GROUPS[-1]
        notes.append(f"{lq.granularity.replace('_', '-')} -> groups of {group}")
    if lq.weight_scheme != "asymmetric":
        notes.append(f"{lq.weight_scheme.replace('_', '-')} grid -> affine")
    return {"group_size": group, "bits": int(lq.weight_bits)}, notes


def mlx_quantization(config) -> dict:
    """The ``quantization`` mapping of ``config`` (a QuantConfig of a llama-family model).

    The most common per-layer entry becomes the default (``group_size``, ``bits``); every layer
    whose entry differs is listed under its module path.
    """
    entries = {mlx_module_path(n): _layer_entry(lq)[0] for n, lq in config.layers.items()}
    quantized = [(v["group_size"], v["bits"]) for v in entries.values() if v]
    group, bits = Counter(quantized).most_common(1)[0][0] if quantized else (64, 4)
    out = {"group_size": group, "bits": bits}
    for path, v in entries.items():
        if v is False or v != {"group_size": group, "bits": bits}:
            out[path] = v
    return out


def mlx_notes(config) -> dict:
    """How many layers each approximation of the mapping touches (see the module docstring)."""
    c = Counter(note for lq in config.layers.values() for note in _layer_entry(lq)[1])
    if any(lq.weight_bits < 16 and lq.activation_bits < 16 for lq in config.layers.values()):
        c["activation bits not represented (MLX is weight-only)"] = sum(
            lq.activation_bits < 16 for lq in config.layers.values())
    return dict(c)


def mlx_json(config) -> str:
    """JSON text holding ``quantization`` and its ``quantization_config`` twin, for ``config.json``."""
    q = mlx_quantization(config)
    return json.dumps({"quantization": q, "quantization_config": q}, indent=1) + "\n"
