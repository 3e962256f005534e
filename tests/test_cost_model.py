"""The hardware cost model: a plain per-genome reference, hand-checked rooflines, and facts."""
from pathlib import Path

import numpy as np
import pytest

import quantmoo
from quantmoo import QuantConfig, SearchSpace
from quantmoo.config import LayerQuant
from quantmoo.hardware.cost import KV_BYTES_PER_ELEMENT, PRECISION_BITS, decoder_attention
from quantmoo.models.spec import LayerSpec, ModelSpec
from quantmoo.quant import packed_bytes
from quantmoo.search.problem import QuantizationProblem

TOY = Path(__file__).parent / "data" / "toy_profile.yaml"


# -- the per-genome reference implementation: plain Python, one config at a time ----------------
def reference_costs(model, hw, cfg, kv_bits=16):
    lat = energy = wbytes = 0.0
    live = []
    prev = None
    for layer in model.layers:
        q = cfg.layers[layer.name]
        dev_name, mode, prec = hw.resolve(q.weight_bits, q.activation_bits)
        dev = hw.main if dev_name == hw.main.name else hw.fallback
        wb = float(packed_bytes(layer.n_params, q.weight_bits, q.weight_scheme, q.granularity, q.group_size,
                                out_channels=layer.out_channels, in_features=layer.in_features))
        wb += 2 * layer.extra_params
        abits = q.activation_bits if mode == "native" else PRECISION_BITS[prec]
        a_in, a_out = layer.act_in * abits / 8, layer.act_out * abits / 8
        # an embedding lookup reads act_in rows of the table
        rows = min(layer.act_in, layer.out_channels) / layer.out_channels if layer.kind == "embedding" else 1.0
        moved = wb * rows + a_in + a_out
        t = max(layer.macs / (dev.peak_macs_per_s[prec] * dev.compute_fraction),
                moved / (dev.bandwidth_bytes_per_s * dev.bandwidth_fraction)) + dev.layer_overhead_s
        if mode == "unpacked":
            t += layer.n_params * rows * dev.unpack_s_per_weight
        e = (layer.macs * dev.e_mac_pj[prec] + moved * dev.e_dram_pj_per_byte + 2 * moved * dev.e_sram_pj_per_byte
             + dev.static_power_w * t * 1e12)
        if prev is not None:
            if prev[0] != q.activation_bits:
                tc = layer.act_in * hw.convert_s_per_element
                t += tc
                e += layer.act_in * hw.convert_pj_per_element + hw.main.static_power_w * tc * 1e12
            if prev[1] != dev_name:
                tp = hw.partition_sync_s + a_in / hw.partition_bytes_per_s
                t += tp
                e += a_in * hw.main.e_dram_pj_per_byte + hw.main.static_power_w * tp * 1e12
        prev = (q.activation_bits, dev_name)
        lat += t
        energy += e
        wbytes += wb
        live.append(a_in + a_out)
    size = wbytes + 2 * model.other_params
    kv = 0.0
    att = decoder_attention(model, hw, kv_bits)
    if att is not None:  # a constant per config: checked by hand in test_decoder_attention_by_hand
        lat, energy, kv = lat + att["latency_s"], energy + att["energy_pj"], att["kv_cache_bytes"]
        live.append(att["live_bytes"])
    return {"size_mb": size / 1e6, "latency_ms": lat * 1e3, "energy_mj": energy * 1e-9,
            "memory_mb": (size + kv + max(live)) / 1e6}


@pytest.mark.parametrize("hw_name", quantmoo.hardware.names())
def test_vectorised_equals_reference_on_random_population(hw_name):
    model = quantmoo.zoo.load("resnet50")
    model = ModelSpec(model.name, model.layers[:12], model.workload, model.other_params)
    prob = QuantizationProblem(model, hw_name, space=SearchSpace(weight_bits=(2, 3, 4, 5, 6, 8, 16),
                                                                  activation_bits=(4, 8, 16)))
    rng = np.random.default_rng(0)
    X = rng.integers(prob.xl, prob.xu + 1, size=(40, prob.n_var))
    vals = prob.evaluate_all(X)
    for i, x in enumerate(X):
        ref = reference_costs(model, prob.hardware, prob.encoding.decode(x))
        for k, v in ref.items():
            assert vals[k][i] == pytest.approx(v, rel=1e-9), (hw_name, k)


def two_layer_model():
    return ModelSpec("two", [
        LayerSpec("a", "linear", (256, 1024), macs=256 * 1024, act_in=1024, act_out=256),
        LayerSpec("b", "linear", (10, 256), macs=10 * 256, act_in=256, act_out=10),
    ])


def test_two_layer_roofline_by_hand():
    hw = quantmoo.hardware.load(TOY)
    model = two_layer_model()
    cfg = QuantConfig.uniform(model, 8, 8, weight_scheme="symmetric", granularity="per_channel")
    out = quantmoo.evaluate(model, hw, cfg)
    # layer a: 262144 int8 weights + 256 fp16 scales; int8 activations 1024 in, 256 out
    wa, wb = 262144 + 256 * 2, 2560 + 10 * 2
    moved_a, moved_b = wa + 1024 + 256, wb + 256 + 10
    # both memory-bound at 10 GB/s (compute: 262144 MAC / 1e12 MAC/s = 0.26 us), + 10 us overhead
    lat_a = moved_a / 10e9 + 10e-6
    lat_b = moved_b / 10e9 + 10e-6
    assert out["latency_ms"] == pytest.approx((lat_a + lat_b) * 1e3, rel=1e-12)
    assert out["latency_ms"] == pytest.approx(0.0466782, rel=1e-9)
    assert out["size_mb"] == pytest.approx((wa + wb) / 1e6) == pytest.approx(0.265236)
    e_a = 262144 * 0.5 + moved_a * 100 + 2 * moved_a * 1 + 1.0 * lat_a * 1e12
    e_b = 2560 * 0.5 + moved_b * 100 + 2 * moved_b * 1 + 1.0 * lat_b * 1e12
    assert out["energy_mj"] == pytest.approx((e_a + e_b) * 1e-9, rel=1e-12)
    assert out["memory_mb"] == pytest.approx((wa + wb + 1024 + 256) / 1e6)


def test_compute_bound_layer_uses_peak_rate():
    hw = quantmoo.hardware.load(TOY)
    # a conv with high arithmetic intensity: 1e9 MACs on 1e5 weights
    model = ModelSpec("c", [LayerSpec("conv", "conv", (100, 1000), macs=10**9, act_in=1000, act_out=1000)])
    out = quantmoo.evaluate(model, hw, QuantConfig.uniform(model, 8, 8))
    assert out["latency_ms"] == pytest.approx((1e9 / 1e12 + 10e-6) * 1e3)


def chain(n, width=64):
    return ModelSpec("chain", [LayerSpec(f"l{i}", "linear", (width, width), macs=width * width, act_in=width,
                                         act_out=width) for i in range(n)])


def _sum_layers(prob, cfg):
    return sum(r["latency_ms"] for r in prob.breakdown(cfg))


def test_switching_middle_activation_adds_two_converts():
    hw = quantmoo.hardware.load(TOY)
    model = chain(3)
    space = SearchSpace(weight_bits=(8, 16), activation_bits=(8, 16))
    prob = QuantizationProblem(model, hw, space=space)
    base = QuantConfig.uniform(model, 8, 8)
    sw = QuantConfig({**base.layers, "l1": LayerQuant(8, 16)})
    for cfg, n_conv in ((base, 0), (sw, 2)):
        x = prob.encoding.encode(cfg)
        total = prob.evaluate_all(x[None])["latency_ms"][0]
        assert total - _sum_layers(prob, cfg) == pytest.approx(n_conv * 64 * 1e-9 * 1e3, rel=1e-9)


def test_three_fallback_islands_add_six_partitions_toy():
    hw = quantmoo.hardware.load(TOY)
    model = chain(7)
    space = SearchSpace(weight_bits=(8, 16), activation_bits=(8,))
    prob = QuantizationProblem(model, hw, space=space)
    base = QuantConfig.uniform(model, 8, 8)
    # W16A8 has no rule on the toy NPU -> falls back to the CPU
    cfg = QuantConfig({**base.layers, **{f"l{i}": LayerQuant(16, 8) for i in (1, 3, 5)}})
    x = prob.encoding.encode(cfg)
    total = prob.evaluate_all(x[None])["latency_ms"][0]
    # each boundary: 100 us sync + the 64-element input tensor (fp32 on the CPU side or int8) at 1 GB/s
    bd = prob.breakdown(cfg)
    assert sum(r["partition_in"] for r in bd) == 6
    transfer = 0.0
    for i in range(1, 7):
        if bd[i]["partition_in"]:
            bits = 32 if bd[i]["device"] == "fallback" else 8
            transfer += 64 * bits / 8 / 1e9
    assert total - _sum_layers(prob, cfg) == pytest.approx((6 * 100e-6 + transfer) * 1e3, rel=1e-9)


def test_hexagon_three_fallback_layers_six_boundaries():
    model = chain(7, 256)
    prob = QuantizationProblem(model, "hexagon", space=SearchSpace(weight_bits=(2, 8), activation_bits=(8,)))
    base = QuantConfig.uniform(model, 8, 8)
    cfg = QuantConfig({**base.layers, **{f"l{i}": LayerQuant(2, 8) for i in (1, 3, 5)}})
    bd = prob.breakdown(cfg)
    assert [r["device"] for r in bd] == ["main", "fallback"] * 3 + ["main"]
    assert sum(r["partition_in"] for r in bd) == 6
    x = prob.encoding.encode(cfg)
    extra = prob.evaluate_all(x[None])["latency_ms"][0] - _sum_layers(prob, cfg)
    assert extra >= 6 * prob.hardware.partition_sync_s * 1e3


def test_llama_decode_on_ane_is_bandwidth_bound():
    model = quantmoo.zoo.load("llama2-7b")
    space = SearchSpace(weight_bits=(4, 16), activation_bits=(16,), granularities=("per_group",))
    prob = QuantizationProblem(model, "apple_ane", space=space)
    fp16 = prob.evaluate_all(prob.encoding.encode(QuantConfig.uniform(model, 16, 16, granularity="per_group"))[None])
    w4 = prob.evaluate_all(prob.encoding.encode(QuantConfig.uniform(model, 4, 16, granularity="per_group"))[None])
    ratio = w4["latency_ms"][0] / fp16["latency_ms"][0]
    assert 0.2 <= ratio <= 0.4, ratio


def test_arm_dot_vs_neon_compute_bound_ratio_equals_mac_rates():
    # ResNet-50's 3x3 conv of stage 2 at 224: compute-bound at W8A8 on both CPUs
    model = quantmoo.zoo.load("resnet50")
    layer = max(model.layers, key=lambda l: l.macs / max(l.n_params + l.act_in + l.act_out, 1))
    one = ModelSpec("one", [layer])
    cfg = QuantConfig.uniform(one, 8, 8)
    neon, dot = quantmoo.hardware.load("arm_neon"), quantmoo.hardware.load("arm_dot")
    t = {}
    for hw in (neon, dot):
        bd = QuantizationProblem(one, hw).breakdown(cfg)[0]
        assert bd["mode"] == "native" and bd["precision"] == "int8"
        t[hw.name] = bd["latency_ms"] * 1e-3 - hw.main.layer_overhead_s
        # compute-bound: the compute time is the roofline maximum, at the achievable fraction of the peak
        assert t[hw.name] == pytest.approx(
            layer.macs / (hw.main.peak_macs_per_s["int8"] * hw.main.compute_fraction), rel=1e-9)
    rate = {h.name: h.raw["devices"][h.raw["main_device"]] for h in (neon, dot)}
    r = {n: d["macs_per_cycle_per_core"]["int8"]["value"] * d["clock_ghz"]["value"] * d["cores"]["value"]
         * d["achievable"]["compute_fraction"]["value"] for n, d in rate.items()}
    assert t["arm_dot"] / t["arm_neon"] == pytest.approx(r["arm_neon"] / r["arm_dot"], rel=1e-9)


# -- decoder LLMs: KV cache, attention, embedding lookup (issue 16) --------------------------------
def tiny_decoder(**workload):
    from quantmoo.models.transformer import transformer
    return transformer("tiny", hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, ffn_size=128,
                       vocab_size=1000, **workload)


def test_kv_cache_bytes_llama2_7b_by_hand():
    from quantmoo.hardware.cost import kv_cache_bytes
    # 2 (K, V) * 32 layers * 32 kv heads * 128 head_dim * 4096 tokens * 2 bytes
    assert kv_cache_bytes(32, 32, 128, 4096) == 2_147_483_648
    # int8 / int4 caches carry an fp16 scale per 32 elements (llama.cpp q8_0 / q4_0): 34 / 18 bytes per 32
    assert kv_cache_bytes(32, 32, 128, 4096, kv_bits=8) == 2 ** 30 * 34 / 32 == 1_140_850_688
    assert kv_cache_bytes(32, 32, 128, 4096, kv_bits=4) == 2 ** 30 * 18 / 32


def test_llama2_7b_memory_and_latency_grow_with_context():
    """The bug of issue 16: context 128 and 4,096 gave the same latency and memory."""
    out = {}
    for ctx in (128, 4096):
        model = quantmoo.zoo.load("llama2-7b", context=ctx)
        cfg = QuantConfig.uniform(model, 4, 8, granularity="per_group")
        out[ctx] = quantmoo.evaluate(model, "arm_dot", cfg)
    assert out[4096]["size_mb"] == out[128]["size_mb"]
    # the fp16 cache grows by 2 * 32 * 32 * 128 * (4096 - 128) * 2 bytes; the peak live set goes from
    # the LM head's 4096 + 32000 int8 activations to one block's fp32 scores (32 heads x 4096 x 4 B)
    # + fp16 q and output (2 x 32 x 128 x 2 B)
    grow = (2 * 32 * 32 * 128 * (4096 - 128) * 2 + (32 * 4096 * 4 + 2 * 32 * 128 * 2) - (4096 + 32000)) / 1e6
    assert out[4096]["memory_mb"] - out[128]["memory_mb"] == pytest.approx(grow, rel=1e-9)
    assert out[4096]["latency_ms"] > 1.3 * out[128]["latency_ms"]


def test_decoder_attention_by_hand():
    hw = quantmoo.hardware.load(TOY)
    model = tiny_decoder(context=100)
    att = decoder_attention(model, hw, 16)
    assert (att["device"], att["mode"], att["precision"]) == ("npu", "native", "fp16")
    # per block: 1 token x 100 keys x 16 head_dim x 4 heads x 2 = 12,800 MACs; bytes: cache read
    # 2 x 100 x 2 heads x 16 x 2 B = 12,800, new K/V 2 x 2 x 16 x 2 B = 128, fp32 scores 4 x 100 x 4 B
    # written and read = 3,200, q in + out 2 x 4 x 16 x 2 B = 256 -> 16,384 B, memory-bound at 10 GB/s,
    # + two 10 us op overheads
    t_block = 16384 / 10e9 + 20e-6
    assert att["latency_s"] == pytest.approx(2 * t_block, rel=1e-12)
    e_block = 12800 * 2.0 + 16384 * 100 + 2 * 16384 * 1 + 1.0 * t_block * 1e12
    assert att["energy_pj"] == pytest.approx(2 * e_block, rel=1e-12)
    assert att["kv_cache_bytes"] == 2 * 2 * 2 * 16 * 100 * 2
    # the same numbers reach the objectives
    space = SearchSpace(weight_bits=(8, 16), activation_bits=(8, 16))
    prob = QuantizationProblem(model, hw, space=space)
    cfg = QuantConfig.uniform(model, 8, 8)
    total = prob.evaluate_all(prob.encoding.encode(cfg)[None])
    assert total["latency_ms"][0] - _sum_layers(prob, cfg) == pytest.approx(2 * t_block * 1e3, rel=1e-9)


def test_prefill_attention_counts_the_causal_triangle():
    """Prefill used to count the full tokens x context rectangle: a causal prompt's token i sees i + 1 keys."""
    # 2 sequences x 8 prompt tokens attending to themselves: 8 * 9 / 2 = 36 (query, key) pairs each
    model = tiny_decoder(batch=2, mode="prefill", prefill_tokens=8)
    per_block = 2 * 36 * 16 * 4 * 2           # pairs x head_dim x heads x (scores + values)
    assert model.meta["attention_macs_per_layer"] == per_block == 9216
    assert decoder_attention(model, quantmoo.hardware.load(TOY), 16)["macs"] == 2 * per_block   # 2 blocks
    # a chunk of 8 after 92 cached tokens: token i sees 92 + i + 1 keys -> 8 * 92 + 36 pairs
    chunk = tiny_decoder(batch=1, mode="prefill", prefill_tokens=8, context=100)
    assert chunk.meta["attention_macs_per_layer"] == (8 * 92 + 36) * 16 * 4 * 2
    # decoding one token sees the whole context
    assert tiny_decoder(context=100).meta["attention_macs_per_layer"] == 100 * 16 * 4 * 2


def test_kv_cache_precision_is_a_space_option():
    model = quantmoo.zoo.load("llama2-7b", context=4096)
    cfg = QuantConfig.uniform(model, 4, 8, granularity="per_group")
    out = {b: quantmoo.evaluate(model, "arm_dot", cfg, space=SearchSpace(
        weight_bits=(4,), activation_bits=(8,), granularities=("per_group",), kv_cache_bits=b)) for b in (16, 8, 4)}
    kv = {b: 2 * 32 * 32 * 128 * 4096 * KV_BYTES_PER_ELEMENT[b] / 1e6 for b in (16, 8, 4)}
    for b in (8, 4):
        # + q and output of the attention at 2 B (fp16 dot) instead of 1 B (int8 dot): 2 x 32 x 128 B
        assert out[16]["memory_mb"] - out[b]["memory_mb"] == pytest.approx(kv[16] - kv[b] + 8192 / 1e6, rel=1e-9)
    assert out[16]["latency_ms"] > out[8]["latency_ms"] > out[4]["latency_ms"]
    assert out[16]["size_mb"] == out[4]["size_mb"]
    assert SearchSpace.from_dict(SearchSpace(kv_cache_bits=8).to_dict()).kv_cache_bits == 8
    assert "kv_cache_bits" not in SearchSpace().to_dict()
    with pytest.raises(quantmoo.QuantmooError, match=r"'kv_cache_bits' of SearchSpace must be in \{4, 8, 16\}; got 2"):
        SearchSpace(kv_cache_bits=2)


def test_embedding_lookup_reads_one_row_per_token():
    hw = quantmoo.hardware.load(TOY)
    model = ModelSpec("emb", [LayerSpec("emb", "embedding", (1000, 64), macs=0, act_in=4, act_out=4 * 64)])
    out = quantmoo.evaluate(model, hw, QuantConfig.uniform(model, 16, 16))
    # fp16 table of 128,000 B, 4 rows of 128 B read; 4 ids in and 4 x 64 values out at 2 B
    moved = 4 * 128 + 4 * 2 + 256 * 2
    assert out["latency_ms"] == pytest.approx((moved / 10e9 + 10e-6) * 1e3, rel=1e-12)
    assert out["size_mb"] == pytest.approx(128000 / 1e6)
    # 4-bit weights unpacked to fp16 (toy rule W<=6 x A16): only the 4 rows read are unpacked, at 1 ps per weight
    w4 = quantmoo.evaluate(model, hw, QuantConfig.uniform(model, 4, 16, granularity="per_channel"))
    packed = 1000 * 64 / 2 + 1000 * 2                   # 4-bit table + one fp16 scale per row
    moved = packed * 4 / 1000 + 4 * 2 + 256 * 2
    assert w4["latency_ms"] == pytest.approx((moved / 10e9 + 10e-6 + 4 * 64 * 1e-12) * 1e3, rel=1e-12)


def test_tied_lm_head_still_reads_the_whole_matrix():
    from quantmoo.models.transformer import transformer
    tied = transformer("t", hidden_size=64, n_layers=1, n_heads=4, ffn_size=128, vocab_size=1000,
                       tied_embeddings=True, context=8)
    bd = QuantizationProblem(tied, TOY, space=SearchSpace(weight_bits=(16,), activation_bits=(16,))).breakdown(
        QuantConfig.uniform(tied, 16, 16))
    head = bd[-1]
    assert head["layer"] == "lm_head"
    # 1000 x 64 fp16 weights + 64 in + 1000 out at 2 B; 64,000 MACs are far below the memory time
    assert head["latency_ms"] == pytest.approx(((128000 + 128 + 2000) / 10e9 + 10e-6) * 1e3, rel=1e-12)


def test_vectorised_equals_reference_on_a_decoder():
    model = tiny_decoder(context=300)
    for hw_name in ("arm_dot", "hexagon", "apple_ane"):
        prob = QuantizationProblem(model, hw_name, space=SearchSpace(activation_bits=(8, 16), kv_cache_bits=8))
        X = np.random.default_rng(1).integers(prob.xl, prob.xu + 1, size=(20, prob.n_var))
        vals = prob.evaluate_all(X)
        for i, x in enumerate(X):
            ref = reference_costs(model, prob.hardware, prob.encoding.decode(x), kv_bits=8)
            for k, v in ref.items():
                assert vals[k][i] == pytest.approx(v, rel=1e-9), (hw_name, k)


def test_prefill_is_compute_bound_so_latency_and_size_disagree():
    """W4A16 is smaller than W8A8 everywhere, but its fp16 MACs run at half the int8 rate (arm_dot: 16 vs
    32 MAC/cycle): faster in memory-bound decode, slower in compute-bound prefill."""
    space = SearchSpace(weight_bits=(4, 8), activation_bits=(8, 16), granularities=("per_group",), group_size=32)
    out = {}
    for mode, over in (("decode", {}), ("prefill", {"mode": "prefill", "prefill_tokens": 512})):
        model = quantmoo.zoo.load("tinyllama-1.1b", **over)
        for w, a in ((4, 16), (8, 8)):
            cfg = QuantConfig.uniform(model, w, a, granularity="per_group", group_size=32)
            out[mode, w] = quantmoo.evaluate(model, "arm_dot", cfg, space=space)
    for mode in ("decode", "prefill"):
        assert out[mode, 4]["size_mb"] < 0.6 * out[mode, 8]["size_mb"]
    assert out["decode", 4]["latency_ms"] < out["decode", 8]["latency_ms"]
    assert out["prefill", 4]["latency_ms"] > 1.5 * out["prefill", 8]["latency_ms"]


def test_large_population_in_blocks_equals_one_genome_at_a_time():
    # evaluate_all works through blocks of rows; each row must come out as if evaluated alone
    from quantmoo.search import problem as problem_mod
    model = quantmoo.zoo.load("resnet50")
    model = ModelSpec(model.name, model.layers[:6], model.workload, model.other_params)
    prob = QuantizationProblem(model, "hexagon")
    X = np.random.default_rng(2).integers(prob.xl, prob.xu + 1, size=(2 * problem_mod._BLOCK + 3, prob.n_var))
    vals = prob.evaluate_all(X)
    for i in (0, problem_mod._BLOCK - 1, problem_mod._BLOCK, 2 * problem_mod._BLOCK + 2):
        one = prob.evaluate_all(X[i])
        for k, v in one.items():
            assert vals[k][i] == pytest.approx(v[0], rel=1e-12), k
