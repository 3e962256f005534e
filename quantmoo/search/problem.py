"""QuantizationProblem: the vectorised pymoo Problem.

``_evaluate`` turns an (N, n_var) integer matrix into choice ids (one small matmul), then
gathers the accuracy and cost tables and adds the non-separable terms. No Python loop over
individuals.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np
from pymoo.core.problem import Problem

from ..errors import QuantmooError
from ..hardware.cost import MODE_CODES, build_cost_tables, evaluate_costs, layer_breakdown
from .space import SearchSpace

#: Objective names, all minimised, with their units.
OBJECTIVES = {
    "accuracy_loss": "pp",
    "size_mb": "MB",
    "latency_ms": "ms",
    "energy_mj": "mJ",
    "memory_mb": "MB",
}
DEFAULT_OBJECTIVES = ("accuracy_loss", "size_mb", "latency_ms", "energy_mj")
#: Rows per block of :meth:`QuantizationProblem.evaluate_all` (a few hundred KB per temporary at 200+ layers).
_BLOCK = 512

#: Deployment scenarios of the product brief as upper bounds (see docs/scenarios in README).
#: mobile: a phone app may keep ~1.5 GB resident next to the OS and other apps (a few GB of
#:   RAM in total) and must answer interactively (< 100 ms per inference).
#: iot: a microcontroller-class / small Linux device with tens of MB (32 MB budget) and a
#:   ~100 ms real-time deadline at a few hundred mJ per inference (battery).
#: edge_server: accuracy near baseline (<= 1 pp loss); memory and latency are generous.
SCENARIOS = {
    "mobile": {"memory_mb": 1500.0, "latency_ms": 100.0},
    "iot": {"memory_mb": 32.0, "latency_ms": 100.0, "energy_mj": 500.0},
    "edge_server": {"accuracy_loss": 1.0, "memory_mb": 32000.0},
}


def resolve_model(model):
    from ..models.spec import ModelSpec
    if isinstance(model, ModelSpec):
        return model
    from .. import zoo
    return zoo.load(model)


def resolve_hardware(hardware):
    from ..hardware import HardwareProfile, load
    if isinstance(hardware, HardwareProfile):
        return hardware
    return load(hardware)


def resolve_space(space) -> SearchSpace:
    """A SearchSpace from None (the default space), a mapping of its fields, or a SearchSpace."""
    if space is None:
        return SearchSpace()
    if isinstance(space, Mapping):
        return SearchSpace.from_dict(space)
    if not isinstance(space, SearchSpace):
        raise QuantmooError(f"The 'space' must be a SearchSpace or a mapping; got {type(space).__name__}")
    return space


def resolve_constraints(constraints) -> dict:
    """Normalise constraints: a scenario name, a mapping objective -> upper bound, or None."""
    if constraints is None:
        return {}
    if isinstance(constraints, str):
        if constraints not in SCENARIOS:
            raise QuantmooError(f"The 'constraints' scenario must be one of {{{', '.join(SCENARIOS)}}}; "
                                f"got {constraints!r}")
        return dict(SCENARIOS[constraints])
    if not isinstance(constraints, Mapping):
        raise QuantmooError("The 'constraints' must be a scenario name or a mapping objective -> upper bound")
    out = {}
    for k, v in constraints.items():
        if k not in OBJECTIVES:
            raise QuantmooError(f"The 'constraints' key must be one of {{{', '.join(OBJECTIVES)}}}; got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise QuantmooError(f"The 'constraints.{k}' upper bound must be a finite number > 0; got {v!r}")
        out[k] = float(v)
    return out


def resolve_objectives(objectives) -> tuple:
    if isinstance(objectives, str):
        objectives = (objectives,)
    objectives = tuple(objectives)
    if not objectives:
        raise QuantmooError(f"The 'objectives' must name at least one of {{{', '.join(OBJECTIVES)}}}")
    for o in objectives:
        if o not in OBJECTIVES:
            raise QuantmooError(f"The 'objectives' values must be in {{{', '.join(OBJECTIVES)}}}; got {o!r}")
    if len(set(objectives)) != len(objectives):
        raise QuantmooError(f"The 'objectives' contain duplicates: {list(objectives)}")
    return objectives


class QuantizationProblem(Problem):
    """Per-layer mixed-precision quantization as a vectorised mixed-integer pymoo Problem.

    Parameters
    ----------
    model : ModelSpec or str
        A model spec or a zoo name / spec path.
    hardware : HardwareProfile or str
        A profile or a profile name / YAML path.
    space : SearchSpace, optional
        Defaults to ``SearchSpace()``.
    objectives : sequence of str
        Subset of ``OBJECTIVES`` to minimise, in order.
    constraints : str or dict, optional
        A scenario name (``SCENARIOS``) or ``{objective: upper_bound}``; enforced as pymoo
        inequality constraints ``G = value - bound <= 0``.
    accuracy : AccuracyTable or MeasuredAccuracy, optional
        Defaults to :func:`quantmoo.accuracy.sensitivity.default_accuracy`: for a model with real
        weights a proxy (measured sensitivity with an evaluator, the omega proxy without), for a
        layer table without weights the documented prior. A
        :class:`~quantmoo.search.measured.MeasuredAccuracy` measures every genome with a real
        evaluator instead; a failed evaluation then violates the extra constraint
        ``evaluation_failed <= 0`` (listed last in ``constraint_names``).

    Examples
    --------
    >>> import numpy as np, quantmoo
    >>> p = quantmoo.QuantizationProblem("resnet50", "arm_dot")
    >>> F = p.evaluate(np.tile(p.xl, (3, 1)), return_values_of=["F"])
    """

    def __init__(self, model, hardware, space: Optional[SearchSpace] = None,
                 objectives: Sequence[str] = DEFAULT_OBJECTIVES, constraints=None, accuracy=None):
        from ..accuracy.tables import AccuracyTable
        from .measured import MeasuredAccuracy

        self.model = resolve_model(model)
        self.hardware = resolve_hardware(hardware)
        self.space = space = resolve_space(space)
        self.objectives = resolve_objectives(objectives)
        self.constraints = resolve_constraints(constraints)
        self.encoding = space.bind(self.model)
        self.costs = build_cost_tables(self.model, self.hardware, self.encoding)
        if accuracy is None:   # real weights: a proxy (cached), never the prior
            if self.model.weights is not None:
                # weights that no proxy could use (NaN, a wrong shape) mean a broken model: refuse it
                self.model.check_weights()
            from ..accuracy.sensitivity import default_accuracy
            accuracy = default_accuracy(self.model, space)
        self.measured = isinstance(accuracy, MeasuredAccuracy)
        if self.measured:
            self.accuracy = accuracy.check(self.encoding, model=self.model, hardware_name=self.hardware.name)
        elif isinstance(accuracy, AccuracyTable):
            self.accuracy = accuracy.check(self.encoding)
        else:
            raise QuantmooError(f"The 'accuracy' must be an AccuracyTable or a MeasuredAccuracy; got "
                                f"{type(accuracy).__name__}")
        #: names of the columns of G: the objective bounds, then the evaluation-failure flag
        self.constraint_names = tuple(self.constraints) + (("evaluation_failed",) if self.measured else ())
        self._native = None
        self._pins = None
        super().__init__(n_var=self.encoding.n_var, n_obj=len(self.objectives),
                         n_ieq_constr=len(self.constraint_names), xl=self.encoding.xl, xu=self.encoding.xu,
                         vtype=int)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate_all(self, X) -> dict:
        """Every objective (not only the searched ones) for an (N, n_var) genome matrix."""
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        if not np.issubdtype(X.dtype, np.integer):
            X = np.rint(X).astype(np.int64)
        # blocks of rows: each pass's (block, n_layers) temporaries stay in the CPU cache instead of
        # streaming (N, n_layers) arrays through memory; row-wise results do not depend on the block
        blocks = [self._table_values(X[i: i + _BLOCK]) for i in range(0, max(len(X), 1), _BLOCK)]
        out = blocks[0] if len(blocks) == 1 else {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
        if self.measured:
            loss, failed = self.accuracy.measure(X)
            out["accuracy_loss"] = loss
            out["evaluation_failed"] = failed.astype(float)
        return out

    def _table_values(self, X) -> dict:
        """Costs (and the table accuracy) of a block of genomes."""
        C = self.encoding.choices(X)
        rows = C + self.costs.row_offsets[None, :]
        out = evaluate_costs(self.costs, C, rows)
        if not self.measured:
            out["accuracy_loss"] = self.accuracy.evaluate(C, self.encoding.calibration_index(X), rows)
        return out

    def constraint_values(self, vals: dict) -> Optional[np.ndarray]:
        """G (N, n_constr), feasible where ``G <= 0``, from :meth:`evaluate_all`'s values; None if unconstrained.

        A failed evaluation's unknown objective (nan) does not enter its bound's column; the
        ``evaluation_failed`` column (1 when failed) carries the violation.
        """
        if not self.constraint_names:
            return None
        cols = [vals[k] - b for k, b in self.constraints.items()]
        if self.measured:
            cols = [np.where(np.isnan(c), 0.0, c) for c in cols] + [vals["evaluation_failed"]]
        return np.column_stack(cols)

    def feasible_mask(self, vals: dict) -> np.ndarray:
        """True where a row of :meth:`evaluate_all`'s values meets every constraint."""
        G = self.constraint_values(vals)
        n = len(next(iter(vals.values())))
        return np.ones(n, dtype=bool) if G is None else (G <= 0).all(axis=1)

    def _evaluate(self, X, out, *args, **kwargs):
        vals = self.evaluate_all(X)
        out["F"] = np.column_stack([vals[o] for o in self.objectives])
        G = self.constraint_values(vals)
        if G is not None:
            out["G"] = G

    # -- helpers for operators and reports ------------------------------------------------------
    def native_mask(self) -> np.ndarray:
        """(n_layers, n_choices) True where the target runs the choice natively."""
        if self._native is None:
            self._native = self.costs.mode == MODE_CODES["native"]
        return self._native

    def pin_mask(self) -> np.ndarray:
        """(n_layers, n_choices) True where a choice respects the layer's pinned genes."""
        if self._pins is None:
            enc = self.encoding
            ok = np.ones((enc.n_layers, enc.n_choices), dtype=bool)
            for j, a in enumerate(enc.varying):
                g = np.arange(enc.n_layers) * enc.k + j
                v = enc.choice_attr[a][None, :]
                ok &= (v >= enc.xl[g][:, None]) & (v <= enc.xu[g][:, None])
            self._pins = ok
        return self._pins

    def separable_tables(self, calib: int = 0):
        """(accuracy, size) tables of the separable part, (n_layers, n_choices) each."""
        return self.accuracy.separable(calib), self.costs.column("weight_bytes") / 1e6

    def breakdown(self, config) -> list:
        """Per-layer cost breakdown of one config (a QuantConfig or a genome)."""
        x = config if isinstance(config, np.ndarray) else self.encoding.encode(config)
        return layer_breakdown(self.costs, self.model, self.encoding.choices(x[None, :])[0])

    @property
    def accuracy_kind(self) -> str:
        return self.accuracy.kind
