"""Accuracy: the prior noise model, proxy tables from real weights, real evaluators, validation."""
from .tables import KINDS, AccuracyTable, prior_table

__all__ = ["KINDS", "AccuracyTable", "prior_table"]
