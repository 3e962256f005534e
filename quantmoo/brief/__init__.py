"""The product brief's API, as a thin facade over quantmoo's pymoo-based search.

Users who come with the brief's names and examples can keep them::

    from quantmoo.brief import (QuantizationEvolutionConfig, QuantizationEvolutionEngine,
                                HardwareTarget)

    config = QuantizationEvolutionConfig(population_size=20, max_generations=30,
                                         hardware_target=HardwareTarget.ARM_NEON, model="gpt2")
    engine = QuantizationEvolutionEngine(config)
    best = await engine.run_evolution(["h.0.attn.c_attn", "h.0.mlp.c_fc", "lm_head"])

Every name maps one-to-one onto a core type: the enums onto quantmoo's names (profile names,
scheme/granularity/calibration strings), :class:`LayerQuantConfig` onto
:class:`~quantmoo.config.LayerQuant`, :class:`QuantizationGenome` onto
:class:`~quantmoo.config.QuantConfig` plus a front point's objective values,
:class:`QuantizationEvolutionConfig` onto the arguments of :func:`quantmoo.search`, and
:class:`QuantizationEvolutionEngine` onto :class:`~quantmoo.search.run.SearchRun` (the loop
``quantmoo.search`` runs). Same seed, same front.
"""
from .enums import CalibrationMethod, HardwareTarget, QuantizationGranularity, QuantizationScheme
from .genome import LayerQuantConfig, QuantizationGenome
from .engine import QuantizationEvolutionConfig, QuantizationEvolutionEngine, SensitivityReport

__all__ = ["HardwareTarget", "QuantizationScheme", "QuantizationGranularity", "CalibrationMethod",
           "LayerQuantConfig", "QuantizationGenome", "QuantizationEvolutionConfig", "QuantizationEvolutionEngine",
           "SensitivityReport"]
