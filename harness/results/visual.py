"""Side-by-side zoomed crops: where people would rather look than read.

For one test image per scale, the most detailed crop (highest gradient energy of the HR
Y channel) is shown for HR, bicubic, the Pareto-front models and the best model by PSNR,
each titled with its PSNR on that whole image (the standard protocol). Colour output:
Y from the model, CbCr by bicubic (see :mod:`harness.upscale`). The models run in a worker
process, as in the sweep's stages: one that fails there is left out of its figure, with its reason.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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


def upscale_task(task: Dict, state: Dict, tick: Callable[..., None]) -> np.ndarray:
    """One model's upscale of one image, in a :class:`harness.worker.Worker` child: ``task`` names the
    model (``model, scale, weights, onnx_dir``) and holds the uint8 RGB ``lr``; the SR image comes back."""
    from ..exported import resolve_model

    model = resolve_model(task["model"], task["scale"], task["weights"], onnx_dir=task.get("onnx_dir"))
    tick(task["model"])
    return upscale_rgb(model, task["lr"])


def comparison_figure(hr_rgb: np.ndarray, panels: Sequence[Tuple[str, np.ndarray]], scale: int, out_stem: Path,
                      title: str, crop: int = 96) -> Optional[List[Path]]:
    """One row of crops, HR and each ``(name, SR image)`` of ``panels``, each titled with its PSNR
    on the whole image (Y, ``scale`` pixels cropped from each border); writes PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        return None
    hr = modcrop(hr_rgb, scale)
    top, left = detailed_crop(hr, crop)
    hr_y = rgb_to_y(hr)
    rows = [("HR (ground truth)", hr, None)] + [(name, sr, psnr(hr_y, rgb_to_y(sr), crop=scale)) for name, sr in panels]
    width = 2.3 * len(rows)
    lines = textwrap.wrap(title, width=int(width * 12))  # about 12 characters of 9-point text per inch
    fig, axes = plt.subplots(1, len(rows), figsize=(width, 2.6 + 0.18 * len(lines)), dpi=110)
    for ax, (name, img, value) in zip(np.atleast_1d(axes), rows):
        ax.imshow(img[top:top + crop, left:left + crop], interpolation="nearest")
        ax.set_title(name if value is None else f"{name}\n{value:.2f} dB", fontsize=8)
        ax.axis("off")
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.055 * (len(lines) + 0.5)))
    from .plots import save_figure

    return save_figure(fig, out_stem)


def visual_choice(points: Sequence[Dict], most: int = 8) -> List[Dict]:
    """The rows a comparison shows, at most ``most``: bicubic, the Pareto front (statistically tied
    members too, as in the figures and the report) and the best model by PSNR."""
    from .pareto import front_with_ties

    pts = [p for p in points if np.isfinite(p["psnr_mean"]) and np.isfinite(p["fhd_per_s"] or np.nan)]
    if not pts:
        return []
    idx, _ = front_with_ties([p["psnr_mean"] for p in pts], [p["fhd_per_s"] for p in pts],
                             [p.get("fhd_per_s_low") for p in pts], [p.get("fhd_per_s_high") for p in pts])
    front = [pts[i] for i in idx]
    best = max(pts, key=lambda p: p["psnr_mean"])
    chosen = [p for p in pts if p["family"] == "Bicubic"] + [p for p in front if p["family"] != "Bicubic"]
    if best not in chosen:
        chosen.append(best)
    return chosen[:most]


def draw_visuals(store, image_set, out_dir, run_id: Optional[str] = None, weights: str = "shipped",
                 onnx_dir: Optional[str] = None, timeout_s: float = 600.0,
                 log: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Per device/backend/precision/scale of the store: bicubic, the front and the best model on
    the first image of ``image_set`` (models from the export folder ``onnx_dir`` when given).

    Model code runs in a worker process (:class:`harness.worker.Worker`), never in this one: a model
    that raises, crashes, or makes no progress for ``timeout_s`` is left out of its figure with one
    ``log`` line, and the next model runs in a fresh worker."""
    from ..worker import Worker
    from .plots import collect

    name, hr = next(iter(image_set))
    groups: Dict[Tuple, List[Dict]] = {}
    for p in collect(store, run_id):
        groups.setdefault((p["device"], p["backend"], p["precision"], p["scale"]), []).append(p)
    written: List[Path] = []
    upscaled: Dict[Tuple[str, int, str], Tuple[str, object]] = {}  # a model in several groups runs once
    with Worker(upscale_task, what="on one image (or preparing the model)") as worker:
        for (device, backend, precision, scale), pts in sorted(groups.items()):
            chosen = visual_choice(pts)
            if not chosen:
                continue
            lr = downscale(modcrop(hr, scale), scale)
            panels = []
            for p in chosen:
                key = (p["model"], scale, p["weights"] if p["weights"] != "none" else weights)
                if key not in upscaled:
                    upscaled[key] = worker.call(dict(model=key[0], scale=scale, weights=key[2], onnx_dir=onnx_dir,
                                                     lr=lr), timeout_s)
                    if upscaled[key][0] != "ok" and log is not None:
                        log(f"visual comparison x{scale}: {p['model']} left out: {upscaled[key][1]}")
                status, sr = upscaled[key]
                if status == "ok":
                    panels.append((p["model"], sr))
            files = comparison_figure(hr, panels, scale, Path(out_dir) / f"visual_{device}_{backend}_{precision}_x{scale}",
                                      f"{image_set.name}/{name} · x{scale} · {device} {backend} {precision}: bicubic, "
                                      f"the front and the best model (PSNR on the whole image)")
            written += files or []
    return written
