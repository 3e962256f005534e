"""The command line: bad input is one line and exit status 2, never a traceback."""
import json
import subprocess
import sys

import pytest

from quantmoo.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "quantmoo.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, needle", [
    (["search", "--model", "nope", "--hardware", "arm_dot"], "Unknown model 'nope'"),
    (["search", "--model", "resnet50", "--hardware", "tpu9"], "Unknown hardware 'tpu9'"),
    (["search", "--model", "resnet50", "--hardware", "arm_dot", "--objectives", "speed"], "objectives"),
    (["search", "--model", "resnet50", "--hardware", "arm_dot", "--constraint", "memory_mb<=0.5"], "impossible"),
    (["search", "--model", "resnet50", "--hardware", "arm_dot", "--constraint", "latency<=5"], "constraints"),
    (["search", "--model", "resnet50", "--hardware", "arm_dot", "--algorithm", "cmaes"], "algorithm"),
])
def test_bad_input_one_line_exit_2(args, needle):
    p = run(*args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_malformed_profile_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndevices: [unclosed\n")
    p = run("search", "--model", "resnet50", "--hardware", str(bad))
    assert p.returncode == 2 and "malformed YAML" in p.stderr and "Traceback" not in p.stderr


def test_unwritable_out_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os
        if os.access(ro, os.W_OK):   # running as root: permissions do not bind
            pytest.skip("permissions are not enforced for this user")
        p = run("search", "--model", "resnet50", "--hardware", "arm_dot", "--out", str(ro / "x"))
        assert p.returncode == 2 and "not writable" in p.stderr
    finally:
        ro.chmod(0o700)


def test_out_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = run("search", "--model", "resnet50", "--hardware", "arm_dot", "--out", str(f), "--n-gen", "1")
    assert p.returncode == 2 and "not a directory" in p.stderr


def test_models_lists_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "llama2-7b" in out and "6,738,415,616" in out


def test_search_no_baselines(tmp_path, capsys):
    assert main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "8", "--n-gen", "2",
                 "--out", str(tmp_path / "run"), "--no-plot", "--no-baselines"]) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["baselines"] == []
    assert main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--no-baselines", "--seed-baselines"]) == 2
    assert "--no-baselines" in capsys.readouterr().err


def test_search_exact_start_flag(tmp_path):
    """(accuracy_loss, size_mb): the exact front joins by default; --no-exact-start reports NSGA-II's own."""
    meta = []
    for flag in ([], ["--no-exact-start"]):
        out = tmp_path / f"run{len(flag)}"
        assert main(["search", "--model", "digits", "--hardware", "arm_dot", "--objectives", "accuracy_loss,size_mb",
                     "--pop-size", "8", "--n-gen", "2", "--out", str(out), "--no-plot", "--no-baselines", *flag]) == 0
        meta.append(json.loads((out / "results.json").read_text()))
    assert meta[0]["exact_start"]["n_front"] > 0 and meta[0]["algorithm"]["exact_start"] is True
    assert meta[1]["exact_start"] is None and meta[1]["algorithm"]["exact_start"] is False


def test_search_export_evaluate_roundtrip(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["search", "--model", "resnet50", "--hardware", "hexagon", "--pop-size", "20", "--n-gen", "5",
                 "--out", str(run_dir), "--no-plot", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    res = json.loads((run_dir / "results.json").read_text())
    k = info["knee_index"]
    assert main(["export", str(run_dir), "--index", str(k), "--out", str(tmp_path / "k.yaml")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "resnet50", "--hardware", "hexagon", "--config", str(tmp_path / "k.yaml"),
                 "--run", str(run_dir), "--json"]) == 0
    vals = json.loads(capsys.readouterr().out)
    for name, v in res["front"][k]["objectives"].items():
        assert vals[name] == v     # exactly the stored numbers


def test_help_has_examples(capsys):
    for cmd in ("search", "evaluate", "export", "models", "hardware"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example:" in capsys.readouterr().out


def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for f in ("results.json", "front.yaml", "accuracy_table.npz", "pareto.png", "pareto.pdf"):
        assert (out / f).exists(), f
    res = json.loads((out / "results.json").read_text())
    assert res["accuracy_kind"] == "proxy"
    assert all(p["measured"]["kind"] == "measured" for p in res["front"])
    assert info["kendall_tau"] is not None and info["n_front"] == len(res["front"])
    # the stored numbers are reproduced by `quantmoo evaluate --run`
    k = res["knee_index"]
    assert main(["export", str(out), "--index", str(k), "--out", str(tmp_path / "k.yaml")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config", str(tmp_path / "k.yaml"),
                 "--run", str(out), "--json"]) == 0
    vals = json.loads(capsys.readouterr().out)
    for name, v in res["front"][k]["objectives"].items():
        assert vals[name] == v


def test_demo_refuses_file_as_out(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    p = run("demo", "--out", str(f))
    assert p.returncode == 2 and "not a directory" in p.stderr


def test_missing_config_file_without_yaml_suffix_is_file_not_found(tmp_path, capsys, monkeypatch):
    """A one-line name that cannot be YAML text is a path: report the missing file, not 'not a mapping'."""
    from quantmoo import cli
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", "--model", "digits", "--hardware", "arm_dot", "--config", "knee.cfg"]) == 2
    assert "File not found: knee.cfg" in capsys.readouterr().err


def test_search_with_an_accuracy_table_from_the_sensitivity_command(tmp_path, capsys):
    """sensitivity -> search --accuracy-table -> validate --refine, all from the CLI."""
    from quantmoo import cli
    d = tmp_path
    assert cli.main(["sensitivity", "--model", "digits", "--out", str(d / "s.npz")]) == 0
    assert cli.main(["search", "--model", "digits", "--hardware", "arm_dot", "--accuracy-table", str(d / "s.npz"),
                     "--seed-baselines", "--pop-size", "20", "--n-gen", "5", "--out", str(d / "run"), "--no-plot",
                     "--no-progress"]) == 0
    r = json.loads((d / "run" / "results.json").read_text())
    assert r["accuracy_kind"] == "proxy" and (d / "run" / "accuracy_table.npz").is_file()
    assert cli.main(["validate", str(d / "run"), "--workers", "1", "--refine", "2", "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["search", "--model", "digits", "--hardware", "arm_dot", "--accuracy-table", str(d / "s.npz"),
                     "--measured"]) == 2
    assert "either '--measured' or '--accuracy-table'" in capsys.readouterr().err


def test_every_option_has_help_and_its_default():
    """Issue 18: every flag explains itself, and a non-trivial default is shown in --help."""
    from quantmoo.cli import _parser
    p = _parser()
    sub = next(a for a in p._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    missing = []
    for name, sp in sub.choices.items():
        for act in sp._actions:
            if act.option_strings and act.dest != "help" and not (act.help or "").strip():
                missing.append(f"{name} {act.option_strings[0]}")
        text = " ".join(sp.format_help().split())
        for act in sp._actions:
            d = act.default
            if act.option_strings and act.dest != "help" and isinstance(d, (int, float, str)) \
                    and not isinstance(d, bool) and d != "":
                assert f"default: {d}" in text or "default" in (act.help or ""), \
                    f"{name} {act.option_strings[0]} hides its default {d!r}"
    assert missing == []


def test_help_examples_name_files_quantmoo_writes():
    from quantmoo.cli import EXAMPLES
    assert "config_knee.yaml" not in " ".join(EXAMPLES.values())


def test_demo_progress_goes_to_stderr_and_is_quiet_off_a_terminal(tmp_path, capsys, monkeypatch):
    """Issue 18: the demo's long steps report progress on a terminal; piped, stderr stays clean."""
    from quantmoo.cli import demo
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "cache"))
    demo(out=str(tmp_path / "a"), pop_size=8, n_gen=2, progress=True)
    err = capsys.readouterr().err
    for stage in ("1/4 sensitivity", "2/4 NSGA-II search", "3/4 measured validation", "4/4 writing"):
        assert stage in err, stage
    demo(out=str(tmp_path / "b"), pop_size=8, n_gen=2)     # stderr is not a terminal under pytest
    assert "[quantmoo demo" not in capsys.readouterr().err
    # running the demo again replaces its own earlier output without --overwrite
    demo(out=str(tmp_path / "b"), pop_size=8, n_gen=2)
