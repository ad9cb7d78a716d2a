"""BSRN (Li et al., "Blueprint Separable Residual Network for Efficient Image Super-Resolution",
NTIRE 2022 efficient-SR winner), x2/x3/x4 RGB, ids ``BSRN_s{2,3,4}``.

Re-implemented from the official ``basicsr/archs/BSRN_arch.py`` (xiaom233/BSRN, MIT) with the
same module names, so the official BasicSR checkpoints (``net_g_BSRN_x{s}.pth``, state dict
under ``params``) load with ``strict=True``. Only the published configuration is built:
BSConv-U convolutions, 64 features, 8 ESDB blocks, ``pixelshuffledirect`` upsampler.

Two changes from the official code, both exact in eager PyTorch and there for ONNX export:

* ESA resizes its attention map back to the input size with ``F.interpolate(size=(H, W))``.
  If that size ever becomes Python ints at trace time (``int(...)``, some exporter versions),
  the graph freezes the export size and breaks (broadcast error) at any other input size.
  :func:`harness.models.nets.bsrn.resize_like` passes the input's ``shape`` straight through,
  which the exporter keeps as ``Shape -> Slice -> Concat -> Resize(sizes=...)``;
  tests/models/test_bsrn.py checks the graph and runs it at other sizes. ``scale_factor`` is
  *not* an equivalent: the strided conv and the 7/3 max-pool floor the size, so the true ratio
  changes with the input size (and PyTorch's size-based and factor-based bilinear grids differ).
* CCA's contrast (std + mean over H, W) uses ``mean`` instead of ``sum / (H*W)``: no spatial
  size enters the graph as a number (same values within float rounding; parity 5e-7).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from ..errors import HarnessError
from .base import TorchUpscaler, load_state_strict, read_state_dict

PATTERN = re.compile(r"BSRN_s(?P<scale>[234])")
DESCRIPTION = "BSRN (NTIRE 2022 efficient-SR winner; blueprint separable convs, ESA + CCA attention), RGB"
_NET_NAMES = ("BSConvU", "CCALayer", "ESA", "ESDB", "UpsampleOneStep", "PixelShuffleDirect", "BSRN", "NUM_FEAT",
              "NUM_BLOCK")


def __getattr__(name: str):
    """The network classes (PyTorch) and their sizes, from :mod:`harness.models.nets.bsrn` on first access
    (PEP 562): listing ids stays light, and ``harness.models.bsrn.BSRN`` keeps naming the network."""
    if name in _NET_NAMES:
        from .nets import bsrn as nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scale_of(model_id: str) -> int:
    m = PATTERN.fullmatch(model_id)
    if m is None:
        raise HarnessError(f"'{model_id}' is not a BSRN id (use BSRN_s2, BSRN_s3 or BSRN_s4)")
    return int(m.group("scale"))


def build_module(model_id: str):
    """The ``nn.Module`` of ``model_id`` with PyTorch's default initialisation."""
    from .nets.bsrn import BSRN

    return BSRN(scale=scale_of(model_id)).eval()


def wrap(model_id: str, module, weights: str = "init") -> TorchUpscaler:
    return TorchUpscaler(module, id=model_id, family="BSRN", scale=scale_of(model_id), input_space="rgb",
                         weights=weights)


def build_from_match(match: "re.Match", scale: int) -> TorchUpscaler:
    """The registry's ``build(match, scale)``; the id fixes the scale."""
    return wrap(match.group(0), build_module(match.group(0)))


def ids(scale: int):
    return [f"BSRN_s{scale}"]


def official_filename(model_id: str) -> str:
    return f"net_g_BSRN_x{scale_of(model_id)}.pth"


def load_official(model_id: str, path: Union[str, Path]):
    """The ``nn.Module`` of ``model_id`` with the weights at ``path`` (strict load, one-line errors)."""
    path = Path(path)
    module = build_module(model_id)
    state = read_state_dict(path, model_id, f"give the official {official_filename(model_id)} (xiaom233/BSRN)")
    return load_state_strict(module, state, path, model_id, f"give the official {official_filename(model_id)}")


def load_weights(model_id: str, choice: str, model=None):
    """The registry's weight loader: ``official`` (imported with ``zoo import-bsrn``) or a BSRN checkpoint path."""
    if choice == "official":
        from ..weights import bsrn_official_file

        choice = bsrn_official_file(Path(official_filename(model_id)).stem)
    return load_official(model_id, choice)
