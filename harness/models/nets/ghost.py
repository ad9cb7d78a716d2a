"""GhostSR's layer, :class:`GhostConv2d` (:mod:`harness.models.ghost` describes the method and
transforms networks with it; the shift arithmetic is :mod:`.ghost_shift`).
"""
from __future__ import annotations

from typing import Optional

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = F = None

from .ghost_shift import CENTER, RATIO, TAU_END, ghost_channels, shift


class GhostConv2d(nn.Module):
    """Intrinsic conv + ghost channels (shifted intrinsic ones); see :mod:`harness.models.ghost`.

    ``frozen`` (set by :meth:`freeze`) fixes the direction in training too (a fine-tune of the
    weights after the search); eval mode fixes it as well. The eval direction is cached when
    the module enters eval mode or loads a state dict, so a traced export sees a Python int.
    """

    def __init__(self, conv, ratio: float = RATIO, tau: float = 1.0, hard: bool = False,
                 tau_end: float = TAU_END):
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"GhostSR ratio must be in (0, 1), got {ratio}")
        n_ghost = ghost_channels(conv.out_channels, ratio)
        if not 1 <= n_ghost < conv.out_channels:
            raise ValueError(f"a conv with {conv.out_channels} output channels has no ghost channel at "
                             f"ratio {ratio}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.n_ghost, self.n_intrinsic = n_ghost, conv.out_channels - n_ghost
        if not (tau > 0 and tau_end > 0):
            raise ValueError(f"Gumbel-softmax temperatures must be > 0, got tau={tau}, tau_end={tau_end}")
        self.ratio, self.tau, self.hard = ratio, tau, hard
        self.tau_start, self.tau_end = tau, tau_end
        self.frozen = False
        self._direction: Optional[int] = None
        self.conv = nn.Conv2d(conv.in_channels, self.n_intrinsic, conv.kernel_size, stride=conv.stride,
                              padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None,
                              padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight[:self.n_intrinsic])
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias[:self.n_intrinsic])
        # Zero logits: the search starts uniform over the 9 directions.
        self.logits = nn.Parameter(torch.zeros(9, device=conv.weight.device, dtype=conv.weight.dtype))
        self.train(conv.training)

    @property
    def direction(self) -> int:
        """The fixed direction: ``argmax(logits)`` (cached in eval mode / when frozen)."""
        if self._direction is not None:
            return self._direction
        if self.logits.device.type == "meta":  # a shapes-only copy (complexity): any shift costs the same
            return CENTER
        return int(self.logits.detach().argmax())

    def freeze(self):
        """Fix the direction to ``argmax(logits)`` in every mode and stop its gradient."""
        self.frozen = True
        self.logits.requires_grad_(False)
        self._direction = None
        self._direction = self.direction
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and not self.frozen:
            self._direction = None
        elif self._direction is None or self.logits.device.type != "meta":  # a meta copy keeps its cache
            self._direction = None
            self._direction = self.direction
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._direction = None
        if self.frozen or not self.training:
            self._direction = self.direction

    def training_progress(self, step: int, steps: int) -> None:
        """Set the temperature for training step ``step`` (0-based) of ``steps``: exponential
        from ``tau_start`` to ``tau_end`` (a function of the step, so a resumed run matches)."""
        t = min(max(step, 0), max(steps - 1, 1)) / max(steps - 1, 1)
        self.tau = float(self.tau_start * (self.tau_end / self.tau_start) ** t)

    def _sources(self, y):
        """The intrinsic channel each ghost channel copies: j, or j mod n_intrinsic."""
        if self.n_ghost <= self.n_intrinsic:
            return y[:, :self.n_ghost]
        reps = -(-self.n_ghost // self.n_intrinsic)
        return y.repeat(1, reps, 1, 1)[:, :self.n_ghost]

    def forward(self, x):
        y = self.conv(x)
        src = self._sources(y)
        if self.training and not self.frozen:
            w = F.gumbel_softmax(self.logits, tau=self.tau, hard=self.hard)
            kernel = w.view(1, 1, 3, 3).expand(self.n_ghost, 1, 3, 3)  # k = 3 * (dy + 1) + (dx + 1)
            ghost = F.conv2d(src, kernel, padding=1, groups=self.n_ghost)
        else:
            ghost = shift(src, self.direction)
        return torch.cat([y, ghost], dim=1)

    def extra_repr(self) -> str:
        return (f"ratio={self.ratio}, intrinsic={self.n_intrinsic}, ghost={self.n_ghost}, "
                f"tau={self.tau:g} (from {self.tau_start:g} to {self.tau_end:g}), hard={self.hard}, "
                f"frozen={self.frozen}")
