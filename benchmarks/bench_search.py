"""Issue 4 benchmarks: search speed, separable optimality, operator comparison, baseline coverage.

Measured side by side in one run:

1. **Speed**: ``llama2-7b`` on ``arm_dot``, four objectives, population 100, 200 generations,
   wall time end to end inside ``quantmoo.search`` (median of repeats).
2. **Separable optimality**: the two-objective problem (accuracy proxy vs ``size_mb``) for
   ``resnet50``, ``bert-base`` and ``llama2-7b``: hypervolume after 20,000 evaluations as a
   fraction of the exact front's (dynamic programming over layers, merged over the calibration
   methods of the space), same reference point.
3. **Operators at equal evaluations**: four objectives with the non-separable terms on
   ``hexagon`` and ``arm_dot``: quantmoo's operators vs pymoo's default integer operators
   (IntegerRandomSampling + SBX/PM with rounding repair) vs random search, 5 seeds, median and
   spread of the hypervolume of everything each evaluated.
4. **Baseline coverage and front size** of quantmoo's runs: the largest additive epsilon
   (normalised objectives) by which the front misses a baseline (uniform, greedy, ILP, rules).

Run: ``python -m benchmarks.bench_search [--quick]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks._common import md_table


def speed(repeat=3, pop_size=100, n_gen=200):
    import quantmoo
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = quantmoo.search("llama2-7b", "arm_dot", pop_size=pop_size, n_gen=n_gen, seed=0, progress=False)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "times": times, "n_front": len(res.front),
            "n_eval": res.history[-1]["n_eval"]}


def exact_hv(problem):
    """Hypervolume of the exact separable front, merged over the calibration methods.

    Uses the search's own reference point (:func:`quantmoo.search.run.hv_reference`). Returns
    ``(hv, exact, n_points)``; ``exact`` is False when the DP had to thin its partial fronts.
    """
    from quantmoo.baselines.exact import exact_front
    from quantmoo.search.run import hv_reference, hypervolume
    fronts, exact = [], True
    for c in range(len(problem.space.calibrations)):
        F, _, ex = exact_front(problem, calib=c)
        fronts.append(F)
        exact &= bool(ex)
    return hypervolume(np.concatenate(fronts), hv_reference(problem)), exact, int(sum(len(f) for f in fronts))


def separable(models=("resnet50", "bert-base", "llama2-7b"), n_gen=200, hardware="arm_dot"):
    import quantmoo
    from quantmoo.search.problem import QuantizationProblem
    rows = []
    for m in models:
        p = QuantizationProblem(m, hardware, objectives=("accuracy_loss", "size_mb"))
        t0 = time.perf_counter()
        hv_exact, exact, n_exact = exact_hv(p)
        t_exact = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = quantmoo.search(None, None, problem=p, pop_size=100, n_gen=n_gen, seed=0, progress=False)
        t_search = time.perf_counter() - t0
        hv = res.history[-1]["hypervolume"]
        rows.append({"model": m, "n_eval": res.history[-1]["n_eval"], "hv": hv, "hv_exact": hv_exact,
                     "ratio": hv / hv_exact, "exact": exact, "t_exact": t_exact, "t_search": t_search,
                     "n_exact": n_exact})
    return rows


def operators(models=("llama2-7b",), hardware=("hexagon", "arm_dot"), seeds=range(5), n_gen=200, pop=100):
    import quantmoo
    from quantmoo.baselines.random_search import random_search
    from quantmoo.results.metrics import baseline_coverage
    from quantmoo.search.problem import QuantizationProblem
    rows = []
    for m in models:
        for hw in hardware:
            p = QuantizationProblem(m, hw)
            hv = {"quantmoo": [], "pymoo": [], "random": []}
            cover, fronts, secs = [], [], {"quantmoo": [], "pymoo": [], "random": []}
            for s in seeds:
                for ops in ("quantmoo", "pymoo"):
                    t0 = time.perf_counter()
                    r = quantmoo.search(None, None, problem=p, pop_size=pop, n_gen=n_gen, seed=s,
                                        operators=ops, progress=False, baselines=(ops == "quantmoo"))
                    secs[ops].append(time.perf_counter() - t0)
                    hv[ops].append(r.history[-1]["hypervolume"])
                    if ops == "quantmoo":
                        cover.append(max(e for _, e in baseline_coverage(r)))
                        fronts.append(len(r.front))
                        n_eval = r.history[-1]["n_eval"]
                t0 = time.perf_counter()
                _, _, hist = random_search(p, n_eval, seed=s)
                secs["random"].append(time.perf_counter() - t0)
                hv["random"].append(hist[-1]["hypervolume"])
            rows.append({"model": m, "hardware": hw, "n_eval": n_eval, "hv": hv, "secs": secs,
                         "max_eps": max(cover), "min_front": min(fronts)})
    return rows


def _spread(v):
    return f"{statistics.median(v):.4f} [{min(v):.4f}, {max(v):.4f}]"


def report(sp, sep, ops) -> str:
    out = ["### Search speed: `llama2-7b` on `arm_dot`, 4 objectives, pop 100, 200 generations", "",
           f"- wall time inside `quantmoo.search`: median **{sp['median_s']:.2f} s** over {len(sp['times'])} runs "
           f"({', '.join(f'{t:.2f}' for t in sp['times'])} s); {sp['n_eval']:,} evaluations; "
           f"front {sp['n_front']} points (target < 10 s)", "",
           "### Separable two-objective problem (accuracy proxy vs size) vs the exact front", "",
           md_table(["model", "evaluations", "search HV", "exact HV", "ratio", "exact front points",
                     "exact DP time", "search time"],
                    [[r["model"], f"{r['n_eval']:,}", f"{r['hv']:.5f}", f"{r['hv_exact']:.5f}",
                      f"**{r['ratio'] * 100:.2f}%**", f"{r['n_exact']:,}" + ("" if r["exact"] else " (thinned)"),
                      f"{r['t_exact']:.2f} s", f"{r['t_search']:.2f} s"] for r in sep]),
           "", "Target: >= 99.5% of the exact front's hypervolume within 20,000 evaluations.", "",
           "### Operators at equal evaluations (4 objectives, non-separable terms), 5 seeds: "
           "hypervolume median [min, max]", "",
           md_table(["model", "hardware", "evaluations", "quantmoo operators", "pymoo default integer operators",
                     "random search", "quantmoo wins (seeds)", "max baseline epsilon", "min front size"],
                    [[r["model"], r["hardware"], f"{r['n_eval']:,}", _spread(r["hv"]["quantmoo"]),
                      _spread(r["hv"]["pymoo"]), _spread(r["hv"]["random"]),
                      f"{sum(a > max(b, c) for a, b, c in zip(r['hv']['quantmoo'], r['hv']['pymoo'], r['hv']['random']))}"
                      f"/{len(r['hv']['quantmoo'])}",
                      f"{r['max_eps'] * 100:.2f}%", r["min_front"]] for r in ops]),
           "", "Median seconds per run: " + "; ".join(
               f"{r['model']}@{r['hardware']}: " + ", ".join(f"{k} {statistics.median(v):.1f}"
                                                            for k, v in r["secs"].items()) for r in ops),
           "", "Max baseline epsilon: the largest additive epsilon (objectives normalised to the range of front "
           "and baselines) by which the reported front misses a uniform / greedy / ILP / rule-preset point; "
           "<= 0 means weakly dominated, target <= 1%."]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one model, two seeds, fewer generations")
    a = ap.parse_args(argv)
    if a.quick:
        sp = speed(repeat=1)
        sep = separable(models=("resnet50",), n_gen=50)
        ops = operators(hardware=("hexagon",), seeds=range(2), n_gen=30, pop=40, models=("resnet50",))
    else:
        sp, sep, ops = speed(), separable(), operators()
    text = report(sp, sep, ops)
    print(text)
    return text


if __name__ == "__main__":
    main()
