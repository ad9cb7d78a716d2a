"""Fronts that do not hinge on noise, figures a reader can trust at a glance, and "× bicubic speed"
against the bicubic of the same colour space (issue 21, points 2, 4 and 7), on hand-made points."""
from __future__ import annotations

import math
import re

import pytest

from harness.compare import verdict, verdict_line
from harness.results.pareto import front_with_ties, pareto_front
from harness.results.plots import group_title, labels_collide, log_ticks, set_title, tick_label_boxes, trade_off_axes
from harness.results.report import write_report
from harness.results.store import ResultStore
from harness.results.table import front_groups, load_table, to_csv


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

# --------------------------------------------------------------------------- the rule, on hand-made points

# the case of the 2-core VM: 13.39 against 13.36 FHD/s, the intervals overlapping
Q = [30.50, 30.40, 29.00]
S = [13.39, 13.36, 5.00]
LOW = [13.10, 13.05, 4.90]
HIGH = [13.70, 13.66, 5.10]


def test_overlapping_intervals_let_quality_decide_whichever_median_is_faster():
    assert pareto_front(Q[:2], S[:2]) == [0]  # the strict front: decided by 0.03 FHD/s of noise...
    assert sorted(pareto_front(Q[:2], S[1::-1])) == [0, 1]  # ... which a rerun flips
    for speeds in (S[:2], S[1::-1]):  # with the intervals: equal speed, 0.10 dB better -> the same front
        assert front_with_ties(Q[:2], speeds, LOW[:2], HIGH[:2]) == ([0], {})


def test_equal_speed_and_psnr_within_0_01_db_is_a_tie():
    front, ties = front_with_ties([30.50, 30.495], S[:2], LOW[:2], HIGH[:2])
    assert front == [0, 1] and ties == {0: [1], 1: [0]}


def test_clear_domination_still_drops():
    # 1.5 dB better and 13.10 > 5.10: the third model is dominated whatever the noise
    front, ties = front_with_ties(Q, S, LOW, HIGH)
    assert front == [0] and ties == {}


def test_psnr_within_0_01_db_counts_as_equal_and_0_01_db_does_not():
    # disjoint speed intervals: the clearly faster model at the same PSNR (0.005 dB apart, either way) wins
    for q in ([30.50, 30.495], [30.495, 30.50]):
        assert front_with_ties(q, [13.39, 8.0], [13.10, 7.9], [13.70, 8.1]) == ([0], {}), q
    # 0.01 dB as printed is a clear lead, though 33.36 - 33.35 is 0.00999999999999801 as floats:
    # the slower, better model stays beside the faster one, neither tied
    for better, worse in ((30.50, 30.49), (33.36, 33.35)):
        assert front_with_ties([worse, better], [13.39, 8.0], [13.10, 7.9], [13.70, 8.1]) == ([0, 1], {})


def test_without_intervals_the_strict_rule_holds():
    assert front_with_ties(Q, S) == (pareto_front(Q, S), {})
    # one of the pair lacks an interval: nothing can be judged noise, so the strict rule drops it
    front, ties = front_with_ties(Q[:2], S[:2], [13.10, None], [13.70, None])
    assert front == [0] and ties == {}
    assert front_with_ties([30.0, 30.005], [13.39, 13.36]) == ([0, 1], {})  # strict: 0.005 dB is better


# --------------------------------------------------------------------------- the table and the front


def _store(tmp_path, with_ci=True):
    """One cpu/onnxruntime/fp32/x2 group: both bicubic baselines, Y and RGB models, the tied pair."""
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    # model, family, channels, PSNR (Set5), FHD/s, interval half-width (fraction)
    models = [("Bicubic_s2", "Bicubic", 1, 33.00, 20.0, 0.02), ("bicubic-opencv", "bicubic-opencv", 3, 32.90, 60.0, 0.02),
              ("bicubic-matlab", "bicubic-matlab", 3, 33.00, 0.8, 0.02),
              ("eSR-CNN_s2_C2_D1_S3", "eSR-CNN", 1, 34.00, 13.39, None), ("eSR-TM_s2_K7_C3", "eSR-TM", 1, 33.90, 13.36, None),
              ("eSR-MAX_s2_K3_C1", "eSR-MAX", 1, 33.50, 40.0, 0.02), ("ABPN_s2", "ABPN", 3, 35.00, 30.0, 0.02)]
    intervals = {"eSR-CNN_s2_C2_D1_S3": [13.10, 13.70], "eSR-TM_s2_K7_C3": [13.05, 13.66]}
    for model, family, channels, psnr, fps, hw in models:
        store.add(run, "quality:Set5", {"model": model, "scale": 2, "device": "cpu", "backend": "torch",
                                        "precision": "fp32", "weights": "shipped", "family": family, "psnr": psnr,
                                        "ssim": 0.9})
        rec = {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime", "precision": "fp32",
               "weights": "shipped", "family": family, "fhd_per_s": fps, "median_ms": 1000.0 / fps,
               "input_shape": [1, channels, 270, 480]}
        if with_ci:
            rec.update(fhd_per_s_ci=intervals.get(model) or [fps * (1 - hw), fps * (1 + hw)], ci_halfwidth_pct=2.0,
                       timing_stop="interval", times_ms=[1000.0 / fps] * 40,
                       runtime={"bicubic-matlab": "numpy", "bicubic-opencv": "opencv"}.get(model, "onnxruntime"))
        store.add(run, "speed", rec)
    return store, run


def test_table_exposes_the_interval_fields_but_not_the_raw_times(tmp_path):
    store, _ = _store(tmp_path)
    table = load_table(store).set_index("model")
    cnn = table.loc["eSR-CNN_s2_C2_D1_S3"]
    assert (cnn.fhd_per_s_low, cnn.fhd_per_s_high, cnn.ci_halfwidth_pct) == (13.10, 13.70, 2.0)
    assert cnn.timing_stop == "interval" and table.loc["bicubic-matlab"].runtime == "numpy"
    assert not any("times" in c for c in table.columns)
    assert "times_ms" not in to_csv(load_table(store), tmp_path / "t.csv").read_text()
    (tmp_path / "old").mkdir()
    old, _ = _store(tmp_path / "old", with_ci=False)  # a store from before the intervals: no error, no interval
    row = load_table(old).set_index("model").loc["eSR-CNN_s2_C2_D1_S3"]
    assert row.fhd_per_s_low is None and row.timing_stop is None and row.runtime is None


def test_table_keeps_a_gpu_rows_three_latencies_apart(tmp_path):
    """A CUDA row's record (as the runner stores it: median_ms on the host clock, gpu_median_ms from CUDA events,
    the end-to-end latency with copies under e2e) gives three columns; a CPU row leaves the GPU two empty."""
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cuda", "k")
    base = {"scale": 2, "backend": "torch", "precision": "fp16", "weights": "shipped", "family": "eSR-TM",
            "input_shape": [1, 1, 540, 960]}
    store.add(run, "speed", dict(base, model="eSR-TM_s2_K7_C16", device="cuda", fhd_per_s=400.0, median_ms=2.5,
                                 gpu_median_ms=2.25, e2e={"median_ms": 4.75, "n": 28}))
    store.add(run, "speed", dict(base, model="eSR-TM_s2_K7_C16", device="cpu", precision="fp32", fhd_per_s=20.0,
                                 median_ms=50.0))
    table = load_table(store).set_index("device")
    gpu, cpu = table.loc["cuda"], table.loc["cpu"]
    assert (gpu.median_ms, gpu.gpu_median_ms, gpu.e2e_median_ms) == (2.5, 2.25, 4.75)
    assert cpu.median_ms == 50.0 and math.isnan(cpu.gpu_median_ms) and math.isnan(cpu.e2e_median_ms)
    assert "e2e_median_ms" in to_csv(load_table(store), tmp_path / "t.csv").read_text().splitlines()[0]


def test_front_marks_the_tied_member_and_speed_is_against_the_same_colour_space(tmp_path):
    store, _ = _store(tmp_path)
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in load_table(store).to_dict("records")]
    (group,) = front_groups(records)
    rows = {r["model"]: r for r in group["rows"]}
    # ABPN (35 dB, 30 [29.4, 30.6] FHD/s) clearly drops eSR-CNN, eSR-TM and bicubic-matlab; eSR-MAX (33.5 dB,
    # 40 [39.2, 40.8]) clearly drops Bicubic_s2 (33.0 dB, 20 [19.6, 20.4]); bicubic-opencv is the fastest
    assert set(rows) == {"ABPN_s2", "eSR-MAX_s2_K3_C1", "bicubic-opencv"}
    assert group["speed_baselines"] == {"y": "Bicubic_s2", "rgb": "bicubic-opencv"}
    assert rows["eSR-MAX_s2_K3_C1"]["speed_baseline"] == "Bicubic_s2" and rows["eSR-MAX_s2_K3_C1"]["speedup"] == 2.0
    assert rows["ABPN_s2"]["speed_baseline"] == "bicubic-opencv" and rows["ABPN_s2"]["speedup"] == 0.5
    assert rows["ABPN_s2"]["beats_s"] is False and rows["ABPN_s2"]["beats_q"] is True  # 30 < 60; 35 > 33 dB
    assert rows["bicubic-opencv"]["beats_s"] == "baseline" and rows["bicubic-opencv"]["speedup"] == 1.0
    assert rows["bicubic-opencv"]["colour_space"] == "rgb" and rows["eSR-MAX_s2_K3_C1"]["colour_space"] == "y"


def test_front_note_names_the_partner_and_why(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    for model, psnr, fps, ci in (("A_s2", 30.50, 13.39, [13.10, 13.70]), ("B_s2", 30.495, 13.36, [13.05, 13.66]),
                                 ("C_s2", 29.00, 5.0, [4.9, 5.1])):
        store.add(run, "quality:Set5", {"model": model, "scale": 2, "device": "cpu", "backend": "torch",
                                        "precision": "fp32", "weights": "w", "family": "x", "psnr": psnr})
        store.add(run, "speed", {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime",
                                 "precision": "fp32", "weights": "w", "family": "x", "fhd_per_s": fps,
                                 "fhd_per_s_ci": ci, "input_shape": [1, 1, 8, 8]})
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in load_table(store).to_dict("records")]
    (group,) = front_groups(records)
    rows = {r["model"]: r for r in group["rows"]}
    assert set(rows) == {"A_s2", "B_s2"}
    assert rows["B_s2"]["tied"] is True and rows["A_s2"]["tied"] is True  # equal speed, PSNR 0.005 dB apart
    assert rows["B_s2"]["front_note"] == "statistically tied with A_s2 (speed intervals overlap, PSNR within 0.01 dB)"
    assert rows["A_s2"]["front_note"] == "statistically tied with B_s2 (speed intervals overlap, PSNR within 0.01 dB)"
    assert (rows["B_s2"]["fhd_per_s_low"], rows["B_s2"]["fhd_per_s_high"]) == (13.05, 13.66)


def test_report_shows_intervals_ties_colour_runtime_and_the_crops(tmp_path):
    store, run = _store(tmp_path)
    plots = tmp_path / "plots"
    plots.mkdir()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1, 1))
    fig.savefig(str(plots / "visual_cpu_onnxruntime_fp32_x2.png"))  # as run-all draws them
    plt.close(fig)
    html_path, md_path = write_report(store, tmp_path / "out", plots_dir=plots)
    html = html_path.read_text()
    crops = html.split('<section id="crops">', 1)[1].split("</section>", 1)[0]
    assert 'alt="visual_cpu_onnxruntime_fp32_x2"' in crops and "data:image/png;base64," in crops
    figures = html.split('<section id="figures">', 1)[1].split("</section>", 1)[0]
    assert "visual_" not in figures and 'alt="tradeoff_cpu_onnxruntime_fp32_x2_Set5"' in figures
    md = md_path.read_text()
    abpn = next(line for line in md.splitlines() if "| ABPN_s2 | ABPN |" in line and "Set5" in line)
    assert "| RGB |" in abpn and "| 30.00 [29.40, 30.60] | 0.50 |" in abpn  # against bicubic-opencv's 60
    assert "RGB models against bicubic-opencv" in md
    models = html.split('<section id="all-models">', 1)[1]
    assert ">numpy</td>" in models and ">runtime</th>" in models
    assert re.search(r'title="95 % interval ±2.0 % of the median; timing stopped: interval"[^>]*>13.39 \[13.10, 13.70\]<',
                     models)
    # without crops in the figures folder: a sentence, not an empty section
    html2, _ = write_report(store, tmp_path / "out2", plots_dir=tmp_path / "plots2")
    assert "No crops: run-all draws them" in html2.read_text()


def test_report_front_marks_the_tied_member(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    for model, psnr, fps, ci in (("A_s2", 30.50, 13.39, [13.10, 13.70]), ("B_s2", 30.495, 13.36, [13.05, 13.66])):
        store.add(run, "quality:Set5", {"model": model, "scale": 2, "device": "cpu", "backend": "torch",
                                        "precision": "fp32", "weights": "w", "family": "x", "psnr": psnr})
        store.add(run, "speed", {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime",
                                 "precision": "fp32", "weights": "w", "family": "x", "fhd_per_s": fps,
                                 "fhd_per_s_ci": ci, "input_shape": [1, 1, 8, 8]})
    _, md_path = write_report(store, tmp_path / "out", plots_dir=tmp_path / "plots")
    b = next(line for line in md_path.read_text().splitlines() if line.startswith("| cpu ") and "| B_s2 |" in line)
    assert "| 13.36 [13.05, 13.66] |" in b
    assert b.endswith("| statistically tied with A_s2 (speed intervals overlap, PSNR within 0.01 dB) |")


# --------------------------------------------------------------------------- compare


def _point(model, family, colour, fps, psnr=30.0):
    return {"model": model, "family": family, "colour_space": colour, "fhd_per_s": fps, "psnr": {"Set5": psnr},
            "device": "cpu", "backend": "onnxruntime", "precision": "fp32", "scale": 2}


def test_compare_speed_against_the_bicubic_of_the_same_colour_space():
    pool = [_point("Bicubic_s2", "Bicubic", "y", 20.0), _point("bicubic-opencv", "bicubic-opencv", "rgb", 60.0)]
    rgb = verdict(_point("mine", "onnx", "rgb", 30.0, 31.0), pool)
    assert (rgb["bicubic"], rgb["speed_bicubic"], rgb["bicubic_fhd_per_s"]) == ("Bicubic_s2", "bicubic-opencv", 60.0)
    assert rgb["beats_bicubic_quality"] is True and rgb["beats_bicubic_speed"] is False
    assert "does not beat bicubic-opencv (the RGB bicubic) in speed (60.00 FHD/s)" in verdict_line(rgb)
    y = verdict(_point("mine", "onnx", "y", 30.0, 31.0), pool)
    assert (y["speed_bicubic"], y["beats_bicubic_speed"]) == ("Bicubic_s2", True)
    assert "beats it in speed (20.00 FHD/s)" in verdict_line(y)
    alone = verdict(_point("mine", "onnx", "rgb", 30.0, 31.0), pool[:1])  # no OpenCV bicubic timed: said so
    assert alone["speed_bicubic"] == "Bicubic_s2" and "no bicubic-opencv timed here" in verdict_line(alone)


# --------------------------------------------------------------------------- the figure


def _points():
    """A trade-off figure's points: data in every corner (the slow bicubic-matlab bottom left)."""
    def p(model, family, colour, fps, psnr, hw=0.03):
        return {"model": model, "family": family, "colour_space": colour, "fhd_per_s": fps, "psnr_mean": psnr,
                "psnr": {}, "fhd_per_s_low": fps * (1 - hw), "fhd_per_s_high": fps * (1 + hw), "device": "cpu"}
    return [p("Bicubic_s2", "Bicubic", "y", 19.2, 32.23), p("bicubic-matlab", "bicubic-matlab", "rgb", 0.85, 32.23),
            p("bicubic-opencv", "bicubic-opencv", "rgb", 14.0, 32.40), p("eSR-MAX_s2_K3_C1", "eSR-MAX", "y", 90.0, 32.83),
            p("eSR-TM_s2_K7_C3", "eSR-TM", "y", 13.36, 33.355), p("eSR-CNN_s2_C2_D1_S3", "eSR-CNN", "y", 13.39, 33.36),
            p("ESPCN_s2_D34_S32", "ESPCN", "y", 3.7, 33.85), p("FSRCNN_s2_D56_S12_M4", "FSRCNN", "y", 1.3, 33.92),
            p("ABPN_s2", "ABPN", "rgb", 2.2, 33.70)]


@pytest.fixture(scope="module")
def figure():
    pts = _points()
    fig = trade_off_axes(pts, group_title("cpu", "onnxruntime", "fp32", 2) + " · " + set_title("mean", ["Set5", "Set14"]),
                         "mean")
    yield fig, pts
    _plt().close(fig)


def test_legend_covers_no_point_and_has_one_entry_per_label(figure):
    fig, pts = figure
    ax = fig.axes[0]
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    for p in pts:
        x, y = ax.transData.transform((p["fhd_per_s"], p["psnr_mean"]))
        assert not box.contains(x, y), p["model"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == len(set(labels))
    assert sum("opencv" in t.lower() for t in labels) == 1 and sum("Bicubic_s2:" in t for t in labels) == 1
    assert "ABPN (RGB)" in labels and "eSR-TM (Y)" in labels and "on the front, statistically tied" in labels


def test_rgb_models_are_hollow_and_error_bars_span_the_interval(figure):
    fig, pts = figure
    ax = fig.axes[0]
    by_label = {c.get_label(): c for c in ax.collections}
    assert by_label["ABPN (RGB)"].get_facecolors().size == 0  # hollow
    assert by_label["eSR-TM (Y)"].get_facecolors()[0][3] > 0  # filled
    segments = [seg for c in ax.containers for bar in c.lines[2] for seg in bar.get_segments()]
    abpn = next(s for s in segments if abs(s[0][1] - 33.70) < 1e-9)
    assert [round(v, 6) for v in (abpn[0][0], abpn[1][0])] == [round(2.2 * 0.97, 6), round(2.2 * 1.03, 6)]


def test_tied_member_is_labelled_and_labels_are_readable(figure):
    fig, _ = figure
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    assert "eSR-TM_s2_K7_C3 (tied)" in texts and "eSR-CNN_s2_C2_D1_S3 (tied)" in texts
    assert all(t.get_fontsize() >= 8 for t in texts.values())
    # none runs over the axes' right edge into the legend (eSR-MAX, the fastest, is labelled on its left)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    right = fig.axes[0].get_window_extent(renderer).x1
    assert all(t.get_window_extent(renderer).x1 <= right for t in texts.values())
    assert texts["eSR-MAX_s2_K3_C1"].get_horizontalalignment() == "right"


@pytest.mark.parametrize("lo,hi", [(0.75, 25.0), (55.0, 150.0), (0.5, 140.0), (0.01, 3e5)])
def test_log_tick_labels_do_not_collide(lo, hi):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    log_ticks(ax, "x")
    fig.canvas.draw()
    boxes = tick_label_boxes(ax, "x", fig.canvas.get_renderer())
    assert len(boxes) >= 2
    spans = sorted((b.x0, b.x1) for b in boxes)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), [t.get_text() for t in ax.get_xticklabels()]
    assert not labels_collide(boxes, "x")
    assert not any("e+" in t.get_text() or "times" in t.get_text() for t in ax.get_xticklabels())
    plt.close(fig)


def test_a_narrow_figure_falls_back_to_fewer_tick_labels():
    """Where the finest labels of the span would touch (a small figure), fewer are labelled."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.2, 2), dpi=100)
    ax.set_xscale("log")
    ax.set_xlim(0.5, 140.0)
    log_ticks(ax, "x")
    fig.canvas.draw()
    boxes = tick_label_boxes(ax, "x", fig.canvas.get_renderer())
    assert len(boxes) >= 2 and not labels_collide(boxes, "x")
    plt.close(fig)


def test_one_legend_entry_per_label():
    from harness.results.plots import unique_legend

    plt = _plt()
    fig, ax = plt.subplots()
    ax.scatter([1], [1], label="eSR-TM (Y)", color="#ff0000")
    ax.scatter([2], [2], label="eSR-TM (Y)", color="#0000ff")
    ax.scatter([3], [3], label="_hidden")
    legend = unique_legend(ax)
    assert [t.get_text() for t in legend.get_texts()] == ["eSR-TM (Y)"]
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles  # matplotlib < 3.7: legendHandles
    assert handles[0].get_facecolor()[0].tolist() == [1.0, 0.0, 0.0, 1.0]  # the first one kept
    plt.close(fig)


def test_titles_say_each_word_once():
    for title in (group_title("cpu", "onnxruntime", "fp32", 2) + " · " + set_title("embedded", ["embedded"]),
                  group_title("cpu", "onnxruntime", "fp32", 2) + " · " + set_title("mean", ["Set5", "Set14", "embedded"]),
                  group_title("jetson", "tensorrt", "fp16", 4) + " · " + set_title("Set5", ["Set5", "Set14"])):
        words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", title)]
        assert len(words) == len(set(words)), title
        assert "psnr" not in words and "frames" not in words  # the axes say what is plotted
    assert set_title("mean", ["Set5", "Set14", "embedded"]) == "mean over Set5, Set14"  # psnr_mean's basis
