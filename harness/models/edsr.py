"""EDSR-baseline (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017) on the Y channel, ids ``EDSR_s{2,3,4}``: the reference network GhostSR is applied to.

The baseline configuration of the authors' EDSR-PyTorch, with its module names (so a checkpoint
of the same shapes loads as is): ``head.0`` conv 3x3 1->64; ``body.0..15`` ResBlocks
(``body.i.body.{0,2}``: conv-ReLU-conv, res_scale 1, no batch norm); ``body.16`` conv 3x3; a long
skip from the head; ``tail.0`` the upsampler (x2, x3: conv 64->64*s*s + PixelShuffle(s); x4: two
x2 stages, as EDSR does) and ``tail.1`` conv 3x3 64->1. All convs have a bias and zero padding 1.

One change for the harness's Y input in [0, 1]: no MeanShift (EDSR subtracts the DIV2K RGB mean
from 0..255 input; a single [0, 1] channel needs no such centring for a network trained on it).
PyTorch's default initialisation (the authors add none); there are no official Y weights.
1.37M parameters at x2 (the RGB baseline's count, within the 1- vs 3-channel head and tail).
"""
from __future__ import annotations

import functools
import re
from types import SimpleNamespace

from ..errors import HarnessError
from .base import TorchUpscaler

PATTERN = re.compile(r"EDSR_s(?P<scale>[234])")
DESCRIPTION = "EDSR-baseline (CVPRW 2017): 16 ResBlocks, 64 features, PixelShuffle upsampler, Y channel"
NUM_FEAT, NUM_BLOCK = 64, 16


@functools.lru_cache(maxsize=None)
def _nets() -> SimpleNamespace:
    from torch import nn

    def conv3(cin: int, cout: int):
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

    classes = dict(ResBlock=ResBlock, Upsampler=Upsampler, EDSR=EDSR)
    for name, cls in classes.items():  # importable by name, so that modules pickle
        cls.__qualname__ = name
        cls.__module__ = __name__
    return SimpleNamespace(**classes)


def __getattr__(name: str):
    """Module-level access to the lazily defined network classes (PEP 562)."""
    if name in ("ResBlock", "Upsampler", "EDSR"):
        return getattr(_nets(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scale_of(model_id: str) -> int:
    m = PATTERN.fullmatch(model_id)
    if m is None:
        raise HarnessError(f"'{model_id}' is not an EDSR id (use EDSR_s2, EDSR_s3 or EDSR_s4)")
    return int(m.group("scale"))


def build_module(model_id: str):
    """The ``nn.Module`` of ``model_id`` with PyTorch's default initialisation."""
    return _nets().EDSR(scale_of(model_id)).eval()


def wrap(model_id: str, module, weights: str = "init") -> TorchUpscaler:
    return TorchUpscaler(module, id=model_id, family="EDSR", scale=scale_of(model_id), input_space="y",
                         weights=weights)


def build_from_match(match: "re.Match", scale: int) -> TorchUpscaler:
    """The registry's ``build(match, scale)``; the id fixes the scale."""
    return wrap(match.group(0), build_module(match.group(0)))


def ids(scale: int):
    return [f"EDSR_s{scale}"]


def load_weights(model_id: str, choice: str, model: TorchUpscaler):
    """A state-dict file trained by the harness; there are no official Y-channel EDSR weights."""
    from .custom import load_weights as load_state_dict_file

    if choice == "official":
        raise HarnessError(f"{model_id} has no official weights (EDSR's published ones are RGB); "
                           f"pass --weights FILE (a state dict trained for {model_id}) or init")
    return load_state_dict_file(model_id, choice, model)
