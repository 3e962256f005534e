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
