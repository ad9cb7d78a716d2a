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


def __getattr__(name: str):
    """``FastESRHead`` (PyTorch) from :mod:`harness.models.nets.fast` on first access (PEP 562), so that
    importing this module does not import torch, and modules pickled as ``harness.models.fast.FastESRHead`` load."""
    if name == "FastESRHead":
        from .nets.fast import FastESRHead

        return FastESRHead
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fast_form(module) -> "Optional[torch.nn.Module]":
    """The fast form of an eSR-MAX/TM/TR/CNN ``module`` (same function, shared weights), else None.

    ESPCN, FSRCNN and the bicubic networks have no C-channel reduction to move, so they
    have no fast form and keep their one export.
    """
    from .nets.esr import EdgeSRCNN, EdgeSRMax, EdgeSRTM, EdgeSRTR
    from .nets.fast import FastESRHead

    kinds = ((EdgeSRMax, "max"), (EdgeSRTM, "tm"), (EdgeSRTR, "tr"))
    for net, kind in kinds:
        if isinstance(module, net):
            fast = FastESRHead(module.filter, module.scale, module.channels, kind)
            break
    else:
        if not isinstance(module, EdgeSRCNN):
            return None
        # filter[:5] is a new Sequential holding the very same conv/tanh modules.
        fast = FastESRHead(module.filter[:5], module.scale, module.channels, "cnn")
    return fast.train(module.training)
