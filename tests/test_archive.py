"""The external Pareto archive against a brute-force reference, and the loop's use of it."""
import pickle

import numpy as np
import pytest

from quantmoo.search.archive import ParetoArchive, dominance, dominates, thin, thin_epsilon


def _dominates_ref(A, B):
    return np.array([[bool(np.all(a <= b) and np.any(a < b)) for b in B] for a in A], dtype=bool).reshape(
        len(A), len(B))


def _nondominated_ref(X, F):
    """Unique genomes whose objectives no evaluated point dominates (per genome, by hand)."""
    out = {}
    for x, f in zip(X, F):
        if not any(np.all(g <= f) and np.any(g < f) for g in F):
            out[tuple(x)] = tuple(f)
    return out


@pytest.mark.parametrize("m", [1, 2, 4])
def test_dominates_matches_reference(m):
    rng = np.random.default_rng(m)
    A, B = rng.integers(0, 3, (7, m)).astype(float), rng.integers(0, 3, (5, m)).astype(float)   # many ties
    np.testing.assert_array_equal(dominates(A, B), _dominates_ref(A, B))
    assert dominates(A[:0], B).shape == (0, 5)
    ab, ba = dominance(A, B)
    np.testing.assert_array_equal(ab, _dominates_ref(A, B))
    np.testing.assert_array_equal(ba, _dominates_ref(B, A).T)


def test_archive_is_the_nondominated_set_of_everything_added():
    rng = np.random.default_rng(0)
    table = rng.integers(0, 4, (3, 4, 3)).astype(float)   # F = sum over 3 genes of a small table: ties, repeats
    table[0, 3, 1] = np.nan        # genomes with gene 0 == 3: a NaN objective neither dominates nor is dominated
    arch = ParetoArchive(n_var=3, n_obj=3, chunk=4)   # small chunks: several per update
    seen_X, seen_F = [], []
    for _ in range(30):
        X = rng.integers(0, 4, (9, 3))
        F = table[np.arange(3), X].sum(axis=1)
        arch.add(X, F)
        seen_X.append(X)
        seen_F.append(F)
        ref = _nondominated_ref(np.concatenate(seen_X), np.concatenate(seen_F))
        got = {tuple(x): tuple(f) for x, f in zip(arch.X.tolist(), arch.F.tolist())}
        assert len(got) == len(arch) == len(ref) and got.keys() == ref.keys()
        np.testing.assert_array_equal([got[k] for k in ref], [ref[k] for k in ref])   # NaN == NaN here
    assert arch.X.dtype == np.int64


def test_archive_pickles_and_accepts_an_older_state():
    arch = ParetoArchive(2, 2)
    arch.add(np.array([[0, 1], [1, 0], [1, 1]]), np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]]))
    again = pickle.loads(pickle.dumps(arch))
    np.testing.assert_array_equal(again.X, arch.X)
    old = ParetoArchive.__new__(ParetoArchive)     # an archive pickled with X as a plain int64 attribute
    old.__setstate__({"X": arch.X, "F": arch.F.copy(), "chunk": 512})
    old.add(np.array([[0, 1], [0, 0]]), np.array([[1.0, 2.0], [0.5, 0.5]]))
    assert old.X.tolist() == [[0, 0]]              # the repeat is recognised, the dominating point wins


def test_search_loop_evaluates_each_generation_once():
    """The archive reuses the objectives pymoo computed for the offspring (it evaluated them twice)."""
    from quantmoo.search.run import SearchRun
    run = SearchRun("resnet18", "arm_dot", pop_size=10, n_gen=4, seed=0, baselines=False).setup()
    calls = []
    evaluate_all = run.problem.evaluate_all
    run.problem.evaluate_all = lambda X: calls.append(len(X)) or evaluate_all(X)
    while run.has_next():
        run.step()
    assert len(calls) == 4            # pymoo's own evaluation of each generation, nothing more


def _thin_ref(F, k):
    """The greedy epsilon-net by its definition, one row and one objective at a time."""
    n, m = F.shape
    lo, hi = F.min(axis=0), F.max(axis=0)
    nF = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
    eps = lambda chosen, j: min(max(nF[c, i] - nF[j, i] for i in range(m)) for c in chosen)
    chosen = []
    for i in range(m):
        j = int(np.argmin(nF[:, i]))
        chosen += [j] if j not in chosen else []
    while len(chosen) < k:
        e = [eps(chosen, j) for j in range(n)]
        j = int(np.argmax(e))
        if e[j] <= 0:
            break
        chosen.append(j)
    return sorted(chosen), max(0.0, max(eps(chosen, j) for j in range(n)))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_thin_is_the_greedy_epsilon_net(m):
    rng = np.random.default_rng(m)
    F = rng.random((80, m))
    F[:, -1] = 1.5 - F[:, :-1].sum(axis=1) + 0.05 * rng.random(80)      # mostly non-dominated, like a front
    idx, eps = _thin_ref(F, 15)
    assert list(thin(F, 15)) == idx
    assert thin_epsilon(F, idx) == pytest.approx(eps, abs=1e-15) and eps > 0
    assert list(thin(F, 80)) == list(range(80)) and thin_epsilon(F, range(80)) == 0.0
