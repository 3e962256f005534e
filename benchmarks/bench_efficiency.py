"""Table 4: search efficiency, hypervolume against evaluations, four optimisers, five seeds.

On the same :class:`~quantmoo.search.problem.QuantizationProblem`, at equal evaluations:

* ``quantmoo``: NSGA-II with quantmoo's operators (``quantmoo.search``);
* ``pymoo``: NSGA-II with pymoo's default integer operators (IntegerRandomSampling, SBX and PM
  with rounding repair, then the same validity repair (tie groups) as every other optimiser:
  ``quantmoo.search(operators="pymoo")``);
* ``random``: uniform random search (:func:`quantmoo.baselines.random_search`);
* ``optuna``: Optuna's ``NSGAIISampler`` through its ask-and-tell API, one
  ``IntDistribution`` per gene, the problem's objectives as minimised directions, the same
  population size; each asked batch of one generation is evaluated in one vectorised call, and
  genomes are repaired (tie groups) exactly as random search repairs them before evaluation.
  Optuna is a benchmark-only dependency (``benchmarks/requirements.txt``); without it the
  table says so instead of failing.

Hypervolume is that of the non-dominated set of everything each method evaluated, with the
search's fixed reference point (:func:`quantmoo.search.run.hv_reference`), recorded once per
generation. Two problems:

A. the separable two-objective problem (prior accuracy loss vs size), where the exact front
   (dynamic programming) gives the ceiling;
B. four objectives on ``hexagon`` (accuracy, size, latency, energy with the non-separable
   convert and partition terms): no exact ceiling.

Run: ``python -m benchmarks.bench_efficiency [--tiny | --quick | --full]``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks._common import header, md_table, parse_mode, save_png

METHODS = ("quantmoo", "pymoo", "random", "optuna")
SETTINGS = {
    "tiny": dict(model="resnet18", seeds=2, pop=20, n_gen=5, parts=("A",)),
    "quick": dict(model="resnet18", seeds=5, pop=50, n_gen=45, parts=("A", "B")),
    "full": dict(model="resnet50", seeds=5, pop=100, n_gen=200, parts=("A", "B")),
}
OBJECTIVES = {"A": ("accuracy_loss", "size_mb"), "B": ("accuracy_loss", "size_mb", "latency_ms", "energy_mj")}
HARDWARE = {"A": "arm_dot", "B": "hexagon"}


def have_optuna() -> bool:
    try:
        import optuna  # noqa: F401
        return True
    except ImportError:
        return False


def optuna_run(problem, n_evals: int, pop: int, seed: int) -> list:
    """Optuna NSGAIISampler on ``problem`` for ``n_evals`` evaluations; returns the HV history.

    Parameters
    ----------
    problem : QuantizationProblem
    n_evals : int
        Evaluation budget (the last batch is truncated to hit it).
    pop : int
        ``population_size`` of the sampler and the size of each asked batch.
    seed : int

    Returns
    -------
    list of dict
        ``{n_eval, hypervolume}`` after every batch.
    """
    import optuna
    from optuna.distributions import IntDistribution
    from quantmoo.search.archive import ParetoArchive
    from quantmoo.search.operators.repair import repair_genomes
    from quantmoo.search.run import hv_reference, hypervolume

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    enc = problem.encoding
    names = [f"x{i}" for i in range(problem.n_var)]
    dists = {n: IntDistribution(int(lo), int(hi)) for n, lo, hi in zip(names, problem.xl, problem.xu)}
    study = optuna.create_study(directions=["minimize"] * problem.n_obj,
                                sampler=optuna.samplers.NSGAIISampler(population_size=pop, seed=seed))
    ref = hv_reference(problem)
    archive = ParetoArchive(problem.n_var, problem.n_obj)
    hist, done = [], 0
    while done < n_evals:
        n = min(pop, n_evals - done)
        trials = [study.ask(dists) for _ in range(n)]
        X = np.array([[p[k] for k in names] for p in (t.params for t in trials)], dtype=np.int64)
        X = repair_genomes(X, enc)
        vals = problem.evaluate_all(X)
        F = np.column_stack([vals[o] for o in problem.objectives])
        for t, f in zip(trials, F):
            study.tell(t, [float(v) for v in f])
        archive.add(X, F)
        done += n
        hist.append({"n_eval": done, "hypervolume": hypervolume(archive.F, ref)})
    return hist


def run_part(part: str, model: str, seeds: int, pop: int, n_gen: int) -> dict:
    import quantmoo
    from quantmoo.baselines.random_search import random_search
    from quantmoo.search.problem import QuantizationProblem
    from benchmarks.bench_search import exact_hv

    p = QuantizationProblem(model, HARDWARE[part], objectives=OBJECTIVES[part])
    hist = {m: [] for m in METHODS}
    secs = {m: [] for m in METHODS}
    n_eval = None
    for s in range(seeds):
        for ops in ("quantmoo", "pymoo"):
            t0 = time.perf_counter()
            r = quantmoo.search(None, None, problem=p, pop_size=pop, n_gen=n_gen, seed=s, operators=ops,
                                progress=False, baselines=False, max_front=None)
            secs[ops].append(time.perf_counter() - t0)
            hist[ops].append(r.history)
            if ops == "quantmoo":
                n_eval = r.history[-1]["n_eval"]
        t0 = time.perf_counter()
        hist["random"].append(random_search(p, n_eval, seed=s, batch_size=pop)[2])
        secs["random"].append(time.perf_counter() - t0)
        if have_optuna():
            t0 = time.perf_counter()
            hist["optuna"].append(optuna_run(p, n_eval, pop, s))
            secs["optuna"].append(time.perf_counter() - t0)
    exact = None
    if part == "A":
        t0 = time.perf_counter()
        hv, ex, npts = exact_hv(p)
        exact = {"hv": hv, "exact": ex, "n": npts, "seconds": time.perf_counter() - t0}
    return {"part": part, "model": model, "hardware": HARDWARE[part], "objectives": OBJECTIVES[part],
            "n_var": p.n_var, "pop": pop, "n_gen": n_gen, "seeds": seeds, "n_eval": n_eval, "hist": hist,
            "secs": secs, "exact": exact}


def hv_at(h, e) -> float:
    """Hypervolume of one history after ``e`` evaluations (last row with n_eval <= e)."""
    v = [r["hypervolume"] for r in h if r["n_eval"] <= e]
    return v[-1] if v else 0.0


def evals_to(h, target) -> float:
    """First n_eval at which the history reaches ``target`` hypervolume (inf if never)."""
    for r in h:
        if r["hypervolume"] >= target:
            return r["n_eval"]
    return float("inf")


def _spread(v, fmt="{:.4f}") -> str:
    return f"{fmt.format(statistics.median(v))} [{fmt.format(min(v))}, {fmt.format(max(v))}]"


def figure(r) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from quantmoo.results.plots import DEVICE_NAMES, MODEL_NAMES, plot_convergence
    groups = {m: h for m, h in r["hist"].items() if h}
    fig = plot_convergence(groups, band="minmax", width="double",
                           title=f"Table 4{r['part']}: {MODEL_NAMES.get(r['model'], r['model'])} on "
                                 f"{DEVICE_NAMES.get(r['hardware'], r['hardware'])}, {len(r['objectives'])} objectives")
    ax = fig.axes[0]
    if r["exact"]:
        ax.axhline(r["exact"]["hv"], color="k", ls="--", lw=0.8, label="exact front (ceiling)")
        ax.text(0.99, r["exact"]["hv"], "exact front", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=7)
    return save_png(fig, f"table4{r['part'].lower()}_hv_vs_evaluations")


def report(parts, mode) -> str:
    out = header("Table 4. Search efficiency: hypervolume vs evaluations, four optimisers, "
                 f"{parts[0]['seeds']} seeds", "bench_efficiency", mode)
    if not have_optuna():
        out += ["**optuna not installed: pip install optuna** (or `pip install -r benchmarks/requirements.txt`); "
                "its rows are missing.", ""]
    for r in parts:
        E = r["n_eval"]
        checkpoints = [int(E * f) for f in (0.1, 0.25, 1.0)]
        ceiling = r["exact"]["hv"] if r["exact"] else None
        rows = []
        for m in METHODS:
            hs = r["hist"][m]
            if not hs:
                rows.append([m, "optuna not installed: pip install optuna", "", "", "", "", ""])
                continue
            cells = [_spread([hv_at(h, e) for h in hs]) for e in checkpoints]
            if ceiling:
                fin = [hv_at(h, E) / ceiling * 100 for h in hs]
                to99 = [evals_to(h, 0.99 * ceiling) for h in hs]
                med = statistics.median(to99)
                reach = f"{med:,.0f} ({sum(np.isfinite(to99))}/{len(hs)} seeds)" if np.isfinite(med) else \
                    f"not reached ({sum(np.isfinite(to99))}/{len(hs)} seeds)"
                rows.append([m, *cells, _spread(fin, "{:.2f}%"), reach, f"{statistics.median(r['secs'][m]):.1f} s"])
            else:
                best = max(statistics.median(hv_at(h, E) for h in r["hist"][k]) for k in METHODS if r["hist"][k])
                rows.append([m, *cells, f"{statistics.median(hv_at(h, E) for h in hs) / best * 100:.2f}%",
                             f"{statistics.median(r['secs'][m]):.1f} s"])
        title = ("A. Separable problem (prior accuracy loss vs size)" if r["part"] == "A"
                 else "B. Four objectives with non-separable terms")
        out += [f"#### {title}: `{r['model']}` on `{r['hardware']}`, {r['n_var']} genes, population {r['pop']}, "
                f"{E:,} evaluations", ""]
        hdr = ["method"] + [f"HV @ {e:,} evals: median [min, max]" for e in checkpoints]
        if ceiling:
            hdr += ["final HV / exact", "evals to 99% of exact (median)", "time per run"]
            out += [f"Exact front (DP, all calibrations): HV {ceiling:.5f} "
                    f"({r['exact']['n']:,} points{'' if r['exact']['exact'] else ', thinned'}; "
                    f"{r['exact']['seconds']:.1f} s).", ""]
        else:
            hdr += ["final HV / best method's (median)", "time per run"]
        out += [md_table(hdr, rows), "", figure(r), "",
                "quantmoo's first population holds the uniform-precision configs (its biased sampling is one of its "
                "operators), hence its head start; the other methods start from uniform random genomes.", ""]
        q = [hv_at(h, E) for h in r["hist"]["quantmoo"]]
        for m in METHODS[1:]:
            hs = r["hist"][m]
            if not hs:
                continue
            o = [hv_at(h, E) for h in hs]
            wins = sum(a > b for a, b in zip(q, o))
            out.append(f"- quantmoo vs {m}: median final HV {statistics.median(q):.4f} vs {statistics.median(o):.4f} "
                       f"(quantmoo higher in {wins}/{len(q)} seeds); time per run "
                       f"{statistics.median(r['secs']['quantmoo']):.1f} s vs {statistics.median(r['secs'][m]):.1f} s")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    parts = [run_part(pt, s["model"], s["seeds"], s["pop"], s["n_gen"]) for pt in s["parts"]]
    text = report(parts, mode)
    print(text)
    return text


if __name__ == "__main__":
    main()
