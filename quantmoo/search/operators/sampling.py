"""Initial populations.

Pure functions return (n, n_var) integer matrices; :class:`QuantSampling` mixes them:

* :func:`sample_uniform`: every gene uniform in its bounds.
* :func:`sample_biased`: bit genes drawn toward high precision, and each layer's choice moved to
  a natively supported one with probability ``p_native``.
* :func:`uniform_precision_seeds`: every uniform config (same bits on every layer).
* :func:`greedy_path_seeds`: the Lagrangian hull of the separable part: for a sweep of
  trade-off weights ``lam``, every layer independently picks
  ``argmin_c acc[l, c] + lam * cost[l, c]``. These points lie on the convex hull of the exact
  separable (accuracy proxy, size) front, which NSGA-II then fills in between.
"""
from __future__ import annotations

import numpy as np
from pymoo.core.sampling import Sampling
from ..space import ORDINAL_ATTRS


def sample_uniform(enc, n: int, random_state: np.random.Generator) -> np.ndarray:
    """``n`` genomes with each gene uniform over ``[xl, xu]``."""
    return random_state.integers(enc.xl, enc.xu + 1, size=(n, enc.n_var))


def sample_biased(enc, n: int, random_state: np.random.Generator, native_mask=None,
                  p_native: float = 0.7, power: float = 1.5) -> np.ndarray:
    """Genomes biased toward high precision and hardware-native choices.

    Bit genes take value index ``i`` with probability proportional to ``(i + 1) ** power``.
    """
    X = sample_uniform(enc, n, random_state)
    for attr in ORDINAL_ATTRS:
        if attr not in enc.varying:
            continue
        j = enc.varying.index(attr)
        r = enc.radix[attr]
        p = (np.arange(r) + 1.0) ** power
        p /= p.sum()
        cols = np.arange(j, enc.n_layers * enc.k, enc.k)
        X[:, cols] = random_state.choice(r, size=(n, len(cols)), p=p)
    X = np.clip(X, enc.xl, enc.xu)
    if native_mask is not None and enc.k:
        C = enc.choices(X)
        L = enc.n_layers
        ok = native_mask[np.arange(L)[None, :], C]
        # a random native choice of the same layer for the layers we move
        n_nat = native_mask.sum(axis=1)
        has = n_nat > 0
        u = random_state.random(C.shape)
        move = (~ok) & (u < p_native) & has[None, :]
        if move.any():
            # pick the k-th native choice of the layer, k uniform in [0, n_nat)
            k = (random_state.random(C.shape) * np.maximum(n_nat, 1)[None, :]).astype(np.int64)
            cum = np.cumsum(native_mask, axis=1)                     # (L, nc)
            # index of the (k+1)-th True in row l: searchsorted on the cumulative count
            pick = np.empty_like(C)
            for l in range(L):  # per layer (not per individual): vectorised over the population
                pick[:, l] = np.searchsorted(cum[l], k[:, l] + 1)
            C = np.where(move, pick, C)
            X = np.clip(enc.genes_from_choices(C, enc.calibration_index(X)), enc.xl, enc.xu)
    return X


def uniform_precision_seeds(enc) -> np.ndarray:
    """One genome per (weight bits, activation bits) pair, same choice on every layer; in a llama.cpp
    space (one weight bit-width, many types) one per (type, activation bits), all-Q2_K to all-F16.

    Schemes default to the space's first values, granularity to per-channel when allowed.
    """
    sp = enc.space
    gran = "per_channel" if "per_channel" in sp.granularities else sp.granularities[0]
    fmts = sp.weight_formats if sp.llama_cpp_types else (None,)
    rows = [enc.uniform_genome(w, a, granularity=gran, **({"weight_format": f} if f else {}))
            for f in fmts for w in sp.weight_bits for a in sp.activation_bits]
    return np.unique(np.array(rows, dtype=np.int64), axis=0)


def lagrangian_choices(acc: np.ndarray, cost: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Per-layer argmin of ``acc + lam * cost`` for each ``lam``: (n_lam, n_layers) choice ids."""
    return np.argmin(acc[None, :, :] + lams[:, None, None] * cost[None, :, :], axis=2)


def greedy_path_seeds(enc, acc: np.ndarray, cost: np.ndarray, n: int, calib: int = 0,
                      allowed: np.ndarray = None) -> np.ndarray:
    """``n`` genomes on the Lagrangian hull of (separable accuracy proxy, separable cost).

    Parameters
    ----------
    acc, cost : ndarray (n_layers, n_choices)
        Separable accuracy-loss and cost (e.g. size) tables.
    allowed : ndarray (n_layers, n_choices) of bool, optional
        Choices that respect pinned genes (others get +inf).
    """
    acc = np.asarray(acc, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if allowed is not None:
        acc = np.where(allowed, acc, np.inf)
    # lambda sweep spanning "all accuracy" to "all cost", log-spaced around the tables' scales
    da = np.nanmax(np.where(np.isfinite(acc), acc, np.nan)) + 1e-12
    dc = cost.max() - cost.min() + 1e-12
    lams = np.concatenate([[0.0], np.geomspace(da / dc * 1e-6, da / dc * 1e3, max(n - 1, 1))])
    C = lagrangian_choices(acc, cost, lams)
    calib_col = np.full(len(C), calib)
    X = enc.genes_from_choices(C, calib_col)
    return np.unique(np.clip(X, enc.xl, enc.xu), axis=0)


class QuantSampling(Sampling):
    """Mixed initial population: seeds (uniform-precision + greedy path), then biased and uniform.

    Parameters
    ----------
    seed_fraction : float
        At most this fraction of the population comes from the deterministic seeds.
    biased_fraction : float
        Fraction of the remainder drawn by :func:`sample_biased`; the rest is uniform.
    seed_baselines : bool
        Also seed the greedy-curve, ILP-sweep and (decoder LLMs) llama.cpp rule-preset genomes of
        the standard baselines (:func:`quantmoo.baselines.baseline_genomes`), so the search starts from the
        heuristics it is compared with (as AMQ-style searches do). Off by default: the ILP
        sweep costs seconds to minutes on LLM-sized problems.
    """

    def __init__(self, seed_fraction: float = 0.5, biased_fraction: float = 0.5, seed_baselines: bool = False):
        super().__init__()
        self.seed_fraction = seed_fraction
        self.biased_fraction = biased_fraction
        self.seed_baselines = bool(seed_baselines)

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        enc = problem.encoding
        seeds = [uniform_precision_seeds(enc)]
        from ...baselines.uniform import uniform_genomes
        _, U = uniform_genomes(problem)       # the uniform baselines themselves are seeds too
        if len(U):
            seeds = [np.unique(np.concatenate([seeds[0], U]), axis=0)]
        n_seed = int(self.seed_fraction * n_samples)
        must = np.zeros((0, enc.n_var), dtype=np.int64)
        if self.seed_baselines:
            from ...baselines import baseline_genomes
            heur = [X for kind, _, X in baseline_genomes(problem) if kind in ("greedy", "ilp", "rules") and len(X)]
            if heur:
                must = np.unique(np.concatenate(heur).astype(np.int64), axis=0)[:n_seed]
        if n_seed > len(seeds[0]):
            acc, size = problem.separable_tables()
            seeds.append(greedy_path_seeds(enc, acc, size, n_seed - len(seeds[0]),
                                           allowed=problem.pin_mask()))
        S = np.unique(np.concatenate(seeds), axis=0)
        n_free = max(n_seed - len(must), 0)
        if len(S) > n_free:
            S = S[random_state.permutation(len(S))[:n_free]]
        S = np.unique(np.concatenate([must, S]), axis=0)    # heuristic seeds are always kept
        n_rest = n_samples - len(S)
        n_b = int(round(self.biased_fraction * n_rest))
        parts = [S, sample_biased(enc, n_b, random_state, problem.native_mask()),
                 sample_uniform(enc, n_rest - n_b, random_state)]
        return np.concatenate(parts).astype(np.int64)
