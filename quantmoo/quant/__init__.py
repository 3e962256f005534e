"""Fake-quantization kernels in NumPy: grids, calibration, and packed sizes.

* :mod:`~quantmoo.quant.bits` - config vocabulary, checks, scale-group layout;
* :mod:`~quantmoo.quant.schemes` - the symmetric / asymmetric / power-of-two grids;
* :mod:`~quantmoo.quant.calibration` - clipping ranges (min-max, percentile, MSE, KL entropy);
* :mod:`~quantmoo.quant.kernels` - :func:`quantize_dequantize` and :func:`quant_error`;
* :mod:`~quantmoo.quant.packing` - :func:`packed_bytes`, the one packed-size convention;
* :mod:`~quantmoo.quant.ggml` - llama.cpp's types (Q8_0, Q6_K, ..., Q2_K): sizes and real grids.
"""
from .bits import (CALIBRATIONS, EXPONENT_BYTES, GRANULARITIES, SCALE_BYTES, SCHEMES, WEIGHT_BITS,
                   ZERO_POINT_BYTES, normalize_scheme)
from . import ggml
from .calibration import calibrate
from .kernels import quant_error, quantize_dequantize
from .packing import packed_bytes

__all__ = [
    "WEIGHT_BITS", "SCHEMES", "GRANULARITIES", "CALIBRATIONS", "SCALE_BYTES", "ZERO_POINT_BYTES",
    "EXPONENT_BYTES", "normalize_scheme", "calibrate", "quantize_dequantize", "quant_error",
    "packed_bytes",
]
