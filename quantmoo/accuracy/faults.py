"""Fault injection for evaluators: check that a pipeline survives evaluations that fail.

:class:`FaultInjector` wraps a real evaluator and makes chosen configs raise, return NaN or
hang. Which configs fail is a pure function of the config hash and ``seed``, so a run with
injected faults is as reproducible as one without (and a resumed run sees the same faults).
It is what the reliability tests and ``benchmarks/bench_reliability.py`` use.
"""
from __future__ import annotations

import hashlib
import time

from ..errors import QuantmooError

__all__ = ["FaultInjector", "FAULTS"]

#: The kinds of injected faults, in the order their probability bands are laid out.
FAULTS = ("raise", "nan", "hang")


class FaultInjector:
    """An evaluator that fails on purpose for a deterministic fraction of configs.

    Parameters
    ----------
    evaluator : object
        The real evaluator (``details(config) -> dict`` with ``"loss"``).
    p_raise, p_nan, p_hang : float
        Fractions of configs that raise ``RuntimeError``, return ``loss = nan``, or sleep
        ``hang_s`` seconds before answering. Their sum must be <= 1.
    hang_s : float
        How long a hanging evaluation sleeps (longer than the search's ``eval_timeout``).
    seed : int
        Chooses which configs fail.

    Examples
    --------
    >>> ev = FaultInjector(quantmoo.zoo.load("digits").evaluator, p_raise=0.1, p_nan=0.1)
    >>> ev.fault(config)        # None, "raise", "nan" or "hang"
    """

    def __init__(self, evaluator, p_raise: float = 0.0, p_nan: float = 0.0, p_hang: float = 0.0,
                 hang_s: float = 30.0, seed: int = 0):
        probs = {"p_raise": p_raise, "p_nan": p_nan, "p_hang": p_hang}
        for k, v in probs.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise QuantmooError(f"The '{k}' must be a probability in [0, 1]; got {v!r}")
        if sum(probs.values()) > 1.0 + 1e-12:
            raise QuantmooError(f"The fault probabilities must sum to at most 1; got {sum(probs.values()):g}")
        self.evaluator = evaluator
        self.bands = (float(p_raise), float(p_nan), float(p_hang))
        self.hang_s = float(hang_s)
        self.seed = int(seed)
        self.name = f"faulty-{getattr(evaluator, 'name', type(evaluator).__name__)}"
        self.spec = getattr(evaluator, "spec", None)

    def fault(self, config):
        """The fault this config gets: ``None``, ``"raise"``, ``"nan"`` or ``"hang"``."""
        digest = hashlib.sha256(f"{self.seed}:{config.config_hash()}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0 ** 64      # uniform in [0, 1) per config
        edge = 0.0
        for kind, p in zip(FAULTS, self.bands):
            edge += p
            if u < edge:
                return kind
        return None

    def details(self, config) -> dict:
        kind = self.fault(config)
        if kind == "raise":
            raise RuntimeError("injected failure")
        if kind == "nan":
            return {"loss": float("nan")}
        if kind == "hang":
            time.sleep(self.hang_s)
        return self.evaluator.details(config)
