"""Regenerate ``benchmarks/RESULTS.md``: every table comes from a script in this folder.

Run: ``python -m benchmarks.run_all`` (full) or ``python -m benchmarks.run_all --quick``
(small settings, for a smoke test; writes to ``--out`` instead of RESULTS.md by default).
"""
from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from benchmarks._common import machine, stamp

HERE = Path(__file__).resolve().parent

#: (module, title, the command that regenerates the section alone)
SECTIONS = [
    ("bench_cost_model", "Cost model speed (issue 3)", "python -m benchmarks.bench_cost_model"),
    ("bench_targets", "Six targets side by side (issue 3)", "python -m benchmarks.bench_targets"),
    ("bench_search", "Search speed, optimality and operators (issue 4)", "python -m benchmarks.bench_search"),
    ("bench_real", "Real models, measured (issue 5)", "python -m benchmarks.bench_real"),
]


def run(quick: bool, only=None) -> str:
    parts = [f"# quantmoo benchmark results", "",
             f"Generated {stamp()} by `python -m benchmarks.run_all{' --quick' if quick else ''}` on: "
             f"{machine()}.", "",
             "Every number below is printed by the script named in its section; nothing is typed by hand. "
             "Accuracy figures carry their kind (prior / proxy / measured). The machine is shared and noisy: "
             "times are medians, comparisons are ratios measured side by side in one run.", ""]
    for mod_name, title, cmd in SECTIONS:
        if only and mod_name not in only:
            continue
        mod = importlib.import_module(f"benchmarks.{mod_name}")
        t0 = time.perf_counter()
        argv = ["--quick"] if quick and _accepts_argv(mod) else []
        text = mod.main(argv) if _accepts_argv(mod) else mod.main()
        parts += [f"## {title}", "", f"Command: `{cmd}{' --quick' if argv else ''}` "
                  f"(ran in {time.perf_counter() - t0:.0f} s)", "", text.strip(), ""]
    return "\n".join(parts)


def _accepts_argv(mod) -> bool:
    import inspect
    return len(inspect.signature(mod.main).parameters) > 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings for a smoke test")
    ap.add_argument("--out", help="output file (default: RESULTS.md, or RESULTS-quick.md with --quick)")
    ap.add_argument("--only", nargs="*", help="run only these modules, e.g. bench_search")
    a = ap.parse_args(argv)
    text = run(a.quick, a.only)
    out = Path(a.out) if a.out else HERE / ("RESULTS-quick.md" if a.quick else "RESULTS.md")
    out.write_text(text + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
