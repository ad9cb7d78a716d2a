"""PSNR and SSIM by the SR field's standard protocol (and RGB PSNR, :func:`psnr_rgb`).

Both on the Y channel in [0, 255] (float, unrounded), with ``crop`` pixels removed from
every border (crop = scale). SSIM is scikit-image's with the settings that reproduce
Wang et al.'s MATLAB ``ssim``: an 11x11 Gaussian window with sigma 1.5, population
covariance, K1 = 0.01, K2 = 0.03, data range 255.
"""
from __future__ import annotations

import numpy as np


def shave(img: np.ndarray, crop: int) -> np.ndarray:
    if crop <= 0:
        return img
    return img[crop:-crop, crop:-crop]


def psnr(reference: np.ndarray, test: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """PSNR in dB; ``inf`` when the images are identical."""
    ref = shave(np.asarray(reference, dtype=np.float64), crop)
    out = shave(np.asarray(test, dtype=np.float64), crop)
    if ref.shape != out.shape:
        raise ValueError(f"PSNR of images of different shapes {ref.shape} and {out.shape}")
    mse = np.mean((ref - out) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(reference: np.ndarray, test: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """Mean SSIM (MATLAB-compatible settings) of two single-channel images."""
    from skimage.metrics import structural_similarity

    ref = shave(np.asarray(reference, dtype=np.float64), crop)
    out = shave(np.asarray(test, dtype=np.float64), crop)
    if ref.shape != out.shape:
        raise ValueError(f"SSIM of images of different shapes {ref.shape} and {out.shape}")
    return float(structural_similarity(ref, out, data_range=data_range, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03))


def psnr_rgb(reference: np.ndarray, test: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """PSNR in dB of two HxWx3 RGB images on [0, 255] over every pixel and channel, ``crop`` border
    pixels removed: the RGB PSNR of the MAI 2021 quantized-SR challenge (where ABPN's 30.22 dB
    FP32 / 30.09 dB INT8 on DIV2K x3 come from), beside the field's Y-channel protocol."""
    ref = np.asarray(reference)
    out = np.asarray(test)
    for img in (ref, out):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"RGB PSNR needs HxWx3 images, got {img.shape}")
    return psnr(ref, out, crop=crop, data_range=data_range)
