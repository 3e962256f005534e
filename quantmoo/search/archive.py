"""An external archive of every non-dominated feasible point the search has evaluated.

NSGA-II's population keeps at most ``pop_size`` points and, with four objectives, its crowding
truncation drops good points (for example a uniform-precision seed). The archive keeps all
of them, so the reported front is the non-dominated set of *everything evaluated*. Updates are
vectorised: a dominance matrix between the new points and the archive.
"""
from __future__ import annotations

import numpy as np

from .operators.duplicates import row_hash, row_keys, rows_in


def _le_lt(A: np.ndarray, B: np.ndarray):
    """(len(A), len(B)) bool pair: all(A[i] <= B[j]) and any(A[i] < B[j])."""
    # one objective at a time: 2-D comparisons accumulate in place, with no (len(A), len(B), m)
    # temporaries to reduce (several times faster for a few objectives)
    le = np.ones((len(A), len(B)), dtype=bool)
    lt = np.zeros((len(A), len(B)), dtype=bool)
    for k in range(A.shape[1]):
        a, b = A[:, k, None], B[None, :, k]
        le &= a <= b
        lt |= a < b
    return le, lt


def dominates(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(len(A), len(B)) bool: A[i] Pareto-dominates B[j] (minimisation)."""
    le, lt = _le_lt(A, B)
    return le & lt


def dominance(A: np.ndarray, B: np.ndarray):
    """``(dominates(A, B), dominates(B, A).T)`` in one pass, for finite A and B.

    Without NaN, B[j] <= A[i] everywhere iff no A[i] < B[j], and B[j] < A[i] somewhere iff not
    A[i] <= B[j] everywhere.
    """
    le, lt = _le_lt(A, B)
    return le & lt, ~(le | lt)


class ParetoArchive:
    """Non-dominated set of (X, F) rows with unique genomes.

    Genomes are kept as int16 (gene indices are small), so rebuilding the archive each
    generation moves a quarter of the bytes, and each is hashed once, when it enters: a 64-bit
    hash finds the candidate repeats of a new genome, an exact row comparison confirms them.
    """

    def __init__(self, n_var: int, n_obj: int, chunk: int = 512):
        self.F = np.zeros((0, n_obj), dtype=np.float64)
        self.chunk = chunk
        self.X = np.zeros((0, n_var), dtype=np.int64)

    @property
    def X(self) -> np.ndarray:
        """(len, n_var) int64 genomes."""
        return self._X.astype(np.int64)

    @X.setter
    def X(self, X) -> None:
        self._X = np.asarray(X).astype(np.int16)
        self._h = row_hash(self._X)

    def __setstate__(self, state):          # archives pickled before the int16 storage
        if "X" in state:
            X = state.pop("X")
            self.__dict__.update(state)
            self.X = X
        else:
            self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.F)

    def add(self, X: np.ndarray, F: np.ndarray) -> None:
        """Insert the non-dominated, new rows of (X, F); drop archive rows they dominate."""
        X = np.asarray(X).astype(np.int16)
        F = np.asarray(F, dtype=np.float64)
        if len(F) == 0:
            return
        # non-dominated among the new points themselves (and unique genomes)
        _, idx = np.unique(row_keys(X), return_index=True)
        X, F = X[idx], F[idx]
        keep = ~dominates(F, F).any(axis=0)
        X, F = X[keep], F[keep]
        h = row_hash(X)
        if len(self.F):
            # a new point equal in F to an archived one is kept only if its genome is new
            dom_new = np.zeros(len(F), dtype=bool)
            dom_old = np.zeros(len(self.F), dtype=bool)
            finite = np.isfinite(F).all() and np.isfinite(self.F).all()
            for s in range(0, len(self.F), self.chunk):   # chunks bound memory, not a per-individual loop
                A = self.F[s:s + self.chunk]
                a_dom, f_dom = dominance(A, F) if finite else (dominates(A, F), dominates(F, A).T)
                dom_new |= a_dom.any(axis=0)
                dom_old[s:s + self.chunk] = f_dom.any(axis=1)
            add = ~dom_new
            add[add] = ~rows_in(X[add], h[add], self._X, self._h)
            if not add.any() and not dom_old.any():
                return          # unchanged: keep the same arrays (callers may cache on them)
            self._X = np.concatenate([self._X[~dom_old], X[add]])
            self._h = np.concatenate([self._h[~dom_old], h[add]])
            self.F = np.concatenate([self.F[~dom_old], F[add]])
        else:
            self._X, self._h, self.F = X, h, F


def _normalised_columns(F: np.ndarray) -> list:
    """The columns of ``F`` scaled to [0, 1], each contiguous."""
    lo, hi = F.min(axis=0), F.max(axis=0)
    return [np.ascontiguousarray((F[:, i] - lo[i]) / (hi[i] - lo[i] if hi[i] > lo[i] else 1.0))
            for i in range(F.shape[1])]


def _cover(cols: list, j: int) -> np.ndarray:
    """``max_i (nF[j, i] - nF[:, i])`` for every row: by how much row ``j`` fails to cover each row."""
    # one column at a time: a reduction over a length-m axis of an (n, m) array is several times slower
    d = cols[0][j] - cols[0]
    for c in cols[1:]:
        np.maximum(d, c[j] - c, out=d)
    return d


def thin(F: np.ndarray, k: int) -> np.ndarray:
    """Indices of at most ``k`` rows of ``F`` that cover all rows with the least additive epsilon.

    Greedy epsilon-net on objectives normalised to [0, 1]: start with the best point of every
    objective, then repeatedly add the row that the chosen set covers worst. The returned set
    epsilon-covers every row of ``F`` within the final worst-case epsilon (recorded by callers).
    """
    n, m = F.shape
    if n <= k:
        return np.arange(n)
    cols = _normalised_columns(F)
    chosen = list(dict.fromkeys(int(np.argmin(c)) for c in cols))
    # eps[j] = min over chosen c of max_i (nF[c, i] - nF[j, i])
    eps = np.minimum.reduce([_cover(cols, c) for c in chosen])       # at most m rows
    while len(chosen) < k:
        j = int(np.argmax(eps))
        if eps[j] <= 0:
            break
        chosen.append(j)
        np.minimum(eps, _cover(cols, j), out=eps)
    return np.array(sorted(chosen))


def thin_epsilon(F: np.ndarray, idx: np.ndarray) -> float:
    """The additive epsilon (normalised units) by which ``F[idx]`` covers all of ``F``."""
    cols = _normalised_columns(F)
    eps = np.full(len(F), np.inf)
    for c in idx:               # one row of the net at a time: (n,) temporaries, ~10^5 rows for an exact front
        np.minimum(eps, _cover(cols, int(c)), out=eps)
    return float(max(0.0, eps.max()))
