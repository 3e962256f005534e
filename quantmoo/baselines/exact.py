"""Exact Pareto fronts of the separable two-objective problem (accuracy table vs model size).

The separable part of a :class:`~quantmoo.search.problem.QuantizationProblem` is

    accuracy_loss(c) = sum_l acc[l, c_l]          size_mb(c) = (resident + sum_l bytes[l, c_l]) / 1e6

with ``acc`` the accuracy table of one calibration method and ``bytes`` the packed weight
bytes (both exactly what ``problem.evaluate_all`` sums). Its exact Pareto front is computed by
dynamic programming over layers:

1. per layer, prune to the choices that are Pareto-optimal in (bytes, acc) among the choices
   the space allows (pinned genes respected through ``problem.pin_mask()``);
2. combine layer by layer: the candidate set is the outer sum of the current front with the
   layer's options; only its non-dominated points are kept (a 2-D filter: stable sort by bytes,
   then a running minimum of accuracy). Every kept point stores one back-pointer, so the
   configuration of any front point is recovered by walking the stages backwards.

A front point dominated in the partial sum can never become non-dominated later (adding the
same options to both keeps the dominance), so the result is the exact front, not an
approximation. Bytes are integers and summed exactly; accuracies are float64 sums, and two
sums that differ by less than ``rtol`` (1e-12) of the largest possible loss are treated as
equal, so that float rounding of mathematically equal sums (frequent: the prior gives every
layer of a kind the same table) does not keep dominated points.

Tie groups (layers that must share activation bits, see :class:`~quantmoo.search.space.Encoding`)
are handled exactly: a group becomes one unit whose options are, for every allowed activation
bit-width, the DP front of its members restricted to that bit-width, merged and pruned.

The module also holds the helpers the other separable baselines (greedy, ILP) share:
:func:`cost_table`, :func:`layer_units` and :func:`pareto_indices`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import QuantmooError

#: Cost names the separable baselines accept (aliases map to them).
COSTS = ("size_mb", "latency_ms", "energy_mj", "bops")
_COST_ALIASES = {"size": "size_mb", "latency": "latency_ms", "energy": "energy_mj", "bop": "bops"}

#: Front size above which :func:`exact_front` thins the partial fronts (then ``exact=False``).
MAX_POINTS = 200_000


# -- shared helpers ------------------------------------------------------------------------------
def resolve_cost(cost: str) -> str:
    """Canonical cost name (``'size'`` -> ``'size_mb'`` ...), validated."""
    name = _COST_ALIASES.get(cost, cost) if isinstance(cost, str) else cost
    if name not in COSTS:
        raise QuantmooError(f"The 'cost' must be one of {{{', '.join(COSTS)}}} (or size, latency, energy); "
                            f"got {cost!r}")
    return name


def cost_table(problem, cost: str = "size_mb") -> Tuple[np.ndarray, float]:
    """Separable per-(layer, choice) cost table and the constant added to every config.

    Parameters
    ----------
    problem : QuantizationProblem
    cost : str
        ``size_mb`` (packed weight bytes / 1e6; the constant is the never-quantized resident
        bytes, so sums equal ``evaluate_all()['size_mb']``), ``latency_ms`` / ``energy_mj``
        (the separable per-layer roofline latency / energy; the non-separable convert-op and
        partition terms are not included) or ``bops`` (MACs x weight bits x activation bits,
        fp16 counted as 16 bits; HAWQ-V3's bit-operations).

    Returns
    -------
    table : ndarray (n_layers, n_choices)
    offset : float
    """
    name = resolve_cost(cost)
    costs = problem.costs
    if name == "size_mb":
        return costs.column("weight_bytes") / 1e6, costs.resident_bytes / 1e6
    if name == "latency_ms":
        return costs.column("latency_s") * 1e3, 0.0
    if name == "energy_mj":
        return costs.column("energy_pj") * 1e-9, 0.0
    cv = problem.encoding.choice_value
    macs = problem.model.arrays()["macs"]
    bits = cv["weight_bits"].astype(np.float64) * cv["activation_bits"].astype(np.float64)
    return macs[:, None] * bits[None, :], 0.0


def layer_units(problem) -> list:
    """Layer groups that must move together on activation bits: merged tie sets + singletons.

    Returns a list of sorted int arrays covering every layer exactly once, in layer order of
    their first member.
    """
    L = problem.encoding.n_layers
    parent = np.arange(L)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if "activation_bits" in problem.encoding.varying:   # ties only bind when activation bits vary
        for members in problem.encoding.tie_sets:
            r0 = find(int(members[0]))
            for m in members[1:]:
                r = find(int(m))
                if r != r0:
                    parent[r] = r0
    roots = np.array([find(i) for i in range(L)])
    units = {}
    for i, r in enumerate(roots):
        units.setdefault(int(r), []).append(i)
    return sorted((np.asarray(v, dtype=np.int64) for v in units.values()), key=lambda u: int(u[0]))


def pareto_indices(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the 2-D non-dominated points (both minimised), sorted by cost ascending.

    Strict: of points with equal cost only the lowest-accuracy one is kept, of exact
    duplicates only the first. Along the result cost strictly increases and accuracy strictly
    decreases. Non-finite accuracies (disallowed choices) are dropped.
    """
    cost = np.asarray(cost)
    acc = np.asarray(acc, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(acc) & np.isfinite(cost))
    if len(ok) == 0:
        return ok
    order = ok[np.lexsort((acc[ok], cost[ok]))]
    return order[_nondominated_sorted(cost[order], acc[order])]


def _nondominated_sorted(cost: np.ndarray, acc: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Positions of the non-dominated points of a sequence already sorted by cost (stable).

    A point is kept if its accuracy is lower than that of every cheaper-or-equal point by
    more than ``tol`` (``tol`` absorbs float rounding of sums that are mathematically equal).
    """
    prev = np.empty_like(acc)
    prev[0] = np.inf
    if len(acc) > 1:
        np.minimum.accumulate(acc[:-1], out=prev[1:])
    kept = np.flatnonzero(acc < prev - tol)
    ck = cost[kept]
    last = np.ones(len(kept), dtype=bool)
    last[:-1] = ck[1:] != ck[:-1]       # among equal costs the last kept one is the smallest acc
    return kept[last]


def _allowed_acc(problem, acc: np.ndarray) -> np.ndarray:
    """Accuracy table with disallowed (pinned-out) choices set to +inf."""
    return np.where(problem.pin_mask(), acc, np.inf)


# -- unit options ----------------------------------------------------------------------------------
def _merge(B, A, b, a, tol=0.0):
    """Non-dominated subset of the outer sum (B + b_j, A + a_j); returns (B, A, sel) with
    ``sel = j * len(B) + i`` indexing the flat candidate array."""
    CB = (b[:, None] + B[None, :]).ravel()          # option-major: each row is sorted by bytes
    CA = (a[:, None] + A[None, :]).ravel()
    order = np.argsort(CB, kind="stable")           # merges len(b) sorted runs
    keep = order[_nondominated_sorted(CB[order], CA[order], tol)]
    return CB[keep], CA[keep], keep


def _unit_options(problem, unit, acc, nbytes, abits, tol=0.0):
    """Pareto options of one unit: (bytes (k,), acc (k,), choices (k, len(unit)))."""
    if len(unit) == 1:
        l = int(unit[0])
        idx = pareto_indices(nbytes[l], acc[l])
        return nbytes[l, idx], acc[l, idx], idx[:, None].astype(np.int64)
    parts = []
    for av in np.unique(abits):
        m = abits == av
        B, A = np.zeros(1, dtype=nbytes.dtype), np.zeros(1)
        C = np.zeros((1, 0), dtype=np.int64)
        ok = True
        for l in unit:
            a_l = np.where(m, acc[l], np.inf)
            idx = pareto_indices(nbytes[l], a_l)
            if len(idx) == 0:
                ok = False
                break
            B, A, sel = _merge(B, A, nbytes[l, idx], acc[l, idx], tol)
            n = len(C)
            C = np.concatenate([C[sel % n], idx[sel // n][:, None]], axis=1)
        if ok:
            parts.append((B, A, C))
    if not parts:
        return np.zeros(0, dtype=nbytes.dtype), np.zeros(0), np.zeros((0, len(unit)), dtype=np.int64)
    B = np.concatenate([p[0] for p in parts])
    A = np.concatenate([p[1] for p in parts])
    C = np.concatenate([p[2] for p in parts])
    keep = pareto_indices(B, A)
    return B[keep], A[keep], C[keep]


# -- the front -----------------------------------------------------------------------------------
class FrontChoices:
    """Lazy choice matrix of an exact front: rows are recovered from the DP back-pointers.

    ``np.asarray(fc)`` materialises the whole (n, n_layers) matrix; :meth:`take` recovers only
    some rows (vectorised over rows, one step per layer group); :meth:`genomes` gives genomes.
    """

    def __init__(self, problem, units, options, stages, order, calib):
        self._problem = problem
        self._units = units
        self._options = options          # per unit: choice matrix (k, len(unit))
        self._stages = stages            # per unit: flat selection index j * n_prev + i
        self._order = order              # final front position -> last-stage index
        self._calib = calib
        self.shape = (len(order), problem.encoding.n_layers)

    def __len__(self):
        return self.shape[0]

    def take(self, idx=None) -> np.ndarray:
        """(k, n_layers) choice ids of the front points ``idx`` (all when None)."""
        idx = np.arange(self.shape[0]) if idx is None else np.atleast_1d(np.asarray(idx, dtype=np.int64))
        C = np.empty((len(idx), self.shape[1]), dtype=np.int64)
        pos = self._order[idx]
        for u in range(len(self._units) - 1, -1, -1):
            sel = self._stages[u][pos]
            n_prev = 1 if u == 0 else len(self._stages[u - 1])
            C[:, self._units[u]] = self._options[u][sel // n_prev]
            pos = sel % n_prev
        return C

    def genomes(self, idx=None) -> np.ndarray:
        """(k, n_var) genomes of the front points ``idx`` (all when None)."""
        C = self.take(idx)
        return self._problem.encoding.genes_from_choices(C, np.full(len(C), self._calib))

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            return self.take([idx])[0]
        if isinstance(idx, slice):
            return self.take(np.arange(self.shape[0])[idx])
        return self.take(idx)

    def __array__(self, dtype=None, copy=None):
        C = self.take()
        return C if dtype is None else C.astype(dtype)


def exact_front(problem, calib: int = 0, max_points: Optional[int] = MAX_POINTS, rtol: float = 1e-12):
    """Exact Pareto front of (accuracy table sum, size_mb) by dynamic programming over layers.

    Parameters
    ----------
    problem : QuantizationProblem
    calib : int
        Index of the calibration method (row of the accuracy table) the front is for.
    max_points : int or None
        If a partial front grows beyond this, it is thinned to the lowest-accuracy point per
        cell of a uniform grid of ``max_points`` cells on bytes, and the result is flagged
        ``exact=False``. ``None`` never thins.

    Returns
    -------
    F : ndarray (n, 2)
        ``[accuracy_loss, size_mb]`` of every front point, sorted by size ascending (accuracy
        strictly decreasing); the same numbers ``problem.evaluate_all`` gives for its configs.
    C : FrontChoices
        The (n, n_layers) choice ids, recovered lazily (``np.asarray(C)``, ``C.take(idx)``,
        ``C.genomes(idx)`` for genomes with calibration ``calib``).
    exact : bool
        False only if the front was thinned (see ``max_points``).

    Examples
    --------
    >>> F, C, exact = exact_front(problem)
    >>> X = C.genomes([0, len(F) // 2, len(F) - 1])   # smallest, middle, most accurate
    """
    acc = _allowed_acc(problem, problem.accuracy.separable(calib))
    wb = problem.costs.column("weight_bytes")
    nbytes = np.rint(wb).astype(np.int64)
    if not np.array_equal(nbytes, wb):   # fractional bytes: still exact up to float64 sums
        nbytes = wb.astype(np.float64)
    abits = problem.encoding.choice_value["activation_bits"]
    # Sums that are mathematically equal (the prior gives same-kind layers identical tables)
    # differ by float rounding; treat accuracy differences below ``rtol * scale`` as ties.
    finite = np.where(np.isfinite(acc), np.abs(acc), 0.0)
    tol = rtol * float(finite.max(axis=1).sum())
    units = layer_units(problem)
    B = np.zeros(1, dtype=nbytes.dtype)
    A = np.zeros(1)
    options, stages = [], []
    exact = True
    for unit in units:
        b, a, C = _unit_options(problem, unit, acc, nbytes, abits, tol)
        if len(b) == 0:
            raise QuantmooError(f"Layer '{problem.model.layer_names[int(unit[0])]}' has no allowed choice")
        B, A, sel = _merge(B, A, b, a, tol)
        if max_points is not None and len(B) > max_points:
            keep = _thin(B, A, max_points)
            B, A, sel = B[keep], A[keep], sel[keep]
            exact = False
        options.append(C)
        stages.append(sel.astype(np.int64 if len(sel) and sel.max() >= 2 ** 31 else np.int32))
    size = (B + problem.costs.resident_bytes) / 1e6
    F = np.column_stack([A, size])
    return F, FrontChoices(problem, units, options, stages, np.arange(len(B)), calib), exact


def exact_genomes(problem, strict: bool = False, max_points: Optional[int] = None, per_calibration: bool = False):
    """Genomes of the exact (accuracy, size) front over every calibration method, made valid; and its size.

    A genome has one calibration method, so the front is the non-dominated union of one front per method the
    accuracy table and the space share; a method whose table is nowhere below another's is skipped (the prior's
    ``mse`` is below the other three everywhere: one dynamic program instead of four). With ``max_points`` the
    union's points within the problem's bounds on accuracy loss and size are first thinned to that many by the
    epsilon-net on (accuracy, size) (:func:`quantmoo.search.archive.thin`): the fronts hold 10^4-10^5 points,
    and recovering every genome of llama2-7b's 24,000 costs seconds and 200 MB. Only the points kept are recovered as genomes. They go through
    the search's repair (llama.cpp's stored types, tie groups and, with ``strict``, the hardware-native choices),
    so they are configs the search itself could report; the strict repair may move one off the front (it is
    then only valid) or make two equal (callers keep the non-dominated, distinct ones).

    ``per_calibration=True`` returns every method's whole front instead (no method skipped, no union taken):
    for a measured search, two configs that tie on proxy loss and size under two methods are two real configs.

    Returns
    -------
    X : ndarray (k, n_var) of int64
    n_front : int
        Points of the union before thinning (with ``max_points``: those within the bounds).
    """
    import moocore
    from ..search.archive import thin
    from ..results.scales import display_coordinates
    from ..search.front import loss_unit_of
    from ..search.operators.repair import repair_genomes
    T = problem.accuracy.table
    n_cal = min(T.shape[0], len(problem.encoding.space.calibrations))
    calibs = [c for c in range(n_cal)            # skip c if another method is <= everywhere (the first of equals)
              if per_calibration or not any((T[d] <= T[c]).all() and (d < c or not (T[c] <= T[d]).all())
                                            for d in range(n_cal) if d != c)]
    fronts = [exact_front(problem, calib=c)[:2] for c in calibs]
    F = np.concatenate([f[0] for f in fronts])
    keep = np.ones(len(F), dtype=bool)
    if not per_calibration:
        _, first = np.unique(F, axis=0, return_index=True)    # equal points of two methods: the first method's
        keep[:] = False
        keep[first] = True
        keep[keep] = moocore.is_nondominated(F[keep])
    if max_points is not None:         # thin only what the bounds on these two leave (callers check the rest)
        for k, bound in problem.constraints.items():
            if k in ("accuracy_loss", "size_mb"):
                keep &= F[:, ("accuracy_loss", "size_mb").index(k)] <= bound
    n_front = int(keep.sum())
    if max_points is not None and n_front > max_points:
        idx = np.flatnonzero(keep)
        keep[:] = False
        G, _ = display_coordinates(F[idx], ("accuracy_loss", "size_mb"), loss_unit_of(problem.model))  # as reported
        keep[idx[thin(G, max_points)]] = True
    parts, s = [], 0
    for Fc, C in fronts:                         # one recovery per calibration method (at most 4)
        idx = np.flatnonzero(keep[s:s + len(Fc)])
        s += len(Fc)
        if len(idx):
            parts.append(C.genomes(idx))
    X = repair_genomes(np.concatenate(parts), problem.encoding, problem.native_mask() if strict else None)
    return X, n_front


def _thin(B, A, n_cells):
    """Lowest-accuracy point per cell of a uniform grid on bytes (B sorted ascending)."""
    lo, hi = float(B[0]), float(B[-1])
    cell = np.minimum(((B - lo) / max(hi - lo, 1e-300) * n_cells).astype(np.int64), n_cells - 1)
    # A decreases along B, so the last point of each cell has the lowest accuracy
    last = np.ones(len(B), dtype=bool)
    last[:-1] = cell[1:] != cell[:-1]
    return np.flatnonzero(last)


def exact_reference(problem, calib: int = 0) -> np.ndarray:
    """Hypervolume reference ``[accuracy_loss, size_mb]`` for the separable front.

    The same rule as :func:`quantmoo.search.run.hv_reference` (1.1 x the maximum over the
    uniform-precision configs of the space), restricted to these two objectives.
    """
    from ..search.operators import uniform_precision_seeds
    X = uniform_precision_seeds(problem.encoding)
    if problem.encoding.calib_varies:
        X[:, -1] = calib
    vals = problem.evaluate_all(X)
    ref = np.array([vals["accuracy_loss"].max(), vals["size_mb"].max()]) * 1.1
    return np.where(ref > 0, ref, 1.0)


def exact_hypervolume(problem, ref=None, calib: int = 0, front=None) -> float:
    """Hypervolume of the exact separable front, normalised like the search's history.

    Parameters
    ----------
    problem : QuantizationProblem
    ref : array_like (2,), optional
        Reference point ``[accuracy_loss, size_mb]`` in objective units; default
        :func:`exact_reference`. The front is divided by ``ref`` and measured against (1, 1)
        (:func:`quantmoo.search.run.hypervolume`), so the value is comparable with the
        hypervolume of a two-objective search on ``("accuracy_loss", "size_mb")``.
    calib : int
        Calibration method index.
    front : ndarray (n, 2), optional
        A precomputed ``F`` from :func:`exact_front`.
    """
    from ..search.run import hypervolume
    F = exact_front(problem, calib)[0] if front is None else np.asarray(front, dtype=float)
    ref = exact_reference(problem, calib) if ref is None else np.asarray(ref, dtype=float)
    if ref.shape != (2,):
        raise QuantmooError(f"The 'ref' must be 2 numbers [accuracy_loss, size_mb]; got shape {ref.shape}")
    return hypervolume(F, ref)


__all__ = ["COSTS", "MAX_POINTS", "FrontChoices", "cost_table", "exact_front", "exact_genomes",
           "exact_hypervolume", "exact_reference", "layer_units", "pareto_indices", "resolve_cost"]
