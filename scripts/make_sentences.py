"""Build the fixed English sentence sets the MiniLM evaluator measures on.

Writes two files into ``quantmoo/accuracy/data/``:

* ``sentences.txt``: the **evaluation set** (256 sentences). ``accuracy_loss`` of ``minilm-l6`` is
  ``100 * (1 - mean cosine(fp32, quantized))`` over these, and nearest-neighbour agreement is
  measured among them.
* ``calibration_sentences.txt``: the **calibration split** (64 further sentences, disjoint from the
  evaluation set) that activation ranges are calibrated on.

The sentences are real English prose available offline on any machine: the first sentence of the
docstrings of public functions, classes and methods of a fixed list of Python standard-library
modules. A sentence is kept when it is plain ASCII, 7 to 36 words long, starts with a capital
letter, ends with a full stop, and has no code markup (backticks, ``>>>``, ``::``, ``__``, ``=``,
braces or brackets). Duplicates (case-insensitive) are dropped and the survivors are put in a
fixed pseudo-random order (sorted by the SHA-1 of the text), so the sets mix topics. The files
were made once with CPython 3.11.7 and are shipped; re-running this script on another Python
version may pick different sentences, which is why the files, not this script, are the reference.

Usage::

    python scripts/make_sentences.py            # writes the two files
    python scripts/make_sentences.py --check    # only prints counts
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import platform
import re
import warnings
from pathlib import Path

MODULES = [
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs",
    "collections", "colorsys", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email.message", "enum",
    "filecmp", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "hashlib", "heapq", "hmac", "html", "http.client", "http.cookiejar", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "lzma", "mailbox", "math", "mimetypes",
    "multiprocessing", "netrc", "numbers", "operator", "os", "pathlib", "pickle", "pkgutil",
    "platform", "plistlib", "poplib", "pprint", "profile", "pstats", "queue", "quopri", "random",
    "re", "reprlib", "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal",
    "smtplib", "socket", "socketserver", "sqlite3", "ssl", "statistics", "string", "struct",
    "subprocess", "symtable", "sysconfig", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "trace", "traceback", "types", "typing", "unittest", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile", "zipimport",
]
N_EVAL = 256
N_CALIB = 64
_BAD = re.compile(r"`|>>>|::|__|=|[{}\[\]<>|\\]|\.\.\.|\be\.g\b|\bi\.e\b|\betc\b")
_DATA = Path(__file__).resolve().parents[1] / "quantmoo" / "accuracy" / "data"


def first_sentence(doc: str) -> str | None:
    """The first sentence of a docstring's first paragraph, or None."""
    para = inspect.cleandoc(doc).split("\n\n", 1)[0]
    para = " ".join(para.split())
    m = re.match(r"(.+?\.)(\s|$)", para)
    return m.group(1) if m else None


def acceptable(s: str) -> bool:
    if not s.isascii() or _BAD.search(s):
        return False
    words = s.split()
    if not 7 <= len(words) <= 36:
        return False
    if not (s[0].isupper() and s.endswith(".")) or s.endswith("..") or s.count("(") != s.count(")"):
        return False
    return sum(c.isalpha() for c in s) >= 0.75 * len(s.replace(" ", ""))


def collect() -> list[str]:
    seen, out = set(), []
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except Exception:  # pragma: no cover - a module missing on this platform
            continue
        objs = []
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_"):
                continue
            if inspect.isfunction(obj) or inspect.isbuiltin(obj):
                objs.append(obj)
            elif inspect.isclass(obj):
                objs.append(obj)
                for mname, meth in sorted(vars(obj).items()):
                    if not mname.startswith("_") and (inspect.isfunction(meth) or inspect.ismethoddescriptor(meth)):
                        objs.append(meth)
        for obj in objs:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            s = first_sentence(doc)
            if s is None or not acceptable(s):
                continue
            key = s.lower()
            if key not in seen:
                seen.add(key)
                out.append(s)
    out.sort(key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    return out


def write(path: Path, title: str, sentences: list[str]) -> None:
    header = [
        f"# {title}",
        "# Made by scripts/make_sentences.py (CPython %s): first sentences of docstrings of the"
        % platform.python_version(),
        "# Python standard library, one per line, fixed order. Lines starting with '#' are comments.",
    ]
    path.write_text("\n".join(header + sentences) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only print how many sentences were found")
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sents = collect()
    print(f"{len(sents)} acceptable sentences found")
    if len(sents) < N_EVAL + N_CALIB:
        raise SystemExit(f"need {N_EVAL + N_CALIB} sentences, found {len(sents)}")
    if args.check:
        return 0
    _DATA.mkdir(parents=True, exist_ok=True)
    write(_DATA / "sentences.txt", f"quantmoo MiniLM evaluation set: {N_EVAL} English sentences", sents[:N_EVAL])
    write(_DATA / "calibration_sentences.txt",
          f"quantmoo MiniLM calibration split: {N_CALIB} English sentences (disjoint from sentences.txt)",
          sents[N_EVAL:N_EVAL + N_CALIB])
    print(f"wrote {_DATA / 'sentences.txt'} and {_DATA / 'calibration_sentences.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
