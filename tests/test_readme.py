"""The README's two commands are the ones CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [l.strip() for l in block.strip().splitlines() if l.strip()]


def test_readme_starts_with_exactly_two_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert cmds[0].startswith("pip install . && quantmoo ")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci.splitlines()


def _python_blocks():
    import re
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every Python example in the README runs as written (in a scratch directory)."""
    blocks = _python_blocks()
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        exec(compile(code, f"README-example-{i}", "exec"), {"__name__": f"readme_example_{i}"})
