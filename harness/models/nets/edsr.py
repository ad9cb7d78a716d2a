"""EDSR-baseline's network (:mod:`harness.models.edsr` has the ids, the layout and the weights).

The authors' EDSR-PyTorch module names (``head.0``, ``body.0..15``, ``body.16``, ``tail.0``,
``tail.1``), so a checkpoint of the same shapes loads as is; no MeanShift (Y input in [0, 1]).
"""
from __future__ import annotations

try:
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn

NUM_FEAT, NUM_BLOCK = 64, 16


def conv3(cin: int, cout: int):
    """A 3x3 conv with a bias and zero padding 1 (every conv of EDSR)."""
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv plus the identity (res_scale 1: the baseline needs no scaling)."""

    def __init__(self, feat: int):
        super().__init__()
        self.body = nn.Sequential(conv3(feat, feat), nn.ReLU(inplace=True), conv3(feat, feat))

    def forward(self, x):
        return self.body(x) + x


class Upsampler(nn.Sequential):
    """conv to s*s*feat + PixelShuffle(s); x4 as two x2 stages (EDSR's ``Upsampler``)."""

    def __init__(self, scale: int, feat: int):
        stages = [2, 2] if scale == 4 else [scale]
        layers = []
        for s in stages:
            layers += [conv3(feat, s * s * feat), nn.PixelShuffle(s)]
        super().__init__(*layers)


class EDSR(nn.Module):
    """Head conv, ResBlocks + body conv with a long skip, upsampler, tail conv; Y in, Y out."""

    input_space = "y"

    def __init__(self, scale: int, feat: int = NUM_FEAT, blocks: int = NUM_BLOCK, channels: int = 1):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(conv3(channels, feat))
        self.body = nn.Sequential(*[ResBlock(feat) for _ in range(blocks)], conv3(feat, feat))
        self.tail = nn.Sequential(Upsampler(scale, feat), conv3(feat, channels))

    def forward(self, x):
        x = self.head(x)
        return self.tail(self.body(x) + x)
