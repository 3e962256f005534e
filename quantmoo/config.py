"""QuantConfig: one per-layer quantization choice for a whole model.

A config is what the search returns for each front point and what ``quantmoo evaluate``
reads back. Its YAML/JSON form (``DESIGN.md`` section 7)::

    format: quantmoo-config/1
    model: llama2-7b
    hardware: arm_dot
    calibration: mse
    layers:
      layers.0.self_attn.q_proj: {weight_bits: 4, activation_bits: 8, weight_scheme: symmetric,
                                  activation_scheme: asymmetric, granularity: per_group, group_size: 128}
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Optional

from .errors import QuantmooError, brief, check_choice
from .quant.ggml import TYPES as GGML_TYPES

#: Every weight bit-width quantmoo's kernels and cost model know; 16 means fp16 (no scale).
WEIGHT_BITS = (2, 3, 4, 5, 6, 8, 16)
#: Every activation bit-width; 16 means fp16.
ACTIVATION_BITS = (2, 3, 4, 5, 6, 8, 16)
SCHEMES = ("symmetric", "asymmetric", "power_of_two")
GRANULARITIES = ("per_tensor", "per_channel", "per_group")
CALIBRATIONS = ("min_max", "percentile", "mse", "entropy")
#: Weight storage formats: ``"int"`` is quantmoo's own integer grids (bits x scheme x granularity);
#: the others are llama.cpp's ggml types (:mod:`quantmoo.quant.ggml`), each a fixed block layout.
WEIGHT_FORMATS = ("int",) + tuple(GGML_TYPES)
#: llama.cpp types that store a min per (sub-)block besides the scale (asymmetric grids).
_GGML_WITH_MIN = ("Q2_K", "Q4_K", "Q5_K", "Q5_1")
#: The per-layer attributes, in genome order.
LAYER_ATTRS = ("weight_bits", "activation_bits", "weight_scheme", "activation_scheme", "granularity",
               "weight_format")
CONFIG_FORMAT = "quantmoo-config/1"
#: Largest per-group length: any group longer than a layer's rows acts as per-channel, and the
#: bound keeps the size arithmetic in float64 range.
MAX_GROUP_SIZE = 2 ** 31

_SCHEME_ALIASES = {"affine": "asymmetric"}


def normalize_format(name):
    """Canonical weight format: ``"int"``, or a ggml type name in upper case (``q4_k`` -> ``Q4_K``)."""
    if isinstance(name, str) and name != "int" and name.upper() in GGML_TYPES:
        return name.upper()
    return name


def normalize_scheme(name: str) -> str:
    """Map the brief's 'affine' to 'asymmetric' (they are the same unsigned+zero-point scheme)."""
    return _SCHEME_ALIASES.get(name, name) if isinstance(name, str) else name


@dataclass(frozen=True)
class LayerQuant:
    """The quantization of one layer.

    ``group_size`` only matters for ``granularity='per_group'``; 16-bit weights are fp16 and
    ignore scheme and granularity. ``weight_format`` other than ``"int"`` is a llama.cpp type
    (``"Q4_K"``, ...): the type fixes the grid and block layout, and the weight fields are set from
    it: ``weight_bits`` to its nominal bits (what the hardware cost model maps), ``weight_scheme``
    to ``asymmetric`` for the types with a min (Q2_K, Q4_K, Q5_K, Q5_1) else ``symmetric``,
    ``granularity`` to ``per_group`` and ``group_size`` to its block (32 or 256). Its YAML form is
    then ``{weight_format, weight_bits, activation_bits, activation_scheme}``.
    """

    weight_bits: int = 8
    activation_bits: int = 8
    weight_scheme: str = "symmetric"
    activation_scheme: str = "asymmetric"
    granularity: str = "per_channel"
    group_size: int = 128
    weight_format: str = "int"

    def __post_init__(self):
        object.__setattr__(self, "weight_format", normalize_format(self.weight_format))
        check_choice("weight_format", self.weight_format, WEIGHT_FORMATS, "LayerQuant")
        if self.weight_format != "int":   # the type fixes the weight fields: one canonical form
            t = GGML_TYPES[self.weight_format]
            object.__setattr__(self, "weight_bits", t.bits)
            object.__setattr__(self, "weight_scheme", "asymmetric" if t.name in _GGML_WITH_MIN else "symmetric")
            object.__setattr__(self, "granularity", "per_group")
            object.__setattr__(self, "group_size", t.block)
        object.__setattr__(self, "weight_scheme", normalize_scheme(self.weight_scheme))
        object.__setattr__(self, "activation_scheme", normalize_scheme(self.activation_scheme))
        check_choice("weight_bits", self.weight_bits, WEIGHT_BITS, "LayerQuant")
        check_choice("activation_bits", self.activation_bits, ACTIVATION_BITS, "LayerQuant")
        check_choice("weight_scheme", self.weight_scheme, SCHEMES, "LayerQuant")
        check_choice("activation_scheme", self.activation_scheme, SCHEMES, "LayerQuant")
        check_choice("granularity", self.granularity, GRANULARITIES, "LayerQuant")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) \
                or not 0 < self.group_size <= MAX_GROUP_SIZE:
            raise QuantmooError(f"The 'group_size' of LayerQuant must be a positive integer <= 2**31; "
                                f"got {brief(self.group_size)}")
        object.__setattr__(self, "weight_bits", int(self.weight_bits))
        object.__setattr__(self, "activation_bits", int(self.activation_bits))

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in _LQ_FIELDS}   # asdict() deep-copies: 10x slower on 7B fronts
        if d["weight_format"] == "int":   # quantmoo's own grids: the format is implied (older files)
            del d["weight_format"]
        else:                             # a llama.cpp type implies scheme, granularity and block
            for k in ("weight_scheme", "granularity", "group_size"):
                del d[k]
        return d


#: LayerQuant's field names, in order (what ``to_dict`` reads).
_LQ_FIELDS = tuple(f.name for f in fields(LayerQuant))


@dataclass
class QuantConfig:
    """Per-layer choices plus the global calibration method.

    Parameters
    ----------
    layers : dict of str to LayerQuant
        One entry per quantizable layer of the model, in model order.
    calibration : str
        Global activation calibration method, one of ``CALIBRATIONS``.
    model, hardware : str, optional
        Names recorded for provenance and for ``quantmoo evaluate``.
    """

    layers: dict
    calibration: str = "min_max"
    model: Optional[str] = None
    hardware: Optional[str] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        check_choice("calibration", self.calibration, CALIBRATIONS, "QuantConfig")
        if not isinstance(self.layers, Mapping) or not self.layers:
            raise QuantmooError("The 'layers' of QuantConfig must be a non-empty mapping of layer name -> choices")
        fixed = {}
        for name, lq in self.layers.items():
            if isinstance(lq, LayerQuant):          # already validated (the common, hot case)
                fixed[str(name)] = lq
                continue
            if isinstance(lq, Mapping):
                lq = _layer_from_mapping(lq, f"layers.{name}")
            elif not isinstance(lq, LayerQuant):
                raise QuantmooError(f"The 'layers.{name}' of QuantConfig must be a mapping of choices; "
                                    f"got {type(lq).__name__}")
            fixed[str(name)] = lq
        self.layers = fixed

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def uniform(cls, model, weight_bits=8, activation_bits=8, calibration="min_max", hardware=None,
                **attrs) -> "QuantConfig":
        """The same choice on every layer of ``model`` (a ModelSpec)."""
        lq = LayerQuant(weight_bits=weight_bits, activation_bits=activation_bits, **attrs)
        return cls({n: lq for n in model.layer_names}, calibration=calibration, model=model.name,
                   hardware=hardware)

    def check_model(self, model) -> "QuantConfig":
        """Raise unless the config names exactly the model's layers (never a silent partial apply)."""
        names = model.layer_names
        known = set(names)
        missing = [n for n in names if n not in self.layers]
        extra = [n for n in self.layers if n not in known]
        if missing or extra:
            parts = []
            if extra:
                parts.append(f"unknown layer(s) {extra[:3]}{' ...' if len(extra) > 3 else ''}")
            if missing:
                parts.append(f"missing layer(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
            raise QuantmooError(f"The 'layers' of the config do not match model '{model.name}': "
                                f"{'; '.join(parts)} ({len(names)} layers expected)")
        return self

    # -- views ----------------------------------------------------------------------------------
    def column(self, attr: str, model=None) -> list:
        """One attribute for every layer (in the model's order if given)."""
        order = model.layer_names if model is not None else list(self.layers)
        return [getattr(self.layers[n], attr) for n in order]

    def config_hash(self) -> str:
        """Stable hash of the choices (cache key for real evaluations)."""
        blob = json.dumps({"calibration": self.calibration,
                           "layers": {k: v.to_dict() for k, v in self.layers.items()}}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"format": CONFIG_FORMAT, "model": self.model, "hardware": self.hardware,
             "calibration": self.calibration,
             "layers": {k: v.to_dict() for k, v in self.layers.items()}}
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d, source: str = "config") -> "QuantConfig":
        if not isinstance(d, Mapping):
            raise QuantmooError(f"{source}: a config must be a mapping with 'layers'; got {type(d).__name__}")
        allowed = {"format", "model", "hardware", "calibration", "layers", "meta"}
        unknown = set(d) - allowed
        if unknown:
            raise QuantmooError(f"{source}: unknown field(s) {sorted(map(str, unknown))}; allowed fields are "
                                f"{{{', '.join(sorted(allowed))}}}")
        fmt = d.get("format", CONFIG_FORMAT)
        if fmt != CONFIG_FORMAT:
            raise QuantmooError(f"{source}: field 'format' must be {CONFIG_FORMAT!r}; got {brief(fmt)}")
        if "layers" not in d:
            raise QuantmooError(f"{source}: missing field 'layers'")
        if not isinstance(d["layers"], Mapping):
            raise QuantmooError(f"{source}: field 'layers' must be a mapping of layer name -> choices")
        for k in ("model", "hardware"):
            if d.get(k) is not None and not isinstance(d.get(k), str):
                raise QuantmooError(f"{source}: field '{k}' must be a string; got {brief(d.get(k))}")
        meta = d.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise QuantmooError(f"{source}: field 'meta' must be a mapping")
        layers = {}
        for name, ld in d["layers"].items():
            if str(name) in layers:  # e.g. YAML keys 1 and "1": one would silently replace the other
                raise QuantmooError(f"{source}: field 'layers' names layer {str(name)!r} twice")
            if not isinstance(ld, Mapping):
                raise QuantmooError(f"{source}: field 'layers.{name}' must be a mapping of choices; "
                                    f"got {brief(ld)}")
            try:
                layers[str(name)] = _layer_from_mapping(ld, f"layers.{name}")
            except QuantmooError as e:
                raise QuantmooError(f"{source}: {e}") from None
        try:
            return cls(layers, calibration=d.get("calibration", "min_max"), model=d.get("model"),
                       hardware=d.get("hardware"), meta=dict(meta))
        except QuantmooError as e:
            raise QuantmooError(f"{source}: {e}") from None

    def to_yaml(self, path=None) -> str:
        import yaml
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path=None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def load(cls, path_or_text) -> "QuantConfig":
        """Read a config from a YAML or JSON file (JSON is valid YAML) or from YAML text."""
        from .io import load_yaml
        data, source = load_yaml(path_or_text)
        return cls.from_dict(data, source=source)

    from_yaml = load
    from_json = load

    def save(self, path) -> Path:
        """Write YAML or JSON, chosen by the file extension."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            self.to_json(path)
        elif path.suffix.lower() in (".yaml", ".yml"):
            self.to_yaml(path)
        else:
            raise QuantmooError(f"The config file extension must be one of {{.yaml, .yml, .json}}; got {path.name!r}")
        return path


def _layer_from_mapping(ld: Mapping, where: str) -> LayerQuant:
    fields = set(LAYER_ATTRS) | {"group_size"}
    unknown = set(ld) - fields
    if unknown:
        raise QuantmooError(f"unknown field(s) {sorted(map(str, unknown))} in '{where}'; allowed fields are "
                            f"{{{', '.join(sorted(fields))}}}")
    fmt = normalize_format(ld.get("weight_format", "int"))
    if fmt in GGML_TYPES and "weight_bits" in ld and ld["weight_bits"] != GGML_TYPES[fmt].bits:
        raise QuantmooError(f"The 'weight_bits' in '{where}' must be {GGML_TYPES[fmt].bits} for weight_format "
                            f"{fmt} (or be left out); got {brief(ld['weight_bits'])}")
    try:
        return LayerQuant(**dict(ld))
    except QuantmooError as e:
        msg = str(e).replace("of LayerQuant", f"in '{where}'")
        raise QuantmooError(msg) from None
