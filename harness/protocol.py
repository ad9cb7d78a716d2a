"""Quality by the field's standard protocol (see DEVELOPERS.md):

HR cropped to a multiple of the scale; LR = MATLAB bicubic of the HR uint8 RGB image;
Y-channel models see BT.601 Y of the LR in [0, 1], RGB models the LR RGB in [0, 1];
outputs clamped to [0, 1]; PSNR/SSIM on Y in [0, 255] (float) with ``scale`` pixels
cropped from every border; the mean over the set's images.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .color import rgb_to_y
from .datasets import ImageSet
from .errors import HarnessError
from .imresize import downscale, modcrop
from .metrics import psnr, ssim
from .models.base import Upscaler
from .progress import progress


@dataclass
class Pair:
    name: str
    lr_rgb: np.ndarray  # uint8
    hr_y: np.ndarray    # float64, 0..255


@dataclass
class QualityResult:
    model: str
    scale: int
    set: str
    psnr: float
    ssim: float
    images: int
    weights: str = "none"
    per_image: List[Dict[str, float]] = field(default_factory=list)

    def record(self, per_image: bool = False) -> Dict:
        out = asdict(self)
        if not per_image:
            out.pop("per_image")
        return out


class QualityEvaluator:
    """Evaluates models on image sets; LR/HR pairs are made once per (set, scale) and reused."""

    def __init__(self, show_progress: bool = True):
        self._pairs: Dict[Tuple[str, int], List[Pair]] = {}
        self.show_progress = show_progress

    def pairs(self, image_set: ImageSet, scale: int, on_image: Optional[Callable[[str], None]] = None) -> List[Pair]:
        key = (image_set.name, scale)
        if key not in self._pairs:
            made = []
            for name, rgb in progress(image_set, total=len(image_set), desc=f"{image_set.name} x{scale} LR",
                                      disable=not self.show_progress, leave=False):
                hr = modcrop(rgb, scale)
                if hr.shape[0] < 4 * scale or hr.shape[1] < 4 * scale:
                    raise HarnessError(f"{image_set.name}/{name}: {rgb.shape[1]}x{rgb.shape[0]} is too small "
                                       f"for x{scale}; remove it from the set")
                made.append(Pair(name, downscale(hr, scale), rgb_to_y(hr)))
                if on_image is not None:
                    on_image(name)
            self._pairs[key] = made
        return self._pairs[key]

    def evaluate(self, model: Upscaler, image_set: ImageSet,
                 on_image: Optional[Callable[[str], None]] = None) -> QualityResult:
        """The model's mean PSNR/SSIM on the set (``on_image(name)`` after each image)."""
        scores = []
        for pair in progress(self.pairs(image_set, model.scale, on_image), desc=f"{model.id} x{model.scale} {image_set.name}",
                             disable=not self.show_progress, leave=False):
            sr_y = predict_y(model, pair.lr_rgb)
            if sr_y.shape != pair.hr_y.shape:
                raise HarnessError(f"{model.id}: output {sr_y.shape[1]}x{sr_y.shape[0]} for {pair.name} is not "
                                   f"x{model.scale} of its input {pair.lr_rgb.shape[1]}x{pair.lr_rgb.shape[0]}")
            scores.append({"image": pair.name,
                           "psnr": psnr(pair.hr_y, sr_y, crop=model.scale),
                           "ssim": ssim(pair.hr_y, sr_y, crop=model.scale)})
            if on_image is not None:
                on_image(pair.name)
        return QualityResult(model=model.id, scale=model.scale, set=image_set.name,
                             psnr=_mean(s["psnr"] for s in scores), ssim=_mean(s["ssim"] for s in scores),
                             images=len(scores), weights=model.weights, per_image=scores)


def quality_task(task: Dict, state: Dict, tick: Callable[..., None]) -> Dict:
    """A quality measurement in a :class:`harness.worker.Worker` child: ``task`` names the model
    (``model, scale, weights, onnx_dir``) and the set (``data, set``); the child keeps the
    evaluator (its LR images), the sets and the last model in ``state`` between tasks, and ticks
    after each image (its progress, so only a stuck model times out)."""
    from .datasets import data_root, find_set
    from .exported import resolve_model

    threads = task.get("threads")
    if threads and state.get("threads") != threads:  # a worker beside others: its share of the cores
        import os

        os.environ["HARNESS_ORT_THREADS"] = str(threads)  # ONNX Runtime sessions (harness.ortsession)
        state["threads"] = threads
    if threads and "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    key = (task["model"], task["scale"], task["weights"], task.get("onnx_dir"))
    if state.get("model_key") != key:
        state.pop("model", None)  # the previous model's memory goes before the next is built
        state.pop("model_key", None)
        state["model"] = resolve_model(task["model"], task["scale"], task["weights"], onnx_dir=task.get("onnx_dir"))
        state["model_key"] = key
        if threads and "torch" in sys.modules:  # the model's build may have imported PyTorch
            import torch

            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        tick(task["model"])
    sets = state.setdefault("sets", {})
    set_key = (task.get("data"), task["set"])
    if set_key not in sets:
        sets[set_key] = find_set(data_root(task.get("data")), task["set"])
    evaluator = state.setdefault("evaluator", QualityEvaluator(show_progress=False))
    return evaluator.evaluate(state["model"], sets[set_key], on_image=lambda name: tick(name)).record()


def predict_y(model: Upscaler, lr_rgb: np.ndarray) -> np.ndarray:
    """The model's output for a uint8 RGB LR image, clamped, as Y in [0, 255] (float64)."""
    if model.input_space == "y":
        out = np.asarray(model((rgb_to_y(lr_rgb) / 255.0).astype(np.float32)), dtype=np.float64)
        out = np.clip(out, 0.0, 1.0) * 255.0
    else:
        out = np.asarray(model(lr_rgb.astype(np.float32) / 255.0), dtype=np.float64)
        out = rgb_to_y(np.clip(out, 0.0, 1.0))
    if not np.all(np.isfinite(out)):
        raise HarnessError(f"{model.id}: output holds NaN/inf; the model or its weights are broken")
    return out


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        return float("nan")
    # An exact reconstruction (PSNR inf) keeps the mean inf rather than hiding it.
    return float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else float("inf")
