"""Checkpoints of a running search: arrays plus JSON, checksummed, bound to their run, never unpickled.

A checkpoint directory holds

* ``checkpoint.npz``: a NumPy zip archive that ``np.load(path, allow_pickle=False)`` reads. Its
  ``header`` member is UTF-8 JSON: the format and quantmoo version, the *binding* (model name
  and spec hash, hardware name and profile hash, space, objectives, constraints, algorithm,
  seed), the run's settings, the problem's inputs (model spec without weights or evaluator,
  the hardware profile's YAML content, the accuracy model's kind and provenance), the history
  rows, and the algorithm's scalar state: generation counter, evaluation count, termination
  progress and the random generator's ``bit_generator.state``. The other members are arrays:
  the population (``X, F, G, H, CV`` and per-individual data such as ``rank`` and
  ``crowding``), NSGA-III's normalisation points, the external Pareto archive, the accuracy
  table and the measured-accuracy memo. The zip comment ends with the sha256 of every byte
  before it, so any damage (a flipped bit, a truncated copy) is detected before anything is
  parsed.
* ``checkpoint.json``: a readable summary (generation, evaluations, when) that repeats the
  binding. On resume the array file is the source of truth; a summary that names another run
  (a checkpoint file copied in from elsewhere) is refused.

:func:`load_checkpoint` rebuilds the problem from its inputs (its cost tables are a pure
function of them), builds a fresh pymoo algorithm exactly as :meth:`SearchRun.setup` does and
sets its state from the arrays. The offspring are not stored: pymoo replaces them before it
reads them again. Because the generator state is restored, a run resumed from generation
``k`` makes the same draws as the uninterrupted run: same seed, same front (for termination
by generations or evaluations; a wall-clock ``time_limit`` goes on from the elapsed time
saved, and is not reproducible by nature).

Both files are written to a temporary name (``.checkpoint.npz.XXXXXXXX``) and renamed, so a
process killed while writing leaves the previous checkpoint intact; the next save removes such
leftovers (only names of that pattern). An old ``checkpoint.pkl`` (quantmoo before format 2)
is refused, never unpickled: unpickling a file received from elsewhere can run code.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import numbers
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import QuantmooError
from ..io import atomic_write_bytes, atomic_write_text

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint", "check_writable", "CHECKPOINT_FILE",
           "SUMMARY_FILE", "FORMAT"]

CHECKPOINT_FILE = "checkpoint.npz"
SUMMARY_FILE = "checkpoint.json"
LEGACY_FILE = "checkpoint.pkl"
FORMAT = 2
#: What the binding names, in message order.
BINDING = ("model", "model_hash", "hardware", "hardware_hash", "space", "objectives", "constraints", "algorithm",
           "seed")
#: Temporary names io.atomic_write_bytes (tempfile.mkstemp) gives the checkpoint files; nothing else is removed.
_TEMP_NAME = re.compile(r"\.checkpoint\.(npz|json|pkl)\.[a-z0-9_]{8}")
_SEAL = b"quantmoo-checkpoint sha256:"
_DIGEST = 64                                  # hex characters
_INDIVIDUAL = ("X", "F", "G", "H", "CV")
#: Algorithm attributes that change between generations besides the population (NSGA-III, U-NSGA-III).
_ALGO_ARRAYS = ("survival.norm.ideal_point", "survival.norm.worst_point", "survival.norm.nadir_point",
                "survival.norm.extreme_points")


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


# -- the container: an npz whose zip comment seals it -------------------------------------------------
def _seal(zip_bytes: bytes) -> bytes:
    """``zip_bytes`` (a zip with no comment) with the comment ``quantmoo-checkpoint sha256:<hex>``,
    the digest of every byte before it (the zip's end record, comment length included)."""
    n = len(zip_bytes)
    # the end-of-central-directory record is the last 22 bytes; its last 2 are the comment length
    body = zip_bytes[:n - 2] + (len(_SEAL) + _DIGEST).to_bytes(2, "little") + _SEAL
    return body + hashlib.sha256(body).hexdigest().encode("ascii")


def _pack(header: dict, arrays: dict) -> bytes:
    buf = io.BytesIO()
    members = {"header": np.frombuffer(json.dumps(header, separators=(",", ":")).encode("utf-8"), np.uint8),
               **arrays}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in members.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))  # same state, same bytes
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
    return _seal(buf.getvalue())


def _unpack(data: bytes, path) -> tuple:
    """``(header, arrays)`` of a sealed checkpoint; every defect is one QuantmooError."""
    tail = len(_SEAL) + _DIGEST
    if len(data) < tail + 22 or data[-tail:-_DIGEST] != _SEAL:
        raise QuantmooError(f"The checkpoint '{path}' is truncated or damaged (no quantmoo checksum at its end)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).hexdigest().encode("ascii") != digest:
        raise QuantmooError(f"The checkpoint '{path}' fails its checksum: the file is damaged")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    except Exception as e:   # a crafted file with a valid checksum: object arrays, bad JSON, ...
        raise QuantmooError(f"The checkpoint '{path}' is not a quantmoo checkpoint: {type(e).__name__}: "
                            f"{str(e)[:200]}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise QuantmooError(f"The checkpoint '{path}' has format {got!r}; this quantmoo reads format {FORMAT}")
    return header, arrays


def _json(obj):
    """NumPy scalars and arrays as JSON values (for provenance dicts such as a model's meta)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, datetime.date):    # an unquoted date in a profile YAML; str() as profile_hash does
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# -- populations ------------------------------------------------------------------------------------
def _population_state(pop, prefix: str, arrays: dict) -> dict:
    """Arrays ``prefix.X``, ``prefix.F``, ... and per-individual ``data``; returns the JSON part."""
    inds = list(pop)
    meta = {"n": len(inds)}
    if not inds:
        return meta
    for k in _INDIVIDUAL:
        arrays[f"{prefix}.{k}"] = np.stack([np.asarray(getattr(ind, k)) for ind in inds])
    evaluated = [tuple(sorted(ind.evaluated)) for ind in inds]
    kinds = list(dict.fromkeys(evaluated))
    meta["evaluated"] = [list(e) for e in kinds]
    arrays[f"{prefix}.evaluated"] = np.array([kinds.index(e) for e in evaluated], dtype=np.int64)
    data = {}
    for key in dict.fromkeys(k for ind in inds for k in ind.data):
        vals = [ind.data.get(key) for ind in inds]
        present = np.array([v is not None for v in vals])
        if not isinstance(key, str) or not all(isinstance(v, (numbers.Real, np.number)) for v in vals if v is not None):
            raise QuantmooError(f"Cannot checkpoint this search: individual data {key!r} is not a number")
        is_int = all(isinstance(v, (numbers.Integral, np.integer)) for v in vals if v is not None)
        arrays[f"{prefix}.data.{key}"] = np.array([0 if v is None else v for v in vals],
                                                  dtype=np.int64 if is_int else np.float64)
        if not present.all():
            arrays[f"{prefix}.present.{key}"] = present
        data[key] = "int" if is_int else "float"
    meta["data"] = data
    return meta


def _population(meta: dict, prefix: str, arrays: dict, n_var: int):
    from pymoo.core.individual import Individual
    from pymoo.core.population import Population
    n = int(meta["n"])
    if n == 0:
        return Population.empty()
    cols = {k: arrays[f"{prefix}.{k}"] for k in _INDIVIDUAL}
    if any(len(c) != n for c in cols.values()) or cols["X"].shape != (n, n_var):
        raise QuantmooError(f"population '{prefix}' has inconsistent array shapes")
    kinds = [set(e) for e in meta["evaluated"]]
    ev = arrays[f"{prefix}.evaluated"]
    data = {k: (arrays[f"{prefix}.data.{k}"], arrays.get(f"{prefix}.present.{k}")) for k in meta["data"]}
    inds = []
    for i in range(n):    # restoring, once per resume (pymoo's individuals are Python objects)
        ind = Individual()
        ind._X, ind._F, ind._G, ind._H, ind._CV = (cols[k][i] for k in _INDIVIDUAL)
        ind.evaluated = set(kinds[int(ev[i])])
        for k, (vals, present) in data.items():
            if present is None or present[i]:
                ind.data[k] = vals[i]
        inds.append(ind)
    return Population.create(*inds)


def _get_path(obj, path):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def _set_path(obj, path, value):
    *head, last = path.split(".")
    setattr(_get_path(obj, ".".join(head)) if head else obj, last, value)


def _criteria(termination) -> list:
    return [termination, *getattr(termination, "criteria", ())]


def _algorithm_state(algo, arrays: dict) -> dict:
    state = {"n_iter": algo.n_iter, "is_initialized": bool(algo.is_initialized),
             "elapsed": None if algo.start_time is None else time.time() - algo.start_time,
             "n_eval": int(algo.evaluator.n_eval),
             "termination": [[float(t.perc), bool(t.force_termination)] for t in _criteria(algo.termination)],
             "random_state": algo.random_state.bit_generator.state, "populations": {}, "attributes": {}}
    pops = {"pop": algo.pop, "survival.opt": getattr(getattr(algo, "survival", None), "opt", None)}
    for name, pop in pops.items():
        if pop is not None:
            state["populations"][name] = _population_state(pop, name, arrays)
    for path in _ALGO_ARRAYS:
        try:
            value = _get_path(algo, path)
        except AttributeError:
            continue
        state["attributes"][path] = value is not None
        if value is not None:
            arrays[path] = np.asarray(value)
    return state


def _restore_algorithm(algo, state: dict, arrays: dict) -> None:
    n_var = algo.problem.n_var
    algo.n_iter = None if state["n_iter"] is None else int(state["n_iter"])
    algo.is_initialized = bool(state["is_initialized"])
    algo.start_time = None if state["elapsed"] is None else time.time() - float(state["elapsed"])
    algo.evaluator.n_eval = int(state["n_eval"])
    crit = _criteria(algo.termination)
    if len(crit) != len(state["termination"]):
        raise QuantmooError("its termination does not match its settings")
    for t, (perc, force) in zip(crit, state["termination"]):
        t.perc, t.force_termination = float(perc), bool(force)
    rs = state["random_state"]
    if not isinstance(rs, dict) or rs.get("bit_generator") != type(algo.random_state.bit_generator).__name__:
        raise QuantmooError("its random generator state is not a "
                            f"{type(algo.random_state.bit_generator).__name__} state")
    algo.random_state.bit_generator.state = rs
    for name, meta in state["populations"].items():
        if name not in ("pop", "survival.opt"):
            raise QuantmooError(f"unknown population {name!r}")
        _set_path(algo, "pop" if name == "pop" else name, _population(meta, name, arrays, n_var))
    for path, present in state["attributes"].items():
        if path not in _ALGO_ARRAYS:
            raise QuantmooError(f"unknown attribute {path!r}")
        _set_path(algo, path, np.array(arrays[path]) if present else None)
    if algo.pop is not None and len(algo.pop):
        algo._set_optimum()


# -- the problem's inputs ---------------------------------------------------------------------------
def _accuracy_state(acc, arrays: dict) -> dict:
    from ..accuracy.cache import EvalCache
    from .measured import MeasuredAccuracy
    table = acc.table if isinstance(acc, MeasuredAccuracy) else acc
    arrays["accuracy.table"] = table.table
    out = {"table_kind": table.kind, "table_meta": table.meta}
    if not isinstance(acc, MeasuredAccuracy):
        return {"type": "table", **out}
    keys = list(acc._memo)
    n_var = len(acc.encoding.xl)
    arrays["accuracy.memo_X"] = np.frombuffer(b"".join(keys), dtype=np.int64).reshape(len(keys), n_var)
    arrays["accuracy.memo_loss"] = np.array([acc._memo[k] for k in keys], dtype=np.float64)
    arrays["accuracy.failed_X"] = np.frombuffer(b"".join(acc.failures), dtype=np.int64).reshape(-1, n_var)
    cache = acc.cache
    cache = str(cache.directory) if isinstance(cache, EvalCache) else (
        os.fspath(cache) if isinstance(cache, (str, os.PathLike)) else cache)
    # an evaluator object, a Dask Client: not data; the caller passes the evaluator again on resume
    return {"type": "measured", **out, "source": acc.source if isinstance(acc.source, str) else None,
            "eval_timeout": acc.eval_timeout, "workers": acc.workers,
            "dask_address": acc.dask_address if isinstance(acc.dask_address, str) else None,
            "cache": cache if isinstance(cache, (str, bool, type(None))) else None,
            "failures": list(acc.failures.values())}


def _accuracy(state: dict, arrays: dict, evaluator):
    from ..accuracy.tables import AccuracyTable
    from .measured import MeasuredAccuracy
    table = AccuracyTable(arrays["accuracy.table"], kind=state["table_kind"], meta=state["table_meta"])
    if state["type"] == "table":
        return table
    if state["type"] != "measured":
        raise QuantmooError(f"unknown accuracy type {state['type']!r}")
    source = state["source"]
    if source is None:
        if evaluator is None:
            raise QuantmooError("This checkpoint measures accuracy with an evaluator object that is not saved in "
                                "checkpoints; pass it again: SearchRun.resume(dir, evaluator=...)")
        source = evaluator
    acc = MeasuredAccuracy(source, table=table, eval_timeout=state["eval_timeout"], workers=state["workers"],
                           dask_address=state["dask_address"], cache=state["cache"])
    X = np.ascontiguousarray(arrays["accuracy.memo_X"], dtype=np.int64)
    loss = arrays["accuracy.memo_loss"]
    failed = np.ascontiguousarray(arrays["accuracy.failed_X"], dtype=np.int64)
    if len(X) != len(loss) or len(failed) != len(state["failures"]):
        raise QuantmooError("its measured-accuracy memo has inconsistent lengths")
    acc._memo = {row.tobytes(): float(v) for row, v in zip(X, loss)}
    acc.failures = {row.tobytes(): str(r) for row, r in zip(failed, state["failures"])}
    return acc


def _binding(run) -> dict:
    p = run.problem
    return {"model": p.model.name, "model_hash": p.model.spec_hash(), "hardware": p.hardware.name,
            "hardware_hash": p.hardware.profile_hash(), "space": p.space.to_dict(), "objectives": list(p.objectives),
            "constraints": dict(p.constraints), "algorithm": run.algorithm_name, "seed": run.seed}


def _describe(b) -> str:
    b = b if isinstance(b, dict) else {}
    return f"model {b.get('model')} on {b.get('hardware')} ({b.get('algorithm')}, seed {b.get('seed')})"


def _differences(a: dict, b: dict) -> list:
    """``"field a vs b"`` for each binding field that differs (a hash only when its name agrees)."""
    out = []
    for k in BINDING:
        if a.get(k) == b.get(k) or (k.endswith("_hash") and a.get(k[:-5]) != b.get(k[:-5])):
            continue
        show = [json.dumps(x, separators=(",", ":")) if not isinstance(x, str) else x for x in (a.get(k), b.get(k))]
        out.append(f"{k} {show[0][:80]} vs {show[1][:80]}")
    return out


# -- save / load ------------------------------------------------------------------------------------
def check_writable(directory) -> None:
    """Raise a QuantmooError now if checkpoints cannot be written to ``directory``.

    Creates the missing directories and a probe file (named like the temporary files
    :func:`save_checkpoint` writes), then removes both: nothing is left behind.
    """
    d = Path(directory)
    created = []
    try:
        for p in reversed([d, *d.parents]):
            if not p.exists():
                p.mkdir()
                created.append(p)
        fd, probe = tempfile.mkstemp(prefix=f".{CHECKPOINT_FILE}.", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise QuantmooError(f"The checkpoint directory '{directory}' cannot be written: "
                            f"{e.strerror or type(e).__name__}") from None
    finally:
        for p in reversed(created):
            try:
                p.rmdir()
            except OSError:
                pass


def _remove_stale_temporaries(d: Path) -> None:
    """Temporary checkpoint files left by a process killed while writing (our names only)."""
    for p in d.iterdir():
        if _TEMP_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except OSError:
                pass


def save_checkpoint(run, directory) -> Path:
    """Write ``run``'s state (a set-up :class:`~quantmoo.search.run.SearchRun`) to ``directory``.

    Returns the path of ``checkpoint.npz``.
    """
    run._check_setup()
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuantmooError(f"Cannot create the checkpoint directory '{d}': {e.strerror}") from None
    problem, algo = run.problem, run.algorithm
    binding = _binding(run)
    arrays = {"run.hv_ref": np.asarray(run.hv_ref, dtype=np.float64)}
    if run.archive is not None:
        arrays["run.archive_X"], arrays["run.archive_F"] = run.archive.X, run.archive.F
    # every evaluated genome (for evaluations.csv): concatenated, with the count per generation
    evaluated = list(getattr(run, "evaluated", []))
    arrays["run.evaluated_n"] = np.array([len(e) for e in evaluated], dtype=np.int64)
    arrays["run.evaluated_X"] = (np.concatenate(evaluated) if evaluated
                                 else np.zeros((0, problem.n_var), dtype=np.int8))
    header = {"format": FORMAT, "quantmoo_version": __version__, "binding": binding, "settings": run.settings(),
              "problem": {"model": problem.model.to_dict(),
                          "hardware": {"yaml": problem.hardware.raw, "path": problem.hardware.path},
                          "accuracy": _accuracy_state(problem.accuracy, arrays)},
              "run": {"history": list(run.history), "exec_time": float(run.exec_time),
                      "checkpoint_every": int(getattr(run, "checkpoint_every", 1))},
              "algorithm": _algorithm_state(algo, arrays)}
    try:
        header = json.loads(json.dumps(header, default=_json))   # plain JSON from here on
        data = _pack(header, arrays)
    except (TypeError, ValueError) as e:
        raise QuantmooError(f"Cannot checkpoint this search: {e}") from None
    path = d / CHECKPOINT_FILE
    last = run.history[-1] if run.history else {}
    summary = {"format": FORMAT, "quantmoo_version": __version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               **header["binding"], "n_gen_done": run.n_done, "n_gen": run.n_gen, "n_eval": last.get("n_eval", 0),
               "finished": not algo.has_next()}
    try:
        _remove_stale_temporaries(d)
        atomic_write_bytes(path, data)
        atomic_write_text(d / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    except OSError as e:
        raise QuantmooError(f"Cannot write the checkpoint '{path}': {e.strerror}") from None
    return path


def _read(d: Path) -> tuple:
    """``(header, arrays)`` of the checkpoint in ``d``, checked against its summary."""
    from ..io import load_json
    path = d / CHECKPOINT_FILE
    if not path.is_file():
        if (d / LEGACY_FILE).is_file():
            raise QuantmooError(f"'{d}' holds a {LEGACY_FILE} from an earlier quantmoo; it is not read, because "
                                f"unpickling a file can run code. Rerun the search (checkpoints are now "
                                f"{CHECKPOINT_FILE}: arrays and JSON)")
        raise QuantmooError(f"No checkpoint to resume in '{d}' (expected {CHECKPOINT_FILE}; "
                            "a search writes one with --checkpoint DIR / checkpoint=DIR)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise QuantmooError(f"Cannot read the checkpoint '{path}': {e.strerror}") from None
    header, arrays = _unpack(data, path)
    if header.get("quantmoo_version") != __version__:
        raise QuantmooError(f"The checkpoint '{path}' was written by quantmoo {header.get('quantmoo_version')}; "
                            f"this is {__version__}, whose cost model may differ: rerun the search")
    if (d / SUMMARY_FILE).exists():      # absent: the array file alone is the source of truth
        summary = load_json(d / SUMMARY_FILE)
        diff = _differences(header["binding"], summary if isinstance(summary, dict) else {})   # array file first
        if diff:
            raise QuantmooError(f"The checkpoint '{d}' belongs to {_describe(header['binding'])}, but its "
                                f"{SUMMARY_FILE} to {_describe(summary)}: different runs ({'; '.join(diff)}). "
                                f"Resume a directory whose {CHECKPOINT_FILE} and {SUMMARY_FILE} were written together")
    return header, arrays


def load_checkpoint(directory, evaluator=None):
    """A set-up :class:`~quantmoo.search.run.SearchRun` restored from ``directory``.

    Parameters
    ----------
    directory : path
        A directory written by :func:`save_checkpoint`.
    evaluator : optional
        For a search with measured accuracy whose evaluator was an object (not a zoo name):
        the evaluator to measure with from now on.

    Raises
    ------
    QuantmooError
        No checkpoint, an old ``checkpoint.pkl``, a damaged file (checksum), another version's
        or another run's checkpoint (the message names what differs).
    """
    d = Path(directory)
    header, arrays = _read(d)
    try:
        return _restore(header, arrays, evaluator)
    except QuantmooError as e:
        if str(e).startswith("This checkpoint measures"):
            raise
        raise QuantmooError(f"The checkpoint '{d / CHECKPOINT_FILE}' is inconsistent: {e}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        # a consistent checksum but impossible content: a file made by hand, never by save_checkpoint
        raise QuantmooError(f"The checkpoint '{d / CHECKPOINT_FILE}' is inconsistent: {type(e).__name__}: "
                            f"{str(e)[:200]}") from None


def _restore(header: dict, arrays: dict, evaluator):
    from ..hardware.profile import _Parser
    from ..models.spec import ModelSpec
    from .archive import ParetoArchive
    from .problem import QuantizationProblem
    from .run import SearchRun
    from .space import SearchSpace
    b, inputs, settings = header["binding"], header["problem"], header["settings"]
    hw = inputs["hardware"]
    hardware = _Parser(f"{hw['path'] or b['hardware']} (in the checkpoint)").profile(hw["yaml"], hw["path"], None)
    problem = QuantizationProblem(ModelSpec.from_dict(inputs["model"], source="the checkpoint's model"), hardware,
                                  space=SearchSpace.from_dict(b["space"]), objectives=b["objectives"],
                                  constraints=b["constraints"] or None,
                                  accuracy=_accuracy(inputs["accuracy"], arrays, evaluator))
    run = SearchRun(problem.model, problem.hardware, problem=problem, **settings)
    diff = _differences(b, _binding(run))
    if diff:
        raise QuantmooError(f"its inputs do not match its header ({'; '.join(diff)})")
    run.hv_ref = np.array(arrays["run.hv_ref"], dtype=np.float64)
    if run.hv_ref.shape != (problem.n_obj,):
        raise QuantmooError("its hypervolume reference has the wrong length")
    run._build_algorithm()
    _restore_algorithm(run.algorithm, header["algorithm"], arrays)
    if run.use_archive:
        run.archive = ParetoArchive(problem.n_var, problem.n_obj)
        run.archive.X = np.array(arrays["run.archive_X"], dtype=np.int64)
        run.archive.F = np.array(arrays["run.archive_F"], dtype=np.float64)
        if run.archive.X.shape[1:] != (problem.n_var,) or run.archive.F.shape != (len(run.archive.X), problem.n_obj):
            raise QuantmooError("its archive has inconsistent shapes")
    counts, X = arrays["run.evaluated_n"], arrays["run.evaluated_X"]
    if counts.ndim != 1 or (counts < 0).any() or X.ndim != 2 or X.shape != (int(counts.sum()), problem.n_var):
        raise QuantmooError("its log of evaluated genomes has inconsistent shapes")
    run.evaluated = np.split(X, np.cumsum(counts)[:-1]) if len(counts) else []
    r = header["run"]
    run.history = [dict(h) for h in r["history"]]
    run.exec_time = float(r["exec_time"])
    run.checkpoint_every = int(r["checkpoint_every"])
    return run
