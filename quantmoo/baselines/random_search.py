"""Random search at equal evaluations: the floor every search algorithm must beat.

Genomes are drawn uniformly in the bounds (:func:`quantmoo.search.operators.sample_uniform`),
repaired exactly as the search repairs its offspring (pins, tie groups, optional
hardware-strict mode), evaluated in vectorised batches, and merged into an archive of the
feasible non-dominated configs. The history records the archive's hypervolume after every
batch with the search's own reference point and normaliser
(:func:`quantmoo.search.run.hv_reference`, :func:`quantmoo.search.run.hypervolume`), so its
curve can be drawn next to a search's ``history`` at the same ``n_eval``.
"""
from __future__ import annotations

import numpy as np

from ..errors import QuantmooError


def _nondominated(F: np.ndarray) -> np.ndarray:
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    if len(F) <= 1:
        return np.arange(len(F))
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=np.int64)


def random_search(problem, n_evals: int, seed: int = 0, batch_size: int = 1000, strict: bool = False):
    """Uniform random search with ``n_evals`` evaluations.

    Parameters
    ----------
    problem : QuantizationProblem
        Objectives and constraints are the problem's.
    n_evals : int
        Number of genomes evaluated (the last batch is truncated to hit it exactly).
    seed : int
        Seed of the ``numpy.random.Generator``; same seed, same result.
    batch_size : int
        Genomes per vectorised batch (one history row per batch).
    strict : bool
        Hardware-strict repair (only natively supported choices), as ``search(strict=True)``.

    Returns
    -------
    X_front : ndarray (n, n_var)
        Unique feasible non-dominated genomes, sorted by the first objective.
    F_front : ndarray (n, n_obj)
        Their objectives (``problem.objectives`` order).
    history : list of dict
        Per batch: ``n_eval``, ``hypervolume``, ``n_front``, ``n_feasible`` (cumulative).
    """
    from ..search.operators.repair import repair_genomes
    from ..search.operators.sampling import sample_uniform
    from ..search.run import hv_reference, hypervolume

    for name, v, lo in (("n_evals", n_evals, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise QuantmooError(f"The '{name}' must be an integer >= {lo}; got {v!r}")
    rng = np.random.default_rng(int(seed))
    enc = problem.encoding
    ref = hv_reference(problem)
    allowed = problem.native_mask() if strict else None
    objs = problem.objectives
    X_arc = np.zeros((0, enc.n_var), dtype=np.int64)
    F_arc = np.zeros((0, len(objs)))
    history, done, n_feas = [], 0, 0
    while done < n_evals:
        n = min(int(batch_size), int(n_evals) - done)
        X = repair_genomes(sample_uniform(enc, n, rng), enc, allowed)
        vals = problem.evaluate_all(X)
        F = np.column_stack([vals[o] for o in objs])
        feas = problem.feasible_mask(vals)
        n_feas += int(feas.sum())
        done += n
        if feas.any():
            X_all = np.concatenate([X_arc, X[feas]])
            F_all = np.concatenate([F_arc, F[feas]])
            X_all, first = np.unique(X_all, axis=0, return_index=True)
            F_all = F_all[first]
            nd = _nondominated(F_all)
            X_arc, F_arc = X_all[nd], F_all[nd]
        history.append({"n_eval": done, "hypervolume": hypervolume(F_arc, ref), "n_front": int(len(F_arc)),
                        "n_feasible": n_feas})
    order = np.lexsort(F_arc.T[::-1]) if len(F_arc) else np.arange(0)
    return X_arc[order], F_arc[order], history


__all__ = ["random_search"]
