"""SearchSpace and the integer genome encoding.

Genome layout (``DESIGN.md`` section 4): layer-major, for each layer one gene per *varying*
attribute in the order of :data:`~quantmoo.config.LAYER_ATTRS`, then one global
``calibration`` gene if more than one calibration method is allowed. A gene is an index into
the attribute's allowed values. An attribute with a single allowed value has no gene; a pinned
layer keeps its gene but with equal lower and upper bound.

Every layer's choice is also one integer ``c`` in ``[0, n_choices)``: the mixed-radix number
of its attribute indices (all five attributes, fixed ones with radix 1). Cost and accuracy
tables are indexed ``table[layer, c]``, so evaluating a population is a gather.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from ..config import (ACTIVATION_BITS, CALIBRATIONS, GRANULARITIES, LAYER_ATTRS, MAX_GROUP_SIZE, SCHEMES,
                      WEIGHT_BITS, WEIGHT_FORMATS, LayerQuant, QuantConfig, normalize_format, normalize_scheme)
from ..quant.ggml import SEARCH_TYPES, TYPES as GGML_TYPES
from ..errors import QuantmooError, brief

#: Bit genes are ordinal (mutation steps to a neighbour, crossover may average);
#: the others are nominal.
ORDINAL_ATTRS = ("weight_bits", "activation_bits", "weight_format")
#: KV-cache precisions (fp16, int8, int4) a space may set.
KV_CACHE_BITS = (4, 8, 16)

_UNIVERSE = {
    "weight_bits": WEIGHT_BITS,
    "activation_bits": ACTIVATION_BITS,
    "weight_scheme": SCHEMES,
    "activation_scheme": SCHEMES,
    "granularity": GRANULARITIES,
    "calibration": CALIBRATIONS,
    "weight_format": WEIGHT_FORMATS,
}
_SPACE_FIELD = {  # attribute -> SearchSpace field holding its allowed values
    "weight_bits": "weight_bits",
    "activation_bits": "activation_bits",
    "weight_scheme": "weight_schemes",
    "activation_scheme": "activation_schemes",
    "granularity": "granularities",
    "calibration": "calibrations",
    "weight_format": "weight_formats",
}


def _format_order(v):
    """llama.cpp types sort by stored bits per weight, so the format gene is ordinal."""
    return (-1.0, v) if v == "int" else (GGML_TYPES[v].bpw, v)


@dataclass
class SearchSpace:
    """Which genes vary and their allowed values.

    Parameters
    ----------
    weight_bits : sequence of int
        Allowed weight bit-widths (16 = fp16). Default ``(2, 3, 4, 6, 8, 16)``.
    activation_bits : sequence of int
        Allowed activation bit-widths. Default ``(4, 8, 16)``.
    weight_schemes, activation_schemes : sequence of str
        From ``{'symmetric', 'asymmetric', 'power_of_two'}`` ('affine' = 'asymmetric').
    granularities : sequence of str
        From ``{'per_tensor', 'per_channel', 'per_group'}``.
    group_size : int
        Group length for ``per_group``.
    calibrations : sequence of str
        Global activation-calibration methods to choose from.
    pinned : dict, optional
        ``{layer_name: {attribute: value}}``; a pinned attribute is fixed for that layer.
        The value must be one of the space's allowed values.
    ties : list of list of str, optional
        Groups of layers that must share activation bits (in addition to the model's
        ``LayerSpec.tie_group``).
    kv_cache_bits : int
        Precision of a decoder LLM's KV cache: 16 (fp16, the default), 8 or 4 (int8 / int4 with
        an fp16 scale per 32 elements, llama.cpp's q8_0 / q4_0 cache types). A space option, not
        a gene: it sets the attention's cost and the cache's memory (ignored for other models).
    weight_formats : sequence of str
        ``("int",)`` (the default): weights use quantmoo's own grids, chosen by ``weight_bits``,
        ``weight_schemes`` and ``granularities``. Otherwise llama.cpp types only (see
        :meth:`llama_cpp`): each type is one weight choice with its own grid, block layout and
        exact size; ``weight_bits``, ``weight_schemes``, ``granularities`` and ``group_size``
        must then hold one value each and are ignored for weights.
    """

    weight_bits: Sequence[int] = (2, 3, 4, 6, 8, 16)
    activation_bits: Sequence[int] = (4, 8, 16)
    weight_schemes: Sequence[str] = ("symmetric", "asymmetric", "power_of_two")
    activation_schemes: Sequence[str] = ("symmetric", "asymmetric")
    granularities: Sequence[str] = ("per_tensor", "per_channel", "per_group")
    group_size: int = 128
    calibrations: Sequence[str] = ("min_max", "percentile", "mse", "entropy")
    pinned: Optional[dict] = None
    ties: Optional[list] = None
    kv_cache_bits: int = 16
    weight_formats: Sequence[str] = ("int",)

    def __post_init__(self):
        for attr, fname in _SPACE_FIELD.items():
            vals = getattr(self, fname)
            if isinstance(vals, (str, int)):
                vals = (vals,)
            try:
                vals = tuple(vals)
            except TypeError:
                raise QuantmooError(f"The '{fname}' of SearchSpace must be a list; got {vals!r}") from None
            if attr.endswith("scheme"):
                vals = tuple(normalize_scheme(v) for v in vals)
            if attr == "weight_format":
                vals = tuple(normalize_format(v) for v in vals)
            if not vals:
                raise QuantmooError(f"The '{fname}' of SearchSpace must not be empty; allowed values are "
                                    f"{{{_fmt(_UNIVERSE[attr])}}}")
            for v in vals:
                if isinstance(v, bool) or v not in _UNIVERSE[attr]:
                    raise QuantmooError(f"The '{fname}' values of SearchSpace must be in "
                                        f"{{{_fmt(_UNIVERSE[attr])}}}; got {v!r}")
            if len(set(vals)) != len(vals):
                raise QuantmooError(f"The '{fname}' of SearchSpace has duplicate values: {list(vals)}")
            if attr.endswith("bits"):
                vals = tuple(sorted(int(v) for v in vals))  # ordinal genes need sorted values
            if attr == "weight_format":
                vals = tuple(sorted(vals, key=_format_order))
            setattr(self, fname, vals)
        if self.weight_formats != ("int",):
            if "int" in self.weight_formats:
                raise QuantmooError("The 'weight_formats' of SearchSpace must be ['int'] or llama.cpp types only; "
                                    f"got {list(self.weight_formats)}")
            for fname in ("weight_bits", "weight_schemes", "granularities"):
                if len(getattr(self, fname)) != 1:
                    raise QuantmooError(f"The '{fname}' of SearchSpace must hold one value when 'weight_formats' "
                                        f"are llama.cpp types (the type fixes the weight grid); "
                                        f"got {list(getattr(self, fname))}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) \
                or not 0 < self.group_size <= MAX_GROUP_SIZE:
            raise QuantmooError(f"The 'group_size' of SearchSpace must be a positive integer <= 2**31; "
                                f"got {brief(self.group_size)}")
        if self.pinned is not None and not isinstance(self.pinned, Mapping):
            raise QuantmooError(f"The 'pinned' of SearchSpace must be a mapping layer name -> {{attribute: value}}; "
                                f"got {brief(self.pinned)}")
        self.pinned = dict(self.pinned or {})
        for name, attrs in self.pinned.items():
            if not isinstance(name, str):
                raise QuantmooError(f"The 'pinned' layer names of SearchSpace must be strings; got {brief(name)}")
            if not isinstance(attrs, Mapping):
                raise QuantmooError(f"The 'pinned.{name}' of SearchSpace must be a mapping attribute -> value; "
                                    f"got {brief(attrs)}")
            for a, v in attrs.items():
                if a not in LAYER_ATTRS:
                    raise QuantmooError(f"The 'pinned.{name}' attribute must be one of {{{_fmt(LAYER_ATTRS)}}}; "
                                        f"got {brief(a)}")
                v = normalize_format(normalize_scheme(v))
                allowed = self.values(a)
                if isinstance(v, bool) or v not in allowed:
                    raise QuantmooError(f"The pinned '{a}' of layer '{name}' must be one of the space's "
                                        f"{_SPACE_FIELD[a]} {{{_fmt(allowed)}}}; got {brief(v)}")
        ties = self.ties
        if ties is not None and (not isinstance(ties, (list, tuple)) or not all(
                isinstance(t, (list, tuple)) and all(isinstance(n, str) for n in t) for t in ties)):
            raise QuantmooError(f"The 'ties' of SearchSpace must be a list of lists of layer names; got {brief(ties)}")
        self.ties = [list(t) for t in (ties or [])]
        if isinstance(self.kv_cache_bits, bool) or self.kv_cache_bits not in KV_CACHE_BITS:
            raise QuantmooError(f"The 'kv_cache_bits' of SearchSpace must be in {{{_fmt(KV_CACHE_BITS)}}}; "
                                f"got {brief(self.kv_cache_bits)}")
        self.kv_cache_bits = int(self.kv_cache_bits)

    # -- attributes --------------------------------------------------------------------------
    def values(self, attr: str) -> tuple:
        """Allowed values of one attribute (layer attribute or 'calibration')."""
        return getattr(self, _SPACE_FIELD[attr])

    @property
    def llama_cpp_types(self) -> bool:
        """True when the weight choices are llama.cpp types."""
        return self.weight_formats != ("int",)

    @property
    def varying(self) -> tuple:
        """Per-layer attributes that have a gene."""
        return tuple(a for a in LAYER_ATTRS if len(self.values(a)) > 1)

    def to_dict(self) -> dict:
        d = {f: list(self.values(a)) for a, f in _SPACE_FIELD.items()
             if a != "weight_format" or self.llama_cpp_types}
        d["group_size"] = self.group_size
        if self.pinned:
            d["pinned"] = {k: dict(v) for k, v in self.pinned.items()}
        if self.ties:
            d["ties"] = [list(t) for t in self.ties]
        if self.kv_cache_bits != 16:  # written only when set, so older spaces keep their form
            d["kv_cache_bits"] = self.kv_cache_bits
        return d

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "search space") -> "SearchSpace":
        if not isinstance(d, Mapping):
            raise QuantmooError(f"{source}: a search space must be a mapping")
        allowed = set(_SPACE_FIELD.values()) | {"group_size", "pinned", "ties", "kv_cache_bits"}
        unknown = set(d) - allowed
        if unknown:
            raise QuantmooError(f"{source}: unknown field(s) {sorted(map(str, unknown))}; allowed fields are "
                                f"{{{', '.join(sorted(allowed))}}}")
        try:
            return cls(**dict(d))
        except QuantmooError as e:
            raise QuantmooError(f"{source}: {e}") from None
        except TypeError as e:  # e.g. a list where a scalar was expected
            raise QuantmooError(f"{source}: {e}") from None

    # -- presets ------------------------------------------------------------------------------
    @classmethod
    def llama_cpp(cls, types: Sequence[str] = SEARCH_TYPES, **kwargs) -> "SearchSpace":
        """Weight choices per tensor = llama.cpp types (F16, Q8_0, Q6_K, Q5_K, Q5_0, Q4_K, Q4_0, Q3_K, Q2_K).

        Each type carries its exact stored size (e.g. Q4_K 4.5 bits per weight, scales included;
        llama.cpp's fallback type where a row is not a multiple of 256) and its real grid
        (:mod:`quantmoo.quant.ggml`), so measured accuracy uses the real kernels. Activations
        are not fake-quantized (``activation_bits=(16,)``): llama.cpp keeps them in fp32 between
        layers. Its CPU kernels quantize a matmul's input to 8-bit blocks (Q8_0/Q8_K) for the
        integer dot product; the hardware cost model executes a quantized type as
        ``(type bits, 8-bit activations)``, e.g. Q4_K unpacked to int8 for SDOT on ``arm_dot``,
        while the accuracy model ignores that 8-bit block rounding (its error is far below the
        weights'). The remaining fields are placeholders the types override.

        Parameters
        ----------
        types : sequence of str
            The llama.cpp types to choose from (case-insensitive).
        **kwargs
            Other SearchSpace fields, e.g. ``pinned`` (``{layer: {"weight_format": "Q8_0"}}``).
        """
        base = dict(weight_formats=tuple(types), weight_bits=(8,), activation_bits=(16,),
                    weight_schemes=("symmetric",), activation_schemes=("symmetric",),
                    granularities=("per_group",), group_size=32, calibrations=("min_max",))
        base.update(kwargs)
        return cls(**base)

    def pin_ends(self, model, **attrs) -> "SearchSpace":
        """Pin the first and last layers (e.g. ``weight_bits=8``), a common PTQ rule."""
        pinned = dict(self.pinned)
        for name in (model.layer_names[0], model.layer_names[-1]):
            pinned[name] = {**pinned.get(name, {}), **attrs}
        d = self.to_dict()
        d["pinned"] = pinned
        return SearchSpace.from_dict(d)

    # -- genome ------------------------------------------------------------------------------
    def bind(self, model) -> "Encoding":
        """The genome encoding of this space for ``model``."""
        return Encoding(self, model)

    def encode(self, config: QuantConfig, model) -> np.ndarray:
        """Config -> integer genome (1-D)."""
        return self.bind(model).encode(config)

    def decode(self, x, model, hardware: Optional[str] = None) -> QuantConfig:
        """Integer genome (1-D) -> config."""
        return self.bind(model).decode(x, hardware=hardware)


def _fmt(vals) -> str:
    return ", ".join(str(v) for v in vals)


@dataclass
class Encoding:
    """A :class:`SearchSpace` bound to a model: gene layout, bounds, choice tables.

    Attributes
    ----------
    n_layers, n_var, n_choices : int
    radix : dict attr -> int
        Number of allowed values per layer attribute.
    choice_attr : dict attr -> ndarray (n_choices,)
        Index of each attribute's value within the space, for every choice id.
    choice_value : dict attr -> ndarray (n_choices,)
        The attribute's value itself (bits as int, names as str) for every choice id.
    gene_layer, gene_attr : ndarray (n_var,)
        Layer index (-1 for the calibration gene) and attribute position of each gene.
    xl, xu : ndarray (n_var,)
        Integer bounds (pinned genes have xl == xu).
    tie_sets : list of ndarray
        Layer indices that must share activation bits.
    """

    space: SearchSpace
    model: object
    radix: dict = field(init=False)

    def __post_init__(self):
        sp, model = self.space, self.model
        self.n_layers = L = model.n_layers
        self.attrs = LAYER_ATTRS
        self.varying = sp.varying
        self.k = len(self.varying)
        self.calib_varies = len(sp.calibrations) > 1
        self.n_var = L * self.k + int(self.calib_varies)
        self.radix = {a: len(sp.values(a)) for a in LAYER_ATTRS}
        # mixed radix: choice = sum(attr_index * stride[attr]); last attribute fastest
        stride, s = {}, 1
        for a in reversed(LAYER_ATTRS):
            stride[a] = s
            s *= self.radix[a]
        self.stride = stride
        self.n_choices = s
        c = np.arange(s)
        self.choice_attr = {a: (c // stride[a]) % self.radix[a] for a in LAYER_ATTRS}
        self.choice_value = {a: np.asarray(sp.values(a))[self.choice_attr[a]] for a in LAYER_ATTRS}
        self.alias = None
        if sp.llama_cpp_types:  # a llama.cpp type fixes the weight bits (its nominal bits)
            self.choice_value["weight_bits"] = np.array(
                [GGML_TYPES[f].bits for f in self.choice_value["weight_format"]], dtype=np.int64)
            self.alias = self._fallback_aliases(model)
        # gene bookkeeping
        self.gene_layer = np.repeat(np.arange(L), self.k)
        self.gene_attr = np.tile(np.arange(self.k), L)
        self.xl = np.zeros(self.n_var, dtype=np.int64)
        self.xu = np.empty(self.n_var, dtype=np.int64)
        self.xu[: L * self.k] = np.tile([self.radix[a] - 1 for a in self.varying], L)
        if self.calib_varies:
            self.gene_layer = np.append(self.gene_layer, -1)
            self.gene_attr = np.append(self.gene_attr, -1)
            self.xu[-1] = len(sp.calibrations) - 1
        # fixed values of pinned attributes that have no gene must match the single value
        for name, attrs in sp.pinned.items():
            li = model.index(name)
            for a, v in attrs.items():
                idx = sp.values(a).index(normalize_format(normalize_scheme(v)))
                if a in self.varying:
                    g = li * self.k + self.varying.index(a)
                    self.xl[g] = self.xu[g] = idx
        self.pinned_mask = self.xl == self.xu
        # tie sets: model tie groups + the space's explicit ties
        groups = {}
        for i, layer in enumerate(model.layers):
            if layer.tie_group is not None:
                groups.setdefault(("model", layer.tie_group), []).append(i)
        for j, names in enumerate(sp.ties):
            groups[("space", j)] = [model.index(n) for n in names]
        self.tie_sets = [np.asarray(sorted(set(v))) for v in groups.values() if len(set(v)) > 1]

    def _fallback_aliases(self, model):
        """(n_layers, n_choices) canonical choice id, or None when every choice is distinct.

        On a layer whose rows are not a multiple of 256, llama.cpp stores a K-quant as its
        fallback type (Q4_K as Q5_0, Q2_K/Q3_K as Q4_0, Q6_K as Q8_0): those choices are the same
        weights and bytes, so repair maps them onto the choice naming the type really stored.
        """
        from ..quant.ggml import effective_type
        fmts = self.space.weight_formats
        cols = model.arrays()["in_features"]
        fidx = self.choice_attr["weight_format"]
        stride = self.stride["weight_format"]
        alias = np.tile(np.arange(self.n_choices), (self.n_layers, 1))
        for n_cols in np.unique(cols):
            target = [fmts.index(t) if (t := effective_type(f, int(n_cols)).name) in fmts else i
                      for i, f in enumerate(fmts)]
            alias[cols == n_cols] = np.arange(self.n_choices) + (np.asarray(target)[fidx] - fidx) * stride
        return None if np.array_equal(alias, np.arange(self.n_choices)[None, :].repeat(self.n_layers, 0)) else alias

    # -- vectorised conversions -----------------------------------------------------------------
    def attr_genes(self, X: np.ndarray, attr: str) -> np.ndarray:
        """(N, L) attribute index for every layer (zeros where the attribute has no gene)."""
        X = np.asarray(X)
        if attr not in self.varying:
            return np.zeros((X.shape[0], self.n_layers), dtype=np.int64)
        j = self.varying.index(attr)
        return X[:, j: self.n_layers * self.k: self.k]

    def choices(self, X: np.ndarray) -> np.ndarray:
        """(N, L) choice ids from an (N, n_var) genome matrix."""
        X = np.asarray(X)
        L, k = self.n_layers, self.k
        if k == 0:
            return np.zeros((X.shape[0], L), dtype=np.int64)
        # mixed radix, accumulated over the k genes of each layer in the narrowest integer type that holds
        # every choice id (int16 moves a quarter of int64's bytes per pass)
        small = np.int16 if self.n_choices <= np.iinfo(np.int16).max else np.int32
        G = X[:, : L * k].astype(small).reshape(X.shape[0], L, k)
        C = G[:, :, 0] * small(self.stride[self.varying[0]])
        for j, a in enumerate(self.varying[1:], 1):
            C += G[:, :, j] * small(self.stride[a]) if self.stride[a] != 1 else G[:, :, j]
        return C.astype(X.dtype)

    def calibration_index(self, X: np.ndarray) -> np.ndarray:
        """(N,) index of the calibration method in the space."""
        X = np.asarray(X)
        if self.calib_varies:
            return X[:, -1].astype(np.int64)
        return np.zeros(X.shape[0], dtype=np.int64)

    def genes_from_choices(self, C: np.ndarray, calib: Optional[np.ndarray] = None) -> np.ndarray:
        """Inverse of :meth:`choices`: (N, L) choice ids (+ calibration) -> (N, n_var) genomes."""
        C = np.asarray(C, dtype=np.int64)
        N = C.shape[0]
        X = np.zeros((N, self.n_var), dtype=np.int64)
        for j, a in enumerate(self.varying):
            X[:, j: self.n_layers * self.k: self.k] = self.choice_attr[a][C]
        if self.calib_varies:
            X[:, -1] = 0 if calib is None else calib
        return X

    # -- single genome <-> config -------------------------------------------------------------
    def decode(self, x, hardware: Optional[str] = None) -> QuantConfig:
        x = np.asarray(x, dtype=np.int64).reshape(1, -1)
        if x.shape[1] != self.n_var:
            raise QuantmooError(f"A genome for this space must have {self.n_var} genes; got {x.shape[1]}")
        if np.any(x < self.xl) or np.any(x > self.xu):
            raise QuantmooError("The genome has genes outside their bounds [xl, xu]")
        c = self.choices(x)[0]
        sp = self.space
        lq = self.layer_quants()
        layers = {layer.name: lq[ci] for layer, ci in zip(self.model.layers, c.tolist())}
        calib = sp.calibrations[int(self.calibration_index(x)[0])]
        return QuantConfig(layers, calibration=calib, model=self.model.name, hardware=hardware)

    def layer_quants(self) -> list:
        """One (immutable, validated once) LayerQuant per choice id."""
        if getattr(self, "_lq", None) is None:
            cv, gs = self.choice_value, self.space.group_size
            self._lq = [LayerQuant(weight_bits=int(cv["weight_bits"][c]), activation_bits=int(cv["activation_bits"][c]),
                                   weight_scheme=str(cv["weight_scheme"][c]),
                                   activation_scheme=str(cv["activation_scheme"][c]),
                                   granularity=str(cv["granularity"][c]), group_size=gs,
                                   weight_format=str(cv["weight_format"][c]))
                        for c in range(self.n_choices)]
        return self._lq

    def encode(self, config: QuantConfig) -> np.ndarray:
        config.check_model(self.model)
        sp = self.space
        x = np.zeros(self.n_var, dtype=np.int64)
        for i, name in enumerate(self.model.layer_names):
            lq = config.layers[name]
            for j, a in enumerate(self.varying):
                v = getattr(lq, a)
                if v not in sp.values(a):
                    raise QuantmooError(f"The '{a}' of layer '{name}' must be one of the space's "
                                        f"{_SPACE_FIELD[a]} {{{_fmt(sp.values(a))}}}; got {v!r}")
                x[i * self.k + j] = sp.values(a).index(v)
            ggml = lq.weight_format != "int"
            for a in LAYER_ATTRS:
                if a not in self.varying and getattr(lq, a) != sp.values(a)[0] and not (
                        a in ("weight_scheme", "granularity") and lq.weight_bits == 16) and not (
                        ggml and a in ("weight_bits", "weight_scheme", "granularity")):
                    raise QuantmooError(f"The '{a}' of layer '{name}' must be {sp.values(a)[0]!r} in this "
                                        f"space; got {getattr(lq, a)!r}")
            if lq.granularity == "per_group" and lq.group_size != sp.group_size and not ggml:
                raise QuantmooError(f"The 'group_size' of layer '{name}' must be {sp.group_size} in this space; "
                                    f"got {lq.group_size}")
        if self.calib_varies:
            x[-1] = sp.calibrations.index(config.calibration)
        elif config.calibration != sp.calibrations[0]:
            raise QuantmooError(f"The 'calibration' must be {sp.calibrations[0]!r} in this space; "
                                f"got {config.calibration!r}")
        return x

    def uniform_genome(self, weight_bits: int, activation_bits: int, calibration: int = 0, **attrs) -> np.ndarray:
        """Genome with the same choice on every layer (nearest allowed bit values)."""
        sp = self.space
        idx = {}
        for a in LAYER_ATTRS:
            vals = sp.values(a)
            if a == "weight_bits":
                idx[a] = int(np.argmin([abs(v - weight_bits) for v in vals]))
            elif a == "weight_format" and a not in attrs and sp.llama_cpp_types:
                # the type whose nominal bits are nearest (the first, i.e. smallest, on a tie)
                idx[a] = int(np.argmin([abs(GGML_TYPES[v].bits - weight_bits) for v in vals]))
            elif a == "activation_bits":
                idx[a] = int(np.argmin([abs(v - activation_bits) for v in vals]))
            elif a in attrs and attrs[a] in vals:
                idx[a] = vals.index(attrs[a])
            else:
                idx[a] = 0
        c = sum(idx[a] * self.stride[a] for a in LAYER_ATTRS)
        x = self.genes_from_choices(np.full((1, self.n_layers), c), np.array([calibration]))[0]
        return np.clip(x, self.xl, self.xu)
