"""MATLAB-faithful ``imresize(..., 'bicubic')``.

Hand-written because no library reproduces MATLAB here: OpenCV and PIL use other kernels
(a=-0.75) or other antialiasing, and SR results are only comparable with the published
tables when LR images are made exactly as MATLAB makes them. Semantics reproduced:

* Keys cubic kernel with a = -0.5; when shrinking, the kernel is stretched by 1/scale
  (antialiasing), width 4/scale.
* Output pixel ``u`` (1-based) samples the input at ``u/scale + 0.5*(1 - 1/scale)``.
* Borders are mirrored symmetrically (the edge pixel repeated: ``[1..n, n..1]``).
* One 1-D pass per dimension, rows (dimension 0, height) first; for uint8 input the
  result of each pass is rounded half away from zero and saturated to uint8, as
  MATLAB's ``imresizemex`` does.

Float input is resized without any rounding (used for the Y-channel reference of the
``Bicubic_s*`` network and for tests).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    ) * ((absx > 1) & (absx <= 2))


def contributions(in_len: int, out_len: int, scale: float, antialiasing: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices, each of shape (out_len, taps), as MATLAB computes them."""
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        def h(v):
            return scale * cubic(scale * v)
        kernel_width = kernel_width / scale
    else:
        h = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric mirror of out-of-range indices: aux = [1..n, n..1].
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


#: float64 values in one block of output rows (256 KiB): a block, its tap and the rows it gathers stay in
#: the CPU's cache while the taps accumulate, which makes a Full-HD resize about 3x faster than whole-array passes
BLOCK_VALUES = 1 << 15


def _resize_rows(src: np.ndarray, weights: np.ndarray, indices: np.ndarray, out_dtype, rounding: bool) -> np.ndarray:
    """``src`` (in_len, columns) resized along its rows to ``out_dtype`` (out_len, columns), a block of output
    rows at a time. Each output value is summed in the same order and precision as MATLAB's loop (float64
    ``w0*x0``, then ``+= w1*x1``, ...); with ``rounding``, each value is then rounded half away from zero and
    saturated to uint8, as MATLAB's ``imresizemex`` does (the values are finite, so ``floor(x + 0.5)`` and
    saturation below 0 give the same)."""
    out_len, taps = weights.shape
    columns = src.shape[1]
    out = np.empty((out_len, columns), dtype=out_dtype)
    rows = max(1, BLOCK_VALUES // max(columns, 1))
    acc = np.empty((rows, columns), dtype=np.float64)
    tap = np.empty_like(acc)
    for r0 in range(0, out_len, rows):
        r1 = min(out_len, r0 + rows)
        block, term = acc[:r1 - r0], tap[:r1 - r0]
        np.multiply(src[indices[r0:r1, 0]], weights[r0:r1, :1], out=block)  # uint8 or float32 -> float64 exactly
        for k in range(1, taps):
            np.multiply(src[indices[r0:r1, k]], weights[r0:r1, k:k + 1], out=term)
            block += term
        if rounding:
            block += 0.5
            np.floor(block, out=block)
            np.clip(block, 0, 255, out=block)
        out[r0:r1] = block
    return out


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    in_len = img.shape[axis]
    weights, indices = contributions(in_len, out_len, scale, antialiasing)
    rounding = img.dtype == np.uint8
    out_dtype = np.uint8 if rounding else img.dtype if np.issubdtype(img.dtype, np.floating) else np.float64
    # the resized axis first and contiguous, so each tap gathers whole rows
    src = np.ascontiguousarray(np.swapaxes(img, 0, axis))
    out = _resize_rows(src.reshape(in_len, -1), weights, indices, out_dtype, rounding)
    return np.ascontiguousarray(np.swapaxes(out.reshape((out_len,) + src.shape[1:]), 0, axis))


def imresize(img: np.ndarray, scale: float = None, output_shape: Tuple[int, int] = None,
             antialiasing: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB ``imresize(img, scale, 'bicubic')``.

    ``scale`` is the factor (e.g. ``1/3`` to shrink by 3, ``4`` to enlarge by 4); the
    output size is ``ceil(size * scale)`` unless ``output_shape`` (H, W) is given.
    uint8 images stay uint8 with MATLAB's rounding after each pass; float images stay float.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an HxW or HxWxC image, got shape {img.shape}")
    if scale is None and output_shape is None:
        raise ValueError("imresize needs a scale or an output_shape")
    h, w = img.shape[:2]
    if output_shape is None:
        output_shape = (int(np.ceil(h * scale - 1e-9)), int(np.ceil(w * scale - 1e-9)))
        scales = (scale, scale)
    else:
        scales = (output_shape[0] / h, output_shape[1] / w) if scale is None else (scale, scale)
    if not (np.issubdtype(img.dtype, np.floating) or img.dtype == np.uint8):
        raise TypeError(f"imresize supports uint8 and float images, got {img.dtype}")
    # MATLAB resizes the dimension with the smaller scale first; for equal scales, rows first.
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    out = img
    for axis in order:
        out = _resize_axis(out, axis, output_shape[axis], scales[axis], antialiasing)
    return out


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """The SR degradation: MATLAB bicubic shrink by an integer ``factor`` (image must be a multiple)."""
    h, w = img.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"image of {w}x{h} is not a multiple of the scale {factor}; modcrop it first")
    return imresize(img, 1.0 / factor, output_shape=(h // factor, w // factor))


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """MATLAB bicubic enlargement by an integer ``factor``."""
    h, w = img.shape[:2]
    return imresize(img, float(factor), output_shape=(h * factor, w * factor))


def modcrop(img: np.ndarray, factor: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``factor`` (the standard protocol)."""
    h, w = img.shape[:2]
    return img[: h - h % factor, : w - w % factor]
