"""The benchmark scripts run (tiny settings), so they cannot rot."""
import pytest

from benchmarks import bench_cost_model, bench_search, bench_targets


def test_cost_model_bench_tiny():
    r = bench_cost_model.run(n=50, n_ref=2, repeat=1)
    text = bench_cost_model.report(r)
    assert "vectorised / floor" in text and r["t_ref"] > r["t_vec"]


def test_targets_table_has_six_targets():
    rows = bench_targets.run()
    assert len({r[0] for r in rows}) == 6 and len(rows) == 24


def test_search_bench_tiny():
    sep = bench_search.separable(models=("bert-base",), n_gen=3)
    ops = bench_search.operators(models=("resnet50",), hardware=("hexagon",), seeds=range(1), n_gen=3, pop=20)
    sp = {"median_s": 0.0, "times": [0.0], "n_front": 0, "n_eval": 0}
    text = bench_search.report(sp, sep, ops)
    assert "exact" in text and sep[0]["ratio"] <= 1.0 + 1e-9
