"""Bicubic as a network (:mod:`harness.models.bicubic` has the grid and computes the kernels).

A fixed-weight 5x5 conv from the Y channel to s*s phases (the kernels of
:func:`harness.models.bicubic.bicubic_phase_kernels`, given to the constructor), then
PixelShuffle(s), after MATLAB's symmetric border padding.
"""
from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = None


class BicubicNet(nn.Module):
    """Bicubic x``scale`` on one channel: symmetric pad, 5x5 conv to s*s phases, PixelShuffle.

    ``kernels``: the (s*s, 1, T, T) float64 phase kernels (T odd; the padding is T // 2), kept frozen.
    """

    def __init__(self, scale: int, kernels):
        super().__init__()
        taps = kernels.shape[-1]
        self.scale = scale
        self.pad = taps // 2
        self.conv = nn.Conv2d(1, scale * scale, taps, bias=False)
        self.conv.weight.data.copy_(torch.from_numpy(kernels).float())
        self.conv.weight.requires_grad_(False)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        p = self.pad
        # MATLAB mirrors the border including the edge pixel ("symmetric"); torch's
        # "reflect" excludes it, so build the padding from flipped slices.
        x = torch.cat([x[:, :, :p].flip(2), x, x[:, :, -p:].flip(2)], dim=2)
        x = torch.cat([x[:, :, :, :p].flip(3), x, x[:, :, :, -p:].flip(3)], dim=3)
        return self.shuffle(self.conv(x))
