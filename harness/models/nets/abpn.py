"""ABPN's network (:mod:`harness.models.abpn` describes it and builds it).

conv 3x3 3->28 + ReLU, four conv 3x3 28->28 + ReLU, conv 28->3s^2 + ReLU, conv 3s^2->3s^2; the
anchor (each input channel repeated s^2 times) added before PixelShuffle; output clipped to [0, 1].
Module names ``body.0..13``, ``shuffle``.
"""
from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = None

FEATURES = 28
BODY = 4


class ABPN(nn.Module):
    """The anchor-based plain net at x``scale``, RGB in, RGB out."""

    input_space = "rgb"

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        out = 3 * scale * scale
        layers = [nn.Conv2d(3, FEATURES, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(BODY):
            layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(FEATURES, out, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(out, out, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        anchor = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        return torch.clamp(self.shuffle(self.body(x) + anchor), 0.0, 1.0)
