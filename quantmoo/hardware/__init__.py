"""Hardware profiles (cited YAML), the measured ``host`` profile and the vectorised cost model."""
from .profile import Device, HardwareProfile, load, names
from .cost import CostTables, build_cost_tables, evaluate_costs, layer_breakdown
from .host import RUNTIMES, measure_host, write_host_profile

__all__ = ["Device", "HardwareProfile", "load", "names", "CostTables", "build_cost_tables", "evaluate_costs",
           "layer_breakdown", "measure_host", "write_host_profile", "RUNTIMES"]
