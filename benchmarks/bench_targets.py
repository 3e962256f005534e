"""Issue 3 table: ``llama2-7b`` decode (one token, 1024-token context) on the six targets at
uniform W16A16, W8A8, W4A16 and W4A8: size, latency, energy, and how each layer runs.

Every figure is derived from the cost model and the cited profile constants
(``quantmoo/hardware/profiles/*.yaml``; ``quantmoo hardware --show NAME`` lists them).
Accuracy is not part of this table. Weights: symmetric per-channel for 8 bits, per-group 128
for 4 bits (the usual LLM practice); activations asymmetric per-tensor.

Run: ``python -m benchmarks.bench_targets``.
"""
from __future__ import annotations

from collections import Counter

from benchmarks._common import md_table

CONFIGS = (("W16A16", 16, 16, "per_channel"), ("W8A8", 8, 8, "per_channel"),
           ("W4A16", 4, 16, "per_group"), ("W4A8", 4, 8, "per_group"))


def how_it_runs(problem, cfg) -> str:
    """Summary of the per-layer breakdown: mode@device/precision with layer counts."""
    hw = problem.hardware
    counts = Counter()
    for r in problem.breakdown(cfg):
        dev = hw.main.name if r["device"] == "main" else hw.fallback.name
        counts[f"{r['mode']} {r['precision']} on {dev}"] += 1
    return "; ".join(f"{k}" + (f" ({v})" if len(counts) > 1 else "") for k, v in counts.most_common())


def run(model_name="llama2-7b"):
    import quantmoo
    from quantmoo import QuantConfig, SearchSpace
    from quantmoo.search.problem import QuantizationProblem
    model = quantmoo.zoo.load(model_name)
    space = SearchSpace(weight_bits=(4, 8, 16), activation_bits=(8, 16), weight_schemes=("symmetric",),
                        activation_schemes=("asymmetric",), granularities=("per_channel", "per_group"),
                        calibrations=("min_max",))
    rows = []
    for hw in quantmoo.hardware.names():
        prob = QuantizationProblem(model, hw, space=space)
        for label, w, a, g in CONFIGS:
            cfg = QuantConfig.uniform(model, w, a, granularity=g)
            v = prob.evaluate_all(prob.encoding.encode(cfg)[None])
            rows.append([hw, label, f"{v['size_mb'][0] / 1e3:.2f}", f"{v['latency_ms'][0]:.1f}",
                         f"{v['energy_mj'][0]:.0f}", how_it_runs(prob, cfg)])
    return rows


def report(rows, model_name="llama2-7b") -> str:
    return "\n".join([f"### `{model_name}` decode on the six targets (uniform configs; cost model, no accuracy)", "",
                      md_table(["target", "config", "size (GB)", "latency (ms/token)", "energy (mJ/token)",
                                "how the layers run"], rows)])


def main():
    text = report(run())
    print(text)
    return text


if __name__ == "__main__":
    main()
