"""Search-loop CPU time, side by side with another checkout (issue 19, "Keep the fast path fast").

The llama2-7b four-objective search (``arm_dot``, population 100, 200 generations, seed 0) runs
in fresh processes, alternating between this tree and a reference tree (``--against DIR``,
e.g. ``git archive main | tar -x -C /tmp/main``). For each tree it prints the median CPU
seconds of the ``quantmoo.search`` call (imports done before the clock starts), of which the
standard baselines, the ratio of the medians, and whether both trees give the same front for
the same seed (a hash of the front's genomes and objectives). ``--profile`` adds the CPU split
of one run per tree by part of the loop (cProfile, cumulative seconds; profiling inflates
Python-heavy parts).

Run: ``python -m benchmarks.bench_loop --against /tmp/main [--repeat 5] [--profile]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SNIPPET = r"""
import cProfile, hashlib, json, pstats, sys, time
import numpy as np
import quantmoo, quantmoo.baselines, quantmoo.search.front
from pymoo.algorithms.moo.nsga2 import NSGA2   # imports before the clock starts

base_cpu = [0.0]
_std = quantmoo.baselines.standard_baselines
def timed(problem):
    t = time.process_time()
    try:
        return _std(problem)
    finally:
        base_cpu[0] += time.process_time() - t
quantmoo.baselines.standard_baselines = timed

prof = cProfile.Profile() if {profile} else None
t0 = time.process_time()
if prof: prof.enable()
res = quantmoo.search("llama2-7b", "arm_dot", pop_size={pop_size}, n_gen={n_gen}, seed=0, progress=False)
if prof: prof.disable()
cpu = time.process_time() - t0
h = hashlib.sha1(np.ascontiguousarray(res.X, dtype=np.int64).tobytes())
h.update(np.ascontiguousarray(res.F, dtype=np.float64).tobytes())
out = {{"cpu_s": cpu, "baselines_cpu_s": base_cpu[0], "front": h.hexdigest()[:12], "n_front": len(res.front),
       "n_eval": res.history[-1]["n_eval"], "hypervolume": res.history[-1]["hypervolume"]}}
if prof:
    parts = {{"archive update": ("run.py", "_archive_update"), "history row (hypervolume)": ("run.py", "_record"),
             "mutation": ("mutation.py", "_do"), "crossover": ("crossover.py", "do"),
             "crossover (arrays)": ("crossover.py", "children"),
             "mating on arrays (all operators, incl. the rows above)": ("mating.py", "do"),
             "duplicate removal": ("duplicates.py", "_do"), "selection": ("selection.py", "_do"),
             "problem evaluation": ("evaluator.py", "eval"), "survival": ("survival.py", "do"),
             "baselines": ("<string>", "timed"), "setup (tables, reference)": ("run.py", "setup")}}
    stats = pstats.Stats(prof).stats
    total = max(ct for (f, l, n), (cc, nc, tt, ct, cl) in stats.items() if n == "search")
    split = {{}}
    for part, (fname, func) in parts.items():
        split[part] = sum(ct for (f, l, n), (cc, nc, tt, ct, cl) in stats.items()
                          if f.endswith(fname) and n == func and not any(
                              cf.endswith(fname) and cn == func for (cf, cll, cn) in cl))
    out["split"] = {{k: v / total for k, v in split.items()}}
print(json.dumps(out))
"""


def run_once(tree: Path, pop_size: int, n_gen: int, profile: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = _SNIPPET.format(pop_size=pop_size, n_gen=n_gen, profile=bool(profile))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tree),
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", type=Path, help="reference checkout (its quantmoo package is imported)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pop-size", type=int, default=100)
    ap.add_argument("--n-gen", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="also print the CPU split of one profiled run per tree")
    a = ap.parse_args(argv)
    trees = {"this": ROOT}
    if a.against is not None:
        trees = {"reference": a.against.resolve(), "this": ROOT}
    runs = {k: [] for k in trees}
    for _ in range(a.repeat):          # interleaved, so load on the machine hits both alike
        for k, tree in trees.items():
            runs[k].append(run_once(tree, a.pop_size, a.n_gen))
    print(f"llama2-7b / arm_dot, 4 objectives, pop {a.pop_size} x {a.n_gen} gen, seed 0; "
          f"median of {a.repeat} fresh processes (CPU seconds of quantmoo.search, imports excluded)")
    print(f"{'tree':10s} {'cpu_s':>7s} {'of which baselines':>19s} {'n_front':>8s} {'hypervolume':>12s}  front hash")
    med = {}
    for k, rs in runs.items():
        med[k] = statistics.median(r["cpu_s"] for r in rs)
        b = statistics.median(r["baselines_cpu_s"] for r in rs)
        r0 = rs[0]
        hashes = sorted({r["front"] for r in rs})
        print(f"{k:10s} {med[k]:7.2f} {b:19.2f} {r0['n_front']:8d} {r0['hypervolume']:12.6f}  {','.join(hashes)}")
    if len(trees) == 2:
        same = {r["front"] for r in runs["this"]} == {r["front"] for r in runs["reference"]}
        print(f"ratio this / reference: {med['this'] / med['reference']:.2f}x CPU; same front for the same seed: "
              f"{'yes' if same else 'NO'}")
    if a.profile:
        for k, tree in trees.items():
            split = run_once(tree, a.pop_size, a.n_gen, profile=True)["split"]
            print(f"\nCPU split ({k}, share of the profiled search call):")
            for part, share in sorted(split.items(), key=lambda kv: -kv[1]):
                print(f"  {part:56s} {100 * share:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
