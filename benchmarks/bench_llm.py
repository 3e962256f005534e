"""Issue 14 (real LLM): cost of one measured evaluation of ``smollm2-135m`` and its fp32 perplexity.

Prints, for the zoo model (4,096 scored tokens in 8 windows of 512 tokens of Wikipedia prose):
the time to build the spec (GGUF header + tokenizer), to compute the fp32 reference once
(dequantized Q4_1 file in float32), and one full evaluation (median of 3, each after
``clear_cache()``, so weights are re-quantized every time), wall and CPU seconds, with the machine's
core count and load average (the machine is shared: wall time depends on it, CPU time much less).

Run: ``python -m benchmarks.bench_llm``
"""
from __future__ import annotations

import os
import statistics
import time

from benchmarks._common import machine, md_table, stamp


def main() -> None:
    import quantmoo
    from quantmoo import QuantConfig

    load0 = os.getloadavg()
    t, c = time.perf_counter(), time.process_time()
    spec = quantmoo.zoo.load("smollm2-135m")
    ev = spec.evaluator
    ev.eval_titles  # tokenize the windows
    t_load = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    ppl = ev.fp32_perplexity()
    t_ref = (time.perf_counter() - t, time.process_time() - c)
    rows, walls, cpus = [], [], []
    configs = [("w8 per-channel", QuantConfig.uniform(spec, 8, 16, granularity="per_channel")),
               ("w4 group 32", QuantConfig.uniform(spec, 4, 16, granularity="per_group", group_size=32)),
               ("w4 per-channel", QuantConfig.uniform(spec, 4, 16, granularity="per_channel"))]
    for label, cfg in configs:
        ev.clear_cache()
        t, c = time.perf_counter(), time.process_time()
        d = ev.details(cfg)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        rows.append([label, f"{d['loss']:.4f}", f"{d['perplexity']:.3f}", f"{d['perplexity_change']:+.3f}",
                     f"{d['top1_agreement']:.4f}", f"{walls[-1]:.1f}", f"{cpus[-1]:.1f}"])
    load1 = os.getloadavg()
    print(f"smollm2-135m: fp32 (dequantized Q4_1) perplexity {ppl:.3f} on {d['n_tokens']} tokens "
          f"({len(ev.eval_titles)} windows of {ev.seq_len} tokens from {', '.join(ev.eval_titles)})")
    print(f"load {t_load[0]:.1f} s wall / {t_load[1]:.1f} s CPU; fp32 reference once {t_ref[0]:.1f} s wall / "
          f"{t_ref[1]:.1f} s CPU; evaluator threads {ev.threads}")
    print(md_table(["config (weights only, fp16 activations)", "KL (nats/token)", "perplexity", "change vs fp32",
                    "top-1 agreement", "wall (s)", "CPU (s)"], rows))
    print(f"one evaluation: median {statistics.median(walls):.1f} s wall, {statistics.median(cpus):.1f} s CPU "
          f"(budget 20 s on 2 cores)")
    print(f"nproc {os.cpu_count()}, load average before {load0[0]:.2f}, after {load1[0]:.2f}; {machine()}; {stamp()}")


if __name__ == "__main__":
    main()
