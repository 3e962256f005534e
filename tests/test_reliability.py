"""Issue 8: interrupted searches resume to the identical front; faulty evaluations never stop a run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quantmoo
from quantmoo.errors import QuantmooError
from quantmoo.search.checkpoint import CHECKPOINT_FILE
from quantmoo.search.measured import MeasuredAccuracy
from quantmoo.search.run import SearchRun, resume_search

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "20", "--n-gen", "80",
          "--seed", "3", "--no-plot", "--no-progress"]


def _front(res):
    return np.array([s.x for s in res.front]), np.array([[s.objectives[o] for o in res.objectives] for s in res.front])


def _same_result(a, b):
    (Xa, Fa), (Xb, Fb) = _front(a), _front(b)
    assert np.array_equal(Xa, Xb) and np.array_equal(Fa, Fb)
    strip = lambda h: [{k: v for k, v in r.items()} for r in h]
    assert strip(a.history) == strip(b.history)
    assert [x["objectives"] for x in a.baselines] == [x["objectives"] for x in b.baselines]


# -- resume in Python ---------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "smsemoa", "ga"])
def test_resume_from_any_generation_gives_identical_front(tmp_path, algorithm):
    kw = dict(algorithm=algorithm, pop_size=16, n_gen=9, seed=5, progress=False)
    ref = quantmoo.search("resnet18", "arm_dot", **kw)
    for stop in (1, 4, 8):
        run = SearchRun("resnet18", "arm_dot", **{k: v for k, v in kw.items() if k != "progress"}).setup()
        for _ in range(stop):
            run.step()
        run.checkpoint(tmp_path / f"{algorithm}{stop}")
        del run                                        # nothing survives but the checkpoint
        _same_result(ref, resume_search(tmp_path / f"{algorithm}{stop}", progress=False))


def test_search_checkpoints_every_n_and_at_the_end(tmp_path):
    ck = tmp_path / "ck"
    res = quantmoo.search("resnet18", "arm_dot", pop_size=12, n_gen=5, seed=0, progress=False, checkpoint=ck,
                          checkpoint_every=2)
    summary = json.loads((ck / "checkpoint.json").read_text())
    assert summary["n_gen_done"] == 5 and summary["finished"] and summary["model"] == "resnet18"
    again = resume_search(ck, progress=False)          # a finished search resumes to its result
    _same_result(res, again)


def test_resume_with_constraints_keeps_them(tmp_path):
    kw = dict(pop_size=16, n_gen=6, seed=1, constraints={"latency_ms": 30.0})
    ref = quantmoo.search("resnet18", "arm_dot", progress=False, **kw)
    run = SearchRun("resnet18", "arm_dot", **kw).setup()
    run.step(), run.step()
    run.checkpoint(tmp_path)
    res = resume_search(tmp_path, progress=False)
    assert res.meta["constraints"] == {"latency_ms": 30.0}
    _same_result(ref, res)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(QuantmooError, match="No checkpoint to resume"):
        resume_search(tmp_path)
    run = SearchRun("resnet18", "arm_dot", pop_size=8, n_gen=3).setup()
    run.step()
    p = run.checkpoint(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(QuantmooError, match="truncated or corrupt"):
        resume_search(tmp_path)
    p.write_bytes(b"")
    with pytest.raises(QuantmooError, match="truncated or corrupt"):
        resume_search(tmp_path)


def test_checkpoint_every_must_be_a_count():
    with pytest.raises(QuantmooError, match="checkpoint_every"):
        quantmoo.search("resnet18", "arm_dot", pop_size=8, n_gen=2, checkpoint_every=-1, checkpoint="x")


# -- interruption of the CLI process ------------------------------------------------------------------
def _cli(args, **kw):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "quantmoo.cli", *args], cwd=kw.pop("cwd"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _front_json(out_dir):
    d = json.loads((Path(out_dir) / "results.json").read_text())
    return [(s["config"], s["objectives"]) for s in d["front"]], [(h["n_eval"], h["hypervolume"]) for h in d["history"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    p = _cli(SEARCH + ["--out", "ref"], cwd=d)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return _front_json(d / "ref")


def _kill_when_running(p, ck: Path, delay: float, sig):
    """Send ``sig`` ``delay`` s after the first checkpoint appears.

    Returns ``(sent, stderr)``; ``sent`` is False if the run ended first."""
    t0 = time.time()
    while not (ck / CHECKPOINT_FILE).exists():
        if p.poll() is not None or time.time() - t0 > 120:
            return False, p.communicate()[1]
        time.sleep(0.01)
    time.sleep(delay)
    if p.poll() is not None:
        return False, p.communicate()[1]
    p.send_signal(sig)
    return True, p.communicate(timeout=120)[1]


def test_sigkill_at_random_points_then_resume_gives_identical_front(tmp_path, uninterrupted):
    rng = np.random.default_rng(8)
    kills = 0
    p = _cli(SEARCH + ["--checkpoint", "ck", "--out", "out"], cwd=tmp_path)
    for cycle in range(3):                  # kill, resume, kill the resumed run, ... then finish
        kills += _kill_when_running(p, tmp_path / "ck", float(rng.uniform(0.0, 0.8)), signal.SIGKILL)[0]
        p = _cli(["search", "--resume", "ck", "--out", "out", "--no-plot", "--no-progress"], cwd=tmp_path)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert kills >= 1
    assert _front_json(tmp_path / "out") == uninterrupted


def test_ctrl_c_exits_cleanly_with_a_resume_hint(tmp_path, uninterrupted):
    p = _cli(SEARCH + ["--checkpoint", "ck", "--out", "out"], cwd=tmp_path)
    sent, err = _kill_when_running(p, tmp_path / "ck", 0.3, signal.SIGINT)
    assert sent and p.returncode == 130
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert "state is saved in ck" in err and "quantmoo search --resume ck --out out" in err
    p2 = _cli(["search", "--resume", "ck", "--out", "out", "--no-plot", "--no-progress"], cwd=tmp_path)
    out, err2 = p2.communicate(timeout=300)
    assert p2.returncode == 0, err2
    assert _front_json(tmp_path / "out") == uninterrupted


def test_ctrl_c_message_in_process(tmp_path, capsys, monkeypatch):
    """The CLI turns Ctrl-C into one line naming the saved checkpoint and the resume command."""
    from quantmoo import cli
    from quantmoo.search import run as run_mod
    real_step = run_mod.SearchRun.step

    def step(self):
        rec = real_step(self)
        if self.n_done == 2:
            os.kill(os.getpid(), signal.SIGINT)      # as if the user pressed Ctrl-C now
        return rec

    monkeypatch.setattr(run_mod.SearchRun, "step", step)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "8", "--n-gen", "6",
                     "--out", "o", "--no-plot", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "interrupted after generation 2" in err and "quantmoo search --resume o.checkpoint --out o" in err
    assert (tmp_path / "o.checkpoint" / CHECKPOINT_FILE).exists() and not (tmp_path / "o").exists()
    monkeypatch.setattr(run_mod.SearchRun, "step", real_step)
    assert cli.main(["search", "--resume", "o.checkpoint", "--out", "o", "--no-plot", "--no-progress"]) == 0
    ref = quantmoo.search("resnet18", "arm_dot", pop_size=8, n_gen=6, seed=0, progress=False)
    d = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [s["objectives"]["size_mb"] for s in d["front"]] == [s.objectives["size_mb"] for s in ref.front]


def test_resume_rejects_search_definition_args(tmp_path, capsys):
    from quantmoo import cli
    assert cli.main(["search", "--resume", str(tmp_path), "--model", "resnet18"]) == 2
    assert "do not pass --model" in capsys.readouterr().err
    assert cli.main(["search", "--resume", str(tmp_path)]) == 2
    assert "No checkpoint to resume" in capsys.readouterr().err
    assert cli.main(["search", "--hardware", "arm_dot"]) == 2
    assert "--model" in capsys.readouterr().err


# -- faulty evaluations -------------------------------------------------------------------------------
class FaultyEvaluator:
    """The real digits evaluator, except that configs whose hash falls in chosen buckets raise,
    return NaN or hang (deterministic per config, so runs are reproducible)."""

    name = "faulty-digits"

    def __init__(self, evaluator, raise_=(0,), nan=(1,), hang=(2,), buckets=10):
        self.ev, self.spec = evaluator, getattr(evaluator, "spec", None)
        self.raise_, self.nan, self.hang, self.buckets = raise_, nan, hang, buckets

    def details(self, cfg):
        b = int(cfg.config_hash()[:8], 16) % self.buckets
        if b in self.raise_:
            raise RuntimeError("injected failure")
        if b in self.nan:
            return {"loss": float("nan")}
        if b in self.hang:
            time.sleep(30)
        return self.ev.details(cfg)


@pytest.fixture(scope="module")
def digits():
    return quantmoo.zoo.load("digits")


def test_faulty_evaluations_are_infeasible_and_listed(digits):
    acc = MeasuredAccuracy(FaultyEvaluator(digits.evaluator), eval_timeout=0.05)
    res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=16, n_gen=4, seed=0, progress=False,
                          baselines=False)
    failed = res.meta["failed_evaluations"]
    reasons = {f["reason"] for f in failed}
    assert any("injected failure" in r for r in reasons)
    assert any("non-finite" in r for r in reasons)
    assert any("timed out after 0.05 s" in r for r in reasons)
    assert res.accuracy_kind == "measured" and res.feasible and len(res.front)
    bad = {f["config_hash"] for f in failed}
    for s in res.front:                                  # no failed config reaches the front
        assert np.isfinite(s.objectives["accuracy_loss"]) and s.config.config_hash() not in bad
    # each failed genome really is one the faulty evaluator rejects, and is infeasible for pymoo
    p = quantmoo.QuantizationProblem(digits, "arm_dot", accuracy=acc)
    X = np.array([f["genome"] for f in failed])
    G = p.evaluate(X, return_values_of=["G"])
    assert (G[:, -1] > 0).all() and p.constraint_names[-1] == "evaluation_failed"


def test_measured_search_matches_a_per_genome_reference(digits):
    """Measured losses in the search are the evaluator's own numbers, genome by genome."""
    acc = MeasuredAccuracy("digits")
    p = quantmoo.QuantizationProblem(digits, "arm_dot", accuracy=acc)
    rng = np.random.default_rng(0)
    X = rng.integers(p.xl, p.xu + 1, size=(6, p.n_var))
    loss = p.evaluate_all(X)["accuracy_loss"]
    for x, l in zip(X, loss):
        assert l == pytest.approx(digits.evaluator.details(p.encoding.decode(x, hardware="arm_dot"))["loss"],
                                  abs=1e-12)
    assert acc.n_measured == 6
    p.evaluate_all(X)                                    # memoised: no new measurement
    assert acc.n_measured == 6


def test_every_evaluation_failing_is_reported_not_crashed(digits):
    acc = MeasuredAccuracy(FaultyEvaluator(digits.evaluator, raise_=tuple(range(10)), nan=(), hang=()))
    with pytest.warns(RuntimeWarning, match="evaluation failed"):
        res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=8, n_gen=2, seed=0, progress=False,
                              baselines=False)
    assert not res.feasible and "evaluation failed" in res.message
    assert len(res.meta["failed_evaluations"]) == acc.n_measured


def test_faulty_measured_search_resumes_identically(tmp_path, digits):
    kw = dict(pop_size=12, n_gen=5, seed=2, baselines=False)
    mk = lambda: MeasuredAccuracy(FaultyEvaluator(digits.evaluator, hang=()), eval_timeout=5)
    ref = quantmoo.search(digits, "arm_dot", accuracy=mk(), progress=False, **kw)
    run = SearchRun(digits, "arm_dot", accuracy=mk(), **kw).setup()
    run.step(), run.step()
    run.checkpoint(tmp_path)
    with pytest.raises(QuantmooError, match="pass it again"):
        resume_search(tmp_path)
    res = resume_search(tmp_path, progress=False, evaluator=FaultyEvaluator(digits.evaluator, hang=()))
    _same_result(ref, res)
    assert res.meta["failed_evaluations"] == ref.meta["failed_evaluations"]


def test_eval_timeout_is_validated():
    with pytest.raises(QuantmooError, match="eval_timeout"):
        MeasuredAccuracy("digits", eval_timeout=0)
    from quantmoo.accuracy.parallel import evaluate_many
    with pytest.raises(QuantmooError, match="eval_timeout"):
        evaluate_many("digits", [], eval_timeout=float("nan"))


def test_eval_timeout_in_worker_processes(digits):
    """A hanging evaluation in a local worker process is cut off; the others are measured."""
    from quantmoo.accuracy.parallel import evaluate_many
    from quantmoo.config import QuantConfig
    cfgs = [QuantConfig.uniform(digits, w, 8) for w in (4, 8)]
    out = evaluate_many(_hanging_digits, cfgs, workers=2, eval_timeout=1.0)
    assert any("timed out after 1 s" in d.get("error", "") for d in out)
    assert any("loss" in d for d in out)


def _hanging_digits():
    """A module-level factory (picklable for worker processes): digits, but W4 configs hang."""
    ev = quantmoo.zoo.load("digits").evaluator

    class Hang:
        name = "hang-w4"
        spec = getattr(ev, "spec", None)

        def details(self, cfg):
            if next(iter(cfg.layers.values())).weight_bits == 4:
                time.sleep(60)
            return ev.details(cfg)
    return Hang()


def _dies_once(marker):
    """A factory for Dask: the first evaluation anywhere kills its worker process (as a crashed
    or OOM-killed machine would); later ones measure digits normally."""
    ev = quantmoo.zoo.load("digits").evaluator

    class DiesOnce:
        name = "dies-once"
        spec = getattr(ev, "spec", None)

        def details(self, cfg):
            if not os.path.exists(marker):
                Path(marker).write_text("died")
                os._exit(1)
            return ev.details(cfg)
    return DiesOnce()


@pytest.mark.slow
def test_dask_worker_loss_is_retried(tmp_path, digits):
    import functools
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster
    from quantmoo.accuracy.parallel import evaluate_many
    from quantmoo.config import QuantConfig
    cfgs = [QuantConfig.uniform(digits, w, 8) for w in (4, 6, 8)]
    marker = str(tmp_path / "died")
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = evaluate_many(functools.partial(_dies_once, marker), cfgs, dask_address=client)
    assert Path(marker).read_text() == "died"                # a worker really died
    assert all("loss" in d for d in out), out                # ... and every config was still measured
    assert [d["loss"] for d in out] == [digits.evaluator.details(c)["loss"] for c in cfgs]
