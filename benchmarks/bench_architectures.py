"""Table 2: compression at fixed accuracy-loss budgets, five architectures and two real models.

Part A, zoo architectures (``resnet50``, ``mobilenet_v2``, ``bert-base``, ``gpt2``,
``llama2-7b``): no weights, so ``accuracy_loss`` is the documented **prior** noise model. For
every loss budget B, the largest compression vs FP32 (size = packed weights incl. scales and the
never-quantized fp16 parameters) with loss <= B reached by

* uniform INT8 (W8A8 per-channel) and uniform INT4 (W4A8 per-group): one config each, so either
  within the budget or not;
* the HAWQ-V3-style ILP (:func:`quantmoo.baselines.ilp_solve`, scipy/HiGHS), which minimises
  loss under a size budget: the size budget is bisected to the smallest one whose optimum
  meets B, for every calibration method, and the best is kept;
* ``quantmoo.search`` on the two objectives (accuracy_loss, size_mb), NSGA-II;
* the exact separable front (dynamic programming, :func:`quantmoo.baselines.exact_front`):
  the ceiling no method can beat on this problem.

Part B, real models (``digits``, ``minilm-l6``): a **proxy** table from sensitivity analysis
drives the search and the ILP (the front is thinned to ``real_front[model]`` points: every
measurement of ``minilm-l6`` costs about a second); every config is then **measured** with the real evaluator, and the
budgets apply to the measured loss: uniform INT8 / INT4, the ILP solved at the size of every
front point (with that point's calibration method, so both get the same size budgets), and the
search's front, all measured.

Run: ``python -m benchmarks.bench_architectures [--tiny | --quick | --full]``.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import _brief, _real
from benchmarks._common import finding, fmt_x, header, md_table, parse_mode, save_png, verdict

#: Differences from the brief found by the last report (read by run_all's closing note).
FINDINGS: list = []

ZOO = ("resnet50", "mobilenet_v2", "bert-base", "gpt2", "llama2-7b")
HARDWARE = "arm_dot"      # size and loss do not depend on the target; it only fixes the problem
SETTINGS = {
    "tiny": dict(models=("bert-base",), budgets=(1.0,), pop_size=20, n_gen=5, bisect=4,
                 real=("digits",), real_budgets=(1.0,), real_front={"digits": 10}),
    "quick": dict(models=ZOO, budgets=(0.5, 1.0, 2.0), pop_size=100, n_gen=100, bisect=10,
                  real=("digits", "minilm-l6"), real_budgets=(0.5, 1.0, 2.0),
                  real_front={"digits": 200, "minilm-l6": 20}),
    "full": dict(models=ZOO, budgets=(0.5, 1.0, 2.0), pop_size=100, n_gen=300, bisect=14,
                 real=("digits", "minilm-l6"), real_budgets=(0.5, 1.0, 2.0),
                 real_front={"digits": 400, "minilm-l6": 60}),
}
#: The two uniform rows: (label, weight bits, activation bits, granularity).
UNIFORM = (("INT8 (W8A8)", 8, 8, "per_channel"), ("INT4 (W4A8 per-group)", 4, 8, "per_group"))


def uniform_X(problem):
    """Genomes of the two uniform rows (symmetric weights, asymmetric activations, MSE calibration
    when the space has it, the calibration the prior and the proxies favour)."""
    from quantmoo.search.operators.repair import repair_genomes
    enc = problem.encoding
    cal = enc.space.calibrations
    ci = cal.index("mse") if "mse" in cal else 0
    X = [enc.uniform_genome(w, a, calibration=ci, granularity=g, weight_scheme="symmetric",
                            activation_scheme="asymmetric") for _, w, a, g in UNIFORM]
    return repair_genomes(np.array(X), enc)


def ilp_at_loss(problem, budget: float, n_iter: int = 10):
    """Largest compression the HAWQ-style ILP reaches with loss <= ``budget``.

    Bisects the ILP's size budget (per calibration method) to the smallest size whose
    loss-minimising config meets ``budget``. Returns ``(size_mb, loss, genome)`` or None.
    """
    from quantmoo.baselines.ilp import _ILP
    best = None
    for calib in range(len(problem.space.calibrations)):
        ilp = _ILP(problem, "size_mb", calib)
        lo, hi = ilp.min_cost, max(ilp.max_useful, ilp.min_cost)

        def solve(b):
            C = ilp.solve(b, 10.0, 1e-9)
            if C is None:
                return None
            x = problem.encoding.genes_from_choices(C[None, :], np.array([calib]))[0]
            v = problem.evaluate_all(x[None])
            return float(v["size_mb"][0]), float(v["accuracy_loss"][0]), x

        top = solve(hi)
        if top is None or top[1] > budget:
            continue
        found = top
        low = solve(lo)
        if low is not None and low[1] <= budget:
            found = low
        else:
            for _ in range(n_iter):
                mid = 0.5 * (lo + hi)
                r = solve(mid)
                if r is not None and r[1] <= budget:
                    hi, found = mid, r
                else:
                    lo = mid
        if best is None or found[0] < best[0]:
            best = found
    return best


def exact_best(problem, budget: float):
    """Smallest size on the exact separable front with loss <= budget (all calibrations)."""
    from quantmoo.baselines.exact import exact_front
    best = np.inf
    exact = True
    for c in range(len(problem.space.calibrations)):
        F, _, ex = exact_front(problem, calib=c)
        exact &= bool(ex)
        ok = F[:, 0] <= budget
        if ok.any():
            best = min(best, float(F[ok, 1].min()))
    return best, exact


def zoo_part(models, budgets, pop_size, n_gen, bisect, seed=0) -> list:
    import quantmoo
    from quantmoo.search.problem import QuantizationProblem
    rows = []
    for m in models:
        p = QuantizationProblem(m, HARDWARE, objectives=("accuracy_loss", "size_mb"))
        fp32 = p.model.fp32_mb
        vu = p.evaluate_all(uniform_X(p))
        t0 = time.perf_counter()
        res = quantmoo.search(None, None, problem=p, pop_size=pop_size, n_gen=n_gen, seed=seed, progress=False,
                              baselines=False, max_front=None)
        t_search = time.perf_counter() - t0
        F = res.F
        for B in budgets:
            t0 = time.perf_counter()
            ilp = ilp_at_loss(p, B, bisect)
            t_ilp = time.perf_counter() - t0
            ex, exact = exact_best(p, B)
            ok = F[:, 0] <= B
            s_best = float(F[ok, 1].min()) if ok.any() else np.inf
            rows.append({"model": m, "budget": B, "kind": p.accuracy_kind, "fp32_mb": fp32,
                         "uniform": [(lab, fp32 / vu["size_mb"][i], vu["accuracy_loss"][i])
                                     for i, (lab, *_r) in enumerate(UNIFORM)],
                         "ilp": fp32 / ilp[0] if ilp else np.nan, "ilp_loss": ilp[1] if ilp else np.nan,
                         "search": fp32 / s_best, "exact": fp32 / ex, "exact_is_exact": exact,
                         "t_search": t_search, "t_ilp": t_ilp, "n_eval": res.history[-1]["n_eval"]})
    return rows


def real_part(models, budgets, pop_size, n_gen, real_front, seed=0) -> list:
    import quantmoo
    from quantmoo.baselines.ilp import ilp_curve
    out = []
    for name in models:
        p = _real.problem(name, HARDWARE)
        fp32 = p.model.fp32_mb
        res = quantmoo.search(None, None, problem=p, pop_size=pop_size, n_gen=n_gen, seed=seed, progress=False,
                              baselines=False, max_front=real_front[name])
        groups = {"uniform": uniform_X(p), "search": res.X}
        # the ILP at the same size budgets as the search's front points (and their calibration)
        cal = p.encoding.calibration_index(res.X)
        sizes = p.evaluate_all(res.X)["size_mb"]
        Xi = [ilp_curve(p, calib=int(c), budgets=sizes[cal == c], time_limit=10.0)[1] for c in np.unique(cal)]
        groups["ilp"] = np.unique(np.concatenate(Xi), axis=0)
        meas = {}
        for g, X in groups.items():
            cfgs = [p.encoding.decode(x) for x in X]
            det = _real.measure(name, cfgs, tag=f"table2 {g}")
            v = p.evaluate_all(X)
            meas[g] = {"comp": fp32 / v["size_mb"], "proxy": v["accuracy_loss"],
                       "loss": np.array([d["loss"] for d in det]),
                       "nn": np.array([d.get("nn_agreement", np.nan) for d in det])}
        out.append({"model": name, "fp32_mb": fp32, "meas": meas, "budgets": budgets,
                    "n": {g: len(v["loss"]) for g, v in meas.items()}})
    return out


def _best_at(m, B):
    ok = m["loss"] <= B
    if not ok.any():
        return np.nan, np.nan
    i = np.flatnonzero(ok)[np.argmax(m["comp"][ok])]
    return float(m["comp"][i]), float(m["loss"][i])


def figure(zoo, real) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from quantmoo.results.plots import MODEL_NAMES, OKABE_ITO
    # one panel per real model: their losses are in different units (pp of accuracy vs 100 x (1 - cosine))
    fig, axes = plt.subplots(1, 1 + len(real), figsize=(4.6 * (1 + len(real)), 3.9), layout="constrained",
                             squeeze=False)
    axes = axes[0]
    ax = axes[0]
    B = max(r["budget"] for r in zoo) if zoo else None
    sel = [r for r in zoo if r["budget"] == B]
    keys = [("uniform INT8", lambda r: r["uniform"][0][1] if r["uniform"][0][2] <= r["budget"] else np.nan),
            ("uniform INT4", lambda r: r["uniform"][1][1] if r["uniform"][1][2] <= r["budget"] else np.nan),
            ("ILP (HAWQ-V3-style)", lambda r: r["ilp"]), ("quantmoo", lambda r: r["search"]),
            ("exact front (ceiling)", lambda r: r["exact"])]
    colours = [OKABE_ITO[c] for c in ("orange", "sky", "green", "blue", "purple")]
    w = 0.16
    for j, ((lab, f), col) in enumerate(zip(keys, colours)):
        v = np.array([f(r) for r in sel], dtype=float)
        xs = np.arange(len(sel)) + j * w
        ax.bar(xs, np.nan_to_num(v), w, label=lab, color=col)
        for x in xs[~np.isfinite(v)]:  # no config within the budget: say so instead of a zero-height bar
            ax.text(x, 0.15, "over budget", rotation=90, ha="center", va="bottom", fontsize=6, color="0.3")
    ax.set_xticks(np.arange(len(sel)) + 2 * w)
    ax.set_xticklabels([MODEL_NAMES.get(r["model"], r["model"]) for r in sel], fontsize=8)
    ax.set_ylabel("compression vs FP32 (x)")
    ax.set_title(f"zoo architectures: prior loss <= {B:g} pp (kind prior, no weights)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    styles = {"search": ("o", OKABE_ITO["blue"], "quantmoo front"), "ilp": ("s", OKABE_ITO["green"], "ILP"),
              "uniform": ("^", OKABE_ITO["orange"], "uniform")}
    for ax, r in zip(axes[1:], real):
        floor = 1e-3
        for g, (mk, col, lab) in styles.items():
            m = r["meas"][g]
            ax.scatter(m["comp"], np.maximum(m["loss"], floor), marker=mk, s=14, color=col, label=lab,
                       alpha=0.8, linewidths=0)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("compression vs FP32 (x)")
        unit = "pp of test accuracy" if r["model"] == "digits" else "100 x (1 - cosine to fp32)"
        ax.set_ylabel(f"measured loss ({unit})\n0 and below drawn at {floor:g}")
        ax.set_title(f"{MODEL_NAMES.get(r['model'], r['model'])}: every config measured", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    return save_png(fig, "table2_compression_at_budget")


def report(zoo, real, mode) -> str:
    out = header("Table 2. Compression at fixed loss budgets: five architectures (prior) and two real models "
                 "(measured)", "bench_architectures", mode)
    rows = []
    for r in zoo:
        u = [f"{c:.2f}x" if l <= r["budget"] else f"over ({l:.2f})" for _, c, l in r["uniform"]]
        rows.append([r["model"], f"<= {r['budget']:g}", *u, fmt_x(r["ilp"]), f"**{fmt_x(r['search'])}**",
                     fmt_x(r["exact"]) + ("" if r["exact_is_exact"] else " (thinned)"),
                     f"{r['search'] / r['ilp']:.3f}" if np.isfinite(r["ilp"]) and np.isfinite(r["search"]) else "n/a",
                     f"{r['t_search']:.1f} s / {r['t_ilp']:.1f} s"])
    out += ["#### A. Zoo architectures: prior loss (pp; kind `prior`, no weights)", "",
            f"Target `{HARDWARE}` (size and loss do not depend on it). quantmoo: 2 objectives, "
            f"{zoo[0]['n_eval'] if zoo else 0:,} evaluations, seed 0. 'over (x)': the uniform config's loss x "
            "exceeds the budget.", "",
            md_table(["model", "prior loss budget", "uniform INT8", "uniform INT4", "HAWQ-style ILP", "quantmoo search",
                      "exact front (ceiling)", "search / ILP", "time search / ILP"], rows), ""]
    real_rows = []
    for r in real:
        for B in r["budgets"]:
            cells = []
            for g in ("uniform", "ilp", "search"):
                c, l = _best_at(r["meas"][g], B)
                cells.append(f"{c:.2f}x ({l:.3f})" if c == c else "none")
            real_rows.append([r["model"], f"<= {B:g}", *cells])
    if real:
        out += ["#### B. Real models: measured loss", "",
                "Search and ILP use the proxy table (sensitivity analysis); the ILP is solved at the size of every front point "
                "(same calibration); every config below was then measured. "
                "Cell: best compression with measured loss <= budget (its measured loss). Configs measured: " +
                "; ".join(f"{r['model']}: uniform {r['n']['uniform']}, ILP {r['n']['ilp']}, search front "
                          f"{r['n']['search']}" for r in real) + ".", ""]
        out += ["Loss units: " + "; ".join(f"`{r['model']}`: {_real.loss_unit(r['model'])}" for r in real), "",
                md_table(["model", "measured loss budget", "uniform INT8 / INT4 (best)", "HAWQ-style ILP at the front's sizes",
                          "quantmoo front"], real_rows), ""]
    out += [figure(zoo, real), "", "#### Against the brief", ""]
    for m, claim in _brief.ARCHITECTURES.items():
        rs = [r for r in zoo if r["model"] == m]
        if not rs:
            continue
        r1 = min(rs, key=lambda r: abs(r["budget"] - 1.0))
        out.append(verdict(r1["search"] >= claim["compression"],
                           f"brief: {m} {claim['compression']}x @ {claim['accuracy_pct']}% (baseline accuracy not "
                           f"given); quantmoo at prior loss <= {r1['budget']:g} pp: **{fmt_x(r1['search'])}** "
                           f"(uniform INT8 {r1['uniform'][0][1]:.2f}x, ILP {fmt_x(r1['ilp'])}, exact {fmt_x(r1['exact'])}); "
                           "prior, not measured."))
        if r1["search"] < claim["compression"]:
            finding(FINDINGS, r1["search"] / claim["compression"],
                    f"Table 2: {m}: {fmt_x(r1['search'])} at prior loss <= {r1['budget']:g} pp vs the brief's "
                    f"{claim['compression']}x ({r1['search'] / claim['compression']:.2f}x; prior, not measured).",
                    key=f"architecture {m}")
    for r in real:
        c, l = _best_at(r["meas"]["search"], 1.0)
        u, _ = _best_at(r["meas"]["uniform"], 1.0)
        i, _ = _best_at(r["meas"]["ilp"], 1.0)
        out.append(f"- measured, {r['model']}: at loss <= 1: quantmoo **{fmt_x(c)}**, ILP at the same sizes {fmt_x(i)}, "
                   f"best uniform {fmt_x(u)}" + (f" (quantmoo / uniform = {c / u:.2f})" if u == u and c == c else ""))
    return "\n".join(out)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    FINDINGS.clear()
    zoo = zoo_part(s["models"], s["budgets"], s["pop_size"], s["n_gen"], s["bisect"])
    real = real_part(s["real"], s["real_budgets"], s["pop_size"], s["n_gen"], s["real_front"])
    text = report(zoo, real, mode)
    print(text)
    return text


if __name__ == "__main__":
    main()
