"""Crossover at layer boundaries: one or two cuts, a layer's genes always travel together.

:func:`cx_layer_points` is the pure vectorised function of the parents ``X`` of shape
(2, n_matings, n_var), returning two complementary children of the same shape;
:class:`QuantCrossover` adapts it to pymoo. The issue-19 ablation
(``benchmarks/bench_ablation.py``) kept only these cuts: layer-uniform, block and bit-averaging
crossovers did not raise the hypervolume on any problem and were removed; replacing the cuts
by pymoo's SBX lowers it on every non-separable proxy problem.
"""
from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.population import Population

from .duplicates import genomes


def cx_layer_points(X, enc, random_state, n_points=None):
    """Cuts at layer boundaries; segments alternate between the parents.

    Parameters
    ----------
    X : ndarray (2, M, n_var) of int
        The parents of ``M`` matings.
    enc : Encoding
    random_state : numpy.random.Generator
    n_points : {1, 2} or None
        Cuts per mating; ``None`` (default) draws one or two with equal probability per mating.
        The calibration gene (global) comes from either parent with probability 1/2.
    """
    M, L = X.shape[1], enc.n_layers
    if L < 2:
        m = np.zeros((M, L), dtype=bool)
    else:
        cuts = np.sort(random_state.integers(1, L, size=(M, 2)), axis=1)
        one = np.ones(M, dtype=bool) if n_points == 1 else (
            np.zeros(M, dtype=bool) if n_points == 2 else random_state.random(M) < 0.5)
        cuts[one, 1] = L        # a cut at L is past the last layer: one-point
        # an odd number of cuts at or before a layer (exactly one of the two): segment from the other parent
        layer = np.arange(L)[None, :]
        m = (layer >= cuts[:, :1]) != (layer >= cuts[:, 1:])
    a, b = X[0], X[1]
    Lk = L * enc.k
    # children by bit masks: a ^ ((a ^ b) & mask) takes b's genes where mask is all ones (a layer's k
    # genes follow its entry of m), a few SIMD passes instead of two element-wise selections
    mask = np.repeat(m, enc.k, axis=1).astype(a.dtype)
    np.negative(mask, out=mask)
    d = a[:, :Lk] ^ b[:, :Lk]
    d &= mask
    Y = np.empty((2,) + a.shape, dtype=np.result_type(a, b))
    np.bitwise_xor(a[:, :Lk], d, out=Y[0, :, :Lk])
    np.bitwise_xor(b[:, :Lk], d, out=Y[1, :, :Lk])
    if enc.calib_varies:         # the calibration gene (global)
        g = random_state.random((M, 1)) < 0.5
        Y[0, :, Lk:] = np.where(g, b[:, Lk:], a[:, Lk:])
        Y[1, :, Lk:] = np.where(g, a[:, Lk:], b[:, Lk:])
    return Y


class QuantCrossover(Crossover):
    """pymoo adapter of :func:`cx_layer_points` (two parents, two children).

    ``do`` is overridden to read the parents' genomes as one (2, n_matings, n_var) array
    instead of pymoo's per-mating Python loop.

    Parameters
    ----------
    prob : float
        Probability that a mating crosses over (otherwise the children copy the parents).
    n_points : {1, 2} or None
        See :func:`cx_layer_points`.
    """

    def __init__(self, prob: float = 0.9, n_points=None):
        super().__init__(2, 2, prob=prob)
        if n_points not in (None, 1, 2):
            from ...errors import QuantmooError
            raise QuantmooError(f"The 'n_points' of QuantCrossover must be one of {{1, 2, None}}; got {n_points!r}")
        self.n_points = n_points

    def do(self, problem, pop, parents=None, *args, random_state=None, **kwargs):
        if parents is not None:
            pop = pop[np.asarray(parents)]
        # pop is the (n_matings, n_parents) population pymoo's selection returns; one flat get
        # (a get on the 2-D population loops over its rows, one Population.get each)
        shape = np.shape(pop)
        X = np.asarray(genomes(pop), dtype=np.int64).reshape(*shape, -1)
        if random_state is None:
            random_state = np.random.default_rng()
        return Population.new("X", self.children(problem, X, random_state))

    def children(self, problem, X, random_state):
        """(2 * n_matings, n_var) children of the parents ``X`` (n_matings, 2, n_var), in pymoo's order."""
        X = _integer(X)
        X = np.ascontiguousarray(X.transpose(1, 0, 2))   # (2, n_matings, n_var)
        cross = random_state.random(X.shape[1]) < self.prob.value
        Y = X.copy()
        if cross.any():
            Y[:, cross] = self._do(problem, X[:, cross], random_state=random_state)
        return Y.reshape(-1, X.shape[-1])

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        return cx_layer_points(_integer(X), problem.encoding, random_state, self.n_points)


def _integer(X) -> np.ndarray:
    """Genomes as an integer array, in their own integer type (int16 genomes move a quarter of the bytes)."""
    X = np.asarray(X)
    return X if np.issubdtype(X.dtype, np.integer) else X.astype(np.int64)
