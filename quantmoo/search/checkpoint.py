"""Checkpoints of a running search: save the whole state at a generation boundary, resume it.

A checkpoint directory holds

* ``checkpoint.pkl``: the pymoo algorithm (population, offspring, its ``random_state``
  generator, termination state), the external Pareto archive, the history rows, the run's
  settings, and the problem's *inputs* (model spec without weights, hardware profile, space,
  objectives, constraints, accuracy table or measured-accuracy memo);
* ``checkpoint.json``: a readable summary (generation, evaluations, model, hardware, seed,
  quantmoo version, when).

The problem itself is not pickled: its cost tables are large and a pure function of its inputs,
so :func:`load_checkpoint` rebuilds it and re-attaches it wherever the algorithm referenced it
(pickle's persistent ids). Both files are written to a temporary name and renamed, so a
process killed while writing leaves the previous checkpoint intact.

Because the random generator is part of the state, a run resumed from generation ``k`` makes
exactly the same draws as the uninterrupted run: same seed, same front (for termination by
generations or evaluations; a wall-clock ``time_limit`` is not reproducible by nature).
"""
from __future__ import annotations

import copyreg
import dataclasses
import importlib
import io
import json
import pickle
import sys
import time
from pathlib import Path
from types import FunctionType, MappingProxyType

from .._version import __version__
from ..errors import QuantmooError
from ..io import atomic_write_bytes, atomic_write_text

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint", "CHECKPOINT_FILE", "FORMAT"]

CHECKPOINT_FILE = "checkpoint.pkl"
SUMMARY_FILE = "checkpoint.json"
FORMAT = 1
_PROBLEM, _RUN_PROBLEM = "quantmoo-problem", "quantmoo-run-problem"


def _mappingproxy(d):
    return MappingProxyType(d)


def _reduce_mappingproxy(m):
    # hardware profiles keep their rate tables read-only; pickle them as the dict they wrap
    return _mappingproxy, (dict(m),)


class _Pickler(pickle.Pickler):
    """Pickles the problem (and the GA's weighted view of it) as persistent ids."""

    dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _reduce_mappingproxy}

    def __init__(self, f, problem=None, run_problem=None):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids = {} if problem is None else {id(problem): _PROBLEM}
        if run_problem is not None and run_problem is not problem:
            self._ids[id(run_problem)] = _RUN_PROBLEM

    def persistent_id(self, obj):
        pid = self._ids.get(id(obj))
        if pid is None and isinstance(obj, FunctionType) and "<locals>" in obj.__qualname__:
            pid = _module_attribute(obj)
        return pid


def _module_attribute(fn):
    """``("global", module, name)`` for a decorated function that pickle cannot name.

    Some pymoo functions are wrapped by a decorator without ``functools.wraps`` (e.g. the
    SMS-EMOA tournament), so their ``__qualname__`` is the decorator's local ``wrapper``; they
    are still module attributes, found here by identity and restored by name.
    """
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not mod_name.startswith(("pymoo", "quantmoo")):
            continue
        for name, value in list(vars(mod).items()):
            if value is fn:
                return ("global", mod_name, name)
    return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, objects):
        super().__init__(f)
        self._objects = objects

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 3 and pid[0] == "global":
            return getattr(importlib.import_module(pid[1]), pid[2])
        try:
            return self._objects[pid]
        except KeyError:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}") from None


def remove_checkpoint(directory) -> None:
    """Delete the files :func:`save_checkpoint` writes in ``directory``, and the directory if it is
    then empty; nothing else is touched."""
    d = Path(directory)
    for name in (CHECKPOINT_FILE, SUMMARY_FILE):
        try:
            (d / name).unlink()
        except FileNotFoundError:
            pass
    try:
        d.rmdir()
    except OSError:
        pass


def has_checkpoint(directory) -> bool:
    return (Path(directory) / CHECKPOINT_FILE).is_file()


def _problem_inputs(problem) -> dict:
    """What rebuilds the problem: everything but the model's weights and evaluator (not needed
    for the cost tables, and possibly hundreds of MB or unpicklable)."""
    model = dataclasses.replace(problem.model, weights=None, evaluator=None)
    return {"model": model, "hardware": problem.hardware, "space": problem.space,
            "objectives": tuple(problem.objectives), "constraints": dict(problem.constraints),
            "accuracy": problem.accuracy}


def save_checkpoint(run, directory) -> Path:
    """Write ``run``'s state (a set-up :class:`~quantmoo.search.run.SearchRun`) to ``directory``.

    Returns the path of ``checkpoint.pkl``.
    """
    run._check_setup()
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuantmooError(f"Cannot create the checkpoint directory '{d}': {e}") from None
    problem = run.problem
    algo = run.algorithm
    # two pickles in one file: the header rebuilds the problem, the body refers to it by id
    header = {"format": FORMAT, "quantmoo_version": __version__, "settings": run.settings(),
              "problem_inputs": _problem_inputs(problem), "hv_ref": run.hv_ref}
    body = {"algorithm": algo, "archive": run.archive, "history": list(run.history), "exec_time": run.exec_time,
            "checkpoint_every": getattr(run, "checkpoint_every", 1)}
    buf = io.BytesIO()
    try:
        _Pickler(buf).dump(header)
        _Pickler(buf, problem, algo.problem).dump(body)
    except Exception as e:
        raise QuantmooError(f"Cannot checkpoint this search: {type(e).__name__}: {e}") from None
    path = d / CHECKPOINT_FILE
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise QuantmooError(f"Cannot write the checkpoint '{path}': {e}") from None
    last = run.history[-1] if run.history else {}
    summary = {"format": FORMAT, "quantmoo_version": __version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "model": problem.model.name, "hardware": problem.hardware.name, "seed": run.seed,
               "algorithm": run.algorithm_name, "n_gen_done": run.n_done, "n_gen": run.n_gen,
               "n_eval": last.get("n_eval", 0), "finished": not run.algorithm.has_next()}
    atomic_write_text(d / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return path


def load_checkpoint(directory, evaluator=None):
    """A set-up :class:`~quantmoo.search.run.SearchRun` restored from ``directory``.

    Parameters
    ----------
    directory : path
        A directory written by :func:`save_checkpoint`.
    evaluator : optional
        For a search with measured accuracy whose evaluator was an object (not a zoo name):
        the evaluator to measure with from now on.
    """
    from .measured import MeasuredAccuracy
    from .problem import QuantizationProblem
    from .run import SearchRun, WeightedSumProblem, _ga_weights
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise QuantmooError(f"No checkpoint to resume in '{directory}' (expected {CHECKPOINT_FILE}; "
                            "a search writes one with --checkpoint DIR / checkpoint=DIR)")
    try:
        f = io.BytesIO(path.read_bytes())
    except OSError as e:
        raise QuantmooError(f"Cannot read the checkpoint '{path}': {e}") from None
    try:
        header = pickle.load(f)
    except Exception as e:
        raise QuantmooError(f"The checkpoint '{path}' is unreadable (truncated or corrupt): "
                            f"{type(e).__name__}: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise QuantmooError(f"The checkpoint '{path}' has an unknown format "
                            f"{header.get('format') if isinstance(header, dict) else type(header).__name__!r}; "
                            f"this quantmoo reads format {FORMAT}")
    if header.get("quantmoo_version") != __version__:
        raise QuantmooError(f"The checkpoint '{path}' was written by quantmoo {header.get('quantmoo_version')}; "
                            f"this is {__version__}, whose cost model may differ: rerun the search")
    inputs = header["problem_inputs"]
    acc = inputs["accuracy"]
    if isinstance(acc, MeasuredAccuracy) and acc.source is None:
        if evaluator is None:
            raise QuantmooError("This checkpoint measures accuracy with an evaluator object that is not saved in "
                                "checkpoints; pass it again: SearchRun.resume(dir, evaluator=...)")
        acc.source = evaluator
    problem = QuantizationProblem(inputs["model"], inputs["hardware"], space=inputs["space"],
                                  objectives=inputs["objectives"], constraints=inputs["constraints"] or None,
                                  accuracy=acc)
    settings = header["settings"]
    run_problem = problem
    if settings["algorithm"] == "ga":
        run_problem = WeightedSumProblem(problem, _ga_weights(problem, settings["weights"]), header["hv_ref"])
    try:
        state = _Unpickler(f, {_PROBLEM: problem, _RUN_PROBLEM: run_problem}).load()
    except Exception as e:
        raise QuantmooError(f"The checkpoint '{path}' is unreadable (truncated or corrupt): "
                            f"{type(e).__name__}: {e}") from None
    algo = state["algorithm"]
    if algo.problem is not run_problem:
        raise QuantmooError(f"The checkpoint '{path}' does not match the problem it describes")
    run = SearchRun(problem.model, problem.hardware, problem=problem, **settings)
    run.algorithm = algo
    run.archive = state["archive"]
    run.history = list(state["history"])
    run.exec_time = float(state["exec_time"])
    run.hv_ref = header["hv_ref"]
    run.checkpoint_every = int(state.get("checkpoint_every", 1))
    return run
