"""Hardware profiles (cited YAML) and the vectorised cost model."""
from .profile import Device, HardwareProfile, load, names
from .cost import CostTables, build_cost_tables, evaluate_costs, layer_breakdown

__all__ = ["Device", "HardwareProfile", "load", "names", "CostTables", "build_cost_tables", "evaluate_costs",
           "layer_breakdown"]
