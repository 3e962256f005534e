"""Mutation: ordinal steps for bit genes, resets for nominal genes, an adaptive rate.

:func:`mutate_genomes` is the pure function; :class:`QuantMutation` adapts it to pymoo and
makes the per-gene rate decay linearly with search progress from ``rate_start`` to
``rate_end`` (explore early, refine late).
"""
from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation

from ..space import ORDINAL_ATTRS


def mutate_genomes(X: np.ndarray, enc, rate: float, random_state: np.random.Generator) -> np.ndarray:
    """Mutate each free gene with probability ``rate``.

    Ordinal genes (bits) move one step up or down (inward at a bound); nominal genes are reset
    to a different allowed value. Pinned genes (``xl == xu``) never change. At least one free
    gene mutates per individual so no child is a clone.
    """
    X = np.asarray(X, dtype=np.int64).copy()
    N, n = X.shape
    free = enc.xu > enc.xl
    if not free.any():
        return X
    m = (random_state.random((N, n)) < rate) & free[None, :]
    # at least one mutation per individual: force one random free gene where none was drawn
    none = ~m.any(axis=1)
    if none.any():
        free_idx = np.flatnonzero(free)
        m[np.flatnonzero(none), free_idx[random_state.integers(0, len(free_idx), none.sum())]] = True
    ordinal = np.zeros(n, dtype=bool)
    for attr in ORDINAL_ATTRS:
        if attr in enc.varying:
            ordinal[np.arange(enc.varying.index(attr), enc.n_layers * enc.k, enc.k)] = True
    # the draws are (N, n) as always (same stream, same result); the arithmetic runs only on the
    # few mutated genes
    r_step = random_state.random((N, n))
    r_shift = random_state.random((N, n))
    rows, cols = np.nonzero(m)
    x, lo, hi = X[rows, cols], enc.xl[cols], enc.xu[cols]
    step = np.where(r_step[rows, cols] < 0.5, -1, 1)
    step = np.where(x + step < lo, 1, np.where(x + step > hi, -1, step))
    # nominal: a uniformly random *different* value: shift by 1..(range) modulo the range
    span = hi - lo + 1
    shift = 1 + (r_shift[rows, cols] * np.maximum(span - 1, 1)).astype(np.int64)
    new = np.where(ordinal[cols], x + step, lo + (x - lo + shift) % span)
    X[rows, cols] = np.clip(new, lo, hi)
    return X


class QuantMutation(Mutation):
    """pymoo adapter of :func:`mutate_genomes` with a progress-adaptive rate.

    Parameters
    ----------
    rate_start, rate_end : float, optional
        Per-gene mutation probability at the start and the end of the run. Default
        ``rate_start = 2 / n_layers`` (about two layers change), ``rate_end = 0.5 / n_layers``.
    """

    def __init__(self, rate_start: float = None, rate_end: float = None):
        super().__init__(prob=1.0)
        self.rate_start = rate_start
        self.rate_end = rate_end

    def rate(self, problem, algorithm=None) -> float:
        L = max(problem.encoding.n_layers, 1)
        k = max(problem.encoding.k, 1)
        r0 = self.rate_start if self.rate_start is not None else min(0.5, 2.0 / (L * k))
        r1 = self.rate_end if self.rate_end is not None else min(0.5, 0.5 / (L * k))
        progress = 0.0
        if algorithm is not None and algorithm.termination is not None:
            progress = float(np.clip(getattr(algorithm.termination, "perc", 0.0) or 0.0, 0.0, 1.0))
        return r0 + (r1 - r0) * progress

    def _do(self, problem, X, random_state=None, algorithm=None, **kwargs):
        return mutate_genomes(X, problem.encoding, self.rate(problem, algorithm), random_state)
