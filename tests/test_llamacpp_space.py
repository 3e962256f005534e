"""The llama.cpp search space: genome, exact sizes, hardware mapping, config round trip, presets."""
import numpy as np
import pytest

import quantmoo
from quantmoo import QuantConfig, zoo
from quantmoo.baselines.rules import PRESETS, gguf_name, preset_bpw, preset_types, rule_presets
from quantmoo.config import LayerQuant
from quantmoo.errors import QuantmooError
from quantmoo.quant import ggml, packed_bytes
from quantmoo.search.problem import QuantizationProblem
from quantmoo.search.space import SearchSpace


@pytest.fixture(scope="module")
def llama2():
    return zoo.load("llama2-7b")


@pytest.fixture(scope="module")
def llama3():
    return zoo.load("llama3-8b")


def test_space_has_one_gene_per_tensor_ordered_by_bpw(llama2):
    sp = SearchSpace.llama_cpp()
    enc = sp.bind(llama2)
    assert enc.varying == ("weight_format",) and enc.n_var == llama2.n_layers
    assert list(sp.weight_formats) == ["Q2_K", "Q3_K", "Q4_0", "Q4_K", "Q5_0", "Q5_K", "Q6_K", "Q8_0", "F16"]
    assert enc.choice_value["weight_bits"].tolist() == [2, 3, 4, 4, 5, 5, 6, 8, 16]
    assert SearchSpace.from_dict(sp.to_dict()).to_dict() == sp.to_dict()
    assert "weight_formats" not in SearchSpace().to_dict()            # older spaces are unchanged
    with pytest.raises(QuantmooError, match="'weight_formats'.*'int'"):
        SearchSpace(weight_formats=("int", "Q4_K"))
    with pytest.raises(QuantmooError, match="'weight_bits' of SearchSpace must hold one value"):
        SearchSpace(weight_formats=("Q4_K",), weight_bits=(4, 8))
    with pytest.raises(QuantmooError, match="'weight_formats' values of SearchSpace must be in"):
        SearchSpace.llama_cpp(types=("Q4_K", "IQ4_XS"))


def test_sizes_are_exact_bits_per_weight(llama2):
    p = QuantizationProblem(llama2, "arm_dot", space=SearchSpace.llama_cpp())
    enc = p.encoding
    X = np.array([enc.uniform_genome(b, 16) for b in (2, 3, 4, 5, 6, 8, 16)])
    size = p.evaluate_all(X)["size_mb"] * 1e6
    norms = 4 * llama2.other_params                                     # F32 in GGUF
    bpw = (size - norms) * 8 / (llama2.n_params - llama2.other_params)
    np.testing.assert_allclose(bpw, [2.625, 3.4375, 4.5, 5.5, 6.5625, 8.5, 16.0], rtol=0, atol=1e-12)
    # 4096 x 4096 Q4_K: 4096 rows * 16 blocks * 144 bytes
    assert packed_bytes(4096 * 4096, 4, out_channels=4096, in_features=4096, weight_format="Q4_K") == 9437184


def test_hardware_executes_types_with_8bit_activations(llama2):
    p = QuantizationProblem(llama2, "arm_dot", space=SearchSpace.llama_cpp())
    prec = dict(zip(p.space.weight_formats, p.costs.precision[1]))      # a q_proj
    mode = dict(zip(p.space.weight_formats, p.costs.mode[1]))
    # SDOT int8: 4-bit types are unpacked to int8, Q8_0 runs natively, F16 in fp16
    assert prec["Q4_K"] == "int8" and prec["Q8_0"] == "int8" and prec["F16"] == "fp16"
    assert mode["Q4_K"] == 1 and mode["Q8_0"] == 0


def test_config_round_trip_names_the_type(llama2, tmp_path):
    enc = SearchSpace.llama_cpp().bind(llama2)
    x = enc.uniform_genome(4, 16)
    x[5] = enc.space.weight_formats.index("Q6_K")
    cfg = enc.decode(x, hardware="arm_dot")
    lq = cfg.layers[llama2.layer_names[5]]
    assert lq.weight_format == "Q6_K" and lq.weight_bits == 6
    text = cfg.to_yaml()
    assert "weight_format: Q6_K" in text and "weight_format: Q4_0" in text
    back = QuantConfig.load(cfg.save(tmp_path / "c.yaml"))
    assert back.config_hash() == cfg.config_hash()
    np.testing.assert_array_equal(enc.encode(back), x)
    # quantmoo's own grids keep their old form and hash (no weight_format field)
    assert "weight_format" not in LayerQuant().to_dict()
    assert LayerQuant(weight_format="q4_k").weight_format == "Q4_K"
    with pytest.raises(QuantmooError, match="'weight_bits' in 'layers.a' must be 4 for weight_format Q4_K"):
        QuantConfig.from_dict({"layers": {"a": {"weight_format": "Q4_K", "weight_bits": 8}}})


def test_evaluate_reproduces_search_numbers(llama2):
    p = QuantizationProblem(llama2, "arm_dot", space=SearchSpace.llama_cpp())
    names, X = rule_presets(p, presets=("Q4_K_M",))
    cfg = p.encoding.decode(X[0], hardware="arm_dot")
    out = quantmoo.evaluate(llama2, "arm_dot", cfg)
    assert out["size_mb"] == pytest.approx(p.evaluate_all(X)["size_mb"][0], rel=1e-12)


def test_evaluator_applies_the_real_grid():
    m = zoo.load("digits")
    ev = m.evaluator
    name = m.layer_names[1]
    w = ev.fp32_weight(name)
    wq = ev.quantized_weight(name, LayerQuant(weight_format="Q4_0"))
    np.testing.assert_array_equal(wq, ggml.fake_quantize(w, "Q4_0"))
    assert not np.array_equal(wq, ev.quantized_weight(name, LayerQuant(weight_bits=4, granularity="per_group",
                                                                        group_size=32)))


# -- llama.cpp presets reproduce published bits per weight -------------------------------------------------
def test_q4_k_m_bits_per_weight_published(llama2, llama3):
    # llama.cpp's report: Llama-3-8B Q4_K_M 4685.30 MiB, 4.894 BPW; Llama-2-7B Q4_K_M 4.844 BPW
    assert round(preset_bpw(llama3, "Q4_K_M"), 3) == 4.894
    assert round(preset_bpw(llama2, "Q4_K_M"), 3) == 4.844
    mib = preset_bpw(llama3, "Q4_K_M") * llama3.n_params / 8 / 2 ** 20
    assert round(mib, 2) == 4685.30


def test_llama3_sizes_match_llama_quantize_table(llama3):
    # tools/quantize/quantize.cpp describes each file type by its size on Llama-3-8B in GiB (two
    # decimals; Q4_0 4.334 and Q8_0 7.947 print one hundredth under the hand-written 4.34 / 7.96)
    published = {"Q8_0": 7.96, "Q6_K": 6.14, "Q5_K_M": 5.33, "Q4_K_M": 4.58, "Q4_0": 4.34, "Q3_K_M": 3.74}
    for preset, gib in published.items():
        ours = preset_bpw(llama3, preset) * llama3.n_params / 8 / 2 ** 30
        assert abs(ours - gib) < 0.015, preset


def test_q4_0_every_matrix_4_5(llama2):
    per = preset_bpw(llama2, "Q4_0", per_layer=True)
    assert per.pop("lm_head") == ("Q6_K", 6.5625)             # llama.cpp's output rule
    assert set(per.values()) == {("Q4_0", 4.5)}


def test_q4_k_m_and_q3_k_m_rules_by_hand(llama2):
    t = preset_types(llama2, "Q4_K_M")
    assert t["lm_head"] == "Q6_K" and t["embed_tokens"] == "Q4_K"
    assert [i for i in range(32) if t[f"layers.{i}.self_attn.v_proj"] == "Q6_K"] == \
        [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert t["layers.30.mlp.down_proj"] == "Q6_K" and t["layers.16.mlp.down_proj"] == "Q4_K"
    t3 = preset_types(llama2, "Q3_K_M")
    assert t3["layers.0.self_attn.v_proj"] == t3["layers.1.self_attn.v_proj"] == "Q5_K"
    assert t3["layers.2.self_attn.v_proj"] == "Q4_K" and t3["layers.5.self_attn.o_proj"] == "Q4_K"
    assert t3["layers.1.mlp.down_proj"] == "Q5_K" and t3["layers.2.mlp.down_proj"] == "Q4_K"  # n/16 = 2
    assert t3["layers.5.self_attn.q_proj"] == "Q3_K"


def test_presets_in_llama_space_are_exact(llama3):
    p = QuantizationProblem(llama3, "arm_dot", space=SearchSpace.llama_cpp())
    names, X = rule_presets(p)
    size = p.evaluate_all(X)["size_mb"]
    bpw = size * 1e6 * 8 / llama3.n_params
    np.testing.assert_allclose(bpw, [preset_bpw(llama3, n.split()[-1]) for n in names], rtol=1e-12)
    assert [n.split()[-1] for n in names] == list(PRESETS)


def test_gguf_names():
    m = zoo.load("llama2-7b")
    assert gguf_name(m, "layers.3.self_attn.o_proj") == "blk.3.attn_output.weight"
    assert gguf_name(m, "layers.3.mlp.gate_proj") == "blk.3.ffn_gate.weight"
    assert gguf_name(m, "embed_tokens") == "token_embd.weight" and gguf_name(m, "lm_head") == "output.weight"
    g = zoo.load("gpt2")                                   # tied: GGUF stores token_embd only
    assert gguf_name(g, "lm_head") == "token_embd.weight"
    assert gguf_name(g, "h.2.attn.c_attn") == "blk.2.attn_qkv.weight"


def test_front_reports_stored_bits_per_weight(llama2):
    from quantmoo.search.front import solutions_from_genomes
    p = QuantizationProblem(llama2, "arm_dot", space=SearchSpace.llama_cpp())
    enc = p.encoding
    X = np.array([enc.uniform_genome(4, 16, weight_format="Q4_K"),
                  enc.uniform_genome(6, 16)])
    sols = solutions_from_genomes(p, X)
    assert [s.avg_weight_bits for s in sols] == [4.5, 6.5625]


def test_repair_names_the_type_llama_cpp_really_stores():
    from quantmoo.search.operators.repair import repair_genomes
    m = zoo.load("digits")                       # rows of 64, 256, 256, 128
    sp = SearchSpace.llama_cpp()
    enc = sp.bind(m)
    f = sp.weight_formats
    X = np.array([[f.index(t)] * m.n_layers for t in ("Q2_K", "Q4_K", "Q5_K", "Q6_K")])
    Y = [[f[g] for g in row] for row in repair_genomes(X, enc)]
    assert Y == [["Q4_0", "Q2_K", "Q2_K", "Q4_0"], ["Q5_0", "Q4_K", "Q4_K", "Q5_0"],
                 ["Q5_K", "Q5_K", "Q5_K", "Q5_K"],          # its fallback Q5_1 is not a choice: kept
                 ["Q8_0", "Q6_K", "Q6_K", "Q8_0"]]
    assert sp.bind(zoo.load("llama2-7b")).alias is None   # 4096 / 11008 columns: every type fits


def test_pinned_type(llama2):
    sp = SearchSpace.llama_cpp(pinned={"lm_head": {"weight_format": "q8_0"}})
    enc = sp.bind(llama2)
    g = llama2.index("lm_head")
    assert enc.xl[g] == enc.xu[g] == sp.weight_formats.index("Q8_0")
    with pytest.raises(QuantmooError, match="pinned 'weight_format' of layer 'lm_head' must be one of"):
        SearchSpace.llama_cpp(types=("Q4_K", "Q6_K"), pinned={"lm_head": {"weight_format": "Q8_0"}})


def test_prior_ranks_types_by_their_kernel_error(llama2):
    p = QuantizationProblem(llama2, "arm_dot", space=SearchSpace.llama_cpp())
    assert p.accuracy.kind == "prior"
    row = dict(zip(p.space.weight_formats, p.accuracy.separable(0)[1]))      # a q_proj
    order = ["F16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "Q3_K", "Q2_K"]
    assert [row[t] for t in order] == sorted(row.values())
    # Gaussian weights, blocks of 32: step = max|w| / 8 ~ 2.1 sigma / 8, NSR ~ step^2 / 12 = 0.6% (measured 0.74%)
    assert 0.005 < ggml.gaussian_nsr("Q4_0") < 0.01


def test_rules_on_gguf_named_layers():
    """A model whose layers carry GGUF names (as a GGUF importer gives them) gets the same types."""
    from quantmoo.models.spec import LayerSpec, ModelSpec
    hf = zoo.load("tinyllama-1.1b")
    layers = [LayerSpec(gguf_name(hf, l)[: -len(".weight")], l.kind, l.weight_shape, l.macs, l.act_in, l.act_out)
              for l in hf.layers]
    gg = ModelSpec("tinyllama-gguf", layers, meta={"family": "decoder"})
    for preset in PRESETS:
        a = preset_types(hf, preset)
        b = preset_types(gg, preset)
        assert [a[l.name] for l in hf.layers] == [b[l.name] for l in gg.layers], preset
        assert list(preset_bpw(gg, preset, per_layer=True).values()) == \
            list(preset_bpw(hf, preset, per_layer=True).values())


def test_uniform_seeds_and_hv_reference_span_every_type(llama2):
    """The uniform configs of a llama.cpp space are one per type (all-Q2_K .. all-F16), so the hypervolume
    reference spans the lowest-bit type's loss and F16's size; it used to be all-Q8_0 only, which left
    every config worse than Q8_0 outside the box."""
    from quantmoo.accuracy.tables import prior_table
    from quantmoo.search.operators import uniform_precision_seeds
    from quantmoo.search.run import hv_reference
    sp = SearchSpace.llama_cpp()
    enc = sp.bind(llama2)
    S = uniform_precision_seeds(enc)
    C = enc.choices(S)
    assert (C == C[:, :1]).all()
    assert sorted(enc.choice_value["weight_format"][C[:, 0]].tolist()) == sorted(sp.weight_formats)
    p = QuantizationProblem(llama2, "arm_dot", sp, objectives=("accuracy_loss", "size_mb"),
                            accuracy=prior_table(llama2, enc))
    v = p.evaluate_all(S)
    assert np.allclose(hv_reference(p), 1.1 * np.array([v["accuracy_loss"].max(), v["size_mb"].max()]))
    q2k = enc.uniform_genome(8, 16, weight_format="Q2_K")
    f16 = enc.uniform_genome(8, 16, weight_format="F16")
    w = p.evaluate_all(np.stack([q2k, f16]))
    assert hv_reference(p)[0] >= 1.1 * w["accuracy_loss"][0] and hv_reference(p)[1] >= 1.1 * w["size_mb"][1]


def test_exact_start_genomes_name_the_stored_types():
    """The exact front joined to the measured search's start names the types llama.cpp really stores, as the
    search's own genomes do (the repair leaves them unchanged): an unrepaired genome priced a Q2_K that a 576-column
    row stores as Q4_0 at Q2_K's latency, and could be measured a second time under its other name."""
    import importlib
    from quantmoo.search.operators.repair import repair_genomes
    inloop = importlib.import_module("quantmoo.search.inloop")
    m = zoo.load("digits")                       # rows of 64 and 128 columns hold no K-quant
    obj = ("accuracy_loss", "size_mb")
    p = QuantizationProblem(m, "arm_dot", space=SearchSpace.llama_cpp(), objectives=obj)
    X, F, n_exact = inloop._with_exact_front(p, obj, np.zeros((0, p.n_var), dtype=np.int64), np.zeros((0, 2)))
    assert n_exact == len(X) > 1
    assert np.array_equal(repair_genomes(X, p.encoding), X)
