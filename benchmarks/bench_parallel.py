"""Issue 17 section 4 benchmark: Dask batches end in bounded time; one process pool per search.

* **Dask worker kills.** A ``dask.distributed.LocalCluster`` (2 worker processes, loopback
  only) evaluates digits configs that each take ``EVAL_S`` seconds, while its worker processes
  are SIGKILLed again and again (the nanny restarts them); at the end the workers are stopped
  for good, so the cluster has no workers and tasks still queued. Every run must return (no
  hang): the wall time of each run, the measured and failed evaluations are reported.
* **One pool for the search.** A measured-accuracy search on digits (NSGA-II) in-process
  (``workers=1``), with one 2-process pool for the whole search (``workers=2``), and with a new
  pool every generation (what quantmoo did before: the pool is closed after each generation);
  medians of wall times.

Run: ``python -m benchmarks.bench_parallel [--tiny | --quick | --full]`` (``--quick`` is the default).
"""
from __future__ import annotations

import functools
import os
import signal
import statistics
import threading
import time

#: Seconds one evaluation takes in the worker-kill runs (a real evaluator plus this sleep).
EVAL_S = 0.5


def slow_digits(seconds: float):
    """Evaluator factory (module level, so workers can import it): digits, each evaluation ``seconds`` longer."""
    import quantmoo
    ev = quantmoo.zoo.load("digits").evaluator

    class SlowDigits:
        name = "slow-digits"
        spec = getattr(ev, "spec", None)

        def details(self, cfg):
            time.sleep(seconds)
            return ev.details(cfg)
    return SlowDigits()


def kill_workers(cluster, n_kills: int, interval: float, stop: bool = True) -> int:
    """SIGKILL a running worker process of ``cluster`` every ``interval`` s, ``n_kills`` times.

    The nanny restarts a killed worker; with ``stop``, every worker is then killed for good
    (its nanny told not to restart it), leaving the cluster with no workers. Returns the kills sent.
    """
    sent = 0
    for i in range(n_kills):
        nannies = [n for n in list(cluster.workers.values()) if getattr(n, "pid", None)]
        if nannies:
            try:
                os.kill(nannies[i % len(nannies)].pid, signal.SIGKILL)
                sent += 1
            except (ProcessLookupError, TypeError):
                pass
        time.sleep(interval)
    if stop:
        for n in list(cluster.workers.values()):
            n.close_gracefully()              # a nanny closing gracefully does not restart its worker
            pid = getattr(n, "pid", None)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    sent += 1
                except ProcessLookupError:
                    pass
    return sent


def dask_kill_runs(n_runs: int, n_kills: int = 17, interval: float = 1.5, n_configs: int = 12) -> dict:
    """``n_runs`` evaluate_many batches on a LocalCluster whose workers are killed; wall time of each."""
    import warnings
    from dask.distributed import Client, LocalCluster
    import quantmoo
    from quantmoo.accuracy.parallel import evaluate_many
    digits = quantmoo.zoo.load("digits")
    p = quantmoo.QuantizationProblem(digits, "arm_dot")
    bound = n_kills * interval + 180.0       # seconds after which a run counts as hung
    rows = []
    for r in range(n_runs):
        import numpy as np
        X = np.random.default_rng(r).integers(p.xl, p.xu + 1, size=(n_configs, p.n_var))
        cfgs = [p.encoding.decode(x) for x in X]
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            box = {}
            killer = threading.Thread(target=lambda: box.setdefault("kills", kill_workers(cluster, n_kills, interval)),
                                      daemon=True)
            t0 = time.perf_counter()
            killer.start()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                run = threading.Thread(daemon=True, target=lambda: box.setdefault("out", evaluate_many(
                    functools.partial(slow_digits, EVAL_S), cfgs, dask_address=client)))
                run.start()
                run.join(bound)                # a hang is reported, not waited for
            wall = time.perf_counter() - t0
            killer.join()
        out = box.get("out", [])
        rows.append({"wall_s": wall, "ended": not run.is_alive(), "kills": box.get("kills", 0),
                     "measured": sum("loss" in d for d in out), "failed": sum("error" in d for d in out),
                     "messages": sorted({str(x.message).split(";")[0] for x in w})})
    return {"runs": rows, "n_configs": n_configs, "interval": interval, "n_kills": n_kills, "bound": bound}


def pool_vs_inprocess(repeat: int = 3, pop_size: int = 16, n_gen: int = 10) -> dict:
    """Wall times of the same measured search: in-process, one pool, a new pool per generation."""
    import quantmoo
    from quantmoo.search.measured import MeasuredAccuracy
    digits = quantmoo.zoo.load("digits")
    kw = dict(pop_size=pop_size, n_gen=n_gen, seed=0, progress=False, baselines=False)
    times = {"in-process (workers=1)": [], "one pool for the search (workers=2)": [],
             "new pool every generation (workers=2, before)": []}
    fronts = set()
    for _ in range(repeat):
        for name in times:
            acc = MeasuredAccuracy("digits", workers=1 if name.startswith("in-process") else 2)
            cb = (lambda rec, acc=acc: acc.close()) if "every generation" in name else None
            t0 = time.perf_counter()
            res = quantmoo.search(digits, "arm_dot", accuracy=acc, callback=cb, **kw)
            times[name].append(time.perf_counter() - t0)
            fronts.add(res.F.tobytes())
    return {"median_s": {k: statistics.median(v) for k, v in times.items()}, "repeat": repeat,
            "pop_size": pop_size, "n_gen": n_gen, "same_front": len(fronts) == 1}


def report(kills, pools) -> str:
    from benchmarks._common import md_table
    out = []
    if kills is None:
        out.append("Dask worker kills: not run (dask.distributed is not installed: pip install 'quantmoo[dask]').")
    else:
        rows = kills["runs"]
        out += [f"Dask LocalCluster (2 worker processes, 127.0.0.1), {kills['n_configs']} digits configs of "
                f">= {EVAL_S:g} s each; a worker SIGKILLed every {kills['interval']:g} s ({kills['n_kills']} times, "
                "the nanny restarts it), then every worker stopped for good:", "",
                md_table(["runs", f"ended within {kills['bound']:g} s", "max wall time (s)", "kills per run", "measured", "failed",
                          "message"],
                         [[len(rows), sum(r["ended"] for r in rows), f"{max(r['wall_s'] for r in rows):.1f}",
                           "/".join(str(r["kills"]) for r in rows), "/".join(str(r["measured"]) for r in rows),
                           "/".join(str(r["failed"]) for r in rows),
                           "; ".join(sorted({m for r in rows for m in r["messages"]})) or "-"]])]
    med = pools["median_s"]
    base = med["in-process (workers=1)"]
    out += ["", f"Measured-accuracy search, digits on arm_dot, NSGA-II {pools['pop_size']} x {pools['n_gen']}, "
            f"median of {pools['repeat']} (same front in every mode: {'yes' if pools['same_front'] else '**no**'}):",
            "", md_table(["mode", "median wall time (s)", "vs in-process"],
                         [[k, f"{v:.1f}", f"{v / base:.2f}x"] for k, v in med.items()])]
    return "\n".join(out)


SETTINGS = {
    "tiny": {"runs": 1, "kills": 3, "interval": 0.7, "repeat": 1, "n_gen": 3},
    "quick": {"runs": 3, "kills": 17, "interval": 1.5, "repeat": 3, "n_gen": 10},
    "full": {"runs": 10, "kills": 17, "interval": 1.5, "repeat": 5, "n_gen": 20},
}


def main(argv=None) -> str:
    from benchmarks._common import parse_mode
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    try:
        import dask.distributed  # noqa: F401
        kills = dask_kill_runs(s["runs"], n_kills=s["kills"], interval=s["interval"])
    except ImportError:
        kills = None
    pools = pool_vs_inprocess(repeat=s["repeat"], n_gen=s["n_gen"])
    text = report(kills, pools)
    print(text)
    return text


if __name__ == "__main__":   # the guard matters: Dask and worker processes re-import this module
    main()
