"""CSV tables for pandas, R or a spreadsheet: the front (``front.csv``) and every evaluated genome
(``evaluations.csv``).

``front.csv`` has one row per front point: its index, whether it is the knee, every objective
value, the accuracy kind, the measured values (``measured_<name>``, empty when not validated),
compression ratio, average weight bits, feasibility and the calibration, then the weight and
activation bits of every layer (``wbits:<layer>``, ``abits:<layer>``).

``evaluations.csv`` has one row per genome the search evaluated (generation 1 is the initial
population; a genome evaluated twice appears twice): generation, every objective, feasibility and
average weight bits. Its per-layer bits are in ``evaluations.npz`` (``weight_bits``,
``activation_bits``: (N, n_layers) int8, ``layers``: the column names), which is 20-50x smaller.
"""
from __future__ import annotations

import csv
import io

import numpy as np

__all__ = ["front_csv", "evaluations_csv"]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else repr(float(v))
    return str(v)


def front_csv(result) -> str:
    """``front.csv`` text for a :class:`~quantmoo.results.result.SearchResult` (see module doc)."""
    names = result._layer_order()
    objs = list(dict.fromkeys([*result.objectives, *(k for s in result.front for k in s.objectives)]))
    measured = list(dict.fromkeys(k for s in result.front if s.measured for k in s.measured
                                  if not isinstance(s.measured[k], (dict, list))))
    knee = result.knee_index() if result.front and result.feasible else None
    head = ["index", "knee", *objs, "accuracy_kind", *(f"measured_{k}" for k in measured), "compression_ratio",
            "avg_weight_bits", "feasible", "calibration", *(f"wbits:{n}" for n in names),
            *(f"abits:{n}" for n in names)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for i, s in enumerate(result.front):
        lay = s.config.layers
        m = s.measured or {}
        w.writerow([i, _fmt(i == knee), *(_fmt(s.objectives.get(k)) for k in objs), result.accuracy_kind,
                    *(_fmt(m.get(k)) for k in measured), _fmt(s.compression_ratio), _fmt(s.avg_weight_bits),
                    _fmt(s.feasible), s.config.calibration, *(lay[n].weight_bits for n in names),
                    *(lay[n].activation_bits for n in names)])
    return buf.getvalue()


def evaluations_csv(evals: dict, objectives) -> str:
    """``evaluations.csv`` text from a result's ``evaluations`` columns (see module doc)."""
    skip = {"generation", "feasible", "weight_bits", "activation_bits"}
    cols = [k for k in objectives if k in evals] + [k for k in evals if k not in skip and k not in objectives]
    wb = np.asarray(evals["weight_bits"], dtype=float)
    avg = wb.mean(axis=1) if wb.size else np.zeros(len(evals["generation"]))
    table = np.column_stack([evals["generation"], *(evals[k] for k in cols),
                             np.asarray(evals["feasible"], dtype=float), avg])
    buf = io.StringIO()
    buf.write(",".join(["generation", *cols, "feasible", "mean_layer_weight_bits"]) + "\n")
    fmt = ["%d"] + ["%.10g"] * len(cols) + ["%d", "%.4g"]
    np.savetxt(buf, table, fmt=fmt, delimiter=",")
    return buf.getvalue()
