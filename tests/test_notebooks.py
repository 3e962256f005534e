"""The demo notebooks: stored without outputs, regenerated identically, and executed without error.

Each notebook runs in a fresh ``python3`` kernel (the kernelspec ipykernel installs into the
environment) with a temporary working directory (and ``QUANTMOO_CACHE`` pointing into it), so files a
notebook writes never land in the repository or the user's cache. ``MPLBACKEND=Agg`` keeps matplotlib headless until a notebook's ``%matplotlib inline`` renders
its figures into the outputs (checked: every plotting cell displays a figure); the repository
root is put first on ``PYTHONPATH`` so the kernel imports the quantmoo under test.
"""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300


def _generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", NB_DIR / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_all_notebooks_present():
    names = [p.stem for p in NOTEBOOKS]
    assert names == list(_generator().NOTEBOOKS), names
    assert len(names) >= 10


def test_generator_reproduces_stored_notebooks(tmp_path):
    gen = _generator()
    written = gen.write_all(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for new in written:
        stored = NB_DIR / new.name
        assert new.read_bytes() == stored.read_bytes(), (
            f"{stored.name} differs from what notebooks/make_notebooks.py generates; "
            "run python notebooks/make_notebooks.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown", "a notebook starts with a markdown introduction"
    assert nb.cells[-1].cell_type == "markdown", "a notebook ends with a markdown conclusion"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} is stored with outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} is stored with an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("QUANTMOO_DEBUG", raising=False)
    monkeypatch.setenv("QUANTMOO_CACHE", str(tmp_path / "quantmoo-cache"))   # validate()'s evaluation cache
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()   # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # every cell that draws a figure shows it (inline backend, activated by the notebook)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(k in cell.source for k in ("fig = plot_", "plt.subplots(")):
            images = [o for o in cell.outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
            assert images, f"{path.name} cell {i} drew a figure but displayed none"
    print(f"{path.name}: executed in {elapsed:.1f} s")
    # nothing was written next to the notebooks
    assert not (NB_DIR / "runs").exists()
