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
  :func:`_resize_like` passes the input's ``shape`` straight through, which the exporter keeps
  as ``Shape -> Slice -> Concat -> Resize(sizes=...)``; tests/test_bsrn.py checks the graph
  and runs it at other sizes. ``scale_factor`` is *not* an equivalent: the strided conv and
  the 7/3 max-pool floor the size, so the true ratio changes with the input size (and
  PyTorch's size-based and factor-based bilinear grids differ).
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
NUM_FEAT, NUM_BLOCK = 64, 8


def _torch():
    import torch
    import torch.nn.functional as F
    from torch import nn

    return torch, nn, F


def _classes():
    """The network classes, built lazily so importing the zoo does not import torch."""
    if "BSRN" in _CACHE:
        return _CACHE
    torch, nn, F = _torch()

    class BSConvU(nn.Module):
        """Blueprint separable conv, unconstrained: pointwise (no bias) then depthwise."""

        def __init__(self, cin, cout, kernel_size=3, stride=1, padding=1):
            super().__init__()
            self.pw = nn.Conv2d(cin, cout, 1, bias=False)
            self.dw = nn.Conv2d(cout, cout, kernel_size, stride, padding, groups=cout, bias=True)

        def forward(self, x):
            return self.dw(self.pw(x))

    class CCALayer(nn.Module):
        """Contrast-aware channel attention: (std + mean over H, W) -> squeeze/excite."""

        def __init__(self, channel, reduction=16):
            super().__init__()
            self.conv_du = nn.Sequential(
                nn.Conv2d(channel, channel // reduction, 1), nn.ReLU(inplace=True),
                nn.Conv2d(channel // reduction, channel, 1), nn.Sigmoid())

        def forward(self, x):
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)
            return x * self.conv_du(std + mean)

    def _resize_like(y, ref):
        """Bilinear (half-pixel) resize of ``y`` to ``ref``'s H, W, kept dynamic in ONNX."""
        return F.interpolate(y, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    class ESA(nn.Module):
        """Enhanced spatial attention: 1x1 squeeze, strided conv + max-pool, convs, resize back."""

        def __init__(self, num_feat):
            super().__init__()
            f = num_feat // 4
            self.conv1 = nn.Conv2d(num_feat, f, 1)
            self.conv_f = nn.Conv2d(f, f, 1)
            self.maxPooling = nn.MaxPool2d(kernel_size=7, stride=3)
            self.conv_max = BSConvU(f, f, 3)
            self.conv2 = BSConvU(f, f, 3, 2, 0)
            self.conv3 = BSConvU(f, f, 3)
            self.conv3_ = BSConvU(f, f, 3)
            self.conv4 = nn.Conv2d(f, num_feat, 1)
            self.sigmoid = nn.Sigmoid()
            self.GELU = nn.GELU()

        def forward(self, x):
            c1_ = self.conv1(x)
            v_max = self.maxPooling(self.conv2(c1_))
            v_range = self.GELU(self.conv_max(v_max))
            c3 = self.conv3_(self.GELU(self.conv3(v_range)))
            c3 = _resize_like(c3, x)
            return x * self.sigmoid(self.conv4(c3 + self.conv_f(c1_)))

    class ESDB(nn.Module):
        """Efficient separable distillation block: 3 distill/refine steps (BSRB), fuse, ESA, CCA."""

        def __init__(self, c):
            super().__init__()
            dc = c // 2
            self.c1_d = nn.Conv2d(c, dc, 1)
            self.c1_r = BSConvU(c, c, 3)
            self.c2_d = nn.Conv2d(c, dc, 1)
            self.c2_r = BSConvU(c, c, 3)
            self.c3_d = nn.Conv2d(c, dc, 1)
            self.c3_r = BSConvU(c, c, 3)
            self.c4 = BSConvU(c, dc, 3)
            self.act = nn.GELU()
            self.c5 = nn.Conv2d(dc * 4, c, 1)
            self.esa = ESA(c)
            self.cca = CCALayer(c)

        def forward(self, x):
            d1 = self.act(self.c1_d(x))
            r1 = self.act(self.c1_r(x) + x)
            d2 = self.act(self.c2_d(r1))
            r2 = self.act(self.c2_r(r1) + r1)
            d3 = self.act(self.c3_d(r2))
            r3 = self.act(self.c3_r(r2) + r2)
            r4 = self.act(self.c4(r3))
            out = self.c5(torch.cat([d1, d2, d3, r4], dim=1))
            return self.cca(self.esa(out)) + x

    class UpsampleOneStep(nn.Sequential):
        def __init__(self, scale, num_feat, num_out_ch):
            super().__init__(nn.Conv2d(num_feat, scale * scale * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))

    class PixelShuffleDirect(nn.Module):
        """Kept as a wrapper only for the official key names (``upsampler.upsampleOneStep.0``)."""

        def __init__(self, scale, num_feat, num_out_ch):
            super().__init__()
            self.upsampleOneStep = UpsampleOneStep(scale, num_feat, num_out_ch)

        def forward(self, x):
            return self.upsampleOneStep(x)

    class BSRN(nn.Module):
        """The network: RGB repeated 4x on channels, BSConv head, 8 ESDBs, 1x1 fusion, PixelShuffle."""

        def __init__(self, scale=4, num_feat=NUM_FEAT, num_block=NUM_BLOCK, num_in_ch=3, num_out_ch=3):
            super().__init__()
            self.scale = scale
            self.in_channels = num_in_ch  # the first conv sees 4x this (the repeated input)
            self.fea_conv = BSConvU(num_in_ch * 4, num_feat, 3)
            for i in range(1, num_block + 1):  # B1..B8: the official attribute names
                setattr(self, f"B{i}", ESDB(num_feat))
            self.num_block = num_block
            self.c1 = nn.Conv2d(num_feat * num_block, num_feat, 1)
            self.GELU = nn.GELU()
            self.c2 = BSConvU(num_feat, num_feat, 3)
            self.upsampler = PixelShuffleDirect(scale, num_feat, num_out_ch)

        def forward(self, x):
            fea = self.fea_conv(torch.cat([x, x, x, x], dim=1))
            outs, h = [], fea
            for i in range(1, self.num_block + 1):
                h = getattr(self, f"B{i}")(h)
                outs.append(h)
            trunk = self.GELU(self.c1(torch.cat(outs, dim=1)))
            return self.upsampler(self.c2(trunk) + fea)

    _CACHE.update(BSConvU=BSConvU, CCALayer=CCALayer, ESA=ESA, ESDB=ESDB, BSRN=BSRN)
    return _CACHE


_CACHE: dict = {}


def scale_of(model_id: str) -> int:
    m = PATTERN.fullmatch(model_id)
    if m is None:
        raise HarnessError(f"'{model_id}' is not a BSRN id (use BSRN_s2, BSRN_s3 or BSRN_s4)")
    return int(m.group("scale"))


def build_module(model_id: str):
    """The ``nn.Module`` of ``model_id`` with PyTorch's default initialisation."""
    return _classes()["BSRN"](scale=scale_of(model_id)).eval()


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
