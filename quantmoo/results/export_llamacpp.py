"""Export a config as llama.cpp's ``llama-quantize --tensor-type-file``.

``llama-quantize`` (``tools/quantize/quantize.cpp`` of https://github.com/ggml-org/llama.cpp) reads
whitespace-separated ``tensor-name=type`` items from that file, exactly like repeated
``--tensor-type tensor-name=type`` arguments. The name is lower-cased and used as a regular
expression *searched* in each tensor's GGUF name, the first matching item wins; the type is a ggml
type name in any case. This module writes one line per quantized tensor with its full GGUF name
(``blk.3.attn_v.weight=q6_k``) and orders the lines so every tensor is matched by its own line
first: the only name that is a substring of others, ``output.weight`` (inside
``blk.N.attn_output.weight``), comes last.

Use it with an F16/F32 GGUF and a quantized base type, without ``--imatrix`` (quantmoo's kernels are
llama.cpp's reference quantizers, which is what runs without an importance matrix)::

    llama-quantize --tensor-type-file types.txt model-f16.gguf model-mixed.gguf Q8_0

The base type only has to be a quantized type (llama.cpp ignores per-tensor types otherwise); every
quantizable tensor is listed, so it decides nothing else.
"""
from __future__ import annotations

from collections import Counter

from ..errors import QuantmooError


def tensor_types(model, config) -> list:
    """``[(gguf_tensor_name, ggml_type_lowercase), ...]`` for every layer, in llama-quantize match order.

    Parameters
    ----------
    model : ModelSpec
        Its layer names are GGUF names, or Hugging Face-style names mapped by
        :func:`quantmoo.baselines.rules.gguf_name`.
    config : QuantConfig
        Every layer must use a llama.cpp type (a run searched with ``--space llama.cpp``).

    Raises
    ------
    QuantmooError
        If the config does not match the model, a layer uses quantmoo's own integer grid, or a
        layer has no GGUF name.
    """
    from ..baselines.rules import gguf_name
    config.check_model(model)
    rows = []
    for layer in model.layers:
        lq = config.layers[layer.name]
        if lq.weight_format == "int":
            raise QuantmooError(f"The layer '{layer.name}' uses quantmoo's own {lq.weight_bits}-bit grid, not a "
                                f"llama.cpp type; --format llama.cpp needs a config from a llama.cpp space "
                                f"(search with --space llama.cpp)")
        rows.append((gguf_name(model, layer), lq.weight_format.lower()))
    names = [n for n, _ in rows]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise QuantmooError(f"The layers of model '{model.name}' map to the same GGUF tensor {dup[0]!r}")
    # 'output.weight' is a substring of every 'blk.N.attn_output.weight': list it last
    return sorted(rows, key=lambda r: r[0] == "output.weight")


def tensor_type_file(model, config) -> str:
    """The text of the ``--tensor-type-file``: one ``name=type`` line per tensor."""
    return "".join(f"{n}={t}\n" for n, t in tensor_types(model, config))


def tensor_type_args(model, config) -> str:
    """The same as repeated ``--tensor-type name=type`` command-line arguments."""
    return " ".join(f"--tensor-type {n}={t}" for n, t in tensor_types(model, config))


def base_type(model, config) -> str:
    """A quantized base type for the llama-quantize command: the most common quantized type, else Q8_0."""
    counts = Counter(t for _, t in tensor_types(model, config) if t != "f16")
    return counts.most_common(1)[0][0].upper() if counts else "Q8_0"


__all__ = ["tensor_types", "tensor_type_file", "tensor_type_args", "base_type"]
