"""Output directories: quantmoo never deletes what a user owns, and a result is complete or absent.

Each test reproduces a failure found by the fault audit (issue 17, sections 1 and 2).
"""
import json
import multiprocessing as mp
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import quantmoo
from quantmoo.cli import main
from quantmoo.errors import QuantmooError
from quantmoo.results import outdir
from quantmoo.results.result import load_result

SEARCH = ["search", "--model", "resnet18", "--hardware", "arm_dot", "--pop-size", "8", "--n-gen", "2",
          "--no-plot", "--no-progress"]


@pytest.fixture(scope="module")
def small_result():
    return quantmoo.search("resnet18", "arm_dot", pop_size=8, n_gen=2, seed=0, progress=False, baselines=False)


def _user_files(d: Path):
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    (d / "sub" / "f").write_text("also mine")


def test_non_empty_user_directory_is_refused_before_work(tmp_path, capsys):
    d = tmp_path / "d"
    _user_files(d)
    assert main(SEARCH + ["--out", str(d)]) == 2
    err = capsys.readouterr().err
    assert "not empty and holds no quantmoo result" in err and "notes.txt" in err
    assert (d / "notes.txt").read_text() == "mine" and (d / "sub" / "f").read_text() == "also mine"
    assert sorted(os.listdir(d)) == ["notes.txt", "sub"]
    # --overwrite does not make a user's directory quantmoo's
    assert main(SEARCH + ["--out", str(d), "--overwrite"]) == 2
    assert sorted(os.listdir(d)) == ["notes.txt", "sub"]


def test_out_is_the_current_project_directory(tmp_path, monkeypatch, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "main.py").write_text("print('my project')")
    monkeypatch.chdir(proj)
    for out in (str(proj), ".", str(tmp_path)):
        assert main(SEARCH + ["--out", out]) == 2
        assert "current directory" in capsys.readouterr().err
    assert (proj / "main.py").read_text() == "print('my project')"


def test_empty_out_is_an_error(capsys):
    assert main(SEARCH + ["--out", ""]) == 2
    assert "'--out' must name a directory" in capsys.readouterr().err


def test_checkpoint_inside_out_is_refused(tmp_path, capsys):
    assert main(SEARCH + ["--checkpoint", str(tmp_path / "run" / "ck"), "--out", str(tmp_path / "run")]) == 2
    assert "inside '--out'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_replacing_needs_overwrite_and_keeps_user_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(SEARCH + ["--out", str(run)]) == 0
    assert not (tmp_path / "run.checkpoint").exists()     # the automatic checkpoint is removed once written
    (run / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(SEARCH + ["--out", str(run), "--seed", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(SEARCH + ["--out", str(run), "--seed", "1", "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert json.loads((run / "results.json").read_text())["seed"] == 1
    marker = json.loads((run / outdir.MARKER).read_text())
    assert "results.json" in marker["files"] and "notes.txt" not in marker["files"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]    # no temporaries left


def test_permissions_follow_the_umask(tmp_path, small_result):
    old = os.umask(0o022)
    try:
        new = small_result.save(tmp_path / "new")
        assert stat.S_IMODE(new.stat().st_mode) == 0o755
        assert stat.S_IMODE((new / "results.json").stat().st_mode) == 0o644
        existing = tmp_path / "existing"
        existing.mkdir()
        existing.chmod(0o750)
        small_result.save(existing)
        assert stat.S_IMODE(existing.stat().st_mode) == 0o750
    finally:
        os.umask(old)


def test_file_outputs_need_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(SEARCH + ["--out", str(run)]) == 0
    knee = tmp_path / "knee.yaml"
    knee.write_text("my own notes\n")
    assert main(["export", str(run), "--out", str(knee)]) == 2
    assert "--overwrite" in capsys.readouterr().err and knee.read_text() == "my own notes\n"
    assert main(["export", str(run), "--out", str(knee), "--overwrite"]) == 0
    assert "layers" in knee.read_text()
    assert stat.S_IMODE(knee.stat().st_mode) & 0o044      # not the 0600 of a temp file


def test_demo_out_follows_the_same_rules(tmp_path):
    d = tmp_path / "d"
    _user_files(d)
    with pytest.raises(QuantmooError, match="holds no quantmoo result"):
        quantmoo.cli.demo(out=str(d))
    assert sorted(os.listdir(d)) == ["notes.txt", "sub"]


def test_legacy_result_without_marker_is_recognised(tmp_path, small_result):
    run = small_result.save(tmp_path / "run")
    (run / outdir.MARKER).unlink()
    (run / "mine.txt").write_text("x")
    assert outdir.own_files(run) >= {"results.json", "front.yaml"}
    assert "mine.txt" not in outdir.own_files(run)
    small_result.save(run, overwrite=True)
    assert (run / "mine.txt").read_text() == "x"


def test_kill_between_the_two_renames_is_repaired(tmp_path, small_result, monkeypatch):
    """Where no atomic exchange exists, a kill between the renames leaves OUT missing; the next
    write (or reader of the parent) moves the old version back before anything else."""
    run = small_result.save(tmp_path / "run")
    before = (run / "results.json").read_text()
    monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def dying_rename(src, dst):
        calls.append((src, dst))
        real_rename(src, dst)
        if str(dst).endswith("/x"):
            raise KeyboardInterrupt   # killed right after moving the old version aside

    monkeypatch.setattr(outdir.os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        small_result.save(run, overwrite=True)
    monkeypatch.setattr(outdir.os, "rename", real_rename)
    assert not run.exists()       # the state the audit found
    assert load_result(run).front        # a reader repairs it first
    assert (run / "results.json").read_text() == before
    small_result.save(run, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_exchange_is_used_on_linux(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "fa").write_text("a")
    (b / "fb").write_text("b")
    if not outdir._exchange(a, b):
        pytest.skip("this filesystem or system has no renameat2(RENAME_EXCHANGE)")
    assert (a / "fb").exists() and (b / "fa").exists()


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path, small_result):
    dead = tmp_path / ".run.tmp-dead0000"
    dead.mkdir()
    (dead / "results.json").write_text("{}")
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    (dead / outdir._PID_FILE).write_text(f"{p.stdout.strip()} {socket.gethostname()}")
    user = tmp_path / ".run.tmp-notes"     # a user's file of the same pattern, not a directory
    user.write_text("x")
    small_result.save(tmp_path / "run")
    assert not dead.exists() and user.exists()


def _save_many(args):
    d, n, seed = args
    res = quantmoo.load_result(d + ".src")
    errors = []
    for _ in range(n):
        try:
            res.save(d, overwrite=True)
        except Exception as e:   # noqa: BLE001 - the test counts every failure
            errors.append(f"{type(e).__name__}: {e}")
    return errors


def test_concurrent_saves_are_serialised(tmp_path, small_result):
    src = small_result.save(tmp_path / "run.src")
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        errors = pool.map(_save_many, [(str(tmp_path / "run"), 40, s) for s in range(2)])
    assert errors == [[], []]
    assert load_result(tmp_path / "run").objectives == small_result.objectives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.src"]
    assert src.exists()


def test_disk_full_keeps_the_search_and_says_how_to_write_it(tmp_path, capsys, monkeypatch):
    from quantmoo.results import result as result_mod

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(result_mod.SearchResult, "save",
                        lambda self, d, **k: outdir.replace_dir(d, full, overwrite=k.get("overwrite", False)))
    run = tmp_path / "run"
    assert main(SEARCH + ["--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert f"quantmoo search --resume {run}.checkpoint --out {run}" in err
    assert not run.exists()
    monkeypatch.undo()
    assert main(["search", "--resume", f"{run}.checkpoint", "--out", str(run), "--no-plot", "--no-progress"]) == 0
    assert load_result(run).front


def test_a_user_file_under_a_name_quantmoo_writes_is_never_replaced(tmp_path, small_result):
    run = small_result.save(tmp_path / "run")
    (run / "front.csv").unlink()
    marker = json.loads((run / outdir.MARKER).read_text())
    marker["files"].remove("front.csv")
    (run / outdir.MARKER).write_text(json.dumps(marker))
    (run / "front.csv").write_text("my own table")      # the user's file, same name as quantmoo's
    with pytest.raises(QuantmooError, match="'front.csv', which quantmoo did not write"):
        small_result.save(run, overwrite=True)
    assert (run / "front.csv").read_text() == "my own table"
