"""Issue 8 benchmark: interrupted searches resume exactly; injected faults never lose a run.

* **Kill / resume.** ``quantmoo search --checkpoint`` runs as a child process and is killed
  (``SIGKILL``, or ``SIGINT`` = Ctrl-C) at a random moment, resumed with ``--resume``, killed
  again, ... until it finishes; its ``results.json`` front and history are compared with the
  uninterrupted run of the same seed. In-process, :class:`~quantmoo.search.run.SearchRun` is
  also checkpointed after a random generation and resumed, for every algorithm.
* **Damaged checkpoints.** A checkpoint with single-bit flips all over the file, truncated
  copies, another run's ``checkpoint.npz`` next to this run's summary, and pickle payloads (an
  old ``checkpoint.pkl``, a pickled object inside a correctly checksummed npz): every case must
  be refused with a :class:`~quantmoo.errors.QuantmooError`, never crash, never resume, and no
  payload may run.
* **Faults.** Searches with measured accuracy on ``digits`` through a
  :class:`~quantmoo.accuracy.faults.FaultInjector` (configs that raise, return NaN, or hang
  past ``eval_timeout``); a run is lost if the search raises. The evaluation cache is then
  damaged (truncated, garbage, edited, emptied entries) and must recompute those entries.
  With ``dask.distributed`` installed, one worker process is killed mid-task and its task
  must be retried.

Run: ``python -m benchmarks.bench_reliability [--tiny | --quick | --full]`` (``--quick`` is the default).
"""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import md_table

from quantmoo.search.checkpoint import CHECKPOINT_FILE

ROOT = Path(__file__).resolve().parents[1]


# -- child processes ------------------------------------------------------------------------------
def start_cli(args, cwd) -> subprocess.Popen:
    """``python -m quantmoo.cli ARGS`` in ``cwd`` (this checkout first on the path)."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "quantmoo.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def kill_when_running(p: subprocess.Popen, ck: Path, delay: float, sig=signal.SIGKILL, after: float = -1):
    """Send ``sig`` to ``p`` ``delay`` s after it has written a checkpoint of its own.

    ``after`` is the checkpoint's modification time (ns) before ``p`` started (-1: none), so
    a resumed process is only interrupted once its search loop is running.
    Returns ``(sent, stderr)``; ``sent`` is False when the run ended before the signal.
    """
    t0 = time.time()
    path = Path(ck) / CHECKPOINT_FILE
    while _mtime(path) <= after:
        if p.poll() is not None or time.time() - t0 > 300:
            return False, p.communicate()[1]
        time.sleep(0.01)
    time.sleep(delay)
    if p.poll() is not None:
        return False, p.communicate()[1]
    p.send_signal(sig)
    return True, p.communicate(timeout=300)[1]


def front_of(out_dir):
    """What must be identical: the front (configs and objective values) and the history."""
    d = json.loads((Path(out_dir) / "results.json").read_text())
    return ([([d["layer_choices"][i] for i in s["choices"]], s["calibration"], s["objectives"]) for s in d["front"]],
            [(h["n_eval"], h["hypervolume"], h["n_front"]) for h in d["history"]])


def search_args(seed, n_gen):
    return ["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "20", "--n-gen", str(n_gen),
            "--seed", str(seed), "--no-plot", "--no-progress"]


def process_cycles(n_runs: int, kills_per_run: int = 3, n_gen: int = 80, seed: int = 0) -> dict:
    """Kill/resume ``n_runs`` CLI searches up to ``kills_per_run`` times each; compare fronts."""
    rng = np.random.default_rng(seed)
    kills = {"SIGKILL": 0, "SIGINT": 0}
    diffs, clean_ctrl_c = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(n_runs):
            base = search_args(r, n_gen)
            ref = start_cli(base + ["--out", f"ref{r}"], cwd=tmp)
            _, err = ref.communicate(timeout=600)
            if ref.returncode != 0:
                raise RuntimeError(f"reference run failed: {err}")
            ck, out = f"ck{r}", f"out{r}"
            before = _mtime(tmp / ck / CHECKPOINT_FILE)
            p = start_cli(base + ["--checkpoint", ck, "--out", out], cwd=tmp)
            for k in range(kills_per_run):
                sig = signal.SIGINT if (r + k) % 3 == 2 else signal.SIGKILL
                sent, err = kill_when_running(p, tmp / ck, float(rng.uniform(0.0, 1.0)), sig, before)
                before = _mtime(tmp / ck / CHECKPOINT_FILE)
                if sent:
                    kills[sig.name] += 1
                    if sig == signal.SIGINT and p.returncode == 130 and "Traceback" not in err \
                            and f"--resume {ck}" in err:
                        clean_ctrl_c += 1
                # --overwrite: a kill that lands after the result was written leaves a finished result there
                p = start_cli(["search", "--resume", ck, "--out", out, "--overwrite", "--no-plot", "--no-progress"],
                              cwd=tmp)
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"resumed run failed: {err}")
            diffs += front_of(tmp / out) != front_of(tmp / f"ref{r}")
    return {"runs": n_runs, "kills": kills, "diffs": diffs, "clean_ctrl_c": clean_ctrl_c}


def inprocess_cycles(points_per_algorithm: int, n_gen: int = 10, seed: int = 0) -> dict:
    """Checkpoint each algorithm after random generations, resume, compare with the straight run."""
    import quantmoo
    from quantmoo.search.run import SearchRun
    rng = np.random.default_rng(seed)
    rows, total, diffs = [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for algo in ("nsga2", "nsga3", "unsga3", "smsemoa", "ga"):
            kw = dict(algorithm=algo, pop_size=16, n_gen=n_gen, seed=int(rng.integers(1000)))
            ref = quantmoo.search("resnet18", "arm_dot", progress=False, **kw)
            n_diff = 0
            stops = rng.integers(1, n_gen, size=points_per_algorithm)
            for i, stop in enumerate(stops):
                run = SearchRun("resnet18", "arm_dot", **kw).setup()
                for _ in range(int(stop)):
                    run.step()
                d = Path(tmp) / f"{algo}{i}"
                run.checkpoint(d)
                res = quantmoo.resume_search(d, progress=False)
                same = (np.array_equal([s.x for s in res.front], [s.x for s in ref.front])
                        and res.history == ref.history)
                n_diff += not same
            rows.append([algo, len(stops), ", ".join(str(int(s)) for s in sorted(stops)), n_diff])
            total += len(stops)
            diffs += n_diff
    return {"rows": rows, "total": total, "diffs": diffs}


# -- damaged checkpoints ----------------------------------------------------------------------------
class _Payload:
    """Unpickling this writes a marker file (what a crafted checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def checkpoint_damage(n_flips: int = 200, seed: int = 0) -> dict:
    """Resume damaged or foreign checkpoints; count refused (QuantmooError), crashed, resumed per case."""
    import io
    import pickle
    import zipfile
    from quantmoo.errors import QuantmooError
    from quantmoo.search import checkpoint as ck
    from quantmoo.search.run import SearchRun

    def checkpointed(d, **kw):
        run = SearchRun(**{"model": "resnet18", "hardware": "arm_dot", "pop_size": 12, "n_gen": 6, "seed": 0, **kw})
        run.setup()
        for _ in range(2):
            run.step()
        run.checkpoint(d)
        return (Path(d) / CHECKPOINT_FILE).read_bytes()

    rng = np.random.default_rng(seed)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = checkpointed(tmp / "good")
        summary = (tmp / "good" / ck.SUMMARY_FILE).read_bytes()
        marker = tmp / "payload-ran"
        zbuf = io.BytesIO()
        with zipfile.ZipFile(zbuf, "w") as zf, zf.open("header.npy", "w") as f:
            np.lib.format.write_array(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
        cases = []
        for off in np.concatenate([rng.integers(0, len(good), n_flips), np.arange(len(good) - 100, len(good))]):
            flipped = bytearray(good)
            flipped[int(off)] ^= 1 << int(rng.integers(8))
            cases.append(("single-bit flip", {CHECKPOINT_FILE: bytes(flipped)}))
        for n in (0, 1, 100, len(good) // 3, len(good) // 2, len(good) - 65, len(good) - 1):
            cases.append(("truncated", {CHECKPOINT_FILE: good[:n]}))
        for kw in ({"hardware": "hexagon"}, {"model": "resnet50"}, {"seed": 1}, {"algorithm": "nsga3"},
                   {"objectives": ("accuracy_loss", "size_mb")}):
            foreign = checkpointed(tmp / f"o{len(cases)}", **kw)
            cases.append(("another run's checkpoint.npz", {CHECKPOINT_FILE: foreign}))
        cases.append(("pickle payload as checkpoint.pkl", {"checkpoint.pkl": pickle.dumps(_Payload(marker))}))
        cases.append(("pickle payload as checkpoint.npz", {CHECKPOINT_FILE: pickle.dumps(_Payload(marker))}))
        cases.append(("pickled object in a checksummed npz", {CHECKPOINT_FILE: ck._seal(zbuf.getvalue())}))
        for i, (kind, files) in enumerate(cases):
            d = tmp / f"case{i}"
            d.mkdir()
            (d / ck.SUMMARY_FILE).write_bytes(summary)
            for name, data in files.items():
                (d / name).write_bytes(data)
            r = rows.setdefault(kind, {"tried": 0, "refused": 0, "crashed": 0, "resumed": 0})
            r["tried"] += 1
            try:
                SearchRun.resume(d)
                r["resumed"] += 1
            except QuantmooError:
                r["refused"] += 1
            except Exception:
                r["crashed"] += 1
        payload_ran = marker.exists()
    return {"rows": rows, "payload_ran": payload_ran, "size": len(good)}


# -- faults ---------------------------------------------------------------------------------------
def fault_runs(n_runs: int, pop_size: int = 16, n_gen: int = 6, eval_timeout: float = 1.0) -> dict:
    """Measured-accuracy searches on digits with injected faults; count faults and lost runs."""
    import quantmoo
    from quantmoo.accuracy.faults import FaultInjector
    from quantmoo.search.measured import MeasuredAccuracy
    digits = quantmoo.zoo.load("digits")
    injected = {"raise": 0, "nan": 0, "hang": 0}
    lost, n_eval, other_timeouts, front_bad = 0, 0, 0, 0
    for r in range(n_runs):
        inj = FaultInjector(digits.evaluator, p_raise=0.1, p_nan=0.1, p_hang=0.05, hang_s=30.0, seed=r)
        acc = MeasuredAccuracy(inj, eval_timeout=eval_timeout)
        try:
            res = quantmoo.search(digits, "arm_dot", accuracy=acc, pop_size=pop_size, n_gen=n_gen, seed=r,
                                  progress=False, baselines=False)
        except Exception:
            lost += 1
            continue
        n_eval += acc.n_measured
        for f in res.meta["failed_evaluations"]:
            kind = inj.fault(quantmoo.QuantConfig.from_dict(f["config"]))
            if kind is None:
                other_timeouts += 1        # a real evaluation slower than eval_timeout on a busy machine
            else:
                injected[kind] += 1
        failed = {f["config_hash"] for f in res.meta["failed_evaluations"]}
        front_bad += sum(s.config.config_hash() in failed or not np.isfinite(s.objectives["accuracy_loss"])
                         for s in res.front)
    return {"runs": n_runs, "lost": lost, "n_eval": n_eval, "injected": injected, "other_timeouts": other_timeouts,
            "front_bad": front_bad, "eval_timeout": eval_timeout}


def cache_damage(n_configs: int = 12, seed: int = 0) -> dict:
    """Damage cached entries four ways; they must be detected, recomputed and equal."""
    import quantmoo
    from quantmoo.accuracy.cache import EvalCache
    from quantmoo.accuracy.parallel import evaluate_many
    digits = quantmoo.zoo.load("digits")
    p = quantmoo.QuantizationProblem(digits, "arm_dot")
    rng = np.random.default_rng(seed)
    X = rng.integers(p.xl, p.xu + 1, size=(n_configs, p.n_var))
    cfgs = [p.encoding.decode(x) for x in X]
    with tempfile.TemporaryDirectory() as d:
        first = evaluate_many(digits, cfgs, workers=1, cache=d)
        files = sorted(Path(d).rglob("*.json"))
        damages = ("truncate", "garbage", "edit", "empty")
        for i, f in enumerate(files):
            kind = damages[i % len(damages)]
            text = f.read_text()
            if kind == "truncate":
                f.write_text(text[: len(text) // 2])
            elif kind == "garbage":
                f.write_bytes(os.urandom(64))
            elif kind == "edit":
                f.write_text(text.replace('"loss"', '"loss_"', 1) if '"loss"' in text else text + " ")
            else:
                f.write_text("")
        cache = EvalCache(d)
        again = evaluate_many(digits, cfgs, workers=1, cache=cache)
        equal = all(a.get("loss") == b.get("loss") for a, b in zip(first, again))
        return {"entries": len(files), "damaged": len(files), "detected": cache.corrupt, "equal": equal}


def dask_worker_loss(seed: int = 0):
    """Kill a Dask worker process during its first task; the task must be retried elsewhere."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return None
    import quantmoo
    from quantmoo.accuracy.parallel import evaluate_many
    digits = quantmoo.zoo.load("digits")
    cfgs = [quantmoo.QuantConfig.uniform(digits, w, 8) for w in (4, 6, 8)]
    with tempfile.TemporaryDirectory() as d:
        marker = str(Path(d) / "died")
        with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            out = evaluate_many(functools.partial(dies_once, marker), cfgs, dask_address=client)
        died = Path(marker).exists()
    ok = sum("loss" in r for r in out)
    return {"deaths": int(died), "configs": len(cfgs), "measured": ok}


def dies_once(marker):
    """Evaluator factory (module level, so Dask can ship it): the first evaluation kills its process."""
    import quantmoo
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


# -- report ---------------------------------------------------------------------------------------
def report(proc, inproc, faults, cache, dask, damage=None) -> str:
    k = proc["kills"]
    out = ["### Kill and resume", "",
           md_table(["what", "runs", "interruptions", "fronts different from the uninterrupted run"],
                    [["`quantmoo search --checkpoint` child process, killed then `--resume`d (resnet18, arm_dot, "
                      "NSGA-II, 20 x 80)", proc["runs"],
                      f"{k['SIGKILL'] + k['SIGINT']} ({k['SIGKILL']} SIGKILL, {k['SIGINT']} SIGINT; "
                      f"{proc['clean_ctrl_c']} of the SIGINTs exited 130 with a one-line resume hint)",
                      f"**{proc['diffs']}**"],
                     ["`SearchRun.checkpoint` after a random generation, `resume_search` (5 algorithms)",
                      len(inproc["rows"]), inproc["total"], f"**{inproc['diffs']}**"]]),
           "", md_table(["algorithm", "resume points", "generations", "different fronts"], inproc["rows"]), "",
           *([] if damage is None else _damage_report(damage)),
           "### Injected evaluator faults", "",
           md_table(["searches (digits, measured accuracy)", "evaluations", "injected: raise", "injected: NaN",
                     f"injected: hang > {faults['eval_timeout']:g} s", "other timeouts",
                     "failed configs on a front", "lost runs"],
                    [[faults["runs"], faults["n_eval"], faults["injected"]["raise"], faults["injected"]["nan"],
                      faults["injected"]["hang"], faults["other_timeouts"], faults["front_bad"],
                      f"**{faults['lost']}**"]]),
           "", "Every failed evaluation is infeasible through the constraint `evaluation_failed <= 0` and listed "
           "in `results.json` (`failed_evaluations`: config hash, genome, reason, config).", "",
           md_table(["cache entries", "damaged (truncated / garbage / edited / empty)", "detected as corrupt",
                     "recomputed values equal the originals"],
                    [[cache["entries"], cache["damaged"], cache["detected"], "yes" if cache["equal"] else "**no**"]])]
    if dask is None:
        out += ["", "Dask worker loss: not run (in --tiny mode, or dask.distributed is not installed: "
                "pip install 'quantmoo[dask]')."]
    else:
        out += ["", md_table(["Dask worker processes killed mid-task", "configs", "configs measured after retry"],
                             [[dask["deaths"], dask["configs"], dask["measured"]]])]
    return "\n".join(out)


def _damage_report(damage) -> list:
    rows = [[kind, r["tried"], f"**{r['refused']}**", r["crashed"], r["resumed"]] for kind, r in damage["rows"].items()]
    tot = {c: sum(r[c] for r in damage["rows"].values()) for c in ("tried", "refused", "crashed", "resumed")}
    rows.append(["all", tot["tried"], f"**{tot['refused']}**", tot["crashed"], tot["resumed"]])
    return ["### Damaged and foreign checkpoints", "",
            f"A {damage['size']:,}-byte `checkpoint.npz` (resnet18, arm_dot, NSGA-II 12 x 2 generations), resumed "
            "after each damage; refused = one `QuantmooError` line (exit 2 on the command line).", "",
            md_table(["damage", "tried", "refused", "crashed (other exception)", "resumed"], rows), "",
            f"Pickle payloads executed: **{'yes' if damage['payload_ran'] else 'none'}**.", ""]


#: Settings per mode (``--tiny`` for the tests, ``--quick`` for RESULTS.md, ``--full``).
SETTINGS = {
    "tiny": {"n_runs": 1, "kills_per_run": 1, "points": 1, "fault_runs": 1, "dask": False, "flips": 20},
    "quick": {"n_runs": 3, "kills_per_run": 3, "points": 3, "fault_runs": 2, "dask": True, "flips": 200},
    "full": {"n_runs": 10, "kills_per_run": 5, "points": 10, "fault_runs": 10, "dask": True, "flips": 1000},
}


def main(argv=None) -> str:
    from benchmarks._common import parse_mode
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    proc = process_cycles(n_runs=s["n_runs"], kills_per_run=s["kills_per_run"])
    inproc = inprocess_cycles(points_per_algorithm=s["points"])
    damage = checkpoint_damage(n_flips=s["flips"])
    faults = fault_runs(n_runs=s["fault_runs"])
    cache = cache_damage()
    dask = dask_worker_loss() if s["dask"] else None
    text = report(proc, inproc, faults, cache, dask, damage)
    print(text)
    return text


if __name__ == "__main__":   # the guard matters: Dask and worker processes re-import this module
    main()
