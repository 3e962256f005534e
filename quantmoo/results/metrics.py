"""Front-quality metrics used by benchmarks and reports."""
from __future__ import annotations

import numpy as np


def additive_epsilon(front: np.ndarray, points: np.ndarray, lo=None, hi=None) -> np.ndarray:
    """For each point, the smallest additive epsilon by which some front point covers it.

    Objectives are minimised and normalised to [0, 1] with ``lo``/``hi`` (default: the range of
    ``front`` and ``points`` together). ``eps[j] <= 0`` means point ``j`` is weakly dominated by
    the front; ``eps[j] <= 0.01`` means it is within 1 % of the normalised range.
    """
    front = np.asarray(front, dtype=float)
    points = np.asarray(points, dtype=float)
    both = np.vstack([front, points])
    lo = both.min(axis=0) if lo is None else np.asarray(lo, float)
    hi = both.max(axis=0) if hi is None else np.asarray(hi, float)
    scale = np.where(hi > lo, hi - lo, 1.0)
    nf, npt = (front - lo) / scale, (points - lo) / scale
    # eps_j = min over front points f of max over objectives (f_i - p_i)
    return (nf[None, :, :] - npt[:, None, :]).max(axis=2).min(axis=1)


def baseline_coverage(result) -> list:
    """``[(baseline name, epsilon)]`` for every baseline of a SearchResult (see additive_epsilon)."""
    if not result.baselines or not result.front:
        return []
    objs = result.objectives
    B = np.array([[b["objectives"][o] for o in objs] for b in result.baselines])
    eps = additive_epsilon(result.F, B)
    return [(b["name"], float(e)) for b, e in zip(result.baselines, eps)]
