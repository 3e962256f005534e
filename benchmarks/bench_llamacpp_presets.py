"""Bits per weight of quantmoo's llama.cpp rule presets vs the numbers llama.cpp publishes.

Published: llama.cpp's quantize log for Llama-3-8B Q4_K_M ("model size = 4685.30 MiB (4.89 BPW)",
4.894 to three places) and Llama-2-7B Q4_K_M (4.844 BPW); and the per-type Llama-3-8B sizes in GiB
that ``tools/quantize/quantize.cpp`` prints next to each file type (two decimals, hand-written).
quantmoo's number is computed, never copied: every tensor's bytes under llama.cpp's own per-tensor
rules (``quantmoo.baselines.rules.preset_types``, with the shape fallback), norms in F32, over all
parameters. Also prints the same presets' ``size_mb`` in the llama.cpp search space on ``arm_dot``
(the size the search and ``quantmoo evaluate`` use), to show they are the same bytes, and in
quantmoo's default integer space (group size 128), where a preset can only be approximated.

    python -m benchmarks.bench_llamacpp_presets
"""
from __future__ import annotations

from quantmoo import zoo
from quantmoo.baselines.rules import PRESETS, preset_bpw, rule_presets
from quantmoo.search.problem import QuantizationProblem
from quantmoo.search.space import SearchSpace

PUBLISHED_BPW = {("llama3-8b", "Q4_K_M"): 4.894, ("llama2-7b", "Q4_K_M"): 4.844}
# tools/quantize/quantize.cpp QUANT_OPTIONS descriptions, Llama-3-8B, GiB
PUBLISHED_GIB = {"Q8_0": 7.96, "Q6_K": 6.14, "Q5_K_M": 5.33, "Q4_K_M": 4.58, "Q4_0": 4.34, "Q3_K_M": 3.74}


def main() -> str:
    """The markdown table (printed when run as a script)."""
    rows = ["| model | preset | quantmoo bpw | published bpw | quantmoo GiB | published GiB | llama.cpp space: size_mb "
          "x 8 / params | default int space (approx.) |", "|---|---|---|---|---|---|---|---|"]
    for name in ("llama3-8b", "llama2-7b"):
        m = zoo.load(name)
        p = QuantizationProblem(m, "arm_dot", space=SearchSpace.llama_cpp())
        names, X = rule_presets(p)
        size = dict(zip(names, p.evaluate_all(X)["size_mb"]))
        q = QuantizationProblem(m, "arm_dot")
        n_int, X_int = rule_presets(q)
        approx = dict(zip(n_int, q.evaluate_all(X_int)["size_mb"]))
        for preset in PRESETS:
            bpw = preset_bpw(m, preset)
            gib = bpw * m.n_params / 8 / 2 ** 30
            pub = PUBLISHED_BPW.get((name, preset))
            pub_gib = PUBLISHED_GIB.get(preset) if name == "llama3-8b" else None
            s = size[f"llama.cpp {preset}"] * 1e6 * 8 / m.n_params
            a = approx[f"llama.cpp {preset}"] * 1e6 * 8 / m.n_params
            rows.append(f"| {name} | {preset} | {bpw:.4f} | {pub if pub else '-'} | {gib:.3f} | "
                  f"{pub_gib if pub_gib else '-'} | {s:.4f} | {a:.3f} ({100 * (a / bpw - 1):+.1f}%) |")
    notes = [""]
    for (name, preset), pub in PUBLISHED_BPW.items():
        ours = preset_bpw(zoo.load(name), preset)
        notes.append(f"- {name} {preset}: {ours:.4f} bpw, published {pub}: "
                     f"{'matches' if round(ours, 3) == pub else 'DIFFERS'} to three decimals")
    notes.append("- bpw = every tensor's stored bytes (llama.cpp's per-tensor rules and shape fallback, norms F32) x 8 "
                 "/ all parameters, as llama.cpp reports it; the last column is the preset in quantmoo's default "
                 "integer space (group 128), an approximation")
    return "\n".join(rows + notes)


if __name__ == "__main__":
    print(main())
