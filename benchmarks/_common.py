"""Shared helpers for the benchmark scripts: timing, machine description, markdown tables."""
from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import datetime, timezone


def timeit(fn, repeat: int = 5, number: int = 1):
    """Median and all wall times (s) of ``fn()`` over ``repeat`` runs of ``number`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times), times


_T0 = time.perf_counter()


def progress(msg: str) -> None:
    """One line of progress on stderr (elapsed time first) when stderr is a terminal; quiet otherwise,
    so logs and RESULTS.md captures stay clean."""
    import sys
    if sys.stderr.isatty():
        print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    except OSError:
        cpu = platform.processor()
    mem = ""
    try:
        kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    import numpy, pymoo
    return (f"{cpu or platform.machine()}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}, pymoo {pymoo.__version__}")


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- shared by the table scripts --------------------------------------------------------------------
#: Run modes every table script accepts: ``tiny`` (a few seconds, for the tests), ``quick``
#: (the default of ``run_all``: every table in < 15 min on 2 cores), ``full`` (publication grade).
MODES = ("tiny", "quick", "full")


def parse_mode(argv, doc: str):
    """Parse ``[--tiny | --quick | --full] [--figures DIR]``; returns ``(mode, figures_dir)``.

    ``--quick`` is the default. ``--figures`` (default ``$QUANTMOO_BENCH_FIGURES`` or
    ``benchmarks/figures``) is where PNG figures go.
    """
    import argparse
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    for m in MODES:
        g.add_argument(f"--{m}", dest="mode", action="store_const", const=m, help=f"{m} settings")
    ap.add_argument("--figures", help="directory for the PNG figures")
    a = ap.parse_args(argv)
    if a.figures:
        os.environ["QUANTMOO_BENCH_FIGURES"] = a.figures
    return a.mode or "quick", figure_dir()


def csv_arg(kind, allowed=None):
    """An argparse type: a comma-separated list of ``kind``, each in ``allowed`` when given."""
    import argparse

    def parse(text):
        try:
            values = [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__}")
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(map(str, bad))} not in {', '.join(allowed)}")
        return values
    return parse


def figure_dir():
    """Where figures are written: ``$QUANTMOO_BENCH_FIGURES`` or ``benchmarks/figures``."""
    from pathlib import Path
    d = Path(os.environ.get("QUANTMOO_BENCH_FIGURES") or Path(__file__).resolve().parent / "figures")
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_png(fig, name: str) -> str:
    """Save ``fig`` as ``<figure_dir>/<name>.png`` and close it; returns a markdown image link.

    The link is relative (``figures/<name>.png``) when the figures go to ``benchmarks/figures``
    (as RESULTS.md expects), else the absolute path.
    """
    from pathlib import Path
    import matplotlib.pyplot as plt
    d = figure_dir()
    path = d / f"{name}.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    default = Path(__file__).resolve().parent / "figures"
    rel = f"figures/{name}.png" if d.resolve() == default.resolve() else str(path)
    return f"![{name}]({rel})"


def command(module: str, mode: str) -> str:
    """The exact command that regenerates one table."""
    return f"python -m benchmarks.{module} --{mode}"


def header(title: str, module: str, mode: str) -> list:
    """First lines of a table section: title, date, machine and the exact command."""
    return [f"### {title}", "", f"Generated {stamp()} on {machine()}.", "",
            f"Command: `{command(module, mode)}`", ""]


def fmt_x(v: float) -> str:
    """A compression ratio (``nan`` -> ``n/a``)."""
    return "n/a" if v != v else f"{v:.2f}x"


def verdict(holds, text: str) -> str:
    """One generated verdict line: ``holds`` True / False / None (cannot be checked)."""
    tag = {True: "claim holds", False: "claim does NOT hold", None: "not checkable"}[holds]
    return f"- **{tag}**: {text}"


def finding(store: list, factor: float, text: str, key: str = None) -> None:
    """Record a claim of the brief that does not hold.

    ``factor`` is how far off the claim is (a ratio; either direction, stored as >= 1); ``key``
    names the claim, so that the closing note lists each claim once (its largest difference).
    """
    f = float(factor)
    if f == f and f > 0:
        store.append({"factor": max(f, 1.0 / f), "text": text, "key": key or text})
