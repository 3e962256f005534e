"""quantmoo: multi-objective per-layer mixed-precision quantization search on pymoo.

Quick start::

    import quantmoo
    res = quantmoo.search("llama2-7b", "arm_dot", pop_size=100, n_gen=200, seed=0)
    print(res.summary())
    knee = res.knee()
"""
from ._version import __version__
from .config import LayerQuant, QuantConfig
from .errors import MissingDependencyError, QuantmooError
from .models.spec import LayerSpec, ModelSpec
from .search.problem import OBJECTIVES, SCENARIOS, QuantizationProblem
from .search.run import resume_search, search
from .search.inloop import search_measured
from .search.space import SearchSpace
from .results.result import SearchResult, Solution, load_result
from . import zoo, hardware
from .brief import (CalibrationMethod, HardwareTarget, LayerQuantConfig, QuantizationEvolutionConfig,
                    QuantizationEvolutionEngine, QuantizationGenome, QuantizationGranularity, QuantizationScheme)


def evaluate(model, hardware, config, space=None, accuracy=None) -> dict:
    """Objective values of one config: the same numbers the search uses.

    Parameters
    ----------
    model : ModelSpec or str
    hardware : HardwareProfile or str
    config : QuantConfig or path
    space : SearchSpace, optional
        The search's space (needed with a proxy ``accuracy`` table, which is built per space).
    accuracy : AccuracyTable, optional
        The accuracy table the search used (default: the prior), to reproduce a proxy loss.
    """
    from .search.evaluate import evaluate_config
    return evaluate_config(model, hardware, config, space=space, accuracy=accuracy)


def sensitivity(model, space=None, evaluator=None, **kwargs):
    """Per-(layer, choice) accuracy tables; see :func:`quantmoo.accuracy.sensitivity.sensitivity`."""
    from .accuracy.sensitivity import sensitivity as _sens
    return _sens(model, space=space, evaluator=evaluator, **kwargs)


__all__ = [
    "__version__", "LayerQuant", "QuantConfig", "QuantmooError", "MissingDependencyError", "LayerSpec",
    "ModelSpec", "OBJECTIVES", "SCENARIOS", "QuantizationProblem", "search", "resume_search", "SearchSpace",
    "search_measured",
    "SearchResult",
    "Solution", "load_result", "evaluate", "sensitivity", "zoo", "hardware",
    # the product brief's names (a thin facade over search)
    "HardwareTarget", "QuantizationScheme", "QuantizationGranularity", "CalibrationMethod", "LayerQuantConfig",
    "QuantizationGenome", "QuantizationEvolutionConfig", "QuantizationEvolutionEngine",
]
