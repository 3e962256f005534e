"""Shared pieces of the real-model tables (``digits``, ``minilm-l6``): loading, proxy tables,
measurement with an on-disk evaluation cache, and the cold/warm timings table 5 reports.

* Models are loaded once per process (``minilm-l6`` reads its safetensors and tokenizer).
* Proxy tables come from :func:`quantmoo.sensitivity` with an on-disk ``cache_dir``
  (``$QUANTMOO_BENCH_CACHE`` or ``~/.cache/quantmoo/bench``): the ~1.5 min sensitivity pass of
  ``minilm-l6`` runs once, not once per table or per run. A table for a *sub-space* (e.g. weight
  bits restricted to {4, 8}) is the full table's columns for the choices the sub-space keeps
  (:func:`subset_table`): the same proxy, restricted, not a second sensitivity pass.
* Measurements go through :func:`quantmoo.accuracy.parallel.evaluate_many` with one
  :class:`~quantmoo.accuracy.cache.EvalCache` per process in a fresh temporary directory, so the
  first evaluation of a config is cold and a repeat is a cache hit; every batch's time, hits
  and misses are logged in :data:`LOG` for table 5.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._common import progress

_MODELS = {}
_TABLES = {}
_CACHE = None
#: One entry per measured batch: ``{model, n, seconds, hits, misses, tag}``.
LOG = []


def cache_dir() -> Path:
    """Persistent directory for proxy tables (sensitivity results)."""
    d = Path(os.environ.get("QUANTMOO_BENCH_CACHE") or Path.home() / ".cache" / "quantmoo" / "bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


def model(name: str):
    """The zoo model ``name`` (loaded once per process)."""
    import quantmoo
    if name not in _MODELS:
        try:
            _MODELS[name] = quantmoo.zoo.load(name)
        except quantmoo.QuantmooError as e:   # e.g. the weights package is missing: say so, no traceback
            raise SystemExit(f"benchmarks: the real model '{name}' is not available: {e}; see 'Benchmarks' "
                             "in README.md for what to install") from None
    return _MODELS[name]


def proxy_table(name: str):
    """``(table, seconds)``: the proxy accuracy table of the default space (cached on disk)."""
    import quantmoo
    if name not in _TABLES:
        t0 = time.perf_counter()
        m = model(name)
        table = quantmoo.sensitivity(m, evaluator=m.evaluator, cache_dir=cache_dir())
        _TABLES[name] = (table, time.perf_counter() - t0)
    return _TABLES[name]


def subset_table(table, full_enc, sub_enc):
    """The columns of ``table`` (built for ``full_enc``) for the choices of ``sub_enc``.

    Every attribute value of the sub-space must be allowed in the full space, and both must
    have the same calibration methods.
    """
    from quantmoo.accuracy.tables import AccuracyTable
    from quantmoo.config import LAYER_ATTRS
    if tuple(full_enc.space.calibrations) != tuple(sub_enc.space.calibrations):
        raise ValueError("the sub-space must keep the calibration methods of the full space")
    key_full = {tuple(full_enc.choice_value[a][c] for a in LAYER_ATTRS): c for c in range(full_enc.n_choices)}
    idx = np.array([key_full[tuple(sub_enc.choice_value[a][c] for a in LAYER_ATTRS)]
                    for c in range(sub_enc.n_choices)])
    meta = dict(table.meta, subset_of="default space")
    return AccuracyTable(table.table[:, :, idx], kind=table.kind, meta=meta)


def problem(name: str, hardware: str, space=None, objectives=("accuracy_loss", "size_mb")):
    """A QuantizationProblem of real model ``name`` with its proxy table (restricted to ``space``)."""
    from quantmoo.search.problem import QuantizationProblem
    from quantmoo.search.space import SearchSpace
    m = model(name)
    table, _ = proxy_table(name)
    if space is not None:
        full = SearchSpace().bind(m)
        table = subset_table(table, full, space.bind(m))
    return QuantizationProblem(m, hardware, space=space, objectives=objectives, accuracy=table)


def _eval_cache():
    global _CACHE
    if _CACHE is None:
        import atexit
        import shutil
        from quantmoo.accuracy.cache import EvalCache
        d = tempfile.mkdtemp(prefix="quantmoo-bench-evals-")
        atexit.register(shutil.rmtree, d, True)
        _CACHE = EvalCache(d)
    return _CACHE


def measure(name: str, configs, tag: str = "", cache=None) -> list:
    """Measured details (``loss`` etc.) of ``configs`` on real model ``name``, in order.

    Runs in-process (``workers=1``: the machine has 2 cores and other work), through the
    process-wide evaluation cache (or ``cache``, an EvalCache); the batch is logged in :data:`LOG`.
    """
    from quantmoo.accuracy.parallel import evaluate_many
    ec = cache if cache is not None else _eval_cache()
    h0, m0 = ec.hits, ec.misses
    t0 = time.perf_counter()
    configs = list(configs)
    progress(f"{tag or 'measure'}: {len(configs)} configs on {name} ...")
    out = evaluate_many(model(name), configs, workers=1, cache=ec, progress=sys.stderr.isatty())
    progress(f"{tag or 'measure'}: done in {time.perf_counter() - t0:.1f} s ({ec.hits - h0} cached)")
    LOG.append({"model": name, "n": len(configs), "seconds": time.perf_counter() - t0,
                "hits": ec.hits - h0, "misses": ec.misses - m0, "tag": tag})
    bad = [d["error"] for d in out if "error" in d]
    if bad:
        raise RuntimeError(f"measurement failed on {name}: {bad[0]}")
    return out


def loss_unit(name: str) -> str:
    """What ``loss`` means for a real model."""
    if name == "digits":
        m = model(name)
        return (f"percentage points of test accuracy (fp32 {m.evaluator.fp32_accuracy_pct:.2f}% on "
                f"{len(m.evaluator.labels)} held-out digits)")
    return "100 x (1 - mean cosine to the fp32 embedding) over 256 sentences (not an accuracy in %)"
