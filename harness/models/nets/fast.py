"""The fast eSR attention head (:mod:`harness.models.fast` explains it and builds it: :func:`~harness.models.fast.fast_form`)."""
from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = None


class FastESRHead(nn.Module):
    """filter -> reshape (N, k*C, s*s*H, W) -> reduce over C -> reshape -> PixelShuffle(s).

    ``kind`` is ``'max'`` (eSR-MAX), ``'tm'`` (value x softmax(key)), ``'tr'``
    (value x softmax(query*key)) or ``'cnn'`` (value x softmax(key*key)).
    """

    def __init__(self, filter_module, scale: int, channels: int, kind: str):
        super().__init__()
        self.filter = filter_module  # the original's conv(s): shared, not copied
        self.scale, self.channels, self.kind = scale, channels, kind
        self.groups = {"max": 1, "tm": 2, "tr": 3, "cnn": 2}[kind]
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        s, c = self.scale, self.channels
        y = self.filter(x)  # (N, k*C*s*s, H, W), channel index c*s*s + phase
        n, h, w = y.shape[0], y.shape[2], y.shape[3]
        y = y.reshape(n, self.groups * c, s * s * h, w)
        if self.kind == "max":
            out = torch.amax(y, dim=1, keepdim=True)
        else:
            value = y[:, :c]
            if self.kind == "tm":
                logits = y[:, c:2 * c]
            elif self.kind == "tr":
                logits = y[:, c:2 * c] * y[:, 2 * c:3 * c]
            else:  # cnn
                key = y[:, c:2 * c]
                logits = key * key
            e = torch.exp(logits - torch.amax(logits, dim=1, keepdim=True))
            out = torch.sum(value * e, dim=1, keepdim=True) / torch.sum(e, dim=1, keepdim=True)
        return self.pixel_shuffle(out.reshape(n, s * s, h, w))
