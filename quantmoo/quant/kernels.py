"""Fake quantization (quantize then dequantize) of whole tensors, and its error.

The grids are defined in :mod:`quantmoo.quant.schemes`, the ranges in
:mod:`quantmoo.quant.calibration`, the scale-group layout in :mod:`quantmoo.quant.bits`.
``bits=16`` is an fp16 round trip with no scale; values beyond the fp16 range saturate to
+-65504 so the output stays finite.
"""
from __future__ import annotations

import numpy as np

from .bits import (as_finite_float32, as_matrix, check_config, from_matrix, group_view,
                   public_range_shape, ungroup)
from .calibration import calibrate_groups
from .schemes import fake_quant
from quantmoo.errors import QuantmooError

_FP16_MAX = float(np.finfo(np.float16).max)


def quantize_dequantize(x, bits, scheme="symmetric", granularity="per_tensor", group_size=128,
                        calibration="min_max", percentile=99.99, lo=None, hi=None, axis=0):
    """Fake-quantize ``x``: round it onto the grid of its scale groups and map back to floats.

    Parameters
    ----------
    x : array_like
        Finite numbers; weights ``(out, ...)``, activations, or 1-D (one row).
    bits : int
        One of :data:`~quantmoo.quant.WEIGHT_BITS`; 16 means an fp16 round trip.
    scheme : {"symmetric", "asymmetric", "power_of_two"} or "affine"
    granularity : {"per_tensor", "per_channel", "per_group"}
    group_size : int
        Elements per group along the flattened input axis (per_group only).
    calibration : {"min_max", "percentile", "mse", "entropy"}
        How ranges are chosen when ``lo``/``hi`` are not given.
    percentile : float
        In [50, 100], for ``calibration="percentile"``.
    lo, hi : array_like, optional
        Ranges calibrated elsewhere (e.g. activations on a calibration split), with one value
        or one per scale group, shaped as :func:`~quantmoo.quant.calibrate` returns them.
    axis : int
        The output-channel axis of ``x``.

    Returns
    -------
    ndarray of float32, the shape of ``x``.

    Raises
    ------
    QuantmooError
        On NaN/inf in ``x``, or an invalid argument.
    """
    a = as_finite_float32(x)
    bits, scheme, granularity, group_size, calibration, percentile = check_config(
        bits, scheme, granularity, group_size, calibration, percentile)
    if (lo is None) != (hi is None):
        raise QuantmooError("Give both 'lo' and 'hi', or neither")
    if bits == 16:
        return np.clip(a, -_FP16_MAX, _FP16_MAX).astype(np.float16).astype(np.float32)
    if a.size == 0:
        return a.copy()
    m = as_matrix(a, axis)
    v, mask = group_view(m, granularity, group_size)
    if lo is None:
        lo, hi = calibrate_groups(v, mask, bits, scheme, granularity, calibration, percentile)
    else:
        lo, hi = _given_ranges(lo, hi, v.shape, granularity)
    return from_matrix(ungroup(fake_quant(v, lo, hi, bits, scheme), m.shape), a.shape, axis)


def quant_error(x, bits, scheme="symmetric", granularity="per_tensor", group_size=128,
                calibration="min_max", percentile=99.99, lo=None, hi=None, axis=0) -> float:
    """Mean squared reconstruction error of :func:`quantize_dequantize` (same parameters)."""
    a = as_finite_float32(x)
    y = quantize_dequantize(a, bits, scheme, granularity, group_size, calibration, percentile,
                            lo, hi, axis)
    return float(np.mean(np.square(y.astype(np.float64) - a))) if a.size else 0.0


def _given_ranges(lo, hi, gshape, granularity):
    """Check user ranges and shape them ``(rows, n_groups, 1)`` like calibrated ones."""
    shape = gshape[:2] + (1,)
    out = []
    for field, r in (("lo", lo), ("hi", hi)):
        r = as_finite_float32(r, field)
        if r.size not in (1, int(np.prod(shape))):
            raise QuantmooError(
                f"The '{field}' range must hold 1 value or one per scale group (shape "
                f"{public_range_shape(gshape, granularity)}); got shape {r.shape}")
        out.append(np.broadcast_to(r.reshape(-1), (int(np.prod(shape)),)).reshape(shape))
    if np.any(out[0] > out[1]):
        raise QuantmooError("The 'lo' range must not exceed 'hi' in any scale group")
    return out[0], out[1]
