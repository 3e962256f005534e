"""Vectorised duplicate elimination on the integer genome.

pymoo's default compares every pair of individuals with a float distance matrix, which is
O(N^2 * n_var); rows of small integers are instead viewed as raw bytes and hashed by
``np.unique``, which is O(N log N).
"""
from __future__ import annotations

import functools

import numpy as np
from pymoo.core.duplicate import DuplicateElimination


def _int16(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.integer):
        X = X.round()
    return np.ascontiguousarray(X.astype(np.int16))


def row_keys(X: np.ndarray) -> np.ndarray:
    """One opaque, hashable key per row of an integer matrix (a void view of its bytes)."""
    X = _int16(X)
    return X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()


@functools.lru_cache(maxsize=16)
def _hash_weights(n_words: int) -> np.ndarray:
    return np.random.default_rng(0x9E3779B9).integers(1, 2 ** 62, n_words, dtype=np.int64) | 1


def row_hash(X: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of a small-integer matrix.

    The row's int16 bytes are read as int64 words and summed with fixed random odd multipliers
    (wrapping): a quarter of the multiply-adds of hashing gene by gene. Equal rows always get
    equal hashes; callers confirm a hash match by comparing the rows.
    """
    X = _int16(X)
    pad = -X.shape[1] % 4
    if pad:
        X = np.pad(X, ((0, 0), (0, pad)))
    W = X.view(np.int64)
    return W @ _hash_weights(W.shape[1])


def rows_in(X: np.ndarray, hx: np.ndarray, Y: np.ndarray, hy: np.ndarray) -> np.ndarray:
    """True for rows of ``X`` (hashes ``hx``) equal to a row of ``Y`` (hashes ``hy``).

    Sorted hashes find the candidate, an exact comparison confirms it. Two different rows of
    ``Y`` with the same hash (2^-64 per pair) could hide a match: a duplicate kept, never a row lost.
    """
    if len(X) == 0 or len(Y) == 0:
        return np.zeros(len(X), dtype=bool)
    order = np.argsort(hy)
    j = order[np.minimum(np.searchsorted(hy, hx, sorter=order), len(order) - 1)]
    return (hy[j] == hx) & (Y[j] == X).all(axis=1)


def duplicate_mask(X: np.ndarray, other: np.ndarray = None) -> np.ndarray:
    """True for rows of ``X`` that repeat an earlier row of ``X`` or any row of ``other``."""
    if other is None or len(other) == 0:
        _, first = np.unique(row_keys(X), return_index=True)
        dup = np.ones(len(X), dtype=bool)
        dup[first] = False
        return dup
    X, other = _int16(X), _int16(other)
    return rows_in(X, row_hash(X), other, row_hash(other))


def genomes(pop) -> np.ndarray:
    """``pop.get("X")`` of a pymoo population without its per-individual, per-key lookups."""
    return np.array([ind.X for ind in pop.ravel().tolist()])


class QuantDuplicateElimination(DuplicateElimination):
    """pymoo adapter of :func:`duplicate_mask`.

    ``do`` reads each population's genomes once and drops, in one mask, the rows that repeat an
    earlier row or a row of any other population given: the same survivors, in the same order, as
    pymoo's filter-one-population-at-a-time loop.
    """

    def do(self, pop, *args, return_indices=False, to_itself=True):
        if return_indices or len(pop) == 0:
            return super().do(pop, *args, return_indices=return_indices, to_itself=to_itself)
        X = _int16(genomes(pop))
        dup = duplicate_mask(X) if to_itself else np.zeros(len(X), dtype=bool)
        h = None
        for other in args:
            if len(other) > 0 and not dup.all():
                Y = _int16(genomes(other))
                h = row_hash(X) if h is None else h
                dup |= rows_in(X, h, Y, row_hash(Y))
        return pop[~dup]

    def _do(self, pop, other, is_duplicate):
        X = genomes(pop)
        if other is None:
            return is_duplicate | duplicate_mask(X)
        return is_duplicate | duplicate_mask(X, genomes(other))
