"""Measured accuracy inside the search: a real evaluator scores every new genome.

For a small real model (``digits``: milliseconds per evaluation) the search can optimise the
measured ``accuracy_loss`` itself instead of the proxy table. :class:`MeasuredAccuracy` plugs
into :class:`~quantmoo.search.problem.QuantizationProblem` in place of an
:class:`~quantmoo.accuracy.tables.AccuracyTable`.

Faulty evaluations
------------------
An evaluation that raises, returns a non-finite loss, or runs past ``eval_timeout`` seconds
never stops the run. Its genome gets ``accuracy_loss = nan`` and violates the problem's extra
inequality constraint ``evaluation_failed <= 0``, so pymoo ranks it behind every feasible
individual by its constraint violation (a constraint, not a penalty on the objective). The
reason is kept per genome and listed in the result's ``meta["failed_evaluations"]``.

The per-genome loop here is over *distinct, never-seen* genomes and calls the real model: it
is the evaluator's cost, not the search's. Results are memoised per genome, so the search
(which re-reads objective values for its archive and history) measures each genome once; the
memo travels with a checkpoint, so a resumed run does not measure again.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import QuantmooError, check_positive

__all__ = ["MeasuredAccuracy"]


class MeasuredAccuracy:
    """``accuracy_loss`` measured by a real evaluator for each genome the search evaluates.

    Parameters
    ----------
    source : str, callable, evaluator or ModelSpec
        What measures a config, as for :func:`~quantmoo.accuracy.parallel.evaluate_many`: a zoo
        name (``"digits"``), a picklable factory, an evaluator object (``details(config)``) or a
        ModelSpec with an ``evaluator``.
    table : AccuracyTable, optional
        The separable per-layer table the search still needs where it reasons layer by layer
        (seeding, the greedy / ILP baselines' curves); default: the model's default proxy
        (:func:`~quantmoo.accuracy.sensitivity.default_accuracy`). It
        never provides a reported ``accuracy_loss``.
    eval_timeout : float, optional
        Seconds one evaluation may take before it counts as failed.
    workers, dask_address, cache :
        Where evaluations run and whether they are cached on disk (see ``evaluate_many``).
        The default, ``workers=1``, measures in-process. Local worker processes are started
        once, at the first generation that needs them, and kept until :meth:`close` (a search
        closes them when it ends, also on an error or Ctrl-C).

    Attributes
    ----------
    n_measured : int
        Distinct genomes measured so far.
    failures : dict
        ``genome bytes -> reason`` for every failed evaluation.
    """

    kind = "measured"

    def __init__(self, source, table=None, eval_timeout: Optional[float] = None, workers: Optional[int] = 1,
                 dask_address=None, cache=None):
        if source is None:
            raise QuantmooError("MeasuredAccuracy needs an evaluator source: a zoo model name such as 'digits', "
                                "a factory, an evaluator or a ModelSpec with real weights")
        if eval_timeout is not None:
            check_positive("eval_timeout", eval_timeout, "MeasuredAccuracy (seconds, or None)")
        self.source = source
        self.table = table
        self.eval_timeout = eval_timeout
        self.workers = workers
        self.dask_address = dask_address
        self.cache = cache
        self.encoding = None
        self.hardware_name = None
        self._memo = {}           # genome bytes -> loss (nan when failed)
        self.failures = {}        # genome bytes -> reason
        self._pool = None         # local worker processes, one set for the whole search

    # -- the AccuracyTable interface the problem and operators use ------------------------------
    def check(self, encoding, model=None, hardware_name: Optional[str] = None) -> "MeasuredAccuracy":
        """Bind to the problem's encoding (and build the default separable table)."""
        from ..accuracy.sensitivity import default_accuracy
        from ..accuracy.tables import AccuracyTable
        if self.table is None:
            if model is None:
                raise QuantmooError("MeasuredAccuracy.check needs the model to build its default table")
            self.table = default_accuracy(model, encoding.space)
        if not isinstance(self.table, AccuracyTable):
            raise QuantmooError(f"The 'table' of MeasuredAccuracy must be an AccuracyTable; got "
                                f"{type(self.table).__name__}")
        self.table = self.table.check(encoding)
        self.encoding = encoding
        self.hardware_name = hardware_name
        return self

    def separable(self, calib: int = 0) -> np.ndarray:
        return self.table.separable(calib)

    @property
    def meta(self) -> dict:
        return {"kind": "measured", "evaluator": self._source_name(), "eval_timeout": self.eval_timeout,
                "n_measured": self.n_measured, "n_failed": len(self.failures),
                "separable_table_kind": self.table.kind if self.table is not None else None}

    @property
    def n_measured(self) -> int:
        return len(self._memo)

    # -- measuring ------------------------------------------------------------------------------
    def measure(self, X: np.ndarray):
        """``(loss, failed)`` for the rows of an (N, n_var) genome matrix.

        New distinct genomes are decoded and measured in one :func:`evaluate_many` batch;
        known ones come from the memo.
        """
        from ..accuracy.parallel import evaluate_many
        if self.encoding is None:
            raise QuantmooError("MeasuredAccuracy is not bound to a problem (call check(encoding) first)")
        X = np.ascontiguousarray(X, dtype=np.int64)
        keys = [row.tobytes() for row in X]
        new = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if new:
            if self.source is None:
                raise QuantmooError("This MeasuredAccuracy was restored from a checkpoint without its evaluator; "
                                    "pass the evaluator again (e.g. SearchRun.resume(dir, evaluator=...))")
            G = np.stack([np.frombuffer(k, dtype=np.int64) for k in new])
            configs = [self.encoding.decode(g, hardware=self.hardware_name) for g in G]
            if self.workers != 1 and getattr(self, "_pool", None) is None:
                from ..accuracy.parallel import ProcessPool
                self._pool = ProcessPool(self.workers)      # started only if evaluate_many needs it
            details = evaluate_many(self.source, configs, workers=self.workers, dask_address=self.dask_address,
                                    cache=self.cache, eval_timeout=self.eval_timeout,
                                    pool=getattr(self, "_pool", None))
            for k, d in zip(new, details):
                if "error" in d:
                    self._memo[k] = float("nan")
                    self.failures[k] = str(d["error"])
                else:
                    self._memo[k] = float(d["loss"])
        loss = np.fromiter((self._memo[k] for k in keys), dtype=float, count=len(keys))
        return loss, np.isnan(loss)

    def close(self) -> None:
        """Stop the local worker processes, if any (a later :meth:`measure` starts them again)."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    def failed_records(self) -> list:
        """The failed evaluations: ``{config_hash, genome, reason, config}`` each, in order of failure."""
        out = []
        for k, reason in self.failures.items():
            g = np.frombuffer(k, dtype=np.int64)
            cfg = self.encoding.decode(g, hardware=self.hardware_name)
            out.append({"config_hash": cfg.config_hash(), "genome": [int(v) for v in g], "reason": reason,
                        "config": cfg.to_dict()})
        return out

    def _source_name(self) -> str:
        s = self.source
        if s is None:
            return "unknown"
        if isinstance(s, str):
            return s
        return str(getattr(s, "name", None) or getattr(s, "__name__", None) or type(s).__name__)

    # -- checkpoints: the memo and failures travel, an evaluator object does not ---------------------
    def __getstate__(self):
        d = dict(self.__dict__)
        d["encoding"] = None         # rebound by the problem that is rebuilt on resume
        d["_pool"] = None            # processes do not travel; the resumed run starts its own
        if not isinstance(d["source"], str):
            d["source"] = None       # re-attached on resume (SearchRun.resume(..., evaluator=...))
        d["dask_address"] = d["dask_address"] if isinstance(d["dask_address"], (str, type(None))) else None
        return d
