"""Hardware profiles: the six shipped YAMLs, their support facts, rates, and validation errors."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from quantmoo.errors import QuantmooError
from quantmoo.hardware.profile import (
    BITS_UNIVERSE_A, BITS_UNIVERSE_W, PRECISIONS, Device, HardwareProfile, load, names,
)

SHIPPED = ["apple_ane", "arm_dot", "arm_neon", "hexagon", "intel_vnni", "tensorrt"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def raw_copy(name: str) -> dict:
    return copy.deepcopy(load(name).raw)


def write(tmp_path: Path, data, name: str = "arm_dot") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data, name: str = "arm_dot") -> str:
    path = write(tmp_path, data, name)
    with pytest.raises(QuantmooError) as info:
        load(path)
    msg = str(info.value)
    assert f"{name}.yaml" in msg, msg          # every message names the file
    return msg


def bare_numbers(node, path=""):
    """Paths of numbers that are not the 'value' of a {value, source|estimate} mapping."""
    if isinstance(node, dict):
        if "value" in node:
            return []
        out = []
        for k, v in node.items():
            if k in ("schema_version", "support"):
                continue
            out += bare_numbers(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in bare_numbers(v, f"{path}[{i}]")]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [path]
    return []


def number_entries(node, path=""):
    if isinstance(node, dict):
        if "value" in node:
            return [(path, node)]
        return [e for k, v in node.items() for e in number_entries(v, f"{path}.{k}" if path else k)]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in number_entries(v, f"{path}[{i}]")]
    return []


# --------------------------------------------------------------------------------------------
# the shipped profiles
# --------------------------------------------------------------------------------------------

def test_names_lists_the_six_profiles():
    assert names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_profile_loads_and_describes_its_reference_device(name):
    hw = load(name)
    assert isinstance(hw, HardwareProfile) and isinstance(hw.main, Device)
    assert hw.name == name
    assert isinstance(hw.reference_device, str) and len(hw.reference_device) > 20
    assert hw.fallback is not None and hw.fallback.name != hw.main.name
    assert hw.memory_budget_bytes > 1e8
    assert hw.partition_bytes_per_s > 0 and hw.partition_sync_s >= 0
    assert load(name) is hw                                   # cached by name
    assert re.fullmatch(r"[0-9a-f]{16}", hw.profile_hash())
    summary = hw.to_dict()
    assert summary["name"] == name and summary["hash"] == hw.profile_hash()
    assert summary["reference_device"] == hw.reference_device and summary["title"] == hw.title
    for dev in hw.devices.values():
        assert set(dev.peak_macs_per_s) <= set(PRECISIONS)
        assert all(v > 0 for v in dev.peak_macs_per_s.values())
        assert dev.bandwidth_bytes_per_s > 1e9
        assert set(dev.peak_macs_per_s) <= set(dev.e_mac_pj)     # every rate has a MAC energy


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_says_where_it_comes_from(name):
    raw = load(name).raw
    assert bare_numbers(raw) == []
    entries = number_entries(raw)
    assert len(entries) > 20
    for path, entry in entries:
        texts = [entry.get(k) for k in ("source", "estimate") if k in entry]
        assert texts and all(isinstance(t, str) and len(t) > 10 for t in texts), path
    srcs = load(name).sources()
    assert set(srcs) == {p for p, _ in entries}
    assert all(s.startswith(("source: ", "estimate: ")) for s in srcs.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_main_device_covers_every_combination_and_fallback_is_total(name):
    hw = load(name)
    for w in BITS_UNIVERSE_W:
        for a in BITS_UNIVERSE_A:
            device, mode, precision = hw.resolve(w, a)
            assert mode in ("native", "unpacked", "fallback")
            dev = hw.devices[device]
            assert precision in dev.peak_macs_per_s and precision in dev.e_mac_pj
            if mode == "fallback":
                assert device == hw.fallback.name
            else:
                assert device == hw.main.name
    for rule in hw.fallback.rules:
        assert rule.mode != "fallback"
    matrix = hw.support_matrix()
    assert len(matrix) == len(BITS_UNIVERSE_W) * 3 and (16, 16) in matrix


# --------------------------------------------------------------------------------------------
# support facts (DESIGN.md section 5)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["arm_neon", "arm_dot"])
def test_arm_four_bit_weights_with_int8_activations_are_unpacked_to_int8(name):
    hw = load(name)
    assert hw.resolve(4, 8) == ("cpu", "unpacked", "int8")
    assert hw.resolve(8, 8) == ("cpu", "native", "int8")
    assert hw.resolve(8, 4) == ("cpu", "unpacked", "int8")      # no int4 activation arithmetic


def test_arm_neon_has_no_fp16_arithmetic_but_arm_dot_does():
    assert load("arm_neon").resolve(16, 16) == ("cpu", "unpacked", "fp32")
    assert "fp16" not in load("arm_neon").main.peak_macs_per_s
    assert load("arm_dot").resolve(16, 16) == ("cpu", "native", "fp16")
    assert load("arm_dot").resolve(4, 16) == ("cpu", "unpacked", "fp16")


def test_cpu_profiles_fall_back_only_for_fp16_weights_with_integer_activations():
    for name in ("arm_neon", "arm_dot", "intel_vnni"):
        hw = load(name)
        falls = {(w, a) for (w, a), (_, mode, _) in hw.support_matrix(a_bits=BITS_UNIVERSE_A).items()
                 if mode == "fallback"}
        assert falls == {(16, a) for a in BITS_UNIVERSE_A if a != 16}, name
        assert hw.resolve(16, 8) == ("cpu_ref", "fallback", "fp32")


def test_apple_ane_support():
    hw = load("apple_ane")
    assert hw.resolve(4, 16) == ("ane", "unpacked", "fp16")
    assert hw.resolve(8, 8) == ("ane", "native", "int8")
    assert hw.resolve(16, 16) == ("ane", "native", "fp16")
    assert hw.resolve(4, 4) == ("gpu", "fallback", "fp16")


def test_hexagon_support():
    hw = load("hexagon")
    for w, a in [(4, 8), (8, 8), (8, 16), (16, 16), (4, 16)]:
        assert hw.resolve(w, a)[:2] == ("npu", "native"), (w, a)
    assert hw.resolve(8, 8)[2] == "int8" and hw.resolve(8, 16)[2] == "int16"
    assert hw.resolve(16, 16)[2] == "fp16"
    for w, a in [(2, 8), (3, 8), (5, 8), (6, 8), (8, 4)]:
        assert hw.resolve(w, a) == ("cpu", "fallback", "fp32"), (w, a)


def test_tensorrt_support():
    hw = load("tensorrt")
    assert hw.resolve(4, 16)[1] != "fallback"
    assert hw.resolve(4, 16) == ("gpu", "unpacked", "fp16")
    assert hw.resolve(8, 8) == ("gpu", "native", "int8")
    assert hw.resolve(16, 16) == ("gpu", "native", "fp16")
    assert hw.resolve(4, 4) == ("cuda", "fallback", "fp16")
    assert "fp8" not in hw.main.peak_macs_per_s              # FP8 needs Ada/Hopper, not Orin


def test_intel_vnni_support():
    hw = load("intel_vnni")
    assert hw.resolve(8, 8) == ("cpu", "native", "int8")
    assert hw.resolve(4, 8) == ("cpu", "unpacked", "int8")


# --------------------------------------------------------------------------------------------
# rates a reader can check by hand
# --------------------------------------------------------------------------------------------

def test_arm_dot_over_arm_neon_int8_rate_is_the_per_core_ratio():
    # arm_dot: Cortex-A76, 2 SDOT/cycle x 16 MAC = 32 MAC/cycle/core, 2.4 GHz, 4 cores.
    # arm_neon: Cortex-A72, 1 SMLAL/cycle x 8 MAC = 8 MAC/cycle/core, 1.8 GHz, 4 cores.
    expected = (32 * 2.4 * 4) / (8 * 1.8 * 4)
    dot = load("arm_dot").main.peak_macs_per_s["int8"]
    neon = load("arm_neon").main.peak_macs_per_s["int8"]
    assert dot == pytest.approx(32 * 2.4e9 * 4)
    assert neon == pytest.approx(8 * 1.8e9 * 4)
    assert dot / neon == pytest.approx(expected)


def test_tops_become_macs_per_second():
    # Orin GPU: 170 sparse INT8 TOPS -> 85 dense TOPS -> 42.5e12 MAC/s.
    assert load("tensorrt").main.peak_macs_per_s["int8"] == pytest.approx(85e12 / 2)
    # M4 Neural Engine: 38 TOPS claimed -> 19e12 MAC/s.
    assert load("apple_ane").main.peak_macs_per_s["int8"] == pytest.approx(38e12 / 2)
    # Xeon 8480+: 128 VNNI MAC/cycle/core x 2.0 GHz x 56 cores.
    assert load("intel_vnni").main.peak_macs_per_s["int8"] == pytest.approx(128 * 2.0e9 * 56)


def test_units_are_converted_to_si():
    hw = load("arm_dot")
    assert hw.main.bandwidth_bytes_per_s == pytest.approx(17.1e9)
    assert hw.main.layer_overhead_s == pytest.approx(6e-6)
    assert hw.main.unpack_s_per_weight == pytest.approx(0.0065e-9)
    assert hw.memory_budget_bytes == pytest.approx(6000e6)
    assert hw.partition_sync_s == pytest.approx(15e-6)
    assert hw.partition_bytes_per_s == pytest.approx(8.5e9)
    assert hw.convert_s_per_element == pytest.approx(0.18e-9)
    assert hw.main.e_mac_pj["int8"] == pytest.approx(0.0516)


def test_energy_is_horowitz_scaled_by_the_stated_factor():
    for name in SHIPPED:
        hw = load(name)
        factor = hw.raw["energy_scaling"]["factor"]["value"]
        for dev in hw.devices.values():
            if "int8" in dev.e_mac_pj:
                assert dev.e_mac_pj["int8"] == pytest.approx(0.3 * factor, rel=0.02), name
            if "fp32" in dev.e_mac_pj:
                assert dev.e_mac_pj["fp32"] == pytest.approx(4.6 * factor, rel=0.02), name
            assert dev.e_sram_pj_per_byte == pytest.approx(1.25 * factor, rel=0.02), name


# --------------------------------------------------------------------------------------------
# loading by path, hashing
# --------------------------------------------------------------------------------------------

def test_load_from_a_path_equals_the_shipped_profile(tmp_path):
    path = write(tmp_path, raw_copy("arm_dot"))
    for arg in (path, str(path)):
        hw = load(arg)
        assert hw.name == "arm_dot" and hw.path == str(path)
        assert hw.profile_hash() == load("arm_dot").profile_hash()
        assert hw == load("arm_dot") and hash(hw) == hash(load("arm_dot"))


def test_hash_changes_with_content(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["clock_ghz"]["value"] = 2.0
    assert load(write(tmp_path, raw)).profile_hash() != load("arm_dot").profile_hash()


def test_load_passes_a_profile_through():
    hw = load("hexagon")
    assert load(hw) is hw


# --------------------------------------------------------------------------------------------
# validation errors: a mutated copy of a real profile, the message names file and field
# --------------------------------------------------------------------------------------------

def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(QuantmooError) as info:
        load("foo")
    msg = str(info.value)
    assert "Unknown hardware 'foo'" in msg
    assert "{apple_ane, arm_dot, arm_neon, hexagon, intel_vnni, tensorrt}" in msg
    assert "path to a profile YAML" in msg


def test_non_string_argument_is_rejected():
    with pytest.raises(QuantmooError, match="profile name or a path"):
        load(42)


def test_missing_file(tmp_path):
    with pytest.raises(QuantmooError, match="File not found"):
        load(tmp_path / "nope.yaml")


def test_missing_field(tmp_path):
    raw = raw_copy("arm_dot")
    del raw["devices"]["cpu"]["clock_ghz"]
    assert "missing field 'devices.cpu.clock_ghz'" in load_error(tmp_path, raw)


def test_missing_top_level_field(tmp_path):
    raw = raw_copy("arm_dot")
    del raw["partition"]
    assert "missing field 'partition'" in load_error(tmp_path, raw)


def test_negative_rate(tmp_path):
    raw = raw_copy("tensorrt")
    raw["devices"]["gpu"]["peak_tops"]["int8"]["value"] = -1
    msg = load_error(tmp_path, raw, "tensorrt")
    assert "field 'devices.gpu.peak_tops.int8' must be > 0; got -1" in msg


@pytest.mark.parametrize("field", ["memory_bandwidth_gbs", "clock_ghz", "cores"])
def test_zero_bandwidth_clock_or_cores(tmp_path, field):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"][field]["value"] = 0
    assert f"field 'devices.cpu.{field}' must be > 0; got 0" in load_error(tmp_path, raw)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_device_has_achievable_fractions_with_provenance(name):
    raw = load(name).raw
    for dev_name, dev in raw["devices"].items():
        for k in ("bandwidth_fraction", "compute_fraction"):
            entry = dev["achievable"][k]
            assert 0 < entry["value"] <= 1 and (entry.get("source") or entry.get("estimate")), (dev_name, k)
        d = load(name).devices[dev_name]
        assert d.bandwidth_fraction == dev["achievable"]["bandwidth_fraction"]["value"]


def test_achievable_fraction_above_one_and_default(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["achievable"]["compute_fraction"]["value"] = 1.5
    assert ("field 'devices.cpu.achievable.compute_fraction' must be in (0, 1] (a fraction of the peak); got 1.5"
            in load_error(tmp_path, raw))
    raw = raw_copy("arm_dot")
    del raw["devices"]["cpu"]["achievable"]
    assert load(write(tmp_path, raw)).main.bandwidth_fraction == 1.0   # optional: pure peak roofline


def test_negative_overhead(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["layer_overhead_us"]["value"] = -3
    assert "field 'devices.cpu.layer_overhead_us' must be >= 0; got -3" in load_error(tmp_path, raw)


def test_fractional_cores(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["cores"]["value"] = 2.5
    assert "field 'devices.cpu.cores' must be a whole number" in load_error(tmp_path, raw)


def test_number_without_source_or_estimate(tmp_path):
    raw = raw_copy("arm_dot")
    del raw["devices"]["cpu"]["macs_per_cycle_per_core"]["int8"]["source"]
    msg = load_error(tmp_path, raw)
    assert "field 'devices.cpu.macs_per_cycle_per_core.int8' has neither 'source' nor 'estimate'" in msg


def test_bare_number_is_rejected(tmp_path):
    raw = raw_copy("arm_dot")
    raw["memory_budget_mb"] = 6000
    msg = load_error(tmp_path, raw)
    assert "field 'memory_budget_mb' must be a mapping {value: X, source:" in msg


def test_non_numeric_value(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["clock_ghz"]["value"] = "fast"
    assert "field 'devices.cpu.clock_ghz' must be a number; got 'fast'" in load_error(tmp_path, raw)


def test_unknown_precision_key(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["macs_per_cycle_per_core"]["int3"] = {"value": 4, "estimate": "typo test"}
    msg = load_error(tmp_path, raw)
    assert "unknown precision 'int3' in field 'devices.cpu.macs_per_cycle_per_core'" in msg
    assert "{int4, int8, int16, fp8, fp16, fp32}" in msg


def test_unknown_precision_in_a_rule(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["support"][0]["precision"] = "int7"
    msg = load_error(tmp_path, raw)
    assert "unknown precision 'int7' in field 'devices.cpu.support[0].precision'" in msg
    assert "int16" in msg


def test_unknown_mode(tmp_path):
    raw = raw_copy("hexagon")
    raw["devices"]["npu"]["support"][1]["mode"] = "emulated"
    msg = load_error(tmp_path, raw, "hexagon")
    assert "field 'devices.npu.support[1].mode' must be one of {native, unpacked, fallback}" in msg
    assert "'emulated'" in msg


def test_rule_bits_outside_the_universe(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["support"][1]["weight_bits"] = [4, 7]
    msg = load_error(tmp_path, raw)
    assert "field 'devices.cpu.support[1].weight_bits' values must be in {2, 3, 4, 5, 6, 8, 16}; got 7" in msg


def test_fallback_device_that_does_not_exist(tmp_path):
    raw = raw_copy("hexagon")
    raw["fallback_device"] = "gpu"
    msg = load_error(tmp_path, raw, "hexagon")
    assert "field 'fallback_device' names 'gpu', which is not a defined device" in msg
    assert "{npu, cpu}" in msg


def test_main_device_that_does_not_exist(tmp_path):
    raw = raw_copy("hexagon")
    raw["main_device"] = "dsp"
    msg = load_error(tmp_path, raw, "hexagon")
    assert "field 'main_device' names 'dsp'" in msg and "{npu, cpu}" in msg


def test_main_rules_leaving_combinations_uncovered(tmp_path):
    raw = raw_copy("hexagon")
    raw["devices"]["npu"]["support"].pop()          # drop the catch-all fallback rule
    msg = load_error(tmp_path, raw, "hexagon")
    assert "main device 'npu'" in msg and "devices.npu.support" in msg
    assert "(2, 2)" in msg and "uncovered" in msg


def test_fallback_rules_that_are_not_total(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu_ref"]["support"] = [
        {"weight_bits": [8], "activation_bits": [8], "mode": "unpacked", "precision": "fp32"}]
    msg = load_error(tmp_path, raw)
    assert "fallback device 'cpu_ref'" in msg and "devices.cpu_ref.support" in msg
    assert "must be total" in msg


def test_fallback_device_with_a_fallback_rule(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu_ref"]["support"].insert(
        0, {"weight_bits": [2], "activation_bits": "any", "mode": "fallback"})
    msg = load_error(tmp_path, raw)
    assert "fallback device 'cpu_ref'" in msg and "devices.cpu_ref.support[0]" in msg


def test_null_fallback_device_with_fallback_rules(tmp_path):
    raw = raw_copy("arm_dot")
    raw["fallback_device"] = None
    msg = load_error(tmp_path, raw)
    assert "field 'fallback_device' is null but main device 'cpu' has fallback rules" in msg


def test_null_fallback_device_is_fine_when_nothing_falls_back(tmp_path):
    raw = raw_copy("arm_dot")
    raw["fallback_device"] = None
    raw["devices"]["cpu"]["support"][-1] = {
        "weight_bits": "any", "activation_bits": "any", "mode": "unpacked", "precision": "fp32"}
    del raw["devices"]["cpu_ref"]
    hw = load(write(tmp_path, raw))
    assert hw.fallback is None and hw.resolve(16, 8) == ("cpu", "unpacked", "fp32")


def test_rule_precision_without_a_peak_rate(tmp_path):
    raw = raw_copy("arm_neon")
    raw["devices"]["cpu"]["support"][3]["precision"] = "fp16"   # A72 has no fp16 arithmetic
    msg = load_error(tmp_path, raw, "arm_neon")
    assert "field 'devices.cpu.support[3].precision' is 'fp16'" in msg
    assert "no peak rate" in msg and "{int8, fp32}" in msg


def test_rule_precision_without_a_mac_energy(tmp_path):
    raw = raw_copy("arm_dot")
    del raw["devices"]["cpu"]["energy_pj"]["mac"]["fp16"]
    msg = load_error(tmp_path, raw)
    assert "'energy_pj.mac.fp16'" in msg and "devices.cpu.support[3].precision" in msg


def test_native_rule_without_precision(tmp_path):
    raw = raw_copy("arm_dot")
    del raw["devices"]["cpu"]["support"][0]["precision"]
    assert "missing field 'devices.cpu.support[0].precision'" in load_error(tmp_path, raw)


def test_both_rate_forms(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["peak_tops"] = {"int8": {"value": 1, "estimate": "x"}}
    msg = load_error(tmp_path, raw)
    assert "both 'macs_per_cycle_per_core' and 'peak_tops'" in msg and "devices.cpu" in msg


def test_no_rate_form(tmp_path):
    raw = raw_copy("tensorrt")
    del raw["devices"]["gpu"]["peak_tops"]
    msg = load_error(tmp_path, raw, "tensorrt")
    assert "missing field 'devices.gpu.macs_per_cycle_per_core' (or 'devices.gpu.peak_tops')" in msg


def test_unknown_top_level_key(tmp_path):
    raw = raw_copy("arm_dot")
    raw["memory_budget_gb"] = {"value": 8, "estimate": "typo"}
    msg = load_error(tmp_path, raw)
    assert "unknown top-level field 'memory_budget_gb'" in msg and "memory_budget_mb" in msg


def test_unknown_device_key(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"]["memory_bandwith_gbs"] = raw["devices"]["cpu"].pop("memory_bandwidth_gbs")
    msg = load_error(tmp_path, raw)
    assert "unknown field 'devices.cpu.memory_bandwith_gbs'" in msg


def test_wrong_schema_version(tmp_path):
    raw = raw_copy("arm_dot")
    raw["schema_version"] = 2
    assert "field 'schema_version' must be 1; got 2" in load_error(tmp_path, raw)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "arm_dot.yaml"
    path.write_text("name: arm_dot\ndevices: [unclosed\n", encoding="utf-8")
    with pytest.raises(QuantmooError) as info:
        load(path)
    assert "arm_dot.yaml" in str(info.value) and "malformed YAML" in str(info.value)


@pytest.mark.parametrize("doc", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_document(tmp_path, doc):
    path = tmp_path / "arm_dot.yaml"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(QuantmooError) as info:
        load(path)
    msg = str(info.value)
    assert "arm_dot.yaml" in msg and "must be a YAML mapping" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "arm_dot.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(QuantmooError, match="arm_dot.yaml.*empty"):
        load(path)


def test_non_mapping_device(tmp_path):
    raw = raw_copy("arm_dot")
    raw["devices"]["cpu"] = ["not", "a", "mapping"]
    assert "field 'devices.cpu' must be a mapping" in load_error(tmp_path, raw)
