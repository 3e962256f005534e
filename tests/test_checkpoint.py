"""Issue 17 section 3: checkpoints that cannot lie (checksum, binding to the run) and cannot run code (no pickle)."""
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import quantmoo
from quantmoo import cli
from quantmoo.errors import QuantmooError
from quantmoo.search import checkpoint as ck
from quantmoo.search.run import SearchRun, resume_search


def _checkpointed(directory, model="resnet18", hardware="arm_dot", steps=1, **kw):
    run = SearchRun(model, hardware, **{"pop_size": 8, "n_gen": 4, "seed": 0, **kw}).setup()
    for _ in range(steps):
        run.step()
    run.checkpoint(directory)
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small checkpoint (resnet18 on arm_dot, 1 generation) and its bytes."""
    d = _checkpointed(tmp_path_factory.mktemp("ck") / "ck")
    return d, (d / ck.CHECKPOINT_FILE).read_bytes()


class Payload:
    """Unpickling this writes the marker file: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_checkpoint_is_a_plain_npz_without_objects(saved):
    d, data = saved
    assert not (d / "checkpoint.pkl").exists()
    with np.load(d / ck.CHECKPOINT_FILE, allow_pickle=False) as z:     # no member needs pickle
        assert all(z[k].dtype != object for k in z.files)
        header = json.loads(bytes(z["header"]).decode())
    assert header["binding"]["model"] == "resnet18" and header["binding"]["hardware"] == "arm_dot"
    assert header["binding"]["algorithm"] == "nsga2" and header["binding"]["seed"] == 0
    summary = json.loads((d / ck.SUMMARY_FILE).read_text())
    assert {k: summary[k] for k in header["binding"]} == header["binding"]


def test_a_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "marker"
    blob = pickle.dumps(Payload(marker))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "checkpoint.pkl").write_bytes(blob)            # the old format: refused unread
    with pytest.raises(QuantmooError, match="checkpoint.pkl.*(pickle|code)"):
        resume_search(legacy)
    named = tmp_path / "named"
    named.mkdir()
    (named / ck.CHECKPOINT_FILE).write_bytes(blob)            # a pickle under the new name
    with pytest.raises(QuantmooError):
        resume_search(named)
    # an npz whose header member is a pickled object array, sealed with a valid checksum (a
    # checksum is no signature: anyone can recompute it), is still refused unread
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        with zf.open("header.npy", "w") as f:
            np.lib.format.write_array(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / ck.CHECKPOINT_FILE).write_bytes(ck._seal(buf.getvalue()))
    with pytest.raises(QuantmooError):
        resume_search(crafted)
    assert not marker.exists()
    assert cli.main(["search", "--resume", str(legacy), "--no-progress"]) == 2
    assert not marker.exists()


def test_every_single_bit_flip_is_refused(saved, tmp_path):
    _, data = saved
    d = tmp_path / "flip"
    d.mkdir()
    rng = np.random.default_rng(0)
    # offsets all over the file, plus the zip directory and the checksum at its end
    offsets = np.unique(np.concatenate([rng.integers(0, len(data), 150), np.arange(len(data) - 200, len(data), 7),
                                        np.arange(0, 64, 5)]))
    refused = 0
    for i, off in enumerate(offsets):
        flipped = bytearray(data)
        flipped[off] ^= 1 << int(rng.integers(8))
        (d / ck.CHECKPOINT_FILE).write_bytes(bytes(flipped))
        with pytest.raises(QuantmooError, match="damaged"):
            SearchRun.resume(d)
        refused += 1
    assert refused == len(offsets) > 150
    assert cli.main(["search", "--resume", str(d), "--no-progress"]) == 2     # the command line: exit 2
    for n in (0, 10, len(data) // 2, len(data) - 1):            # truncated by a full disk or a copy
        (d / ck.CHECKPOINT_FILE).write_bytes(data[:n])
        with pytest.raises(QuantmooError, match="damaged|truncated"):
            SearchRun.resume(d)
    (d / ck.CHECKPOINT_FILE).write_bytes(data)                   # the intact file resumes
    assert SearchRun.resume(d).n_done == 1


def test_another_runs_checkpoint_is_refused_naming_the_difference(saved, tmp_path, capsys):
    d0, data = saved
    other = _checkpointed(tmp_path / "other", hardware="hexagon")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / ck.SUMMARY_FILE).write_bytes((d0 / ck.SUMMARY_FILE).read_bytes())            # run A's summary
    (mixed / ck.CHECKPOINT_FILE).write_bytes((other / ck.CHECKPOINT_FILE).read_bytes())  # run B's state
    with pytest.raises(QuantmooError, match=r"hardware.*hexagon.*arm_dot") as e:
        resume_search(mixed)
    assert "model resnet18 on hexagon" in str(e.value) and "model resnet18 on arm_dot" in str(e.value)
    assert str(e.value).split("different runs (")[1].split(")")[0] == "hardware hexagon vs arm_dot"
    assert cli.main(["search", "--resume", str(mixed), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hexagon" in err and "Traceback" not in err
    # another seed and algorithm
    seeded = _checkpointed(tmp_path / "seeded", seed=7, algorithm="ga")
    (mixed / ck.CHECKPOINT_FILE).write_bytes((seeded / ck.CHECKPOINT_FILE).read_bytes())
    with pytest.raises(QuantmooError, match=r"different runs \(algorithm ga vs nsga2; seed 7 vs 0\)"):
        resume_search(mixed)
    # without a summary the array file's header is the source of truth
    (mixed / ck.SUMMARY_FILE).unlink()
    (mixed / ck.CHECKPOINT_FILE).write_bytes(data)
    assert SearchRun.resume(mixed).problem.hardware.name == "arm_dot"


def test_stale_temporary_files_are_removed_on_the_next_save(tmp_path, monkeypatch):
    import os
    d = tmp_path / "ck"
    run = SearchRun("resnet18", "arm_dot", pop_size=8, n_gen=3).setup()
    run.step()
    monkeypatch.setattr(os, "replace", lambda src, dst: None)     # killed before the rename
    run.checkpoint(d)
    monkeypatch.undo()
    left = sorted(p.name for p in d.iterdir())
    assert len(left) == 2 and all(n.startswith((".checkpoint.npz.", ".checkpoint.json.")) for n in left)
    mine = [".checkpoint.pkl.abcd_123", ".checkpoint.npz.notes", "checkpoint.npz.bak", ".checkpoint.npz.ABCDEFGH",
            "notes.txt"]
    for n in mine:
        (d / n).write_text("user file")
    (d / ".checkpoint.npz.zzzzzzzz").mkdir()                     # a directory is never removed
    run.step()
    run.checkpoint(d)
    names = {p.name for p in d.iterdir()}
    assert names == {ck.CHECKPOINT_FILE, ck.SUMMARY_FILE, ".checkpoint.npz.zzzzzzzz", *mine} - {
        ".checkpoint.pkl.abcd_123"}
    assert resume_search(d, progress=False).history[:2] == run.history


def test_unwritable_checkpoint_location_is_found_before_the_search(tmp_path, monkeypatch, capsys):
    from quantmoo.search import run as run_mod
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")

    def no_search(self):
        raise AssertionError("the search started")
    monkeypatch.setattr(run_mod.SearchRun, "setup", no_search)
    with pytest.raises(QuantmooError, match="checkpoint"):
        quantmoo.search("resnet18", "arm_dot", pop_size=8, n_gen=2, checkpoint=blocker / "ck", progress=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "--model", "resnet18", "--hardware", "arm_dot", "--n-gen", "2", "--pop-size", "8",
                     "--checkpoint", "file/ck", "--no-progress", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "file/ck" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]   # the check leaves nothing behind
    ok = tmp_path / "new" / "ck"
    ck.check_writable(ok)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("kw, stop", [
    (dict(algorithm="nsga3", pop_size=16, n_gen=25, seed=2), 3),   # needs NSGA-III's ideal/nadir points restored
    (dict(algorithm="nsga2", pop_size=12, n_gen=6, seed=1, operators="pymoo"), 2),
    (dict(algorithm="ga", pop_size=12, n_gen=6, seed=1, selection="roulette", weights={"size_mb": 2.0}), 3),
    # (loss, size): the exact front joins the resumed result as the uninterrupted one; False is kept on resume
    (dict(objectives=("accuracy_loss", "size_mb"), pop_size=12, n_gen=5, seed=1), 2),
    (dict(objectives=("accuracy_loss", "size_mb"), pop_size=12, n_gen=5, seed=1, exact_start=False), 2),
])
def test_resume_is_identical_for_more_settings(tmp_path, kw, stop):
    ref = quantmoo.search("resnet18", "arm_dot", progress=False, baselines=False, **kw)
    run = SearchRun("resnet18", "arm_dot", baselines=False, **kw).setup()
    for _ in range(stop):
        run.step()
    run.checkpoint(tmp_path)
    res = resume_search(tmp_path, progress=False)
    assert res.history == ref.history
    assert np.array_equal([s.x for s in res.front], [s.x for s in ref.front])


def _same_state(a, b, path="algorithm", seen=None):
    """Recursively compare two object graphs (a restored algorithm with the original)."""
    from pymoo.core.problem import Problem
    seen = set() if seen is None else seen
    if id(a) in seen or isinstance(a, Problem):        # the problem is rebuilt (its own tests)
        return
    seen.add(id(a))
    if isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, path
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape, path
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a, b)):
                _same_state(x, y, f"{path}[{i}]", seen)
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same_state(a[k], b[k], f"{path}.{k}", seen)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same_state(x, y, f"{path}[{i}]", seen)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    elif isinstance(a, (bool, int, float, str, np.generic, type(None), set, frozenset)):
        assert a == b, path
    elif callable(a) and not hasattr(a, "__dict__") or isinstance(a, type) or hasattr(a, "__code__"):
        assert a is b or getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None), path
    else:
        assert type(a) is type(b), path
        _same_state(vars(a), vars(b), path, seen)


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "unsga3", "smsemoa", "ga"])
def test_restored_algorithm_state_equals_the_saved_one(tmp_path, algorithm):
    """Every attribute of the pymoo algorithm (population, survival, termination, generator, ...)
    comes back, so a pymoo update that adds state fails here, not in a user's resumed run."""
    run = SearchRun("resnet18", "arm_dot", algorithm=algorithm, pop_size=12, n_gen=6, seed=3,
                    constraints={"latency_ms": 40.0}).setup()
    for _ in range(3):
        run.step()
    run.checkpoint(tmp_path)
    restored = SearchRun.resume(tmp_path).algorithm
    original = run.algorithm
    for k in ("off", "start_time"):                    # not stored: replaced before use / wall clock
        vars(original).pop(k), vars(restored).pop(k)
    _same_state(original, restored)


def test_resume_keeps_the_log_of_evaluated_genomes(tmp_path):
    """evaluations.csv after a resume is the uninterrupted run's: the log is part of the checkpoint."""
    from quantmoo.search.run import SearchRun
    ref = quantmoo.search("resnet18", "arm_dot", pop_size=10, n_gen=4, seed=3, progress=False, baselines=False)
    run = SearchRun("resnet18", "arm_dot", pop_size=10, n_gen=4, seed=3, baselines=False).setup()
    run.step()
    run.step()
    run.checkpoint(tmp_path / "ck")
    again = SearchRun.resume(tmp_path / "ck")
    while again.has_next():
        again.step()
    res = again.result()
    assert ref.evaluations.keys() == res.evaluations.keys()
    for k in ref.evaluations:
        np.testing.assert_array_equal(ref.evaluations[k], res.evaluations[k])
    assert len(ref.evaluations["generation"]) == ref.history[-1]["n_eval"]
