"""Vocabulary of quantization configs, argument checks, and the layout of scale groups.

A weight of shape ``(out, ...)`` is viewed as a matrix ``(out, in)`` with ``in`` the
flattened remaining axes (a 1-D tensor is one row). Scale groups are cut from that matrix:

* ``per_tensor``  - one group holding every element;
* ``per_channel`` - one group per row (output channel);
* ``per_group``   - contiguous runs of ``group_size`` elements along each row; the last run of
  a row may be shorter (the remainder) and is a group of its own.

Kernels work on a 3-D view ``(rows, n_groups, group_len)`` so every group is reduced at once.
The remainder is padded with the row's own last value (so min and max are unchanged) and a
boolean mask marks the real entries for every statistic that counts elements.
"""
from __future__ import annotations

import numbers

import numpy as np

from quantmoo.errors import QuantmooError, allowed, check_choice

WEIGHT_BITS = (2, 3, 4, 5, 6, 8, 16)
SCHEMES = ("symmetric", "asymmetric", "power_of_two")
SCHEME_ALIASES = {"affine": "asymmetric"}
GRANULARITIES = ("per_tensor", "per_channel", "per_group")
CALIBRATIONS = ("min_max", "percentile", "mse", "entropy")
#: Bytes per stored scale: scales are kept as fp16.
SCALE_BYTES = 2
#: Bytes per stored zero point (asymmetric only): uint8, enough for every grid up to 8 bits.
ZERO_POINT_BYTES = 1
#: Bytes per power-of-two scale: an int8 exponent (dequantization is a shift).
EXPONENT_BYTES = 1


def normalize_scheme(name):
    """Return the canonical scheme name; ``"affine"`` is an alias of ``"asymmetric"``.

    Raises
    ------
    QuantmooError
        If ``name`` is not a known scheme or alias.
    """
    if isinstance(name, str):
        name = SCHEME_ALIASES.get(name, name)
    return check_choice("scheme", name, SCHEMES)


def check_bits(bits) -> int:
    """Return ``bits`` as int if it is one of :data:`WEIGHT_BITS`."""
    if isinstance(bits, (bool, np.bool_)):  # True == 1 would otherwise slip through
        raise allowed("bits", bits, WEIGHT_BITS)
    return int(check_choice("bits", bits, WEIGHT_BITS))


def check_int(field: str, value, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise QuantmooError(f"The '{field}' must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_percentile(value) -> float:
    """Return ``value`` as float if it is a number in [50, 100]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 50 <= value <= 100:
        raise QuantmooError(f"The 'percentile' must be a number in [50, 100]; got {value!r}")
    return float(value)


def check_config(bits, scheme, granularity, group_size, calibration, percentile):
    """Validate every config argument up front; return them normalized."""
    return (check_bits(bits), normalize_scheme(scheme),
            check_choice("granularity", granularity, GRANULARITIES),
            check_int("group_size", group_size),
            check_choice("calibration", calibration, CALIBRATIONS),
            check_percentile(percentile))


def as_finite_float32(x, field: str = "x") -> np.ndarray:
    """Return ``x`` as a float32 array, raising :class:`QuantmooError` on NaN, inf or non-numbers."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise QuantmooError(f"The '{field}' array must hold real numbers; got dtype {a.dtype}")
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf, reported below
        a = a.astype(np.float32, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        raise QuantmooError(f"The '{field}' array contains NaN or inf values ({int(bad.sum())} of "
                            f"{a.size}, after conversion to float32); quantization needs finite input")
    return a


def as_matrix(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """View ``a`` as ``(out, in)`` with ``axis`` as the output (channel) axis."""
    if a.ndim <= 1:
        return a.reshape(1, -1)
    try:
        a = np.moveaxis(a, axis, 0)
    except (ValueError, IndexError) as exc:  # numpy's AxisError subclasses both
        raise QuantmooError(f"The 'axis' must index a dimension of x (ndim {a.ndim}); got {axis!r}") from exc
    return a.reshape(a.shape[0], -1)


def from_matrix(m: np.ndarray, shape: tuple, axis: int = 0) -> np.ndarray:
    """Invert :func:`as_matrix` for an array of the original ``shape``."""
    if len(shape) <= 1:
        return m.reshape(shape)
    axis = axis % len(shape)
    moved = (shape[axis],) + shape[:axis] + shape[axis + 1:]
    return np.moveaxis(m.reshape(moved), 0, axis)


def group_view(m: np.ndarray, granularity: str, group_size: int):
    """Cut the ``(out, in)`` matrix ``m`` into scale groups.

    Returns
    -------
    v : ndarray, shape (rows, n_groups, group_len)
        ``(1, 1, out*in)`` per tensor, ``(out, 1, in)`` per channel, ``(out, n_groups, g)`` per group.
    mask : ndarray of bool, shape (1, n_groups, group_len), or None
        True on real entries; None when there is no padding.
    """
    out, n_in = m.shape
    if granularity == "per_tensor":
        return m.reshape(1, 1, -1), None
    if granularity == "per_channel":
        return m[:, None, :], None
    g = max(1, min(group_size, n_in))  # a group longer than the row is the whole row
    n_groups = -(-n_in // g)
    pad = n_groups * g - n_in
    if pad == 0:
        return m.reshape(out, n_groups, g), None
    v = np.pad(m, ((0, 0), (0, pad)), mode="edge").reshape(out, n_groups, g)
    mask = (np.arange(n_groups * g) < n_in).reshape(1, n_groups, g)
    return v, mask


def ungroup(v: np.ndarray, shape: tuple) -> np.ndarray:
    """Invert :func:`group_view`: back to the ``(out, in)`` matrix, padding dropped."""
    out, n_in = shape
    return v.reshape(out, -1)[:, :n_in]


def public_range_shape(gshape: tuple, granularity: str) -> tuple:
    """Shape of ``lo``/``hi`` as users see it: (), (out, 1) or (out, n_groups, 1)."""
    return {"per_tensor": (), "per_channel": (gshape[0], 1)}.get(granularity, gshape[:2] + (1,))
