"""The ClassSR module (PyTorch; imported when a network is built, never by the zoo listing).

Classifier (:mod:`.classifier`) + three eSR-pool FSRCNN branches (``esr.FSRCNN``, PReLU, 9x9
deconvolution) with d = 16, 36, 56, s = 12, m = 4, over the 32x32 LR patches of :mod:`.routing`.

Inference (``eval()``, :meth:`ClassSR.route`): every patch goes to the branch of its argmax; all
patches routed to one branch run as one batch (one call per branch per forward), and the HR
patches are stitched back as sum / count (overlaps averaged). Every routed forward stores
``last_routing`` on the module (:func:`.routing.routing_stats`). On the meta device (static
counting, ``zoo list``) every patch goes to the largest branch: the static count is the worst
case, classifier included. Training (``train()``, :meth:`ClassSR.soft`) instead blends the three
branch outputs of every patch with the probabilities (the authors' training forward) and returns
``(sr, probs)``; the trainer's hooks (``training_loss``, ``trainable_parameters``) are on the class.

Tracing the routed module (``torch.onnx.export`` of the whole ``ClassSR``) is refused: its routing
is data-dependent and a trace would freeze one routing into the graph; its parts export with
:func:`harness.export.export_classsr_parts` and run with :class:`harness.backends.classsr_onnx.ClassSROnnx`.

The classes are defined at module level, so modules pickle by name
(``harness.models.classsr.networks.ClassSR``); the package keeps resolving the names pickled
before the split (``harness.models.classsr.ClassSR``, ...) through its ``__getattr__``.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from ..nets import torchless as nn
    torch = F = None

from ...errors import HarnessError
from .. import esr
from .classifier import Classifier
from .loss import DIVERGED_LOSS, LOSS_NAME, classsr_loss
from .routing import coverage, padded_hw, patch_grid, patch_macs, routing_stats
from .spec import BRANCH_IDS, MODEL_ID, PATCH, SCALE, STRIDE


class ClassSR(nn.Module):
    """Classifier + three FSRCNN branches; routed (eval) or probability-blended (train) over patches."""

    def __init__(self, patch: int = PATCH, stride: int = STRIDE):
        super().__init__()
        self.scale = SCALE
        self.patch, self.stride = patch, stride
        self.branch_ids = BRANCH_IDS
        self.classifier = Classifier(len(self.branch_ids))
        self.branches = nn.ModuleList([esr.build_module(b) for b in self.branch_ids])
        self.largest = int(np.argmax(patch_macs(patch)["branches"]))  # also warms the MACs cache
        self.last_routing: Optional[Dict[str, object]] = None

    # the pipeline: patches -> (classify) -> branches -> stitch
    def _patches(self, x):
        n, c, h, w = x.shape
        hp, wp = padded_hw(h, w, self.patch)
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
        grid = patch_grid(hp, wp, self.patch, self.stride)
        p = self.patch
        patches = torch.stack([x[:, :, y:y + p, x0:x0 + p] for y, x0 in grid], dim=1)
        return patches.reshape(n * len(grid), c, p, p), grid, (hp, wp)

    def _stitch(self, hr, n, grid, padded, hw):
        s, sp = self.scale, self.scale * self.patch
        hr = hr.reshape((n, len(grid)) + tuple(hr.shape[1:]))
        hp, wp = padded
        out = hr.new_zeros(n, hr.shape[2], s * hp, s * wp)
        for k, (y, x0) in enumerate(grid):
            out[:, :, s * y:s * y + sp, s * x0:s * x0 + sp] += hr[:, k]
        count = torch.from_numpy(np.array(coverage(hp, wp, s, self.patch, self.stride)))
        out = out / count.to(device=out.device, dtype=out.dtype)
        return out[:, :, :s * hw[0], :s * hw[1]]

    def _refuse_trace(self):
        if torch.jit.is_tracing():
            raise HarnessError(f"{MODEL_ID} routes patches by data and cannot be traced into one graph; "
                               f"export it with harness.export.export_classsr_parts (classifier + "
                               f"branches) and run it with harness.backends.classsr_onnx.ClassSROnnx")

    def route(self, x):
        """(sr, probs, labels): each patch through its argmax branch, one batch per branch."""
        self._refuse_trace()
        n = x.shape[0]
        patches, grid, padded = self._patches(x)
        probs = torch.softmax(self.classifier(patches), dim=1)
        if patches.device.type == "meta":  # static MAC counting: the worst case, every patch to the largest
            labels = torch.full((patches.shape[0],), self.largest, dtype=torch.long, device=patches.device)
            hr = self.branches[self.largest](patches)
        else:
            labels = probs.argmax(dim=1)
            hr = None
            for i, branch in enumerate(self.branches):
                idx = (labels == i).nonzero(as_tuple=True)[0]
                if idx.numel() == 0:
                    continue
                y = branch(patches.index_select(0, idx))
                if hr is None:
                    hr = y.new_zeros((patches.shape[0],) + tuple(y.shape[1:]))
                hr.index_copy_(0, idx, y)
            self.last_routing = routing_stats(labels.cpu().numpy(), n, tuple(x.shape[2:]),
                                              self.patch, self.stride)
        return self._stitch(hr, n, grid, padded, tuple(x.shape[2:])), probs, labels

    def soft(self, x):
        """(sr, probs): every patch through all branches, blended by its probabilities (training)."""
        self._refuse_trace()
        n = x.shape[0]
        patches, grid, padded = self._patches(x)
        probs = torch.softmax(self.classifier(patches), dim=1)
        hr = sum(probs[:, i, None, None, None] * branch(patches) for i, branch in enumerate(self.branches))
        return self._stitch(hr, n, grid, padded, tuple(x.shape[2:])), probs

    def forward(self, x):
        """eval: the routed SR image (N, 1, 4H, 4W); train: ``(sr, probs)`` of :meth:`soft`."""
        if self.training:
            return self.soft(x)
        return self.route(x)[0]

    # The trainer's hooks (harness.train): the authors' loss on the blended forward, and the
    # classifier alone trained (their ``fix_SR_module: true``; the branches come trained).
    loss_name = LOSS_NAME
    diverged_loss = DIVERGED_LOSS

    def training_loss(self, lr, hr):
        """``(loss, parts)`` of a batch of LR patches (N, 1, 32, 32) and HR patches (N, 1, 128, 128):
        :func:`.loss.classsr_loss` of :meth:`soft`, parts ``l1``, ``class``, ``average`` (unweighted) and ``total``."""
        sr, probs = self.soft(lr)
        return classsr_loss(sr, hr, probs)

    def trainable_parameters(self):
        """The classifier's parameters; the trainer freezes the rest (the three branches)."""
        return list(self.classifier.parameters())
