"""Issue 8 benchmark: mutation fuzzing of every input loader, counted.

For each loader (hardware profile YAML, model spec YAML/JSON, Hugging Face config.json,
QuantConfig YAML/JSON, results.json, search-space YAML) valid seed documents are mutated
(dropped fields, wrong types, negative/zero/huge/NaN/inf numbers, unknown keys, wrong layer
names, odd unicode, deep nesting) or corrupted as whole files (empty, truncated, random bytes,
invalid UTF-8, scalar or list documents, ...), written to disk and loaded through the public API.
Each input must either load to an object that passes a real-use check or raise ``QuantmooError``
naming the field (or the file); anything else is counted as unexpected and listed.

The mutation engine is ``benchmarks/_fuzz.py``, the same one ``tests/test_fuzz.py`` drives with
Hypothesis; here it is driven by a seeded ``random.Random`` so the counts are reproducible.

Run: ``python -m benchmarks.bench_fuzz [--tiny | --quick | --full] [--n N] [--seed S]`` (``--quick``, the
default, tries 250 inputs per loader).
"""
from __future__ import annotations

import argparse
import time
import warnings

from benchmarks import _fuzz
from benchmarks._common import machine, md_table, stamp


def run(n: int = 400, seed: int = 0, loaders=None) -> list:
    """Fuzz each loader with ``n`` inputs; one dict of counts per loader."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy/pymoo runtime warnings on odd but valid inputs
        for name in loaders or _fuzz.LOADERS:
            loader = _fuzz.LOADERS[name]
            loader.seeds()  # build the seed documents (a small search for results.json) outside the timing
            t0 = time.perf_counter()
            r = _fuzz.run_loader(loader, n, seed=seed)
            rows.append({"loader": name, "n": n, **r["counts"], "unexpected_cases": r["unexpected"],
                         "seconds": time.perf_counter() - t0})
    return rows


def report(rows: list, seed: int) -> str:
    table = [[r["loader"], r["n"], r["valid"], r["rejected"], r["unexpected"], f"{r['seconds']:.1f}"] for r in rows]
    tot = {k: sum(r[k] for r in rows) for k in ("n", "valid", "rejected", "unexpected", "seconds")}
    table.append(["**total**", tot["n"], tot["valid"], tot["rejected"], f"**{tot['unexpected']}**",
                  f"{tot['seconds']:.1f}"])
    text = [f"### Loader fuzzing: {rows[0]['n'] if rows else 0} mutated inputs per loader (seed {seed})", "",
            md_table(["loader", "inputs tried", "loaded, valid", "rejected (QuantmooError naming the field/file)",
                      "unexpected", "time (s)"], table), "",
            f"- unexpected = any other exception, a message that is not one line or names neither the "
            f"mutated field nor the file, or a loaded object that fails its use check: "
            f"**{tot['unexpected']}** (target 0)",
            f"- {stamp()}; {machine()}"]
    for r in rows:
        for case in r["unexpected_cases"][:20]:
            text.append(f"- UNEXPECTED ({r['loader']}): {case[:400]}")
    return "\n".join(text)


#: Inputs per loader for each mode (``--tiny`` for the tests, ``--quick`` for RESULTS.md).
SETTINGS = {"tiny": {"n": 10}, "quick": {"n": 250}, "full": {"n": 2000}}


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    for m in SETTINGS:
        g.add_argument(f"--{m}", dest="mode", action="store_const", const=m,
                       help=f"{SETTINGS[m]['n']} inputs per loader")
    ap.add_argument("--n", type=int, default=None, help="inputs per loader (overrides the mode)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    n = a.n if a.n is not None else SETTINGS[a.mode or "quick"]["n"]
    text = report(run(n=n, seed=a.seed), a.seed)
    print(text)
    return text


if __name__ == "__main__":
    main()
