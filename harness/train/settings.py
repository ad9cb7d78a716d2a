"""What a training run does (:class:`Settings`, recorded in last.pt and the provenance), filled in
from the family's recipe (:func:`for_family`, :func:`patch_for`, :func:`lr_for`), the device check,
and the loss settings: ``--loss`` and the border of a patch left out of the loss (:func:`loss_border`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import HarnessError
from .recipes import default_patch, recipe_for

LOSSES = ("l1", "mse")


@dataclass
class Settings:
    """What a training run does; recorded in last.pt and the provenance JSON."""

    data: List[str]
    steps: Optional[int] = None  # None: the family's recipe (RECIPES)
    batch: Optional[int] = None  # None: the family's recipe (RECIPES)
    patch: Optional[int] = None  # None: DEFAULT_PATCH rounded down to a multiple of the scale
    lr: Optional[float] = None   # None: the family's default (DEFAULT_LR)
    min_lr: float = 1e-5
    seed: int = 0
    threads: Optional[int] = None
    device: str = "cpu"  # where the network trains: cpu, cuda or cuda:N (validation follows the module)
    val_every: int = 1000
    val_data: Optional[str] = None
    val_set: str = "Set5"
    checkpoint_every: int = 1000
    scale: Optional[int] = None  # the scale of scale-free ids (package.module:Class), from --scale
    init_weights: Optional[str] = None  # --init-weights: FILE, shipped, official (None: the module's init)
    loss: Optional[str] = None  # l1 or mse; None: the family's recipe (l1 where the recipe names none)
    loss_border: Optional[str] = None  # HR pixels left out of the loss a side: auto, off, N; None: the recipe's

    def check(self) -> None:
        if self.loss_border is not None:
            parse_loss_border(self.loss_border)
        if self.loss is not None and self.loss not in LOSSES:
            raise HarnessError(f"--loss {self.loss}: give one of {', '.join(LOSSES)}")
        for name in ("steps", "batch", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise HarnessError(f"--{name.replace('_', '-')} {getattr(self, name)}: give a positive integer")
        if self.patch is not None and self.patch < 2:
            raise HarnessError(f"--patch {self.patch}: give a patch of at least 2 HR pixels, e.g. --patch 64")
        if self.val_every < 0:
            raise HarnessError(f"--val-every {self.val_every}: give a step count (0 turns validation off)")
        if self.threads is not None and self.threads < 1:
            raise HarnessError(f"--threads {self.threads}: give a positive integer")
        check_device(self.device)
        if self.scale is not None and self.scale < 1:
            raise HarnessError(f"--scale {self.scale}: give a scale such as 2, 3 or 4")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise HarnessError(f"--lr {self.lr}: give a positive learning rate such as 1e-3")
        if not self.min_lr >= 0:
            raise HarnessError(f"--min-lr {self.min_lr}: give a learning rate >= 0 such as 1e-5")


def check_device(device: str) -> None:
    """A one-line error for a device torch cannot train on here (before any work starts)."""
    import re

    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", str(device)):
        raise HarnessError(f"--device {device}: give cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise HarnessError(f"--device {device}: torch {torch.__version__} sees no CUDA device here "
                           f"(a CPU-only build, or no GPU); train with --device cpu")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise HarnessError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")


def patch_for(settings: Settings, model_id: str, scale: int, family: Optional[str] = None) -> int:
    if settings.patch is None:
        if family is None:
            from ..models.registry import family_name

            family = family_name(model_id)
        return default_patch(family, scale, model_id)
    if settings.patch % scale:
        lo = settings.patch // scale * scale
        raise HarnessError(f"--patch {settings.patch} is not a multiple of the scale {scale} of {model_id}; "
                           f"use --patch {lo} or {lo + scale}")
    return settings.patch


def for_family(settings: Settings, family: str, model_id: Optional[str] = None) -> Settings:
    """``settings`` with the unset steps/batch/lr filled in from the family's recipe."""
    from dataclasses import replace

    recipe = recipe_for(family, model_id)
    return replace(settings, steps=settings.steps or recipe["steps"], batch=settings.batch or recipe["batch"],
                   lr=settings.lr if settings.lr is not None else recipe["lr"],
                   loss=settings.loss or recipe.get("loss", "l1"),
                   loss_border=settings.loss_border or recipe.get("loss_border", "off"))


def lr_for(settings: Settings, family: str, model_id: Optional[str] = None) -> float:
    lr = settings.lr if settings.lr is not None else recipe_for(family, model_id)["lr"]
    if settings.min_lr > lr:
        raise HarnessError(f"--min-lr {settings.min_lr:g} is above the learning rate {lr:g}; lower --min-lr or raise --lr")
    return lr


def parse_loss_border(text: str) -> str:
    """``auto``, ``off`` or a number of HR pixels, as --loss-border takes it (HarnessError otherwise)."""
    text = str(text).strip().lower()
    if text in ("auto", "off") or (text.isdigit() and int(text) >= 0):
        return text
    raise HarnessError(f"--loss-border {text}: give auto, off or a number of HR pixels such as 6")


def receptive_radius(module, channels: int, lr_patch: int, scale: int, device: str = "cpu") -> Optional[int]:
    """How many LR pixels either side of an output's own LR pixel the network reads (its receptive
    radius), found by back-propagating the centre s x s output block of a random patch to its input.

    Exact for convolutional nets (a tap outside the field gets a gradient of exactly 0); None when
    the field spans the whole patch (global pooling, attention) or the probe cannot run.
    """
    import torch

    p = int(lr_patch)
    c = p // 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        x = torch.rand(1, channels, p, p, device=device, requires_grad=True)
        try:
            with torch.enable_grad():
                out = module(x)
                if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[-1] != p * scale:
                    return None
                out[..., c * scale:(c + 1) * scale, c * scale:(c + 1) * scale].sum().backward()
        except RuntimeError:
            return None
        finally:
            module.zero_grad(set_to_none=True)
    grad = x.grad
    if grad is None:
        return None
    rows, cols = torch.nonzero(grad[0].abs().sum(0) > 0, as_tuple=True)
    if rows.numel() == 0:
        return None
    radius = int(max((rows - c).abs().max(), (cols - c).abs().max()))
    return None if radius >= c else radius


def loss_border(setting: str, module, channels: int, lr_patch: int, scale: int, device: str = "cpu") -> Dict:
    """The HR pixels cropped from each side of the output and target before the loss, and why.

    A small patch's outer pixels see the convolutions' zero padding where a whole image has
    picture: a few-tap net (eSR-MAX_s2_K3, 9 taps per output) fits that artificial border as
    hard as the interior. Measured: the least-squares 3x3 filters of eSR-MAX_s2_K3_C1 fitted
    on 32x32 LR patches score 30.07 dB on Set14 with the border in the loss and 30.92 dB
    without it (30.85 when fitted on whole BSD200 images). ``auto`` crops the receptive radius
    (times the scale) where it leaves at least half the patch; deep nets whose field spans
    the patch keep the whole output.
    """
    setting = parse_loss_border(setting)
    if setting == "off":
        return {"hr_pixels": 0, "how": "off"}
    if setting != "auto":
        hr = int(setting)
        if 2 * hr >= lr_patch * scale:
            raise HarnessError(f"--loss-border {hr} crops the whole {lr_patch * scale}-pixel patch; "
                               f"give fewer HR pixels or a bigger --patch")
        return {"hr_pixels": hr, "how": "given"}
    radius = receptive_radius(module, channels, lr_patch, scale, device)
    if radius is None or 4 * radius > lr_patch:
        return {"hr_pixels": 0, "how": "auto", "receptive_radius_lr": radius,
                "why": "the receptive field spans more than a quarter of the LR patch: nothing cropped"}
    return {"hr_pixels": radius * scale, "how": "auto", "receptive_radius_lr": radius}


def crop_border(t, pixels: int):
    """``t`` (N, C, H, W) without ``pixels`` rows/columns on each side."""
    return t if pixels <= 0 else t[..., pixels:-pixels, pixels:-pixels]
