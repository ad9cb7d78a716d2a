"""The patch grid, the MAC counts and the routing records, shared by the PyTorch module
(:mod:`.networks`) and the ONNX Runtime pipeline (:mod:`harness.backends.classsr_onnx`).

Grid: patch starts every 28 LR pixels with the last row/column flush with the border, so the
whole image is covered (the authors' test code drops the uncovered border instead); an image
smaller than 32 is replicate-padded to 32 and the output cropped. HR patches are stitched back as
sum / count (:func:`coverage`), so overlaps are averaged (the authors halve fixed bands, which is
the same thing on their grid).

MACs: per-patch MACs of each branch and of the classifier come from
:func:`harness.models.complexity.complexity` (32x32 LR patch); counting builds the networks, so
:func:`patch_macs`, :func:`whole_image_macs` and :func:`macs_table` need PyTorch (imported when
called). Everything else here is NumPy. :func:`macs_table` stores the counts as plain numbers in
an export folder, so a device without PyTorch still reports routing.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .spec import BRANCH_IDS, PATCH, SCALE, STRIDE


# --- the patch grid (shared by the PyTorch and ONNX Runtime pipelines) ------------------------
def grid_starts(length: int, patch: int = PATCH, stride: int = STRIDE) -> List[int]:
    """Patch starts along one axis: every ``stride``, plus one flush with the end if that is uncovered.

    ``length`` < ``patch`` gives ``[0]`` (the caller pads the image up to ``patch``).
    """
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def patch_grid(height: int, width: int, patch: int = PATCH, stride: int = STRIDE) -> List[Tuple[int, int]]:
    """(y, x) of every patch of a (padded) ``height`` x ``width`` LR image, row by row."""
    return [(y, x) for y in grid_starts(height, patch, stride) for x in grid_starts(width, patch, stride)]


@functools.lru_cache(maxsize=32)
def coverage(height: int, width: int, scale: int = SCALE, patch: int = PATCH, stride: int = STRIDE) -> np.ndarray:
    """How many HR patches cover each HR pixel of a (padded) LR ``height`` x ``width`` image (float32)."""
    count = np.zeros((scale * height, scale * width), np.float32)
    sp = scale * patch
    for y, x in patch_grid(height, width, patch, stride):
        count[scale * y:scale * y + sp, scale * x:scale * x + sp] += 1
    count.setflags(write=False)
    return count


def padded_hw(height: int, width: int, patch: int = PATCH) -> Tuple[int, int]:
    """The size an LR image is replicate-padded to: at least one patch each way."""
    return max(height, patch), max(width, patch)


# --- MACs -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def patch_macs(patch: int = PATCH) -> Dict[str, object]:
    """MACs of the classifier and of each branch on one ``patch`` x ``patch`` LR patch (complexity.py's count)."""
    from .. import esr
    from ..complexity import complexity
    from .classifier import Classifier

    classifier = complexity(Classifier(), 1, out_hw=(patch, patch))["macs_per_fhd"]
    branches = [complexity(esr.build_module(b), SCALE, out_hw=(SCALE * patch, SCALE * patch))["macs_per_fhd"]
                for b in BRANCH_IDS]
    return {"classifier": int(classifier), "branches": [int(m) for m in branches]}


@functools.lru_cache(maxsize=64)
def whole_image_macs(branch: int, height: int, width: int) -> int:
    """MACs of branch ``branch`` run on the whole ``height`` x ``width`` LR image (no patches, no overlap)."""
    from .. import esr
    from ..complexity import complexity

    return int(complexity(esr.build_module(BRANCH_IDS[branch]), SCALE,
                          out_hw=(SCALE * height, SCALE * width))["macs_per_fhd"])


def macs_table(patch: int = PATCH, lr_hw: Tuple[int, int] = (270, 480)) -> Dict[str, object]:
    """What :func:`routing_stats` needs from PyTorch, as plain numbers (stored in an export folder so
    a device without PyTorch reports routing): :func:`patch_macs` and each branch's MACs per LR pixel
    on a whole image (FSRCNN is fully convolutional: its cost is in proportion to the pixels)."""
    h, w = lr_hw
    return dict(patch_macs(patch), patch=patch,
                whole_per_lr_pixel=[whole_image_macs(i, h, w) / float(h * w) for i in range(len(BRANCH_IDS))])


# --- routing records --------------------------------------------------------------------------
def routing_stats(labels: Sequence[int], images: int, lr_hw: Tuple[int, int], patch: int = PATCH,
                  stride: int = STRIDE, table: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """The record of one routed run: patches per branch, their shares, and MACs routed vs the largest branch.

    ``macs_saved_pct`` compares the branch MACs of the routed patches with the largest branch
    run on the same patches (0 when every patch goes to it); ``macs_saved_pct_incl_classifier``
    charges the classifier to the routed run as well (negative when routing saves less than
    the classifier costs). ``macs_largest_whole_image`` is the largest branch on the whole
    image without patch overlap: what the pool's FSRCNN_s4_D56_S12_M4 costs on it.
    """
    macs = table if table is not None and table.get("patch") == patch else patch_macs(patch)
    per_branch = macs["branches"]
    largest = int(np.argmax(per_branch))
    counts = np.bincount(np.asarray(labels, dtype=np.int64).reshape(-1), minlength=len(per_branch)).tolist()
    total = int(sum(counts))
    branch_macs = int(sum(c * m for c, m in zip(counts, per_branch)))
    classifier_macs = total * int(macs["classifier"])
    largest_macs = total * int(per_branch[largest])
    h, w = lr_hw
    hp, wp = padded_hw(h, w, patch)
    return {
        "branches": list(BRANCH_IDS),
        "images": int(images),
        "patches": total,
        "patches_per_image": total // max(int(images), 1),
        "grid": [len(grid_starts(hp, patch, stride)), len(grid_starts(wp, patch, stride))],
        "patch": patch,
        "stride": stride,
        "counts": [int(c) for c in counts],
        "shares": [c / total if total else 0.0 for c in counts],
        "macs_per_patch": {"classifier": int(macs["classifier"]), "branches": list(per_branch)},
        "macs_branches": branch_macs,
        "macs_classifier": classifier_macs,
        "macs_routed": branch_macs + classifier_macs,
        "macs_largest_same_patches": largest_macs,
        "macs_saved_pct": 100.0 * (1.0 - branch_macs / largest_macs) if largest_macs else 0.0,
        "macs_saved_pct_incl_classifier": (100.0 * (1.0 - (branch_macs + classifier_macs) / largest_macs)
                                           if largest_macs else 0.0),
        "macs_largest_whole_image": int(images) * (whole_image_macs(largest, h, w) if "whole_per_lr_pixel" not in macs
                                                   else int(round(macs["whole_per_lr_pixel"][largest] * h * w))),
    }


_SUMMED = ("images", "patches", "macs_branches", "macs_classifier", "macs_routed", "macs_largest_same_patches",
           "macs_largest_whole_image")


def merge_routing(records: Sequence[Dict[str, object]]) -> Optional[Dict[str, object]]:
    """One routing record for several runs (the runner's frames): counts and MACs summed, shares and savings
    recomputed, plus ``macs_routed_per_image`` (what one frame really costs, classifier included)."""
    records = [r for r in records if r]
    if not records:
        return None
    out = dict(records[0])
    for key in _SUMMED:
        out[key] = int(sum(int(r[key]) for r in records))
    out["counts"] = [int(sum(r["counts"][i] for r in records)) for i in range(len(out["counts"]))]
    total = sum(out["counts"])
    out["shares"] = [c / total if total else 0.0 for c in out["counts"]]
    largest = out["macs_largest_same_patches"]
    out["macs_saved_pct"] = 100.0 * (1.0 - out["macs_branches"] / largest) if largest else 0.0
    out["macs_saved_pct_incl_classifier"] = 100.0 * (1.0 - out["macs_routed"] / largest) if largest else 0.0
    out["patches_per_image"] = total // max(out["images"], 1)
    out["macs_routed_per_image"] = out["macs_routed"] / max(out["images"], 1)
    return out
