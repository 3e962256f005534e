"""Table 3: the brief's compression levels, measured on the real models.

For ``digits`` and ``minilm-l6``, each level as compression vs FP32 and **measured** loss:

* INT8: uniform W8A8 (weights symmetric per-channel, activations asymmetric, MSE calibration);
* INT4: uniform W4A8 per-group (128), and the weight-only W4A16 per-group;
* mixed 4/8: ``quantmoo.search`` restricted to weight bits {4, 8} and 8-bit activations
  (``SearchSpace(weight_bits=(4, 8), activation_bits=(8,))``), driven by the proxy table of the
  default space restricted to those choices; its front is measured and two points are reported:
  the largest compression with measured loss below the brief's bound, and the lowest measured
  loss at or above the brief's compression;
* mixed 2/3/4: the same with weight bits {2, 3, 4};
* INT2: uniform W2A8 per-group.

Set against the brief's claimed ranges (INT8 4x < 0.5 %; INT4 8x 1-2 %; mixed 4/8 6x < 1 %;
INT2/4 12x+ at 2-4 %). The brief's "%" is accuracy; ``digits``' loss is in percentage points of
test accuracy, ``minilm-l6``'s is an embedding-fidelity loss (and the nearest-neighbour
agreement is shown next to it).

Run: ``python -m benchmarks.bench_levels [--tiny | --quick | --full]``.
"""
from __future__ import annotations

import numpy as np

from benchmarks import _brief, _real
from benchmarks._common import finding, header, md_table, parse_mode, save_png, verdict

#: Differences from the brief found by the last report (read by run_all's closing note).
FINDINGS: list = []

HARDWARE = "arm_dot"
SETTINGS = {
    "tiny": dict(models=("digits",), pop_size=20, n_gen=5, max_front={"digits": 8}),
    "quick": dict(models=("digits", "minilm-l6"), pop_size=80, n_gen=80, max_front={"digits": 100, "minilm-l6": 12}),
    "full": dict(models=("digits", "minilm-l6"), pop_size=100, n_gen=200,
                 max_front={"digits": 200, "minilm-l6": 50}),
}
UNIFORM = (("INT8", "W8A8 per-channel", 8, 8, "per_channel"),
           ("INT4", "W4A8 per-group", 4, 8, "per_group"),
           ("INT4", "W4A16 per-group (weight-only)", 4, 16, "per_group"),
           ("INT2", "W2A8 per-group", 2, 8, "per_group"))
MIXED = (("mixed 4/8", (4, 8)), ("mixed 2/3/4", (2, 3, 4)))


def _uniform(p, w, a, g):
    from quantmoo.search.operators.repair import repair_genomes
    enc = p.encoding
    ci = enc.space.calibrations.index("mse")
    x = enc.uniform_genome(w, a, calibration=ci, granularity=g, weight_scheme="symmetric",
                           activation_scheme="asymmetric")
    return repair_genomes(x[None], enc)[0]


def run_model(name, pop_size, n_gen, max_front, seed=0) -> dict:
    import quantmoo
    from quantmoo.search.space import SearchSpace
    p = _real.problem(name, HARDWARE)
    fp32 = p.model.fp32_mb
    rows = []
    X = np.array([_uniform(p, w, a, g) for _, _, w, a, g in UNIFORM])
    det = _real.measure(name, [p.encoding.decode(x) for x in X], tag="table3 uniform")
    v = p.evaluate_all(X)
    for i, (level, label, *_r) in enumerate(UNIFORM):
        rows.append({"level": level, "config": label, "comp": fp32 / v["size_mb"][i], "loss": det[i]["loss"],
                     "nn": det[i].get("nn_agreement"), "proxy": v["accuracy_loss"][i]})
    fronts = {}
    for level, wbits in MIXED:
        sp = SearchSpace(weight_bits=wbits, activation_bits=(8,))
        ps = _real.problem(name, HARDWARE, space=sp)
        res = quantmoo.search(None, None, problem=ps, pop_size=pop_size, n_gen=n_gen, seed=seed, progress=False,
                              baselines=False, max_front=max_front)
        det = _real.measure(name, [s.config for s in res.front], tag=f"table3 {level}")
        comp = np.array([s.compression_ratio for s in res.front])
        loss = np.array([d["loss"] for d in det])
        nn = np.array([d.get("nn_agreement", np.nan) for d in det])
        fronts[level] = (comp, loss)
        claim = _brief.LEVELS[level]
        ok = loss < claim["loss"][1]
        if ok.any():
            i = np.flatnonzero(ok)[np.argmax(comp[ok])]
            rows.append({"level": level, "config": f"front: max compression at measured loss < {claim['loss'][1]:g}",
                         "comp": comp[i], "loss": loss[i], "nn": nn[i], "n_front": len(comp)})
        else:
            rows.append({"level": level, "config": f"front: no point below loss {claim['loss'][1]:g}",
                         "comp": np.nan, "loss": np.nan, "nn": np.nan, "n_front": len(comp)})
        big = comp >= claim["compression"]
        if big.any():
            i = np.flatnonzero(big)[np.argmin(loss[big])]
            rows.append({"level": level, "config": f"front: lowest measured loss at >= {claim['compression']:g}x",
                         "comp": comp[i], "loss": loss[i], "nn": nn[i], "n_front": len(comp)})
        else:
            rows.append({"level": level, "config": f"front: no point at >= {claim['compression']:g}x "
                                                   f"(max {comp.max():.2f}x)",
                         "comp": np.nan, "loss": np.nan, "nn": np.nan, "n_front": len(comp)})
    return {"model": name, "rows": rows, "fronts": fronts, "fp32_mb": fp32}


def _check(level, comp, loss):
    """True when a row meets the brief's claim: >= 95% of the claimed compression (scales and fp16
    biases cost a few percent) at a loss no higher than the claimed upper bound."""
    c = _brief.LEVELS[level]
    if comp != comp:
        return False
    return bool(comp >= 0.95 * c["compression"] and loss <= c["loss"][1])


def figure(results) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter
    from quantmoo.results.plots import MODEL_NAMES
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False, layout="constrained")
    colors = {"INT8": "C0", "INT4": "C1", "mixed 4/8": "C2", "mixed 2/3/4": "C3", "INT2": "C4"}
    markers = iter("*PXDv^<>")  # one marker per uniform config: two INT4 rows share a colour
    marker_of = {}
    floor = 1e-2
    for ax, r in zip(axes[0], results):
        regions = {}
        for level, c in _brief.LEVELS.items():      # levels with the same claim share one region
            regions.setdefault((c["compression"], c["loss"]), []).append(level)
        right = 0.0
        for (comp, (lo, hi)), levels in regions.items():
            ax.add_patch(Rectangle((comp, max(lo, floor)), 2.0, hi - max(lo, floor), alpha=0.12,
                                   color=colors[levels[0]]))
            ax.text(comp + 0.05, hi, "claimed: " + " / ".join(levels), fontsize=6, color=colors[levels[0]],
                    va="bottom")
            right = max(right, comp + 2.0)
        for level, (comp, loss) in r["fronts"].items():
            o = np.argsort(comp)
            # markers only: the points are a proxy front, each measured; a line through them would zig-zag
            ax.plot(comp[o], np.maximum(loss[o], floor), "o", ms=3, alpha=0.8, color=colors[level],
                    label=f"{level} front, each point measured")
            right = max(right, float(np.max(comp)) if len(comp) else 0.0)
        for row in r["rows"]:
            if row["config"].startswith("front") or row["comp"] != row["comp"]:
                continue
            mk = marker_of.setdefault(row["config"], next(markers, "o"))
            ax.scatter([row["comp"]], [max(row["loss"], floor)], marker=mk, s=70, color=colors[row["level"]],
                       edgecolors="black", linewidths=0.5, label=f"{row['level']} {row['config']}", zorder=3)
        ax.set_xlim(right=right + 0.6)  # room for the region labels
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("compression vs FP32 (x)")
        unit = "pp of test accuracy" if r["model"] == "digits" else "100 x (1 - cosine to fp32)"
        ax.set_ylabel(f"measured loss ({unit})\nbelow {floor:g} drawn at {floor:g}")
        ax.set_title(f"{MODEL_NAMES.get(r['model'], r['model'])}: measured; shaded: the brief's claimed regions",
                     fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
        ax.grid(alpha=0.3)
    return save_png(fig, "table3_levels_measured")


def report(results, mode) -> str:
    out = header("Table 3. Compression levels on real models, measured", "bench_levels", mode)
    out += ["Loss units: " + "; ".join(f"`{r['model']}`: {_real.loss_unit(r['model'])}" for r in results) +
            ". Mixed rows: searched with the proxy table in the restricted space (accuracy, size), front measured; "
            "compression vs FP32 includes scales and the fp16 biases.", ""]
    rows = []
    for r in results:
        for x in r["rows"]:
            c = _brief.LEVELS[x["level"]]
            claim = f"{c['compression']:g}x" + ("+" if x["level"] in ("INT2", "mixed 2/3/4") else "") + \
                    f" at {c['loss'][0]:g}-{c['loss'][1]:g}%"
            ok = _check(x["level"], x["comp"], x["loss"])
            rows.append([r["model"], x["level"], x["config"],
                         "n/a" if x["comp"] != x["comp"] else f"{x['comp']:.2f}x",
                         "n/a" if x["loss"] != x["loss"] else f"{x['loss']:.3f}",
                         "" if x.get("nn") is None or x["nn"] != x["nn"] else f"{x['nn'] * 100:.1f}%",
                         claim, "holds" if ok else "**does not hold**"])
    out += [md_table(["model", "level", "config", "compression", "measured loss", "NN agreement (minilm)",
                      "brief claims", "claim"], rows), "", figure(results), "", "#### Against the brief", ""]
    for r in results:
        for level in _brief.LEVELS:
            xs = [x for x in r["rows"] if x["level"] == level and x["comp"] == x["comp"]]
            if not xs:
                out.append(verdict(False, f"{r['model']} {level}: no measured config reaches the claimed region."))
                continue
            best = max(xs, key=lambda x: (_check(level, x["comp"], x["loss"]), x["comp"]))
            c = _brief.LEVELS[level]
            ok = _check(level, best["comp"], best["loss"])
            extra = ""
            if ok and best["loss"] < c["loss"][0]:
                extra = f"; measured loss {best['loss']:.3f} is below the claimed {c['loss'][0]:g}-{c['loss'][1]:g} range"
            if ok and best["comp"] > c["compression"]:
                extra += f"; {best['comp'] / c['compression']:.2f}x the claimed compression"
            if not ok and best["loss"] > c["loss"][1]:
                finding(FINDINGS, best["loss"] / c["loss"][1],
                        f"Table 3: {r['model']} {level} ({best['config']}) measures loss {best['loss']:.2f} at "
                        f"{best['comp']:.2f}x, vs the brief's {c['loss'][0]:g}-{c['loss'][1]:g}% "
                        f"({best['loss'] / c['loss'][1]:.1f}x the claimed upper bound; {_real.loss_unit(r['model'])}).",
                        key="level INT2/4" if level in ("INT2", "mixed 2/3/4") else f"level {level}")
            out.append(verdict(ok, f"{r['model']} {level} ({best['config']}): **{best['comp']:.2f}x at measured loss "
                                   f"{best['loss']:.3f}** vs brief {c['compression']:g}x at "
                                   f"{c['loss'][0]:g}-{c['loss'][1]:g}%{extra}."))
    return "\n".join(out)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    FINDINGS.clear()
    results = [run_model(m, s["pop_size"], s["n_gen"], s["max_front"][m]) for m in s["models"]]
    text = report(results, mode)
    print(text)
    return text


if __name__ == "__main__":
    main()
