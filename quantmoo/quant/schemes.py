"""Integer grids of the three schemes, and fake-quantization onto them.

Given a clipping range ``[lo, hi]`` per scale group and a bit width ``b`` (2..8):

* ``symmetric`` - signed, restricted ("narrow") range ``q in [-(2^(b-1)-1), 2^(b-1)-1]`` so the
  grid is symmetric about zero (2^b - 1 levels; -2^(b-1) is unused, as in TFLite/PyTorch
  symmetric weights); zero point 0; ``scale = max(|lo|, |hi|) / (2^(b-1)-1)``.
* ``asymmetric`` - unsigned ``q in [0, 2^b - 1]``; the range is widened to include 0
  (``lo <= 0 <= hi``) so zero is exact; ``scale = (hi - lo) / (2^b - 1)``;
  ``zero_point = round(-lo / scale)`` clipped to the grid.
* ``power_of_two`` - symmetric, with the scale rounded *up* to ``2**ceil(log2(scale))`` so
  dequantization is a shift and nothing inside the range is clipped.

Rounding: every grid rounds half to even, ``q = clip(rint(x / scale) + zero_point, qmin, qmax)``,
in that order, exactly as ONNX ``QuantizeLinear`` (and ``torch.round``) do, so quantmoo's
emulation and onnxruntime agree on exact ties. The zero point is ``rint(-lo / scale)`` too.
(Min-max quantization is idempotent except when ``-lo / scale`` is itself a half-integer: then
one end of the range lies on a tie and half-to-even may round it one step inwards.)

Symmetric range vs ONNX: the symmetric grids use ``[-(2^(b-1)-1), 2^(b-1)-1]``, e.g. int8
``[-127, 127]``, while an ONNX int8 tensor holds ``[-128, 127]``. The narrow grid is a subset,
so a symmetric weight exported as int8 never uses -128 and dequantizes exactly as here; an
activation ``QuantizeLinear`` saturates to the type's range, so the ONNX export clips its
output to the narrow grid where the two differ (see :mod:`quantmoo.onnx`).

A zero range (an all-zero group) gives scale 0 and an all-zero output, never NaN.
Scales are computed in float64; dequantization multiplies the integer by the float32 scale in
float32, exactly what ONNX ``DequantizeLinear`` does with a float32 scale (so the QDQ export
reproduces the emulation bit for bit). Storage (see :mod:`quantmoo.quant.packing`) assumes
fp16 scales, whose rounding (relative 2^-11) is not emulated.
"""
from __future__ import annotations

import numpy as np


def grid_params(lo, hi, bits: int, scheme: str):
    """Scale, zero point and integer limits of the grid for ranges ``lo``/``hi``.

    Returns
    -------
    scale, zero_point : ndarray of float64, broadcast shape of ``lo`` and ``hi``
    qmin, qmax : int
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if scheme == "asymmetric":
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        qmax = 2 ** bits - 1
        scale = (hi - lo) / qmax
        safe = np.where(scale > 0, scale, 1.0)
        zero_point = np.clip(np.rint(-lo / safe), 0, qmax)
        return scale, zero_point, 0, qmax
    qmax = 2 ** (bits - 1) - 1
    scale = np.maximum(np.abs(lo), np.abs(hi)) / qmax
    if scheme == "power_of_two":
        mant, exp = np.frexp(scale)  # scale = mant * 2**exp, mant in [0.5, 1): exact ceil(log2)
        scale = np.where(scale > 0, np.ldexp(1.0, exp - (mant == 0.5)), 0.0)
    return scale, np.zeros_like(scale), -qmax, qmax


def quantize_grid(v, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    """Integer grid values ``clip(rint(v / scale) + zero_point, qmin, qmax)`` as float64.

    The ONNX ``QuantizeLinear`` order (round, then add the zero point); a zero scale gives
    ``zero_point``. In place where it can: the MSE search calls this ~40 times per tensor.
    """
    q = np.divide(v, np.where(scale > 0, scale, 1.0), dtype=np.float64)
    np.rint(q, out=q)
    q += zero_point
    return np.clip(q, qmin, qmax, out=q)


def fake_quant(v: np.ndarray, lo, hi, bits: int, scheme: str) -> np.ndarray:
    """Quantize ``v`` onto the grid of ``[lo, hi]`` and dequantize; float32 out.

    ``lo`` and ``hi`` broadcast against ``v`` (shape ``(rows, n_groups, 1)`` for grouped views).
    """
    scale, zero_point, qmin, qmax = grid_params(lo, hi, bits, scheme)
    q = quantize_grid(v, scale, zero_point, qmin, qmax)
    q -= zero_point
    # dequantize in float32 with a float32 scale, as ONNX DequantizeLinear: one rounding, same bits
    return np.multiply(q.astype(np.float32), np.asarray(scale, dtype=np.float32), dtype=np.float32)
