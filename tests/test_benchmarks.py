"""The benchmark scripts run (tiny settings), so they cannot rot; and what they print is checked.

``minilm-l6`` never runs here (too slow); the Optuna rows are checked only when Optuna is
installed (a benchmark-only dependency).
"""
import math

import pytest

from benchmarks._common import figure_dir
from benchmarks import (bench_architectures, bench_cost_model, bench_efficiency, bench_levels, bench_search,
                        bench_speed, bench_targets, run_all)


@pytest.fixture(autouse=True)
def _scratch(tmp_path_factory, monkeypatch):
    """Figures and proxy tables go to temporary directories, never to benchmarks/figures."""
    monkeypatch.setenv("QUANTMOO_BENCH_FIGURES", str(tmp_path_factory.getbasetemp() / "figures"))
    monkeypatch.setenv("QUANTMOO_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bench-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_cost_model_bench_tiny():
    r = bench_cost_model.run(n=50, n_ref=2, repeat=1)
    text = bench_cost_model.report(r)
    assert "vectorised / floor" in text and r["t_ref"] > r["t_vec"]


def test_search_bench_tiny():
    sep = bench_search.separable(models=("bert-base",), n_gen=3)
    ops = bench_search.operators(models=("resnet50",), hardware=("hexagon",), seeds=range(1), n_gen=3, pop=20)
    sp = {"median_s": 0.0, "times": [0.0], "n_front": 0, "n_eval": 0}
    text = bench_search.report(sp, sep, ops)
    assert "exact" in text and sep[0]["ratio"] <= 1.0 + 1e-9


def test_table1_targets_tiny():
    r = bench_targets.run(targets=("hexagon", "arm_neon"), pop_size=12, n_gen=2)
    rows = {(x["target"], x["row"]): x for x in r["rows"]}
    assert {"FP16", "uniform W8A8", "uniform W4A16", "llama.cpp Q4_K_M", "evolved knee"} <= {x["row"] for x in r["rows"]}
    # FP16 is 2 bytes per parameter (+ the fp16 non-quantized parameters): half of FP32
    assert rows[("hexagon", "FP16")]["compression"] == pytest.approx(2.0, rel=1e-3)
    assert rows[("hexagon", "uniform W8A8")]["size_gb"] < rows[("hexagon", "FP16")]["size_gb"] / 1.9
    assert all(x["kind"] == "prior" for x in r["rows"])
    assert r["min_gb"] < min(x["size_gb"] for x in r["rows"])
    assert any(p[3] == "source" for p in r["prov"]) and any("estimate" in p[3] for p in r["prov"])
    bench_targets.FINDINGS.clear()
    text = bench_targets.report(r, "tiny")
    assert "Table 1" in text and "(prior)" in text and "memory_bandwidth_gbs" in text
    assert "claim does NOT hold" in text                  # 7B at FP32 is not 7 GB
    assert bench_targets.FINDINGS and (figure_dir() / "table1_llama2_7b_targets.png").is_file()


def test_table2_architectures_tiny():
    zoo = bench_architectures.zoo_part(("gpt2",), (1.0,), pop_size=16, n_gen=3, bisect=6)
    (r,) = zoo
    # nothing beats the exact separable front; the ILP is a lower bound on it too
    assert r["search"] <= r["exact"] * (1 + 1e-9) and r["ilp"] <= r["exact"] * (1 + 1e-9)
    assert r["kind"] == "prior" and r["uniform"][0][1] == pytest.approx(4.0, rel=0.05)
    text = bench_architectures.main(["--tiny"])
    assert "Table 2" in text and "HAWQ-style ILP" in text and "| digits | <= 1 |" in text


def test_table3_levels_tiny():
    res = bench_levels.run_model("digits", pop_size=12, n_gen=3, max_front=5)
    levels = {x["level"] for x in res["rows"]}
    assert levels == {"INT8", "INT4", "INT2", "mixed 4/8", "mixed 2/3/4"}
    int8 = next(x for x in res["rows"] if x["level"] == "INT8")
    assert 3.5 < int8["comp"] < 4.0 and math.isfinite(int8["loss"])
    # the mixed fronts only use the allowed weight bits
    text = bench_levels.report([res], "tiny")
    assert "measured loss" in text and "brief claims" in text and "does not hold" in text.lower()


def test_table4_efficiency_tiny():
    r = bench_efficiency.run_part("A", "resnet18", seeds=1, pop=16, n_gen=3)
    ceiling = r["exact"]["hv"]
    for m in ("quantmoo", "pymoo", "random"):
        assert 0 < r["hist"][m][0][-1]["hypervolume"] <= ceiling + 1e-9
    if bench_efficiency.have_optuna():
        h = r["hist"]["optuna"][0]
        assert h[-1]["n_eval"] == r["n_eval"] and 0 < h[-1]["hypervolume"] <= ceiling + 1e-9
    text = bench_efficiency.report([r], "tiny")
    assert "Table 4" in text and "optuna" in text and "exact" in text


def test_table5_speed_tiny():
    text = bench_speed.main(["--tiny"])
    assert "Table 5" in text and "cold / warm" in text and "peak RSS" in text
    assert bench_speed.FINDINGS


def test_run_all_skips_missing_module(monkeypatch, tmp_path):
    monkeypatch.setattr(run_all, "SECTIONS", [("bench_targets", "Table 1"), ("bench_not_written_yet", "Later")])
    monkeypatch.setattr(bench_targets, "SETTINGS", {"tiny": dict(targets=("arm_dot",), pop_size=12, n_gen=2)})
    out = tmp_path / "r.md"
    run_all.main(["--tiny", "--out", str(out)])
    text = out.read_text()
    assert "## Table 1" in text and "Skipped" in text and "bench_not_written_yet" in text
    assert "Closing note" in text and "--tiny" in text


def test_reliability_and_fuzz_benches_tiny():
    from benchmarks import bench_fuzz, bench_reliability
    text = bench_reliability.main(["--tiny"])
    assert "fronts different from the uninterrupted run" in text and "| **0** |" in text
    assert "lost runs" in text
    import re
    tried, refused, crashed, resumed = map(int, re.search(r"\| all \| (\d+) \| \*\*(\d+)\*\* \| (\d+) \| (\d+) \|",
                                                           text).groups())
    assert tried == refused >= 30 and crashed == resumed == 0 and "Pickle payloads executed: **none**" in text
    text = bench_fuzz.main(["--tiny"])
    assert "| **total** | 60 |" in text and text.count("| 0 |") >= 6


def test_run_all_only_replaces_sections_in_place():
    old = "# head\n\nintro\n\n## Table 1\n\nold one\n\n## Table 2\n\nold two\n\n## Closing note: x\n\nold note\n"
    new = "# head2\n\n## Table 2\n\nnew two\n\n## Closing note: x\n\nnew note\n"
    out = run_all.splice(old, new, "2026-01-01")
    assert "old one" in out and "new two" in out and "old two" not in out
    assert "old note" in out and "new note" not in out and "regenerated alone on 2026-01-01" in out
    assert out.startswith("# head\n")
    # a section the file does not have yet is added at the end, not dropped
    out = run_all.splice(old, "# h\n\n## Table 9\n\nbrand new\n", "2026-01-02")
    assert out.rstrip().endswith("brand new") and "old two" in out


def test_published_bench_cites_and_predicts():
    from benchmarks import bench_published
    r = bench_published.run("tiny")
    text = bench_published.report(r)
    for x in r["rows"]:
        assert x["url"] in text and 0 < x["predicted"] < x["peak_only"]   # achievable < peak
    # llama2-7b at 4,096 tokens: the fp16 cache is 2 * 32 * 32 * 128 * 4096 * 2 B = 2,147.5 MB
    assert "| 4096 | fp16 | 3,823.5 | 2,147.5 |" in text
    # the MLC q4f16_ft row (llama2-7b): int4 linears with one fp16 scale per output channel, embedding and LM
    # head int4 with one fp16 scale per 32 weights, 65 fp16 RMSNorm vectors of 4,096
    mlc = next(x for x in r["rows"] if "q4f16_ft" in x["what"])
    lin, eh = 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008), 2 * 32000 * 4096
    scales = 32 * (4 * 4096 + 2 * 11008 + 4096) * 2 + eh // 32 * 2
    assert mlc["size_mb"] * 1e6 == pytest.approx(lin / 2 + eh / 2 + scales + 65 * 4096 * 2)


def test_agreement_bench_prefill_disagrees_more_than_decode():
    from benchmarks import bench_agreement
    rows = {w: bench_agreement.agreement(bench_agreement.quantmoo_model("gpt2", o), "arm_dot", 16, 4)
            for w, o in (("decode", {}), ("prefill", {"mode": "prefill", "prefill_tokens": 512}))}
    assert rows["prefill"]["size_mb|latency_ms"] < rows["decode"]["size_mb|latency_ms"]


@pytest.mark.slow
def test_bench_loop_side_by_side_tiny(capsys):
    from pathlib import Path
    from benchmarks import bench_loop
    root = Path(bench_loop.__file__).resolve().parent.parent
    assert bench_loop.main(["--against", str(root), "--repeat", "1", "--pop-size", "8", "--n-gen", "2"]) == 0
    out = capsys.readouterr().out
    assert "same front for the same seed: yes" in out and "ratio this / reference" in out


def test_bench_write_tiny_writes_both_forms():
    from benchmarks import bench_write
    text = bench_write.main(["--tiny"])
    assert "| resnet18 | 21 |" in text and "write compact (s)" in text


def test_ort_latency_bench_tiny():
    pytest.importorskip("onnxruntime")
    from benchmarks import bench_ort_latency
    r = bench_ort_latency.run("tiny")
    (m,) = r["models"]
    # the input timed is the spec's workload (batch 1 of 64 standardised pixels)
    assert m["workload"]["batch"] == 1 and m["feed_shape"] == {"x": (1, 64)}
    labels = [x["config"] for x in m["rows"]]
    assert labels[:5] == list(bench_ort_latency.uniform_configs(__import__("quantmoo").zoo.load("digits")))
    assert any(lab.startswith("front") for lab in labels)
    assert all(x["predicted"] > 0 and x["measured"] > 0 for x in m["rows"])
    s = bench_ort_latency.stats(m["rows"])
    assert s["n"] == len(labels) and 0 <= s["within10"] <= s["within20"] <= 1 and -1 <= s["tau"] <= 1
    text = bench_ort_latency.report(r)
    assert "Kendall tau" in text and "minilm-l6 is not measured" in text
    # the profiler saw the kernels of the W16A16 config: a Gemm (fused with Relu or not) per layer
    ((model, cfg, k, layer_ms, pred),) = r["kernels"]
    assert cfg == "W16A16 (fp16)" and sum(k.get(op, (0, 0))[0] for op in ("Gemm", "FusedGemm")) == 4
    assert 0 < layer_ms and "of the node time in ops that are not a layer" in text
    assert (figure_dir() / "ort_latency_scatter.png").is_file()


def test_ort_latency_stats_by_hand():
    from benchmarks.bench_ort_latency import stats
    rows = [dict(predicted=p, measured=m) for p, m in ((1.05, 1.0), (2.3, 2.0), (6.0, 3.0))]   # +5%, +15%, +100%
    s = stats(rows)
    assert (s["within10"], s["within20"]) == (1 / 3, 2 / 3) and s["mape"] == pytest.approx(0.15)
    assert s["tau"] == pytest.approx(1.0) and stats(rows[::-1][:1] + rows[:1])["tau"] == pytest.approx(1.0)


def test_inloop_bench_peers_spend_their_budget_through_the_cache(tmp_path):
    """AMQ-style, Optuna and random search each request exactly N real evaluations; a second method asking
    for the same genomes is served by the shared cache (charged, not re-run)."""
    import numpy as np
    import quantmoo
    from benchmarks import bench_inloop as bi
    from quantmoo.accuracy.cache import EvalCache
    from quantmoo.accuracy.tables import prior_table
    from quantmoo.search.problem import QuantizationProblem
    from quantmoo.search.space import SearchSpace
    model = quantmoo.zoo.load("digits")
    space = SearchSpace(weight_bits=(2, 4, 8), activation_bits=(8,), weight_schemes=("symmetric",),
                        activation_schemes=("asymmetric",), granularities=("per_channel",), calibrations=("min_max",))
    problem = QuantizationProblem(model, "arm_dot", space, objectives=("accuracy_loss", "size_mb"),
                                  accuracy=prior_table(model, space.bind(model)))
    cache = EvalCache(tmp_path / "cache")
    measure = bi.Measurer(problem, model, cache)
    asked = []

    def counting(X):
        asked.append(len(X))
        return measure(X)

    X, loss = bi.amq_style(problem, counting, 12, 0, pop_size=12, n_gen=3)
    assert len(X) == sum(asked) == 12 and np.isfinite(loss).all()
    assert len(np.unique(X, axis=0)) == 12
    asked.clear()
    X, loss = bi.random_search(problem, counting, 12, 0)
    assert sum(asked) == 12
    runs = cache.misses
    bi.random_search(problem, counting, 12, 0)          # the same genomes again: all from the cache
    assert sum(asked) == 24 and cache.misses == runs
    hv2, hv3, raw = bi.scores(problem, {2: np.array([50.0, 1.0]), 3: np.array([50.0, 1.0, 1.0])}, X, loss)
    assert 0 < hv2 <= 1 and 0 < hv3 <= 1 and raw >= hv2   # raw: a loss below 0 adds volume
    pytest.importorskip("optuna")
    asked.clear()
    X, loss = bi.optuna_nsga2(problem, counting, 12, 0)
    assert len(X) == sum(asked) == 12


def test_bench_ablation_same_start_tiny():
    """Every variant starts from the same seeded population; pymoo's duplicate elimination removes the
    same rows as quantmoo's, so that variant reproduces the full set's run exactly."""
    from benchmarks import bench_ablation
    res = bench_ablation.ablation(problems=(("resnet18 / hexagon", "resnet18", "hexagon", False, 12, 3),),
                                  variants=("quantmoo", "duplicates=pymoo", "pymoo", "-one_point"), seeds=range(1))
    runs = res[0]["runs"]
    assert len({r[0]["hv0"] for r in runs.values()}) == 1
    assert len({r[0]["n_eval"] for r in runs.values()}) == 1
    assert runs["duplicates=pymoo"][0]["hv"] == runs["quantmoo"][0]["hv"]
    assert all(r[0]["hv"] >= r[0]["hv0"] > 0 for r in runs.values())
    text = bench_ablation.report(res, range(1), "cmd")
    assert "| `pymoo` |" in text and "Total CPU" in text


def test_smollm2_front_comparison_by_hand():
    """Per preset: the lowest measured KL at equal or smaller size, and the paired per-window noise."""
    from benchmarks import bench_smollm2_front as b

    def m(kls):
        return {"kl_mean": sum(kls) / len(kls), "kl_windows": kls, "perplexity": 17.0, "top1_agreement": 0.9}
    r = {"front": [{"size_mb": 50.0, "proxy": 0.3, "measured": m([0.2, 0.4])},
                   {"size_mb": 90.0, "proxy": 0.2, "measured": m([0.1, 0.3])},
                   {"size_mb": 100.0, "proxy": 0.1, "measured": m([0.0, 0.1])}],
         "presets": [{"name": "llama.cpp Q4_0", "size_mb": 95.0, "proxy": 0.25, "measured": m([0.3, 0.3])},
                     {"name": "llama.cpp Q3_K_M", "size_mb": 40.0, "proxy": 0.5, "measured": m([0.5, 0.5])}]}
    c = b.compare(r)
    q4, q3 = c["rows"]
    # Q4_0 (95 MB): the 90 MB point (KL 0.2) beats the 50 MB one (0.3); differences -0.2 and 0 -> mean -0.1,
    # s.e. = std([-0.2, 0], ddof=1) / sqrt(2) = 0.1
    assert q4["best"]["size_mb"] == 90.0 and q4["diff"] == pytest.approx(-0.1) and q4["se"] == pytest.approx(0.1)
    assert q4["wins"] and q3["best"] is None and not q3["wins"] and c["n_wins"] == 1
    tau, n = b.tau_in_preset_range(r)
    assert n == 2 and tau == pytest.approx(1.0)   # 50 and 90 MB lie in [0.9 * 40, 1.05 * 95]


def test_inloop_bench_rows_name_ties_and_methods_not_run():
    """hv_rows: methods left out by --methods say "not run"; medians equal at the printed digits are a tie."""
    from benchmarks import bench_inloop as bi
    run = lambda v: (50, (v, v / 2, v))
    rows = {50: [{"out": {"pv": run(0.88012), "il": run(0.88014)}},
                 {"out": {"pv": run(0.70), "il": run(0.71)}},
                 {"out": {"pv": run(0.90), "il": run(0.89)}}]}
    (row,) = bi.hv_rows("digits", rows, 0)
    assert row[3:10] == ["0.8801", "0.8801"] + ["not run"] * 5
    assert row[10] == "proxy + validation = in-loop" and row[11] == "in-loop: 1.0000" and row[12] == "2/3"
    # the 3-objective table compares the 3-objective in-loop run with the best method that is not ours
    for x, v in zip(rows[50], (0.95, 0.30, 0.80)):
        x["out"]["il3"] = (50, (v, v, v))
    (row,) = bi.hv_rows("digits", rows, 1, own="il3")      # pv's 3-objective scores: 0.44006, 0.35, 0.45
    assert row[5] == "0.8000" and row[10] == "in-loop, 3 objectives"
    assert row[11] == f"in-loop, 3 objectives: {0.80 / 0.44006:.4f}" and row[12] == "2/3"


def test_inloop_bench_counts_baselines_beaten_by_hand():
    """beaten: a baseline counts as beaten only by a measured point of equal or smaller size with a lower loss;
    an equal loss there counts as matched; NaN (a failed evaluation) never counts."""
    import numpy as np
    from benchmarks import bench_inloop as bi
    X = np.array([[0], [1], [2], [3]])
    loss = np.array([5.0, 3.0, np.nan, 1.0])
    size = {0: 1.0, 1: 2.0, 2: 0.5, 3: 4.0}
    size_of = lambda G: np.array([size[int(g[0])] for g in G])
    base = (np.array([1.0, 2.0, 3.0, 0.9, 4.0]), np.array([6.0, 3.0, 2.0, 9.0, 0.5]))
    # 1.0: 5 < 6 beaten; 2.0: 3 == 3 matched only; 3.0: best at <= 3.0 is 3 > 2; 0.9: only the NaN point; 4.0: 1 > 0.5
    assert bi.beaten(X, loss, size_of, base) == (1, 2)
    rows = {50: [{"seed": 0, "dom": {"rules": {"il": (1, 2), "n": 5}}}]}
    assert bi.dominance_rows("m", rows) == [["m", 50, 0, "llama.cpp presets", 5, "1 (2)", "not run"]]


def test_inloop_bench_evopress_switches_llama_cpp_types():
    """EvoPress-style level switches work in a llama.cpp space (its level gene is the type, not the bits):
    every offspring stays within its size target and differs from the parent in two layers' types at most."""
    import numpy as np
    import quantmoo
    from benchmarks import bench_inloop as bi
    from quantmoo.accuracy.tables import prior_table
    model = quantmoo.zoo.load("llama2-7b")
    space = bi._space("smollm2-135m")
    run = bi.proxy_run(model, space, prior_table(model, space.bind(model)), 0, 20, 5)
    problem = run.problem

    def measure(X):    # a stand-in loss: the proxy
        return problem.evaluate_all(np.asarray(X))["accuracy_loss"]

    X, loss = bi.evopress_style(run, measure, 12, 0, n_targets=2)
    assert 2 <= len(X) <= 12 and np.isfinite(loss).all()
    C = problem.encoding.choices(X)
    near = [min((C[i] != C[j]).sum() for j in range(i)) <= 2 for i in range(1, len(C))]
    assert sum(near) >= len(C) - 2          # all but the two targets' parents are one level switch away


def test_inloop_bench_heldout_tau_leaves_out_the_runs_own_points():
    """heldout_tau scores only genomes the in-loop run did not measure (and no failed ones); with the measured loss
    equal to the proxy, the proxy and both surrogates rank the held-out points perfectly."""
    import numpy as np
    import quantmoo
    from benchmarks import bench_inloop as bi
    from quantmoo.accuracy.tables import prior_table
    from quantmoo.search.problem import QuantizationProblem
    model = quantmoo.zoo.load("resnet18")
    problem = QuantizationProblem(model, "arm_dot", None, objectives=("accuracy_loss", "size_mb"),
                                  accuracy=prior_table(model, quantmoo.SearchSpace().bind(model)))
    X = np.random.default_rng(0).integers(problem.xl, problem.xu + 1, size=(30, problem.n_var))
    y = problem.evaluate_all(X)["accuracy_loss"]
    records = [{"genome": x.tolist(), "loss": float(v), "chosen_by": "design" if i < 8 else "ehvi"}
               for i, (x, v) in enumerate(zip(X[:20], y[:20]))]
    held_y = y.copy()
    held_y[25] = np.nan                                   # a failed evaluation is not scored
    n, proxy, start, end = bi.heldout_tau(problem, records, X[15:], held_y[15:])
    assert n == 9                                         # rows 20-29 minus the failed one; 15-19 are the run's own
    assert proxy == pytest.approx(1.0) and start > 0.9 and end > 0.9
    assert bi.heldout_tau(problem, records, X[:20], y[:20]) is None


def test_inloop_bench_probe_counts_baselines_beaten_by_the_best_proxy_candidates():
    """probe_baselines measures, per baseline, the k best-proxy candidates no larger (not the baseline itself):
    a baseline whose measured loss is above the best such candidate's counts as beaten; loss 0 is the floor."""
    import types
    import numpy as np
    import quantmoo
    from benchmarks import bench_inloop as bi
    from quantmoo.accuracy.tables import prior_table
    from quantmoo.search.problem import QuantizationProblem
    model = quantmoo.zoo.load("resnet18")
    problem = QuantizationProblem(model, "arm_dot", None, objectives=("accuracy_loss", "size_mb"),
                                  accuracy=prior_table(model, quantmoo.SearchSpace().bind(model)))
    X = np.random.default_rng(1).integers(problem.xl, problem.xu + 1, size=(40, problem.n_var))
    run = types.SimpleNamespace(problem=problem, evaluated=[X[:30]], archive=types.SimpleNamespace(X=X[30:]))
    measure = lambda G: problem.evaluate_all(np.asarray(G))["accuracy_loss"]
    v = problem.evaluate_all(X)
    big = int(np.argmax(v["size_mb"]))
    base = X[[big, big]]
    # the largest genome with a loss above everything (beaten) and with loss 0 (the floor: never beaten)
    assert bi.probe_baselines(run, base, np.array([1e9, 0.0]), measure, 3) == (1, 1)
    small = int(np.argmin(v["size_mb"]))                  # nothing else is no larger: not beaten
    assert bi.probe_baselines(run, X[[small]], np.array([1e9]), measure, 3) == (0, 0)


def _tables(text):
    """A bench_inloop report without its header line (time stamp, CPU of the run) and its CPU table."""
    text = text.split("\n", 1)[1]
    return text[:text.index("CPU seconds")] + text[text.index("Raw measured"):]


def test_inloop_bench_merges_seeds_saved_by_separate_runs(tmp_path, capsys):
    """Seeds run in separate processes (``--save``) and merged (``--merge``) give the tables of one run over all
    of them; the saved file is JSON, not a pickle."""
    import json
    from benchmarks import bench_inloop as bi
    base = ["--tiny", "--methods", "pv,il"]
    bi.main(base + ["--seeds", "1", "--save", str(tmp_path / "b.json")])
    bi.main(base + ["--seeds", "0", "--save", str(tmp_path / "a.json")])
    both = bi.main(base + ["--seeds", "0,1"])
    merged = bi.main(["--merge", f"{tmp_path / 'b.json'},{tmp_path / 'a.json'}"])
    capsys.readouterr()
    assert set(json.loads((tmp_path / "a.json").read_text())) == {"digits"}
    assert _tables(merged) == _tables(both) and "| digits | 10 | 2 |" in merged


def test_inloop_bench_merge_joins_the_methods_of_one_seed_run_in_separate_processes(tmp_path, capsys):
    """One seed's methods run in two processes (e.g. the slow peers later) merge to the tables of one run."""
    from benchmarks import bench_inloop as bi
    base = ["--tiny", "--seeds", "0"]
    bi.main(base + ["--methods", "pv", "--save", str(tmp_path / "a.json")])
    bi.main(base + ["--methods", "rnd,pv", "--save", str(tmp_path / "b.json")])
    one = bi.main(base + ["--methods", "pv,rnd"])
    merged = bi.main(["--merge", f"{tmp_path / 'a.json'},{tmp_path / 'b.json'}"])
    capsys.readouterr()
    assert _tables(merged) == _tables(one)
    row = next(line for line in merged.splitlines() if line.startswith("| digits | 10 |"))
    assert "not run" not in row.split("|")[10] and "not run" in row      # random joined; il etc. still not run


def test_exact_gap_bench_never_finds_nsga2_below_the_exact_front():
    """The dynamic program's front is exact: no hypervolume above it, and at every size no proxy loss below it
    (every band's median ratio >= 1). NSGA-II's own front stays above it; the default search reports it (digits'
    943 points are all joined: every ratio is 1)."""
    from benchmarks import bench_exact_gap as g
    nsga, ex = g.gap_rows("digits", [0], pop_size=20, n_gen=5)
    for row in (nsga, ex):
        ratios = [float(c.split(" / ")[0]) for c in row[6:10] if c != "none"]
        assert len(ratios) == 4 and min(ratios) >= 1 - 1e-9 and float(row[5]) <= 1 + 1e-9
    assert max(float(c.split(" / ")[0]) for c in nsga[6:10]) > 1   # 5 generations of 20 do not reach it
    assert {c.split(" (")[0] for c in ex[6:10]} == {"1.000 / 1.000"} and ex[5] == "1.00000"


@pytest.mark.parametrize("module, argv, named", [
    ("bench_inloop", ["--budgte", "200"], "--budgte"),                 # a typo used to run the default digits bench
    ("bench_inloop", ["--methods", "pv,xx"], "pv, il, il3, amq, evo, opt, rnd"),
    ("bench_inloop", ["--seeds", "0,one"], "--seeds"),
    ("bench_exact_gap", ["--models", "resnet50"], "digits, open-nsfw, minilm-l6, smollm2-135m"),
])
def test_bench_command_lines_reject_bad_flags_by_name(module, argv, named, capsys):
    """A misspelt flag or a bad value stops the benchmark with one line naming it (and the allowed values) before
    anything is measured; it used to be ignored and the default run started."""
    import importlib
    bench = importlib.import_module(f"benchmarks.{module}")
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and named in capsys.readouterr().err
