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

import re

from ..errors import HarnessError
from .base import TorchUpscaler

PATTERN = re.compile(r"EDSR_s(?P<scale>[234])")
DESCRIPTION = "EDSR-baseline (CVPRW 2017): 16 ResBlocks, 64 features, PixelShuffle upsampler, Y channel"
_NET_NAMES = ("ResBlock", "Upsampler", "EDSR", "NUM_FEAT", "NUM_BLOCK")


def __getattr__(name: str):
    """The network classes (PyTorch) and their sizes, from :mod:`harness.models.nets.edsr` on first access
    (PEP 562): listing ids stays light, and modules pickled as ``harness.models.edsr.<Class>`` still load."""
    if name in _NET_NAMES:
        from .nets import edsr as nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scale_of(model_id: str) -> int:
    m = PATTERN.fullmatch(model_id)
    if m is None:
        raise HarnessError(f"'{model_id}' is not an EDSR id (use EDSR_s2, EDSR_s3 or EDSR_s4)")
    return int(m.group("scale"))


def build_module(model_id: str):
    """The ``nn.Module`` of ``model_id`` with PyTorch's default initialisation."""
    from .nets.edsr import EDSR

    return EDSR(scale_of(model_id)).eval()


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
