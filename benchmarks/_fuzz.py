"""Mutation fuzzing of quantmoo's input loaders, shared by ``tests/test_fuzz.py`` and ``bench_fuzz``.

The contract every loader must keep (issue 8): a mutated input file either loads to an object
that is really usable (a profile builds finite cost tables, a config evaluates on its model, a
search space binds to a model, ...) or raises :class:`quantmoo.errors.QuantmooError` with a
one-line message that names the offending field (structural mutations) or the file (whole-file
corruption). Any other exception escaping is a bug.

The mutator only needs a :class:`random.Random`-like object (``random``, ``randrange``,
``choice``), so the tests drive it with Hypothesis' ``st.randoms()`` (shrinkable, derandomized)
and the benchmark with a seeded ``random.Random``: one mutation engine, two drivers.

Nothing here imports hypothesis or pytest.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from quantmoo.errors import QuantmooError

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# Values a mutation may plant
# --------------------------------------------------------------------------------------------

#: Odd text: RTL override, Hebrew, emoji, zero-width and BOM characters, NUL, combining marks,
#: full-width digits (``int("８") == 8`` in Python), lookalike letters. No lone surrogates:
#: they cannot be written as UTF-8 at all.
WEIRD_TEXT = ("", " ", "\t", "é", "\u202eevil", "שלום", "🚀", "👩‍💻", "\u200b", "\ufeff", "a\x00b", "\x00",
              "e\u0301", "８", "ｌａｙｅｒ", "Ⅳ", "\u0430", "null", "~", "yes", "1e3", "nan", "-inf", "0x10",
              "8", "any", "None", "💥" * 40, "x" * 3000, "a: b", "- a", "{}", "[]", "'", '"', "\\", "\n", "#")
WEIRD_NUMBERS = (0, -1, -0.0, 0.0, 1, -7, 0.5, 1e-320, 1e308, -1e308, 10 ** 400, -(10 ** 400), 2 ** 63,
                 2 ** 64, 2 ** 53 + 1, float("nan"), float("inf"), float("-inf"), 3.0, 7, 1000, 10 ** 9)
WRONG_TYPES = ("x", "", [], {}, None, True, False, [1, 2], {"value": 1}, [None], ["a", {"b": []}])
#: Keys a mutation may add: strings (incl. weird text) and, in YAML, non-string scalars.
EXTRA_KEYS = ("unknown", "extra_field", "Value", "value ", "__class__", "layers", "name", "🚀", "\u202ekey",
              "a\x00b", "", 0, 1.5, None, True)

_DEEP_MARK = "__quantmoo_fuzz_deep__"


# --------------------------------------------------------------------------------------------
# The mutator
# --------------------------------------------------------------------------------------------

@dataclass
class Mutation:
    """One fuzzed input.

    Attributes
    ----------
    data : bytes
        The file content.
    ext : str
        ``"yaml"`` or ``"json"``.
    whole_file : bool
        True for whole-file corruption (the error must name the file), False for structural
        mutations (the error must name a field on one of ``keys``).
    keys : set of str
        Every key and list index (as ``"[i]"``) on the paths the structural mutations touched,
        plus the names of keys they added or renamed.
    ops : list of str
        What was done, for failure reports.
    too_deep_for_parser : bool
        A value nested thousands of levels deep was spliced into the text: the parser gives up
        before any field is read, so naming the file (as for whole-file corruption) is enough.
    """

    data: bytes
    ext: str
    whole_file: bool
    keys: set = field(default_factory=set)
    ops: list = field(default_factory=list)
    too_deep_for_parser: bool = False


def _pick_path(doc: Any, rnd) -> Tuple[Any, Any, list]:
    """Random descent: ``(parent, key, path)`` of a node; deeper nodes as likely as shallow ones."""
    parent, key, path = None, None, []
    node = doc
    while isinstance(node, (dict, list)) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = keys[rnd.randrange(len(keys))]
        parent, key = node, k
        path.append(k)
        node = node[k]
        if not isinstance(node, (dict, list)) or not node or rnd.random() < 0.3:
            break
    return parent, key, path


def _weird_string(rnd, base: Any = None) -> str:
    w = rnd.choice(WEIRD_TEXT)
    if isinstance(base, str) and base and rnd.random() < 0.6:
        i = rnd.randrange(len(base) + 1)
        return base[:i] + w + base[i:]
    return w


def _near_miss(name: Any, rnd) -> Any:
    """A wrong layer/field name close to ``name``: case, separators, suffixes, unicode."""
    s = str(name)
    options = [s.upper(), s + "_", s.replace(".", "_"), s.replace("_", "."), s[:-1], "x" + s, s + ".weight",
               _weird_string(rnd, s), s.replace("a", "\u0430"), " " + s]
    out = rnd.choice(options)
    return out if out != name else s + "2"


def _deep_value(rnd, depth: int) -> Any:
    v: Any = rnd.choice((1, "x", None))
    for _ in range(depth):
        v = [v] if rnd.random() < 0.5 else {"k": v}
    return v


def _paths(doc: Any, pattern: Sequence, rnd) -> Optional[Any]:
    """Follow ``pattern`` (keys, ``"*"`` = a random element) to a node, or None."""
    node = doc
    for p in pattern:
        if p == "*":
            if not isinstance(node, (dict, list)) or not node:
                return None
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            node = node[keys[rnd.randrange(len(keys))]]
        else:
            if not isinstance(node, dict) or p not in node:
                return None
            node = node[p]
    return node


def _structural(doc: Any, rnd, layer_paths: Sequence[Sequence], m: Mutation) -> Any:
    """Apply one structural mutation to ``doc`` in place (returns the possibly replaced root)."""
    op = rnd.choice(("delete", "delete", "wrong_type", "number", "number", "unicode", "unknown_key",
                     "rename_key", "layer_name", "layer_name", "duplicate", "swap_container", "deep"))
    if op == "layer_name" and layer_paths:
        node = _paths(doc, rnd.choice(layer_paths), rnd)
        if isinstance(node, dict) and node:
            old = rnd.choice(list(node))
            new = _near_miss(old, rnd) if rnd.random() < 0.8 else rnd.choice(list(node))
            if new != old:
                node[new] = node.pop(old)
            m.keys.update({str(old), str(new), "layers"})
            m.ops.append(f"rename layer {old!r} -> {new!r}")
            return doc
        if isinstance(node, list) and node:
            i = rnd.randrange(len(node))
            item = node[i]
            if isinstance(item, dict) and "name" in item:
                others = [x.get("name") for x in node if isinstance(x, dict) and "name" in x]
                new = rnd.choice(others) if rnd.random() < 0.4 else _near_miss(item["name"], rnd)
                m.keys.update({str(item["name"]), str(new), "name", "layers", f"[{i}]"})
                m.ops.append(f"rename layer {item['name']!r} -> {new!r}")
                item["name"] = new
            elif isinstance(item, str):
                node[i] = _near_miss(item, rnd)
                m.keys.update({item, str(node[i])})
                m.ops.append(f"rename {item!r} -> {node[i]!r}")
            return doc
        op = "rename_key"
    parent, key, path = _pick_path(doc, rnd)
    if parent is None:  # an empty or scalar document
        m.ops.append("replace scalar root")
        return rnd.choice(WRONG_TYPES)
    m.keys.update(f"[{p}]" if isinstance(p, int) else str(p) for p in path)
    where = ".".join(map(str, path))
    old = parent[key]
    if op == "delete":
        del parent[key]
        m.ops.append(f"delete {where}")
    elif op == "wrong_type":
        parent[key] = copy.deepcopy(rnd.choice(WRONG_TYPES))
        m.ops.append(f"{where} = {parent[key]!r}")
    elif op == "number":
        parent[key] = rnd.choice(WEIRD_NUMBERS)
        m.ops.append(f"{where} = {parent[key]!r}")
    elif op == "unicode":
        parent[key] = _weird_string(rnd, old)
        m.ops.append(f"{where} = {parent[key]!r}")
    elif op == "unknown_key":
        target = old if isinstance(old, dict) else parent
        if isinstance(target, dict):
            k = rnd.choice(EXTRA_KEYS)
            target[k] = rnd.choice(WRONG_TYPES + WEIRD_NUMBERS[:3])
            m.keys.add(str(k))
        else:
            target.append(copy.deepcopy(rnd.choice(WRONG_TYPES)))
        m.ops.append(f"add unknown key under {where}")
    elif op == "rename_key" and isinstance(parent, dict):
        new = _near_miss(key, rnd)
        parent[new] = parent.pop(key)
        m.keys.add(str(new))
        m.ops.append(f"rename key {where} -> {new!r}")
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(rnd.randrange(len(parent) + 1), copy.deepcopy(old))
        m.ops.append(f"duplicate {where}")
    elif op == "swap_container" and isinstance(old, dict):
        parent[key] = list(old.values())
        m.ops.append(f"{where}: mapping -> list")
    elif op == "swap_container" and isinstance(old, list):
        parent[key] = {str(i): v for i, v in enumerate(old)}
        m.ops.append(f"{where}: list -> mapping")
    elif op == "deep" and rnd.random() < 0.5:
        parent[key] = _deep_value(rnd, rnd.randrange(2, 60))
        m.ops.append(f"{where} = nested value")
    elif op == "deep":
        parent[key] = _DEEP_MARK  # replaced textually: too deep for the YAML/JSON writers
        m.ops.append(f"{where} = very deeply nested value")
    else:
        parent[key] = rnd.choice(WEIRD_NUMBERS + WRONG_TYPES)
        m.ops.append(f"{where} = {parent[key]!r}")
    return doc


def dump(doc: Any, ext: str, rnd=None) -> str:
    """Serialise a document the way a user's file could look."""
    if ext == "json":
        ascii_only = bool(rnd.random() < 0.5) if rnd is not None else True
        return json.dumps(doc, indent=1, ensure_ascii=ascii_only)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def _deep_text(ext: str, n: int, rnd) -> str:
    if rnd.random() < 0.5:
        return "[" * n + "1" + "]" * n
    key = '"k"' if ext == "json" else "k"
    return ("{" + key + ": ") * n + "1" + "}" * n


def _whole_file(text: str, ext: str, rnd, m: Mutation) -> bytes:
    """Corrupt the file as a whole."""
    raw = text.encode("utf-8")
    op = rnd.choice(("empty", "blank", "comment", "null", "scalar", "list", "truncate", "truncate",
                     "random_bytes", "bad_utf8", "bad_utf8", "bom", "nul", "tabs", "two_docs", "tag",
                     "deep", "long_digits", "utf16", "latin1", "binary_tail"))
    m.ops.append(f"whole file: {op}")
    if op == "empty":
        return b""
    if op == "blank":
        return b"  \n\t\n\n"
    if op == "comment":
        return b"# nothing here\n"
    if op == "null":
        return rnd.choice((b"null", b"~", b"null\n"))
    if op == "scalar":
        return rnd.choice((b"42", b"hello", b"3.5", b"true", b'"text"', b"-1e400", b"NaN"))
    if op == "list":
        return rnd.choice((b"- a\n- b\n", b"[1, 2, 3]", b"[]", b"{}", b'[{"a": 1}]'))
    if op == "truncate":
        return raw[: rnd.randrange(max(1, len(raw)))]
    if op == "random_bytes":
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
    if op == "bad_utf8":
        i = rnd.randrange(len(raw) + 1)
        return raw[:i] + rnd.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")) + raw[i:]
    if op == "bom":
        return b"\xef\xbb\xbf" + raw
    if op == "nul":
        i = rnd.randrange(len(raw) + 1)
        return raw[:i] + b"\x00" + raw[i:]
    if op == "tabs":
        return text.replace("  ", "\t").encode("utf-8")
    if op == "two_docs":
        return raw + b"\n---\n" + raw
    if op == "tag":
        return rnd.choice((b"!!python/object/apply:os.system ['true']\n", b"a: !!binary AAAA%%%\n",
                           b"a: !custom 1\n", b"&a [*a]\n", b"? [a, b]\n: 1\n", b"a: *undefined\n"))
    if op == "deep":
        return _deep_text(ext, rnd.choice((200, 1000, 5000, 30000)), rnd).encode()
    if op == "long_digits":
        return ("a: " if ext == "yaml" else '{"a": ').encode() + b"1" * 5000 + (b"" if ext == "yaml" else b"}")
    if op == "utf16":
        return text.encode("utf-16")
    if op == "latin1":
        return (text + "\n# caf\u00e9 \u00b5s\n").encode("latin-1", errors="replace")
    return raw + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 50)))


def mutate(doc: Any, rnd, exts: Sequence[str] = ("yaml",), layer_paths: Sequence[Sequence] = (),
           p_whole: float = 0.2) -> Mutation:
    """One fuzzed file from a valid document ``doc`` (not modified).

    With probability ``p_whole`` the serialised file is corrupted as a whole; otherwise one to
    three structural mutations (delete, wrong type, odd number, unicode, unknown key, renamed key
    or layer, duplicated element, swapped container, deep nesting) are applied first.
    """
    ext = rnd.choice(list(exts))
    doc = copy.deepcopy(doc)
    m = Mutation(b"", ext, whole_file=rnd.random() < p_whole)
    if m.whole_file:
        m.data = _whole_file(dump(doc, ext, rnd), ext, rnd, m)
        return m
    for _ in range(1 + (rnd.random() < 0.3) + (rnd.random() < 0.1)):
        doc = _structural(doc, rnd, layer_paths, m)
    text = dump(doc, ext, rnd)
    marker = json.dumps(_DEEP_MARK) if ext == "json" else _DEEP_MARK
    if marker in text:
        text = text.replace(marker, _deep_text(ext, rnd.choice((300, 2000, 20000)), rnd), 1)
        m.too_deep_for_parser = True
    m.data = text.encode("utf-8")
    return m


# --------------------------------------------------------------------------------------------
# Valid seed documents and "really valid" checks
# --------------------------------------------------------------------------------------------

def tiny_model():
    """Four linear layers, two blocks, one tie group (the same table as ``tests/conftest.py``)."""
    from quantmoo.models.spec import LayerSpec, ModelSpec
    layers = [
        LayerSpec("fc0", "linear", (64, 32), macs=64 * 32, act_in=32, act_out=64, extra_params=64),
        LayerSpec("fc1", "linear", (64, 64), macs=64 * 64, act_in=64, act_out=64, block=0, tie_group="res"),
        LayerSpec("fc2", "linear", (64, 64), macs=64 * 64, act_in=64, act_out=64, block=1, tie_group="res"),
        LayerSpec("fc3", "linear", (10, 64), macs=10 * 64, act_in=64, act_out=10, extra_params=10),
    ]
    return ModelSpec("tiny", layers, workload={"batch": 1}, other_params=128)


@functools.lru_cache(maxsize=None)
def toy_profile():
    from quantmoo.hardware import load
    return load(str(ROOT / "tests" / "data" / "toy_profile.yaml"))


def _small_space():
    """Two choices per layer: keeps the cost tables of a fuzzed 1000-layer model small."""
    from quantmoo.search.space import SearchSpace
    return SearchSpace(weight_bits=(4, 8), activation_bits=(8,), weight_schemes=("symmetric",),
                       activation_schemes=("asymmetric",), granularities=("per_channel",), calibrations=("min_max",))


def _finite_costs(model, profile, space) -> None:
    from quantmoo.hardware.cost import build_cost_tables, evaluate_costs
    enc = space.bind(model)
    tables = build_cost_tables(model, profile, enc)
    assert np.isfinite(tables.stacked).all() and (tables.stacked >= 0).all(), "non-finite or negative cost table"
    C = np.stack([np.zeros(enc.n_layers, dtype=np.int64), np.full(enc.n_layers, enc.n_choices - 1)])
    for k, v in evaluate_costs(tables, C).items():
        assert np.isfinite(v).all() and (v >= 0).all(), f"non-finite {k}"


def _check_profile(hw) -> None:
    from quantmoo.hardware.profile import HardwareProfile
    assert isinstance(hw, HardwareProfile)
    hw.support_matrix()
    json.dumps(hw.to_dict())
    hw.sources()
    _finite_costs(tiny_model(), hw, _small_space())
    from quantmoo.search.space import SearchSpace
    _finite_costs(tiny_model(), hw, SearchSpace())


def _check_model(spec) -> None:
    from quantmoo.models.spec import ModelSpec
    assert isinstance(spec, ModelSpec)
    assert spec.n_params >= 0 and spec.spec_hash()
    for k, v in spec.arrays().items():
        assert np.isfinite(v).all() and (v >= 0).all(), k
    spec.blocks()
    # round trip (through YAML text only for small tables: PyYAML is slow on 7000-row ones)
    again = ModelSpec.from_yaml(spec.to_yaml()) if spec.n_layers <= 200 else ModelSpec.from_dict(spec.to_dict())
    assert again.layer_names == spec.layer_names and again.n_params == spec.n_params
    _finite_costs(spec, toy_profile(), _small_space())


def _check_config(cfg, model) -> None:
    from quantmoo.config import QuantConfig
    from quantmoo.search.evaluate import evaluate_config
    assert isinstance(cfg, QuantConfig)
    assert QuantConfig.from_dict(cfg.to_dict()).layers == cfg.layers
    cfg.check_model(model)  # may raise QuantmooError: names that do not match are an error
    out = evaluate_config(model, toy_profile(), cfg)
    for k, v in out.items():
        if k != "accuracy_kind":
            assert math.isfinite(v) and v >= 0, f"{k} = {v}"


def _check_result(res) -> None:
    from quantmoo.results.result import SearchResult
    from quantmoo.search.space import SearchSpace
    assert isinstance(res, SearchResult)
    F = res.F
    assert F.shape == (len(res.front), len(res.objectives)) and np.isfinite(F).all()
    res.summary()
    if res.front:
        res.knee(feasible_only=False)      # an infeasible result refuses the default pick
        res.best(feasible_only=False)
        res.best({res.objectives[0]: 1.0}, feasible_only=False)
        for s in res.front:
            s.config.to_yaml()
    json.dumps(res.to_dict(), default=float)
    SearchResult.from_dict(json.loads(json.dumps(res.to_dict(), default=float)))
    try:  # what ``quantmoo evaluate --run`` does with the stored space
        SearchSpace.from_dict(res.meta.get("space", {}), source="results.json: space")
    except QuantmooError:
        pass


def _check_space(space) -> None:
    from quantmoo.search.problem import QuantizationProblem
    from quantmoo.search.space import SearchSpace
    assert isinstance(space, SearchSpace)
    SearchSpace.from_dict(space.to_dict())
    model = tiny_model()
    space.bind(model)  # may raise QuantmooError (pinned/tied names the model does not have)
    prob = QuantizationProblem(model, toy_profile(), space=space)
    for k, v in prob.evaluate_all(np.stack([prob.xl, prob.xu])).items():
        assert np.isfinite(v).all(), k


def _load_yaml_dict(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


_HF_SEEDS = {
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
              "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 1000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
              "attention_bias": False, "mlp_bias": False, "torch_dtype": "float16", "rope_theta": 10000.0,
              "_name_or_path": "fuzz/tiny-llama"},
    "mistral": {"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512,
                "sliding_window": 4096},
    "qwen2": {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "vocab_size": 300, "tie_word_embeddings": True},
    "gpt2": {"model_type": "gpt2", "n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 128, "vocab_size": 500,
             "n_inner": None, "activation_function": "gelu_new"},
    "bert": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "vocab_size": 400, "max_position_embeddings": 64, "type_vocab_size": 2,
             "hidden_act": "gelu"},
}


@functools.lru_cache(maxsize=None)
def _result_seeds() -> Tuple[Tuple[str, Any], ...]:
    import warnings
    import quantmoo
    out = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, model, hw in (("tiny/toy", tiny_model(), toy_profile()), ("resnet18/arm_dot", "resnet18", "arm_dot")):
            res = quantmoo.search(model, hw, pop_size=8, n_gen=2, seed=0, progress=False)
            d = res.save(Path(tmp) / label.replace("/", "_"))
            out.append((label, json.loads((d / "results.json").read_text())))
    return tuple(out)


@dataclass
class Loader:
    """One input loader under test.

    ``load(path)`` calls the public API on the written file; ``check(obj, label)`` asserts the
    loaded object is really usable (it may raise QuantmooError where the contract allows it).
    """

    name: str
    filename: str                      # stem of the written file ("profile" -> profile.yaml)
    exts: Tuple[str, ...]
    seeds: Callable[[], Sequence[Tuple[str, Any]]]
    load: Callable[[Path], Any]
    check: Callable[[Any, str], None]
    layer_paths: Tuple[Tuple, ...] = ()
    in_dir: bool = False               # written into its own directory (config.json, results.json)

    def write(self, m: Mutation, tmp: Path) -> Path:
        d = Path(tmp) / "case"
        d.mkdir(parents=True, exist_ok=True)
        path = d / (self.filename if self.in_dir else f"{self.filename}.{m.ext}")
        path.write_bytes(m.data)
        return path


def _seeds_profiles():
    files = sorted((ROOT / "quantmoo" / "hardware" / "profiles").glob("*.yaml")) + [ROOT / "tests" / "data" / "toy_profile.yaml"]
    return [(p.stem, _load_yaml_dict(p)) for p in files]


def _seeds_models():
    from quantmoo import zoo
    return [("tiny", tiny_model().to_dict())] + [(n, zoo.load(n).to_dict()) for n in ("resnet18", "gpt2")]


def _seeds_hf():
    return list(_HF_SEEDS.items())


def _seeds_configs():
    from quantmoo.config import LayerQuant, QuantConfig
    from quantmoo import zoo
    tiny = tiny_model()
    mixed = QuantConfig({"fc0": LayerQuant(8, 8), "fc1": LayerQuant(4, 8, granularity="per_group", group_size=32),
                         "fc2": LayerQuant(2, 16, weight_scheme="power_of_two", granularity="per_group", group_size=32),
                         "fc3": LayerQuant(16, 16)}, calibration="mse", model="tiny", hardware="toy")
    return [("tiny", QuantConfig.uniform(tiny, 8, 8, hardware="toy").to_dict()), ("tiny", mixed.to_dict()),
            ("resnet18", QuantConfig.uniform(zoo.load("resnet18"), 4, 8, hardware="arm_dot").to_dict())]


def _seeds_spaces():
    from quantmoo.search.space import SearchSpace
    return [("default", SearchSpace().to_dict()),
            ("pinned", SearchSpace(weight_bits=(4, 8), pinned={"fc0": {"weight_bits": 8}, "fc3": {"activation_bits": 8}},
                                   ties=[["fc0", "fc3"]]).to_dict()),
            ("narrow", SearchSpace(weight_bits=(2, 4), activation_bits=(8,), granularities=("per_group",),
                                   group_size=32, calibrations=("mse",)).to_dict())]


@functools.lru_cache(maxsize=None)
def _config_model(label: str):
    from quantmoo import zoo
    return tiny_model() if label == "tiny" else zoo.load(label)


def _load_profile(path: Path):
    from quantmoo import hardware
    return hardware.load(str(path))


def _load_model(path: Path):
    from quantmoo import zoo
    return zoo.load(str(path))


def _load_hf(path: Path):
    from quantmoo import zoo
    # the checkpoint directory and the file itself are both documented entry points
    return zoo.load(path.parent) if path.stat().st_size % 2 == 0 else zoo.load(path)


def _load_config(path: Path):
    from quantmoo.config import QuantConfig
    return QuantConfig.load(str(path))


def _load_result(path: Path):
    from quantmoo.results.result import load_result
    return load_result(path.parent)


def _load_space(path: Path):
    # what ``quantmoo search --space FILE`` does (cli._load_space)
    from quantmoo.io import load_yaml
    from quantmoo.search.space import SearchSpace
    data, src = load_yaml(str(path))
    return SearchSpace.from_dict(data, source=src)


LOADERS: Dict[str, Loader] = {
    "hardware profile": Loader("hardware profile", "profile", ("yaml",), _seeds_profiles, _load_profile,
                               lambda o, _: _check_profile(o), layer_paths=(("devices",),)),
    "model spec": Loader("model spec", "spec", ("yaml", "json"), _seeds_models, _load_model,
                         lambda o, _: _check_model(o), layer_paths=(("layers",),)),
    "HF config.json": Loader("HF config.json", "config.json", ("json",), _seeds_hf, _load_hf,
                             lambda o, _: _check_model(o), in_dir=True),
    "QuantConfig": Loader("QuantConfig", "config", ("yaml", "json"), _seeds_configs, _load_config,
                          lambda o, label: _check_config(o, _config_model(label)), layer_paths=(("layers",),)),
    "results.json": Loader("results.json", "results.json", ("json",), lambda: list(_result_seeds()), _load_result,
                           lambda o, _: _check_result(o),
                           layer_paths=(("front", "*", "config", "layers"), ("baselines", "*", "config", "layers")),
                           in_dir=True),
    "search space": Loader("search space", "space", ("yaml",), _seeds_spaces, _load_space,
                           lambda o, _: _check_space(o), layer_paths=(("pinned",), ("ties", "*"))),
}


# --------------------------------------------------------------------------------------------
# Running one case
# --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """``kind`` is ``"valid"``, ``"rejected"`` or ``"unexpected"`` (with ``detail``)."""

    kind: str
    detail: str = ""
    message: str = ""


def message_problem(msg: str, m: Mutation, path: Path) -> Optional[str]:
    """Why a QuantmooError message breaks the contract, or None if it is fine."""
    if not msg.strip():
        return "empty message"
    if "\n" in msg or "\r" in msg:
        return "message is not one line"
    names_file = str(path) in msg or path.name in msg or str(path.parent) in msg
    if m.whole_file:
        return None if names_file else "message does not name the file"
    if any(k and k in msg for k in m.keys) or (m.too_deep_for_parser and names_file):
        return None
    return f"message names none of {sorted(m.keys)[:8]}"


def run_case(loader: Loader, label: str, m: Mutation, tmp: Path) -> Outcome:
    """Write ``m``, load it, check the result; classify what happened."""
    path = loader.write(m, tmp)
    stage = "load"
    try:
        obj = loader.load(path)
        stage = "check"
        loader.check(obj, label)
    except QuantmooError as e:
        msg = str(e)
        problem = message_problem(msg, m, path) if stage == "load" else (
            None if msg.strip() and "\n" not in msg else "bad message")
        if problem:
            return Outcome("unexpected", f"{problem}: {msg[:300]!r}", msg)
        return Outcome("rejected", message=msg)
    except Exception as e:  # anything else escaping is the bug this module hunts
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "quantmoo" in f.filename
                      and "_fuzz" not in f.filename), "?")
        return Outcome("unexpected", f"{stage}: {type(e).__name__} at {where}: {str(e)[:200]!r}")
    return Outcome("valid")


def describe(loader: Loader, label: str, m: Mutation) -> str:
    head = m.data[:160]
    return f"{loader.name} [{label}] {m.ext} ops={m.ops} data[:160]={head!r}"


def run_loader(loader: Loader, n: int, seed: int = 0, keep: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Fuzz one loader with ``n`` inputs from a seeded :class:`random.Random`.

    Returns counts per outcome kind, the unexpected cases (described) and, when ``keep`` names
    outcome kinds, the ``(label, Mutation)`` pairs of those kinds (to replay, e.g. on the CLI).
    """
    import random
    rnd = random.Random(seed)
    seeds = loader.seeds()
    counts = {"valid": 0, "rejected": 0, "unexpected": 0}
    unexpected, kept = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(n):
            label, doc = seeds[rnd.randrange(len(seeds))]
            m = mutate(doc, rnd, loader.exts, loader.layer_paths)
            out = run_case(loader, label, m, Path(tmp))
            counts[out.kind] += 1
            if out.kind == "unexpected":
                unexpected.append(f"{out.detail} <- {describe(loader, label, m)}")
            if keep and out.kind in keep:
                kept.append((label, m))
    return {"counts": counts, "unexpected": unexpected, "kept": kept}
