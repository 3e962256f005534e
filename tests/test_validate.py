"""Measured validation, the evaluation cache and parallel evaluation (digits; Dask when installed)."""
import dataclasses
import importlib.util
import json
import time
import warnings

import numpy as np
import pytest

import quantmoo
from quantmoo.accuracy.cache import CACHE_FORMAT, EvalCache, default_cache_dir, model_key
from quantmoo.accuracy.digits import load_digits_model
from quantmoo.accuracy.parallel import evaluate_many
from quantmoo.accuracy.sensitivity import sensitivity
from quantmoo.accuracy.validate import ValidationReport, validate
from quantmoo.config import QuantConfig
from quantmoo.errors import QuantmooError
from quantmoo.results.result import load_result
from quantmoo.search.space import SearchSpace

SPACE = SearchSpace(weight_bits=(2, 3, 4, 8, 16), activation_bits=(4, 8, 16), weight_schemes=("symmetric",),
                    activation_schemes=("asymmetric",), granularities=("per_tensor", "per_channel"),
                    calibrations=("min_max",))
HAS_DASK = importlib.util.find_spec("dask") is not None and importlib.util.find_spec("distributed") is not None


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "evalcache"))


@pytest.fixture(scope="module")
def digits():
    return load_digits_model()


@pytest.fixture(scope="module")
def result(digits):
    table = sensitivity(digits, SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return quantmoo.search(digits, "arm_dot", space=SPACE, accuracy=table,
                               objectives=("accuracy_loss", "size_mb"), pop_size=40, n_gen=30, seed=0,
                               progress=False, max_front=30)


@pytest.fixture(scope="module")
def configs(digits):
    enc = SPACE.bind(digits)
    rng = np.random.default_rng(0)
    return [enc.decode(x) for x in rng.integers(enc.xl, enc.xu + 1, size=(8, enc.n_var))]


def _fresh(result):
    from quantmoo.results.result import SearchResult
    return SearchResult.from_dict(json.loads(json.dumps(result.to_dict(), default=float)))


# -- the cache --------------------------------------------------------------------------------------
def test_cache_round_trip_and_counters(tmp_path, digits, configs):
    c = EvalCache(tmp_path / "c")
    mk = model_key(digits, digits.evaluator)
    assert c.get("ev", mk, configs[0]) is None
    d = {"loss": 1.25, "accuracy_pct": np.float64(97.0), "n_test": np.int64(360)}
    p = c.put("ev", mk, configs[0], d)
    assert p.is_file() and p.name == configs[0].config_hash() + ".json"
    got = c.get("ev", mk, configs[0])
    assert got == {"loss": 1.25, "accuracy_pct": 97.0, "n_test": 360}
    assert c.get("ev", mk, configs[0].config_hash()) == got        # by hash too
    assert c.get("other-evaluator", mk, configs[0]) is None         # keyed by evaluator name
    assert c.get("ev", "otherspec-0", configs[0]) is None           # and by model
    assert (c.hits, c.misses, c.corrupt, c.writes) == (2, 3, 0, 1)
    entry = json.loads(p.read_text())
    assert entry["format"] == CACHE_FORMAT and len(entry["checksum"]) == 64
    assert not list(p.parent.glob(".*"))                             # no temp files left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "edit", "empty"])
def test_cache_corruption_is_a_miss(tmp_path, configs, damage):
    c = EvalCache(tmp_path)
    p = c.put("ev", "m", configs[0], {"loss": 2.0})
    text = p.read_text()
    if damage == "truncate":
        p.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        p.write_bytes(b"\xff\xfe\x00not json")
    elif damage == "edit":
        p.write_text(text.replace("2.0", "0.5"))
    else:
        p.write_text("")
    assert c.get("ev", "m", configs[0]) is None
    assert c.corrupt == 1 and c.misses == 1
    c.put("ev", "m", configs[0], {"loss": 2.0})                       # overwritten
    assert c.get("ev", "m", configs[0]) == {"loss": 2.0}


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    assert EvalCache().directory == tmp_path / "x"
    monkeypatch.delenv("QUANTMOO_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "quantmoo", "evals")


# -- evaluate_many ---------------------------------------------------------------------------------
class Faulty:
    """Wraps an evaluator: raises for one config, returns NaN for another."""

    def __init__(self, ev, bad_raise, bad_nan):
        self.ev, self.bad_raise, self.bad_nan = ev, bad_raise, bad_nan
        self.name, self.metric, self.spec = ev.name, ev.metric, ev.spec

    def loss(self, config):
        return float(self.details(config)["loss"])

    def details(self, config):
        h = config.config_hash()
        if h == self.bad_raise:
            raise RuntimeError("simulated crash in the forward pass")
        d = self.ev.details(config)
        if h == self.bad_nan:
            d = dict(d, loss=float("nan"))
        return d


def test_failures_are_reported_not_raised(digits, configs):
    bad = Faulty(digits.evaluator, configs[1].config_hash(), configs[2].config_hash())
    extra = [{"layers": {"nope": {}}}, {"layers": {"fc1": {"weight_bits": 7}}}]
    out = evaluate_many(bad, configs + extra, workers=1)
    assert len(out) == len(configs) + 2
    assert "simulated crash" in out[1]["error"]
    assert "non-finite" in out[2]["error"]
    assert "do not match model 'digits'" in out[-2]["error"]
    assert "invalid config" in out[-1]["error"] and "weight_bits" in out[-1]["error"]
    for i in (0, 3, 4, 5, 6, 7):
        assert out[i]["loss"] == pytest.approx(digits.evaluator.loss(configs[i]))


def test_duplicates_and_in_process(digits, configs):
    out = evaluate_many(digits, [configs[0], configs[1], configs[0]], workers=1)
    assert out[0] == out[2] and "error" not in out[0]
    assert out[0]["loss"] == digits.evaluator.loss(configs[0])


def test_processes_match_in_process(configs):
    local = evaluate_many("digits", configs, workers=1)
    procs = evaluate_many("digits", configs, workers=2)
    assert procs == local                                   # bitwise: same floats
    assert all("error" not in d for d in procs)


def test_bad_arguments(configs):
    with pytest.raises(QuantmooError, match="workers"):
        evaluate_many("digits", configs, workers=0)
    with pytest.raises(QuantmooError, match="timeout"):
        evaluate_many("digits", configs, timeout=-1)
    with pytest.raises(QuantmooError, match="first argument"):
        evaluate_many(42, configs)


class Slow:
    def __init__(self, ev, seconds):
        self.ev, self.seconds, self.name, self.spec = ev, seconds, ev.name, ev.spec

    def details(self, config):
        time.sleep(self.seconds)
        return self.ev.details(config)


def test_timeout_marks_the_rest(digits, configs):
    out = evaluate_many(Slow(digits.evaluator, 0.15), configs[:6], workers=1, timeout=0.2)
    assert "error" not in out[0]
    assert all("timed out" in d["error"] for d in out[3:])


@pytest.mark.skipif(not HAS_DASK, reason="dask.distributed not installed")
@pytest.mark.parametrize("processes", [False, True])
def test_dask_matches_local_processes(configs, processes):
    from dask.distributed import LocalCluster
    procs = evaluate_many("digits", configs, workers=2)
    with LocalCluster(n_workers=1, processes=processes, threads_per_worker=1, dashboard_address=None) as cluster:
        on_dask = evaluate_many("digits", configs, dask_address=cluster.scheduler_address)
    assert on_dask == procs


@pytest.mark.skipif(not HAS_DASK, reason="dask.distributed not installed")
def test_unreachable_dask_address(configs):
    t0 = time.perf_counter()
    with pytest.raises(QuantmooError, match=r"tcp://127\.0\.0\.1:1"):
        evaluate_many("digits", configs, dask_address="tcp://127.0.0.1:1", connect_timeout=1.0)
    assert time.perf_counter() - t0 < 15


# -- validate --------------------------------------------------------------------------------------
def test_validate_run_dir(tmp_path, result):
    run = tmp_path / "run"
    result.save(run, extra_files={"accuracy_table.npz": b"keep me"})
    (run / "notes").mkdir()
    (run / "notes" / "a.txt").write_text("hello")
    rep = validate(run, workers=1)
    assert isinstance(rep, ValidationReport)
    assert rep.n == rep.n_front == len(result.front) and rep.failed == []
    assert rep.kendall_tau is not None and rep.kendall_tau > 0.6
    assert rep.cache_misses > 0 and rep.cache_hits == 0
    # results.json holds the measured values and the validation block; other files survive
    d = json.loads((run / "results.json").read_text())
    v = d["validation"]
    assert v["kendall_tau"] == pytest.approx(rep.kendall_tau) and v["n"] == rep.n
    assert set(v) >= {"kendall_tau", "p_value", "n", "cache_hits", "cache_misses", "failed"}
    ev = load_digits_model().evaluator
    for p in d["front"]:
        m = p["measured"]
        assert m["kind"] == "measured" and m["evaluator"] == "digits-test-accuracy"
        assert m["accuracy_loss"] == pytest.approx(ev.loss(QuantConfig.from_dict(p["config"])))
    assert d["baselines"] and all("accuracy_loss" in b["measured"] for b in d["baselines"])
    assert (run / "accuracy_table.npz").read_bytes() == b"keep me"
    assert (run / "notes" / "a.txt").read_text() == "hello"
    assert (run / "front.yaml").is_file()
    res2 = load_result(run)
    assert res2.front[0].measured["accuracy_loss"] == d["front"][0]["measured"]["accuracy_loss"]
    assert res2.meta["validation"]["n"] == rep.n

    # second run: everything from the cache
    rep2 = validate(run, workers=1)
    assert rep2.cache_misses == 0 and rep2.cache_hits == rep.cache_misses
    assert rep2.kendall_tau == rep.kendall_tau

    # a corrupted cache entry is recomputed, not a crash
    files = sorted((tmp_path / "evalcache").rglob("*.json"))
    files[0].write_text(files[0].read_text()[:25])
    rep3 = validate(run, workers=1)
    assert rep3.cache_misses == 1 and rep3.failed == [] and rep3.kendall_tau == rep.kendall_tau
    json.loads(files[0].read_text())                      # rewritten whole


def test_validate_result_in_memory_with_failures(digits, result):
    res = _fresh(result)
    bad = Faulty(digits.evaluator, res.front[0].config.config_hash(), res.front[1].config.config_hash())
    model = dataclasses.replace(digits, evaluator=bad)
    rep = validate(res, model=model, workers=1, cache=False)
    assert {f["index"] for f in rep.failed if f["where"] == "front"} == {0, 1}
    assert "error" in res.front[0].measured and "error" in res.front[1].measured
    assert rep.n == len(res.front) - 2
    assert all("accuracy_loss" in s.measured for s in res.front[2:])
    assert res.meta["validation"]["failed"] == rep.failed
    assert rep.cache_hits == rep.cache_misses == 0


def test_validate_errors(tmp_path, result):
    with pytest.raises(QuantmooError, match="run directory"):
        validate(tmp_path / "missing")
    with pytest.raises(QuantmooError, match="no real evaluator"):
        validate(_fresh(result), model=quantmoo.zoo.load("resnet18"), workers=1)
    other = _fresh(result)
    other.meta["model"]["name"] = "no-such-model"
    with pytest.raises(QuantmooError, match="no-such-model"):
        validate(other, workers=1)
