"""Greedy mixed-precision curve in the style of AIMET's Automatic Mixed Precision (AMP).

AIMET AMP (Qualcomm, "AIMET Automatic Mixed Precision", docs of aimet_torch.mixed_precision)
first measures every quantizer group's sensitivity at each candidate (weight, activation)
bit-width pair (phase 1), then builds a Pareto curve greedily (phase 2): starting from the
highest precision, it repeatedly lowers the group whose move costs the least accuracy per
unit of cost (MACs x bits or memory) saved, recording every step.

Here, on quantmoo's own tables (so the numbers are comparable with the search):

* a *unit* is a single layer, or a tie group (layers that must share activation bits; they move
  together, as AIMET's quantizer groups do);
* a unit's *ladder*: for every (weight bits, activation bits) pair the space allows, each
  member takes its lowest-accuracy-loss choice with those bits (schemes / granularity free,
  ties broken by the lower cost); the unit's rung costs and losses are the members' sums. The
  ladder keeps only rungs that are Pareto-optimal in (cost, loss), sorted by cost;
* start: every unit on its lowest-loss rung (fp16 where allowed; pinned genes are respected
  through ``problem.pin_mask()``);
* step: over all units and every cheaper rung of each, take the move with the smallest
  ``increase in loss / cost saved`` (sensitivity per byte for ``size_mb``), apply it and
  record the move; stop when every unit is on its cheapest rung.

Moves may skip rungs (a jump is taken when its ratio beats the next rung's), which keeps the
greedy from stalling on non-convex ladders. Along the curve the cost strictly decreases and
the summed loss strictly increases.
"""
from __future__ import annotations

import numpy as np

from .exact import cost_table, layer_units, pareto_indices


def _ladders(problem, acc, cost_t, units):
    """Per unit: (rung costs ascending, rung losses, rung choice matrix (k, len(unit)))."""
    cv = problem.encoding.choice_value
    wb, ab = cv["weight_bits"], cv["activation_bits"]
    pairs = sorted(set(zip(wb.tolist(), ab.tolist())))
    L = acc.shape[0]
    P = len(pairs)
    best = np.full((L, P), -1, dtype=np.int64)
    best_acc = np.full((L, P), np.inf)
    best_cost = np.full((L, P), np.inf)
    for j, (w, a) in enumerate(pairs):          # few pairs; vectorised over layers and choices
        m = (wb == w) & (ab == a)
        A = np.where(m[None, :], acc, np.inf)
        amin = A.min(axis=1)
        ok = np.isfinite(amin)
        # lowest loss; among equal losses the lowest cost
        Cm = np.where(A == amin[:, None], cost_t, np.inf)
        c = np.argmin(Cm, axis=1)
        best[ok, j] = c[ok]
        best_acc[ok, j] = amin[ok]
        best_cost[ok, j] = cost_t[np.arange(L), c][ok]
    out = []
    for unit in units:
        ra = best_acc[unit].sum(axis=0)          # (P,), inf where a member lacks the pair
        rc = best_cost[unit].sum(axis=0)
        keep = pareto_indices(rc, ra)
        out.append((rc[keep], ra[keep], best[unit][:, keep].T.copy()))
    return out


class GreedyPath:
    """The greedy curve stored as its moves: linear in memory in the number of layers.

    A curve has up to (rungs per unit) x (units) steps, so one genome per step would be
    quadratic in the number of layers (15,001 x 15,001 int64 at 3,000 layers). The path keeps
    the start choices and, per step, which unit moved to which rung; genomes are rebuilt on
    demand by replaying the moves (:meth:`genomes`), and separable sums along the curve come
    from per-rung sums (:meth:`totals`).
    """

    def __init__(self, problem, units, ladders, start, unit, prev, rung, calib):
        self.problem, self.units, self.ladders, self.calib = problem, units, ladders, calib
        self.start = start          # (n_layers,) choice ids of step 0
        self.unit = unit            # (n_steps,) the unit that moves at step i + 1
        self.prev = prev            # (n_steps,) the rung it leaves
        self.rung = rung            # (n_steps,) the rung it takes

    def __len__(self) -> int:
        return len(self.unit) + 1

    def totals(self, table: np.ndarray) -> np.ndarray:
        """Sum of a (n_layers, n_choices) table over the layers at every step, (n_steps + 1,)."""
        L = len(self.start)
        R = np.zeros((len(self.units), max(len(lad[0]) for lad in self.ladders)))   # per unit, per rung
        for u, (unit, lad) in enumerate(zip(self.units, self.ladders)):
            R[u, :len(lad[0])] = table[unit[:, None], lad[2].T].sum(axis=0)
        delta = R[self.unit, self.rung] - R[self.unit, self.prev]
        return table[np.arange(L), self.start].sum() + np.concatenate([[0.0], np.cumsum(delta)])

    def genomes(self, steps=None) -> np.ndarray:
        """Genomes of the given steps (all when None), in the order given."""
        steps = np.arange(len(self)) if steps is None else np.asarray(steps, dtype=np.int64).ravel()
        if len(steps) and (steps.min() < 0 or steps.max() >= len(self)):
            raise IndexError(f"greedy steps must be in [0, {len(self) - 1}]")
        C = self.start.copy()
        out = np.empty((len(steps), len(C)), dtype=np.int64)
        order = np.argsort(steps, kind="stable")
        j = 0
        for s in range(len(self)):              # replay the moves once, copying the wanted steps
            if s:
                u = self.unit[s - 1]
                C[self.units[u]] = self.ladders[u][2][self.rung[s - 1]]
            while j < len(order) and steps[order[j]] == s:
                out[order[j]] = C
                j += 1
            if j == len(order):
                break
        return self.problem.encoding.genes_from_choices(out, np.full(len(out), self.calib))


def greedy_path(problem, cost: str = "size_mb", calib: int = 0) -> GreedyPath:
    """The AMP-style greedy curve as a :class:`GreedyPath` (see :func:`greedy_curve`)."""
    acc = np.where(problem.pin_mask(), problem.accuracy.separable(calib), np.inf)
    cost_t, _ = cost_table(problem, cost)
    units = layer_units(problem)
    ladders = _ladders(problem, acc, cost_t, units)
    L = problem.encoding.n_layers
    C = np.empty(L, dtype=np.int64)
    pos = np.empty(len(units), dtype=np.int64)
    for u, (unit, (rc, ra, rch)) in enumerate(zip(units, ladders)):
        if len(rc) == 0:
            from ..errors import QuantmooError
            raise QuantmooError(f"Layer '{problem.model.layer_names[int(unit[0])]}' has no allowed choice")
        pos[u] = len(rc) - 1                     # lowest loss = most expensive Pareto rung
        C[unit] = rch[-1]

    def best_move(u):
        rc, ra, _ = ladders[u]
        p = pos[u]
        if p == 0:
            return np.inf, -1
        ratio = (ra[:p] - ra[p]) / (rc[p] - rc[:p])
        j = int(np.argmin(ratio))
        return float(ratio[j]), j

    moves = [best_move(u) for u in range(len(units))]
    ratio = np.array([m[0] for m in moves])
    target = np.array([m[1] for m in moves])
    moved, prev, rungs = [], [], []
    while True:
        u = int(np.argmin(ratio))
        if not np.isfinite(ratio[u]):
            break
        moved.append(u)
        prev.append(int(pos[u]))
        pos[u] = target[u]
        rungs.append(int(pos[u]))
        ratio[u], target[u] = best_move(u)
    as_int = lambda v: np.array(v, dtype=np.int64)   # noqa: E731
    return GreedyPath(problem, units, ladders, C, as_int(moved), as_int(prev), as_int(rungs), calib)


def greedy_curve(problem, cost: str = "size_mb", calib: int = 0, steps=None):
    """The AMP-style greedy curve, from the highest precision down to the lowest.

    Parameters
    ----------
    problem : QuantizationProblem
    cost : str
        What a move saves: ``size_mb`` (default), ``latency_ms``, ``energy_mj`` or ``bops``
        (see :func:`quantmoo.baselines.exact.cost_table`).
    calib : int
        Calibration method index (row of the accuracy table; also set in the genomes).
    steps : array of int, optional
        Only these steps (default: every step). A curve has up to about
        ``n_rungs x n_layers`` steps, so all of them is quadratic in memory for large models;
        :func:`greedy_path` gives the curve in linear memory.

    Returns
    -------
    names : list of str
        ``"greedy[i]"`` for step ``i`` (step 0 is the start).
    X : ndarray (n_steps, n_var)
        One genome per step; cost strictly decreasing, accuracy loss strictly increasing
        (both on the separable tables).
    """
    path = greedy_path(problem, cost, calib)
    steps = np.arange(len(path)) if steps is None else np.asarray(steps, dtype=np.int64).ravel()
    return [f"greedy[{i}]" for i in steps.tolist()], path.genomes(steps)


__all__ = ["GreedyPath", "greedy_curve", "greedy_path"]
