"""Tests of the fake-quantization kernels: hand-checked numbers and hypothesis properties."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import entropy as scipy_kl

from quantmoo.errors import QuantmooError
from quantmoo.quant import (CALIBRATIONS, GRANULARITIES, SCHEMES, WEIGHT_BITS, calibrate,
                            normalize_scheme, packed_bytes, quant_error, quantize_dequantize)

INT_BITS = (2, 3, 4, 5, 6, 8)
finite = st.floats(-1e3, 1e3, width=32, allow_subnormal=False)
matrices = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                      elements=finite)
PROPS = settings(max_examples=60, deadline=None)


def random_matrix(seed, rows, cols, kind):
    rng = np.random.default_rng(seed)
    draw = {"normal": rng.standard_normal, "uniform": lambda s: rng.uniform(-1, 1, s),
            "laplace": lambda s: rng.laplace(size=s)}[kind]
    return draw((rows, cols)).astype(np.float32)


def scale_groups(y, granularity, group_size):
    """Yield the values of each scale group of a 2-D array (test-side reference layout)."""
    if granularity == "per_tensor":
        yield y.ravel()
        return
    step = y.shape[1] if granularity == "per_channel" else group_size
    for row in y:
        for s in range(0, y.shape[1], step):
            yield row[s:s + step]


# --- hand-checkable numbers ---------------------------------------------------------------

def test_packed_bytes_hand_numbers():
    n = 4096 * 4096
    assert packed_bytes(n, 4, "symmetric", "per_group", 128, out_channels=4096) == 8388608 + 4096 * 32 * 2
    assert packed_bytes(n, 4, "symmetric", "per_group", 128, out_channels=4096) == 8650752
    assert packed_bytes(n, 4, "asymmetric", "per_group", 128, out_channels=4096) == 8650752 + 4096 * 32
    assert packed_bytes(n, 4, "affine", "per_group", 128, out_channels=4096) == 8650752 + 4096 * 32
    assert packed_bytes(n, 16, "asymmetric", "per_group", out_channels=4096) == 2 * n
    assert packed_bytes(n, 8, "symmetric", "per_channel", out_channels=4096) == n + 4096 * 2
    assert packed_bytes(n, 8, "power_of_two", "per_channel", out_channels=4096) == n + 4096 * 1
    assert packed_bytes(n, 8, "symmetric", "per_tensor") == n + 2
    # remainder group: 300 inputs in groups of 128 -> 3 groups per row
    assert packed_bytes(10 * 300, 4, "symmetric", "per_group", 128, 10, 300) == 1500 + 10 * 3 * 2
    assert packed_bytes(10 * 300, 4, "symmetric", "per_group", 128, 10) == 1500 + 10 * 3 * 2
    assert packed_bytes(7, 3, "symmetric", "per_tensor") == 3 + 2  # ceil(21 bits / 8) = 3
    assert packed_bytes(0, 4, "asymmetric", "per_group", out_channels=4) == 0
    assert isinstance(packed_bytes(100, 4), int)


def test_packed_bytes_vectorised_equals_scalar_calls():
    rng = np.random.default_rng(1)
    out = rng.integers(1, 64, 50)
    inf = rng.integers(0, 700, 50)
    bits = rng.choice(WEIGHT_BITS, 50)
    scheme = rng.choice(SCHEMES + ("affine",), 50)
    gran = rng.choice(GRANULARITIES, 50)
    gs = rng.choice([16, 32, 64, 128], 50)
    vec = packed_bytes(out * inf, bits, scheme, gran, gs, out, inf)
    assert vec.dtype == np.int64 and vec.shape == (50,)
    for i in range(50):
        assert vec[i] == packed_bytes(int(out[i] * inf[i]), int(bits[i]), str(scheme[i]), str(gran[i]),
                                      int(gs[i]), int(out[i]), int(inf[i]))
    # broadcasting one array against scalars
    np.testing.assert_array_equal(packed_bytes(np.array([0, 8, 16]), np.array([2, 4, 16])), [0, 4 + 2, 32])


def test_packed_bytes_rejects_bad_arguments():
    with pytest.raises(QuantmooError, match=r"'bits' value must be one of \{2, 3, 4, 5, 6, 8, 16\}; got 7"):
        packed_bytes(10, 7)
    with pytest.raises(QuantmooError, match="scheme"):
        packed_bytes(10, np.array([4, 4]), np.array(["symmetric", "nope"]))
    with pytest.raises(QuantmooError, match="n_params must equal"):
        packed_bytes(100, 4, granularity="per_group", out_channels=3)
    with pytest.raises(QuantmooError, match="n_params"):
        packed_bytes(-1, 4)


def test_symmetric_two_bit_by_hand():
    # amax = 2, narrow 2-bit grid q in {-1, 0, 1}, scale = 2 / 1 = 2; x/scale = .25, -1, .45, .55
    np.testing.assert_array_equal(quantize_dequantize([0.5, -2.0, 0.9, 1.1], 2), [0.0, -2.0, 0.0, 2.0])


def test_asymmetric_two_bit_by_hand():
    # lo=-1, hi=2: scale = 3/3 = 1, zero point 1; q = rint(x) + 1 = 0, 1, 2, 3
    y = quantize_dequantize([-1.0, 0.2, 0.9, 2.0], 2, "asymmetric")
    np.testing.assert_array_equal(y, [-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(quantize_dequantize([-1.0, 0.2, 0.9, 2.0], 2, "affine"), y)
    # an all-positive range is widened to include 0, which stays exact
    assert quantize_dequantize([0.0, 1.3, 3.0], 2, "asymmetric")[0] == 0.0


def test_every_grid_rounds_half_to_even():
    # asymmetric, lo=-1, hi=2: scale 1, zero point 1; x = -0.5, 0.5, 1.5 are exact ties:
    # rint gives -0, 0, 2 (half to even; half up would give 0, 1, 2), then + zero point
    np.testing.assert_array_equal(quantize_dequantize([-1.0, -0.5, 0.5, 1.5, 2.0], 2, "asymmetric"),
                                  [-1.0, 0.0, 0.0, 2.0, 2.0])
    # symmetric 4-bit, amax 7: scale 1; ties 0.5, 1.5, 2.5, -2.5 go to 0, 2, 2, -2
    np.testing.assert_array_equal(quantize_dequantize([7.0, 0.5, 1.5, 2.5, -2.5], 4),
                                  [7.0, 0.0, 2.0, 2.0, -2.0])
    # asymmetric zero point: lo=-2.5, hi=0.5 (2-bit): scale 1, -lo/scale = 2.5 -> zero point 2;
    # both range ends are ties and round inwards: rint(-2.5) + 2 = 0 -> -2, rint(0.5) + 2 = 2 -> 0
    np.testing.assert_array_equal(quantize_dequantize([-2.5, -1.0, 0.5], 2, "asymmetric"),
                                  [-2.0, -1.0, 0.0])


def test_symmetric_grid_never_uses_the_most_negative_code():
    # int8 symmetric is [-127, 127] (ONNX int8 is [-128, 127]): -amax maps to -127, not -128
    y = quantize_dequantize([-1.0, 0.5, 1.0], 8)
    scale = 1.0 / 127
    np.testing.assert_allclose(np.rint(y / scale), [-127, 64, 127])  # 63.5 is a tie -> 64


def test_power_of_two_scale_by_hand():
    # amax/qmax = 0.3/7 = 0.0429 -> scale 2**ceil(log2) = 2**-4; q = rint(4.8, -1.6) = 5, -2
    np.testing.assert_array_equal(quantize_dequantize([0.3, -0.1], 4, "power_of_two"), [0.3125, -0.125])
    x = random_matrix(3, 8, 40, "normal") * 3.7
    for gran in GRANULARITIES:
        y = quantize_dequantize(x, 4, "power_of_two", gran, 16)
        for gx, gy in zip(scale_groups(x, gran, 16), scale_groups(y, gran, 16)):
            scale = 2.0 ** np.ceil(np.log2(np.abs(gx).max() / 7))
            assert np.all(np.mod(gy / scale, 1) == 0) and np.abs(gy / scale).max() <= 7


def test_bits16_is_float16_round_trip():
    x = random_matrix(4, 5, 33, "laplace") * 100
    np.testing.assert_array_equal(quantize_dequantize(x, 16, "asymmetric", "per_group"),
                                  x.astype(np.float16).astype(np.float32))
    assert np.isfinite(quantize_dequantize([1e6, -1e6], 16)).all()  # saturates at fp16 max


def test_outputs_are_float32_and_keep_shape():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    for gran in GRANULARITIES:
        y = quantize_dequantize(x, 4, granularity=gran, group_size=7)
        assert y.dtype == np.float32 and y.shape == x.shape
    lo, hi = calibrate(x, 4, granularity="per_group", group_size=7)
    assert lo.shape == (2, 9, 1) and calibrate(x, 4)[0].shape == ()
    assert calibrate(x, 4, granularity="per_channel", axis=-1)[0].shape == (5, 1)


def test_per_group_matches_each_slice_with_remainder():
    x = random_matrix(5, 6, 300, "laplace")
    for method in CALIBRATIONS:
        lo, hi = calibrate(x, 4, "asymmetric", "per_group", 128, method=method, percentile=99.0)
        assert lo.shape == (6, 3, 1)
        for r in range(6):
            for g, s in enumerate(range(0, 300, 128)):
                lo1, hi1 = calibrate(x[r, s:s + 128], 4, "asymmetric", "per_channel", method=method,
                                     percentile=99.0)
                assert (lo[r, g, 0], hi[r, g, 0]) == (lo1[0, 0], hi1[0, 0])
    for method in ("min_max", "percentile", "mse"):  # per tensor entropy uses a finer histogram
        y = quantize_dequantize(x, 3, "symmetric", "per_group", 128, method, 99.0)
        ref = np.concatenate([np.concatenate([quantize_dequantize(x[r, s:s + 128], 3, calibration=method,
                                                                  percentile=99.0)
                                              for s in range(0, 300, 128)])[None] for r in range(6)])
        np.testing.assert_array_equal(y, ref)


def test_all_zero_rows_stay_finite():
    x = np.zeros((4, 10), np.float32)
    x[1] = np.linspace(-1, 1, 10)
    for scheme in SCHEMES:
        for gran in GRANULARITIES:
            for method in CALIBRATIONS:
                y = quantize_dequantize(x, 4, scheme, gran, 4, method)
                assert np.isfinite(y).all() and not y[[0, 2, 3]].any()


def test_percentile_clips_outliers_tighter_than_min_max():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.standard_normal(100_000), [60.0, -55.0, 70.0]]).astype(np.float32)
    lo, hi = calibrate(x, 8, "symmetric", method="percentile", percentile=99.99)
    assert hi == pytest.approx(np.percentile(np.abs(x), 99.99), rel=1e-6) and lo == -hi
    assert hi < 10 < 70 == calibrate(x, 8)[1]
    lo, hi = calibrate(x, 8, "asymmetric", method="percentile", percentile=99.9)
    assert lo == pytest.approx(np.percentile(x, 0.1), rel=1e-5)
    assert hi == pytest.approx(np.percentile(x, 99.9), rel=1e-5)


def kl_threshold_reference(x, n_q, bins=2048):
    """Plain-loop TensorRT calibration (Migacz 2017 pseudo-code) with scipy's KL."""
    a = np.abs(x).astype(np.float64)
    width = a.max() / bins
    hist = np.bincount(np.minimum((a / width).astype(int), bins - 1), minlength=bins).astype(float)
    kl = []
    for i in range(n_q, bins + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        q = np.zeros(i)
        m = i // n_q
        for j in range(n_q):
            s, e = j * m, (i if j == n_q - 1 else (j + 1) * m)
            nz = p[s:e] > 0
            if nz.any():
                q[s:e][nz] = hist[s:e].sum() / nz.sum()
        kl.append(scipy_kl(p, q) if q.sum() > 0 else np.inf)
    return (n_q + int(np.argmin(kl))) * width


def test_entropy_is_tensorrt_kl_and_clips_outliers():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(20_000), rng.uniform(15, 30, 20)]).astype(np.float32)
    lo, hi = calibrate(x, 4, "symmetric", method="entropy")
    assert hi == pytest.approx(kl_threshold_reference(x, 8), rel=1e-6) and lo == -hi
    for bits in (4, 8):
        t = calibrate(x, bits, method="entropy")[1]
        assert 1.5 < t < 0.5 * calibrate(x, bits)[1]
    lo, hi = calibrate(np.abs(x), 8, "asymmetric", method="entropy")
    assert lo == np.abs(x).min() and 1.5 < hi < 0.5 * x.max()  # lo is the raw minimum


def test_given_ranges_are_used_and_checked():
    x = np.array([[-3.0, 0.5, 1.0], [0.25, 2.0, 5.0]], np.float32)
    y = quantize_dequantize(x, 8, lo=-1.0, hi=1.0)
    assert y.min() == pytest.approx(-1.0) and y.max() == pytest.approx(1.0)
    lo, hi = calibrate(x, 8, "asymmetric", "per_channel")
    np.testing.assert_array_equal(quantize_dequantize(x, 8, "asymmetric", "per_channel", lo=lo, hi=hi),
                                  quantize_dequantize(x, 8, "asymmetric", "per_channel"))
    with pytest.raises(QuantmooError, match="one per scale group"):
        quantize_dequantize(x, 8, granularity="per_channel", lo=[0, 0, 0], hi=[1, 1, 1])
    with pytest.raises(QuantmooError, match="both"):
        quantize_dequantize(x, 8, lo=0.0)
    with pytest.raises(QuantmooError, match="NaN"):
        quantize_dequantize(x, 8, lo=np.nan, hi=1.0)


def test_argument_validation_messages():
    x = np.ones((2, 4), np.float32)
    with pytest.raises(QuantmooError, match=r"The 'bits' value must be one of \{2, 3, 4, 5, 6, 8, 16\}; got 7"):
        quantize_dequantize(x, 7)
    with pytest.raises(QuantmooError, match="'scheme'.*'symmetric', 'asymmetric', 'power_of_two'"):
        quantize_dequantize(x, 4, "log")
    for kwargs, field in [({"granularity": "per_row"}, "granularity"), ({"calibration": "kl"}, "calibration"),
                          ({"group_size": 0}, "group_size"), ({"group_size": 2.5}, "group_size"),
                          ({"percentile": 101}, "percentile")]:
        with pytest.raises(QuantmooError, match=field):
            quantize_dequantize(x, 4, **kwargs)
    with pytest.raises(QuantmooError, match="bits"):
        quantize_dequantize(x, True)
    with pytest.raises(QuantmooError, match="method"):
        calibrate(x, 4, method="nope")
    assert normalize_scheme("affine") == "asymmetric"


# --- properties -----------------------------------------------------------------------------

@PROPS
@given(seed=st.integers(0, 2 ** 32 - 1), rows=st.integers(1, 8), cols=st.integers(32, 96),
       kind=st.sampled_from(["normal", "uniform", "laplace"]), scale=st.floats(1e-3, 1e3),
       scheme=st.sampled_from(["symmetric", "asymmetric"]), gran=st.sampled_from(["per_tensor", "per_channel"]))
def test_error_falls_as_bits_rise(seed, rows, cols, kind, scale, scheme, gran):
    x = random_matrix(seed, rows, cols, kind) * np.float32(scale)
    errs = [quant_error(x, b, scheme, gran) for b in INT_BITS]
    assert all(e1 <= e0 * (1 + 1e-6) + 1e-30 for e0, e1 in zip(errs, errs[1:])), errs


@PROPS
@given(seed=st.integers(0, 2 ** 32 - 1), rows=st.integers(2, 8), cols=st.integers(16, 64),
       kind=st.sampled_from(["normal", "uniform", "laplace"]), bits=st.sampled_from(INT_BITS),
       scheme=st.sampled_from(SCHEMES))
def test_per_channel_beats_per_tensor_on_rows_of_different_scale(seed, rows, cols, kind, bits, scheme):
    rng = np.random.default_rng(seed)
    factors = (10.0 ** rng.permutation(rows)).astype(np.float32)[:, None]
    x = random_matrix(seed, rows, cols, kind) * factors
    assert quant_error(x, bits, scheme, "per_channel") <= quant_error(x, bits, scheme, "per_tensor")


@PROPS
@given(x=matrices, bits=st.sampled_from(INT_BITS), scheme=st.sampled_from(SCHEMES),
       gran=st.sampled_from(GRANULARITIES), group_size=st.integers(1, 8))
def test_min_max_quantization_is_idempotent(x, bits, scheme, gran, group_size):
    # half to even may round a range end lying exactly on a tie one step inwards (schemes.py)
    if scheme == "asymmetric":
        lo, hi = calibrate(x, bits, scheme, gran, group_size)
        lo, hi = np.minimum(lo, 0.0).astype(np.float64), np.maximum(hi, 0.0).astype(np.float64)
        scale = (hi - lo) / (2 ** bits - 1)
        zp = -lo / np.where(scale > 0, scale, 1.0)
        assume(not np.any(np.abs(zp - np.floor(zp) - 0.5) < 1e-6))
    y = quantize_dequantize(x, bits, scheme, gran, group_size)
    np.testing.assert_allclose(quantize_dequantize(y, bits, scheme, gran, group_size), y,
                               rtol=1e-5, atol=1e-6 * float(np.abs(x).max(initial=0.0)))


@PROPS
@given(x=matrices, bits=st.sampled_from(INT_BITS), scheme=st.sampled_from(SCHEMES),
       gran=st.sampled_from(GRANULARITIES), group_size=st.integers(1, 8),
       method=st.sampled_from(["min_max", "percentile", "mse"]))
def test_each_scale_group_holds_at_most_2_to_the_bits_values(x, bits, scheme, gran, group_size, method):
    y = quantize_dequantize(x, bits, scheme, gran, group_size, method, percentile=99.0)
    assert all(np.unique(g).size <= 2 ** bits for g in scale_groups(y, gran, group_size))


@settings(max_examples=15, deadline=None)
@given(x=matrices, bits=st.sampled_from(INT_BITS), scheme=st.sampled_from(SCHEMES),
       gran=st.sampled_from(GRANULARITIES))
def test_entropy_groups_hold_at_most_2_to_the_bits_values(x, bits, scheme, gran):
    y = quantize_dequantize(x, bits, scheme, gran, 4, "entropy")
    assert np.isfinite(y).all()
    assert all(np.unique(g).size <= 2 ** bits for g in scale_groups(y, gran, 4))


@PROPS
@given(x=matrices, bits=st.sampled_from(INT_BITS), scheme=st.sampled_from(SCHEMES),
       gran=st.sampled_from(GRANULARITIES), group_size=st.integers(1, 8))
def test_mse_calibration_never_worse_than_min_max(x, bits, scheme, gran, group_size):
    e_mse = quant_error(x, bits, scheme, gran, group_size, "mse")
    e_mm = quant_error(x, bits, scheme, gran, group_size, "min_max")
    assert e_mse <= e_mm * (1 + 1e-9)


@PROPS
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), where=st.integers(0, 10 ** 6),
       fn=st.sampled_from([quantize_dequantize, quant_error, calibrate]))
def test_nan_or_inf_input_raises(x, bad, where, fn):
    x = x.copy()
    x.flat[where % x.size] = bad
    with pytest.raises(QuantmooError, match="NaN or inf") as info:
        fn(x, 4)
    assert isinstance(info.value, ValueError)
