"""Figures for search results, sized for papers.

Every function returns the :class:`matplotlib.figure.Figure` it drew and, when ``save`` is a
path stem (``"figs/pareto"``), writes ``figs/pareto.pdf``, ``.svg`` and ``.png`` (200 dpi).
Nothing calls ``plt.show()`` and the backend is left alone (set ``MPLBACKEND=Agg`` for headless
use). Figures are 3.5 in wide (``width="single"``, one paper column) or 7.2 in
(``width="double"``), with 8 pt text, units on every axis, the Okabe-Ito colour-blind-safe
palette and "model on device" titles (human names: :data:`MODEL_NAMES`, :data:`DEVICE_NAMES`).
A proxy or prior ``accuracy_loss`` is labelled as such, never as a measured accuracy (DESIGN.md
section 6); with measured values beside it, both kinds get their own marks. A loss axis that
spans decades is symlog, losses above :data:`LOSS_CAP` (100 pp) are clipped and flagged, and the
hypervolume axis starts at 0 with its reference point stated.

Functions
---------
plot_front                2-D Pareto front with baselines, knee and measured values
plot_front_3d             3-D scatter of the front
plot_scatter_matrix       pairwise scatter of the objectives
plot_parallel             parallel coordinates, coloured by accuracy loss
plot_convergence          hypervolume against evaluations, median and band over seeds
plot_bit_heatmap          per-layer bit-widths of selected front points
plot_hardware_comparison  one model's fronts on several hardware targets
save_figure               write a figure as pdf, svg and png
"""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..errors import QuantmooError, check_choice
from .scales import loss_linthresh as _linthresh, loss_unit, wants_log as _wants_log

__all__ = [
    "OBJECTIVE_LABELS", "OKABE_ITO", "WIDTHS", "MODEL_NAMES", "DEVICE_NAMES", "LOSS_CAP", "HV_REFERENCE",
    "plot_front", "plot_front_3d", "plot_scatter_matrix",
    "plot_parallel", "plot_convergence", "plot_bit_heatmap", "plot_hardware_comparison", "save_figure",
]

#: Axis label (with unit) of every objective.
OBJECTIVE_LABELS = {
    "accuracy_loss": "accuracy loss (pp)",
    "size_mb": "model size (MB)",
    "latency_ms": "latency (ms)",
    "energy_mj": "energy per inference (mJ)",
    "memory_mb": "peak memory (MB)",
}
#: Short labels for crowded axes (scatter matrix, parallel coordinates).
_SHORT_LABELS = {
    "accuracy_loss": "acc. loss (pp)",
    "size_mb": "size (MB)",
    "latency_ms": "latency (ms)",
    "energy_mj": "energy (mJ)",
    "memory_mb": "peak mem. (MB)",
}
#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: Line colours in order (yellow last: it is hard to see as a thin line).
_CYCLE = [OKABE_ITO[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")]
#: Figure widths in inches: one column or the full text width of a two-column paper.
WIDTHS = {"single": 3.5, "double": 7.2}
#: Marker and colour per baseline kind.
_BASELINE_STYLE = {
    "uniform": {"marker": "s", "color": OKABE_ITO["orange"], "label": "uniform precision"},
    "greedy": {"marker": "^", "color": OKABE_ITO["vermillion"], "label": "greedy (AMP-style)"},
    "ilp": {"marker": "D", "color": OKABE_ITO["green"], "label": "ILP (HAWQ-V3-style)"},
    "rules": {"marker": "P", "color": OKABE_ITO["purple"], "label": "rule presets"},
    "random": {"marker": "x", "color": OKABE_ITO["sky"], "label": "random search"},
}
_OTHER_BASELINE = {"marker": "X", "color": OKABE_ITO["black"]}
_CMAP = "viridis"  # perceptually uniform, colour-blind safe
_FONT = 8
_SMALL = 6.5
_TINY = 5.5
#: Largest accuracy loss drawn (pp). accuracy_loss is in pp of a metric in %: test accuracy
#: (digits), the prior's accuracy, 100 * (1 - cosine) for embeddings (100 = orthogonal, nothing
#: left); none can lose more than 100 pp, so a proxy or prior beyond that is an extrapolation.
LOSS_CAP = 100.0
#: How quantmoo normalises the hypervolume (quantmoo.search.run.hv_reference), for figure legends.
HV_REFERENCE = ("reference point: 1.1 × the worst uniform-precision value of each objective;\n"
                "objectives divided by it, so the whole box has hypervolume 1")

_RC = {
    "font.size": _FONT, "axes.titlesize": _FONT, "axes.labelsize": _FONT, "figure.titlesize": _FONT,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": _SMALL, "legend.title_fontsize": _SMALL,
    "axes.linewidth": 0.6, "lines.linewidth": 1.0, "lines.markersize": 4, "patch.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "xtick.minor.width": 0.4, "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5, "ytick.major.size": 2.5, "xtick.minor.size": 1.5, "ytick.minor.size": 1.5,
    "xtick.major.pad": 2.0, "ytick.major.pad": 2.0, "axes.labelpad": 2.0, "axes.titlepad": 4.0,
    "legend.frameon": True, "legend.framealpha": 0.85, "legend.edgecolor": "0.8", "legend.borderpad": 0.3,
    "legend.handletextpad": 0.4, "legend.labelspacing": 0.3, "legend.handlelength": 1.5,
    "legend.columnspacing": 1.0, "grid.linewidth": 0.3, "grid.alpha": 0.5,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "path", "svg.hashsalt": "quantmoo",
    "savefig.dpi": 200, "figure.dpi": 100,
    "figure.constrained_layout.h_pad": 0.03, "figure.constrained_layout.w_pad": 0.03,
}


# -- helpers --------------------------------------------------------------------------------------
def _plt():
    import matplotlib.pyplot as plt
    return plt


def _mpl_cmap(name: str):
    """A registered colormap by name (matplotlib 3.6 to 3.11)."""
    import matplotlib as mpl
    return mpl.colormaps[name] if hasattr(mpl, "colormaps") else _plt().get_cmap(name)


def _styled(func):
    """Run a plotting function (drawing and saving) under quantmoo's rc style."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib as mpl
        from cycler import cycler
        # resolve the backend *before* the temporary rc block: resolving it inside (e.g. the
        # first figure in a Jupyter kernel) would be undone on exit and hide later figures
        mpl.get_backend()
        with mpl.rc_context({**_RC, "axes.prop_cycle": cycler(color=_CYCLE)}):
            return func(*args, **kwargs)
    return wrapper


def _width(width, owner: str) -> float:
    if isinstance(width, (int, float)) and not isinstance(width, bool):
        if width <= 0:
            raise QuantmooError(f"The 'width' of {owner} must be 'single', 'double' or inches > 0; got {width!r}")
        return float(width)
    check_choice("width", width, list(WIDTHS), owner)
    return WIDTHS[width]


def _new_figure(w: float, h: float, **kwargs):
    plt = _plt()
    return plt.subplots(figsize=(w, h), layout="constrained", **kwargs)


def _label(obj: str, kind: Optional[str] = None, short: bool = False, unit: str = "pp") -> str:
    """Axis label with unit; accuracy loss says when it is a proxy or a prior, and in which unit (pp unless
    the model says otherwise: a KL divergence is in nats)."""
    text = (_SHORT_LABELS if short else OBJECTIVE_LABELS)[obj]
    if obj == "accuracy_loss":
        text = text.replace(" (pp)", f", {kind} ({unit})" if kind in ("prior", "proxy", "measured") else f" ({unit})")
    return text


def _unit(results) -> tuple:
    """``(short unit, smallest symlog threshold, divergence)`` of the accuracy loss of one result or several (the
    first's): the model's ``accuracy_loss_unit``, pp when a result does not say (:func:`~.scales.loss_unit`)."""
    r = results[0] if isinstance(results, (list, tuple)) else results
    return loss_unit(((getattr(r, "meta", None) or {}).get("model") or {}).get("accuracy_loss_unit"))


def _loss_linthresh(values, force: bool = False, result=None) -> Optional[float]:
    """:func:`quantmoo.results.scales.loss_linthresh` with the smallest threshold of ``result``'s loss unit."""
    return _linthresh(values, force=force, floor=_unit(result)[1])


def _kind(results) -> Optional[str]:
    kinds = {getattr(r, "accuracy_kind", None) for r in results}
    return kinds.pop() if len(kinds) == 1 else ("prior" if "prior" in kinds else "proxy" if "proxy" in kinds else None)


def _check_objective(result, name, field: str, owner: str) -> str:
    check_choice(field, name, list(OBJECTIVE_LABELS), owner)
    if result.front and any(name not in s.objectives for s in result.front):
        have = sorted(set.intersection(*(set(s.objectives) for s in result.front)) & set(OBJECTIVE_LABELS))
        raise QuantmooError(f"The '{field}' value of {owner} is {name!r}, but the result holds no values for it; "
                            f"available: {{{', '.join(repr(h) for h in have)}}}")
    return name


def _objectives_arg(result, objectives, owner: str) -> list:
    if objectives is None:
        objectives = [o for o in result.objectives if o in OBJECTIVE_LABELS]
        if len(objectives) < 2:
            objectives = [o for o in OBJECTIVE_LABELS if o != "memory_mb"]
    if isinstance(objectives, str) or not isinstance(objectives, Sequence) or len(objectives) < 2:
        raise QuantmooError(f"The 'objectives' of {owner} must be a list of at least two objective names; "
                            f"got {objectives!r}")
    return [_check_objective(result, o, "objectives", owner) for o in objectives]


def _require_front(result, owner: str):
    if not getattr(result, "front", None):
        raise QuantmooError(f"{owner} needs a result with a non-empty front; got {result!r}")


def _values(result, obj: str) -> np.ndarray:
    return np.array([float(s.objectives[obj]) for s in result.front], dtype=float)


def _baseline_value(b: Mapping, obj: str) -> Optional[float]:
    v = (b.get("objectives") or {}).get(obj)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


#: Human names of the zoo's models (titles say "ResNet-50", not "resnet50").
MODEL_NAMES = {
    "digits": "digits MLP", "minilm-l6": "all-MiniLM-L6-v2", "bert-base": "BERT-base", "gpt2": "GPT-2 small",
    "llama2-7b": "Llama 2 7B", "llama3-8b": "Llama 3 8B", "mistral-7b": "Mistral 7B",
    "tinyllama-1.1b": "TinyLlama 1.1B", "mobilenet_v2": "MobileNetV2", "resnet18": "ResNet-18",
    "resnet50": "ResNet-50", "resnet101": "ResNet-101",
}
#: Short target names of the bundled hardware profiles: the reference device and the engine
#: (their ``reference_device`` and ``title`` fields are a sentence long).
DEVICE_NAMES = {
    "apple_ane": "Apple M4 Neural Engine", "arm_dot": "Raspberry Pi 5 (Cortex-A76, SDOT)",
    "arm_neon": "Raspberry Pi 4 (Cortex-A72, NEON)", "hexagon": "Snapdragon 8 Gen 3 (Hexagon NPU)",
    "intel_vnni": "Xeon 8480+ (AVX-512 VNNI)", "tensorrt": "Jetson AGX Orin (TensorRT)",
}


def _meta_field(result, key: str):
    meta = getattr(result, "meta", None) or {}
    v = meta.get(key)
    return v if isinstance(v, Mapping) else ({"name": v} if v else {})


def _model_name(result) -> str:
    """Human model name: the zoo mapping, else the name the result carries."""
    name = _meta_field(result, "model").get("name")
    if name is None and result.front:
        name = getattr(result.front[0].config, "model", None)
    return MODEL_NAMES.get(str(name), str(name)) if name else ""


def _hardware_name(result) -> str:
    """Target device: the mapping for bundled profiles, else the profile title without its
    parenthesis ("ARM dot-product (...)" -> "ARM dot-product"), else the profile name."""
    hw = _meta_field(result, "hardware")
    name = hw.get("name")
    if name is None and result.front:
        name = getattr(result.front[0].config, "hardware", None)
    if name in DEVICE_NAMES:
        return DEVICE_NAMES[name]
    title = str(hw.get("title") or "").split(" (")[0].strip()
    return title or (str(name) if name else "")


def _title(result) -> str:
    """"<model> on <device>", e.g. "digits MLP on Raspberry Pi 5 (Cortex-A76, SDOT)"."""
    model, hw = _model_name(result), _hardware_name(result)
    if model and hw:
        return f"{model} on {hw}"
    return model or hw


def _set_symlog(ax, axis: str, linthresh: float):
    """Symlog axis (linear within +-linthresh, so 0 and negative measured losses stay visible)
    with plain-number ticks (0, 0.1, 1, 10, 100)."""
    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator
    (ax.set_xscale if axis == "x" else ax.set_yscale)("symlog", linthresh=linthresh, linscale=1.0)
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(SymmetricalLogLocator(linthresh=linthresh, base=10))
    a.set_minor_locator(SymmetricalLogLocator(linthresh=linthresh, base=10, subs=np.arange(2, 10)))
    a.set_major_formatter(FuncFormatter(lambda t, _: "0" if t == 0 else f"{t:g}"))
    setattr(ax, f"_quantmoo_symlog_{axis}", linthresh)


def _symlog_floor(ax, axis: str, vmin: float):
    """No negative decades on a symlog loss axis whose data are all >= 0 (autoscale margins
    would otherwise reach into -1 .. -0.01)."""
    t = getattr(ax, f"_quantmoo_symlog_{axis}", None)
    if t is None or not vmin >= 0:
        return
    get, put = (ax.get_xlim, ax.set_xlim) if axis == "x" else (ax.get_ylim, ax.set_ylim)
    lo, hi = get()
    if lo < -0.5 * t:
        put(-0.5 * t, hi)


def _check_loss_args(loss_cap, loss_scale, owner: str):
    check_choice("loss_scale", loss_scale, ["auto", "linear", "symlog"], owner)
    if loss_cap is not None and (isinstance(loss_cap, bool) or not isinstance(loss_cap, (int, float))
                                 or not loss_cap > 0):
        raise QuantmooError(f"The 'loss_cap' of {owner} must be a number > 0 (pp) or None; got {loss_cap!r}")


def _nondominated_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points non-dominated in (x, y) (both minimised), sorted by x."""
    order = np.lexsort((y, x))
    keep, best = [], np.inf
    for i in order:
        if y[i] < best:
            keep.append(i)
            best = y[i]
    return np.array(keep, dtype=int)


def _short_baseline(name: str) -> str:
    """'uniform W4A8 per-group' -> 'W4A8 g'."""
    s = re.sub(r"^uniform\s+", "", str(name))
    s = s.replace("per-channel", "").replace("per_channel", "")
    s = s.replace("per-group", "g").replace("per_group", "g").replace("per-tensor", "t").replace("per_tensor", "t")
    return re.sub(r"\s+", " ", s).strip()


def _finish_axes(ax, grid: bool = True):
    ax.tick_params(labelsize=7, width=0.6, length=2.5, pad=2)
    ax.tick_params(which="minor", width=0.4, length=1.5)
    if grid:
        ax.grid(True, which="major", linewidth=0.3, alpha=0.5)
        ax.set_axisbelow(True)


def _outside_legends() -> bool:
    """``fig.legend(loc="outside ...")`` (placed by the constrained layout) needs matplotlib >= 3.7."""
    import matplotlib as mpl
    return tuple(getattr(mpl, "__version_info__", (0, 0))[:2]) >= (3, 7)


def _figure_legend(fig, ax, where: str, ncol: int = 1, handles=None, labels=None, **kwargs):
    """A legend outside the axes ("below" or "right"), falling back to the best spot inside ``ax``."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    kwargs.setdefault("fontsize", _SMALL)
    if _outside_legends():
        loc = "outside lower center" if where == "below" else "outside right upper"
        return fig.legend(handles, labels, loc=loc, ncol=ncol if where == "below" else 1, **kwargs)
    return ax.legend(handles, labels, loc="best", **kwargs)  # pragma: no cover - matplotlib 3.6


def _renderer(fig):
    try:
        fig.canvas.draw()
        return fig.canvas.get_renderer()
    except Exception:  # pragma: no cover - exotic canvases: keep all labels
        return None


def _fit_title(ax):
    """Break a "<model> on <device>" title after "on" when it runs past the figure (a long loss label narrows
    the axes the title is centred on)."""
    t, fig = ax.title, ax.figure
    r = _renderer(fig)
    if r is not None and " on " in t.get_text() and t.get_window_extent(r).x1 > fig.bbox.x1:
        t.set_text(t.get_text().replace(" on ", " on\n", 1))


def _text_extent(ann, renderer):
    """Pixel box of an annotation's text alone (``get_window_extent`` includes the leader line)."""
    from matplotlib.text import Text
    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


_LABEL_OFFSETS = [(4, 0, "left", "center"), (3, 3, "left", "bottom"), (3, -3, "left", "top"),
                  (-4, 0, "right", "center"), (-3, 3, "right", "bottom"), (-3, -3, "right", "top"),
                  (0, 5, "center", "bottom"), (0, -5, "center", "top")]
_FAR_OFFSETS = [(dx, dy, "left" if dx > 0 else "right" if dx < 0 else "center",
                 "bottom" if dy > 0 else "top" if dy < 0 else "center")
                for dx, dy in ((12, 10), (12, -10), (-12, 10), (-12, -10), (0, 16), (0, -16), (16, 0), (-16, 0),
                               (20, 18), (20, -18), (-20, 18), (-20, -18), (0, 26), (0, -26),
                               (30, 24), (-30, 24), (30, -24), (-30, -24), (0, 36), (0, -36))]


_HARD = "quantmoo-hard-obstacle"  # gid of scatters a label must never cover (baselines, knee)


def _marker_boxes(ax, renderer):
    """Pixel centres and radii of every scatter marker in ``ax``: (N, 3) array [x, y, r]."""
    from matplotlib.collections import PathCollection
    out = []
    scale = ax.figure.dpi / 72.0
    for c in ax.collections:
        if isinstance(c, PathCollection) and len(c.get_offsets()) and c.get_visible():
            xy = c.get_offset_transform().transform(c.get_offsets())
            sizes = np.broadcast_to(np.asarray(c.get_sizes() if len(c.get_sizes()) else [20.0], dtype=float),
                                    (len(xy),))
            r = 0.5 * np.sqrt(sizes) * scale + 1.0  # marker radius (s is in pt^2) plus a pixel
            out.append(np.column_stack([xy, r]))
    return np.concatenate(out) if out else np.zeros((0, 3))


def _merge_coincident(annotations, renderer, min_px: float):
    """Labels of points closer than ``min_px`` pixels become one label "A / B"."""
    keep = []
    for ann in annotations:
        p = ann.axes.transData.transform(ann.xy)
        for k in keep:
            if k.axes is ann.axes and np.hypot(*(k.axes.transData.transform(k.xy) - p)) < min_px:
                k.set_text(f"{k.get_text()} / {ann.get_text()}")
                ann.set_visible(False)
                break
        else:
            keep.append(ann)
    return keep


def _declutter(fig, annotations):
    """Place point labels without covering other labels or any marker.

    Labels of (nearly) coincident points are merged ("W4A8 / W4A8 g"); each label then tries
    near offsets, then far ones with a leader line, and takes the first whose text box stays
    inside the axes and off the legend, every scatter marker (with its real size) and every
    label placed before. A label that fits nowhere is hidden rather than drawn over data.
    """
    if not annotations:
        return
    renderer = _renderer(fig)
    if renderer is None:
        return
    annotations = _merge_coincident(annotations, renderer, 6.0 * fig.dpi / 72.0)
    placed, points = {}, {}

    def hits(P, bb):
        return bool(len(P)) and bool(((P[:, 0] > bb.x0 - P[:, 2]) & (P[:, 0] < bb.x1 + P[:, 2])
                                      & (P[:, 1] > bb.y0 - P[:, 2]) & (P[:, 1] < bb.y1 + P[:, 2])).any())

    for ann in annotations:
        ax = ann.axes
        axbox = ax.get_window_extent(renderer)
        legend = ax.get_legend()
        legbox = legend.get_window_extent(renderer) if legend is not None else None
        others = placed.setdefault(ax, [])
        if ax not in points:
            points[ax] = _marker_boxes(ax, renderer)
        for dx, dy, ha, va in _LABEL_OFFSETS + _FAR_OFFSETS:
            ann.xyann = (dx, dy)
            ann.set_ha(ha)
            ann.set_va(va)
            if ann.arrow_patch is not None:  # leader line only for far labels
                ann.arrow_patch.set_visible(abs(dx) + abs(dy) > 10)
            bb = _text_extent(ann, renderer)
            inside = (bb.x0 >= axbox.x0 and bb.x1 <= axbox.x1 and bb.y0 >= axbox.y0 and bb.y1 <= axbox.y1)
            if (inside and (legbox is None or not bb.overlaps(legbox)) and not hits(points[ax], bb)
                    and not any(bb.overlaps(o) for o in others)):
                others.append(bb)
                break
        else:
            ann.set_visible(False)


def save_figure(fig, path_stem) -> list:
    """Write ``fig`` as ``<path_stem>.pdf``, ``.svg`` and ``.png`` (200 dpi).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path_stem : str or Path
        Path without extension (a trailing ``.pdf``/``.svg``/``.png`` is dropped); parent
        directories are created.

    Returns
    -------
    list of Path
        The three files written (pdf, svg, png).
    """
    import matplotlib as mpl
    if not isinstance(path_stem, (str, Path)) or not str(path_stem):
        raise QuantmooError(f"The 'save' path must be a non-empty str or Path; got {path_stem!r}")
    path = Path(path_stem)
    if path.suffix.lower() in (".pdf", ".svg", ".png"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    rc = {k: _RC[k] for k in ("pdf.fonttype", "ps.fonttype", "svg.fonttype", "svg.hashsalt")}
    with mpl.rc_context(rc):
        for ext, kw in ((".pdf", {"metadata": {"CreationDate": None}}), (".svg", {"metadata": {"Date": None}}),
                        (".png", {"dpi": 200})):
            target = path.parent / (path.name + ext)
            fig.savefig(target, format=ext[1:], **kw)
            out.append(target)
    return out


def _done(fig, save, annotations=()):
    _declutter(fig, annotations)
    if save is not None:
        save_figure(fig, save)
    return fig


# -- 2-D front ------------------------------------------------------------------------------------
def _measured_xy(s, x: str, y: str):
    m = s.measured
    if not isinstance(m, Mapping):
        return None
    got = False
    out = []
    for obj in (x, y):
        v = m.get(obj)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
            got = True
        else:
            out.append(float(s.objectives[obj]))
    return tuple(out) if got else None


def _draw_front(ax, result, x: str, y: str, baselines=True, knee=True, measured=True,
                label_uniform=True, logx=None, logy=None, scale=1.0, loss_cap=None, loss_scale="auto",
                loss_linthresh=None):
    """Draw one front into ``ax``; return the point-label annotations (for decluttering).

    ``scale`` multiplies the marker areas (small panels use < 1). An ``accuracy_loss`` axis is
    clipped at ``loss_cap`` (clipped points get a triangle at the cap) and is symlog when
    ``loss_scale`` says so ("auto": when the values span more than 30x, see :func:`_loss_linthresh`).
    Proxy/prior front points are hollow and measured values filled when measured values are drawn.
    """
    annotations = []
    xs_all, ys_all = [], []
    clipped = []  # (x, y, colour) of points drawn at the cap
    kind = getattr(result, "accuracy_kind", None)
    unit = _unit(result)[0]

    def clip(vx, vy, colour):
        vx, vy = np.asarray(vx, dtype=float), np.asarray(vy, dtype=float)
        over = np.zeros(vx.shape, dtype=bool)
        if loss_cap is not None:
            if x == "accuracy_loss":
                over |= vx > loss_cap
                vx = np.minimum(vx, loss_cap)
            if y == "accuracy_loss":
                over |= vy > loss_cap
                vy = np.minimum(vy, loss_cap)
        clipped.extend((a, b, colour) for a, b in zip(vx[over], vy[over]))
        return vx, vy, over

    if result.front:
        xv, yv = _values(result, x), _values(result, y)
        pairs = []
        if measured:
            pairs = [(i, _measured_xy(s, x, y)) for i, s in enumerate(result.front)]
            pairs = [(i, m) for i, m in pairs if m is not None]
        # with measured values beside them, predicted (proxy/prior) points are hollow
        hollow = bool(pairs) and kind in ("proxy", "prior")
        pred = f", {kind} (predicted)" if kind in ("proxy", "prior") and "accuracy_loss" in (x, y) else ""
        nd = _nondominated_2d(xv, yv)
        dominated = np.setdiff1d(np.arange(len(xv)), nd)
        px, py, over = clip(xv, yv, OKABE_ITO["blue"])
        xs_all += list(px)
        ys_all += list(py)
        face = {"facecolors": "none", "linewidths": 0.7} if hollow else {"linewidths": 0}
        if dominated.size:
            d = dominated[~over[dominated]]
            ax.scatter(px[d], py[d], s=7 * scale, alpha=0.55, zorder=2, label="other front points" + pred,
                       **({"edgecolors": OKABE_ITO["sky"], **face} if hollow else {"color": OKABE_ITO["sky"], **face}))
        ax.step(px[nd], py[nd], where="post", color=OKABE_ITO["blue"], linewidth=0.9, zorder=3)
        n = nd[~over[nd]]
        ax.scatter(px[n], py[n], s=12 * scale, zorder=3,
                   label=("non-dominated (2-D)" if dominated.size else "Pareto front") + pred,
                   **({"edgecolors": OKABE_ITO["blue"], **face} if hollow else {"color": OKABE_ITO["blue"], **face}))
        if pairs:
            mxy = np.array([m for _, m in pairs])
            mx, my, mover = clip(mxy[:, 0], mxy[:, 1], OKABE_ITO["vermillion"])
            for (i, _), a, b in zip(pairs, mx, my):
                ax.plot([px[i], a], [py[i], b], color="0.45", linewidth=0.5, zorder=3)
            ax.scatter(mx[~mover], my[~mover], s=12 * scale, color=OKABE_ITO["vermillion"], linewidths=0, zorder=4,
                       label="measured (same configs)")
            xs_all += list(mx)
            ys_all += list(my)
        if knee:
            k = result.knee_index()
            ax.scatter([px[k]], [py[k]], s=90 * scale, marker="*", color=OKABE_ITO["yellow"], edgecolors="black",
                       linewidths=0.6, zorder=6, label="knee" + pred, gid=_HARD)
    else:
        ax.text(0.5, 0.5, "no feasible front point", transform=ax.transAxes, ha="center", va="center",
                fontsize=_SMALL, color="0.3")
    if baselines and getattr(result, "baselines", None):
        by_kind = {}
        for b in result.baselines:
            bx, by = _baseline_value(b, x), _baseline_value(b, y)
            if bx is None or by is None:
                continue
            by_kind.setdefault(str(b.get("kind", "other")), []).append((bx, by, b.get("name", "")))
        for bkind, pts in by_kind.items():
            st = _BASELINE_STYLE.get(bkind, {**_OTHER_BASELINE, "label": f"{bkind} baseline"})
            bx, by, over = clip([p[0] for p in pts], [p[1] for p in pts], st["color"])
            ax.scatter(bx[~over], by[~over], s=(20 if st["marker"] != "x" else 16) * scale, marker=st["marker"],
                       color=st["color"], edgecolors="black" if st["marker"] != "x" else None,
                       linewidths=0.4 if st["marker"] != "x" else 0.9, zorder=5, label=st["label"], gid=_HARD)
            xs_all += list(bx)
            ys_all += list(by)
            if bkind == "uniform" and label_uniform:
                for ux, uy, (_, _, name) in zip(bx, by, pts):
                    ann = ax.annotate(_short_baseline(name), (ux, uy), xytext=(4, 0), textcoords="offset points",
                                      fontsize=_TINY, color="0.25", zorder=7, annotation_clip=False,
                                      ha="left", va="center",
                                      arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.4,
                                                  "shrinkA": 0.5, "shrinkB": 2.5})
                    ann.arrow_patch.set_visible(False)
                    ann.set_in_layout(False)
                    annotations.append(ann)
    if clipped:
        c = np.array([(a, b) for a, b, _ in clipped])
        marker = "^" if y == "accuracy_loss" else ">"
        ax.scatter(c[:, 0], c[:, 1], s=28 * scale, marker=marker, color=[col for _, _, col in clipped],
                   edgecolors="black", linewidths=0.5, zorder=6, gid=_HARD,
                   label=f"loss > {_fmt(loss_cap)} {unit}, drawn at {_fmt(loss_cap)} (clipped)")
    for axis, obj, vals, log in (("x", x, xs_all, logx), ("y", y, ys_all, logy)):
        if obj == "accuracy_loss":
            t = loss_linthresh if loss_linthresh is not None else _loss_linthresh(vals, result=result) \
                if loss_scale == "auto" else _loss_linthresh(vals, True, result) if loss_scale == "symlog" else None
            if t is not None:
                _set_symlog(ax, axis, t)
                v = np.asarray(vals, dtype=float)
                _symlog_floor(ax, axis, float(np.nanmin(v)) if v.size else 0.0)
        elif log if log is not None else _wants_log(vals, obj):
            (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    _finish_axes(ax)
    return annotations


def _front_label(result, obj: str, ax, axis: str, short: bool = False) -> str:
    """Axis label: names the kind of an accuracy loss, both kinds when measured values are drawn."""
    kind = getattr(result, "accuracy_kind", None)
    if obj != "accuracy_loss":
        return _label(obj, kind, short=short)
    unit = _unit(result)[0]
    both = any(c.get_label() == "measured (same configs)" for c in ax.collections)
    if both and kind in ("proxy", "prior"):
        text = f"acc. loss ({unit}; {kind} & meas.)" if short else f"accuracy loss ({unit}; {kind} and measured)"
    else:
        text = _label(obj, kind, short=short, unit=unit)
    linthresh = getattr(ax, f"_quantmoo_symlog_{axis}", None)
    if linthresh is None:
        return text
    return text + (f"\nlog above {_fmt(linthresh)}" if short else f"\nlog scale; linear below {_fmt(linthresh)}")


@_styled
def plot_front(result, x="size_mb", y="accuracy_loss", baselines=True, knee=True, measured=True, ax=None,
               save=None, width="single", loss_cap=LOSS_CAP, loss_scale="auto"):
    """2-D view of the Pareto front.

    The front's points that are non-dominated in (``x``, ``y``) are joined by a step line
    (the attainment boundary); the other front points (non-dominated only in the full objective
    space) are drawn lighter. Baselines get one marker per kind (uniform ones are labelled;
    labels that would cover a marker or another label are merged or left out), the knee a star.
    Measured values are filled vermillion dots joined to their predicted (proxy or prior) points,
    which are then hollow; the loss axis names both kinds. A loss above ``loss_cap`` (an accuracy
    in % cannot drop by more than 100 pp) is drawn at the cap as a triangle and listed in the
    legend. The x axis is logarithmic when its values span more than 30x; the loss axis is
    symlog (linear near 0) when its values span more than 30x.

    Parameters
    ----------
    result : SearchResult
    x, y : str
        Objective names (keys of :data:`OBJECTIVE_LABELS`).
    baselines, knee, measured : bool
        Draw the baselines, the knee point, the measured values (where present).
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    save : str or Path, optional
        Path stem: writes ``save.pdf``, ``save.svg`` and ``save.png``.
    width : {"single", "double"} or float
        Figure width (3.5 in, 7.2 in or inches); ignored when ``ax`` is given.
    loss_cap : float or None
        Largest accuracy loss drawn (default 100 pp); None draws every value where it is.
    loss_scale : {"auto", "linear", "symlog"}
        Scale of an accuracy-loss axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_front"
    _check_objective(result, x, "x", owner)
    _check_objective(result, y, "y", owner)
    _check_loss_args(loss_cap, loss_scale, owner)
    own = ax is None
    if own:
        w = _width(width, owner)
        fig, ax = _new_figure(w, w * (0.9 if w <= 4 else 0.45))
    else:
        fig = ax.figure
    annotations = _draw_front(ax, result, x, y, baselines=baselines, knee=knee, measured=measured,
                              loss_cap=loss_cap, loss_scale=loss_scale)
    ax.set_xlabel(_front_label(result, x, ax, "x"))
    ax.set_ylabel(_front_label(result, y, ax, "y"))
    title = _title(result)
    if title:
        ax.set_title(title)
    if own:
        _figure_legend(fig, ax, "below" if fig.get_figwidth() <= 4 else "right",
                       ncol=2 if fig.get_figwidth() <= 4 else 1)
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=_SMALL)
    if title:
        _fit_title(ax)
    return _done(fig, save, annotations)


# -- 3-D front ------------------------------------------------------------------------------------
@_styled
def plot_front_3d(result, x="size_mb", y="latency_ms", z="accuracy_loss", baselines=True, knee=True, save=None,
                  width="single", loss_cap=LOSS_CAP):
    """3-D scatter of the front, coloured by ``z``, knee starred, uniform baselines as squares.

    An accuracy loss above ``loss_cap`` is drawn at the cap (counted in the legend); colours of
    an accuracy loss spanning decades follow a symlog scale.

    Parameters
    ----------
    result : SearchResult
    x, y, z : str
        Objective names.
    baselines, knee : bool
    save : str or Path, optional
        Path stem for pdf/svg/png.
    width : {"single", "double"} or float
    loss_cap : float or None
        Largest accuracy loss drawn (default 100 pp); None: no clipping.

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_front_3d"
    for f, v in (("x", x), ("y", y), ("z", z)):
        _check_objective(result, v, f, owner)
    _require_front(result, owner)
    _check_loss_args(loss_cap, "auto", owner)
    n_clipped = 0

    def cap(v, obj):
        nonlocal n_clipped
        if obj != "accuracy_loss" or loss_cap is None:
            return v
        n_clipped += int((v > loss_cap).sum())
        return np.minimum(v, loss_cap)

    plt = _plt()
    w = _width(width, owner)
    from matplotlib.lines import Line2D
    small = w <= 4
    fig = plt.figure(figsize=(w, w * (0.86 if small else 0.6)), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    xv, yv, zv = cap(_values(result, x), x), cap(_values(result, y), y), cap(_values(result, z), z)
    kind = result.accuracy_kind
    unit = _unit(result)[0]
    norm = None
    if z == "accuracy_loss" and _loss_linthresh(zv, result=result) is not None:
        from matplotlib.colors import SymLogNorm
        norm = SymLogNorm(_loss_linthresh(zv, result=result), linscale=1.0, base=10)
    ax.scatter(xv, yv, zv, c=zv, cmap=_CMAP, norm=norm, s=8, depthshade=False, linewidths=0)
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=3.5, markeredgewidth=0,
                      color=_mpl_cmap(_CMAP)(0.45), label=f"front (colour: {_label(z, kind, short=True, unit=unit)})")]
    if knee:
        k = result.knee_index()
        ax.scatter([xv[k]], [yv[k]], [zv[k]], marker="*", s=90, color=OKABE_ITO["yellow"], edgecolors="black",
                   linewidths=0.6, depthshade=False)
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=8, markerfacecolor=OKABE_ITO["yellow"],
                              markeredgecolor="black", markeredgewidth=0.6, label="knee"))
    if baselines:
        pts = [(_baseline_value(b, x), _baseline_value(b, y), _baseline_value(b, z)) for b in result.baselines]
        pts = np.array([p for p in pts if None not in p], dtype=float).reshape(-1, 3)
        pts = np.column_stack([cap(pts[:, i], o) for i, o in enumerate((x, y, z))]) if len(pts) else pts
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], marker="s", s=14, color=OKABE_ITO["orange"],
                       edgecolors="black", linewidths=0.4, depthshade=False)
            handles.append(Line2D([], [], linestyle="none", marker="s", markersize=3.5,
                                  markerfacecolor=OKABE_ITO["orange"], markeredgecolor="black",
                                  markeredgewidth=0.4, label="baselines"))
    if n_clipped:
        handles.append(Line2D([], [], linestyle="none", label=f"{n_clipped} loss{'es' if n_clipped > 1 else ''} "
                              f"> {_fmt(loss_cap)} {unit} drawn at {_fmt(loss_cap)} (clipped)"))
    if norm is not None:
        handles[0].set_label(handles[0].get_label()[:-1] + f", log above {_fmt(norm.linthresh)})")
    lab_fs = _SMALL if small else _FONT
    ax.set_xlabel(_label(x, kind, short=True, unit=unit), labelpad=-4, fontsize=lab_fs)
    ax.set_ylabel(_label(y, kind, short=True, unit=unit), labelpad=-4, fontsize=lab_fs)
    ax.set_zlabel(_label(z, kind, short=True, unit=unit), labelpad=-5, fontsize=lab_fs)
    ax.tick_params(labelsize=_TINY if small else _SMALL, pad=-3 if small else -1)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(_plt().MaxNLocator(4))
    ax.view_init(elev=22, azim=-55)
    try:
        ax.set_box_aspect(None, zoom=0.95)
    except TypeError:  # pragma: no cover - matplotlib < 3.6 has no zoom
        pass
    title = _title(result)
    if title:
        ax.set_title(title, pad=0)
    _figure_legend(fig, ax, "below", ncol=3, handles=handles, labels=[h.get_label() for h in handles],
                   fontsize=_TINY if small else _SMALL)
    return _done(fig, save)


# -- scatter matrix -------------------------------------------------------------------------------
@_styled
def plot_scatter_matrix(result, objectives=None, baselines=True, save=None, width="double", loss_cap=LOSS_CAP):
    """Pairwise scatter of the objectives (lower triangle), histograms on the diagonal.

    The knee is starred in every panel; baselines are drawn as squares. An axis is
    logarithmic when its values span more than 30x (accuracy loss: symlog, linear near 0);
    an accuracy loss above ``loss_cap`` is drawn at the cap (said in the legend).

    Parameters
    ----------
    result : SearchResult
    objectives : list of str, optional
        Default: the searched objectives.
    baselines : bool
    save : str or Path, optional
    width : {"single", "double"} or float
    loss_cap : float or None
        Largest accuracy loss drawn (default 100 pp); None: no clipping.

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_scatter_matrix"
    _require_front(result, owner)
    _check_loss_args(loss_cap, "auto", owner)
    objs = _objectives_arg(result, objectives, owner)
    n = len(objs)
    w = _width(width, owner)
    fig, axes = _new_figure(w, w * 0.88, nrows=n, ncols=n, squeeze=False)
    vals = {o: _values(result, o) for o in objs}
    base = [b for b in (result.baselines if baselines else []) if all(_baseline_value(b, o) is not None for o in objs)]
    bvals = {o: np.array([_baseline_value(b, o) for b in base], dtype=float) for o in objs}
    n_clipped = 0
    if "accuracy_loss" in objs and loss_cap is not None:
        n_clipped = int((vals["accuracy_loss"] > loss_cap).sum() + (bvals["accuracy_loss"] > loss_cap).sum())
        vals["accuracy_loss"] = np.minimum(vals["accuracy_loss"], loss_cap)
        bvals["accuracy_loss"] = np.minimum(bvals["accuracy_loss"], loss_cap)
    unit = _unit(result)[0]
    logs = {o: (_loss_linthresh(np.concatenate([vals[o], bvals[o]]), result=result) if o == "accuracy_loss"
                else _wants_log(np.concatenate([vals[o], bvals[o]]), o)) for o in objs}

    def scale(ax, axis, o):
        if logs[o] is None or logs[o] is False:
            return
        if o == "accuracy_loss":
            _set_symlog(ax, axis, logs[o])
        else:
            (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    k = result.knee_index()
    kind = result.accuracy_kind
    small = w <= 4
    for i, oy in enumerate(objs):
        for j, ox in enumerate(objs):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                v = vals[ox]
                if logs[ox] and ox != "accuracy_loss":
                    bins = np.geomspace(v.min(), v.max(), 16) if v.max() > v.min() else 10
                elif logs[ox]:  # symlog: bins even on the symlog axis
                    from matplotlib.scale import SymmetricalLogTransform
                    tr = SymmetricalLogTransform(10, logs[ox], 1.0)
                    lo, hi = tr.transform(np.array([[v.min()], [v.max()]]))[:, 0]
                    bins = tr.inverted().transform(np.linspace(lo, hi, 16)[:, None])[:, 0] if hi > lo else 10
                else:
                    bins = 15
                ax.hist(v, bins=bins, color=OKABE_ITO["blue"], alpha=0.75, linewidth=0)
                ax.axvline(v[k], color="black", linewidth=0.8, linestyle="--", label="knee")
                ax.set_yticks([])
            else:
                ax.scatter(vals[ox], vals[oy], s=4 if small else 6, color=OKABE_ITO["blue"], alpha=0.6,
                           linewidths=0, label="front", zorder=2)
                if len(base):
                    ax.scatter(bvals[ox], bvals[oy], s=10 if small else 14, marker="s", color=OKABE_ITO["orange"],
                               edgecolors="black", linewidths=0.3, label="baselines", zorder=3)
                ax.scatter([vals[ox][k]], [vals[oy][k]], s=40 if small else 70, marker="*",
                           color=OKABE_ITO["yellow"], edgecolors="black", linewidths=0.5, label="knee", zorder=4)
                scale(ax, "y", oy)
            scale(ax, "x", ox)
            _finish_axes(ax)
            ax.tick_params(labelsize=_TINY if small else _SMALL)
            if i == n - 1:
                ax.set_xlabel(_label(ox, kind, short=True, unit=unit), fontsize=_SMALL if small else _FONT)
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(_label(oy, kind, short=True, unit=unit), fontsize=_SMALL if small else _FONT)
            elif i != j:
                ax.tick_params(labelleft=False)
    # share limits: columns share x, rows share y (off-diagonal)
    for j in range(n):
        col = [axes[i, j] for i in range(j, n)]
        lo = min(a.get_xlim()[0] for a in col)
        hi = max(a.get_xlim()[1] for a in col)
        for a in col:
            a.set_xlim(lo, hi)
    for i in range(1, n):
        row = [axes[i, j] for j in range(i)]
        lo = min(a.get_ylim()[0] for a in row)
        hi = max(a.get_ylim()[1] for a in row)
        for a in row:
            a.set_ylim(lo, hi)
    if "accuracy_loss" in objs:
        j = objs.index("accuracy_loss")
        vmin = float(min(vals["accuracy_loss"].min(), bvals["accuracy_loss"].min(initial=np.inf)))
        for i in range(j, n):
            _symlog_floor(axes[i, j], "x", vmin)
        for jj in range(j):
            _symlog_floor(axes[j, jj], "y", vmin)
    handles, labels = axes[1, 0].get_legend_handles_labels() if n > 1 else ([], [])
    if n > 1 and handles:
        notes = "diagonal: histograms,\ndashed line: knee"
        if "accuracy_loss" in objs and logs["accuracy_loss"]:
            notes += f"\nacc. loss: log scale,\nlinear below {_fmt(logs['accuracy_loss'])} {unit}"
        if n_clipped:
            notes += f"\n{n_clipped} acc. loss > {_fmt(loss_cap)} {unit}\ndrawn at {_fmt(loss_cap)} (clipped)"
        leg = axes[0, n - 1].legend(handles, labels, loc="upper right", fontsize=_SMALL,
                                    title=notes, title_fontsize=_TINY)
        leg.set_in_layout(False)  # it sits in the empty upper triangle; do not widen that column
    title = _title(result)
    if title:
        fig.suptitle(f"{title}: {len(result.front)} front points")
    return _done(fig, save)


# -- parallel coordinates -------------------------------------------------------------------------
@_styled
def plot_parallel(result, objectives=None, color_by="accuracy_loss", save=None, width="double"):
    """Parallel coordinates of the front: one vertical axis per objective.

    Each axis is min-max normalised over the front (bottom = best) and labelled with the real
    minimum, middle and maximum; lines are coloured by ``color_by``, the knee is drawn in black.

    Parameters
    ----------
    result : SearchResult
    objectives : list of str, optional
        Default: the searched objectives.
    color_by : str
        Objective that colours the lines.
    save : str or Path, optional
    width : {"single", "double"} or float

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import LineCollection
    owner = "plot_parallel"
    _require_front(result, owner)
    objs = _objectives_arg(result, objectives, owner)
    _check_objective(result, color_by, "color_by", owner)
    m = len(objs)
    w = _width(width, owner)
    small = w <= 4
    fig, ax = _new_figure(w, w * (0.62 if small else 0.36))
    V = np.column_stack([_values(result, o) for o in objs])
    lo, hi = V.min(axis=0), V.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    N = np.where(hi > lo, (V - lo) / span, 0.5)
    xs = np.arange(m, dtype=float)
    c = _values(result, color_by)
    segs = [np.column_stack([xs, row]) for row in N]
    n = len(segs)
    alpha = float(np.clip(40.0 / max(n, 1), 0.2, 0.8))  # many lines: lighter, so density shows
    norm = None
    if color_by == "accuracy_loss" and _loss_linthresh(c, result=result) is not None:  # 0.1 and 1 pp differ
        from matplotlib.colors import SymLogNorm
        norm = SymLogNorm(_loss_linthresh(c, result=result), linscale=1.0, base=10)
    lc = LineCollection(segs, cmap=_CMAP, norm=norm, linewidths=0.6 if n <= 100 else 0.45, alpha=alpha, zorder=2)
    lc.set_array(c)
    ax.add_collection(lc)
    k = result.knee_index()
    from matplotlib import patheffects
    ax.plot(xs, N[k], color=OKABE_ITO["yellow"], linewidth=1.0, zorder=5, label="knee",
            path_effects=[patheffects.withStroke(linewidth=2.4, foreground="black")])
    for i in range(m):
        ax.axvline(i, color="0.2", linewidth=0.6, zorder=3)
        for frac in (0.0, 0.5, 1.0):
            v = lo[i] + frac * (hi[i] - lo[i])
            ax.annotate(_fmt(v), (i, frac), xytext=(-2.5, 0), textcoords="offset points", ha="right",
                        va="center", fontsize=_TINY, color="0.2", zorder=6,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xlim(-0.3 if not small else -0.42, m - 1 + 0.08)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xticks(xs)
    kind, unit = result.accuracy_kind, _unit(result)[0]
    ax.set_xticklabels([_label(o, kind, short=True, unit=unit).replace(" (", "\n(") for o in objs],
                       fontsize=_SMALL if small else 7)
    ax.set_yticks([])
    ax.set_ylabel("normalised (lower is better)" if small else "min–max normalised (lower is better)",
                  fontsize=_SMALL if small else _FONT)
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    ax.tick_params(axis="x", length=0, pad=3)
    cb = fig.colorbar(lc, ax=ax, pad=0.01, fraction=0.05 if not small else 0.07, aspect=25)
    cb.set_label(_label(color_by, kind, short=small, unit=unit) + (f"\nlog above {_fmt(norm.linthresh)}" if norm else ""),
                 fontsize=_SMALL if small else _FONT)
    if norm is not None:
        from matplotlib.ticker import FuncFormatter
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: "0" if t == 0 else f"{t:g}"))
    cb.ax.tick_params(labelsize=_TINY if small else _SMALL, width=0.5, length=2)
    cb.outline.set_linewidth(0.5)
    _figure_legend(fig, ax, "below", ncol=1, frameon=False)
    title = _title(result)
    if title:
        ax.set_title(f"{title}: {len(result.front)} front points")
    return _done(fig, save)


# -- convergence ----------------------------------------------------------------------------------
def _as_history(h) -> list:
    if hasattr(h, "history"):
        h = h.history
    if not isinstance(h, Sequence) or isinstance(h, (str, bytes)) or (len(h) and not isinstance(h[0], Mapping)):
        raise QuantmooError("Each history of plot_convergence must be a list of dicts with 'n_eval' and "
                            f"'hypervolume' (or a SearchResult); got {type(h).__name__}")
    return list(h)


def _is_history(h) -> bool:
    return hasattr(h, "history") or (isinstance(h, Sequence) and not isinstance(h, (str, bytes))
                                     and (len(h) == 0 or isinstance(h[0], Mapping)))


def _history_groups(histories, labels) -> list:
    """Normalise the input into ``[(label, [history, ...]), ...]``."""
    if isinstance(histories, Mapping):
        groups = [(str(k), v) for k, v in histories.items()]
        if labels is not None:
            if isinstance(labels, str) or len(labels) != len(groups):
                raise QuantmooError(f"The 'labels' of plot_convergence must have one name per group "
                                    f"({len(groups)}); got {labels!r}")
            groups = [(str(lab), v) for lab, (_, v) in zip(labels, groups)]
    else:
        if hasattr(histories, "history"):
            histories = [histories]
        if not isinstance(histories, Sequence) or isinstance(histories, (str, bytes)) or not len(histories):
            raise QuantmooError("The 'histories' of plot_convergence must be a non-empty list of histories "
                                f"or a dict label -> list of histories; got {histories!r}")
        if isinstance(histories[0], Mapping):  # one history
            histories = [histories]
        if all(_is_history(h) for h in histories):
            groups = [(labels if isinstance(labels, str) else (labels[0] if labels else ""), histories)]
        else:  # a list of groups
            if labels is None:
                labels = [f"run set {i + 1}" for i in range(len(histories))]
            if isinstance(labels, str) or len(labels) != len(histories):
                raise QuantmooError(f"The 'labels' of plot_convergence must have one name per group "
                                    f"({len(histories)}); got {labels!r}")
            groups = list(zip([str(lab) for lab in labels], histories))
    out = []
    for label, hs in groups:
        if _is_history(hs) and (hasattr(hs, "history") or (len(hs) and isinstance(hs[0], Mapping))):
            hs = [hs]
        runs = []
        for h in hs:
            h = _as_history(h)
            try:
                e = np.array([float(r["n_eval"]) for r in h], dtype=float)
                v = np.array([float(r["hypervolume"]) for r in h], dtype=float)
            except (KeyError, TypeError, ValueError):
                raise QuantmooError("Each history row of plot_convergence must hold numeric 'n_eval' and "
                                    "'hypervolume'") from None
            ok = np.isfinite(e) & np.isfinite(v)
            e, v = e[ok], v[ok]
            if e.size:
                order = np.argsort(e, kind="stable")
                runs.append((e[order], v[order]))
        out.append((label, runs))
    if not any(runs for _, runs in out):
        raise QuantmooError("plot_convergence got no history rows to plot")
    return out


def _band(runs, band: str):
    """Median and band of the runs on a common n_eval grid (the evaluation counts all runs share)."""
    lo = max(e[0] for e, _ in runs)
    hi = min(e[-1] for e, _ in runs)
    grid = np.unique(np.concatenate([e for e, _ in runs]))
    if hi > lo:
        grid = grid[(grid >= lo) & (grid <= hi)]
    Y = np.array([np.interp(grid, e, v) for e, v in runs])
    med = np.median(Y, axis=0)
    if band == "iqr":
        return grid, med, np.percentile(Y, 25, axis=0), np.percentile(Y, 75, axis=0)
    return grid, med, Y.min(axis=0), Y.max(axis=0)


@_styled
def plot_convergence(histories, labels=None, band="minmax", title=None, save=None, width="single",
                     from_zero=True, reference=HV_REFERENCE):
    """Hypervolume against function evaluations: median over seeds and a band.

    Parameters
    ----------
    histories : list or dict
        A list (over seeds) of histories (``SearchResult.history`` lists or SearchResults), or a
        dict ``label -> list of histories`` (one entry per algorithm), or a list of such lists
        with ``labels``. A single history is accepted too.
    labels : str or list of str, optional
        Name of the single group, or one name per group.
    band : {"minmax", "iqr"}
        Band drawn around the median: range or interquartile range over seeds.
    title : str, optional
        Default: "model on device" when the histories came from SearchResults.
    save : str or Path, optional
    width : {"single", "double"} or float
    from_zero : bool
        Start the y axis at 0 (default), so a 0.6 % gain does not look like a steep climb; each
        line's legend entry gives its first and last median value. False zooms in on the curves.
    reference : str or None
        How the hypervolume was normalised, written in the legend title (default: quantmoo's
        fixed reference point, :func:`quantmoo.search.run.hv_reference`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_convergence"
    check_choice("band", band, ["minmax", "iqr"], owner)
    if title is None:
        flat = list(histories.values()) if isinstance(histories, Mapping) else [histories]
        found = []
        while flat:
            h = flat.pop()
            if hasattr(h, "history"):
                found.append(h)
            elif isinstance(h, (list, tuple)):
                flat.extend(h)
        names = {_title(r) for r in found}
        title = names.pop() if len(names) == 1 else None
    groups = _history_groups(histories, labels)
    w = _width(width, owner)
    fig, ax = _new_figure(w, w * (0.68 if w <= 4 else 0.42))
    band_name = "IQR" if band == "iqr" else "min–max"
    top = 0.0
    for gi, (label, runs) in enumerate(groups):
        if not runs:
            continue
        color = _CYCLE[gi % len(_CYCLE)]
        grid, med, blo, bhi = _band(runs, band)
        n = len(runs)
        name = label or "search"
        text = f"{name}: median of {n} seeds" if n > 1 else name
        gain = f", {100 * (med[-1] / med[0] - 1):+.1f} %" if med[0] > 0 else ""
        text += f" ({_fmt(med[0])} → {_fmt(med[-1])}{gain})"
        top = max(top, float(np.max(bhi if n > 1 else med)))
        ax.plot(grid, med, color=color, linewidth=1.1, label=text, zorder=3)
        if n > 1:
            ax.fill_between(grid, blo, bhi, color=color, alpha=0.2, linewidth=0, zorder=2)
    ax.set_xlabel("function evaluations")
    ax.set_ylabel("hypervolume (share of ref. box)" if reference else "hypervolume")
    if from_zero:
        ax.set_ylim(0.0, 1.08 * top if top > 0 else 1.0)
    from matplotlib.ticker import FuncFormatter
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 10,000 rather than 1.0 x 10^4
    _finish_axes(ax)
    notes = [f"band: {band_name} over seeds"] if any(len(r) > 1 for _, r in groups) else []
    if reference:
        notes.append(reference)
    _figure_legend(fig, ax, "below", ncol=2 if len(groups) > 1 else 1, title="\n".join(notes) or None,
                   title_fontsize=_TINY)
    if title:
        ax.set_title(title)
    return _done(fig, save)


# -- per-layer bit heatmap ------------------------------------------------------------------------
_BLOCK_RE = re.compile(r"^(.*?\d+)(?:[._]|$)")


def _layer_groups(names):
    """Contiguous runs of layers sharing a block prefix ('layers.3', 'layer2'): [(start, prefix)]."""
    out = []
    for i, name in enumerate(names):
        m = _BLOCK_RE.match(name)
        prefix = m.group(1) if m else name
        if not out or out[-1][1] != prefix:
            out.append((i, prefix))
    return out


def _fmt(v: float) -> str:
    """3 significant digits without exponents for the magnitudes objectives take (1690, 26.6, 0.31)."""
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if a >= 1e-3 or a == 0 else f"{v:.1e}"


def _thin(ticks, labels, min_gap: float, weights=None):
    """Drop tick labels closer than ``min_gap`` (data units) to a kept neighbour.

    On a clash the label with the larger weight (e.g. block length) stays; the first and the
    last labels always stay.
    """
    n = len(ticks)
    w = list(weights) if weights is not None else [1.0] * n
    if n:
        w[0] = w[-1] = math.inf
    kept = []  # indices
    for i in range(n):
        while kept and ticks[i] - ticks[kept[-1]] < min_gap:
            if w[i] > w[kept[-1]]:
                kept.pop()  # the heavier newcomer replaces its neighbour (and maybe the one before)
            else:
                break
        if kept and ticks[i] - ticks[kept[-1]] < min_gap:
            continue
        kept.append(i)
    return [ticks[i] for i in kept], [labels[i] for i in kept]


def _shorten(name: str, n: int = 26) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1):]


def _default_rows(result, max_rows: int) -> list:
    size_key = "size_mb" if "size_mb" in result.front[0].objectives else result.objectives[0]
    order = sorted(range(len(result.front)), key=lambda i: result.front[i].objectives[size_key])
    if len(order) <= max_rows:
        return order
    pick = {order[int(round(t))] for t in np.linspace(0, len(order) - 1, max_rows - 1)}
    pick.add(result.knee_index())
    return [i for i in order if i in pick]


@_styled
def plot_bit_heatmap(result, indices=None, attr="weight_bits", max_rows=10, save=None, width="double"):
    """Per-layer bit-widths of selected front points: rows = configs, columns = layers.

    Parameters
    ----------
    result : SearchResult
    indices : list of int, optional
        Front indices to show. Default: up to ``max_rows`` points evenly spread over the front
        sorted by size, always including the knee. Rows are sorted by model size.
    attr : {"weight_bits", "activation_bits"}
    max_rows : int
    save : str or Path, optional
    width : {"single", "double"} or float

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch
    from ..config import ACTIVATION_BITS, WEIGHT_BITS
    owner = "plot_bit_heatmap"
    _require_front(result, owner)
    check_choice("attr", attr, ["weight_bits", "activation_bits"], owner)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise QuantmooError(f"The 'max_rows' of {owner} must be an integer >= 1; got {max_rows!r}")
    n_front = len(result.front)
    if indices is None:
        rows = _default_rows(result, max_rows)
    else:
        rows = list(indices)
        bad = [i for i in rows if isinstance(i, bool) or not isinstance(i, (int, np.integer))
               or not -n_front <= i < n_front]
        if bad or not rows:
            raise QuantmooError(f"The 'indices' of {owner} must be a non-empty list of front indices in "
                                f"[0, {n_front - 1}]; got {indices!r}")
        rows = [int(i) % n_front for i in rows]
        size_key = "size_mb" if "size_mb" in result.front[0].objectives else result.objectives[0]
        rows = sorted(rows, key=lambda i: result.front[i].objectives[size_key])
    names = list(result.front[rows[0]].config.layers)
    B = np.array([[getattr(result.front[i].config.layers[nm], attr) for nm in names] for i in rows], dtype=int)
    levels = list(WEIGHT_BITS if attr == "weight_bits" else ACTIVATION_BITS)
    for b in np.unique(B):
        if b not in levels:
            levels.append(int(b))
    levels = sorted(levels)
    cmap_full = _mpl_cmap(_CMAP)
    colours = [cmap_full(t) for t in np.linspace(0.0, 1.0, len(levels))]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(len(levels) + 1) - 0.5, len(levels))
    idx = np.searchsorted(levels, B)

    w = _width(width, owner)
    small = w <= 4
    n_layers = len(names)
    max_labels = 24 if small else 48
    groups = _layer_groups(names)
    use_groups = n_layers > max_labels and 1 < len(groups) <= n_layers // 2
    if use_groups:
        ticks = [s for s, _ in groups]
        tick_labels = [_shorten(p) for _, p in groups]
        weights = np.diff(ticks + [n_layers]).tolist()  # block lengths
        xlabel = (f"layer ({n_layers}; ticks mark block starts)" if small else
                  f"layer ({n_layers}, model order; ticks mark the first layer of each block)")
        step = 1
    else:
        step = max(1, math.ceil(n_layers / max_labels))
        ticks = list(range(0, n_layers, step))
        tick_labels = [_shorten(names[t]) for t in ticks]
        weights = None
        xlabel = f"layer ({n_layers}, model order" + (f"; every {step}th named)" if step > 1 else ")")
    axes_w = max(1.0, w - (2.3 if not small else 1.8))  # minus row labels and the legend
    label_w = _TINY / 72.0 * 1.35  # rotated labels: one line height apart, in inches
    ticks, tick_labels = _thin(ticks, tick_labels, n_layers * label_w / axes_w, weights=weights)
    longest = max(len(t) for t in tick_labels)
    # few short names (e.g. fc1..fc4) read better horizontally
    horizontal = len(tick_labels) * (0.05 * longest + 0.15) < axes_w
    label_h = 0.15 if horizontal else min(1.3, 0.048 * longest + 0.1)
    h = 0.6 + 0.16 * len(rows) + label_h
    fig, ax = _new_figure(w, h)
    ax.imshow(idx, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    k = result.knee_index()
    size_key = "size_mb" if "size_mb" in result.front[0].objectives else result.objectives[0]
    acc_key = "accuracy_loss" if "accuracy_loss" in result.front[0].objectives else None
    floor = _unit(result)[1]

    def loss(a):
        return "0" if a == 0 else f"<{_fmt(floor)}" if 0 < a < floor else f">{_fmt(LOSS_CAP)}" if a > LOSS_CAP \
            else _fmt(a)

    ylabels, any_measured = [], False
    for i in rows:
        o = result.front[i].objectives
        unit = " MB" if size_key == "size_mb" else ""
        lab = f"{_fmt(o[size_key])}{unit}"
        if acc_key:
            lab += f", {loss(o[acc_key])} {_unit(result)[0]}"
            m = result.front[i].measured
            m = m.get("accuracy_loss") if isinstance(m, Mapping) else None
            if isinstance(m, (int, float)) and math.isfinite(m) and result.accuracy_kind in ("prior", "proxy"):
                lab += f" ({loss(m)})"
                any_measured = True
        if i == k:
            lab = "knee: " + lab
        ylabels.append(lab)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(ylabels, fontsize=_TINY if small else _SMALL)
    acc_note = f" ({result.accuracy_kind})" if result.accuracy_kind in ("prior", "proxy") and acc_key else ""
    if any_measured:
        acc_note = f" ({result.accuracy_kind},\nmeasured in brackets)"
    ax.set_ylabel(f"size, accuracy loss{acc_note}" if acc_key else "front point",
                  fontsize=_SMALL if small else _FONT)
    ax.set_xticks(ticks)
    ax.set_xticklabels(tick_labels, rotation=0 if horizontal else 90, fontsize=_SMALL if horizontal else _TINY)
    if step > 1 or use_groups:
        ax.set_xticks(np.arange(n_layers), minor=True)
    if use_groups:
        for start, _ in groups[1:]:
            ax.axvline(start - 0.5, color="white", linewidth=0.4, alpha=0.8)
    ax.set_xlabel(xlabel, fontsize=_SMALL if small else _FONT)
    ax.tick_params(axis="x", which="minor", length=1.2, width=0.3)
    ax.tick_params(axis="x", which="major", length=2.5, width=0.6, pad=1.5)
    ax.tick_params(axis="y", length=2, width=0.5, pad=1.5)
    for r in range(1, len(rows)):
        ax.axhline(r - 0.5, color="white", linewidth=0.8)
    present = [lv for lv in levels if (B == lv).any()]
    handles = [Patch(facecolor=colours[levels.index(lv)], edgecolor="0.3", linewidth=0.3,
                     label=f"{lv}" + (" (fp16)" if lv == 16 else "")) for lv in present]
    what = "weight bits" if attr == "weight_bits" else "activation bits"
    ax.legend(handles=handles, title=what, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=_SMALL,
              title_fontsize=_SMALL, borderaxespad=0.0, handlelength=1.0, handleheight=0.9)
    title = _title(result)
    ax.set_title(f"{what} per layer" + (f": {title}" if title else ""))
    return _done(fig, save)


# -- several hardware targets ---------------------------------------------------------------------
@_styled
def plot_hardware_comparison(results, x="latency_ms", y="accuracy_loss", baselines=True, knee=True, save=None,
                             width="double", loss_cap=LOSS_CAP):
    """One model's fronts on several hardware targets side by side (one panel each, shared y).

    Parameters
    ----------
    results : list of SearchResult
        One per hardware target (the same model).
    x, y : str
        Objective names; each panel gets its own x range (log when it spans > 30x). The
        default x is latency: size does not depend on the hardware.
    baselines, knee : bool
    save : str or Path, optional
    width : {"single", "double"} or float
    loss_cap : float or None
        Largest accuracy loss drawn (default 100 pp; above it: a triangle at the cap).

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_hardware_comparison"
    if hasattr(results, "front"):
        results = [results]
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)) or not results \
            or not all(hasattr(r, "front") for r in results):
        raise QuantmooError(f"The 'results' of {owner} must be a non-empty list of SearchResult; got {results!r}")
    for r in results:
        _check_objective(r, x, "x", owner)
        _check_objective(r, y, "y", owner)
    _check_loss_args(loss_cap, "auto", owner)
    n = len(results)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    w = _width(width, owner)
    panel_w = w / ncols
    panel_h = panel_w * (0.8 if ncols > 1 else 0.62)
    fig, axes = _new_figure(w, max(1.5, panel_h) * nrows + 0.8, nrows=nrows, ncols=ncols, squeeze=False,
                            sharey=True)
    scale = min(1.0, max(0.45, panel_w / 3.5))
    kind = _kind(results)
    models = {_model_name(r) for r in results}
    annotations = []
    shared = {}
    for obj in (x, y):
        allv = [min(v, loss_cap) if loss_cap is not None else v for rr in results for v in _values(rr, obj)]
        shared[obj] = _loss_linthresh(allv, result=results[0]) if obj == "accuracy_loss" else _wants_log(allv, obj)
    lin_y = shared[y] if y == "accuracy_loss" else None
    for i, r in enumerate(results):
        ax = axes[i // ncols, i % ncols]
        annotations += _draw_front(ax, r, x, y, baselines=baselines, knee=knee, measured=True,
                                   label_uniform=panel_w >= 2.3, scale=scale, logy=bool(shared[y]),
                                   loss_cap=loss_cap, loss_scale="auto" if lin_y else "linear",
                                   loss_linthresh=lin_y)
        ax.set_title(_hardware_name(r) if len(models) == 1 else _title(r), fontsize=_FONT if ncols <= 2 else _SMALL)
        ax.set_xlabel(_front_label(r, x, ax, "x") if ncols <= 2 else _label(x, kind, short=True, unit=_unit(r)[0]))
        if i % ncols == 0:
            ax.set_ylabel(_front_label(r, y, ax, "y", short=ncols > 2))
    for j in range(n, nrows * ncols):
        axes[j // ncols, j % ncols].set_axis_off()
    # one legend: the handles of every panel, deduplicated
    seen = {}
    for ax in axes.flat:
        for hnd, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, hnd)
    if seen:
        _figure_legend(fig, axes[0, 0], "below", ncol=min(len(seen), 4 if ncols > 2 else 3),
                       handles=list(seen.values()),
                       labels=list(seen.keys()))
    if len(models) == 1 and next(iter(models)):
        fig.suptitle(f"{next(iter(models))} on {n} hardware target{'s' if n > 1 else ''}")
    return _done(fig, save, annotations)
