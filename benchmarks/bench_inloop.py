"""Issue 19: measured-in-the-loop search against its peers, per real evaluation.

For every model, budget ``N`` of real evaluations and seed, every method below requests exactly
``N`` real evaluations (fewer only where it says so) and is scored by the measured hypervolume of
the non-dominated set of everything it measured, in 2 objectives (measured ``accuracy_loss``,
``size_mb``) and in 3 (measured ``accuracy_loss``, ``size_mb``, ``latency_ms``):

* **proxy + validation** (today's pipeline): the proxy NSGA-II's non-dominated set thinned to ``N``
  points (the epsilon-net of the reported front), every point measured;
* **in-loop** (:func:`quantmoo.search_measured`): the same proxy search, ``N/2`` of its thinned
  front measured, then ``N/10`` per round chosen by expected HV improvement on the corrected
  surrogate, or, in rounds where the surrogate (leave-one-out) ranks the measured points no better than
  the proxy, the next ``N/10`` points of the proxy front's epsilon-net (with ``--refine K``, the last round
  measures the K best-predicted candidates below each baseline);
* **in-loop, 3 objectives**: the same with ``objectives=("accuracy_loss", "size_mb", "latency_ms")`` (its
  own proxy search in 3 objectives; expected improvement of the 3-objective hypervolume);
* **AMQ-style** (:func:`amq_style`): NSGA-II on a quality predictor refitted to every real
  evaluation so far, each round measuring the predicted front's most promising unmeasured genomes;
* **EvoPress-style** (:func:`evopress_style`): (1 + 4) level-switch evolution on the real loss at 5
  size targets;
* **Optuna NSGA-II** (:func:`optuna_nsga2`): ``optuna.samplers.NSGAIISampler`` on the real loss and
  the size (benchmark-only dependency, ``benchmarks/requirements.txt``; without it the row says
  "optuna not installed");
* **random**: ``N`` uniformly random genomes of the space.

All methods of one model share one evaluation cache (:class:`~quantmoo.accuracy.cache.EvalCache`,
a temporary directory): a genome two methods request is run once, and each method is still charged
for every evaluation it requests. Every method gets the same proxy table (computed once per model;
the sensitivity pass is not charged to any method's budget; it is read from ``$QUANTMOO_BENCH_CACHE``
when an earlier run computed it), the same proxy search (pop 100 x 100
generations, the seed) where it uses one, and the same fixed reference points (the proxy
problem's, see :func:`quantmoo.search.run.hv_reference`). Measured losses below 0 (a quantized
model that beat fp32 on the test split) count as 0 in the main tables (the raw 2-objective
hypervolume is the last table).

Kendall tau of the in-loop runs, at the start and at the end: the proxy vs the measured loss over
the initial design (the thinned proxy front); the proxy and the corrected surrogate on the first
and on the last adaptive round's batch (each predicted before it was measured); over every point
measured at the end, the proxy and the final surrogate's leave-one-out predictions; and on held-out points (every
genome the other methods measured that the in-loop run did not), the proxy and the surrogate fitted to the initial
design (start) and to all ``N`` in-loop measurements (end) (:func:`heldout_tau`).

Baselines (``--baselines``): per run, the standard baselines the issue names (llama.cpp's rule presets for a decoder
LLM, else the greedy curve's and the ILP sweep's points) are measured through the shared cache (charged to no method),
and the last table counts how many of them in-loop's and proxy + validation's measured points beat (lower measured
loss at equal or smaller size) or match. With ``--probe K`` it also measures, per baseline, the ``K`` candidates of
the proxy search with the lowest proxy loss no larger than it (:func:`probe_baselines`): whether a baseline left
unbeaten could have been beaten from the search's candidates at all.

Run: ``nice python -m benchmarks.bench_inloop [--tiny] [--models digits,open-nsfw,minilm-l6,smollm2-135m]
[--budgets 50,100] [--seeds 0,1,2] [--eval-cache DIR] [--methods pv,il,amq,evo,opt,rnd] [--baselines]
[--eval-tokens 1024] [--refine K] [--probe K] [--seed-baselines] [--no-exact-start] [--save FILE]`` or ``python -m
benchmarks.bench_inloop --merge FILE,FILE [--refine K] [--probe K] [--seed-baselines]`` (``--save``: also write the
per-seed results to FILE as JSON; ``--merge``: print the tables of the saved runs as one, e.g. for seeds run in
parallel processes, one per core, with the flags of the saved runs for the header and the probe column;
``--eval-cache``: keep the shared cache in DIR, e.g. to continue an interrupted run without measuring again; default
a temporary directory; ``--methods``: run only these methods, keys as in ``METHODS``; the others' cells say "not
run"; ``--eval-tokens``: smollm2-135m's evaluator scores this many tokens instead of 4,096,
about 4 s instead of 13 s per evaluation; RESULTS.md uses 1,024; ``--refine K``: the in-loop runs' ``refine``, see
:func:`quantmoo.search_measured`, default 0; ``--seed-baselines``: the in-loop runs' ``seed_baselines``, their proxy
search starts from the baselines' genomes; proxy + validation stays unseeded; ``--no-exact-start``: the in-loop runs'
``exact_start=False``, their design starts from NSGA-II's front alone: run it and the default with one
``--eval-cache`` for the side-by-side comparison in RESULTS.md).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from benchmarks._common import csv_arg, machine, md_table, stamp

#: CPU per evaluation on one core: open-nsfw ~0.5 s, minilm-l6 ~0.6 s, smollm2-135m ~4 s with --eval-tokens 1024; five
#: methods (no Optuna, random) at N = 400 took ~18 CPU min per seed on open-nsfw or minilm-l6 with N = 200 already in
#: the cache (3,176 and 3,070 s for 3 seeds). RESULTS.md has N = 50-400 with 3 seeds (smollm2: N = 50 and 200; at
#: N = 200 five methods, one process per seed, ``--save`` / ``--merge``).
BUDGETS = {"digits": (50, 100, 200, 400), "open-nsfw": (50, 100, 200, 400), "minilm-l6": (50, 100, 200, 400),
           "smollm2-135m": (50, 200)}
SEEDS = (0, 1, 2)
HARDWARE = "arm_dot"
OBJ3 = ("accuracy_loss", "size_mb", "latency_ms")
METHODS = (("pv", "proxy + validation"), ("il", "in-loop"), ("il3", "in-loop, 3 objectives"), ("amq", "AMQ-style"),
           ("evo", "EvoPress-style"), ("opt", "Optuna NSGA-II"), ("rnd", "random"))
OURS = ("il", "il3")          # quantmoo's measured search, asked for 2 or for 3 objectives


def _space(name):
    """The space of a model: open-nsfw's is the small one of bench_open_nsfw (each evaluation runs a QDQ model);
    smollm2-135m's is llama.cpp's types (``SearchSpace.llama_cpp()``, as in bench_smollm2_front)."""
    if name == "open-nsfw":
        from benchmarks.bench_open_nsfw import space
        return space()
    if name == "smollm2-135m":
        from quantmoo import SearchSpace
        return SearchSpace.llama_cpp()
    return None


def _load(name, eval_tokens=None):
    """The zoo model; for smollm2-135m with ``eval_tokens``, its evaluator scores that many tokens instead of
    4,096 (same text, same 512-token windows and calibration; its own evaluator name, so its own caches)."""
    import quantmoo
    model = quantmoo.zoo.load(name)
    if eval_tokens and name == "smollm2-135m":
        from quantmoo.runtime.llama import LlamaEvaluator
        model.evaluator = LlamaEvaluator(model, model.evaluator.model, eval_tokens=int(eval_tokens))
    return model


def baselines_measured(problem, measure):
    """``{kind: (genomes, (sizes, measured losses))}`` of the standard baselines the goal names: llama.cpp's rule presets
    for decoder LLMs, else the greedy curve's and the ILP sweep's points (:func:`quantmoo.baselines.baseline_genomes`);
    measured through the shared cache, charged to no method."""
    from quantmoo.baselines import baseline_genomes
    groups = {k: X for k, _, X in baseline_genomes(problem) if len(X)}
    kinds = ("rules",) if "rules" in groups else ("greedy", "ilp")
    return {k: (groups[k], (problem.evaluate_all(groups[k])["size_mb"], measure(groups[k]))) for k in kinds
            if k in groups}


def beaten(X, loss, size_of, base):
    """``(lower, no worse)``: how many baseline points some measured point beats (measured loss lower at equal
    or smaller size) and matches or beats (loss equal or lower: digits' losses move in steps of one image)."""
    X, loss = np.asarray(X, dtype=np.int64), np.asarray(loss, dtype=float)
    sz = size_of(X)
    ok = np.isfinite(loss)
    bs, bl = base
    at = [ok & (sz <= s * (1 + 1e-12)) for s in bs]
    return (int(sum(bool(np.any(a & (loss < l))) for a, l in zip(at, bl))),
            int(sum(bool(np.any(a & (loss <= l))) for a, l in zip(at, bl))))


class Measurer:
    """Measures genomes through the shared evaluation cache; counts what each method requests."""

    def __init__(self, problem, model, cache):
        self.problem, self.model, self.cache = problem, model, cache

    def __call__(self, X):
        from quantmoo.accuracy.parallel import evaluate_many
        X = np.asarray(X, dtype=np.int64).reshape(-1, self.problem.n_var)
        cfgs = [self.problem.encoding.decode(x, hardware=self.problem.hardware.name) for x in X]
        d = evaluate_many(self.model, cfgs, workers=1, cache=self.cache)
        return np.array([float(r["loss"]) if "error" not in r else np.nan for r in d])


def heldout_tau(problem, records, X_out, loss_out, n_pairs=4):
    """Kendall tau vs the measured loss on held-out points (genomes the other methods measured and this in-loop
    run did not): ``(n, proxy, surrogate fitted to the initial design, surrogate fitted to all N in-loop
    measurements)``. The proxy's tau is fixed; a correction that learns from the search ranks them better at the
    end than at the start. None with fewer than 3 held-out or measured points."""
    from quantmoo.accuracy.validate import _tau
    from quantmoo.search.inloop import fit_surrogate, proxy_terms
    recs = [r for r in records if "loss" in r]
    own = {tuple(r["genome"]) for r in records}
    held = {}
    for x, v in zip(np.asarray(X_out, dtype=np.int64), np.asarray(loss_out, dtype=float)):
        if np.isfinite(v) and tuple(x) not in own:
            held[tuple(x)] = v
    if len(held) < 3 or len(recs) < 3:
        return None
    Xh, yh = np.array(list(held), dtype=np.int64), np.array(list(held.values()))
    Th, Tm = proxy_terms(problem, Xh), proxy_terms(problem, [r["genome"] for r in recs])
    ym = np.array([r["loss"] for r in recs])
    start = np.array([r["chosen_by"] == "design" for r in recs])

    def tau_after(mask):
        sur = fit_surrogate(Tm[mask], ym[mask], n_pairs=n_pairs)
        return _tau(sur.predict(Th)[0], yh)[0]

    return len(yh), _tau(Th.sum(axis=1), yh)[0], tau_after(start), tau_after(np.ones(len(recs), dtype=bool))


def probe_baselines(run, base_X, base_loss, measure, k):
    """How many baselines the ``k`` best proxy candidates no larger (of the proxy search's evaluated genomes,
    excluding the baseline itself) beat when measured: ``(n at the loss floor (<= 0), n beaten)``. It tells whether
    a baseline left unbeaten could have been beaten from the search's candidates at all."""
    problem = run.problem
    pool = np.unique(np.concatenate([np.asarray(e, dtype=np.int64) for e in run.evaluated] + [run.archive.X]), axis=0)
    v = problem.evaluate_all(pool)
    ok = problem.feasible_mask(v)
    pool, ps, pl = pool[ok], v["size_mb"][ok], v["accuracy_loss"][ok]
    bs = problem.evaluate_all(base_X)["size_mb"]
    floor = beat = 0
    for x, s, l in zip(base_X, bs, base_loss):
        ok = np.flatnonzero((ps <= s * (1 + 1e-12)) & ~(pool == x).all(axis=1))
        top = ok[np.argsort(pl[ok], kind="stable")[:k]]
        floor += bool(l <= 0)
        beat += bool(len(top) and np.any(measure(pool[top]) < l))
    return floor, beat


def scores(problem, refs, X, loss):
    """(2-objective HV with losses < 0 counted as 0, 3-objective HV likewise, raw 2-objective HV) of measured
    genomes; ``refs[m]`` is the m-objective reference point."""
    from quantmoo.search.run import hypervolume
    X, loss = np.asarray(X, dtype=np.int64), np.asarray(loss, dtype=float)
    ok = np.isfinite(loss)
    v = problem.evaluate_all(X[ok])
    l0 = np.maximum(loss[ok], 0.0)
    return (hypervolume(np.column_stack([l0, v["size_mb"]]), refs[2]),
            hypervolume(np.column_stack([l0, v["size_mb"], v["latency_ms"]]), refs[3]),
            hypervolume(np.column_stack([loss[ok], v["size_mb"]]), refs[2]))


def proxy_run(model, space, table, seed, pop_size, n_gen):
    from quantmoo.search.run import SearchRun, drive
    run = SearchRun(model, HARDWARE, space=space, objectives=("accuracy_loss", "size_mb"), accuracy=table,
                    pop_size=pop_size, n_gen=n_gen, seed=seed, baselines=False, max_front=None,
                    exact_start=False)          # the methods read NSGA-II's archive, not the result
    run.setup()
    drive(run, progress=False)
    return run


def proxy_validation(run, measure, budget):
    from quantmoo.search.archive import thin
    X, F = run.archive.X, run.archive.F
    X = X[thin(F, budget)] if len(F) > budget else X
    return X, measure(X)


def random_search(problem, measure, budget, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(problem.xl, problem.xu + 1, size=(budget, problem.n_var))
    return X, measure(X)


def evopress_style(run, measure, budget, seed, n_targets=5, n_offspring=4):
    """EvoPress-style evolution on the real loss (re-implemented from the paper's description, simplified):
    for each of ``n_targets`` size targets (sizes of the thinned proxy front), a (1 + lambda) evolution from
    the largest proxy-front config within the target; a mutation is a level switch (one layer's weight bits
    one step up, another's one step down), kept only if within the target size; the offspring with the
    lowest measured loss replaces the parent if it is no worse (in a llama.cpp space a level is a type, in order of
    bits per weight). Budget split evenly over the targets; every
    measured offspring counts towards the hypervolume."""
    from quantmoo.search.archive import thin
    problem, enc = run.problem, run.problem.encoding
    rng = np.random.default_rng(seed)
    X, F = run.archive.X, run.archive.F
    size_col = problem.objectives.index("size_mb")
    targets = np.sort(F[thin(F, n_targets), size_col])
    level = "weight_format" if "weight_format" in enc.varying else "weight_bits"   # llama.cpp types: by bpw
    wb = np.arange(enc.n_layers) * enc.k + enc.varying.index(level)   # the bits gene of each layer
    seen_X, seen_loss = [], []
    per_target = [budget // n_targets + (t < budget % n_targets) for t in range(n_targets)]
    for target, n in zip(targets, per_target):
        ok = F[:, size_col] <= target
        parent = X[ok][np.argmax(F[ok, size_col])]
        p_loss = measure(parent[None])[0]
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
            loss = measure(kids)
            seen_X.append(kids), seen_loss.append(loss)
            n -= len(kids)
            best = int(np.nanargmin(loss)) if np.isfinite(loss).any() else None
            if best is not None and loss[best] <= p_loss:
                parent, p_loss = kids[best], loss[best]
    return np.concatenate(seen_X), np.concatenate([np.asarray(l, float) for l in seen_loss])


def amq_style(problem, measure, budget, seed, init_fraction=0.5, pop_size=100, n_gen=50):
    """AMQ-style loop (re-implemented from the description of Lee et al., "AMQ: Enabling AutoML for
    Mixed-precision Weight-Only Quantization of Large Language Models", EMNLP 2025: a quality predictor
    trained on real evaluations, NSGA-II on the predictor, an iterative search-and-update).

    An initial archive of ``init_fraction * budget`` uniformly random genomes is measured; then, each round,
    a quality predictor (a radial-basis-function interpolant of the measured loss over the normalised genome,
    thin-plate spline with a linear tail and light smoothing, a linear kernel with a constant tail while there
    are too few points for a linear one: our choice) is refitted to every measurement
    so far, pymoo's NSGA-II (its default integer operators) searches (predicted loss, size) from the
    archive's genomes, and ``budget / 10`` unmeasured genomes of the predicted front, spread over it by the
    epsilon-net, are measured and join the archive. No proxy table is used: the predictor learns from real
    evaluations only (AMQ's own proxy, a cheaper quantizer, has no counterpart here)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize
    from scipy.interpolate import RBFInterpolator
    from quantmoo.search.archive import thin
    from quantmoo.search.operators.duplicates import duplicate_mask
    rng = np.random.default_rng(seed)
    lo, span = problem.xl.astype(float), np.maximum(problem.xu - problem.xl, 1).astype(float)
    n0 = max(2, int(round(init_fraction * budget)))
    X = rng.integers(problem.xl, problem.xu + 1, size=(n0, problem.n_var))
    X = np.unique(X, axis=0)
    loss = measure(X)
    q = max(1, budget // 10)
    rnd = 0
    while len(X) < budget:
        rnd += 1
        ok = np.isfinite(loss)
        few = ok.sum() <= problem.n_var + 1      # a linear tail needs n_var + 1 points: a constant one until then
        rbf = RBFInterpolator((X[ok] - lo) / span, loss[ok], kernel="linear" if few else "thin_plate_spline",
                              degree=0 if few else 1, smoothing=1e-3 * max(float(np.ptp(loss[ok])), 1e-12))

        class Predicted(Problem):
            def __init__(self):
                super().__init__(n_var=problem.n_var, n_obj=2, xl=problem.xl, xu=problem.xu, vtype=int)

            def _evaluate(self, G, out, *args, **kwargs):
                G = np.rint(G).astype(np.int64)
                out["F"] = np.column_stack([rbf((G - lo) / span), problem.evaluate_all(G)["size_mb"]])

        start = X[np.argsort(loss)[:pop_size]] if len(X) >= pop_size else np.vstack(
            [X, rng.integers(problem.xl, problem.xu + 1, size=(pop_size - len(X), problem.n_var))])
        alg = NSGA2(pop_size=pop_size, sampling=start.astype(float), eliminate_duplicates=True,
                    crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                    mutation=PM(eta=20, vtype=float, repair=RoundingRepair()))
        res = minimize(Predicted(), alg, ("n_gen", n_gen), seed=int(seed) * 1000 + rnd, verbose=False)
        C = np.rint(np.atleast_2d(res.X)).astype(np.int64)
        Fc = np.atleast_2d(res.F)
        new = ~duplicate_mask(C, X)
        C, Fc = C[new], Fc[new]
        k = min(q, budget - len(X))
        if not len(C):       # the predicted front is all measured: fill with random genomes
            C = rng.integers(problem.xl, problem.xu + 1, size=(k, problem.n_var))
            C = C[~duplicate_mask(C, X)]
            if not len(C):
                break
        pick = (C[thin(Fc, k)] if len(C) > k else C)[:k]     # thin keeps each objective's best: may exceed k
        X = np.concatenate([X, pick])
        loss = np.concatenate([loss, measure(pick)])
    return X, loss


def optuna_nsga2(problem, measure, budget, seed):
    """Optuna's NSGAIISampler on (measured loss, size): one integer parameter per gene, one trial per real
    evaluation, population ``min(50, max(10, budget // 8))`` (Optuna's default 50 would leave N = 50 one random
    generation). Returns None without optuna."""
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.NSGAIISampler(population_size=min(50, max(10, budget // 8)), seed=seed)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    X, loss = [], []
    for _ in range(budget):
        trial = study.ask()
        x = np.array([trial.suggest_int(f"g{j:03d}", int(problem.xl[j]), int(problem.xu[j]))
                      for j in range(problem.n_var)], dtype=np.int64)
        v = float(measure(x[None])[0])
        X.append(x), loss.append(v)
        if np.isfinite(v):
            study.tell(trial, [v, float(problem.evaluate_all(x[None])["size_mb"][0])])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return np.array(X), np.array(loss)


def run_model(name, budgets, seeds, pop_size=100, n_gen=100, table_dir=None, eval_cache=None, methods=None,
              eval_tokens=None, against_baselines=False, refine=0, probe=0, seed_baselines=False, exact_start=True):
    import quantmoo
    from quantmoo.accuracy.cache import EvalCache
    from quantmoo.search.inloop import search_measured
    from quantmoo.search.problem import QuantizationProblem
    from quantmoo.search.run import hv_reference
    model = _load(name, eval_tokens)
    space = _space(name)
    t0 = time.process_time()
    table = quantmoo.sensitivity(model, space, model.evaluator, cache_dir=table_dir)
    t_sens = time.process_time() - t0
    p3 = QuantizationProblem(model, HARDWARE, space, objectives=OBJ3, accuracy=table)
    ref3 = hv_reference(p3)
    refs = {2: ref3[:2], 3: ref3}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = EvalCache(eval_cache or tmp)
        for b in budgets:
            for s in seeds:
                run = proxy_run(model, space, table, s, pop_size, n_gen)
                problem = run.problem
                assert np.allclose(run.hv_ref, refs[2])
                measure = Measurer(problem, model, cache)
                out, cpu, sets = {}, {}, {}

                def timed(key, fn):
                    if methods is not None and key not in methods:
                        return
                    t = time.process_time()
                    r = fn()
                    cpu[key] = time.process_time() - t
                    out[key] = None if r is None else (len(r[0]), scores(problem, refs, *r))
                    sets[key] = r

                timed("pv", lambda: proxy_validation(run, measure, b))
                il = {}

                def inloop(objectives=OBJ3[:2], into=il):
                    res = search_measured(model, HARDWARE, budget=b, space=space, objectives=objectives,
                                          accuracy=table, seed=s, pop_size=pop_size, n_gen=n_gen, cache=cache,
                                          refine=refine, seed_baselines=seed_baselines, exact_start=exact_start,
                                          progress=False)
                    into.update(res.meta["inloop"])
                    recs = [r for r in into["evaluations"] if "loss" in r]
                    return np.array([r["genome"] for r in recs]), np.array([r["loss"] for r in recs])

                timed("il", inloop)
                timed("il3", lambda: inloop(OBJ3, {}))
                timed("amq", lambda: amq_style(problem, measure, b, s))
                timed("evo", lambda: evopress_style(run, measure, b, s))
                timed("opt", lambda: optuna_nsga2(problem, measure, b, s))
                timed("rnd", lambda: random_search(problem, measure, b, s))
                dom = {}
                if against_baselines:
                    def size_of(X):
                        return problem.evaluate_all(X)["size_mb"]
                    for kind, (base_X, base) in baselines_measured(problem, measure).items():
                        dom[kind] = {k: beaten(*sets[k], size_of, base) for k in ("il", "pv") if sets.get(k)}
                        dom[kind]["n"] = len(base[0])
                        if probe:
                            dom[kind]["probe"] = probe_baselines(run, base_X, base[1], measure, probe)
                held = [sets[k] for k in ("amq", "evo", "opt", "rnd") if sets.get(k)]
                if il and held:
                    il["heldout_tau"] = heldout_tau(problem, il["evaluations"], np.concatenate([h[0] for h in held]),
                                                    np.concatenate([h[1] for h in held]))
                rows.setdefault(b, []).append({"out": out, "cpu": cpu, "tau": il.get("kendall_tau"),
                                               "heldout": il.get("heldout_tau"),
                                               "n_il": il.get("n_evaluations"), "dom": dom, "seed": s})
                print(f"{name} N={b} seed={s}: " + "; ".join(
                    f"{k} {v[1][0]:.4f}/{v[1][1]:.4f} ({v[0]})" if v else f"{k} -" for k, v in out.items())
                    + f"; tau {il.get('kendall_tau')}; held-out tau {il.get('heldout_tau')}; dom {dom}",
                    file=sys.stderr, flush=True)
    return rows, t_sens, refs


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def hv_rows(name, rows, k, own="il"):
    """One row per budget: median HV (score ``k``) of every method, in-loop (``own``, if run; else the other of
    ours) vs the best method that is not ours."""
    out = []
    for b, rs in rows.items():
        med = {}
        cells = []
        for key, _ in METHODS:
            ran = [x["out"][key] for x in rs if key in x["out"]]      # merged runs: a method may miss some seeds
            if not ran:
                cells.append("not run")
                continue
            if any(r is None for r in ran):
                cells.append("optuna not installed")
                continue
            med[key] = _med([r[1][k] for r in ran])
            n = _med([r[0] for r in ran])
            note = [f"{n:.0f} eval."] if n != b else []
            note += [f"{len(ran)} of {len(rs)} seeds"] if len(ran) < len(rs) else []
            cells.append(f"{med[key]:.4f}" + (f" ({'; '.join(note)})" if note else ""))
        top = max(round(v, 4) for v in med.values())
        best = " = ".join(dict(METHODS)[m] for m in med if round(med[m], 4) == top)   # ties at the printed digits
        me = own if own in med else next((m for m in OURS if m in med), None)
        others = [m for m in med if m not in OURS]
        if me is None or not others:            # e.g. a run of the peers alone, to --merge with ours later
            out.append([name, b, len(rs), *cells, best, "not compared", "not compared"])
            continue
        rival = max((med[m], m) for m in others)[1]
        wins = sum(x["out"][me][1][k] >= max(x["out"][m][1][k] for m in others if m in x["out"]) for x in rs)
        out.append([name, b, len(rs), *cells, best, f"{dict(METHODS)[me]}: {med[me] / med[rival]:.4f}",
                    f"{wins}/{len(rs)}"])
    return out


HV_HEADER = ["model", "N", "seeds", *[m for _, m in METHODS], "highest median", "ours / best other",
             "seeds ours >= every other"]


def tau_rows(name, rows):
    out = []
    for b, rs in rows.items():
        t = [x["tau"] for x in rs if x["tau"]]
        if not t:
            continue

        def f(key):
            return f"{_med([x[key] for x in t]):.3f}"

        h = [x["heldout"] for x in rs if x.get("heldout")]
        up = sum(v[2] is not None and v[3] is not None and v[3] > v[2] for v in h)
        held = (f"{_med([v[0] for v in h]):.0f}: {_med([v[1] for v in h]):.3f} / {_med([v[2] for v in h]):.3f} / "
                f"{_med([v[3] for v in h]):.3f} ({up}/{len(h)})" if h else "not run")
        out.append([name, b, len(rs), f("proxy_start"), f"{f('proxy_first_round')} / {f('surrogate_first_round')}",
                    f"{f('proxy_last_round')} / {f('surrogate_last_round')}",
                    f"{f('proxy_all')} / {f('surrogate_loo_all')}", held])
    return out


TAU_HEADER = ["model", "N", "seeds", "start: proxy on the initial design",
              "start: proxy / surrogate on the first round's batch", "end: proxy / surrogate on the last round's batch",
              "end: proxy / surrogate (LOO) over all measured",
              "held-out (the other methods' points): n: proxy / surrogate at start / at end (seeds end > start)"]


def dominance_rows(name, rows, probe=0):
    """Per budget, seed and baseline kind: how many baselines in-loop's (and proxy + validation's) measured
    points beat (lower measured loss at equal or smaller size)."""
    out = []
    for b, rs in rows.items():
        for x in rs:
            for kind, d in x["dom"].items():
                out.append([name, b, x["seed"], {"rules": "llama.cpp presets", "greedy": "greedy curve",
                                                 "ilp": "ILP sweep"}.get(kind, kind), d["n"],
                            *(f"{d[k][0]} ({d[k][1]})" if k in d else "not run" for k in ("il", "pv")),
                            *([f"{d['probe'][1]} ({d['probe'][0]} at loss <= 0)"] if probe else [])])
    return out


DOM_HEADER = ["model", "N", "seed", "baselines", "n", "beaten by in-loop (matched or beaten)",
              "beaten by proxy + validation (matched or beaten)"]
PROBE_HEADER = "beaten by any of the {k} best-proxy candidates no larger, measured (at the loss floor)"


def cpu_rows(name, rows, t_sens):
    return [[name, b, len(rs), *[f"{_med([x['cpu'].get(k) for x in rs]):.1f}" for k, _ in METHODS]]
            for b, rs in rows.items()] + [[name, "sensitivity (once)", "", f"{t_sens:.1f}", *[""] * (len(METHODS) - 1)]]


def save_runs(path, results):
    """Write ``run_model``'s results per model to JSON (plain data: no pickle), for :func:`merge_saved`."""
    import json
    with open(path, "w") as f:
        json.dump({name: {"rows": rows, "t_sens": t_sens, "refs": {k: np.asarray(v).tolist() for k, v in refs.items()}}
                   for name, (rows, t_sens, refs) in results.items()}, f,
                  default=lambda o: o.tolist() if isinstance(o, (np.ndarray, np.generic)) else o)


def merge_saved(paths):
    """The runs saved by ``--save`` in ``paths`` as one result per model: the seeds of every file, per budget, in
    seed order; a seed in several files (e.g. one per group of methods) joins their methods, a method run twice keeps
    its first file's run; the sensitivity time is the first file's."""
    import json
    merged = {}
    for path in paths:
        with open(path) as f:
            for name, r in json.load(f).items():
                rows, t_sens, refs = merged.setdefault(name, ({}, r["t_sens"], {int(k): np.array(v) for k, v in
                                                                                 r["refs"].items()}))
                for b, rs in r["rows"].items():
                    have = {y["seed"]: y for y in rows.setdefault(int(b), [])}
                    for x in rs:
                        if x["seed"] not in have:
                            rows[int(b)].append(x)
                            continue
                        y = have[x["seed"]]
                        for k, v in x.items():        # the first file's methods and statistics win
                            y[k] = {**v, **y[k]} if k in ("out", "cpu") else y.get(k, v)
    for rows, _, _ in merged.values():
        for rs in rows.values():
            rs.sort(key=lambda x: x["seed"])
    return merged


def parse_args(argv=None):
    """The command line (see the module docstring); an unknown or malformed flag is an error, not a default run."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_inloop", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="one seed, N = 10, a small proxy search (the tests)")
    ap.add_argument("--models", type=csv_arg(str, tuple(BUDGETS)), default=["digits"])
    ap.add_argument("--budgets", type=csv_arg(int), help="default per model: BUDGETS")
    ap.add_argument("--seeds", type=csv_arg(int))
    ap.add_argument("--methods", type=csv_arg(str, tuple(k for k, _ in METHODS)), help="default: all")
    ap.add_argument("--eval-cache", help="directory of the shared evaluation cache (default: a temporary one)")
    ap.add_argument("--eval-tokens", type=int, help="smollm2-135m's evaluation tokens (RESULTS.md: 1024)")
    ap.add_argument("--baselines", action="store_true", help="measure the baselines and count those beaten")
    ap.add_argument("--refine", type=int, default=0, help="the in-loop runs' refine")
    ap.add_argument("--probe", type=int, default=0, help="candidates measured per baseline")
    ap.add_argument("--seed-baselines", action="store_true", help="the in-loop proxy search starts from the baselines")
    ap.add_argument("--no-exact-start", action="store_true", help="the in-loop runs' exact_start=False")
    ap.add_argument("--save", help="also write the per-seed results to this JSON file")
    ap.add_argument("--merge", type=csv_arg(str), help="print the tables of runs saved with --save as one")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    t_all = time.process_time()
    if a.merge:        # tables from the runs saved with --save (e.g. seeds run in parallel processes)
        results = merge_saved(a.merge)
    else:
        results = {}
        from benchmarks._real import cache_dir
        table_dir = cache_dir()       # proxy tables persist ($QUANTMOO_BENCH_CACHE): the sensitivity pass runs once
        for name in a.models:
            budgets = tuple(a.budgets or ((10,) if a.tiny else BUDGETS[name]))
            seeds = tuple(a.seeds or ((0,) if a.tiny else SEEDS))
            results[name] = run_model(name, budgets, seeds, *((20, 5) if a.tiny else (100, 100)),
                                      table_dir=table_dir, eval_cache=a.eval_cache, methods=a.methods,
                                      eval_tokens=a.eval_tokens, against_baselines=a.baselines, refine=a.refine,
                                      probe=a.probe, seed_baselines=a.seed_baselines,
                                      exact_start=not a.no_exact_start)
        if a.save:
            save_runs(a.save, results)
    hv2, hv3, raw, taus, cpus, doms, refs_txt = [], [], [], [], [], [], []
    for name, (rows, t_sens, refs) in results.items():
        hv2 += hv_rows(name, rows, 0)
        hv3 += hv_rows(name, rows, 1, own="il3")
        raw += hv_rows(name, rows, 2)
        taus += tau_rows(name, rows)
        cpus += cpu_rows(name, rows, t_sens)
        doms += dominance_rows(name, rows, a.probe)
        refs_txt.append(f"{name}: ({refs[3][0]:.4g}, {refs[3][1]:.4g} MB, {refs[3][2]:.4g} ms)")
    text = (f"Median over seeds 0 .. n-1 (n: the 'seeds' column); hardware {HARDWARE}; in-loop refine="
            f"{a.refine}{', seeded with the baselines' if a.seed_baselines else ''}"
            f"{', without the exact start' if a.no_exact_start else ''}; "
            f"{stamp()}; {machine()}; "
            f"CPU time of this run {time.process_time() - t_all:.0f} s\n\n"
            f"Reference points (loss, size, latency; the 2-objective HV uses the first two): {'; '.join(refs_txt)}\n\n"
            "Measured hypervolume of (measured accuracy_loss, size_mb), losses below 0 counted as 0:\n\n"
            + md_table(HV_HEADER, hv2)
            + "\n\nMeasured hypervolume of (measured accuracy_loss, size_mb, latency_ms), losses below 0 counted as 0:"
            "\n\n"
            + md_table(HV_HEADER, hv3)
            + "\n\nKendall tau vs the measured loss in the in-loop runs (median over seeds):\n\n"
            + md_table(TAU_HEADER, taus)
            + "\n\nCPU seconds per method and run (median over seeds; shared cache: a genome another method "
              "measured first costs nothing here):\n\n"
            + md_table(["model", "N", "seeds", *[m for _, m in METHODS]], cpus)
            + "\n\nRaw measured hypervolume of (measured accuracy_loss, size_mb):\n\n" + md_table(HV_HEADER, raw)
            + ("\n\nBaselines beaten (measured loss lower at equal or smaller size; baselines measured through the "
               "shared cache, charged to no method):\n\n"
               + md_table(DOM_HEADER + ([PROBE_HEADER.format(k=a.probe)] if a.probe else []), doms)
               if doms else ""))
    print(text)
    return text


if __name__ == "__main__":
    main()
