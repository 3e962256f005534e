"""The brief's async evolution engine: a facade over :class:`quantmoo.search.run.SearchRun`.

``QuantizationEvolutionEngine`` is not a second engine. It turns a
:class:`QuantizationEvolutionConfig` into the arguments of :func:`quantmoo.search`
(:meth:`QuantizationEvolutionEngine.search_arguments` shows them) and drives the very loop
``quantmoo.search`` drives, one pymoo ask-and-tell generation at a time, from an event loop.
With the same seed it returns the same front as the equivalent ``quantmoo.search`` call.

Config mapping
--------------
========================  ===============================================================
brief                     quantmoo
========================  ===============================================================
``population_size``       ``pop_size``
``max_generations``       ``n_gen`` (``run_evolution(max_generations=...)`` overrides it)
``hardware_target``       ``hardware`` (a :class:`HardwareTarget` is a profile name)
``target_latency_ms``     the constraint ``latency_ms <= target`` (with ``constraints``,
                          e.g. a scenario, the tighter latency bound wins)
``min_bits, max_bits``    the space's ``weight_bits`` restricted to ``[min_bits, max_bits]``
                          and its ``activation_bits`` to ``>= min_bits``
``*_weight``              ``SearchResult.best(weights=...)`` for :meth:`get_best_genome`:
                          ``accuracy_weight -> accuracy_loss``, ``latency_weight ->
                          latency_ms``, ``compression_weight -> size_mb``, ``energy_weight ->
                          energy_mj``. The search itself stays multi-objective.
``seed``                  ``seed``
========================  ===============================================================

Activation bits are bounded below only: activation precision does not change the model's
size, and the brief's extreme-compression levels (INT4, INT2/4) are weight bit-widths.

What ``run_evolution`` searches
-------------------------------
* a :class:`~quantmoo.models.spec.ModelSpec`, a zoo name or a spec path: every layer of it;
* a list of layer names: those layers of ``config.model``, every other layer pinned to
  ``config.fixed_layers`` (default: the most precise choice the space allows, i.e. W16A16
  fp16 with the default bits range). Names are looked up, never invented: without
  ``config.model`` a list of names is an error, since quantmoo cannot know their sizes.

Async behaviour
---------------
Set-up and every generation run in an executor (by default a one-thread pool owned by the
engine), so the event loop stays free; there is an ``await`` point before every generation.
Cancelling the task (``task.cancel()``, ``asyncio.wait_for``) stops at the next generation
boundary: a generation already running in the worker thread is allowed to finish, then the
engine keeps the result of the completed generations (``engine.result``,
``engine.pareto_front``, ``engine.get_best_genome()``; ``result.meta["stopped"]`` says
why) and re-raises ``CancelledError``.

A run stopped after ``k`` generations (cancelled, or by a callback) is the same as
``quantmoo.search(..., callback=...)`` stopped after ``k`` generations of the planned
``max_generations``, not a ``k``-generation search: the adaptive mutation rate follows the
planned run's progress.

Progress callbacks (``add_progress_callback``) are called after every generation as
``callback(generation, n_evals, front_size, hypervolume, best_genome)``; they may be
coroutine functions, and returning ``False`` stops the run early (like
``quantmoo.search(callback=...)``). ``best_genome`` is what :meth:`get_best_genome` would return
if the run stopped now (None while no feasible point is known; never measured, even with
``measure_accuracy``, which runs once after the search); ``front_size`` counts the
whole non-dominated archive (the reported front is thinned to ``max_front`` points).

Sensitivity
-----------
:meth:`QuantizationEvolutionEngine.analyze_sensitivity` reports, per layer, the
``accuracy_loss`` contribution of quantizing that layer's weights alone to each weight
bit-width of the space (other attributes at their most accurate setting; see
:class:`SensitivityReport`). The table comes from ``config.accuracy`` if given, else from
:func:`quantmoo.sensitivity` (kind ``proxy``) when the model has real weights or an evaluator,
else from the documented prior (kind ``prior``). The contributions are additive: the search
sums them over layers.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from ..errors import QuantmooError
from ..models.spec import ModelSpec
from ..search.problem import DEFAULT_OBJECTIVES, resolve_constraints, resolve_objectives
from ..search.run import ALGORITHMS, SearchRun
from ..search.space import SearchSpace
from .enums import HardwareTarget
from .genome import LayerQuantConfig, QuantizationGenome

__all__ = ["QuantizationEvolutionConfig", "QuantizationEvolutionEngine", "SensitivityReport"]

_OWNER = "QuantizationEvolutionConfig"

#: Config weight field -> the objective it weighs in get_best_genome().
WEIGHT_OBJECTIVES = {
    "accuracy_weight": "accuracy_loss",
    "latency_weight": "latency_ms",
    "compression_weight": "size_mb",
    "energy_weight": "energy_mj",
}
#: Weights used when a field is left at None (accuracy first); 0 for objectives not searched.
DEFAULT_WEIGHTS = {"accuracy_weight": 0.5, "latency_weight": 0.25, "compression_weight": 0.25,
                   "energy_weight": 0.0}


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise QuantmooError(f"The '{name}' of {_OWNER} must be an integer >= {lo}; got {v!r}")
    return int(v)


def _check_number(name, v, allow_zero=True):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)) \
            or float(v) < 0 or (not allow_zero and float(v) == 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise QuantmooError(f"The '{name}' of {_OWNER} must be a finite number {bound}; got {v!r}")
    return float(v)


@dataclass
class QuantizationEvolutionConfig:
    """The brief's engine configuration (see the module docstring for the mapping).

    Parameters
    ----------
    population_size : int
        NSGA-II population (``pop_size``), >= 4.
    max_generations : int
        Generations (``n_gen``).
    hardware_target : HardwareTarget, str or HardwareProfile
        A target, a profile name or a profile YAML path.
    target_latency_ms : float, optional
        Upper bound on ``latency_ms`` (a pymoo inequality constraint, never a penalty).
    latency_weight, accuracy_weight, compression_weight, energy_weight : float, optional
        Weights of :meth:`QuantizationEvolutionEngine.get_best_genome` (>= 0, not all zero).
        Left at None: 0.25, 0.5, 0.25 and 0 (accuracy first), or 0 when the objective is not
        searched; a non-zero weight on an objective that is not searched is an error.
    min_bits, max_bits : int
        Weight bit-widths searched are those of the space within ``[min_bits, max_bits]``;
        activation bit-widths those ``>= min_bits``.
    seed : int
        Same seed, same front.
    model : str or ModelSpec, optional
        The model ``run_evolution`` looks bare layer names up in (a zoo name, a spec path or
        a ModelSpec); also searched when ``run_evolution()`` gets no argument.
    fixed_layers : LayerQuantConfig, optional
        The choice of the layers *not* named in ``run_evolution([...])``. Default: the highest
        weight and activation bits of the space, symmetric weights per channel, asymmetric
        activations (W16A16 = fp16 in the default space).
    space : SearchSpace, optional
        The base search space (default ``SearchSpace()``), before ``min_bits``/``max_bits``.
    objectives : sequence of str
        The searched objectives (default accuracy_loss, size_mb, latency_ms, energy_mj).
    constraints : str or dict, optional
        A scenario (``mobile``, ``iot``, ``edge_server``) or ``{objective: upper_bound}``.
    algorithm : str
        ``nsga2`` (default), ``nsga3``, ``unsga3`` or ``smsemoa``.
    accuracy : AccuracyTable, optional
        The accuracy model (default: the core's prior).
    strict : bool
        Hardware-strict repair (only natively supported choices).
    max_front : int or None
        Report at most this many front points (default 200).
    baselines : bool
        Evaluate the uniform-precision baselines into the result.
    measure_accuracy : bool
        After the run, evaluate every front point with the model's real evaluator (e.g. the
        ``digits`` model) into ``Solution.measured``; the genomes' ``accuracy`` is then a
        measured accuracy. Needs a model with an evaluator.
    """

    population_size: int = 50
    max_generations: int = 100
    hardware_target: Union[HardwareTarget, str, object] = HardwareTarget.ARM_NEON
    target_latency_ms: Optional[float] = None
    latency_weight: Optional[float] = None
    accuracy_weight: Optional[float] = None
    compression_weight: Optional[float] = None
    energy_weight: Optional[float] = None
    min_bits: int = 2
    max_bits: int = 16
    seed: int = 0
    model: Union[None, str, ModelSpec] = None
    fixed_layers: Optional[LayerQuantConfig] = None
    space: Optional[SearchSpace] = None
    objectives: Sequence[str] = DEFAULT_OBJECTIVES
    constraints: Union[None, str, dict] = None
    algorithm: str = "nsga2"
    accuracy: object = None
    strict: bool = False
    max_front: Optional[int] = 200
    baselines: bool = True
    measure_accuracy: bool = False

    def __post_init__(self):
        from ..hardware import HardwareProfile
        self.population_size = _check_int("population_size", self.population_size, 4)
        self.max_generations = _check_int("max_generations", self.max_generations, 1)
        self.seed = _check_int("seed", self.seed, 0)
        hw = self.hardware_target
        if not isinstance(hw, HardwareProfile):
            looks_like_path = isinstance(hw, os.PathLike) or (
                isinstance(hw, str) and hw.lower().endswith((".yaml", ".yml")))
            if not looks_like_path:
                self.hardware_target = HardwareTarget.coerce(hw, "hardware_target", _OWNER)
        if self.target_latency_ms is not None:
            self.target_latency_ms = _check_number("target_latency_ms", self.target_latency_ms, allow_zero=False)
        self.objectives = resolve_objectives(self.objectives)
        for f, o in WEIGHT_OBJECTIVES.items():
            w = getattr(self, f)
            if w is None:      # a default weight applies only to a searched objective
                w = DEFAULT_WEIGHTS[f] if o in self.objectives else 0.0
            setattr(self, f, _check_number(f, w))
        self.min_bits = _check_int("min_bits", self.min_bits, 1)
        self.max_bits = _check_int("max_bits", self.max_bits, 1)
        if self.min_bits > self.max_bits:
            raise QuantmooError(f"The 'min_bits' of {_OWNER} must be <= max_bits; got min_bits={self.min_bits}, "
                                f"max_bits={self.max_bits}")
        if self.model is not None and not isinstance(self.model, (str, os.PathLike, ModelSpec)):
            raise QuantmooError(f"The 'model' of {_OWNER} must be a zoo name, a spec path or a ModelSpec; "
                                f"got {type(self.model).__name__}")
        if self.fixed_layers is not None and not isinstance(self.fixed_layers, LayerQuantConfig):
            raise QuantmooError(f"The 'fixed_layers' of {_OWNER} must be a LayerQuantConfig; "
                                f"got {type(self.fixed_layers).__name__}")
        if self.space is not None and not isinstance(self.space, SearchSpace):
            self.space = SearchSpace.from_dict(self.space, source=f"The 'space' of {_OWNER}")
        if self.algorithm not in ALGORITHMS or self.algorithm == "ga":
            allowed = ", ".join(a for a in ALGORITHMS if a != "ga")
            raise QuantmooError(f"The 'algorithm' of {_OWNER} must be one of {{{allowed}}} (multi-objective); "
                                f"got {self.algorithm!r}")
        if self.max_front is not None:
            self.max_front = _check_int("max_front", self.max_front, 2)
        self.search_constraints()      # validate now, not after a long set-up
        self.objective_weights()
        self.search_space()

    # -- the mapping onto quantmoo's arguments ---------------------------------------------------
    @property
    def hardware(self):
        """What ``quantmoo.search`` gets as ``hardware`` (a profile name, path or profile)."""
        hw = self.hardware_target
        return hw.value if isinstance(hw, HardwareTarget) else hw

    def search_constraints(self) -> dict:
        """``constraints`` with ``latency_ms <= target_latency_ms`` added (the tighter bound wins)."""
        cons = resolve_constraints(self.constraints)
        if self.target_latency_ms is not None:
            cons["latency_ms"] = min(cons.get("latency_ms", math.inf), self.target_latency_ms)
        return cons

    def objective_weights(self, objectives: Optional[Sequence[str]] = None) -> dict:
        """``{objective: weight}`` for ``SearchResult.best`` (non-zero weights only)."""
        objectives = tuple(objectives if objectives is not None else self.objectives)
        out = {}
        for f, o in WEIGHT_OBJECTIVES.items():
            w = getattr(self, f)
            if w > 0:
                if o not in objectives:
                    raise QuantmooError(f"The '{f}' of {_OWNER} is {w:g} but '{o}' is not a searched objective "
                                        f"({', '.join(objectives)}); set it to 0 or add '{o}' to 'objectives'")
                out[o] = w
        if not out:
            raise QuantmooError(f"The weights of {_OWNER} ({', '.join(WEIGHT_OBJECTIVES)}) must not all be 0")
        return out

    def search_space(self) -> SearchSpace:
        """The base space with ``weight_bits`` in [min_bits, max_bits], ``activation_bits`` >= min_bits."""
        base = self.space if self.space is not None else SearchSpace()
        wb = [b for b in base.weight_bits if self.min_bits <= b <= self.max_bits]
        ab = [b for b in base.activation_bits if b >= self.min_bits]
        if not wb:
            raise QuantmooError(f"No weight bit-width of the search space {list(base.weight_bits)} lies in "
                                f"[min_bits, max_bits] = [{self.min_bits}, {self.max_bits}]")
        if not ab:
            raise QuantmooError(f"No activation bit-width of the search space {list(base.activation_bits)} is "
                                f">= min_bits = {self.min_bits}")
        d = base.to_dict()
        d["weight_bits"], d["activation_bits"] = wb, ab
        return SearchSpace.from_dict(d, source=_OWNER)

    def fixed_choice(self, space: SearchSpace) -> dict:
        """The pinned attributes of the layers not searched (see ``fixed_layers``)."""
        if self.fixed_layers is not None:
            lq = self.fixed_layers.to_layer_quant()
            if lq.granularity == "per_group" and lq.group_size != space.group_size:
                raise QuantmooError(f"The 'fixed_layers.group_size' of {_OWNER} must be the space's group_size "
                                    f"{space.group_size}; got {lq.group_size}")
            pin = {a: getattr(lq, a) for a in ("weight_bits", "activation_bits", "weight_scheme",
                                                "activation_scheme", "granularity")}
            for a, v in pin.items():
                if v not in space.values(a):
                    raise QuantmooError(f"The 'fixed_layers.{a}' of {_OWNER} must be one of the search space's "
                                        f"{{{', '.join(map(str, space.values(a)))}}} (after min_bits/max_bits); "
                                        f"got {v!r}")
            return pin

        def prefer(attr, value):
            vals = space.values(attr)
            return value if value in vals else vals[0]
        return {"weight_bits": max(space.weight_bits), "activation_bits": max(space.activation_bits),
                "weight_scheme": prefer("weight_scheme", "symmetric"),
                "activation_scheme": prefer("activation_scheme", "asymmetric"),
                "granularity": prefer("granularity", "per_channel")}


class SensitivityReport(dict):
    """``{layer: accuracy_loss contribution}`` of quantizing one layer's weights to the lowest bits.

    Attributes
    ----------
    kind : str
        ``prior`` or ``proxy`` (or ``measured``): where the numbers come from.
    by_bits : dict
        ``{layer: {weight_bits: contribution}}`` for every weight bit-width of the space.
    reference : dict
        The other attributes of the choices read (most accurate activations, symmetric
        per-channel weights where the space allows, the space's first calibration method).
    table : AccuracyTable
        The full ``(calibrations, layers, choices)`` table; pass it as
        ``QuantizationEvolutionConfig(accuracy=report.table)`` to search with it.
    model : str
    """

    def __init__(self, scores, kind, by_bits, reference, table, model):
        super().__init__(scores)
        self.kind, self.by_bits, self.reference, self.table, self.model = kind, by_bits, reference, table, model

    def __repr__(self) -> str:
        return f"SensitivityReport(kind={self.kind!r}, model={self.model!r}, {dict.__repr__(self)})"


def _is_layer_list(x) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(n, str) for n in x)


class QuantizationEvolutionEngine:
    """The brief's engine, driving :class:`~quantmoo.search.run.SearchRun` from asyncio.

    Parameters
    ----------
    config : QuantizationEvolutionConfig, optional
    executor : concurrent.futures.Executor, optional
        Where set-up and generations run. Default: a one-thread pool owned by the engine
        (:meth:`close` shuts it down). It must be a thread pool: the run's state stays in
        this process.

    Attributes
    ----------
    result : SearchResult or None
        The result of the last run (partial if it was cancelled or stopped early).
    search_run : SearchRun or None
        The loop state of the last run.

    Examples
    --------
    >>> import asyncio
    >>> from quantmoo.brief import QuantizationEvolutionConfig, QuantizationEvolutionEngine, HardwareTarget
    >>> config = QuantizationEvolutionConfig(population_size=20, max_generations=30,
    ...                                      hardware_target=HardwareTarget.ARM_NEON, model="gpt2")
    >>> engine = QuantizationEvolutionEngine(config)
    >>> best = asyncio.run(engine.run_evolution(["h.0.attn.c_attn", "h.0.mlp.c_fc", "lm_head"]))
    """

    def __init__(self, config: Optional[QuantizationEvolutionConfig] = None,
                 executor: Optional[concurrent.futures.Executor] = None):
        if config is None:
            config = QuantizationEvolutionConfig()
        if not isinstance(config, QuantizationEvolutionConfig):
            raise QuantmooError(f"The 'config' of QuantizationEvolutionEngine must be a QuantizationEvolutionConfig; "
                                f"got {type(config).__name__}")
        if executor is not None and isinstance(executor, concurrent.futures.ProcessPoolExecutor):
            raise QuantmooError("The 'executor' of QuantizationEvolutionEngine must be a thread pool: the run's "
                                "state (population, archive) stays in this process")
        self.config = config
        self._executor = executor
        self._own_executor = None
        self._callbacks: List[Callable] = []
        self._model_cache = {}
        self._running = False
        self.result = None
        self.search_run: Optional[SearchRun] = None
        self._front = None

    # -- executor -------------------------------------------------------------------------------
    def _pool(self) -> concurrent.futures.Executor:
        if self._executor is not None:
            return self._executor
        if self._own_executor is None:
            self._own_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                       thread_name_prefix="quantmoo-engine")
        return self._own_executor

    async def _call(self, fn, *args):
        """Run ``fn(*args)`` in the executor; if cancelled meanwhile, let it finish, then re-raise."""
        cf = self._pool().submit(fn, *args)
        try:
            return await asyncio.shield(asyncio.wrap_future(cf))
        except asyncio.CancelledError:
            # a generation cannot be interrupted mid-way; wait for it (blocking, so a second
            # cancellation cannot leave the state half-updated), then propagate the cancellation
            concurrent.futures.wait([cf])
            raise

    def close(self) -> None:
        """Shut down the engine's own worker thread (a user-given executor is left alone)."""
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=True)
            self._own_executor = None

    # -- callbacks ------------------------------------------------------------------------------
    def add_progress_callback(self, callback: Callable) -> None:
        """Call ``callback(generation, n_evals, front_size, hypervolume, best_genome)`` every generation.

        It may be a coroutine function; returning ``False`` stops the run after that generation.
        """
        if not callable(callback):
            raise QuantmooError(f"A progress callback must be callable; got {callback!r}")
        self._callbacks.append(callback)

    def remove_progress_callback(self, callback: Callable) -> None:
        self._callbacks.remove(callback)

    # -- what to search -------------------------------------------------------------------------
    def _load_model(self, model) -> ModelSpec:
        if isinstance(model, ModelSpec):
            return model
        key = os.fspath(model) if isinstance(model, os.PathLike) else model
        if key not in self._model_cache:
            from .. import zoo
            self._model_cache[key] = zoo.load(key)
        return self._model_cache[key]

    def _lookup_model(self, what: str, names) -> ModelSpec:
        if self.config.model is None:
            from .. import zoo
            shown = list(names)[:6]
            raise QuantmooError(
                f"{what} got bare layer names {shown}{' ...' if len(names) > 6 else ''} but no model to look them "
                f"up in, and quantmoo does not invent layer sizes. Either set the model they belong to, "
                f"QuantizationEvolutionConfig(model='gpt2'), and name its layers (the layers not named stay "
                f"fixed), or pass the model itself to search all its layers: run_evolution('gpt2') or "
                f"run_evolution(model_spec). Zoo models: {', '.join(zoo.names())}")
        return self._load_model(self.config.model)

    def _check_names(self, model: ModelSpec, names) -> list:
        names = list(names)
        if not names:
            raise QuantmooError("The layer names must not be empty")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise QuantmooError(f"Duplicate layer names: {dup}")
        known = set(model.layer_names)
        unknown = [n for n in names if n not in known]
        if unknown:
            hints = []
            for n in unknown[:4]:
                close = difflib.get_close_matches(n, model.layer_names, n=3, cutoff=0.5)
                if close:
                    hints.append(f"{n!r}: did you mean {', '.join(close)}?")
            head = model.layer_names[:4]
            raise QuantmooError(
                f"Unknown layer name(s) {unknown[:6]}{' ...' if len(unknown) > 6 else ''} for model '{model.name}'; "
                f"its {model.n_layers} layers are {', '.join(head)}, ..., {model.layer_names[-1]} "
                f"(ModelSpec.layer_names).{' ' + ' '.join(hints) if hints else ''}")
        return names

    def _target(self, layer_names_or_model, what: str = "run_evolution"):
        """(model, searched layer names or None for all)."""
        x = layer_names_or_model
        if x is None:
            if self.config.model is None:
                raise QuantmooError(f"{what} needs a model: pass a ModelSpec, a zoo name or a spec path, "
                                    "or set QuantizationEvolutionConfig(model=...)")
            return self._load_model(self.config.model), None
        if isinstance(x, (ModelSpec, str, os.PathLike)):
            return self._load_model(x), None
        if _is_layer_list(x):
            model = self._lookup_model(what, x)
            names = self._check_names(model, x)
            return model, (None if set(names) == set(model.layer_names) else names)
        raise QuantmooError(f"{what} takes a ModelSpec, a zoo name, a spec path or a list of layer names; "
                            f"got {type(x).__name__}")

    def search_arguments(self, layer_names_or_model=None, max_generations: Optional[int] = None) -> dict:
        """The keyword arguments of the equivalent :func:`quantmoo.search` call.

        ``quantmoo.search(**engine.search_arguments(x))`` gives the same front as
        ``await engine.run_evolution(x)`` (same seed, same generations).
        """
        cfg = self.config
        model, names = self._target(layer_names_or_model)
        space = cfg.search_space()
        if names is not None:
            fixed = cfg.fixed_choice(space)
            d = space.to_dict()
            pinned = dict(d.get("pinned") or {})
            searched = set(names)
            for n in model.layer_names:
                if n not in searched:
                    pinned[n] = {**fixed, **pinned.get(n, {})}
            d["pinned"] = pinned
            space = SearchSpace.from_dict(d, source=_OWNER)
        n_gen = cfg.max_generations if max_generations is None else max_generations
        if isinstance(n_gen, bool) or not isinstance(n_gen, (int, np.integer)) or n_gen < 1:
            raise QuantmooError(f"The 'max_generations' must be an integer >= 1; got {max_generations!r}")
        return dict(model=model, hardware=cfg.hardware, space=space, objectives=cfg.objectives,
                    constraints=cfg.search_constraints() or None, algorithm=cfg.algorithm,
                    pop_size=cfg.population_size, n_gen=int(n_gen), seed=cfg.seed, accuracy=cfg.accuracy,
                    strict=cfg.strict, baselines=cfg.baselines, max_front=cfg.max_front)

    # -- the run --------------------------------------------------------------------------------
    async def run_evolution(self, layer_names_or_model=None, max_generations: Optional[int] = None
                            ) -> QuantizationGenome:
        """Search, one generation per event-loop turn; return :meth:`get_best_genome`.

        Parameters
        ----------
        layer_names_or_model : ModelSpec, str, path or list of str, optional
            A model (all its layers are searched), or names of layers of ``config.model`` (only
            those are searched; the others stay at ``config.fixed_layers``). Default
            ``config.model``.
        max_generations : int, optional
            Overrides ``config.max_generations``.

        Raises
        ------
        QuantmooError
            Bad input, e.g. layer names without ``config.model``.
        asyncio.CancelledError
            When cancelled; the completed generations' result is kept (see the module docstring).
        """
        if self._running:
            raise QuantmooError("This engine is already running an evolution; await it or use another engine")
        self._running = True
        try:
            return await self._run_evolution(layer_names_or_model, max_generations)
        finally:
            self._running = False

    async def _run_evolution(self, layer_names_or_model, max_generations):
        args = await self._call(self.search_arguments, layer_names_or_model, max_generations)
        model = args["model"]
        if self.config.measure_accuracy and getattr(model, "evaluator", None) is None:
            raise QuantmooError(f"measure_accuracy=True needs a model with a real evaluator (e.g. 'digits'); "
                                f"model '{model.name}' has none")
        run = SearchRun(**args)
        await self._call(run.setup)
        self.search_run, self.result, self._front = run, None, None
        stopped = None
        try:
            while run.has_next():
                await asyncio.sleep(0)           # the per-generation await point (cancellation lands here)
                rec = await self._call(run.step)
                if self._callbacks and await self._notify(run, rec) is False:
                    stopped = "callback"
                    break
            res = await self._call(run.result)
            if self.config.measure_accuracy and res.feasible:
                ev = model.evaluator
                for sol in res.front:     # one call per point: a cancellation waits for one evaluation at most
                    sol.measured = await self._call(self._measure, ev, sol.config)
                res.meta["measured_with"] = getattr(ev, "name", type(ev).__name__)
        except asyncio.CancelledError:
            if run.n_done:
                self._keep(run.result(), "cancelled", run)    # synchronous: nothing can interleave
            raise
        self._keep(res, stopped, run)
        return self.get_best_genome()

    @staticmethod
    def _measure(evaluator, config) -> dict:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in evaluator.details(config).items()}

    def _keep(self, res, stopped, run):
        if stopped is not None:
            res.meta["stopped"] = {"reason": stopped, "generations": run.n_done}
        self.result, self._front = res, None

    async def _notify(self, run, rec):
        best = None
        if run.archive is None or len(run.archive):
            best = await self._call(self._snapshot_best, run)
        stop = False
        for cb in list(self._callbacks):
            out = cb(rec["n_gen"], rec["n_eval"], rec["n_front"], rec["hypervolume"], best)
            if inspect.isawaitable(out):
                out = await out
            stop = stop or out is False
        return False if stop else None

    def _snapshot_best(self, run):
        res = run.result(baselines=False)
        if not res.feasible:
            return None
        return self._genome(res.best(weights=self.config.objective_weights(res.objectives)), res)

    # -- results --------------------------------------------------------------------------------
    def _baseline_accuracy(self):
        run = self.search_run
        ev = getattr(run.problem.model, "evaluator", None) if run is not None and run.problem is not None else None
        v = getattr(ev, "fp32_accuracy_pct", None)
        return None if v is None else float(v)

    def _genome(self, sol, res) -> QuantizationGenome:
        return QuantizationGenome.from_solution(sol, accuracy_kind=res.accuracy_kind,
                                                baseline_accuracy=self._baseline_accuracy())

    def _require_result(self):
        if self.result is None:
            raise QuantmooError("No evolution has run yet: await engine.run_evolution(...) first")
        return self.result

    @property
    def history(self) -> list:
        """Per generation: ``{n_gen, n_eval, hypervolume, n_front}`` (of the last run)."""
        return list(self.search_run.history) if self.search_run is not None else []

    @property
    def pareto_front(self) -> List[QuantizationGenome]:
        """The front of the last run as genomes, in ``result.front`` order (by size); [] before a run.

        Only feasible points: when no config met the constraints this is empty and
        ``result.message`` says which bound was missed.
        """
        if self.result is None:
            return []
        if self._front is None:
            res = self.result
            self._front = [self._genome(s, res) for s in res.front] if res.feasible else []
        return list(self._front)

    def get_best_genome(self) -> QuantizationGenome:
        """The front point chosen by the config's weights (``SearchResult.best``, see the module docstring)."""
        res = self._require_result()
        if not res.feasible:
            raise QuantmooError(res.message or "No configuration met the constraints")
        sol = res.best(weights=self.config.objective_weights(res.objectives))
        i = next(i for i, s in enumerate(res.front) if s is sol)
        return self.pareto_front[i]

    def export_quantization_config(self, genome: QuantizationGenome, output_path) -> Path:
        """Write ``genome`` as a quantmoo config (``.json``, ``.yaml`` or ``.yml`` by extension).

        The file is a :class:`~quantmoo.config.QuantConfig` (``format: quantmoo-config/1``), readable
        by ``QuantConfig.load`` and ``quantmoo evaluate --config``; the genome's fitness is kept
        under ``meta``.
        """
        if not isinstance(genome, QuantizationGenome):
            raise QuantmooError(f"export_quantization_config takes a QuantizationGenome; got {type(genome).__name__}")
        cfg = genome.to_quant_config()
        if cfg.hardware is None:
            cfg.hardware = self.config.hardware if isinstance(self.config.hardware, str) else None
        cfg.meta = {"source": "quantmoo.brief", "objectives": {k: float(v) for k, v in genome.objectives.items()},
                    "accuracy_kind": genome.accuracy_kind, "accuracy": genome.accuracy,
                    "compression_ratio": genome.compression_ratio, "global_scheme": genome.global_scheme.value}
        return cfg.save(output_path)

    # -- sensitivity ----------------------------------------------------------------------------
    async def analyze_sensitivity(self, layer_names_or_model=None) -> SensitivityReport:
        """Per-layer weight sensitivity (see the module docstring and :class:`SensitivityReport`).

        Parameters
        ----------
        layer_names_or_model : list of str, ModelSpec, str or path, optional
            Layers of ``config.model`` to report, or a model (all its layers). Default: the
            model of the last run, else ``config.model``.
        """
        x = layer_names_or_model
        if x is None and self.search_run is not None and self.search_run.problem is not None:
            x = self.search_run.problem.model
        return await self._call(self._sensitivity, x)

    def _sensitivity(self, x) -> SensitivityReport:
        from ..accuracy.tables import prior_table
        model, names = self._target(x, "analyze_sensitivity")
        space = self.config.search_space()
        enc = space.bind(model)
        table = self.config.accuracy
        if table is None:
            if model.weights is not None or model.evaluator is not None:
                from .. import sensitivity
                table = sensitivity(model, space=space, evaluator=model.evaluator)
            else:
                table = prior_table(model, enc)
        table = table.check(enc)
        # reference choice: most accurate activations, symmetric per-channel weights if allowed
        ref = {"activation_bits": max(space.activation_bits)}
        for a, v in (("weight_scheme", "symmetric"), ("activation_scheme", "asymmetric"),
                     ("granularity", "per_channel")):
            vals = space.values(a)
            ref[a] = v if v in vals else vals[0]
        base = sum(space.values(a).index(ref[a]) * enc.stride[a] for a in ref)
        T = table.separable(0)
        wanted = names if names is not None else model.layer_names
        by_bits = {}
        for n in wanted:
            i = model.index(n)
            by_bits[n] = {int(b): float(T[i, base + j * enc.stride["weight_bits"]])
                          for j, b in enumerate(space.weight_bits)}
        low = min(space.weight_bits)
        scores = {n: v[low] for n, v in by_bits.items()}
        ref["calibration"] = space.calibrations[0]
        return SensitivityReport(scores, table.kind, by_bits, ref, table, model.name)
