"""Output directories quantmoo owns: recognise them, check them before work starts, replace them atomically.

A result directory carries a marker, ``.quantmoo-result.json``, listing the files quantmoo wrote
there. quantmoo only ever deletes or replaces those files, and only in a directory that carries
the marker (or, for results written before the marker existed, holds a ``results.json`` of the
quantmoo format; then only the file names quantmoo writes count as its own). Everything else a
user put in the directory is carried over, by hard link, into the new version.

:func:`check_output_dir` runs before any work: an empty path, the current directory, a file, a
non-empty directory that is not a quantmoo result, or an earlier result without ``overwrite`` is
refused with one line. :func:`replace_dir` writes the new version into a hidden sibling and then
swaps it in with one ``renameat2(RENAME_EXCHANGE)`` on Linux, so at every instant the directory is
either the complete old result or the complete new one. Where the exchange is not available the
swap takes two renames and a kill between them is repaired by the next write (the old version is
moved back). Writers to the same parent directory are serialised by an ``flock`` on it, and the
hidden temporaries that killed writers leave behind are removed by the next writer.

Permissions follow the umask: a new directory gets ``0o777 & ~umask``, a replaced one keeps its mode.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..errors import QuantmooError
from ..io import umask_mode

__all__ = ["MARKER", "check_output_dir", "check_output_file", "replace_dir", "read_marker", "own_files",
           "ResultWriteError", "recover"]

MARKER = ".quantmoo-result.json"
MARKER_FORMAT = "quantmoo-dir/1"
#: What results written before the marker existed may hold (``SearchResult.save`` and the demo).
_LEGACY_FILES = {"results.json", "front.yaml", "front.csv", "evaluations.csv", "evaluations.npz",
                 "nondominated.npz", "accuracy_table.npz"}
_LEGACY_FIGURES = {"pareto", "pareto_latency", "objectives_matrix", "bit_heatmap", "convergence"}
_PID_FILE = ".quantmoo-writer"
_STALE_SECONDS = 3600.0


class ResultWriteError(QuantmooError):
    """The operating system refused to write a result (disk full, permissions); nothing was replaced."""


def read_marker(directory) -> Optional[dict]:
    """The marker of a quantmoo result directory, or None if ``directory`` is not one.

    A directory without the marker whose ``results.json`` has quantmoo's format is a result written
    before the marker existed: its marker is synthesised from the file names quantmoo writes.
    """
    d = Path(directory)
    try:
        data = json.loads((d / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _legacy_marker(d)
    except (OSError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or not isinstance(data.get("files"), list)
            or not all(isinstance(f, str) and f and "/" not in f and f not in (".", "..") for f in data["files"])):
        return None
    return data


def _legacy_marker(d: Path) -> Optional[dict]:
    try:
        fmt = json.loads((d / "results.json").read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(fmt, str) or not fmt.startswith("quantmoo-results/"):
        return None
    files = [e.name for e in d.iterdir() if e.is_file() and not e.is_symlink() and (
        e.name in _LEGACY_FILES or (e.stem in _LEGACY_FIGURES and e.suffix in (".png", ".pdf", ".svg")))]
    return {"format": MARKER_FORMAT, "kind": "result", "files": sorted(files), "legacy": True}


def own_files(directory) -> set:
    """Names of the files quantmoo wrote in ``directory`` (empty if it is not a quantmoo result)."""
    m = read_marker(directory)
    return set(m["files"]) if m else set()


def _listing(d: Path) -> list:
    return sorted(os.listdir(d))


def check_output_dir(path, *, overwrite: bool = False, kind: str = "result", option: str = "--out") -> Path:
    """Refuse, before any work starts, an output directory quantmoo may not write.

    Parameters
    ----------
    path : path
        The directory to write (need not exist).
    overwrite : bool
        Whether an earlier quantmoo result there may be replaced.
    kind : str
        ``"result"`` or ``"demo"``. A demo replaces an earlier demo without ``overwrite``.
    option : str
        The flag or argument named in messages.

    Returns
    -------
    Path
        The absolute path, symlinks resolved (what :func:`replace_dir` will write).
    """
    if path is None or not str(path).strip():
        raise QuantmooError(f"The '{option}' must name a directory; got {str(path)!r}")
    final = Path(os.path.realpath(os.path.expanduser(str(path))))
    cwd = Path(os.path.realpath(os.getcwd()))
    if final == cwd or final in cwd.parents:
        raise QuantmooError(f"The '{option}' directory {path} is the current directory or contains it; quantmoo "
                            f"writes a result into a directory of its own: choose a new one, e.g. {option} runs/first")
    if final.exists() and not final.is_dir():
        raise QuantmooError(f"The '{option}' path exists and is not a directory: {path}")
    if final.is_dir():
        try:
            entries = [e for e in _listing(final) if e != MARKER]
        except OSError as e:
            raise QuantmooError(f"The '{option}' directory cannot be read: {path}: {e.strerror}") from None
        if entries:
            marker = read_marker(final)
            if marker is None:
                shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
                raise QuantmooError(f"The '{option}' directory {path} is not empty and holds no quantmoo result "
                                    f"({shown}); quantmoo never replaces a directory it did not write: choose a new "
                                    f"or empty directory")
            if not overwrite and not (kind == "demo" and marker.get("kind") == "demo"):
                raise QuantmooError(f"The '{option}' directory {path} holds an earlier quantmoo result; pass "
                                    f"--overwrite to replace it (files quantmoo did not write there are kept)")
    _check_writable(final, option, path)
    return final


def check_output_file(path, *, overwrite: bool = False, option: str = "--out") -> Path:
    """Refuse, before any work starts, an output file quantmoo may not write (an existing file needs
    ``overwrite``; a directory or an unwritable place is refused)."""
    if path is None or not str(path).strip():
        raise QuantmooError(f"The '{option}' must name a file; got {str(path)!r}")
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        raise QuantmooError(f"The '{option}' path is a directory, not a file: {path}")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise QuantmooError(f"The '{option}' file {path} exists; pass --overwrite to replace it")
    _check_writable(p, option, path, what="file")
    if p.exists() and not os.access(p, os.W_OK):
        raise QuantmooError(f"The '{option}' file is not writable: {path}")
    return p


def _check_writable(final: Path, option: str, shown, what: str = "directory") -> None:
    parent = final if final.is_dir() else final.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise QuantmooError(f"The '{option}' {what} cannot be created: {parent} is not a directory: {shown}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise QuantmooError(f"The '{option}' location is not writable: {shown}")
    if final.is_dir() and not os.access(final.parent, os.W_OK | os.X_OK):
        raise QuantmooError(f"The '{option}' directory cannot be replaced: {final.parent} is not writable")


# -- the swap ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(directory: Path):
    """An exclusive ``flock`` on ``directory`` (no lock file is left behind); a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_or_copy(src, dst):
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


def _carry(src: Path, dst: Path) -> None:
    """Make ``dst`` hold ``src`` without moving it (hard links where possible, copies otherwise)."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    elif src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        _link_or_copy(src, dst)


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True     # another machine's writer: leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(tmp: Path) -> bool:
    try:
        pid, host = (tmp / _PID_FILE).read_text().split(" ", 1)
        return not _alive(int(pid), host.strip())
    except (OSError, ValueError):
        try:   # killed before writing its pid: stale once it is old
            return time.time() - tmp.stat().st_mtime > _STALE_SECONDS
        except OSError:
            return False


def _recover(parent: Path, name: str) -> None:
    """Repair what killed writers left next to ``parent/name`` (call under the lock).

    * ``.NAME.old-*/x``: the old version moved aside by a two-rename swap; if ``NAME`` is missing
      the kill came between the renames, so the old version is moved back; otherwise it is stale.
    * ``.NAME.tmp-*``: an unfinished new version whose writer is gone.
    Only hidden names of these patterns are touched, and only when they hold quantmoo's files.
    """
    final = parent / name
    for entry in sorted(parent.glob(f".{name}.old-*")):
        old = entry / "x"
        if not old.is_dir() or read_marker(old) is None:
            continue
        if not final.exists():
            os.rename(old, final)
        else:
            shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(OSError):
            entry.rmdir()
    for tmp in sorted(parent.glob(f".{name}.tmp-*")):
        if tmp.is_dir() and _writer_gone(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def recover(path) -> None:
    """Repair, under the lock, what a writer killed while replacing ``path`` left behind."""
    final = Path(os.path.realpath(path))
    if final.parent.is_dir():
        with _locked(final.parent):
            _recover(final.parent, final.name)


def replace_dir(path, write: Callable[[Path], None], *, overwrite: bool = False, kind: str = "result",
                keep_own: Iterable[str] = (), option: str = "--out") -> Path:
    """Write a quantmoo result directory atomically.

    ``write(tmp)`` fills a hidden sibling directory; then, under a lock on the parent, the files a
    user put in the old directory (everything not listed in its marker) are hard-linked into the
    new one, the marker is written, and the two directories are exchanged in one step.

    Parameters
    ----------
    path : path
        The result directory.
    write : callable
        ``write(tmp_dir)`` writes the new files.
    overwrite, kind, option
        As for :func:`check_output_dir`, which is applied again under the lock.
    keep_own : iterable of str
        Names of files quantmoo wrote earlier that this write does not produce but keeps (``validate``
        rewrites ``results.json`` and keeps the accuracy table and figures).

    Returns
    -------
    Path
        The written directory.

    Raises
    ------
    QuantmooError
        If the directory may not be written; :class:`ResultWriteError` if the system refused a write
        (the old version is then intact).
    """
    final = check_output_dir(path, overwrite=overwrite, kind=kind, option=option)
    parent, name = final.parent, final.name
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent))
    except OSError as e:
        raise ResultWriteError(f"Cannot write {path}: {e.strerror}") from None
    swapped = False
    try:
        (tmp / _PID_FILE).write_text(f"{os.getpid()} {socket.gethostname()}")
        write(tmp)
        (tmp / _PID_FILE).unlink()
        written = sorted(e for e in _listing(tmp) if e != MARKER)
        with _locked(parent):
            _recover(parent, name)
            check_output_dir(final, overwrite=overwrite, kind=kind, option=option)
            old_own = own_files(final) if final.is_dir() else set()
            carried = []
            if final.is_dir():
                clash = [e for e in _listing(final) if e in written and e not in old_own]
                if clash:   # a user's file under a name quantmoo writes: never replace it
                    raise QuantmooError(f"The '{option}' directory {path} holds {clash[0]!r}, which quantmoo did "
                                        f"not write but would replace; move it, or choose another directory")
                for e in _listing(final):
                    if e == MARKER or e in written:
                        continue
                    if e not in old_own or e in keep_own:
                        _carry(final / e, tmp / e)
                        carried.append(e)
            files = sorted(set(written) | (set(carried) & old_own))
            marker = {"format": MARKER_FORMAT, "kind": kind, "files": files,
                      "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            os.chmod(tmp, (final.stat().st_mode & 0o7777) if final.is_dir() else umask_mode())
            trash = _swap(tmp, final, parent, name)
            swapped = True
            if trash is not None:
                _discard_old(trash, final, keep=set(carried) | old_own)
    except QuantmooError:
        raise
    except OSError as e:
        if swapped:   # the new result is in place; only tidying the old one failed
            return final
        raise ResultWriteError(f"Cannot write {path}: {e.strerror or e}") from None
    finally:
        if not swapped and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _swap(tmp: Path, final: Path, parent: Path, name: str) -> Optional[Path]:
    """Put ``tmp`` at ``final``; return where the old version now is (None if there was none)."""
    if not final.exists() or not _listing(final):
        os.rename(tmp, final)            # rename(2) replaces an empty directory atomically
        return None
    if _exchange(tmp, final):
        return tmp
    # two renames; a kill between them is repaired by _recover on the next write
    aside = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent))
    os.rename(final, aside / "x")
    os.rename(tmp, final)
    return aside / "x"


def _discard_old(old: Path, final: Path, keep: set) -> None:
    """Remove the replaced version: quantmoo's own files and the items carried (by link) into the
    new one. Anything else (a file a user added during the swap) is moved into the new version."""
    for e in _listing(old):
        if e != MARKER and e not in keep and not (final / e).exists():
            os.rename(old / e, final / e)
    shutil.rmtree(old.parent if old.parent.name.startswith(f".{final.name}.old-") else old, ignore_errors=True)
