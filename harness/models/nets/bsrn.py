"""BSRN's network (:mod:`harness.models.bsrn` has the ids, the two export-friendly changes and the weights).

The official ``basicsr/archs/BSRN_arch.py`` (xiaom233/BSRN, MIT) with the same module names, so
the official BasicSR checkpoints load with ``strict=True``: BSConv-U convolutions, 64 features,
8 ESDB blocks, ``pixelshuffledirect`` upsampler.
"""
from __future__ import annotations

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = F = None

NUM_FEAT, NUM_BLOCK = 64, 8


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


def resize_like(y, ref):
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
        c3 = resize_like(c3, x)
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
    """conv 3x3 to s*s*out channels + PixelShuffle(s) (the official ``upsampleOneStep``)."""

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
