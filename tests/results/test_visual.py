"""The zoomed-crop comparisons: which crop, which models, and model code kept out of the run's process."""
import numpy as np
import pytest

from conftest import write_png
from harness.results import visual
from harness.results.store import ResultStore


def test_detailed_crop_finds_the_only_textured_window():
    img = np.full((120, 160, 3), 128, dtype=np.uint8)
    checker = (np.indices((24, 24)).sum(0) % 2 * 255).astype(np.uint8)
    img[40:64, 72:96] = checker[..., None]  # on the search grid (step 8 for a 24-pixel window)
    assert visual.detailed_crop(img, 24) == (40, 72)


def _point(model, family, psnr, fps, weights="official"):
    return {"model": model, "family": family, "psnr_mean": psnr, "fhd_per_s": fps, "weights": weights}


def test_visual_choice_is_bicubic_the_front_and_the_best():
    pts = [_point("Bicubic_s2", "Bicubic", 30.0, 50.0), _point("fast", "eSR-MAX", 30.5, 90.0),
           _point("dominated", "eSR-TM", 30.4, 40.0), _point("good", "eSR-TR", 32.0, 30.0),
           _point("unscored", "FSRCNN", float("nan"), 100.0), _point("untimed", "ESPCN", 35.0, None)]
    assert [p["model"] for p in visual.visual_choice(pts)] == ["Bicubic_s2", "fast", "good"]
    assert visual.visual_choice([_point("unscored", "FSRCNN", float("nan"), 100.0)]) == []


@pytest.mark.torch
@pytest.mark.faults
def test_draw_visuals_leaves_out_models_that_fail_and_keeps_the_rest(tmp_path, monkeypatch):
    """Every front model here but two fails in its own way; the figure still comes, with bicubic and the
    good model, and each failure is one line with its reason. A segfault in this process would end the test."""
    from harness.datasets import data_root, resolve_sets

    rng = np.random.default_rng(0)
    write_png(tmp_path / "data" / "Set5" / "HR" / "im0.png", rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    image_set = resolve_sets(data_root(str(tmp_path / "data")), ["Set5"])[0]
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    models = [("Bicubic_s2", "Bicubic", 30.0, 100.0, "none"), ("fixtures.fake_models:Nearest", "custom", 31.0, 80.0, "init"),
              ("fixtures.fake_models:Raises", "custom", 32.0, 60.0, "init"),
              ("fixtures.fake_models:Crash", "custom", 33.0, 40.0, "init"),
              ("fixtures.fake_models:Hang", "custom", 34.0, 20.0, "init")]
    for model, family, psnr, fps, weights in models:  # every one on the front
        common = {"model": model, "scale": 2, "device": "cpu", "precision": "fp32", "weights": weights, "family": family}
        store.add(run, "quality:Set5", dict(common, backend="torch", psnr=psnr))
        store.add(run, "speed", dict(common, backend="onnxruntime", fhd_per_s=fps))
    drawn = {}
    real = visual.comparison_figure

    def record(hr, panels, scale, out_stem, title, crop=96):
        drawn["panels"] = panels
        return real(hr, panels, scale, out_stem, title, crop)

    monkeypatch.setattr(visual, "comparison_figure", record)
    lines = []
    # 12 s: room for a cold worker start (the PyTorch import counts towards the first model's time)
    files = visual.draw_visuals(store, image_set, tmp_path / "plots", run_id=run, timeout_s=12, log=lines.append)
    assert sorted(f.name for f in files) == ["visual_cpu_onnxruntime_fp32_x2.png", "visual_cpu_onnxruntime_fp32_x2.svg"]
    assert [name for name, _ in drawn["panels"]] == ["Bicubic_s2", "fixtures.fake_models:Nearest"]
    assert all(sr.shape == (48, 60, 3) and sr.dtype == np.uint8 for _, sr in drawn["panels"])
    assert len(lines) == 3
    for line, (cls, reason) in zip(lines, [("Raises", "RuntimeError: this model is broken on purpose"),
                                           ("Crash", "crashed (SIGSEGV)"), ("Hang", "timed out after 12 s")]):
        assert line.startswith(f"visual comparison x2: fixtures.fake_models:{cls} left out: ") and reason in line, line
