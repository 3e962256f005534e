"""What a runtime runs around the layers: the graph's non-layer ops recorded by the ONNX importer, and a
profile's measured ``runtime_ops`` (per-format dequantize, activation QDQ, conv rates) in the cost model."""
import copy
from pathlib import Path

import numpy as np
import pytest

import quantmoo
from quantmoo import QuantConfig, SearchSpace
from quantmoo.config import LayerQuant
from quantmoo.hardware.profile import _Parser
from quantmoo.io import load_yaml
from quantmoo.models.spec import LayerSpec, ModelSpec

TOY = Path(__file__).parent / "data" / "toy_profile.yaml"


def toy(runtime_ops=None):
    raw, _ = load_yaml(TOY)
    raw = copy.deepcopy(raw)
    if runtime_ops is not None:
        raw["devices"]["npu"]["runtime_ops"] = runtime_ops
    return _Parser("toy").profile(raw, None, None)


def est(v):
    return {"value": v, "estimate": "round number"}


def test_tiny_onnx_graph_records_batchnorm_relu_and_attention_matmul(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T, helper, numpy_helper as nh
    F = T.FLOAT
    g = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
         helper.make_node("Relu", ["y"], ["r"]),
         helper.make_node("Conv", ["r", "w"], ["c"]),
         helper.make_node("MatMul", ["c", "k"], ["out"])],          # activation x activation
        "t", [helper.make_tensor_value_info("x", F, [1, 4, 8, 8]), helper.make_tensor_value_info("k", F, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("out", F, [1, 2, 8, 8])],
        [nh.from_array(np.ones(4, np.float32), n) for n in "sbmv"] + [nh.from_array(np.ones((2, 4, 1, 1), np.float32), "w")])
    path = tmp_path / "t.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    spec = quantmoo.zoo.load(str(path))
    assert [l.name for l in spec.layers] == ["w"]
    # BN and Relu: 256 float32 elements read and written (1024 + 1024 bytes); the conv is a layer;
    # the MatMul reads c and k (2 x 512 bytes), writes 512 bytes, and does 2*8*8 outputs x 8 = 1024 MACs
    assert spec.meta["graph_ops"] == {"BatchNormalization": {"nodes": 1, "bytes": 2048, "macs": 0},
                                      "MatMul": {"nodes": 1, "bytes": 1536, "macs": 1024},
                                      "Relu": {"nodes": 1, "bytes": 2048, "macs": 0}}


def one_layer(meta=None):
    return ModelSpec("one", [LayerSpec("a", "linear", (256, 1024), macs=256 * 1024, act_in=1024, act_out=256)],
                     meta=meta or {})


def test_graph_ops_are_a_constant_by_hand():
    hw = toy({"run_overhead_us": est(5.0), "elementwise_gbs": est(2.0)})
    meta = {"graph_ops": {"Relu": {"nodes": 2, "bytes": 4000, "macs": 0},
                          "MatMul": {"nodes": 1, "bytes": 100, "macs": 10 ** 6}}}
    cfg = QuantConfig.uniform(one_layer(), 8, 8)
    base = quantmoo.evaluate(one_layer(), hw, cfg)["latency_ms"]
    got = quantmoo.evaluate(one_layer(meta), hw, cfg)["latency_ms"]
    # 3 nodes x 10 us overhead + Relu 4000 B / 2 GB/s (2 us) + MatMul 1e6 MAC / 1e12 MAC/s int8 (the toy
    # npu has no fp32: its fastest precision), 1 us > 100 B / 2 GB/s; the 5 us per run is in both
    assert got - base == pytest.approx((30 + 2 + 1) * 1e-3, rel=1e-9)
    # a device with runtime_ops reads the weights as its kernel runs them (262144 int8), not packed with scales
    assert base == pytest.approx(5e-3 + ((262144 + 1024 + 256) / 10e9 + 10e-6) * 1e3, rel=1e-9)
    # a profile without runtime_ops: no run overhead, the achievable bandwidth (10 GB/s)
    plain = toy()
    d = quantmoo.evaluate(one_layer(meta), plain, cfg)["latency_ms"] - quantmoo.evaluate(one_layer(), plain,
                                                                                          cfg)["latency_ms"]
    assert d == pytest.approx((30 + 0.4 + 1) * 1e-3, rel=1e-9)


def test_dequantize_cost_is_chosen_per_layer_format():
    ops = lambda i8, i4: {"dequantize_ns_per_weight": {"int8_per_channel": est(i8), "int4_per_group": est(i4)}}
    model = ModelSpec("two", [LayerSpec("a", "linear", (256, 1024), macs=256 * 1024, act_in=1024, act_out=256),
                              LayerSpec("b", "linear", (10, 256), macs=2560, act_in=256, act_out=10)])
    space = SearchSpace(weight_bits=(4, 8, 16), activation_bits=(16,), granularities=("per_channel", "per_group"),
                        group_size=32)
    cfg = QuantConfig({"a": LayerQuant(8, 16, granularity="per_channel"),
                       "b": LayerQuant(4, 16, granularity="per_group", group_size=32)})
    lat = lambda hw, c: quantmoo.evaluate(model, hw, c, space=space)["latency_ms"]
    # a: 262144 weights x 1 ns (int8 per channel); b: 2560 x 10 ns (int4 blocked)
    assert lat(toy(ops(1.0, 10.0)), cfg) - lat(toy(ops(0.0, 0.0)), cfg) == pytest.approx(
        (262144 * 1 + 2560 * 10) * 1e-6, rel=1e-9)
    # swapped formats: each layer takes its own format's cost
    swapped = QuantConfig({"a": LayerQuant(4, 16, granularity="per_group", group_size=32),
                           "b": LayerQuant(8, 16, granularity="per_channel")})
    assert lat(toy(ops(1.0, 10.0)), swapped) - lat(toy(ops(0.0, 0.0)), swapped) == pytest.approx(
        (262144 * 10 + 2560 * 1) * 1e-6, rel=1e-9)
    # one DequantizeLinear node per quantized layer: the device's per-op overhead (10 us) each; 16-bit weights
    # (a Cast onnxruntime folds at load) have none
    fp16 = QuantConfig.uniform(model, 16, 16)
    assert lat(toy(ops(0.0, 0.0)), cfg) - lat(toy(ops(0.0, 0.0)), fp16) == pytest.approx(2 * 10e-3, rel=1e-9)


def test_activation_qdq_per_layer_input():
    ops = lambda v: {"activation_ns_per_element": {"quantize": est(v), "dequantize": est(2 * v), "clip": est(4 * v),
                                                   "cast_fp16": est(8 * v)}}
    model = one_layer()
    space = SearchSpace(weight_bits=(8, 16), activation_bits=(8, 16), activation_schemes=("symmetric", "asymmetric"))
    for a, scheme, per_el in ((8, "symmetric", 7.0), (8, "asymmetric", 3.0), (16, "symmetric", 8.0)):
        cfg = QuantConfig({"a": LayerQuant(8 if a == 8 else 16, a, activation_scheme=scheme)})
        d = (quantmoo.evaluate(model, toy(ops(1.0)), cfg, space=space)["latency_ms"]
             - quantmoo.evaluate(model, toy(ops(0.0)), cfg, space=space)["latency_ms"])
        # 1024 input elements x the ops the export writes: Q + DQ, the Clip only on the symmetric grid;
        # a Cast to fp16 and back for 16-bit activations
        assert d == pytest.approx(1024 * per_el * 1e-6, rel=1e-9), (a, scheme)


def test_encoder_graph_ops_carry_the_attention_and_are_charged():
    from quantmoo.hardware.cost import graph_ops_cost
    bert = quantmoo.zoo.load("bert-base", seq_len=64)
    ops = bert.meta["graph_ops"]
    # 12 blocks x 2 attention matmuls, each 64 x 64 pairs x 64 head_dim x 12 heads: the spec's attention MACs
    assert ops["MatMul"]["nodes"] == 24 and ops["MatMul"]["macs"] == bert.meta["attention_macs"] == 12 * 2 * 64 * 64 * 768
    assert ops["Softmax"] == {"nodes": 12, "bytes": 12 * 2 * 12 * 64 * 64 * 4, "macs": 0}
    # charged once per model: the objectives move by exactly graph_ops_cost on any profile
    cfg = QuantConfig.uniform(bert, 8, 8)
    bare = ModelSpec(bert.name, bert.layers, bert.workload, bert.other_params)
    hw = quantmoo.hardware.load("arm_dot")
    d = quantmoo.evaluate(bert, hw, cfg)["latency_ms"] - quantmoo.evaluate(bare, hw, cfg)["latency_ms"]
    assert d == pytest.approx(graph_ops_cost(bert, hw)["latency_s"] * 1e3, rel=1e-9) and d > 0


def test_conv_bias_add_is_recorded_and_costed_only_for_dequantized_weights(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T, helper, numpy_helper as nh
    F = T.FLOAT
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Add", ["c", "b"], ["y"])], "t",
        [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])], [helper.make_tensor_value_info("y", F, [1, 2, 8, 8])],
        [nh.from_array(np.ones((2, 4, 1, 1), np.float32), "w"), nh.from_array(np.ones((1, 2, 1, 1), np.float32), "b")])
    path = tmp_path / "t.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    spec = quantmoo.zoo.load(str(path))
    # the Add is a per-channel bias; onnxruntime fuses it into the conv's constant weight, so it is no graph op
    assert spec.meta["bias_add_layers"] == ["w"] and spec.meta["graph_ops"] == {}
    ops = {"op_overhead_us": est(1.0), "elementwise_gbs": est(1.0),
           "dequantize_ns_per_weight": {"int8_per_channel": est(0.0)}}
    space = SearchSpace(weight_bits=(8, 16), activation_bits=(16,), granularities=("per_channel",))
    bare = ModelSpec(spec.name, spec.layers, spec.workload, spec.other_params)
    d = {w: quantmoo.evaluate(spec, toy(ops), QuantConfig.uniform(spec, w, 16), space=space)["latency_ms"]
         - quantmoo.evaluate(bare, toy(ops), QuantConfig.uniform(bare, w, 16), space=space)["latency_ms"]
         for w in (8, 16)}
    # a dequantized weight: the unfused Add, 1 us + 128 output elements x 8 B (read + write) / 1 GB/s
    assert d == {8: pytest.approx((1e-6 + 128 * 8 / 1e9) * 1e3, rel=1e-9), 16: 0.0}


def test_qdq_runtime_dequantizes_the_whole_embedding_table():
    # a lookup reads 4 rows, but the export's DequantizeLinear in front of the Gather dequantizes all 1000
    emb = ModelSpec("e", [LayerSpec("emb", "embedding", (1000, 16), macs=0, act_in=4, act_out=64)])
    ops = lambda v: {"dequantize_ns_per_weight": {"int8_per_channel": est(v)}}
    space = SearchSpace(weight_bits=(8,), activation_bits=(16,), granularities=("per_channel",))
    cfg = QuantConfig.uniform(emb, 8, 16, granularity="per_channel")
    d = (quantmoo.evaluate(emb, toy(ops(1.0)), cfg, space=space)["latency_ms"]
         - quantmoo.evaluate(emb, toy(ops(0.0)), cfg, space=space)["latency_ms"])
    assert d == pytest.approx(16000 * 1e-6, rel=1e-9)


def test_matmul_layer_with_float_input_runs_the_fused_kernel():
    # an x @ W MatMul layer: W8A16 runs as MatMulNBits (its rate, no DequantizeLinear); W8A8 keeps the
    # DequantizeLinear along the (in, out) weight's other axis ("_kn" cost)
    ops = {"op_overhead_us": est(0.0), "matmul_nbits_tops": {"int8_per_channel": est(0.002)},   # 1e9 MAC/s
           "dequantize_ns_per_weight": {"int8_per_channel": est(1.0), "int8_per_channel_kn": est(3.0)}}
    layer = LayerSpec("a", "linear", (256, 1024), macs=256 * 1024 * 64, act_in=64 * 1024, act_out=64 * 256)
    mm = ModelSpec("mm", [layer], meta={"matmul_layers": ["a"]})
    gemm = ModelSpec("g", [layer])
    space = SearchSpace(weight_bits=(6, 8), activation_bits=(8, 16), granularities=("per_channel",))
    # (the toy runs W8A8 natively; W6A8, stored as INT8, is dequantized)
    lat = lambda m, a: quantmoo.evaluate(m, toy(ops), QuantConfig.uniform(m, 8 if a == 16 else 6, a,
                                                                          granularity="per_channel"),
                                         space=space)["latency_ms"]
    # fused: 16.8 MMAC at 1e9 MAC/s = 16.8 ms (compute-bound; the toy's fp16 path reads 0.6 MB at 10 GB/s)
    assert lat(mm, 16) == pytest.approx(256 * 1024 * 64 / 1e9 * 1e3 + 10e-3, rel=1e-6)
    # W6A8: 262144 weights x 3 ns on the MatMul layout, x 1 ns on a Gemm's (out, in) layout
    assert lat(mm, 8) - lat(gemm, 8) == pytest.approx(262144 * 2e-6, rel=1e-9)
