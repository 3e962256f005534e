"""What a researcher reads: the printed front, the compact result files and the CSV tables (issue 18)."""
import csv
import io
import json

import numpy as np
import pytest
import yaml

import quantmoo
from quantmoo.cli import main
from quantmoo.results.result import SearchResult, load_result


@pytest.fixture(scope="module")
def res():
    return quantmoo.search("resnet18", "arm_dot", pop_size=30, n_gen=10, seed=0, progress=False)


def test_summary_always_shows_the_knee_the_ends_and_the_baselines(res):
    k = res.knee_index()
    text = res.summary(max_rows=5)
    rows = [l.split()[0] for l in text.splitlines()[1:] if l.split() and l.split()[0].rstrip("*").isdigit()]
    assert f"{k}*" in rows and len(rows) <= 6
    order = sorted(range(len(res.front)), key=lambda i: res.front[i].objectives["size_mb"])
    assert rows[0].rstrip("*") == str(order[0]) and rows[-1].rstrip("*") == str(order[-1])
    assert "baselines:" in text and "uniform W8A8 per-channel" in text
    assert f"5 of {len(res.front)}" in text or f"6 of {len(res.front)}" in text


def test_summary_flags_a_prior_loss_beyond_100_pp(res):
    worst = max(b["objectives"]["accuracy_loss"] for b in res.baselines)
    assert worst > 100    # the prior's ILP point at the smallest size (the audit's 113.9 pp case)
    text = res.summary()
    assert ">100!" in text and "beyond what accuracy can lose" in text
    assert f"{worst:.4g}" not in text.split("baselines:")[1].split("!")[0]


def test_front_has_no_duplicate_objective_vectors(res):
    F = res.F
    assert len(np.unique(F, axis=0)) == len(F)


def test_results_json_is_compact_and_round_trips(res, tmp_path):
    run = res.save(tmp_path / "run")
    d = json.loads((run / "results.json").read_text())
    assert d["format"] == "quantmoo-results/2" and d["layers"] == list(res.front[0].config.layers)
    p0 = d["front"][0]
    assert "config" not in p0 and len(p0["choices"]) == len(d["layers"])
    # the per-layer choice of point 0 decodes to its config, by hand
    lq = res.front[0].config.layers[d["layers"][3]]
    assert d["layer_choices"][p0["choices"][3]] == lq.to_dict()
    back = load_result(run)
    assert [s.config.to_dict() for s in back.front] == [s.config.to_dict() for s in res.front]
    assert [b["config"] for b in back.baselines] == [b["config"] for b in res.baselines]
    assert back.knee_index() == res.knee_index()
    # the old full form (/1) still loads
    assert SearchResult.from_dict(json.loads(json.dumps(res.to_dict(), default=float))).F.shape == res.F.shape


def test_front_yaml_is_readable_yaml(res, tmp_path):
    run = res.save(tmp_path / "run")
    y = yaml.safe_load((run / "front.yaml").read_text())
    assert y["format"] == "quantmoo-front/2" and y["model"] == "resnet18"
    assert len(y["configs"]) == len(res.front)
    for c, s in zip(y["configs"], res.front):
        cfg = {n: y["layer_choices"][i] for n, i in zip(y["layers"], c["choices"])}
        assert cfg == {n: lq.to_dict() for n, lq in s.config.layers.items()}
        assert c["calibration"] == s.config.calibration


def test_front_csv_has_one_row_per_point_with_per_layer_bits(res, tmp_path):
    run = res.save(tmp_path / "run")
    rows = list(csv.DictReader(io.StringIO((run / "front.csv").read_text())))
    assert len(rows) == len(res.front)
    names = list(res.front[0].config.layers)
    for r, s in zip(rows, res.front):
        assert float(r["size_mb"]) == pytest.approx(s.objectives["size_mb"])
        assert r["accuracy_kind"] == "prior"
        assert [int(r[f"wbits:{n}"]) for n in names] == s.config.column("weight_bits")
        assert [int(r[f"abits:{n}"]) for n in names] == s.config.column("activation_bits")
    assert sum(r["knee"] == "1" for r in rows) == 1 and rows[res.knee_index()]["knee"] == "1"


def test_evaluations_csv_lists_every_evaluated_genome(res, tmp_path):
    run = res.save(tmp_path / "run")
    rows = list(csv.DictReader(io.StringIO((run / "evaluations.csv").read_text())))
    assert len(rows) == res.history[-1]["n_eval"] == d_n(run)
    assert {int(r["generation"]) for r in rows} == set(range(1, 11))
    z = np.load(run / "evaluations.npz", allow_pickle=False)
    assert z["weight_bits"].shape == (len(rows), len(res.front[0].config.layers))
    # every front point was evaluated: its objective vector is among the rows
    ev = {(round(float(r["size_mb"]), 6), round(float(r["latency_ms"]), 6)) for r in rows}
    assert all((round(s.objectives["size_mb"], 6), round(s.objectives["latency_ms"], 6)) in ev for s in res.front)


def d_n(run):
    return json.loads((run / "results.json").read_text())["n_evaluations"]


def test_search_json_includes_each_points_config(tmp_path, capsys):
    assert main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "8", "--n-gen", "2",
                 "--no-plot", "--no-progress", "--json", "--out", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] == str((tmp_path / "run" / "results.json").resolve())
    p = out["front"][0]
    assert set(p) >= {"objectives", "config"} and p["config"]["layers"]
    assert quantmoo.QuantConfig.from_dict(p["config"]).layers
