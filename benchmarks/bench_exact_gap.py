"""How far the proxy NSGA-II's front is from the exact (proxy loss, size) front, per loss band.

The hypervolume of NSGA-II's front is 99.9% of the exact front's on these models, yet the hypervolume hardly sees
the low-loss end, where the useful configs are. For every point of the exact front (dynamic programming over
layers, :func:`quantmoo.baselines.exact_front`), this takes the lowest proxy loss NSGA-II found at equal or
smaller size, and prints the median and 90th percentile of (found / exact) per band of exact loss. Why it
matters: :func:`quantmoo.search` joins the exact front to NSGA-II's in (loss, size) by default and
:func:`quantmoo.search_measured` starts from it (``exact_start``). Two rows per seed: NSGA-II's own non-dominated
set (``exact_start=False``) and the default's (the exact front thinned to 2,000 points and joined), each also as
the reported 200-point front (an epsilon-net of that set), with the CPU of each whole search (result included).

Run: ``python -m benchmarks.bench_exact_gap [--models digits,open-nsfw,minilm-l6,smollm2-135m] [--seeds 0,1]``
(the proxy tables come from the benchmarks' cache, as in bench_inloop; smollm2-135m's sensitivity pass takes
about 5 CPU minutes the first time).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from benchmarks._common import csv_arg, machine, md_table, stamp
from benchmarks._real import cache_dir
from benchmarks.bench_inloop import BUDGETS, HARDWARE, _load, _space

MODELS = tuple(BUDGETS)        # the real models: digits, open-nsfw, minilm-l6, smollm2-135m


def _gap_cells(E, F):
    """Per band of exact loss: median / p90 (count) of (lowest loss in ``F`` at equal or smaller size) / exact."""
    F = F[np.argsort(F[:, 1], kind="stable")]
    best = np.minimum.accumulate(F[:, 0])
    i = np.searchsorted(F[:, 1], E[:, 1] * (1 + 1e-12), side="right") - 1
    ratio = np.where(i >= 0, best[np.maximum(i, 0)], np.inf) / np.maximum(E[:, 0], 1e-300)
    lo = E[:, 0].max() * np.array([0, 1e-3, 1e-2, 1e-1, 1.0 + 1e-9])
    cells = []
    for a, b in zip(lo[:-1], lo[1:]):
        m = (E[:, 0] >= a) & (E[:, 0] < b) & np.isfinite(ratio)
        cells.append(f"{np.median(ratio[m]):.3f} / {np.quantile(ratio[m], 0.9):.3f} ({m.sum()})" if m.any()
                     else "none")
    return cells


def gap_rows(name, seeds, pop_size=100, n_gen=100):
    """Two rows per seed: NSGA-II's own non-dominated set (``exact_start=False``) and what ``quantmoo.search``
    reports by default (the exact front joined, thinned to 10 x the 200-point front), with the CPU of each search
    (result included)."""
    import quantmoo
    from quantmoo.baselines.exact import exact_genomes
    from quantmoo.search.run import hypervolume
    model = _load(name, 1024 if name == "smollm2-135m" else None)
    space = _space(name)
    table = quantmoo.sensitivity(model, space, model.evaluator, cache_dir=cache_dir())
    rows = []
    for seed in seeds:
        cpu, res = {}, {}
        for ex in (False, True):
            t = time.process_time()
            res[ex] = quantmoo.search(model, HARDWARE, space=space, objectives=("accuracy_loss", "size_mb"),
                                      accuracy=table, pop_size=pop_size, n_gen=n_gen, seed=seed, baselines=False,
                                      progress=False, exact_start=ex)
            cpu[ex] = time.process_time() - t
        problem = quantmoo.QuantizationProblem(model, HARDWARE, space=space, objectives=("accuracy_loss", "size_mb"),
                                               accuracy=table)
        v = problem.evaluate_all(exact_genomes(problem)[0])        # the whole front, every calibration method
        E = np.column_stack([v["accuracy_loss"], v["size_mb"]])
        E = E[np.argsort(E[:, 1], kind="stable")]
        ref = np.array(res[False].meta["hv_reference"])
        hv_exact = hypervolume(E, ref)
        for ex in (False, True):
            F = res[ex].nondominated[1] if res[ex].nondominated is not None else res[ex].F
            R = res[ex].F                             # the reported front: an epsilon-net of F (200 points)
            rows.append([name, seed, "exact start (default)" if ex else "NSGA-II (exact_start=False)", len(E), len(F),
                         f"{hypervolume(F, ref) / hv_exact:.5f}", *_gap_cells(E, F),
                         f"{hypervolume(R, ref) / hv_exact:.5f}", *_gap_cells(E, R)[:2], f"{cpu[ex]:.1f}",
                         f"{cpu[ex] / cpu[False]:.1f}"])
    return rows


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_exact_gap", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=csv_arg(str, MODELS), default=list(MODELS))
    ap.add_argument("--seeds", type=csv_arg(int), default=[0, 1])
    a = ap.parse_args(argv)
    models, seeds = a.models, a.seeds
    warnings.simplefilter("ignore", RuntimeWarning)
    t = time.process_time()
    rows = [r for name in models for r in gap_rows(name, seeds)]
    head = ["model", "seed", "reported", "exact front points", "non-dominated points",
            "HV / exact HV", *[f"found / exact, median / p90 (n): exact loss in [{a}, {b}) of its largest" for a, b
                               in (("0", "1e-3"), ("1e-3", "1e-2"), ("1e-2", "0.1"), ("0.1", "1"))],
            "reported front (200 points): HV / exact HV", "its found / exact: [0, 1e-3)", "[1e-3, 1e-2)",
            "CPU s (search and result)", "CPU / NSGA-II's"]
    text = (f"{stamp()}; {machine()}; proxy NSGA-II pop 100 x 100 on (loss, size), hardware {HARDWARE}; CPU "
            f"{time.process_time() - t:.0f} s\n\n" + md_table(head, rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
