"""The architecture zoo: parameter counts a reader can check by hand, workloads, loading, errors."""
import json

import pytest

from quantmoo import zoo
from quantmoo.errors import QuantmooError
from quantmoo.models import zoo as registry
from quantmoo.models.spec import ModelSpec


# -- exact parameter counts ------------------------------------------------------------------------

@pytest.mark.parametrize("name, n_params", [
    ("resnet50", 25_557_032),          # torchvision: weights + fc bias + BatchNorm gamma/beta
    ("mobilenet_v2", 3_504_872),       # torchvision, width 1.0, 1000 classes
    ("bert-base", 109_482_240),        # bert-base-uncased BertModel, pooler included
    ("gpt2", 124_439_808),             # tied LM head counted once
    ("llama2-7b", 6_738_415_616),
    ("llama3-8b", 8_030_261_248),
    ("mistral-7b", 7_241_732_096),
    ("tinyllama-1.1b", 1_100_048_384),
    ("resnet18", 11_689_512),
    ("resnet101", 44_549_160),
])
def test_exact_parameter_counts(name, n_params):
    assert zoo.load(name).n_params == n_params


def test_every_builtin_matches_its_published_count():
    # builtin.yaml carries the published count of each entry; a typo in an entry shows up here.
    for name, entry in registry.builtin_entries().items():
        assert zoo.load(name).n_params == entry["n_params"], name


def test_llama2_count_by_hand():
    h, ffn, vocab, L = 4096, 11008, 32000, 32
    per_block = 4 * h * h + 3 * h * ffn + 2 * h        # q, k, v, o + gate, up, down + 2 RMSNorms
    total = 2 * vocab * h + L * per_block + h          # untied embed/lm_head + blocks + final norm
    assert total == 6_738_415_616
    m = zoo.load("llama2-7b")
    assert m.n_layers == 2 + 7 * L
    assert m.other_params == (2 * L + 1) * h
    assert m.layers[0].name == "embed_tokens" and m.layers[-1].name == "lm_head"
    assert m.layers[1].name == "layers.0.self_attn.q_proj"
    assert all(l.extra_params == 0 for l in m.layers)    # no biases in Llama


def test_gpt2_tied_head_is_one_row_with_decode_macs():
    m = zoo.load("gpt2")
    heads = [l for l in m.layers if l.kind == "lm_head"]
    assert [l.name for l in heads] == ["lm_head"]
    assert not any(l.kind == "embedding" for l in m.layers)   # the shared matrix is counted once
    assert heads[0].weight_shape == (50257, 768)
    assert heads[0].macs == 768 * 50257                       # one decoded token
    assert m.meta["tied"] == {"lm_head": "wte"}
    assert m.layer_names[:4] == ["h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj"]
    assert m.layers[0].weight_shape == (3 * 768, 768)


def test_bert_rows_and_workload():
    m = zoo.load("bert-base")
    assert m.workload == {"batch": 1, "seq_len": 128}
    emb = m.layers[0]
    assert (emb.name, emb.kind, emb.macs, emb.act_in, emb.act_out) == \
        ("embeddings.word_embeddings", "embedding", 0, 128, 128 * 768)
    q = m.layers[1]
    assert q.name == "encoder.layer.0.attention.self.query"
    assert q.macs == 128 * 768 * 768 and q.extra_params == 768 and q.block == 0
    assert m.layers[-1].name == "pooler.dense" and m.layers[-1].block is None
    # position (512) + token-type (2) tables and 2*12+1 LayerNorms (weight + bias) are unquantized
    assert m.other_params == 512 * 768 + 2 * 768 + 25 * 2 * 768


# -- CNN MACs and structure ----------------------------------------------------------------------

def test_cnn_macs_at_224():
    r50 = zoo.load("resnet50")
    assert r50.workload == {"batch": 1, "image_size": 224}
    assert abs(r50.macs - 4.09e9) <= 0.01 * 4.09e9
    mb = zoo.load("mobilenet_v2")
    assert abs(mb.macs - 0.30e9) <= 0.03 * 0.30e9


def test_resnet50_layers_by_hand():
    m = zoo.load("resnet50")
    conv1 = m.layers[m.index("conv1")]
    # 112x112 output, 64 channels, 3 input channels, 7x7 kernel
    assert conv1.macs == 112 * 112 * 64 * 3 * 7 * 7
    assert (conv1.act_in, conv1.act_out) == (3 * 224 * 224, 64 * 112 * 112)
    conv2 = m.layers[m.index("layer2.0.conv2")]   # v1.5: stride 2 on the 3x3 conv
    assert conv2.act_in == 128 * 56 * 56 and conv2.act_out == 128 * 28 * 28
    fc = m.layers[-1]
    assert (fc.name, fc.weight_shape, fc.macs, fc.extra_params) == ("fc", (1000, 2048), 2048 * 1000, 1000)
    # the last conv of a bottleneck and the downsample that add together share a tie group
    assert m.layers[m.index("layer2.0.conv3")].tie_group == m.layers[m.index("layer2.0.downsample.0")].tie_group
    assert m.layers[m.index("layer2.0.conv1")].tie_group is None
    assert m.n_layers == 1 + 16 * 3 + 4 + 1
    assert sorted(set(m.blocks()) - {-1}) == list(range(16))


def test_mobilenet_depthwise_rows():
    m = zoo.load("mobilenet_v2")
    dw = m.layers[m.index("features.2.conv.1.0")]
    assert dw.kind == "depthwise_conv" and dw.weight_shape == (96, 1, 3, 3)
    assert dw.macs == 56 * 56 * 96 * 9        # stride 2 from 112x112, one input channel per group


def test_image_size_override_scales_macs():
    a, b = zoo.load("resnet18"), zoo.load("resnet18", image_size=448)
    conv_a = a.layers[a.index("layer1.0.conv1")]
    conv_b = b.layers[b.index("layer1.0.conv1")]
    assert conv_b.macs == 4 * conv_a.macs
    assert b.n_params == a.n_params


# -- decoder workloads ---------------------------------------------------------------------------

def test_decode_vs_prefill_macs_scale_with_tokens():
    dec = zoo.load("llama2-7b")
    assert dec.workload == {"batch": 1, "mode": "decode", "context": 1024}
    pre = zoo.load("llama2-7b", mode="prefill", prefill_tokens=512)
    assert pre.workload == {"batch": 1, "mode": "prefill", "prefill_tokens": 512, "context": 512}
    for a, b in zip(dec.layers, pre.layers):
        assert b.macs == 512 * a.macs and b.act_out == 512 * a.act_out
    # linear MACs per token are the weight count (embedding lookup has none)
    assert dec.macs == dec.quantizable_params - 32000 * 4096
    # attention score/value matmuls: tokens * context * head_dim * n_heads * 2 per block
    assert dec.meta["attention_macs_per_layer"] == 1 * 1024 * 128 * 32 * 2
    assert dec.meta["attention_macs"] == 32 * 1024 * 128 * 32 * 2
    assert zoo.load("llama2-7b", context=4096).meta["attention_macs"] == 4 * dec.meta["attention_macs"]
    assert zoo.load("llama2-7b", batch=4).macs == 4 * dec.macs


def test_prefill_context_must_cover_prompt():
    with pytest.raises(QuantmooError, match="'context'.*>= 'prefill_tokens'"):
        zoo.load("gpt2", mode="prefill", prefill_tokens=64, context=32)
    with pytest.raises(QuantmooError, match="'prefill_tokens'.*mode='prefill'"):
        zoo.load("gpt2", prefill_tokens=64)


# -- Hugging Face configs ------------------------------------------------------------------------

SMALL_GQA = {
    "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 4, "intermediate_size": 688, "vocab_size": 1000, "tie_word_embeddings": False,
}


def test_gqa_from_config_file_matches_hand_count(tmp_path):
    (tmp_path / "tiny-gqa").mkdir()
    (tmp_path / "tiny-gqa" / "config.json").write_text(json.dumps(SMALL_GQA))
    # head_dim = 256 / 8 = 32; k_proj and v_proj have 4 * 32 = 128 outputs.
    # embed_tokens + lm_head:      2 * 1000 * 256
    # per block: q + o             2 * 256 * 256
    #            k + v             2 * 256 * 128
    #            gate + up + down  3 * 256 * 688
    #            2 RMSNorms        2 * 256
    # final RMSNorm                256
    expected = 2 * 1000 * 256 + 4 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 688 + 2 * 256) + 256
    assert expected == 3_414_272
    for source in (tmp_path / "tiny-gqa", tmp_path / "tiny-gqa" / "config.json", str(tmp_path / "tiny-gqa")):
        m = zoo.load(source)
        assert m.n_params == expected
    assert m.name == "tiny-gqa"
    k = m.layers[m.index("layers.0.self_attn.k_proj")]
    assert k.weight_shape == (128, 256)
    assert m.meta["kv_cache_elements"] == 2 * 4 * 1024 * 128


def test_from_hf_config_matches_zoo_entries():
    llama2 = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
              "tie_word_embeddings": False}
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
            "vocab_size": 50257}
    bert = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 3072, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    for cfg, name in ((llama2, "llama2-7b"), (gpt2, "gpt2"), (bert, "bert-base")):
        a, b = zoo.from_hf_config(cfg), zoo.load(name)
        assert [l.to_dict() for l in a.layers] == [l.to_dict() for l in b.layers]
        assert a.n_params == b.n_params and a.workload == b.workload


def test_from_hf_config_qwen2_biases_and_tied_head():
    # q, k, v carry biases in Qwen2; a tied head is a single lm_head row.
    cfg = dict(SMALL_GQA, model_type="qwen2", tie_word_embeddings=True)
    m = zoo.from_hf_config(cfg)
    untied = zoo.from_hf_config(SMALL_GQA)
    assert m.n_params == untied.n_params - 1000 * 256 + 4 * (256 + 128 + 128)
    assert [l.name for l in m.layers if l.kind in ("embedding", "lm_head")] == ["lm_head"]


def test_from_hf_config_minilm_like_bert():
    # all-MiniLM-L6-v2 (BERT, hidden 384, 6 layers, FFN 1536): a second encoder count by hand.
    cfg = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
           "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    h, f = 384, 1536
    block = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
    expected = 30522 * h + 512 * h + 2 * h + 2 * h + 6 * block + (h * h + h)
    assert expected == 22_713_216
    assert zoo.from_hf_config(cfg, seq_len=256).n_params == expected


def test_from_hf_config_missing_field_names_it(tmp_path):
    cfg = dict(SMALL_GQA)
    del cfg["hidden_size"]
    with pytest.raises(QuantmooError, match="config.json: missing field 'hidden_size'"):
        zoo.from_hf_config(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuantmooError, match=r"config\.json: missing field 'hidden_size'"):
        zoo.load(tmp_path)
    with pytest.raises(QuantmooError, match="field 'vocab_size' must be an integer >= 1; got '1000'"):
        zoo.from_hf_config(dict(SMALL_GQA, vocab_size="1000"))
    with pytest.raises(QuantmooError, match="missing field 'model_type'"):
        zoo.from_hf_config({"hidden_size": 8})


def test_from_hf_config_unsupported_type_lists_supported():
    with pytest.raises(QuantmooError, match=r"unsupported model_type 'falcon'.*\{bert, gpt2, llama, mistral, qwen2\}"):
        zoo.from_hf_config({"model_type": "falcon"})


def test_from_hf_config_bad_heads():
    # the message names the config.json fields, not the builder's argument names
    with pytest.raises(QuantmooError, match="'num_key_value_heads'.*must divide 'num_attention_heads'"):
        zoo.from_hf_config(dict(SMALL_GQA, num_key_value_heads=3))


# -- YAML round trip -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet50", "gpt2", "tinyllama-1.1b"])
def test_yaml_round_trip(tmp_path, name):
    m = zoo.load(name)
    path = tmp_path / f"{name}.yaml"
    m.to_yaml(path)
    back = zoo.load(path)                      # load() dispatches spec YAMLs to ModelSpec.from_yaml
    assert back.layers == m.layers
    assert back.n_params == m.n_params and back.workload == m.workload and back.meta == m.meta
    assert back.spec_hash() == m.spec_hash()
    with pytest.raises(QuantmooError, match="allowed overrides are {}"):
        zoo.load(path, context=4096)


# -- registry and errors -------------------------------------------------------------------------

def test_unknown_name_lists_known_models():
    with pytest.raises(QuantmooError) as e:
        zoo.load("foo")
    msg = str(e.value)
    assert msg.startswith("Unknown model 'foo'; known models are {")
    assert all(n in msg for n in ("bert-base", "gpt2", "llama2-7b", "resnet50", "digits", "minilm-l6", "smollm2-135m"))
    assert "(or pass a path to a spec YAML, a config.json, an ONNX or a GGUF file)" in msg
    with pytest.raises(QuantmooError, match="did you mean 'resnet50'"):
        zoo.load("resnet5")


def test_unknown_override_lists_allowed():
    with pytest.raises(QuantmooError, match=r"Unknown override\(s\) \['seq_len'\] for model 'llama2-7b'; "
                                            r"allowed overrides are \{batch, mode, context, prefill_tokens\}"):
        zoo.load("llama2-7b", seq_len=128)
    with pytest.raises(QuantmooError, match=r"allowed overrides are \{batch, image_size\}"):
        zoo.load("resnet50", context=10)
    with pytest.raises(QuantmooError, match=r"allowed overrides are \{name, batch, seq_len\}"):
        zoo.from_hf_config({"model_type": "bert"}, mode="decode")


def test_names_are_case_and_separator_insensitive():
    assert zoo.load("ResNet50").name == "resnet50"
    assert zoo.load("mobilenet-v2").name == "mobilenet_v2"


def test_missing_file_is_reported():
    with pytest.raises(QuantmooError, match="File not found"):
        zoo.load("no/such/spec.yaml")


def test_register_and_describe():
    def tiny(*, batch=1):
        return zoo.transformer("tiny", hidden_size=16, n_layers=1, n_heads=2, ffn_size=32, vocab_size=10,
                               batch=batch)
    registry.register("tiny-test", tiny, "a two-layer test model")
    try:
        assert "tiny-test" in zoo.names() and zoo.names() == sorted(zoo.names())
        assert zoo.load("tiny-test", batch=2).workload["batch"] == 2
        with pytest.raises(QuantmooError, match="already registered"):
            registry.register("tiny-test", tiny)
        rows = {r["name"]: r for r in zoo.describe()}
        assert rows["tiny-test"]["description"] == "a two-layer test model"
        assert rows["llama2-7b"]["n_params"] == 6_738_415_616 and rows["llama2-7b"]["n_layers"] == 226
        assert set(rows["resnet50"]) == {"name", "n_params", "n_layers", "macs", "description"}
    finally:
        registry.unregister("tiny-test")
    assert "tiny-test" not in zoo.names()


def test_transformer_builder_validates():
    with pytest.raises(QuantmooError, match="The 'norm' of transformer 'x' must be one of"):
        zoo.transformer("x", hidden_size=8, n_layers=1, n_heads=2, ffn_size=8, vocab_size=4, norm="batchnorm")
    with pytest.raises(QuantmooError, match="'seq_len' option applies to encoders only"):
        zoo.transformer("x", hidden_size=8, n_layers=1, n_heads=2, ffn_size=8, vocab_size=4, seq_len=8)
    with pytest.raises(QuantmooError, match="'hidden_size'.*divisible by 'n_heads'"):
        zoo.transformer("x", hidden_size=10, n_layers=1, n_heads=4, ffn_size=8, vocab_size=4)
