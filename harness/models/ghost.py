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

The layer is :class:`harness.models.nets.ghost.GhostConv2d` (PyTorch, imported when a network is
built; ``harness.models.ghost.GhostConv2d`` still names it) and the shift arithmetic
:mod:`harness.models.nets.ghost_shift` (re-exported here); this module is the transform and the zoo entry.
"""
from __future__ import annotations

import copy
import re
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import HarnessError
from . import edsr, esr
from .base import TorchUpscaler, load_state_strict, read_state_dict
from .nets.ghost_shift import CENTER, RATIO, TAU_END, ghost_channels, offset, shift  # noqa: F401 - re-exported

PATTERN = re.compile(r"Ghost-(?P<base>[A-Za-z][A-Za-z0-9-]*_s(?P<scale>[1-9]\d*)(?:_[A-Za-z0-9]+)*)")
DESCRIPTION = ("GhostSR (Nie et al.): half the channels of hidden 3x3 convs are shifted copies of the "
               "other half (learned direction, zero MACs); EDSR, FSRCNN and ESPCN, Y channel")
_BASES = {"EDSR": edsr.PATTERN, "FSRCNN": esr.PATTERNS["FSRCNN"], "ESPCN": esr.PATTERNS["ESPCN"]}
_EXAMPLES = "Ghost-EDSR_s2, Ghost-FSRCNN_s2_D56_S12_M4, Ghost-ESPCN_s2_D34_S32"


def ghostable(conv, ratio: float = RATIO) -> bool:
    """A plain 3x3 conv (stride 1, groups 1) whose output splits into >= 1 intrinsic and >= 1 ghost."""
    from torch import nn

    n_ghost = ghost_channels(conv.out_channels, ratio) if isinstance(conv, nn.Conv2d) else 0
    return (type(conv) is nn.Conv2d and tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1)
            and conv.groups == 1 and 1 <= n_ghost < conv.out_channels)


def __getattr__(name: str):
    """``GhostConv2d`` (PyTorch) from :mod:`harness.models.nets.ghost` on first access (PEP 562):
    listing ids stays light, and modules pickled as ``harness.models.ghost.GhostConv2d`` still load."""
    if name == "GhostConv2d":
        from .nets.ghost import GhostConv2d

        return GhostConv2d
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
    from .nets.ghost import GhostConv2d as Ghost

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
    from .nets.ghost import GhostConv2d

    return {name: m for name, m in module.named_modules() if isinstance(m, GhostConv2d)}


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
