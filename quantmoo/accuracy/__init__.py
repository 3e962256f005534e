"""Accuracy: the prior noise model, proxy tables from real weights, real evaluators, validation.

Submodules (imported on use, so the search does not pay for them):
``sensitivity`` (proxy tables), ``validate`` (measured validation), ``cache`` (on-disk
evaluation cache), ``parallel`` (local processes / Dask), ``evaluator``, ``digits``, ``bert``.
"""
from .tables import KINDS, AccuracyTable, prior_table

__all__ = ["KINDS", "AccuracyTable", "prior_table"]
