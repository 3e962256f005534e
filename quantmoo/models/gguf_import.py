"""Import a llama-family GGUF file: layer table, lazily dequantized weights, hyper-parameters, tokenizer.

:class:`GGUFModel` describes one ``.gguf`` file (the format llama.cpp reads) through the ``gguf``
package (pure Python + NumPy; ``pip install 'quantmoo[llm]'``). Nothing here runs the model:
the NumPy forward pass and the evaluator are :mod:`quantmoo.runtime.llama`, which is what
``quantmoo.zoo.load("model.gguf")`` returns a ModelSpec from.

Architectures
    ``general.architecture`` must be ``llama`` or ``qwen2`` (:data:`ARCHITECTURES`). Llama 1-3,
    Mistral 7B, SmolLM/SmolLM2 and TinyLlama are all written as ``llama`` by llama.cpp's
    converter; ``qwen2`` adds biases to q, k and v and rotates q/k halves (NeoX RoPE) instead of
    adjacent pairs. Anything else is one QuantmooError naming the architecture.

Layer table
    One row per quantizable matrix, named by its GGUF tensor name: ``token_embd.weight``, per
    block ``blk.{i}.attn_{q,k,v,output}.weight`` and ``blk.{i}.ffn_{gate,up,down}.weight``, and
    ``output.weight``. Without ``output.weight`` the embedding is tied: ``token_embd.weight`` is
    then one row of kind ``lm_head`` placed last (quantizing it quantizes the lookup table too),
    as in :mod:`quantmoo.models.transformer`, whose builder counts MACs and activations for the
    workload (``batch``, ``mode``, ``context``, ``prefill_tokens``). Norm weights and the
    optional ``rope_freqs.weight`` are ``other_params``; qwen2's q/k/v biases are the rows'
    ``extra_params``. The spec's ``n_params`` equals the element count of the file's tensors.

Weights
    ``ModelSpec.weights(name)`` dequantizes one tensor with ``gguf.quants.dequantize`` when asked
    (the file is memory-mapped; nothing is dequantized up front), as float32 of shape
    ``(out_features, in_features)``. These dequantized values *are* the model's reference
    weights: for a file that is already quantized (SmolLM2's Q4_1), "fp32" means the dequantized
    file in float32, not the original training checkpoint.

Q/K layout
    llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` of ``llama`` models so that
    RoPE rotates *adjacent* pairs ``(2i, 2i+1)`` of each head (ggml's "normal" RoPE) where
    Hugging Face rotates ``(i, i + head_dim/2)``. The weights are kept as stored; the runtime
    uses the matching rotation (:attr:`GGUFModel.rope_style`).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import QuantmooError, require
from .spec import ModelSpec
from .transformer import DECODER_WORKLOAD_KEYS, transformer

__all__ = ["GGUFModel", "from_gguf", "ARCHITECTURES", "GGUF_OVERRIDES", "TOKENIZER_PRE"]

#: ``general.architecture`` values read, and their RoPE pairing.
ARCHITECTURES = {"llama": "adjacent", "qwen2": "half"}
#: Overrides :func:`from_gguf` (and ``zoo.load`` for a ``.gguf`` path) accept.
GGUF_OVERRIDES = DECODER_WORKLOAD_KEYS + ("name",)

# Pre-tokenizer split patterns by ``tokenizer.ggml.pre`` (llama.cpp's names). None: GPT-2's
# byte-level regex. Digits: split every digit apart first (SmolLM, StarCoder).
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TOKENIZER_PRE = {"default": None, "gpt2": None, "smollm": "digits", "starcoder": "digits",
                 "llama-bpe": _LLAMA3, "llama3": _LLAMA3, "qwen2": _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")}

_BLOCK_ROWS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down"}
_TOKEN_CONTROL, _TOKEN_USER_DEFINED = 3, 4


def _gguf():
    return require("gguf", "llm", "reading GGUF files")


class GGUFModel:
    """One llama-family GGUF file: metadata, tensors (lazy), layer table and tokenizer.

    Parameters
    ----------
    path : str or path
        The ``.gguf`` file.
    name : str, optional
        Model name (default: the file name without ``.gguf``).

    Attributes
    ----------
    architecture : str
        ``general.architecture``.
    n_layers, hidden, n_heads, n_kv_heads, head_dim, ffn, vocab_size, context_length : int
    rope_base : float
        ``{arch}.rope.freq_base`` (10000 when absent, llama.cpp's default).
    rope_style : {"adjacent", "half"}
        Which elements of a head RoPE rotates together (see the module notes).
    eps : float
        ``{arch}.attention.layer_norm_rms_epsilon``.
    tied : bool
        True when the file has no ``output.weight`` (the LM head is ``token_embd.weight``).

    Raises
    ------
    QuantmooError
        A missing, truncated or non-GGUF file, an unsupported architecture or RoPE scaling, a
        missing metadata key or tensor, a tensor of the wrong shape.
    """

    def __init__(self, path, *, name: Optional[str] = None):
        gguf = _gguf()
        self.path = Path(path)
        if not self.path.is_file():
            raise QuantmooError(f"GGUF file not found: {self.path}")
        stem = self.path.name[:-5] if self.path.name.lower().endswith(".gguf") else self.path.name
        self.name = name or stem
        try:
            self._reader = gguf.GGUFReader(str(self.path))
        except Exception as e:  # gguf raises ValueError/KeyError/IndexError on damaged headers
            raise QuantmooError(f"{self.path}: cannot be read as a GGUF file, it is truncated or corrupt "
                                f"({type(e).__name__}: {e})") from None
        size = self.path.stat().st_size
        self._tensors = {t.name: t for t in self._reader.tensors}
        for t in self._reader.tensors:
            if int(t.data_offset) + int(t.n_bytes) > size:
                raise QuantmooError(f"{self.path}: the file is truncated: tensor '{t.name}' ends at byte "
                                    f"{int(t.data_offset) + int(t.n_bytes):,} but the file has {size:,} bytes")
        arch = self.meta("general.architecture")
        if arch not in ARCHITECTURES:
            raise QuantmooError(f"{self.path}: GGUF architecture {arch!r} is not supported; supported "
                                f"architectures are {{{', '.join(ARCHITECTURES)}}} (Llama, Mistral, SmolLM and "
                                "TinyLlama files are written as 'llama')")
        self.architecture = arch
        self.rope_style = ARCHITECTURES[arch]
        m = lambda key, default=None: self.meta(f"{arch}.{key}", default)  # noqa: E731
        self.n_layers = int(m("block_count"))
        self.hidden = int(m("embedding_length"))
        self.ffn = int(m("feed_forward_length"))
        self.n_heads = int(m("attention.head_count"))
        self.n_kv_heads = int(m("attention.head_count_kv", self.n_heads))
        self.head_dim = int(m("attention.key_length", self.hidden // max(self.n_heads, 1)))
        self.context_length = int(m("context_length", 2048))
        self.rope_base = float(m("rope.freq_base", 10000.0))
        self.eps = float(m("attention.layer_norm_rms_epsilon", 1e-5))
        rope_dims = int(m("rope.dimension_count", self.head_dim))
        if rope_dims != self.head_dim:
            raise QuantmooError(f"{self.path}: partial RoPE is not supported ('{arch}.rope.dimension_count' "
                                f"is {rope_dims}, the head size {self.head_dim})")
        scaling = m("rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise QuantmooError(f"{self.path}: '{arch}.rope.scaling.type' must be one of {{'none', 'linear'}}; "
                                f"got {scaling!r}")
        self.rope_scale = float(m("rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0
        if self.n_heads % self.n_kv_heads:
            raise QuantmooError(f"{self.path}: '{arch}.attention.head_count_kv' ({self.n_kv_heads}) must divide "
                                f"'{arch}.attention.head_count' ({self.n_heads})")
        self.tied = "output.weight" not in self._tensors
        self.vocab_size = int(self._shape("token_embd.weight")[0])
        self._check_tensors()

    # -- metadata -----------------------------------------------------------------------------
    def meta(self, key: str, default=None):
        """A metadata value (``field.contents()``); ``default`` if absent, else a QuantmooError if None."""
        f = self._reader.fields.get(key)
        if f is None:
            if default is None:
                raise QuantmooError(f"{self.path}: missing GGUF metadata key '{key}'")
            return default
        return f.contents()

    def _shape(self, name: str) -> tuple:
        """NumPy shape (outer dimension first) of a tensor, which must exist."""
        t = self._tensors.get(name)
        if t is None:
            raise QuantmooError(f"{self.path}: missing tensor '{name}' (a {self.architecture} model with "
                                f"{self.n_layers} blocks needs it)")
        return tuple(int(d) for d in reversed(t.shape.tolist()))

    def expected_tensors(self) -> Dict[str, tuple]:
        """Every tensor the architecture needs, with its NumPy shape."""
        H, F, q, kv = self.hidden, self.ffn, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        exp = {"token_embd.weight": (self.vocab_size, H), "output_norm.weight": (H,)}
        if not self.tied:
            exp["output.weight"] = (self.vocab_size, H)
        for i in range(self.n_layers):
            p = f"blk.{i}."
            exp.update({p + "attn_norm.weight": (H,), p + "ffn_norm.weight": (H,),
                        p + "attn_q.weight": (q, H), p + "attn_k.weight": (kv, H), p + "attn_v.weight": (kv, H),
                        p + "attn_output.weight": (H, q), p + "ffn_gate.weight": (F, H),
                        p + "ffn_up.weight": (F, H), p + "ffn_down.weight": (H, F)})
            if self.architecture == "qwen2":
                exp.update({p + "attn_q.bias": (q,), p + "attn_k.bias": (kv,), p + "attn_v.bias": (kv,)})
        if "rope_freqs.weight" in self._tensors:  # Llama 3.1+ per-frequency RoPE factors
            exp["rope_freqs.weight"] = (self.head_dim // 2,)
        return exp

    def _check_tensors(self) -> None:
        exp = self.expected_tensors()
        for name, shape in exp.items():
            got = self._shape(name)
            if got != shape:
                raise QuantmooError(f"{self.path}: tensor '{name}' has shape {got}; the metadata implies {shape}")
        self.unused_tensors = sorted(set(self._tensors) - set(exp))

    # -- tensors ------------------------------------------------------------------------------
    @property
    def tensor_names(self) -> List[str]:
        """Every tensor name in the file, in file order."""
        return list(self._tensors)

    def tensor_type(self, name: str) -> str:
        """The ggml type a tensor is stored in (``"Q4_1"``, ``"F32"``, ...)."""
        self._shape(name)
        return self._tensors[name].tensor_type.name

    def tensor(self, name: str) -> np.ndarray:
        """One tensor dequantized to float32, NumPy shape (e.g. ``(out, in)``); read on each call.

        Raises a QuantmooError for a missing tensor or one holding NaN or infinity.
        """
        shape = self._shape(name)
        t = self._tensors[name]
        try:
            a = _gguf().quants.dequantize(np.asarray(t.data), t.tensor_type)
        except NotImplementedError:
            raise QuantmooError(f"{self.path}: tensor '{name}' has ggml type {t.tensor_type.name}, which the "
                                "installed gguf package cannot dequantize") from None
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(shape)
        bad = a.size - int(np.count_nonzero(np.isfinite(a)))
        if bad:
            raise QuantmooError(f"{self.path}: tensor '{name}' contains {bad} NaN/inf value(s)")
        return a

    @property
    def n_params(self) -> int:
        """Elements of the tensors the model uses."""
        return int(sum(math.prod(s) for s in self.expected_tensors().values()))

    # -- layer table --------------------------------------------------------------------------
    def row_name(self, hf_name: str) -> str:
        """GGUF tensor name of a row of :func:`quantmoo.models.transformer.transformer` (llama naming)."""
        if hf_name == "embed_tokens":
            return "token_embd.weight"
        if hf_name == "lm_head":
            return "token_embd.weight" if self.tied else "output.weight"
        _, i, rest = hf_name.split(".", 2)
        return f"blk.{i}.{_BLOCK_ROWS[rest]}.weight"

    def spec(self, *, batch: int = 1, mode: Optional[str] = None, context: Optional[int] = None,
             prefill_tokens: Optional[int] = None, name: Optional[str] = None) -> ModelSpec:
        """The layer table (GGUF tensor names) with the lazy weights provider; no evaluator."""
        nm = name or self.name
        base = transformer(nm, hidden_size=self.hidden, n_layers=self.n_layers, n_heads=self.n_heads,
                           n_kv_heads=self.n_kv_heads, head_dim=self.head_dim, ffn_size=self.ffn,
                           vocab_size=self.vocab_size, tied_embeddings=self.tied,
                           bias=("q", "k", "v") if self.architecture == "qwen2" else False,
                           batch=batch, mode=mode, context=context, prefill_tokens=prefill_tokens)
        layers = [dataclasses.replace(l, name=self.row_name(l.name)) for l in base.layers]
        meta = dict(base.meta)
        meta.pop("tied", None)
        meta.update({"source": str(self.path), "format": "gguf", "gguf_architecture": self.architecture,
                     "rope_freq_base": self.rope_base, "rope_style": self.rope_style,
                     "rms_norm_eps": self.eps, "context_length": self.context_length,
                     "gguf_tensor_types": {l.name: self.tensor_type(l.name) for l in layers},
                     "reference": "the GGUF file's tensors dequantized to float32"})
        if not self.tied:
            meta["tied"] = {}
        other = self.n_params - sum(l.n_params + l.extra_params for l in layers)
        return ModelSpec(name=nm, layers=layers, workload=base.workload, other_params=other,
                         weights=self.tensor, meta=meta)

    # -- tokenizer ----------------------------------------------------------------------------
    def tokenizer(self):
        """A ``tokenizers.Tokenizer`` built from the file's own vocabulary and merges.

        Byte-level BPE (``tokenizer.ggml.model == "gpt2"``) with the pre-tokenizer named by
        ``tokenizer.ggml.pre`` (:data:`TOKENIZER_PRE`); control and user-defined tokens are
        special (never split, skipped when decoding). No BOS is added: callers add
        :attr:`bos_id` themselves when ``tokenizer.ggml.add_bos_token`` asks for it.
        """
        tk = require("tokenizers", "llm", "GGUF tokenisation")
        kind = self.meta("tokenizer.ggml.model")
        if kind != "gpt2":
            raise QuantmooError(f"{self.path}: 'tokenizer.ggml.model' must be 'gpt2' (byte-level BPE); got "
                                f"{kind!r} (SentencePiece 'llama' vocabularies are not supported yet)")
        pre = self.meta("tokenizer.ggml.pre", "default")
        if pre not in TOKENIZER_PRE:
            raise QuantmooError(f"{self.path}: 'tokenizer.ggml.pre' must be one of {{{', '.join(TOKENIZER_PRE)}}}; "
                                f"got {pre!r}")
        tokens = self.meta("tokenizer.ggml.tokens")
        merges = [tuple(m.split(" ", 1)) for m in self.meta("tokenizer.ggml.merges")]
        types = self.meta("tokenizer.ggml.token_type", [1] * len(tokens))
        vocab = {t: i for i, t in enumerate(tokens)}
        if len(vocab) != len(tokens) or len(tokens) != self.vocab_size:
            raise QuantmooError(f"{self.path}: the vocabulary has {len(tokens)} tokens ({len(vocab)} distinct); "
                                f"token_embd.weight has {self.vocab_size} rows")
        tok = tk.Tokenizer(tk.models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        bl = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=TOKENIZER_PRE[pre] in (None, "digits"))
        if TOKENIZER_PRE[pre] == "digits":
            tok.pre_tokenizer = tk.pre_tokenizers.Sequence([tk.pre_tokenizers.Digits(individual_digits=True), bl])
        elif TOKENIZER_PRE[pre] is None:
            tok.pre_tokenizer = bl
        else:
            split = tk.pre_tokenizers.Split(tk.Regex(TOKENIZER_PRE[pre]), behavior="isolated")
            tok.pre_tokenizer = tk.pre_tokenizers.Sequence([split, bl])
        tok.decoder = tk.decoders.ByteLevel()
        special = [t for t, ty in zip(tokens, types) if ty in (_TOKEN_CONTROL, _TOKEN_USER_DEFINED)]
        tok.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t in special])
        return tok

    @property
    def bos_id(self) -> Optional[int]:
        """``tokenizer.ggml.bos_token_id`` if the file asks for a BOS token, else None."""
        if not self.meta("tokenizer.ggml.add_bos_token", False):
            return None
        return int(self.meta("tokenizer.ggml.bos_token_id"))

    def __repr__(self) -> str:
        return (f"GGUFModel({self.name!r}, architecture={self.architecture!r}, n_layers={self.n_layers}, "
                f"hidden={self.hidden}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, "
                f"vocab_size={self.vocab_size})")


def from_gguf(path, **overrides) -> ModelSpec:
    """A GGUF file's layer table with its lazy weights provider (no evaluator; see the runtime).

    ``overrides``: the decoder workload (``batch``, ``mode``, ``context``, ``prefill_tokens``)
    and ``name``.
    """
    name = overrides.pop("name", None)
    return GGUFModel(path, name=name).spec(name=name, **overrides)
