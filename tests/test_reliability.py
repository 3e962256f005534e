"""Issue 8: interrupted searches resume to the identical front; faulty evaluations never stop a run."""
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import quantmoo
from benchmarks.bench_reliability import dies_once, kill_when_running, start_cli
from quantmoo.accuracy.faults import FaultInjector
from quantmoo.errors import QuantmooError
from quantmoo.search.checkpoint import CHECKPOINT_FILE
from quantmoo.search.measured import MeasuredAccuracy
from quantmoo.search.run import SearchRun, resume_search

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
@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "unsga3", "smsemoa", "ga"])
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
    with pytest.raises(QuantmooError, match="truncated or damaged"):
        resume_search(tmp_path)
    p.write_bytes(b"")
    with pytest.raises(QuantmooError, match="truncated or damaged"):
        resume_search(tmp_path)


def test_checkpoint_every_must_be_a_count():
    with pytest.raises(QuantmooError, match="checkpoint_every"):
        quantmoo.search("resnet18", "arm_dot", pop_size=8, n_gen=2, checkpoint_every=-1, checkpoint="x")


# -- interruption of the CLI process ------------------------------------------------------------------
def _cli(args, cwd):
    return start_cli(args, cwd)


def _front_json(out_dir):
    d = json.loads((Path(out_dir) / "results.json").read_text())
    front = [([d["layer_choices"][i] for i in s["choices"]], s["calibration"], s["objectives"]) for s in d["front"]]
    return front, [(h["n_eval"], h["hypervolume"]) for h in d["history"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    p = _cli(SEARCH + ["--out", "ref"], cwd=d)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return _front_json(d / "ref")


def test_sigkill_at_random_points_then_resume_gives_identical_front(tmp_path, uninterrupted):
    rng = np.random.default_rng(8)
    kills, before = 0, -1
    p = _cli(SEARCH + ["--checkpoint", "ck", "--out", "out"], cwd=tmp_path)
    for cycle in range(3):                  # kill, resume, kill the resumed run, ... then finish
        kills += kill_when_running(p, tmp_path / "ck", float(rng.uniform(0.0, 0.8)), signal.SIGKILL, before)[0]
        before = (tmp_path / "ck" / CHECKPOINT_FILE).stat().st_mtime_ns
        p = _cli(["search", "--resume", "ck", "--out", "out", "--overwrite", "--no-plot", "--no-progress"], cwd=tmp_path)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert kills >= 1
    assert _front_json(tmp_path / "out") == uninterrupted


def test_ctrl_c_exits_cleanly_with_a_resume_hint(tmp_path, uninterrupted):
    p = _cli(SEARCH + ["--checkpoint", "ck", "--out", "out"], cwd=tmp_path)
    sent, err = kill_when_running(p, tmp_path / "ck", 0.3, signal.SIGINT)
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
def FaultyEvaluator(evaluator, hang=True):
    """The real digits evaluator, with 10% of configs raising, 10% NaN and 10% hanging."""
    return FaultInjector(evaluator, p_raise=0.1, p_nan=0.1, p_hang=0.1 if hang else 0.0, hang_s=30.0, seed=1)


@pytest.fixture(scope="module")
def digits():
    return quantmoo.zoo.load("digits")


def test_faulty_evaluations_are_infeasible_and_listed(digits):
    acc = MeasuredAccuracy(FaultyEvaluator(digits.evaluator), eval_timeout=0.5)
    res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=16, n_gen=4, seed=0, progress=False,
                          baselines=False)
    failed = res.meta["failed_evaluations"]
    reasons = {f["reason"] for f in failed}
    assert any("injected failure" in r for r in reasons)
    assert any("non-finite" in r for r in reasons)
    assert any("timed out after 0.5 s" in r for r in reasons)
    assert res.accuracy_kind == "measured" and res.feasible and len(res.front)
    # raise / nan failures are exactly the injected ones (a real evaluation may also time out
    # on a loaded machine, so timeouts are only required to cover the injected hangs)
    inj = FaultyEvaluator(digits.evaluator)
    kind = {f["config_hash"]: inj.fault(quantmoo.QuantConfig.from_dict(f["config"])) for f in failed}
    for f in failed:
        if "timed out" not in f["reason"]:
            assert kind[f["config_hash"]] in ("raise", "nan")
    p0 = quantmoo.QuantizationProblem(digits, "arm_dot")
    seen = [p0.encoding.decode(np.frombuffer(k, dtype=np.int64)) for k in acc._memo]
    assert {c.config_hash() for c in seen if inj.fault(c)} <= {f["config_hash"] for f in failed}
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
    acc = MeasuredAccuracy(FaultInjector(digits.evaluator, p_raise=1.0))
    with pytest.warns(RuntimeWarning, match="evaluation failed"):
        res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=8, n_gen=2, seed=0, progress=False,
                              baselines=False)
    assert not res.feasible and "evaluation failed" in res.message
    assert len(res.meta["failed_evaluations"]) == acc.n_measured


def test_faulty_measured_search_resumes_identically(tmp_path, digits):
    kw = dict(pop_size=12, n_gen=5, seed=2, baselines=False)
    # no hang is injected: the timeout is only exercised, so it is generous for a loaded machine
    mk = lambda: MeasuredAccuracy(FaultyEvaluator(digits.evaluator, hang=False), eval_timeout=60)
    ref = quantmoo.search(digits, "arm_dot", accuracy=mk(), progress=False, **kw)
    run = SearchRun(digits, "arm_dot", accuracy=mk(), **kw).setup()
    run.step(), run.step()
    run.checkpoint(tmp_path)
    with pytest.raises(QuantmooError, match="pass it again"):
        resume_search(tmp_path)
    res = resume_search(tmp_path, progress=False, evaluator=FaultyEvaluator(digits.evaluator, hang=False))
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
        out = evaluate_many(functools.partial(dies_once, marker), cfgs, dask_address=client)
    assert Path(marker).read_text() == "died"                # a worker really died
    assert all("loss" in d for d in out), out                # ... and every config was still measured
    assert [d["loss"] for d in out] == [digits.evaluator.details(c)["loss"] for c in cfgs]


def test_fault_injector_rates_and_validation(digits):
    inj = FaultInjector(digits.evaluator, p_raise=0.2, p_nan=0.1, p_hang=0.1, seed=3)
    p = quantmoo.QuantizationProblem(digits, "arm_dot")
    X = np.random.default_rng(0).integers(p.xl, p.xu + 1, size=(2000, p.n_var))
    kinds = [inj.fault(p.encoding.decode(x)) for x in X]
    for kind, rate in (("raise", 0.2), ("nan", 0.1), ("hang", 0.1), (None, 0.6)):
        assert abs(kinds.count(kind) / len(kinds) - rate) < 0.04
    with pytest.raises(QuantmooError, match="p_nan"):
        FaultInjector(digits.evaluator, p_nan=1.5)
    with pytest.raises(QuantmooError, match="sum to at most 1"):
        FaultInjector(digits.evaluator, p_raise=0.6, p_nan=0.6)


def test_ctrl_c_after_the_last_generation_keeps_the_finished_search(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the front and baselines are computed: exit 130 with the resume hint, and
    resuming writes the complete result (found by bench_reliability: SIGINT just after the loop)."""
    from quantmoo import cli
    from quantmoo.search import run as run_mod
    real_result = run_mod.SearchRun.result

    def result(self, *a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        return real_result(self, *a, **k)

    monkeypatch.setattr(run_mod.SearchRun, "result", result)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "8", "--n-gen", "3",
                     "--out", "o", "--no-plot", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err
    assert "interrupted after generation 3" in err and "--resume o.checkpoint --out o" in err
    monkeypatch.setattr(run_mod.SearchRun, "result", real_result)
    assert cli.main(["search", "--resume", "o.checkpoint", "--out", "o", "--no-plot", "--no-progress"]) == 0
    assert (tmp_path / "o" / "results.json").is_file()
