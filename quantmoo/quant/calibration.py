"""Choice of the clipping range ``[lo, hi]`` of every scale group.

Methods
-------
``min_max``
    The group's minimum and maximum.
``percentile``
    ``asymmetric``: the ``100 - p`` and ``p`` percentiles of x; symmetric schemes: ``[-t, t]``
    with ``t`` the ``p`` percentile of ``|x|`` (numpy's linear interpolation).
``mse``
    Shrink the min-max range by each ratio in :data:`MSE_RATIOS` (0.2 .. 1.0, step 0.02) and keep,
    per group, the one with the smallest reconstruction error. Ratio 1.0 is a candidate and wins
    ties, so the result is never worse than ``min_max``.
``entropy``
    TensorRT's KL calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017): histogram
    ``|x|`` into ``B`` bins; for every candidate threshold of ``i >= n_q`` bins, build the
    reference P (the first ``i`` bins, outliers folded into bin ``i - 1``) and the candidate Q
    (the same ``i`` bins merged into ``n_q`` levels and spread back over P's non-empty bins),
    and keep the threshold with the least KL(P || Q). ``n_q = 2^(b-1)`` for symmetric schemes,
    ``2^b`` for asymmetric (whose grid is one-sided for the one-sided data it is used on; the
    range is ``[max(min, -t), min(max, t)]``). A candidate where Q is 0 but P is not has
    KL = inf (no smoothing). Per tensor: ``B = 2048`` and every candidate, as TensorRT. Per
    channel/group, vectorised over groups with a histogram sized to the grid,
    ``B = min(2048, max(128, 4 n_q))``, and at most 64 evenly spaced candidates; a group
    holds few samples, and work grows as groups x candidates x bins.

For ``bits == 16`` (fp16, no clipping) every method returns the min-max range.
"""
from __future__ import annotations

import numpy as np

from .bits import CALIBRATIONS, as_finite_float32, as_matrix, check_config, group_view, public_range_shape
from .schemes import fake_quant
from quantmoo.errors import QuantmooError, check_choice

MSE_RATIOS = np.linspace(0.2, 1.0, 41).astype(np.float32)
ENTROPY_BINS = 2048
_GROUPED_CANDIDATES = 64
_CHUNK = 2 ** 20  # elements per (groups, candidates, bins) block in the KL search


def calibrate(x, bits, scheme="symmetric", granularity="per_tensor", group_size=128,
              method="min_max", percentile=99.99, axis=0):
    """Clipping range of every scale group of ``x``.

    Parameters
    ----------
    x : array_like
        A weight ``(out, ...)`` (viewed as ``(out, in)``) or an activation batch; 1-D is one row.
    bits : int
        One of :data:`~quantmoo.quant.WEIGHT_BITS`.
    scheme : {"symmetric", "asymmetric", "power_of_two"} or "affine"
    granularity : {"per_tensor", "per_channel", "per_group"}
    group_size : int
        Elements per group along the flattened input axis (per_group only).
    method : {"min_max", "percentile", "mse", "entropy"}
    percentile : float
        In [50, 100]; used by ``method="percentile"``.
    axis : int
        The output-channel axis of ``x`` (0 for weights; e.g. -1 for channels-last activations).

    Returns
    -------
    lo, hi : ndarray of float32
        Shape ``()`` per tensor, ``(out, 1)`` per channel, ``(out, n_groups, 1)`` per group.
    """
    a = as_finite_float32(x)
    check_choice("method", method, CALIBRATIONS)
    bits, scheme, granularity, group_size, method, percentile = check_config(
        bits, scheme, granularity, group_size, method, percentile)
    if a.size == 0:
        raise QuantmooError("The 'x' array must not be empty to calibrate a range")
    v, mask = group_view(as_matrix(a, axis), granularity, group_size)
    lo, hi = calibrate_groups(v, mask, bits, scheme, granularity, method, percentile)
    shape = public_range_shape(v.shape, granularity)
    return lo.reshape(shape), hi.reshape(shape)


def calibrate_groups(v, mask, bits, scheme, granularity, method, percentile):
    """Ranges of a grouped view ``(rows, n_groups, g)``; float32 arrays ``(rows, n_groups, 1)``."""
    lo = v.min(axis=-1, keepdims=True)  # edge padding repeats real values: min/max unaffected
    hi = v.max(axis=-1, keepdims=True)
    if bits == 16 or method == "min_max":
        return lo, hi
    if method == "percentile":
        if scheme == "asymmetric":
            return _percentile(v, mask, 100.0 - percentile), _percentile(v, mask, percentile)
        t = _percentile(np.abs(v), mask, percentile)
        return -t, t
    if method == "mse":
        return _mse_range(v, mask, lo, hi, bits, scheme)
    n_q = 2 ** bits if scheme == "asymmetric" else 2 ** (bits - 1)
    if granularity == "per_tensor":
        t = _kl_threshold(np.abs(v), mask, n_q, ENTROPY_BINS, None)
    else:
        t = _kl_threshold(np.abs(v), mask, n_q, min(ENTROPY_BINS, max(128, 4 * n_q)), _GROUPED_CANDIDATES)
    if scheme == "asymmetric":
        return np.maximum(lo, -t), np.minimum(hi, t)
    return -t, t


def _percentile(v, mask, q):
    """Percentile along the last axis over real entries (numpy's 'linear' method)."""
    shape = v.shape[:-1] + (1,)
    if mask is None:
        n = np.full(shape, v.shape[-1])
        s = np.sort(v, axis=-1)
    else:  # padding sorts last as +inf and is not counted
        n = np.broadcast_to(mask.sum(axis=-1, keepdims=True), shape)
        s = np.sort(np.where(mask, v, np.inf), axis=-1)
    pos = (n - 1) * (q / 100.0)
    i0 = np.floor(pos).astype(np.intp)
    a0 = np.take_along_axis(s, i0, axis=-1)
    a1 = np.take_along_axis(s, np.minimum(i0 + 1, n - 1), axis=-1)
    return (a0 + (pos - i0) * (a1 - a0)).astype(np.float32)


def _group_sse(y, v, mask):
    """Sum of squared reconstruction errors per group, in float64."""
    d = np.subtract(y, v, dtype=np.float64)
    d *= d
    if mask is not None:
        d *= mask
    return d.sum(axis=-1, keepdims=True)


def _mse_range(v, mask, lo, hi, bits, scheme):
    best_err = np.full(lo.shape, np.inf)
    best = np.ones(lo.shape, dtype=np.float32)
    for r in MSE_RATIOS[::-1]:  # from 1.0 down, strict '<': ties keep the wider range
        err = _group_sse(fake_quant(v, lo * r, hi * r, bits, scheme), v, mask)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, r, best)
    return lo * best, hi * best  # same float32 products as in the search: same grid


def _kl_threshold(a, mask, n_q, bins, max_candidates):
    """KL-optimal clipping threshold of ``|x|`` per group; float32 ``(rows, n_groups, 1)``."""
    rows, n_groups, g = a.shape
    n = rows * n_groups
    a = a.reshape(n, g)
    width = a.max(axis=1).astype(np.float64) / bins
    idx = np.minimum((a / np.where(width > 0, width, 1.0)[:, None]).astype(np.intp), bins - 1)
    weights = None if mask is None else np.broadcast_to(mask, (rows, n_groups, g)).reshape(-1)
    hist = np.bincount((idx + bins * np.arange(n)[:, None]).reshape(-1), weights=weights,
                       minlength=n * bins).reshape(n, bins).astype(np.float64)
    cand = np.arange(n_q, bins + 1)
    if max_candidates and cand.size > max_candidates:
        cand = np.unique(np.round(np.linspace(n_q, bins, max_candidates)).astype(np.intp))
    kl = np.empty((n, cand.size))
    step_t = max(1, min(cand.size, _CHUNK // bins))
    step_g = max(1, _CHUNK // (step_t * bins))
    for g0 in range(0, n, step_g):  # blocks bound memory; each block is fully vectorised
        for t0 in range(0, cand.size, step_t):
            kl[g0:g0 + step_g, t0:t0 + step_t] = _kl(hist[g0:g0 + step_g], cand[t0:t0 + step_t], n_q)
    best = cand[np.argmin(kl, axis=1)]  # first minimum: the tightest of equal candidates
    return (best * width).astype(np.float32).reshape(rows, n_groups, 1)


def _kl(hist, cand, n_q):
    """KL(P || Q) for histograms ``(G, B)`` and candidate bin counts ``(T,)``; ``(G, T)``."""
    n, bins = hist.shape
    t = cand.size
    k = np.arange(bins)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(hist, axis=1)], axis=1)  # (G, B+1)
    inside = k < cand[:, None]  # (T, B)
    p = np.where(inside, hist[:, None, :], 0.0)  # (G, T, B)
    p[:, np.arange(t), cand - 1] += csum[:, -1:] - csum[:, cand]  # outliers into the last bin
    # Q: bins [0, i) merged into n_q runs of i // n_q bins, the last run takes the remainder.
    width = (cand // n_q)[:, None]
    j = np.minimum(k // width, n_q - 1)
    start = j * width
    stop = np.where(j == n_q - 1, cand[:, None], start + width)
    mass = csum[:, stop] - csum[:, start]  # (G, T, B): mass of the run holding each bin
    nz = p > 0
    nz_cum = np.concatenate([np.zeros((n, t, 1), np.intp), np.cumsum(nz, axis=2)], axis=2)
    full = (n, t, bins)
    count = (np.take_along_axis(nz_cum, np.broadcast_to(stop, full), axis=2)
             - np.take_along_axis(nz_cum, np.broadcast_to(start, full), axis=2))
    q = np.where(nz, mass / np.maximum(count, 1), 0.0)  # spread over P's non-empty bins
    q_sum = csum[:, cand][:, :, None]
    p_n = p / csum[:, -1:, None]
    q_n = q / np.where(q_sum > 0, q_sum, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(nz, p_n * (np.log(p_n) - np.log(q_n)), 0.0)  # q = 0 < p gives inf
    return terms.sum(axis=2)
