"""Bicubic baselines: the classical MATLAB resize, OpenCV's resize, and bicubic as a network.

``Bicubic_s{2,3,4}`` is bicubic written as the SR networks are written (a convolution
producing s*s phases, then PixelShuffle), so it runs through the very same export and
backends as the eSR models and its speed is comparable with theirs. Its weights are Keys'
cubic (a = -0.5) sampled at each phase's exact offset: HR pixel j sits at LR coordinate
(j + 0.5)/s - 0.5, so phase p of LR pixel i is at i + d_p with d_p = (p + 0.5)/s - 0.5
(at x3: -1/3, 0, +1/3). That is MATLAB's upscaling grid; the official eSR ``Bicubic_s3``
weights are half an HR pixel off it.
"""
from __future__ import annotations

import numpy as np

from ..imresize import cubic, upscale
from .base import TorchUpscaler, Upscaler

TAPS = 5  # offsets -2..2 cover the four Keys taps of every phase (|d| <= 0.5)


def phase_offsets(scale: int) -> np.ndarray:
    """Sub-pixel offsets d_p of the s output phases relative to their LR pixel."""
    return (np.arange(scale) + 0.5) / scale - 0.5


def bicubic_phase_kernels(scale: int) -> np.ndarray:
    """(s*s, 1, 5, 5) float64 kernels; channel p_y*s + p_x feeds PixelShuffle's phase (p_y, p_x)."""
    offsets = np.arange(TAPS) - TAPS // 2
    taps_1d = cubic(phase_offsets(scale)[:, None] - offsets[None, :])  # (s, 5): weight of LR pixel i+k
    taps_1d /= taps_1d.sum(axis=1, keepdims=True)
    kernels = taps_1d[:, None, :, None] * taps_1d[None, :, None, :]  # (s, s, 5, 5)
    return kernels.reshape(scale * scale, 1, TAPS, TAPS)


def __getattr__(name: str):
    """``BicubicNet`` (PyTorch) from :mod:`harness.models.nets.bicubic` on first access (PEP 562), so that
    listing ids does not import torch."""
    if name == "BicubicNet":
        from .nets.bicubic import BicubicNet

        return BicubicNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_bicubic_net(scale: int):
    from .nets.bicubic import BicubicNet

    return BicubicNet(scale, bicubic_phase_kernels(scale))


def bicubic_network(scale: int) -> TorchUpscaler:
    return TorchUpscaler(_build_bicubic_net(scale), id=f"Bicubic_s{scale}", family="Bicubic", scale=scale,
                         input_space="y", weights="none")


class MatlabBicubic(Upscaler):
    """MATLAB ``imresize(lr, s, 'bicubic')`` on the uint8 RGB image: the literature's bicubic row."""

    runtime = "numpy"  # what computes it (harness.imresize), on every backend: see quality_runtime()

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        lr8 = np.clip(np.floor(lr * 255.0 + 0.5), 0, 255).astype(np.uint8)
        return upscale(lr8, self.scale).astype(np.float64) / 255.0


class OpenCVBicubic(Upscaler):
    """``cv2.resize(..., INTER_CUBIC)`` (a = -0.75) on uint8 RGB: what many users' scripts do."""

    runtime = "opencv"  # what computes it, on every backend: see quality_runtime()

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        import cv2

        lr8 = np.clip(np.floor(lr * 255.0 + 0.5), 0, 255).astype(np.uint8)
        h, w = lr8.shape[:2]
        out = cv2.resize(lr8, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        return out.astype(np.float64) / 255.0


def matlab_bicubic(scale: int) -> Upscaler:
    return MatlabBicubic(id="bicubic-matlab", family="bicubic-matlab", scale=scale, input_space="rgb")


def opencv_bicubic(scale: int) -> Upscaler:
    return OpenCVBicubic(id="bicubic-opencv", family="bicubic-opencv", scale=scale, input_space="rgb")
