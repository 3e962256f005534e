"""Regenerate ``benchmarks/RESULTS.md`` and ``benchmarks/figures/``: every number comes from a
script in this folder, none is typed by hand.

Run::

    python -m benchmarks.run_all            # = --quick: every table, < 15 min on 2 cores; writes RESULTS.md
    python -m benchmarks.run_all --full     # publication grade (more seeds, generations, front points); RESULTS.md
    python -m benchmarks.run_all --tiny --out /tmp/r.md   # seconds; what the tests run
    python -m benchmarks.run_all --only bench_levels bench_speed   # replaces those sections in RESULTS.md

Measured on the 2-core development machine while it was shared with other work (load average
5-8): ``--quick`` took 16.3 min with the ``minilm-l6`` sensitivity table already cached
(``~/.cache/quantmoo/bench``; computing it adds ~1.5 min on an idle machine, ~10 min under that
load); each ``minilm-l6`` measurement took ~6 s instead of ~1 s, so an idle machine should need
well under half that. ``--full`` is dominated by Optuna on ``resnet50`` in table 4 (about 10 ms
per trial, 200,000 trials) and should take about an hour (estimated, not yet run end to end). ``--tiny`` takes about 30 s.

``--quick`` (the default) and ``--full`` write ``benchmarks/RESULTS.md`` unless ``--out`` is
given; ``--tiny`` writes ``RESULTS-tiny.md``. The file's header says which mode produced it.
Each table names its own command (``python -m benchmarks.<module> --<mode>``).

Adding a section is one line in :data:`SECTIONS`. A listed module that does not exist (yet) is
skipped with a note in the output. Modules with a ``SETTINGS`` dict keyed by mode get
``--tiny/--quick/--full``; older ones get ``--quick`` unless the mode is ``full``.
Benchmark-only dependencies: ``pip install -r benchmarks/requirements.txt`` (Optuna for table 4).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import time
from pathlib import Path

from benchmarks._common import MODES, machine, progress, stamp

HERE = Path(__file__).resolve().parent

#: (module, section title). One line per section, in the order of RESULTS.md.
SECTIONS = [
    ("bench_targets", "Table 1: 7B on six devices"),
    ("bench_architectures", "Table 2: architectures"),
    ("bench_levels", "Table 3: compression levels, measured"),
    ("bench_efficiency", "Table 4: search efficiency"),
    ("bench_speed", "Table 5: speed and memory"),
    ("bench_real", "Real models: validation and dominance over baselines (issue 5)"),
    ("bench_reliability", "Reliability: kill/resume and injected faults (issue 8)"),
    ("bench_parallel", "Reliability: Dask worker kills, one process pool per search (issue 17)"),
    ("bench_fuzz", "Reliability: loader fuzzing (issue 8)"),
    ("bench_write", "Writing results: compact files vs the full form, 405B-shaped CLI search (issues 17, 18)"),
    ("bench_published", "Cost model vs published decode speeds, decode breakdown (issue 16)"),
    ("bench_agreement", "Objective agreement: size vs latency vs energy over the front (issue 16)"),
    ("bench_ort_latency", "onnxruntime latency: predicted vs measured on this machine (issue 16)"),
    ("bench_llamacpp_presets", "llama.cpp types: preset bits per weight vs published (issue 14)"),
]


def _argv_for(mod, mode: str):
    settings = getattr(mod, "SETTINGS", None)
    if isinstance(settings, dict) and mode in settings:
        return [f"--{mode}"]
    return [] if mode == "full" else ["--quick"]


def _call(mod, argv):
    if len(inspect.signature(mod.main).parameters) > 0:
        return mod.main(argv)
    return mod.main()


def run(mode: str = "quick", only=None) -> str:
    """Run the sections; return the markdown of RESULTS.md."""
    t_start = time.perf_counter()
    body, findings, timings = [], [], []
    for mod_name, title in SECTIONS:
        if only and mod_name not in only:
            continue
        progress(f"section {mod_name}: {title}")
        try:
            mod = importlib.import_module(f"benchmarks.{mod_name}")
        except ModuleNotFoundError as e:
            if e.name != f"benchmarks.{mod_name}":
                raise
            body += [f"## {title}", "", f"_Skipped: `benchmarks/{mod_name}.py` does not exist yet._", ""]
            continue
        argv = _argv_for(mod, mode)
        t0 = time.perf_counter()
        text = _call(mod, argv)
        dt = time.perf_counter() - t0
        timings.append((mod_name, dt))
        findings += [dict(f, section=title) for f in getattr(mod, "FINDINGS", [])]
        cmd = f"python -m benchmarks.{mod_name}" + (f" {' '.join(argv)}" if argv else "")
        body += [f"## {title}", "", f"Section command: `{cmd}` (ran in {dt:.0f} s)", "", (text or "").strip(), ""]
    total = time.perf_counter() - t_start
    cmd = "python -m benchmarks.run_all" + ("" if mode == "quick" else f" --{mode}")
    head = ["# quantmoo benchmark results", "",
            f"Generated {stamp()} by `{cmd}` ({mode} settings; {total / 60:.1f} min in all) on: {machine()}.", "",
            "Every number below is printed by the script named in its section; nothing is typed by hand. The "
            "product brief's claims (`benchmarks/_brief.py`, quoted from the brief) are set next to what quantmoo "
            "measures or derives, each table ending with a generated verdict. Accuracy figures carry their kind: "
            "`prior` (no weights: the documented noise model), `proxy` (sensitivity tables from real weights) or "
            "`measured` (the real model evaluated). Sizes, latencies and energies of the zoo models come from the "
            "cost model and the cited constants of `quantmoo/hardware/profiles/*.yaml`, not from devices. The "
            "machine is shared and noisy: times are medians, comparisons are measured side by side in one run. "
            "Figures are in `benchmarks/figures/`.", "",
            "Section times: " + ", ".join(f"{m} {t:.0f} s" for m, t in timings), ""]
    tail = []
    if findings:
        best = {}
        for f in findings:          # each claim once, with its largest difference
            if f["key"] not in best or f["factor"] > best[f["key"]]["factor"]:
                best[f["key"]] = f
        top = sorted(best.values(), key=lambda f: -f["factor"])[:3]
        tail = ["## Closing note: the three findings that differ most from the brief", "",
                "Ranked by how far the brief's figure is from ours (ratio, either direction), from the tables above:", ""]
        tail += [f"{i + 1}. {f['text']} (off by {f['factor']:.1f}x)" for i, f in enumerate(top)]
        tail.append("")
    return "\n".join(head + body + tail)


def _sections(text: str) -> list:
    """``[(heading or None, block)]``: the text split before every ``## `` heading."""
    parts, cur, head = [], [], None
    for line in text.splitlines():
        if line.startswith("## "):
            parts.append((head, "\n".join(cur)))
            cur, head = [], line
        cur.append(line)
    parts.append((head, "\n".join(cur)))
    return parts


def splice(old: str, new: str, when: str) -> str:
    """``old`` with the sections present in ``new`` replaced by ``new``'s (marked with ``when``).

    Used by ``--only`` on an existing RESULTS.md, so regenerating one table never drops the
    others; the closing note and the header stay those of the full run.
    """
    fresh = {h: b for h, b in _sections(new) if h is not None and not h.startswith("## Closing note")}

    def marked(block):
        lines = block.splitlines()
        lines.insert(1, f"\n_This section was regenerated alone on {when} with "
                        f"`python -m benchmarks.run_all --only ...`; the rest of the file is from the run in "
                        f"the header._")
        return "\n".join(lines).rstrip("\n") + "\n"     # a blank line before the next heading

    out, seen = [], set()
    for head, block in _sections(old):
        if head in fresh:
            block = marked(fresh[head])
            seen.add(head)
        out.append(block)
    # a section the file did not have yet (a new benchmark) is added at the end, never dropped
    out += [marked(b) for h, b in fresh.items() if h not in seen]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    for m in MODES:
        g.add_argument(f"--{m}", dest="mode", action="store_const", const=m, help=f"{m} settings")
    ap.add_argument("--out", help="output file (default: RESULTS.md; RESULTS-tiny.md with --tiny)")
    ap.add_argument("--only", nargs="*", help="run only these modules, e.g. bench_levels")
    ap.add_argument("--figures", help="directory for the figures (default benchmarks/figures)")
    a = ap.parse_args(argv)
    mode = a.mode or "quick"
    if a.figures:
        os.environ["QUANTMOO_BENCH_FIGURES"] = a.figures
    text = run(mode, a.only)
    out = Path(a.out) if a.out else HERE / ("RESULTS-tiny.md" if mode == "tiny" else "RESULTS.md")
    if a.only and out.exists():
        # regenerate some sections in place: the rest of the file keeps its own run's numbers
        text = splice(out.read_text(), text, stamp())
    out.write_text(text + "\n")
    print(f"wrote {out}")
    return text


if __name__ == "__main__":   # the guard matters: validation may spawn worker processes
    main()
