"""Issue 3 benchmark: evaluating 10,000 random llama2-7b genomes with every output.

Measured side by side in one run:
* the vectorised ``QuantizationProblem.evaluate_all`` (choice ids, the stacked gather, the
  non-separable convert/partition/peak-memory terms, the accuracy table),
* the floor: four bare NumPy gather-and-sum passes over (10,000 x n_layers) tables of the same
  shape,
* the plain per-genome reference loop of ``tests/test_cost_model.py`` (timed on a subset,
  per genome).

Run: ``python -m benchmarks.bench_cost_model [--quick]``.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from benchmarks._common import md_table, peak_rss_mb, timeit

ROOT = Path(__file__).resolve().parent.parent


def _reference():
    spec = importlib.util.spec_from_file_location("ref_cost", ROOT / "tests" / "test_cost_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.reference_costs


def run(n: int = 10_000, n_ref: int = 20, repeat: int = 7, hardware: str = "hexagon") -> dict:
    import quantmoo
    from quantmoo.search.problem import QuantizationProblem

    model = quantmoo.zoo.load("llama2-7b")
    prob = QuantizationProblem(model, hardware)
    rng = np.random.default_rng(0)
    X = rng.integers(prob.xl, prob.xu + 1, size=(n, prob.n_var))
    L, nc = prob.encoding.n_layers, prob.encoding.n_choices

    t_vec, _ = timeit(lambda: prob.evaluate_all(X), repeat=repeat)

    # floor: four gather-and-sum passes over (n, L) from (L, n_choices) tables
    C = prob.encoding.choices(X)
    rows = C + (np.arange(L) * nc)[None, :]
    tables = [rng.random(L * nc) for _ in range(4)]
    t_floor, _ = timeit(lambda: [t[rows].sum(axis=1) for t in tables], repeat=repeat)

    ref = _reference()
    cfgs = [prob.encoding.decode(x) for x in X[:n_ref]]
    t_ref_total, _ = timeit(lambda: [ref(model, prob.hardware, c) for c in cfgs], repeat=3)
    t_ref = t_ref_total / n_ref * n       # per-genome loop extrapolated to n genomes
    # the reference must agree with what we timed
    vals = prob.evaluate_all(X[:n_ref])
    for i, c in enumerate(cfgs):
        r = ref(model, prob.hardware, c)
        assert abs(vals["latency_ms"][i] - r["latency_ms"]) <= 1e-9 * r["latency_ms"]
    return {"n": n, "n_layers": L, "n_choices": nc, "hardware": hardware, "t_vec": t_vec, "t_floor": t_floor,
            "t_ref": t_ref, "n_ref": n_ref, "rss_mb": peak_rss_mb()}


def report(r: dict) -> str:
    rows = [
        ["vectorised evaluate_all (all outputs)", f"{r['t_vec'] * 1e3:.1f} ms", "1.00"],
        ["floor: 4 gather-and-sum passes", f"{r['t_floor'] * 1e3:.1f} ms", f"{r['t_floor'] / r['t_vec']:.2f}"],
        [f"per-genome reference loop (timed on {r['n_ref']}, scaled)", f"{r['t_ref']:.1f} s",
         f"{r['t_ref'] / r['t_vec']:.0f}"],
    ]
    text = [f"### Cost model: {r['n']:,} random `llama2-7b` genomes on `{r['hardware']}` "
            f"({r['n_layers']} layers x {r['n_choices']} choices)", "",
            md_table(["what", "median time", "time / vectorised"], rows), "",
            f"- vectorised / floor = **{r['t_vec'] / r['t_floor']:.2f}x** (target <= 5x)",
            f"- reference loop / vectorised = **{r['t_ref'] / r['t_vec']:.0f}x** (target >= 200x)",
            f"- peak RSS of the benchmark process: **{r['rss_mb']:.0f} MB** (target < 1 GB)"]
    return "\n".join(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 genomes, fewer repeats")
    a = ap.parse_args(argv)
    r = run(n=1000, n_ref=5, repeat=3) if a.quick else run()
    text = report(r)
    print(text)
    return text


if __name__ == "__main__":
    main()
