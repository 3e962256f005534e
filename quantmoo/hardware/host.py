"""The ``host`` hardware profile: this machine, measured with NumPy or onnxruntime.

:func:`measure_host` times a few NumPy operations on this machine (a calibration, not a
benchmark suite) and returns a hardware profile mapping in the schema
:func:`quantmoo.hardware.profile.load` reads; :func:`write_host_profile` writes it as YAML
(atomically), so it can be passed as ``--hardware host.yaml`` like any profile.

What is measured (medians of repeated timed runs, within the time budget ``seconds``):

* GEMM throughput per precision, exactly as NumPy executes it: ``numpy.matmul`` on float32
  (BLAS sgemm), on float16 (NumPy has no float16 BLAS kernel: its generic loop) and on int8 x
  int8 -> int32 (NumPy has no int8 GEMM kernel: ``matmul(a, b, dtype=int32)`` runs its int32
  loop on the widened inputs). The matrix size grows from 64 by doubling (up to 512) while a
  run fits the budget; every ``source:`` says the size, the run count, the date and the CPU.
* Memory bandwidth: a large array copy (bytes read + written / time) and a large sum (bytes
  read / time); the larger median is the roofline bandwidth.
* Per-layer overhead (a tiny NumPy layer), the cost of unpacking 4-bit weights, the cost of a
  requantize (float32 -> int8) per element, and the memory available now.

What cannot be measured from NumPy (energies, static power, the process node) is marked
``estimate:`` with its reasoning; the per-operation energies reuse the Horowitz (ISSCC 2014)
numbers the shipped profiles cite, scaled like them.

The support rules follow the measurements: an integer-activation layer runs on the int8 path if
NumPy's int8 GEMM is at least as fast as float32, else it is dequantized to float32 (mode
``unpacked``) as a NumPy runtime would do; likewise for float16. NumPy can compute every
combination in float32, so nothing falls back (``fallback_device: null``).

With ``runtime="onnxruntime"`` the same quantities are measured on onnxruntime's CPU execution
provider with one thread (the kernels a QDQ / MatMulNBits ONNX model runs): ``MatMul`` float32
and float16, ``MatMulInteger`` (uint8 x int8 -> int32, the int8 GEMM of dynamically quantized
models), ``MatMulNBits`` (4-bit block-quantized weights, block 32; its time beyond the roofline
of a matrix-vector product is the unpack cost per weight), a float32 matrix-vector ``MatMul``
on a weight larger than the cache (bandwidth), a chain of 64 tiny ``MatMul`` nodes (per-op overhead) and ``QuantizeLinear``
(requantize cost per element). The support rules follow the graphs quantmoo's QDQ export writes
(:mod:`quantmoo.export.onnx_qdq`): the kernels onnxruntime's optimizer turns the export's W8A8
``MatMul`` into decide whether int8 layers run the int8 GEMM; where no integer kernel is fused
(onnxruntime 1.32 on x86-64 keeps DequantizeLinear + the float32 MatMul/Conv), they run in
float32 and the unpack cost is the measured cost of dequantizing a weight on every run
(``benchmarks/bench_ort_latency.py`` measures whole models against these rules).

Examples
--------
>>> from quantmoo.hardware import load, measure_host
>>> hw = load(measure_host(seconds=0.5))  # doctest: +SKIP
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import yaml

from ..errors import QuantmooError, check_positive
from .profile import SCHEMA_VERSION, _Parser

__all__ = ["measure_host", "write_host_profile", "HOST_NAME", "RUNTIMES"]

#: The ``name`` of a measured profile.
HOST_NAME = "host"

#: Share of the time budget per measurement.
_BUDGET = {"fp32": 0.22, "fp16": 0.18, "int8": 0.2, "bandwidth": 0.22, "small": 0.18}
_MIN_REPS, _MAX_REPS = 3, 25
_GEMM_SIZES = (64, 128, 256, 512)

# Horowitz, ISSCC 2014, 45 nm, pJ (the table of DESIGN.md section 5 and profiles/README.md).
_HOROWITZ_MAC = {"int8": (0.3, "int8 mult 0.2 + int32 add 0.1 = 0.3 pJ"),
                 "fp16": (1.5, "fp16 mult 1.1 + fp16 add 0.4 = 1.5 pJ"),
                 "fp32": (4.6, "fp32 mult 3.7 + fp32 add 0.9 = 4.6 pJ")}
_HOROWITZ_SRAM_BYTE = 1.25      # 10 pJ per 64-bit read of an 8 KB SRAM
_SCALE_NM, _SCALE_FACTOR = 7, 0.094   # Stillmaker & Baas 7 nm row (0.8 V) over 45 nm (0.9 V)
_DRAM_PJ_PER_BYTE = 96.0        # DDR-class DIMM interface, as intel_vnni.yaml
_STATIC_W_PER_CPU = 5.0


# --------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                value = value.strip()
                # x86: "model name"; older ARM kernels: "Processor" / "Hardware" ("processor" is
                # also the CPU index on x86, hence the digit test)
                if key.strip().lower() in ("model name", "processor", "hardware") and value \
                        and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _n_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _meminfo_mb(key: str) -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) * 1024 / 1e6     # kB (KiB) -> MB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _blas_name() -> str:
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas.get('name', 'BLAS')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no machine-readable build config
        return "its BLAS"


def _l3_bytes(index: int = 3) -> Optional[int]:
    """Size of cpu0's cache ``index`` (3: the last level on x86; 2: the per-core L2)."""
    try:
        text = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip().upper()
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
        return int(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def _median_time(fn: Callable[[], Any], budget: float) -> Tuple[float, int]:
    """Median wall time of ``fn()`` after one warm-up call: at least 3 runs, then more while
    the budget lasts (at most 25). Returns (seconds, runs)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < _MIN_REPS or (len(times) < _MAX_REPS and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return max(float(np.median(times)), 1e-9), len(times)


def _numpy_gemm(kind: str, rng: np.random.Generator) -> Callable[[int], Callable[[], Any]]:
    """``n -> fn``: an n x n x n ``numpy.matmul`` of ``kind``."""
    def operands(n):
        if kind == "int8":
            a = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
            b = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
            return lambda: np.matmul(a, b, dtype=np.int32)
        dtype = np.float32 if kind == "fp32" else np.float16
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        return lambda: np.matmul(a, b)
    return operands


def _gemm(kind: str, budget: float, rng: np.random.Generator, operands=None) -> Dict[str, Any]:
    """MAC/s of an n x n x n GEMM of ``kind`` (``operands(n) -> fn``, NumPy by default); n
    doubles while a run fits budget / 7 (so the final size gets about 7 runs)."""
    operands = operands or _numpy_gemm(kind, rng)
    n = _GEMM_SIZES[0]
    fn = operands(n)
    fn()                                   # warm-up (threads, caches)
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    for bigger in _GEMM_SIZES[1:]:
        if one * (bigger / n) ** 3 > budget / 7:
            break
        n, fn = bigger, operands(bigger)
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-9)
    dt, reps = _median_time(fn, budget)
    return {"macs_per_s": n ** 3 / dt, "n": n, "reps": reps}


def _bandwidth(budget: float) -> Dict[str, Any]:
    """Bytes/s of a large float64 copy (read + write) and sum (read): arrays of 4x the L3
    cache (64-256 MiB)."""
    l3 = _l3_bytes() or 32 * 2 ** 20
    nbytes = int(min(max(4 * l3, 64 * 2 ** 20), 256 * 2 ** 20))
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t_copy, r_copy = _median_time(lambda: np.copyto(dst, src), budget / 2)
    t_sum, r_sum = _median_time(lambda: np.add.reduce(src), budget / 2)
    return {"copy": 2 * src.nbytes / t_copy, "sum": src.nbytes / t_sum, "mib": src.nbytes / 2 ** 20,
            "reps_copy": r_copy, "reps_sum": r_sum}


def _small_ops(budget: float, rng: np.random.Generator, int_dtype) -> Dict[str, Any]:
    """Per-layer dispatch, 4-bit weight unpacking and float32 -> int8 requantize costs."""
    x8 = rng.standard_normal((8, 8)).astype(np.float32)
    w8 = rng.standard_normal((8, 8)).astype(np.float32)
    b8 = rng.standard_normal(8).astype(np.float32)
    t_layer, r_layer = _median_time(lambda: np.matmul(x8, w8.T) + b8, budget / 4)

    n = 2 ** 21                                             # packed bytes: 4 Mi 4-bit weights
    packed = rng.integers(0, 256, size=n, dtype=np.uint8)
    out = np.empty(2 * n, dtype=int_dtype)

    def unpack():
        out[0::2] = packed & 15
        out[1::2] = packed >> 4
        np.subtract(out, 8, out=out)                        # zero point
        if out.dtype.kind == "f":
            np.multiply(out, 0.01, out=out)                 # scale
    t_unpack, r_unpack = _median_time(unpack, budget * 3 / 8)

    x = rng.standard_normal(2 ** 21).astype(np.float32)
    tmp = np.empty_like(x)

    def requantize():
        np.multiply(x, 20.0, out=tmp)
        np.rint(tmp, out=tmp)
        np.clip(tmp, -128, 127, out=tmp)
        return tmp.astype(np.int8)
    t_conv, r_conv = _median_time(requantize, budget * 3 / 8)
    return {"layer_s": t_layer, "reps_layer": r_layer, "unpack_s_per_weight": t_unpack / (2 * n),
            "reps_unpack": r_unpack, "unpack_weights": 2 * n, "convert_s_per_element": t_conv / x.size,
            "reps_convert": r_conv, "convert_elements": x.size}


# --------------------------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------------------------

#: ``MatMulNBits`` block size (the llama.cpp / GPTQ-style 32-weight blocks).
_NBITS_BLOCK = 32
#: Length of the chain of tiny ``MatMul`` nodes whose time per node is the per-op overhead.
_CHAIN = 64


def _ort_session(nodes, inputs, outputs, inits, contrib: bool = False, optimized: Optional[str] = None):
    """A one-thread CPU session of a small graph built in memory (default optimization level:
    ``ORT_ENABLE_ALL``, as deployed); ``optimized`` saves the optimized graph there."""
    from ..errors import require
    ort = require("onnxruntime", "onnx", "measuring this machine with onnxruntime")
    helper = require("onnx.helper", "onnx", "measuring this machine with onnxruntime")
    # every measured tensor feeds an in-graph ReduceMax: a graph output would get a fresh buffer (and its page
    # faults) on every run, an intermediate reuses onnxruntime's arena as inside a model
    reduce = [helper.make_node("ReduceMax", [o.name], [o.name + "__max"], keepdims=0, name=f"reduce_{o.name}")
              for o in outputs]
    outputs = [helper.make_tensor_value_info(o.name + "__max", o.type.tensor_type.elem_type, None) for o in outputs]
    graph = helper.make_graph(nodes + reduce, "quantmoo_host", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if contrib else [])
    model = helper.make_model(graph, opset_imports=opsets)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized:
        so.optimized_model_filepath = optimized
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _vi(name, elem, shape):
    from onnx import helper
    return helper.make_tensor_value_info(name, elem, list(shape))


def _ort_gemm(kind: str, rng: np.random.Generator) -> Callable[[int], Callable[[], Any]]:
    """``n -> fn``: an n x n x n MatMul (float) or MatMulInteger (int8) session run."""
    from onnx import TensorProto, helper, numpy_helper

    def operands(n):
        if kind == "int8":
            x = rng.integers(0, 256, size=(n, n), dtype=np.uint8)
            w = numpy_helper.from_array(rng.integers(-128, 128, size=(n, n), dtype=np.int8), "w")
            node, ti, to = helper.make_node("MatMulInteger", ["x", "w"], ["y"]), TensorProto.UINT8, TensorProto.INT32
        else:
            dtype, elem = (np.float32, TensorProto.FLOAT) if kind == "fp32" else (np.float16, TensorProto.FLOAT16)
            x = rng.standard_normal((n, n)).astype(dtype)
            w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(dtype), "w")
            node, ti, to = helper.make_node("MatMul", ["x", "w"], ["y"]), elem, elem
        sess = _ort_session([node], [_vi("x", ti, (n, n))], [_vi("y", to, (n, n))], [w])
        feed = {"x": x}
        return lambda: sess.run(None, feed)
    return operands


def _ort_bandwidth(budget: float, rng: np.random.Generator) -> Dict[str, Any]:
    """Bytes read / s of a float32 matrix-vector MatMul (1 x k @ k x n, a memory-bound GEMV)
    whose weight is 4x the L3 cache (32-64 MiB): the rate a memory-bound layer sees."""
    from onnx import TensorProto, helper
    l3 = _l3_bytes() or 32 * 2 ** 20
    k = 4096
    n = int(min(max(4 * l3, 32 * 2 ** 20), 64 * 2 ** 20)) // 4 // k
    w = rng.standard_normal((k, n)).astype(np.float32)
    # the weight is fed as an input (no copy into a serialized model; CPU inputs are not copied)
    sess = _ort_session([helper.make_node("MatMul", ["x", "w"], ["y"])],
                        [_vi("x", TensorProto.FLOAT, (1, k)), _vi("w", TensorProto.FLOAT, (k, n))],
                        [_vi("y", TensorProto.FLOAT, (1, n))], [])
    feed = {"x": rng.standard_normal((1, k)).astype(np.float32), "w": w}
    t, reps = _median_time(lambda: sess.run(None, feed), budget)
    return {"read": w.nbytes / t, "mib": w.nbytes / 2 ** 20, "reps": reps, "shape": (k, n)}


#: onnxruntime's integer kernels: what a QDQ MatMul runs as when its optimizer fuses the pattern.
_ORT_INT_KERNELS = ("QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                    "QLinearConv", "ConvInteger")


def _ort_qdq(budget: float, rng: np.random.Generator) -> Dict[str, Any]:
    """What a quantized layer of quantmoo's QDQ export runs as here, and its weights' cost per run.

    The graph is the export's form of a W8A8 linear layer: an int8 per-channel weight behind a
    ``DequantizeLinear``, the input through ``QuantizeLinear -> Clip -> DequantizeLinear`` (int8,
    symmetric), then ``MatMul``. The op types of onnxruntime's optimized graph say whether an
    integer kernel runs. onnxruntime does not constant-fold ``DequantizeLinear`` (it keeps the QDQ
    pattern for fusion), so an unfused weight is dequantized on every run: its time per weight is
    the unpack cost of such a layer.
    """
    import tempfile

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    F, I8 = TensorProto.FLOAT, TensorProto.INT8
    k = n = 256
    c = lambda a, name: numpy_helper.from_array(np.asarray(a), name)
    inits = [c(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "wq"),
             c((rng.random(n) * 0.01 + 1e-3).astype(np.float32), "ws"), c(np.zeros(n, np.int8), "wz"),
             c(np.float32(0.05), "xs"), c(np.int8(0), "xz"), c(np.int8(-127), "lo"), c(np.int8(127), "hi")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("Clip", ["xq", "lo", "hi"], ["xc"]),
             helper.make_node("DequantizeLinear", ["xc", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1),
             helper.make_node("MatMul", ["xd", "w"], ["y"])]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "qdq.onnx")
        _ort_session(nodes, [_vi("x", F, (1, k))], [_vi("y", F, (1, n))], inits, optimized=path)
        ops = [nd.op_type for nd in onnx.load(path).graph.node]
    # a weight-only QDQ MatMul (64 x 1024 @ 1024 x 1024) against the same MatMul on its float32
    # weight: the difference per weight is what dequantizing it on every run costs (the
    # DequantizeLinear itself and the weight packing a constant weight gets once at load)
    rows, k = 64, 1024
    wq = rng.integers(-127, 128, size=(k, k), dtype=np.int8)
    ws = (rng.random(k) * 0.01 + 1e-3).astype(np.float32)
    xin, yout = [_vi("x", F, (rows, k))], [_vi("y", F, (rows, k))]
    q_sess = _ort_session([helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1),
                           helper.make_node("MatMul", ["x", "w"], ["y"])], xin, yout,
                          [c(wq, "wq"), c(ws, "ws"), c(np.zeros(k, np.int8), "wz")])
    f_sess = _ort_session([helper.make_node("MatMul", ["x", "w"], ["y"])], xin, yout, [c(wq * ws, "w")])
    feed = {"x": rng.standard_normal((rows, k)).astype(np.float32)}
    t_q, reps = _median_time(lambda: q_sess.run(None, feed), budget / 2)
    t_f, _ = _median_time(lambda: f_sess.run(None, feed), budget / 2)
    return {"ops": ops, "fused": sorted(set(ops) & set(_ORT_INT_KERNELS)), "dq_s_per_weight": max(t_q - t_f, 0.0) / wq.size,
            "dq_reps": reps, "dq_weights": wq.size, "dq_ms": (t_q * 1e3, t_f * 1e3), "dq_rows": rows}


def _ort_small_ops(budget: float, rng: np.random.Generator, bandwidth: float, fp32_rate: float) -> Dict[str, Any]:
    """Per-op overhead (a chain of tiny MatMuls), the 4-bit unpack cost (MatMulNBits time beyond
    the roofline of its matrix-vector product) and the QuantizeLinear cost per element."""
    from onnx import TensorProto, helper, numpy_helper
    F = TensorProto.FLOAT
    ws = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), f"w{i}") for i in range(_CHAIN)]
    names = ["x"] + [f"h{i}" for i in range(_CHAIN - 1)] + ["y"]
    chain = _ort_session([helper.make_node("MatMul", [names[i], f"w{i}"], [names[i + 1]]) for i in range(_CHAIN)],
                         [_vi("x", F, (8, 8))], [_vi("y", F, (8, 8))], ws)
    x8 = rng.standard_normal((8, 8)).astype(np.float32)
    t_chain, r_chain = _median_time(lambda: chain.run(None, {"x": x8}), budget / 4)

    # a matrix-vector product on 4-bit block-quantized weights, larger than the last-level cache
    l3 = _l3_bytes() or 32 * 2 ** 20
    k = 4096
    n = max(1024, int(min(max(2 * l3, 8 * 2 ** 20), 16 * 2 ** 20) * 2 // k) // 64 * 64)
    blocks = k // _NBITS_BLOCK
    packed = numpy_helper.from_array(rng.integers(0, 256, size=(n, blocks, _NBITS_BLOCK // 2), dtype=np.uint8), "b")
    scales = numpy_helper.from_array((rng.random(n * blocks) * 0.01).astype(np.float32), "s")
    nbits = _ort_session([helper.make_node("MatMulNBits", ["x", "b", "s"], ["y"], domain="com.microsoft", K=k, N=n,
                                           bits=4, block_size=_NBITS_BLOCK)],
                         [_vi("x", F, (1, k))], [_vi("y", F, (1, n))], [packed, scales], contrib=True)
    xv = rng.standard_normal((1, k)).astype(np.float32)
    t_nbits, r_nbits = _median_time(lambda: nbits.run(None, {"x": xv}), budget * 3 / 8)
    nbytes = n * k / 2 + n * blocks * 4
    roof = max(n * k / fp32_rate, nbytes / bandwidth)

    m = 2 ** 21
    xq = rng.standard_normal(m).astype(np.float32)
    quant = _ort_session([helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["y"])],
                         [_vi("x", F, (m,))], [_vi("y", TensorProto.UINT8, (m,))],
                         [numpy_helper.from_array(np.array(0.05, np.float32), "sc"),
                          numpy_helper.from_array(np.array(128, np.uint8), "zp")])
    t_q, r_q = _median_time(lambda: quant.run(None, {"x": xq}), budget * 3 / 8)
    return {"layer_s": t_chain / _CHAIN, "reps_layer": r_chain, "unpack_s_per_weight": max(t_nbits - roof, 0.0) / (n * k),
            "reps_unpack": r_nbits, "unpack_weights": n * k, "nbits_s": t_nbits, "nbits_roof_s": roof,
            "nbits_shape": (n, k), "convert_s_per_element": t_q / m, "reps_convert": r_q, "convert_elements": m}


def _ort_node_times(nodes, inputs, outputs, inits, feed, reps: int, opset: int = 21, optimized_level=None):
    """Median kernel time (s) per node name over ``reps`` runs, from onnxruntime's profiler (one thread)."""
    import json
    import tempfile

    import onnxruntime as ort
    from onnx import helper
    # every measured tensor feeds an in-graph ReduceMax: a graph output would get a fresh buffer (and its page
    # faults) on every run, an intermediate reuses onnxruntime's arena as inside a model
    reduce = [helper.make_node("ReduceMax", [o.name], [o.name + "__max"], keepdims=0, name=f"reduce_{o.name}")
              for o in outputs]
    outputs = [helper.make_tensor_value_info(o.name + "__max", o.type.tensor_type.elem_type, None) for o in outputs]
    graph = helper.make_graph(nodes + reduce, "quantmoo_host", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if optimized_level:
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, optimized_level)
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(d, "p")
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for _ in range(2 + reps):
            sess.run(None, feed)
        with open(sess.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    times: Dict[str, list] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            times.setdefault(e["args"].get("op_name", "?") + ":" + e["name"][:-len("_kernel_time")], []).append(
                e["dur"] * 1e-6)
    return {k: float(np.median(v[-reps:])) for k, v in times.items() if not k.startswith("ReduceMax:reduce_")}


#: Convolutions of the conv-rate measurements: a ResNet-50 (width 1/2, as open_nsfw) bottleneck per stage,
#: (C_out, C_in, kernel, H = W).
_CONV_1X1 = ((32, 128, 1, 56), (128, 32, 1, 56), (64, 256, 1, 28), (256, 64, 1, 28), (128, 512, 1, 14),
             (512, 128, 1, 14), (256, 1024, 1, 7), (1024, 256, 1, 7))
_CONV_KXK = ((32, 32, 3, 56), (64, 64, 3, 28), (128, 128, 3, 14), (256, 256, 3, 7))
#: Matrix products of the matmul-rate measurements: the four projections and the FFN of a BERT block at 128
#: tokens (MiniLM widths), (M, K, N), for 6 blocks with their own weights (42 MB float32: a network's weights
#: do not stay in the caches between runs).
_MATMULS = ((128, 384, 384),) * 4 * 6 + ((128, 384, 1536), (128, 1536, 384)) * 6
#: Rows = columns of the weights of the dequantize measurements (1 Mi weights, 4 MB of float32 output: larger
#: than a core's L2, as a network's weights are; the fixed per-node cost is the per-op overhead).
_RT_N = 1024


def _ort_runtime_ops(reps: int, rng: np.random.Generator) -> Dict[str, Any]:
    """What onnxruntime runs around the layers of a QDQ export, per node from its profiler:
    ``DequantizeLinear`` of a 1024 x 1024 weight per storage format, the activation
    ``QuantizeLinear``/``Clip``/``DequantizeLinear``/``Cast`` round trip on 1 Mi elements, an
    elementwise per-channel ``Mul`` (the graph's non-layer ops), and fp32 convolutions with a
    constant weight (``ORT_ENABLE_ALL``: the NCHWc path with its reorders) and with a runtime one."""
    from onnx import TensorProto as T, helper, numpy_helper
    F, n = T.FLOAT, _RT_N
    c = lambda a, name: numpy_helper.from_array(np.asarray(a), name)
    out = {}
    # weight DequantizeLinear per format: (ONNX type, values, zero point?) x granularity
    nodes, inits, outs = [], [], []
    for tname, elem in (("int8", T.INT8), ("uint8", T.UINT8), ("int4", T.INT4), ("uint4", T.UINT4)):
        lo, hi = {"int8": (-127, 128), "uint8": (0, 256), "int4": (-7, 8), "uint4": (0, 16)}[tname]
        q = rng.integers(lo, hi, size=(n, n))
        inits.append(helper.make_tensor(f"q_{tname}", elem, [n, n], q.flatten().tolist()))
        zp_elem = elem
        # Conv/Gemm weights are (out, in): channels on axis 0, blocks along axis 1; a MatMul's (in, out)
        # weight ("_kn") the other way round (the export's layouts)
        for gran, sshape, attrs in (("per_tensor", [], {}), ("per_channel", [n], {"axis": 0}),
                                    ("per_group", [n, n // 32], {"axis": 1, "block_size": 32}),
                                    ("per_channel_kn", [n], {"axis": 1}),
                                    ("per_group_kn", [n // 32, n], {"axis": 0, "block_size": 32})):
            key = f"{tname}_{gran}"
            inits.append(c((rng.random(sshape) * 0.01 + 1e-3).astype(np.float32), f"s_{key}"))
            zins = []
            if tname.startswith("u"):
                inits.append(helper.make_tensor(f"z_{key}", zp_elem, sshape, [hi // 2] * int(np.prod(sshape or [1]))))
                zins = [f"z_{key}"]
            nodes.append(helper.make_node("DequantizeLinear", [f"q_{tname}", f"s_{key}"] + zins, [f"w_{key}"],
                                          name=key, **attrs))
            outs.append(_vi(f"w_{key}", F, (n, n)))
    t = _ort_node_times(nodes, [], outs, inits, {}, reps)
    out["dequantize"] = {k.split(":", 1)[1]: v / (n * n) for k, v in t.items()}
    # a MatMul whose weight is dequantized and whose input is float (16-bit activations): onnxruntime fuses
    # DequantizeLinear + MatMul into MatMulNBits; its rate per weight format on the BERT-block products (6 blocks)
    out["nbits"] = {}
    for tname, elem in (("int8", T.INT8), ("uint8", T.UINT8), ("int4", T.INT4), ("uint4", T.UINT4)):
        lo, hi = {"int8": (-127, 128), "uint8": (0, 256), "int4": (-7, 8), "uint4": (0, 16)}[tname]
        for gran in ("per_tensor", "per_channel", "per_group"):
            nodes, ins, outs, inits, feed = [], [], [], [], {}
            for i, (m_, k_, n_) in enumerate(_MATMULS):
                sshape, attrs = {"per_tensor": ([], {}), "per_channel": ([n_], {"axis": 1}),
                                 "per_group": ([k_ // 32, n_], {"axis": 0, "block_size": 32})}[gran]
                inits += [helper.make_tensor(f"q{i}", elem, [k_, n_], rng.integers(lo, hi, size=k_ * n_).tolist()),
                          c((rng.random(sshape) * 0.01 + 1e-3).astype(np.float32), f"s{i}")]
                zins = []
                if tname.startswith("u"):
                    inits.append(helper.make_tensor(f"z{i}", elem, sshape, [hi // 2] * int(np.prod(sshape or [1]))))
                    zins = [f"z{i}"]
                nodes += [helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}"] + zins, [f"v{i}"], **attrs),
                          helper.make_node("MatMul", [f"a{i}", f"v{i}"], [f"b{i}"])]
                feed[f"a{i}"] = rng.standard_normal((m_, k_)).astype(np.float32)
                ins.append(_vi(f"a{i}", F, (m_, k_)))
                outs.append(_vi(f"b{i}", F, (m_, n_)))
            t = _ort_node_times(nodes, ins, outs, inits, feed, reps, optimized_level="ORT_ENABLE_ALL")
            if t and all(k.startswith("MatMulNBits:") for k in t):
                out["nbits"][f"{tname}_{gran}"] = sum(m_ * k_ * n_ for m_, k_, n_ in _MATMULS) / sum(t.values())
    # activations: Q -> Clip -> DQ (int8, symmetric) and Cast -> Cast (fp16 round trip), and a Mul by a
    # per-channel constant on (1, 64, 128, 128)
    x = rng.standard_normal((1, 64, 64, 64)).astype(np.float32)
    m = x.size
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="quantize"),
             helper.make_node("Clip", ["xq", "lo", "hi"], ["xc"], name="clip"),
             helper.make_node("DequantizeLinear", ["xc", "xs", "xz"], ["xd"], name="dequantize"),
             helper.make_node("Cast", ["x"], ["xh"], to=T.FLOAT16, name="cast_h"),
             helper.make_node("Cast", ["xh"], ["xf"], to=F, name="cast_f"),
             helper.make_node("Mul", ["x", "g"], ["xm"], name="mul")]
    inits = [c(np.float32(0.05), "xs"), c(np.int8(0), "xz"), c(np.int8(-127), "lo"), c(np.int8(127), "hi"),
             c(rng.random((64, 1, 1)).astype(np.float32), "g")]
    shape = x.shape
    t = {k.split(":", 1)[1]: v for k, v in _ort_node_times(
        nodes, [_vi("x", F, shape)], [_vi(o, F, shape) for o in ("xd", "xf", "xm")], inits, {"x": x}, reps,
        optimized_level="ORT_DISABLE_ALL").items()}
    out["activation"] = {"quantize": t["quantize"] / m, "clip": t["clip"] / m, "dequantize": t["dequantize"] / m,
                         "cast_fp16": (t["cast_h"] + t["cast_f"]) / m}
    out["elementwise"] = 2 * x.nbytes / t["mul"]
    out["act_elements"], out["act_shape"] = m, shape
    # the convolutions of a ResNet-50 (width 1/2) bottleneck per stage, pointwise and spatial (onnxruntime runs
    # 1x1 as a GEMM, kxk through im2col unless NCHWc); (C_out, C_in, k, H = W). All of a kind run in one graph,
    # so their weights (about 3 MB) do not stay in a core's L2 between runs, as in a whole network.
    for kind, shapes in (("1x1", _CONV_1X1), ("kxk", _CONV_KXK)):
        for key, const in (("constant_weight", True), ("runtime_weight", False)):
            nodes, ins, outs, inits, feed = [], [], [], [], {}
            for i, (co, ci, k, hw) in enumerate(shapes):
                feed[f"x{i}"] = rng.standard_normal((1, ci, hw, hw)).astype(np.float32)
                w = (rng.standard_normal((co, ci, k, k)) * 0.05).astype(np.float32)
                nodes.append(helper.make_node("Conv", [f"x{i}", f"w{i}"], [f"y{i}"], pads=[k // 2] * 4))
                if const:
                    inits.append(c(w, f"w{i}"))
                else:   # the export's form: the weight is a DequantizeLinear of an int8 initializer
                    inits += [c(np.round(w / 0.01).clip(-127, 127).astype(np.int8), f"q{i}"), c(np.float32(0.01), f"s{i}")]
                    nodes.append(helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}"], [f"w{i}"]))
                ins.append(_vi(f"x{i}", F, feed[f"x{i}"].shape))
                outs.append(_vi(f"y{i}", F, (1, co, hw, hw)))
            t = _ort_node_times(nodes, ins, outs, inits, feed, reps, opset=17)
            # the weight's dequantization is costed per format; the NCHWc reorders belong to the conv
            tot_t = sum(v for k2, v in t.items() if not k2.startswith("DequantizeLinear:"))
            out[f"{key}_{kind}"] = sum(hw * hw * co * ci * k * k for co, ci, k, hw in shapes) / tot_t
    # the matrix products of 6 BERT blocks at 128 tokens (MiniLM widths: 384 -> 384, 384 -> 1536, 1536 -> 384),
    # x @ W with W an initializer (prepacked) or dequantized on every run (packed on every run), in one graph
    for key, const in (("constant_weight", True), ("runtime_weight", False)):
        nodes, ins, outs, inits, feed = [], [], [], [], {}
        for i, (m_, k_, n_) in enumerate(_MATMULS):
            feed[f"a{i}"] = rng.standard_normal((m_, k_)).astype(np.float32)
            w = (rng.standard_normal((k_, n_)) * 0.05).astype(np.float32)
            # with its bias, as a linear layer (onnxruntime fuses MatMul + Add into Gemm either way)
            nodes += [helper.make_node("MatMul", [f"a{i}", f"v{i}"], [f"p{i}"]),
                      helper.make_node("Add", [f"p{i}", f"bias{i}"], [f"b{i}"])]
            inits.append(c(rng.standard_normal(n_).astype(np.float32), f"bias{i}"))
            if const:
                inits.append(c(w, f"v{i}"))
            else:
                inits += [c(np.round(w / 0.01).clip(-127, 127).astype(np.int8), f"q{i}"), c(np.float32(0.01), f"s{i}")]
                nodes.append(helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}"], [f"v{i}"]))
            ins.append(_vi(f"a{i}", F, (m_, k_)))
            outs.append(_vi(f"b{i}", F, (m_, n_)))
        t = _ort_node_times(nodes, ins, outs, inits, feed, reps, opset=17)
        out[f"{key}_matmul"] = sum(m_ * k_ * n_ for m_, k_, n_ in _MATMULS) / sum(
            v for k2, v in t.items() if not k2.startswith("DequantizeLinear:"))
    return out


# --------------------------------------------------------------------------------------------
# The profile
# --------------------------------------------------------------------------------------------

def _sig(v: float, digits: int = 4) -> float:
    """``v`` rounded to ``digits`` significant figures (readable YAML, still > 0 if v > 0)."""
    if v == 0 or not math.isfinite(v):
        return float(v)
    return float(f"{v:.{digits}g}")


def _measured(value: float, text: str) -> Dict[str, Any]:
    return {"value": _sig(value), "source": text}


def _estimate(value: float, text: str) -> Dict[str, Any]:
    return {"value": _sig(value), "estimate": text}


def helper_node(*args, **kw):
    from onnx import helper
    return helper.make_node(*args, **kw)


def _np_init(a, name):
    from onnx import numpy_helper
    return numpy_helper.from_array(a, name)


def _runtime_ops_entry(rt, t_one, r_one, layer_s, rt_desc, where) -> Dict[str, Any]:
    """The ``runtime_ops`` block of an onnxruntime profile, every number with its ``source:``."""
    prof = f"{rt_desc}, kernel time from its profiler (median of the last runs)"
    m, sh = rt["act_elements"], "x".join(map(str, rt["act_shape"]))
    n = _RT_N
    fmt_text = {"per_tensor": "one scale", "per_channel": f"{n} scales (axis 0)",
                "per_group": "blocks of 32 along axis 1 (opset 21)", "per_channel_kn": f"{n} scales (axis 1)",
                "per_group_kn": "blocks of 32 along axis 0 (opset 21)"}
    conv_text = {kind: f"the {kind} convolutions of a ResNet-50 (width 1/2) bottleneck per stage in one graph, "
                       f"(C_out, C_in, k, H=W) = {', '.join(str(x) for x in shapes)}"
                 for kind, shapes in (("1x1", _CONV_1X1), ("kxk", _CONV_KXK))}
    conv_text["matmul"] = (f"the MatMul + bias Add of the 4 projections and the FFN of 6 BERT blocks at 128 tokens "
                           f"(MiniLM widths, 36 products, each weight its own; 42 MB float32) in one graph, (M, K, N) = "
                           f"{', '.join(str(x) for x in dict.fromkeys(_MATMULS))}")
    weight_text = {"constant_weight": "an initializer (prepacked; ORT_ENABLE_ALL runs convolutions as NCHWc, their "
                                      "ReorderInput/ReorderOutput time included)",
                   "runtime_weight": "behind a DequantizeLinear of an int8 initializer (the export's form: packed on "
                                     "every run, no NCHWc; the Conv/MatMul node time only)"}
    return {
        "run_overhead_us": _measured(max(t_one - layer_s, 0.0) * 1e6,
                                     f"InferenceSession.run of a one-node graph (8x8 float32 MatMul), median of "
                                     f"{r_one}, minus the per-op overhead: the fixed cost of one inference, {rt_desc}, "
                                     f"{where}"),
        **({"cache_gbs": _measured(rt["cache"] / 1e9, f"{rt['cache_text']}, {rt_desc}, {where}"),
            "cache_mb": _measured(_l3_bytes(2) / 1e6, f"/sys/devices/system/cpu/cpu0/cache/index2/size (the per-core "
                                                      f"L2), {where}")} if _l3_bytes(2) else {}),
        "op_overhead_us": _measured(rt["op_overhead"] * 1e6, f"{rt['op_overhead_text']}, {rt_desc}, {where}; the "
                                                             f"dispatch cost of each QDQ and non-layer node"),
        "elementwise_gbs": _measured(rt["elementwise"] / 1e9,
                                     f"Mul of a {sh} float32 tensor by a per-channel constant (64x1x1; 1 MB, in a core's "
                                     f"L2 as the tensor its producer just wrote): activation "
                                     f"bytes read + written / time, {prof}, {where}; the rate the cost model gives "
                                     f"the graph's non-layer ops"),
        "kernel_tops": {f"{key}_{kind}": _measured(
            2 * rt[f"{key}_{kind}"] / 1e12,
            f"{conv_text[kind]}, float32, weight {weight_text[key]}; TOPS = 2 x MACs / time, {prof}, {where}")
            for key in ("constant_weight", "runtime_weight") for kind in ("1x1", "kxk", "matmul")},
        **({"matmul_nbits_tops": {k: _measured(2 * v / 1e12, f"{conv_text['matmul']}, float32 input, weight a "
                                                          f"{k.split('_')[0]} initializer {fmt_text[k.split('_', 1)[1]]} "
                                                          f"behind a DequantizeLinear, which onnxruntime fuses with the "
                                                          f"MatMul into MatMulNBits (ORT_ENABLE_ALL); TOPS = 2 x MACs / "
                                                          f"its kernel time, {prof}, {where}")
                                   for k, v in sorted(rt["nbits"].items())}} if rt["nbits"] else {}),
        "dequantize_ns_per_weight": {k: _measured(v * 1e9, f"DequantizeLinear of a {n}x{n} {k.split('_')[0]} initializer "
                                                           f"with {fmt_text[k.split('_', 1)[1]]}"
                                                           f"{' and zero points' if k.startswith('u') else ''} -> float32, "
                                                           f"time / {n * n} weights, {prof}, {where}")
                                     for k, v in sorted(rt["dequantize"].items())},
        "activation_ns_per_element": {
            k: _measured(rt["activation"][k] * 1e9, f"{what} on a {sh} float32 activation, time / {m} elements, {prof}, "
                                                    f"optimizations off (each node as the export writes it), {where}")
            for k, what in (("quantize", "QuantizeLinear float32 -> int8 (per-tensor scale)"),
                            ("clip", "Clip of the int8 tensor to [-127, 127]"),
                            ("dequantize", "DequantizeLinear int8 -> float32 (per-tensor scale)"),
                            ("cast_fp16", "Cast float32 -> float16 plus Cast float16 -> float32"))},
    }


#: Runtimes :func:`measure_host` can measure.
RUNTIMES = ("numpy", "onnxruntime")


def measure_host(seconds: float = 5.0, seed=0, runtime: str = "numpy") -> Dict[str, Any]:
    """Measure this machine with NumPy or onnxruntime and return a ``host`` hardware profile mapping.

    Parameters
    ----------
    seconds : float, default 5.0
        Approximate time budget for all measurements (each takes at least 3 timed runs, so a
        very small budget takes somewhat longer and measures smaller matrices).
    seed : int, default 0
        Seed of the random operands.
    runtime : {"numpy", "onnxruntime"}
        Whose kernels are timed: NumPy's (default) or onnxruntime's CPU execution provider on
        one thread (needs the ``onnxruntime`` package).

    Returns
    -------
    dict
        A profile in the schema of :mod:`quantmoo.hardware.profile` (``schema_version`` 1,
        ``name: host``); every number carries ``source:`` (measured here) or ``estimate:``.
        It is validated before it is returned.

    Raises
    ------
    QuantmooError
        ``seconds`` is not a finite number > 0, or ``runtime`` is unknown.
    """
    seconds = check_positive("seconds", seconds, owner="measure_host")
    if runtime not in RUNTIMES:
        raise QuantmooError(f"The 'runtime' of measure_host must be one of {{{', '.join(RUNTIMES)}}}; "
                            f"got {runtime!r}")
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    date = datetime.date.today().isoformat()
    cpu, n_cpus = _cpu_model(), _n_cpus()
    where = f"measured {date} on {cpu}, {n_cpus} logical CPU{'s' if n_cpus != 1 else ''}"
    if runtime == "numpy":
        rt_id = f"NumPy {np.__version__}"
        rt_desc = f"{rt_id} with {_blas_name()}"
        gemm = {k: _gemm(k, seconds * _BUDGET[k], rng) for k in ("fp32", "fp16", "int8")}
        bw = _bandwidth(seconds * _BUDGET["bandwidth"])
        rate = {k: g["macs_per_s"] for k, g in gemm.items()}
        int_prec = "int8" if rate["int8"] >= rate["fp32"] else "fp32"
        half_prec = "fp16" if rate["fp16"] >= rate["fp32"] else "fp32"
        small = _small_ops(seconds * _BUDGET["small"], rng, np.int8 if int_prec == "int8" else np.float32)
        what = {"fp32": f"numpy.matmul float32 x float32 -> float32 ({_blas_name()} sgemm, its default threads)",
                "fp16": "numpy.matmul float16 x float16 -> float16 (NumPy's generic loop: it has no float16 BLAS "
                        "kernel; one thread)",
                "int8": "numpy.matmul(a, b, dtype=int32) on int8 x int8 operands -> int32 (NumPy has no int8 GEMM "
                        "kernel: the operands are widened and its int32 loop runs, one thread)"}
        bandwidth, link_bw = max(bw["copy"], bw["sum"]), bw["copy"]
        mib = f"{bw['mib']:.0f} MiB float64 array"
        bw_text = (f"the larger of two medians: numpy.copyto of a {mib} ({bw['copy'] / 1e9:.4g} GB/s, bytes "
                   f"read + written / time, median of {bw['reps_copy']}) and numpy.add.reduce of it "
                   f"({bw['sum'] / 1e9:.4g} GB/s, bytes read / time, median of {bw['reps_sum']}); one thread, {where}")
        unpack_to = "float32" if int_prec == "fp32" else "int8"
        layer_text = f"one tiny NumPy layer (8x8 float32 matmul + bias add), median of {small['reps_layer']}"
        unpack_text = (f"unpacking {small['unpack_weights']} 4-bit weights (two per byte: mask, shift, zero point"
                       f"{', scale' if unpack_to == 'float32' else ''}) to {unpack_to} with NumPy, median of "
                       f"{small['reps_unpack']}, per weight")
        conv_text = (f"float32 -> int8 requantize (multiply, rint, clip, astype) of {small['convert_elements']} "
                     f"elements with NumPy, median of {small['reps_convert']}, per element")
    else:
        import onnxruntime
        rt_id = f"onnxruntime {onnxruntime.__version__}"
        rt_desc = f"{rt_id} (CPUExecutionProvider, 1 thread)"
        gemm = {k: _gemm(k, seconds * _BUDGET[k], rng, _ort_gemm(k, rng)) for k in ("fp32", "fp16", "int8")}
        bw = _ort_bandwidth(seconds * _BUDGET["bandwidth"], rng)
        rate = {k: g["macs_per_s"] for k, g in gemm.items()}
        qdq = _ort_qdq(seconds * _BUDGET["small"] / 2, rng)
        # the int8 GEMM only runs where the optimizer fuses the export's QDQ pattern into it
        int_prec = "int8" if qdq["fused"] and rate["int8"] >= rate["fp32"] else "fp32"
        half_prec = "fp16" if rate["fp16"] >= rate["fp32"] else "fp32"
        bandwidth = link_bw = bw["read"]
        small = _ort_small_ops(seconds * _BUDGET["small"] / 2, rng, bandwidth, rate["fp32"])
        if not qdq["fused"]:   # QDQ layers dequantize their weights on every run
            small["unpack_s_per_weight"] = qdq["dq_s_per_weight"]
        rt = _ort_runtime_ops(max(5, min(_MAX_REPS, int(2 * seconds))), rng)
        one = _ort_session([helper_node("MatMul", ["x", "w0"], ["y"])], [_vi("x", 1, (8, 8))], [_vi("y", 1, (8, 8))],
                           [_np_init(rng.standard_normal((8, 8)).astype(np.float32), "w0")])
        x8 = rng.standard_normal((8, 8)).astype(np.float32)
        t_one, r_one = _median_time(lambda: one.run(None, {"x": x8}), seconds * 0.02)
        # the dispatch cost of a light node (the QDQ and elementwise ops around the layers): a chain of 64 Casts
        # float32 <-> float16 on an 8x8 tensor, time / 64 minus the one-node run's fixed part
        cnames = ["x"] + [f"k{i}" for i in range(_CHAIN)]
        casts = _ort_session([helper_node("Cast", [cnames[i], ], [cnames[i + 1]], to=10 if i % 2 == 0 else 1)
                              for i in range(_CHAIN)], [_vi("x", 1, (8, 8))], [_vi(cnames[-1], 1, (8, 8))], [])
        t_casts, r_casts = _median_time(lambda: casts.run(None, {"x": x8}), seconds * 0.02)
        rt["op_overhead"] = max(t_casts - (t_one - small["layer_s"]), 0.0) / _CHAIN
        rt["op_overhead_text"] = (f"a chain of {_CHAIN} Cast nodes (float32 <-> float16, 8x8) in one session: run time "
                                  f"(median {t_casts * 1e6:.3g} us of {r_casts}) minus the per-inference overhead, "
                                  f"/ {_CHAIN}")
        # weights that stay in the core's cache between runs: a chain of 4 Gemms 1x256 @ 256x256 float32
        # (1 MiB of weights); wall time minus the one-node run (run overhead + one op) and 3 more op overheads
        cw = [_np_init(rng.standard_normal((256, 256)).astype(np.float32), f"c{i}") for i in range(4)]
        names = ["v", "c_h0", "c_h1", "c_h2", "u"]
        cache = _ort_session([helper_node("Gemm", [names[i], f"c{i}"], [names[i + 1]], transB=1) for i in range(4)],
                             [_vi("v", 1, (1, 256))], [_vi("u", 1, (1, 256))], cw)
        v = rng.standard_normal((1, 256)).astype(np.float32)
        t_cache, r_cache = _median_time(lambda: cache.run(None, {"v": v}), seconds * 0.03)
        rt["cache"] = 4 * 256 * 256 * 4 / max(t_cache - t_one - 3 * small["layer_s"], 1e-7)
        rt["cache_text"] = (f"a chain of 4 Gemm (transB) 1x256 @ 256x256 float32 initializers (1 MiB, read from the cache on "
                            f"every run): weight bytes / (its run time, median {t_cache * 1e6:.3g} us of {r_cache}, "
                            f"minus the one-node run {t_one * 1e6:.3g} us and 3 per-op overheads)")
        what = {"fp32": f"{rt_desc} MatMul float32 x float32 initializer -> float32",
                "fp16": f"{rt_desc} MatMul float16 x float16 initializer -> float16",
                "int8": f"{rt_desc} MatMulInteger uint8 x int8 initializer -> int32 (the int8 GEMM of "
                        "dynamically quantized models)"}
        bw_text = (f"{rt_desc} MatMul 1x{bw['shape'][0]} @ {bw['shape'][0]}x{bw['shape'][1]} float32 (a memory-bound "
                   f"GEMV on a {bw['mib']:.0f} MiB weight), weight bytes read / time, median of {bw['reps']}, {where}")
        unpack_to = "float32"
        layer_text = (f"a chain of {_CHAIN} 8x8 float32 MatMul nodes in one {rt_desc} session, time / {_CHAIN}, "
                      f"median of {small['reps_layer']}")
        nn, kk = small["nbits_shape"]
        qdq_text = (f"quantmoo's QDQ export of a W8A8 MatMul (int8 per-channel weight, QuantizeLinear -> Clip -> "
                    f"DequantizeLinear input) runs in {rt_desc} at ORT_ENABLE_ALL as "
                    f"{' + '.join(dict.fromkeys(qdq['ops']))}")
        k = int(round(qdq["dq_weights"] ** 0.5))
        unpack_text = (f"{rt_desc} MatMul {qdq['dq_rows']}x{k} @ {k}x{k} on an int8 per-channel weight behind a "
                       f"DequantizeLinear (median {qdq['dq_ms'][0]:.4g} ms of {qdq['dq_reps']}) minus the same MatMul "
                       f"on its float32 weight ({qdq['dq_ms'][1]:.4g} ms), per weight: {qdq_text}, with no integer "
                       f"kernel, so a QDQ layer dequantizes (and packs) its weights on every run (onnxruntime does "
                       f"not constant-fold DequantizeLinear)"
                       if not qdq["fused"] else None) or (f"{rt_desc} MatMulNBits (4-bit, block {_NBITS_BLOCK}, fp32 scales) 1x{kk} @ {kk}x{nn}: "
                       f"median {small['nbits_s'] * 1e3:.4g} ms (of {small['reps_unpack']}) minus its roofline "
                       f"{small['nbits_roof_s'] * 1e3:.4g} ms (the float32 MAC rate and the bandwidth measured "
                       f"here), per weight; {qdq_text} (fused)")
        conv_text = (f"{rt_desc} QuantizeLinear float32 -> uint8 of {small['convert_elements']} elements, median "
                     f"of {small['reps_convert']}, per element")
    peak_tops = {k: _measured(2 * rate[k] / 1e12,
                              f"{what[k]}, {g['n']}x{g['n']}x{g['n']}, median of {g['reps']}, {where}, "
                              f"{rt_id}; TOPS = 2 x MAC/s / 1e12 ({rate[k] / 1e9:.4g} GMAC/s)")
                 for k, g in gemm.items()}
    bw_entry = _measured(bandwidth / 1e9, bw_text)

    f = _SCALE_FACTOR
    e_mac = {k: {"value": _sig(pj * f),
                 "source": f"Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm): {text}; "
                           f"x energy_scaling.factor {f}",
                 "estimate": f"the energy of the arithmetic, not of the {rt_id} kernel around it (not "
                             f"measurable from timings)"}
             for k, (pj, text) in _HOROWITZ_MAC.items()}
    sram = _sig(_HOROWITZ_SRAM_BYTE * f)
    conv_pj = 3 * sram + _sig(_HOROWITZ_MAC["fp32"][0] * f)

    int_note = (f"{rt_id}'s int8 GEMM is at least as fast as its float32 one here"
                if int_prec == "int8" else
                f"{rt_id} does not fuse the QDQ export's int8 layers into an integer kernel here (the optimized "
                f"graph runs {' + '.join(dict.fromkeys(qdq['ops']))}): weights and activations are dequantized "
                f"and the float32 GEMM runs" if runtime == "onnxruntime" and not qdq["fused"] else
                f"{rt_id}'s int8 path ({rate['int8'] / 1e9:.3g} GMAC/s) is slower than its float32 GEMM "
                f"({rate['fp32'] / 1e9:.3g} GMAC/s) here, so integer tensors are dequantized to float32")
    half_note = (f"{rt_id}'s float16 GEMM is at least as fast as its float32 one here" if half_prec == "fp16" else
                 f"{rt_id}'s float16 GEMM ({rate['fp16'] / 1e9:.3g} GMAC/s) is slower than its float32 one "
                 f"({rate['fp32'] / 1e9:.3g} GMAC/s) here, so float16 tensors are computed in float32")
    sub, sub8 = [2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 8]
    support = [
        {"weight_bits": [8], "activation_bits": [8],
         "mode": "native" if int_prec == "int8" else "unpacked", "precision": int_prec, "note": int_note},
        {"weight_bits": sub, "activation_bits": [8], "mode": "unpacked", "precision": int_prec,
         "note": f"sub-byte weights unpacked, then the {int_prec} GEMM"},
        {"weight_bits": sub8, "activation_bits": sub, "mode": "unpacked", "precision": int_prec,
         "note": f"sub-byte activations widened (no sub-byte arithmetic in {rt_id}), then the {int_prec} GEMM"},
        {"weight_bits": [16], "activation_bits": [16],
         "mode": "native" if half_prec == "fp16" or runtime == "onnxruntime" else "unpacked", "precision": half_prec,
         "note": half_note + ("; the QDQ export's fp16 weights are a Cast of an initializer, which onnxruntime "
                              "constant-folds at load, so nothing is unpacked per run"
                              if runtime == "onnxruntime" and half_prec == "fp32" else "")},
        {"weight_bits": sub8, "activation_bits": [16], "mode": "unpacked", "precision": half_prec,
         "note": f"weight-only quantization: weights dequantized, then the {half_prec} GEMM"},
        {"weight_bits": [16], "activation_bits": sub8, "mode": "unpacked", "precision": half_prec,
         "note": f"fp16 weights with integer activations: activations dequantized, then the {half_prec} GEMM"},
    ]

    mem_avail = _meminfo_mb("MemAvailable")
    if mem_avail is not None and mem_avail > 0:
        budget_entry = _measured(mem_avail, f"/proc/meminfo MemAvailable, {where}")
    else:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e6 if hasattr(os, "sysconf") else 8000
        budget_entry = _estimate(0.75 * total, "/proc/meminfo unavailable: three quarters of the physical "
                                               "memory (os.sysconf), leaving the rest to the OS")
    mem_total = _meminfo_mb("MemTotal")
    ram = f", {mem_total / 1e3:.0f} GB RAM" if mem_total else ""
    profile = {
        "schema_version": SCHEMA_VERSION,
        "name": HOST_NAME,
        "title": f"This machine measured with {rt_id} ({cpu}, {n_cpus} logical CPUs)",
        "reference_device": f"{cpu}, {n_cpus} logical CPUs{ram}, {platform.system()} {platform.machine()}, "
                            f"Python {platform.python_version()}, {rt_desc}; measured {date} "
                            f"(quantmoo.hardware.measure_host, runtime {runtime}, budget {seconds:g} s)",
        "main_device": "cpu",
        "fallback_device": None,
        "memory_budget_mb": budget_entry,
        "convert_op": {
            "ns_per_element": _measured(small["convert_s_per_element"] * 1e9, f"{conv_text}, {where}")
            if runtime == "numpy" else _estimate(0.0, "0: the QDQ export quantizes every layer's input itself "
                                                     "(devices.cpu.runtime_ops.activation_ns_per_element, charged "
                                                     "per layer); there is no separate convert op between layers"),
            "pj_per_element": _estimate(
                conv_pj, f"3 bytes through on-chip SRAM (3 x {sram} pJ) + one fp32 multiply-add for the scale "
                         f"({_sig(_HOROWITZ_MAC['fp32'][0] * f)} pJ), Horowitz ISSCC 2014 x {f}; not measurable "
                         f"from timings"),
        },
        "partition": {
            "sync_us": _estimate(small["layer_s"] * 1e6,
                                 f"unused: the host profile has no fallback device ({rt_id} computes every "
                                 "combination on this CPU); set to the measured per-layer dispatch cost"),
            "transfer_gbs": _estimate(link_bw / 1e9,
                                      "unused: no fallback device; set to the measured copy bandwidth"),
        },
        "energy_scaling": {
            "process_nm": _estimate(_SCALE_NM, "the process node cannot be read from /proc/cpuinfo; the 7 nm row "
                                               "of Stillmaker & Baas is the last published one (as hexagon.yaml "
                                               "and apple_ane.yaml)"),
            "factor": {"value": f,
                       "source": "Stillmaker & Baas, Integration 58 (2017) 74-81, HP energy polynomial: "
                                 "E(7 nm, 0.8 V) / E(45 nm, 0.9 V) = 0.094 (as hexagon.yaml, apple_ane.yaml)",
                       "estimate": "7 nm and 0.8 V assumed: the host's node and supply are unknown"},
        },
        "devices": {
            "cpu": {
                "title": f"{cpu}, {n_cpus} logical CPUs, running {rt_desc}",
                "peak_tops": peak_tops,
                "memory_bandwidth_gbs": bw_entry,
                "layer_overhead_us": _measured(small["layer_s"] * 1e6, f"{layer_text}: the per-op dispatch cost, "
                                                                       f"{where}"),
                "unpack_ns_per_weight": _measured(small["unpack_s_per_weight"] * 1e9, f"{unpack_text}, {where}"),
                **({"runtime_ops": _runtime_ops_entry(rt, t_one, r_one, small["layer_s"], rt_desc, where)}
                   if runtime == "onnxruntime" else {}),
                "static_power_w": _estimate(
                    _STATIC_W_PER_CPU * n_cpus,
                    f"not measurable from timings (no power counters read): ~{_STATIC_W_PER_CPU:g} W per busy "
                    f"logical CPU of a desktop/server core (clocks, caches, uncore share, leakage) x {n_cpus}"),
                "energy_pj": {
                    "mac": e_mac,
                    "dram_byte": _estimate(
                        _DRAM_PJ_PER_BYTE,
                        "DDR-class DIMM interface assumed (~12 pJ/bit, as intel_vnni.yaml; Horowitz ISSCC 2014 "
                        "gives 1300-2600 pJ per 64-bit DDR3 access); the memory type is not measurable from "
                        "timings"),
                    "sram_byte": {"value": sram,
                                  "source": f"Horowitz ISSCC 2014: 10 pJ per 64-bit read of an 8 KB SRAM = "
                                            f"1.25 pJ/B at 45 nm; x energy_scaling.factor {f}"},
                },
                "support": support,
            },
        },
    }
    _Parser(f"{HOST_NAME} (measured)").profile(profile, None, None)   # a bug here, not a bad file
    profile["reference_device"] += f"; {time.perf_counter() - t_start:.1f} s"
    return profile


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors/aliases; bit-width lists in flow style (``[2, 3, 4]``)."""

    def ignore_aliases(self, data):
        return True


_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(isinstance(i, int) for i in v)))


_HEADER = """\
# quantmoo hardware profile: this machine, measured with {runtime} (quantmoo.hardware.measure_host).
#
# Regenerate with: quantmoo hardware --measure-host {name} --runtime {runtime} [--seconds S]
# Numbers with 'source:' were measured here (the text says what exactly); numbers with
# 'estimate:' could not be measured from timings and say why. Peaks are what the runtime's
# kernels achieve on this machine, not the CPU's datasheet peaks.
# Units: TOPS (2 x MAC/s / 1e12), GB/s (1e9 B/s), us, ns, pJ, W, MB (1e6 B).
"""


def write_host_profile(path: Union[str, os.PathLike], seconds: float = 5.0, seed=0, runtime: str = "numpy") -> Path:
    """Measure this machine (:func:`measure_host`) and write the profile YAML to ``path``.

    The file is written atomically (temp file + rename): an interrupted or failed write never
    leaves a half-written profile, and an existing file is replaced only by a complete one.

    Returns
    -------
    Path
        ``path``; use it as ``hardware=path`` / ``--hardware path``.

    Raises
    ------
    QuantmooError
        ``seconds`` is not a finite number > 0, or ``path`` cannot be written.
    """
    from ..io import atomic_write_text
    path = Path(path)
    if path.is_dir():
        raise QuantmooError(f"The host profile path is a directory, not a file: {path}")
    profile = measure_host(seconds=seconds, seed=seed, runtime=runtime)
    text = _HEADER.format(name=path.name, runtime=runtime) + yaml.dump(profile, Dumper=_Dumper, sort_keys=False,
                                                      allow_unicode=True, width=100)
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise QuantmooError(f"Cannot write the host profile {path}: {e.strerror or e}") from None
    return path
