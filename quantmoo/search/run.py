"""``quantmoo.search``: build the problem and algorithm, run pymoo, return a SearchResult.

The loop is pymoo's ask-and-tell (``algorithm.next()``) so progress, history and checkpoints
(:mod:`quantmoo.search.checkpoint`) are recorded per generation without pymoo's ``save_history``
(which deep-copies the whole algorithm every generation). :class:`SearchRun` holds that loop's state (``setup``,
one ``step`` per generation, ``result``); :func:`search` drives it to the end, and the async
facade :class:`quantmoo.brief.QuantizationEvolutionEngine` drives the same object from an
event loop.

Hypervolume reference point (fixed and documented): objectives are divided by
``r_i = 1.1 * max`` over the uniform-precision configs of the space (they span the extremes:
all-lowest-bits is the worst accuracy, all-fp16 the largest size), so the hypervolume is
measured in the unit box ``[0, 1]^m`` with reference point ``(1, ..., 1)``; points outside
the box do not count. The same problem always gets the same reference, so runs, seeds and
algorithms are comparable.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from pymoo.core.mating import Mating
from pymoo.core.problem import Problem
from pymoo.core.termination import TerminateIfAny
from pymoo.termination.max_eval import MaximumFunctionCallTermination
from pymoo.termination.max_gen import MaximumGenerationTermination
from pymoo.termination.max_time import TimeBasedTermination

from ..errors import QuantmooError, check_choice
from .operators.duplicates import genomes
from .operators.mating import QuantMating
from .operators import (QuantCrossover, QuantDuplicateElimination, QuantMutation, QuantRepair, QuantSampling,
                        uniform_precision_seeds)
from .operators.selection import CrowdedTournamentSelection, ReferenceTournamentSelection, ScalarSelection
from .archive import ParetoArchive
from .problem import QuantizationProblem

ALGORITHMS = ("nsga2", "nsga3", "unsga3", "smsemoa", "ga")


# -- hypervolume ----------------------------------------------------------------------------------
def hv_reference(problem: QuantizationProblem) -> np.ndarray:
    """The fixed reference point of a problem (see module docstring)."""
    seeds = uniform_precision_seeds(problem.encoding)
    vals = problem.evaluate_all(seeds)
    # fmax skips a failed measured evaluation (nan); a column with none left gives 1.0
    ref = np.array([np.fmax.reduce(vals[o]) for o in problem.objectives]) * 1.1
    return np.where(ref > 0, ref, 1.0)


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of ``F / ref`` w.r.t. the point (1, ..., 1), via moocore."""
    import moocore
    F = np.asarray(F, dtype=float)
    if F.size == 0:
        return 0.0
    nF = F / ref
    nF = nF[(nF < 1.0).all(axis=1)]
    if len(nF) == 0:
        return 0.0
    return float(moocore.hypervolume(nF, ref=np.ones(F.shape[1])))


# -- algorithms -----------------------------------------------------------------------------------
class WeightedSumProblem(Problem):
    """Single-objective view of a QuantizationProblem: ``sum_i w_i F_i / ref_i``."""

    def __init__(self, base: QuantizationProblem, weights: np.ndarray, ref: np.ndarray):
        self.base, self.weights, self.ref = base, weights, ref
        self.encoding = base.encoding
        super().__init__(n_var=base.n_var, n_obj=1, n_ieq_constr=base.n_ieq_constr, xl=base.xl, xu=base.xu,
                         vtype=int)

    def _evaluate(self, X, out, *args, **kwargs):
        sub = {}
        self.base._evaluate(X, sub)
        out["F"] = (sub["F"] / self.ref * self.weights).sum(axis=1, keepdims=True)
        if "G" in sub:
            out["G"] = sub["G"]

    def __getattr__(self, name):  # space, native_mask, pin_mask, ... for the operators
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def make_algorithm(name: str, *args, **kwargs):
    """Build a pymoo algorithm with quantmoo's operators (see :func:`_make_algorithm`).

    With quantmoo's operators the mating runs on genome arrays (:class:`QuantMating`): the same
    offspring for the same seed as pymoo's ``Mating``, without its per-individual round trips.
    """
    algo = _make_algorithm(name, *args, **kwargs)
    if isinstance(getattr(algo, "mating", None), Mating) and isinstance(algo.mating.crossover, QuantCrossover) \
            and isinstance(algo.mating.mutation, QuantMutation):
        algo.mating = QuantMating.like(algo.mating)
    return algo


def _make_algorithm(name: str, problem: QuantizationProblem, pop_size: int, strict: bool = False,
                   selection: str = "tournament", operators: str = "quantmoo", seed_baselines: bool = False):
    """Build a pymoo algorithm with quantmoo's operators.

    Parameters
    ----------
    name : str
        One of ``ALGORITHMS``.
    operators : str
        ``"quantmoo"`` (default) or ``"pymoo"`` (pymoo's default integer operators:
        IntegerRandomSampling + SBX/PM with rounding repair, then quantmoo's validity repair; for
        benchmarks).
    seed_baselines : bool
        Seed the greedy and ILP baselines' genomes (quantmoo operators only; see
        :class:`~quantmoo.search.operators.QuantSampling`).
    """
    check_choice("algorithm", name, ALGORITHMS)
    if operators == "quantmoo":
        ops = dict(sampling=QuantSampling(seed_baselines=seed_baselines), crossover=QuantCrossover(),
                   mutation=QuantMutation(),
                   repair=QuantRepair(strict=strict), eliminate_duplicates=QuantDuplicateElimination())
    elif operators == "pymoo":
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        # pymoo's integer operators, but the same validity repair as quantmoo's (tie groups,
        # strict mode): a comparison baseline must search the same feasible space
        ops = dict(sampling=IntegerRandomSampling(),
                   crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                   mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                   repair=QuantRepair(strict=strict), eliminate_duplicates=True)
    else:
        raise QuantmooError(f"The 'operators' value must be one of {{'quantmoo', 'pymoo'}}; got {operators!r}")

    if name == "nsga2":
        from pymoo.algorithms.moo.nsga2 import NSGA2
        if operators == "quantmoo":
            ops["selection"] = CrowdedTournamentSelection()
        return NSGA2(pop_size=pop_size, **ops)
    if name in ("nsga3", "unsga3"):
        from pymoo.util.ref_dirs import get_reference_directions
        m = problem.n_obj
        # Das-Dennis partitions chosen so the number of directions is close to pop_size
        p = 1
        while math.comb(p + 1 + m - 1, m - 1) <= pop_size:
            p += 1
        ref_dirs = get_reference_directions("das-dennis", m, n_partitions=p) if m > 1 else np.array([[1.0]])
        if operators == "quantmoo":   # seeded tie-breaks (pymoo issue 794)
            ops["selection"] = ReferenceTournamentSelection(unified=(name == "unsga3"))
        if name == "nsga3":
            from pymoo.algorithms.moo.nsga3 import NSGA3
            return NSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), **ops)
        from pymoo.algorithms.moo.unsga3 import UNSGA3
        return UNSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), **ops)
    if name == "smsemoa":
        from pymoo.algorithms.moo.sms import SMSEMOA
        return SMSEMOA(pop_size=pop_size, **ops)
    # single-objective weighted-sum GA with elitist (mu + lambda) survival
    from pymoo.algorithms.soo.nonconvex.ga import GA
    if operators == "quantmoo":
        ops["selection"] = ScalarSelection(selection)
    return GA(pop_size=pop_size, **ops)


def make_termination(n_gen: Optional[int], n_evals: Optional[int], time_limit: Optional[float]):
    crit = []
    if n_gen is not None:
        crit.append(MaximumGenerationTermination(int(n_gen)))
    if n_evals is not None:
        crit.append(MaximumFunctionCallTermination(int(n_evals)))
    if time_limit is not None:
        crit.append(TimeBasedTermination(float(time_limit)))
    if not crit:
        raise QuantmooError("Give at least one of 'n_gen', 'n_evals' or 'time_limit'")
    return crit[0] if len(crit) == 1 else TerminateIfAny(*crit)


def _check_int(name, v, lo):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise QuantmooError(f"The '{name}' must be an integer >= {lo}; got {v!r}")
    return int(v)


def check_feasible_bounds(problem: QuantizationProblem) -> None:
    """Reject constraints that no config of the space can meet (cheap lower bounds)."""
    if not problem.constraints:
        return
    pins = problem.pin_mask()
    lows = {}
    costs = problem.costs
    wb = np.where(pins, costs.column("weight_bytes"), np.inf).min(axis=1).sum() + costs.resident_bytes
    lows["size_mb"] = wb / 1e6
    lows["latency_ms"] = np.where(pins, costs.column("latency_s"), np.inf).min(axis=1).sum() * 1e3
    lows["energy_mj"] = np.where(pins, costs.column("energy_pj"), np.inf).min(axis=1).sum() * 1e-9
    lows["memory_mb"] = (wb + np.where(pins, costs.column("live_act_bytes"), np.inf).min(axis=1).max()) / 1e6
    if getattr(problem, "measured", False):
        lows["accuracy_loss"] = 0.0     # a measured loss has no table lower bound
    else:
        acc = problem.accuracy.table
        lows["accuracy_loss"] = np.where(pins[None], acc, np.inf).min(axis=2).sum(axis=1).min()
    units = {"size_mb": "MB", "latency_ms": "ms", "energy_mj": "mJ", "memory_mb": "MB", "accuracy_loss": "pp"}
    for k, bound in problem.constraints.items():
        if bound < lows[k] * (1 - 1e-12):
            raise QuantmooError(
                f"The constraint '{k} <= {bound:g}' is impossible for model '{problem.model.name}' on "
                f"'{problem.hardware.name}': the smallest {k} any config of this space reaches is "
                f"{lows[k]:.4g} {units[k]}")


def search(model, hardware, space=None, objectives=("accuracy_loss", "size_mb", "latency_ms", "energy_mj"),
           constraints=None, algorithm: str = "nsga2", pop_size: int = 100, n_gen: Optional[int] = 100,
           n_evals: Optional[int] = None, time_limit: Optional[float] = None, seed: int = 0,
           callback: Optional[Callable] = None, progress: Optional[bool] = None, accuracy=None,
           strict: bool = False, weights=None, selection: str = "tournament", baselines: bool = True,
           operators: str = "quantmoo", problem: Optional[QuantizationProblem] = None, archive: bool = True,
           max_front: Optional[int] = 200, checkpoint=None, checkpoint_every: int = 1,
           seed_baselines: bool = False, checkpoint_final: bool = True, exact_start: bool = True):
    """Search the Pareto front of per-layer quantization configs.

    Parameters
    ----------
    model : ModelSpec or str
        Zoo name, spec/config path, or a ModelSpec (with real weights for a proxy accuracy).
    hardware : HardwareProfile or str
        Profile name or YAML path.
    space : SearchSpace, optional
    objectives : sequence of str
        Any of ``accuracy_loss, size_mb, latency_ms, energy_mj, memory_mb``.
    constraints : str or dict, optional
        Scenario name (``mobile``, ``iot``, ``edge_server``) or ``{objective: upper_bound}``.
    algorithm : str
        ``nsga2`` (default), ``nsga3``, ``unsga3``, ``smsemoa`` or ``ga`` (weighted sum).
    pop_size, n_gen, n_evals, time_limit :
        Population size and termination (whichever comes first).
    seed : int
        Same seed, same front.
    callback : callable, optional
        Called after every generation with a dict ``{n_gen, n_eval, hypervolume, n_front,
        algorithm}``; return ``False`` to stop early.
    progress : bool, optional
        Show a tqdm bar; default: only when stderr is a terminal.
    accuracy : AccuracyTable, optional
        Accuracy model; default :func:`~quantmoo.accuracy.sensitivity.default_accuracy`: a
        proxy for a model with real weights (measured sensitivity with an evaluator, the omega
        proxy without; cached), the documented prior (kind ``prior``) for a layer table without
        weights. A model whose weights are broken (NaN/inf, or not its layers' ``weight_shape``)
        is refused.
    strict : bool
        Hardware-strict repair: only natively supported choices.
    weights : dict, optional
        Objective weights for ``algorithm="ga"``.
    selection : str
        ``tournament``, ``roulette`` or ``rank`` (``algorithm="ga"`` only).
    baselines : bool
        Compute and store the standard baselines in the result (uniform presets, the greedy
        curve, the ILP sweep, llama.cpp rules; ``quantmoo search --no-baselines`` turns them off).
    archive : bool
        Report the non-dominated set of every evaluated feasible point (an external archive,
        default) instead of only the final population's.
    max_front : int or None
        Report at most this many front points (default 200): a greedy epsilon-net of the
        non-dominated set, chosen to cover it with the least additive epsilon on the axes a plot
        draws (symlog accuracy loss when it spans decades, :mod:`quantmoo.results.scales`; the
        epsilon and the scales are recorded in ``meta["front_thinning"]``; the full set is kept in
        ``result.nondominated`` and saved to ``nondominated.npz``). ``None`` keeps every point.
    seed_baselines : bool
        Seed the initial population with the greedy, ILP and llama.cpp-rule baselines' configs (computed once
        and reused for the result's baselines). Worth it for small real models; costs the
        ILP sweep's time on LLM-sized problems.
    checkpoint : path, optional
        Save the whole search state to this directory every ``checkpoint_every`` generations
        and at the end (``checkpoint.npz``, arrays and JSON with a checksum; see
        :mod:`quantmoo.search.checkpoint`); :func:`resume_search` continues from it and reaches
        the same front as an uninterrupted run. A location that cannot be written is reported
        before the search starts.
    checkpoint_every : int
        Generations between checkpoints (default 1); 0 saves only when Ctrl-C stops the search
        and, with ``checkpoint_final``, at the end.
    checkpoint_final : bool
        Also save the finished state (default), so that the result can be written again from it
        (``quantmoo search --resume DIR --out OUT``) if writing it fails.
    exact_start : bool
        With the two objectives ``accuracy_loss`` and ``size_mb`` and an accuracy table (proxy or prior),
        join the problem's exact front to the search's: the dynamic program over layers
        (:func:`quantmoo.baselines.exact_front`, every calibration method; 0.1-7 s of CPU on the zoo's
        models) solves that additive problem exactly, where NSGA-II's front is 3-19% above it in loss at
        equal size on the real models (``benchmarks/bench_exact_gap.py``). The reported front is the
        non-dominated set of both, with the exact front first thinned by the epsilon-net to
        ``10 * max_front`` points (all with ``max_front=None``); provenance in ``meta["exact_start"]``, None
        where it does not apply (other objectives, a measured accuracy, ``algorithm="ga"``). ``False``
        reports NSGA-II's own front.

    Returns
    -------
    SearchResult

    Raises
    ------
    SearchInterrupted
        On Ctrl-C (SIGINT), after the running generation has finished and, with ``checkpoint``,
        been saved. A second Ctrl-C stops at once (the last saved checkpoint stays valid).

    See Also
    --------
    SearchRun : the same loop, one generation at a time.
    resume_search : continue a checkpointed search.
    """
    run = SearchRun(model, hardware, space=space, objectives=objectives, constraints=constraints,
                    algorithm=algorithm, pop_size=pop_size, n_gen=n_gen, n_evals=n_evals, time_limit=time_limit,
                    seed=seed, accuracy=accuracy, strict=strict, weights=weights, selection=selection,
                    baselines=baselines, operators=operators, problem=problem, archive=archive,
                    max_front=max_front, seed_baselines=seed_baselines, exact_start=exact_start)
    run.checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 0)
    if checkpoint is not None and (run.checkpoint_every or checkpoint_final):
        # an unwritable location is an error now, not after the first generation
        from .checkpoint import check_writable
        check_writable(checkpoint)
    run.setup()
    return drive(run, progress=progress, callback=callback, checkpoint=checkpoint, final=checkpoint_final)


def resume_search(checkpoint, progress: Optional[bool] = None, callback: Optional[Callable] = None, evaluator=None,
                  checkpoint_final: bool = True):
    """Continue a search from its checkpoint directory; return its :class:`SearchResult`.

    The search goes on with the settings it was started with and keeps checkpointing to the
    same directory. Resuming a finished search returns its result at once.

    Parameters
    ----------
    checkpoint : path
        The directory given to ``search(..., checkpoint=...)`` / ``quantmoo search --checkpoint``.
    progress, callback :
        As for :func:`search`.
    evaluator : optional
        For measured accuracy with an evaluator object (not a zoo name), the evaluator again.

    Raises
    ------
    QuantmooError
        No checkpoint, an old pickled ``checkpoint.pkl`` (never unpickled), a damaged file
        (its checksum fails), or another run's checkpoint file next to this run's summary.

    Examples
    --------
    >>> res = quantmoo.search("resnet18", "arm_dot", n_gen=50, checkpoint="ckpt")   # Ctrl-C here...
    >>> res = quantmoo.resume_search("ckpt")                                         # ...then go on
    """
    from .checkpoint import check_writable
    run = SearchRun.resume(checkpoint, evaluator=evaluator)
    check_writable(checkpoint)      # it goes on saving there
    return drive(run, progress=progress, callback=callback, checkpoint=checkpoint, final=checkpoint_final)


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search at a generation boundary.

    Attributes
    ----------
    checkpoint : str or None
        Where the state of the last finished generation was saved (None without ``checkpoint``).
    n_gen : int
        Generations finished.
    """

    def __init__(self, message: str, checkpoint=None, n_gen: int = 0):
        super().__init__(message)
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.n_gen = n_gen


class _DeferredInterrupt:
    """Turn the first SIGINT into a flag checked between generations, so the state saved on
    Ctrl-C is a whole generation's; a second SIGINT interrupts at once. Only in the main thread
    (where Python delivers signals); elsewhere Ctrl-C behaves as usual."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        import signal
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def drive(run: "SearchRun", progress: Optional[bool] = None, callback: Optional[Callable] = None,
          checkpoint=None, final: bool = True):
    """Run a set-up :class:`SearchRun` to the end (progress bar, callback, checkpoints, Ctrl-C)."""
    from .checkpoint import save_checkpoint
    every = int(getattr(run, "checkpoint_every", 1))
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=run.n_gen, initial=run.n_done,
                   desc=f"{run.algorithm_name} {run.problem.model.name}@{run.problem.hardware.name}",
                   unit="gen", leave=False, file=sys.stderr)
    try:
        with _DeferredInterrupt() as interrupt:
            while run.has_next():
                rec = run.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(hv=f"{rec['hypervolume']:.4f}", front=rec["n_front"])
                if checkpoint is not None and ((every and run.n_done % every == 0) or interrupt.requested):
                    save_checkpoint(run, checkpoint)
                if interrupt.requested:
                    where = f"; state saved to '{checkpoint}'" if checkpoint is not None else ""
                    raise SearchInterrupted(f"interrupted after generation {run.n_done}{where}", checkpoint,
                                            run.n_done)
                if callback is not None and callback({**rec, "algorithm": run.algorithm}) is False:
                    break
            if checkpoint is not None and (every or final or interrupt.requested):
                save_checkpoint(run, checkpoint)    # the final state: resuming it returns the result
            if bar is not None:
                bar.close()
                bar = None
                if run.baselines:   # the ILP sweep takes seconds on LLM-sized models: say what runs
                    print("computing the baselines (uniform, greedy, ILP) ...", file=sys.stderr, flush=True)
            result = run.result()
            # Ctrl-C after the last generation (while the baselines and the front are computed):
            # the search is complete and saved, so say so rather than losing it
            if interrupt.requested:
                if checkpoint is not None:
                    save_checkpoint(run, checkpoint)
                raise SearchInterrupted(f"interrupted after the last generation ({run.n_done})", checkpoint,
                                        run.n_done)
    finally:
        if bar is not None:
            bar.close()
        run.close()
    return result


class SearchRun:
    """One search, one generation at a time: the loop :func:`search` drives, made public.

    ``SearchRun(...)`` takes the arguments of :func:`search` (without ``callback`` and
    ``progress``) and validates them; :meth:`setup` builds the problem, the algorithm and the
    archive (the expensive part: cost and accuracy tables); each :meth:`step` runs one pymoo
    ask-and-tell generation (``algorithm.next()``) and appends one history row;
    :meth:`result` turns the state reached so far into a :class:`SearchResult` (it may be
    called after any number of steps, e.g. after an early stop). Driving it to the end gives
    exactly the result of :func:`search` with the same arguments, which is implemented this way.

    Examples
    --------
    >>> run = SearchRun("resnet18", "arm_dot", pop_size=20, n_gen=5, seed=0)
    >>> run.setup()
    >>> while run.has_next():
    ...     rec = run.step()          # {"n_gen", "n_eval", "hypervolume", "n_front"}
    >>> res = run.result()
    """

    def __init__(self, model, hardware, space=None,
                 objectives=("accuracy_loss", "size_mb", "latency_ms", "energy_mj"), constraints=None,
                 algorithm: str = "nsga2", pop_size: int = 100, n_gen: Optional[int] = 100,
                 n_evals: Optional[int] = None, time_limit: Optional[float] = None, seed: int = 0, accuracy=None,
                 strict: bool = False, weights=None, selection: str = "tournament", baselines: bool = True,
                 operators: str = "quantmoo", problem: Optional[QuantizationProblem] = None, archive: bool = True,
                 max_front: Optional[int] = 200, seed_baselines: bool = False, exact_start: bool = True):
        if not isinstance(exact_start, (bool, np.bool_)):
            raise QuantmooError(f"The 'exact_start' must be True or False; got {exact_start!r}")
        self.exact_start = bool(exact_start)
        self._exact = None
        self.pop_size = _check_int("pop_size", pop_size, 4)
        self.n_gen = _check_int("n_gen", n_gen, 1)
        self.n_evals = _check_int("n_evals", n_evals, 1)
        self.seed = _check_int("seed", seed, 0)
        if time_limit is not None and (not isinstance(time_limit, (int, float)) or time_limit <= 0):
            raise QuantmooError(f"The 'time_limit' must be a number of seconds > 0; got {time_limit!r}")
        check_choice("algorithm", algorithm, ALGORITHMS)
        self.max_front = _check_int("max_front", max_front, 2)
        self.time_limit = time_limit
        self.algorithm_name = algorithm
        self.strict, self.weights, self.selection, self.operators = strict, weights, selection, operators
        self.baselines = baselines
        self.seed_baselines = bool(seed_baselines)
        self.use_archive = bool(archive)
        self._problem_args = dict(model=model, hardware=hardware, space=space, objectives=objectives,
                                  constraints=constraints, accuracy=accuracy)
        self.problem = problem
        self.algorithm = None
        self.archive = None
        self.history = []
        self.exec_time = 0.0
        self.hv_ref = None
        self.checkpoint_every = 1
        #: every genome pymoo evaluated, one array per generation (for ``evaluations.csv``)
        self.evaluated = []

    def settings(self) -> dict:
        """The constructor arguments other than the problem's (what a checkpoint stores)."""
        return {"algorithm": self.algorithm_name, "pop_size": self.pop_size, "n_gen": self.n_gen,
                "n_evals": self.n_evals, "time_limit": self.time_limit, "seed": self.seed, "strict": self.strict,
                "weights": self.weights, "selection": self.selection, "baselines": self.baselines,
                "operators": self.operators, "archive": self.use_archive, "max_front": self.max_front,
                "seed_baselines": self.seed_baselines, "exact_start": self.exact_start}

    def checkpoint(self, directory) -> "Path":
        """Save the state reached so far to ``directory``: ``checkpoint.npz`` (arrays and JSON, no pickle,
        sealed by a sha256) and ``checkpoint.json`` (see :mod:`quantmoo.search.checkpoint`)."""
        from .checkpoint import save_checkpoint
        return save_checkpoint(self, directory)

    @classmethod
    def resume(cls, directory, evaluator=None) -> "SearchRun":
        """A set-up run restored from a checkpoint directory; :meth:`step` goes on from there.

        A damaged file, another run's checkpoint or an old pickled ``checkpoint.pkl`` is refused
        with a :class:`~quantmoo.errors.QuantmooError` that says what is wrong.
        """
        from .checkpoint import load_checkpoint
        return load_checkpoint(directory, evaluator=evaluator)

    def setup(self) -> "SearchRun":
        """Build the problem (unless given), check the constraints, set up the pymoo algorithm."""
        if self.algorithm is not None:
            raise QuantmooError("This SearchRun is already set up")
        if self.problem is None:
            self.problem = QuantizationProblem(**self._problem_args)
        problem = self.problem
        check_feasible_bounds(problem)
        self.hv_ref = hv_reference(problem)
        self._build_algorithm()
        self.archive = ParetoArchive(problem.n_var, problem.n_obj) if self.use_archive else None
        return self

    def _build_algorithm(self) -> None:
        """The pymoo algorithm at generation 0 (a checkpoint then sets its state)."""
        problem = self.problem
        termination = make_termination(self.n_gen, self.n_evals, self.time_limit)
        algo = make_algorithm(self.algorithm_name, problem, self.pop_size, strict=self.strict,
                              selection=self.selection, operators=self.operators,
                              seed_baselines=self.seed_baselines)
        run_problem = problem
        if self.algorithm_name == "ga":
            run_problem = WeightedSumProblem(problem, _ga_weights(problem, self.weights), self.hv_ref)
        algo.setup(run_problem, termination=termination, seed=self.seed, verbose=False)
        self.algorithm = algo

    def close(self) -> None:
        """Stop what the run keeps between generations (a measured evaluator's worker processes).

        :func:`search` calls it at the end, also after an error or Ctrl-C; a later :meth:`step`
        or :meth:`result` starts them again.
        """
        close = getattr(getattr(self.problem, "accuracy", None), "close", None)
        if close is not None:
            close()

    def _check_setup(self):
        if self.algorithm is None:
            raise QuantmooError("Call SearchRun.setup() first")

    def has_next(self) -> bool:
        """True while the termination criterion is not met."""
        self._check_setup()
        return self.algorithm.has_next()

    @property
    def n_done(self) -> int:
        """Generations run so far."""
        return len(self.history)

    def step(self) -> dict:
        """Run one generation; return (and record) its history row.

        The row is ``{n_gen, n_eval, hypervolume, n_front}`` (see :func:`search`).
        """
        self._check_setup()
        t0 = time.perf_counter()
        algo = self.algorithm
        algo.next()
        pop = algo.off if algo.off is not None and len(algo.off) else algo.pop
        X = genomes(pop)
        self.evaluated.append(_evaluated_genomes(X))
        if self.archive is not None:
            _archive_update(self.archive, algo, self.problem, pop, X)
        rec = _record(algo, self.problem, self.hv_ref, self.archive)
        self.history.append(rec)
        self.exec_time += time.perf_counter() - t0
        return rec

    def result(self, baselines: Optional[bool] = None):
        """The :class:`SearchResult` of the generations run so far.

        ``exec_time_s`` is the time spent in :meth:`step`. ``baselines`` overrides the
        constructor's choice (e.g. ``False`` for a cheap intermediate snapshot).
        """
        from .front import build_result, exact_start_applies, exact_start_genomes
        self._check_setup()
        if not self.history:
            raise QuantmooError("No generation has run yet; call SearchRun.step() at least once")
        if self.exact_start and self._exact is None and exact_start_applies(self.problem, self.algorithm_name):
            # once (snapshots reuse it); thinned to 10 x the reported front, which is an epsilon-net of the join
            self._exact = exact_start_genomes(self.problem, self.strict,
                                              None if self.max_front is None else 10 * self.max_front)
        return build_result(self.problem, self.algorithm, list(self.history), self.exec_time, seed=self.seed,
                            algorithm={"name": self.algorithm_name, "pop_size": self.pop_size, "n_gen": self.n_gen,
                                       "n_evals": self.n_evals, "time_limit": self.time_limit,
                                       "operators": self.operators, "strict": self.strict,
                                       "seed_baselines": self.seed_baselines, "exact_start": self.exact_start,
                                       "selection": self.selection if self.algorithm_name == "ga" else None},
                            hv_ref=self.hv_ref, baselines=self.baselines if baselines is None else baselines,
                            archive=self.archive, max_front=self.max_front, evaluated=self.evaluated,
                            exact=self._exact)


def _ga_weights(problem, weights) -> np.ndarray:
    from ..results.result import normalise_weights
    return normalise_weights(problem.objectives, weights)

def _feasible_objectives(pop, problem):
    """(X, F) of the feasible members of a population, F on the searched objectives."""
    X = pop.get("X")
    if X is None or len(X) == 0:
        return np.zeros((0, problem.n_var), dtype=np.int64), np.zeros((0, problem.n_obj))
    vals = problem.evaluate_all(X)
    F = np.column_stack([vals[o] for o in problem.objectives])
    feas = problem.feasible_mask(vals)
    return X[feas], F[feas]


def _evaluated_genomes(X: np.ndarray) -> np.ndarray:
    """The genomes evaluated in the generation just run, in the smallest integer type that holds them."""
    X = np.asarray(X)
    hi = int(X.max()) if X.size else 0
    return X.astype(np.int8 if hi < 128 else np.int16 if hi < 32768 else np.int64)


def _archive_update(archive, algo, problem, pop, X):
    # pop: the initial population on the first step, the evaluated offspring afterwards (genomes X)
    if algo.problem is problem and len(pop):
        # pymoo evaluated these with problem._evaluate: reuse its F and G (G is stored, CV is
        # recomputed per individual on access)
        inds = pop.tolist()
        F, G = np.array([ind.F for ind in inds]), np.array([ind.G for ind in inds])
        feas = np.ones(len(X), dtype=bool) if G is None or G.size == 0 else (G <= 0).all(axis=1)
        archive.add(X[feas], F[feas])
    else:       # the GA's pymoo problem is a weighted sum: evaluate the objectives themselves
        archive.add(*_feasible_objectives(pop, problem))


def _n_distinct(F: np.ndarray) -> int:
    """Distinct objective vectors: the front reports one point per vector."""
    return int(len(np.unique(F, axis=0))) if len(F) else 0


def _record(algo, problem, ref, archive=None) -> dict:
    """One history row: evaluations, hypervolume of the feasible non-dominated set, front size."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    if archive is not None:
        # the archive's F is a new array whenever it changes: an unchanged archive keeps its numbers
        F, cached = archive.F, getattr(archive, "_record_cache", None)
        if cached is None or cached[0] is not F or cached[1] is not ref:
            cached = archive._record_cache = (F, ref, hypervolume(F, ref), _n_distinct(F))
        return {"n_gen": int(algo.n_gen) - 1, "n_eval": int(algo.evaluator.n_eval),
                "hypervolume": cached[2], "n_front": cached[3]}
    pop = algo.pop
    X = pop.get("X")
    vals = problem.evaluate_all(X)
    F = np.column_stack([vals[o] for o in problem.objectives])
    cv = pop.get("CV")
    feas = np.ones(len(F), dtype=bool) if cv is None or cv.size == 0 else (np.asarray(cv, float).ravel() <= 0)
    Ff = F[feas]
    if len(Ff):
        nd = NonDominatedSorting().do(Ff, only_non_dominated_front=True)
        Ff = Ff[nd]
    # pymoo increments n_gen after each step; the initial population is generation 1
    return {"n_gen": int(algo.n_gen) - 1, "n_eval": int(algo.evaluator.n_eval),
            "hypervolume": hypervolume(Ff, ref), "n_front": _n_distinct(Ff)}
