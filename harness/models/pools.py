"""Named model pools: which ids a benchmark run covers.

``all`` is the published eSR design space, 395 models per scale (1185 in all): our
``Bicubic_s{s}``, eSR-MAX/TM/TR (K 3/5/7 x C 1..16), eSR-CNN (C x D x S = 4 x 5 x 5), the
authors' ESPCN (two 10 x 5 (D, S) grids) and FSRCNN (D x S x M = 5 x 5 x 2). It uses our
MATLAB-grid ``Bicubic_s{s}`` rather than the authors' ``eSR-Bicubic_s{s}`` (half an HR pixel
off at x3) so that the bicubic row is the one the literature reports; apart from that it is
exactly the set of published ``<id>.model`` files. ``default`` is a ~40-model cut that
spans every family at every scale, for a run that finishes in reasonable time on an edge
board; ``paper-front`` is the x2 Pareto front of the eSR paper; ``methods`` is every other
method whose trained weights ship with the project (ABPN, GhostSR, ClassSR, ...: read from the
shipped manifest, so shipping a new one adds it). Names join with commas
(``default,methods``: the union, in order). The scale-free
``bicubic-matlab``/``bicubic-opencv`` rows are not in any pool (they are not fixed-scale ids).
"""
from __future__ import annotations

from typing import Dict, List

from ..errors import HarnessError
from .esr import design_space
from .registry import SCALES

_POOL_FAMILIES = ("eSR-MAX", "eSR-TM", "eSR-TR", "eSR-CNN", "ESPCN", "FSRCNN")

# The x2 Pareto front of the eSR paper named in the project brief (quality vs speed).
PAPER_FRONT_X2 = (
    "eSR-MAX_s2_K3_C1", "eSR-MAX_s2_K3_C3", "eSR-MAX_s2_K3_C5", "eSR-MAX_s2_K5_C5",
    "eSR-TR_s2_K5_C2", "eSR-TM_s2_K7_C3", "eSR-TM_s2_K7_C4",
    "ESPCN_s2_D34_S32", "FSRCNN_s2_D56_S12_M4",
)

# The default pool, per scale: the front's shapes at every scale plus the smallest and the
# largest model of eSR-CNN, ESPCN and FSRCNN, so every family is seen at both ends of its cost.
_DEFAULT_TEMPLATES = (
    "Bicubic_s{s}",
    "eSR-MAX_s{s}_K3_C1", "eSR-MAX_s{s}_K3_C3", "eSR-MAX_s{s}_K3_C5", "eSR-MAX_s{s}_K5_C5",
    "eSR-TR_s{s}_K5_C2", "eSR-TM_s{s}_K7_C3", "eSR-TM_s{s}_K7_C4",
    "eSR-CNN_s{s}_C2_D1_S3", "eSR-CNN_s{s}_C8_D9_S15",
    "ESPCN_s{s}_D0_S3", "ESPCN_s{s}_D34_S32",
    "FSRCNN_s{s}_D6_S1_M1", "FSRCNN_s{s}_D56_S12_M4",
)


def scale_pool(scale: int) -> List[str]:
    """The full design space at one scale (395 ids)."""
    ids = [f"Bicubic_s{scale}"]
    for family in _POOL_FAMILIES:
        ids.extend(design_space(family, scale))
    return ids


def _all() -> List[str]:
    return [i for s in SCALES for i in scale_pool(s)]


def _default() -> List[str]:
    return [t.format(s=s) for s in SCALES for t in _DEFAULT_TEMPLATES]


def _paper_front() -> List[str]:
    return ["Bicubic_s2"] + list(PAPER_FRONT_X2)


def _methods() -> List[str]:
    from ..weights import shipped_ids
    from .registry import family_name, id_scale

    ids = [i for i in shipped_ids() if family_name(i) not in _POOL_FAMILIES]
    return sorted(ids, key=lambda i: (id_scale(i), i))


POOLS: Dict[str, object] = {"all": _all, "default": _default, "paper-front": _paper_front, "methods": _methods}


def pool_ids(name: str) -> List[str]:
    """The ids of the named pool (or of ``a,b``: their union, in order); HarnessError for an unknown name."""
    ids: List[str] = []
    for part in [p.strip() for p in str(name).split(",") if p.strip()]:
        try:
            make = POOLS[part]
        except KeyError:
            raise HarnessError(f"unknown model pool '{part}' (known pools: {', '.join(POOLS)})") from None
        ids.extend(i for i in make() if i not in ids)  # type: ignore[operator]
    return ids
