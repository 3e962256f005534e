"""Hardware profiles: what a target executes natively, how fast, and at what energy.

A hardware profile is a YAML file (the six shipped ones live in ``profiles/``) that describes
one deployment target as one *main* device plus, optionally, a *fallback* device that takes
the layers the main device cannot run (a CPU behind an NPU, a reference kernel path behind an
optimized one). Every number in a profile is a mapping ``{value: X, source: "..."}`` (a public
document) or ``{value: X, estimate: "reasoning"}``; :func:`load` rejects a number that says
neither.

Each device carries ordered *support rules* mapping a layer's ``(weight_bits, activation_bits)``
to how the device executes it:

``native``
    the device has arithmetic at that precision (e.g. int8 x int8 with SDOT),
``unpacked``
    narrower storage is widened to a native compute type first (4-bit weights unpacked to
    int8, palettized weights decompressed to fp16): the bandwidth benefit remains, the compute
    rate is the wider type's,
``fallback``
    the main device cannot run it; the layer goes to the profile's fallback device (with a
    graph partition, costed by the cost model).

Units in the YAML are the ones people quote (GHz, GB/s, µs, ns, pJ, W, MB); the
:class:`Device` and :class:`HardwareProfile` objects hold SI values (MAC/s, bytes/s, s, J per
unit in pJ where the field name says so). ``MB`` is 10^6 bytes, like quantmoo's ``size_mb``.

Examples
--------
>>> from quantmoo.hardware.profile import load, names
>>> names()[:2]
['apple_ane', 'arm_dot']
>>> hw = load("hexagon")
>>> hw.resolve(4, 8)
('npu', 'native', 'int8')
>>> hw.resolve(2, 8)[:2]
('cpu', 'fallback')
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ..errors import QuantmooError, brief
from ..io import load_yaml

__all__ = [
    "PRECISIONS", "MODES", "BITS_UNIVERSE_W", "BITS_UNIVERSE_A", "SCHEMA_VERSION",
    "SupportRule", "Device", "HardwareProfile", "load", "names", "PROFILES_DIR",
]

#: Compute precisions a device may declare a peak rate / MAC energy for.
PRECISIONS = ("int4", "int8", "int16", "fp8", "fp16", "fp32")
#: How a device executes a (weight_bits, activation_bits) combination.
MODES = ("native", "unpacked", "fallback")
#: Bit-widths every main device's rules must cover (weights, activations).
BITS_UNIVERSE_W = (2, 3, 4, 5, 6, 8, 16)
BITS_UNIVERSE_A = (2, 3, 4, 5, 6, 8, 16)
SCHEMA_VERSION = 1
#: Largest number a profile may give, in its YAML unit (GHz, GB/s, pJ, ...). Real figures are
#: far below; the bound keeps every derived SI rate and per-model energy finite in float64.
MAX_VALUE = 1e12

#: Directory of the shipped profiles (``<name>.yaml``).
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

_TOP_KEYS = ("schema_version", "name", "title", "reference_device", "main_device",
             "fallback_device", "memory_budget_mb", "convert_op", "partition",
             "energy_scaling", "devices")
_DEVICE_KEYS = ("title", "clock_ghz", "cores", "macs_per_cycle_per_core", "peak_tops",
                "memory_bandwidth_gbs", "layer_overhead_us", "unpack_ns_per_weight",
                "static_power_w", "energy_pj", "support", "achievable", "runtime_ops")
#: Optional ``runtime_ops`` block: what a runtime runs around the layers, measured (host profiles).
_RUNTIME_OPS_KEYS = ("run_overhead_us", "op_overhead_us", "elementwise_gbs", "cache_gbs", "cache_mb", "kernel_tops",
                     "matmul_nbits_tops", "dequantize_ns_per_weight",
                     "activation_ns_per_element")
_KERNEL_RATE_KEYS = tuple(f"{w}_weight_{k}" for w in ("constant", "runtime") for k in ("1x1", "kxk", "matmul"))
#: Weight storage formats of a QDQ export: ONNX type x granularity.
DEQUANT_FORMATS = tuple(f"{t}_{g}" for t in ("int8", "uint8", "int4", "uint4")
                        for g in ("per_tensor", "per_channel", "per_group", "per_channel_kn", "per_group_kn"))
#: Formats a fused MatMulNBits may be measured for (a MatMul's weight; float input).
NBITS_FORMATS = tuple(f"{t}_{g}" for t in ("int8", "uint8", "int4", "uint4")
                      for g in ("per_tensor", "per_channel", "per_group"))
_ACT_OP_KEYS = ("quantize", "dequantize", "clip", "cast_fp16")
_ACHIEVABLE_KEYS = ("bandwidth_fraction", "compute_fraction")
_ENERGY_KEYS = ("mac", "dram_byte", "sram_byte")
_RULE_KEYS = ("weight_bits", "activation_bits", "mode", "precision", "note")
_NUMBER_KEYS = ("value", "source", "estimate")


def _braces(items: Iterable[Any]) -> str:
    return "{" + ", ".join(str(i) for i in items) + "}"


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SupportRule:
    """One support rule: which bit-widths it matches and how the device executes them.

    ``weight_bits`` / ``activation_bits`` are frozensets of ints, or ``None`` for ``any``.
    ``precision`` is ``None`` for ``fallback`` rules.
    """

    weight_bits: Optional[frozenset]
    activation_bits: Optional[frozenset]
    mode: str
    precision: Optional[str]
    note: str = ""

    def matches(self, w_bits: int, a_bits: int) -> bool:
        return ((self.weight_bits is None or w_bits in self.weight_bits)
                and (self.activation_bits is None or a_bits in self.activation_bits))


@dataclass(frozen=True, eq=False)
class Device:
    """One compute device of a hardware profile (a CPU cluster, an NPU, a GPU).

    Attributes
    ----------
    name, title : str
        Key in the profile's ``devices`` mapping, and a human description.
    peak_macs_per_s : mapping of str to float
        Peak multiply-accumulates per second per compute precision: either
        ``macs_per_cycle_per_core * clock * cores`` or ``peak_tops * 1e12 / 2``.
    bandwidth_bytes_per_s : float
        Off-chip memory bandwidth.
    layer_overhead_s : float
        Fixed dispatch cost per layer.
    unpack_s_per_weight : float
        Time to widen one packed sub-byte weight to the compute type (mode ``unpacked``).
    static_power_w : float
        Power drawn while the device runs that the per-op energies do not cover.
    e_mac_pj : mapping of str to float
        Energy of one MAC per precision, pJ.
    e_dram_pj_per_byte, e_sram_pj_per_byte : float
        Energy per byte moved from DRAM / on-chip SRAM, pJ.
    rules : tuple of SupportRule
        Ordered support rules; the first match wins.
    bandwidth_fraction, compute_fraction : float
        Achievable fractions of the peak bandwidth and of the peak MAC rates that real kernels
        sustain (optional ``achievable`` block of the YAML; 1.0, the pure peak roofline, when
        absent). The cost model uses ``peak * fraction``; ``peak_macs_per_s`` and
        ``bandwidth_bytes_per_s`` stay the datasheet peaks.
    runtime_ops : mapping
        Optional measured costs of what a runtime runs around the layers (the ``runtime_ops``
        block, SI units): ``run_overhead_s`` per inference, ``op_overhead_s`` per light node (the
        QDQ and non-layer nodes; else ``layer_overhead_s``), ``elementwise_bytes_per_s`` of the
        graph's non-layer ops, ``kernel_macs_per_s`` {``constant_weight_*``, ``runtime_weight_*``}
        x {``1x1``, ``kxk``, ``matmul``} (fp32 pointwise / spatial convolutions and matrix products
        whose weight is an initializer / is dequantized on every run), ``nbits_macs_per_s`` per
        weight format (a MatMul layer with a dequantized weight and a float input runs as onnxruntime's
        fused MatMulNBits), 
        ``dequantize_s_per_weight`` per weight format (``DEQUANT_FORMATS``), and
        ``activation_s_per_element`` {``quantize``, ``dequantize``, ``clip``, ``cast_fp16``
        (an fp32 -> fp16 -> fp32 round trip)}, and ``cache_bytes_per_s`` / ``cache_bytes`` (a model
        whose float32 weights fit in that cache reads them from it on every run). A device with
        ``runtime_ops`` executes weights as the runtime materialises them: its layer kernels read
        ``n_params`` x the compute precision's width. Empty for the shipped profiles.
    """

    name: str
    title: str
    peak_macs_per_s: Mapping[str, float]
    bandwidth_bytes_per_s: float
    layer_overhead_s: float
    unpack_s_per_weight: float
    static_power_w: float
    e_mac_pj: Mapping[str, float]
    e_dram_pj_per_byte: float
    e_sram_pj_per_byte: float
    rules: Tuple[SupportRule, ...]
    bandwidth_fraction: float = 1.0
    compute_fraction: float = 1.0
    runtime_ops: Mapping[str, Any] = field(default_factory=dict)

    def rule_for(self, w_bits: int, a_bits: int) -> SupportRule:
        """The first support rule matching ``(w_bits, a_bits)``."""
        for rule in self.rules:
            if rule.matches(w_bits, a_bits):
                return rule
        raise QuantmooError(
            f"No support rule of device '{self.name}' matches weight_bits={w_bits!r}, "
            f"activation_bits={a_bits!r}")

    def resolve(self, w_bits: int, a_bits: int) -> Tuple[str, Optional[str]]:
        """``(mode, precision)`` of the first matching rule (precision is None for fallback)."""
        rule = self.rule_for(w_bits, a_bits)
        return rule.mode, rule.precision

    def __repr__(self) -> str:
        rates = ", ".join(f"{k}={v:.3g}" for k, v in self.peak_macs_per_s.items())
        return f"Device({self.name!r}, {self.title!r}, peak MAC/s: {rates})"


@dataclass(frozen=True, eq=False)
class HardwareProfile:
    """A deployment target: a main device, an optional fallback device, and global costs.

    Attributes
    ----------
    name, title, reference_device : str
        Profile name (file stem for shipped profiles), a title, and the concrete device the
        numbers describe.
    main : Device
        Where layers run when the main device's rules say ``native`` or ``unpacked``.
    fallback : Device or None
        Where layers go when the main device's rules say ``fallback``.
    memory_budget_bytes : float
        Memory of the reference device usable for the model (``memory_budget_mb`` * 1e6).
    convert_s_per_element, convert_pj_per_element : float
        Cost of a requantize/convert between layers of different activation precision, per
        activation element, on the main device.
    partition_sync_s : float
        Fixed cost of each graph boundary between main and fallback device.
    partition_bytes_per_s : float
        Bandwidth for moving the boundary tensor across such a boundary.
    path : str or None
        The YAML file the profile was read from.
    raw : dict
        The parsed YAML (treat as read-only).
    """

    name: str
    title: str
    reference_device: str
    main: Device
    fallback: Optional[Device]
    memory_budget_bytes: float
    convert_s_per_element: float
    convert_pj_per_element: float
    partition_sync_s: float
    partition_bytes_per_s: float
    path: Optional[str]
    raw: Dict[str, Any] = field(repr=False)
    _hash: str = field(default="", repr=False)

    # -- support -------------------------------------------------------------------------
    @property
    def devices(self) -> Dict[str, Device]:
        """The main and (if any) fallback device by name."""
        out = {self.main.name: self.main}
        if self.fallback is not None:
            out[self.fallback.name] = self.fallback
        return out

    def resolve(self, w_bits: int, a_bits: int) -> Tuple[str, str, str]:
        """Where and how a layer with ``(w_bits, a_bits)`` runs.

        Returns
        -------
        device, mode, precision : str
            ``(main.name, mode, precision)`` when the main device runs it natively or
            unpacked; ``(fallback.name, "fallback", precision on the fallback device)``
            otherwise.
        """
        mode, precision = self.main.resolve(w_bits, a_bits)
        if mode != "fallback":
            return self.main.name, mode, precision
        if self.fallback is None:  # validation makes this unreachable for loaded profiles
            raise QuantmooError(f"Hardware '{self.name}' has no fallback device for "
                                f"weight_bits={w_bits}, activation_bits={a_bits}")
        _, fb_precision = self.fallback.resolve(w_bits, a_bits)
        return self.fallback.name, "fallback", fb_precision

    def support_matrix(self, w_bits: Iterable[int] = BITS_UNIVERSE_W,
                       a_bits: Iterable[int] = (4, 8, 16)) -> Dict[Tuple[int, int], Tuple[str, str, str]]:
        """``{(w, a): (device, mode, precision)}`` for every combination asked for."""
        a_bits = tuple(a_bits)
        return {(w, a): self.resolve(w, a) for w in w_bits for a in a_bits}

    def device_for(self, w_bits: int, a_bits: int) -> Device:
        """The :class:`Device` object that runs ``(w_bits, a_bits)``."""
        return self.devices[self.resolve(w_bits, a_bits)[0]]

    # -- provenance ------------------------------------------------------------------------
    def sources(self) -> Dict[str, str]:
        """Every number's provenance: ``{"devices.cpu.clock_ghz": "source: ..."}``.

        Entries with both a source and an estimate list both, separated by ``"; "``.
        """
        out: Dict[str, str] = {}
        _walk_numbers(self.raw, "", out)
        return out

    def profile_hash(self) -> str:
        """First 16 hex digits of the sha256 of the canonical (sorted-key JSON) YAML content."""
        return self._hash or _canonical_hash(self.raw)

    def to_dict(self) -> Dict[str, Any]:
        """Summary for ``results.json``."""
        return {
            "name": self.name,
            "title": self.title,
            "reference_device": self.reference_device,
            "main_device": self.main.name,
            "fallback_device": self.fallback.name if self.fallback is not None else None,
            "hash": self.profile_hash(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HardwareProfile):
            return NotImplemented
        return self.name == other.name and self.profile_hash() == other.profile_hash()

    def __hash__(self) -> int:
        return hash((self.name, self.profile_hash()))

    def __repr__(self) -> str:
        fb = self.fallback.name if self.fallback is not None else None
        return (f"HardwareProfile({self.name!r}, main={self.main.name!r}, fallback={fb!r}, "
                f"reference_device={self.reference_device!r})")


def _canonical_hash(raw: Any) -> str:
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _walk_numbers(node: Any, path: str, out: Dict[str, str]) -> None:
    if isinstance(node, dict):
        if "value" in node and ("source" in node or "estimate" in node):
            parts = [f"{k}: {node[k]}" for k in ("source", "estimate") if node.get(k)]
            out[path] = "; ".join(parts)
            return
        for k, v in node.items():
            _walk_numbers(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk_numbers(v, f"{path}[{i}]", out)


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------

class _Parser:
    """Validates one profile document; every error names the file and the dotted field."""

    def __init__(self, label: str):
        self.label = label

    def fail(self, msg: str) -> QuantmooError:
        return QuantmooError(f"{self.label}: {msg}")

    # -- generic helpers -------------------------------------------------------------------
    def mapping(self, node: Any, path: str) -> dict:
        if not isinstance(node, dict):
            raise self.fail(f"field '{path}' must be a mapping; got {type(node).__name__} {brief(node)}")
        return node

    def get(self, node: dict, key: str, path: str) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in node:
            raise self.fail(f"missing field '{full}'")
        return node[key]

    def keys(self, node: dict, allowed: Iterable[str], path: str) -> None:
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                where = f"field '{path}.{key}'" if path else f"top-level field '{key}'"
                raise self.fail(f"unknown {where}; allowed fields are {_braces(allowed)}")

    def string(self, node: dict, key: str, path: str, allow_none: bool = False) -> Optional[str]:
        value = self.get(node, key, path)
        full = f"{path}.{key}" if path else key
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"field '{full}' must be a non-empty string; got {brief(value)}")
        return value

    def number(self, node: dict, key: str, path: str, positive: bool = True,
               integer: bool = False) -> float:
        """A ``{value, source|estimate}`` entry; returns the value as float."""
        entry = self.get(node, key, path)
        full = f"{path}.{key}" if path else key
        return self.number_entry(entry, full, positive=positive, integer=integer)

    def number_entry(self, entry: Any, full: str, positive: bool = True,
                     integer: bool = False) -> float:
        if not isinstance(entry, dict):
            raise self.fail(
                f"field '{full}' must be a mapping {{value: X, source: \"...\"}} or "
                f"{{value: X, estimate: \"...\"}}; got {brief(entry)}")
        self.keys(entry, _NUMBER_KEYS, full)
        if "value" not in entry:
            raise self.fail(f"missing field '{full}.value'")
        texts = [entry.get(k) for k in ("source", "estimate") if k in entry]
        if not texts:
            raise self.fail(
                f"field '{full}' has neither 'source' nor 'estimate'; every number must say "
                f"where it comes from")
        for k in ("source", "estimate"):
            if k in entry and (not isinstance(entry[k], str) or not entry[k].strip()):
                raise self.fail(f"field '{full}.{k}' must be a non-empty string; got {brief(entry[k])}")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"field '{full}' must be a number; got {brief(value)}")
        try:
            v = float(value)
        except OverflowError:  # an int literal beyond the float range
            v = float("inf")
        if not math.isfinite(v) or abs(v) > MAX_VALUE:
            raise self.fail(f"field '{full}' must be a finite number <= {MAX_VALUE:g}; got {brief(value)}")
        if positive and not v > 0:
            raise self.fail(f"field '{full}' must be > 0; got {brief(value)}")
        if not positive and v < 0:
            raise self.fail(f"field '{full}' must be >= 0; got {brief(value)}")
        if integer and not v.is_integer():
            raise self.fail(f"field '{full}' must be a whole number; got {brief(value)}")
        return v

    def precision_table(self, node: Any, path: str, positive: bool = True) -> Dict[str, float]:
        node = self.mapping(node, path)
        if not node:
            raise self.fail(f"field '{path}' must name at least one precision of "
                            f"{_braces(PRECISIONS)}")
        out = {}
        for key, entry in node.items():
            if key not in PRECISIONS:
                raise self.fail(f"unknown precision {brief(key)} in field '{path}'; allowed "
                                f"precisions are {_braces(PRECISIONS)}")
            out[key] = self.number_entry(entry, f"{path}.{key}", positive=positive)
        return out

    def bits(self, rule: dict, key: str, path: str, universe: Tuple[int, ...]) -> Optional[frozenset]:
        full = f"{path}.{key}"
        value = self.get(rule, key, path)
        if value == "any":
            return None
        if not isinstance(value, list) or not value:
            raise self.fail(f"field '{full}' must be a non-empty list of bit-widths or 'any'; "
                            f"got {brief(value)}")
        for b in value:
            if isinstance(b, bool) or not isinstance(b, int) or b not in universe:
                raise self.fail(f"field '{full}' values must be in {_braces(universe)}; got {brief(b)}")
        return frozenset(value)

    # -- profile parts ---------------------------------------------------------------------
    def rules(self, node: Any, path: str, dev_name: str,
              peak: Mapping[str, float], e_mac: Mapping[str, float]) -> Tuple[SupportRule, ...]:
        if not isinstance(node, list) or not node:
            raise self.fail(f"field '{path}' must be a non-empty list of rules")
        out = []
        for i, rule in enumerate(node):
            rpath = f"{path}[{i}]"
            rule = self.mapping(rule, rpath)
            self.keys(rule, _RULE_KEYS, rpath)
            wb = self.bits(rule, "weight_bits", rpath, BITS_UNIVERSE_W)
            ab = self.bits(rule, "activation_bits", rpath, BITS_UNIVERSE_A)
            mode = self.get(rule, "mode", rpath)
            if mode not in MODES:
                raise self.fail(f"field '{rpath}.mode' must be one of {_braces(MODES)}; got {brief(mode)}")
            precision = rule.get("precision")
            if mode == "fallback":
                if precision is not None:
                    raise self.fail(f"field '{rpath}.precision' must be omitted for a fallback "
                                    f"rule (the fallback device decides); got {brief(precision)}")
            else:
                if precision is None:
                    raise self.fail(f"missing field '{rpath}.precision' (required for mode {brief(mode)})")
                if precision not in PRECISIONS:
                    raise self.fail(f"unknown precision {brief(precision)} in field '{rpath}.precision'; "
                                    f"allowed precisions are {_braces(PRECISIONS)}")
                if precision not in peak:
                    raise self.fail(
                        f"field '{rpath}.precision' is {brief(precision)} but device '{dev_name}' has no "
                        f"peak rate for it (it has {_braces(peak)})")
                if precision not in e_mac:
                    raise self.fail(
                        f"field '{rpath}.precision' is {brief(precision)} but device '{dev_name}' has no "
                        f"'energy_pj.mac.{precision}' entry (it has {_braces(e_mac)})")
            note = rule.get("note", "")
            if note is None:
                note = ""
            if not isinstance(note, str):
                raise self.fail(f"field '{rpath}.note' must be a string; got {brief(note)}")
            out.append(SupportRule(wb, ab, mode, precision, note))
        return tuple(out)

    def device(self, name: str, node: Any) -> Device:
        path = f"devices.{name}"
        node = self.mapping(node, path)
        self.keys(node, _DEVICE_KEYS, path)
        title = self.string(node, "title", path)
        has_mpc, has_tops = "macs_per_cycle_per_core" in node, "peak_tops" in node
        if has_mpc and has_tops:
            raise self.fail(f"device '{name}' gives both 'macs_per_cycle_per_core' and 'peak_tops' "
                            f"({path}); give exactly one")
        if not has_mpc and not has_tops:
            raise self.fail(f"missing field '{path}.macs_per_cycle_per_core' (or '{path}.peak_tops')")
        clock = self.number(node, "clock_ghz", path) if (has_mpc or "clock_ghz" in node) else None
        cores = (self.number(node, "cores", path, integer=True)
                 if (has_mpc or "cores" in node) else None)
        if has_mpc:
            per_core = self.precision_table(node["macs_per_cycle_per_core"],
                                            f"{path}.macs_per_cycle_per_core")
            peak = {p: m * clock * 1e9 * cores for p, m in per_core.items()}
        else:
            tops = self.precision_table(node["peak_tops"], f"{path}.peak_tops")
            peak = {p: t * 1e12 / 2.0 for p, t in tops.items()}
        bandwidth = self.number(node, "memory_bandwidth_gbs", path) * 1e9
        overhead = self.number(node, "layer_overhead_us", path, positive=False) * 1e-6
        unpack = self.number(node, "unpack_ns_per_weight", path, positive=False) * 1e-9
        static = self.number(node, "static_power_w", path, positive=False)
        energy = self.mapping(self.get(node, "energy_pj", path), f"{path}.energy_pj")
        epath = f"{path}.energy_pj"
        self.keys(energy, _ENERGY_KEYS, epath)
        e_mac = self.precision_table(self.get(energy, "mac", epath), f"{epath}.mac", positive=False)
        e_dram = self.number(energy, "dram_byte", epath, positive=False)
        e_sram = self.number(energy, "sram_byte", epath, positive=False)
        rules = self.rules(self.get(node, "support", path), f"{path}.support", name, peak, e_mac)
        fractions = {k: 1.0 for k in _ACHIEVABLE_KEYS}
        if "achievable" in node:
            apath = f"{path}.achievable"
            ach = self.mapping(node["achievable"], apath)
            self.keys(ach, _ACHIEVABLE_KEYS, apath)
            for k in _ACHIEVABLE_KEYS:
                v = self.number(ach, k, apath)
                if v > 1:
                    raise self.fail(f"field '{apath}.{k}' must be in (0, 1] (a fraction of the peak); got {v:g}")
                fractions[k] = v
        rt: Dict[str, Any] = {}
        if "runtime_ops" in node:
            rpath = f"{path}.runtime_ops"
            ro = self.mapping(node["runtime_ops"], rpath)
            self.keys(ro, _RUNTIME_OPS_KEYS, rpath)
            if "run_overhead_us" in ro:
                rt["run_overhead_s"] = self.number(ro, "run_overhead_us", rpath, positive=False) * 1e-6
            if "cache_gbs" in ro or "cache_mb" in ro:
                rt["cache_bytes_per_s"] = self.number(ro, "cache_gbs", rpath) * 1e9
                rt["cache_bytes"] = self.number(ro, "cache_mb", rpath) * 1e6
            if "op_overhead_us" in ro:
                rt["op_overhead_s"] = self.number(ro, "op_overhead_us", rpath, positive=False) * 1e-6
            if "elementwise_gbs" in ro:
                rt["elementwise_bytes_per_s"] = self.number(ro, "elementwise_gbs", rpath) * 1e9
            for key, allowed, scale, out in (("kernel_tops", _KERNEL_RATE_KEYS, 1e12 / 2, "kernel_macs_per_s"),
                                             ("matmul_nbits_tops", NBITS_FORMATS, 1e12 / 2, "nbits_macs_per_s"),
                                             ("dequantize_ns_per_weight", DEQUANT_FORMATS, 1e-9,
                                              "dequantize_s_per_weight"),
                                             ("activation_ns_per_element", _ACT_OP_KEYS, 1e-9,
                                              "activation_s_per_element")):
                if key in ro:
                    sub = self.mapping(ro[key], f"{rpath}.{key}")
                    self.keys(sub, allowed, f"{rpath}.{key}")
                    rt[out] = MappingProxyType({k: self.number(sub, k, f"{rpath}.{key}", positive=key.endswith("_tops"))
                                                * scale for k in sub})
        return Device(bandwidth_fraction=fractions["bandwidth_fraction"], runtime_ops=MappingProxyType(rt),
                      compute_fraction=fractions["compute_fraction"],
                      name=name, title=title, peak_macs_per_s=MappingProxyType(peak),
                      bandwidth_bytes_per_s=bandwidth, layer_overhead_s=overhead,
                      unpack_s_per_weight=unpack, static_power_w=static,
                      e_mac_pj=MappingProxyType(e_mac), e_dram_pj_per_byte=e_dram,
                      e_sram_pj_per_byte=e_sram, rules=rules)

    def uncovered(self, dev: Device) -> List[Tuple[int, int]]:
        return [(w, a) for w in BITS_UNIVERSE_W for a in BITS_UNIVERSE_A
                if not any(r.matches(w, a) for r in dev.rules)]

    def profile(self, data: Any, path: Optional[str], expect_name: Optional[str]) -> HardwareProfile:
        if not isinstance(data, dict):
            raise self.fail(f"a hardware profile must be a YAML mapping of fields "
                            f"{_braces(_TOP_KEYS)}; got {type(data).__name__}")
        self.keys(data, _TOP_KEYS, "")
        version = self.get(data, "schema_version", "")
        if version != SCHEMA_VERSION:
            raise self.fail(f"field 'schema_version' must be {SCHEMA_VERSION}; got {brief(version)}")
        name = self.string(data, "name", "")
        if expect_name is not None and name != expect_name:
            raise self.fail(f"field 'name' must match the file name {expect_name!r}; got {brief(name)}")
        title = self.string(data, "title", "")
        reference = self.string(data, "reference_device", "")
        budget = self.number(data, "memory_budget_mb", "") * 1e6

        conv = self.mapping(self.get(data, "convert_op", ""), "convert_op")
        self.keys(conv, ("ns_per_element", "pj_per_element"), "convert_op")
        conv_s = self.number(conv, "ns_per_element", "convert_op", positive=False) * 1e-9
        conv_pj = self.number(conv, "pj_per_element", "convert_op", positive=False)

        part = self.mapping(self.get(data, "partition", ""), "partition")
        self.keys(part, ("sync_us", "transfer_gbs"), "partition")
        sync_s = self.number(part, "sync_us", "partition", positive=False) * 1e-6
        transfer = self.number(part, "transfer_gbs", "partition") * 1e9

        scaling = self.mapping(self.get(data, "energy_scaling", ""), "energy_scaling")
        self.keys(scaling, ("process_nm", "factor"), "energy_scaling")
        self.number(scaling, "process_nm", "energy_scaling")
        self.number(scaling, "factor", "energy_scaling")

        devices_node = self.mapping(self.get(data, "devices", ""), "devices")
        if not devices_node:
            raise self.fail("field 'devices' must define at least one device")
        devices = {}
        for dev_name, dev_node in devices_node.items():
            if not isinstance(dev_name, str) or not dev_name:
                raise self.fail(f"device names in 'devices' must be non-empty strings; got {brief(dev_name)}")
            devices[dev_name] = self.device(dev_name, dev_node)

        main_name = self.get(data, "main_device", "")
        if not isinstance(main_name, str) or main_name not in devices:
            raise self.fail(f"field 'main_device' names {brief(main_name)}, which is not a defined "
                            f"device; defined devices are {_braces(devices)}")
        fb_name = self.get(data, "fallback_device", "")
        main = devices[main_name]
        missing = self.uncovered(main)
        if missing:
            shown = ", ".join(f"({w}, {a})" for w, a in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise self.fail(
                f"the rules of main device '{main_name}' (field 'devices.{main_name}.support') leave "
                f"(weight_bits, activation_bits) = {shown}{more} uncovered; end with a rule "
                f"{{weight_bits: any, activation_bits: any, mode: fallback}}")
        main_falls_back = any(r.mode == "fallback" for r in main.rules)
        fallback = None
        if fb_name is None:
            if main_falls_back:
                raise self.fail(f"field 'fallback_device' is null but main device '{main_name}' has "
                                f"fallback rules; name one of the defined devices "
                                f"{_braces(devices)}")
        else:
            if not isinstance(fb_name, str) or fb_name not in devices:
                raise self.fail(f"field 'fallback_device' names {brief(fb_name)}, which is not a defined "
                                f"device; defined devices are {_braces(devices)}")
            if fb_name == main_name:
                raise self.fail(f"field 'fallback_device' must differ from 'main_device' "
                                f"({brief(main_name)})")
            fallback = devices[fb_name]
            for i, rule in enumerate(fallback.rules):
                if rule.mode == "fallback":
                    raise self.fail(f"fallback device '{fb_name}' must run everything it is given, "
                                    f"but field 'devices.{fb_name}.support[{i}]' has mode 'fallback'")
            missing = self.uncovered(fallback)
            if missing:
                shown = ", ".join(f"({w}, {a})" for w, a in missing[:8])
                more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
                raise self.fail(
                    f"the rules of fallback device '{fb_name}' (field 'devices.{fb_name}.support') "
                    f"must be total but leave (weight_bits, activation_bits) = {shown}{more} "
                    f"uncovered")
        return HardwareProfile(
            name=name, title=title, reference_device=reference, main=main, fallback=fallback,
            memory_budget_bytes=budget, convert_s_per_element=conv_s,
            convert_pj_per_element=conv_pj, partition_sync_s=sync_s,
            partition_bytes_per_s=transfer, path=path, raw=data, _hash=_canonical_hash(data))


# --------------------------------------------------------------------------------------------
# Public loading API
# --------------------------------------------------------------------------------------------

def names() -> List[str]:
    """Sorted names of the shipped hardware profiles."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _parse_file(path: Path, label: str, expect_name: Optional[str]) -> HardwareProfile:
    data, _ = load_yaml(path)
    return _Parser(label).profile(data, str(path), expect_name)


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> HardwareProfile:
    path = PROFILES_DIR / f"{name}.yaml"
    return _parse_file(path, path.name, expect_name=name)


def load(name_or_path: Union[str, os.PathLike, HardwareProfile]) -> HardwareProfile:
    """Load a hardware profile by name (see :func:`names`) or from a YAML path.

    Shipped profiles are parsed once and cached by name; a path is read on every call.

    Raises
    ------
    QuantmooError
        Unknown name, unreadable or malformed file, or a profile that fails validation
        (the message names the file and the dotted field).
    """
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        path = Path(name_or_path)
        return _parse_file(path, str(path), expect_name=None)
    if not isinstance(name_or_path, str):
        raise QuantmooError(f"The 'hardware' must be a profile name or a path to a profile YAML; "
                            f"got {type(name_or_path).__name__}")
    known = names()
    if name_or_path in known:
        return _load_builtin(name_or_path)
    looks_like_path = (name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path
                       or (os.altsep is not None and os.altsep in name_or_path)
                       or os.path.exists(name_or_path))
    if looks_like_path:
        path = Path(name_or_path)
        return _parse_file(path, str(path), expect_name=None)
    raise QuantmooError(f"Unknown hardware {name_or_path!r}; known hardware profiles are "
                        f"{_braces(known)} (or pass a path to a profile YAML)")
