"""Side-by-side zoomed crops: where people would rather look than read.

For one test image per scale, the most detailed crop (highest gradient energy of the HR
Y channel) is shown for HR, bicubic, the Pareto-front models and the best model by PSNR,
each titled with its PSNR on that whole image (the standard protocol). Colour output:
Y from the model, CbCr by bicubic (see :mod:`harness.upscale`).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..color import rgb_to_y
from ..imresize import downscale, modcrop
from ..metrics import psnr
from ..upscale import upscale_rgb


def detailed_crop(hr_rgb: np.ndarray, size: int) -> tuple:
    """(top, left) of the size x size window with the most gradient energy (coarse grid search)."""
    y = rgb_to_y(hr_rgb)
    g = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1, :]
    h, w = g.shape
    size = min(size, h, w)
    best, where = -1.0, (0, 0)
    step = max(8, size // 4)
    csum = g.cumsum(0).cumsum(1)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            b, r = top + size - 1, left + size - 1
            total = csum[b, r] - (csum[top - 1, r] if top else 0) - (csum[b, left - 1] if left else 0) + \
                (csum[top - 1, left - 1] if top and left else 0)
            if total > best:
                best, where = total, (top, left)
    return where


def comparison_figure(hr_rgb: np.ndarray, models: Sequence, out_stem: Path, title: str,
                      crop: int = 96, zoom_note: str = "") -> Optional[List[Path]]:
    """One row of crops (HR + each model) with PSNRs; writes PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not models:
        return None
    scale = models[0].scale
    hr = modcrop(hr_rgb, scale)
    lr = downscale(hr, scale)
    top, left = detailed_crop(hr, crop)
    panels = [("HR (ground truth)", hr, None)]
    hr_y = rgb_to_y(hr)
    for m in models:
        sr = upscale_rgb(m, lr)
        panels.append((m.id, sr, psnr(hr_y, rgb_to_y(sr), crop=scale)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.8), dpi=110)
    for ax, (name, img, value) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img[top:top + crop, left:left + crop], interpolation="nearest")
        ax.set_title(name if value is None else f"{name}\n{value:.2f} dB", fontsize=8)
        ax.axis("off")
    fig.suptitle(title + zoom_note, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    from .plots import save_figure

    return save_figure(fig, out_stem)


def draw_visuals(store, image_set, out_dir, run_id: Optional[str] = None, weights: str = "shipped",
                 onnx_dir: Optional[str] = None) -> List[Path]:
    """Per device/backend/precision/scale of the store: bicubic, the front and the best model on
    the first image of ``image_set`` (models from the export folder ``onnx_dir`` when given)."""
    from ..exported import resolve_model
    from .pareto import front_with_ties
    from .plots import collect

    name, hr = next(iter(image_set))
    groups = {}
    for p in collect(store, run_id):
        groups.setdefault((p["device"], p["backend"], p["precision"], p["scale"]), []).append(p)
    written: List[Path] = []
    for (device, backend, precision, scale), pts in sorted(groups.items()):
        pts = [p for p in pts if np.isfinite(p["psnr_mean"]) and np.isfinite(p["fhd_per_s"] or np.nan)]
        if not pts:
            continue
        idx, _ = front_with_ties([p["psnr_mean"] for p in pts], [p["fhd_per_s"] for p in pts],
                                 [p.get("fhd_per_s_low") for p in pts], [p.get("fhd_per_s_high") for p in pts])
        front = [pts[i] for i in idx]  # the front of the figures and the report, statistically tied members too
        best = max(pts, key=lambda p: p["psnr_mean"])
        chosen = [p for p in pts if p["family"] == "Bicubic"] + [p for p in front if p["family"] != "Bicubic"]
        if best not in chosen:
            chosen.append(best)
        models = []
        for p in chosen[:8]:
            try:
                models.append(resolve_model(p["model"], scale, p["weights"] if p["weights"] not in ("none",) else weights,
                                            onnx_dir=onnx_dir))
            except Exception:  # noqa: BLE001 - a model that no longer resolves is left out of the picture
                continue
        files = comparison_figure(hr, models, Path(out_dir) / f"visual_{device}_{backend}_{precision}_x{scale}",
                                  f"{image_set.name}/{name} · x{scale} · {device} {backend} {precision}: bicubic, "
                                  f"the front and the best model (PSNR on the whole image)")
        written += files or []
    return written
