"""The measured ``host`` profile: loads, cites every number, searches, CLI and atomic write.

Timings are never asserted (the machine may be busy); only that the numbers are sane.
"""
import json
import math
import subprocess
import sys

import pytest
import yaml

import quantmoo
from quantmoo.cli import main
from quantmoo.errors import QuantmooError
from quantmoo.hardware import host as host_mod
from quantmoo.hardware import load, measure_host, write_host_profile
from quantmoo.hardware.profile import BITS_UNIVERSE_A, BITS_UNIVERSE_W

SECONDS = 0.4


@pytest.fixture(scope="module")
def measured():
    return measure_host(seconds=SECONDS)


@pytest.fixture(scope="module")
def host_yaml(tmp_path_factory):
    return write_host_profile(tmp_path_factory.mktemp("host") / "host.yaml", seconds=SECONDS)


def number_entries(node, path=""):
    """(path, entry) of every {value: ...} mapping; bare numbers come back with entry None."""
    if isinstance(node, dict):
        if "value" in node:
            return [(path, node)]
        return [e for k, v in node.items() if k not in ("schema_version", "support")
                for e in number_entries(v, f"{path}.{k}" if path else k)]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in number_entries(v, f"{path}[{i}]")]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [(path, None)]
    return []


# --------------------------------------------------------------------------------------------
# the measured mapping
# --------------------------------------------------------------------------------------------

def test_measured_mapping_loads_through_the_profile_loader(measured, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(measured, sort_keys=False), encoding="utf-8")
    hw = load(path)
    assert hw.name == "host" and hw.main.name == "cpu" and hw.fallback is None
    assert set(hw.main.peak_macs_per_s) == {"fp32", "fp16", "int8"}
    for w in BITS_UNIVERSE_W:                       # every combination runs on the CPU
        for a in BITS_UNIVERSE_A:
            dev, mode, prec = hw.resolve(w, a)
            assert dev == "cpu" and mode in ("native", "unpacked") and prec in hw.main.peak_macs_per_s


def test_every_number_carries_a_source_or_an_estimate(measured, host_yaml):
    for raw in (measured, load(host_yaml).raw):
        entries = number_entries(raw)
        assert [p for p, e in entries if e is None] == []            # no bare numbers
        assert len(entries) > 15
        for path, entry in entries:
            texts = [entry[k] for k in ("source", "estimate") if k in entry]
            assert texts and all(isinstance(t, str) and len(t) > 10 for t in texts), path
    gemm = measured["devices"]["cpu"]["peak_tops"]
    assert "float32" in gemm["fp32"]["source"] and "float16" in gemm["fp16"]["source"]
    assert "int8" in gemm["int8"]["source"] and "int32" in gemm["int8"]["source"]
    for entry in gemm.values():
        assert "median of" in entry["source"] and "measured" in entry["source"]
    assert "median" in measured["devices"]["cpu"]["memory_bandwidth_gbs"]["source"]
    assert set(load(host_yaml).sources()) == {p for p, _ in number_entries(load(host_yaml).raw)}


def test_measured_peaks_are_positive_finite_and_sane(measured, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(measured), encoding="utf-8")
    dev = load(path).main
    rates = dict(dev.peak_macs_per_s)
    bw = dev.bandwidth_bytes_per_s
    for v in list(rates.values()) + [bw, dev.layer_overhead_s, dev.unpack_s_per_weight]:
        assert math.isfinite(v) and v > 0
    for v in rates.values():                        # between 1 MMAC/s and 1 PMAC/s
        assert 1e6 < v < 1e15
    assert 1e6 < bw < 1e13                          # 1 MB/s .. 10 TB/s
    for k in ("fp16", "int8"):                      # NumPy's own loops vs its BLAS: within 1e5x
        assert 1e-5 < rates[k] / rates["fp32"] < 1e3
    assert 1e-3 < rates["fp32"] / bw < 1e4          # machine balance, MAC per byte
    assert dev.layer_overhead_s < 1e-2 and dev.unpack_s_per_weight < 1e-6


def test_support_rules_follow_the_measured_rates(measured, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(measured), encoding="utf-8")
    hw = load(path)
    rates = hw.main.peak_macs_per_s
    int_prec = "int8" if rates["int8"] >= rates["fp32"] else "fp32"
    half_prec = "fp16" if rates["fp16"] >= rates["fp32"] else "fp32"
    assert hw.resolve(8, 8) == ("cpu", "native" if int_prec == "int8" else "unpacked", int_prec)
    assert hw.resolve(4, 8)[1:] == ("unpacked", int_prec)
    assert hw.resolve(16, 16) == ("cpu", "native" if half_prec == "fp16" else "unpacked", half_prec)
    assert hw.resolve(4, 16)[1:] == ("unpacked", half_prec)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", None, True])
def test_measure_host_rejects_a_bad_budget(bad):
    with pytest.raises(QuantmooError, match="seconds"):
        measure_host(seconds=bad)


# --------------------------------------------------------------------------------------------
# the written YAML as a --hardware target
# --------------------------------------------------------------------------------------------

def test_search_export_evaluate_roundtrip_on_the_host_profile(host_yaml, tmp_path, capsys):
    res = quantmoo.search("resnet50", str(host_yaml), pop_size=16, n_gen=3, seed=1, progress=False)
    assert res.front and res.meta["hardware"]["name"] == "host"

    run_dir = tmp_path / "run"
    assert main(["search", "--model", "resnet50", "--hardware", str(host_yaml), "--pop-size", "20",
                 "--n-gen", "5", "--out", str(run_dir), "--no-plot", "--json", "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    stored = json.loads((run_dir / "results.json").read_text())
    k = info["knee_index"]
    assert main(["export", str(run_dir), "--index", str(k), "--out", str(tmp_path / "k.yaml")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "resnet50", "--hardware", str(host_yaml), "--config",
                 str(tmp_path / "k.yaml"), "--run", str(run_dir), "--json"]) == 0
    vals = json.loads(capsys.readouterr().out)
    for name, v in stored["front"][k]["objectives"].items():
        assert vals[name] == v     # exactly the stored numbers


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------

def test_cli_measure_host_writes_a_loadable_profile_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "sub" / "h.yaml"
    assert main(["hardware", "--measure-host", str(out), "--seconds", "0.3"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 1
    assert "fp32" in lines[0] and "int8" in lines[0] and "GB/s" in lines[0] and str(out) in lines[0]
    hw = load(out)
    assert hw.name == "host"
    assert main(["hardware", "--show", str(out)]) == 0


def run(*args):
    return subprocess.run([sys.executable, "-m", "quantmoo.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, needle", [
    (["--seconds", "abc"], "'--seconds' must be a number"),
    (["--seconds", "0"], "'--seconds' must be a finite number > 0"),
    (["--seconds", "-2"], "'--seconds' must be a finite number > 0"),
    (["--seconds", "nan"], "'--seconds' must be a finite number > 0"),
    (["--seconds", "inf"], "'--seconds' must be a finite number > 0"),
    (["AFILE/x.yaml"], "'--measure-host' file cannot be created"),
    (["ADIR"], "'--measure-host' path is a directory"),
    (["--show", "arm_dot"], "either '--show' or '--measure-host'"),
    (["--runtime", "tvm"], "The '--runtime' must be one of {numpy, onnxruntime}; got 'tvm'"),
])
def test_cli_bad_input_is_one_line_without_traceback(args, needle, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = str(tmp_path / "h.yaml")
    if args and args[0] == "AFILE/x.yaml":      # a path under a regular file: unwritable even for root
        out, args = str(tmp_path / "afile" / "x.yaml"), args[1:]
    elif args and args[0] == "ADIR":
        out, args = str(tmp_path), args[1:]
    p = run("hardware", "--measure-host", out, *args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "h.yaml").exists()


def test_cli_seconds_without_measure_host(capsys):
    assert main(["hardware", "--seconds", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'--seconds'" in err[0] and "--measure-host" in err[0]
    assert main(["hardware", "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'--runtime'" in err[0] and "--measure-host" in err[0]


@pytest.mark.slow       # ~4 s: onnxruntime's first session and its own measurement budget
def test_onnxruntime_host_profile_measures_its_kernels(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ort.yaml"
    assert main(["hardware", "--measure-host", str(out), "--runtime", "onnxruntime", "--seconds", "0.3"]) == 0
    hw = load(out)
    src = hw.sources()
    assert "MatMulInteger" in src["devices.cpu.peak_tops.int8"]
    assert "MatMul float32" in src["devices.cpu.peak_tops.fp32"] and "1 thread" in src["devices.cpu.peak_tops.fp32"]
    assert "MatMulNBits" in src["devices.cpu.unpack_ns_per_weight"] or "DequantizeLinear" in src["devices.cpu.unpack_ns_per_weight"]
    # the int8 rule follows what the QDQ export's W8A8 layer runs as here (bench_ort_latency found it unfused)
    mode, prec = hw.main.resolve(8, 8)
    assert (mode, prec) == ("native", "int8") or "does not fuse the QDQ export" in hw.main.rule_for(8, 8).note
    assert hw.main.resolve(16, 16)[0] == "native"     # the export's fp16 weight Casts are folded at load
    assert "GEMV" in src["devices.cpu.memory_bandwidth_gbs"] and "separate convert op" in src["convert_op.ns_per_element"]
    # what the QDQ export runs around the layers, measured per weight format and activation op, each with its source
    rt = hw.main.runtime_ops
    assert set(rt["dequantize_s_per_weight"]) == {f"{t}_{g}" for t in ("int8", "uint8", "int4", "uint4")
                                                  for g in ("per_tensor", "per_channel", "per_group",
                                                            "per_channel_kn", "per_group_kn")}
    # the MatMulNBits rates are those of formats onnxruntime fused (none is recorded if it fused none)
    assert set(rt.get("nbits_macs_per_s", {})) <= {f"{t}_{g}" for t in ("int8", "uint8", "int4", "uint4")
                                                   for g in ("per_tensor", "per_channel", "per_group")}
    assert set(rt["activation_s_per_element"]) == {"quantize", "dequantize", "clip", "cast_fp16"}
    assert set(rt["kernel_macs_per_s"]) == {f"{w}_weight_{k}" for w in ("constant", "runtime")
                                            for k in ("1x1", "kxk", "matmul")}
    assert "DequantizeLinear of a 1024x1024 int4" in src["devices.cpu.runtime_ops.dequantize_ns_per_weight.int4_per_group"]
    assert "QuantizeLinear" in src["devices.cpu.runtime_ops.activation_ns_per_element.quantize"]
    assert rt["run_overhead_s"] >= 0 and rt["elementwise_bytes_per_s"] > 0
    assert all(0 < v < 1e15 for v in hw.main.peak_macs_per_s.values()) and hw.main.bandwidth_bytes_per_s > 0
    assert "--runtime onnxruntime" in out.read_text().splitlines()[2]
    with pytest.raises(QuantmooError, match="'runtime' of measure_host must be one of"):
        measure_host(seconds=0.1, runtime="tvm")


# --------------------------------------------------------------------------------------------
# atomic write
# --------------------------------------------------------------------------------------------

class _HalfWriter:
    """A file object that writes half of what it is given, then fails like a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(28, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("existing", [False, True])
def test_write_is_atomic_when_it_fails_mid_write(measured, tmp_path, monkeypatch, existing):
    import quantmoo.io as qio
    target = tmp_path / "host.yaml"
    if existing:
        target.write_text("previous: content\n")
    monkeypatch.setattr(host_mod, "measure_host", lambda **kw: measured)   # no second measurement
    real_fdopen = qio.os.fdopen
    monkeypatch.setattr(qio.os, "fdopen", lambda fd, mode="r", *a, **kw: _HalfWriter(real_fdopen(fd, mode, *a, **kw)))
    with pytest.raises(QuantmooError, match="No space left on device"):
        write_host_profile(target, seconds=SECONDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["host.yaml"] if existing else [])
    if existing:
        assert target.read_text() == "previous: content\n"


def test_write_is_atomic_when_interrupted_before_the_rename(measured, tmp_path, monkeypatch):
    import quantmoo.io as qio
    target = tmp_path / "host.yaml"
    monkeypatch.setattr(host_mod, "measure_host", lambda **kw: measured)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(qio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_host_profile(target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(host_mod, "measure_host", lambda **kw: measured)
    write_host_profile(target)                                  # and then it works
    assert load(target).raw["devices"] == measured["devices"]


def test_onnxruntime_qdq_probe_reports_the_kernels_it_ran():
    pytest.importorskip("onnxruntime")
    from quantmoo.hardware.host import _ORT_INT_KERNELS, _ort_qdq
    import numpy as np
    r = _ort_qdq(0.05, np.random.default_rng(0))
    # either an integer kernel replaced the pattern, or the float MatMul runs on dequantized inputs
    assert r["fused"] == sorted(set(r["ops"]) & set(_ORT_INT_KERNELS))
    assert r["fused"] or {"DequantizeLinear", "MatMul"} <= set(r["ops"])
    assert r["dq_s_per_weight"] >= 0 and r["dq_weights"] == 1024 * 1024
