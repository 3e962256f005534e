"""llama.cpp types: the fake-quant kernels against gguf's own (de)quantizers, and exact sizes.

Where ``gguf`` quantizes a type (Q8_0, Q4_0, Q5_0, Q5_1), our fake quantization must equal its
quantize -> dequantize. Where it only dequantizes (the K-quants), our stored parts are packed
into ggml's byte layout (the packers below follow ``ggml-common.h``) and gguf must decode the
bytes to exactly our values.
"""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from quantmoo.errors import QuantmooError
from quantmoo.quant import ggml

QT = gguf.GGMLQuantizationType


def _weights(shape, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32) * 0.02
    w[..., 3] = 0.3                       # an outlier per row, like real LLM weights
    w[0, :256] = 0.0                      # an all-zero super-block
    w[1, 256:512] = np.linspace(-1, 1, 256, dtype=np.float32)
    w[2, :32] = 0.125                     # a constant block
    return w


def _f16(a):
    return np.asarray(a, np.float32).astype(np.float16).view(np.uint8).reshape(len(a), 2)


def _pairs(L, step):
    """ggml's 2-bit interleave: byte l of a 128-run holds L[l], L[l+32], L[l+64], L[l+96]."""
    nb = L.shape[0]
    L = L.reshape(nb, -1, 4, 32).astype(np.uint8)
    return (L[:, :, 0] | L[:, :, 1] << 2 | L[:, :, 2] << 4 | L[:, :, 3] << 6).reshape(nb, -1)


def _scale_min_k4(ls, lm):
    ls, lm = ls.astype(np.uint8), lm.astype(np.uint8)
    s = np.zeros((ls.shape[0], 12), np.uint8)
    s[:, 0:4] = ls[:, :4] | (ls[:, 4:] >> 4) << 6
    s[:, 4:8] = lm[:, :4] | (lm[:, 4:] >> 4) << 6
    s[:, 8:12] = (ls[:, 4:] & 0xF) | (lm[:, 4:] & 0xF) << 4
    return s


def _pack(parts, name):
    q, d = parts["q"], parts["d"]
    nb = q.shape[0]
    if name == "Q8_0":
        return np.hstack([_f16(d), q.astype(np.int8).view(np.uint8)])
    if name in ("Q4_0", "Q5_0", "Q5_1"):
        off = {"Q4_0": 8, "Q5_0": 16, "Q5_1": 0}[name]
        L = (q + off).astype(np.uint32)
        qs = (L[:, :16] & 0xF | (L[:, 16:] & 0xF) << 4).astype(np.uint8)
        head = [_f16(d)] + ([_f16(parts["m"])] if name == "Q5_1" else [])
        if name == "Q4_0":
            return np.hstack(head + [qs])
        qh = ((L >> 4) << np.arange(32, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
        return np.hstack(head + [qh.astype("<u4").view(np.uint8).reshape(nb, 4), qs])
    if name == "Q2_K":
        sc = (parts["ls"] | parts["lm"] << 4).astype(np.uint8)
        return np.hstack([sc, _pairs(q, 2), _f16(d), _f16(parts["dmin"])])
    if name == "Q3_K":
        L = q + 4
        hm = (L > 3).reshape(nb, 8, 32).astype(np.uint8) << np.arange(8, dtype=np.uint8)[:, None]
        hmask = hm.sum(axis=1).astype(np.uint8)
        l6 = (parts["ls"] + 32).astype(np.uint8)
        s = np.zeros((nb, 12), np.uint8)
        s[:, :8] = (l6[:, :8] & 0xF) | (l6[:, 8:] & 0xF) << 4
        for j in range(16):
            s[:, 8 + j % 4] |= (l6[:, j] >> 4) << (2 * (j // 4))
        return np.hstack([hmask, _pairs(np.where(L > 3, L - 4, L), 2), s, _f16(d)])
    if name in ("Q4_K", "Q5_K"):
        L = q.reshape(nb, 4, 2, 32).astype(np.uint8)
        lo = L & 0xF
        qs = (lo[:, :, 0] | lo[:, :, 1] << 4).reshape(nb, 128)
        head = [_f16(d), _f16(parts["dmin"]), _scale_min_k4(parts["ls"], parts["lm"])]
        if name == "Q4_K":
            return np.hstack(head + [qs])
        hi = (L >> 4).astype(np.uint8)                  # bit 2k: first half of run k, 2k+1: second
        qh = sum(hi[:, k, h] << (2 * k + h) for k in range(4) for h in range(2)).astype(np.uint8)
        return np.hstack(head + [qh, qs])
    if name == "Q6_K":
        L = (q + 32).reshape(nb, 2, 4, 32).astype(np.uint8)
        lo, hi = L & 0xF, L >> 4
        ql = np.concatenate([lo[:, :, 0] | lo[:, :, 2] << 4, lo[:, :, 1] | lo[:, :, 3] << 4], axis=2)
        qh = hi[:, :, 0] | hi[:, :, 1] << 2 | hi[:, :, 2] << 4 | hi[:, :, 3] << 6
        return np.hstack([ql.reshape(nb, 128), qh.reshape(nb, 64), parts["ls"].astype(np.int8).view(np.uint8),
                          _f16(d)])
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q5_0", "Q5_1"])
def test_legacy_types_equal_gguf_quantize_dequantize(name):
    w = _weights((6, 512))
    ours = ggml.fake_quantize(w, name)
    ref = gguf.quants.dequantize(gguf.quants.quantize(w, QT[name]), QT[name])
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_packed_bytes_decode_to_our_values_with_gguf(name):
    w = _weights((6, 512), seed=1)
    t = ggml.TYPES[name]
    parts = ggml.quantize_blocks(w.reshape(-1, t.block), name)
    raw = _pack(parts, name)
    assert raw.shape == (w.size // t.block, t.block_bytes)
    decoded = gguf.quants.dequantize(raw.reshape(w.shape[0], -1), QT[name])
    np.testing.assert_array_equal(decoded, ggml.fake_quantize(w, name))


@pytest.mark.parametrize("name,levels", [("Q2_K", (0, 3)), ("Q3_K", (-4, 3)), ("Q4_K", (0, 15)),
                                         ("Q5_K", (0, 31)), ("Q6_K", (-32, 31))])
def test_k_quant_grids_and_error(name, levels):
    w = _weights((8, 512), seed=2)
    t = ggml.TYPES[name]
    parts = ggml.quantize_blocks(w.reshape(-1, t.block), name)
    assert parts["q"].min() >= levels[0] and parts["q"].max() <= levels[1]
    assert parts["ls"].min() >= {"Q3_K": -32, "Q6_K": -128}.get(name, 0)
    assert parts["ls"].max() <= {"Q2_K": 15, "Q3_K": 31, "Q6_K": 127}.get(name, 63)
    y = ggml.fake_quantize(w, name)
    assert np.all(y[0, :256] == 0)                               # all-zero block stays zero
    # error shrinks with every extra bit, and is far below the weights' own scale
    rel = np.sqrt(np.mean((y - w) ** 2)) / np.sqrt(np.mean(w ** 2))
    assert rel < {"Q2_K": 0.45, "Q3_K": 0.25, "Q4_K": 0.12, "Q5_K": 0.06, "Q6_K": 0.03}[name]


def test_more_bits_less_error():
    w = _weights((8, 512), seed=3)
    err = [float(np.mean((ggml.fake_quantize(w, n) - w) ** 2)) for n in ggml.SEARCH_TYPES]
    by = dict(zip(ggml.SEARCH_TYPES, err))
    assert by["Q2_K"] > by["Q3_K"] > by["Q4_K"] > by["Q5_K"] > by["Q6_K"] > by["Q8_0"] > by["F16"]
    assert by["Q4_0"] > by["Q4_K"] and by["Q5_0"] > by["Q5_K"]


def test_nearest_int_rounds_half_to_even():
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)
    assert ggml._nearest_int(ties).tolist() == [0, 2, 2, 0, -2]
    assert ggml._roundf(ties).tolist() == [1, 2, 3, -1, -2]         # Q8_0 uses C roundf


def test_bits_per_weight_as_llama_cpp_stores_them():
    bpw = {n: t.bpw for n, t in ggml.TYPES.items()}
    assert bpw == {"F16": 16, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_K": 5.5, "Q5_1": 6.0, "Q5_0": 5.5,
                   "Q4_K": 4.5, "Q4_0": 4.5, "Q3_K": 3.4375, "Q2_K": 2.625}
    for n, t in ggml.TYPES.items():                      # the same block sizes as gguf's table
        assert gguf.GGML_QUANT_SIZES[QT[n]] == (t.block, t.block_bytes)


def test_fallback_for_rows_not_a_multiple_of_256():
    # SmolLM2's hidden size 576 = 2.25 * 256: llama.cpp stores Q4_K rows as Q5_0, etc.
    assert ggml.effective_type("Q4_K", 576).name == "Q5_0"
    assert ggml.effective_type("Q6_K", 576).name == "Q8_0"
    assert ggml.effective_type("Q2_K", 576).name == "Q4_0"
    assert ggml.effective_type("Q4_K", 1536).name == "Q4_K"
    assert ggml.effective_type("Q4_0", 40).name == "F16"
    w = _weights((4, 576), seed=4)
    np.testing.assert_array_equal(ggml.fake_quantize(w, "Q4_K"), ggml.fake_quantize(w, "Q5_0"))
    # 4 rows x 576: Q5_0 = 18 blocks of 22 bytes per row
    assert int(ggml.type_bytes("Q4_K", 4 * 576, 576)) == 4 * 18 * 22


def test_bad_type_is_one_clear_error():
    with pytest.raises(QuantmooError, match="'weight_format'.*Q4_K.*got 'Q4_9'"):
        ggml.fake_quantize(np.ones((2, 32)), "Q4_9")


# -- a plain per-block transcription of ggml-quants.c's reference quantizers (scalar float32), to check
# -- the vectorised kernels decision by decision ---------------------------------------------------------
F = np.float32


def _ni(v):
    return int(np.rint(F(v)))


def _ref_qkx2(x, w, nmax, rmin, rdelta, nstep, use_mad):
    n = len(x)
    mn, mx, sw, sx = x[0], x[0], w[0], w[0] * x[0]
    for i in range(1, n):
        mn, mx = min(mn, x[i]), max(mx, x[i])
        sw, sx = sw + w[i], sx + w[i] * x[i]
    mn = min(mn, F(0))
    if mx == mn:
        return F(0), -mn
    iscale = F(nmax) / (mx - mn)
    scale = F(1) / iscale
    best = F(0)
    for i in range(n):
        l = min(max(_ni(iscale * (x[i] - mn)), 0), nmax)
        d = scale * F(l) + mn - x[i]
        best += w[i] * (abs(d) if use_mad else d * d)
    for s in range(nstep + 1):
        iscale = (F(rmin) + F(rdelta) * F(s) + F(nmax)) / (mx - mn)
        La = [min(max(_ni(iscale * (x[i] - mn)), 0), nmax) for i in range(n)]
        sl = sl2 = sxl = F(0)
        for i in range(n):
            sl += w[i] * F(La[i]); sl2 += w[i] * F(La[i]) * F(La[i]); sxl += w[i] * F(La[i]) * x[i]
        D = sw * sl2 - sl * sl
        if D > 0:
            ts, tm = (sw * sxl - sx * sl) / D, (sl2 * sx - sl * sxl) / D
            if tm > 0:
                tm, ts = F(0), sxl / sl2
            cur = F(0)
            for i in range(n):
                d = ts * F(La[i]) + tm - x[i]
                cur += w[i] * (abs(d) if use_mad else d * d)
            if cur < best:
                best, scale, mn = cur, ts, tm
    return scale, -mn


def _ref_k_min(xb, name):
    """Q2_K / Q4_K / Q5_K of one 256-block: values as dequantized."""
    nmax, sub, rmin, nstep, mad, qmax = {"Q2_K": (3, 16, -0.5, 15, True, 15), "Q4_K": (15, 32, -1.0, 20, False, 63),
                                         "Q5_K": (31, 32, -0.5, 15, False, 63)}[name]
    scales, mins = [], []
    for j in range(0, 256, sub):
        x = xb[j:j + sub]
        if name == "Q2_K":
            w = np.abs(x)
        else:
            s2 = F(0)
            for v in x:
                s2 += v * v
            w = np.sqrt(s2 / F(32)) + np.abs(x)
        s, m = _ref_qkx2(x, w, nmax, rmin, 0.1, nstep, mad)
        scales.append(s); mins.append(m)
    ms, mm = max([F(0)] + scales), max([F(0)] + mins)
    if name == "Q2_K":
        ls = [_ni(F(15) / ms * s) if ms > 0 else 0 for s in scales]
        lm = [_ni(F(15) / mm * m) if mm > 0 else 0 for m in mins]
        d, dm = F(np.float16(ms / F(15) if ms > 0 else 0)), F(np.float16(mm / F(15) if mm > 0 else 0))
    else:
        ls = [min(63, _ni((F(63) / ms if ms > 0 else F(0)) * s)) for s in scales]
        lm = [min(63, _ni((F(63) / mm if mm > 0 else F(0)) * m)) for m in mins]
        d, dm = F(np.float16(ms / F(63))), F(np.float16(mm / F(63)))
    out = np.empty(256, F)
    for k, j in enumerate(range(0, 256, sub)):
        dl, ml = d * F(ls[k]), dm * F(lm[k])
        for i in range(sub):
            q = 0 if dl == 0 else min(max(_ni((xb[j + i] + ml) / dl), 0), nmax)
            out[j + i] = dl * F(q) - ml
    return out


def _ref_q3(x):
    mx = x[np.argmax(np.abs(x))]
    if abs(mx) < F(1e-15):
        return F(0)
    iscale = F(-4) / mx
    L = [min(max(_ni(iscale * v), -4), 3) for v in x]
    slx = sl2 = F(0)
    for v, l in zip(x, L):
        w = v * v
        slx += w * v * F(l); sl2 += w * F(l) * F(l)
    for _ in range(5):
        changed = 0
        for i, v in enumerate(x):
            w = v * v
            a = slx - w * v * F(L[i])
            if a > 0:
                b = sl2 - w * F(L[i]) * F(L[i])
                new = min(max(_ni(v * b / a), -4), 3)
                if new != L[i]:
                    a += w * v * F(new); b += w * F(new) * F(new)
                    if b > 0 and a * a * sl2 > slx * slx * b:
                        L[i], slx, sl2 = new, a, b
                        changed += 1
        if not changed:
            break
    return slx / sl2 if sl2 > 0 else F(0)


def _ref_qx(x, nmax=32):
    mx = x[np.argmax(np.abs(x))]
    if abs(mx) < F(1e-15):
        return F(0)

    def sums(iscale):
        a = b = F(0)
        for v in x:
            l = F(min(max(_ni(iscale * v), -nmax), nmax - 1))
            a += v * v * v * l; b += v * v * l * l
        return a, b
    a, b = sums(F(-nmax) / mx)
    scale = a / b if b else F(0)
    best = scale * a
    for s in range(-9, 10):
        if s:
            a, b = sums(-(F(nmax) + F(0.1) * F(s)) / mx)
            if b > 0 and a * a > best * b:
                scale = a / b
                best = scale * a
    return scale


def _ref_signed(xb, name):
    """Q3_K / Q6_K of one 256-block."""
    scales = [(_ref_q3 if name == "Q3_K" else _ref_qx)(xb[j:j + 16]) for j in range(0, 256, 16)]
    ms = scales[int(np.argmax(np.abs(scales)))]
    lo, hi, smax = (-4, 3, 32) if name == "Q3_K" else (-32, 31, 128)
    if abs(ms) < F(1e-15):
        return np.zeros(256, F)
    iscale = F(-smax) / ms
    ls = [min(max(_ni(iscale * s), -32), 31) if name == "Q3_K" else min(127, _ni(iscale * s)) for s in scales]
    d = F(np.float16(F(1) / iscale))
    out = np.empty(256, F)
    for k in range(16):
        dl = d * F(ls[k])
        for i in range(16):
            q = 0 if dl == 0 else min(max(_ni(xb[16 * k + i] / dl), lo), hi)
            out[16 * k + i] = dl * F(q)
    return out


@pytest.mark.parametrize("name", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_k_quants_equal_a_scalar_transcription_of_the_reference(name):
    w = _weights((3, 512), seed=5)
    w[2, :256] = np.random.default_rng(6).standard_t(3, 256).astype(np.float32) * 0.01   # heavy tails
    ref = _ref_signed if name in ("Q3_K", "Q6_K") else _ref_k_min
    expect = np.concatenate([ref(b, name) for b in w.reshape(-1, 256)]).reshape(w.shape)
    np.testing.assert_array_equal(ggml.fake_quantize(w, name), expect)
