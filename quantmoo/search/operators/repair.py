"""Repair: pinned layers, tie groups and the optional hardware-strict mode.

Pure function :func:`repair_genomes` plus the thin pymoo class :class:`QuantRepair`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from pymoo.core.repair import Repair
from ..space import ORDINAL_ATTRS


def repair_genomes(X: np.ndarray, enc, strict_allowed: Optional[np.ndarray] = None,
                   random_state: Optional[np.random.Generator] = None) -> np.ndarray:
    """Make every genome of ``X`` valid for ``enc``.

    1. Clip to the bounds (pinned genes have ``xl == xu`` and so are set to their value); in a
       llama.cpp space, a type a layer cannot hold is replaced by the fallback type llama.cpp
       really stores (``Encoding.alias``), so equal configs have one genome.
    2. Hardware-strict mode: a layer whose choice is not allowed (``strict_allowed[l, c]``
       False, e.g. not native) is moved to the allowed choice nearest in weight/activation
       bits, keeping its other genes where possible.
    3. Tie groups: every layer of a group takes the activation bits of the group's first layer.

    Parameters
    ----------
    X : ndarray (N, n_var) of int
    enc : Encoding
    strict_allowed : ndarray (n_layers, n_choices) of bool, optional
    random_state : numpy.random.Generator, optional
        Unused (repair is deterministic); accepted for pymoo's calling convention.
    """
    X = np.asarray(X)
    X = (X if np.issubdtype(X.dtype, np.integer) else X.round()).astype(np.int64)   # a new int64 array
    np.maximum(X, enc.xl, out=X)     # np.clip, without its slow broadcast of array bounds
    np.minimum(X, enc.xu, out=X)
    alias = getattr(enc, "alias", None)
    if alias is not None:   # llama.cpp types that a layer stores as another type: name the stored one
        C = enc.choices(X)
        A = alias[np.arange(enc.n_layers)[None, :], C]
        if (A != C).any():
            X = np.clip(enc.genes_from_choices(A, enc.calibration_index(X)), enc.xl, enc.xu)
    if strict_allowed is not None:
        C = enc.choices(X)
        L = enc.n_layers
        ok = strict_allowed[np.arange(L)[None, :], C]
        if not ok.all():
            # distance from every choice to every choice: bits distance first, then other genes
            target = _nearest_allowed(enc, strict_allowed)          # (L, n_choices) -> choice id
            C = np.where(ok, C, target[np.arange(L)[None, :], C])
            calib = enc.calibration_index(X)
            X = np.clip(enc.genes_from_choices(C, calib), enc.xl, enc.xu)
    if enc.tie_sets and "activation_bits" in enc.varying:
        j = enc.varying.index("activation_bits")
        for members in enc.tie_sets:      # loop over groups (few), vectorised over the population
            genes = members * enc.k + j
            X[:, genes] = X[:, genes[:1]]
    return X


def _nearest_allowed(enc, allowed: np.ndarray) -> np.ndarray:
    """For each (layer, choice), the allowed choice of that layer closest to it."""
    cache = getattr(enc, "_strict_cache", None)
    if cache is not None and cache[0] is allowed:
        return cache[1]
    nc = enc.n_choices
    A = np.stack([enc.choice_attr[a] for a in enc.attrs], axis=1).astype(np.float64)  # (nc, n_attrs)
    # bit (and llama.cpp type) differences dominate, other attributes break ties
    weights = np.array([100.0 if a in ORDINAL_ATTRS else 1.0 for a in enc.attrs])
    D = (np.abs(A[:, None, :] - A[None, :, :]) * weights).sum(-1)                 # (nc, nc)
    out = np.empty((enc.n_layers, nc), dtype=np.int64)
    for l in range(enc.n_layers):   # once per layer at set-up, not on the population path
        Dl = np.where(allowed[l][None, :], D, np.inf)
        out[l] = np.argmin(Dl, axis=1)
    enc._strict_cache = (allowed, out)
    return out


class QuantRepair(Repair):
    """pymoo adapter of :func:`repair_genomes` (reads ``problem.encoding``)."""

    def __init__(self, strict: bool = False):
        super().__init__()
        self.strict = strict

    def _do(self, problem, X, random_state=None, **kwargs):
        allowed = problem.native_mask() if self.strict else None
        return repair_genomes(X, problem.encoding, allowed, random_state)
