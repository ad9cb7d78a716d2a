"""Fast forms of the eSR attention heads: reduce over C at LR resolution, then depth-to-space.

The published eSR-MAX/TM/TR/CNN networks apply PixelShuffle to the whole k*C*s*s-channel
filter output and then reduce over the C channels of an HR tensor: the runtime moves every
channel through a DepthToSpace (a 6-D transpose) before throwing C-1 of them away. The
reduction does not care where a pixel sits, so it can run first: filter channel
``c*s*s + phase`` reshaped (a free, contiguous view) to (N, k*C, s*s*H, W) puts channel c on
dim 1 and the phase next to the rows; reducing over dim 1 leaves (N, 1, s*s*H, W), i.e. the
s*s phase planes of the single output channel, which one PixelShuffle(s) of 1 channel
interleaves. Only 4-D tensors appear, so every backend (ONNX Runtime, TensorRT 8 on
JetPack 5) takes it as is.

The softmax is written as exp(key - max_C key) with the normalisation done once per output
pixel (``sum(value * e) / sum(e)``) instead of once per channel: stable for any key
magnitude, and one division instead of C.

:func:`fast_form` shares the original module's conv layers (no copies), so loading weights
into either changes both.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover - the type only; torch is imported where a network is built
    import torch


def _fast_classes():
    import torch
    from torch import nn

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

    FastESRHead.__qualname__ = "FastESRHead"
    FastESRHead.__module__ = __name__
    return FastESRHead


_CLASS = None


def __getattr__(name: str):
    """``FastESRHead`` on first use, so that importing this module does not import torch."""
    global _CLASS
    if name == "FastESRHead":
        if _CLASS is None:
            _CLASS = _fast_classes()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fast_form(module) -> "Optional[torch.nn.Module]":
    """The fast form of an eSR-MAX/TM/TR/CNN ``module`` (same function, shared weights), else None.

    ESPCN, FSRCNN and the bicubic networks have no C-channel reduction to move, so they
    have no fast form and keep their one export.
    """
    from . import esr

    cls = __getattr__("FastESRHead")
    kinds = ((esr.EdgeSRMax, "max"), (esr.EdgeSRTM, "tm"), (esr.EdgeSRTR, "tr"))
    for net, kind in kinds:
        if isinstance(module, net):
            fast = cls(module.filter, module.scale, module.channels, kind)
            break
    else:
        if not isinstance(module, esr.EdgeSRCNN):
            return None
        # filter[:5] is a new Sequential holding the very same conv/tanh modules.
        fast = cls(module.filter[:5], module.scale, module.channels, "cnn")
    return fast.train(module.training)
