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
    # (the CSV keeps 8 significant digits: compare within that, not by rounding, which splits ties)
    ev = np.array([(float(r["size_mb"]), float(r["latency_ms"])) for r in rows])
    for s in res.front:
        point = np.array([s.objectives["size_mb"], s.objectives["latency_ms"]])
        assert np.isclose(ev, point, rtol=1e-7, atol=0).all(axis=1).any(), s.objectives


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


# -- evaluate is honest about where its accuracy number comes from -----------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    assert main(["sensitivity", "--model", "digits", "--out", str(d / "sens.npz")]) == 0
    assert main(["search", "--model", "digits", "--hardware", "arm_dot", "--pop-size", "12", "--n-gen", "3",
                 "--accuracy-table", str(d / "sens.npz"), "--out", str(d / "run"), "--no-plot",
                 "--no-progress"]) == 0
    assert main(["export", str(d / "run"), "--out", str(d / "knee.yaml")]) == 0
    return d


def test_evaluate_without_run_uses_the_run_the_config_came_from(digits_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config",
                 str(digits_run / "knee.yaml"), "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    knee = load_result(digits_run / "run").knee()
    assert out["accuracy_kind"] == "proxy"
    assert out["accuracy_loss"] == pytest.approx(knee.objectives["accuracy_loss"], rel=1e-9)
    assert "exported from" in cap.err


def test_evaluate_measured_and_the_prior_warning(digits_run, tmp_path, capsys):
    cfg = quantmoo.QuantConfig.load(digits_run / "knee.yaml")
    bare = tmp_path / "bare.yaml"
    quantmoo.QuantConfig(cfg.layers, calibration=cfg.calibration, model="digits").save(bare)
    capsys.readouterr()
    assert main(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config", str(bare), "--json"]) == 0
    cap = capsys.readouterr()
    if json.loads(cap.out)["accuracy_kind"] == "prior":
        assert "warning: accuracy_loss is the prior noise model" in cap.err
    assert main(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config", str(bare), "--measured",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    digits = quantmoo.zoo.load("digits")
    assert out["accuracy_loss_measured"] == pytest.approx(digits.evaluator.loss(cfg))


def test_evaluate_refuses_a_config_of_another_model(tmp_path, capsys):
    llama = quantmoo.zoo.load("llama2-7b")
    cfg = quantmoo.QuantConfig.uniform(llama, 4, 8)
    cfg.save(tmp_path / "c.yaml")
    assert main(["evaluate", "--model", "llama2-7b", "--hardware", "arm_dot", "--config", str(tmp_path / "c.yaml")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "mistral-7b", "--hardware", "arm_dot", "--config",
                 str(tmp_path / "c.yaml")]) == 2
    assert "made for model 'llama2-7b', not 'mistral-7b'" in capsys.readouterr().err


# -- MLX export ------------------------------------------------------------------------------------
def test_mlx_export_maps_every_layer_to_its_module_path(tmp_path, capsys):
    from quantmoo.config import LayerQuant, QuantConfig
    from quantmoo.results import export_mlx
    llama = quantmoo.zoo.load("tinyllama-1.1b")
    g4 = LayerQuant(4, 16, "asymmetric", "asymmetric", "per_group", 64)
    layers = {n: g4 for n in llama.layer_names}
    layers["layers.0.mlp.down_proj"] = LayerQuant(8, 16, "symmetric", "asymmetric", "per_channel")
    layers["lm_head"] = LayerQuant(16, 16)
    q = export_mlx.mlx_quantization(QuantConfig(layers, model=llama.name))
    assert q["bits"] == 4 and q["group_size"] == 64
    assert q["model.layers.0.mlp.down_proj"] == {"group_size": 128, "bits": 8}
    assert q["lm_head"] is False
    assert len(q) == 4    # defaults + the two layers that differ
    notes = export_mlx.mlx_notes(QuantConfig(layers, model=llama.name))
    assert notes == {"per-channel -> groups of 128": 1, "symmetric grid -> affine": 1}
    # GGUF names map to the same module paths
    assert export_mlx.mlx_module_path("blk.3.ffn_down.weight") == "model.layers.3.mlp.down_proj"
    assert export_mlx.mlx_module_path("token_embd.weight") == "model.embed_tokens"
    with pytest.raises(quantmoo.QuantmooError, match="MLX module path"):
        export_mlx.mlx_module_path("h.0.attn.c_attn")


def test_mlx_export_from_the_cli(tmp_path, capsys):
    assert main(["search", "--model", "tinyllama-1.1b", "--hardware", "apple_ane", "--pop-size", "8", "--n-gen", "2",
                 "--no-plot", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "--format", "mlx", "--out", str(tmp_path / "q.json")]) == 0
    d = json.loads((tmp_path / "q.json").read_text())
    assert d["quantization"] == d["quantization_config"]
    knee = load_result(tmp_path / "run").knee().config
    q = d["quantization"]
    for name, lq in knee.layers.items():
        v = q.get(quantmoo.results.export_mlx.mlx_module_path(name), {"bits": q["bits"]})
        assert (v is False) == (lq.weight_bits == 16)
        if v is not False:
            assert v["bits"] == lq.weight_bits
