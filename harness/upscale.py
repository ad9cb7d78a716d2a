"""Upscale users' images with any model of the harness.

Y-channel models (the eSR pool) upscale the BT.601 Y channel and MATLAB-bicubic the Cb and
Cr channels, then convert back to RGB: colour output, as users of the eSR code asked for.
RGB models upscale the image directly. Outputs are clamped and saved as PNG.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .errors import HarnessError
from .imageio import is_image_file, load_rgb, save_rgb
from .imresize import upscale as bicubic_up


def upscale_rgb(model, rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB in, uint8 RGB out (``model.scale`` times larger)."""
    if model.input_space == "rgb":
        out = np.asarray(model(rgb.astype(np.float32) / 255.0), dtype=np.float64)
        return np.clip(np.floor(np.clip(out, 0, 1) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    ycc = rgb_to_ycbcr(rgb)
    y = np.asarray(model((ycc[..., 0] / 255.0).astype(np.float32)), dtype=np.float64)
    chroma = bicubic_up(ycc[..., 1:], model.scale)
    out = np.concatenate([np.clip(y, 0, 1)[..., None] * 255.0, chroma], axis=2)
    return np.clip(np.floor(ycbcr_to_rgb(out) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def input_files(inputs: Sequence[str]) -> List[Path]:
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise HarnessError(f"{path}: no png/bmp/jpg images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise HarnessError(f"{path}: no such image or folder")
    return files


def upscale_files(model, inputs: Sequence[str], out_dir) -> List[Path]:
    out_dir = Path(out_dir)
    written = []
    tag = model.id.replace("/", "_").replace(":", "_")
    for path in input_files(inputs):
        out = upscale_rgb(model, load_rgb(path))
        target = out_dir / f"{path.stem}_x{model.scale}_{tag}.png"
        save_rgb(target, out)
        written.append(target)
    return written
