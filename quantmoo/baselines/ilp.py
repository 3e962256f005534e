"""HAWQ-V3-style integer linear program: the most accurate config under one budget.

HAWQ-V3 (Yao et al., ICML 2021, section 3.3) picks one bit-width per layer by an ILP that
minimises the summed per-layer sensitivity subject to a model-size, BOPs or latency budget.
Here, on quantmoo's own tables (so numbers are comparable with the search):

    minimise    sum_{l,c} acc[l, c] x[l, c]
    subject to  sum_c x[l, c] = 1                         (one choice per layer)
                sum_{l,c} cost[l, c] x[l, c] <= B - offset  (the budget)
                x[l, c] in {0, 1}

``acc`` is the accuracy table of one calibration method, ``cost`` one separable cost table
(:func:`quantmoo.baselines.exact.cost_table`: ``size_mb``, ``latency_ms``, ``energy_mj`` or
``bops``). The problem is solved with :func:`scipy.optimize.milp` (HiGHS) under a time limit.

Keeping it small:

* per layer only the choices that are Pareto-optimal in (cost, acc) are variables: a
  dominated choice can always be swapped for the choice dominating it without breaking the
  budget or worsening the objective, so the optimum is unchanged;
* layers whose candidate tables are identical (e.g. the 32 identical blocks of a Llama) are
  aggregated: one integer count per candidate, ``sum_c y[g, c] = |g|``; the counts are then
  assigned to the group's layers (higher-cost choices to earlier layers). Any assignment has
  the same objective and cost, so this is exact too;
* layers of a tie group (shared activation bits) stay separate binaries, pruned per
  activation bit-width, with equality constraints that give every member the same
  activation bits.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import QuantmooError
from .exact import cost_table, layer_units, pareto_indices, resolve_cost


class _ILP:
    """The candidate structure of one (problem, cost, calibration); solved for many budgets."""

    def __init__(self, problem, cost: str, calib: int):
        self.problem = problem
        self.cost_name = resolve_cost(cost)
        self.calib = calib
        acc = np.where(problem.pin_mask(), problem.accuracy.separable(calib), np.inf)
        cost_t, self.offset = cost_table(problem, self.cost_name)
        self.acc, self.cost = acc, cost_t
        abits = problem.encoding.choice_value["activation_bits"]

        # candidates: per layer (untied) or per (layer, activation bits) (tied)
        blocks = []    # (layers, candidate choice ids); one block = one group of variables
        tied = []      # (unit layers) for the tie constraints
        groups = {}
        def add_single(l, cand):
            if len(cand) == 0:
                raise QuantmooError(f"Layer '{problem.model.layer_names[l]}' has no allowed choice")
            key = (cand.tobytes(), acc[l, cand].tobytes(), cost_t[l, cand].tobytes())
            groups.setdefault(key, (cand, []))[1].append(l)

        for unit in layer_units(problem):
            if len(unit) == 1:
                l = int(unit[0])
                add_single(l, pareto_indices(cost_t[l], acc[l]))
                continue
            classes = _tie_classes(unit, acc, cost_t, abits)
            if len(classes) == 1:      # one activation bit-width dominates: no tie constraint needed
                (per_member,) = classes.values()
                for l, cand in zip(unit, per_member):
                    add_single(int(l), cand)
                continue
            for i, l in enumerate(unit):
                cand = np.sort(np.concatenate([per_member[i] for per_member in classes.values()]))
                blocks.append((np.array([int(l)]), cand))
            tied.append((unit, np.array(sorted(classes))))
        blocks = [(np.asarray(ls), cand) for cand, ls in groups.values()] + blocks
        self.blocks = blocks

        # variable layout
        starts, n = [], 0
        for _, cand in blocks:
            starts.append(n)
            n += len(cand)
        self.n_var = n
        self.starts = starts
        c_acc = np.empty(n)
        c_cost = np.empty(n)
        ub = np.empty(n)
        var_abits = np.empty(n)
        rows, cols, vals, rhs = [], [], [], []
        block_of_layer = {}
        for b, (ls, cand) in enumerate(blocks):
            s = slice(starts[b], starts[b] + len(cand))
            l0 = int(ls[0])
            c_acc[s] = acc[l0, cand]
            c_cost[s] = cost_t[l0, cand]
            ub[s] = len(ls)
            var_abits[s] = abits[cand]
            rows += [b] * len(cand)
            cols += list(range(s.start, s.stop))
            vals += [1.0] * len(cand)
            rhs.append(float(len(ls)))
            for l in ls:
                block_of_layer[int(l)] = b
        n_eq = len(blocks)
        # tie constraints: consecutive members share activation bits
        for unit, classes in tied:
            for l1, l2 in zip(unit[:-1], unit[1:]):
                b1, b2 = block_of_layer[int(l1)], block_of_layer[int(l2)]
                for a in classes:
                    for b, sign in ((b1, 1.0), (b2, -1.0)):
                        s0, cand = starts[b], blocks[b][1]
                        js = np.flatnonzero(abits[cand] == a)
                        rows += [n_eq] * len(js)
                        cols += list(s0 + js)
                        vals += [sign] * len(js)
                    rhs.append(0.0)
                    n_eq += 1
        from scipy.sparse import csr_array
        self.A_eq = csr_array((vals, (rows, cols)), shape=(n_eq, n))
        self.b_eq = np.asarray(rhs)
        self.c_acc, self.c_cost, self.ub = c_acc, c_cost, ub
        # Scales: accuracy coefficients near 1; the budget row is scaled so that the largest
        # possible total is ~1e6, so HiGHS's absolute feasibility tolerance (1e-6) is ~1e-12 of
        # the budget (coefficients near 1 would let it overshoot a budget by ~1e-6 relative).
        self.acc_scale = max(float(np.abs(c_acc).max()), 1e-300)
        total = sum(len(ls) * float(np.abs(cost_t[int(ls[0]), cand]).max()) for ls, cand in blocks)
        self.cost_scale = max(total, 1e-300) / 1e6
        # bounds of the budget range: cheapest config (a lower bound with ties) and min-acc config
        self.min_cost = self.offset + sum(len(ls) * float(cost_t[int(ls[0]), cand].min()) for ls, cand in blocks)
        # (candidates are Pareto-pruned: the lowest-accuracy one is the cheapest such choice)
        self.max_useful = self.offset + sum(
            len(ls) * float(cost_t[int(ls[0]), cand[np.argmin(acc[int(ls[0]), cand])]]) for ls, cand in blocks)

    # -- solving --------------------------------------------------------------------------------
    def config_cost(self, C: np.ndarray) -> float:
        return self.offset + float(self.cost[np.arange(len(C)), C].sum())

    def solve(self, budget: float, time_limit: float, mip_rel_gap: float) -> Optional[np.ndarray]:
        """Choice ids (n_layers,) of the optimum under ``budget``, or None if infeasible."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        if budget < self.min_cost * (1 - 1e-12) - 1e-15:
            return None
        tol = 1e-9 * max(abs(budget), 1e-300)
        # a budget exactly at a config's cost must stay feasible despite float rounding: give
        # HiGHS ``tol`` of slack and check the returned config against the budget itself
        rhs = budget - self.offset + tol
        for _ in range(4):     # re-solve with a tighter rhs if HiGHS's tolerance overshoots
            cons = [LinearConstraint(self.A_eq, self.b_eq, self.b_eq),
                    LinearConstraint((self.c_cost / self.cost_scale)[None, :], -np.inf, rhs / self.cost_scale)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = milp(self.c_acc / self.acc_scale, integrality=np.ones(self.n_var),
                           bounds=Bounds(np.zeros(self.n_var), self.ub), constraints=cons,
                           options={"time_limit": float(time_limit), "mip_rel_gap": float(mip_rel_gap)})
            if res.x is None:
                if res.status not in (2,):   # not proven infeasible: time limit without any solution
                    warnings.warn(f"ILP found no solution within the time limit ({time_limit:g} s) for "
                                  f"budget {budget:g} {self.cost_name}", RuntimeWarning, stacklevel=3)
                return None
            C = self._decode(np.rint(res.x).astype(np.int64))
            over = self.config_cost(C) - budget
            if over <= tol:
                if res.status == 1:
                    warnings.warn(f"ILP hit the time limit ({time_limit:g} s); the solution for budget "
                                  f"{budget:g} {self.cost_name} may not be optimal", RuntimeWarning, stacklevel=3)
                return C
            rhs -= over + tol
        return None

    def _decode(self, y: np.ndarray) -> np.ndarray:
        C = np.empty(self.problem.encoding.n_layers, dtype=np.int64)
        for b, (ls, cand) in enumerate(self.blocks):
            counts = y[self.starts[b]: self.starts[b] + len(cand)]
            # more expensive (higher-precision) choices to the earlier layers of the group
            order = np.argsort(-self.c_cost[self.starts[b]: self.starts[b] + len(cand)], kind="stable")
            C[np.sort(ls)] = np.repeat(cand[order], counts[order])
        return C


def _tie_classes(unit, acc, cost_t, abits) -> dict:
    """Per activation bit-width ``a``: the members' Pareto candidates restricted to ``a``.

    A bit-width is dropped when another one is at least as good for *every* member (each of
    its (cost, acc) points is weakly dominated by a point of the other's curve): any solution
    using it can switch the whole group without losing. Bit-widths some member cannot take
    (pins) are dropped too.
    """
    classes = {}
    for a in np.unique(abits):
        per_member = [pareto_indices(cost_t[l], np.where(abits == a, acc[l], np.inf)) for l in unit]
        if all(len(c) for c in per_member):
            classes[a] = per_member

    def covered(l, lo, hi):    # every point of curve `lo` weakly dominated by curve `hi`
        ch, ah = cost_t[l, hi], acc[l, hi]          # cost ascending, acc descending
        pos = np.searchsorted(ch, cost_t[l, lo], side="right") - 1
        return bool(np.all(pos >= 0) and np.all(ah[np.maximum(pos, 0)] <= acc[l, lo]))

    alive = sorted(classes)             # remove lower activation bits first when curves coincide
    removed = True
    while removed and len(alive) > 1:
        removed = False
        for a in alive:
            if any(all(covered(int(l), classes[a][i], classes[b][i]) for i, l in enumerate(unit))
                   for b in alive if b != a):
                alive.remove(a)
                removed = True
                break
    return {a: classes[a] for a in alive}


def _check_positive(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not v > 0:
        raise QuantmooError(f"The '{name}' must be a number > 0; got {v!r}")
    return float(v)


def ilp_solve(problem, budget: float, cost: str = "size_mb", calib: int = 0, time_limit: float = 10.0,
              mip_rel_gap: float = 1e-9) -> Optional[np.ndarray]:
    """The most accurate config whose ``cost`` is at most ``budget`` (HAWQ-V3-style ILP).

    Parameters
    ----------
    problem : QuantizationProblem
    budget : float
        Upper bound in the cost's units: MB of the whole model for ``size_mb`` (never-quantized
        parameters included, as ``evaluate_all`` reports it), ms / mJ of the separable
        per-layer latency / energy, or bit-operations for ``bops``.
    cost : str
        ``size_mb`` (alias ``size``), ``latency_ms`` (``latency``), ``energy_mj`` (``energy``)
        or ``bops``; see :func:`quantmoo.baselines.exact.cost_table`.
    calib : int
        Calibration method index (row of the accuracy table; also set in the genome).
    time_limit : float
        Seconds HiGHS may spend; on time-out the best solution found is returned with a
        ``RuntimeWarning`` (None if there is none).
    mip_rel_gap : float
        Relative optimality gap at which HiGHS stops.

    Returns
    -------
    ndarray (n_var,) or None
        The genome, or None if no config of the space meets the budget.
    """
    budget = float(budget)
    time_limit = _check_positive("time_limit", time_limit)
    C = _ILP(problem, cost, calib).solve(budget, time_limit, mip_rel_gap)
    if C is None:
        return None
    return problem.encoding.genes_from_choices(C[None, :], np.array([calib]))[0]


def ilp_curve(problem, n_points: int = 10, cost: str = "size_mb", calib: int = 0, time_limit: float = 10.0,
              mip_rel_gap: float = 1e-9, budgets=None):
    """ILP optima for budgets swept evenly between the cheapest and the most accurate config.

    Parameters
    ----------
    problem : QuantizationProblem
    n_points : int
        Number of budgets (>= 1); duplicates (same genome for two budgets) are dropped.
    cost, calib, time_limit, mip_rel_gap :
        As in :func:`ilp_solve`.
    budgets : array_like, optional
        Explicit budgets instead of the even sweep.

    Returns
    -------
    names : list of str
        ``"ILP size_mb<=12.5"`` per genome.
    X : ndarray (n, n_var)
        Genomes, in increasing budget order.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise QuantmooError(f"The 'n_points' must be an integer >= 1; got {n_points!r}")
    time_limit = _check_positive("time_limit", time_limit)
    model = _ILP(problem, cost, calib)
    if budgets is None:
        lo, hi = model.min_cost, max(model.max_useful, model.min_cost)
        budgets = np.linspace(lo, hi, int(n_points)) if n_points > 1 else np.array([hi])
    names, rows, seen = [], [], set()
    for B in np.asarray(budgets, dtype=float):
        C = model.solve(float(B), time_limit, mip_rel_gap)
        if C is None:
            continue
        key = C.tobytes()
        if key in seen:
            continue
        seen.add(key)
        names.append(f"ILP {model.cost_name}<={B:.6g}" if abs(B) < 1e6 else f"ILP {model.cost_name}<={B:.4e}")
        rows.append(C)
    if not rows:
        return [], np.zeros((0, problem.encoding.n_var), dtype=np.int64)
    C = np.array(rows)
    return names, problem.encoding.genes_from_choices(C, np.full(len(C), calib))


__all__ = ["ilp_solve", "ilp_curve"]
