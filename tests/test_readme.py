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


def test_readme_user_model_example_runs():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your own NumPy model", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README-user-model", "exec"), {"__name__": "readme_example"})
