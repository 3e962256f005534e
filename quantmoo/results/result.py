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

RESULTS_FORMAT = "quantmoo-results/2"
#: Formats ``load_result`` reads: /1 stored a full config dict per point; /2 stores each point's
#: per-layer choices as indices into one table of distinct layer choices (20-60x smaller on LLMs).
READ_FORMATS = ("quantmoo-results/1", RESULTS_FORMAT)
FRONT_FORMAT = "quantmoo-front/2"
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

    def to_dict(self, config: bool = True) -> dict:
        """The point as a dict; ``config=False`` leaves out the (large) config."""
        d = {
            "objectives": {k: float(v) for k, v in self.objectives.items()},
            "measured": self.measured,
            "compression_ratio": float(self.compression_ratio),
            "avg_weight_bits": float(self.avg_weight_bits),
            "feasible": bool(self.feasible),
        }
        if config:
            d["config"] = self.config.to_dict()
        return d


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
    nondominated: Optional[tuple] = None
    #: every evaluated genome: columns ``generation``, each objective, ``feasible``, and (N, n_layers)
    #: ``weight_bits`` / ``activation_bits`` (see :func:`quantmoo.search.front.evaluation_table`)
    evaluations: dict = field(default_factory=dict)
    layer_names: Optional[list] = None

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
        """The result with a full config dict per point (format /1, which ``from_dict`` reads);
        ``results.json`` holds the compact form of :meth:`to_json`."""
        d = dict(self.meta)
        d.update({
            "format": READ_FORMATS[0],
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

    def save(self, directory, plot: bool = False, extra_files: Optional[dict] = None, after_write=None,
             overwrite: bool = False, kind: str = "result", keep_own: Sequence[str] = ()) -> Path:
        """Write ``results.json`` and ``front.yaml`` (and figures) atomically into ``directory``.

        Parameters
        ----------
        directory : path
            A new or empty directory, or (with ``overwrite=True``) an earlier quantmoo result. Any
            other non-empty directory is refused (:mod:`quantmoo.results.outdir`); in a replaced
            result, files quantmoo did not write are kept.
        plot : bool
            Also write ``pareto.png``/``.pdf``.
        extra_files : dict, optional
            File names -> bytes written into the same directory (e.g. the proxy accuracy table).
        after_write : callable, optional
            ``after_write(tmpdir)`` may add more files (figures); the directory appears complete
            or not at all.
        overwrite : bool
            Replace an earlier quantmoo result in ``directory``.
        kind : str
            ``"result"`` or ``"demo"`` (a demo replaces an earlier demo without ``overwrite``).
        keep_own : sequence of str
            Files quantmoo wrote there earlier that this save keeps (``validate`` keeps the table).
        """
        extra_files = dict(extra_files or {})
        from .export_csv import evaluations_csv, front_csv
        from .outdir import replace_dir
        encoded = self._encoded()
        results_json = self.to_json(encoded)
        front_yaml = self.front_yaml(encoded)
        table = front_csv(self)
        evals = self.evaluations

        def write(tmp: Path):
            (tmp / "results.json").write_text(results_json)
            (tmp / "front.yaml").write_text(front_yaml)
            (tmp / "front.csv").write_text(table)
            if evals:
                (tmp / "evaluations.csv").write_text(evaluations_csv(evals, self.objectives))
                _savez(tmp / "evaluations.npz", weight_bits=evals["weight_bits"],
                                    activation_bits=evals["activation_bits"], generation=evals["generation"],
                                    layers=np.array(self._layer_order()))
            if self.nondominated is not None:
                X, F = self.nondominated
                _savez(tmp / "nondominated.npz", X=X, F=F, objectives=np.array(self.objectives))
            for name, blob in extra_files.items():
                (tmp / name).write_bytes(blob)
            if plot and self.front:
                import matplotlib.pyplot as plt
                from .plots import plot_front
                plt.close(plot_front(self, save=tmp / "pareto"))
            if after_write is not None:
                after_write(tmp)

        return replace_dir(Path(directory), write, overwrite=overwrite, kind=kind, keep_own=keep_own)

    def _layer_order(self) -> list:
        if self.layer_names:
            return list(self.layer_names)
        return list(self.front[0].config.layers) if self.front else []

    def _encoded(self):
        """(layer names, distinct layer-choice dicts, front choice ids, baseline choice ids)."""
        from ..config import LayerQuant
        names = self._layer_order()
        table = {}
        front = [[table.setdefault(s.config.layers[n], len(table)) for n in names] for s in self.front]
        # baselines hold configs as dicts: match them by their items, validating each distinct one once
        by_items = {tuple(lq.to_dict().items()): i for lq, i in table.items()}
        base = []
        for b in self.baselines:
            cfg = b.get("config")
            if cfg is None or set(cfg.get("layers", {})) != set(names):
                base.append(None)
                continue
            ids = []
            for n in names:
                key = tuple(cfg["layers"][n].items())
                if key not in by_items:
                    lq = LayerQuant(**cfg["layers"][n])
                    by_items[key] = by_items.get(tuple(lq.to_dict().items()), None) or \
                        table.setdefault(lq, len(table))
                ids.append(by_items[key])
            base.append(ids)
        return names, [lq.to_dict() for lq in table], front, base

    def to_json(self, _encoded=None) -> str:
        """``results.json`` text: readable metadata, one compact line per front point, baseline and
        generation, and each point's per-layer choices as indices into ``layer_choices``."""
        names, choices, front_ids, base_ids = _encoded or self._encoded()
        head = dict(self.meta)
        head.update({"format": RESULTS_FORMAT, "objectives": list(self.objectives),
                     "accuracy_kind": self.accuracy_kind, "feasible": self.feasible, "message": self.message,
                     "knee_index": self.knee_index() if self.front else None,
                     "n_evaluations": int(len(self.evaluations.get("generation", ()))),
                     "layers": names, "layer_choices": choices})
        rows = {"front": [], "baselines": [], "history": [_jsonable(h) for h in self.history]}
        for s, ids in zip(self.front, front_ids):
            p = s.to_dict(config=False)
            p["calibration"] = s.config.calibration
            if s.config.meta:
                p["config_meta"] = dict(s.config.meta)
            rows["front"].append({**_jsonable(p), "choices": ids})     # ids: plain ints already
        for b, ids in zip(self.baselines, base_ids):
            b = dict(b)
            if ids is not None:
                cfg = b.pop("config")
                b["calibration"] = cfg.get("calibration", "min_max")
            b = _jsonable(b)
            if ids is not None:
                b["choices"] = ids
            rows["baselines"].append(b)
        text = json.dumps(_jsonable(head), indent=1)[:-2]
        for key, items in rows.items():
            text += f',\n "{key}": [' + ",".join("\n  " + json.dumps(r, separators=(",", ":")) for r in items)
            text += "\n ]" if items else "]"
        return text + "\n}\n"

    def front_yaml(self, _encoded=None) -> str:
        """``front.yaml``: the front's configs, readable and compact: the layer names once, the
        distinct layer choices once, and per point its calibration and one choice index per layer
        (``quantmoo export RUN --index i`` writes any point as a full config)."""
        names, choices, front_ids, _ = _encoded or self._encoded()
        model = self.meta.get("model", {}).get("name") if isinstance(self.meta.get("model"), Mapping) else None
        hw = self.meta.get("hardware", {}).get("name") if isinstance(self.meta.get("hardware"), Mapping) else None
        lines = [f"format: {FRONT_FORMAT}", f"model: {json.dumps(model)}", f"hardware: {json.dumps(hw)}",
                 "# layers: the column order of every 'choices' list below", "layers:"]
        lines += [f"- {json.dumps(n)}" for n in names]
        lines.append("# layer_choices: the distinct per-layer choices, referred to by index")
        lines.append("layer_choices:")
        lines += [f"- {json.dumps(c)}" for c in choices]
        lines.append("configs:")
        for s, ids in zip(self.front, front_ids):
            objs = ", ".join(f"{k}: {v:.6g}" for k, v in s.objectives.items() if k in self.objectives)
            lines.append(f"- # {objs}")
            lines.append(f"  calibration: {s.config.calibration}")
            lines.append(f"  choices: {json.dumps(ids)}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _decode(d: Mapping, source: str):
        """Layer names and LayerQuant table of a /2 results.json, validated."""
        from ..config import _layer_from_mapping
        names, table = d.get("layers"), d.get("layer_choices")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
                or len(set(names)) != len(names):
            raise QuantmooError(f"{source}: field 'layers' must be a list of distinct layer names")
        if not isinstance(table, list) or not all(isinstance(c, Mapping) for c in table):
            raise QuantmooError(f"{source}: field 'layer_choices' must be a list of mappings of choices")
        lqs = []
        for j, c in enumerate(table):
            try:
                lqs.append(_layer_from_mapping(c, f"layer_choices[{j}]"))
            except QuantmooError as e:
                raise QuantmooError(f"{source}: {e}") from None
        return names, lqs

    @staticmethod
    def _config_from_ids(p: Mapping, names, lqs, model, hardware, where: str, source: str) -> QuantConfig:
        ids = p.get("choices")
        if not isinstance(ids, list) or len(ids) != len(names) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(lqs) for i in ids):
            raise QuantmooError(f"{source}: field '{where}.choices' must be a list of {len(names)} indices into "
                                f"'layer_choices' (0..{len(lqs) - 1})")
        meta = p.get("config_meta") or {}
        if not isinstance(meta, Mapping):
            raise QuantmooError(f"{source}: field '{where}.config_meta' must be a mapping")
        try:
            return QuantConfig({n: lqs[i] for n, i in zip(names, ids)}, calibration=p.get("calibration", "min_max"),
                               model=model, hardware=hardware, meta=dict(meta))
        except QuantmooError as e:
            raise QuantmooError(f"{source}: {where}: {e}") from None

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "results.json") -> "SearchResult":
        """Rebuild a result from its ``results.json`` content, validating every field it reads."""
        from ..search.problem import OBJECTIVES
        if not isinstance(d, Mapping):
            raise QuantmooError(f"{source}: must be a JSON object; got {type(d).__name__}")
        for k in ("format", "objectives", "front", "accuracy_kind"):
            if k not in d:
                raise QuantmooError(f"{source}: missing field '{k}'")
        if d["format"] not in READ_FORMATS:
            raise QuantmooError(f"{source}: field 'format' must be one of {{{', '.join(READ_FORMATS)}}}; "
                                f"got {brief(d['format'])}")
        compact = d["format"] == RESULTS_FORMAT
        if compact:
            names, lqs = cls._decode(d, source)
            mname = d.get("model", {}).get("name") if isinstance(d.get("model"), Mapping) else None
            hname = d.get("hardware", {}).get("name") if isinstance(d.get("hardware"), Mapping) else None
            if mname is not None and not isinstance(mname, str) or hname is not None and not isinstance(hname, str):
                raise QuantmooError(f"{source}: fields 'model.name' and 'hardware.name' must be strings")
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
            need = "choices" if compact else "config"
            if not isinstance(p, Mapping) or need not in p or "objectives" not in p:
                raise QuantmooError(f"{source}: field '{where}' must be a mapping holding '{need}' and 'objectives'")
            cfg = (cls._config_from_ids(p, names, lqs, mname, hname, where, source) if compact
                   else QuantConfig.from_dict(p["config"], source=f"{source}: {where}.config"))
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
            if compact and b.get("choices") is not None:
                b["config"] = cls._config_from_ids(b, names, lqs, mname, hname, where, source).to_dict()
                b.pop("choices")
                b.pop("calibration", None)
            elif b.get("config") is not None:
                QuantConfig.from_dict(b["config"], source=f"{source}: {where}.config")
        feasible = d.get("feasible", True)
        if not isinstance(feasible, bool):
            raise QuantmooError(f"{source}: field 'feasible' must be true or false; got {brief(feasible)}")
        message = d.get("message", "")
        if message is not None and not isinstance(message, str):
            raise QuantmooError(f"{source}: field 'message' must be a string; got {brief(message)}")
        meta = {k: v for k, v in d.items() if k not in {
            "format", "objectives", "accuracy_kind", "feasible", "message", "baselines", "front", "history",
            "knee_index", "layers", "layer_choices"}}
        space = meta.get("space")
        if space is not None and not isinstance(space, Mapping):
            raise QuantmooError(f"{source}: field 'space' must be a mapping of SearchSpace fields; got {brief(space)}")
        return cls(front=front, objectives=tuple(objectives), history=history, baselines=baselines, meta=meta,
                   accuracy_kind=kind, feasible=feasible, message=message or "",
                   layer_names=names if compact else None)

    def summary(self, max_rows: int = 30, baselines: bool = True) -> str:
        """The front as a table sorted by size: at most ``max_rows`` rows spread evenly over it,
        always with the knee (marked '*') and both ends, a measured column when validated, and the
        baselines below it.

        When nothing met the constraints, a warning opens and closes the table and no knee is
        marked.        """
        if not self.front:
            return "(empty front)"
        k = self.knee_index() if self.feasible else -1      # no knee among infeasible points
        cols = list(self.objectives)
        order = sorted(range(len(self.front)), key=lambda i: self.front[i].objectives.get("size_mb", 0.0))
        shown = order
        if len(order) > max_rows:
            pos = {i: r for r, i in enumerate(order)}
            picks = set(np.linspace(0, len(order) - 1, max(max_rows - 1, 2)).round().astype(int).tolist())
            if k >= 0:
                picks.add(pos[k])
            shown = [order[r] for r in sorted(picks)]
        measured = any(s.measured and "accuracy_loss" in s.measured for s in self.front)
        head = ["#", *cols, *(["measured_loss"] if measured else []), "x_fp32", "avg_wbits"]

        ceiling = self.loss_ceiling
        clipped = []

        def cell(c, v):
            if not isinstance(v, (int, float)):
                return "-"
            if c == "accuracy_loss" and ceiling is not None and v > ceiling:
                clipped.append(v)
                return f">{ceiling:g}!"
            return f"{v:.4g}"

        def row(label, objs, meas, cr, ab):
            m = [f"{meas:.4g}" if isinstance(meas, (int, float)) else "-"] if measured else []
            return [label, *[cell(c, objs.get(c)) for c in cols], *m,
                    f"{cr:.2f}" if isinstance(cr, (int, float)) else "-", f"{ab:.2f}" if isinstance(ab, (int, float))
                    else "-"]

        rows = [row(f"{i}{'*' if i == k else ''}", s.objectives, (s.measured or {}).get("accuracy_loss"),
                    s.compression_ratio, s.avg_weight_bits) for i in (self.front[j] and j for j in shown)
                for s in (self.front[i],)]
        base_rows = []
        if baselines:
            for b in self.baselines:
                meas = (b.get("measured") or {}).get("accuracy_loss") if isinstance(b.get("measured"), Mapping) \
                    else None
                base_rows.append(row(_short(b["name"]), b.get("objectives", {}), meas, b.get("compression_ratio"),
                                     None))
        widths = [max(len(h), *(len(r[j]) for r in rows + base_rows)) for j, h in enumerate(head)]
        fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))   # noqa: E731
        lines = [fmt(head)] + [fmt(r) for r in rows]
        if len(shown) < len(order):
            lines.append(f"({len(shown)} of {len(order)} front points, spread evenly by size; all are in front.csv)")
        if base_rows:
            lines.append("baselines:")
            lines += [fmt(r) for r in base_rows]
        if clipped:
            lines.append(f"! the {self.accuracy_kind} model predicts more than {ceiling:g} pp here (up to "
                         f"{max(clipped):.4g}), beyond what accuracy can lose: read it as 'destroyed'")
        if not self.feasible:
            # said first and last, so it cannot be missed above or below a long table
            warn = (f"WARNING: {self.message or 'No configuration met the constraints.'} The rows below are "
                    "infeasible, not a front, and have no knee.")
            return "\n".join([warn, *lines, f"accuracy_loss kind: {self.accuracy_kind}; INFEASIBLE (see above)"])
        lines.append(f"* knee point; accuracy_loss kind: {self.accuracy_kind}"
                     + ("; measured_loss: re-evaluated with the real model" if measured else ""))
        return "\n".join(lines)

    @property
    def loss_ceiling(self) -> Optional[float]:
        """The largest ``accuracy_loss`` the metric allows (100 pp for the prior, whose loss is in
        percentage points of accuracy), or None where the metric is unbounded (e.g. KL divergence)."""
        return 100.0 if self.accuracy_kind == "prior" else None

    def __repr__(self) -> str:
        return (f"SearchResult(n_front={len(self.front)}, objectives={self.objectives}, "
                f"accuracy_kind={self.accuracy_kind!r}, feasible={self.feasible})")


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[:n - 1] + "~"


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
    from .outdir import recover
    path = Path(directory)
    if not path.exists():
        recover(path)      # a writer killed mid-swap: the old version is moved back first
    if path.is_dir():
        path = path / "results.json"
    return SearchResult.from_dict(load_json(path), source=str(path))


def _savez(path, **arrays) -> None:
    """``np.savez_compressed`` at zlib level 1: 4-5x faster on the bit matrices, nearly as small,
    and read by ``np.load`` (``allow_pickle=False``) the same way."""
    import zipfile
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)


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
