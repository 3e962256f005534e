"""The ONNX QDQ export: onnxruntime runs it, and it computes what quantmoo's emulation computes."""
import itertools
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from quantmoo.config import LayerQuant, QuantConfig  # noqa: E402
from quantmoo.errors import QuantmooError  # noqa: E402
from quantmoo.export.onnx_qdq import build_qdq, export_qdq, qdq_plan, size_report  # noqa: E402
from quantmoo.onnx import session  # noqa: E402
from quantmoo.quant import quantize_dequantize  # noqa: E402


def _mixed_model(path):
    """MatMul (x @ W), Gemm (transB) with bias, Conv, grouped ConvTranspose and an embedding Gather."""
    rng = np.random.default_rng(0)
    w = {"mm.weight": rng.normal(size=(8, 6)), "gemm.weight": rng.normal(size=(5, 6)),
         "gemm.bias": rng.normal(size=5), "conv.weight": rng.normal(size=(6, 4, 3, 3)),
         "convt.weight": rng.normal(size=(6, 2, 2, 2)), "emb.weight": rng.normal(size=(10, 8))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    nodes = [helper.make_node("MatMul", ["x", "mm.weight"], ["h"]),
             helper.make_node("Gemm", ["h", "gemm.weight", "gemm.bias"], ["y1"], transB=1),
             helper.make_node("Conv", ["img", "conv.weight"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["c", "convt.weight"], ["y2"], group=3),
             helper.make_node("Gather", ["emb.weight", "ids"], ["y3"])]
    g = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
                                           helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 4, 5, 5]),
                                           helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                          [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [2, 5]),
                           helper.make_tensor_value_info("y2", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("y3", TensorProto.FLOAT, [3, 8])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return qdq_plan(_mixed_model(tmp_path_factory.mktemp("qdq") / "mixed.onnx"))


WEIGHT_CHOICES = [dict(weight_bits=b, weight_scheme=s, granularity=g, group_size=5)
                  for b, s, g in itertools.product((2, 3, 4, 5, 6, 8), ("symmetric", "asymmetric", "power_of_two"),
                                                   ("per_tensor", "per_channel", "per_group"))]


@pytest.mark.parametrize("choice", WEIGHT_CHOICES[::2] + [dict(weight_bits=16)],
                         ids=lambda c: "-".join(str(v) for v in c.values()))
def test_dequantized_weights_are_the_emulated_ones_bit_for_bit(mixed, choice):
    spec = mixed.spec
    cfg = QuantConfig({n: LayerQuant(activation_bits=16, **choice) for n in spec.layer_names})
    m = build_qdq(mixed, cfg, {})
    for row in mixed.layers.values():
        m.graph.output.append(helper.make_empty_tensor_value_info(row.tensor))
    names = [r.tensor for r in mixed.layers.values()]
    got = session(m).run(names, {"x": np.zeros((2, 8), np.float32), "img": np.zeros((1, 4, 5, 5), np.float32),
                                 "ids": np.arange(3)})
    for (name, row), w in zip(mixed.layers.items(), got):
        w = row.layout(w) if row.layout is not None else w
        ref = quantize_dequantize(spec.weights(name), choice["weight_bits"], choice.get("weight_scheme", "symmetric"),
                                  choice.get("granularity", "per_tensor"), 5)
        np.testing.assert_array_equal(w, ref, err_msg=name)
    storage = json.loads({p.key: p.value for p in m.metadata_props}["quantmoo.storage"])
    bits = choice["weight_bits"]
    want = "float16" if bits == 16 else ("u" if choice["weight_scheme"] == "asymmetric" else "") + \
        ("int4" if bits <= 4 else "int8")
    assert {s["stored_as"] for s in storage.values()} == {want}


def test_activation_qdq_matches_the_emulation_on_exact_ties(tmp_path):
    # one layer y = x @ I: its output is the fake-quantized input; x holds exact ties of the grid
    eye = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w.weight")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w.weight"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], initializer=[eye])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "id.onnx")
    calib = np.array([[-1.0, 0.0, 1.0, 2.0]], np.float32)    # asymmetric 2-bit: scale 1, zero point 1
    x = np.array([[-0.5, 0.5, 1.5, 2.5], [-1.5, -2.5, 7.0, 0.25]], np.float32)
    for scheme, bits in (("asymmetric", 2), ("symmetric", 3), ("symmetric", 8), ("asymmetric", 8)):
        cfg = QuantConfig({"w": LayerQuant(weight_bits=8, activation_bits=bits, activation_scheme=scheme,
                                           granularity="per_tensor")})
        y = session(export_qdq(tmp_path / "id.onnx", cfg, {"x": calib})).run(None, {"x": x})[0]
        lo, hi = calib.min(), calib.max()
        if scheme != "asymmetric":
            lo, hi = -2.0, 2.0
        np.testing.assert_array_equal(y, quantize_dequantize(x, bits, scheme, lo=lo, hi=hi), err_msg=f"{scheme}{bits}")
    # asymmetric 2-bit by hand: rint(-.5, .5, 1.5, 2.5) + 1 = 1, 1, 3, 4 -> clip 3: 0, 0, 2, 2
    cfg = QuantConfig({"w": LayerQuant(weight_bits=8, activation_bits=2, granularity="per_tensor")})
    y = session(export_qdq(tmp_path / "id.onnx", cfg, {"x": calib})).run(None, {"x": x[:1]})[0]
    np.testing.assert_array_equal(y, [[0.0, 0.0, 2.0, 2.0]])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from quantmoo.accuracy.digits import digits_to_onnx, load_digits_model
    path = tmp_path_factory.mktemp("digits") / "digits.onnx"
    onnx.save(digits_to_onnx(), path)
    return path, load_digits_model().evaluator


DIGITS_CONFIGS = [dict(weight_bits=8, activation_bits=8),
                  dict(weight_bits=4, activation_bits=8, granularity="per_group", group_size=16),
                  dict(weight_bits=3, activation_bits=8, weight_scheme="asymmetric", activation_scheme="symmetric"),
                  dict(weight_bits=6, activation_bits=4, granularity="per_tensor", weight_scheme="power_of_two"),
                  dict(weight_bits=16, activation_bits=16)]


@pytest.mark.parametrize("choice", DIGITS_CONFIGS, ids=lambda c: f"w{c['weight_bits']}a{c['activation_bits']}")
def test_digits_qdq_model_computes_the_numpy_emulation(digits, choice):
    path, ev = digits
    names = ev.spec.layer_names
    cfg = QuantConfig({n: LayerQuant(**choice) for n in names}, calibration="percentile")
    m = export_qdq(path, cfg, {"x": ev._calibration_data})
    outs = [f"{n}.relu" for n in names[:-1]]
    for n in outs:
        m.graph.output.append(helper.make_empty_tensor_value_info(n))
    test = ev._eval_data
    got = session(m).run(["logits"] + outs, {"x": test})
    # layer by layer, fed the runtime's own input, the emulation gives the runtime's output: the
    # only differences are float summation order (GEMM blocking), far below 1e-4 relative
    ops = ev.ops(cfg)
    inputs = [test] + got[1:]
    for i, n in enumerate(names):
        y = ops.linear(n, inputs[i])
        if i < len(names) - 1:
            y = np.maximum(y, 0.0)
        ref = got[(i + 1) % len(names)] if i < len(names) - 1 else got[0]
        assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max(), n
    # end to end, the same predictions; a float-order difference that lands on a rounding tie
    # of a later activation grid moves that element one step, so logits agree to a few steps
    logits = ev.run(test, cfg)
    assert np.mean(logits.argmax(1) == got[0].argmax(1)) >= 0.99
    assert np.mean(np.abs(logits - got[0]) <= 1e-4 * np.abs(logits).max()) >= 0.99


def test_size_report_accounts_for_every_byte_by_hand(digits):
    path, ev = digits
    spec = ev.spec
    channels = sum(l.weight_shape[0] for l in spec.layers)            # 256 + 256 + 128 + 10 = 650
    assert channels == 650
    cfg = QuantConfig({l: LayerQuant(weight_bits=3, activation_bits=16) for l in spec.layer_names})
    rep = size_report(export_qdq(path, cfg))
    assert rep["onnx_weight_bytes_in_file"] == rep["onnx_weight_bytes"]
    layer_params = [l.n_params for l in spec.layers]
    assert rep["quantmoo_weight_bytes"] == sum((p * 3 + 7) // 8 for p in layer_params) + 2 * channels
    assert rep["width_overhead"] == sum(p // 2 - (p * 3 + 7) // 8 for p in layer_params)   # 3-bit kept in int4
    assert rep["scale_zero_point_overhead"] == 2 * channels                # fp32 scales vs quantmoo's fp16
    assert rep["bias_bytes"] == 2 * 650                                     # fp16 biases, as quantmoo counts
    assert rep["file_bytes"] == rep["onnx_weight_bytes"] + rep["bias_bytes"] + rep["graph_bytes"]
    assert rep["graph_bytes"] < 0.1 * rep["file_bytes"]   # nodes, names, metadata (config JSON)


def test_missing_calibration_data_names_the_inputs(digits):
    path, ev = digits
    cfg = QuantConfig({n: LayerQuant() for n in ev.spec.layer_names})
    with pytest.raises(QuantmooError, match=r"calibration_data.*'x' float32\[batch, 64\]"):
        export_qdq(path, cfg)
    with pytest.raises(QuantmooError, match=r"lacks the model input\(s\) \['x'\]"):
        export_qdq(path, cfg, {"image": ev._calibration_data})
