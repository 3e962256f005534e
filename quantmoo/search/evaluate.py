"""Evaluating one saved config with the exact numbers the search used."""
from __future__ import annotations

from pathlib import Path

from ..config import QuantConfig
from ..errors import QuantmooError
from .problem import QuantizationProblem
from .space import SearchSpace


def space_for_config(config: QuantConfig, model) -> SearchSpace:
    """The smallest space that contains every value the config uses (so it can be encoded)."""
    fmts = sorted(set(config.column("weight_format", model)))
    if fmts != ["int"]:
        if "int" in fmts:
            raise QuantmooError("The config mixes llama.cpp types with quantmoo's own weight grids; "
                                "a space holds one or the other")
        acts = sorted(set(config.column("activation_bits", model)))
        ascheme = sorted(set(config.column("activation_scheme", model)))
        return SearchSpace.llama_cpp(types=fmts, activation_bits=acts, activation_schemes=ascheme,
                                     calibrations=(config.calibration,))
    cols = {a: sorted(set(config.column(a, model)), key=str) for a in
            ("weight_bits", "activation_bits", "weight_scheme", "activation_scheme", "granularity")}
    gs = {lq.group_size for lq in config.layers.values() if lq.granularity == "per_group"}
    if len(gs) > 1:
        raise QuantmooError(f"The config uses several per-group sizes {sorted(gs)}; one group size is supported")
    return SearchSpace(weight_bits=cols["weight_bits"], activation_bits=cols["activation_bits"],
                       weight_schemes=cols["weight_scheme"], activation_schemes=cols["activation_scheme"],
                       granularities=cols["granularity"], group_size=gs.pop() if gs else 128,
                       calibrations=(config.calibration,))


def evaluate_config(model, hardware, config, space=None, accuracy=None) -> dict:
    """Every objective of one config (dict name -> float), plus ``accuracy_kind``.

    The accuracy model must be built on the same space as the search for the numbers to match,
    so pass the search's ``space`` (``quantmoo evaluate`` reads it from ``results.json``).
    """
    from .problem import resolve_model
    if isinstance(config, (str, Path)):
        config = QuantConfig.load(config)
    model = resolve_model(model)
    config.check_model(model)
    if space is None:
        space = space_for_config(config, model)
    prob = QuantizationProblem(model, hardware, space=space, accuracy=accuracy)
    x = prob.encoding.encode(config)
    vals = prob.evaluate_all(x[None, :])
    out = {k: float(v[0]) for k, v in vals.items()}
    out["accuracy_kind"] = prob.accuracy_kind
    return out
