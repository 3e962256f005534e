"""quantmoo's own pymoo operators: pure vectorised functions plus thin pymoo classes."""
from .crossover import QuantCrossover, cx_layer_points
from .duplicates import QuantDuplicateElimination, duplicate_mask
from .mutation import QuantMutation, mutate_genomes
from .repair import QuantRepair, repair_genomes
from .sampling import (QuantSampling, greedy_path_seeds, lagrangian_choices, sample_biased, sample_uniform,
                       uniform_precision_seeds)

__all__ = [
    "QuantCrossover", "QuantMutation", "QuantRepair", "QuantSampling", "QuantDuplicateElimination",
    "cx_layer_points",
    "duplicate_mask", "mutate_genomes", "repair_genomes", "greedy_path_seeds", "lagrangian_choices",
    "sample_biased", "sample_uniform", "uniform_precision_seeds",
]
