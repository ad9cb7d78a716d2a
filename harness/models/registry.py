"""Model registry: ids -> model factories.

Each family registers a full-match regular expression for its ids; a ``scale`` group in it
fixes the scale (``Bicubic_s3``), otherwise the scale comes from ``--scale``
(``bicubic-matlab``). Adding a model is one module plus one :func:`register` call in
``harness/models/__init__.py``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Union

from ..errors import HarnessError
from .base import Upscaler

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class Family:
    name: str
    pattern: "re.Pattern"
    build: Callable[["re.Match", int], Upscaler]
    ids: Callable[[int], List[str]]  # every id of this family at a scale (for listings and pools)
    description: str = ""
    # (model id, weights choice, the built Upscaler) -> nn.Module with those weights;
    # None for fixed-weight models.
    load_weights: Optional[Callable[[str, str, Upscaler], object]] = None
    # True when the model itself tells its scale (an ONNX file): no --scale needed.
    infers_scale: bool = False
    # id -> the id whose shipped/official weights start a fine-tune of it (``train --init-weights
    # shipped``/``official``; GhostSR: the base network, which load_weights then ghostifies).
    # None: the id itself.
    base_of: Optional[Callable[[str], str]] = None
    # id -> the network a method is measured against when it has no official weights (``zoo ship``
    # records the reference's shipped figures beside the method's; GhostSR: its base network,
    # ClassSR: its largest branch on the whole image). None: base_of, else nothing.
    reference_of: Optional[Callable[[str], str]] = None


_FAMILIES: List[Family] = []


def register(family: Family) -> None:
    if any(f.name == family.name for f in _FAMILIES):
        raise ValueError(f"model family {family.name} registered twice")
    _FAMILIES.append(family)


def families() -> List[Family]:
    return list(_FAMILIES)


def _match(model_id: str):
    for family in _FAMILIES:
        m = family.pattern.fullmatch(model_id)
        if m:
            return family, m
    return None, None


def lookup(model_id: str) -> Family:
    """The family of ``model_id``; the registry's one-line error for unknown ids."""
    family, _ = _match(model_id)
    if family is None:
        raise HarnessError(unknown_id_message(model_id))
    return family


def family_name(model_id: str) -> str:
    """The family of an id without building anything ('' when unknown)."""
    family, _ = _match(model_id)
    return family.name if family is not None else ""


def id_scale(model_id: str) -> Optional[int]:
    """The scale an id fixes (``Bicubic_s3`` -> 3), or None for scale-free ids."""
    family, m = _match(model_id)
    if family is None:
        raise HarnessError(unknown_id_message(model_id))
    if family.infers_scale:
        return family.build(m, None).scale
    return int(m.group("scale")) if "scale" in m.groupdict() and m.group("scale") else None


def unknown_id_message(model_id: str) -> str:
    names = ", ".join(f.name for f in _FAMILIES)
    return f"unknown model id '{model_id}' (known families: {names}); list ids with: python -m harness zoo list"


def resolve(model_id: str, scale: Optional[int] = None, weights: Union[str, None] = None) -> Upscaler:
    """Build the model for ``model_id``; ``scale`` is required for scale-free ids and must agree otherwise.

    ``weights``: None or ``init`` (fresh initialisation), ``shipped`` (trained by the project,
    in the package), ``official`` (the imported official weights), or a path to a weights file.
    Models with fixed weights ignore it (``weights='none'``).
    """
    family, m = _match(model_id)
    if family is None:
        raise HarnessError(unknown_id_message(model_id))
    fixed = id_scale(model_id)
    if fixed is not None:
        if scale is not None and scale != fixed:
            raise HarnessError(f"model {model_id} is a x{fixed} model but --scale {scale} was given")
        scale = fixed
    if scale is None and family.infers_scale:
        return family.build(m, None)
    if scale is None:
        raise HarnessError(f"model {model_id} needs a scale: add --scale 2, 3 or 4")
    if scale not in SCALES:
        raise HarnessError(f"scale x{scale} is not supported (use 2, 3 or 4)")
    model = family.build(m, scale)
    if weights not in (None, "init") and family.load_weights is not None:
        if weights == "shipped":  # any family can ship: the file is a state dict like --weights FILE
            from ..weights import shipped_file

            model.module = family.load_weights(model_id, str(shipped_file(model_id)), model).eval()
        else:
            model.module = family.load_weights(model_id, str(weights), model).eval()
        model.weights = str(weights)
    return model


def all_ids(scales=SCALES) -> List[str]:
    out: List[str] = []
    for s in scales:
        for family in _FAMILIES:
            for i in family.ids(s):
                if i not in out:
                    out.append(i)
    return out
