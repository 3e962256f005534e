"""Evaluate many configs with a real evaluator: in-process, local processes, or a Dask cluster.

:func:`evaluate_many` returns, in input order, the evaluator's ``details`` dict of every config,
or ``{"error": "..."}`` for a config whose evaluation raised or returned a non-finite loss; one
bad config never stops the batch.

Where the work runs
-------------------
* **in-process** (``workers=1``, or an evaluator object / ModelSpec that cannot be rebuilt
  elsewhere);
* **local processes** (the default for a recipe): a ``concurrent.futures.ProcessPoolExecutor``
  with the ``spawn`` start method. Workers never receive an evaluator; they rebuild it from a
  picklable *recipe*, a zoo name such as ``"digits"`` or ``"minilm-l6"``
  (``quantmoo.zoo.load(name).evaluator``) or a module-level factory function, once per worker
  process, and keep it for every later task. Each task runs with one BLAS thread, so ``n``
  workers use ``n`` cores;
* **Dask** (``dask_address``): ``dask.distributed.Client(address)`` (an existing ``Client``
  is accepted too), tasks submitted with ``retries=2`` so a lost worker's tasks are rerun. An
  unreachable scheduler raises a :class:`~quantmoo.errors.QuantmooError` naming the address
  after ``connect_timeout`` seconds.

The same function evaluates every config in every mode, so results are identical (bitwise)
whether they come from a local process, a Dask worker or the cache.

``workers=None`` picks automatically: with a recipe and more than one config to compute, the
first config is evaluated in-process; if all of them would take under ``INPROCESS_SECONDS`` at
that rate they are all done in-process (starting processes costs seconds), otherwise the rest go
to ``min(cpu_count, n)`` local processes.

With a ``cache`` (:class:`~quantmoo.accuracy.cache.EvalCache`, a directory, or ``True`` for the
default one) cached configs are not evaluated again, and new successful results are stored;
errors are never cached.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Dict, List, Optional, Sequence

from ..config import QuantConfig
from ..errors import QuantmooError, check_positive, require
from .cache import EvalCache, jsonable_details, model_key

__all__ = ["evaluate_many", "evaluate_one", "time_limit", "EvaluationTimeout", "resolve_cache", "INPROCESS_SECONDS", "CONNECT_TIMEOUT"]

#: ``workers=None`` stays in-process when the whole batch would take less than this (seconds).
INPROCESS_SECONDS = 5.0
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = 5.0

# Evaluators built from recipes, per process (workers keep theirs between tasks).
_EVALUATORS: Dict[Any, Any] = {}


# -- recipes and evaluators ------------------------------------------------------------------------
def _recipe_key(recipe):
    """A key that is stable across pickling: the zoo name, or a hash of the pickled factory."""
    if isinstance(recipe, str):
        return ("zoo", recipe.lower().replace("_", "-"))
    import hashlib
    import pickle
    try:
        blob = pickle.dumps(recipe)      # module-level functions: by reference
    except Exception:
        try:
            import cloudpickle           # lambdas / closures (as Dask ships them): by value
            blob = cloudpickle.dumps(recipe)
        except Exception:
            return ("id", id(recipe))
    return ("factory", hashlib.sha256(blob).hexdigest())


def _build(recipe):
    """An evaluator from a recipe: a zoo name, or a factory returning an evaluator or a ModelSpec."""
    if isinstance(recipe, str):
        from .. import zoo
        known = {n.lower().replace("_", "-") for n in zoo.names()}
        if recipe.lower().replace("_", "-") not in known:
            from .evaluator import register_real_models
            register_real_models()
        obj = zoo.load(recipe)
    else:
        obj = recipe()
    ev = getattr(obj, "evaluator", None) if hasattr(obj, "layer_names") else obj
    if ev is None or not hasattr(ev, "details"):
        what = f"model '{recipe}'" if isinstance(recipe, str) else f"factory {getattr(recipe, '__name__', recipe)!r}"
        raise QuantmooError(f"The {what} has no real evaluator (only models with real weights, e.g. 'digits' or "
                            "'minilm-l6', can be measured)")
    return ev


def _evaluator_for(recipe):
    key = _recipe_key(recipe)
    ev = _EVALUATORS.get(key)
    if ev is None:
        ev = _EVALUATORS[key] = _build(recipe)
    return ev


def _as_config(c) -> QuantConfig:
    if isinstance(c, QuantConfig):
        return c
    return QuantConfig.from_dict(c)


class EvaluationTimeout(Exception):
    """Raised inside an evaluation that ran past its per-evaluation time limit."""


@contextmanager
def time_limit(seconds: Optional[float]):
    """Interrupt the enclosed code with :class:`EvaluationTimeout` after ``seconds``.

    Uses ``SIGALRM`` (an interval timer), so it only works in the main thread of a process on a
    POSIX system: that is where in-process evaluations and local worker processes run them.
    Elsewhere (Dask worker threads, Windows) it does nothing and only the batch ``timeout``
    applies. A timer interrupts Python code and NumPy between operations, not one long C call.
    """
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise EvaluationTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def evaluate_one(evaluator, config, eval_timeout: Optional[float] = None) -> dict:
    """``evaluator.details(config)`` as plain JSON values, or ``{"error": ...}`` (never raises).

    ``eval_timeout`` (seconds) turns an evaluation that hangs into ``{"error": "timed out ..."}``
    (see :func:`time_limit` for where it can be enforced).
    """
    try:
        with time_limit(eval_timeout):
            d = evaluator.details(_as_config(config))
        if not isinstance(d, dict) or "loss" not in d:
            return {"error": "the evaluator returned no 'loss'"}
        loss = float(d["loss"])
        if not math.isfinite(loss):
            return {"error": f"the evaluation returned a non-finite loss ({loss})"}
        return jsonable_details(d)
    except EvaluationTimeout as e:
        return {"error": str(e)}
    except Exception as e:  # report, never crash the batch
        return {"error": f"{type(e).__name__}: {e}"}


def _blas1():
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    return threadpool_limits(limits=1, user_api="blas")


def _task(recipe, config, eval_timeout=None) -> dict:
    """One evaluation in a worker (local process or Dask): rebuild/reuse the evaluator, one BLAS thread."""
    try:
        ev = _evaluator_for(recipe)
    except Exception as e:
        return {"error": f"cannot build the evaluator: {type(e).__name__}: {e}"}
    with _blas1():
        return evaluate_one(ev, config, eval_timeout)


def resolve_cache(cache) -> Optional[EvalCache]:
    """None/False -> no cache; True -> the default directory; a path -> that directory; an EvalCache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return EvalCache()
    if isinstance(cache, EvalCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return EvalCache(cache)
    raise QuantmooError(f"The 'cache' must be True/False, a directory or an EvalCache; got {type(cache).__name__}")


def _identity(ev) -> tuple:
    name = str(getattr(ev, "name", type(ev).__name__))
    spec = getattr(ev, "spec", None)
    mk = model_key(spec, ev) if spec is not None else "nospec"
    return name, mk


def _check_workers(workers):
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise QuantmooError(f"The 'workers' must be an integer >= 1 or None; got {workers!r}")
    return workers


# -- main entry ------------------------------------------------------------------------------------
def evaluate_many(evaluator_factory_or_model_name, configs: Sequence, workers: Optional[int] = None,
                  dask_address=None, cache=None, timeout: Optional[float] = None, progress: bool = False,
                  connect_timeout: float = CONNECT_TIMEOUT, eval_timeout: Optional[float] = None) -> List[dict]:
    """Measured details of many configs (see the module docstring).

    Parameters
    ----------
    evaluator_factory_or_model_name : str, callable, Evaluator or ModelSpec
        A zoo name (``"digits"``, ``"minilm-l6"``) or a picklable factory returning an evaluator
        or a ModelSpec with one: these can run in processes or on Dask. An evaluator object or a
        ModelSpec runs in-process (a ModelSpec whose name is in the zoo may also use workers).
    configs : sequence of QuantConfig or mapping
    workers : int, optional
        1: in-process; n > 1: n local processes; None: automatic (module docstring).
    dask_address : str or dask.distributed.Client, optional
        Run on this Dask scheduler instead (e.g. ``"tcp://10.0.0.5:8786"``).
    cache : bool, path or EvalCache, optional
        Reuse and store measured results on disk.
    timeout : float, optional
        Seconds for the whole batch; configs not done by then get ``{"error": "timed out ..."}``.
    eval_timeout : float, optional
        Seconds for one evaluation; one that runs longer gets ``{"error": "timed out ..."}`` and
        the batch goes on (enforced in-process and in local worker processes; see
        :func:`time_limit`).
    progress : bool
        Show a tqdm progress bar.
    connect_timeout : float
        Seconds to wait for the Dask scheduler.

    Returns
    -------
    list of dict
        Per config, in input order: the details (including ``"loss"``) or ``{"error": message}``.
    """
    workers = _check_workers(workers)
    for name, v in (("timeout", timeout), ("eval_timeout", eval_timeout)):
        if v is not None:
            check_positive(name, v, "evaluate_many (seconds, or None)")
    source = evaluator_factory_or_model_name
    cache = resolve_cache(cache)
    t_start = time.perf_counter()
    deadline = None if timeout is None else t_start + float(timeout)

    # what can run where
    recipe, local_ev = None, None
    if isinstance(source, str) or (callable(source) and not hasattr(source, "details")
                                   and not hasattr(source, "layer_names")):
        recipe = source
    elif hasattr(source, "layer_names"):       # a ModelSpec
        local_ev = getattr(source, "evaluator", None)
        if local_ev is None:
            raise QuantmooError(f"Model '{source.name}' has no real evaluator (only models with real weights, "
                                "e.g. 'digits' or 'minilm-l6', can be measured)")
        if (workers not in (None, 1) or dask_address is not None) and _in_zoo(source.name):
            recipe = source.name
    elif hasattr(source, "details"):
        local_ev = source
    else:
        raise QuantmooError("The first argument of evaluate_many must be a zoo model name, a factory, an "
                            f"evaluator or a ModelSpec; got {type(source).__name__}")
    if dask_address is not None and recipe is None:
        raise QuantmooError("Evaluating on Dask needs a picklable recipe: pass a zoo model name (e.g. 'digits') "
                            "or a module-level factory function instead of an evaluator object")

    # normalise configs (a malformed one is an error entry, not an exception)
    results: List[Optional[dict]] = [None] * len(configs)
    cfgs: List[Optional[QuantConfig]] = []
    for i, c in enumerate(configs):
        try:
            cfgs.append(_as_config(c))
        except Exception as e:
            cfgs.append(None)
            results[i] = {"error": f"invalid config: {e}"}

    def get_local():
        nonlocal local_ev
        if local_ev is None:
            local_ev = _evaluator_for(recipe)
        return local_ev

    ident = None
    if cache is not None:
        try:
            ident = _identity(get_local())
        except QuantmooError:
            raise
        except Exception as e:
            raise QuantmooError(f"Cannot build the evaluator: {type(e).__name__}: {e}") from None

    # de-duplicate, then read the cache once per distinct config
    todo: Dict[str, List[int]] = {}
    for i, c in enumerate(cfgs):
        if c is not None:
            todo.setdefault(c.config_hash(), []).append(i)
    pending = []
    for h, idx in todo.items():
        hit = cache.get(ident[0], ident[1], h) if cache is not None else None
        if hit is not None:
            for i in idx:
                results[i] = dict(hit)
        else:
            pending.append((h, idx))

    bar = None
    if progress and pending:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(pending), desc="evaluating", unit="config", file=sys.stderr, leave=False)

    cache_ok = [True]

    def done(h, idx, d):
        for i in idx:
            results[i] = dict(d)
        if cache is not None and cache_ok[0] and "error" not in d:
            try:
                cache.put(ident[0], ident[1], h, d)
            except QuantmooError as e:  # an unwritable cache must not cost the measurements
                cache_ok[0] = False
                warnings.warn(f"{e}; continuing without storing results", RuntimeWarning, stacklevel=3)
        if bar is not None:
            bar.update(1)

    try:
        if pending:
            if dask_address is not None:
                _run_dask(dask_address, recipe, cfgs, pending, done, deadline, connect_timeout, eval_timeout)
            else:
                n_proc = workers
                if recipe is None:
                    n_proc = 1
                if n_proc is None:
                    # automatic: time one evaluation in-process first
                    h, idx = pending[0]
                    t0 = time.perf_counter()
                    done(h, idx, evaluate_one(get_local(), cfgs[idx[0]], eval_timeout))
                    per = time.perf_counter() - t0
                    pending = pending[1:]
                    cpus = os.cpu_count() or 1
                    n_proc = 1 if (per * len(pending) <= INPROCESS_SECONDS or cpus == 1) else min(cpus, len(pending))
                if pending:
                    if n_proc == 1:
                        ev = get_local()
                        for h, idx in pending:
                            if deadline is not None and time.perf_counter() > deadline:
                                done(h, idx, {"error": f"timed out after {timeout:g} s"})
                                continue
                            done(h, idx, evaluate_one(ev, cfgs[idx[0]], eval_timeout))
                    else:
                        _run_processes(min(n_proc, len(pending)), recipe, cfgs, pending, done, deadline, timeout,
                                       eval_timeout)
    finally:
        if bar is not None:
            bar.close()
    return [r if r is not None else {"error": "not evaluated"} for r in results]


def _in_zoo(name: str) -> bool:
    from .. import zoo
    return name.lower().replace("_", "-") in {n.lower().replace("_", "-") for n in zoo.names()}


def _payload(cfg: QuantConfig) -> dict:
    return cfg.to_dict()


def _run_processes(n, recipe, cfgs, pending, done, deadline, timeout, eval_timeout=None):
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    ex = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    futs = {}
    try:
        for h, idx in pending:
            futs[ex.submit(_task, recipe, _payload(cfgs[idx[0]]), eval_timeout)] = (h, idx)
        left = set(futs)
        while left:
            wait_for = None if deadline is None else max(0.0, deadline - time.perf_counter())
            finished, left = wait(left, timeout=wait_for, return_when=FIRST_COMPLETED)
            for f in finished:
                h, idx = futs[f]
                try:
                    d = f.result()
                except Exception as e:  # e.g. BrokenProcessPool: a worker died
                    d = {"error": f"worker failed: {type(e).__name__}: {e}"}
                done(h, idx, d)
            if not finished and left:  # deadline passed
                for f in left:
                    h, idx = futs[f]
                    done(h, idx, {"error": f"timed out after {timeout:g} s"})
                    f.cancel()
                left = set()
                _terminate(ex)
    finally:
        ex.shutdown(wait=deadline is None, cancel_futures=True)


def _terminate(ex) -> None:
    procs = getattr(ex, "_processes", None) or {}
    for p in list(procs.values()):
        try:
            p.terminate()
        except Exception:
            pass


def _connect(address, connect_timeout: float):
    distributed = require("dask.distributed", "dask", "evaluating on a Dask cluster")
    if isinstance(address, distributed.Client):
        return address, False
    if not isinstance(address, str) or not address:
        raise QuantmooError(f"The 'dask_address' must be a scheduler address such as 'tcp://host:8786' or a "
                            f"dask.distributed.Client; got {address!r}")
    try:
        client = distributed.Client(address, timeout=f"{float(connect_timeout)}s", set_as_default=False)
    except Exception as e:  # OSError / TimeoutError / ValueError from the comm layer
        raise QuantmooError(f"Cannot connect to the Dask scheduler at '{address}' (within {connect_timeout:g} s): "
                            f"{type(e).__name__}: {e}") from None
    return client, True


def _run_dask(address, recipe, cfgs, pending, done, deadline, connect_timeout, eval_timeout=None):
    distributed = require("dask.distributed", "dask", "evaluating on a Dask cluster")
    client, owned = _connect(address, connect_timeout)
    try:
        payloads = [_payload(cfgs[idx[0]]) for _, idx in pending]
        futures = client.map(_task, [recipe] * len(payloads), payloads, [eval_timeout] * len(payloads),
                             retries=2, pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
        seen = set()
        try:
            for f in distributed.as_completed(futures, timeout=remaining, loop=client.loop):
                k = index[f.key]
                h, idx = pending[k]
                try:
                    d = f.result()
                except Exception as e:  # KilledWorker after the retries, cancelled, ...
                    d = {"error": f"dask task failed: {type(e).__name__}: {e}"}
                done(h, idx, d)
                seen.add(k)
        except TimeoutError:  # distributed raises the builtin (or a subclass) when the deadline passes
            pass
        for k, f in enumerate(futures):
            if k not in seen:
                h, idx = pending[k]
                done(h, idx, {"error": "timed out waiting for the Dask cluster"})
                f.cancel()
    finally:
        if owned:
            client.close()
