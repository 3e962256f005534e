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
  ``accuracy_kind`` (what was validated), ``seconds``, ``measured_front`` (indices of the front
  points that no other front point dominates once the measured loss replaces the searched one)
  and ``refine`` (below; None without refinement).

Measured refinement (``refine=k``)
----------------------------------
A search reports a thinned front (``max_front``): an epsilon-net of the full non-dominated set
(``result.nondominated``, or ``nondominated.npz`` of a run directory), so it can have no point
just below a baseline's size even when the search found good ones there. With ``refine=k``,
for every baseline (uniform, greedy, ILP, rule presets) the ``k`` points of the full
non-dominated set with the lowest searched ``accuracy_loss`` among those no larger than the
baseline on every objective of ``refine_on`` (default ``size_mb``) are measured too and added
to ``result.front`` (re-sorted by size; points already on the front are not added twice). Their
searched (proxy) ``accuracy_loss`` stays in ``objectives`` next to the measured one in
``measured``, where ``selected_for`` lists the baselines that selected them. ``kendall_tau`` is
computed over the whole reported front, refined points included; ``refine["kendall_tau_thinned"]``
is the same statistic over the front as it was passed in (the thinned front, on a first
validation). ``refine`` also records ``k``, ``on``,
``n_added`` and ``baselines`` (per baseline, how many non-dominated points were eligible).
This is the measured-refinement step of accuracy-predictor searches (AMQ-style): the proxy
picks candidates, only measurements decide. Nothing is dropped: ``measured_front`` marks the
measured-non-dominated subset.

Given a run directory, its ``results.json`` (and ``front.yaml``) are rewritten atomically through
``SearchResult.save``; every other file of the directory (figures, ``accuracy_table.npz``, ...)
is carried over into the new directory.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..errors import QuantmooError

__all__ = ["ValidationReport", "validate", "refine_selection", "measured_nondominated"]


@dataclass
class ValidationReport:
    """What :func:`validate` found (also stored in ``result.meta["validation"]``).

    ``kendall_tau``/``p_value`` are None when fewer than two front points were measured or
    either series is constant. ``measured_front`` and ``refine`` are described in the module
    docstring.
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
    measured_front: List[int] = field(default_factory=list)
    refine: Optional[dict] = None
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
        recorded = result.meta.get("model") or {}
        if recorded.get("source"):
            return _model_from_files(recorded)
        name = recorded.get("name")
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


def _model_from_files(recorded: dict):
    """The model a run recorded as files (``results.json``: ``model.source``, ``model.data``)."""
    from pathlib import Path
    src = str(recorded["source"])
    where = "results.json: model"
    if not Path(src).is_file():
        raise QuantmooError(f"The run's model file {src} ({where}.source) does not exist; pass the model with "
                            "--model FILE (and its inputs with --data FILE.npz)")
    from ..models.gguf_import import GGUF_OVERRIDES
    from ..models.onnx_import import ONNX_OVERRIDES
    onnx_file = src.lower().endswith(".onnx")
    keys = set(ONNX_OVERRIDES if onnx_file else GGUF_OVERRIDES) - {"name"}
    overrides = {k: v for k, v in (recorded.get("workload") or {}).items() if k in keys}   # the searched workload
    if not onnx_file:
        from .. import zoo
        return zoo.load(src, **overrides)
    for key in ("data", "calibration_data"):
        f = recorded.get(key)
        if f and not Path(str(f)).is_file():
            raise QuantmooError(f"The run's input data file {f} ({where}.{key}) does not exist; pass the model's "
                                f"inputs with --data FILE.npz (and the model with --model {src})")
    if not recorded.get("data"):
        from ..export.onnx_qdq import qdq_plan
        from ..onnx import input_requirements
        raise QuantmooError(f"The run's model {src} was not measured on an input file; pass --data FILE.npz with "
                            f"arrays {input_requirements(qdq_plan(src, **overrides).model)}")
    from .onnx_eval import onnx_evaluator
    return onnx_evaluator(src, str(recorded["data"]), calibration_data=recorded.get("calibration_data"),
                          **overrides)


def _measured(details: dict, evaluator_name: str) -> dict:
    if "error" in details:
        return {"error": details["error"], "kind": "measured", "evaluator": evaluator_name}
    out = dict(details)
    out["accuracy_loss"] = float(details["loss"])
    out["kind"] = "measured"
    out["evaluator"] = evaluator_name
    return out


def _tau(proxy, measured):
    from scipy.stats import kendalltau
    x, y = np.asarray(proxy, dtype=float), np.asarray(measured, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    r = kendalltau(x, y)
    tau, p = float(r.statistic if hasattr(r, "statistic") else r[0]), float(r.pvalue)
    return (tau if math.isfinite(tau) else None), (p if math.isfinite(p) else None)


_REL = 1e-12   # "equal or smaller": float noise of a recomputed cost must not exclude a tie


def refine_selection(F, objectives, baselines, k: int, on=("size_mb",)):
    """Which non-dominated points :func:`validate` measures for ``refine=k``.

    Parameters
    ----------
    F : ndarray (n, n_obj)
        Searched objective values of the full non-dominated set (``result.nondominated[1]``).
    objectives : sequence of str
        Column names of ``F``; must include ``accuracy_loss`` and every name in ``on``.
    baselines : list of dict
        ``result.baselines`` (``{name, objectives, ...}``); baselines lacking a value of ``on``
        are skipped.
    k : int
        Points per baseline.
    on : sequence of str
        Objectives on which a point must be no larger than the baseline.

    Returns
    -------
    selected : dict
        ``row of F -> [baseline names]``: for every baseline, the ``k`` rows with the lowest
        ``accuracy_loss`` (ties: smaller values of ``on``, then row order) among the rows no
        larger than the baseline on every objective of ``on``.
    eligible : dict
        ``baseline name -> number of eligible rows``.
    """
    F = np.asarray(F, dtype=np.float64).reshape(-1, len(objectives))
    objectives = list(objectives)
    on = [on] if isinstance(on, str) else list(on)
    for o in ["accuracy_loss", *on]:
        if o not in objectives:
            raise QuantmooError(f"Refinement needs the searched objective '{o}'; the result searched {objectives}")
    acc = F[:, objectives.index("accuracy_loss")]
    cols = F[:, [objectives.index(o) for o in on]]
    # one ranking for every baseline: by loss, then by the refine objectives, then row order
    order = np.lexsort((np.arange(len(F)), *cols.T[::-1], acc))
    selected, eligible = {}, {}
    for b in baselines:
        if not isinstance(b, dict):
            continue
        objs = b.get("objectives") or {}
        try:
            lim = np.array([float(objs[o]) for o in on])
        except (KeyError, TypeError, ValueError):
            continue
        ok = (cols <= lim * (1 + _REL) + _REL).all(axis=1)[order]
        name = str(b.get("name"))
        eligible[name] = int(ok.sum())
        for r in order[ok][:k].tolist():
            selected.setdefault(int(r), []).append(name)
    return selected, eligible


def measured_nondominated(front, objectives) -> List[int]:
    """Indices of ``front`` points not dominated by another one on measured values.

    The measured ``accuracy_loss`` replaces the searched one; the other searched objectives are
    kept. Points without a measured loss (failed evaluations) are left out.
    """
    from ..search.archive import dominates
    idx = [i for i, s in enumerate(front) if s.measured and "accuracy_loss" in s.measured]
    if not idx:
        return []
    F = np.array([[front[i].measured["accuracy_loss"] if o == "accuracy_loss" else front[i].objectives[o]
                   for o in objectives] for i in idx], dtype=np.float64)
    keep = ~dominates(F, F).any(axis=0)
    return [i for i, kp in zip(idx, keep) if kp]


def _nondominated_set(result, run_dir):
    """``(X, F)`` of the full non-dominated set: in memory, or a run directory's nondominated.npz."""
    nd = getattr(result, "nondominated", None)
    if nd is None and run_dir is not None and (Path(run_dir) / "nondominated.npz").exists():
        try:
            with np.load(Path(run_dir) / "nondominated.npz", allow_pickle=False) as z:
                objs = tuple(str(o) for o in z["objectives"])
                nd = (np.asarray(z["X"]), np.asarray(z["F"]))
        except (OSError, KeyError, ValueError) as e:
            raise QuantmooError(f"Cannot read {Path(run_dir) / 'nondominated.npz'}: {e}") from None
        if objs != tuple(result.objectives):
            raise QuantmooError(f"{Path(run_dir) / 'nondominated.npz'} holds objectives {list(objs)}; the result "
                                f"searched {list(result.objectives)}")
    return nd


def _solutions(result, spec, X, F) -> list:
    """Solutions for non-dominated genomes: searched values from ``F``, costs recomputed when possible."""
    from ..results.result import Solution
    from ..search.space import SearchSpace
    space = SearchSpace.from_dict(result.meta["space"]) if result.meta.get("space") else SearchSpace()
    enc = space.bind(spec)
    hw = (result.meta.get("hardware") or {}).get("name")
    X = np.asarray(X, dtype=np.int64)
    vals = {o: F[:, j] for j, o in enumerate(result.objectives)}
    try:  # every cost output (energy, memory, ...), as the search's own front points have them
        from ..search.problem import QuantizationProblem
        from .tables import prior_table
        # costs only: the searched accuracy_loss comes from F (a proxy table here could take minutes)
        full = QuantizationProblem(spec, hw, space, objectives=result.objectives,
                                   accuracy=prior_table(spec, enc)).evaluate_all(X)
        if all(np.allclose(full[o], vals[o], rtol=1e-9, atol=1e-12) for o in result.objectives
               if o != "accuracy_loss"):
            vals = {**{o: v for o, v in full.items() if o != "accuracy_loss"}, **vals}
    except (QuantmooError, KeyError, TypeError, ValueError, OSError):
        pass  # e.g. a custom hardware file that is gone: the searched objectives are enough
    from ..search.front import average_weight_bits
    avg_bits = average_weight_bits(enc, spec, enc.choices(X))
    out = []
    for i, x in enumerate(X):   # only the few selected points (k per baseline)
        objs = {o: float(v[i]) for o, v in vals.items()}
        size = objs.get("size_mb", float("nan"))
        out.append(Solution(config=enc.decode(x, hardware=hw), objectives=objs,
                            compression_ratio=spec.fp32_mb / size if size > 0 else float("nan"),
                            avg_weight_bits=float(avg_bits[i]), x=x.copy()))
    return out


def _add_refined(result, run_dir, spec, k: int, on) -> Tuple[dict, dict]:
    """Add the refinement points to ``result.front``; ``(config hash -> baseline names, info)``."""
    nd = _nondominated_set(result, run_dir)
    info = {"k": k, "on": list(on), "n_added": 0, "baselines": {}, "kendall_tau_thinned": None,
            "source": "front (not thinned)" if nd is None else "nondominated"}
    if nd is None:   # the front already is the whole non-dominated set: nothing to add
        xs = [s.x for s in result.front]
        if not xs or any(x is None for x in xs):
            return {}, info
        nd = (np.array(xs), result.F)   # only to mark which front points the baselines select
    X, F = nd
    selected, eligible = refine_selection(F, result.objectives, result.baselines, k, on)
    info["baselines"] = eligible
    rows = sorted(selected)
    chosen = {}
    have = {s.config.config_hash() for s in result.front}
    for r, sol in zip(rows, _solutions(result, spec, X[rows], F[rows]) if rows else []):
        h = sol.config.config_hash()
        names = chosen.setdefault(h, [])
        names += [n for n in selected[r] if n not in names]
        if h not in have:
            have.add(h)
            result.front.append(sol)
            info["n_added"] += 1
    key = "size_mb" if "size_mb" in result.objectives else result.objectives[0]
    result.front.sort(key=lambda s: s.objectives[key])   # stable: the front's own order among ties
    return chosen, info


def validate(result_or_run_dir, model=None, workers: Optional[int] = None, dask_address=None, cache=True,
             progress: bool = False, timeout: Optional[float] = None, refine: int = 0,
             refine_on=("size_mb",)) -> ValidationReport:
    """Re-evaluate a result's front and baselines with the real evaluator (module docstring).

    Parameters
    ----------
    result_or_run_dir : SearchResult or path
        A result (updated in place) or a run directory (its ``results.json`` is rewritten).
    model : ModelSpec or str, optional
        Default: the files the search recorded (``result.meta["model"]``: ``source``, the ``.onnx``
        or ``.gguf`` file, and ``data``/``calibration_data``, the ``.npz`` inputs of its ONNX
        evaluator), else the zoo model named in ``result.meta["model"]["name"]``.
    workers, dask_address, timeout :
        See :func:`~quantmoo.accuracy.parallel.evaluate_many`.
    cache : bool, path or EvalCache
        Default True: the default on-disk cache (``$QUANTMOO_CACHE`` or
        ``~/.cache/quantmoo/evals``).
    progress : bool
        Progress bar.
    refine : int
        Measured refinement (module docstring): for every baseline, also measure the ``refine``
        non-dominated points with the lowest searched loss among those no larger than the
        baseline on ``refine_on``, and add them to the front. 0 (default): the front as is.
    refine_on : sequence of str
        Objectives on which a refinement point must be no larger than its baseline.

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
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise QuantmooError(f"The 'refine' value must be an integer >= 0; got {refine!r}")
    refine_on = (refine_on,) if isinstance(refine_on, str) else tuple(refine_on)
    chosen, refine_info, thinned = {}, None, list(result.front)
    if refine:
        chosen, refine_info = _add_refined(result, run_dir, spec, int(refine), refine_on)

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
    source = spec if (model is not None and not isinstance(model, str)) or getattr(ev, "recipe", None) \
        else spec.name
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
            if chosen:
                names_for = chosen.get(s.config.config_hash())
                if names_for:
                    m["selected_for"] = list(names_for)
        else:
            result.baselines[i]["measured"] = m
            n_base += 1
            if "error" in m:
                failed.append({"where": "baseline", "index": i, "name": name, "error": m["error"]})
    tau, p = _tau(proxy, measured)
    if refine_info is not None:   # the same statistic over the thinned front alone, for comparison
        pairs = [(float(s.objectives["accuracy_loss"]), s.measured["accuracy_loss"]) for s in thinned
                 if s.measured and "accuracy_loss" in s.measured and "accuracy_loss" in s.objectives]
        refine_info["kendall_tau_thinned"] = _tau(*zip(*pairs))[0] if len(pairs) > 1 else None
    report = ValidationReport(
        kendall_tau=tau, p_value=p, n=len(measured), n_front=len(result.front), n_baselines=n_base,
        cache_hits=(ec.hits - h0) if ec is not None else 0, cache_misses=(ec.misses - m0) if ec is not None else 0,
        failed=failed, evaluator=ev_name, accuracy_kind=result.accuracy_kind,
        seconds=round(time.perf_counter() - t0, 3), measured_front=measured_nondominated(result.front, result.objectives),
        refine=refine_info, path=str(run_dir) if run_dir is not None else None)
    info = report.to_dict()
    info.pop("path")
    result.meta["validation"] = info
    if run_dir is not None:
        _rewrite(result, run_dir)
    return report


def _rewrite(result, run_dir: Path) -> None:
    """Save ``result`` over ``run_dir`` atomically, keeping every other file quantmoo wrote there
    (accuracy table, figures) and every file it did not write."""
    from ..results.outdir import own_files
    result.save(run_dir, overwrite=True, keep_own=sorted(own_files(run_dir)))
