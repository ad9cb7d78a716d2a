"""GhostSR (Nie et al., "GhostSR: Learning Ghost Features for Efficient Image Super-Resolution"):
half of a conv's output channels made by shifting the other half one pixel, at no multiply-add.

:func:`ghostify` replaces chosen 3x3 convolutions (stride 1, groups 1) of any network by a
:class:`GhostConv2d`: an *intrinsic* conv producing ``out - n_ghost`` channels (``n_ghost =
floor(ratio * out)``, ratio 0.5 by default), initialised from the original conv's first output
channels so that a fine-tune starts near the original, followed by ``n_ghost`` *ghost*
channels: intrinsic channel ``j`` (``j mod n_intrinsic`` when ratio > 0.5) shifted one pixel in
one of 9 directions (the 8 neighbours or none), zero-filled at the border. The output is
``cat([intrinsic, ghost])`` in the original channel order, so the next layer is unchanged.

The direction is one per layer, learned from 9 logits: in training the ghost channels are the
mixture of the 9 shifted copies weighted by ``gumbel_softmax(logits, tau, hard)`` (a 3x3
depthwise conv whose kernel is that weight vector, so the logits get a gradient; ``hard=True``
is the straight-through one-hot). The temperature anneals during a fine-tune, exponentially from
``tau`` (1.0) at the first step to ``tau_end`` (:data:`TAU_END`, 0.05) at the last: the trainer
calls each layer's ``training_progress(step, steps)``. Early steps explore the 9 directions with
soft mixtures; by the end the mixture is nearly one-hot, so the network the weights are tuned
for is the one exported with the argmax shift (the authors' code decays the Gumbel noise by 0.97
per epoch over its 300 epochs, to the same end). In eval mode, or after
:meth:`GhostConv2d.freeze`, the direction is ``argmax(logits)`` and the shift is a zero pad plus
a slice: the exported ONNX graph has the same Conv nodes as the original (narrower) and no other
multiply-add.
Direction ``k`` is the offset ``(dy, dx) = (k // 3 - 1, k % 3 - 1)``:
``ghost[y, x] = intrinsic[y + dy, x + dx]``; ``k = 4`` is no shift.

Which convs are transformed by default (:func:`default_select`): the hidden ones. Left as they
are: the network's first conv (the head reading the image: few MACs, and GhostSR keeps it), a
conv feeding a PixelShuffle (its channels are HR sub-pixel phases: a ghost copy would be a
neighbouring phase shifted by a whole LR pixel), and the network's last conv (the output).
First and last are in registration order, which is the data flow in every zoo network.
On EDSR that is the 32 ResBlock convs and the body conv; on FSRCNN the M mapping convs; on ESPCN
(D > 0) the middle conv. Ids: ``Ghost-EDSR_s{s}``, ``Ghost-FSRCNN_...``, ``Ghost-ESPCN_...``
(any id of those eSR-pool families with a layer to transform), all on the Y channel, built
with init weights; :func:`compare_ghost` reports params and MACs before and after.
"""
from __future__ import annotations

import copy
import functools
import re
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import HarnessError
from . import edsr, esr
from .base import TorchUpscaler, load_state_strict, read_state_dict

RATIO = 0.5
TAU_END = 0.05  # the Gumbel-softmax temperature reached at the last fine-tune step
CENTER = 4  # the direction index of "no shift"
PATTERN = re.compile(r"Ghost-(?P<base>[A-Za-z][A-Za-z0-9-]*_s(?P<scale>[1-9]\d*)(?:_[A-Za-z0-9]+)*)")
DESCRIPTION = ("GhostSR (Nie et al.): half the channels of hidden 3x3 convs are shifted copies of the "
               "other half (learned direction, zero MACs); EDSR, FSRCNN and ESPCN, Y channel")
_BASES = {"EDSR": edsr.PATTERN, "FSRCNN": esr.PATTERNS["FSRCNN"], "ESPCN": esr.PATTERNS["ESPCN"]}
_EXAMPLES = "Ghost-EDSR_s2, Ghost-FSRCNN_s2_D56_S12_M4, Ghost-ESPCN_s2_D34_S32"


def offset(direction: int) -> Tuple[int, int]:
    """``(dy, dx)`` of direction ``k`` in 0..8: ``ghost[y, x] = source[y + dy, x + dx]``."""
    return direction // 3 - 1, direction % 3 - 1


def shift(x, direction: int):
    """``x`` (N, C, H, W) shifted by :func:`offset` with zeros coming in: one Pad and one Slice.

    Only the side the content moves away from is padded, so the slices are static (no shape
    arithmetic in the exported graph, which stays valid at every input size).
    """
    import torch.nn.functional as F

    dy, dx = offset(direction)
    if dy == 0 and dx == 0:
        return x
    x = F.pad(x, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)))
    rows = slice(1, None) if dy > 0 else slice(0, -1) if dy < 0 else slice(None)
    cols = slice(1, None) if dx > 0 else slice(0, -1) if dx < 0 else slice(None)
    return x[:, :, rows, cols]


def ghost_channels(out_channels: int, ratio: float) -> int:
    """How many of ``out_channels`` a layer with ``ratio`` makes by shifting: floor(ratio * out)."""
    return int(out_channels * ratio + 1e-9)


def ghostable(conv, ratio: float = RATIO) -> bool:
    """A plain 3x3 conv (stride 1, groups 1) whose output splits into >= 1 intrinsic and >= 1 ghost."""
    from torch import nn

    n_ghost = ghost_channels(conv.out_channels, ratio) if isinstance(conv, nn.Conv2d) else 0
    return (type(conv) is nn.Conv2d and tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1)
            and conv.groups == 1 and 1 <= n_ghost < conv.out_channels)


@functools.lru_cache(maxsize=None)
def _nets() -> SimpleNamespace:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class GhostConv2d(nn.Module):
        """Intrinsic conv + ghost channels (shifted intrinsic ones); see the module docstring.

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

    GhostConv2d.__qualname__ = "GhostConv2d"  # importable by name, so that modules pickle
    GhostConv2d.__module__ = __name__
    return SimpleNamespace(GhostConv2d=GhostConv2d)


def __getattr__(name: str):
    """Module-level access to the lazily defined ``GhostConv2d`` (PEP 562)."""
    if name == "GhostConv2d":
        return _nets().GhostConv2d
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the transform ---------------------------------------------------------------------------
def default_select(net) -> Callable[[str, object], bool]:
    """``select(name, conv)`` for the hidden convs of ``net``: not its first or last conv (in
    registration order), not one feeding a PixelShuffle (next in an ``nn.Sequential``)."""
    from torch import nn

    convs = [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    excluded = set(convs[:1] + convs[-1:])
    for name, m in net.named_modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for (child, a), (_, b) in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.PixelShuffle):
                    excluded.add(f"{name}.{child}" if name else child)
    return lambda name, conv: name not in excluded


def ghostify(module, ratio: float = RATIO, select: Optional[Callable[[str, object], bool]] = None,
             tau: float = 1.0, hard: bool = False, inplace: bool = False):
    """``module`` with every selected 3x3 conv (:func:`ghostable`) replaced by a :class:`GhostConv2d`.

    ``select(name, conv) -> bool`` picks among the ghostable convs (default: :func:`default_select`).
    A copy is transformed unless ``inplace``; the intrinsic convs start from the originals'
    first output channels. Returns the transformed module (its mode kept).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"GhostSR ratio must be in (0, 1), got {ratio}")
    net = module if inplace else copy.deepcopy(module)
    select = select or default_select(net)
    Ghost = _nets().GhostConv2d
    inside = [name for name, m in net.named_modules() if isinstance(m, Ghost)]
    targets = [(name, m) for name, m in net.named_modules()
               if name and ghostable(m, ratio) and not any(name.startswith(g + ".") for g in inside)
               and select(name, m)]
    for name, conv in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, attr, Ghost(conv, ratio=ratio, tau=tau, hard=hard))
    return net


def ghost_layers(module) -> Dict[str, object]:
    """``{name: GhostConv2d}`` of ``module``."""
    Ghost = _nets().GhostConv2d
    return {name: m for name, m in module.named_modules() if isinstance(m, Ghost)}


def freeze(module):
    """Freeze every ghost layer of ``module`` (fixed pad+slice shifts) and return it."""
    for layer in ghost_layers(module).values():
        layer.freeze()
    return module


def directions(module) -> Dict[str, Tuple[int, int]]:
    """``{layer name: (dy, dx)}``: the shift each ghost layer runs with in eval mode."""
    return {name: offset(layer.direction) for name, layer in ghost_layers(module).items()}


# --- the zoo ids -----------------------------------------------------------------------------
def base_id(model_id: str) -> str:
    """``'Ghost-FSRCNN_s2_D56_S12_M4'`` -> ``'FSRCNN_s2_D56_S12_M4'``; one-line HarnessError otherwise."""
    m = PATTERN.fullmatch(model_id)
    if m is None:
        raise HarnessError(f"'{model_id}' is not a GhostSR id (e.g. {_EXAMPLES})")
    base = m.group("base")
    if not any(p.fullmatch(base) for p in _BASES.values()):
        raise HarnessError(f"GhostSR is built for EDSR_s*, FSRCNN_* and ESPCN_* ids, not '{base}' "
                           f"(from {model_id}); e.g. {_EXAMPLES}")
    return base


def scale_of(model_id: str) -> int:
    return int(PATTERN.fullmatch("Ghost-" + base_id(model_id)).group("scale"))


def base_module(base: str):
    """The original network of a base id, freshly initialised (EDSR: PyTorch's; eSR: the authors')."""
    return edsr.build_module(base) if edsr.PATTERN.fullmatch(base) else esr.build_module(base)


def build_module(model_id: str, base=None, ratio: float = RATIO):
    """The ghost network of ``model_id``, from ``base`` (the original module, e.g. with trained
    weights: the fine-tune start) or from a freshly initialised original."""
    b = base_id(model_id)
    net = ghostify(base if base is not None else base_module(b), ratio=ratio).eval()
    if not ghost_layers(net):
        raise HarnessError(f"{b} has no hidden 3x3 conv with 2 or more output channels for GhostSR to "
                           f"transform; pick a wider one, e.g. {_EXAMPLES}")
    return net


def wrap(model_id: str, module, weights: str = "init") -> TorchUpscaler:
    return TorchUpscaler(module, id=model_id, family="GhostSR", scale=scale_of(model_id), input_space="y",
                         weights=weights)


def build_from_match(match: "re.Match", scale: int) -> TorchUpscaler:
    """The registry's ``build(match, scale)``; the id fixes the scale."""
    return wrap(match.group(0), build_module(match.group(0)))


def ids(scale: int) -> List[str]:
    """The listed ids: Ghost-EDSR and the two largest eSR-pool networks (the pattern takes any
    FSRCNN/ESPCN id)."""
    return [f"Ghost-EDSR_s{scale}", f"Ghost-FSRCNN_s{scale}_D56_S12_M4", f"Ghost-ESPCN_s{scale}_D34_S32"]


def load_weights(model_id: str, choice: str, model: TorchUpscaler):
    """A state-dict file: of the ghost network itself (a fine-tune), or of its base network,
    which is then ghostified (the start of a fine-tune). No official weights exist."""
    b = base_id(model_id)
    if choice == "official":
        raise HarnessError(f"{model_id} has no official weights (GhostSR's are not published for {b}); "
                           f"pass --weights FILE (a state dict of {model_id}, or of {b} to ghostify) or init")
    fix = f"give a state dict of {model_id} (or of {b}, saved with torch.save(model.state_dict(), FILE))"
    state = read_state_dict(choice, model_id, fix)
    if not any(k.endswith("logits") for k in state):
        original = base_module(b)
        if set(state) == set(original.state_dict()):
            load_state_strict(original, state, choice, b, fix)
            return build_module(model_id, base=original, ratio=RATIO)
    return load_state_strict(model.module, state, choice, model_id, fix)


# --- before / after ----------------------------------------------------------------------------
def compare_ghost(model_id: str, ratio: float = RATIO, out_hw: Tuple[int, int] = (1080, 1920)) -> Dict[str, object]:
    """Params and MACs per ``out_hw`` output frame of the original and its ghost version.

    ``model_id`` is either id (``EDSR_s2`` or ``Ghost-EDSR_s2``). Counted by
    :func:`harness.models.complexity.complexity` (FlopCounterMode on a meta copy). ``summary``
    reads like ``'-45% params, -45% MACs'``.
    """
    from .complexity import complexity

    ghost_id = model_id if model_id.startswith("Ghost-") else "Ghost-" + model_id
    b = base_id(ghost_id)
    scale = scale_of(ghost_id)
    original = base_module(b)
    ghost = build_module(ghost_id, base=original, ratio=ratio)
    before = complexity(original, scale, out_hw=out_hw, channels=1)
    after = complexity(ghost, scale, out_hw=out_hw, channels=1)
    params_change = after["params"] / before["params"] - 1.0
    macs_change = after["macs_per_fhd"] / before["macs_per_fhd"] - 1.0
    return {
        "original": b, "ghost": ghost_id, "ratio": ratio, "ghost_layers": len(ghost_layers(ghost)),
        "params_before": before["params"], "params_after": after["params"],
        "macs_before": before["macs_per_fhd"], "macs_after": after["macs_per_fhd"],
        "params_change": params_change, "macs_change": macs_change,
        "summary": f"{params_change:+.0%} params, {macs_change:+.0%} MACs",
    }
