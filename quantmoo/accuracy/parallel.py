"""Evaluate many configs with a real evaluator: in-process, local processes, or a Dask cluster.

:func:`evaluate_many` returns, in input order, the evaluator's ``details`` dict of every config,
or ``{"error": "..."}`` for a config whose evaluation raised or returned a non-finite loss; one
bad config never stops the batch.

Where the work runs
-------------------
* **in-process** (``workers=1``, or an evaluator object / ModelSpec that cannot be rebuilt
  elsewhere);
* **local processes** (the default for a recipe): a :class:`ProcessPool`, i.e. a
  ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method. Workers never
  receive an evaluator; they rebuild it from a picklable *recipe*, a zoo name such as
  ``"digits"`` or ``"minilm-l6"`` (``quantmoo.zoo.load(name).evaluator``) or a module-level
  factory function, once per worker process, and keep it for every later task. Each task runs
  with one BLAS thread, so ``n`` workers use ``n`` cores. Pass ``pool=`` to keep the same
  processes for many batches (a measured search keeps one pool for its whole run). Workers that
  die before running anything (typically: a script without ``if __name__ == "__main__":``,
  which every spawned worker re-runs) raise a :class:`~quantmoo.errors.QuantmooError` that
  says so;
* **Dask** (``dask_address``): ``dask.distributed.Client(address)`` (an existing ``Client``
  is accepted too), tasks submitted with ``retries=2`` so a lost worker's tasks are rerun. An
  unreachable scheduler raises a :class:`~quantmoo.errors.QuantmooError` naming the address
  after ``connect_timeout`` seconds. A batch never waits forever: when the cluster has had no
  workers for ``NO_WORKER_GRACE`` seconds, or (with ``eval_timeout``) no task has finished for
  ``3 * eval_timeout + STALL_SLACK`` seconds, the tasks still waiting become failed evaluations
  and one ``RuntimeWarning`` says why.

``eval_timeout`` holds on every backend: with ``SIGALRM`` in a process's main thread (in-process
and local workers), otherwise (Dask worker threads, any other thread) by running the evaluation
in a helper thread that is abandoned at the deadline (see :func:`call_with_timeout`).

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

__all__ = ["evaluate_many", "evaluate_one", "time_limit", "call_with_timeout", "EvaluationTimeout", "ProcessPool",
           "resolve_cache", "INPROCESS_SECONDS", "CONNECT_TIMEOUT", "NO_WORKER_GRACE", "STALL_SLACK"]

#: ``workers=None`` stays in-process when the whole batch would take less than this (seconds).
INPROCESS_SECONDS = 5.0
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = 5.0
#: Seconds a Dask cluster may have no workers while tasks wait (a nanny restarting a killed worker,
#: an adaptive cluster scaling up) before the waiting tasks are failed.
NO_WORKER_GRACE = 30.0
#: With ``eval_timeout``: extra seconds (worker restarts, evaluator start-up) a Dask batch may go
#: without any task finishing, on top of ``(1 + retries) * eval_timeout``.
STALL_SLACK = 60.0
#: Seconds between two looks at a Dask batch's futures (the scheduler is asked for workers once a second).
_DASK_POLL = 0.05
_DASK_RETRIES = 2

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
    POSIX system (see :func:`_alarm_usable`); elsewhere it does nothing, and
    :func:`call_with_timeout` is the way to limit a call. A timer interrupts Python code and
    NumPy between operations, not one long C call.
    """
    if seconds is None or not _alarm_usable():
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


def _alarm_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def call_with_timeout(fn, seconds: Optional[float]):
    """``fn()``, or :class:`EvaluationTimeout` once it has run ``seconds`` (None: no limit).

    In a process's main thread (POSIX) :func:`time_limit` interrupts ``fn`` itself. Elsewhere
    (Dask worker threads, a server's threads, Windows) ``fn`` runs in a daemon helper thread;
    at the deadline the caller gets the timeout at once and the helper is asked to stop with
    the same exception at its next Python instruction (like the timer: a long C call finishes
    first, in the background).
    """
    if seconds is None:
        return fn()
    if _alarm_usable():
        with time_limit(seconds):
            return fn()
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller (an EvaluationTimeout sent below ends here)
            box["error"] = e
    t = threading.Thread(target=run, name="quantmoo-evaluation", daemon=True)
    t.start()
    t.join(float(seconds))
    if t.is_alive():
        import ctypes
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(EvaluationTimeout))
        raise EvaluationTimeout(f"timed out after {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def evaluate_one(evaluator, config, eval_timeout: Optional[float] = None) -> dict:
    """``evaluator.details(config)`` as plain JSON values, or ``{"error": ...}`` (never raises).

    ``eval_timeout`` (seconds) turns an evaluation that hangs into ``{"error": "timed out ..."}``,
    in any thread (see :func:`call_with_timeout`).
    """
    try:
        cfg = _as_config(config)
        d = call_with_timeout(lambda: evaluator.details(cfg), eval_timeout)
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


# -- local worker processes -----------------------------------------------------------------------
#: True inside a :class:`ProcessPool` worker: the pool already runs one task per core, so an evaluator
#: built there must not start threads of its own (see :func:`in_pool_worker`).
_IN_POOL_WORKER = False


def in_pool_worker() -> bool:
    """True in a local pool worker process (its evaluators should use one thread: the pool fills the cores)."""
    return _IN_POOL_WORKER


def _worker_init(started) -> None:
    """First thing a pool worker runs (after importing the parent's main module)."""
    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    # Ctrl-C reaches the whole process group: the parent decides, workers must not die mid-task
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started.set()


def _no_pool_while_bootstrapping() -> None:
    """Inside a spawned worker that is still importing the parent's main module, stop quietly.

    That happens when the user's script starts workers at top level (no ``__main__`` guard):
    each worker re-runs the script and would start workers of its own. The parent, whose pool
    then breaks before any worker ran, explains it once (:meth:`ProcessPool.check_started`).
    """
    import multiprocessing
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(1)


class ProcessPool:
    """``workers`` local ``spawn`` processes, kept for many :func:`evaluate_many` batches.

    The processes start at the first batch that needs them and are kept until :meth:`close`
    (also on leaving a ``with`` block); a pool that broke (a worker died) or timed out is
    started again by the next batch. ``n_started`` counts the starts.

    Parameters
    ----------
    workers : int, optional
        Processes (default: the number of CPUs).
    """

    def __init__(self, workers: Optional[int] = None):
        self.workers = _check_workers(workers) or (os.cpu_count() or 1)
        self.n_started = 0
        self._ex = None
        self._started = None

    def executor(self) -> ProcessPoolExecutor:
        """The running executor (started if needed)."""
        if self._ex is None:
            import multiprocessing
            _no_pool_while_bootstrapping()
            ctx = multiprocessing.get_context("spawn")
            self._started = ctx.Event()
            self._ex = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                           initargs=(self._started,))
            self.n_started += 1
        return self._ex

    def check_started(self) -> None:
        """After the pool broke: raise a clear error if no worker ever started."""
        if self._started is None or self._started.is_set():
            return
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)    # None in a notebook or the interactive prompt
        if script:
            raise QuantmooError(
                f"The {self.workers} worker processes died while starting: each one re-runs your script "
                f"'{script}' (Python's 'spawn' start method), and its top-level code starts the evaluations "
                'again. Put that code under `if __name__ == "__main__":`, or use workers=1') from None
        raise QuantmooError(f"The {self.workers} worker processes died while starting, before any evaluation (their "
                            "error is on stderr); use workers=1 to evaluate in-process") from None

    def close(self, wait: bool = True) -> None:
        """Stop the processes (a later batch starts new ones)."""
        ex, self._ex = self._ex, None
        if ex is not None:
            if not wait:
                _terminate(ex)
            ex.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> "ProcessPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- main entry ------------------------------------------------------------------------------------
def evaluate_many(evaluator_factory_or_model_name, configs: Sequence, workers: Optional[int] = None,
                  dask_address=None, cache=None, timeout: Optional[float] = None, progress: bool = False,
                  connect_timeout: float = CONNECT_TIMEOUT, eval_timeout: Optional[float] = None,
                  pool: Optional[ProcessPool] = None) -> List[dict]:
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
        the batch goes on (on every backend; see :func:`call_with_timeout`).
    progress : bool
        Show a tqdm progress bar.
    connect_timeout : float
        Seconds to wait for the Dask scheduler.
    pool : ProcessPool, optional
        Local processes to use (and leave running) when the batch goes to processes; its size
        wins over ``workers``. Default: a pool for this call only.

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
        if workers not in (None, 1) or dask_address is not None:
            # the evaluator's own recipe (an ONNX file and its data); else the zoo name, unless the
            # model came from a file (digits.onnx is named 'digits' but is not the zoo's MLP)
            from ..models.zoo import file_provenance
            recipe = getattr(local_ev, "recipe", None)
            if recipe is None and _in_zoo(source.name) and not file_provenance(source):
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
                        own = pool is None
                        use = ProcessPool(min(n_proc, len(pending))) if own else pool
                        try:
                            _run_processes(use, recipe, cfgs, pending, done, deadline, timeout, eval_timeout)
                        finally:
                            if own:
                                use.close(wait=deadline is None)
    finally:
        if bar is not None:
            bar.close()
    return [r if r is not None else {"error": "not evaluated"} for r in results]


def _in_zoo(name: str) -> bool:
    from .. import zoo
    return name.lower().replace("_", "-") in {n.lower().replace("_", "-") for n in zoo.names()}


def _payload(cfg: QuantConfig) -> dict:
    return cfg.to_dict()


def _run_processes(pool: ProcessPool, recipe, cfgs, pending, done, deadline, timeout, eval_timeout=None):
    from concurrent.futures.process import BrokenProcessPool
    ex = pool.executor()
    futs = {ex.submit(_task, recipe, _payload(cfgs[idx[0]]), eval_timeout): (h, idx) for h, idx in pending}
    left = set(futs)
    try:
        while left:
            wait_for = None if deadline is None else max(0.0, deadline - time.perf_counter())
            finished, left = wait(left, timeout=wait_for, return_when=FIRST_COMPLETED)
            for f in finished:
                h, idx = futs[f]
                try:
                    d = f.result()
                except BrokenProcessPool as e:  # a worker died: this pool is done for
                    pool.check_started()
                    d = {"error": f"worker failed: {type(e).__name__}: {e}"}
                except Exception as e:
                    d = {"error": f"worker failed: {type(e).__name__}: {e}"}
                done(h, idx, d)
            if not finished and left:  # deadline passed
                for f in left:
                    h, idx = futs[f]
                    done(h, idx, {"error": f"timed out after {timeout:g} s"})
                left = set()
                pool.close(wait=False)
    except BaseException:   # Ctrl-C, or the start-up error: stop the workers, do not wait for them
        pool.close(wait=False)
        raise
    finally:
        if pool._ex is not None and getattr(pool._ex, "_broken", False):
            pool.close(wait=False)      # the next batch starts a fresh pool


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


def _n_workers(client) -> int:
    """Workers the scheduler knows now (0 if it cannot be asked)."""
    try:
        return len(client.nthreads(callback_timeout=CONNECT_TIMEOUT))
    except Exception:
        return 0


def _run_dask(address, recipe, cfgs, pending, done, deadline, connect_timeout, eval_timeout=None):
    """Submit every pending config, collect as they finish; never wait on a dead or stuck cluster."""
    client, owned = _connect(address, connect_timeout)
    where = address if isinstance(address, str) else "the Dask cluster"
    stall = None if eval_timeout is None else (1 + _DASK_RETRIES) * float(eval_timeout) + STALL_SLACK
    try:
        payloads = [_payload(cfgs[idx[0]]) for _, idx in pending]
        futures = client.map(_task, [recipe] * len(payloads), payloads, [eval_timeout] * len(payloads),
                             retries=_DASK_RETRIES, pure=False)
        left = {f.key: (k, f) for k, f in enumerate(futures)}
        reason = None
        last_progress = time.perf_counter()
        no_workers_since = None
        next_look = 0.0         # when to ask the scheduler for its workers again
        while left:
            now = time.perf_counter()
            if deadline is not None and now >= deadline:
                reason = "timed out waiting for the Dask cluster"
                break
            # poll (the client need not be the default one that distributed.wait would use)
            finished = [f for _, f in left.values() if f.done()]
            if not finished:
                time.sleep(_DASK_POLL if deadline is None else max(0.0, min(_DASK_POLL, deadline - now)))
            for f in finished:
                k, _ = left.pop(f.key)
                h, idx = pending[k]
                try:
                    d = f.result()
                except Exception as e:  # KilledWorker after the retries, cancelled, ...
                    d = {"error": f"dask task failed: {type(e).__name__}: {e}"}
                done(h, idx, d)
            now = time.perf_counter()
            if finished:
                last_progress = now
            if not left:
                break
            if now >= next_look:
                next_look = now + 1.0
                if _n_workers(client):
                    no_workers_since = None
                elif no_workers_since is None:
                    no_workers_since = now
            if no_workers_since is not None and now - no_workers_since >= NO_WORKER_GRACE:
                reason = f"{where} has had no workers for {NO_WORKER_GRACE:g} s"
            elif stall is not None and now - last_progress >= stall:
                reason = f"no Dask task finished in {stall:g} s (eval_timeout {eval_timeout:g} s)"
            if reason:
                warnings.warn(f"{reason}; the {len(left)} evaluations still waiting count as failed (start workers, "
                              "or check why they die, e.g. memory)", RuntimeWarning, stacklevel=4)
                break
        if left:
            client.cancel([f for _, f in left.values()])
            for k, _ in sorted(left.values(), key=lambda kf: kf[0]):
                h, idx = pending[k]
                done(h, idx, {"error": reason})
    finally:
        if owned:
            client.close()
