"""Measured-in-the-loop search: spend a budget of real evaluations where they improve the measured front.

:func:`search_measured` starts from the proxy's front and spends exactly ``budget`` real
evaluations of the model's evaluator (through :func:`~quantmoo.accuracy.parallel.evaluate_many`:
the evaluation cache, local processes or a Dask cluster), in rounds:

1. **Proxy search.** The ordinary NSGA-II on the proxy table (:func:`quantmoo.search`). Every genome
   it evaluated (unique, feasible) starts the candidate pool: dense around the proxy front, with the
   spread of the whole run.
2. **Initial design.** ``ceil(init_fraction * budget)`` points of the proxy's non-dominated set,
   thinned by the same epsilon-net as the reported front (:func:`~quantmoo.search.archive.thin`),
   are measured. That set is joined with the exact front of the separable (proxy loss, size)
   problem (``exact_start``; dynamic programming, :func:`quantmoo.baselines.exact_front`; thinned
   first when latency is a third objective): NSGA-II's front has 99.9% of its hypervolume, yet a
   3-19% higher proxy loss at equal size (median per loss band on open-nsfw, minilm-l6,
   smollm2-135m; ``benchmarks/bench_exact_gap.py``).
3. **Surrogate.** The proxy stays the model; a Bayesian linear correction is refitted to every
   measured point (:func:`fit_surrogate`)::

       loss ~ b + sum_l a_l t_l + sum_k h_k max(0, p - knot_k) + sum_(i<j) c_ij sqrt(t_i t_j)

   with ``t_l`` layer ``l``'s proxy contribution (the gathered table entry) and ``p = sum_l t_l``
   the proxy loss. The prior is the proxy itself (``a_l = 1``, everything else 0); the hinges let
   the measured loss bend away from the additive proxy (errors compound, then accuracy saturates),
   the interaction terms are for the ``n_pairs`` layers with the largest proxy contributions. The
   noise of a point is proportional to its proxy loss (plus 1% of the measured range). The
   posterior gives a mean and a standard deviation for every candidate (matrix products over the
   whole pool).
4. **Acquisition.** The expected improvement of the measured hypervolume of (measured loss,
   the costs) (:func:`expected_hvi`: exact for a Gaussian loss and known costs, a sum over the
   cells of the measured front's staircase), batch by batch: after a pick, its predicted loss joins the
   front ("kriging believer") so a batch spreads out. ``batch`` points per round; the surrogate
   is refitted after each round.
5. **Fallback to the proxy.** Before each round the surrogate's leave-one-out predictions and the raw
   proxy are ranked against every measured point (Kendall tau). Unless the surrogate ranks them better,
   the round measures the next points of the proxy front's epsilon-net instead (the points proxy +
   validation, today's pipeline, would measure); once the net is spent, expected improvement chooses.
   Why: where the correction does not rank better than the proxy, its expected improvement had nothing
   to add and measured below the plain net (benchmarks/RESULTS.md, issue 19).
6. **Baseline refinement** (``refine=k``, off by default). The last round measures, for every standard
   baseline (llama.cpp's presets for a decoder LLM, else the greedy curve's and the ILP sweep's
   points), the ``k`` unmeasured candidates with the lowest predicted loss among those no larger than
   the baseline on every cost (by the proxy where the surrogate ranks no better, else the proxy's and
   the surrogate's choices alternate, the proxy's first)
   (:func:`refine_picks`); the baselines themselves join the candidate pool. Why: the hypervolume
   barely rewards the flat high-precision tail, so the rounds above leave gaps of 1-2 MB there, right
   where the baselines sit (``validate --refine`` is the same step for proxy + validation).

The result's front is the non-dominated set of the *measured* points (``accuracy_kind``
``"measured"``); every real evaluation is recorded in ``meta["inloop"]["evaluations"]``
(round, genome, config hash, measured loss or error, seconds, cache hit, the proxy's and the
surrogate's prediction at the time of choosing it, and how it was chosen: ``"design"``, ``"net"``,
``"ehvi"`` or ``"refine"``), and the per-round history holds the measured
hypervolume. ``meta["inloop"]["kendall_tau"]`` compares the proxy with the corrected surrogate over
the measured points (the surrogate by leave-one-out, so it is not scored on points it was fitted to),
and on the first and last rounds the surrogate chose (predicted before measuring).

Two or three objectives: ``accuracy_loss`` and one or two costs (``size_mb`` by default; e.g. ``size_mb`` and
``latency_ms`` where activation bits change latency but not size). The costs are known exactly from the
tables, so the expected improvement stays exact in three objectives (:func:`expected_hvi` cuts the cost
plane into a grid at the measured front's values).
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from ..errors import QuantmooError

__all__ = ["search_measured", "fit_surrogate", "Surrogate", "expected_hvi", "proxy_terms"]

_PAIR_PRIOR = 0.5     # prior std of an interaction coefficient (loss units per unit of sqrt(t_i t_j))
_SCALE_PRIOR = 0.5    # prior std of a layer's scale around the proxy's 1
_DELTA = 0.01        # the noise floor of the loss-proportional noise, as a fraction of the measured range
_HINGE_PRIOR = 2.0    # prior std of a change of slope of the loss in the proxy loss


# -- the surrogate -------------------------------------------------------------------------------------
def proxy_terms(problem, X) -> np.ndarray:
    """(N, n_layers) per-layer proxy contributions ``t_l`` of genomes ``X`` (they sum to the proxy loss)."""
    X = np.asarray(X, dtype=np.int64)
    acc = problem.accuracy
    C = problem.encoding.choices(X)
    n_cal, L, nc = acc.table.shape
    cal = np.minimum(problem.encoding.calibration_index(X), n_cal - 1)
    return acc.table[cal[:, None], np.arange(L)[None, :], C]


class Surrogate:
    """A fitted correction of the proxy: posterior mean ``m`` and covariance ``S`` of the coefficients;
    the noise of a point is ``sigma * (proxy loss + delta)`` (errors grow with the loss)."""

    def __init__(self, pairs, knots, m, S, sigma, delta, loo=None):
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.knots = np.asarray(knots, dtype=np.float64).reshape(-1)
        self.m, self.S, self.sigma, self.delta = m, S, float(sigma), float(delta)
        self.loo = loo

    def features(self, T: np.ndarray) -> np.ndarray:
        return _features(T, self.pairs, self.knots)

    def predict(self, T: np.ndarray):
        """``(mean, std)`` of the measured loss for per-layer proxy terms ``T`` (N, n_layers)."""
        P = self.features(T)
        mean = P @ self.m
        noise = self.sigma * (np.maximum(T, 0.0).sum(axis=1) + self.delta)
        var = np.einsum("ij,jk,ik->i", P, self.S, P) + noise ** 2
        return mean, np.sqrt(np.maximum(var, 0.0))

    def to_dict(self) -> dict:
        return {"pairs": self.pairs.tolist(), "knots": self.knots.tolist(), "coef": [float(v) for v in self.m],
                "sigma": self.sigma,
                "delta": self.delta}


def _features(T, pairs, knots) -> np.ndarray:
    """``[1, t_1..t_L, max(0, p - k) for each knot k, sqrt(t_i t_j) for each pair]``, ``p = sum_l t_l``."""
    T = np.maximum(np.asarray(T, dtype=np.float64), 0.0)
    cols = [np.ones((len(T), 1)), T, np.maximum(T.sum(axis=1)[:, None] - np.asarray(knots)[None, :], 0.0)]
    if len(pairs):
        cols.append(np.sqrt(T[:, pairs[:, 0]] * T[:, pairs[:, 1]]))
    return np.concatenate(cols, axis=1)


def fit_surrogate(T: np.ndarray, y: np.ndarray, n_pairs: int = 4, n_knots: int = 3,
                  noise_floor: float = 1e-3) -> Surrogate:
    """Bayesian linear correction of the proxy fitted to measured points (module docstring, step 3).

    The noise of a point is taken proportional to its proxy loss plus ``delta`` (1% of the measured
    range): a 2-bit config that loses 80 points may miss by a few points, a near-lossless one by a
    fraction of one; without this the large losses set the fit and the uncertainty everywhere.

    Parameters
    ----------
    T : ndarray (n, n_layers)
        Per-layer proxy contributions of the measured genomes (:func:`proxy_terms`).
    y : ndarray (n,)
        Their measured loss.
    n_pairs : int
        Interaction terms among this many layers (those with the largest mean contribution).
    n_knots : int
        Hinge terms ``max(0, proxy - k)`` at this many quantiles of the measured points' proxy loss: the
        measured loss bends away from the additive proxy (errors compound, then accuracy saturates).
    noise_floor : float
        Smallest relative noise ``sigma``.
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, L = T.shape
    top = np.sort(np.argsort(-T.mean(axis=0), kind="stable")[:min(n_pairs, L)]) if n else np.zeros(0, int)
    pairs = np.array([(a, b) for i, a in enumerate(top) for b in top[i + 1:]], dtype=np.int64).reshape(-1, 2)
    knots = np.quantile(np.maximum(T, 0.0).sum(axis=1), np.arange(1, n_knots + 1) / (n_knots + 1)) if n else []
    P = _features(T, pairs, knots)
    p = P.shape[1]
    m0 = np.zeros(p)
    m0[1:1 + L] = 1.0
    scale = float(np.ptp(y)) if n > 1 and np.ptp(y) > 0 else max(float(np.abs(y).max()) if n else 1.0, 1e-9)
    delta = _DELTA * scale
    prior_sd = np.full(p, _SCALE_PRIOR)
    prior_sd[0] = scale
    prior_sd[1 + L:] = _PAIR_PRIOR
    prior_sd[1 + L:1 + L + len(knots)] = _HINGE_PRIOR
    lam0 = 1.0 / prior_sd ** 2
    u = 1.0 / (np.maximum(T, 0.0).sum(axis=1) + delta)     # rows scaled to unit relative noise
    Pu = P * u[:, None]
    z = (y - P @ m0) * u                 # what the proxy misses, relative
    sigma2 = max(float(np.mean(z ** 2)) if n else 1.0, noise_floor ** 2)
    for it in range(6):                  # noise level and coefficients together (a few fixed-point steps)
        S = np.linalg.inv(np.diag(lam0) + Pu.T @ Pu / sigma2)
        w = S @ (Pu.T @ z) / sigma2
        r = z - Pu @ w
        H = np.einsum("ij,jk,ik->i", Pu, S, Pu) / sigma2       # leverage of each measured point
        if it == 5:
            break
        sigma2 = max(float(r @ r) / max(n - float(H.sum()), 1.0), noise_floor ** 2)
    loo = y - r / u / np.maximum(1.0 - H, 1e-9)   # leave-one-out predictions (exact for a fixed noise)
    return Surrogate(pairs, knots, m0 + w, S, math.sqrt(sigma2), delta, loo)


# -- acquisition -------------------------------------------------------------------------------------
def _cells(front: np.ndarray):
    """The cost space of a normalised front ``(loss, cost_1..cost_d)`` cut into a grid at the front's cost values.

    Returns, per cost axis, the cells' lower and upper edges, and for every grid cell (C-order) the loss
    level the front already reaches there: the least loss of a front point whose costs are all at or below
    the cell's lower corner (1, the reference, where none is).
    """
    f = front[(front < 1.0).all(axis=1)]
    f = f[_nondominated(f)]           # a dominated point covers nothing its dominator does not: fewer cells
    d = front.shape[1] - 1
    edges = [np.unique(f[:, 1 + i]) for i in range(d)]
    lo = [np.concatenate([[-np.inf], e]) for e in edges]
    hi = [np.concatenate([e, [1.0]]) for e in edges]
    corner = np.stack(np.meshgrid(*lo, indexing="ij"), axis=-1).reshape(-1, d)      # (cells, d)
    covers = (f[None, :, 1:] <= corner[:, None, :]).all(axis=2)                     # (cells, k)
    h = np.where(covers, f[None, :, 0], 1.0).min(axis=1, initial=1.0)
    return lo, hi, h


def expected_hvi(front: np.ndarray, cost: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 floor: float = -np.inf, chunk: int = 2 ** 22) -> np.ndarray:
    """Expected hypervolume improvement of adding a point (loss ~ N(mean, std^2), known costs).

    Everything is normalised by the reference point (the box is [0, 1]^(1+d), reference (1, ..., 1)).

    Parameters
    ----------
    front : ndarray (k, 1 + d)
        Measured points ``(loss, cost_1, ..., cost_d)``.
    cost : ndarray (N,) or (N, d)
        The candidates' costs.
    mean, std : ndarray (N,)
        The candidates' predicted loss.
    floor : float
        Losses below it count as ``floor`` (both the front's and the candidate's): the improvement
        is ``E[max(0, h - max(loss, floor))] = EI(h) - EI(floor)`` for ``h >= floor``.
    chunk : int
        Candidates are scored in blocks of about this many (candidate, cell) pairs (memory).

    Returns
    -------
    ndarray (N,)
        ``E[HV(front + candidate) - HV(front)]``, exact: the cost space is cut into a grid at the front's
        cost values; in each cell the front reaches one loss level ``h``, so the gain is the sum over the
        cells at or above the candidate's costs of the cell's volume there times ``E[max(0, h - loss)]``.
        The cells' volumes are summed per level first, so the normal integrals are taken once per level.
    """
    from scipy.special import ndtr
    front = np.asarray(front, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    d = front.shape[1] - 1
    cost = np.asarray(cost, dtype=np.float64).reshape(len(mean), d)
    s = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    lo, hi, h = _cells(front)
    level, at = np.unique(np.maximum(h, floor), return_inverse=True)      # cells grouped by the loss level
    order = np.argsort(at, kind="stable")
    starts = np.searchsorted(at[order], np.arange(len(level)))
    gain = np.zeros(len(mean))
    # a candidate whose costs the front reaches at a level 6 std below its mean gains less than 1e-9 of the
    # box: not scored (the grid's cost grows with the front, and most of a late pool is like that)
    cell = np.zeros(len(mean), dtype=np.int64)              # the grid cell holding the candidate's costs
    for i in range(d):
        cell = cell * len(lo[i]) + np.searchsorted(lo[i], cost[:, i], side="right") - 1
    live = np.flatnonzero(np.maximum(mean - 6 * s, floor) < h[cell])
    step = max(1, chunk // len(h))
    for a in range(0, len(live), step):         # blocks of candidates (memory), not a loop per candidate
        idx = live[a:a + step]
        c = cost[idx]
        vol = np.ones((len(c), 1))
        for i in range(d):                      # the cells' widths right of the candidate, axis by axis
            w = np.clip(hi[i][None, :] - np.maximum(c[:, i:i + 1], lo[i][None, :]), 0.0, None)
            vol = (vol[:, :, None] * w[:, None, :]).reshape(len(c), -1)
        vol = np.add.reduceat(vol[:, order], starts, axis=1)                 # (block, levels)
        m, sd = mean[idx, None], s[idx, None]
        z = (level[None, :] - m) / sd
        ei = (level[None, :] - m) * ndtr(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        g = (vol * ei).sum(axis=1)
        if np.isfinite(floor):
            zf = (floor - m[:, 0]) / sd[:, 0]
            g = g - vol.sum(axis=1) * ((floor - m[:, 0]) * ndtr(zf) + sd[:, 0] * np.exp(-0.5 * zf * zf)
                                       / math.sqrt(2 * math.pi))
        gain[idx] = g
    return gain


def _nondominated(F: np.ndarray) -> np.ndarray:
    from .archive import dominates
    return ~dominates(F, F).any(axis=0) if len(F) else np.zeros(0, dtype=bool)


def choose_batch(front, cost, mean, std, q: int, floor: float = -np.inf) -> np.ndarray:
    """``q`` candidate indices by sequential expected-HV improvement with the kriging believer.

    ``front`` is ``(k, 1 + d)`` (loss, costs), ``cost`` ``(N,)`` or ``(N, d)``; see :func:`expected_hvi`."""
    cost = np.asarray(cost, dtype=np.float64).reshape(len(mean), -1)
    front = np.asarray(front, dtype=np.float64).reshape(-1, 1 + cost.shape[1])
    picked = []
    avail = np.ones(len(cost), dtype=bool)
    for _ in range(min(q, len(cost))):      # a handful of picks per round; each scores the whole pool
        ehvi = np.where(avail, expected_hvi(front, cost, mean, std, floor), -np.inf)
        i = int(np.argmax(ehvi))
        if not np.isfinite(ehvi[i]):
            break
        picked.append(i)
        avail[i] = False
        front = np.vstack([front, [mean[i], *cost[i]]])
    return np.array(picked, dtype=np.int64)


def _tau(a, b):
    from ..accuracy.validate import _tau as tau
    return tau(a, b)[0]


# -- baseline refinement ------------------------------------------------------------------------------
def _refine_targets(problem) -> np.ndarray:
    """Genomes of the baselines a measured front should beat: llama.cpp's presets for a decoder LLM, else
    the greedy curve's and the ILP sweep's points (:func:`quantmoo.baselines.baseline_genomes`)."""
    from ..baselines import baseline_genomes
    groups = {k: np.asarray(X, dtype=np.int64) for k, _, X in baseline_genomes(problem) if len(X)}
    kinds = ("rules",) if "rules" in groups else ("greedy", "ilp")
    return np.concatenate([groups[k] for k in kinds if k in groups] or [np.zeros((0, problem.n_var), np.int64)])


def refine_picks(cost: np.ndarray, loss: np.ndarray, targets: np.ndarray, k: int, limit: int) -> np.ndarray:
    """Candidates to measure against baselines: per target, the ``k`` lowest predicted losses among the
    candidates no larger on every cost; first choices of every target first, at most ``limit`` in all.

    Parameters
    ----------
    cost : ndarray (N, d)
        The candidates' costs.
    loss : ndarray (N,) or (R, N)
        Their predicted loss (ties: the smaller first cost, then the row). With ``R`` rankings (e.g. the proxy's
        and the surrogate's), choice ``r`` of every target is the best unpicked candidate by ranking ``r mod R``.
    targets : ndarray (B, d)
        The baselines' costs.
    k, limit : int

    Returns
    -------
    ndarray of int
        Distinct candidate rows, in the order chosen.
    """
    losses = np.atleast_2d(np.asarray(loss, dtype=np.float64))
    n = losses.shape[1]
    cost = np.asarray(cost, dtype=np.float64).reshape(n, -1)
    fits = (cost[None, :, :] <= np.asarray(targets)[:, None, :] * (1 + 1e-9)).all(axis=2)   # (B, N)
    ranked = []                            # per ranking, per target: the fitting rows, best first
    for ls in losses:
        order = np.lexsort((np.arange(n), cost[:, 0], ls))
        ranked.append([order[f[order]] for f in fits])
    picked = []
    for r in range(k):                     # a few targets and ranks: the first choices of all targets go first
        for cand in ranked[r % len(ranked)]:
            c = next((int(i) for i in cand if int(i) not in picked), None)
            if c is not None and len(picked) < limit:
                picked.append(c)
    return np.array(picked, dtype=np.int64)


# -- the exact start -----------------------------------------------------------------------------------
def _with_exact_front(problem, objectives, X, F):
    """The proxy search's non-dominated set ``(X, F)`` joined with the exact front of the separable (proxy loss,
    size) problem (:func:`quantmoo.baselines.exact_front`, every calibration method), feasible points only, and
    filtered to the non-dominated set in ``objectives``; also the number of exact points kept.

    With a third objective the exact front is first thinned in (loss, size) to as many points as ``X`` has: in
    three objectives nearly every exact point stays non-dominated (it ties on size with faster configs), ~10^5 on
    minilm-l6, more candidates than the acquisition can afford."""
    from ..baselines.exact import exact_genomes
    from .archive import thin
    E = np.unique(exact_genomes(problem, per_calibration=True)[0], axis=0)
    v = problem.evaluate_all(E)
    ok = problem.feasible_mask(v)
    E = E[ok]
    FE = np.column_stack([v[o][ok] for o in objectives])
    if len(objectives) > 2 and len(E) > len(X):
        keep = thin(FE[:, :2], max(len(X), 2))
        E, FE = E[keep], FE[keep]
    n_found = len(X)
    X = np.concatenate([np.asarray(X, dtype=np.int64).reshape(-1, E.shape[1]), E])
    F = np.concatenate([np.asarray(F, dtype=np.float64).reshape(-1, FE.shape[1]), FE])
    X, first = np.unique(X, axis=0, return_index=True)         # an exact point the search also found: once
    F = F[first]
    import moocore              # O(n log n): the exact fronts hold up to ~10^5 points (one per calibration)
    keep = moocore.is_nondominated(F, keep_weakly=True)
    return X[keep], F[keep], int((first[keep] >= n_found).sum())


# -- the search --------------------------------------------------------------------------------------
def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise QuantmooError(f"The '{name}' of search_measured must be an integer >= {lo}; got {v!r}")
    return int(v)


def search_measured(model, hardware, budget: int, space=None, objectives=("accuracy_loss", "size_mb"),
                    constraints=None, accuracy=None, seed: int = 0, batch: Optional[int] = None,
                    init_fraction: float = 0.5, n_pairs: int = 4,
                    loss_floor: Optional[float] = 0.0, fallback: bool = True, refine: int = 0,
                    seed_baselines: bool = False, exact_start: bool = True, pop_size: int = 100,
                    n_gen: int = 100,
                    workers: Optional[int] = 1, dask_address=None, cache=None, eval_timeout: Optional[float] = None,
                    progress: Optional[bool] = None):
    """Proxy search, then ``budget`` real evaluations chosen by a corrected surrogate (module docstring).

    Parameters
    ----------
    model : ModelSpec or str
        A model with real weights and an evaluator (``"digits"``, ``"minilm-l6"``, ...).
    hardware : HardwareProfile or str
    budget : int
        Real evaluations to spend (exactly, unless the candidate pool runs out first).
    space, constraints : see :func:`quantmoo.search`.
    objectives : tuple of str
        ``("accuracy_loss", cost)`` or ``("accuracy_loss", cost, cost)`` with costs from ``size_mb, latency_ms,
        energy_mj, memory_mb``.
    accuracy : AccuracyTable, optional
        The proxy table (default: :func:`quantmoo.sensitivity` of the model).
    seed : int
        Seeds the proxy search; the rest is deterministic. Same seed, same measured front.
    batch : int, optional
        Evaluations per round (default ``max(1, budget // 10)``): the surrogate is refitted between
        rounds, and a round's evaluations run in parallel with ``workers`` / ``dask_address``.
    init_fraction : float
        Share of the budget spent on the thinned proxy front before the surrogate chooses.
    n_pairs : int
        Layers with interaction terms in the surrogate (0: a per-layer correction only).
    loss_floor : float or None
        In the acquisition, a loss below it counts as ``loss_floor`` (default 0: a quantized model that
        measures better than fp32 does so by the test split's noise, and chasing such points at every
        size wastes the budget); None: no floor. The result reports the measured values as they are.
    fallback : bool
        Measure the proxy front's epsilon-net instead of the surrogate's choice in rounds where the surrogate
        (leave-one-out) ranks the measured points no better than the proxy (module docstring, step 5).
        False: expected improvement in every round.
    refine : int
        Baseline refinement (module docstring, step 6): for every standard baseline (llama.cpp's presets for a
        decoder LLM, else the greedy curve's and the ILP sweep's points), measure the ``refine`` unmeasured
        genomes with the lowest predicted loss among those no larger than it on every cost; the baselines
        join the candidate pool. Spent within ``budget``, as the last round. 0 (default): no refinement.
    seed_baselines : bool
        Seed the proxy search's initial population with the baselines' genomes (the greedy curve, the ILP sweep,
        llama.cpp's presets; see :func:`quantmoo.search`): the thinned proxy front then starts from them.
    exact_start : bool
        Join the exact front of the separable (proxy loss, size) problem (dynamic programming,
        :func:`quantmoo.baselines.exact_front`) to the proxy search's non-dominated set, so the initial design and
        the net start from the proxy's exact front, not from NSGA-II's approximation of it (whose proxy loss at equal
        size is 3-19% above the exact front's on open-nsfw, minilm-l6 and smollm2-135m, median per loss band,
        although its hypervolume is 99.9% of it). Used when the objectives start with ``("accuracy_loss",
        "size_mb")``, the problem the dynamic program solves; with a third objective the exact front is thinned in
        (loss, size) to as many points as the proxy search's non-dominated set before the join (otherwise
        ``meta["inloop"]["n_exact"]`` is 0).
    pop_size, n_gen : int
        The proxy search's NSGA-II.
    workers, dask_address, cache, eval_timeout :
        See :func:`~quantmoo.accuracy.parallel.evaluate_many`. With ``workers=1`` (default) and no
        Dask each evaluation is timed alone; otherwise a round's wall time is split evenly.
    progress : bool, optional
        Progress bar of the proxy search.

    Returns
    -------
    SearchResult
        Front of measured points (``accuracy_kind == "measured"``); ``meta["inloop"]`` as in the
        module docstring.

    Examples
    --------
    >>> res = quantmoo.search_measured("digits", "arm_dot", budget=100, seed=0)
    >>> res.meta["inloop"]["n_evaluations"]
    100
    """
    from ..accuracy.parallel import _in_zoo, evaluate_many, resolve_cache
    from ..accuracy.tables import AccuracyTable
    from .archive import thin
    from .problem import resolve_model, resolve_objectives
    from .run import SearchRun, drive, hypervolume

    budget = _check_int("budget", budget, 1)
    seed = _check_int("seed", seed, 0)
    n_pairs = _check_int("n_pairs", n_pairs, 0)
    batch = max(1, budget // 10) if batch is None else _check_int("batch", batch, 1)
    refine = _check_int("refine", refine, 0)
    if isinstance(init_fraction, bool) or not isinstance(init_fraction, (int, float)) or not 0 < init_fraction <= 1:
        raise QuantmooError(f"The 'init_fraction' of search_measured must be a number in (0, 1]; got {init_fraction!r}")
    if not isinstance(fallback, (bool, np.bool_)):
        raise QuantmooError(f"The 'fallback' of search_measured must be True or False; got {fallback!r}")
    if not isinstance(seed_baselines, (bool, np.bool_)):
        raise QuantmooError(f"The 'seed_baselines' of search_measured must be True or False; got {seed_baselines!r}")
    if not isinstance(exact_start, (bool, np.bool_)):
        raise QuantmooError(f"The 'exact_start' of search_measured must be True or False; got {exact_start!r}")
    if loss_floor is None:
        loss_floor = -np.inf
    elif isinstance(loss_floor, bool) or not isinstance(loss_floor, (int, float)) or not math.isfinite(loss_floor):
        raise QuantmooError(f"The 'loss_floor' of search_measured must be a finite number or None; got {loss_floor!r}")
    objectives = resolve_objectives(objectives)
    if not 2 <= len(objectives) <= 3 or objectives[0] != "accuracy_loss":
        raise QuantmooError(f"The 'objectives' of search_measured must be ('accuracy_loss', <cost>[, <cost>]) with "
                            f"one or two costs; got {list(objectives)}")
    spec = resolve_model(model)
    ev = getattr(spec, "evaluator", None)
    if ev is None:
        raise QuantmooError(f"search_measured needs a model with real weights and an evaluator (e.g. 'digits', "
                            f"'minilm-l6'); model '{spec.name}' has none")
    if accuracy is None:
        from ..accuracy.sensitivity import sensitivity
        accuracy = sensitivity(spec, space, ev)
    if not isinstance(accuracy, AccuracyTable):
        raise QuantmooError(f"The 'accuracy' of search_measured must be a proxy AccuracyTable; got "
                            f"{type(accuracy).__name__}")
    source = model if isinstance(model, str) and _in_zoo(model) else spec
    ec = resolve_cache(cache)

    # 1. the proxy search; its evaluated genomes are the candidate pool
    run = SearchRun(spec, hardware, space=space, objectives=objectives, constraints=constraints, accuracy=accuracy,
                    pop_size=pop_size, n_gen=n_gen, seed=seed, baselines=False, max_front=None,
                    seed_baselines=bool(seed_baselines), exact_start=False)      # joined below, in any objectives
    run.setup()
    proxy_res = drive(run, progress=progress)
    problem = run.problem
    ref = run.hv_ref
    nd_X, nd_F = run.archive.X, run.archive.F
    n_exact = 0
    if exact_start and tuple(objectives[:2]) == ("accuracy_loss", "size_mb"):      # the front the DP solves exactly
        nd_X, nd_F, n_exact = _with_exact_front(problem, objectives, nd_X, nd_F)
    targets = _refine_targets(problem) if refine else np.zeros((0, problem.n_var), dtype=np.int64)
    # the candidate pool: one row per distinct feasible genome the proxy search evaluated (and the baselines)
    pool = np.unique(np.concatenate([np.asarray(e, dtype=np.int64) for e in run.evaluated] + [nd_X, targets]),
                     axis=0)
    v = problem.evaluate_all(pool)
    feasible = problem.feasible_mask(v)
    pool = pool[feasible]
    T = proxy_terms(problem, pool)
    cost = np.column_stack([v[o][feasible] for o in objectives[1:]]) / ref[1:]     # (pool, costs), normalised
    proxy = v["accuracy_loss"][feasible]
    measured = np.full(len(pool), np.nan)        # the loss, once measured
    done = np.zeros(len(pool), dtype=bool)
    if not len(pool):
        raise QuantmooError(proxy_res.message or "The proxy search found no feasible configuration")
    records, history, batches = [], [], []
    rec_of = {}                                  # pool row -> index of its evaluation record

    def measured_front():
        ok = np.flatnonzero(done & np.isfinite(measured))
        F = np.column_stack([measured[ok], cost[ok] * ref[1:]])
        return ok, F, _nondominated(F)

    def measure(rows, rnd, predicted, how):
        configs = [problem.encoding.decode(pool[r], hardware=problem.hardware.name) for r in rows]
        per_eval = workers == 1 and dask_address is None
        groups = [[c] for c in configs] if per_eval else [configs]
        out, secs, hits = [], [], []
        for g in groups:        # one call per config when in-process: exact seconds and cache hits each
            h0 = ec.hits if ec is not None else 0
            t0 = time.perf_counter()
            out += evaluate_many(source, g, workers=workers, dask_address=dask_address, cache=ec,
                                 eval_timeout=eval_timeout)
            dt = time.perf_counter() - t0
            secs += [dt / len(g)] * len(g)
            hits += [(ec.hits - h0) > 0 if (ec is not None and per_eval) else None] * len(g)
        for r, c, d, s, hit, pred in zip(rows, configs, out, secs, hits, predicted):
            done[r] = True
            rec_of[r] = len(records)
            rec = {"index": len(records), "round": rnd, "config_hash": c.config_hash(),
                   "genome": [int(v) for v in pool[r]], "seconds": round(s, 6), "cached": hit, "chosen_by": how,
                   "proxy_loss": float(proxy[r]), "predicted_loss": None if pred is None else float(pred[0]),
                   "predicted_std": None if pred is None else float(pred[1])}
            if "error" in d:
                rec["error"] = str(d["error"])
            else:
                measured[r] = float(d["loss"])
                rec["loss"] = measured[r]
            records.append(rec)
        batches.append(np.asarray(rows, dtype=np.int64))
        _, F, nd = measured_front()
        history.append({"n_gen": rnd, "n_eval": len(records), "hypervolume": hypervolume(F, ref),
                        "n_front": int(nd.sum())})

    # 2. initial design: the thinned proxy front
    n0 = min(budget, max(2, math.ceil(init_fraction * budget)))
    keep = thin(nd_F, n0) if len(nd_F) > n0 else np.arange(len(nd_F))
    lookup = {bytes(x): i for i, x in enumerate(pool)}
    rows = [lookup[bytes(x)] for x in nd_X[keep] if bytes(x) in lookup]
    measure(rows, 0, [None] * len(rows), "design")
    start_rows = np.array(rows, dtype=np.int64)
    n_net = len(rows)                            # points of the proxy front's epsilon-net measured so far

    # 3-5. refit, choose by expected HV improvement (or the net), measure; 6. the refinement round last
    rnd = 0

    def rounds(limit):
        """Adaptive rounds until ``limit`` evaluations are on record (or the pool is spent)."""
        nonlocal rnd, n_net
        while len(records) < limit:
            rnd += 1
            ok = measured_front()[0]
            cand = np.flatnonzero(~done)
            if not len(cand):
                return
            sur = fit_surrogate(T[ok], measured[ok], n_pairs=n_pairs)
            q = min(batch, limit - len(records))
            if fallback and not _tau(sur.loo, measured[ok]) > _tau(proxy[ok], measured[ok]):
                # the correction ranks no better than the proxy: the net's next points (thin is greedy, so
                # thin(F, k) is a prefix of thin(F, k + q))
                net = [lookup[bytes(x)] for x in nd_X[thin(nd_F, n_net + q)] if bytes(x) in lookup]
                n_net += q
                net = [r for r in net if not done[r]][:q]
                if net:
                    measure(net, rnd, [None] * len(net), "net")
                    continue
            mean, std = sur.predict(T[cand])
            front = np.column_stack([measured[ok] / ref[0], cost[ok]])
            pick = choose_batch(front, cost[cand], mean / ref[0], std / ref[0], q, floor=loss_floor / ref[0])
            measure(cand[pick].tolist(), rnd, list(zip(mean[pick], std[pick])), "ehvi")

    tv = problem.evaluate_all(targets) if len(targets) else None
    tcost = (np.column_stack([tv[o] for o in objectives[1:]])[problem.feasible_mask(tv)] / ref[1:]
             if tv is not None else np.zeros((0, len(objectives) - 1)))
    reserve = min(refine * len(tcost), budget - len(records))
    rounds(budget - reserve)
    cand = np.flatnonzero(~done)
    if reserve and len(cand):
        rnd += 1
        ok = measured_front()[0]
        sur = fit_surrogate(T[ok], measured[ok], n_pairs=n_pairs)
        if fallback and not _tau(sur.loo, measured[ok]) > _tau(proxy[ok], measured[ok]):
            ranks, mean, std = proxy[cand], None, None      # the proxy ranks at least as well: pick by the proxy
        else:
            # the surrogate ranks the measured points better, but it learns near the front only: choices
            # alternate, the proxy's first (the baselines' own genomes are the proxy's optima)
            mean, std = sur.predict(T[cand])
            ranks = np.stack([proxy[cand], mean])
        pick = refine_picks(cost[cand], ranks, tcost, refine, reserve)
        measure(cand[pick].tolist(), rnd, [None] * len(pick) if std is None else list(zip(mean[pick], std[pick])),
                "refine")
    rounds(budget)

    # the result: the non-dominated measured points
    rows_ok, F, nd = measured_front()
    ok = np.zeros(len(pool), dtype=bool)
    ok[rows_ok] = True
    final = fit_surrogate(T[ok], measured[ok], n_pairs=n_pairs) if ok.sum() >= 2 else None
    front_rows = rows_ok[nd]
    front_rows = front_rows[np.argsort(cost[front_rows, 0], kind="stable")]
    from .front import evaluation_table, solutions_from_genomes
    front = solutions_from_genomes(problem, pool[front_rows])
    for s, r in zip(front, front_rows):
        s.objectives["accuracy_loss"] = float(measured[r])
        s.measured = {"accuracy_loss": float(measured[r]), "proxy_accuracy_loss": float(proxy[r]),
                      "kind": "measured", "evaluator": str(getattr(ev, "name", type(ev).__name__)),
                      "evaluation": rec_of[int(r)]}
    scored = [r for r in records if "loss" in r and r["chosen_by"] == "ehvi"]      # predicted before measuring
    prequential = [p for p in ((np.array([[r["predicted_loss"], r["proxy_loss"], r["loss"]] for r in scored
                                          if r["round"] == k]).reshape(-1, 3)) for k in range(1, rnd + 1)) if len(p)]
    tau = {"proxy_start": _tau(proxy[start_rows], measured[start_rows]) if len(start_rows) > 1 else None,
           "proxy_all": _tau(proxy[ok], measured[ok]) if ok.sum() > 1 else None,
           "surrogate_loo_all": _tau(final.loo, measured[ok]) if final is not None else None,
           **{f"{who}_{when}_round": _tau(prequential[k][:, j], prequential[k][:, 2])
              if prequential and len(prequential[k]) > 1 else None
              for who, j in (("surrogate", 0), ("proxy", 1)) for when, k in (("first", 0), ("last", -1))}}
    res = proxy_res
    res.front = front
    res.accuracy_kind = "measured"
    res.nondominated = None
    res.history = history
    ev_tab = evaluation_table(problem, [pool[b] for b in batches])
    if ev_tab:
        ev_tab["proxy_accuracy_loss"] = ev_tab["accuracy_loss"]
        ev_tab["accuracy_loss"] = np.concatenate([measured[b] for b in batches])
        ev_tab["generation"] = ev_tab["generation"] - 1          # round 0 is the initial design
    res.evaluations = ev_tab
    proxy_alg = dict(res.meta.get("algorithm") or {})
    res.meta["algorithm"] = {"name": "inloop", "budget": budget, "batch": batch, "init_fraction": init_fraction,
                             "n_pairs": n_pairs,
                             "loss_floor": float(loss_floor) if np.isfinite(loss_floor) else None,
                             "fallback": bool(fallback), "refine": refine, "exact_start": bool(exact_start),
                             "proxy_search": proxy_alg}
    res.meta["accuracy_meta"] = {"kind": "measured", "evaluator": str(getattr(ev, "name", type(ev).__name__)),
                                 "proxy": accuracy.meta, "proxy_kind": accuracy.kind}
    res.meta["inloop"] = {
        "budget": budget, "n_evaluations": len(records), "n_failed": sum("error" in r for r in records),
        "n_candidates": int(len(pool)), "n_initial": int(len(start_rows)), "n_exact": n_exact, "rounds": rnd,
        "chosen_by": {k: sum(r["chosen_by"] == k for r in records) for k in ("design", "net", "ehvi", "refine")},
        "seconds_evaluating": round(sum(r["seconds"] for r in records), 6),
        "measured_hypervolume": history[-1]["hypervolume"] if history else 0.0,
        "kendall_tau": tau, "surrogate": final.to_dict() if final is not None else None,
        "evaluations": records}
    res.meta["exec_time_s"] = float(res.meta.get("exec_time_s", 0.0))
    return res
