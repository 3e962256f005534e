"""Reading YAML/JSON files safely: every failure becomes one QuantmooError naming the file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Tuple

import yaml

from .errors import QuantmooError

#: Why a document the parsers recursed out on is rejected (they recurse once per nesting level).
_TOO_DEEP = "nested too deeply for the parser (hundreds of levels of lists/mappings)"


def read_bytes(path: Path) -> bytes:
    """A file's bytes; a missing file, a directory or an OS error is one QuantmooError naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise QuantmooError(f"File not found: {path}") from None
    except IsADirectoryError:
        raise QuantmooError(f"Expected a file, got a directory: {path}") from None
    except OSError as e:
        raise QuantmooError(f"Cannot read {path}: {e.strerror}") from None


def _read_text(path: Path) -> str:
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise QuantmooError(f"{path}: not a UTF-8 text file") from None


def _looks_like_path(s: str) -> bool:
    """A one-line string is a path if it names a file, ends like one, or cannot be a YAML
    mapping (no ``key: value`` and no flow ``{...}``): then a missing file is reported as
    such rather than as "not a mapping"."""
    if "\n" in s:
        return False
    if s.endswith((".yaml", ".yml", ".json")) or os.path.exists(s):
        return True
    return ":" not in s and not s.lstrip().startswith(("{", "["))


def load_yaml(path_or_text: Any) -> Tuple[Any, str]:
    """Parse YAML from a path (str/Path to an existing file) or from YAML text.

    Returns
    -------
    data, source : object, str
        The parsed document and a label for messages (the file name, or ``"<yaml text>"``).
    """
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and _looks_like_path(path_or_text)):
        path = Path(path_or_text)
        text, source = _read_text(path), str(path)
    elif isinstance(path_or_text, str):
        text, source = path_or_text, "<yaml text>"
    else:
        raise QuantmooError(f"Expected a path or YAML text; got {type(path_or_text).__name__}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise QuantmooError(f"{source}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise QuantmooError(f"{source}: malformed YAML: {_TOO_DEEP}") from None
    except (ValueError, OverflowError) as e:
        # PyYAML's scalar constructors raise these for an impossible date ('2021-13-45') or an
        # integer literal longer than Python's int digit limit
        raise QuantmooError(f"{source}: malformed YAML: {_one_line(e)}") from None
    if data is None:
        raise QuantmooError(f"{source}: the file is empty")
    return data, source


def load_json(path) -> Any:
    """Parse a JSON file; every failure is a QuantmooError naming the file."""
    path = Path(path)
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise QuantmooError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise QuantmooError(f"{path}: malformed JSON: {_TOO_DEEP}") from None
    except ValueError as e:  # an integer literal longer than Python's int digit limit
        raise QuantmooError(f"{path}: malformed JSON: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temp file in the same directory + rename (flushed to disk first), so a
    process killed mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file 0600: give it the mode the file has, or the umask's (0644 usually)
        os.fchmod(fd, (path.stat().st_mode & 0o7777) if path.exists() else umask_mode(0o666))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def umask_mode(base: int = 0o777) -> int:
    """``base`` with the process's umask applied (what ``mkdir``/``open`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file via a temp file + rename (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
