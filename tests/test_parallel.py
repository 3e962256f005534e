"""Issue 17 section 4: parallel evaluation that cannot hang, one worker pool per search, clear start-up errors."""
import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import quantmoo
from quantmoo.accuracy import parallel
from quantmoo.accuracy.faults import FaultInjector
from quantmoo.accuracy.parallel import evaluate_many
from quantmoo.config import QuantConfig
from quantmoo.errors import QuantmooError
from quantmoo.search.measured import MeasuredAccuracy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return quantmoo.zoo.load("digits")


def _hang_w4(seconds):
    """A factory (picklable): digits, but configs with 4-bit weights sleep ``seconds`` first."""
    ev = quantmoo.zoo.load("digits").evaluator

    class HangW4:
        name = "hang-w4"
        spec = getattr(ev, "spec", None)

        def details(self, cfg):
            if next(iter(cfg.layers.values())).weight_bits == 4:
                time.sleep(seconds)
            return ev.details(cfg)
    return HangW4()


# -- 1. the per-evaluation timeout holds on every backend ----------------------------------------------
def _in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "evaluation did not return"
    return out["value"]


@pytest.mark.parametrize("backend", ["main-thread", "other-thread", "dask"])
def test_eval_timeout_is_enforced_on_every_backend(backend, digits):
    """A hung evaluation becomes an error after eval_timeout, whatever runs it; the others are measured."""
    cfgs = [QuantConfig.uniform(digits, w, 8) for w in (4, 8)]
    recipe = functools.partial(_hang_w4, 3.0)
    t0 = time.perf_counter()
    if backend == "main-thread":
        out = evaluate_many(_hang_w4(3.0), cfgs, workers=1, eval_timeout=0.5)
    elif backend == "other-thread":          # e.g. a web server's or a GUI's worker thread
        out = _in_thread(lambda: evaluate_many(_hang_w4(3.0), cfgs, workers=1, eval_timeout=0.5))
    else:                                    # Dask runs tasks in worker threads, never a main thread
        distributed = pytest.importorskip("dask.distributed")
        with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            out = evaluate_many(recipe, cfgs, dask_address=client, eval_timeout=0.5)
    assert out[0] == {"error": "timed out after 0.5 s"}
    assert out[1]["loss"] == digits.evaluator.details(cfgs[1])["loss"]
    assert time.perf_counter() - t0 < 2.9 or backend == "dask"   # dask: cluster start-up is included


@pytest.mark.slow
def test_timed_out_dask_evaluation_is_a_failed_evaluation_in_the_search(digits):
    """Through MeasuredAccuracy on Dask, a hung genome is infeasible and the front is the local one."""
    distributed = pytest.importorskip("dask.distributed")
    # hangs of 6 s against a 1.5 s timeout: a real digits evaluation (milliseconds) never times out,
    # even on a loaded machine, so exactly the injected hangs fail on both backends
    inj = functools.partial(_faulty_digits, 6.0)
    kw = dict(pop_size=8, n_gen=2, seed=0, progress=False, baselines=False)
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=4,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        res = quantmoo.search(digits, "arm_dot", accuracy=MeasuredAccuracy(inj, eval_timeout=1.5, dask_address=client),
                              **kw)
    reasons = [f["reason"] for f in res.meta["failed_evaluations"]]
    assert reasons and all(r == "timed out after 1.5 s" for r in reasons)
    failed = {f["config_hash"] for f in res.meta["failed_evaluations"]}
    assert not failed & {s.config.config_hash() for s in res.front}
    local = quantmoo.search(digits, "arm_dot", accuracy=MeasuredAccuracy(inj(), eval_timeout=1.5), **kw)
    assert res.F.tolist() == local.F.tolist()
    key = lambda f: f["config_hash"]     # noqa: E731 - backends may list failures in another order
    assert sorted(res.meta["failed_evaluations"], key=key) == sorted(local.meta["failed_evaluations"], key=key)


def _faulty_digits(hang_s):
    return FaultInjector(quantmoo.zoo.load("digits").evaluator, p_hang=0.3, hang_s=hang_s, seed=0)


# -- 2. a Dask cluster whose workers die ends the batch in bounded time --------------------------------
@pytest.mark.slow
def test_dask_workers_killed_repeatedly_ends_in_bounded_time(digits, monkeypatch):
    """Workers SIGKILLed again and again, then none left: failed evaluations and one message, no hang."""
    distributed = pytest.importorskip("dask.distributed")
    from benchmarks.bench_parallel import kill_workers, slow_digits
    monkeypatch.setattr(parallel, "NO_WORKER_GRACE", 3.0, raising=False)
    cfgs = [QuantConfig.uniform(digits, w, a) for w in (2, 3, 4, 6, 8) for a in (8, 16)]
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        killer = threading.Thread(target=kill_workers, args=(cluster, 6, 0.7), daemon=True)
        out = {}
        run = threading.Thread(daemon=True, target=lambda: out.setdefault("r", evaluate_many(
            functools.partial(slow_digits, 0.5), cfgs, dask_address=client)))
        t0 = time.perf_counter()
        with pytest.warns(RuntimeWarning, match="no workers"):
            run.start()
            killer.start()
            run.join(120)
            killer.join(30)
        wall = time.perf_counter() - t0
        assert not run.is_alive(), "evaluate_many hung on a cluster without workers"
    res = out["r"]
    assert len(res) == len(cfgs) and wall < 120
    errors = [d["error"] for d in res if "error" in d]
    assert any("no workers" in e for e in errors)
    for d, c in zip(res, cfgs):                          # what was measured is the real number
        if "loss" in d:
            assert d["loss"] == digits.evaluator.details(c)["loss"]


# -- 3. one local process pool for the whole search ----------------------------------------------------
class _Counting(parallel.ProcessPoolExecutor):
    made = []

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _Counting.made.append(self)


@pytest.mark.slow
def test_one_process_pool_per_search_closed_at_the_end(digits, monkeypatch):
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _Counting)
    _Counting.made = []
    acc = MeasuredAccuracy("digits", workers=2)
    res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=8, n_gen=3, seed=0, progress=False,
                          baselines=False)
    assert len(res.history) == 3 and acc.n_measured > 8
    assert len(_Counting.made) == 1                      # not one per generation
    assert _Counting.made[0]._shutdown_thread            # and closed when the search ended
    ref = quantmoo.search(digits, "arm_dot", accuracy=MeasuredAccuracy("digits"), pop_size=8, n_gen=3, seed=0,
                          progress=False, baselines=False)
    assert res.F.tolist() == ref.F.tolist()              # same numbers as in-process

    # a search stopped by an exception (here from the callback) closes its pool too
    def stop(rec):
        raise KeyboardInterrupt

    acc = MeasuredAccuracy("digits", workers=2)
    with pytest.raises(KeyboardInterrupt):
        quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=8, n_gen=3, seed=0, progress=False,
                        baselines=False, callback=stop)
    assert len(_Counting.made) == 2 and _Counting.made[1]._shutdown_thread


# -- 4. a script without the __main__ guard gets one clear message -------------------------------------
@pytest.mark.slow
def test_script_without_main_guard_is_explained(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import quantmoo
        from quantmoo.accuracy.parallel import evaluate_many
        digits = quantmoo.zoo.load("digits")
        cfgs = [quantmoo.QuantConfig.uniform(digits, w, 8) for w in (4, 8)]
        print(evaluate_many("digits", cfgs, workers=2))
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "BrokenProcessPool" not in p.stdout
    assert 'if __name__ == "__main__":' in p.stderr and "unguarded.py" in p.stderr
    assert p.stderr.count("died while starting") == 1, p.stderr    # one message, not one per worker


# -- 5. the cache directory of --measured --------------------------------------------------------------
def test_cli_measured_cache_dir(tmp_path, capsys):
    from quantmoo import cli
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    help_ = " ".join(capsys.readouterr().out.split())
    assert "--cache-dir DIR" in help_ and "--no-cache" in help_
    from quantmoo.accuracy.cache import default_cache_dir
    assert str(default_cache_dir()) in help_ or "QUANTMOO_CACHE" in help_
    args = ["search", "--model", "digits", "--hardware", "arm_dot", "--measured", "--pop-size", "6", "--n-gen", "1",
            "--no-plot", "--no-progress", "--json"]
    assert cli.main(args + ["--cache-dir", str(tmp_path / "c")]) == 0
    n = len(list((tmp_path / "c").rglob("*.json")))
    assert n >= 6                                        # every measured genome stored there
    assert cli.main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--cache-dir", str(tmp_path)]) == 2
    assert "'--cache-dir' only applies with '--measured'" in capsys.readouterr().err
