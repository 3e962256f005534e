"""Writing results: time and file sizes of the compact result files against the full form they
replaced, side by side in one run, and the peak memory of a 405B-shaped CLI search (issues 17, 18).

The "full" column writes what ``SearchResult.save`` wrote before format /2: ``results.json`` with one
full config dict per point (indent 1) and ``front.yaml`` with every config (PyYAML's dumper; the C
dumper where PyYAML has it, which is faster than what was used). The "compact" column is
``SearchResult.save`` itself (results.json /2, front.yaml /2, front.csv, evaluations.csv/.npz).

    python -m benchmarks.bench_write            # quick: llama2-7b and a 405B-shaped config, 100 generations
    python -m benchmarks.bench_write --tiny     # seconds, for the tests
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks._common import machine, md_table, parse_mode, progress, stamp

#: Llama-3.1-405B's config.json (the fields the HF importer reads): 126 blocks, 884 layers.
LLAMA_405B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16384,
              "intermediate_size": 53248, "num_attention_heads": 128, "num_hidden_layers": 126,
              "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
              "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}

SETTINGS = {"tiny": {"models": ["resnet18"], "n_gen": 5, "cli": False},
            "quick": {"models": ["llama2-7b", "405b"], "n_gen": 100, "cli": True},
            "full": {"models": ["llama2-7b", "405b"], "n_gen": 100, "cli": True}}


def _model(name: str, tmp: Path):
    import quantmoo
    if name == "405b":
        (tmp / "l405").mkdir(exist_ok=True)
        (tmp / "l405" / "config.json").write_text(json.dumps(LLAMA_405B))
        return quantmoo.zoo.load(str(tmp / "l405" / "config.json"))
    return quantmoo.zoo.load(name)


def _full_form(res, d: Path) -> None:
    """What results.json and front.yaml were before format /2 (one full config dict per point)."""
    d.mkdir()
    (d / "results.json").write_text(json.dumps(res.to_dict(), indent=1, default=float))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (d / "front.yaml").write_text(yaml.dump({"format": "quantmoo-front/1",
                                             "configs": [s.config.to_dict() for s in res.front]},
                                            Dumper=dumper, sort_keys=False))


def _size(d: Path, names) -> int:
    return sum((d / n).stat().st_size for n in names if (d / n).exists())


def measure(name: str, n_gen: int, tmp: Path) -> dict:
    import quantmoo
    progress(f"{name}: search, {n_gen} generations")
    model = _model(name, tmp)
    t0 = time.perf_counter()
    res = quantmoo.search(model, "arm_dot", n_gen=n_gen, seed=0, progress=False)
    t_search = time.perf_counter() - t0
    progress(f"{name}: writing both forms")
    t0 = time.perf_counter()
    _full_form(res, tmp / f"{name}-full")
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    res.save(tmp / f"{name}-compact")
    t_compact = time.perf_counter() - t0
    pair = ("results.json", "front.yaml")
    return {"model": name, "layers": model.n_layers, "front": len(res.front), "search_s": t_search,
            "full_s": t_full, "compact_s": t_compact,
            "full_mb": _size(tmp / f"{name}-full", pair) / 1e6,
            "compact_pair_mb": _size(tmp / f"{name}-compact", pair) / 1e6,
            "compact_all_mb": sum(f.stat().st_size for f in (tmp / f"{name}-compact").iterdir()) / 1e6}


def cli_405b(tmp: Path) -> dict:
    """``quantmoo search`` with the CLI defaults on the 405B shape, in a child process: wall time,
    the search's own time, and the child's peak resident memory (VmHWM: ``ru_maxrss`` would include
    this process's memory, which Linux carries across fork + exec)."""
    cfg = tmp / "l405" / "config.json"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text(json.dumps(LLAMA_405B))
    out = tmp / "cli405"
    code = ("import sys, time; from quantmoo.cli import main; t = time.perf_counter(); "
            f"rc = main(['search', '--model', {str(cfg)!r}, '--hardware', 'arm_dot', '--out', {str(out)!r}, "
            "'--no-progress']); w = time.perf_counter() - t; "
            "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')); "
            "print('BENCH', rc, w, hwm / 1024, file=sys.stderr)")
    progress("405b: the CLI search with its defaults")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ,
                                                                                      "MPLBACKEND": "Agg"})
    line = next(l for l in p.stderr.splitlines() if l.startswith("BENCH"))
    _, rc, wall, rss = line.split()
    exec_s = json.loads((out / "results.json").read_text())["exec_time_s"]
    return {"rc": int(rc), "wall_s": float(wall), "search_s": float(exec_s), "peak_rss_mb": float(rss)}


def report(rows, cli) -> str:
    out = [f"_{stamp()}; {machine()}; `python -m benchmarks.bench_write`_", ""]
    out.append(md_table(
        ["model", "layers", "front points", "search (s)", "write full form (s)", "write compact (s)",
         "ratio", "results.json + front.yaml, full (MB)", "same, compact (MB)", "all compact files (MB)"],
        [[r["model"], r["layers"], r["front"], f"{r['search_s']:.1f}", f"{r['full_s']:.2f}",
          f"{r['compact_s']:.2f}", f"{r['full_s'] / max(r['compact_s'], 1e-9):.0f}x", f"{r['full_mb']:.1f}",
          f"{r['compact_pair_mb']:.2f}", f"{r['compact_all_mb']:.2f}"] for r in rows]))
    out += ["", "The compact files hold the same configs (a round-trip test checks it) plus front.csv and "
            "evaluations.csv/.npz, which the full form did not have."]
    if cli:
        out += ["", f"405B-shaped CLI search with the defaults (pop 100 x 100, baselines, figures): exit "
                f"{cli['rc']}, wall {cli['wall_s']:.1f} s of which the search loop {cli['search_s']:.1f} s; "
                f"peak resident memory **{cli['peak_rss_mb']:.0f} MB** (goal < 1,000 MB)."]
    return "\n".join(out)


def main(argv=None):
    mode, _ = parse_mode(argv, __doc__)
    s = SETTINGS[mode]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [measure(m, s["n_gen"], tmp) for m in s["models"]]
        cli = cli_405b(tmp) if s["cli"] else None
    text = report(rows, cli)
    print(text)
    return text


if __name__ == "__main__":
    main()
