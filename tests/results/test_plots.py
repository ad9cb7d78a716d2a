"""Trade-off figures from a store (synthetic rows: the figure logic, not the measurements)."""
import math

from harness.cli import main
from harness.results.plots import collect, draw_all
from harness.results.store import ResultStore


def _fill(store):
    run, _ = store.start_run("cpu", "k")
    models = [("Bicubic_s2", "Bicubic", 30.3, 100.0), ("eSR-MAX_s2_K3_C3", "eSR-MAX", 30.8, 60.0),
              ("eSR-TM_s2_K7_C4", "eSR-TM", 31.5, 20.0), ("FSRCNN_s2_D6_S1_M1", "FSRCNN", 31.4, 15.0),
              ("bicubic-opencv", "bicubic-opencv", 30.5, 70.0)]
    for model, fam, psnr, fps in models:
        for s in ("Set5", "Set14"):
            store.add(run, f"quality:{s}", {"model": model, "scale": 2, "device": "cpu", "backend": "torch",
                                            "precision": "fp32", "weights": "official", "family": fam,
                                            "psnr": psnr + (3 if s == "Set5" else 0)})
        store.add(run, "speed", {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime",
                                 "precision": "fp32", "weights": "official", "family": fam, "fhd_per_s": fps,
                                 "mj_per_frame": 1000.0 / fps})
    return run


def test_collect_joins_quality_and_speed(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    _fill(store)
    pts = {p["model"]: p for p in collect(store)}
    assert pts["eSR-TM_s2_K7_C4"]["psnr"] == {"Set5": 34.5, "Set14": 31.5}
    assert math.isclose(pts["eSR-TM_s2_K7_C4"]["psnr_mean"], 33.0)
    assert pts["Bicubic_s2"]["fhd_per_s"] == 100.0


def test_draw_all_writes_png_and_svg_per_set_mean_and_energy(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    _fill(store)
    files = {f.name for f in draw_all(store, tmp_path / "plots")}
    for key in ("Set5", "Set14", "mean"):
        assert f"tradeoff_cpu_onnxruntime_fp32_x2_{key}.png" in files
        assert f"tradeoff_cpu_onnxruntime_fp32_x2_{key}.svg" in files
    assert "energy_cpu_onnxruntime_fp32_x2.png" in files
    svg = (tmp_path / "plots" / "tradeoff_cpu_onnxruntime_fp32_x2_Set14.svg").read_text()
    assert "eSR-TM_s2_K7_C4" in svg and "Pareto front" in svg  # the front is labelled
    assert "FSRCNN_s2_D6_S1_M1" not in svg  # dominated by eSR-TM: not labelled


def test_other_methods_are_labelled_even_off_the_front(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    run = _fill(store)
    for s in ("Set5", "Set14"):  # dominated by eSR-TM (slower and worse), yet named: a method is findable
        store.add(run, f"quality:{s}", {"model": "Ghost-FSRCNN_s2_D56_S12_M4", "scale": 2, "device": "cpu",
                                        "backend": "torch", "precision": "fp32", "weights": "shipped",
                                        "family": "GhostSR", "psnr": 31.0 + (3 if s == "Set5" else 0)})
    store.add(run, "speed", {"model": "Ghost-FSRCNN_s2_D56_S12_M4", "scale": 2, "device": "cpu",
                             "backend": "onnxruntime", "precision": "fp32", "weights": "shipped", "family": "GhostSR",
                             "fhd_per_s": 10.0, "mj_per_frame": 100.0})
    draw_all(store, tmp_path / "plots")
    for name in ("tradeoff_cpu_onnxruntime_fp32_x2_Set14.svg", "energy_cpu_onnxruntime_fp32_x2.svg"):
        svg = (tmp_path / "plots" / name).read_text()
        assert "Ghost-FSRCNN_s2_D56_S12_M4" in svg and "FSRCNN_s2_D6_S1_M1" not in svg, name


def test_cross_device_figure_when_the_store_holds_two_devices(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    _fill(store)
    run, _ = store.start_run("rpi", "k2")
    for model, fam, fps in (("Bicubic_s2", "Bicubic", 10.0), ("eSR-TM_s2_K7_C4", "eSR-TM", 2.0)):
        store.add(run, "speed", {"model": model, "scale": 2, "device": "rpi", "backend": "onnxruntime",
                                 "precision": "fp32", "weights": "official", "family": fam, "fhd_per_s": fps})
    names = {f.name for f in draw_all(store, tmp_path / "plots")}
    assert "devices_x2.png" in names and "tradeoff_rpi_onnxruntime_fp32_x2_mean.png" in names
    only_one = ResultStore(tmp_path / "one.db")
    _fill(only_one)
    assert "devices_x2.png" not in {f.name for f in draw_all(only_one, tmp_path / "p1")}


def test_plot_command_errors(tmp_path, capsys):
    assert main(["plot", "--db", str(tmp_path / "none.db")]) == 2
    assert "no results database" in capsys.readouterr().err


def test_detailed_crop_finds_the_textured_region():
    import numpy as np

    from harness.results.visual import detailed_crop

    img = np.full((200, 200, 3), 128, np.uint8)
    img[120:180, 40:100] = np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    top, left = detailed_crop(img, 48)
    assert 100 <= top <= 140 and 24 <= left <= 60


def test_labels_of_neighbouring_models_do_not_overlap():
    """A ghost network beside its base: the later label moves a line away, the first stays put."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.results.plots import declutter

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([7.0, 7.1, 7.05], [33.85, 33.84, 33.86])
    ax.set_xlim(1, 100)
    ax.set_ylim(30, 35)
    texts = [ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
             for name, x, y in (("ESPCN_s2_D34_S32", 7.0, 33.85), ("Ghost-ESPCN_s2_D34_S32", 7.1, 33.84),
                                ("eSR-CNN_s2_C8_D9_S15", 7.05, 33.86))]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert texts[0].get_window_extent(renderer).overlaps(texts[1].get_window_extent(renderer))
    declutter(fig, texts)
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert texts[0].xyann == (4, 3)
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(3) for j in range(i + 1, 3))
    plt.close(fig)


def test_declutter_within_the_axes_hides_what_finds_no_free_place():
    """30 names on one point of a short axes: the first stays put, the others stack above and below it
    while there is room inside the axes, and the rest are hidden (counted), never drawn over each other
    or over the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.results.plots import declutter

    fig, ax = plt.subplots(figsize=(6, 2), dpi=100)  # room for a few 7-point lines only
    ax.set_xlim(1, 100)
    ax.set_ylim(30, 35)
    ax.set_title("a title the labels must not cover")
    texts = [ax.annotate(f"model_{k}", (10.0, 32.5), fontsize=7, xytext=(4, 3), textcoords="offset points")
             for k in range(30)]
    hidden = declutter(fig, texts, within=ax)
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    shown = [t.get_window_extent(renderer) for t in texts if t.get_visible()]
    assert texts[0].get_visible() and texts[0].xyann == (4, 3)
    assert 1 < len(shown) < 30 and hidden == 30 - len(shown)
    assert not any(shown[i].overlaps(shown[j]) for i in range(len(shown)) for j in range(i + 1, len(shown)))
    assert all(frame.y0 - 1 <= b.y0 and b.y1 <= frame.y1 + 1 for b in shown)
    assert declutter(fig, [ax.annotate("x", (10.0, 32.5)) for _ in range(30)]) == 0  # without `within`: all drawn
    plt.close(fig)
