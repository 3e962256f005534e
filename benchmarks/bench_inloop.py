"""Issue 19: measured-in-the-loop search against proxy front + validation and random search, per real evaluation.

For every model, budget ``N`` of real evaluations and seed, the measured hypervolume of
(measured ``accuracy_loss``, ``size_mb``) of the non-dominated measured points of:

* **proxy + validation** (today's pipeline): the proxy NSGA-II's non-dominated set thinned to ``N``
  points (the epsilon-net of the reported front), every point measured;
* **in-loop** (:func:`quantmoo.search.inloop.search_measured`): the same proxy search, ``N/2`` of
  its thinned front measured, then the rest chosen by expected HV improvement on the corrected
  surrogate, ``N/10`` per round;
* **EvoPress-style**: (1 + 4) level-switch evolution on the real loss at 5 size targets (:func:`evopress_style`);
* **random**: ``N`` uniformly random genomes of the space, measured.

All three use the same hypervolume reference (the proxy problem's fixed reference point, see
:func:`quantmoo.search.run.hv_reference`), the same proxy table (computed once per model) and
the same proxy search settings (pop 100 x 100 generations, the seed). Kendall tau: the proxy
over the in-loop run's measured points vs the corrected surrogate's leave-one-out predictions
over the same points, and the proxy vs the surrogate on the last round's batch (predicted
before it was measured).

Run: ``nice python -m benchmarks.bench_inloop [--tiny] [--models digits,minilm-l6]``.
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings

import numpy as np

from benchmarks._common import machine, md_table, stamp

BUDGETS = {"digits": (50, 100, 200, 400), "minilm-l6": (50, 100, 200)}
SEEDS = (0, 1, 2)
HARDWARE = "arm_dot"


def _measure(problem, source, X):
    from quantmoo.accuracy.parallel import evaluate_many
    cfgs = [problem.encoding.decode(x, hardware=problem.hardware.name) for x in X]
    d = evaluate_many(source, cfgs, workers=1)
    return np.array([float(r["loss"]) if "error" not in r else np.nan for r in d])


def _hv2(loss, size, ref):
    """(HV, HV with losses below 0 counted as 0) of measured points."""
    from quantmoo.search.run import hypervolume
    ok = np.isfinite(loss)
    F = np.column_stack([loss[ok], size[ok]])
    return hypervolume(F, ref), hypervolume(np.column_stack([np.maximum(F[:, 0], 0.0), F[:, 1]]), ref)


def _hv(problem, ref, X, loss):
    return _hv2(loss, problem.evaluate_all(X)["size_mb"], ref)


def proxy_validation(model, table, budget, seed, pop_size, n_gen):
    from quantmoo.search.archive import thin
    from quantmoo.search.run import SearchRun, drive
    run = SearchRun(model, HARDWARE, objectives=("accuracy_loss", "size_mb"), accuracy=table, pop_size=pop_size,
                    n_gen=n_gen, seed=seed, baselines=False, max_front=None)
    run.setup()
    drive(run, progress=False)
    X, F = run.archive.X, run.archive.F
    X = X[thin(F, budget)] if len(F) > budget else X
    return _hv(run.problem, run.hv_ref, X, _measure(run.problem, model.name, X)), len(X), run


def random_search(problem, ref, model, budget, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(problem.xl, problem.xu + 1, size=(budget, problem.n_var))
    return _hv(problem, ref, X, _measure(problem, model.name, X))


def evopress_style(run, model, budget, seed, n_targets=5, n_offspring=4):
    """EvoPress-style evolution on the real loss (re-implemented from the paper's description, simplified):
    for each of ``n_targets`` size targets (sizes of the thinned proxy front), a (1 + lambda) evolution from
    the largest proxy-front config within the target; a mutation is a level switch (one layer's weight bits
    one step up, another's one step down), kept only if within the target size; the offspring with the
    lowest measured loss replaces the parent if it is no worse. Budget split evenly over the targets; every
    measured offspring counts towards the hypervolume."""
    from quantmoo.search.archive import thin
    problem, enc = run.problem, run.problem.encoding
    rng = np.random.default_rng(seed)
    X, F = run.archive.X, run.archive.F
    size_col = problem.objectives.index("size_mb")
    targets = np.sort(F[thin(F, n_targets), size_col])
    wb = np.arange(enc.n_layers) * enc.k + enc.varying.index("weight_bits")   # the bits gene of each layer
    seen_X, seen_loss = [], []
    per_target = [budget // n_targets + (t < budget % n_targets) for t in range(n_targets)]
    for target, n in zip(targets, per_target):
        ok = F[:, size_col] <= target
        parent = X[ok][np.argmax(F[ok, size_col])]
        p_loss = _measure(problem, model.name, parent[None])[0]
        seen_X.append(parent[None]), seen_loss.append([p_loss])
        n -= 1
        while n > 0:
            lam = min(n_offspring, n)
            kids = np.repeat(parent[None], 8 * lam, axis=0)          # oversample, keep those within the size
            up, down = rng.integers(0, enc.n_layers, (2, len(kids)))
            rows = np.arange(len(kids))
            kids[rows, wb[up]] = np.minimum(kids[rows, wb[up]] + 1, problem.xu[wb[up]])
            kids[rows, wb[down]] = np.maximum(kids[rows, wb[down]] - 1, problem.xl[wb[down]])
            kids = kids[(problem.evaluate_all(kids)["size_mb"] <= target) & (kids != parent).any(axis=1)][:lam]
            if not len(kids):
                break
            loss = _measure(problem, model.name, kids)
            seen_X.append(kids), seen_loss.append(loss)
            n -= len(kids)
            best = int(np.nanargmin(loss)) if np.isfinite(loss).any() else None
            if best is not None and loss[best] <= p_loss:
                parent, p_loss = kids[best], loss[best]
    Xs = np.concatenate(seen_X)
    return _hv(problem, run.hv_ref, Xs, np.concatenate([np.asarray(l, float) for l in seen_loss])), len(Xs)


def run_model(name, budgets, seeds, pop_size=100, n_gen=100):
    import quantmoo
    from quantmoo.search.inloop import search_measured
    model = quantmoo.zoo.load(name)
    t0 = time.perf_counter()
    table = quantmoo.sensitivity(model, evaluator=model.evaluator)
    t_sens = time.perf_counter() - t0
    rows = {}
    for b in budgets:
        for s in seeds:
            t0 = time.perf_counter()
            hv_a, n_a, run = proxy_validation(model, table, b, s, pop_size, n_gen)
            t_a = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = search_measured(model, HARDWARE, budget=b, accuracy=table, seed=s, pop_size=pop_size, n_gen=n_gen)
            t_b = time.perf_counter() - t0
            hv_r = random_search(run.problem, run.hv_ref, model, b, s)
            hv_e, n_e = evopress_style(run, model, b, s)
            hv_b = _hv2(res.evaluations["accuracy_loss"], res.evaluations["size_mb"], run.hv_ref)
            il = res.meta["inloop"]
            assert abs(hv_b[0] - il["measured_hypervolume"]) < 1e-12
            rows.setdefault(b, []).append({"a": hv_a, "n_a": n_a, "b": hv_b, "r": hv_r, "e": hv_e,
                                           "tau": il["kendall_tau"], "n_b": il["n_evaluations"], "t_a": t_a,
                                           "t_b": t_b, "eval_s": il["seconds_evaluating"]})
            print(f"{name} N={b} seed={s}: proxy+validation {hv_a} ({n_a} measured), in-loop "
                  f"{hv_b} ({il['n_evaluations']}), evopress-style {hv_e} ({n_e}), random "
                  f"{hv_r}; tau "
                  f"{il['kendall_tau']}", file=sys.stderr, flush=True)
    return rows, t_sens


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def table_rows(name, rows, k=0):
    """Rows of one table: ``k`` = 0 the measured hypervolume, 1 the same with losses below 0 counted as 0."""
    out = []
    for b, rs in rows.items():
        a, il, r = (_med([x[m][k] for x in rs]) for m in ("a", "b", "r"))
        wins = sum(x["b"][k] >= x["a"][k] for x in rs)
        t = [x["tau"] for x in rs]
        out.append([name, b, len(rs), f"{a:.4f}", f"{il:.4f}",
                    f"{_med([x['e'][k] for x in rs]):.4f}", f"{r:.4f}",
                    f"{il / a:.4f}", f"{wins}/{len(rs)}",
                    f"{_med([x['proxy_all'] for x in t]):.3f} / {_med([x['surrogate_loo_all'] for x in t]):.3f}",
                    f"{_med([x['proxy_last_round'] for x in t]):.3f} / "
                    f"{_med([x['surrogate_last_round'] for x in t]):.3f}",
                    f"{_med([x['eval_s'] for x in rs]):.2f}", f"{_med([x['t_b'] for x in rs]):.1f}"])
    return out


HEADER = ["model", "N", "seeds", "proxy + validation", "in-loop", "EvoPress-style",
          "random",
          "in-loop / proxy+val",
          "in-loop >= proxy+val", "tau proxy / surrogate (all measured, LOO)", "tau proxy / surrogate (last round)",
          "eval s (in-loop)", "wall s (in-loop)"]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    tiny = "--tiny" in argv
    models = ["digits"]
    if "--models" in argv:
        models = argv[argv.index("--models") + 1].split(",")
    warnings.simplefilter("ignore", RuntimeWarning)
    raw, clipped = [], []
    for name in models:
        budgets = (10,) if tiny else BUDGETS.get(name, (50, 100, 200))
        seeds = (0,) if tiny else SEEDS
        rows, t_sens = run_model(name, budgets, seeds, *((20, 5) if tiny else (100, 100)))
        raw += table_rows(name, rows, 0)
        clipped += table_rows(name, rows, 1)
    text = (f"Median over seeds {list(SEEDS)}; hardware {HARDWARE}; {stamp()}; {machine()}\n\n"
            "Measured hypervolume of (measured accuracy_loss, size_mb):\n\n" + md_table(HEADER, raw)
            + "\n\nThe same with measured losses below 0 (better than fp32 on the test split) counted as 0:\n\n"
            + md_table(HEADER, clipped))
    print(text)
    return text


if __name__ == "__main__":
    main()
