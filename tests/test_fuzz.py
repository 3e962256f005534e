"""Property-based fuzzing of every input loader (issue 8), plus one plain test per bug it found.

Contract: a mutated input file either loads to an object that is really usable or raises a
``QuantmooError`` whose one-line message names the offending field (or the file, for whole-file
corruption). Nothing else may escape, and the command line turns every such error into one
line on stderr and exit status 2.

The mutation engine and the per-loader seeds/checks live in ``benchmarks/_fuzz.py`` (shared
with ``python -m benchmarks.bench_fuzz``). The default tests run a few dozen derandomized
examples per loader; the ``@pytest.mark.fuzz`` versions run thousands and are skipped unless
``-m fuzz`` or ``QUANTMOO_FUZZ=1`` is given.
"""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import quantmoo
from benchmarks import _fuzz
from quantmoo.cli import main
from quantmoo.config import LayerQuant, QuantConfig
from quantmoo.errors import QuantmooError, check_positive
from quantmoo.io import load_json, load_yaml
from quantmoo.models.spec import LayerSpec, ModelSpec
from quantmoo.results.result import load_result
from quantmoo.search.space import SearchSpace

TOY = Path(__file__).parent / "data" / "toy_profile.yaml"
LOADERS = list(_fuzz.LOADERS)

_FAST = dict(max_examples=40, derandomize=True, deadline=None, database=None,
             suppress_health_check=list(HealthCheck))
_HEAVY = dict(_FAST, max_examples=1500)


def _fuzz_one(name: str, pick: int, rnd) -> None:
    loader = _fuzz.LOADERS[name]
    seeds = loader.seeds()
    label, doc = seeds[pick % len(seeds)]
    m = _fuzz.mutate(doc, rnd, loader.exts, loader.layer_paths)
    with tempfile.TemporaryDirectory() as tmp:
        out = _fuzz.run_case(loader, label, m, Path(tmp))
    assert out.kind != "unexpected", f"{out.detail}\n{_fuzz.describe(loader, label, m)}"


@pytest.mark.parametrize("name", LOADERS)
@settings(**_FAST)
@given(pick=st.integers(0, 63), rnd=st.randoms(use_true_random=False))
def test_fuzz_loader(name, pick, rnd):
    _fuzz_one(name, pick, rnd)


@pytest.mark.fuzz
@pytest.mark.parametrize("name", LOADERS)
@settings(**_HEAVY)
@given(pick=st.integers(0, 63), rnd=st.randoms(use_true_random=False))
def test_fuzz_loader_heavy(name, pick, rnd):
    _fuzz_one(name, pick, rnd)


@pytest.mark.parametrize("name", LOADERS)
def test_seed_documents_are_valid(name, tmp_path):
    """Unmutated seeds load and pass the validity check (so 'valid' outcomes mean something)."""
    loader = _fuzz.LOADERS[name]
    for label, doc in loader.seeds():
        for ext in loader.exts:
            m = _fuzz.Mutation(_fuzz.dump(doc, ext).encode(), ext, whole_file=False)
            out = _fuzz.run_case(loader, label, m, tmp_path)
            assert out.kind == "valid", (label, ext, out.detail, out.message)


# -- the command line: fuzzed files -> one line on stderr, exit status 2 -----------------------

def _cli_files(tmp: Path):
    """Valid companions for the commands (a tiny spec, a config for it, a saved run)."""
    spec = tmp / "tiny.yaml"
    _fuzz.tiny_model().to_yaml(spec)
    cfg = tmp / "cfg.yaml"
    QuantConfig.uniform(_fuzz.tiny_model(), 8, 8).to_yaml(cfg)
    return spec, cfg


def _cli_argv(name: str, path: Path, spec: Path, cfg: Path):
    if name == "hardware profile":
        return ["hardware", "--show", str(path)]
    if name in ("model spec", "HF config.json"):
        return ["evaluate", "--model", str(path), "--hardware", str(TOY), "--config", str(cfg)]
    if name == "QuantConfig":
        return ["evaluate", "--model", str(spec), "--hardware", str(TOY), "--config", str(path)]
    if name == "results.json":
        return [["export", str(path.parent), "--index", "0"], ["plot", str(path.parent)],
                ["evaluate", "--model", str(spec), "--hardware", str(TOY), "--config", str(cfg), "--run",
                 str(path.parent)]][len(path.read_bytes()) % 3]
    return ["search", "--model", str(spec), "--hardware", str(TOY), "--space", str(path), "--pop-size", "4",
            "--n-gen", "1", "--no-progress"]


def _check_cli(name: str, n: int, seed: int, capsys, tmp_path) -> int:
    loader = _fuzz.LOADERS[name]
    spec, cfg = _cli_files(tmp_path)
    rejected = _fuzz.run_loader(loader, n, seed=seed, keep=("rejected",))["kept"]
    assert rejected, "the sample holds no rejected input"
    for label, m in rejected:
        path = loader.write(m, tmp_path / "cli")
        argv = _cli_argv(name, path, spec, cfg)
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err
        why = f"{argv[0]} {m.ops}: {err!r}"
        assert code == 2, why
        assert len(err.splitlines()) == 1 and "Traceback" not in err and ": error: " in err, why
    return len(rejected)


@pytest.mark.parametrize("name", LOADERS)
def test_cli_fuzzed_files_exit_2_with_one_line(name, capsys, tmp_path):
    assert _check_cli(name, 12, seed=1, capsys=capsys, tmp_path=tmp_path) >= 3


@pytest.mark.fuzz
@pytest.mark.parametrize("name", LOADERS)
def test_cli_fuzzed_files_heavy(name, capsys, tmp_path):
    _check_cli(name, 300, seed=2, capsys=capsys, tmp_path=tmp_path)


# -- a config whose layer names do not match the model is an error on every path --------------

def _renamed(model):
    cfg = QuantConfig.uniform(model, 8, 8).to_dict()
    cfg["layers"]["FC1"] = cfg["layers"].pop("fc1")
    return QuantConfig.from_dict(cfg)


@pytest.mark.parametrize("apply", [
    lambda m, c: c.check_model(m),
    lambda m, c: quantmoo.evaluate(m, quantmoo.hardware.load(str(TOY)), c),
    lambda m, c: SearchSpace().encode(c, m),
    lambda m, c: quantmoo.QuantizationProblem(m, quantmoo.hardware.load(str(TOY))).breakdown(c),
], ids=["check_model", "evaluate", "encode", "breakdown"])
@pytest.mark.parametrize("change", ["rename", "drop", "extra"])
def test_layer_names_must_match_the_model(tiny_model, apply, change):
    cfg = QuantConfig.uniform(tiny_model, 8, 8)
    layers = dict(cfg.layers)
    if change == "rename":
        layers["FC1"] = layers.pop("fc1")
    elif change == "drop":
        del layers["fc3"]
    else:
        layers["fc4"] = layers["fc0"]
    bad = QuantConfig(layers, model="tiny")
    with pytest.raises(QuantmooError, match="do not match model 'tiny'"):
        apply(tiny_model, bad)


def test_cli_evaluate_config_for_another_model(tmp_path, capsys):
    spec, _ = _cli_files(tmp_path)
    cfg = tmp_path / "other.yaml"
    _renamed(_fuzz.tiny_model()).to_yaml(cfg)
    assert main(["evaluate", "--model", str(spec), "--hardware", str(TOY), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unknown layer(s) ['FC1']" in err and "missing layer(s) ['fc1']" in err


# -- regression tests: one per bug the fuzzer found ---------------------------------------------

@pytest.mark.parametrize("text", ["[" * 3000 + "]" * 3000, "a: " + "{k: " * 2000 + "1" + "}" * 2000])
def test_yaml_nested_too_deeply_is_a_quantmoo_error(text):
    # was RecursionError out of PyYAML's composer
    with pytest.raises(QuantmooError, match="nested too deeply"):
        load_yaml(text + "\n")


def test_json_nested_too_deeply_is_a_quantmoo_error(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(QuantmooError, match="deep.json.*nested too deeply"):
        load_json(p)


def test_integer_literal_beyond_python_digit_limit(tmp_path):
    # was ValueError ("Exceeds the limit (4300 digits)") from int() inside both parsers
    with pytest.raises(QuantmooError, match="malformed YAML"):
        load_yaml("a: " + "1" * 5000 + "\n")
    p = tmp_path / "big.json"
    p.write_text('{"a": ' + "1" * 5000 + "}")
    with pytest.raises(QuantmooError, match="big.json: malformed JSON"):
        load_json(p)


def test_impossible_yaml_date():
    # was ValueError ("month must be in 1..12") from PyYAML's timestamp constructor
    with pytest.raises(QuantmooError, match="malformed YAML.*month"):
        load_yaml("seed: 2021-13-45\nx: 1\n")


def test_messages_are_one_line_even_with_line_breaks_in_names():
    with pytest.raises(QuantmooError) as e:
        QuantConfig.from_dict({"layers": {"a\nb\u2028c": {"weight_bits": 7}}})
    assert len(str(e.value).splitlines()) == 1 and "a\\nb\\u2028c" in str(e.value)


def test_check_positive_huge_int():
    # was OverflowError from float(10**400)
    with pytest.raises(QuantmooError, match="'x' must be a finite number > 0"):
        check_positive("x", 10 ** 400)


def _profile(tmp_path, edit):
    raw = yaml.safe_load(TOY.read_text())
    edit(raw)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("field", ["main_device", "fallback_device"])
@pytest.mark.parametrize("value", [["npu"], {"a": 1}])
def test_profile_device_reference_unhashable(tmp_path, field, value):
    # was TypeError: unhashable type, from `main_name not in devices`
    p = _profile(tmp_path, lambda r: r.__setitem__(field, value))
    with pytest.raises(QuantmooError, match=f"field '{field}' names"):
        quantmoo.hardware.load(str(p))


@pytest.mark.parametrize("value", [10 ** 400, 1e300, -(10 ** 400)])
def test_profile_numbers_beyond_range(tmp_path, value):
    # 10**400 was OverflowError; 1e300 loaded and made the energy tables infinite
    p = _profile(tmp_path, lambda r: r["devices"]["npu"]["energy_pj"]["mac"]["int8"].__setitem__("value", value))
    with pytest.raises(QuantmooError, match=r"devices.npu.energy_pj.mac.int8' must be a finite number <= 1e\+12"):
        quantmoo.hardware.load(str(p))


def _spec(edit_layer=None, **top):
    d = _fuzz.tiny_model().to_dict()
    if edit_layer:
        d["layers"][0].update(edit_layer)
    d.update(top)
    return d


@pytest.mark.parametrize("layer, match", [
    ({"weight_shape": []}, "'weight_shape' of LayerSpec 'fc0' must be a non-empty list"),      # was a 4-line numpy error
    ({"weight_shape": [64, 0]}, "'weight_shape' of LayerSpec 'fc0' must hold integers >= 1"),
    ({"weight_shape": [float("inf")]}, "'weight_shape' of LayerSpec 'fc0' must hold integers"),  # was OverflowError
    ({"weight_shape": "64"}, "'weight_shape' of LayerSpec 'fc0' must be a non-empty list"),    # was read as (6, 4)
    ({"weight_shape": [2 ** 40, 2 ** 40]}, "more than 2\\*\\*53 parameters"),                   # n_params wrapped around
    ({"macs": 1e308}, "'macs' of LayerSpec 'fc0' must be an integer >= 0 and <= 2\\*\\*53"),
    ({"block": 10 ** 400}, "'block' of LayerSpec 'fc0' must be an integer >= 0"),              # was OverflowError
    ({"name": ["fc0"]}, "'name' of a LayerSpec must be a non-empty string"),
])
def test_model_spec_layer_fields(layer, match):
    with pytest.raises(QuantmooError, match=match):
        ModelSpec.from_dict(_spec(layer))


@pytest.mark.parametrize("top, match", [
    ({"meta": "x"}, "'meta' of ModelSpec 'tiny' must be a mapping"),           # was AttributeError on use
    ({"workload": {1: 2}}, "'workload' of ModelSpec 'tiny' must map names"),   # was TypeError in spec_hash
    ({"workload": []}, "'workload' of ModelSpec 'tiny' must be a mapping"),    # was silently replaced by {}
    ({"other_params": 10 ** 400}, "'other_params' of ModelSpec 'tiny' must be an integer >= 0"),
])
def test_model_spec_top_fields(top, match):
    with pytest.raises(QuantmooError, match=match):
        ModelSpec.from_dict(_spec(**top))


def test_model_index_unhashable_name(tiny_model):
    # was TypeError (a pinned/tied "name" read from a file can be a list)
    with pytest.raises(QuantmooError, match="Unknown layer name"):
        tiny_model.index(["fc0"])


def test_n_params_is_exact_for_big_layers():
    layer = LayerSpec("big", "linear", (2 ** 26, 2 ** 26), macs=0, act_in=0, act_out=0)
    assert layer.n_params == 2 ** 52


@pytest.mark.parametrize("field, value", [("num_hidden_layers", 10 ** 9), ("hidden_size", 2 ** 40),
                                          ("vocab_size", 10 ** 400)])
def test_hf_config_sizes_are_bounded(tmp_path, field, value):
    # num_hidden_layers: 1e9 used to build a billion-row layer table (memory exhausted)
    cfg = dict(_fuzz._HF_SEEDS["llama"], **{field: value})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuantmooError, match=f"field '{field}' must be an integer <="):
        quantmoo.zoo.load(tmp_path)


def test_hf_config_without_model_type_says_so(tmp_path):
    # loaded as a spec file before, with an "unknown field(s)" message that hid the real problem
    cfg = dict(_fuzz._HF_SEEDS["llama"])
    del cfg["model_type"]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(QuantmooError, match="missing field 'model_type'"):
        quantmoo.zoo.load(p)


def test_transformer_layer_count_is_bounded():
    with pytest.raises(QuantmooError, match="'n_layers' of transformer 'x' must be an integer <= 1024"):
        quantmoo.zoo.transformer("x", hidden_size=8, n_layers=10 ** 6, n_heads=2, ffn_size=8, vocab_size=10)


@pytest.mark.parametrize("make", [lambda: LayerQuant(group_size=10 ** 400),
                                  lambda: SearchSpace(group_size=10 ** 400)])
def test_group_size_is_bounded(make):
    # SearchSpace accepted it and the size model then failed converting it to float
    with pytest.raises(QuantmooError, match="'group_size' of (LayerQuant|SearchSpace) must be a positive integer"):
        make()


def test_config_layer_named_twice():
    # YAML keys 1 and "1" both become layer "1": one silently replaced the other
    with pytest.raises(QuantmooError, match="names layer '1' twice"):
        QuantConfig.from_dict({"layers": {1: {}, "1": {}}})


@pytest.mark.parametrize("d, match", [
    ({"pinned": [1, 2]}, "'pinned' of SearchSpace must be a mapping"),        # message was a bare TypeError text
    ({"ties": 5}, "'ties' of SearchSpace must be a list of lists"),           # same
    ({"ties": [["fc0", {"a": 1}]]}, "'ties' of SearchSpace must be a list"),  # was TypeError in bind()
    ({"pinned": {"fc0": [8]}}, "'pinned.fc0' of SearchSpace must be a mapping"),
])
def test_space_pinned_and_ties(d, match):
    with pytest.raises(QuantmooError, match=match):
        SearchSpace.from_dict(d)


def _saved_result(tmp_path, edit):
    label, doc = _fuzz._result_seeds()[0]
    doc = json.loads(json.dumps(doc))
    edit(doc)
    (tmp_path / "results.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["front"][0]["objectives"].__setitem__("size_mb", 10 ** 400),
     "front\\[0\\].objectives.size_mb' must be a finite number"),                  # was OverflowError
    (lambda d: d.__setitem__("history", 5), "field 'history' must be a list"),     # was TypeError
    (lambda d: d.__setitem__("baselines", [1]), "field 'baselines\\[0\\]' must be a mapping"),  # AttributeError in plots
    (lambda d: d["history"][0].pop("hypervolume"), "missing field 'history\\[0\\].hypervolume'"),
    (lambda d: d.__setitem__("objectives", []), "field 'objectives' must be a non-empty list"),
    (lambda d: d.__setitem__("accuracy_kind", "guess"), "field 'accuracy_kind' must be one of"),
    (lambda d: d["front"][0].__setitem__("feasible", "no"), "front\\[0\\].feasible' must be true or false"),
    (lambda d: d.__setitem__("space", [1]), "field 'space' must be a mapping"),
])
def test_results_json_fields(tmp_path, edit, match):
    with pytest.raises(QuantmooError, match=match):
        load_result(_saved_result(tmp_path, edit))


def test_results_json_roundtrip_still_loads(tmp_path):
    res = load_result(_saved_result(tmp_path, lambda d: None))
    assert len(res.front) and np.isfinite(res.F).all() and res.accuracy_kind == "prior"


def test_bench_fuzz_runs():
    from benchmarks import bench_fuzz
    rows = bench_fuzz.run(n=3, seed=5)
    text = bench_fuzz.report(rows, seed=5)
    assert len(rows) == len(LOADERS) and all(r["unexpected"] == 0 for r in rows)
    assert "| **total** | 18 |" in text
