"""Vectorised duplicate elimination on the integer genome.

pymoo's default compares every pair of individuals with a float distance matrix, which is
O(N^2 * n_var); rows of small integers are instead viewed as raw bytes and hashed by
``np.unique``, which is O(N log N).
"""
from __future__ import annotations

import numpy as np
from pymoo.core.duplicate import DuplicateElimination


def row_keys(X: np.ndarray) -> np.ndarray:
    """One opaque, hashable key per row of an integer matrix (a void view of its bytes)."""
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.integer):
        X = X.round()
    X = np.ascontiguousarray(X.astype(np.int16))
    return X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()


def duplicate_mask(X: np.ndarray, other: np.ndarray = None) -> np.ndarray:
    """True for rows of ``X`` that repeat an earlier row of ``X`` or any row of ``other``."""
    kx = row_keys(X)
    if other is None or len(other) == 0:
        _, first = np.unique(kx, return_index=True)
        dup = np.ones(len(kx), dtype=bool)
        dup[first] = False
        return dup
    return np.isin(kx, row_keys(other))


class QuantDuplicateElimination(DuplicateElimination):
    """pymoo adapter of :func:`duplicate_mask`."""

    def _do(self, pop, other, is_duplicate):
        X = pop.get("X")
        if other is None:
            return is_duplicate | duplicate_mask(X)
        return is_duplicate | duplicate_mask(X, other.get("X"))
