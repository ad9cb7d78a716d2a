"""The 14 Full-HD frames every model upscales in the speed benchmark.

Speed is measured in Full-HD output frames per second (FHD/s), as in the eSR paper: each
frame's LR input at x2/x3/x4 is the MATLAB bicubic of a 1920x1080 frame (960x540,
640x360, 480x270), so every model's output is exactly 1920x1080.

Frames come from ``--frames DIR`` (larger images centre-cropped; fewer than 14 reused with
a warning), else they are built from the embedded images: each frame is a mosaic of
embedded photos and textures at their native resolution (mirrored where a tile is larger
than its photo), so the content has real image statistics rather than blurred upsampling.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from .cachefile import load_or_build
from .color import rgb_to_y
from .datasets import embedded_set
from .errors import HarnessError
from .imageio import is_image_file, load_rgb
from .imresize import downscale

FHD_HEIGHT, FHD_WIDTH = 1080, 1920
N_FRAMES = 14
_TILE_ROWS, _TILE_COLS = 2, 4  # 540x480 tiles


@dataclass
class Frame:
    name: str
    rgb: np.ndarray  # 1080x1920x3 uint8
    source: str      # "embedded" or the file it came from


def centre_crop(img: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return img[top:top + height, left:left + width]


def _fit_tile(img: np.ndarray, height: int, width: int, shift: int) -> np.ndarray:
    """A height x width tile of ``img``: mirrored where the image is smaller, offset by ``shift``."""
    h, w = img.shape[:2]
    pad_h, pad_w = max(0, height - h), max(0, width - w)
    if pad_h or pad_w:
        img = np.pad(img, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                     mode="symmetric")
        h, w = img.shape[:2]
    top = (shift * 37) % (h - height + 1)
    left = (shift * 53) % (w - width + 1)
    return img[top:top + height, left:left + width]


def embedded_frames(count: int = N_FRAMES) -> List[Frame]:
    """Deterministic Full-HD mosaics of the embedded images; frame i starts at image i."""
    images = [img for _, img in embedded_set()]
    th, tw = FHD_HEIGHT // _TILE_ROWS, FHD_WIDTH // _TILE_COLS
    frames = []
    for i in range(count):
        canvas = np.empty((FHD_HEIGHT, FHD_WIDTH, 3), dtype=np.uint8)
        for t in range(_TILE_ROWS * _TILE_COLS):
            r, c = divmod(t, _TILE_COLS)
            img = images[(i + t * 3) % len(images)]
            canvas[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = _fit_tile(img, th, tw, shift=i + t)
        frames.append(Frame(f"embedded_{i:02d}", canvas, "embedded"))
    return frames


def folder_frames(folder, count: int = N_FRAMES) -> List[Frame]:
    """Full-HD frames from the images in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"--frames {folder}: no such folder; give a folder of images of at least "
                           f"{FHD_WIDTH}x{FHD_HEIGHT}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise HarnessError(f"--frames {folder}: no png/bmp/jpg images in it; add at least one image of "
                           f"{FHD_WIDTH}x{FHD_HEIGHT} or larger")
    frames = []
    for path in files[:count]:
        rgb = load_rgb(path)
        h, w = rgb.shape[:2]
        if h < FHD_HEIGHT or w < FHD_WIDTH:
            raise HarnessError(f"{path}: {w}x{h} is smaller than Full-HD; frames must be at least "
                               f"{FHD_WIDTH}x{FHD_HEIGHT} (larger ones are centre-cropped)")
        frames.append(Frame(path.stem, np.ascontiguousarray(centre_crop(rgb, FHD_HEIGHT, FHD_WIDTH)), str(path)))
    if len(frames) < count:
        warnings.warn(f"--frames {folder} holds {len(frames)} image(s), fewer than {count}: "
                      f"reusing them in turn to make {count} frames", stacklevel=2)
        base = list(frames)
        while len(frames) < count:
            f = base[len(frames) % len(base)]
            frames.append(Frame(f"{f.name}#{len(frames) // len(base)}", f.rgb, f.source))
    return frames


def load_frames(frames_dir: Optional[str] = None, count: int = N_FRAMES) -> List[Frame]:
    return folder_frames(frames_dir, count) if frames_dir else embedded_frames(count)


def _as_input(lr: np.ndarray, input_space: str) -> np.ndarray:
    """A uint8 RGB LR frame as a model input: float32 Y (HxW) or RGB (HxWx3) in [0, 1]."""
    if input_space == "y":
        return (rgb_to_y(lr) / 255.0).astype(np.float32)
    return (lr.astype(np.float32) / 255.0)


def lr_input(frame: Frame, scale: int, input_space: str = "y") -> np.ndarray:
    """A frame's LR model input: MATLAB bicubic of the frame, as float32 Y (HxW) or RGB (HxWx3) in [0, 1]."""
    if FHD_HEIGHT % scale or FHD_WIDTH % scale:
        raise HarnessError(f"x{scale} does not divide {FHD_WIDTH}x{FHD_HEIGHT}; use scale 2, 3 or 4")
    return _as_input(downscale(frame.rgb, scale), input_space)


def lr_inputs(frames: List[Frame], scale: int, input_space: str = "y", cache: bool = True) -> List[np.ndarray]:
    """The LR inputs of all frames at ``scale``. The uint8 RGB LR frames are cached on disk, one entry
    per scale for both colour spaces (the MATLAB resize of 14 Full-HD frames is the slow step, and every
    model at that scale reuses them; Y is derived from them, as :func:`lr_input` does)."""
    import hashlib

    from .weights import cache_dir

    if not cache:
        return [lr_input(f, scale, input_space) for f in frames]
    if FHD_HEIGHT % scale or FHD_WIDTH % scale:
        raise HarnessError(f"x{scale} does not divide {FHD_WIDTH}x{FHD_HEIGHT}; use scale 2, 3 or 4")
    digest = hashlib.sha1(f"{scale}:rgb8:{len(frames)}".encode())
    for f in frames:
        digest.update(f.name.encode())
        digest.update(f.rgb.tobytes())
    path = cache_dir() / "frames" / f"lr_x{scale}_rgb8_{digest.hexdigest()[:16]}.npz"

    def load(p: Path) -> List[np.ndarray]:  # a damaged entry (truncated zip, missing key) raises: rebuilt
        with np.load(p) as data:
            out = [data[f"f{i:02d}"] for i in range(len(frames))]
        if any(x.dtype != np.uint8 or x.shape != (FHD_HEIGHT // scale, FHD_WIDTH // scale, 3) for x in out):
            raise ValueError("an LR frame of the wrong type or shape")
        return out

    def build(tmp: Path) -> List[np.ndarray]:
        out = [downscale(f.rgb, scale) for f in frames]
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f"f{i:02d}": x for i, x in enumerate(out)})
        return out

    # written under a name of its own and renamed, built under a lock: runs sharing the cache never
    # read each other's half file, and build each entry once
    return [_as_input(lr, input_space) for lr in load_or_build(path, load, build, what="LR-frame cache")]
