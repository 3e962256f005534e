"""SearchResult: the Pareto front, its history and baselines, and the result-file contract.

``save(dir)`` writes (atomically, DESIGN.md section 7):

* ``results.json``: versions, seed, model, hardware, space, algorithm, objectives,
  accuracy_kind, constraints, baselines, front, history, exec_time_s, provenance;
* ``front.yaml``: the front's configs;
* figures when ``plot=True``.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..config import QuantConfig
from ..errors import QuantmooError, brief

RESULTS_FORMAT = "quantmoo-results/1"
#: Where ``accuracy_loss`` comes from (DESIGN.md section 6; ``quantmoo.accuracy.tables.KINDS``).
ACCURACY_KINDS = ("prior", "proxy", "measured")


@dataclass
class Solution:
    """One front point: its config, objective values and (after validation) measured values."""

    config: QuantConfig
    objectives: dict
    compression_ratio: float
    avg_weight_bits: float
    measured: Optional[dict] = None
    x: Optional[np.ndarray] = None
    feasible: bool = True

    def to_dict(self) -> dict:
        return {
            "objectives": {k: float(v) for k, v in self.objectives.items()},
            "measured": self.measured,
            "compression_ratio": float(self.compression_ratio),
            "avg_weight_bits": float(self.avg_weight_bits),
            "feasible": bool(self.feasible),
            "config": self.config.to_dict(),
        }


@dataclass
class SearchResult:
    """What :func:`quantmoo.search` returns.

    Attributes
    ----------
    front : list of Solution
        Non-dominated feasible solutions, sorted by ``size_mb`` (or the first objective).
    objectives : tuple of str
        Searched objectives, in the column order of ``F``.
    F, X : ndarray
        Objective values and genomes of the front.
    history : list of dict
        Per generation: ``n_gen``, ``n_eval``, ``hypervolume``, ``n_front``.
    baselines : list of dict
        ``{name, objectives, config}`` evaluated with the same model.
    """

    front: list
    objectives: tuple
    history: list
    baselines: list
    meta: dict
    accuracy_kind: str
    feasible: bool = True
    message: str = ""
    all_values: dict = field(default_factory=dict)
    nondominated: Optional[tuple] = None

    @property
    def F(self) -> np.ndarray:
        return np.array([[s.objectives[o] for o in self.objectives] for s in self.front]).reshape(-1, len(self.objectives))

    @property
    def X(self) -> np.ndarray:
        return np.array([s.x for s in self.front]) if self.front and self.front[0].x is not None else None

    def __len__(self) -> int:
        return len(self.front)

    # -- decision making ------------------------------------------------------------------------
    def _normalised(self) -> np.ndarray:
        F = self.F
        lo, hi = F.min(axis=0), F.max(axis=0)
        return (F - lo) / np.where(hi > lo, hi - lo, 1.0)

    def best(self, weights=None, feasible_only: bool = True) -> Solution:
        """The front point that best matches ``weights`` (achievement scalarising function).

        Parameters
        ----------
        weights : dict or sequence, optional
            Importance per objective (``{"accuracy_loss": 0.7, "latency_ms": 0.3}``; missing
            objectives get 0, i.e. only break ties). Equal weights by default.
            The point minimising the augmented achievement scalarising function
            ``max_i w_i nF_i + 1e-4 sum_i nF_i`` over the front normalised to [0, 1] is returned
            (pymoo's ``ASF().do(nF, 1 / w)``).
        feasible_only : bool
            When no configuration met the constraints (``feasible`` is False) the "front" is
            only the closest infeasible point, so by default this raises a QuantmooError saying
            so; ``False`` returns that point anyway.
        """
        self._check_pickable(feasible_only)
        w = self._weights(weights)
        nF = self._normalised()
        asf = (nF * w).max(axis=1) + 1e-4 * nF.sum(axis=1)
        return self.front[int(np.argmin(asf))]

    def _weights(self, weights) -> np.ndarray:
        return normalise_weights(self.objectives, weights)

    def knee_index(self) -> int:
        """Index of the knee: the point farthest below the hyperplane through the normalised extremes."""
        if not self.front:
            raise QuantmooError("The result has an empty front")
        nF = self._normalised()
        n, m = nF.shape
        if n <= 2:
            return int(np.argmin(nF.sum(axis=1)))
        extremes = nF[np.argmax(nF, axis=0)] if m > 1 else nF[[0]]
        # hyperplane a.f = 1 through the extreme points; degenerate -> equal weights
        try:
            a = np.linalg.solve(extremes, np.ones(m))
            if not np.all(np.isfinite(a)) or (a <= 0).any():
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            a = np.ones(m)
        dist = (1.0 - nF @ a) / np.linalg.norm(a)
        return int(np.argmax(dist))

    def knee(self, feasible_only: bool = True) -> Solution:
        """The knee point of the front (see :meth:`knee_index`).

        Raises a QuantmooError when nothing met the constraints, unless ``feasible_only=False``
        (see :meth:`best`).
        """
        self._check_pickable(feasible_only)
        return self.front[self.knee_index()]

    def _check_pickable(self, feasible_only: bool) -> None:
        if not self.front:
            raise QuantmooError("The result has an empty front")
        if feasible_only and not self.feasible:
            why = self.message or "No configuration met the constraints."
            raise QuantmooError(f"{why} There is no feasible point to pick; pass feasible_only=False for the "
                                "closest infeasible one")

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dict(self.meta)
        d.update({
            "format": RESULTS_FORMAT,
            "objectives": list(self.objectives),
            "accuracy_kind": self.accuracy_kind,
            "feasible": self.feasible,
            "message": self.message,
            "baselines": self.baselines,
            "front": [s.to_dict() for s in self.front],
            "knee_index": self.knee_index() if self.front else None,
            "history": self.history,
        })
        return d

    def save(self, directory, plot: bool = False, extra_files: Optional[dict] = None, after_write=None) -> Path:
        """Write ``results.json`` and ``front.yaml`` (and figures) atomically into ``directory``.

        ``extra_files`` maps file names to bytes written into the same directory (e.g. the proxy
        accuracy table), and ``after_write(tmpdir)`` may add more (figures), so the directory
        appears complete or not at all.
        """
        extra_files = dict(extra_files or {})
        from ..io import atomic_write_dir
        import yaml

        d = self.to_dict()
        front_yaml = yaml.safe_dump({"format": "quantmoo-front/1", "configs": [s.config.to_dict() for s in self.front]},
                                    sort_keys=False)

        def write(tmp: Path):
            (tmp / "results.json").write_text(json.dumps(_jsonable(d), indent=1))
            (tmp / "front.yaml").write_text(front_yaml)
            if self.nondominated is not None:
                X, F = self.nondominated
                np.savez_compressed(tmp / "nondominated.npz", X=X, F=F, objectives=np.array(self.objectives))
            for name, blob in extra_files.items():
                (tmp / name).write_bytes(blob)
            if plot and self.front:
                import matplotlib.pyplot as plt
                from .plots import plot_front
                plt.close(plot_front(self, save=tmp / "pareto"))
            if after_write is not None:
                after_write(tmp)

        return atomic_write_dir(Path(directory), write)

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "results.json") -> "SearchResult":
        """Rebuild a result from its ``results.json`` content, validating every field it reads."""
        from ..search.problem import OBJECTIVES
        if not isinstance(d, Mapping):
            raise QuantmooError(f"{source}: must be a JSON object; got {type(d).__name__}")
        for k in ("format", "objectives", "front", "accuracy_kind"):
            if k not in d:
                raise QuantmooError(f"{source}: missing field '{k}'")
        if d["format"] != RESULTS_FORMAT:
            raise QuantmooError(f"{source}: field 'format' must be {RESULTS_FORMAT!r}; got {brief(d['format'])}")
        objectives = d["objectives"]
        if not isinstance(objectives, list) or not objectives or not all(
                isinstance(o, str) and o in OBJECTIVES for o in objectives) or len(set(objectives)) != len(objectives):
            raise QuantmooError(f"{source}: field 'objectives' must be a non-empty list of distinct names from "
                                f"{{{', '.join(OBJECTIVES)}}}; got {brief(objectives)}")
        kind = d["accuracy_kind"]
        if kind not in ACCURACY_KINDS:
            raise QuantmooError(f"{source}: field 'accuracy_kind' must be one of {{{', '.join(ACCURACY_KINDS)}}}; "
                                f"got {brief(kind)}")
        if not isinstance(d["front"], list):
            raise QuantmooError(f"{source}: field 'front' must be a list; got {type(d['front']).__name__}")
        front = []
        for i, p in enumerate(d["front"]):
            where = f"front[{i}]"
            if not isinstance(p, Mapping) or "config" not in p or "objectives" not in p:
                raise QuantmooError(f"{source}: field '{where}' must be a mapping holding 'config' and 'objectives'")
            cfg = QuantConfig.from_dict(p["config"], source=f"{source}: {where}.config")
            objs = p["objectives"]
            if not isinstance(objs, Mapping) or any(o not in objs for o in objectives):
                raise QuantmooError(f"{source}: field '{where}.objectives' must hold {objectives}")
            # searched objectives must be finite numbers (they are ranked); the other ones may be null
            objs = {str(k): _number(v, f"{where}.objectives.{k}", source, finite=k in objectives,
                                    allow_null=k not in objectives) for k, v in objs.items()}
            cr = _number(p.get("compression_ratio"), f"{where}.compression_ratio", source)
            ab = _number(p.get("avg_weight_bits"), f"{where}.avg_weight_bits", source)
            measured = p.get("measured")
            if measured is not None:
                if not isinstance(measured, Mapping):
                    raise QuantmooError(f"{source}: field '{where}.measured' must be a mapping or null; "
                                        f"got {brief(measured)}")
                measured = dict(measured)
            feasible = p.get("feasible", True)
            if not isinstance(feasible, bool):
                raise QuantmooError(f"{source}: field '{where}.feasible' must be true or false; got {brief(feasible)}")
            front.append(Solution(config=cfg, objectives=objs, compression_ratio=cr, avg_weight_bits=ab,
                                  measured=measured, feasible=feasible))
        history = _records(d.get("history"), "history", source, ("n_eval", "hypervolume"))
        baselines = _records(d.get("baselines"), "baselines", source, ("name", "objectives"))
        for j, b in enumerate(baselines):
            where = f"baselines[{j}]"
            if not isinstance(b["name"], str):
                raise QuantmooError(f"{source}: field '{where}.name' must be a string; got {brief(b['name'])}")
            if not isinstance(b["objectives"], Mapping):
                raise QuantmooError(f"{source}: field '{where}.objectives' must be a mapping; "
                                    f"got {brief(b['objectives'])}")
            for k, v in b["objectives"].items():
                _number(v, f"{where}.objectives.{k}", source)
            if b.get("config") is not None:
                QuantConfig.from_dict(b["config"], source=f"{source}: {where}.config")
        feasible = d.get("feasible", True)
        if not isinstance(feasible, bool):
            raise QuantmooError(f"{source}: field 'feasible' must be true or false; got {brief(feasible)}")
        message = d.get("message", "")
        if message is not None and not isinstance(message, str):
            raise QuantmooError(f"{source}: field 'message' must be a string; got {brief(message)}")
        meta = {k: v for k, v in d.items() if k not in {
            "format", "objectives", "accuracy_kind", "feasible", "message", "baselines", "front", "history",
            "knee_index"}}
        space = meta.get("space")
        if space is not None and not isinstance(space, Mapping):
            raise QuantmooError(f"{source}: field 'space' must be a mapping of SearchSpace fields; got {brief(space)}")
        return cls(front=front, objectives=tuple(objectives), history=history, baselines=baselines, meta=meta,
                   accuracy_kind=kind, feasible=feasible, message=message or "")

    def summary(self, max_rows: int = 30) -> str:
        """A compact table of the front sorted by size, knee marked with '*'.

        When nothing met the constraints, a warning opens and closes the table and no knee is
        marked.
        """
        if not self.front:
            return "(empty front)"
        k = self.knee_index() if self.feasible else -1      # no knee among infeasible points
        cols = list(self.objectives)
        order = sorted(range(len(self.front)), key=lambda i: self.front[i].objectives.get("size_mb", 0.0))
        head = ["#", *cols, "x_fp32", "avg_wbits"]
        rows = []
        for i in order[:max_rows]:
            s = self.front[i]
            rows.append([f"{i}{'*' if i == k else ''}", *[f"{s.objectives[c]:.4g}" for c in cols],
                         f"{s.compression_ratio:.2f}", f"{s.avg_weight_bits:.2f}"])
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        if len(order) > max_rows:
            lines.append(f"... {len(order) - max_rows} more")
        if not self.feasible:
            # said first and last, so it cannot be missed above or below a long table
            warn = (f"WARNING: {self.message or 'No configuration met the constraints.'} The rows below are "
                    "infeasible, not a front, and have no knee.")
            return "\n".join([warn, *lines, f"accuracy_loss kind: {self.accuracy_kind}; INFEASIBLE (see above)"])
        lines.append(f"* knee point; accuracy_loss kind: {self.accuracy_kind}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SearchResult(n_front={len(self.front)}, objectives={self.objectives}, "
                f"accuracy_kind={self.accuracy_kind!r}, feasible={self.feasible})")


def _number(v, field: str, source: str, finite: bool = False, allow_null: bool = True) -> float:
    """A numeric field of results.json as float (null -> NaN where allowed)."""
    if v is None and allow_null:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise QuantmooError(f"{source}: field '{field}' must be a number; got {brief(v)}")
    try:
        x = float(v)
    except OverflowError:  # an integer literal beyond the float range
        x = float("inf")
    if finite and not np.isfinite(x):
        raise QuantmooError(f"{source}: field '{field}' must be a finite number; got {brief(v)}")
    return x


def _records(value, field: str, source: str, required: Sequence[str]) -> list:
    """A list of mappings that each hold ``required`` (null or absent -> empty list)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise QuantmooError(f"{source}: field '{field}' must be a list; got {brief(value)}")
    for i, r in enumerate(value):
        if not isinstance(r, Mapping):
            raise QuantmooError(f"{source}: field '{field}[{i}]' must be a mapping; got {brief(r)}")
        for k in required:
            if k not in r:
                raise QuantmooError(f"{source}: missing field '{field}[{i}].{k}'")
        if field == "history":
            for k in ("n_gen", "n_eval", "hypervolume", "n_front"):
                if k in r:
                    _number(r[k], f"{field}[{i}].{k}", source)
    return [dict(r) for r in value]


def normalise_weights(objectives, weights) -> np.ndarray:
    """Objective weights (dict by name, or a sequence) -> array summing to 1; equal if None."""
    m = len(objectives)
    if weights is None:
        return np.full(m, 1.0 / m)
    if isinstance(weights, Mapping):
        for k in weights:
            if k not in objectives:
                raise QuantmooError(f"The 'weights' keys must be in {{{', '.join(objectives)}}}; got {k!r}")
        w = np.array([float(weights.get(o, 0.0)) for o in objectives])
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (m,):
            raise QuantmooError(f"The 'weights' must have {m} values (one per objective); got {w.shape}")
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise QuantmooError(f"The 'weights' must be finite, >= 0 and not all zero; got {w.tolist()}")
    return w / w.sum()


def load_result(directory) -> SearchResult:
    """Restore a :class:`SearchResult` saved by :meth:`SearchResult.save`."""
    from ..io import load_json
    path = Path(directory)
    if path.is_dir():
        path = path / "results.json"
    return SearchResult.from_dict(load_json(path), source=str(path))


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        v = float(o)
        return v if np.isfinite(v) else None
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def environment_info() -> dict:
    import pymoo
    from .._version import __version__
    return {"quantmoo_version": __version__, "pymoo_version": pymoo.__version__,
            "numpy_version": np.__version__, "python_version": platform.python_version()}
