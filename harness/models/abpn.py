"""ABPN, the anchor-based plain net (Du et al., MAI 2021 quantized-SR winner), RGB.

conv 3x3 3->28 + ReLU, four conv 3x3 28->28 + ReLU, conv 28->3s^2 + ReLU, conv 3s^2->3s^2;
the *anchor* (each input channel repeated s^2 times, i.e. nearest-neighbour upsampling once
depth-to-space is applied) is added before DepthToSpace, and the output is clipped to [0, 1].
The authors' TensorFlow code concatenates 9 copies of the input and uses TF's depth_to_space
(phase-major channels); PyTorch's PixelShuffle is channel-major, so the same anchor is
``repeat_interleave`` here. 42.5K parameters at x3. A plain conv/ReLU stack with no
normalisation was chosen by its authors because it quantizes to INT8 with little loss.
"""
from __future__ import annotations

from .base import TorchUpscaler

_NET_NAMES = ("ABPN", "FEATURES", "BODY")


def __getattr__(name: str):
    """The network class (PyTorch) and its sizes, from :mod:`harness.models.nets.abpn` on first access
    (PEP 562), so that listing ids does not import torch."""
    if name in _NET_NAMES:
        from .nets import abpn as nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_net(scale: int):
    """The ``nn.Module`` at x``scale`` with PyTorch's default initialisation."""
    from .nets.abpn import ABPN

    return ABPN(scale)


def build(match, scale: int) -> TorchUpscaler:
    return TorchUpscaler(_build_net(scale), id=f"ABPN_s{scale}", family="ABPN", scale=scale, input_space="rgb",
                         weights="init")


def load_weights(model_id: str, choice: str, model: TorchUpscaler):
    """A state-dict file trained by the harness (no official PyTorch weights exist)."""
    from .custom import load_weights as load_state_dict_file

    return load_state_dict_file(model_id, choice, model)
