"""Baselines: greedy (AMP-style), ILP (HAWQ-V3-style), llama.cpp rules, random search, exact fronts.

The tiny instances are checked against brute force over every combination of choices; the
llama.cpp rules are checked against what ``use_more_bits`` gives for n = 32 by hand.
"""
import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from quantmoo.accuracy.tables import AccuracyTable
from quantmoo.baselines import (exact_front, exact_hypervolume, exact_reference, greedy_curve, ilp_curve,
                                ilp_solve, preset_types, random_search, rule_presets, standard_baselines)
from quantmoo.baselines.exact import cost_table, pareto_indices
from quantmoo.baselines.rules import use_more_bits
from quantmoo.hardware import load as load_hw
from quantmoo.search.problem import QuantizationProblem
from quantmoo.search.run import hypervolume
from quantmoo.search.space import SearchSpace

TOY = Path(__file__).parent / "data" / "toy_profile.yaml"

#: 3 weight bits x 2 activation bits x 2 weight schemes x 2 granularities = 24 choices per layer.
SMALL_SPACE = dict(weight_bits=(2, 4, 8), activation_bits=(8, 16), weight_schemes=("symmetric", "asymmetric"),
                   activation_schemes=("asymmetric",), granularities=("per_channel", "per_group"),
                   calibrations=("min_max",), group_size=16)


@pytest.fixture(scope="module")
def toy_hw():
    return load_hw(TOY)


@pytest.fixture(scope="module")
def llama():
    return QuantizationProblem("llama2-7b", "arm_dot")


@pytest.fixture(scope="module")
def bert():
    return QuantizationProblem("bert-base", "arm_dot")


def _random_table_problem(model, hw, seed=0, structured=False, **space):
    """Tiny problem with a random accuracy table, so ties and pins bind and no sums coincide.

    ``structured``: loss ~ 4^-bits times a random factor (more bits, less loss), which gives
    larger fronts than a fully random table.
    """
    sp = SearchSpace(**{**SMALL_SPACE, **space})
    enc = sp.bind(model)
    rng = np.random.default_rng(seed)
    table = rng.random((1, enc.n_layers, enc.n_choices))
    if structured:
        cv = enc.choice_value
        table = table * 4.0 ** -cv["weight_bits"] + rng.random(table.shape) * 4.0 ** -cv["activation_bits"]
    return QuantizationProblem(model, hw, space=sp, accuracy=AccuracyTable(table, kind="proxy"))


def _all_combos(problem, cost="size_mb"):
    """Every valid choice combination (pins, tie groups) with its (accuracy, cost)."""
    enc = problem.encoding
    allowed = [np.flatnonzero(problem.pin_mask()[l]) for l in range(enc.n_layers)]
    C = np.array(list(itertools.product(*allowed)), dtype=np.int64)
    abits = enc.choice_value["activation_bits"]
    ok = np.ones(len(C), dtype=bool)
    for members in enc.tie_sets:
        a = abits[C[:, members]]
        ok &= (a == a[:, :1]).all(axis=1)
    C = C[ok]
    acc = problem.accuracy.separable(0)
    rows = np.arange(enc.n_layers)[None, :]
    if cost == "size_mb":    # integer bytes, so equal sizes compare equal
        nbytes = np.rint(problem.costs.column("weight_bytes")).astype(np.int64)
        return C, acc[rows, C].sum(axis=1), (nbytes[rows, C].sum(axis=1) + problem.costs.resident_bytes) / 1e6
    table, offset = cost_table(problem, cost)
    return C, acc[rows, C].sum(axis=1), offset + table[rows, C].sum(axis=1)


def _brute_front(acc, size):
    """Non-dominated (size, acc) points by a plain loop over the sorted points."""
    order = np.lexsort((acc, size))
    keep, best, last_size = [], np.inf, None
    for i in order:
        if acc[i] < best:
            if keep and size[i] == last_size:
                keep.pop()
            keep.append(i)
            best, last_size = acc[i], size[i]
    return np.array(keep)


# -- helpers ----------------------------------------------------------------------------------------
def test_pareto_indices_strict():
    cost = np.array([3, 1, 2, 2, 5, 1, np.inf])
    acc = np.array([1.0, 5.0, 3.0, 2.0, 1.0, 5.0, 0.0])
    # (1,5) twice -> first kept; (2,3) loses to (2,2); (5,1) loses to (3,1); inf cost dropped
    assert pareto_indices(cost, acc).tolist() == [1, 3, 0]


# -- exact front ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed, structured, pinned", [
    (0, False, {"fc0": {"weight_bits": 8}}), (1, True, {"fc0": {"weight_bits": 8}}), (2, True, {})])
def test_exact_front_equals_brute_force(tiny_model, toy_hw, seed, structured, pinned):
    p = _random_table_problem(tiny_model, toy_hw, seed=seed, structured=structured, pinned=pinned)
    assert p.encoding.tie_sets, "the tiny model's tie group must bind (activation bits vary)"
    C_all, acc, size = _all_combos(p)
    bf = _brute_front(acc, size)
    assert len(bf) >= (20 if structured else 5)
    F, C, exact = exact_front(p)
    assert exact
    assert len(F) == len(bf)
    np.testing.assert_array_equal(F[:, 1], size[bf])
    np.testing.assert_allclose(F[:, 0], acc[bf], rtol=1e-12)
    # the recovered configs reproduce the front through the problem's own evaluation
    vals = p.evaluate_all(C.genomes())
    np.testing.assert_allclose(vals["accuracy_loss"], F[:, 0], rtol=1e-12)
    np.testing.assert_allclose(vals["size_mb"], F[:, 1], rtol=1e-12)
    Cm = np.asarray(C)
    if pinned:
        assert (p.encoding.choice_value["weight_bits"][Cm[:, 0]] == 8).all()      # pin respected
    ab = p.encoding.choice_value["activation_bits"][Cm]
    assert (ab[:, 1] == ab[:, 2]).all()                                             # tie respected


def test_exact_front_bert_consistent_and_dominates(bert):
    t = time.perf_counter()
    F, C, exact = exact_front(bert)
    assert time.perf_counter() - t < 5
    assert exact and len(F) > 1000
    assert np.all(np.diff(F[:, 1]) > 0) and np.all(np.diff(F[:, 0]) < 0)
    idx = np.linspace(0, len(F) - 1, 25).astype(int)
    vals = bert.evaluate_all(C.genomes(idx))
    np.testing.assert_allclose(vals["accuracy_loss"], F[idx, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vals["size_mb"], F[idx, 1], rtol=1e-12)
    # nothing on the same two objectives has a larger hypervolume than the exact front
    ref = exact_reference(bert)
    hv = exact_hypervolume(bert, ref, front=F)
    _, Xg = greedy_curve(bert)
    g = bert.evaluate_all(Xg)
    assert hv >= hypervolume(np.column_stack([g["accuracy_loss"], g["size_mb"]]), ref) - 1e-12
    # every greedy point is weakly dominated by the exact front
    pos = np.searchsorted(F[:, 1], g["size_mb"] * (1 + 1e-12), side="right") - 1
    assert np.all(F[pos, 0] <= g["accuracy_loss"] * (1 + 1e-9) + 1e-12)


def test_exact_front_thinning_is_flagged(bert):
    F, C, exact = exact_front(bert, max_points=500)
    assert not exact and len(F) <= 500
    vals = bert.evaluate_all(C.genomes([0, len(F) - 1]))
    np.testing.assert_allclose(vals["size_mb"], F[[0, -1], 1], rtol=1e-12)


def test_exact_genomes_is_the_front_over_every_calibration(tiny_model, toy_hw):
    """The union of the calibration methods' fronts, by brute force over every config and method; a method whose
    table is nowhere below another's is skipped (its front cannot add a point); thinning keeps the count."""
    from quantmoo.baselines.exact import exact_genomes
    p = _random_table_problem(tiny_model, toy_hw, seed=2, structured=True,
                              calibrations=("min_max", "percentile", "mse"))
    T = np.random.default_rng(5).random((3,) + p.accuracy.table.shape[1:]) * p.accuracy.table[:1]
    T[1] = T[0] + 0.05                                        # never below min_max: skipped
    p = QuantizationProblem(p.model, p.hardware, space=p.space, objectives=("accuracy_loss", "size_mb"),
                            accuracy=AccuracyTable(T, kind="proxy"))
    C_all, _, size = _all_combos(p)
    rows = np.arange(p.encoding.n_layers)[None, :]
    acc = np.concatenate([T[c][rows, C_all].sum(axis=1) for c in range(3)])
    size = np.tile(size, 3)
    want = np.column_stack([acc, size])[_brute_front(acc, size)]
    assert len(want) > 20 and {0, 2} <= {c for c in range(3) for f in want    # both unskipped methods contribute
                                         if np.isclose(f[0], T[c][rows, C_all].sum(axis=1), rtol=1e-12).any()}
    X, n = exact_genomes(p)
    v = p.evaluate_all(X)
    got = np.column_stack([v["accuracy_loss"], v["size_mb"]])
    got = got[np.lexsort(got.T)]
    assert n == len(got) == len(want)
    np.testing.assert_allclose(got, want[np.lexsort(want.T)], rtol=1e-12)
    Xt, n_t = exact_genomes(p, max_points=10)
    assert len(Xt) == 10 and n_t == n


# -- ILP ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("structured", [False, True])
@pytest.mark.parametrize("cost", ["size_mb", "bops", "latency_ms"])
def test_ilp_matches_brute_force(tiny_model, toy_hw, cost, structured):
    p = _random_table_problem(tiny_model, toy_hw, seed=1, structured=structured,
                              pinned={"fc3": {"activation_bits": 16}})
    C_all, acc, c = _all_combos(p, cost)
    table, offset = cost_table(p, cost)
    for q in (0.0, 0.1, 0.35, 0.7, 1.0):
        budget = float(np.quantile(c, q))
        x = ilp_solve(p, budget, cost=cost)
        assert x is not None
        Cx = p.encoding.choices(x[None, :])[0]
        got_cost = offset + table[np.arange(len(Cx)), Cx].sum()
        assert got_cost <= budget * (1 + 1e-12)
        best = acc[c <= budget].min()
        got = p.evaluate_all(x)["accuracy_loss"][0]
        assert got == pytest.approx(best, rel=1e-9)
        ab = p.encoding.choice_value["activation_bits"][Cx]
        assert ab[1] == ab[2] and ab[3] == 16                  # tie and pin respected
        if cost == "size_mb":
            assert p.evaluate_all(x)["size_mb"][0] <= budget * (1 + 1e-12)


def test_ilp_infeasible_budget_returns_none(tiny_model, toy_hw, llama):
    p = _random_table_problem(tiny_model, toy_hw)
    _, _, size = _all_combos(p)
    assert ilp_solve(p, size.min() * 0.999) is None
    assert ilp_solve(p, size.min()) is not None               # exactly the cheapest config is feasible
    assert ilp_solve(llama, 100.0) is None                     # 100 MB for 7B parameters


def test_ilp_aggregated_identical_layers_match_exact_front(bert):
    F, _, _ = exact_front(bert)
    for budget in (40.0, 75.0, 130.0):
        x = ilp_solve(bert, budget)
        vals = bert.evaluate_all(x)
        assert vals["size_mb"][0] <= budget
        assert vals["accuracy_loss"][0] == pytest.approx(F[F[:, 1] <= budget, 0].min(), rel=1e-9)


def test_ilp_curve_budgets_increase_accuracy(llama):
    names, X = ilp_curve(llama, n_points=5)
    assert len(names) == len(X) >= 4 and names[0].startswith("ILP size_mb<=")
    vals = llama.evaluate_all(X)
    assert np.all(np.diff(vals["accuracy_loss"]) < 0)
    assert np.all(np.diff(vals["size_mb"]) > 0)


# -- greedy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["resnet50", "llama2-7b"])
def test_greedy_curve_monotone(model):
    p = QuantizationProblem(model, "arm_dot")
    names, X = greedy_curve(p)
    assert len(names) == len(X) > p.encoding.n_layers // 4
    vals = p.evaluate_all(X)
    assert np.all(np.diff(vals["size_mb"]) < 0)
    assert np.all(np.diff(vals["accuracy_loss"]) > 0)
    # starts at fp16 everywhere and ends at the lowest weight bits
    wb = p.encoding.choice_value["weight_bits"][p.encoding.choices(X[[0, -1]])]
    assert (wb[0] == 16).all() and (wb[1] == 2).all()
    from quantmoo.search.operators.repair import repair_genomes
    np.testing.assert_array_equal(repair_genomes(X, p.encoding), X)    # pins and ties already respected


def test_greedy_respects_pins_and_other_costs(tiny_model, toy_hw):
    p = _random_table_problem(tiny_model, toy_hw, pinned={"fc0": {"weight_bits": 8}})
    for cost in ("size_mb", "bops", "latency_ms"):
        names, X = greedy_curve(p, cost=cost)
        C = p.encoding.choices(X)
        assert (p.encoding.choice_value["weight_bits"][C[:, 0]] == 8).all()
        table, _ = cost_table(p, cost)
        total = table[np.arange(C.shape[1])[None, :], C].sum(axis=1)
        assert np.all(np.diff(total) < 0)
        assert np.all(np.diff(p.evaluate_all(X)["accuracy_loss"]) > 0)


@pytest.mark.parametrize("model, hw", [("resnet50", "arm_dot"), ("bert-base", "hexagon")])
def test_greedy_baseline_matches_full_curve(model, hw):
    """The thinned greedy baseline equals the one picked from every step's genome (the old way)."""
    from quantmoo.baselines import N_GREEDY_POINTS, baseline_genomes, greedy_path
    p = QuantizationProblem(model, hw)
    names, X = greedy_curve(p)                               # every step, as a reference
    size = p.evaluate_all(X)["size_mb"]
    path = greedy_path(p)
    table, offset = cost_table(p, "size_mb")
    np.testing.assert_allclose(path.totals(table) + offset, size, rtol=1e-12)
    targets = np.linspace(size[0], size[-1], N_GREEDY_POINTS)
    ref = np.unique(np.clip(np.searchsorted(-size, -targets, side="left"), 0, len(X) - 1))
    (got_names, got_X), = [(n, G) for kind, n, G in baseline_genomes(p) if kind == "greedy"]
    assert got_names == [names[i] for i in ref]
    np.testing.assert_array_equal(got_X, X[ref])
    np.testing.assert_array_equal(path.genomes([5, 0, 5]), X[[5, 0, 5]])   # any order, repeats


def test_greedy_memory_is_linear_at_3000_layers():
    """A 2,998-layer model has ~15,000 greedy steps: one genome per step was 15,000 x 15,000 int64 (1.8 GB)."""
    import tracemalloc
    from quantmoo.baselines import greedy_path
    from quantmoo.models.transformer import from_hf_config
    cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 428, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    p = QuantizationProblem(from_hf_config(cfg), "arm_dot")
    assert p.encoding.n_layers == 2998
    tracemalloc.start()
    try:
        path = greedy_path(p)
        table, _ = cost_table(p, "size_mb")
        size = path.totals(table)
        X = path.genomes([0, len(path) // 2, len(path) - 1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(path) > 4 * p.encoding.n_layers
    assert X.shape == (3, p.n_var) and np.all(np.diff(size) < 0)
    assert peak < 100e6          # quadratic would be len(path) * n_var * 8 bytes > 1.5 GB


# -- llama.cpp rules ------------------------------------------------------------------------------
def test_use_more_bits_n32_by_hand():
    # n/8 = 4: blocks 0-3, 28-31, and (i - 4) % 3 == 2 -> 6, 9, ..., 27
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27,
                                                             28, 29, 30, 31]


def test_q4_k_m_on_llama2_7b(llama):
    names, X = rule_presets(llama)
    assert names == ["llama.cpp Q8_0", "llama.cpp Q6_K", "llama.cpp Q5_K_M", "llama.cpp Q4_K_M", "llama.cpp Q4_0",
                     "llama.cpp Q3_K_M"]
    cfg = {n: llama.encoding.decode(x).layers for n, x in zip(names, X)}
    q = cfg["llama.cpp Q4_K_M"]
    assert q["lm_head"].weight_bits == 6
    assert q["embed_tokens"].weight_bits == 4
    assert q["layers.0.self_attn.v_proj"].weight_bits == 6
    assert q["layers.4.self_attn.v_proj"].weight_bits == 4       # (4 - 4) % 3 == 0
    assert q["layers.16.self_attn.v_proj"].weight_bits == 4      # middle block
    assert q["layers.6.self_attn.v_proj"].weight_bits == 6       # (6 - 4) % 3 == 2
    assert q["layers.16.mlp.down_proj"].weight_bits == 4
    assert q["layers.30.mlp.down_proj"].weight_bits == 6
    assert q["layers.16.self_attn.q_proj"].weight_bits == 4
    assert q["layers.16.self_attn.q_proj"].weight_scheme == "asymmetric"      # Q4_K: scale + min
    assert q["layers.6.self_attn.v_proj"].weight_scheme == "symmetric"        # Q6_K
    assert all(lq.activation_bits == 16 for lq in q.values())
    assert all(lq.granularity == "per_group" for lq in q.values())
    types = preset_types(llama.model, "Q4_K_M")
    assert sum(t == "Q6_K" for t in types.values()) == 16 + 16 + 1
    assert all(lq.weight_bits == 8 for lq in cfg["llama.cpp Q8_0"].values())
    q40 = cfg["llama.cpp Q4_0"]
    assert q40["lm_head"].weight_bits == 6 and q40["layers.3.self_attn.v_proj"].weight_bits == 4
    size = llama.evaluate_all(X)["size_mb"]
    assert size[4] < size[3] < size[0]                                          # Q4_0 < Q4_K_M < Q8_0


def test_rules_nearest_bits_gpt2_and_non_llm():
    p = QuantizationProblem("gpt2", "arm_dot", space=SearchSpace(weight_bits=(3, 4, 8), activation_bits=(8,)))
    names, X = rule_presets(p)
    q = p.encoding.decode(X[names.index("llama.cpp Q4_K_M")]).layers
    assert q["lm_head"].weight_bits == 8          # 6 -> nearest of {4, 8}: tie, the higher
    assert q["h.0.attn.c_attn"].weight_bits == 8  # fused qkv is attn_v-like; block 0 gets more bits
    assert q["h.1.attn.c_attn"].weight_bits == 4
    assert q["h.11.mlp.c_proj"].weight_bits == 8  # ffn_down of the last block
    assert all(lq.activation_bits == 8 for lq in q.values())                  # 16 not allowed: max
    names, X = rule_presets(QuantizationProblem("resnet50", "arm_dot"))
    assert names == [] and X.shape[0] == 0


# -- random search ------------------------------------------------------------------------------------
def test_random_search_reproducible(tiny_model, toy_hw):
    p = QuantizationProblem(tiny_model, toy_hw, objectives=("accuracy_loss", "size_mb", "latency_ms"))
    X1, F1, h1 = random_search(p, 2500, seed=3, batch_size=1000)
    X2, F2, h2 = random_search(p, 2500, seed=3, batch_size=1000)
    np.testing.assert_array_equal(X1, X2)
    assert h1 == h2
    X3, _, _ = random_search(p, 2500, seed=4, batch_size=1000)
    assert not np.array_equal(X1, X3)
    assert [h["n_eval"] for h in h1] == [1000, 2000, 2500]
    assert all(b["hypervolume"] >= a["hypervolume"] for a, b in zip(h1, h1[1:]))
    vals = p.evaluate_all(X1)
    np.testing.assert_allclose(np.column_stack([vals[o] for o in p.objectives]), F1)
    # mutually non-dominated
    le = (F1[:, None, :] <= F1[None, :, :]).all(-1) & (F1[:, None, :] < F1[None, :, :]).any(-1)
    assert not le.any()


def test_random_search_respects_constraints(tiny_model, toy_hw):
    p = QuantizationProblem(tiny_model, toy_hw, objectives=("accuracy_loss", "size_mb"),
                            constraints={"accuracy_loss": 5.0})
    X, F, h = random_search(p, 1000, seed=0)
    assert len(X) and (F[:, 0] <= 5.0).all()
    assert h[-1]["n_feasible"] < 1000


# -- standard baselines -------------------------------------------------------------------------------
def test_standard_baselines_llama_fast(llama):
    standard_baselines(llama)                      # warm-up (imports)
    t = time.perf_counter()
    base = standard_baselines(llama)
    assert time.perf_counter() - t < 1.0
    kinds = {b["kind"] for b in base}
    assert kinds == {"uniform", "greedy", "ilp", "rules"}
    for b in base:
        assert set(b) == {"name", "kind", "objectives", "compression_ratio", "config"}
        assert set(b["objectives"]) >= {"accuracy_loss", "size_mb", "latency_ms", "energy_mj"}
        assert len(b["config"]["layers"]) == llama.encoding.n_layers
    q4km = next(b for b in base if b["name"] == "llama.cpp Q4_K_M")
    assert q4km["config"]["layers"]["lm_head"]["weight_bits"] == 6


def test_standard_baselines_cnn_has_no_rules():
    base = standard_baselines(QuantizationProblem("resnet50", "arm_dot"))
    assert {b["kind"] for b in base} == {"uniform", "greedy", "ilp"}
