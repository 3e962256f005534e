"""Issue 19: operator ablation on the non-separable problems, from the same seeded initial population.

For each problem and seed, quantmoo's analytic seeding (:class:`~quantmoo.search.operators.QuantSampling`:
uniform-precision configs, the Lagrangian hull, biased and uniform draws) builds ONE initial
population; every variant below starts NSGA-II from exactly that population (pymoo's
``sampling=X0``) and runs the same number of evaluations:

* ``quantmoo``: quantmoo's full operator set (what ``quantmoo.search`` uses);
* ``pymoo``: pymoo's default integer operators (SBX + PM, eta 3, rounding repair), its binary
  tournament and its duplicate elimination, plus quantmoo's validity repair (tie groups);
* leave-one-out variants, each replacing ONE quantmoo component by the plain alternative:
  layer-boundary crossover without its one-point or its two-point matings (``-one_point``,
  ``-two_point``), crossover replaced by pymoo's SBX, mutation replaced by pymoo's PM, pymoo's
  duplicate elimination, pymoo's binary tournament.

(The first run, at commit 1ac9f51, also ablated the components this benchmark then removed:
layer-uniform, block and bit-averaging crossover, the mutation's ordinal step and its decaying
rate; see RESULTS.md.)

Problems (all four objectives, with the non-separable terms): ``llama2-7b`` on ``hexagon``
and on ``tensorrt`` (fallback partitions), ``resnet50`` on ``hexagon``, and ``digits`` on
``hexagon`` with the MEASURED accuracy loss (every new genome evaluated by the real model).

Hypervolume: of every feasible point a run evaluated (quantmoo's external archive), objectives
divided by the problem's fixed reference ``1.1 x max`` over its uniform-precision configs
(:func:`quantmoo.search.run.hv_reference`), reference point (1, ..., 1): one reference per
problem, shared by all variants and seeds. "gain" is the hypervolume added over the seeded
initial population's. CPU is ``time.process_time`` of the run; on digits it includes measuring
every genome the run evaluates beyond the shared initial population (measured once per seed).

Run: ``python -m benchmarks.bench_ablation [--seeds 3] [--tiny]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks._common import machine, md_table, progress, stamp

VARIANTS = ("quantmoo", "pymoo", "-one_point", "-two_point", "crossover=SBX", "mutation=PM", "duplicates=pymoo",
            "selection=pymoo")

#: (label, model, hardware, measured, pop_size, n_gen)
PROBLEMS = (("llama2-7b / hexagon", "llama2-7b", "hexagon", False, 100, 150),
            ("llama2-7b / tensorrt", "llama2-7b", "tensorrt", False, 100, 150),
            ("resnet50 / hexagon", "resnet50", "hexagon", False, 100, 150),
            ("digits / hexagon, measured loss", "digits", "hexagon", True, 50, 30))


def build(variant: str, problem, X0: np.ndarray):
    """NSGA-II for one variant, starting from the genomes ``X0``."""
    from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.selection.tournament import TournamentSelection
    from quantmoo.search.operators import QuantCrossover, QuantDuplicateElimination, QuantMutation, QuantRepair
    from quantmoo.search.operators.selection import CrowdedTournamentSelection

    sbx = SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair())
    pm = PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair())
    ops = dict(sampling=X0, crossover=QuantCrossover(), mutation=QuantMutation(), repair=QuantRepair(),
               eliminate_duplicates=QuantDuplicateElimination(), selection=CrowdedTournamentSelection())
    if variant == "pymoo":
        ops.update(crossover=sbx, mutation=pm, eliminate_duplicates=True,
                   selection=TournamentSelection(func_comp=binary_tournament))
    elif variant in ("-one_point", "-two_point"):
        ops["crossover"] = QuantCrossover(n_points=2 if variant == "-one_point" else 1)
    elif variant == "crossover=SBX":
        ops["crossover"] = sbx
    elif variant == "mutation=PM":
        ops["mutation"] = pm
    elif variant == "duplicates=pymoo":
        ops["eliminate_duplicates"] = True
    elif variant == "selection=pymoo":
        ops["selection"] = TournamentSelection(func_comp=binary_tournament)
    elif variant != "quantmoo":
        raise ValueError(variant)
    return NSGA2(pop_size=len(X0), **ops)


def make_problem(model, hardware, measured):
    from quantmoo.search.problem import QuantizationProblem
    acc = None
    if measured:
        from quantmoo.search.measured import MeasuredAccuracy
        acc = MeasuredAccuracy(model)
    return QuantizationProblem(model, hardware, accuracy=acc)


def initial_population(problem, pop_size: int, seed: int) -> np.ndarray:
    """quantmoo's seeded initial population (repaired), the same for every variant of a seed."""
    from quantmoo.search.operators import QuantSampling, repair_genomes
    X = QuantSampling()._do(problem, pop_size, random_state=np.random.default_rng(seed))
    return repair_genomes(X, problem.encoding)


def run_variant(variant, problem, X0, n_gen, seed, memo=None):
    from quantmoo.search.run import SearchRun
    if memo is not None:      # a measured problem: every run measures its own new genomes
        problem.accuracy._memo = dict(memo)
    run = SearchRun(None, None, problem=problem, pop_size=len(X0), n_gen=n_gen, seed=seed, baselines=False)
    run._build_algorithm = lambda: _setup(run, build(variant, problem, X0))
    t0 = time.process_time()
    run.setup()
    while run.has_next():
        run.step()
    cpu = time.process_time() - t0
    return {"hv": run.history[-1]["hypervolume"], "hv0": run.history[0]["hypervolume"],
            "n_eval": run.history[-1]["n_eval"], "cpu": cpu}


def _setup(run, algo):
    from quantmoo.search.run import make_termination
    algo.setup(run.problem, termination=make_termination(run.n_gen, None, None), seed=run.seed, verbose=False)
    run.algorithm = algo


def ablation(problems=PROBLEMS, variants=VARIANTS, seeds=range(3), scale=1.0):
    out = []
    for label, model, hw, measured, pop, n_gen in problems:
        pop, n_gen = max(8, int(pop * scale)), max(2, int(n_gen * scale))
        problem = make_problem(model, hw, measured)
        rows = {v: [] for v in variants}
        for s in seeds:
            X0 = initial_population(problem, pop, s)
            memo = None
            if measured:   # the shared start (initial population, reference configs) is measured once
                run_variant("quantmoo", problem, X0, 1, s)
                memo = dict(problem.accuracy._memo)
            elif s == seeds[0]:
                run_variant("quantmoo", problem, X0, 2, s)     # warm-up: imports and caches off the clock
            for v in variants:       # interleaved per seed, so machine load hits all variants alike
                progress(f"{label} seed {s} {v}")
                rows[v].append(run_variant(v, problem, X0, n_gen, s, memo))
        out.append({"label": label, "pop": pop, "n_gen": n_gen, "runs": rows})
    return out


def _med(rs, k):
    return statistics.median(r[k] for r in rs)


def pays(full, var) -> bool:
    """Removing the component lowers the median HV below the full set's worst seed."""
    return _med(var, "hv") < min(r["hv"] for r in full)


def report(results, seeds, cmd) -> str:
    out = ["## Issue 19: operator ablation", "",
           f"Generated {stamp()} on {machine()}.", "", f"Command: `{cmd}`", "",
           __doc__.split("\n\n", 1)[1].rsplit("\n\nRun:", 1)[0], "",
           f"Seeds {list(seeds)}. Cells: hypervolume median [min, max] over seeds; gain = median of the "
           "hypervolume added over the seeded initial population (x1e-4); CPU = median seconds per run. "
           "**pays** = removing the component puts the median below the full set's worst seed.", ""]
    total = 0.0
    for res in results:
        runs = res["runs"]
        full = runs["quantmoo"]
        n_eval = full[0]["n_eval"]
        hv0 = [r["hv0"] for r in full]
        out += [f"### {res['label']}: population {res['pop']} x {res['n_gen']} generations "
                f"({n_eval:,} evaluations); seeded initial population alone: HV {statistics.median(hv0):.5f}", ""]
        rows = []
        for v, rs in runs.items():
            hv = [r["hv"] for r in rs]
            total += sum(r["cpu"] for r in rs)
            wins = sum(a["hv"] > b["hv"] for a, b in zip(full, rs))
            rows.append([f"`{v}`", f"{statistics.median(hv):.5f} [{min(hv):.5f}, {max(hv):.5f}]",
                         f"{1e4 * statistics.median(r['hv'] - r['hv0'] for r in rs):+.1f}",
                         "" if v == "quantmoo" else f"{wins}/{len(rs)}",
                         "" if v == "quantmoo" else ("**pays**" if pays(full, rs) else "no"),
                         f"{_med(rs, 'cpu'):.2f}"])
        out += [md_table(["variant", "hypervolume", "gain", "full set better (seeds)", "component pays",
                          "CPU s"], rows), ""]
    out += [f"Total CPU of the benchmark's runs: {total:.0f} s."]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="one small problem, 2 seeds, a few generations")
    ap.add_argument("--only", help="comma-separated problem labels' model names (e.g. digits,resnet50)")
    a = ap.parse_args(argv)
    problems = PROBLEMS
    if a.only:
        keep = a.only.split(",")
        problems = tuple(p for p in PROBLEMS if any(k in p[0] for k in keep))
    seeds = range(a.seeds)
    if a.tiny:
        seeds = range(2)
        results = ablation(problems=PROBLEMS[2:3], seeds=seeds, scale=0.2)
    else:
        results = ablation(problems=problems, seeds=seeds)
    cmd = "python -m benchmarks.bench_ablation" + (" --tiny" if a.tiny else f" --seeds {a.seeds}") + \
        (f" --only {a.only}" if a.only else "")
    text = report(results, seeds, cmd)
    print(text)
    return text


if __name__ == "__main__":
    main()
