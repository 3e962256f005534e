"""The ``quantmoo`` command.

Every subcommand validates its input up front; a :class:`~quantmoo.errors.QuantmooError`
becomes one line on stderr and exit status 2, never a traceback. Ctrl-C exits with 130.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import QuantmooError

EXAMPLES = {
    "search": "quantmoo search --model llama2-7b --hardware arm_dot --pop-size 100 --n-gen 200 --out runs/llama",
    "evaluate": "quantmoo evaluate --model llama2-7b --hardware arm_dot --config knee.yaml --run runs/llama",
    "sensitivity": "quantmoo sensitivity --model digits --out digits_sens.npz",
    "validate": "quantmoo validate runs/digits",
    "plot": "quantmoo plot runs/llama --kind front --x size_mb --y accuracy_loss",
    "export": "quantmoo export runs/llama --pick knee --format yaml --out knee.yaml\n"
              "  quantmoo export runs/llama-cpp --pick knee --format llama.cpp --out types.txt",
    "models": "quantmoo models",
    "hardware": "quantmoo hardware --show hexagon\n  quantmoo hardware --measure-host host.yaml --seconds 5\n"
                "  quantmoo hardware --measure-host ort.yaml --runtime onnxruntime",
    "demo": "quantmoo demo --out quantmoo-demo",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends an option's default to its help when it has a
    meaningful one (not None, False or empty, and not already stated)."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if d is None or d is False or d == [] or d is argparse.SUPPRESS or "default" in text \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


_DEFAULT_OBJECTIVES = "accuracy_loss,size_mb,latency_ms,energy_mj"


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__
    p = argparse.ArgumentParser(
        prog="quantmoo",
        description="Multi-objective per-layer mixed-precision quantization search (pymoo).",
        epilog="Run 'quantmoo <command> --help' for the options of each command.")
    p.add_argument("--version", action="version", version=f"quantmoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command")

    def cmd(name, help_):
        return sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                              formatter_class=_HelpFormatter)

    s = cmd("search", "Search the Pareto front of per-layer quantization configs.")
    s.add_argument("--model", help="zoo name (see 'quantmoo models'), spec YAML, config.json, .onnx or .gguf file (required)")
    s.add_argument("--hardware", help="profile name (see 'quantmoo hardware') or YAML path (required)")
    s.add_argument("--objectives", default=_DEFAULT_OBJECTIVES,
                   help="comma-separated, from accuracy_loss,size_mb,latency_ms,energy_mj,memory_mb")
    s.add_argument("--constraint", action="append", default=[], metavar="NAME<=VALUE",
                   help="upper bound, e.g. latency_ms<=50 (repeatable)")
    s.add_argument("--scenario", help="constraint preset: mobile, iot or edge_server")
    s.add_argument("--algorithm", default="nsga2", help="nsga2, nsga3, unsga3, smsemoa or ga")
    s.add_argument("--pop-size", type=int, default=100, metavar="N", help="population size")
    s.add_argument("--n-gen", type=int, default=100, metavar="N", help="generations")
    s.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same front")
    s.add_argument("--space", help="search-space YAML (fields of quantmoo.SearchSpace), or 'llama.cpp' for "
                                   "llama.cpp's types per tensor (SearchSpace.llama_cpp())")
    s.add_argument("--strict", action="store_true", help="only hardware-native choices")
    s.add_argument("--out", help="directory for results.json, front.yaml and figures: new, empty, or (with "
                   "--overwrite) an earlier quantmoo result; any other directory is refused")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an earlier quantmoo result in --out (files quantmoo did not write there are kept)")
    s.add_argument("--no-plot", action="store_true", help="do not write figures")
    s.add_argument("--json", action="store_true", help="print machine-readable output")
    s.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar (default: only when stderr is a terminal)")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    s.add_argument("--checkpoint", metavar="DIR",
                   help="save the search state here (checkpoint.npz: arrays + JSON, checksummed) every "
                        "--checkpoint-every generations; resume with --resume DIR")
    s.add_argument("--checkpoint-every", type=int, default=1, metavar="N", help="generations between checkpoints")
    s.add_argument("--resume", metavar="DIR",
                   help="continue the search checkpointed in DIR (its settings; no --model/--hardware); a "
                        "damaged or foreign checkpoint is refused")
    s.add_argument("--accuracy-table", metavar="NPZ",
                   help="proxy accuracy table from 'quantmoo sensitivity' (same --space); kept in --out")
    s.add_argument("--seed-baselines", action="store_true",
                   help="seed the population with the greedy, ILP and llama.cpp-rule baselines' configs")
    s.add_argument("--no-exact-start", action="store_true",
                   help="with the objectives accuracy_loss,size_mb (and with --measured --budget): do not join the "
                        "exact front of the dynamic program over layers to the search's; report NSGA-II's own")
    s.add_argument("--no-baselines", action="store_true",
                   help="do not compute or report the uniform, greedy, ILP and llama.cpp baselines")
    s.add_argument("--measured", action="store_true",
                   help="measure accuracy_loss with the model's real evaluator for every genome (digits, minilm-l6)")
    s.add_argument("--eval-timeout", type=float, metavar="SECONDS",
                   help="with --measured: an evaluation taking longer counts as failed (infeasible)")
    s.add_argument("--workers", type=int, default=1,
                   help="with --measured: local processes for evaluations, started once for the whole search "
                        "(default 1: in-process)")
    _cache_args(s, "with --measured: ")
    s.add_argument("--data", metavar="FILE.npz",
                   help="for an .onnx --model: inputs (arrays named after the model inputs) on which onnxruntime "
                        "measures the QDQ model's fidelity to fp32 (--measured, and the default proxy)")
    _shape_args(s)
    s.add_argument("--budget", type=int, metavar="N",
                   help="with --measured: measured-in-the-loop search: the proxy search's front, then exactly N real "
                        "evaluations chosen by a surrogate corrected with every measured point, or by the proxy "
                        "front's epsilon-net while the surrogate ranks no better than the proxy (objectives "
                        "accuracy_loss and one or two costs; default accuracy_loss,size_mb)")
    s.add_argument("--refine", type=int, default=0, metavar="K",
                   help="with --measured --budget: the last round measures, for every greedy/ILP point (llama.cpp "
                        "preset for an LLM), the K best-predicted configs no larger than it (within the budget)")

    e = cmd("evaluate", "Print the objectives of one saved config.")
    e.add_argument("--model", required=True, help="zoo name or model file the config was made for (required)")
    e.add_argument("--hardware", required=True, help="profile name or YAML path (required)")
    e.add_argument("--config", required=True, help="config YAML/JSON (QuantConfig)")
    e.add_argument("--run", help="run directory whose search space and accuracy model to use (default: the run "
                   "the config was exported from, if it still exists)")
    e.add_argument("--measured", action="store_true",
                   help="also measure accuracy_loss with the model's real evaluator (digits, minilm-l6, ...)")
    _data_arg(e)
    _shape_args(e)
    e.add_argument("--json", action="store_true", help="print machine-readable output")

    x = cmd("export", "Export one solution of a saved run as a config file.")
    x.add_argument("run", help="run directory")
    x.add_argument("--pick", default="knee", help="knee or best")
    x.add_argument("--weights", help="for --pick best: e.g. accuracy_loss=0.7,latency_ms=0.3")
    x.add_argument("--index", type=int, help="front index (overrides --pick)")
    x.add_argument("--format", default="yaml",
                   help="yaml, json, onnx (a QDQ model onnxruntime runs; needs --model model.onnx), llama.cpp "
                        "(the llama-quantize --tensor-type-file; needs --space llama.cpp) or mlx (the per-layer "
                        "'quantization' mapping of an MLX model's config.json)")
    x.add_argument("--out", help="output file (default: stdout; required for onnx)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    x.add_argument("--model", help="with --format onnx: the fp32 .onnx file the run searched (default: the file the "
                   "run recorded); with llama.cpp: the model, if not the run's zoo model")
    x.add_argument("--data", metavar="FILE.npz",
                   help="with --format onnx: calibration inputs, arrays named after the model's inputs (default: the "
                        "inputs the run recorded for that file)")
    _shape_args(x)

    m = cmd("models", "List the model zoo with parameter counts.")
    m.add_argument("--json", action="store_true", help="print machine-readable output")

    h = cmd("hardware", "List hardware profiles, show one, or measure this machine as a profile.")
    h.add_argument("--show", help="profile name or YAML path")
    h.add_argument("--measure-host", metavar="OUT.yaml",
                   help="measure this machine (GEMM per dtype, memory bandwidth; see --runtime) and write a "
                        "'host' profile usable as --hardware OUT.yaml")
    h.add_argument("--seconds", metavar="S", help="with --measure-host: time budget in seconds (default 5)")
    h.add_argument("--overwrite", action="store_true", help="with --measure-host: replace an existing file")
    h.add_argument("--runtime", metavar="R",
                   help="with --measure-host: whose kernels to time, numpy (default) or onnxruntime (CPU, 1 thread: "
                        "MatMul fp32/fp16, MatMulInteger int8, MatMulNBits 4-bit, GEMV bandwidth)")
    h.add_argument("--json", action="store_true", help="print machine-readable output")

    for name, help_ in (("sensitivity", "Per-layer sensitivity tables from real weights."),
                        ("validate", "Re-evaluate a run's front with the real evaluator."),
                        ("plot", "Figures from a saved run."),
                        ("demo", "End-to-end search on the bundled digits model with figures.")):
        c = cmd(name, help_)
        _EXTRA_ARGS.get(name, lambda c: None)(c)
    return p


def _cache_args(c, prefix=""):
    c.add_argument("--cache-dir", metavar="DIR",
                   help=f"{prefix}reuse and store measured evaluations in DIR (default: $QUANTMOO_CACHE if set, "
                        "else ~/.cache/quantmoo/evals)")
    c.add_argument("--no-cache", action="store_true", help=f"{prefix}measure everything again, store nothing")


def _cache(a):
    """The evaluation cache of --cache-dir / --no-cache: False, True (the default directory) or a path."""
    if a.no_cache and a.cache_dir:
        raise QuantmooError("Use either '--cache-dir' or '--no-cache', not both")
    return False if a.no_cache else (a.cache_dir or True)


def _shape_args(c):
    c.add_argument("--batch", type=int, help="batch size given to the model's symbolic batch dimension")
    c.add_argument("--seq-len", type=int, help="value of the other symbolic dimensions (sequence length, image side)")
    c.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="full shape of an ONNX input (repeatable), e.g. a detector's real 736x736 image")


def _data_arg(c):
    c.add_argument("--data", metavar="FILE.npz",
                   help="for an .onnx model: inputs (arrays named after the model inputs) measured in onnxruntime")


def _sensitivity_args(c):
    c.add_argument("--model", required=True,
                   help="a model with real weights: a zoo model that has them (see 'quantmoo models') or a "
                        "weights file (.onnx, .gguf)")
    c.add_argument("--out", required=True, help="output .npz file")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    c.add_argument("--space", help="search-space YAML, or 'llama.cpp'")
    _data_arg(c)
    _shape_args(c)


def _validate_args(c):
    c.add_argument("run", help="run directory")
    c.add_argument("--workers", type=int, default=None, help="local processes (default: all cores)")
    c.add_argument("--dask-address", help="run on a Dask cluster at this address")
    _cache_args(c)
    c.add_argument("--refine", type=int, default=0, metavar="K",
                   help="also measure, for every baseline, the K proxy-best non-dominated points no larger than it")
    c.add_argument("--refine-on", default="size_mb", metavar="OBJ[,OBJ]",
                   help="objectives a refined point must not exceed its baseline on (default size_mb)")
    c.add_argument("--json", action="store_true", help="print machine-readable output")
    c.add_argument("--model", help="for a run of an .onnx model: the .onnx file (with --data)")
    _data_arg(c)
    _shape_args(c)


def _plot_args(c):
    c.add_argument("run", nargs="+", help="run directory (several for --kind hardware)")
    c.add_argument("--kind", default="front",
                   help="front, front3d, matrix, parallel, convergence, heatmap or hardware (one model's runs on "
                        "several targets side by side) (default: %(default)s)")
    c.add_argument("--x", default=None, metavar="OBJ",
                   help="x-axis objective: accuracy_loss, size_mb, latency_ms, energy_mj or memory_mb (default: "
                        "latency_ms for --kind hardware, since size does not depend on the hardware; size_mb "
                        "otherwise)")
    c.add_argument("--y", default="accuracy_loss", metavar="OBJ",
                   help="y-axis objective (default: %(default)s)")
    c.add_argument("--z", default="latency_ms", metavar="OBJ",
                   help="z-axis objective of --kind front3d (default: %(default)s)")
    c.add_argument("--out", help="output path stem (default: RUN/<kind>)")
    c.add_argument("--overwrite", action="store_true", help="replace existing --out figures")


def _demo_args(c):
    c.add_argument("--out", default="quantmoo-demo",
                   help="output directory (default: %(default)s); an earlier demo there is replaced, any other "
                        "non-empty directory needs --overwrite (a quantmoo result) or is refused")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier quantmoo search result in --out")
    c.add_argument("--seed", type=int, default=0, help="random seed of the search")
    c.add_argument("--json", action="store_true", help="print machine-readable output")


_EXTRA_ARGS = {"sensitivity": _sensitivity_args, "validate": _validate_args, "plot": _plot_args,
               "demo": _demo_args}


# -- helpers ---------------------------------------------------------------------------------------
def _parse_constraints(items, scenario):
    from .search.problem import SCENARIOS
    out = {}
    if scenario:
        if scenario not in SCENARIOS:
            raise QuantmooError(f"The '--scenario' value must be one of {{{', '.join(SCENARIOS)}}}; got {scenario!r}")
        out.update(SCENARIOS[scenario])
    for item in items:
        if "<=" not in item:
            raise QuantmooError(f"The '--constraint' must look like NAME<=VALUE, e.g. latency_ms<=50; got {item!r}")
        k, v = item.split("<=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise QuantmooError(f"The '--constraint {k.strip()}' bound must be a number; got {v!r}") from None
    return out or None


def _parse_weights(text):
    if not text:
        return None
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise QuantmooError(f"The '--weights' must look like accuracy_loss=0.7,latency_ms=0.3; got {text!r}")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise QuantmooError(f"The '--weights' value for {k.strip()!r} must be a number; got {v!r}") from None
    return out


def _check_out_dir(out, overwrite=False, kind="result"):
    """Fail before any work if ``--out`` may not be written (see quantmoo.results.outdir)."""
    if out is None:
        return None
    from .results.outdir import check_output_dir
    return check_output_dir(out, overwrite=overwrite, kind=kind)


def _check_inside(inner, outer, inner_flag):
    """A checkpoint inside the directory being replaced would be deleted with it: refuse."""
    import os
    if inner is None or outer is None:
        return
    a, b = Path(os.path.realpath(inner)), Path(os.path.realpath(outer))
    if a == b or b in a.parents:
        raise QuantmooError(f"The '{inner_flag}' directory {inner} is inside '--out' {outer}, which quantmoo "
                            f"replaces as a whole: put it next to it, e.g. {inner_flag} {Path(outer)}.checkpoint")


def _print(obj, as_json):
    if as_json:
        print(json.dumps(obj, indent=1, default=float))
    else:
        print(obj)


# -- commands --------------------------------------------------------------------------------------
def cmd_models(a):
    from . import zoo
    rows = zoo.describe()
    if a.json:
        return _print(rows, True)
    print(f"{'name':<16} {'params':>15} {'layers':>6} {'GMAC':>9}  description")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<16} {'-':>15} {'-':>6} {'-':>9}  {r.get('description', '')} ({r['error']})")
            continue
        print(f"{r['name']:<16} {r['n_params']:>15,} {r['n_layers']:>6} {r['macs'] / 1e9:>9.3f}  {r['description']}")


def _check_out_file(out, option, overwrite=False):
    """Fail before any work if ``out`` may not be written as a file (an existing one needs --overwrite)."""
    from .results.outdir import check_output_file
    return check_output_file(out, overwrite=overwrite, option=option)


def _parse_seconds(text):
    from .errors import check_positive
    if text is None:
        return 5.0
    try:
        value = float(text)
    except ValueError:
        raise QuantmooError(f"The '--seconds' must be a number of seconds > 0; got {text!r}") from None
    return check_positive("--seconds", value)


def cmd_measure_host(a):
    from . import hardware
    if a.show:
        raise QuantmooError("Use either '--show' or '--measure-host', not both")
    seconds = _parse_seconds(a.seconds)
    if not a.measure_host.strip():
        raise QuantmooError("The '--measure-host' needs an output file path, e.g. host.yaml")
    runtime = "numpy" if a.runtime is None else a.runtime
    if runtime not in hardware.RUNTIMES:
        raise QuantmooError(f"The '--runtime' must be one of {{{', '.join(hardware.RUNTIMES)}}}; got {runtime!r}")
    _check_out_file(a.measure_host, "--measure-host", a.overwrite)
    try:
        path = hardware.write_host_profile(a.measure_host, seconds=seconds, runtime=runtime)
    except QuantmooError as e:
        raise QuantmooError(f"The '--measure-host' file could not be written ({e})") from None
    hw = hardware.load(path)
    rates = {k: v for k, v in hw.main.peak_macs_per_s.items()}
    bw = hw.main.bandwidth_bytes_per_s
    if a.json:
        return _print({"path": str(path), "peak_gmac_per_s": {k: v / 1e9 for k, v in rates.items()},
                       "bandwidth_gbs": bw / 1e9, "hash": hw.profile_hash()}, True)
    shown = ", ".join(f"{k} {v / 1e9:.4g}" for k, v in rates.items())
    print(f"wrote {path}: peak GMAC/s {shown}; memory bandwidth {bw / 1e9:.4g} GB/s "
          f"(use it as --hardware {path})")


def cmd_hardware(a):
    from . import hardware
    if a.measure_host is not None:
        return cmd_measure_host(a)
    for opt, v in (("--seconds", a.seconds), ("--runtime", a.runtime)):
        if v is not None:
            raise QuantmooError(f"The '{opt}' option only applies with '--measure-host OUT.yaml'")
    if a.show:
        hw = hardware.load(a.show)
        mat = hw.support_matrix()
        if a.json:
            return _print({**hw.to_dict(), "support": {f"W{w}A{x}": list(v) for (w, x), v in mat.items()}}, True)
        print(f"{hw.name}: {hw.title}\nreference device: {hw.reference_device}")
        for d in [hw.main] + ([hw.fallback] if hw.fallback is not None else []):
            rates = ", ".join(f"{k} {v / 1e12:.3g} TMAC/s" for k, v in d.peak_macs_per_s.items())
            print(f"  device {d.name}: {d.title}; {rates}; {d.bandwidth_bytes_per_s / 1e9:.4g} GB/s; achievable: "
                  f"{d.bandwidth_fraction:.2f} of the bandwidth, {d.compute_fraction:.2f} of the MAC rates")
        print("support (weight bits x activation bits -> device/mode/precision):")
        for (w, x), (dev, mode, prec) in mat.items():
            print(f"  W{w:<2}A{x:<2}  {dev:<8} {mode:<9} {prec}")
        return
    rows = []
    for n in hardware.names():
        hw = hardware.load(n)
        rows.append({"name": n, "title": hw.title, "reference_device": hw.reference_device})
    if a.json:
        return _print(rows, True)
    for r in rows:
        print(f"{r['name']:<12} {r['title']}\n{'':<12} {r['reference_device']}")


def cmd_search(a):
    import warnings
    import quantmoo
    from .results.outdir import ResultWriteError
    from .search.run import SearchInterrupted, resume_search
    out = a.out
    _check_out_dir(out, a.overwrite)
    if a.resume:
        if a.model or a.hardware or a.checkpoint:
            raise QuantmooError("'--resume DIR' continues the checkpointed search with its own settings; "
                                "do not pass --model, --hardware or --checkpoint with it")
        where = a.resume
        _check_inside(a.resume, out, "--resume")
    else:
        missing = [f for f, v in (("--model", a.model), ("--hardware", a.hardware)) if not v]
        if missing:
            raise QuantmooError(f"the following arguments are required: {', '.join(missing)}")
        _check_inside(a.checkpoint, out, "--checkpoint")
        # Ctrl-C always leaves a resumable state: in --checkpoint, or next to --out; with --out the
        # finished state is kept there too until the result is written (a failed write loses nothing)
        where = a.checkpoint or (f"{Path(out)}.checkpoint" if out is not None else "quantmoo-search.checkpoint")
        if a.checkpoint:        # before the model, the space and the accuracy model are loaded
            from .search.checkpoint import check_writable
            check_writable(a.checkpoint)
        if a.no_baselines and a.seed_baselines:
            raise QuantmooError("'--seed-baselines' computes the baselines that '--no-baselines' skips; give one")
    if a.refine and a.budget is None:
        raise QuantmooError("'--refine K' applies to a measured search with a budget ('--measured --budget N'); "
                            "for a proxy run, use 'quantmoo validate RUN --refine K'")
    auto_checkpoint = not (a.resume or a.checkpoint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if a.resume:
                res = resume_search(a.resume, progress=a.progress)
            elif a.budget is not None:
                res = _search_measured(a)
            else:
                space = _load_space(a.space)
                objectives = [o.strip() for o in a.objectives.split(",") if o.strip()]
                constraints = _parse_constraints(a.constraint, a.scenario)
                accuracy = _accuracy(a)
                res = quantmoo.search(_model_arg(a), a.hardware, space=space, objectives=objectives,
                                      constraints=constraints, algorithm=a.algorithm, pop_size=a.pop_size,
                                      n_gen=a.n_gen, seed=a.seed, progress=a.progress, accuracy=accuracy,
                                      checkpoint=where, seed_baselines=a.seed_baselines,
                                      baselines=not a.no_baselines, exact_start=not a.no_exact_start,
                                      checkpoint_every=a.checkpoint_every if a.checkpoint else 0,
                                      checkpoint_final=bool(a.checkpoint) or out is not None)
    except SearchInterrupted as e:
        again = f"quantmoo search --resume {e.checkpoint}" + (f" --out {out}" if out is not None else "")
        raise _Interrupted(f"interrupted after generation {e.n_gen}; the state is saved in {e.checkpoint}; "
                           f"continue with: {again}") from None
    if not res.feasible:
        raise QuantmooError(res.message)
    written = None
    if out is not None:
        again = f"quantmoo search --resume {where} --out {out}" + (" --overwrite" if a.overwrite else "")
        try:
            extra = {"accuracy_table.npz": Path(a.accuracy_table).read_bytes()} if a.accuracy_table else None
            written = res.save(out, plot=not a.no_plot, extra_files=extra, overwrite=a.overwrite)
        except KeyboardInterrupt:   # the save is atomic: nothing half-written is left in --out
            raise _Interrupted(f"interrupted while writing {out}; nothing was written; the finished search is "
                               f"in {where}: {again}") from None
        except ResultWriteError as e:
            raise QuantmooError(f"{e}; nothing was replaced, and the finished search is saved in {where}: "
                                f"free space or fix the location, then run: {again}") from None
        if auto_checkpoint:
            _remove_checkpoint(where)
    if a.json:
        k = res.knee_index()
        return _print({"out": str(written) if written else None,
                       "results": str(written / "results.json") if written else None, "n_front": len(res.front),
                       "knee_index": k, "accuracy_kind": res.accuracy_kind,
                       "front": [{"objectives": d["objectives"], "measured": d["measured"],
                                  "compression_ratio": d["compression_ratio"], "config": d["config"]}
                                 for d in (s.to_dict() for s in res.front)]}, True)
    print(res.summary())
    if written:
        print(f"results written to {written}/ (results.json, front.yaml"
              f"{', pareto.png/.pdf' if not a.no_plot else ''})")


def _search_measured(a):
    """``--measured --budget N``: :func:`quantmoo.search.inloop.search_measured`."""
    from .accuracy.tables import AccuracyTable
    from .search.inloop import search_measured
    if not a.measured:
        raise QuantmooError("'--budget N' is the budget of real evaluations of a measured search; add '--measured'")
    if a.checkpoint:
        raise QuantmooError("'--checkpoint' is not supported with '--measured --budget' (the evaluation cache "
                            "keeps the measurements)")
    if a.workers is not None and a.workers < 1:
        raise QuantmooError(f"The '--workers' must be an integer >= 1; got {a.workers}")
    objectives = "accuracy_loss,size_mb" if a.objectives == _DEFAULT_OBJECTIVES else a.objectives
    table = AccuracyTable.load(a.accuracy_table) if a.accuracy_table else None
    return search_measured(a.model, a.hardware,
                           budget=a.budget, space=_load_space(a.space),
                           objectives=[o.strip() for o in objectives.split(",") if o.strip()],
                           constraints=_parse_constraints(a.constraint, a.scenario), accuracy=table, seed=a.seed,
                           pop_size=a.pop_size, n_gen=a.n_gen, workers=a.workers, eval_timeout=a.eval_timeout,
                           progress=a.progress, cache=_cache(a), refine=a.refine, seed_baselines=a.seed_baselines,
                           exact_start=not a.no_exact_start)


def _remove_checkpoint(directory):
    """Remove a checkpoint quantmoo wrote itself (only its own files; the directory if then empty)."""
    from .search.checkpoint import remove_checkpoint
    remove_checkpoint(directory)


class _Interrupted(Exception):
    """Ctrl-C stopped a command cleanly; main() prints the message and exits 130."""


def _accuracy(a):
    """The search's accuracy model from --measured / --accuracy-table (None: the model's default)."""
    if a.measured and a.accuracy_table:
        raise QuantmooError("Use either '--measured' or '--accuracy-table', not both")
    for flag, given in (("--cache-dir", a.cache_dir), ("--no-cache", a.no_cache)):
        if given and not a.measured:
            raise QuantmooError(f"'{flag}' only applies with '--measured'")
    if a.accuracy_table:
        from .accuracy.tables import AccuracyTable
        return AccuracyTable.load(a.accuracy_table)
    return _measured_accuracy(a) if a.measured else None


def _is_onnx(model) -> bool:
    return isinstance(model, str) and model.lower().endswith(".onnx")


def _overrides(a) -> dict:
    """Model overrides from --batch, --seq-len and --input-shape NAME=1x3x224x224."""
    ov = {k: v for k, v in (("batch", getattr(a, "batch", None)), ("seq_len", getattr(a, "seq_len", None)))
          if v is not None}
    shapes = {}
    for item in getattr(a, "input_shape", None) or []:
        name, sep, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shape = []
        if not sep or not name or not shape or min(shape) < 1:
            raise QuantmooError(f"The '--input-shape' must look like NAME=1x3x224x224 (integers >= 1); got {item!r}")
        shapes[name] = shape
    if shapes:
        if not _is_onnx(a.model):
            raise QuantmooError(f"'--input-shape' applies to an .onnx '--model'; got {a.model!r}")
        ov["input_shapes"] = shapes
    return ov


def _onnx_recipe(a):
    """A picklable factory of the .onnx model with its OnnxEvaluator on --data (None without --data)."""
    if not getattr(a, "data", None):
        return None
    if not _is_onnx(a.model):
        raise QuantmooError(f"'--data' measures an ONNX model: '--model' must be an .onnx file; got {a.model!r}")
    import functools
    from .accuracy.onnx_eval import onnx_evaluator
    calib = getattr(a, "calibration_data", None)
    return functools.partial(onnx_evaluator, str(Path(a.model).resolve()), str(Path(a.data).resolve()),
                             **({"calibration_data": calib} if calib else {}), **_overrides(a))


def _model_arg(a):
    """--model as search() takes it: the zoo name / path (loaded with the overrides), or the ONNX spec
    with its evaluator on --data."""
    recipe = _onnx_recipe(a)
    if recipe is not None:
        return recipe()
    ov = _overrides(a)
    if ov and a.model:
        from . import zoo
        return zoo.load(a.model, **ov)
    return a.model


def _no_evaluator(a, model, what: str):
    if _is_onnx(a.model):
        from .onnx import input_requirements
        from .export.onnx_qdq import qdq_plan
        need = input_requirements(qdq_plan(a.model).model)
        return QuantmooError(f"{what} an ONNX model needs '--data FILE.npz' with the model's inputs: arrays {need}")
    return QuantmooError(f"{what} needs a model with real weights and an evaluator (digits, minilm-l6, or an .onnx "
                         f"file with --data); model '{model.name}' has none")


def _measured_accuracy(a):
    from . import zoo
    from .search.measured import MeasuredAccuracy
    if a.workers is not None and a.workers < 1:
        raise QuantmooError(f"The '--workers' must be an integer >= 1; got {a.workers}")
    cache = _cache(a)
    if cache is True:
        from .accuracy.cache import default_cache_dir
        cache = default_cache_dir()
    cache = str(cache) if cache else None    # a path travels to workers and into checkpoints
    recipe = _onnx_recipe(a)
    if recipe is not None:   # a picklable factory: worker processes rebuild the evaluator from it
        return MeasuredAccuracy(recipe, eval_timeout=a.eval_timeout, workers=a.workers, cache=cache)
    model = zoo.load(a.model)
    if getattr(model, "evaluator", None) is None:
        raise _no_evaluator(a, model, "'--measured'")
    # by zoo name: workers and a resumed run rebuild the evaluator from it
    return MeasuredAccuracy(model.name, eval_timeout=a.eval_timeout, workers=a.workers, cache=cache)


def _run_space_and_accuracy(run_dir, model):
    """Rebuild the search space (and proxy accuracy table, if any) a saved run used."""
    from .results.result import load_result
    from .search.space import SearchSpace
    res = load_result(run_dir)
    space = SearchSpace.from_dict(res.meta.get("space", {}), source=f"{run_dir}/results.json: space")
    acc = None
    table = Path(run_dir) / "accuracy_table.npz"
    if table.exists():
        from .accuracy.tables import AccuracyTable
        acc = AccuracyTable.load(table)
    return res, space, acc


def cmd_evaluate(a):
    import os
    from . import zoo
    from .config import QuantConfig
    from .search.evaluate import evaluate_config
    cfg = QuantConfig.load(a.config)
    source = cfg.meta.get("source") if isinstance(cfg.meta.get("source"), dict) else {}
    run = a.run
    if run is None and isinstance(source.get("run"), str) and os.path.isdir(source["run"]):
        run = source["run"]     # the run the config was exported from: its space and accuracy table
        print(f"note: using the run this config was exported from: {run} (pass --run to choose another)",
              file=sys.stderr)
    if a.measured and not a.data and _is_onnx(a.model) and run:
        from .results.result import load_result
        rec = load_result(run).meta.get("model") or {}   # the inputs the run measured this file on
        if rec.get("data") and rec.get("source") == str(Path(a.model).resolve()):
            a.data, a.calibration_data = rec["data"], rec.get("calibration_data")
    model = _model_arg(a)
    model = zoo.load(model) if isinstance(model, str) else model
    if cfg.model is not None and cfg.model != model.name:
        raise QuantmooError(f"The config {a.config} was made for model '{cfg.model}', not '{model.name}': the layer "
                            f"names may match but the weights and sensitivities differ; search '{model.name}' itself")
    space = acc = None
    if run:
        _, space, acc = _run_space_and_accuracy(run, model)
    out = evaluate_config(model, a.hardware, cfg, space=space, accuracy=acc)
    if a.measured:
        if model.evaluator is None:
            raise _no_evaluator(a, model, "'--measured'")
        out["accuracy_loss_measured"] = float(model.evaluator.loss(cfg))
    elif out["accuracy_kind"] == "prior" and (model.evaluator is not None or model.weights is not None):
        print(f"warning: accuracy_loss is the prior noise model, not a prediction for {model.name}'s real weights: "
              f"pass --run RUN (the search's proxy) or --measured (the real model)", file=sys.stderr)
    if a.json:
        return _print(out, True)
    for k, v in out.items():
        print(f"{k:<22} {v:.10g}" if isinstance(v, float) else f"{k:<22} {v}")


def cmd_export(a):
    from .results.result import load_result
    res = load_result(a.run)
    if not res.front:
        raise QuantmooError(f"The run '{a.run}' has an empty front")
    if a.index is not None:
        if not 0 <= a.index < len(res.front):
            raise QuantmooError(f"The '--index' must be in 0..{len(res.front) - 1}; got {a.index}")
        sol = res.front[a.index]
    elif a.pick == "knee":
        sol = res.knee()
    elif a.pick == "best":
        sol = res.best(_parse_weights(a.weights))
    else:
        raise QuantmooError(f"The '--pick' value must be one of {{knee, best}}; got {a.pick!r}")
    if a.format not in EXPORT_FORMATS:
        raise QuantmooError(f"The '--format' value must be one of {{{', '.join(EXPORT_FORMATS)}}}; got {a.format!r}")
    if a.format == "llama.cpp":
        return _export_llamacpp(a, res, sol)
    if a.format == "mlx":
        return _export_mlx(a, sol)
    if a.format == "onnx":
        return _export_onnx(a, sol.config, res)
    import os
    cfg = sol.config
    # provenance: 'quantmoo evaluate' finds the run (its space and proxy table) from the config alone
    cfg = type(cfg)(cfg.layers, calibration=cfg.calibration, model=cfg.model, hardware=cfg.hardware,
                    meta={**cfg.meta, "source": {"run": os.path.abspath(a.run), "index": res.front.index(sol),
                                                 "accuracy_kind": res.accuracy_kind,
                                                 "objectives": {k: float(v) for k, v in sol.objectives.items()},
                                                 "measured": sol.measured}})
    text = cfg.to_yaml() if a.format == "yaml" else cfg.to_json()
    if a.out is not None:
        from .io import atomic_write_text
        _check_out_file(a.out, "--out", a.overwrite)
        atomic_write_text(Path(a.out), text)
        print(f"wrote {a.out}")
    else:
        print(text)


EXPORT_FORMATS = ("yaml", "json", "onnx", "llama.cpp", "mlx")


def _export_mlx(a, sol):
    from .results import export_mlx as ex
    text = ex.mlx_json(sol.config)
    notes = ex.mlx_notes(sol.config)
    if a.out is not None:
        from .io import atomic_write_text
        _check_out_file(a.out, "--out", a.overwrite)
        atomic_write_text(Path(a.out), text)
        print(f"wrote {a.out}: with q = its 'quantization' mapping, mlx_lm.convert(hf_path, quantize=True, "
              f"q_bits=q['bits'], q_group_size=q['group_size'], quant_predicate=lambda path, module: "
              f"q.get(path, True)) writes an MLX model whose config.json carries q")
    else:
        print(text, end="")
    if notes:
        shown = "; ".join(f"{k} ({v} layers)" for k, v in notes.items())
        print(f"note: MLX is weight-only, per-group and affine: {shown}", file=sys.stderr)


def _export_llamacpp(a, res, sol):
    from . import zoo
    from .results import export_llamacpp as ex
    name = a.model or (res.meta.get("model") or {}).get("name")
    if not name:
        raise QuantmooError(f"The run '{a.run}' does not name its model; pass --model")
    model = zoo.load(name)
    text = ex.tensor_type_file(model, sol.config)
    args = ex.tensor_type_args(model, sol.config)
    if a.out is not None:
        from .io import atomic_write_text
        _check_out_file(a.out, "--out", a.overwrite)
        atomic_write_text(Path(a.out), text)
        print(f"wrote {a.out} ({text.count(chr(10))} tensors); use it as:")
        print(f"  llama-quantize --tensor-type-file {a.out} MODEL-F16.gguf OUT.gguf {ex.base_type(model, sol.config)}")
    else:
        print(text, end="")
    out = sys.stdout if a.out else sys.stderr     # stdout stays the file itself when there is no --out
    print("equivalent arguments:", file=out)
    print(f"  {args}", file=out)


def _export_onnx(a, config, res):
    from .export.onnx_qdq import export_qdq, size_report
    from .io import atomic_write_bytes
    rec = res.meta.get("model") or {}     # the file the run searched, and the inputs it calibrated on
    a.model = a.model or rec.get("source")
    if not a.data and rec.get("source") and str(Path(str(a.model)).resolve()) == rec["source"]:
        a.data = rec.get("calibration_data") or rec.get("data")
    if not a.model or not str(a.model).lower().endswith(".onnx"):
        raise QuantmooError(f"'--format onnx' needs '--model' naming the fp32 .onnx file the run searched; "
                            f"got {a.model!r}")
    if not a.out:
        raise QuantmooError("'--format onnx' needs '--out FILE.onnx'")
    data = None
    if a.data:
        from .onnx import load_inputs
        data = load_inputs(a.data)
    _check_out_file(a.out, "--out", a.overwrite)
    model = export_qdq(a.model, config, data, **_overrides(a))
    atomic_write_bytes(Path(a.out), model.SerializeToString())
    r = size_report(model)
    print(f"wrote {a.out} ({r['file_bytes'] / 1e6:.3f} MB): quantized weights {r['onnx_weight_bytes'] / 1e6:.3f} MB "
          f"vs quantmoo's packed {r['quantmoo_weight_bytes'] / 1e6:.3f} MB (+{r['width_overhead']} B for 2/3/5/6-bit "
          f"grids in 4/8-bit types, {r['scale_zero_point_overhead']:+d} B fp32 scales / packed zero points)")


PLOT_KINDS = ("front", "front3d", "matrix", "parallel", "convergence", "heatmap", "hardware")


def cmd_plot(a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .results import plots
    from .results.result import load_result
    from .search.problem import OBJECTIVES
    if a.kind not in PLOT_KINDS:
        raise QuantmooError(f"The '--kind' value must be one of {{{', '.join(PLOT_KINDS)}}}; got {a.kind!r}")
    if a.x is None:
        a.x = "latency_ms" if a.kind == "hardware" else "size_mb"
    for axis in ("x", "y", "z"):
        if getattr(a, axis) not in OBJECTIVES:
            raise QuantmooError(f"The '--{axis}' value must be one of {{{', '.join(OBJECTIVES)}}}; "
                                f"got {getattr(a, axis)!r}")
    results = [load_result(r) for r in a.run]
    res = results[0]
    stem = Path(a.out) if a.out else Path(a.run[0]) / a.kind
    if a.out is not None:
        for ext in (".png", ".pdf", ".svg"):
            _check_out_file(f"{a.out}{ext}", "--out", a.overwrite)
    if a.kind == "front":
        fig = plots.plot_front(res, x=a.x, y=a.y, save=stem)
    elif a.kind == "front3d":
        fig = plots.plot_front_3d(res, x=a.x, y=a.y, z=a.z, save=stem)
    elif a.kind == "matrix":
        fig = plots.plot_scatter_matrix(res, save=stem)
    elif a.kind == "parallel":
        fig = plots.plot_parallel(res, save=stem)
    elif a.kind == "convergence":
        fig = plots.plot_convergence(results, save=stem)
    elif a.kind == "heatmap":
        fig = plots.plot_bit_heatmap(res, save=stem)
    else:
        fig = plots.plot_hardware_comparison(results, x=a.x, y=a.y, save=stem)
    plt.close(fig)
    print(f"wrote {stem}.png, {stem}.pdf, {stem}.svg")


def _load_space(path):
    if not path:
        return None
    from .io import load_yaml
    from .search.space import SearchSpace
    if path == "llama.cpp":     # the preset: one llama.cpp type per tensor
        return SearchSpace.llama_cpp()
    data, src = load_yaml(path)
    return SearchSpace.from_dict(data, source=src)


def cmd_sensitivity(a):
    from . import zoo
    from .accuracy.sensitivity import sensitivity
    out = Path(a.out)
    if out.suffix != ".npz":
        raise QuantmooError(f"The '--out' file must end in .npz; got {a.out!r}")
    _check_out_file(a.out, "--out", a.overwrite)
    model = _model_arg(a)
    model = zoo.load(model) if isinstance(model, str) else model
    if model.evaluator is None and model.weights is None:
        raise QuantmooError(f"The model '{model.name}' has no real weights and evaluator; sensitivity needs one of "
                            "{digits, minilm-l6} or a model with weights (e.g. an ONNX file)")
    # with an evaluator: measured one-layer responses; weights only (e.g. ONNX): the omega proxy
    table = sensitivity(model, _load_space(a.space), model.evaluator, progress=True)
    table.save(out)
    print(f"wrote {out} ({table.kind} table, measure {table.meta.get('measure')}, shape {table.table.shape})")


def cmd_validate(a):
    from .accuracy.validate import validate
    refine_on = tuple(v.strip() for v in a.refine_on.split(",") if v.strip())
    model = None
    if a.data and not a.model:   # new inputs for the model file the run searched
        from .results.result import load_result
        a.model = (load_result(a.run).meta.get("model") or {}).get("source")
    if a.data or a.model:
        model = _model_arg(a)
        if isinstance(model, str):
            from . import zoo
            model = zoo.load(model)
            if model.evaluator is None:
                raise _no_evaluator(a, model, "validating")
    report = validate(a.run, model=model, workers=a.workers, dask_address=a.dask_address, progress=True,
                      refine=a.refine, refine_on=refine_on, cache=_cache(a))
    info = report if isinstance(report, dict) else getattr(report, "__dict__", {})
    if a.json:
        return _print(info, True)
    v = info.get("kendall_tau")
    print(f"validated {info.get('n', '?')} front points of {a.run}; Kendall tau(proxy, measured) = "
          f"{v:.3f}" if isinstance(v, float) else f"validated {a.run}")


def demo(out="quantmoo-demo", seed=0, progress=None, pop_size=100, n_gen=100, overwrite=False) -> dict:
    """The end-to-end job: digits on arm_dot: sensitivity, search, measured validation, figures."""
    import time
    import warnings
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from . import search, zoo
    from .accuracy.sensitivity import sensitivity
    from .accuracy.validate import validate
    from .results import plots
    from .search.space import SearchSpace

    t0 = time.perf_counter()
    _check_out_dir(out, overwrite, kind="demo")
    show = progress if progress is not None else sys.stderr.isatty()

    def stage(msg):
        if show:
            print(f"[quantmoo demo {time.perf_counter() - t0:5.1f} s] {msg}", file=sys.stderr, flush=True)

    stage("1/4 sensitivity: one-layer measurements of the digits MLP")
    model = zoo.load("digits")
    space = SearchSpace()
    table = sensitivity(model, space, model.evaluator, progress=show)
    t_sens = time.perf_counter() - t0
    stage(f"2/4 NSGA-II search, {pop_size} x {n_gen} generations, then the baselines")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = search(model, "arm_dot", space=space, accuracy=table, pop_size=pop_size, n_gen=n_gen, seed=seed,
                     progress=show, max_front=60)
    t_search = time.perf_counter() - t0 - t_sens
    stage(f"3/4 measured validation of {len(res.front)} front points and {len(res.baselines)} baselines")
    validate(res, model=model, workers=1, progress=show)
    t_val = time.perf_counter() - t0 - t_sens - t_search

    figs = {}

    def extra_figures(tmp: Path):
        for name, fn in (("pareto", lambda: plots.plot_front(res, x="size_mb", y="accuracy_loss")),
                         ("pareto_latency", lambda: plots.plot_front(res, x="latency_ms", y="accuracy_loss")),
                         ("objectives_matrix", lambda: plots.plot_scatter_matrix(res)),
                         ("bit_heatmap", lambda: plots.plot_bit_heatmap(res)),
                         ("convergence", lambda: plots.plot_convergence([res]))):
            fig = fn()
            plots.save_figure(fig, tmp / name)
            plt.close(fig)
            figs[name] = f"{name}.png"

    stage(f"4/4 writing {out}/ (results, CSV tables, figures)")
    where = res.save(out, extra_files={"accuracy_table.npz": table.to_bytes()}, after_write=extra_figures,
                     overwrite=overwrite, kind="demo")
    measured = [(s.compression_ratio, s.measured.get("accuracy_loss")) for s in res.front
                if s.measured and s.measured.get("accuracy_loss") is not None]
    best10 = max((c for c, l in measured if l <= 1.0), default=None)
    best12 = max((c for c, l in measured if l <= 3.0), default=None)
    return {"out": str(where), "n_front": len(res.front), "figures": sorted(figs.values()),
            "kendall_tau": res.meta.get("validation", {}).get("kendall_tau"),
            "fp32_accuracy_pct": getattr(model.evaluator, "fp32_accuracy_pct", None),
            "max_compression_at_1pp": best10, "max_compression_at_3pp": best12,
            "seconds": {"sensitivity": t_sens, "search": t_search, "validation": t_val,
                        "total": time.perf_counter() - t0}, "result": res}


def cmd_demo(a):
    info = demo(a.out, a.seed, progress=None, overwrite=a.overwrite)
    res = info.pop("result")
    if a.json:
        return _print(info, True)
    print("quantmoo demo: digits MLP (real weights, scikit-learn's bundled digits) on arm_dot")
    print(res.summary(max_rows=15))
    tau = info["kendall_tau"]
    print(f"measured validation of {info['n_front']} front points: Kendall tau(proxy, measured) = "
          f"{tau:.3f}" if tau is not None else "measured validation done")
    if info["max_compression_at_1pp"]:
        print(f"largest compression at <= 1.0 pp measured accuracy loss: {info['max_compression_at_1pp']:.1f}x; "
              f"at <= 3.0 pp: {info['max_compression_at_3pp']:.1f}x")
    s = info["seconds"]
    print(f"time: sensitivity {s['sensitivity']:.1f} s, search {s['search']:.1f} s, validation "
          f"{s['validation']:.1f} s, total {s['total']:.1f} s")
    print(f"files in {info['out']}/: results.json, front.yaml, front.csv, evaluations.csv, accuracy_table.npz, "
          + ", ".join(info["figures"]) + " (+ .pdf/.svg)")
    print(f"reproduce a point: quantmoo export {info['out']} --pick knee --out knee.yaml && "
          f"quantmoo evaluate --model digits --hardware arm_dot --config knee.yaml --run {info['out']}")


def _not_yet(a):
    raise QuantmooError(f"'quantmoo {a.command}' is not available in this build")


COMMANDS = {"models": cmd_models, "hardware": cmd_hardware, "search": cmd_search, "evaluate": cmd_evaluate,
            "export": cmd_export, "plot": cmd_plot, "sensitivity": cmd_sensitivity, "validate": cmd_validate,
            "demo": cmd_demo}


def main(argv=None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    if not a.command:
        parser.print_help()
        return 2
    handler = COMMANDS.get(a.command, _not_yet)
    try:
        handler(a)
    except QuantmooError as e:
        print(f"quantmoo {a.command}: error: {e}", file=sys.stderr)
        return 2
    except _Interrupted as e:
        print(f"quantmoo {a.command}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"quantmoo {a.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug, not bad input: one line unless debugging is asked for
        import os
        if os.environ.get("QUANTMOO_DEBUG"):
            raise
        print(f"quantmoo {a.command}: internal error: {type(e).__name__}: {e} "
              "(set QUANTMOO_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
