"""Crossover operators that respect the layer structure of the genome.

Each is a pure vectorised function of the parents ``X`` of shape (2, n_matings, n_var)
returning two children of the same shape; :class:`QuantCrossover` picks one of them per mating.

* :func:`cx_layer_uniform`: each layer's genes come together from one parent.
* :func:`cx_layer_points`: single- or two-point crossover with cuts at layer boundaries.
* :func:`cx_block`: whole transformer/residual blocks are exchanged.
* :func:`cx_bit_average`: bit genes (ordinal) become the average of the parents, rounded
  up or down at random; other genes as in layer-uniform crossover.
"""
from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.population import Population
from ..space import ORDINAL_ATTRS

STRATEGIES = ("layer_uniform", "one_point", "two_point", "block", "bit_average")


def _layer_to_genes(mask_l: np.ndarray, enc, calib_mask: np.ndarray = None) -> np.ndarray:
    """Expand a per-layer mask (M, L) to a per-gene mask (M, n_var)."""
    M = mask_l.shape[0]
    out = np.repeat(mask_l, enc.k, axis=1)
    if enc.calib_varies:
        cm = calib_mask if calib_mask is not None else np.zeros((M, 1), dtype=bool)
        out = np.concatenate([out, cm.reshape(M, 1)], axis=1)
    return out


def _swap(X: np.ndarray, take_b: np.ndarray) -> np.ndarray:
    a, b = X[0], X[1]
    return np.stack([np.where(take_b, b, a), np.where(take_b, a, b)])


def cx_layer_uniform(X, enc, random_state, prob: float = 0.5):
    M = X.shape[1]
    m = random_state.random((M, enc.n_layers)) < prob
    return _swap(X, _layer_to_genes(m, enc, random_state.random((M, 1)) < prob))


def cx_layer_points(X, enc, random_state, n_points: int = 1):
    """Cuts at layer boundaries; segments alternate between parents."""
    M, L = X.shape[1], enc.n_layers
    if L < 2:
        return cx_layer_uniform(X, enc, random_state)
    cuts = np.sort(random_state.integers(1, L, size=(M, n_points)), axis=1)
    pos = np.arange(L)
    # number of cuts at or before each layer: odd -> segment from the other parent
    n_before = (pos[None, None, :] >= cuts[:, :, None]).sum(axis=1)
    m = (n_before % 2) == 1
    return _swap(X, _layer_to_genes(m, enc, random_state.random((M, 1)) < 0.5))


def cx_block(X, enc, random_state, blocks: np.ndarray, prob: float = 0.5):
    """Exchange whole blocks (layers with block id -1 count as their own block each)."""
    M, L = X.shape[1], enc.n_layers
    ids = np.where(blocks >= 0, blocks, blocks.max(initial=0) + 1 + np.arange(L))
    _, inv = np.unique(ids, return_inverse=True)
    m_block = random_state.random((M, inv.max() + 1)) < prob
    return _swap(X, _layer_to_genes(m_block[:, inv], enc, random_state.random((M, 1)) < prob))


def cx_bit_average(X, enc, random_state):
    Y = cx_layer_uniform(X, enc, random_state)
    a, b = X[0], X[1]
    for attr in ORDINAL_ATTRS:
        if attr not in enc.varying:
            continue
        cols = np.arange(enc.varying.index(attr), enc.n_layers * enc.k, enc.k)
        s = a[:, cols] + b[:, cols]
        up = random_state.random(s.shape) < 0.5
        lo = s // 2
        hi = s - lo
        Y[0][:, cols] = np.where(up, hi, lo)
        Y[1][:, cols] = np.where(up, lo, hi)
    return Y


def quant_crossover(X, enc, random_state, blocks=None, weights=None):
    """Apply one strategy per mating, chosen with probabilities ``weights`` (dict)."""
    weights = dict(weights or {s: 1.0 for s in STRATEGIES})
    if blocks is None or (np.asarray(blocks) < 0).all():
        weights.pop("block", None)
    names = [s for s in STRATEGIES if weights.get(s, 0) > 0]
    p = np.array([weights[s] for s in names], dtype=np.float64)
    p /= p.sum()
    M = X.shape[1]
    pick = random_state.choice(len(names), size=M, p=p)
    out = np.empty_like(X)
    for i, name in enumerate(names):   # over the handful of strategies, not over individuals
        sel = pick == i
        if not sel.any():
            continue
        Xs = X[:, sel]
        if name == "layer_uniform":
            Y = cx_layer_uniform(Xs, enc, random_state)
        elif name == "one_point":
            Y = cx_layer_points(Xs, enc, random_state, 1)
        elif name == "two_point":
            Y = cx_layer_points(Xs, enc, random_state, 2)
        elif name == "block":
            Y = cx_block(Xs, enc, random_state, blocks)
        else:
            Y = cx_bit_average(Xs, enc, random_state)
        out[:, sel] = Y
    return out


class QuantCrossover(Crossover):
    """pymoo adapter of :func:`quant_crossover` (two parents, two children).

    ``do`` is overridden to read the parents' genomes as one (2, n_matings, n_var) array
    instead of pymoo's per-mating Python loop.
    """

    def __init__(self, prob: float = 0.9, weights: dict = None):
        super().__init__(2, 2, prob=prob)
        self.weights = weights

    def do(self, problem, pop, parents=None, *args, random_state=None, **kwargs):
        if parents is not None:
            pop = pop[np.asarray(parents)]
        # pop is the (n_matings, n_parents) population pymoo's selection returns; one flat get
        # (a get on the 2-D population loops over its rows, one Population.get each)
        shape = np.shape(pop)
        X = np.asarray(pop.reshape(-1).get("X"), dtype=np.int64).reshape(*shape, -1)
        X = np.ascontiguousarray(X.transpose(1, 0, 2))   # (2, n_matings, n_var)
        if random_state is None:
            random_state = np.random.default_rng()
        cross = random_state.random(X.shape[1]) < self.prob.value
        Y = X.copy()
        if cross.any():
            Y[:, cross] = self._do(problem, X[:, cross], random_state=random_state)
        return Population.new("X", Y.reshape(-1, X.shape[-1]))

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        return quant_crossover(np.asarray(X, dtype=np.int64), problem.encoding, random_state,
                               blocks=problem.blocks, weights=self.weights)
