"""llama.cpp's own weight types (ggml types): sizes and fake quantization by their real grids.

Each type stores a row of a weight matrix (GGUF ``ne[0]`` = the input features, so a quantmoo
``(out, in)`` matrix row by row) as blocks of a fixed number of elements:

=====  ======  =====  =====  ==========================================================
type   block   bytes  bpw    layout
=====  ======  =====  =====  ==========================================================
F16    1       2      16     IEEE half
Q8_0   32      34     8.5    fp16 scale ``d``, 32 x int8, ``x = d*q``
Q6_K   256     210    6.5625 fp16 ``d``, 16 int8 sub-scales of 16, 6-bit ``q - 32``
Q5_K   256     176    5.5    fp16 ``d, dmin``, 8 x 6-bit scale+min of 32, 5-bit ``q``
Q5_1   32      24     6.0    fp16 ``d, m``, 5-bit ``q`` (fallback of Q5_K only)
Q5_0   32      22     5.5    fp16 ``d``, 5-bit ``q - 16``
Q4_K   256     144    4.5    fp16 ``d, dmin``, 8 x 6-bit scale+min of 32, 4-bit ``q``
Q4_0   32      18     4.5    fp16 ``d``, 4-bit ``q - 8``
Q3_K   256     110    3.4375 fp16 ``d``, 16 x 6-bit signed sub-scales of 16, 3-bit ``q - 4``
Q2_K   256     84     2.625  fp16 ``d, dmin``, 16 x 4-bit scale+min of 16, 2-bit ``q``
=====  ======  =====  =====  ==========================================================

The kernels follow llama.cpp's reference quantizers (``quantize_row_*_ref`` in
``ggml/src/ggml-quants.c``), which is what ``llama-quantize`` runs when no importance matrix is
given: the legacy types scale by the block's signed absolute maximum and round with C's
truncation ``(int)(v + 0.5)``/``roundf``; the K-quants fit each sub-block's scale (and min)
by a small search and then quantize the sub-scales against one fp16 super-block scale,
rounding with ggml's ``nearest_int`` (a float32 magic-number trick, i.e. round half to even).
Everything is float32, as in C; sums that decide between candidates accumulate one element after
the other, in the C loop's order (a compiler that contracts ``a*b + c`` into FMA may still differ
in the last bit on rare ties). Vectorised over blocks: the only Python loops run over candidate
scales or over the element position within a 16-element sub-block. The tests check the kernels
against gguf's quantizers (legacy types), gguf's dequantizers (our packed bytes) and a scalar
transcription of the C reference.

A row whose length is not a multiple of the block size cannot hold the type: llama.cpp then
falls back (``tensor_type_fallback`` in ``src/llama-quant.cpp``): Q2_K/Q3_K -> Q4_0,
Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16 when even 32 does not divide the row.
:func:`effective_type` applies that rule; sizes and kernels use the effective type.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from quantmoo.errors import QuantmooError, allowed

QK_K = 256
_F32 = np.float32
_FP16_MAX = float(np.finfo(np.float16).max)
#: ggml's GROUP_MAX_EPS: a group whose absolute maximum is below it is all zero.
_GROUP_MAX_EPS = _F32(1e-15)


@dataclass(frozen=True)
class GGMLType:
    """One ggml weight type.

    Attributes
    ----------
    name : str
        ggml's name in upper case (``llama-quantize`` accepts any case).
    block : int
        Elements per block along a row.
    block_bytes : int
        Bytes per block.
    bits : int
        Nominal bit-width of the integer codes: what the hardware cost model maps to a compute
        precision (16 for F16).
    fallback : str or None
        The type llama.cpp uses when the row length is not a multiple of ``block``.
    """

    name: str
    block: int
    block_bytes: int
    bits: int
    fallback: Optional[str] = None

    @property
    def bpw(self) -> float:
        """Bits per weight as stored, scales included (e.g. 4.5 for Q4_K)."""
        return 8.0 * self.block_bytes / self.block


TYPES = {t.name: t for t in (
    GGMLType("F16", 1, 2, 16),
    GGMLType("Q8_0", 32, 34, 8),
    GGMLType("Q6_K", QK_K, 210, 6, "Q8_0"),
    GGMLType("Q5_K", QK_K, 176, 5, "Q5_1"),
    GGMLType("Q5_1", 32, 24, 5),
    GGMLType("Q5_0", 32, 22, 5),
    GGMLType("Q4_K", QK_K, 144, 4, "Q5_0"),
    GGMLType("Q4_0", 32, 18, 4),
    GGMLType("Q3_K", QK_K, 110, 3, "Q4_0"),
    GGMLType("Q2_K", QK_K, 84, 2, "Q4_0"),
)}
#: The types a search may choose, in increasing bits per weight (an ordinal gene).
SEARCH_TYPES = ("Q2_K", "Q3_K", "Q4_0", "Q4_K", "Q5_0", "Q5_K", "Q6_K", "Q8_0", "F16")


def check_type(name) -> GGMLType:
    """The :class:`GGMLType` called ``name`` (case-insensitive), or a clear error."""
    t = TYPES.get(name.upper()) if isinstance(name, str) else None
    if t is None:
        raise allowed("weight_format", name, TYPES)
    return t


def effective_type(name, n_cols: int) -> GGMLType:
    """The type llama.cpp really stores for rows of ``n_cols`` elements (its fallback rule)."""
    t = check_type(name)
    if n_cols % t.block and t.fallback is not None:
        t = TYPES[t.fallback]
    if n_cols % t.block:
        t = TYPES["F16"]
    return t


def type_bytes(name, n_params, n_cols):
    """Bytes of ``n_params`` weights in rows of ``n_cols``, as llama.cpp stores them (vectorised).

    ``name`` is one type name; ``n_params`` and ``n_cols`` broadcast together.
    """
    n = np.asarray(n_params, dtype=np.int64)
    cols = np.broadcast_to(np.asarray(n_cols, dtype=np.int64), n.shape)
    out = np.empty(n.shape, dtype=np.int64)
    for c in np.unique(cols):       # a handful of distinct row lengths per model
        t = effective_type(name, int(c)) if c > 0 else check_type(name)
        m = cols == c
        out[m] = n[m] // t.block * t.block_bytes + (n[m] % t.block) * t.block_bytes // t.block
    return out


# -- rounding as C does it --------------------------------------------------------------------
def _nearest_int(v):
    """ggml's ``nearest_int``: float32 + 1.5*2^23 then read the mantissa = round half to even."""
    r = np.rint(np.asarray(v, dtype=_F32))
    return np.clip(np.nan_to_num(r), -2 ** 30, 2 ** 30).astype(np.int32)  # C asserts |v| < 2^22


def _roundf(v):
    """C ``roundf`` (half away from zero), exact in float32."""
    a = np.abs(v)
    f = np.floor(a)
    return (np.sign(v) * (f + np.floor(2 * (a - f)))).astype(np.int32)


def _fp16(v):
    """Store as fp16 and read back as float32 (GGML_FP32_TO_FP16 rounds to nearest even)."""
    with np.errstate(over="ignore"):
        return np.asarray(v, dtype=_F32).astype(np.float16).astype(_F32)


def _recip(d):
    """``d ? 1.0f/d : 0.0f``."""
    with np.errstate(divide="ignore"):
        return np.where(d != 0, _F32(1) / np.where(d != 0, d, _F32(1)), _F32(0)).astype(_F32)


def _signed_absmax(x):
    """The element of largest magnitude (first one on ties), over the last axis."""
    i = np.argmax(np.abs(x), axis=-1)
    return np.take_along_axis(x, i[..., None], axis=-1)[..., 0]


def _div(a, b):
    """``a / b`` in float32 where ``b != 0`` (0 elsewhere; those entries are never used)."""
    return (a / np.where(b != 0, b, _F32(1))).astype(_F32)


# -- legacy 32-element types -----------------------------------------------------------------
def _q8_0(x):
    d = np.max(np.abs(x), axis=-1) / _F32(127)
    q = _roundf(x * _recip(d)[:, None])
    return {"d": _fp16(d), "q": q}


def _q_sym(nmax):
    """Q4_0 (nmax 8) / Q5_0 (nmax 16): ``d = max / -nmax``, ``q = min(2*nmax-1, (int)(x/d + nmax + .5))``."""
    def kernel(x):
        d = (_signed_absmax(x) / _F32(-nmax)).astype(_F32)
        v = x * _recip(d)[:, None] + _F32(nmax + 0.5)
        q = np.minimum(2 * nmax - 1, np.trunc(v).astype(np.int32)) - nmax
        return {"d": _fp16(d), "q": q}
    return kernel


def _q5_1(x):
    lo, hi = x.min(axis=-1), x.max(axis=-1)
    d = ((hi - lo) / _F32(31)).astype(_F32)
    q = np.trunc((x - lo[:, None]) * _recip(d)[:, None] + _F32(0.5)).astype(np.int32)
    return {"d": _fp16(d), "m": _fp16(lo), "q": q}


# -- K-quant helpers ------------------------------------------------------------------------
# The sub-block searches work on transposed groups ``xt`` of shape (n, G): element position along
# axis 0, one column per sub-block. Reducing over axis 0 adds the rows one after the other, the
# order of C's loop, and every elementwise step is a contiguous pass over all G groups.
def _rows(a):
    """Sum over axis 0 in float32, row after row (the C loop order)."""
    return np.add.reduce(a, axis=0, dtype=_F32)


def _rint_clip(v, lo, hi):
    """``clip(nearest_int(v), lo, hi)`` kept in float32 (the codes feed float sums)."""
    return np.clip(np.rint(v), lo, hi).astype(_F32, copy=False)


def _absmax_rows(xt):
    """The element of largest magnitude of each column (the first one on ties)."""
    i = np.argmax(np.abs(xt), axis=0)
    return np.take_along_axis(xt, i[None, :], axis=0)[0]


def _make_qkx2(xt, wt, nmax, rmin, rdelta, nstep, use_mad):
    """llama.cpp's ``make_qkx2_quants`` over groups ``xt (n, G)``: scale and -min per group."""
    lo = np.minimum(xt.min(axis=0), _F32(0))
    hi = xt.max(axis=0)
    sum_w = _rows(wt)
    sum_x = _rows(wt * xt)
    flat = hi == lo
    lo0 = lo

    def span(lo):  # C reuses 'min' after every accepted candidate, so the span moves with it
        rng = (hi - lo).astype(_F32)
        return np.where(rng > 0, rng, _F32(1)), xt - lo

    def err(scale, mn, L):
        diff = scale * L + mn - xt
        return _rows(wt * (np.abs(diff) if use_mad else diff * diff))

    rng, xm = span(lo)
    iscale = (_F32(nmax) / rng).astype(_F32)
    scale = (_F32(1) / iscale).astype(_F32)
    best = err(scale, lo, _rint_clip(iscale * xm, 0, nmax))
    for i in range(nstep + 1):
        rng, xm = span(lo)
        iscale = ((_F32(rmin) + _F32(rdelta) * _F32(i) + _F32(nmax)) / rng).astype(_F32)
        La = _rint_clip(iscale * xm, 0, nmax)
        wl = wt * La
        sum_l, sum_l2, sum_xl = _rows(wl), _rows(wl * La), _rows(wl * xt)
        D = sum_w * sum_l2 - sum_l * sum_l
        this_scale = _div(sum_w * sum_xl - sum_x * sum_l, D)
        this_min = _div(sum_l2 * sum_x - sum_l * sum_xl, D)
        pos = this_min > 0
        this_min = np.where(pos, _F32(0), this_min)
        this_scale = np.where(pos, _div(sum_xl, sum_l2), this_scale)
        cur = err(this_scale, this_min, La)
        take = (D > 0) & (cur < best)
        best = np.where(take, cur, best)
        scale = np.where(take, this_scale, scale)
        lo = np.where(take, this_min, lo)
    scale = np.where(flat, _F32(0), scale)
    lo = np.where(flat, lo0, lo)
    return scale.astype(_F32), (-lo).astype(_F32)


def _make_q3(xt, nmax):
    """llama.cpp's ``make_q3_quants`` with ``do_rmse``: coordinate descent on the codes."""
    mx = _absmax_rows(xt)
    zero = np.abs(mx) < _GROUP_MAX_EPS
    iscale = _div(_F32(-nmax), np.where(zero, _F32(1), mx))
    L = _rint_clip(iscale * xt, -nmax, nmax - 1)
    wt = xt * xt
    sumlx = _rows(wt * xt * L)
    suml2 = _rows(wt * L * L)
    for _ in range(5):
        for i in range(xt.shape[0]):   # sequential in C: each step sees the sums of the previous
            xi, wi, Li = xt[i], wt[i], L[i]
            slx = sumlx - wi * xi * Li
            sl2 = suml2 - wi * Li * Li
            new = _rint_clip(_div(xi * sl2, slx), -nmax, nmax - 1)
            slx2 = slx + wi * xi * new
            sl22 = sl2 + wi * new * new
            take = (slx > 0) & (new != Li) & (sl22 > 0) & (slx2 * slx2 * suml2 > sumlx * sumlx * sl22)
            L[i] = np.where(take, new, Li)
            sumlx = np.where(take, slx2, sumlx)
            suml2 = np.where(take, sl22, suml2)
    return np.where(zero | (suml2 <= 0), _F32(0), _div(sumlx, suml2))


def _make_qx_rmse1(xt, nmax):
    """llama.cpp's ``make_qx_quants`` with ``rmse_type = 1`` and no importance weights."""
    mx = _absmax_rows(xt)
    zero = np.abs(mx) < _GROUP_MAX_EPS
    mx = np.where(zero, _F32(1), mx)
    w3, w2 = xt * xt * xt, xt * xt          # C's w*x[i]*l = ((x*x)*x)*l

    def sums(iscale):
        L = _rint_clip(iscale * xt, -nmax, nmax - 1)
        return _rows(w3 * L), _rows(w2 * L * L)

    sumlx, suml2 = sums(_div(_F32(-nmax), mx))
    scale = np.where(suml2 != 0, _div(sumlx, suml2), _F32(0))
    best = scale * sumlx
    for i in range(-9, 10):
        if i == 0:
            continue
        slx, sl2 = sums(_div(-(_F32(nmax) + _F32(0.1) * _F32(i)), mx))
        take = (sl2 > 0) & (slx * slx > best * sl2)
        new = _div(slx, sl2)
        scale = np.where(take, new, scale)
        best = np.where(take, new * slx, best)
    return np.where(zero, _F32(0), scale).astype(_F32)


def _groups(x, n):
    """Blocks ``x (nb, 256)`` as transposed sub-block groups ``(n, nb * 256 / n)``."""
    return np.ascontiguousarray(x.reshape(-1, n).T)


def _first_max(v):
    """Largest value over the last axis, starting from 0 with strict '>' (C's running max)."""
    return np.maximum(v.max(axis=-1), _F32(0))


def _requant(x, d, m, lo, hi):
    """Codes ``clip(nearest_int((x + m) / d), lo, hi)`` per sub-block; 0 where ``d == 0``."""
    q = np.clip(_nearest_int(_div(x + m[..., None], d[..., None])), lo, hi)
    return np.where(d[..., None] != 0, q, 0)


# -- K-quants (blocks of 256) ------------------------------------------------------------------
def _q2_k(x):
    nb = x.shape[0]
    xt = _groups(x, 16)
    scales, mins = _make_qkx2(xt, np.abs(xt), 3, -0.5, 0.1, 15, True)
    scales, mins = scales.reshape(nb, 16), mins.reshape(nb, 16)
    max_scale, max_min = _first_max(scales), _first_max(mins)
    sc = _nearest_int(_div(_F32(15), max_scale)[:, None] * scales) & 0xFF
    sc = np.where(max_scale[:, None] > 0, sc, 0)
    mq = _nearest_int(_div(_F32(15), max_min)[:, None] * mins)
    sc = np.where(max_min[:, None] > 0, sc | ((mq << 4) & 0xFF), sc)
    d = _fp16(np.where(max_scale > 0, max_scale / _F32(15), _F32(0)))
    dmin = _fp16(np.where(max_min > 0, max_min / _F32(15), _F32(0)))
    ls, lm = sc & 0xF, sc >> 4
    dl = d[:, None] * ls.astype(_F32)
    ml = dmin[:, None] * lm.astype(_F32)
    q = _requant(x.reshape(nb, 16, 16), dl, ml, 0, 3)
    return {"d": d, "dmin": dmin, "ls": ls, "lm": lm, "q": q.reshape(nb, QK_K)}


def _q_k_min(nmax, rmin, nstep):
    """Q4_K (nmax 15) / Q5_K (nmax 31): 8 sub-blocks of 32 with 6-bit scales and mins."""
    def kernel(x):
        nb = x.shape[0]
        xt = _groups(x, 32)
        av = np.sqrt(_rows(xt * xt) / _F32(32)).astype(_F32)
        scales, mins = _make_qkx2(xt, av + np.abs(xt), nmax, rmin, 0.1, nstep, False)
        scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
        max_scale, max_min = _first_max(scales), _first_max(mins)
        inv_s = np.where(max_scale > 0, _div(_F32(63), max_scale), _F32(0))
        inv_m = np.where(max_min > 0, _div(_F32(63), max_min), _F32(0))
        ls = np.minimum(63, _nearest_int(inv_s[:, None] * scales) & 0xFF)
        lm = np.minimum(63, _nearest_int(inv_m[:, None] * mins) & 0xFF)
        d = _fp16(max_scale / _F32(63))
        dmin = _fp16(max_min / _F32(63))
        dl = d[:, None] * ls.astype(_F32)
        ml = dmin[:, None] * lm.astype(_F32)
        q = _requant(x.reshape(nb, 8, 32), dl, ml, 0, nmax)
        return {"d": d, "dmin": dmin, "ls": ls, "lm": lm, "q": q.reshape(nb, QK_K)}
    return kernel


def _q3_k(x):
    nb = x.shape[0]
    scales = _make_q3(_groups(x, 16), 4).reshape(nb, 16)
    max_scale = _signed_absmax(scales)
    iscale = _div(_F32(-32), max_scale)
    ls = np.clip(_nearest_int(iscale[:, None] * scales), -32, 31)
    ls = np.where(max_scale[:, None] != 0, ls, -32)    # all-zero block: stored 0 = sub-scale -32, d = 0
    d = _fp16(np.where(max_scale != 0, _div(_F32(1), iscale), _F32(0)))
    dl = d[:, None] * ls.astype(_F32)
    q = _requant(x.reshape(nb, 16, 16), dl, np.zeros_like(dl), -4, 3)
    return {"d": d, "ls": ls, "q": q.reshape(nb, QK_K)}


def _q6_k(x):
    nb = x.shape[0]
    scales = _make_qx_rmse1(_groups(x, 16), 32).reshape(nb, 16)
    max_scale = _signed_absmax(scales)
    zero = np.abs(max_scale) < _GROUP_MAX_EPS
    iscale = _div(_F32(-128), np.where(zero, _F32(1), max_scale))
    ls = np.minimum(127, _nearest_int(iscale[:, None] * scales))
    ls = np.where(zero[:, None], 0, ls)
    d = _fp16(np.where(zero, _F32(0), _div(_F32(1), iscale)))
    dl = d[:, None] * ls.astype(_F32)
    q = _requant(x.reshape(nb, 16, 16), dl, np.zeros_like(dl), -32, 31)
    return {"d": d, "ls": ls, "q": q.reshape(nb, QK_K)}


_KERNELS = {"Q8_0": _q8_0, "Q4_0": _q_sym(8), "Q5_0": _q_sym(16), "Q5_1": _q5_1,
            "Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": _q_k_min(15, -1.0, 20), "Q5_K": _q_k_min(31, -0.5, 15),
            "Q6_K": _q6_k}


def quantize_blocks(x, name) -> dict:
    """Quantize rows of blocks ``x`` of shape ``(n_blocks, block)`` to type ``name``.

    Returns the stored parts as arrays with a leading ``n_blocks`` axis: ``q`` (integer codes,
    offset removed, i.e. signed for the symmetric types), ``d`` (fp16 scale as float32) and,
    by type, ``dmin``/``m`` (fp16 min) and ``ls``/``lm`` (integer sub-scales and sub-mins).
    """
    t = check_type(name)
    if t.name == "F16":
        raise QuantmooError("F16 has no blocks to quantize; use fake_quantize")
    x = np.asarray(x, dtype=_F32)
    if x.ndim != 2 or x.shape[1] != t.block:
        raise QuantmooError(f"The 'x' of quantize_blocks must have shape (n_blocks, {t.block}) for "
                            f"{t.name}; got {x.shape}")
    return _KERNELS[t.name](x)


def dequantize_blocks(parts: dict, name) -> np.ndarray:
    """Values the stored ``parts`` of :func:`quantize_blocks` decode to, as llama.cpp computes them."""
    t = check_type(name)
    q = parts["q"].astype(_F32)
    d = parts["d"]
    if t.name in ("Q8_0", "Q4_0", "Q5_0"):
        return q * d[:, None]
    if t.name == "Q5_1":
        return q * d[:, None] + parts["m"][:, None]
    nb = q.shape[0]
    sub = parts["ls"].shape[1]
    dl = d[:, None] * parts["ls"].astype(_F32)                        # per sub-block, as C
    y = dl[:, :, None] * q.reshape(nb, sub, -1)
    if "lm" in parts:
        y = y - (parts["dmin"][:, None] * parts["lm"].astype(_F32))[:, :, None]
    return y.reshape(nb, -1)


@lru_cache(maxsize=None)
def gaussian_nsr(name) -> float:
    """Noise-to-signal ratio ``E[(Q(w) - w)^2] / E[w^2]`` of type ``name`` on standard-normal weights.

    Measured with the real kernel on a fixed 64 x 1024 sample (seed 0): the prior accuracy model's
    weight noise for llama.cpp types (F16: 2^-22, as quantmoo's fp16 prior).
    """
    t = check_type(name)
    if t.name == "F16":
        return 2.0 ** -22
    w = np.random.default_rng(0).standard_normal((64, 1024)).astype(_F32)
    e = fake_quantize(w, t.name).astype(np.float64) - w
    return float(np.mean(e * e) / np.mean(w.astype(np.float64) ** 2))


def fake_quantize(w, name, axis: int = 0) -> np.ndarray:
    """Round ``w`` onto the grid of ggml type ``name`` and return the values llama.cpp decodes.

    Parameters
    ----------
    w : array_like
        Finite weights; viewed as ``(out, in)`` rows (``axis`` = the output axis), each row a
        GGUF row of ``in`` elements. 1-D is one row.
    name : str
        A type of :data:`TYPES` (case-insensitive). If the row length is not a multiple of
        its block size, llama.cpp's fallback type is used (:func:`effective_type`).
    axis : int

    Returns
    -------
    ndarray of float32, the shape of ``w``.
    """
    from .bits import as_finite_float32, as_matrix, from_matrix
    a = as_finite_float32(w, "w")
    if a.size == 0:
        return a.copy()
    m = as_matrix(a, axis)
    t = effective_type(name, m.shape[1])
    if t.name == "F16":   # saturate so the result stays finite, as quantmoo's fp16 does
        out = _fp16(np.clip(m, -_FP16_MAX, _FP16_MAX))
    else:
        blocks = np.ascontiguousarray(m).reshape(-1, t.block)
        out = dequantize_blocks(_KERNELS[t.name](blocks), t.name).reshape(m.shape)
    return from_matrix(out, a.shape, axis)
