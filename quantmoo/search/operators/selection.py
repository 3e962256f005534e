"""Vectorised parent selection.

pymoo's tournament selection compares pairs in a Python loop; these draw all tournaments at
once. Each returns an index array of shape (n_matings, n_parents).

* :func:`crowded_tournament`: NSGA-II's binary tournament (constraint violation, then
  non-domination rank, then crowding distance).
* :func:`fitness_tournament`, :func:`roulette`, :func:`rank_selection`: for the
  single-objective weighted-sum GA (fitness = scalar to minimise). Elitism comes from the
  GA's (mu + lambda) survival.
"""
from __future__ import annotations

import numpy as np
from pymoo.core.selection import Selection


def _pairs(n_pop, n_select, random_state, pressure=2):
    return random_state.integers(0, n_pop, size=(n_select, pressure))


def crowded_tournament(cv, rank, crowding, n_select, random_state):
    """Binary tournament winners (indices), one per row of random pairs."""
    P = _pairs(len(cv), n_select, random_state)
    a, b = P[:, 0], P[:, 1]
    key_a = np.stack([cv[a], rank[a], -crowding[a]], axis=1)
    key_b = np.stack([cv[b], rank[b], -crowding[b]], axis=1)
    # lexicographic comparison: first column where they differ decides
    diff = key_a != key_b
    first = np.where(diff.any(axis=1), diff.argmax(axis=1), 0)
    rows = np.arange(len(P))
    a_better = key_a[rows, first] < key_b[rows, first]
    tie = ~diff.any(axis=1)
    coin = random_state.random(len(P)) < 0.5
    return np.where(tie, np.where(coin, a, b), np.where(a_better, a, b))


def fitness_tournament(fitness, cv, n_select, random_state, pressure=2):
    P = _pairs(len(fitness), n_select, random_state, pressure)
    key = np.where(cv[P] > 0, 1e300 + cv[P], fitness[P])   # feasible always beats infeasible
    return P[np.arange(len(P)), key.argmin(axis=1)]


def roulette(fitness, cv, n_select, random_state):
    """Fitness-proportional selection on ``max(f) - f`` (minimisation), infeasible get 0."""
    f = np.where(cv > 0, np.nan, fitness)
    w = np.nanmax(f) - f if np.isfinite(f).any() else np.zeros_like(f)
    w = np.nan_to_num(w, nan=0.0) + 1e-12
    return random_state.choice(len(f), size=n_select, p=w / w.sum())


def rank_selection(fitness, cv, n_select, random_state):
    """Linear ranking: the best gets weight n, the worst 1."""
    key = np.where(cv > 0, np.inf, fitness)
    order = np.argsort(np.argsort(key, kind="stable"), kind="stable")
    w = (len(key) - order).astype(np.float64)
    return random_state.choice(len(key), size=n_select, p=w / w.sum())


def _pop_arrays(pop):
    cv = pop.get("CV")
    cv = np.zeros(len(pop)) if cv is None or np.size(cv) == 0 or cv[0] is None else np.asarray(cv, float).ravel()
    return cv


class CrowdedTournamentSelection(Selection):
    """NSGA-II binary tournament, vectorised (needs ``rank`` and ``crowding`` set by survival)."""

    def _do(self, problem, pop, n_select, n_parents, random_state=None, **kwargs):
        # one pass over the individuals (pymoo's get is one pass per key, with per-key lookups)
        inds = pop.tolist()
        cv = np.array([ind.CV for ind in inds])
        cv = np.zeros(len(pop)) if cv.size == 0 or cv[0] is None else np.asarray(cv, float).ravel()
        rank = np.array([ind.data.get("rank") for ind in inds])
        crowding = np.array([ind.data.get("crowding") for ind in inds])
        if rank is None or rank[0] is None:  # right after initialisation in some algorithms
            rank = np.zeros(len(pop))
            crowding = np.zeros(len(pop))
        rank = np.asarray(rank, dtype=float)
        crowding = np.nan_to_num(np.asarray(crowding, dtype=float), posinf=1e300)
        idx = crowded_tournament(cv, rank, crowding, n_select * n_parents, random_state)
        return idx.reshape(n_select, n_parents)


class ScalarSelection(Selection):
    """Tournament, roulette or rank selection on a scalar fitness (single-objective GA)."""

    METHODS = ("tournament", "roulette", "rank")

    def __init__(self, method: str = "tournament"):
        super().__init__()
        from ...errors import check_choice
        self.method = check_choice("selection", method, self.METHODS)

    def _do(self, problem, pop, n_select, n_parents, random_state=None, **kwargs):
        f = np.asarray(pop.get("F"), dtype=float)[:, 0]
        cv = _pop_arrays(pop)
        n = n_select * n_parents
        if self.method == "tournament":
            idx = fitness_tournament(f, cv, n, random_state)
        elif self.method == "roulette":
            idx = roulette(f, cv, n, random_state)
        else:
            idx = rank_selection(f, cv, n, random_state)
        return idx.reshape(n_select, n_parents)


def _attr(pop, name, default=0.0):
    v = pop.get(name)
    if v is None or len(v) == 0 or v[0] is None:
        return np.full(len(pop), default, dtype=float)
    return np.asarray(v, dtype=float).ravel()


class ReferenceTournamentSelection(Selection):
    """NSGA-III / U-NSGA-III binary tournament, vectorised and seeded.

    pymoo 0.6.2's ``comp_by_cv_then_random`` and ``comp_by_rank_and_ref_line_dist`` break CV
    ties with an unseeded generator (pymoo issue 794, fixed after 0.6.2), so same-seed runs with
    constraints could differ. This re-implements both rules with the ``random_state`` pymoo
    passes in:

    * either infeasible: smaller constraint violation wins, ties at random;
    * both feasible, ``unified=False`` (NSGA-III): at random;
    * both feasible, ``unified=True`` (U-NSGA-III): in the same niche the better rank wins, then
      the smaller distance to the niche's reference line; otherwise at random.
    """

    def __init__(self, unified: bool = False):
        super().__init__()
        self.unified = unified

    def _do(self, problem, pop, n_select, n_parents, random_state=None, **kwargs):
        n = n_select * n_parents
        P = _pairs(len(pop), n, random_state)
        a, b = P[:, 0], P[:, 1]
        cv = _pop_arrays(pop)
        coin = random_state.random(n) < 0.5
        winner = np.where(coin, a, b)
        infeasible = (cv[a] > 0) | (cv[b] > 0)
        by_cv = np.where(cv[a] < cv[b], a, np.where(cv[b] < cv[a], b, winner))
        if self.unified:
            niche, rank, dist = _attr(pop, "niche", -1), _attr(pop, "rank"), _attr(pop, "dist_to_niche")
            same = niche[a] == niche[b]
            by_rank = np.where(rank[a] < rank[b], a, np.where(rank[b] < rank[a], b,
                               np.where(dist[a] < dist[b], a, np.where(dist[b] < dist[a], b, winner))))
            winner = np.where(same, by_rank, winner)
        return np.where(infeasible, by_cv, winner).reshape(n_select, n_parents)
