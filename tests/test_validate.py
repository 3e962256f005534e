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
from quantmoo.accuracy import validate as validate_mod
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
    for p, sol in zip(d["front"], load_result(run).front):
        m = p["measured"]
        assert m["kind"] == "measured" and m["evaluator"] == "digits-test-accuracy"
        assert m["accuracy_loss"] == pytest.approx(ev.loss(sol.config))
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


# -- measured refinement ---------------------------------------------------------------------------
def _reference_selection(F, objectives, baselines, k, on):
    """Per-baseline loop: the k lowest-loss rows no larger than the baseline on ``on``."""
    a = objectives.index("accuracy_loss")
    js = [objectives.index(o) for o in on]
    out = {}
    for b in baselines:
        if any(o not in b["objectives"] for o in on):
            continue
        rows = [r for r in range(len(F)) if all(F[r, j] <= b["objectives"][o] * (1 + 1e-12) + 1e-12
                                                for j, o in zip(js, on))]
        rows.sort(key=lambda r: (F[r, a], *[F[r, j] for j in js], r))
        for r in rows[:k]:
            out.setdefault(r, []).append(b["name"])
    return out


def test_refine_selection_matches_reference_loop():
    rng = np.random.default_rng(1)
    objectives = ["accuracy_loss", "size_mb", "latency_ms"]
    F = rng.random((200, 3)) * [10.0, 5.0, 2.0]
    F[:20, 0] = 1.0                                    # ties in loss are broken by size, then row
    baselines = [{"name": f"b{i}", "objectives": {"size_mb": s, "latency_ms": 1.0, "accuracy_loss": 3.0}}
                 for i, s in enumerate([0.3, 1.0, 2.5, 4.9, 0.0])]
    baselines.append({"name": "no size", "objectives": {"latency_ms": 1.0}})
    for k in (1, 3, 7):
        for on in (("size_mb",), ("size_mb", "latency_ms")):
            sel, eligible = validate_mod.refine_selection(F, objectives, baselines, k, on)
            assert sel == _reference_selection(F, objectives, baselines, k, on)
            assert "no size" not in eligible and eligible["b4"] == 0
            for name, n in eligible.items():
                assert sum(name in v for v in sel.values()) == min(k, n)
    with pytest.raises(QuantmooError, match="energy_mj"):
        validate_mod.refine_selection(F, objectives, baselines, 2, ("energy_mj",))


def test_validate_refine_adds_points_below_each_baseline(digits, result):
    import copy
    assert result.nondominated is not None and len(result.nondominated[0]) > len(result.front)
    res = copy.deepcopy(result)
    thinned = {s.config.config_hash() for s in res.front}
    rep = validate(res, model=digits, workers=1, cache=False, refine=2)
    X, F = res.nondominated
    sel, _ = validate_mod.refine_selection(F, res.objectives, res.baselines, 2, ("size_mb",))
    enc = SPACE.bind(digits)
    want = {enc.decode(X[r]).config_hash(): names for r, names in sel.items()}
    by_hash = {s.config.config_hash(): s for s in res.front}
    # every selected point is on the front, measured, with the baselines that chose it
    for h, names in want.items():
        s = by_hash[h]
        assert s.measured["kind"] == "measured" and set(s.measured["selected_for"]) == set(names)
        for n in names:
            b = next(b for b in res.baselines if b["name"] == n)
            assert s.objectives["size_mb"] <= b["objectives"]["size_mb"] * (1 + 1e-12)
    assert rep.refine["n_added"] == len(set(want) - thinned) == len(res.front) - len(result.front)
    assert len(by_hash) == len(res.front) and rep.n == len(res.front)
    sizes = [s.objectives["size_mb"] for s in res.front]
    assert sizes == sorted(sizes)
    # the added points carry every objective of the search's own front points, same values
    problem = quantmoo.QuantizationProblem(digits, "arm_dot", SPACE, objectives=res.objectives,
                                           accuracy=sensitivity(digits, SPACE))
    for s in res.front:
        if s.config.config_hash() not in thinned:
            vals = problem.evaluate_all(enc.encode(s.config))
            assert set(s.objectives) == set(result.front[0].objectives)
            for o, v in s.objectives.items():
                assert v == pytest.approx(float(vals[o][0]), rel=1e-9)
            assert s.compression_ratio == pytest.approx(digits.fp32_mb / s.objectives["size_mb"])
    # tau over the whole front; the thinned front's tau alongside; the measured non-dominated subset
    assert rep.kendall_tau == pytest.approx(validate_mod._tau([s.objectives["accuracy_loss"] for s in res.front],
                                                              [s.measured["accuracy_loss"] for s in res.front])[0])
    old = [s for s in res.front if s.config.config_hash() in thinned]
    assert rep.refine["kendall_tau_thinned"] == pytest.approx(validate_mod._tau(
        [s.objectives["accuracy_loss"] for s in old], [s.measured["accuracy_loss"] for s in old])[0])
    mf = []
    for i, s in enumerate(res.front):
        fi = (s.measured["accuracy_loss"], s.objectives["size_mb"])
        dominated = any(all(a <= b for a, b in zip(fj, fi)) and fj != fi
                        for fj in ((t.measured["accuracy_loss"], t.objectives["size_mb"]) for t in res.front))
        if not dominated:
            mf.append(i)
    assert rep.measured_front == mf and res.meta["validation"]["measured_front"] == mf
    # validating again adds nothing
    rep2 = validate(res, model=digits, workers=1, cache=False, refine=2)
    assert rep2.refine["n_added"] == 0 and len(res.front) == rep.n


def test_validate_refine_builds_no_proxy_table(digits, result, monkeypatch):
    """The refined points' costs are recomputed; their searched loss comes from the result, so no
    sensitivity pass may run (on smollm2-135m one takes minutes)."""
    import copy
    from quantmoo.accuracy import sensitivity as sens

    def refuse(*a, **k):
        raise AssertionError("validate(refine=...) built a proxy table")
    monkeypatch.setattr(sens, "default_accuracy", refuse)
    rep = validate(copy.deepcopy(result), model=digits, workers=1, cache=False, refine=1)
    assert rep.refine["n_added"] > 0


def test_validate_refine_run_dir(tmp_path, result):
    import copy
    run = tmp_path / "run"
    copy.deepcopy(result).save(run)
    assert (run / "nondominated.npz").is_file()
    rep = validate(run, workers=1, refine=1)
    d = json.loads((run / "results.json").read_text())
    assert rep.refine["n_added"] > 0 and len(d["front"]) == len(result.front) + rep.refine["n_added"]
    assert d["validation"]["refine"]["k"] == 1
    assert any("selected_for" in p["measured"] for p in d["front"])
    assert (run / "nondominated.npz").is_file()                       # carried over
    with pytest.raises(QuantmooError, match="refine"):
        validate(run, workers=1, refine=-1)


def test_validate_refine_unthinned_front_adds_nothing(digits):
    table = sensitivity(digits, SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = quantmoo.search(digits, "arm_dot", space=SPACE, accuracy=table, objectives=("accuracy_loss", "size_mb"),
                              pop_size=20, n_gen=5, seed=1, progress=False, max_front=None)
    assert res.nondominated is None
    n = len(res.front)
    rep = validate(res, model=digits, workers=1, cache=False, refine=2)
    assert rep.refine["n_added"] == 0 and len(res.front) == n == rep.n
    # the front points the baselines select are still marked
    sel, _ = validate_mod.refine_selection(res.F, res.objectives, res.baselines, 2, ("size_mb",))
    marked = {i for i, s in enumerate(res.front) if "selected_for" in s.measured}
    assert marked == set(sel)


def test_cli_validate_refine(tmp_path, result, capsys):
    import copy
    from quantmoo import cli
    run = tmp_path / "run"
    copy.deepcopy(result).save(run)
    assert cli.main(["validate", str(run), "--workers", "1", "--refine", "1", "--json"]) == 0
    d = json.loads((run / "results.json").read_text())
    assert d["validation"]["refine"]["k"] == 1 and d["validation"]["refine"]["n_added"] > 0
    capsys.readouterr()
    assert cli.main(["validate", str(run), "--workers", "1", "--refine", "1", "--refine-on", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
