"""Mutation: each free gene is reset, with a fixed probability, to a different allowed value.

:func:`mutate_genomes` is the pure function; :class:`QuantMutation` adapts it to pymoo with
pymoo's default per-gene rate ``1 / n_var``. The issue-19 ablation
(``benchmarks/bench_ablation.py``) removed what did not raise the hypervolume on any problem:
the one-step move of bit genes, the rate decaying with search progress, and forcing one
mutation into every child (pymoo's PM does as well at about 1.2-1.3x the loop's CPU).
"""
from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation


def mutate_genomes(X: np.ndarray, enc, rate: float, random_state: np.random.Generator) -> np.ndarray:
    """Reset each free gene with probability ``rate`` to a uniformly random *different* value.

    Pinned genes (``xl == xu``) never change. Only the drawn genes are touched, so the cost is
    one (N, n_var) uniform draw plus work on the few mutated genes.
    """
    X = np.asarray(X)
    X = np.array(X, dtype=X.dtype if np.issubdtype(X.dtype, np.integer) else np.int64)   # a copy, same int type
    # the few drawn genes by flat index (row-major, as np.nonzero orders them), then the pinned ones dropped
    flat = np.flatnonzero(random_state.random(X.shape) < rate)
    rows, cols = np.divmod(flat, X.shape[1])
    free = (enc.xu > enc.xl)[cols]
    rows, cols = rows[free], cols[free]
    lo, span = enc.xl[cols], enc.xu[cols] - enc.xl[cols] + 1
    # a shift of 1 .. span-1 modulo the range: any other value, uniformly
    shift = 1 + (random_state.random(len(cols)) * (span - 1)).astype(np.int64)
    X[rows, cols] = lo + (X[rows, cols] - lo + shift) % span
    return X


class QuantMutation(Mutation):
    """pymoo adapter of :func:`mutate_genomes`.

    Parameters
    ----------
    rate : float, optional
        Per-gene mutation probability; default ``1 / n_var`` (pymoo's default for PM).
    """

    def __init__(self, rate: float = None):
        super().__init__(prob=1.0)
        if rate is not None and not (isinstance(rate, (int, float)) and 0 < rate <= 1):
            from ...errors import QuantmooError
            raise QuantmooError(f"The 'rate' of QuantMutation must be a number in (0, 1]; got {rate!r}")
        self.rate = rate

    def mutate(self, problem, X, random_state):
        """pymoo's ``Mutation.do`` on a genome matrix: the same draws, no population round trip."""
        X = np.asarray(X)
        Xp = self._do(problem, X, random_state=random_state)
        mut = random_state.random(size=len(X)) <= self.prob.value    # the draw pymoo makes per individual
        return Xp if mut.all() else np.where(mut[:, None], Xp, X)

    def _do(self, problem, X, random_state=None, **kwargs):
        rate = self.rate if self.rate is not None else 1.0 / max(problem.n_var, 1)
        return mutate_genomes(X, problem.encoding, rate, random_state)
