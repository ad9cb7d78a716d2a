"""ITU-R BT.601 colour conversion as used by the SR literature (MATLAB ``rgb2ycbcr``).

Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]; Y in [16, 235] on the
0..255 scale. Kept in float: no rounding, as the standard evaluation protocol requires.
"""
from __future__ import annotations

import numpy as np

_Y = np.array([65.481, 128.553, 24.966])
_CB = np.array([-37.797, -74.203, 112.0])
_CR = np.array([112.0, -93.786, -18.214])
_FWD = np.stack([_Y, _CB, _CR])  # rows: Y, Cb, Cr (per unit RGB in [0, 1])
_OFFSET = np.array([16.0, 128.0, 128.0])
_INV = np.linalg.inv(_FWD)


def _as_unit_float(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    return rgb.astype(np.float64, copy=False)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y on the 0..255 scale (float64) from RGB (uint8, or float in [0, 1]), shape HxWx3 -> HxW."""
    return _as_unit_float(rgb) @ _Y + 16.0


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """YCbCr on the 0..255 scale (float64) from RGB (uint8, or float in [0, 1])."""
    return _as_unit_float(rgb) @ _FWD.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """RGB float in [0, 1] (clipped) from YCbCr on the 0..255 scale."""
    return np.clip((ycbcr - _OFFSET) @ _INV.T, 0.0, 1.0)
