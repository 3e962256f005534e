"""The brief's genome types, each a thin view of a quantmoo core type.

=====================  ==========================================================================
brief                  quantmoo
=====================  ==========================================================================
``LayerQuantConfig``   :class:`~quantmoo.config.LayerQuant` (one layer's choices)
``QuantizationGenome``  :class:`~quantmoo.config.QuantConfig` (all layers + calibration) plus the
                       objective values of a :class:`~quantmoo.results.result.Solution`
=====================  ==========================================================================

Conversions are lossless in both directions (``to_layer_quant``/``from_layer_quant``,
``to_quant_config``/``from_quant_config``), except for the two fields the core does not have:

* ``LayerQuantConfig.use_symmetric`` is derived from ``weight_scheme`` (symmetric and
  power-of-two are symmetric, asymmetric/affine is not). It describes the *weights*;
  activations have their own ``activation_scheme``. Giving only ``use_symmetric`` picks
  ``SYMMETRIC`` or ``ASYMMETRIC``; a value contradicting ``weight_scheme`` is an error.
* ``QuantizationGenome.global_scheme`` is a summary: the weight scheme used by most layers
  with quantized (< 16-bit) weights. quantmoo has no global scheme (every layer carries its
  own), so it is not used when converting to a ``QuantConfig``.

The fitness fields are the objective values the core computed for the config, never
re-derived:

=============================  ===========================================================
field                          source
=============================  ===========================================================
``accuracy_loss``              objective ``accuracy_loss`` (percentage points)
``accuracy_kind``              ``prior`` / ``proxy`` / ``measured`` (DESIGN.md section 6)
``compression_ratio``          fp32 weight bytes / packed size (``Solution.compression_ratio``)
``inference_latency_ms``       objective ``latency_ms``
``memory_footprint_mb``        objective ``memory_mb`` (peak resident memory)
``energy_per_inference_mj``    objective ``energy_mj``
``size_mb``                    objective ``size_mb`` (packed weights, 10^6 bytes)
``accuracy``                   a **measured** accuracy in % of the quantized model, or None
``baseline_accuracy``          the measured fp32 accuracy in %, when the evaluator knows it
``measured``                   every metric of a real evaluation (``Solution.measured``)
=============================  ===========================================================

``accuracy`` is None unless a real evaluator measured it (``measured["accuracy_pct"]``, e.g.
the ``digits`` model with ``QuantizationEvolutionConfig(measure_accuracy=True)``). It is never
``100 - accuracy_loss`` and never ``baseline_accuracy - accuracy_loss`` for a ``prior`` or
``proxy`` loss: those are model estimates in percentage points, not accuracies. Read
``accuracy_loss`` together with ``accuracy_kind`` instead.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from ..config import LayerQuant, QuantConfig
from ..errors import QuantmooError
from .enums import CalibrationMethod, QuantizationGranularity, QuantizationScheme

__all__ = ["LayerQuantConfig", "QuantizationGenome"]

#: Genome fitness field -> core objective name.
FITNESS_OBJECTIVES = {
    "accuracy_loss": "accuracy_loss",
    "size_mb": "size_mb",
    "inference_latency_ms": "latency_ms",
    "memory_footprint_mb": "memory_mb",
    "energy_per_inference_mj": "energy_mj",
}


@dataclass
class LayerQuantConfig:
    """One layer's quantization (the brief's name for :class:`~quantmoo.config.LayerQuant`).

    Parameters
    ----------
    weight_bits : int
        Weight bit-width; 16 means fp16 (scheme and granularity then do not matter).
    activation_bits : int
        Activation bit-width; 16 means fp16.
    weight_scheme : QuantizationScheme, optional
        Default from ``use_symmetric`` (``SYMMETRIC`` unless ``use_symmetric=False``).
    activation_scheme : QuantizationScheme
        Default ``ASYMMETRIC`` (activations after ReLU/GELU are one-sided).
    granularity : QuantizationGranularity
        Default ``PER_CHANNEL``.
    use_symmetric : bool, optional
        Whether the *weight* scheme is symmetric (no zero-point). Derived from
        ``weight_scheme`` when not given.
    group_size : int
        Group length for ``PER_GROUP`` (quantmoo's default 128).
    """

    weight_bits: int = 8
    activation_bits: int = 8
    weight_scheme: Optional[QuantizationScheme] = None
    activation_scheme: QuantizationScheme = QuantizationScheme.ASYMMETRIC
    granularity: QuantizationGranularity = QuantizationGranularity.PER_CHANNEL
    use_symmetric: Optional[bool] = None
    group_size: int = 128

    def __post_init__(self):
        owner = "LayerQuantConfig"
        if self.use_symmetric is not None and not isinstance(self.use_symmetric, bool):
            raise QuantmooError(f"The 'use_symmetric' of {owner} must be True, False or None; "
                                f"got {self.use_symmetric!r}")
        if self.weight_scheme is None:
            self.weight_scheme = (QuantizationScheme.ASYMMETRIC if self.use_symmetric is False
                                  else QuantizationScheme.SYMMETRIC)
        self.weight_scheme = QuantizationScheme.coerce(self.weight_scheme, "weight_scheme", owner)
        self.activation_scheme = QuantizationScheme.coerce(self.activation_scheme, "activation_scheme", owner)
        self.granularity = QuantizationGranularity.coerce(self.granularity, "granularity", owner)
        sym = self.weight_scheme.is_symmetric
        if self.use_symmetric is None:
            self.use_symmetric = sym
        elif self.use_symmetric != sym:
            raise QuantmooError(f"The 'use_symmetric={self.use_symmetric}' of {owner} contradicts "
                                f"weight_scheme={self.weight_scheme.name}; give one of them")
        lq = self.to_layer_quant()          # validates bits and group_size with the core's rules
        self.weight_bits, self.activation_bits = lq.weight_bits, lq.activation_bits

    def to_layer_quant(self) -> LayerQuant:
        """The core :class:`~quantmoo.config.LayerQuant`."""
        try:
            return LayerQuant(weight_bits=self.weight_bits, activation_bits=self.activation_bits,
                              weight_scheme=QuantizationScheme(self.weight_scheme).value,
                              activation_scheme=QuantizationScheme(self.activation_scheme).value,
                              granularity=QuantizationGranularity(self.granularity).value,
                              group_size=self.group_size)
        except QuantmooError as e:
            raise QuantmooError(str(e).replace("of LayerQuant", "of LayerQuantConfig")) from None

    @classmethod
    def from_layer_quant(cls, lq: LayerQuant) -> "LayerQuantConfig":
        return cls(weight_bits=lq.weight_bits, activation_bits=lq.activation_bits,
                   weight_scheme=QuantizationScheme(lq.weight_scheme),
                   activation_scheme=QuantizationScheme(lq.activation_scheme),
                   granularity=QuantizationGranularity(lq.granularity), group_size=lq.group_size)

    def to_dict(self) -> dict:
        return {"weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
                "weight_scheme": self.weight_scheme.value, "activation_scheme": self.activation_scheme.value,
                "granularity": self.granularity.value, "use_symmetric": self.use_symmetric,
                "group_size": self.group_size}


@dataclass
class QuantizationGenome:
    """A whole-model quantization config and its fitness (see the module docstring).

    Parameters
    ----------
    layer_configs : dict of str to LayerQuantConfig
        One entry per quantizable layer, in model order.
    global_scheme : QuantizationScheme, optional
        Summary of the per-layer weight schemes (derived when not given; not used by
        :meth:`to_quant_config`).
    calibration_method : CalibrationMethod
        The global activation calibration method.
    accuracy, compression_ratio, inference_latency_ms, memory_footprint_mb, energy_per_inference_mj
        The brief's fitness metrics; None until evaluated. ``accuracy`` is a measured value only.
    accuracy_loss, accuracy_kind, size_mb, baseline_accuracy, measured
        The core's values behind them.
    model, hardware : str, optional
        Names for provenance (and ``quantmoo evaluate``).
    """

    layer_configs: Dict[str, LayerQuantConfig]
    global_scheme: Optional[QuantizationScheme] = None
    calibration_method: CalibrationMethod = CalibrationMethod.MIN_MAX
    accuracy: Optional[float] = None
    compression_ratio: Optional[float] = None
    inference_latency_ms: Optional[float] = None
    memory_footprint_mb: Optional[float] = None
    energy_per_inference_mj: Optional[float] = None
    accuracy_loss: Optional[float] = None
    accuracy_kind: Optional[str] = None
    size_mb: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    measured: Optional[dict] = None
    model: Optional[str] = None
    hardware: Optional[str] = None

    def __post_init__(self):
        owner = "QuantizationGenome"
        if not isinstance(self.layer_configs, Mapping) or not self.layer_configs:
            raise QuantmooError(f"The 'layer_configs' of {owner} must be a non-empty mapping of layer name -> "
                                f"LayerQuantConfig")
        fixed = {}
        for name, lc in self.layer_configs.items():
            if isinstance(lc, LayerQuant):
                lc = LayerQuantConfig.from_layer_quant(lc)
            elif isinstance(lc, Mapping):
                lc = LayerQuantConfig(**dict(lc))
            elif not isinstance(lc, LayerQuantConfig):
                raise QuantmooError(f"The 'layer_configs.{name}' of {owner} must be a LayerQuantConfig; "
                                    f"got {type(lc).__name__}")
            fixed[str(name)] = lc
        self.layer_configs = fixed
        self.calibration_method = CalibrationMethod.coerce(self.calibration_method, "calibration_method", owner)
        if self.global_scheme is None:
            self.global_scheme = _majority_scheme(fixed.values())
        else:
            self.global_scheme = QuantizationScheme.coerce(self.global_scheme, "global_scheme", owner)

    # -- core conversions ---------------------------------------------------------------------
    def to_quant_config(self, model: Optional[str] = None, hardware: Optional[str] = None) -> QuantConfig:
        """The core :class:`~quantmoo.config.QuantConfig` (per-layer choices + calibration)."""
        layers = {n: lc.to_layer_quant() for n, lc in self.layer_configs.items()}
        return QuantConfig(layers, calibration=self.calibration_method.value,
                           model=model if model is not None else self.model,
                           hardware=hardware if hardware is not None else self.hardware)

    @classmethod
    def from_quant_config(cls, config: QuantConfig, **fitness) -> "QuantizationGenome":
        """A genome for a core config; ``fitness`` sets any of the fitness fields."""
        return cls(layer_configs={n: LayerQuantConfig.from_layer_quant(lq) for n, lq in config.layers.items()},
                   calibration_method=CalibrationMethod(config.calibration), model=config.model,
                   hardware=config.hardware, **fitness)

    @classmethod
    def from_solution(cls, solution, accuracy_kind: str, baseline_accuracy: Optional[float] = None
                      ) -> "QuantizationGenome":
        """A genome for one front point, its fitness taken from the core's objective values.

        ``solution.objectives`` holds every objective the core evaluated (searched or not);
        ``accuracy`` comes from ``solution.measured["accuracy_pct"]`` only.
        """
        objs = solution.objectives
        fit = {f: (float(objs[o]) if o in objs else None) for f, o in FITNESS_OBJECTIVES.items()}
        measured = dict(solution.measured) if solution.measured else None
        acc = measured.get("accuracy_pct") if measured else None
        return cls.from_quant_config(
            solution.config, accuracy=None if acc is None else float(acc),
            compression_ratio=float(solution.compression_ratio), accuracy_kind=accuracy_kind,
            baseline_accuracy=None if baseline_accuracy is None else float(baseline_accuracy),
            measured=measured, **fit)

    # -- views ----------------------------------------------------------------------------------
    @property
    def objectives(self) -> dict:
        """The core objective values held by this genome (``{"latency_ms": ..., ...}``)."""
        return {o: getattr(self, f) for f, o in FITNESS_OBJECTIVES.items() if getattr(self, f) is not None}

    def to_dict(self) -> dict:
        """JSON/YAML-ready form (enum members as their values)."""
        return {
            "layer_configs": {n: lc.to_dict() for n, lc in self.layer_configs.items()},
            "global_scheme": self.global_scheme.value, "calibration_method": self.calibration_method.value,
            "accuracy": self.accuracy, "compression_ratio": self.compression_ratio,
            "inference_latency_ms": self.inference_latency_ms, "memory_footprint_mb": self.memory_footprint_mb,
            "energy_per_inference_mj": self.energy_per_inference_mj, "accuracy_loss": self.accuracy_loss,
            "accuracy_kind": self.accuracy_kind, "size_mb": self.size_mb,
            "baseline_accuracy": self.baseline_accuracy, "measured": self.measured,
            "model": self.model, "hardware": self.hardware,
        }

    def __repr__(self) -> str:
        def f(v, fmt):
            return "None" if v is None else format(v, fmt)
        return (f"QuantizationGenome(model={self.model!r}, hardware={self.hardware!r}, "
                f"{len(self.layer_configs)} layers, compression_ratio={f(self.compression_ratio, '.3g')}, "
                f"accuracy_loss={f(self.accuracy_loss, '.3g')} ({self.accuracy_kind}), "
                f"accuracy={f(self.accuracy, '.4g')}, inference_latency_ms={f(self.inference_latency_ms, '.4g')}, "
                f"memory_footprint_mb={f(self.memory_footprint_mb, '.4g')}, "
                f"energy_per_inference_mj={f(self.energy_per_inference_mj, '.4g')})")


def _majority_scheme(layer_configs) -> QuantizationScheme:
    """Weight scheme of most layers with quantized (< 16-bit) weights; SYMMETRIC if none."""
    counts = Counter(lc.weight_scheme for lc in layer_configs if lc.weight_bits < 16)
    if not counts:
        return QuantizationScheme.SYMMETRIC
    return counts.most_common(1)[0][0]   # ties: the scheme seen first
