"""Image loading that turns every common file into RGB uint8, with one-line errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import HarnessError, first_line

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_rgb(path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB.

    Greyscale is repeated over three channels (so its Y is 16 + 219 * v/255, as with
    MATLAB ``rgb2ycbcr`` on a grey RGB image); alpha is dropped; palette, 16-bit and
    CMYK images are converted.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(np.floor(arr / peak * 255.0 + 0.5), 0, 255).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA").convert("RGB")
            elif im.mode != "RGB":
                im = im.convert("RGB")
            return np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:  # PIL's guard against a tiny file that decodes to gigapixels
        raise HarnessError(f"{path}: refused as a decompression bomb ({first_line(exc, 120)}); remove the file, or "
                           f"raise PIL.Image.MAX_IMAGE_PIXELS if it is a genuine image that large") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HarnessError(f"{path}: cannot read this image ({exc.__class__.__name__}); "
                           f"replace or remove the file") from None


def save_rgb(path, rgb: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.floor(np.asarray(rgb, dtype=np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
