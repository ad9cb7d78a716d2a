"""The eSR pool's networks (:mod:`harness.models.esr` has the ids, the state-dict layout and the init).

Module attribute names, ``nn.Sequential`` indices, paddings and bias flags follow the published
``<id>.model`` files (pnavarre/eSR), so they load with ``strict=True``. The Y input is
(N, 1, H, W); outputs are (N, 1, sH, sW), never clamped.
"""
from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = None

def edge_filter(channels_out: int, kernel: int):
    """The attention heads' one KxK conv from the Y channel, no bias, padding (K-1)//2."""
    return nn.Conv2d(1, channels_out, kernel, padding=(kernel - 1) // 2, bias=False)


class EdgeSRMax(nn.Module):
    """eSR-MAX: each HR pixel is the max of C linear filters of the LR neighbourhood."""

    def __init__(self, scale: int, kernel: int, channels: int):
        super().__init__()
        self.scale, self.kernel, self.channels = scale, kernel, channels
        self.filter = edge_filter(scale * scale * channels, kernel)
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.pixel_shuffle(self.filter(x)).max(dim=1, keepdim=True)[0]


class EdgeSRTM(nn.Module):
    """eSR-TM: C value filters blended by a softmax over C key filters (template matching)."""

    def __init__(self, scale: int, kernel: int, channels: int):
        super().__init__()
        self.scale, self.kernel, self.channels = scale, kernel, channels
        self.filter = edge_filter(2 * scale * scale * channels, kernel)
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        value, key = torch.split(self.pixel_shuffle(self.filter(x)), self.channels, dim=1)
        return torch.sum(value * torch.softmax(key, dim=1), dim=1, keepdim=True)


class EdgeSRTR(nn.Module):
    """eSR-TR: like TM with the softmax over query*key (a one-layer transformer)."""

    def __init__(self, scale: int, kernel: int, channels: int):
        super().__init__()
        self.scale, self.kernel, self.channels = scale, kernel, channels
        self.filter = edge_filter(3 * scale * scale * channels, kernel)
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        value, query, key = torch.split(self.pixel_shuffle(self.filter(x)), self.channels, dim=1)
        return torch.sum(value * torch.softmax(query * key, dim=1), dim=1, keepdim=True)


class EdgeSRCNN(nn.Module):
    """eSR-CNN: a small tanh CNN produces the value/key pairs; softmax over key squared."""

    def __init__(self, scale: int, channels: int, d: int, s2: int):
        super().__init__()
        self.scale, self.channels = scale, channels
        self.filter = nn.Sequential(
            nn.Conv2d(1, d, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(d, s2, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(s2, 2 * scale * scale * channels, 3, padding=1, bias=False),
            nn.PixelShuffle(scale),
        )

    def forward(self, x):
        value, key = torch.split(self.filter(x), self.channels, dim=1)
        return torch.sum(value * torch.softmax(key * key, dim=1), dim=1, keepdim=True)


class ESPCN(nn.Module):
    """ESPCN as in the eSR pool (tanh, PixelShuffle, sigmoid); D = 0 is the 2-conv variant."""

    def __init__(self, scale: int, d: int, s2: int):
        super().__init__()
        self.scale = scale
        head = [nn.Conv2d(1, s2, 3, padding=1), nn.Tanh()] if d == 0 else [
            nn.Conv2d(1, d, 5, padding=2), nn.Tanh(), nn.Conv2d(d, s2, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*head, nn.Conv2d(s2, scale * scale, 3, padding=1),
                                 nn.PixelShuffle(scale), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


class FSRCNN(nn.Module):
    """FSRCNN as in the eSR pool: shrink/map/expand with PReLU, 9x9 transposed conv of stride s."""

    def __init__(self, scale: int, d: int, s2: int, m: int):
        super().__init__()
        self.scale = scale
        layers = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(), nn.Conv2d(d, s2, 1), nn.PReLU()]
        for _ in range(m):
            layers += [nn.Conv2d(s2, s2, 3, padding=1), nn.PReLU()]
        layers += [nn.Conv2d(s2, d, 1), nn.PReLU(),
                   nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=(9 - 1 - scale) // 2 + 1,
                                      output_padding=(scale + 1) % 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class OfficialBicubic(nn.Module):
    """The authors' bicubic deconvolution (zero-padded borders, x3 off MATLAB's grid); its kernel is
    :func:`harness.models.esr.official_bicubic_kernel` (set by :func:`harness.models.esr.init_weights`)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        size = 4 * scale + 3
        self.net = nn.ConvTranspose2d(1, 1, size, stride=scale, padding=(3 * scale + 2) // 2 + 1,
                                      output_padding=(scale + 1) % 2, bias=False)

    def forward(self, x):
        return self.net(x)
