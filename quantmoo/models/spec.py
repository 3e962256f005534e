"""Model specifications: the layer table every cost and accuracy model reads.

A :class:`ModelSpec` is an ordered list of :class:`LayerSpec` (the quantizable layers, in
execution order) plus the workload they were counted for. Parameters that quantmoo never
quantizes (biases, norms, position tables) are counted in ``n_params`` of the model but are
always stored at 16 bits (fp16) in the size accounting; they live in
``LayerSpec.extra_params`` (per-layer biases) and ``ModelSpec.other_params`` (everything else).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..errors import QuantmooError, brief

LAYER_KINDS = ("linear", "conv", "depthwise_conv", "embedding", "attention_matmul", "lm_head")

#: Bytes per parameter kept unquantized (biases, norms): stored as fp16.
UNQUANTIZED_BYTES_PER_PARAM = 2
#: Largest count (parameters, MACs, activation elements) a layer table may hold: every count
#: stays exact in the float64 cost tables and far from int64 overflow.
MAX_COUNT = 2 ** 53


def _count(field: str, value: Any, where: str, minimum: int = 0) -> int:
    """``value`` as an int in ``[minimum, MAX_COUNT]`` (whole floats accepted), else a QuantmooError."""
    ok = not isinstance(value, bool) and isinstance(value, (numbers.Integral, float))
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and value.is_integer()
    if ok:
        ok = minimum <= int(value) <= MAX_COUNT
    if not ok:
        what = "hold integers" if field == "weight_shape" else "be an integer"
        raise QuantmooError(f"The '{field}' of {where} must {what} >= {minimum} and <= 2**53; got {brief(value)}")
    return int(value)


@dataclass(frozen=True)
class LayerSpec:
    """One quantizable layer.

    Parameters
    ----------
    name : str
        Unique layer name (used in configs).
    kind : str
        One of ``LAYER_KINDS``.
    weight_shape : tuple of int
        Weight tensor shape, output channels first. ``n_params`` is its product.
        Per-channel scales are one per ``weight_shape[0]``; per-group scales are counted
        along the flattened remaining (input) axis.
    macs : int
        Multiply-accumulates of this layer for the model's workload.
    act_in : int
        Input activation elements for the workload.
    act_out : int
        Output activation elements for the workload.
    extra_params : int
        Unquantized parameters owned by the layer (bias), stored as fp16.
    tie_group : str or None
        Layers with the same tie group must share activation precision (e.g. the operands of a
        residual add).
    block : int or None
        Transformer/residual block index, used by block crossover.
    """

    name: str
    kind: str
    weight_shape: tuple
    macs: int
    act_in: int
    act_out: int
    extra_params: int = 0
    tie_group: Optional[str] = None
    block: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QuantmooError(f"The 'name' of a LayerSpec must be a non-empty string; got {brief(self.name)}")
        where = f"LayerSpec '{self.name}'"
        if not isinstance(self.kind, str) or self.kind not in LAYER_KINDS:
            raise QuantmooError(
                f"The 'kind' of {where} must be one of {{{', '.join(LAYER_KINDS)}}}; got {brief(self.kind)}")
        shape = self.weight_shape
        if isinstance(shape, np.ndarray):
            shape = shape.tolist()
        if not isinstance(shape, (list, tuple)) or not shape:
            raise QuantmooError(f"The 'weight_shape' of {where} must be a non-empty list of integers >= 1; "
                                f"got {brief(self.weight_shape)}")
        shape = tuple(_count("weight_shape", s, where, minimum=1) for s in shape)
        if math.prod(shape) > MAX_COUNT:
            raise QuantmooError(f"The 'weight_shape' of {where} holds more than 2**53 parameters; got {brief(shape)}")
        object.__setattr__(self, "weight_shape", shape)
        for f in ("macs", "act_in", "act_out", "extra_params"):
            object.__setattr__(self, f, _count(f, getattr(self, f), where))
        if self.block is not None:
            if isinstance(self.block, bool) or not isinstance(self.block, numbers.Integral) \
                    or not 0 <= self.block <= MAX_COUNT:
                raise QuantmooError(f"The 'block' of {where} must be an integer >= 0 or null; got {brief(self.block)}")
            object.__setattr__(self, "block", int(self.block))
        if self.tie_group is not None and not isinstance(self.tie_group, str):
            raise QuantmooError(f"The 'tie_group' of {where} must be a string or null; got {brief(self.tie_group)}")

    @property
    def n_params(self) -> int:
        """Quantizable weight parameters (product of ``weight_shape``)."""
        return math.prod(self.weight_shape)

    @property
    def out_channels(self) -> int:
        """Rows of the weight (one per-channel scale each)."""
        return int(self.weight_shape[0]) if self.weight_shape else 0

    @property
    def in_features(self) -> int:
        """Elements per output channel (the axis per-group quantization runs along)."""
        return self.n_params // self.out_channels if self.out_channels else 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["weight_shape"] = list(self.weight_shape)
        return {k: v for k, v in d.items() if v is not None and not (k == "extra_params" and v == 0)}


@dataclass
class ModelSpec:
    """An ordered table of quantizable layers plus the workload it was counted for.

    Parameters
    ----------
    name : str
        Model name.
    layers : sequence of LayerSpec
        Quantizable layers in execution order. Names must be unique.
    workload : dict
        How MACs and activations were counted, e.g. ``{"batch": 1, "image_size": 224}`` or
        ``{"batch": 1, "mode": "decode", "context": 1024}``.
    other_params : int
        Parameters that are never quantized (norms, position tables...), stored as fp16.
    weights : callable, optional
        ``weights(layer_name) -> np.ndarray`` (float32, shape ``weight_shape``). Lazy: called
        one layer at a time.
    evaluator : object, optional
        Real evaluator for measured accuracy (see :mod:`quantmoo.accuracy`).
    meta : dict
        Free-form provenance (source config, family, ...).
    """

    name: str
    layers: Sequence[LayerSpec]
    workload: dict = field(default_factory=dict)
    other_params: int = 0
    weights: Optional[Callable[[str], np.ndarray]] = None
    evaluator: Any = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QuantmooError(f"The 'name' of a ModelSpec must be a non-empty string; got {brief(self.name)}")
        self.layers = list(self.layers)
        if not self.layers:
            raise QuantmooError(f"The 'layers' of ModelSpec '{self.name}' must not be empty")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerSpec):
                raise QuantmooError(f"The 'layers[{i}]' of ModelSpec '{self.name}' must be a LayerSpec; "
                                    f"got {type(layer).__name__}")
        names = [l.name for l in self.layers]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise QuantmooError(f"The 'layers' of ModelSpec '{self.name}' have duplicate names: {dup[:5]}")
        if isinstance(self.other_params, bool) or not isinstance(self.other_params, (int, np.integer)) \
                or not 0 <= self.other_params <= MAX_COUNT:
            raise QuantmooError(f"The 'other_params' of ModelSpec '{self.name}' must be an integer >= 0 and "
                                f"<= 2**53; got {brief(self.other_params)}")
        self.other_params = int(self.other_params)
        if not isinstance(self.workload, dict):
            raise QuantmooError(f"The 'workload' of ModelSpec '{self.name}' must be a mapping; "
                                f"got {brief(self.workload)}")
        for k, v in self.workload.items():
            # the workload is provenance written to results.json: plain JSON scalars only
            if not isinstance(k, str) or not (v is None or isinstance(v, (str, bool, int, float, np.number))):
                raise QuantmooError(f"The 'workload' of ModelSpec '{self.name}' must map names to numbers or "
                                    f"strings; got {brief(k)}: {brief(v)}")
        if not isinstance(self.meta, dict):
            raise QuantmooError(f"The 'meta' of ModelSpec '{self.name}' must be a mapping; got {brief(self.meta)}")
        self._index = {n: i for i, n in enumerate(names)}

    # -- counts -----------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def layer_names(self) -> list:
        return [l.name for l in self.layers]

    def index(self, name: str) -> int:
        """Position of a layer; raises a QuantmooError that lists a few valid names."""
        try:
            return self._index[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name" read from a file
            shown = ", ".join(self.layer_names[:6]) + (", ..." if self.n_layers > 6 else "")
            raise QuantmooError(f"Unknown layer name {brief(name)} for model '{self.name}'; "
                                f"layers are {{{shown}}} ({self.n_layers} in all)") from None

    def layer_weights(self, name: str, w=None) -> np.ndarray:
        """The real weight tensor of layer ``name`` (float32), checked: shape and finite values.

        ``w`` checks an array obtained elsewhere (an evaluator's copy) instead of calling
        ``self.weights``. Raises a QuantmooError naming the layer when the tensor does not have the
        layer's ``weight_shape`` or holds NaN/inf, so no proxy is ever built from a wrong tensor.
        """
        layer = self.layers[self.index(name)]
        if w is None:
            if self.weights is None:
                raise QuantmooError(f"Model '{self.name}' has no weights (its 'weights' provider is None)")
            w = self.weights(name)
        a = np.asarray(w)
        what = f"The weight tensor of layer '{name}' of model '{self.name}'"
        if a.dtype.kind not in "biuf":
            raise QuantmooError(f"{what} must hold real numbers; got dtype {a.dtype}")
        expected = tuple(int(d) for d in layer.weight_shape)
        if a.shape != expected:
            raise QuantmooError(f"{what} has shape {tuple(a.shape)}; the layer's weight_shape is {expected}")
        with np.errstate(over="ignore"):      # beyond float32's range becomes inf, reported below
            a = a.astype(np.float32, copy=False)
        bad = ~np.isfinite(a)
        if bad.any():
            raise QuantmooError(f"{what} contains NaN or inf ({int(bad.sum())} of {a.size} values); "
                                "quantization needs finite weights")
        return a

    def check_weights(self) -> None:
        """Check every layer's weight tensor (:meth:`layer_weights`), one layer at a time."""
        for name in self.layer_names:
            self.layer_weights(name)

    @property
    def quantizable_params(self) -> int:
        return int(sum(l.n_params for l in self.layers))

    @property
    def unquantized_params(self) -> int:
        return int(sum(l.extra_params for l in self.layers) + self.other_params)

    @property
    def n_params(self) -> int:
        """All parameters: quantizable weights + biases + other (norms etc.)."""
        return self.quantizable_params + self.unquantized_params

    @property
    def macs(self) -> int:
        return int(sum(l.macs for l in self.layers))

    @property
    def fp32_mb(self) -> float:
        """Size of every parameter at fp32, in MB (10^6 bytes)."""
        return self.n_params * 4 / 1e6

    @property
    def unquantized_bytes(self) -> int:
        """Bytes of the never-quantized parameters (fp16)."""
        return self.unquantized_params * UNQUANTIZED_BYTES_PER_PARAM

    def arrays(self) -> dict:
        """Per-layer columns as NumPy arrays (float64), for the vectorised models."""
        L = self.layers
        return {
            "n_params": np.array([l.n_params for l in L], dtype=np.float64),
            "out_channels": np.array([l.out_channels for l in L], dtype=np.float64),
            "in_features": np.array([l.in_features for l in L], dtype=np.float64),
            "macs": np.array([l.macs for l in L], dtype=np.float64),
            "act_in": np.array([l.act_in for l in L], dtype=np.float64),
            "act_out": np.array([l.act_out for l in L], dtype=np.float64),
            "extra_params": np.array([l.extra_params for l in L], dtype=np.float64),
        }

    def blocks(self) -> np.ndarray:
        """Block id per layer (-1 where none): used by block crossover."""
        return np.array([-1 if l.block is None else l.block for l in self.layers], dtype=np.int64)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "workload": dict(self.workload),
            "other_params": self.other_params,
            "meta": dict(self.meta),
            "layers": [l.to_dict() for l in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "model spec") -> "ModelSpec":
        if not isinstance(d, Mapping):
            raise QuantmooError(f"{source}: must be a mapping with 'name' and 'layers'; got {type(d).__name__}")
        unknown = set(d) - {"name", "workload", "other_params", "meta", "layers"}
        if unknown:
            raise QuantmooError(f"{source}: unknown field(s) {sorted(map(str, unknown))}; allowed fields are "
                                "{name, workload, other_params, meta, layers}")
        for req in ("name", "layers"):
            if req not in d:
                raise QuantmooError(f"{source}: missing field '{req}'")
        if not isinstance(d["layers"], list):
            raise QuantmooError(f"{source}: field 'layers' must be a list; got {type(d['layers']).__name__}")
        layers = []
        fields = {f.name for f in dataclasses.fields(LayerSpec)}
        for i, ld in enumerate(d["layers"]):
            if not isinstance(ld, Mapping):
                raise QuantmooError(f"{source}: field 'layers[{i}]' must be a mapping")
            bad = set(ld) - fields
            if bad:
                raise QuantmooError(f"{source}: unknown field(s) {sorted(map(str, bad))} in 'layers[{i}]'; "
                                    f"allowed fields are {{{', '.join(sorted(fields))}}}")
            missing = [f for f in ("name", "kind", "weight_shape", "macs", "act_in", "act_out") if f not in ld]
            if missing:
                raise QuantmooError(f"{source}: missing field '{missing[0]}' in 'layers[{i}]'")
            try:
                layers.append(LayerSpec(**ld))
            except QuantmooError as e:
                raise QuantmooError(f"{source}: layers[{i}]: {e}") from None
        # an absent or null optional field takes its default; anything else is validated
        workload = d.get("workload")
        meta = d.get("meta")
        other = d.get("other_params")
        try:
            return cls(name=d["name"], layers=layers, workload={} if workload is None else workload,
                       other_params=0 if other is None else other, meta={} if meta is None else meta)
        except QuantmooError as e:
            raise QuantmooError(f"{source}: {e}") from None

    def to_yaml(self, path=None) -> str:
        import yaml
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path_or_text) -> "ModelSpec":
        from ..io import load_yaml
        data, source = load_yaml(path_or_text)
        return cls.from_dict(data, source=source)

    def spec_hash(self) -> str:
        """Stable hash of the layer table and workload (provenance in results)."""
        blob = json.dumps({k: v for k, v in self.to_dict().items() if k != "meta"}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_layers(self, names: Sequence[str]) -> "ModelSpec":
        """A copy restricted to the named layers (in model order); the others count as fixed."""
        keep = set(names)
        for n in names:
            self.index(n)
        return dataclasses.replace(self, layers=[l for l in self.layers if l.name in keep])

    def __repr__(self) -> str:
        return (f"ModelSpec(name={self.name!r}, n_layers={self.n_layers}, n_params={self.n_params:,}, "
                f"macs={self.macs:,})")
