"""Mating on genome matrices: pymoo's infill loop without a population round trip per operator.

pymoo's :class:`~pymoo.core.mating.Mating` hands a ``Population`` of ``Individual`` objects from
selection to crossover, mutation, repair and duplicate elimination, and each operator reads the
genomes out of it and writes them back one individual at a time. :class:`QuantMating` runs the
same loop (:meth:`pymoo.core.infill.InfillCriterion.do`) with the same operators, in the same order
and with the same random draws, on (N, n_var) arrays, and builds the offspring population once:
the same offspring for the same seed, at a fraction of the per-individual overhead.
"""
from __future__ import annotations

import math

import numpy as np
from pymoo.core.mating import Mating
from pymoo.core.population import Population

from .duplicates import _int16, duplicate_mask, genomes, row_hash, rows_in


class QuantMating(Mating):
    """pymoo's mating loop for quantmoo's array operators.

    Needs a crossover with ``children`` (:class:`~quantmoo.search.operators.QuantCrossover`) and a
    mutation with ``mutate`` (:class:`~quantmoo.search.operators.QuantMutation`); selection,
    repair and duplicate elimination are used as given (the latter two through their array
    functions).
    """

    @classmethod
    def like(cls, mating: Mating) -> "QuantMating":
        """The array version of a pymoo ``Mating`` built with quantmoo's operators."""
        return cls(mating.selection, mating.crossover, mating.mutation, repair=mating.repair,
                   eliminate_duplicates=mating.eliminate_duplicates, n_max_iterations=mating.n_max_iterations)

    def do(self, problem, pop, n_offsprings, random_state=None, n_max_iterations=None, **kwargs):
        if n_max_iterations is None:
            n_max_iterations = self.n_max_iterations
        if random_state is None:
            random_state = np.random.default_rng()
        cx, n_var = self.crossover, problem.n_var
        P16 = _int16(np.asarray(genomes(pop)).reshape(len(pop), n_var))
        Ph = row_hash(P16)
        off = np.zeros((0, n_var), dtype=np.int64)
        off16, offh = _int16(off), np.zeros(0, dtype=np.int64)
        n_infills = 0
        while len(off) < n_offsprings:           # InfillCriterion.do, step for step
            n_remaining = n_offsprings - len(off)
            n_matings = math.ceil(n_remaining / cx.n_offsprings)
            parents = self.selection(problem, pop, n_matings, n_parents=cx.n_parents, to_pop=False,
                                     random_state=random_state, **kwargs)
            X = cx.children(problem, P16[np.asarray(parents)], random_state)     # int16: a quarter of the bytes
            X = self.mutation.mutate(problem, X, random_state)
            X = np.asarray(self.repair._do(problem, X, random_state=random_state, **kwargs), dtype=np.int64)
            # duplicates of an earlier child, of the parents' population or of the offspring so far
            X16 = _int16(X)
            h = row_hash(X16)
            dup = duplicate_mask(X16) | rows_in(X16, h, P16, Ph) | rows_in(X16, h, off16, offh)
            keep = np.flatnonzero(~dup)[:n_remaining]
            off = np.concatenate([off, X[keep]])
            off16, offh = np.concatenate([off16, X16[keep]]), np.concatenate([offh, h[keep]])
            n_infills += 1
            if n_infills >= n_max_iterations:
                break
        return Population.new("X", off)
