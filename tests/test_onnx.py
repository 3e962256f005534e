"""ONNX import: layer tables counted by hand, real weights, the zoo/CLI round trip, bad files.

Every model is built here with ``onnx.helper``, small enough to count by hand.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import quantmoo  # noqa: E402
from quantmoo import zoo  # noqa: E402
from quantmoo.cli import main  # noqa: E402
from quantmoo.errors import MissingDependencyError, QuantmooError  # noqa: E402
from quantmoo.models.onnx_import import from_onnx  # noqa: E402

F = TensorProto.FLOAT


def _arr(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _save(path, nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    onnx.save(model, str(path))
    return path


def _mlp(path):
    """x[N, 64] -> Gemm(fc1, transB) 64->32 -> Relu -> Gemm(fc2, weight stored (in, out)) 32->10."""
    inits = {"fc1.weight": _arr((32, 64), 1), "fc1.bias": _arr((32,), 2),
             "fc2.weight": _arr((32, 10), 3), "fc2.bias": _arr((10,), 4)}
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["y"], name="fc2")]
    _save(path, nodes, [helper.make_tensor_value_info("x", F, ["N", 64])],
          [helper.make_tensor_value_info("y", F, ["N", 10])], inits)
    return inits


def _cnn(path):
    """x[1, 3, 16, 16] -> Conv 3x3/2 (8 ch, bias) -> BatchNorm -> depthwise 3x3 -> GAP -> Gemm 8->5."""
    inits = {"stem.weight": _arr((8, 3, 3, 3)), "stem.bias": _arr((8,)),
             "bn.scale": _arr((8,)), "bn.B": _arr((8,)), "bn.mean": _arr((8,)), "bn.var": np.ones(8, np.float32),
             "dw.weight": _arr((8, 1, 3, 3)), "fc.weight": _arr((5, 8)), "fc.bias": _arr((5,))}
    nodes = [helper.make_node("Conv", ["x", "stem.weight", "stem.bias"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2],
                              name="stem"),
             helper.make_node("BatchNormalization", ["a", "bn.scale", "bn.B", "bn.mean", "bn.var"], ["b"]),
             helper.make_node("Conv", ["b", "dw.weight"], ["c"], pads=[1, 1, 1, 1], group=8, name="dw"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc")]
    _save(path, nodes, [helper.make_tensor_value_info("x", F, [1, 3, 16, 16])],
          [helper.make_tensor_value_info("y", F, [1, 5])], inits)
    return inits


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    return path, _mlp(path)


# -- counting -------------------------------------------------------------------------------------

def test_gemm_mlp_by_hand(mlp):
    path, inits = mlp
    spec = from_onnx(path)
    assert spec.name == "mlp" and spec.layer_names == ["fc1", "fc2"]
    fc1, fc2 = spec.layers
    assert (fc1.kind, fc1.weight_shape, fc1.extra_params) == ("linear", (32, 64), 32)
    assert (fc2.kind, fc2.weight_shape, fc2.extra_params) == ("linear", (10, 32), 10)   # stored (in, out)
    assert (fc1.macs, fc1.act_in, fc1.act_out) == (64 * 32, 64, 32)                  # batch N -> 1
    assert (fc2.macs, fc2.act_in, fc2.act_out) == (32 * 10, 32, 10)
    assert spec.n_params == 32 * 64 + 32 + 32 * 10 + 10 == 2410 and spec.other_params == 0
    assert spec.workload == {"batch": 1} and spec.meta["symbolic_dims"] == {"N": 1}
    assert spec.meta["onnx_tensors"] == {"fc1": "fc1.weight", "fc2": "fc2.weight"}
    # weights come out float32, output channels first: fc2's (in, out) initializer is transposed
    np.testing.assert_array_equal(spec.weights("fc1"), inits["fc1.weight"])
    np.testing.assert_array_equal(spec.weights("fc2"), inits["fc2.weight"].T)
    assert spec.weights("fc2").dtype == np.float32
    assert from_onnx(path, batch=4).macs == 4 * (64 * 32 + 32 * 10)


def test_matmul_add_bias_and_sequence_dims(tmp_path):
    path = _save(tmp_path / "proj.onnx",
                 [helper.make_node("MatMul", ["x", "W"], ["p"], name="proj"),
                  helper.make_node("Add", ["p", "b"], ["y"])],
                 [helper.make_tensor_value_info("x", F, ["batch", "seq", 16])],
                 [helper.make_tensor_value_info("y", F, ["batch", "seq", 8])],
                 {"W": _arr((16, 8)), "b": _arr((8,))})
    (row,) = from_onnx(path).layers                  # batch 1, seq_len 128 by default
    assert (row.name, row.weight_shape, row.extra_params) == ("W", (8, 16), 8)
    assert (row.macs, row.act_in, row.act_out) == (128 * 16 * 8, 128 * 16, 128 * 8)
    spec = from_onnx(path, batch=2, seq_len=10)
    assert spec.layers[0].macs == 2 * 10 * 16 * 8
    assert spec.workload == {"batch": 2, "seq_len": 10}


def test_cnn_with_depthwise_conv_by_hand(tmp_path):
    path = tmp_path / "cnn.onnx"
    _cnn(path)
    spec = from_onnx(path)
    stem, dw, fc = spec.layers
    assert [l.name for l in spec.layers] == ["stem", "dw", "fc"]
    # 16x16 -> 8x8 (3x3, stride 2, pad 1): MACs = 8*8 * 8 out * 3 in * 3*3
    assert (stem.kind, stem.weight_shape, stem.extra_params) == ("conv", (8, 3, 3, 3), 8)
    assert (stem.macs, stem.act_in, stem.act_out) == (8 * 8 * 8 * 3 * 9, 3 * 16 * 16, 8 * 8 * 8)
    # depthwise: one input channel per output channel
    assert (dw.kind, dw.weight_shape, dw.extra_params) == ("depthwise_conv", (8, 1, 3, 3), 0)
    assert (dw.macs, dw.act_in, dw.act_out) == (8 * 8 * 8 * 9, 512, 512)
    assert (fc.kind, fc.weight_shape, fc.macs, fc.extra_params) == ("linear", (5, 8), 40, 5)
    # BatchNorm gamma + beta are parameters (other_params); running mean/var are buffers
    assert spec.other_params == 16
    assert spec.n_params == 216 + 8 + 72 + 40 + 5 + 16 == 357
    assert spec.workload == {"shapes": "static"}


def test_embedding_gather_and_generated_names(tmp_path):
    path = _save(tmp_path / "emb.onnx",
                 [helper.make_node("Gather", ["tok.weight", "ids"], ["e"], name="embed"),
                  helper.make_node("MatMul", ["e", "onnx::MatMul_7"], ["y"], name="/head/MatMul")],
                 [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
                 [helper.make_tensor_value_info("y", F, ["batch", "seq", 4])],
                 {"tok.weight": _arr((100, 12)), "onnx::MatMul_7": _arr((12, 4))})
    emb, head = from_onnx(path, seq_len=16).layers
    assert (emb.name, emb.kind, emb.weight_shape) == ("tok", "embedding", (100, 12))
    assert (emb.macs, emb.act_in, emb.act_out) == (0, 16, 16 * 12)
    # an exporter-generated tensor name gives way to the node's name
    assert (head.name, head.weight_shape, head.macs) == ("/head/MatMul", (4, 12), 16 * 12 * 4)


def test_tied_embedding_is_one_row(tmp_path):
    path = _save(tmp_path / "tied.onnx",
                 [helper.make_node("Gather", ["E", "ids"], ["e"], name="embed"),
                  helper.make_node("Gemm", ["e", "E"], ["y"], transB=1, name="head")],
                 [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                 [helper.make_tensor_value_info("y", F, [3, 50])], {"E": _arr((50, 8))})
    spec = from_onnx(path)
    (row,) = spec.layers
    assert (row.kind, row.weight_shape, row.macs) == ("lm_head", (50, 8), 3 * 8 * 50)
    assert spec.n_params == 400 and spec.meta["shared_weights"] == {"E": ["embed", "head"]}


def test_conv_transpose_weight_is_output_channels_first(tmp_path):
    w = _arr((4, 3, 2, 2))            # (C_in, C_out / groups, k, k), groups = 2: C_out = 6
    path = _save(tmp_path / "up.onnx",
                 [helper.make_node("ConvTranspose", ["x", "up.weight", "up.bias"], ["y"], strides=[2, 2], group=2)],
                 [helper.make_tensor_value_info("x", F, [1, 4, 5, 5])],
                 [helper.make_tensor_value_info("y", F, [1, 6, 10, 10])], {"up.weight": w, "up.bias": _arr((6,))})
    spec = from_onnx(path)
    (row,) = spec.layers
    assert (row.weight_shape, row.extra_params) == ((6, 2, 2, 2), 6)
    assert (row.macs, row.act_in, row.act_out) == (4 * 25 * 3 * 4, 100, 600)   # each input x C_out/g x k*k
    out = spec.weights("up")
    for o in range(6):                # output channel o = group g, column j reads inputs 2g, 2g+1
        g, j = divmod(o, 3)
        np.testing.assert_array_equal(out[o], w[2 * g:2 * g + 2, j])


def test_omega_sensitivity_on_imported_weights(tmp_path):
    path = tmp_path / "cnn.onnx"
    _cnn(path)
    spec = zoo.load(path)
    table = quantmoo.sensitivity(spec, measure="omega")
    assert table.kind == "proxy" and table.table.shape[1] == spec.n_layers
    assert np.all(np.isfinite(table.table)) and table.table.max() > 0


# -- zoo and CLI ----------------------------------------------------------------------------------

def test_zoo_load_routes_onnx_files(mlp):
    path, _ = mlp
    assert zoo.load(str(path)).spec_hash() == from_onnx(path).spec_hash()
    assert zoo.load(path, name="my-mlp").name == "my-mlp"
    with pytest.raises(QuantmooError, match=r"Unknown override\(s\) \['image_size'\] for the ONNX file .*mlp.onnx; "
                                            r"allowed overrides are \{batch, seq_len, name, input_shapes\}"):
        zoo.load(path, image_size=160)
    with pytest.raises(QuantmooError, match="'seq_len' override .* has no effect"):
        zoo.load(path, seq_len=64)        # the only symbolic dimension is the batch


def test_cli_search_and_evaluate_an_onnx_file(mlp, tmp_path, capsys):
    path, _ = mlp
    run_dir = tmp_path / "run"
    assert main(["search", "--model", str(path), "--hardware", "arm_dot", "--pop-size", "12", "--n-gen", "3",
                 "--out", str(run_dir), "--no-plot", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["model"]["name"] == "mlp" and res["model"]["n_params"] == 2410 and res["model"]["n_layers"] == 2
    k = info["knee_index"]
    assert main(["export", str(run_dir), "--index", str(k), "--out", str(tmp_path / "k.yaml")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(path), "--hardware", "arm_dot", "--config", str(tmp_path / "k.yaml"),
                 "--run", str(run_dir), "--json"]) == 0
    vals = json.loads(capsys.readouterr().out)
    for name, v in res["front"][k]["objectives"].items():
        assert vals[name] == v


def test_cli_bad_onnx_file_is_one_line(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(np.random.default_rng(1).bytes(300))
    p = subprocess.run([sys.executable, "-m", "quantmoo.cli", "search", "--model", str(bad), "--hardware", "arm_dot"],
                       capture_output=True, text=True)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(lines) == 1 and str(bad) in lines[0] and "not a valid ONNX model" in lines[0], p.stderr


# -- bad input ------------------------------------------------------------------------------------

def _with_weight(path, name, value):
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.name == name:
            a = numpy_helper.to_array(t).copy()
            a.flat[0] = value
            t.CopyFrom(numpy_helper.from_array(a, name))
    onnx.save(model, str(path))


def _bad_random(p):
    p.write_bytes(np.random.default_rng(0).bytes(500))


def _bad_truncated(p):
    _mlp(p)
    data = p.read_bytes()
    p.write_bytes(data[:len(data) // 2])


def _bad_empty(p):
    p.write_bytes(b"")


def _bad_nan(p):
    _mlp(p)
    _with_weight(p, "fc2.weight", np.nan)


def _bad_inf_bias(p):
    _mlp(p)
    _with_weight(p, "fc1.bias", -np.inf)


def _bad_external(p):
    _mlp(p)
    onnx.save(onnx.load(str(p)), str(p), save_as_external_data=True, all_tensors_to_one_file=True,
              location="mlp.weights", size_threshold=0)
    (p.parent / "mlp.weights").unlink()


def _bad_external_truncated(p):
    _bad_external(p)
    _mlp(p.parent / "other.onnx")
    onnx.save(onnx.load(str(p.parent / "other.onnx")), str(p.parent / "other.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="mlp.weights", size_threshold=0)
    data = (p.parent / "mlp.weights").read_bytes()
    (p.parent / "mlp.weights").write_bytes(data[:100])


def _bad_no_weights(p):
    _save(p, [helper.make_node("Relu", ["x"], ["y"])], [helper.make_tensor_value_info("x", F, [4])],
          [helper.make_tensor_value_info("y", F, [4])], {})


def _bad_missing(p):
    pass


def _bad_directory(p):
    p.mkdir()


@pytest.mark.parametrize("make, needle", [
    (_bad_random, "not a valid ONNX model: the file cannot be parsed as an ONNX protobuf"),
    (_bad_truncated, "not a valid ONNX model"),
    (_bad_empty, "the file is empty"),
    (_bad_nan, "the weight tensor 'fc2.weight' holds NaN"),
    (_bad_inf_bias, "the bias tensor 'fc1.bias' holds inf"),
    (_bad_external, "stored in the external data file 'mlp.weights', which is missing"),
    (_bad_external_truncated, "the external data file 'mlp.weights' is truncated"),
    (_bad_no_weights, "no weight-bearing layers"),
    (_bad_missing, "File not found"),
    (_bad_directory, "Expected a file, got a directory"),
])
def test_bad_files_give_one_clear_error(tmp_path, make, needle):
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(QuantmooError) as e:
        zoo.load(path)
    msg = str(e.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_external_data_that_is_present_loads(tmp_path):
    path = tmp_path / "mlp.onnx"
    inits = _mlp(path)
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="mlp.weights", size_threshold=0)
    spec = zoo.load(path)
    np.testing.assert_array_equal(spec.weights("fc2"), inits["fc2.weight"].T)


def test_missing_onnx_package_gives_the_install_hint(mlp, monkeypatch):
    path, _ = mlp
    monkeypatch.setitem(sys.modules, "onnx", None)      # "import onnx" now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'quantmoo\[onnx\]'"):
        zoo.load(path)


def test_cli_sensitivity_then_search_with_the_omega_table(mlp, tmp_path, capsys):
    """An imported model has weights but no evaluator: `quantmoo sensitivity` builds the omega proxy."""
    path, _ = mlp
    table = tmp_path / "sens.npz"
    assert main(["sensitivity", "--model", str(path), "--out", str(table)]) == 0
    assert "proxy table, measure omega" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    assert main(["search", "--model", str(path), "--hardware", "arm_dot", "--pop-size", "12", "--n-gen", "3",
                 "--accuracy-table", str(table), "--out", str(run_dir), "--no-plot", "--json"]) == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert res["accuracy_kind"] == "proxy"


def test_lstm_weights_are_reported_not_searched(tmp_path):
    # LSTM W (1, 16, 3) and R (1, 16, 4): 48 + 64 = 112 parameters, then x @ fc (4, 2)
    path = _save(tmp_path / "lstm.onnx",
                 [helper.make_node("LSTM", ["x", "W", "R"], ["y", "h"], hidden_size=4),
                  helper.make_node("Squeeze", ["h"], ["hs"]), helper.make_node("MatMul", ["hs", "fc.weight"], ["out"])],
                 [helper.make_tensor_value_info("x", F, [5, 1, 3])], [helper.make_tensor_value_info("out", F, None)],
                 {"W": _arr((1, 16, 3)), "R": _arr((1, 16, 4)), "fc.weight": _arr((4, 2))}, opset=13)
    spec = from_onnx(path)
    assert spec.layer_names == ["fc"] and spec.other_params == 112
    (ns,) = spec.meta["not_searched"]
    assert (ns["op"], ns["params"], ns["tensors"]) == ("LSTM", 112, ["W", "R"]) and "not searched" in ns["reason"]


def test_weights_only_inside_if_get_an_error_naming_the_control_flow(tmp_path):
    sub = helper.make_graph([helper.make_node("MatMul", ["x2", "w_in"], ["o"])], "then", [],
                            [helper.make_tensor_value_info("o", F, None)], [numpy_helper.from_array(_arr((3, 3)), "w_in")])
    path = _save(tmp_path / "if.onnx",
                 [helper.make_node("Identity", ["x"], ["x2"]),
                  helper.make_node("If", ["c"], ["o"], then_branch=sub, else_branch=sub)],
                 [helper.make_tensor_value_info("x", F, [2, 3]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                 [helper.make_tensor_value_info("o", F, None)], {}, opset=13)
    with pytest.raises(QuantmooError, match=r"no weight-bearing layers.*does not search: If \('#1 \(If\)', 18 parameters\)"):
        from_onnx(path)


def _if_model(path):
    """If(c) gives x reshaped to [8] or x [n, 8] (ranks differ: static inference loses the shape),
    then MatMul with fc.weight (8, 3)."""
    then = helper.make_graph([helper.make_node("Reshape", ["x", "s1"], ["o"])], "then", [],
                             [helper.make_tensor_value_info("o", F, None)],
                             [numpy_helper.from_array(np.array([8], np.int64), "s1")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else", [],
                              [helper.make_tensor_value_info("o2", F, None)])
    return _save(path, [helper.make_node("If", ["c"], ["h"], then_branch=then, else_branch=other),
                        helper.make_node("MatMul", ["h", "fc.weight"], ["y"])],
                 [helper.make_tensor_value_info("x", F, ["n", 8]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                 [helper.make_tensor_value_info("y", F, None)], {"fc.weight": _arr((8, 3))}, opset=13)


def test_shapes_from_one_onnxruntime_run_when_inference_fails(tmp_path):
    pytest.importorskip("onnxruntime")
    path = _if_model(tmp_path / "dyn.onnx")
    spec = from_onnx(path, batch=4)          # c = False on zero inputs: the else branch, x [4, 8]
    (fc,) = spec.layers
    assert (fc.macs, fc.act_in, fc.act_out) == (4 * 8 * 3, 32, 12) and spec.meta["runtime_shapes"] == 2
    # --input-shape gives the full shape of an input
    spec = from_onnx(path, input_shapes={"x": [16, 8]})
    assert spec.layers[0].macs == 16 * 8 * 3 and spec.workload["input_shapes"] == {"x": [16, 8]}
    with pytest.raises(QuantmooError, match=r"names 'y', which is not a graph input; the inputs are \['x', 'c'\]"):
        from_onnx(path, input_shapes={"y": [1, 8]})
    with pytest.raises(QuantmooError, match="has 3 dimensions; the input has 2"):
        from_onnx(path, input_shapes={"x": [1, 1, 8]})


def test_cli_input_shape(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path = str(_if_model(tmp_path / "dyn.onnx"))
    assert main(["search", "--model", path, "--hardware", "arm_dot", "--input-shape", "x=16by8"]) != 0
    assert "'--input-shape' must look like NAME=1x3x224x224" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text(quantmoo.QuantConfig.uniform(from_onnx(path), 8, 8).to_yaml())
    assert main(["evaluate", "--model", path, "--hardware", "arm_dot", "--config", str(cfg), "--json",
                 "--input-shape", "x=16x8"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", path, "--hardware", "arm_dot", "--config", str(cfg), "--json",
                 "--input-shape", "x=64x8"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > small["latency_ms"]


def test_minus_one_input_dims_are_dynamic(tmp_path):
    # exporters (paddle2onnx) write -1 for a dynamic dimension: it is symbolic, not a negative size
    path = _save(tmp_path / "neg.onnx", [helper.make_node("MatMul", ["x", "fc.weight"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [-1, 8])], [helper.make_tensor_value_info("y", F, None)],
                 {"fc.weight": _arr((8, 3))})
    assert from_onnx(path, batch=5).layers[0].macs == 5 * 8 * 3


def test_symbolic_dims_static_inference_cannot_name_come_from_onnxruntime(tmp_path):
    # Pad with pads computed in the graph: static inference keeps the rank but names the dims
    # 'unk__*' (open-nsfw's convs, after tf2onnx's Pad, were counted at 128 x 128, not their sizes)
    pytest.importorskip("onnxruntime")
    pads = helper.make_tensor("p", TensorProto.INT64, [4], [0, 1, 0, 1])
    path = _save(tmp_path / "unk.onnx",
                 [helper.make_node("Constant", [], ["p0"], value=pads), helper.make_node("Cast", ["p0"], ["p1"], to=7),
                  helper.make_node("Pad", ["x", "p1"], ["h"]), helper.make_node("MatMul", ["h", "fc.weight"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [2, 6])], [helper.make_tensor_value_info("y", F, None)],
                 {"fc.weight": _arr((8, 3))}, opset=13)
    (fc,) = from_onnx(path).layers
    assert (fc.macs, fc.act_in, fc.act_out) == (2 * 8 * 3, 16, 6)
