"""Baselines every result is compared with: uniform precision, greedy (AIMET-AMP style),
HAWQ-V3-style ILP, llama.cpp-style rule presets, random search and exact separable fronts."""
from __future__ import annotations

from .uniform import UNIFORM_PRESETS, uniform_genomes


def standard_baselines(problem) -> list:
    """Evaluate the standard baselines on ``problem``: ``[{name, objectives, config}]``."""
    from ..search.front import solutions_from_genomes
    out = []
    names, X = uniform_genomes(problem)
    if len(X):
        for name, sol in zip(names, solutions_from_genomes(problem, X)):
            out.append({"name": name, "kind": "uniform", "objectives": sol.objectives,
                        "compression_ratio": sol.compression_ratio, "config": sol.config.to_dict()})
    return out


__all__ = ["UNIFORM_PRESETS", "uniform_genomes", "standard_baselines"]
