"""Issue 16: when do latency and energy add information beyond size? The objective agreement table.

For each (model, target, workload) the script searches the four-objective front (accuracy loss,
size, latency, energy; NSGA-II, the default space, seed 0) and prints the Spearman rank
correlation of size vs latency, size vs energy and latency vs energy over the front's points.
A correlation near 1 means the two objectives order the front the same way (one of them adds
nothing there); well below 1 means they disagree and the multi-objective front matters.

Workloads: CNNs and encoders have one (``inference``: batch 1 at their default input); decoder
LLMs are run in ``decode`` (one new token against a 1,024-token KV cache, memory-bound) and
``prefill`` (512 prompt tokens at once, compute-bound).

Run: ``python -m benchmarks.bench_agreement [--tiny | --quick | --full]``.
"""
from __future__ import annotations

import numpy as np

from benchmarks._common import header, md_table, parse_mode

FINDINGS: list = []
TARGETS = ("apple_ane", "arm_dot", "arm_neon", "hexagon", "intel_vnni", "tensorrt")
#: (zoo model, workloads); a workload is (label, zoo overrides).
MODELS = (
    ("resnet18", (("inference", {}),)),
    ("gpt2", (("decode", {}), ("prefill", {"mode": "prefill", "prefill_tokens": 512}))),
    ("tinyllama-1.1b", (("decode", {}), ("prefill", {"mode": "prefill", "prefill_tokens": 512}))),
)
SETTINGS = {
    "tiny": dict(models=MODELS[:2], targets=("arm_dot", "tensorrt"), pop_size=16, n_gen=4),
    "quick": dict(models=MODELS, targets=TARGETS, pop_size=60, n_gen=40),
    "full": dict(models=MODELS, targets=TARGETS, pop_size=100, n_gen=150),
}
PAIRS = (("size_mb", "latency_ms"), ("size_mb", "energy_mj"), ("latency_ms", "energy_mj"))


def spearman(a, b) -> float:
    """Spearman rank correlation (nan when either side is constant)."""
    from scipy.stats import spearmanr
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def agreement(model, hardware, pop_size: int, n_gen: int, seed: int = 0) -> dict:
    """Spearman correlations of (size, latency, energy) over one searched front."""
    import quantmoo
    res = quantmoo.search(model, hardware, pop_size=pop_size, n_gen=n_gen, seed=seed, progress=False,
                          baselines=False)
    obj = {k: np.array([s.objectives[k] for s in res.front]) for k in ("size_mb", "latency_ms", "energy_mj")}
    return {"n": len(res.front), **{f"{a}|{b}": spearman(obj[a], obj[b]) for a, b in PAIRS}}


def quantmoo_model(name: str, overrides: dict):
    """A zoo model with workload overrides."""
    import quantmoo
    return quantmoo.zoo.load(name, **overrides)


def run(mode: str = "quick") -> dict:
    s = SETTINGS[mode]
    rows = []
    for name, workloads in s["models"]:
        for label, overrides in workloads:
            model = quantmoo_model(name, overrides)
            for hw in s["targets"]:
                rows.append(dict(model=name, workload=label, hardware=hw,
                                 **agreement(model, hw, s["pop_size"], s["n_gen"])))
    return {"rows": rows, "mode": mode, "settings": s}


def report(r: dict) -> str:
    s = r["settings"]
    f = lambda v: "n/a" if v != v else f"{v:+.2f}"
    lines = header("Objective agreement over the front: Spearman rank correlation (issue 16)", "bench_agreement",
                   r["mode"])
    lines += [f"NSGA-II, default space, pop {s['pop_size']}, {s['n_gen']} generations, seed 0, prior accuracy; "
              "rho over the final front's points (n).", ""]
    rows = [[x["model"], x["workload"], f"`{x['hardware']}`", x["n"], f(x["size_mb|latency_ms"]),
             f(x["size_mb|energy_mj"]), f(x["latency_ms|energy_mj"])] for x in r["rows"]]
    lines += [md_table(["model", "workload", "target", "n", "rho(size, latency)", "rho(size, energy)",
                        "rho(latency, energy)"], rows), ""]
    by = {}
    for x in r["rows"]:
        by.setdefault(x["workload"], []).append(x["size_mb|latency_ms"])
    med = {w: float(np.nanmedian(v)) for w, v in by.items() if np.isfinite(v).any()}
    summary = ", ".join(f"{w}: median {m:+.2f} (min {np.nanmin(by[w]):+.2f})" for w, m in med.items())
    lines.append(f"- rho(size, latency) by workload: {summary}.")
    if "decode" in med and "prefill" in med:
        lines.append(f"- LLM decode (memory-bound) {'orders the front more like size than' if med['decode'] > med['prefill'] else 'does NOT order the front more like size than'} "
                     f"prefill (compute-bound): median rho {med['decode']:+.2f} vs {med['prefill']:+.2f}. Where rho is "
                     "well below 1, latency adds information beyond size (e.g. sub-byte weights unpacked to a wider "
                     "compute type are small but not fast).")
    le = np.array([x["latency_ms|energy_mj"] for x in r["rows"]], dtype=float)
    if np.isfinite(le).any():
        lines.append(f"- rho(latency, energy): median {np.nanmedian(le):+.2f}, min {np.nanmin(le):+.2f} over the "
                     f"{len(le)} fronts: energy orders a front like latency wherever the static power x latency "
                     "term dominates the per-op energies; the rows well below 1 are where energy adds information.")
    return "\n".join(lines)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    text = report(run(mode))
    print(text)
    return text


if __name__ == "__main__":
    main()
