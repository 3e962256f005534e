"""Baselines every result is compared with: uniform precision, greedy (AIMET-AMP style),
HAWQ-V3-style ILP, llama.cpp-style rule presets, random search and exact separable fronts.

Every baseline works on the problem's own accuracy and cost tables (so its numbers are
comparable with the search's) and returns genomes; they are evaluated with
``problem.evaluate_all`` / :func:`quantmoo.search.front.solutions_from_genomes`.
"""
from __future__ import annotations

import numpy as np

from .exact import cost_table, exact_front, exact_hypervolume, exact_reference
from .greedy import GreedyPath, greedy_curve, greedy_path
from .ilp import ilp_curve, ilp_solve
from .random_search import random_search
from .rules import PRESETS as RULE_PRESETS, preset_types, rule_presets
from .uniform import UNIFORM_PRESETS, uniform_genomes

#: Points of the greedy curve and budgets of the ILP sweep stored by :func:`standard_baselines`.
N_GREEDY_POINTS = 8
N_ILP_POINTS = 6


def _thin_curve(size: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` steps of a curve spread evenly in ``size`` (decreasing; first and last included)."""
    if len(size) <= n:
        return np.arange(len(size))
    targets = np.linspace(size[0], size[-1], n)
    idx = np.searchsorted(-size, -targets, side="left")
    return np.unique(np.clip(idx, 0, len(size) - 1))


def baseline_genomes(problem) -> list:
    """``[(kind, names, X), ...]`` of the standard baselines (uniform, greedy, ilp, rules).

    Computed once per problem and kept on it: the search may seed its population with them
    (``search(..., seed_baselines=True)``) and the result reports them, and the ILP sweep is
    the expensive part of both.
    """
    cached = getattr(problem, "_baseline_genomes", None)
    if cached is not None:
        return cached
    groups = [("uniform", *uniform_genomes(problem))]
    # the curve is kept as its moves (linear in the number of layers); only the kept steps
    # become genomes
    path = greedy_path(problem)
    size_t, offset = cost_table(problem, "size_mb")
    keep = _thin_curve(path.totals(size_t) + offset, N_GREEDY_POINTS)
    groups.append(("greedy", [f"greedy[{i}]" for i in keep.tolist()], path.genomes(keep)))
    groups.append(("ilp", *ilp_curve(problem, N_ILP_POINTS, time_limit=5.0, mip_rel_gap=1e-6)))
    groups.append(("rules", *rule_presets(problem)))
    problem._baseline_genomes = groups
    return groups


def standard_baselines(problem) -> list:
    """Evaluate the standard baselines on ``problem``.

    Uniform-precision presets; ``N_GREEDY_POINTS`` points of the AMP-style greedy curve (on
    size); the HAWQ-V3-style ILP for ``N_ILP_POINTS`` size budgets; and, for decoder LLMs,
    the llama.cpp presets (``Q4_K_M``, ``Q8_0``, ``Q4_0``).

    Returns
    -------
    list of dict
        ``{name, kind, objectives, compression_ratio, config}`` with ``kind`` one of
        ``uniform``, ``greedy``, ``ilp``, ``rules``.
    """
    from ..search.front import solutions_from_genomes
    groups = baseline_genomes(problem)
    out = []
    for kind, names, X in groups:
        if len(X):
            for name, sol in zip(names, solutions_from_genomes(problem, X)):
                out.append({"name": name, "kind": kind, "objectives": sol.objectives,
                            "compression_ratio": sol.compression_ratio, "config": sol.config.to_dict()})
    return out


__all__ = ["baseline_genomes", "UNIFORM_PRESETS", "RULE_PRESETS", "uniform_genomes", "greedy_curve", "greedy_path",
           "GreedyPath", "ilp_solve", "ilp_curve", "rule_presets", "preset_types", "random_search", "exact_front",
           "exact_hypervolume", "exact_reference", "standard_baselines"]
