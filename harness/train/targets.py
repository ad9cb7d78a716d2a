"""What the trainer trains: the trainable ids (:func:`target`: family, scale, space), their fresh
networks (:func:`fresh_model`), and the refusal of fixed-weight models (:class:`NotTrainable`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import HarnessError
from .data import SPACES

FIXED_FAMILIES = ("eSR-Bicubic",)


class NotTrainable(HarnessError):
    """A model with nothing to train (fixed weights, no parameters): pools skip it."""


@dataclass(frozen=True)
class Target:
    """What the trainer needs to know of a trainable id: its registry family, scale and space."""

    family: str
    scale: int
    space: str  # "y" (1-channel BT.601 Y) or "rgb" (3 channels)


_LEARNABLE_HINT = "give a learnable model such as eSR-TM_s2_K7_C4, ABPN_s2 or BSRN_s2 (python -m harness zoo list)"


def esr_family(model_id: str) -> Optional[str]:
    """The eSR family of an id of the eSR pool (found by its pattern, nothing built), else None."""
    from ..models import esr

    return next((f for f, p in esr.PATTERNS.items() if p.fullmatch(model_id)), None)


def _refuse_fixed_esr(model_id: str, family: str) -> None:
    if family in FIXED_FAMILIES:
        raise NotTrainable(f"{model_id} has fixed weights (the authors' bicubic); nothing to train: {_LEARNABLE_HINT}")


def rng_kept():
    """Runs a block without touching torch's global RNG (building a model to look at it draws weights)."""
    import torch

    return torch.random.fork_rng(devices=[])


def fresh_model(model_id: str, scale: Optional[int] = None):
    """The :class:`~harness.models.base.Upscaler` of ``model_id`` with fresh weights; its ``module``
    is what the trainer trains. eSR ids: :func:`harness.models.esr.build_module` (the authors'
    init); others: the registry's ``resolve(model_id)`` (the module's own init). The initial
    weights come from torch's global RNG (seeded by :func:`harness.train.loop.train_model`). ``scale`` is used for
    scale-free ids only (``package.module:Class``). NotTrainable for fixed-weight models."""
    import torch

    from ..models import esr, id_scale
    from ..models.registry import lookup, resolve

    family = esr_family(model_id)
    if family is not None:
        _refuse_fixed_esr(model_id, family)
        return esr.wrap(model_id, esr.build_module(model_id), weights="init")
    if lookup(model_id).load_weights is None:  # unknown ids: the registry's own message
        raise NotTrainable(f"{model_id} is not trainable (fixed weights, nothing to train); {_LEARNABLE_HINT}")
    model = resolve(model_id, scale=scale if id_scale(model_id) is None else None)
    module = getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module) or not any(p.requires_grad for p in module.parameters()):
        raise NotTrainable(f"{model_id} is not trainable (no nn.Module with learnable weights); {_LEARNABLE_HINT}")
    if model.input_space not in SPACES:
        raise HarnessError(f"{model_id}: input space {model.input_space!r} is not one the trainer knows "
                           f"({', '.join(SPACES)})")
    return model


def target(model_id: str, scale: Optional[int] = None) -> Target:
    """:class:`Target` of a trainable id; one-line errors for fixed (NotTrainable) or unknown ids."""
    from ..models.registry import lookup

    family = esr_family(model_id)
    if family is not None:  # no module built: the eSR pool is 1185 ids
        from ..models import esr

        _refuse_fixed_esr(model_id, family)
        return Target(family, esr.parse(model_id)[1]["scale"], "y")
    with rng_kept():
        model = fresh_model(model_id, scale)
    return Target(lookup(model_id).name, int(model.scale), model.input_space)


def trainable(model_id: str, scale: Optional[int] = None) -> Tuple[str, int]:
    """(family, scale) of a trainable id; a one-line error for fixed or unknown ids."""
    t = target(model_id, scale)
    return t.family, t.scale
