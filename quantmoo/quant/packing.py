"""Packed size of a quantized weight: THE size every other quantmoo module uses.

Convention
----------
* Integer weights (2..8 bits) are packed densely, ``ceil(n_params * bits / 8)`` bytes: rows are
  packed back to back with no per-row or per-group padding. ``bits=16`` is fp16:
  ``2 * n_params`` bytes and no scales.
* Scale groups: per_tensor 1, per_channel ``out_channels``, per_group
  ``out_channels * ceil(in_features / group_size)`` (the remainder group has its own scale;
  ``in_features`` defaults to ``n_params // out_channels``).
* Each group stores an fp16 scale (:data:`SCALE_BYTES` = 2) for symmetric/asymmetric, or an int8
  exponent (:data:`EXPONENT_BYTES` = 1) for power_of_two; asymmetric adds a uint8 zero point
  (:data:`ZERO_POINT_BYTES` = 1). ``n_params = 0`` is 0 bytes.

* A llama.cpp type (``weight_format``, see :mod:`quantmoo.quant.ggml`) is stored as llama.cpp
  stores it: ``n_params / block * block_bytes`` (e.g. Q4_K: 144 bytes per 256 weights, 4.5 bits
  per weight with every scale and min), with llama.cpp's fallback type for rows
  (``in_features``) that are not a multiple of the block. ``bits``, ``scheme`` and
  ``granularity`` are then ignored.

Example: 4096 x 4096 int4, per_group 128, symmetric: 8,388,608 + 4096*32*2 = 8,650,752 bytes;
as Q4_K: 4096 * 16 * 144 = 9,437,184 bytes.
"""
from __future__ import annotations

import numpy as np

from .bits import (EXPONENT_BYTES, GRANULARITIES, SCALE_BYTES, SCHEME_ALIASES, SCHEMES,
                   WEIGHT_BITS, ZERO_POINT_BYTES)
from . import ggml
from quantmoo.errors import QuantmooError, allowed


def packed_bytes(n_params, bits, scheme="symmetric", granularity="per_tensor", group_size=128,
                 out_channels=1, in_features=None, weight_format="int"):
    """Bytes of a packed quantized weight, scales and zero points included.

    Every argument may be an array; they broadcast together.

    Parameters
    ----------
    n_params : int or array_like
        Weight elements, >= 0.
    bits : int or array_like
        Values in :data:`~quantmoo.quant.WEIGHT_BITS`.
    scheme, granularity : str or array_like of str
    group_size, out_channels : int or array_like
        >= 1.
    in_features : int or array_like, optional
        Flattened input size per output channel; ``out_channels * in_features`` must equal
        ``n_params`` for per_group. Defaults to ``n_params // out_channels``.

    Returns
    -------
    int, or ndarray of int64 when any argument is an array.
    """
    args = (n_params, bits, scheme, granularity, group_size, out_channels, in_features, weight_format)
    scalar = all(np.ndim(a) == 0 for a in args)
    n = _ints("n_params", n_params, 0)
    b = _choices("bits", bits, WEIGHT_BITS).astype(np.int64)
    s = _choices("scheme", scheme, SCHEMES, SCHEME_ALIASES)
    g = _choices("granularity", granularity, GRANULARITIES)
    gs = _ints("group_size", group_size, 1)
    out = _ints("out_channels", out_channels, 1)
    inf = -1 if in_features is None else _ints("in_features", in_features, 0)
    fmt = _choices("weight_format", weight_format, ("int",) + tuple(ggml.TYPES))
    try:
        n, b, s, g, gs, out, inf, fmt = np.broadcast_arrays(n, b, s, g, gs, out, inf, fmt)
    except ValueError as exc:
        raise QuantmooError(f"The packed_bytes arguments do not broadcast together: {exc}") from exc
    if in_features is None:
        inf = n // out
    grouped = (g != "per_tensor") & (n > 0)
    bad = grouped & ((n % out != 0) | (out * inf != n))
    if bad.any():
        i = np.flatnonzero(bad.reshape(-1))[0]
        raise QuantmooError(
            f"For per_channel/per_group, n_params must equal out_channels * in_features; got "
            f"n_params={n.flat[i]}, out_channels={out.flat[i]}, in_features={inf.flat[i]}")
    weights = np.where(b == 16, 2 * n, (n * b + 7) // 8)
    n_groups = np.where(g == "per_tensor", 1, np.where(g == "per_channel", out, out * (-(-inf // gs))))
    per_group = (np.where(s == "power_of_two", EXPONENT_BYTES, SCALE_BYTES)
                 + np.where(s == "asymmetric", ZERO_POINT_BYTES, 0))
    total = np.asarray(weights + np.where((b == 16) | (n == 0), 0, n_groups * per_group), dtype=np.int64)
    for f in np.unique(fmt):
        if f != "int":
            m = fmt == f
            total[m] = ggml.type_bytes(str(f), n[m], inf[m])
    return int(total) if scalar else total


def _ints(field, value, minimum):
    a = np.asarray(value)
    ok = a.dtype.kind in "iu" or (a.dtype.kind == "f" and bool(np.all(np.isfinite(a) & (a == np.round(a)))))
    if not ok or np.any(a < minimum):
        raise QuantmooError(f"The '{field}' must be integers >= {minimum}; got {value!r}")
    return a.astype(np.int64)


def _choices(field, value, choices, aliases=None):
    a = np.asarray(value)
    if aliases and a.dtype.kind == "U":
        for alias, name in aliases.items():
            a = np.where(a == alias, name, a)
    ok = np.isin(a, choices) & (a.dtype.kind != "b")
    if not np.all(ok):
        raise allowed(field, np.asarray(value)[~ok].flat[0].item() if np.ndim(value) else value, choices)
    return a
