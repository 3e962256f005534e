"""Operators: vectorised functions checked against small per-genome reference loops."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from quantmoo import SearchSpace
from quantmoo.search.operators import (QuantCrossover, QuantMutation, cx_layer_points, duplicate_mask,
                                       greedy_path_seeds, lagrangian_choices, mutate_genomes, repair_genomes, sample_uniform, uniform_precision_seeds)


@pytest.fixture
def enc(tiny_model):
    return SearchSpace(pinned={"fc0": {"weight_bits": 8}}).bind(tiny_model)


def _layer_of_gene(enc):
    return enc.gene_layer


def test_sampling_in_bounds_and_reproducible(enc):
    a = sample_uniform(enc, 200, np.random.default_rng(1))
    b = sample_uniform(enc, 200, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert (a >= enc.xl).all() and (a <= enc.xu).all()


@pytest.mark.parametrize("n_points", [1, 2, None])
def test_point_crossover_cuts_at_layer_boundaries(enc, n_points):
    rng = np.random.default_rng(3)
    P = sample_uniform(enc, 200, rng).reshape(2, 100, -1)
    Y = cx_layer_points(P, enc, rng, n_points)
    L = enc.n_layers
    switches = []
    for m in range(100):    # reference: per mating, per layer, which parent each child's layer came from
        src = []
        for l in range(L):
            g = np.flatnonzero(enc.gene_layer == l)
            a, b = P[0, m, g], P[1, m, g]
            c0, c1 = Y[0, m, g], Y[1, m, g]
            # a layer's genes travel together; the children are complementary
            assert (np.array_equal(c0, a) and np.array_equal(c1, b)) or (np.array_equal(c0, b) and np.array_equal(c1, a))
            if not np.array_equal(a, b):
                src.append(int(np.array_equal(c0, b)))
        switches.append(sum(src[i] != src[i + 1] for i in range(len(src) - 1)))
    assert max(switches) <= (n_points or 2)
    assert max(switches) >= 1                                   # it does cross over
    if n_points is None:
        assert 2 in switches                                    # both one- and two-point matings occur
    # the calibration gene (global, last) also comes from one parent, the other child gets the other's
    assert enc.calib_varies
    c, p = Y[:, :, -1], P[:, :, -1]
    assert ((c[0] == p[0]) & (c[1] == p[1]) | (c[0] == p[1]) & (c[1] == p[0])).all()


def test_crossover_rejects_bad_n_points():
    from quantmoo.errors import QuantmooError
    with pytest.raises(QuantmooError, match="'n_points' of QuantCrossover must be one of"):
        QuantCrossover(n_points=3)


def test_mutation_resets_free_genes_to_other_values(enc):
    rng = np.random.default_rng(4)
    X = sample_uniform(enc, 300, rng)
    Y = mutate_genomes(X, enc, 0.3, rng)
    assert (Y >= enc.xl).all() and (Y <= enc.xu).all()
    pinned = enc.xl == enc.xu
    assert np.array_equal(Y[:, pinned], X[:, pinned])
    changed = Y != X
    # about rate x free genes change (every drawn gene moves to a different value)
    assert abs(changed[:, ~pinned].mean() - 0.3) < 0.02
    # a reset reaches values more than one step away (no ordinal step)
    assert (np.abs(Y - X)[changed] > 1).any()
    assert mutate_genomes(X, enc, 1e-12, rng).tolist() == X.tolist()


def test_mutation_rate_validation():
    from quantmoo.errors import QuantmooError
    with pytest.raises(QuantmooError, match="'rate' of QuantMutation must be a number in"):
        QuantMutation(rate=0)


def test_mutation_reproducible(enc):
    X = sample_uniform(enc, 50, np.random.default_rng(0))
    a = mutate_genomes(X, enc, 0.2, np.random.default_rng(9))
    b = mutate_genomes(X, enc, 0.2, np.random.default_rng(9))
    assert np.array_equal(a, b)


def test_repair_ties_and_pins(tiny_model):
    enc = SearchSpace(pinned={"fc0": {"weight_bits": 8}}).bind(tiny_model)
    X = np.random.default_rng(0).integers(0, 6, size=(100, enc.n_var))
    Y = repair_genomes(X, enc)
    assert (Y >= enc.xl).all() and (Y <= enc.xu).all()
    j = enc.varying.index("activation_bits")
    # fc1 and fc2 share tie group "res": same activation bits afterwards
    assert np.array_equal(Y[:, 1 * enc.k + j], Y[:, 2 * enc.k + j])


def test_repair_strict_moves_to_allowed(tiny_model):
    enc = SearchSpace().bind(tiny_model)
    allowed = np.zeros((enc.n_layers, enc.n_choices), dtype=bool)
    allowed[:, enc.choice_value["weight_bits"] == 8] = True
    X = sample_uniform(enc, 100, np.random.default_rng(0))
    Y = repair_genomes(X, enc, strict_allowed=allowed)
    C = enc.choices(Y)
    assert (enc.choice_value["weight_bits"][C] == 8).all()


def _reference_duplicates(X, other=None):
    seen, out = set(), []
    others = {tuple(r) for r in other} if other is not None else set()
    for r in X:
        t = tuple(r)
        out.append(t in seen or t in others)
        seen.add(t)
    return np.array(out)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000))
def test_duplicate_mask_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 10))           # widths around the 4-gene words the row hash packs
    X = rng.integers(0, 3, size=(40, n))
    O = rng.integers(0, 3, size=(10, n))
    assert np.array_equal(duplicate_mask(X), _reference_duplicates(X))
    ref = np.array([tuple(r) in {tuple(o) for o in O} for r in X])
    assert np.array_equal(duplicate_mask(X, O), ref)


def test_uniform_seeds_are_uniform(tiny_model):
    enc = SearchSpace().bind(tiny_model)
    S = uniform_precision_seeds(enc)
    assert len(S) == 6 * 3
    C = enc.choices(S)
    assert (C == C[:, :1]).all()


def test_lagrangian_path_is_on_the_hull():
    # two layers, three choices each: acc falls as cost rises
    acc = np.array([[4.0, 1.0, 0.0], [9.0, 2.0, 0.0]])
    cost = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    C = lagrangian_choices(acc, cost, np.array([0.0, 1.0, 100.0]))
    assert C[0].tolist() == [2, 2]          # lam = 0: best accuracy
    assert C[-1].tolist() == [0, 0]         # huge lam: cheapest
    # lam = 1: layer 0 minimises (5, 3, 4) -> 1 ; layer 1 minimises (10, 4, 4) -> first min 1
    assert C[1].tolist() == [1, 1]


def test_greedy_seeds_respect_pins(tiny_model):
    sp = SearchSpace(pinned={"fc0": {"weight_bits": 8}})
    enc = sp.bind(tiny_model)
    rng = np.random.default_rng(0)
    acc = rng.random((enc.n_layers, enc.n_choices))
    cost = rng.random((enc.n_layers, enc.n_choices))
    allowed = np.ones_like(acc, dtype=bool)
    allowed[0] = enc.choice_value["weight_bits"] == 8
    X = greedy_path_seeds(enc, acc, cost, 20, allowed=allowed)
    assert (X >= enc.xl).all() and (X <= enc.xu).all()
    assert (enc.choice_value["weight_bits"][enc.choices(X)[:, 0]] == 8).all()


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "unsga3", "smsemoa", "ga"])
def test_array_mating_gives_the_same_search_as_pymoos_mating(monkeypatch, algorithm):
    # QuantMating runs pymoo's infill loop on arrays: same draws, same offspring, same front
    import sys
    import quantmoo
    run_mod = sys.modules["quantmoo.search.run"]
    kw = dict(pop_size=16, n_gen=10, seed=3, progress=False, baselines=False, algorithm=algorithm,
              space=SearchSpace(weight_bits=(4, 8), activation_bits=(8, 16)))
    a = quantmoo.search("resnet18", "hexagon", **kw)
    monkeypatch.setattr(run_mod.QuantMating, "like", staticmethod(lambda mating: mating))   # pymoo's Mating
    b = quantmoo.search("resnet18", "hexagon", **kw)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.F, b.F)
    assert a.history == b.history
    assert np.array_equal(a.evaluations["weight_bits"], b.evaluations["weight_bits"])


def test_duplicate_elimination_in_one_mask_equals_pymoos_loop(enc):
    from pymoo.core.duplicate import DuplicateElimination
    from pymoo.core.population import Population
    from quantmoo.search.operators import QuantDuplicateElimination
    rng = np.random.default_rng(5)
    P = sample_uniform(enc, 6, rng)
    X = P[rng.integers(0, 6, 20)]          # repeats among themselves
    other = np.concatenate([P[:2], sample_uniform(enc, 3, rng)])
    elim = QuantDuplicateElimination()
    got = elim.do(Population.new("X", X), Population.new("X", other), Population.new("X", X[:0]))
    ref = DuplicateElimination.do(elim, Population.new("X", X), Population.new("X", other))   # pymoo's loop
    assert np.array_equal(got.get("X"), ref.get("X"))
    assert 0 < len(got) < len(np.unique(X, axis=0))
