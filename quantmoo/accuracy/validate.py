"""Measured validation of a search result: re-evaluate its front and baselines for real.

:func:`validate` takes a :class:`~quantmoo.results.result.SearchResult` (or a run directory
written by ``SearchResult.save``), evaluates the config of every front point and every baseline
with the model's real evaluator (through :func:`~quantmoo.accuracy.parallel.evaluate_many`: local
processes, a Dask cluster, and the on-disk :class:`~quantmoo.accuracy.cache.EvalCache`), and
records:

* ``Solution.measured`` of every front point and ``measured`` of every baseline dict: the
  evaluator's details plus ``accuracy_loss`` (= the evaluator's ``loss``, the measured loss in
  the same unit as the searched ``accuracy_loss``), ``kind: "measured"`` and the evaluator name;
  ``{"error": ...}`` for a config whose evaluation failed;
* ``result.meta["validation"]``: ``kendall_tau`` and ``p_value`` (``scipy.stats.kendalltau``,
  tau-b) between the front's searched ``accuracy_loss`` (the proxy or prior) and the measured
  one, ``n`` (front points measured), ``n_front``, ``n_baselines``, ``cache_hits``,
  ``cache_misses``, ``failed`` (``[{where, index, name, error}]``), ``evaluator``,
  ``accuracy_kind`` (what was validated) and ``seconds``.

Given a run directory, its ``results.json`` (and ``front.yaml``) are rewritten atomically through
``SearchResult.save``; every other file of the directory (figures, ``accuracy_table.npz``, ...)
is carried over into the new directory.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

from ..errors import QuantmooError

__all__ = ["ValidationReport", "validate"]


@dataclass
class ValidationReport:
    """What :func:`validate` found (also stored in ``result.meta["validation"]``).

    ``kendall_tau``/``p_value`` are None when fewer than two front points were measured or
    either series is constant.
    """

    kendall_tau: Optional[float]
    p_value: Optional[float]
    n: int
    n_front: int
    n_baselines: int
    cache_hits: int
    cache_misses: int
    failed: List[dict] = field(default_factory=list)
    evaluator: str = ""
    accuracy_kind: str = ""
    seconds: float = 0.0
    path: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)


def _load(result_or_run_dir):
    from ..results.result import SearchResult, load_result
    if isinstance(result_or_run_dir, SearchResult):
        return result_or_run_dir, None
    p = Path(result_or_run_dir)
    run_dir = p if p.is_dir() else (p.parent if p.name == "results.json" else None)
    if run_dir is None:
        raise QuantmooError(f"The run to validate must be a SearchResult or a run directory with results.json; "
                            f"got {str(result_or_run_dir)!r}")
    return load_result(run_dir), run_dir


def _model_for(result, model):
    from ..models.spec import ModelSpec
    if isinstance(model, ModelSpec):
        return model
    name = model
    if name is None:
        name = (result.meta.get("model") or {}).get("name")
        if not name:
            raise QuantmooError("The result does not name its model (meta['model']['name']); pass model=")
    if not isinstance(name, str):
        raise QuantmooError(f"The 'model' must be a ModelSpec or a zoo name; got {type(name).__name__}")
    from .. import zoo
    from .parallel import _evaluator_for, _in_zoo
    if not _in_zoo(name):
        from .evaluator import register_real_models
        register_real_models()
    ev = _evaluator_for(name)  # the per-process evaluator, shared with evaluate_many
    spec = getattr(ev, "spec", None)
    return spec if spec is not None else zoo.load(name)


def _measured(details: dict, evaluator_name: str) -> dict:
    if "error" in details:
        return {"error": details["error"], "kind": "measured", "evaluator": evaluator_name}
    out = dict(details)
    out["accuracy_loss"] = float(details["loss"])
    out["kind"] = "measured"
    out["evaluator"] = evaluator_name
    return out


def _tau(proxy, measured):
    import numpy as np
    from scipy.stats import kendalltau
    x, y = np.asarray(proxy, dtype=float), np.asarray(measured, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    r = kendalltau(x, y)
    tau, p = float(r.statistic if hasattr(r, "statistic") else r[0]), float(r.pvalue)
    return (tau if math.isfinite(tau) else None), (p if math.isfinite(p) else None)


def validate(result_or_run_dir, model=None, workers: Optional[int] = None, dask_address=None, cache=True,
             progress: bool = False, timeout: Optional[float] = None) -> ValidationReport:
    """Re-evaluate a result's front and baselines with the real evaluator (module docstring).

    Parameters
    ----------
    result_or_run_dir : SearchResult or path
        A result (updated in place) or a run directory (its ``results.json`` is rewritten).
    model : ModelSpec or str, optional
        Default: the zoo model named in ``result.meta["model"]["name"]``.
    workers, dask_address, timeout :
        See :func:`~quantmoo.accuracy.parallel.evaluate_many`.
    cache : bool, path or EvalCache
        Default True: the default on-disk cache (``$QUANTMOO_CACHE`` or
        ``~/.cache/quantmoo/evals``).
    progress : bool
        Progress bar.

    Returns
    -------
    ValidationReport
    """
    from ..config import QuantConfig
    from .parallel import evaluate_many, resolve_cache

    t0 = time.perf_counter()
    result, run_dir = _load(result_or_run_dir)
    spec = _model_for(result, model)
    ev = getattr(spec, "evaluator", None)
    if ev is None:
        raise QuantmooError(f"Model '{spec.name}' has no real evaluator: only models with real weights "
                            "(e.g. 'digits', 'minilm-l6') can be validated")
    ev_name = str(getattr(ev, "name", type(ev).__name__))
    names = set(spec.layer_names)
    for i, s in enumerate(result.front):
        if set(s.config.layers) != names:
            raise QuantmooError(f"The front configs do not belong to model '{spec.name}' (front[{i}] names other "
                                "layers); pass the right model=")

    configs, where = [], []
    for i, s in enumerate(result.front):
        configs.append(s.config)
        where.append(("front", i, None))
    for j, b in enumerate(result.baselines):
        cfg = b.get("config") if isinstance(b, dict) else None
        if cfg is None:
            continue
        try:
            configs.append(cfg if isinstance(cfg, QuantConfig) else QuantConfig.from_dict(cfg))
        except QuantmooError as e:
            b["measured"] = {"error": f"invalid config: {e}", "kind": "measured", "evaluator": ev_name}
            continue
        where.append(("baseline", j, b.get("name")))

    ec = resolve_cache(cache)
    h0, m0 = (ec.hits, ec.misses) if ec is not None else (0, 0)
    # in-process when the caller gave a ModelSpec that is not in the zoo (workers cannot rebuild it)
    source = spec if (model is not None and not isinstance(model, str)) else spec.name
    if isinstance(source, str):
        from .parallel import _in_zoo
        if not _in_zoo(source):
            source = spec
    details = evaluate_many(source, configs, workers=workers, dask_address=dask_address, cache=ec,
                            timeout=timeout, progress=progress)

    failed = []
    proxy, measured = [], []
    n_base = 0
    for (kind, i, name), d in zip(where, details):
        m = _measured(d, ev_name)
        if kind == "front":
            s = result.front[i]
            s.measured = m
            if "error" in m:
                failed.append({"where": "front", "index": i, "name": None, "error": m["error"]})
            elif "accuracy_loss" in s.objectives:
                proxy.append(float(s.objectives["accuracy_loss"]))
                measured.append(m["accuracy_loss"])
        else:
            result.baselines[i]["measured"] = m
            n_base += 1
            if "error" in m:
                failed.append({"where": "baseline", "index": i, "name": name, "error": m["error"]})
    tau, p = _tau(proxy, measured)
    report = ValidationReport(
        kendall_tau=tau, p_value=p, n=len(measured), n_front=len(result.front), n_baselines=n_base,
        cache_hits=(ec.hits - h0) if ec is not None else 0, cache_misses=(ec.misses - m0) if ec is not None else 0,
        failed=failed, evaluator=ev_name, accuracy_kind=result.accuracy_kind,
        seconds=round(time.perf_counter() - t0, 3), path=str(run_dir) if run_dir is not None else None)
    info = report.to_dict()
    info.pop("path")
    result.meta["validation"] = info
    if run_dir is not None:
        _rewrite(result, run_dir)
    return report


def _rewrite(result, run_dir: Path) -> None:
    """Save ``result`` over ``run_dir`` atomically, carrying over every other file of the directory."""
    old = Path(run_dir)

    def keep_extras(tmp: Path):
        for item in old.iterdir():
            dest = tmp / item.name
            if dest.exists() or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, dest)
            else:
                shutil.copy2(item, dest)

    try:
        result.save(old, after_write=keep_extras)
    except TypeError:  # an older save() without after_write: write, then restore the extras
        import tempfile
        with tempfile.TemporaryDirectory() as keep:
            keep = Path(keep)
            for item in old.iterdir():
                if item.name not in ("results.json", "front.yaml") and not item.name.startswith("."):
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, keep / item.name)
            result.save(old)
            for item in keep.iterdir():
                if not (old / item.name).exists():
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, old / item.name)
