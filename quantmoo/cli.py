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
    "evaluate": "quantmoo evaluate --model llama2-7b --hardware arm_dot --config runs/llama/config_knee.yaml",
    "sensitivity": "quantmoo sensitivity --model digits --out digits_sens.npz",
    "validate": "quantmoo validate runs/digits",
    "plot": "quantmoo plot runs/llama --kind front --x size_mb --y accuracy_loss",
    "export": "quantmoo export runs/llama --pick knee --format yaml --out knee.yaml",
    "models": "quantmoo models",
    "hardware": "quantmoo hardware --show hexagon\n  quantmoo hardware --measure-host host.yaml --seconds 5",
    "demo": "quantmoo demo --out quantmoo-demo",
}


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
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    s = cmd("search", "Search the Pareto front of per-layer quantization configs.")
    s.add_argument("--model", help="zoo name (see 'quantmoo models'), spec YAML, config.json or .onnx file (required)")
    s.add_argument("--hardware", help="profile name (see 'quantmoo hardware') or YAML path (required)")
    s.add_argument("--objectives", default="accuracy_loss,size_mb,latency_ms,energy_mj",
                   help="comma-separated, from accuracy_loss,size_mb,latency_ms,energy_mj,memory_mb")
    s.add_argument("--constraint", action="append", default=[], metavar="NAME<=VALUE",
                   help="upper bound, e.g. latency_ms<=50 (repeatable)")
    s.add_argument("--scenario", help="constraint preset: mobile, iot or edge_server")
    s.add_argument("--algorithm", default="nsga2", help="nsga2, nsga3, unsga3, smsemoa or ga")
    s.add_argument("--pop-size", type=int, default=100)
    s.add_argument("--n-gen", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--space", help="search-space YAML (fields of quantmoo.SearchSpace)")
    s.add_argument("--strict", action="store_true", help="only hardware-native choices")
    s.add_argument("--out", help="directory for results.json, front.yaml and figures: new, empty, or (with "
                   "--overwrite) an earlier quantmoo result; any other directory is refused")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an earlier quantmoo result in --out (files quantmoo did not write there are kept)")
    s.add_argument("--no-plot", action="store_true", help="do not write figures")
    s.add_argument("--json", action="store_true", help="print machine-readable output")
    s.add_argument("--progress", dest="progress", action="store_true", default=None)
    s.add_argument("--no-progress", dest="progress", action="store_false")
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
                   help="seed the population with the greedy and ILP baselines' configs")
    s.add_argument("--measured", action="store_true",
                   help="measure accuracy_loss with the model's real evaluator for every genome (digits, minilm-l6)")
    s.add_argument("--eval-timeout", type=float, metavar="SECONDS",
                   help="with --measured: an evaluation taking longer counts as failed (infeasible)")
    s.add_argument("--workers", type=int, default=1, help="with --measured: local processes for evaluations")

    e = cmd("evaluate", "Print the objectives of one saved config.")
    e.add_argument("--model", required=True)
    e.add_argument("--hardware", required=True)
    e.add_argument("--config", required=True, help="config YAML/JSON (QuantConfig)")
    e.add_argument("--run", help="run directory whose search space and accuracy model to use")
    e.add_argument("--json", action="store_true")

    x = cmd("export", "Export one solution of a saved run as a config file.")
    x.add_argument("run", help="run directory")
    x.add_argument("--pick", default="knee", help="knee or best")
    x.add_argument("--weights", help="for --pick best: e.g. accuracy_loss=0.7,latency_ms=0.3")
    x.add_argument("--index", type=int, help="front index (overrides --pick)")
    x.add_argument("--format", default="yaml", help="yaml or json")
    x.add_argument("--out", help="output file (default: stdout)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    m = cmd("models", "List the model zoo with parameter counts.")
    m.add_argument("--json", action="store_true")

    h = cmd("hardware", "List hardware profiles, show one, or measure this machine as a profile.")
    h.add_argument("--show", help="profile name or YAML path")
    h.add_argument("--measure-host", metavar="OUT.yaml",
                   help="measure this machine with NumPy (GEMM per dtype, memory bandwidth) and write a "
                        "'host' profile usable as --hardware OUT.yaml")
    h.add_argument("--seconds", metavar="S", help="with --measure-host: time budget in seconds (default 5)")
    h.add_argument("--overwrite", action="store_true", help="with --measure-host: replace an existing file")
    h.add_argument("--json", action="store_true")

    for name, help_ in (("sensitivity", "Per-layer sensitivity tables from real weights."),
                        ("validate", "Re-evaluate a run's front with the real evaluator."),
                        ("plot", "Figures from a saved run."),
                        ("demo", "End-to-end search on the bundled digits model with figures.")):
        c = cmd(name, help_)
        _EXTRA_ARGS.get(name, lambda c: None)(c)
    return p


def _sensitivity_args(c):
    c.add_argument("--model", required=True, help="a model with real weights: digits or minilm-l6")
    c.add_argument("--out", required=True, help="output .npz file")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    c.add_argument("--space", help="search-space YAML")


def _validate_args(c):
    c.add_argument("run", help="run directory")
    c.add_argument("--workers", type=int, default=None, help="local processes (default: all cores)")
    c.add_argument("--dask-address", help="run on a Dask cluster at this address")
    c.add_argument("--refine", type=int, default=0, metavar="K",
                   help="also measure, for every baseline, the K proxy-best non-dominated points no larger than it")
    c.add_argument("--refine-on", default="size_mb", metavar="OBJ[,OBJ]",
                   help="objectives a refined point must not exceed its baseline on (default size_mb)")
    c.add_argument("--json", action="store_true")


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
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true")


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
    _check_out_file(a.measure_host, "--measure-host", a.overwrite)
    try:
        path = hardware.write_host_profile(a.measure_host, seconds=seconds)
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
    if a.seconds is not None:
        raise QuantmooError("The '--seconds' option only applies with '--measure-host OUT.yaml'")
    if a.show:
        hw = hardware.load(a.show)
        mat = hw.support_matrix()
        if a.json:
            return _print({**hw.to_dict(), "support": {f"W{w}A{x}": list(v) for (w, x), v in mat.items()}}, True)
        print(f"{hw.name}: {hw.title}\nreference device: {hw.reference_device}")
        for d in [hw.main] + ([hw.fallback] if hw.fallback is not None else []):
            rates = ", ".join(f"{k} {v / 1e12:.3g} TMAC/s" for k, v in d.peak_macs_per_s.items())
            print(f"  device {d.name}: {d.title}; {rates}; {d.bandwidth_bytes_per_s / 1e9:.4g} GB/s")
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
    auto_checkpoint = not (a.resume or a.checkpoint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if a.resume:
                res = resume_search(a.resume, progress=a.progress)
            else:
                space = _load_space(a.space)
                objectives = [o.strip() for o in a.objectives.split(",") if o.strip()]
                constraints = _parse_constraints(a.constraint, a.scenario)
                accuracy = _accuracy(a)
                res = quantmoo.search(a.model, a.hardware, space=space, objectives=objectives,
                                      constraints=constraints, algorithm=a.algorithm, pop_size=a.pop_size,
                                      n_gen=a.n_gen, seed=a.seed, progress=a.progress, accuracy=accuracy,
                                      checkpoint=where, seed_baselines=a.seed_baselines,
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
        return _print({"out": str(written) if written else None, "n_front": len(res.front), "knee_index": k,
                       "front": [s.to_dict()["objectives"] for s in res.front]}, True)
    print(res.summary())
    if written:
        print(f"results written to {written}/ (results.json, front.yaml"
              f"{', pareto.png/.pdf' if not a.no_plot else ''})")


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
    if a.accuracy_table:
        from .accuracy.tables import AccuracyTable
        return AccuracyTable.load(a.accuracy_table)
    return _measured_accuracy(a) if a.measured else None


def _measured_accuracy(a):
    from . import zoo
    from .search.measured import MeasuredAccuracy
    model = zoo.load(a.model)
    if getattr(model, "evaluator", None) is None:
        raise QuantmooError(f"'--measured' needs a model with real weights and an evaluator (digits, minilm-l6); "
                            f"model '{model.name}' has none")
    if a.workers is not None and a.workers < 1:
        raise QuantmooError(f"The '--workers' must be an integer >= 1; got {a.workers}")
    # by zoo name: workers and a resumed run rebuild the evaluator from it
    return MeasuredAccuracy(model.name, eval_timeout=a.eval_timeout, workers=a.workers)


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
    from .config import QuantConfig
    from .search.evaluate import evaluate_config
    cfg = QuantConfig.load(a.config)
    space = acc = None
    if a.run:
        _, space, acc = _run_space_and_accuracy(a.run, a.model)
    out = evaluate_config(a.model, a.hardware, cfg, space=space, accuracy=acc)
    if a.json:
        return _print(out, True)
    for k, v in out.items():
        print(f"{k:<14} {v:.10g}" if isinstance(v, float) else f"{k:<14} {v}")


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
    if a.format not in ("yaml", "json"):
        raise QuantmooError(f"The '--format' value must be one of {{yaml, json}}; got {a.format!r}")
    text = sol.config.to_yaml() if a.format == "yaml" else sol.config.to_json()
    if a.out is not None:
        from .io import atomic_write_text
        _check_out_file(a.out, "--out", a.overwrite)
        atomic_write_text(Path(a.out), text)
        print(f"wrote {a.out}")
    else:
        print(text)


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
    data, src = load_yaml(path)
    return SearchSpace.from_dict(data, source=src)


def cmd_sensitivity(a):
    from . import zoo
    from .accuracy.sensitivity import sensitivity
    out = Path(a.out)
    if out.suffix != ".npz":
        raise QuantmooError(f"The '--out' file must end in .npz; got {a.out!r}")
    _check_out_file(a.out, "--out", a.overwrite)
    model = zoo.load(a.model)
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
    report = validate(a.run, workers=a.workers, dask_address=a.dask_address, progress=True, refine=a.refine,
                      refine_on=refine_on)
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
    model = zoo.load("digits")
    space = SearchSpace()
    table = sensitivity(model, space, model.evaluator)
    t_sens = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = search(model, "arm_dot", space=space, accuracy=table, pop_size=pop_size, n_gen=n_gen, seed=seed,
                     progress=progress, max_front=60)
    t_search = time.perf_counter() - t0 - t_sens
    validate(res, model=model, workers=1)
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
    print(f"files in {info['out']}/: results.json, front.yaml, accuracy_table.npz, "
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
