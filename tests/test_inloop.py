"""Measured-in-the-loop search (quantmoo.search.inloop) on digits with a tiny space and budget."""
import json
import warnings

import numpy as np
import pytest

import quantmoo
from quantmoo.accuracy.tables import prior_table
from quantmoo.errors import QuantmooError
from quantmoo.search.inloop import (choose_batch, expected_hvi, fit_surrogate, proxy_terms, refine_picks,
                                   search_measured)
from quantmoo.search.problem import QuantizationProblem
from quantmoo.search.space import SearchSpace

SPACE = SearchSpace(weight_bits=(2, 3, 4, 8), activation_bits=(8, 16), weight_schemes=("symmetric",),
                    activation_schemes=("asymmetric",), granularities=("per_channel",),
                    calibrations=("min_max", "percentile"))
KW = dict(space=SPACE, pop_size=12, n_gen=3, batch=2)


@pytest.fixture(scope="module")
def digits():
    return quantmoo.zoo.load("digits")


@pytest.fixture(scope="module")
def table(digits):
    # the prior stands in for the proxy (the sensitivity pass takes ~20 s): the loop is the same
    return prior_table(digits, SPACE.bind(digits))


def _run(model, table, budget=9, seed=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return search_measured(model, "arm_dot", budget=budget, accuracy=table, seed=seed, **{**KW, **kw})


class Counting:
    """The digits evaluator, counting every real evaluation."""

    def __init__(self, ev):
        self.ev, self.name, self.spec, self.calls = ev, ev.name, ev.spec, []

    def details(self, config):
        self.calls.append(config.config_hash())
        return self.ev.details(config)


def test_budget_is_spent_exactly_and_every_evaluation_is_recorded(digits, table, monkeypatch):
    counting = Counting(digits.evaluator)
    monkeypatch.setattr(digits, "evaluator", counting)
    res = _run(digits, table, budget=9)
    il = res.meta["inloop"]
    recs = il["evaluations"]
    assert il["budget"] == il["n_evaluations"] == len(recs) == len(counting.calls) == 9
    assert [r["config_hash"] for r in recs] == counting.calls          # in order, each once
    assert len(set(counting.calls)) == 9
    assert [r["index"] for r in recs] == list(range(9))
    assert all(r["seconds"] > 0 and "loss" in r for r in recs)
    # the first round is the thinned proxy front (no surrogate yet); a later round is the net's next points
    # (no prediction) or the surrogate's choice (a prediction)
    assert recs[0]["round"] == 0 and recs[0]["predicted_loss"] is None and recs[0]["chosen_by"] == "design"
    assert recs[-1]["round"] >= 1 and recs[-1]["chosen_by"] in ("net", "ehvi")
    assert all((r["predicted_std"] is not None and r["predicted_std"] > 0) == (r["chosen_by"] == "ehvi") for r in recs)
    assert [h["n_eval"] for h in res.history][-1] == 9 and len(res.evaluations["generation"]) == 9
    assert il["measured_hypervolume"] == res.history[-1]["hypervolume"]


def test_without_fallback_every_round_is_chosen_by_the_surrogate(digits, table):
    recs = _run(digits, table, budget=9, fallback=False).meta["inloop"]["evaluations"]
    assert {r["chosen_by"] for r in recs if r["round"] >= 1} == {"ehvi"}
    assert all(r["predicted_std"] > 0 for r in recs if r["round"] >= 1)


class ProxyIsTruth(Counting):
    """'Measures' the proxy itself: the proxy ranks perfectly, so the surrogate can never rank better."""

    def __init__(self, ev, problem):
        super().__init__(ev)
        self.problem = problem

    def details(self, config):
        self.calls.append(config.config_hash())
        x = self.problem.encoding.encode(config)
        return {"loss": float(self.problem.evaluate_all(x[None])["accuracy_loss"][0])}


def test_fallback_measures_what_proxy_validation_measures(digits, table, monkeypatch):
    """When the surrogate ranks no better than the proxy, every round takes the proxy front's epsilon-net:
    the budget buys exactly the points proxy + validation (thin(front, budget)) measures."""
    from quantmoo.search.archive import thin
    from quantmoo.search.run import SearchRun, drive
    run = SearchRun(digits, "arm_dot", space=SPACE, objectives=("accuracy_loss", "size_mb"), accuracy=table,
                    pop_size=KW["pop_size"], n_gen=KW["n_gen"], seed=1, baselines=False, max_front=None)
    run.setup()
    drive(run, progress=False)
    budget = 7
    assert len(run.archive.F) > budget            # the net is not exhausted
    want = {bytes(x) for x in run.archive.X[thin(run.archive.F, budget)]}
    monkeypatch.setattr(digits, "evaluator", ProxyIsTruth(digits.evaluator, run.problem))
    recs = _run(digits, table, budget=budget, seed=1, exact_start=False).meta["inloop"]["evaluations"]
    assert {r["chosen_by"] for r in recs[1:]} <= {"design", "net"} and recs[-1]["chosen_by"] == "net"
    assert {bytes(np.array(r["genome"], dtype=np.int64)) for r in recs} == want


class Flaky(Counting):
    """Fails every third evaluation."""

    def details(self, config):
        self.calls.append(config.config_hash())
        if len(self.calls) % 3 == 0:
            raise RuntimeError("flaky")
        return self.ev.details(config)


def test_failed_evaluations_count_and_are_recorded(digits, table, monkeypatch):
    flaky = Flaky(digits.evaluator)
    monkeypatch.setattr(digits, "evaluator", flaky)
    res = _run(digits, table, budget=9)
    recs = res.meta["inloop"]["evaluations"]
    assert len(recs) == len(flaky.calls) == 9 and res.meta["inloop"]["n_failed"] == 3
    failed = {r["config_hash"] for r in recs if "error" in r}
    assert len(failed) == 3 and all("flaky" in r["error"] for r in recs if "error" in r)
    assert not failed & {s.config.config_hash() for s in res.front}


def test_front_is_measured_and_nondominated(digits, table):
    res = _run(digits, table, budget=8)
    assert res.accuracy_kind == "measured" and res.meta["accuracy_meta"]["kind"] == "measured"
    loss = {r["config_hash"]: r["loss"] for r in res.meta["inloop"]["evaluations"]}
    F = res.F
    for s in res.front:   # the reported loss is the real evaluator's, recomputed here
        h = s.config.config_hash()
        assert s.objectives["accuracy_loss"] == s.measured["accuracy_loss"] == loss[h]
        assert s.objectives["accuracy_loss"] == pytest.approx(digits.evaluator.details(s.config)["loss"])
    for i in range(len(F)):
        assert not any((F[j] <= F[i]).all() and (F[j] < F[i]).any() for j in range(len(F)))
    # no measured point dominates a front point either
    pts = np.array([[loss[h], sz] for h, sz in zip(loss, res.evaluations["size_mb"])])
    for f in F:
        assert not any((p <= f).all() and (p < f).any() for p in pts)


def test_three_objectives_front_is_nondominated_in_all_three(digits, table):
    """(loss, size, latency): the acquisition works on the 3-D front; the costs come from the tables."""
    obj = ("accuracy_loss", "size_mb", "latency_ms")
    res = _run(digits, table, budget=8, objectives=obj)
    assert list(res.objectives) == list(obj) and res.meta["inloop"]["n_evaluations"] == 8
    assert res.meta["inloop"]["chosen_by"]["ehvi"] + res.meta["inloop"]["chosen_by"]["net"] > 0
    ev = res.evaluations
    pts = np.column_stack([ev["accuracy_loss"], ev["size_mb"], ev["latency_ms"]])
    F = res.F
    assert F.shape[1] == 3 and len(F) == sum(
        not any((q <= p).all() and (q < p).any() for q in pts) for p in np.unique(pts, axis=0))
    for f in F:
        assert not any((p <= f).all() and (p < f).any() for p in pts)
    assert list(F[:, 1]) == sorted(F[:, 1])


def test_refine_picks_by_hand():
    """Per target the lowest predicted losses no larger on every cost; first choices of all targets first."""
    cost = np.array([[1.0, 5.0], [2.0, 1.0], [3.0, 1.0], [0.5, 0.5], [2.0, 2.0]])
    loss = np.array([0.1, 0.2, 0.05, 0.9, 0.2])
    targets = np.array([[2.0, 2.0], [3.0, 1.0], [0.4, 9.0]])      # the last one: nothing fits
    # target 0 fits rows 1, 3, 4 (losses 0.2, 0.9, 0.2: row 1 first, smaller first cost... equal: then row);
    # target 1 fits rows 1, 2, 3 (row 2 first)
    assert refine_picks(cost, loss, targets, 1, 10).tolist() == [1, 2]
    assert refine_picks(cost, loss, targets, 2, 10).tolist() == [1, 2, 4, 3]
    assert refine_picks(cost, loss, targets, 2, 3).tolist() == [1, 2, 4]
    assert refine_picks(cost[:, :1], loss, targets[:, :1], 1, 10).tolist() == [0, 2]   # one cost: row 0 fits 2.0
    # two rankings: choice 0 of every target by the first, choice 1 by the second (here it prefers row 3)
    other = np.array([0.5, 0.3, 0.3, 0.0, 0.4])
    assert refine_picks(cost, np.stack([loss, other]), targets, 2, 10).tolist() == [1, 2, 3]
    assert refine_picks(cost, np.stack([loss, loss]), targets, 2, 10).tolist() == [1, 2, 4, 3]


def test_refine_round_measures_below_every_baseline(digits, table):
    """refine=1: the last round measures, for each greedy/ILP point, the best-predicted candidate no larger;
    the budget stays exact and the baselines joined the pool."""
    from quantmoo.baselines import baseline_genomes
    res = _run(digits, table, budget=16, refine=1)
    il = res.meta["inloop"]
    assert il["n_evaluations"] == 16 and res.meta["algorithm"]["refine"] == 1
    recs = il["evaluations"]
    ref_recs = [r for r in recs if r["chosen_by"] == "refine"]
    assert ref_recs and len({r["round"] for r in ref_recs}) == 1          # one round
    problem = QuantizationProblem(digits, "arm_dot", SPACE, objectives=("accuracy_loss", "size_mb"), accuracy=table)
    groups = {k: X for k, _, X in baseline_genomes(problem) if len(X)}
    B = np.concatenate([groups["greedy"], groups["ilp"]])
    size_b = problem.evaluate_all(B)["size_mb"]
    size_r = problem.evaluate_all(np.array([r["genome"] for r in ref_recs]))["size_mb"]
    every = problem.evaluate_all(np.array([r["genome"] for r in recs]))["size_mb"]
    # every refine pick is no larger than some baseline, and every baseline has a measured point no larger
    assert all((size_r[i] <= size_b * (1 + 1e-9)).any() for i in range(len(size_r)))
    assert len(ref_recs) == min(len(np.unique(B, axis=0)), 16 - sum(r["chosen_by"] != "refine" for r in recs))
    assert all((every <= sb * (1 + 1e-9)).any() for sb in size_b if sb >= every.min())
    # the baselines joined the candidate pool (without the exact front, which holds the ILP's points already)
    plain = _run(digits, table, budget=16, exact_start=False).meta["inloop"]["n_candidates"]
    assert _run(digits, table, budget=16, refine=1, exact_start=False).meta["inloop"]["n_candidates"] > plain


def test_seed_baselines_starts_the_proxy_search_from_the_baselines(digits, table):
    """seed_baselines=True reaches the proxy search: after one generation its front holds the greedy and ILP
    genomes (optimal on the proxy), so the initial design measures some of them; unseeded it measures none."""
    from quantmoo.baselines import baseline_genomes
    problem = QuantizationProblem(digits, "arm_dot", SPACE, objectives=("accuracy_loss", "size_mb"), accuracy=table)
    B = {tuple(x) for k, _, X in baseline_genomes(problem) if k in ("greedy", "ilp") for x in X}

    def design(res):
        return {tuple(r["genome"]) for r in res.meta["inloop"]["evaluations"] if r["chosen_by"] == "design"}
    seeded, plain = (_run(digits, table, budget=12, n_gen=1, seed=0, seed_baselines=b, exact_start=False)
                     for b in (True, False))
    assert seeded.meta["algorithm"]["proxy_search"]["seed_baselines"] is True
    assert plain.meta["algorithm"]["proxy_search"]["seed_baselines"] is False
    assert design(seeded) & B and not design(plain) & B


def test_exact_start_designs_from_the_exact_proxy_front(digits, table):
    """exact_start=True: no initial-design point is dominated in (proxy loss, size) by the exact separable front
    (NSGA-II's 3 generations alone leave points far above it); False: the design is the search's front alone."""
    from quantmoo.baselines import exact_front
    problem = QuantizationProblem(digits, "arm_dot", SPACE, objectives=("accuracy_loss", "size_mb"), accuracy=table)
    E = np.concatenate([exact_front(problem, calib=c)[0] for c in (0, 1)])

    def worst_gap(res):         # the largest amount by which an exact point beats a design point at <= its size
        d = np.array([[r["proxy_loss"], problem.evaluate_all(np.array([r["genome"]]))["size_mb"][0]]
                      for r in res.meta["inloop"]["evaluations"] if r["chosen_by"] == "design"])
        below = E[None, :, 1] <= d[:, 1:2] * (1 + 1e-12)
        return float(np.max(d[:, 0] - np.where(below, E[None, :, 0], np.inf).min(axis=1)))
    ex, plain = (_run(digits, table, budget=12, n_gen=3, seed=0, exact_start=b) for b in (True, False))
    assert ex.meta["inloop"]["n_exact"] > 0 and plain.meta["inloop"]["n_exact"] == 0
    assert ex.meta["algorithm"]["exact_start"] is True and plain.meta["algorithm"]["exact_start"] is False
    assert worst_gap(ex) <= 1e-9 < worst_gap(plain)


def test_exact_start_is_for_loss_and_size(digits, table):
    """The dynamic program solves (proxy loss, size); with latency instead of size it is not the proxy's front."""
    res = _run(digits, table, budget=4, objectives=("accuracy_loss", "latency_ms"), exact_start=True)
    assert res.meta["inloop"]["n_exact"] == 0


def test_exact_start_in_three_objectives_joins_a_thinned_exact_front(digits, table):
    """With latency as a third objective the exact (loss, size) front is thinned to as many points as the search's
    own non-dominated set before the join (~10^5 points on minilm-l6 otherwise); the join is non-dominated in all
    three objectives and keeps exact points."""
    import importlib
    inloop = importlib.import_module("quantmoo.search.inloop")
    obj = ("accuracy_loss", "size_mb", "latency_ms")
    problem = QuantizationProblem(digits, "arm_dot", SPACE, objectives=obj, accuracy=table)
    X = np.random.default_rng(0).integers(0, problem.xu + 1, size=(40, problem.n_var))
    v = problem.evaluate_all(X)
    F = np.column_stack([v[o] for o in obj])
    nd = inloop._nondominated(F)
    X, F = X[nd], F[nd]
    X2, F2, n_exact = inloop._with_exact_front(problem, obj, X, F)
    assert 0 < n_exact <= len(X)
    assert inloop._nondominated(F2).all()
    assert _run(digits, table, budget=4, objectives=obj, exact_start=True).meta["inloop"]["n_exact"] > 0


def test_same_seed_same_run(digits, table):
    a, b = _run(digits, table, seed=3), _run(digits, table, seed=3)
    strip = lambda res: [{k: v for k, v in r.items() if k not in ("seconds", "cached")}
                         for r in res.meta["inloop"]["evaluations"]]
    assert strip(a) == strip(b)
    assert np.array_equal(a.F, b.F)


def test_result_files_hold_every_evaluation(digits, table, tmp_path):
    res = _run(digits, table, budget=6)
    res.save(tmp_path / "run")
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["accuracy_kind"] == "measured" and len(r["inloop"]["evaluations"]) == 6
    back = quantmoo.load_result(tmp_path / "run")
    assert back.accuracy_kind == "measured" and np.allclose(back.F, res.F)


@pytest.mark.parametrize("kw, needle", [
    (dict(budget=0), "'budget'"), (dict(budget=2.5), "'budget'"), (dict(batch=0), "'batch'"),
    (dict(init_fraction=0), "'init_fraction'"), (dict(loss_floor="0"), "'loss_floor'"),
    (dict(fallback="yes"), "'fallback'"), (dict(refine=-1), "'refine'"), (dict(refine=True), "'refine'"),
    (dict(seed_baselines="yes"), "'seed_baselines'"), (dict(exact_start=1), "'exact_start'"),
    (dict(objectives=("accuracy_loss", "size_mb", "latency_ms", "energy_mj")), "'objectives'"),
    (dict(objectives=("size_mb", "latency_ms")), "'objectives'"),
])
def test_bad_input(digits, table, kw, needle):
    with pytest.raises(QuantmooError, match=needle):
        search_measured(digits, "arm_dot", **{"budget": 4, "accuracy": table, **KW, **kw})


def test_needs_an_evaluator():
    with pytest.raises(QuantmooError, match="evaluator"):
        search_measured("resnet18", "arm_dot", budget=4)


# -- the vectorised surrogate against per-genome loops --------------------------------------------------
@pytest.fixture(scope="module")
def problem(digits, table):
    return QuantizationProblem(digits, "arm_dot", SPACE, objectives=("accuracy_loss", "size_mb"), accuracy=table)


def _genomes(problem, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(problem.xl, problem.xu + 1, size=(n, problem.n_var))


def test_proxy_terms_sum_to_the_proxy(problem):
    X = _genomes(problem, 30)
    T = proxy_terms(problem, X)
    enc, tab = problem.encoding, problem.accuracy.table
    for x, t in zip(X, T):   # reference: one genome, one layer at a time
        c = enc.choices(x[None])[0]
        m = min(int(enc.calibration_index(x[None])[0]), tab.shape[0] - 1)
        assert np.allclose(t, [tab[m, l, c[l]] for l in range(enc.n_layers)])
    assert np.allclose(T.sum(axis=1), problem.evaluate_all(X)["accuracy_loss"])


def test_surrogate_prediction_matches_a_loop(problem):
    rng = np.random.default_rng(1)
    T = proxy_terms(problem, _genomes(problem, 40))
    y = T.sum(axis=1) * 1.3 + 0.5 * np.sqrt(T[:, 0] * T[:, 1]) + rng.normal(0, 0.1, len(T))
    sur = fit_surrogate(T[:25], y[:25], n_pairs=3)
    mean, std = sur.predict(T[25:])
    for t, mu, sd in zip(T[25:], mean, std):
        phi = [1.0, *t] + [max(0.0, sum(t) - k) for k in sur.knots] + [np.sqrt(t[i] * t[j]) for i, j in sur.pairs]
        assert mu == pytest.approx(float(np.dot(phi, sur.m)))
        noise = sur.sigma * (sum(max(v, 0.0) for v in t) + sur.delta)
        assert sd == pytest.approx(float(np.sqrt(np.dot(phi, sur.S @ phi) + noise ** 2)))
    # the correction helps: closer to the truth than the uncorrected proxy
    assert np.abs(mean - y[25:]).mean() < np.abs(T[25:].sum(axis=1) - y[25:]).mean()


def test_surrogate_loo_matches_refits_at_fixed_noise():
    """The leave-one-out shortcut equals refitting without each point (noise fixed at the floor)."""
    rng = np.random.default_rng(2)
    T = rng.uniform(0, 1, size=(12, 3))
    y = T @ np.array([1.0, 2.0, 0.5]) + 0.3
    full = fit_surrogate(T, y, n_pairs=0, n_knots=0, noise_floor=0.01)   # exact fit: the noise sits at the floor
    inner = [i for i in range(len(y)) if i not in (np.argmin(y), np.argmax(y))]   # same range, same prior
    for i in inner:
        keep = np.arange(len(y)) != i
        sub = fit_surrogate(T[keep], y[keep], n_pairs=0, n_knots=0, noise_floor=0.01)
        assert sub.sigma == pytest.approx(full.sigma, rel=1e-12)
        assert full.loo[i] == pytest.approx(sub.predict(T[i:i + 1])[0][0], rel=1e-9, abs=1e-12)


def _ehvi_reference(front, cost, mean, std, floor=-np.inf):
    """Per candidate: E[HV gain] by Gauss-Hermite quadrature over the loss, HV by moocore."""
    from quantmoo.search.run import hypervolume
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    front = np.column_stack([np.maximum(front[:, 0], floor), front[:, 1:]])
    ones = np.ones(front.shape[1])
    base = hypervolume(front, ones)
    out = []
    for c, mu, sd in zip(np.reshape(cost, (len(mean), -1)), mean, std):
        gains = [hypervolume(np.vstack([front, [max(mu + sd * zi, floor), *c]]), ones) - base for zi in z]
        out.append(float(np.dot(w, gains)))
    return np.array(out)


def test_expected_hvi_matches_quadrature():
    rng = np.random.default_rng(3)
    front = np.array([[0.8, 0.1], [0.5, 0.3], [0.2, 0.6], [0.05, 0.9], [0.6, 0.5], [1.2, 0.05]])
    cost = np.concatenate([rng.uniform(0, 1.1, 20), [0.3, 0.95]])
    mean = rng.uniform(-0.1, 1.0, len(cost))
    std = rng.uniform(0.02, 0.2, len(cost))
    got = expected_hvi(front, cost, mean, std)
    assert np.allclose(got, _ehvi_reference(front, cost, mean, std), atol=2e-4)
    # losses below a floor count as the floor (the front's and the candidate's)
    low = np.vstack([front, [[-0.05, 0.95]]])
    assert np.allclose(expected_hvi(low, cost, mean, std, floor=0.0),
                       _ehvi_reference(low, cost, mean, std, floor=0.0), atol=5e-4)   # kinks: quadrature error
    assert got[cost >= 1.0].max(initial=0) == 0.0
    # an empty front: the whole box right of and above the point is new
    assert expected_hvi(np.zeros((0, 2)), [0.5], [0.25], [1e-9])[0] == pytest.approx(0.5 * 0.75)


def test_expected_hvi_in_three_objectives_matches_quadrature():
    """Two known costs (size, latency): the grid of cells gives the exact expected gain."""
    rng = np.random.default_rng(4)
    front = np.column_stack([rng.uniform(0, 1, 9), rng.uniform(0, 1, 9), rng.uniform(0, 1, 9)])
    front = np.vstack([front, [[0.3, 1.2, 0.1]]])                     # outside the box: ignored
    cost = np.vstack([rng.uniform(0, 1.05, (25, 2)), [[0.2, 0.3]], front[0, 1:]])
    mean = rng.uniform(-0.1, 1.0, len(cost))
    std = rng.uniform(0.02, 0.2, len(cost))
    got = expected_hvi(front, cost, mean, std)
    assert np.allclose(got, _ehvi_reference(front, cost, mean, std), atol=2e-4)
    assert np.allclose(expected_hvi(front, cost, mean, std, floor=0.2, chunk=7),        # small blocks: same
                       _ehvi_reference(front, cost, mean, std, floor=0.2), atol=5e-4)
    assert got[(cost >= 1.0).any(axis=1)].max(initial=0) == 0.0
    assert expected_hvi(np.zeros((0, 3)), [[0.5, 0.2]], [0.25], [1e-9])[0] == pytest.approx(0.5 * 0.8 * 0.75)
    # the believer: a pick changes the front the next pick is scored against
    picks = choose_batch(front, cost, mean, std, 3)
    assert len(set(picks.tolist())) == 3 and picks[0] == int(np.argmax(got))


def test_batch_spreads_out():
    """With the believer, a second pick next to the first one gains little, so the batch spreads."""
    front = np.array([[0.9, 0.05], [0.1, 0.9]])
    cost = np.array([0.40, 0.41, 0.7])
    mean = np.array([0.30, 0.30, 0.20])
    std = np.full(3, 0.01)
    assert list(choose_batch(front, cost, mean, std, 2)) == [0, 2]


def test_cli_measured_budget(tmp_path, table, capsys):
    from quantmoo import cli
    (tmp_path / "space.yaml").write_text(json.dumps(SPACE.to_dict()))
    table.save(tmp_path / "t.npz")
    args = ["search", "--model", "digits", "--hardware", "arm_dot", "--space", str(tmp_path / "space.yaml"),
            "--accuracy-table", str(tmp_path / "t.npz"), "--pop-size", "12", "--n-gen", "3", "--no-progress"]
    assert cli.main(args + ["--budget", "5"]) == 2
    assert "add '--measured'" in capsys.readouterr().err
    assert cli.main(args + ["--measured", "--budget", "5", "--out", str(tmp_path / "run"), "--no-plot"]) == 0
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["accuracy_kind"] == "measured" and r["objectives"] == ["accuracy_loss", "size_mb"]
    assert r["inloop"]["n_evaluations"] == 5 == len(r["inloop"]["evaluations"])
    assert cli.main(args + ["--refine", "1"]) == 2                      # not silently ignored by a proxy run
    assert "'--refine K' applies to a measured search" in capsys.readouterr().err
    assert cli.main(args + ["--measured", "--budget", "5", "--refine", "1", "--out", str(tmp_path / "r"),
                            "--no-plot"]) == 0
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert r["inloop"]["chosen_by"]["refine"] > 0
    assert cli.main(args + ["--measured", "--budget", "5", "--seed-baselines", "--out", str(tmp_path / "s"),
                            "--no-plot"]) == 0                          # reaches the proxy search, not ignored
    r = json.loads((tmp_path / "s" / "results.json").read_text())
    assert r["algorithm"]["proxy_search"]["seed_baselines"] is True
    assert r["inloop"]["n_exact"] > 0 and r["algorithm"]["exact_start"] is True
    assert cli.main(args + ["--measured", "--budget", "5", "--no-exact-start", "--out", str(tmp_path / "x"),
                            "--no-plot"]) == 0                          # reaches search_measured
    r = json.loads((tmp_path / "x" / "results.json").read_text())
    assert r["inloop"]["n_exact"] == 0 and r["algorithm"]["exact_start"] is False
