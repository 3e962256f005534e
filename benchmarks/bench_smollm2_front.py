"""Issue 14: the measured KL/size front of ``smollm2-135m`` in llama.cpp's types vs llama.cpp's presets.

What runs, per seed, the way a user runs it (the Python twins of ``quantmoo sensitivity``,
``quantmoo search --space llama.cpp --seed-baselines`` and ``quantmoo validate --refine``):

1. ``sensitivity(spec, SearchSpace.llama_cpp(), cache_dir=...)``: the proxy table (one-layer
   runs on the 512-token calibration split; kind ``proxy``), cached on disk;
2. ``quantmoo.search(..., objectives=(accuracy_loss, size_mb), hardware arm_dot,
   seed_baselines=True)``: NSGA-II on the proxy; the population starts with the greedy, ILP and
   llama.cpp rule-preset configs (legitimate initial points); the front is thinned to
   ``--max-front`` points;
3. ``validate(result, refine=1, cache=...)``: every front point and the six presets Q8_0, Q6_K,
   Q5_K_M, Q4_K_M, Q4_0, Q3_K_M (built by quantmoo's rules for this model) are measured on the
   4,096-token evaluation split: KL to the fp32 model (the Q4_1 file dequantized to float32),
   perplexity, top-1 agreement; ``refine=1`` also measures, for every preset, the proxy-best
   non-dominated point no larger than it. Only the presets are kept as the result's baselines (the
   uniform, greedy and ILP baselines would cost a measurement each and are not the question here).

Each pass runs in a fresh process: the first one with an empty cache directory (cold), then the
same seed again on the filled cache (cached). Reported per seed: the table of each preset with
the measured front point that has equal or smaller size and the lowest measured KL; how many
presets that point beats; the noise of each KL difference (the standard error of the paired
per-window differences over the 8 evaluation windows: the same windows score both configs, so
this is how much the difference depends on which text was scored); Kendall tau between proxy and
measured KL over the validated front (refined points included); wall times. Proxy numbers are
never shown as measured.

    python -m benchmarks.bench_smollm2_front            # seeds 0 and 1 (28 min on one shared core, 14 of them the sensitivity pass)
    python -m benchmarks.bench_smollm2_front --seeds 0 --max-front 8 --pop-size 40 --n-gen 20
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, md_table, stamp

PRESETS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M")


def one_pass(seed: int, cache: Path, out: Path, max_front: int, pop_size: int, n_gen: int) -> dict:
    """Sensitivity + search + validation of one seed with caches in ``cache``; the run saved in ``out``."""
    import quantmoo
    from quantmoo import SearchSpace, zoo
    from quantmoo.accuracy.sensitivity import sensitivity
    from quantmoo.accuracy.validate import validate

    t0 = time.perf_counter()
    spec = zoo.load("smollm2-135m")
    space = SearchSpace.llama_cpp()
    t1 = time.perf_counter()
    table = sensitivity(spec, space, spec.evaluator, cache_dir=cache / "tables", progress=True)
    t2 = time.perf_counter()
    res = quantmoo.search(spec, "arm_dot", space=space, objectives=("accuracy_loss", "size_mb"), accuracy=table,
                          pop_size=pop_size, n_gen=n_gen, seed=seed, seed_baselines=True, max_front=max_front,
                          progress=False)
    t3 = time.perf_counter()
    res.baselines = [b for b in res.baselines if b.get("kind") == "rules"]
    rep = validate(res, model=spec, workers=1, cache=cache / "evals", refine=1, progress=True)
    t4 = time.perf_counter()
    res.save(out, overwrite=True)
    front = [{"proxy": s.objectives["accuracy_loss"], "size_mb": s.objectives["size_mb"],
              "measured": s.measured} for s in res.front]
    base = [{"name": b["name"], "size_mb": b["objectives"]["size_mb"], "proxy": b["objectives"]["accuracy_loss"],
             "measured": b.get("measured")} for b in res.baselines]
    return {"seed": seed, "n_params": spec.n_params, "front": front, "presets": base,
            "kendall_tau": rep.kendall_tau, "n_measured": rep.n, "n_refined": (rep.refine or {}).get("n_added", 0), "cache_hits": rep.cache_hits,
            "cache_misses": rep.cache_misses, "table_runs": table.meta.get("n_calibration_runs"),
            "table_seconds": table.meta.get("seconds"), "table_cpu_seconds": table.meta.get("cpu_seconds"),
            "fp32_ppl": spec.evaluator.fp32_perplexity()
            if rep.cache_misses else None,
            "seconds": {"load": t1 - t0, "sensitivity": t2 - t1, "search": t3 - t2, "validation": t4 - t3},
            "cpu_seconds": time.process_time()}


def compare(r: dict) -> dict:
    """Per preset: the measured front point at equal or smaller size with the lowest measured KL."""
    pts = [p for p in r["front"] if p["measured"] and "kl_mean" in p["measured"]]
    rows = []
    for b in r["presets"]:
        m = b["measured"]
        ok = [p for p in pts if p["size_mb"] <= b["size_mb"] * (1 + 1e-12)]
        best = min(ok, key=lambda p: p["measured"]["kl_mean"]) if ok else None
        d = se = None
        if best is not None:
            diff = np.array(best["measured"]["kl_windows"]) - np.array(m["kl_windows"])
            d, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
        rows.append({"preset": b["name"].replace("llama.cpp ", ""), "b": b, "best": best, "diff": d, "se": se,
                     "wins": best is not None and d < 0})
    return {"rows": rows, "n_wins": sum(x["wins"] for x in rows)}


def tau_in_preset_range(r: dict) -> tuple:
    """Kendall tau(proxy, measured KL) over the front points between the smallest and largest preset."""
    from scipy.stats import kendalltau
    lo, hi = min(b["size_mb"] for b in r["presets"]), max(b["size_mb"] for b in r["presets"])
    pts = [p for p in r["front"] if p["measured"] and lo * 0.9 <= p["size_mb"] <= hi * 1.05]
    return float(kendalltau([p["proxy"] for p in pts], [p["measured"]["kl_mean"] for p in pts])[0]), len(pts)


def report(results: list, n_params: int) -> str:
    bpw = lambda mb: mb * 8e6 / n_params  # noqa: E731
    out = []
    for seed, cold, warm in results:
        c = compare(cold)
        tau_r, n_r = tau_in_preset_range(cold)
        n_ref = cold.get("n_refined", 0)
        rows = []
        for x in c["rows"]:
            b, m, p = x["b"], x["b"]["measured"], x["best"]
            pm = p["measured"] if p else {}
            rows.append([x["preset"], f"{bpw(b['size_mb']):.3f}", f"{m['kl_mean']:.4f}", f"{m['perplexity']:.3f}",
                         f"{m['top1_agreement']:.3f}",
                         f"{bpw(p['size_mb']):.3f}" if p else "-", f"{pm.get('kl_mean', float('nan')):.4f}",
                         f"{pm.get('perplexity', float('nan')):.3f}", f"{pm.get('top1_agreement', float('nan')):.3f}",
                         f"{x['diff']:+.5f} ± {x['se']:.5f} ({x['diff'] / x['se']:+.0f} s.e.)" if p else "-",
                         "front" if x["wins"] else "preset"])
        s, s2 = cold["seconds"], warm["seconds"]
        # the table is computed once per (model, space, evaluator) and cached: a pass that found it cached
        # is charged the time recorded in the table when it was computed (cold)
        sens = cold["table_seconds"]
        tot = sens + s["search"] + s["validation"]
        tot2 = s2["sensitivity"] + s2["search"] + s2["validation"]
        out += [f"**seed {seed}**: {cold['n_measured']} front points measured ({cold['n_measured'] - n_ref} of the "
                f"thinned front + {n_ref} added by the presets' refinement); Kendall tau(proxy, measured KL) over them "
                f"= {cold['kendall_tau']:.3f}, over the {n_r} between 0.9x the smallest and 1.05x the largest preset = "
                f"{tau_r:.3f}; the measured front has a lower KL than {c['n_wins']} of the 6 presets at equal or "
                f"smaller size.", "",
                md_table(["preset", "bpw", "KL", "ppl", "top-1", "front bpw", "front KL", "front ppl", "front top-1",
                          "KL diff ± s.e. (windows)", "lower KL"], rows), "",
                f"time (wall): sensitivity {sens:.0f} s when computed ({cold['table_cpu_seconds']:.0f} s CPU, "
                f"{cold['table_runs']} one-layer runs; this pass: {s['sensitivity']:.1f} s), search "
                f"{s['search']:.0f} s, validation {s['validation']:.0f} s ({cold['cache_misses']} evaluations, "
                f"{cold['cache_hits']} cache hits) = {tot:.0f} s; cached rerun: {s2['sensitivity']:.1f} + "
                f"{s2['search']:.1f} + {s2['validation']:.1f} = {tot2:.1f} s ({tot / max(tot2, 1e-9):.1f}x faster; "
                f"model load {s2['load']:.1f} s not included in either)", "",
                "<details><summary>every measured front point (proxy vs measured)</summary>", "",
                md_table(["bpw", "proxy KL", "measured KL", "ppl", "top-1"],
                         [[f"{bpw(p['size_mb']):.3f}", f"{p['proxy']:.4f}", f"{p['measured']['kl_mean']:.4f}",
                           f"{p['measured']['perplexity']:.3f}", f"{p['measured']['top1_agreement']:.3f}"]
                          for p in cold["front"] if p["measured"] and "kl_mean" in p["measured"]]),
                "", "</details>", ""]
    return "\n".join(out)


def figure(results: list, n_params: int) -> str:
    """Measured KL vs bpw: each seed's measured front and the six presets (log KL)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from benchmarks._common import save_png
    bpw = lambda mb: mb * 8e6 / n_params  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (seed, cold, _), mk in zip(results, ("o", "s")):
        pts = sorted((bpw(p["size_mb"]), p["measured"]["kl_mean"]) for p in cold["front"]
                     if p["measured"] and p["measured"].get("kl_mean", 0) > 0)
        ax.plot(*zip(*pts), mk + "-", ms=4, lw=1, label=f"measured front, seed {seed}")
    for b in results[0][1]["presets"]:
        x, y = bpw(b["size_mb"]), b["measured"]["kl_mean"]
        ax.plot(x, y, "k^", ms=7)
        ax.annotate(b["name"].replace("llama.cpp ", ""), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.plot([], [], "k^", label="llama.cpp presets (quantmoo's rules)")
    ax.set_yscale("log")
    ax.set_xlim(5, 9)
    ax.set_ylim(3e-4, 1)
    ax.set_xlabel("bits per weight (packed size x 8 / parameters)")
    ax.set_ylabel("measured KL to fp32 (nats/token)")
    ax.set_title("smollm2-135m, llama.cpp types, arm_dot: measured")
    ax.legend(fontsize=8)
    return save_png(fig, "smollm2_front_vs_presets")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--max-front", type=int, default=16)
    ap.add_argument("--pop-size", type=int, default=100)
    ap.add_argument("--n-gen", type=int, default=100)
    ap.add_argument("--dir", help="working directory (caches, runs); default: a new temporary directory")
    ap.add_argument("--report-only", action="store_true", help="print the report of the passes already in --dir")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)   # child: one pass of this seed
    ap.add_argument("--json", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="quantmoo-smollm2-front-"))
    if a.one is not None:
        r = one_pass(a.one, work / "cache", work / f"run-seed{a.one}", a.max_front, a.pop_size, a.n_gen)
        Path(a.json).write_text(json.dumps(r, default=float))
        return
    load0 = os.getloadavg()
    results = []
    for seed in a.seeds:
        passes = []
        for label in ("cold", "cached"):
            js = work / f"seed{seed}-{label}.json"
            if a.report_only:
                passes.append(json.loads(js.read_text()))
                continue
            cmd = [sys.executable, "-m", "benchmarks.bench_smollm2_front", "--one", str(seed), "--dir", str(work),
                   "--json", str(js), "--max-front", str(a.max_front), "--pop-size", str(a.pop_size),
                   "--n-gen", str(a.n_gen)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            passes.append(json.loads(js.read_text()))
            print(f"seed {seed} {label}: {time.perf_counter() - t:.0f} s wall (process)", file=sys.stderr, flush=True)
        results.append((seed, *passes))
    n_params = results[0][1]["n_params"]
    ppl = next((r[1]["fp32_ppl"] for r in results if r[1]["fp32_ppl"]), None)
    print(f"smollm2-135m, llama.cpp space, arm_dot, objectives (accuracy_loss = KL, size_mb); pop {a.pop_size}, "
          f"{a.n_gen} generations, front thinned to {a.max_front}; KL/ppl/top-1 measured on 4,096 tokens (8 "
          f"Wikipedia windows of 512) against the fp32 model = the Q4_1 GGUF dequantized to float32"
          + (f" (fp32 ppl {ppl:.3f})" if ppl else ""))
    print("bpw = packed size x 8 / the 134.5 M quantizable parameters (norms excluded); the front point of a preset is "
          "the measured front point with size <= the preset's and the lowest measured KL\n")
    print(report(results, n_params))
    print(figure(results, n_params) + "\n")
    load1 = os.getloadavg()
    print(f"{machine()}; load average before {load0[0]:.2f}, after {load1[0]:.2f}; {stamp()}; work dir {work}")


if __name__ == "__main__":
    main()
