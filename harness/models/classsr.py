"""ClassSR (Kong, Zhao, Qiao and Dong, CVPR 2021) over three eSR-pool FSRCNN branches, x4, Y channel.

One id, ``ClassSR-FSRCNN_s4``. The LR image is cut into 32x32 patches (stride 28); a small
classifier gives every patch three probabilities (easy / medium / hard) and the patch is
super-resolved by the branch of its argmax: the eSR pool's FSRCNN (``esr.FSRCNN``, PReLU,
9x9 deconvolution) with d = 16, 36, 56, s = 12, m = 4. The authors' branches have the same
d/s/m but are RGB FSRCNNs of their own; ours are the pool's, so a trained pool FSRCNN can be a
branch (:func:`load_branches`). d = 16 and 36 are not on the published eSR grid (6, 19, 32,
44, 56) but the FSRCNN id pattern takes any d, so the branches are built from their ids.

Classifier (the authors' ``Classifier`` on one channel): conv 4x4 stride 4 (1 -> 128) +
LeakyReLU(0.1), three conv 1x1 128 -> 128 + LeakyReLU(0.1), conv 1x1 128 -> 32, global
average pool, linear 32 -> 3; softmax gives the probabilities. Convs get the authors' init
(Kaiming-normal x 0.1, zero bias); the linear layer keeps PyTorch's default, as theirs does.

Inference (``eval()``, :meth:`ClassSR.route`): patch starts every 28 LR pixels with the last
row/column flush with the border, so the whole image is covered (the authors' test code
drops the uncovered border instead); an image smaller than 32 is replicate-padded to 32 and
the output cropped. All patches routed to one branch run as one batch (one call per branch
per forward), and the HR patches are stitched back as sum / count, so overlaps are averaged
(the authors halve fixed bands, which is the same thing on their grid). Every routed forward
stores ``last_routing`` on the module (:func:`routing_stats`). Training (``train()``,
:meth:`ClassSR.soft`) instead blends the three branch outputs of every patch with the
probabilities (the authors' training forward) and returns ``(sr, probs)``.

Loss (:func:`classsr_loss`): the authors' ``ClassSR_loss`` with their FSRCNN weights
(``train_ClassSR_FSRCNN.yml``: l1w 1000, class_loss_w 0.5, average_loss_w 3, i.e. 2000:1:6):
mean L1, the class loss ``(M-1) - sum_{i<j} |p_i - p_j|`` per patch averaged over the batch
(0 for one-hot, M-1 for uniform probabilities: it pushes each patch to one branch), and the
average loss ``sum_j |sum_batch p_j - B/M| / (2(M-1) B/M)`` (the authors' ``/ (4 B/3)`` at
M = 3; 0 when every branch gets an equal share of the batch, 1 when one branch gets it all).

Training with ``python -m harness train ClassSR-FSRCNN_s4`` (:mod:`harness.train`): the module
carries the trainer's hooks, :meth:`ClassSR.training_loss` (:func:`classsr_loss` of the blended
forward) and :meth:`ClassSR.trainable_parameters` (the classifier; the branches are frozen, the
authors' ``fix_SR_module: true``). The branches start trained: ``--init-weights
branches:D16,D36,D56`` (three FSRCNN state dicts, ``shipped`` or ``official`` each; the same
choice works for ``--weights``), after training the three ``BRANCH_IDS`` with the same command.

MACs: per-patch MACs of each branch and of the classifier come from
:func:`harness.models.complexity.complexity` (32x32 LR patch). On the meta device (static
counting, ``zoo list``) the routed forward sends every patch to the largest branch: the
static count is the worst case, classifier included; the real routed count is in
``last_routing``.

ONNX: the classifier and each branch export as separate graphs with a dynamic batch
(:func:`export_parts`); :class:`ClassSROnnx` does the patching, routing, per-branch batching
and stitching in NumPy around four ONNX Runtime sessions, and has the ``load/compute/fetch``
interface of a backend session, so end-to-end time (classifier and stitching included) can
be measured on ONNX Runtime. Tracing the routed module itself (``torch.onnx.export`` of the
whole ``ClassSR``) is refused: its routing is data-dependent and a trace would freeze one
routing into the graph.
"""
from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..backends.base import Session
from ..errors import HarnessError
from .base import TorchUpscaler, load_state_strict, read_state_dict

FAMILY = "ClassSR"
SCALE = 4
MODEL_ID = f"ClassSR-FSRCNN_s{SCALE}"
PATTERN = re.compile(r"ClassSR-FSRCNN_s(?P<scale>\d+)")
DESCRIPTION = ("ClassSR (CVPR 2021): 32x32 LR patches classified and routed to one of three FSRCNN "
               "branches (d 16/36/56), x4 only, Y channel")
BRANCH_IDS = tuple(f"FSRCNN_s{SCALE}_D{d}_S12_M4" for d in (16, 36, 56))
PATCH, STRIDE = 32, 28
CLASSIFIER_FEATURES, CLASSIFIER_SQUEEZE = 128, 32
# The authors' train_ClassSR_FSRCNN.yml: l1w 1000, class_loss_w 0.5, average_loss_w 3 (2000:1:6).
LOSS_WEIGHTS = {"l1": 1000.0, "class": 0.5, "average": 3.0}
LOSS_NAME = (f"ClassSR loss (the authors'): {LOSS_WEIGHTS['l1']:g} L1 + {LOSS_WEIGHTS['class']:g} class + "
             f"{LOSS_WEIGHTS['average']:g} average (2000:1:6) on the probability-blended forward")
# The trainer stops at a loss above this (its default, 1e3, is for a plain L1 on [0, 1] images;
# here the L1 term is weighted 1000).
DIVERGED_LOSS = LOSS_WEIGHTS["l1"] * 1e3
BRANCHES_PREFIX = "branches:"  # --weights / --init-weights branches:D16,D36,D56 (files, shipped, official, init)
ONNX_PARTS = ("classifier",) + tuple(f"branch{i}" for i in range(len(BRANCH_IDS)))
PROBS_NAME = "probs"
_FIX = f"give a state dict of the whole {MODEL_ID} module (torch.save(model.module.state_dict(), FILE))"


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


def _padded_hw(height: int, width: int, patch: int) -> Tuple[int, int]:
    return max(height, patch), max(width, patch)


# --- MACs -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def patch_macs(patch: int = PATCH) -> Dict[str, object]:
    """MACs of the classifier and of each branch on one ``patch`` x ``patch`` LR patch (complexity.py's count)."""
    from . import esr
    from .complexity import complexity

    classifier = complexity(_classes()["Classifier"](), 1, out_hw=(patch, patch))["macs_per_fhd"]
    branches = [complexity(esr.build_module(b), SCALE, out_hw=(SCALE * patch, SCALE * patch))["macs_per_fhd"]
                for b in BRANCH_IDS]
    return {"classifier": int(classifier), "branches": [int(m) for m in branches]}


@functools.lru_cache(maxsize=64)
def whole_image_macs(branch: int, height: int, width: int) -> int:
    """MACs of branch ``branch`` run on the whole ``height`` x ``width`` LR image (no patches, no overlap)."""
    from . import esr
    from .complexity import complexity

    return int(complexity(esr.build_module(BRANCH_IDS[branch]), SCALE,
                          out_hw=(SCALE * height, SCALE * width))["macs_per_fhd"])


def macs_table(patch: int = PATCH, lr_hw: Tuple[int, int] = (270, 480)) -> Dict[str, object]:
    """What :func:`routing_stats` needs from PyTorch, as plain numbers (stored in an export folder so
    a device without PyTorch reports routing): :func:`patch_macs` and each branch's MACs per LR pixel
    on a whole image (FSRCNN is fully convolutional: its cost is in proportion to the pixels)."""
    h, w = lr_hw
    return dict(patch_macs(patch), patch=patch,
                whole_per_lr_pixel=[whole_image_macs(i, h, w) / float(h * w) for i in range(len(BRANCH_IDS))])


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
    hp, wp = _padded_hw(h, w, patch)
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


# --- torch modules (built on first use so that listing ids stays light) -----------------------
_CACHE: dict = {}


def _classes() -> dict:
    if "ClassSR" in _CACHE:
        return _CACHE
    import torch
    import torch.nn.functional as F
    from torch import nn

    from . import esr

    class Classifier(nn.Module):
        """The authors' patch classifier on one (Y) channel: strided conv, 1x1 convs, GAP, linear -> logits."""

        def __init__(self, classes: int = len(BRANCH_IDS)):
            super().__init__()
            f, q = CLASSIFIER_FEATURES, CLASSIFIER_SQUEEZE
            self.body = nn.Sequential(
                nn.Conv2d(1, f, 4, stride=4), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(f, q, 1))
            self.fc = nn.Linear(q, classes)
            with torch.no_grad():  # the authors' initialize_weights([CondNet], 0.1); lastOut keeps the default
                for m in self.body:
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                        m.weight.mul_(0.1)
                        m.bias.zero_()

        def forward(self, x):
            # mean over H, W rather than AvgPool2d(size): no spatial size is frozen into an export
            return self.fc(self.body(x).mean(dim=(2, 3)))

    class ClassifierProbs(nn.Module):
        """The classifier with its softmax: the exported graph (input ``lr``, output ``probs``)."""

        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, x):
            return torch.softmax(self.classifier(x), dim=1)

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
            hp, wp = _padded_hw(h, w, self.patch)
            if (hp, wp) != (h, w):
                x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
            grid = patch_grid(hp, wp, self.patch, self.stride)
            p = self.patch
            patches = torch.stack([x[:, :, y:y + p, x0:x0 + p] for y, x0 in grid], dim=1)
            return patches.reshape(n * len(grid), c, p, p), grid, (hp, wp)

        def _stitch(self, hr, n, grid, padded_hw, hw):
            s, sp = self.scale, self.scale * self.patch
            hr = hr.reshape((n, len(grid)) + tuple(hr.shape[1:]))
            hp, wp = padded_hw
            out = hr.new_zeros(n, hr.shape[2], s * hp, s * wp)
            for k, (y, x0) in enumerate(grid):
                out[:, :, s * y:s * y + sp, s * x0:s * x0 + sp] += hr[:, k]
            count = torch.from_numpy(np.array(coverage(hp, wp, s, self.patch, self.stride)))
            out = out / count.to(device=out.device, dtype=out.dtype)
            return out[:, :, :s * hw[0], :s * hw[1]]

        def _refuse_trace(self):
            if torch.jit.is_tracing():
                raise HarnessError(f"{MODEL_ID} routes patches by data and cannot be traced into one graph; "
                                   f"export it with harness.models.classsr.export_parts (classifier + branches) "
                                   f"and run it with ClassSROnnx")

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
            :func:`classsr_loss` of :meth:`soft`, parts ``l1``, ``class``, ``average`` (unweighted) and ``total``."""
            sr, probs = self.soft(lr)
            return classsr_loss(sr, hr, probs)

        def trainable_parameters(self):
            """The classifier's parameters; the trainer freezes the rest (the three branches)."""
            return list(self.classifier.parameters())

    classes = dict(Classifier=Classifier, ClassifierProbs=ClassifierProbs, ClassSR=ClassSR)
    for name, cls in classes.items():  # importable by name, so that modules pickle
        cls.__qualname__ = name
        cls.__module__ = __name__
    _CACHE.update(classes)
    return _CACHE


def __getattr__(name: str):
    """Module-level access to the lazily defined network classes (PEP 562)."""
    if name in ("Classifier", "ClassifierProbs", "ClassSR"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the zoo interface --------------------------------------------------------------------------
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


class ClassSRUpscaler(TorchUpscaler):
    """The routed PyTorch pipeline as an :class:`Upscaler`; ``last_routing`` is the last call's record."""

    def __init__(self, module, weights: str = "init"):
        super().__init__(module, id=MODEL_ID, family=FAMILY, scale=SCALE, input_space="y", weights=weights,
                         notes={"routing": f"{PATCH}x{PATCH} LR patches, stride {STRIDE}, overlaps averaged; "
                                           f"branches {', '.join(BRANCH_IDS)}",
                                "macs": "static MACs are the worst case (every patch to the largest branch); "
                                        "routed MACs are in last_routing"})

    @property
    def last_routing(self) -> Optional[Dict[str, object]]:
        return getattr(self.module, "last_routing", None)

    merge_routing = staticmethod(merge_routing)

    def onnx_pipeline(self, workdir: Union[str, Path], threads: Optional[int] = None,
                      providers: Optional[Sequence] = None) -> "ClassSROnnx":
        """The ONNX Runtime pipeline of this model's weights (graphs cached under ``workdir`` by weights)."""
        from ..backends.onnxruntime_backend import module_digest

        folder = Path(workdir) / f"{MODEL_ID}.{module_digest(self.module)}"
        paths = {part: folder / f"{MODEL_ID}.{part}.onnx" for part in ONNX_PARTS}
        if not all(p.is_file() for p in paths.values()):
            paths = export_parts(self.module, folder)
        return ClassSROnnx(paths, threads=threads, providers=providers)


def build_module(branch_files: Optional[Sequence[Optional[Union[str, Path]]]] = None):
    """A fresh ``ClassSR`` module; ``branch_files``: optional FSRCNN state-dict files for the branches."""
    module = _classes()["ClassSR"]()
    if branch_files is not None:
        load_branches(module, branch_files)
    return module.eval()


def build(branch_files: Optional[Sequence[Optional[Union[str, Path]]]] = None) -> ClassSRUpscaler:
    return ClassSRUpscaler(build_module(branch_files), weights="init" if branch_files is None else "branches")


def build_from_match(match: "re.Match", scale: int) -> ClassSRUpscaler:
    """The registry's ``build(match, scale)``: only x4 exists (the authors' configuration)."""
    if int(match.group("scale")) != SCALE:
        raise HarnessError(f"{match.group(0)}: ClassSR-FSRCNN exists at x{SCALE} only (the authors' FSRCNN "
                           f"branches d 16/36/56 at x4); use {MODEL_ID}")
    return build()


def ids(scale: int) -> List[str]:
    return [MODEL_ID] if scale == SCALE else []


def branch_file(branch_id: str, choice: Union[str, Path]) -> Path:
    """The weights file of one branch: ``shipped`` (the project's), ``official`` (the imported eSR
    store, where the authors published that FSRCNN), or a path."""
    if str(choice) == "shipped":
        from ..weights import shipped_file

        return shipped_file(branch_id)
    if str(choice) == "official":
        from . import esr
        from ..weights import official_file

        return official_file(esr.official_name(branch_id))
    return Path(choice)


def load_branches(module, files: Sequence[Optional[Union[str, Path]]]):
    """Load FSRCNN state-dict files (eSR ``net.*`` keys, e.g. trained by ``harness train``) into the branches.

    ``files`` has one entry per branch (d 16, 36, 56): a path, ``shipped`` or ``official``
    (:func:`branch_file`); None keeps that branch as it is.
    """
    branches = getattr(module, "module", module).branches
    if len(files) != len(branches):
        raise HarnessError(f"{MODEL_ID} has {len(branches)} branches ({', '.join(BRANCH_IDS)}); "
                           f"got {len(files)} weights files")
    for branch, branch_id, choice in zip(branches, BRANCH_IDS, files):
        if choice is None:
            continue
        path = branch_file(branch_id, choice)
        fix = f"give a {branch_id} state dict (e.g. trained with: python -m harness train {branch_id})"
        load_state_strict(branch, read_state_dict(path, branch_id, fix), path, branch_id, fix)
    return module


def parse_branches(choice: str) -> List[Optional[str]]:
    """``branches:A,B,C`` -> one entry per branch (d 16, 36, 56); ``init`` or ``-`` (None) keeps a branch fresh."""
    tokens = [t.strip() for t in choice[len(BRANCHES_PREFIX):].split(",")] if choice.startswith(BRANCHES_PREFIX) \
        else []
    if len(tokens) != len(BRANCH_IDS):
        raise HarnessError(f"'{choice}': give {len(BRANCH_IDS)} comma-separated branch weights after "
                           f"'{BRANCHES_PREFIX}' ({', '.join(BRANCH_IDS)}; each a file, shipped, official or init), "
                           f"e.g. {BRANCHES_PREFIX}d16.pt,d36.pt,d56.pt")
    return [None if t in ("", "init", "-") else t for t in tokens]


def load_weights(model_id: str, choice: str, model=None):
    """The registry's weight loader: a state-dict file of the whole module, or ``branches:A,B,C``
    (trained FSRCNN branches, a fresh classifier: the start of ClassSR training); no official
    weights exist for the whole module."""
    if choice == "official":
        raise HarnessError(f"{model_id} has no official weights (the authors' are RGB nets of their own); "
                           f"pass --weights FILE (a state dict of this module), {BRANCHES_PREFIX}D16,D36,D56 "
                           f"(branch weights, an untrained classifier) or init")
    if str(choice).startswith(BRANCHES_PREFIX):
        module = getattr(model, "module", None)  # the built model's fresh classifier is kept
        return load_branches(module if module is not None else build_module(), parse_branches(choice)).eval()
    module = build_module()
    return load_state_strict(module, read_state_dict(choice, model_id, _FIX), choice, model_id, _FIX)


# --- training -------------------------------------------------------------------------------------
def class_loss(probs):
    """The authors' class loss: ``(M-1) - sum_{i<j} |p_i - p_j|`` per patch, batch mean (0 when one-hot)."""
    m = probs.shape[1]
    pairwise = (probs[:, :, None] - probs[:, None, :]).abs().sum(dim=(1, 2)) / 2
    return ((m - 1) - pairwise).mean()


def average_loss(probs):
    """The authors' average loss: ``sum_j |sum_batch p_j - B/M|``, normalised to [0, 1] (their /(4B/3) at M=3)."""
    b, m = probs.shape
    share = b / m
    return (probs.sum(dim=0) - share).abs().sum() / (2 * (m - 1) * share)


def classsr_loss(sr, hr, probs, weights: Optional[Dict[str, float]] = None):
    """``(total, parts)``: weighted L1 + class + average loss; ``parts`` holds the unweighted terms and the total."""
    import torch.nn.functional as F

    w = dict(LOSS_WEIGHTS, **(weights or {}))
    terms = {"l1": F.l1_loss(sr, hr), "class": class_loss(probs), "average": average_loss(probs)}
    total = sum(w[k] * v for k, v in terms.items())
    parts = {k: float(v.detach()) for k, v in terms.items()}
    parts["total"] = float(total.detach())
    return total, parts


def classifier_optimizer(model, lr: float = 2e-4, freeze_branches: bool = True):
    """Adam (betas 0.9, 0.99, the authors') over the classifier; the branches are frozen as in the
    authors' ``fix_SR_module: true`` unless ``freeze_branches`` is False (then they train too)."""
    import torch

    module = getattr(model, "module", model)
    for p in module.branches.parameters():
        p.requires_grad_(not freeze_branches)
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))


def train_step(model, optimizer, lr, hr, weights: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """One step on a batch of LR patches (N, 1, 32, 32) and their HR patches (N, 1, 128, 128).

    The probability-blended forward (train mode), :func:`classsr_loss`, backward, step; the
    module's train/eval mode is restored afterwards. Returns the loss parts as floats.
    """
    module = getattr(model, "module", model)
    was_training = module.training
    module.train()
    try:
        sr, probs = module(lr)
        total, parts = classsr_loss(sr, hr, probs, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    finally:
        module.train(was_training)
    return parts


# --- ONNX -------------------------------------------------------------------------------------------
def _export_classifier(module, path: Path, opset: int) -> Path:
    """The classifier + softmax: input ``lr`` (N, 1, H, W), output ``probs`` (N, 3), batch/H/W dynamic."""
    import inspect
    import warnings

    import onnx
    import torch

    from ..export import INPUT_NAME, harness_version

    net = _classes()["ClassifierProbs"](module.classifier).eval()
    dummy = torch.rand(2, 1, module.patch, module.patch)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[PROBS_NAME], opset_version=opset, do_constant_folding=True,
                  dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, PROBS_NAME: {0: "batch"}})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.1; absent on JetPack 5
        kwargs["dynamo"] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (dummy,), str(path), **kwargs)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"model_id": f"{MODEL_ID}/classifier", "form": "naive", "scale": "1",
                                        "harness_version": harness_version()})
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def export_parts(model, out_dir: Union[str, Path], opset: int = 17) -> Dict[str, Path]:
    """Write ``<out_dir>/ClassSR-FSRCNN_s4.{classifier,branch0,branch1,branch2}.onnx``; returns part -> path.

    The branches go through :func:`harness.export.export_onnx` (input ``lr``, output ``sr``,
    dynamic N/H/W); the classifier outputs the softmax ``probs`` (N, 3).
    """
    from ..export import export_onnx

    module = getattr(model, "module", model)
    was_training = module.training
    module.eval()
    out_dir = Path(out_dir)
    try:
        paths = {"classifier": _export_classifier(module, out_dir / f"{MODEL_ID}.classifier.onnx", opset)}
        for i, (branch, branch_id) in enumerate(zip(module.branches, module.branch_ids)):
            paths[f"branch{i}"] = export_onnx(branch, out_dir / f"{MODEL_ID}.branch{i}.onnx", channels=1, opset=opset,
                                              form_name="naive", model_id=f"{MODEL_ID}/{branch_id}")
    finally:
        module.train(was_training)
    return paths


class ClassSROnnx(Session):
    """The routed pipeline in NumPy around four ONNX Runtime sessions (classifier + three branches).

    Same grid, padding, argmax routing, one batch per branch and sum/count stitching as the
    PyTorch module. Call it on an HxW Y image (like an Upscaler) or use it as a backend session
    (``load``/``compute``/``fetch``/``infer`` on (N, 1, H, W) float32): ``compute`` times the
    whole pipeline, classification and stitching included. ``last_routing`` is the last run's
    :func:`routing_stats`; ``last_times_ms`` splits the last run into its stages.
    """

    form = "routed"

    def __init__(self, paths: Union[Dict[str, Union[str, Path]], str, Path], threads: Optional[int] = None,
                 providers: Optional[Sequence] = None, scale: int = SCALE, patch: int = PATCH, stride: int = STRIDE,
                 macs: Optional[Dict[str, object]] = None):
        super().__init__()
        self.macs = macs  # a macs_table() (an export folder's), else routing stats compute it with PyTorch
        if not isinstance(paths, dict):
            paths = {part: Path(paths) / f"{MODEL_ID}.{part}.onnx" for part in ONNX_PARTS}
        missing = [p for p in ONNX_PARTS if p not in paths or not Path(paths[p]).is_file()]
        if missing:
            raise HarnessError(f"{MODEL_ID}: ONNX graphs missing for {', '.join(missing)}; "
                               f"write them with harness.models.classsr.export_parts(module, DIR)")
        self.paths = {p: Path(paths[p]) for p in ONNX_PARTS}
        self.scale, self.patch, self.stride = scale, patch, stride
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.sessions = {p: self._session(self.paths[p], threads) for p in ONNX_PARTS}
        self.classifier = self.sessions["classifier"]
        self.branches = [self.sessions[f"branch{i}"] for i in range(len(ONNX_PARTS) - 1)]
        self.last_routing: Optional[Dict[str, object]] = None
        self.last_times_ms: Dict[str, float] = {}
        self.details: Dict[str, object] = {"onnx": {p: str(v) for p, v in self.paths.items()},
                                           "providers": self.classifier.get_providers()}
        self._x = None
        self._y = None

    def _session(self, path: Path, threads: Optional[int]):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 -> (N, 1, 4H, 4W): classify, route, one batch per branch, stitch."""
        t0 = time.perf_counter()
        x = np.ascontiguousarray(x, dtype=np.float32)
        n, c, h, w = x.shape
        p, s = self.patch, self.scale
        hp, wp = _padded_hw(h, w, p)
        if (hp, wp) != (h, w):
            x = np.pad(x, ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode="edge")
        grid = patch_grid(hp, wp, p, self.stride)
        patches = np.stack([x[:, :, y:y + p, x0:x0 + p] for y, x0 in grid], axis=1).reshape(n * len(grid), c, p, p)
        t1 = time.perf_counter()
        probs = self.classifier.run([PROBS_NAME], {"lr": patches})[0]
        labels = probs.argmax(axis=1)
        t2 = time.perf_counter()
        sp = s * p
        hr = np.empty((patches.shape[0], c, sp, sp), np.float32)
        for i, sess in enumerate(self.branches):
            idx = np.flatnonzero(labels == i)
            if idx.size:
                hr[idx] = sess.run(None, {"lr": np.ascontiguousarray(patches[idx])})[0]
        t3 = time.perf_counter()
        hr = hr.reshape(n, len(grid), c, sp, sp)
        out = np.zeros((n, c, s * hp, s * wp), np.float32)
        for k, (y, x0) in enumerate(grid):
            out[:, :, s * y:s * y + sp, s * x0:s * x0 + sp] += hr[:, k]
        out /= coverage(hp, wp, s, p, self.stride)
        out = np.ascontiguousarray(out[:, :, :s * h, :s * w])
        t4 = time.perf_counter()
        self.last_times_ms = {"patch": (t1 - t0) * 1e3, "classify": (t2 - t1) * 1e3, "branches": (t3 - t2) * 1e3,
                              "stitch": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        self.last_routing = routing_stats(labels, n, (h, w), p, self.stride, table=self.macs)
        return out

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        """HxW Y image in [0, 1] -> 4Hx4W (unclamped), like an Upscaler."""
        return self.run(np.asarray(lr, dtype=np.float32)[None, None])[0, 0]

    # the backend Session interface (harness.backends.base.Session), duck-typed
    def load(self, lr: np.ndarray) -> None:
        self._x = lr

    def compute(self) -> None:
        self._y = self.run(self._x)

    def fetch(self) -> np.ndarray:
        return self._y

    def close(self) -> None:
        self.sessions = {}
        self.classifier = None
        self.branches = []
