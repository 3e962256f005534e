"""The search: SearchSpace/genome, the pymoo Problem, operators and the run loop."""
from .space import Encoding, SearchSpace
from .problem import DEFAULT_OBJECTIVES, OBJECTIVES, SCENARIOS, QuantizationProblem
from .run import ALGORITHMS, hv_reference, hypervolume, make_algorithm, search
from .inloop import search_measured

__all__ = ["Encoding", "SearchSpace", "DEFAULT_OBJECTIVES", "OBJECTIVES", "SCENARIOS", "QuantizationProblem",
           "ALGORITHMS", "hv_reference", "hypervolume", "make_algorithm", "search", "search_measured"]
