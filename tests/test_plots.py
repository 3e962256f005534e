"""Figures: every plot function returns a Figure, writes pdf/svg/png that parse, and closes cleanly.

Results are built by hand (synthetic but valid numbers) so the tests do not depend on the search;
one test runs a tiny real search end to end.
"""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg", force=True)
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from quantmoo.config import LayerQuant, QuantConfig  # noqa: E402
from quantmoo.errors import QuantmooError  # noqa: E402
from quantmoo.results import plots as P  # noqa: E402
from quantmoo.results.result import SearchResult, Solution  # noqa: E402

OBJS = ("accuracy_loss", "size_mb", "latency_ms", "energy_mj")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- synthetic results ---------------------------------------------------------------------------
def _config(bits, names, model="toy", hardware="arm_dot"):
    return QuantConfig({n: LayerQuant(weight_bits=int(b)) for n, b in zip(names, bits)}, model=model,
                       hardware=hardware)


def make_result(n=30, n_layers=12, hardware="arm_dot", kind="prior", seed=0, measured=False, names=None,
                lat_scale=1.0):
    """A front whose numbers a reader can follow: size grows with bits, loss falls with size."""
    rng = np.random.default_rng(seed)
    names = names or [f"layers.{i // 4}.fc{i % 4}" for i in range(n_layers)]
    choices = np.array([2, 3, 4, 6, 8, 16])
    front = []
    for i in range(n):
        t = i / max(n - 1, 1)
        bits = choices[np.clip(np.round(t * 5 + rng.normal(0, 0.7, len(names))), 0, 5).astype(int)]
        size = 2.0 + 0.5 * float(bits.sum()) * 12 / len(names)
        acc = 60.0 / size ** 1.5 + rng.uniform(0, 0.2)
        lat = lat_scale * (5.0 + 0.2 * size + rng.uniform(0, 3))
        obj = {"accuracy_loss": acc, "size_mb": size, "latency_ms": lat, "energy_mj": 2.5 * lat + rng.uniform(0, 1),
               "memory_mb": size + 1.5}
        m = {"accuracy_loss": acc * rng.uniform(0.8, 1.3)} if measured and i % 5 == 0 else None
        front.append(Solution(config=_config(bits, names, hardware=hardware), objectives=obj,
                              compression_ratio=4 * 32 / float(bits.mean()) / 4, avg_weight_bits=float(bits.mean()),
                              measured=m))
    baselines = []
    for w, a in ((16, 16), (8, 8), (4, 8), (2, 8)):
        size = 2.0 + 0.5 * w * 12
        lat = lat_scale * (5.0 + 0.2 * size)
        baselines.append({"name": f"uniform W{w}A{a}" + ("" if w == 16 else " per-channel"), "kind": "uniform",
                          "objectives": {"accuracy_loss": 60.0 / size ** 1.5 + 0.3, "size_mb": size,
                                         "latency_ms": lat, "energy_mj": 2.5 * lat, "memory_mb": size + 1.5},
                          "config": None})
    for kind_b, size in (("greedy", 30.0), ("ilp", 25.0), ("rules", 40.0)):
        lat = lat_scale * (5.0 + 0.2 * size)
        baselines.append({"name": kind_b, "kind": kind_b,
                          "objectives": {"accuracy_loss": 60.0 / size ** 1.5, "size_mb": size, "latency_ms": lat,
                                         "energy_mj": 2.5 * lat, "memory_mb": size + 1.5}, "config": None})
    history = [{"n_gen": g + 1, "n_eval": 20 * (g + 1), "hypervolume": 0.5 - 0.3 * 0.7 ** g + 0.01 * seed,
                "n_front": 10 + g} for g in range(15)]
    return SearchResult(front=front, objectives=OBJS, history=history, baselines=baselines,
                        meta={"model": {"name": "toy"}, "hardware": {"name": hardware}}, accuracy_kind=kind)


@pytest.fixture(scope="module")
def result():
    return make_result(measured=True)


@pytest.fixture(autouse=True)
def _close_all():
    yield
    plt.close("all")


def check_files(stem):
    """pdf starts with %PDF, svg parses as XML, png has the signature and loads with a sane shape."""
    pdf, svg, png = (stem.parent / (stem.name + ext) for ext in (".pdf", ".svg", ".png"))
    for f in (pdf, svg, png):
        assert f.exists() and f.stat().st_size > 500, f
    assert pdf.read_bytes()[:5] == b"%PDF-"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] > 100 and img.shape[1] > 300
    return img


def closes(fig):
    assert isinstance(fig, Figure)
    num = fig.number
    plt.close(fig)
    assert num not in plt.get_fignums()


# -- every function: files, Figure, close --------------------------------------------------------
def test_plot_front_writes_three_files(result, tmp_path):
    fig = P.plot_front(result, save=tmp_path / "pareto")
    img = check_files(tmp_path / "pareto")
    # single column: 3.5 in at 200 dpi
    assert img.shape[1] == 700
    closes(fig)


def test_plot_front_double_width_and_str_path(result, tmp_path):
    fig = P.plot_front(result, x="latency_ms", y="accuracy_loss", width="double", save=str(tmp_path / "lat"))
    assert check_files(tmp_path / "lat").shape[1] == 1440
    assert fig.get_figwidth() == pytest.approx(7.2)
    closes(fig)


def test_plot_front_3d(result, tmp_path):
    fig = P.plot_front_3d(result, "size_mb", "latency_ms", "accuracy_loss", save=tmp_path / "f3d")
    check_files(tmp_path / "f3d")
    assert fig.axes[0].name == "3d"
    closes(fig)


def test_plot_scatter_matrix(result, tmp_path):
    fig = P.plot_scatter_matrix(result, save=tmp_path / "sm")
    check_files(tmp_path / "sm")
    assert len(fig.axes) == 16
    closes(fig)


def test_plot_parallel(result, tmp_path):
    fig = P.plot_parallel(result, save=tmp_path / "par")
    check_files(tmp_path / "par")
    ax = fig.axes[0]
    # real min/max of every objective are written on its axis
    texts = {t.get_text() for t in ax.texts}
    for o in OBJS:
        v = np.array([s.objectives[o] for s in result.front])
        assert P._fmt(v.min()) in texts and P._fmt(v.max()) in texts
    closes(fig)


def test_plot_convergence_over_seeds(tmp_path):
    hs = [make_result(seed=s).history for s in range(4)]
    fig = P.plot_convergence(hs, labels="nsga2", save=tmp_path / "conv")
    check_files(tmp_path / "conv")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "function evaluations"
    line = ax.get_lines()[0]
    # median over seeds 0..3 of 0.01*seed offsets is 0.015 above the seed-0 curve
    x, y = line.get_data()
    assert x[0] == 20 and x[-1] == 300
    assert y[-1] == pytest.approx(0.5 - 0.3 * 0.7 ** 14 + 0.015)
    assert len(ax.collections) == 1  # the band
    closes(fig)


def test_plot_convergence_dict_of_algorithms(tmp_path):
    hs = {"NSGA-II": [make_result(seed=s) for s in range(3)], "NSGA-III": [make_result(seed=s).history for s in (1, 2)]}
    fig = P.plot_convergence(hs, band="iqr", save=tmp_path / "conv2")
    check_files(tmp_path / "conv2")
    assert len(fig.axes[0].get_lines()) == 2
    closes(fig)


def test_plot_bit_heatmap(result, tmp_path):
    fig = P.plot_bit_heatmap(result, save=tmp_path / "heat")
    check_files(tmp_path / "heat")
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 10  # max_rows
    assert any("knee" in t.get_text() for t in ax.get_yticklabels())
    closes(fig)


def test_plot_hardware_comparison(tmp_path):
    rs = [make_result(hardware=h, lat_scale=s) for h, s in (("arm_dot", 1.0), ("arm_neon", 3.0), ("hexagon", 0.4))]
    fig = P.plot_hardware_comparison(rs, save=tmp_path / "hw")
    check_files(tmp_path / "hw")
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    assert [a.get_title() for a in axes] == ["Raspberry Pi 5 (Cortex-A76, SDOT)", "Raspberry Pi 4 (Cortex-A72, NEON)",
                                             "Snapdragon 8 Gen 3 (Hexagon NPU)"]
    assert axes[0].get_xlabel() == "latency (ms)"
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[2])
    closes(fig)


def test_save_figure_helper(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = P.save_figure(fig, tmp_path / "sub" / "x.png")  # extension dropped, parent created
    assert [p.name for p in out] == ["x.pdf", "x.svg", "x.png"]
    check_files(tmp_path / "sub" / "x")
    closes(fig)


# -- content -------------------------------------------------------------------------------------
def test_units_on_axes_and_accuracy_kind(result):
    fig = P.plot_front(result)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "model size (MB)"
    assert ax.get_ylabel() == "accuracy loss (pp; prior and measured)"
    assert ax.get_title() == "toy on Raspberry Pi 5 (Cortex-A76, SDOT)"
    closes(fig)
    fig = P.plot_front(result, measured=False)
    assert fig.axes[0].get_ylabel() == "accuracy loss, prior (pp)"
    closes(fig)
    proxy = make_result(kind="proxy")
    fig = P.plot_front(proxy, x="energy_mj", y="memory_mb")
    assert fig.axes[0].get_xlabel() == "energy per inference (mJ)"
    assert fig.axes[0].get_ylabel() == "peak memory (MB)"
    closes(fig)
    measured = make_result(kind="measured")
    fig = P.plot_front(measured)
    assert fig.axes[0].get_ylabel() == "accuracy loss, measured (pp)"
    closes(fig)


def test_loss_axis_takes_the_models_unit():
    """A model that measures a KL divergence says so (meta["model"]["accuracy_loss_unit"]): its loss axes name
    nats, not pp, and its symlog threshold may go below 0.01 (llama.cpp's Q8_0 is ~1e-3 nats per token), so the
    near-lossless end is not flattened into a linear strip at 0."""
    r = make_result(kind="proxy")
    for s_ in r.front:
        s_.objectives["accuracy_loss"] /= 1000.0           # KL-like: ~6e-5 .. 3e-3
    r.front[0].objectives["accuracy_loss"] = 1.5
    r.meta["model"]["accuracy_loss_unit"] = "nats per token"
    fig = P.plot_front(r, baselines=False)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("accuracy loss, proxy (nats/token)")
    assert ax.get_yscale() == "symlog" and ax._quantmoo_symlog_y < 1e-3
    closes(fig)
    fig = P.plot_scatter_matrix(r, objectives=["accuracy_loss", "size_mb"], baselines=False)
    assert fig.axes[2].get_xlabel() == "acc. loss, proxy (nats/token)"
    closes(fig)
    del r.meta["model"]["accuracy_loss_unit"]             # a result that does not say: pp, threshold >= 0.01
    fig = P.plot_front(r, baselines=False)
    assert "(pp)" in fig.axes[0].get_ylabel() and fig.axes[0]._quantmoo_symlog_y >= 0.01
    closes(fig)


def test_search_result_records_the_loss_unit():
    import quantmoo
    res = quantmoo.search("digits", "arm_dot", pop_size=10, n_gen=2, seed=0, progress=False, baselines=False)
    assert res.meta["model"]["accuracy_loss_unit"] == "percentage points"
    assert quantmoo.search("resnet50", "arm_dot", pop_size=10, n_gen=2, seed=0, progress=False,
                           baselines=False).meta["model"]["accuracy_loss_unit"] is None


def test_objective_labels_carry_units():
    assert P.OBJECTIVE_LABELS == {
        "accuracy_loss": "accuracy loss (pp)", "size_mb": "model size (MB)", "latency_ms": "latency (ms)",
        "energy_mj": "energy per inference (mJ)", "memory_mb": "peak memory (MB)"}


def test_nondominated_2d_by_hand():
    x = np.array([1.0, 2.0, 3.0, 2.5, 4.0])
    y = np.array([5.0, 3.0, 1.0, 4.0, 1.0])
    # (2.5, 4) is dominated by (2, 3); (4, 1) by (3, 1)
    assert P._nondominated_2d(x, y).tolist() == [0, 1, 2]


def test_front_draws_baselines_knee_and_measured(result):
    fig = P.plot_front(result)
    labels = set(fig.legends[0].get_texts()[i].get_text() for i in range(len(fig.legends[0].get_texts()))) \
        if fig.legends else set(fig.axes[0].get_legend_handles_labels()[1])
    for lab in ("knee, prior (predicted)", "measured (same configs)", "uniform precision", "greedy (AMP-style)",
                "ILP (HAWQ-V3-style)", "rule presets"):
        assert lab in labels
    # uniform baselines are labelled with their short names
    names = {t.get_text() for t in fig.axes[0].texts}
    assert {"W16A16", "W8A8", "W2A8"} <= names
    closes(fig)


def test_log_x_when_values_span_more_than_30x():
    r = make_result()
    for s in r.front[:3]:
        s.objectives["size_mb"] = s.objectives["size_mb"] / 100
    fig = P.plot_front(r)
    assert fig.axes[0].get_xscale() == "log"
    closes(fig)
    fig = P.plot_front(make_result())  # 8 to 98 MB: linear
    assert fig.axes[0].get_xscale() == "linear"
    closes(fig)


def test_plot_front_into_given_axes(result):
    fig, (a, b) = plt.subplots(1, 2)
    out = P.plot_front(result, ax=b, baselines=False, knee=False, measured=False)
    assert out is fig
    assert a.get_xlabel() == "" and b.get_xlabel() == "model size (MB)"
    closes(fig)


def test_plot_front_empty_front(tmp_path):
    r = make_result()
    r.front = []
    fig = P.plot_front(r, save=tmp_path / "empty")
    check_files(tmp_path / "empty")
    assert any("no feasible" in t.get_text() for t in fig.axes[0].texts)
    closes(fig)


def test_heatmap_thins_226_layer_names():
    names = ["embed_tokens"] + [f"layers.{b}.{p}" for b in range(32) for p in
                                ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")] + ["lm_head"]
    assert len(names) == 226
    r = make_result(n=12, names=names)
    fig = P.plot_bit_heatmap(r, indices=[0, 5, 11])
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert 10 <= len(ticks) <= 48
    assert ticks[0] == "embed_tokens" and ticks[-1] == "lm_head"
    assert len(ax.get_yticks()) == 3
    closes(fig)


def test_heatmap_legend_lists_present_bits(result):
    fig = P.plot_bit_heatmap(result, indices=[0, len(result.front) - 1])
    leg = fig.axes[0].get_legend()
    rows = (0, len(result.front) - 1)
    present = sorted({lq.weight_bits for i in rows for lq in result.front[i].config.layers.values()})
    assert [t.get_text().split()[0] for t in leg.get_texts()] == [str(b) for b in present]
    closes(fig)


# -- bad input -----------------------------------------------------------------------------------
def test_bad_objective_name(result):
    with pytest.raises(QuantmooError, match="'x' value of plot_front must be one of"):
        P.plot_front(result, x="sizee")
    with pytest.raises(QuantmooError, match="'objectives'"):
        P.plot_parallel(result, objectives=["size_mb"])


def test_bad_width_and_band(result):
    with pytest.raises(QuantmooError, match="'width'"):
        P.plot_front(result, width="triple")
    with pytest.raises(QuantmooError, match="'band'"):
        P.plot_convergence([result.history], band="std")


def test_convergence_label_count_must_match():
    hs = [[make_result(seed=s).history] for s in range(2)]
    with pytest.raises(QuantmooError, match="'labels'"):
        P.plot_convergence(hs, labels=["a", "b", "c"])
    fig = P.plot_convergence(hs, labels=["a", "b"])
    assert len(fig.axes[0].get_lines()) == 2
    closes(fig)


def test_heatmap_needs_front_and_valid_indices(result):
    empty = make_result()
    empty.front = []
    with pytest.raises(QuantmooError, match="non-empty front"):
        P.plot_bit_heatmap(empty)
    with pytest.raises(QuantmooError, match="'indices'"):
        P.plot_bit_heatmap(result, indices=[999])


# -- end to end ----------------------------------------------------------------------------------
def test_real_search_result_plots(tmp_path):
    import quantmoo
    res = quantmoo.search("resnet50", "arm_dot", pop_size=20, n_gen=5, seed=0, progress=False)
    fig = P.plot_front(res, save=tmp_path / "pareto")
    check_files(tmp_path / "pareto")
    assert fig.axes[0].get_title() == "ResNet-50 on Raspberry Pi 5 (Cortex-A76, SDOT)"
    assert_no_overlaps(fig.axes[0])
    closes(fig)
    fig = P.plot_bit_heatmap(res, save=tmp_path / "heat")
    check_files(tmp_path / "heat")
    closes(fig)


def test_thin_keeps_ends_and_longer_blocks():
    # block starts 0 (1 layer), 1 (10 layers), 11, 21, 31 (10 each), 41 (3), 44 (1): min gap 3
    ticks, labels = P._thin([0, 1, 11, 21, 31, 41, 44], list("abcdefg"), 3, [1, 10, 10, 10, 10, 3, 1])
    assert ticks == [0, 11, 21, 31, 41, 44] and labels == list("acdefg")


def test_result_save_with_plot(tmp_path):
    r = make_result()
    out = r.save(tmp_path / "run", plot=True)
    check_files(out / "pareto")


# -- issue 18: honest, paper-ready figures ------------------------------------------------------
def _collection(ax, label):
    got = [c for c in ax.collections if c.get_label() == label]
    assert len(got) == 1, [c.get_label() for c in ax.collections]
    return got[0]


def _legend_texts(fig):
    return {t.get_text() for leg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
            for t in leg.get_texts()}


def assert_no_overlaps(ax):
    """Visible point labels overlap neither each other nor any scatter marker (at its drawn size)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [P._text_extent(t, renderer) for t in ax.texts if t.get_visible() and hasattr(t, "xyann")]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    M = P._marker_boxes(ax, renderer)
    for bb in boxes:
        r = M[:, 2] - 1.0  # the marker itself, without the helper's one-pixel margin
        hit = (M[:, 0] + r > bb.x0) & (M[:, 0] - r < bb.x1) & (M[:, 1] + r > bb.y0) & (M[:, 1] - r < bb.y1)
        assert not hit.any(), (bb, M[hit])
    return len(boxes)


def test_proxy_and_measured_get_own_marks_legend_and_axis_label():
    r = make_result(kind="proxy", measured=True)
    fig = P.plot_front(r)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "accuracy loss (pp; proxy and measured)"
    proxy = _collection(ax, "non-dominated (2-D), proxy (predicted)")
    meas = _collection(ax, "measured (same configs)")
    # proxy points hollow (no face colour), measured ones filled
    assert proxy.get_facecolors().size == 0 or np.all(proxy.get_facecolors()[:, 3] == 0)
    assert meas.get_facecolors()[:, 3].min() > 0
    # the measured marks hold exactly the measured values: every 5th point (i % 5 == 0)
    want = sorted(s.measured["accuracy_loss"] for s in r.front if s.measured)
    assert sorted(meas.get_offsets()[:, 1]) == pytest.approx(want)
    texts = _legend_texts(fig)
    assert "measured (same configs)" in texts and "non-dominated (2-D), proxy (predicted)" in texts
    assert not any("measured" in t and "proxy" in t for t in texts)
    closes(fig)


def _with_big_losses():
    """A prior front reaching 150 pp and an ILP baseline at 113.9 pp: impossible losses."""
    r = make_result(kind="prior")
    r.front[0].objectives["accuracy_loss"] = 150.0
    r.front[1].objectives["accuracy_loss"] = 40.0
    r.baselines.append({"name": "ilp 2", "kind": "ilp", "config": None,
                        "objectives": {"accuracy_loss": 113.9, "size_mb": 9.0, "latency_ms": 7.0, "energy_mj": 18.0,
                                       "memory_mb": 10.5}})
    return r


def test_losses_above_100pp_are_clipped_and_flagged():
    r = _with_big_losses()
    fig = P.plot_front(r)
    ax = fig.axes[0]
    for c in ax.collections:
        if len(c.get_offsets()):
            assert c.get_offsets()[:, 1].max() <= 100.0, c.get_label()
    for line in ax.get_lines():
        assert np.max(line.get_ydata()) <= 100.0
    clipped = _collection(ax, "loss > 100 pp, drawn at 100 (clipped)")
    assert sorted(map(tuple, clipped.get_offsets())) == sorted([(r.front[0].objectives["size_mb"], 100.0),
                                                                (9.0, 100.0)])
    assert clipped.get_paths()[0].vertices.shape[0] <= 5  # a triangle marker, not a circle
    assert ax.get_ylim()[1] >= 100.0
    closes(fig)
    fig = P.plot_front(r, loss_cap=None)
    assert not [c for c in fig.axes[0].collections if "clipped" in c.get_label()]
    closes(fig)
    fig = P.plot_bit_heatmap(r, indices=[0, 5])
    assert any(t.get_text().startswith(">100 pp") or ", >100 pp" in t.get_text()
               for t in fig.axes[0].get_yticklabels())
    closes(fig)
    fig = P.plot_scatter_matrix(r)
    assert max(c.get_offsets()[:, 0].max() for c in fig.axes[4].collections if len(c.get_offsets())) <= 100.0
    assert "clipped" in fig.axes[3].get_legend().get_title().get_text()
    closes(fig)
    fig = P.plot_front_3d(r)
    assert "2 losses > 100 pp drawn at 100 (clipped)" in _legend_texts(fig)
    assert max(c._offsets3d[2].max() for c in fig.axes[0].collections) <= 100.0
    closes(fig)


def test_loss_axis_symlog_when_front_spans_decades():
    r = _with_big_losses()  # 0.06 .. 100 pp
    fig = P.plot_front(r)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    assert "log scale; linear below" in ax.get_ylabel()
    assert ax.get_ylim()[0] >= -0.5 * ax._quantmoo_symlog_y  # no empty negative decades
    closes(fig)
    fig = P.plot_front(make_result())  # 0.06 .. 2.7 pp: linear
    assert fig.axes[0].get_yscale() == "linear"
    closes(fig)
    assert P._loss_linthresh([0.0, 0.1, 0.5, 1.0, 2.0, 100.0]) == 0.1
    assert P._loss_linthresh([0.5, 1.0, 2.0, 3.0]) is None
    with pytest.raises(QuantmooError, match="'loss_scale'"):
        P.plot_front(r, loss_scale="log2")
    with pytest.raises(QuantmooError, match="'loss_cap'"):
        P.plot_front(r, loss_cap=-1)


def test_convergence_starts_at_zero_and_states_reference():
    r = make_result()
    fig = P.plot_convergence([r])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0.0
    assert ax.get_ylabel() == "hypervolume (share of ref. box)"
    assert ax.get_title() == "toy on Raspberry Pi 5 (Cortex-A76, SDOT)"
    leg = fig.legends[0]
    assert "reference point: 1.1 × the worst uniform-precision value" in leg.get_title().get_text()
    # history: 0.5 - 0.3 * 0.7**g for g = 0..14: 0.2 -> 0.49794, +149.0 %
    assert [t.get_text() for t in leg.get_texts()] == ["search (0.2 → 0.498, +149.0 %)"]
    closes(fig)
    fig = P.plot_convergence([r], from_zero=False)
    assert fig.axes[0].get_ylim()[0] > 0.1
    closes(fig)


def test_baseline_labels_merge_and_never_overlap():
    """Uniform baselines packed together (the demo's W4A8 g / W4A8 / W4A16 g / W6A8) and W16A16
    under an ILP marker: labels are merged or moved, never drawn over labels or markers."""
    r = make_result(kind="proxy", measured=True)
    r.baselines = [b for b in r.baselines if b["kind"] != "uniform"]
    for name, size, acc in (("uniform W4A8 per-group", 26.0, 0.31), ("uniform W4A8 per-channel", 26.05, 0.30),
                            ("uniform W4A16 per-group", 26.3, 0.28), ("uniform W6A8 per-channel", 27.5, 0.2),
                            ("uniform W16A16", 98.0, 0.01)):
        r.baselines.append({"name": name, "kind": "uniform", "config": None,
                            "objectives": {"accuracy_loss": acc, "size_mb": size, "latency_ms": 5 + 0.2 * size,
                                           "energy_mj": 1.0, "memory_mb": size}})
    r.baselines.append({"name": "ilp", "kind": "ilp", "config": None,
                        "objectives": {"accuracy_loss": 0.01, "size_mb": 98.0, "latency_ms": 5 + 0.2 * 98,
                                       "energy_mj": 1.0, "memory_mb": 98.0}})
    for x in ("size_mb", "latency_ms"):
        fig = P.plot_front(r, x=x)
        ax = fig.axes[0]
        assert assert_no_overlaps(ax) >= 2
        visible = [t.get_text() for t in ax.texts if t.get_visible()]
        assert "W4A8 g / W4A8" in " ".join(visible) or "W4A8 / W4A8 g" in " ".join(visible)
        closes(fig)


def test_titles_use_human_model_and_device_names():
    r = make_result()
    r.meta = {"model": {"name": "llama2-7b"}, "hardware": {"name": "hexagon", "title": "x"}}
    assert P._title(r) == "Llama 2 7B on Snapdragon 8 Gen 3 (Hexagon NPU)"
    r.meta = {"model": {"name": "my-net"}, "hardware": {"name": "my_npu", "title": "Foo NPU (v2, 8 TOPS)"}}
    assert P._title(r) == "my-net on Foo NPU"
    r.meta = {}
    assert P._title(r) == "toy on Raspberry Pi 5 (Cortex-A76, SDOT)"  # from the configs


def test_cli_plot_hardware_defaults_to_latency(tmp_path, monkeypatch):
    from quantmoo import cli
    runs = []
    for h in ("arm_dot", "hexagon"):
        out = tmp_path / h
        make_result(hardware=h).save(out)
        runs.append(str(out))
    seen = {}
    real = P.plot_hardware_comparison

    def spy(results, x="latency_ms", y="accuracy_loss", **kw):
        seen["x"] = x
        return real(results, x=x, y=y, **kw)

    monkeypatch.setattr(P, "plot_hardware_comparison", spy)
    assert cli.main(["plot", *runs, "--kind", "hardware", "--out", str(tmp_path / "hw")]) == 0
    assert seen["x"] == "latency_ms"
    assert cli.main(["plot", runs[0], "--kind", "hardware", "--x", "size_mb", "--out", str(tmp_path / "hw2")]) == 0
    assert seen["x"] == "size_mb"
