"""Training the zoo's learnable networks: ``python -m harness train ID|--pool NAME --data DIR [--init-weights W]``.

Why it exists: the benchmark compares our own trained weights with the official ones, so
training must be reproducible from one command and its provenance recorded beside the
weights. Any model of the registry that has a weights loader and an ``nn.Module`` with
parameters trains here (the eSR pool, ABPN, BSRN, ...); fixed-weight models (bicubic,
ONNX files) are refused. Recipe (the eSR authors' setting as far as the paper gives it):
LR made by the harness's MATLAB-faithful bicubic shrink of the uint8 RGB image (the same
degradation the quality protocol uses), in the model's own space -- BT.601 Y in [0, 1] for
``input_space='y'`` models, RGB in [0, 1] for ``'rgb'`` ones -- random aligned patches with
the 8 flips/rotations, L1 loss, Adam, cosine decay of the learning rate to ``--min-lr``. eSR
families get the authors' initialisation (:func:`harness.models.esr.build_module`), the
others their module's own (PyTorch's default for ABPN and BSRN). Steps, batch, learning rate
and patch come from the family's recipe (:data:`RECIPES`, else :data:`GENERIC_RECIPE`).

Fine-tuning: ``--init-weights FILE|shipped|official`` starts from a weights file instead of
the init, loaded by the registry family's ``load_weights`` (as ``--weights`` loads it: a
``Ghost-<id>`` takes a state dict of ``<id>`` and ghostifies it; ``shipped``/``official`` are
those of the family's ``base_of(id)``, the base network for GhostSR; ClassSR takes
``branches:D16,D36,D56``); the provenance records ``init: weights FILE (sha256 ...)``.

Model-defined hooks, so that a new model stays one file plus a registry entry: a module with
``training_loss(lr, hr) -> (loss, parts)`` is trained on that loss instead of L1 (the running
means of ``parts`` go into the validation lines, each ``history`` entry and ``loss_parts``);
a module with ``trainable_parameters()`` has only those optimised, every other parameter frozen
(ClassSR: the classifier, its branches fixed). A module's ``diverged_loss`` replaces
:data:`DIVERGED_LOSS`, a recipe's ``betas`` Adam's (0.9, 0.999). Every submodule with a
``training_progress(step, steps)`` is called with the 0-based step before each step (GhostSR
anneals its Gumbel-softmax temperature that way).

Files, in ``--out`` (default ``$HARNESS_CACHE/train/<id>/``): ``last.pt`` (everything needed
to continue bit-exactly with ``--resume``), ``best.pt`` (the state dict with the best
validation PSNR), and at the end ``<id>.pt`` (the final state dict, for
``--weights PATH``) and ``<id>.json`` (provenance); ``.train.lock`` is held while a run
trains there, so a second run on the same folder is refused. The LR/HR pairs of a training folder
are made once per (folder contents, scale, space) and cached as ``.npz`` in
``$HARNESS_CACHE/train/`` (Y: float32; RGB: the exact uint8 images, 4x smaller).
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import HarnessError

CACHE_FORMAT = 1      # bump when the cached Y arrays change meaning
RGB_CACHE_FORMAT = 1  # the same for the RGB caches (their own key and file name: Y caches stay valid)
SPACES = ("y", "rgb")
CHECKPOINT_FORMAT = 1
DEFAULT_PATCH = 64    # HR pixels; at x3 the default becomes 63 (the multiple of 3 below)
# The per-family recipe that the shipped default pool was trained with (--lr/--batch/--steps
# override it). The attention-style eSR-MAX/TM/TR nets have a few hundred to a few thousand
# weights: a larger batch and a 5x larger learning rate reach in 15k steps what batch 16 at 1e-3
# reached in 20k minus 0.3 dB on Set14 (eSR-TM_s2_K7_C4: 31.28 vs 31.16 dB at 10k steps). eSR-CNN
# also learns faster at 4e-3 (eSR-CNN_s2_C8_D9_S15: Set5 35.36 dB after 2000 steps against 34.86
# at 1e-3); ESPCN (sigmoid output) did not (ESPCN_s2_D34_S32: Set5 28.9 dB after 2000 steps at
# 4e-3), so it and FSRCNN keep the usual 1e-3. The one-layer eSR-MAX/TM/TR are near-linear
# estimators: under L1 they settle on a median-like fit that PSNR (an L2 measure) rates far lower,
# so they train on MSE (eSR-MAX_s2_K3_C5: Set5 33.71 dB after 1000 steps on MSE, against 33.45 dB
# after 15000 on L1; eSR-TR_s2_K5_C2: 34.50 against 33.99 after 3000). The small CNNs did the same
# on L1 (Set14 against the official weights: eSR-CNN_s*_C2_D1_S3 -0.46 to -0.68 dB, FSRCNN_s2_D6_S1_M1
# -1.66 dB), so the eSR pool's CNN families train on MSE too; ABPN, BSRN and the rest keep L1.
# loss_border "auto" (see loss_border()) for the one-layer eSR-MAX and eSR-TR: the outputs whose
# receptive field reaches the patch's zero padding stay out of the loss. With them in, these nets
# (which cannot tell a border from picture) fit the artificial border as hard as the picture:
# eSR-MAX_s2_K3_C3 went from Set14 30.32 dB (0.49 below the official weights) to 30.95 (0.13 above),
# the x2 eSR-TR from -0.23 to -0.08 dB. eSR-TM (7x7 filters: a 3-pixel rim of a 32-pixel LR patch)
# did better on the whole patch (Set14 -0.02 to -0.11 dB from official, -0.06 to -0.25 cropped), and
# keeps it. The CNNs keep the whole patch: they learn to handle zero-padded borders, which the test
# images have too (the protocol crops only `scale` pixels), and cropping cost them (Set5 at equal
# steps: eSR-CNN_s2_C8_D9_S15 35.01 against 35.59 dB at 3k steps, 34.47 against 35.36 at 2k with the
# patch grown to keep the loss area; eSR-CNN_s2_C2_D1_S3 34.71 against 35.00 at 12k;
# ESPCN_s2_D34_S32 stalled at 30.2 dB with it, on L1 or MSE, and reached 34.9 by 2.5k steps without;
# FSRCNN_s4_D6_S1_M1 27.48 against 28.77 at 15k).
RECIPES = {
    "eSR-MAX": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse", "loss_border": "auto"},
    "eSR-TM": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse"},
    "eSR-TR": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse", "loss_border": "auto"},
    # eSR-CNN_s*_C2_D1_S3 (two channels, one hidden layer) also gains from 60k steps: Set14 -0.31 ->
    # -0.07 dB from the official weights at x2 (2 CPU minutes a 15k-step run, 8 for 60k).
    "eSR-CNN": {"lr": 4e-3, "batch": 16, "steps": 15000, "loss": "mse",
                "by_model": {"eSR-CNN_s*_C2_D1_S3": {"steps": 60000}}},
    # The largest ESPCN and FSRCNN (and ClassSR's FSRCNN branches, d = 16/36/56, s = 12, m = 4) are
    # still climbing when a 15k-step cosine ends (Set14 0.58-0.79 dB under the official weights);
    # at 60k steps ESPCN_s*_D34_S32 land 0.10-0.15 dB under them (trained on an H100: ~10 min each,
    # 6 at once; about 32/15/11 CPU minutes at x2/x3/x4 on one core, from the 15k-step times).
    "ESPCN": {"lr": 1e-3, "batch": 16, "steps": 15000, "loss": "mse",
              "by_model": {"ESPCN_s*_D34_S32": {"steps": 60000}}},
    "FSRCNN": {"lr": 1e-3, "batch": 16, "steps": 15000, "loss": "mse",
               "by_model": {"FSRCNN_s*_S12_M4": {"steps": 60000}}},
    # ABPN (Du et al., MAI 2021; NJU-Jet/SR_Mobile_Quantization, options/train/base7.yaml): Adam at
    # 1e-3, batch 16, 64x64 LR patches, L1 (MAE), 600 epochs of 1000 iterations (600k steps) with
    # the rate halved every 120 epochs. Here the same rate, batch and LR patch (``lr_patch``: the
    # HR patch is 64 x scale), our cosine decay, and 20k steps: about 3% of the authors'
    # iterations, scaled to what one CPU core does in about two hours (~0.3 s a step at x3).
    # Expect it to fall short of the published PSNR.
    "ABPN": {"lr": 1e-3, "batch": 16, "steps": 20000, "lr_patch": 64},
    # BSRN (Li et al., NTIRE 2022; xiaom233/BSRN, options/train/train_BSRN_x*.yml): Adam at 1e-3,
    # 48x48 LR patches (gt_size 96/144/192), batch 64 (32 on each of 2 GPUs), cosine decay to 1e-7
    # over 1M iterations, L1. Here batch 16, the same LR patch and cosine decay, and 15k steps:
    # 0.4% of the authors' samples, yet about 2-3 s a step on one CPU core (about 10 hours a model).
    "BSRN": {"lr": 1e-3, "batch": 16, "steps": 15000, "lr_patch": 48},
    # EDSR-baseline (Lim et al. 2017; sanghyun-son/EDSR-PyTorch src/option.py): Adam (0.9, 0.999) at
    # 1e-4 halved every 200k iterations, batch 16, 48x48 LR patches (96/144/192 HR), L1. Here the same
    # rate, batch and LR patch with our cosine decay, and 5000 steps: a short CPU schedule (3.9 s a
    # step at x2 on one core, about 5.5 hours; the authors' 300 epochs are about 60 times more
    # samples). Expect it to fall short of the published PSNR; it is the base GhostSR fine-tunes.
    "EDSR": {"lr": 1e-4, "batch": 16, "steps": 5000, "lr_patch": 48},
    # GhostSR (Nie et al.): a fine-tune of a trained base network (train Ghost-<id> --init-weights
    # shipped|FILE loads <id>'s weights and ghostifies them) with the base network's whole recipe
    # (from_base: rate, loss, patch, batch, steps, betas), as the paper retrains the ghost network
    # (Ghost-EDSR_s2: 5000 steps of 1.2 s on one core, about 1.7 hours; Ghost-FSRCNN_s2_D56_S12_M4:
    # FSRCNN_s*_S12_M4's 60k steps, about 100 minutes). Halving the hidden convs moves the network
    # far from its base: from a 35.47 dB FSRCNN_s2_D56_S12_M4, 2000 steps at 1e-4 on L1 (the first
    # version of this recipe) reached Set5 28.57 dB; at FSRCNN's 1e-3 on MSE, 33.11 after 1500. The
    # Gumbel-softmax temperature anneals from 1.0 to 0.05 (exponentially, per step:
    # GhostConv2d.training_progress); the direction of each layer is its argmax in eval mode and at
    # export.
    "GhostSR": {"lr": 1e-4, "batch": 16, "steps": 2000,
                "from_base": ("lr", "loss", "lr_patch", "betas", "steps", "batch"),
                "note": "fine-tune from the base network's weights (--init-weights) with the base recipe's rate, "
                        "loss, patch, batch and steps; Gumbel-softmax tau annealed exponentially from 1.0 to 0.05 "
                        "over the steps, direction = argmax(logits) in eval and at export"},
    # ClassSR (Kong et al.; XPixelGroup/ClassSR options/train/train_ClassSR_FSRCNN.yml): the classifier
    # alone (fix_SR_module: the module's trainable_parameters) with the module's training_loss (L1 +
    # class + average, 2000:1:6), Adam (0.9, 0.99) at 2e-4, 32x32 LR / 128x128 HR patches, batch 96,
    # 200k iterations, cosine to 1e-7. Here the same rate, betas and patches, batch 16 and 20k steps
    # (1.7% of the authors' samples): a short CPU schedule (0.09 s a step on one core, the frozen
    # branches need no backward: about 30 minutes). The branches start trained
    # (--init-weights branches:D16,D36,D56).
    "ClassSR": {"lr": 2e-4, "batch": 16, "steps": 20000, "lr_patch": 32, "betas": (0.9, 0.99),
                "note": "classifier only (branches frozen); start from trained branches "
                        "(--init-weights branches:D16,D36,D56)"},
}
# Families without a recipe (a newly registered model, a user's package.module:Class) get this
# one, so that adding a model needs no change here; the patch is then DEFAULT_PATCH.
GENERIC_RECIPE = {"lr": 1e-3, "batch": 16, "steps": 15000}
DEFAULT_LR = {family: r["lr"] for family, r in RECIPES.items()}
FIXED_FAMILIES = ("eSR-Bicubic",)
# An L1 loss on Y in [0, 1] starts below 1; far above it the weights have blown up even if the
# numbers are still finite (eSR-MAX at --lr 1e30 stays finite for ever): stop as for NaN.
DIVERGED_LOSS = 1e3


def mse_loss(output, target):
    """The MSE training loss of the recipes that ask for it (module-level so that tests can replace it)."""
    import torch.nn.functional as F

    return F.mse_loss(output, target)


LOSSES = ("l1", "mse")


def l1_loss(output, target):
    """The training loss (module-level so that tests can replace it)."""
    import torch.nn.functional as F

    return F.l1_loss(output, target)


# --------------------------------------------------------------------------- data

@dataclass
class TrainFolder:
    """One training folder: its images as HR and MATLAB-bicubic LR pairs, in one space.

    ``space='y'``: HxW float32 BT.601 Y in [0, 1]. ``space='rgb'``: HxWx3 uint8 RGB, the exact
    images (the sampler divides by 255 in float32, as the quality protocol does for RGB models;
    4x less memory and cache than float32, which matters for DIV2K-sized folders). Plain numpy
    arrays and paths: it pickles (``--jobs`` workers, Ray's object store).
    """

    folder: Path          # the folder given by the user
    images_dir: Path      # where the images are (the folder or its HR/ subfolder)
    names: List[str]
    hr: List[np.ndarray]
    lr: List[np.ndarray]
    cache: Path
    key: str
    space: str = "y"

    def record(self, used: int) -> Dict:
        return {"folder": str(self.folder), "images": len(self.names), "used": used,
                "cache": str(self.cache), "key": self.key}


def _cache_root() -> Path:
    from .weights import cache_dir

    return cache_dir() / "train"


def image_files(folder: Path) -> Tuple[Path, List[Path]]:
    """The training images of ``folder`` (directly in it, or in its ``HR/`` subfolder)."""
    from .imageio import is_image_file

    if not folder.is_dir():
        raise HarnessError(f"training folder {folder} does not exist; give a folder of training images "
                           f"(e.g. T91) with --data")
    where = folder / "HR" if (folder / "HR").is_dir() else folder
    files = sorted(p for p in where.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise HarnessError(f"training folder {where} holds no png/bmp/jpg images; put the training images "
                           f"there (or in {folder}/HR/)")
    return where, files


def cache_key(files: Sequence[Path], scale: int, space: str = "y") -> str:
    """sha1 of the file names and contents, the scale and the space: any change makes a new cache.

    Contents, not mtimes: a folder copied to another machine (a GPU box, a cluster node) keeps its
    key, so a run started there resumes here. Hashing is ~0.1 s for BSD200 (50 MB), ~5 s for DIV2K."""
    header = f"train-cache v{CACHE_FORMAT} x{scale}\n" if space == "y" else \
        f"train-cache {space} v{RGB_CACHE_FORMAT} x{scale}\n"
    digest = hashlib.sha1(header.encode())
    for p in files:
        content = hashlib.sha1()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                content.update(block)
        digest.update(f"{p.name}\t{p.stat().st_size}\t{content.hexdigest()}\n".encode())
    return digest.hexdigest()


def _degrade(rgb: np.ndarray, scale: int, space: str = "y") -> Tuple[np.ndarray, np.ndarray]:
    """(HR, LR): modcrop, MATLAB bicubic shrink on uint8 RGB; then BT.601 Y float32 in [0, 1]
    (``space='y'``), or the uint8 RGB images themselves (``'rgb'``)."""
    from .color import rgb_to_y
    from .imresize import downscale, modcrop

    hr = modcrop(rgb, scale)
    if space == "rgb":
        if hr.shape[0] < scale or hr.shape[1] < scale:  # a sliver (skipped later as too small)
            return hr, np.zeros((hr.shape[0] // scale, hr.shape[1] // scale, 3), np.uint8)
        return hr, downscale(hr, scale)
    if hr.shape[0] < scale or hr.shape[1] < scale:  # a sliver: nothing to shrink (skipped later as too small)
        empty = np.zeros((hr.shape[0] // scale, hr.shape[1] // scale), np.float32)
        return (rgb_to_y(hr) / 255.0).astype(np.float32), empty
    lr = downscale(hr, scale)
    return (rgb_to_y(hr) / 255.0).astype(np.float32), (rgb_to_y(lr) / 255.0).astype(np.float32)


def load_folder(folder, scale: int, show_progress: bool = False, space: str = "y") -> TrainFolder:
    """The LR/HR pairs of ``folder`` at ``scale`` in ``space`` ('y' or 'rgb'), from the cache or
    made (and cached) now. The Y and RGB caches of a folder are separate files."""
    from .imageio import load_rgb
    from .progress import progress

    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, not {space!r}")
    folder = Path(folder).expanduser()
    where, files = image_files(folder)
    key = cache_key(files, scale, space)
    tag = "" if space == "y" else f"{space}_"
    cache = _cache_root() / f"{folder.name or 'data'}_x{scale}_{tag}{key[:16]}.npz"
    dims = 2 if space == "y" else 3
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key and z["hr_shapes"].shape[1:] == (dims,):
                    names = [str(n) for n in z["names"]]
                    hr = _split(z["hr"], z["hr_shapes"])
                    lr = _split(z["lr"], z["lr_shapes"])
                    return TrainFolder(folder, where, names, hr, lr, cache, key, space)
        except Exception:  # noqa: BLE001 - a damaged cache file is remade, never trusted
            pass
    hr, lr = [], []
    desc = f"{folder.name} x{scale} LR" + ("" if space == "y" else f" {space.upper()}")
    for p in progress(files, desc=desc, disable=not show_progress, leave=False):
        h, l = _degrade(load_rgb(p), scale, space)
        hr.append(h)
        lr.append(l)
    names = [p.name for p in files]
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, key=np.array(key), names=np.array(names),
                     hr=np.concatenate([a.ravel() for a in hr]), hr_shapes=np.array([a.shape for a in hr], np.int64),
                     lr=np.concatenate([a.ravel() for a in lr]), lr_shapes=np.array([a.shape for a in lr], np.int64))
        os.replace(tmp, cache)  # atomic: a killed run never leaves a half cache under the real name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return TrainFolder(folder, where, names, hr, lr, cache, key, space)


def _split(flat: np.ndarray, shapes: np.ndarray) -> List[np.ndarray]:
    out, start = [], 0
    for shape in shapes:
        shape = tuple(int(v) for v in shape)
        n = int(np.prod(shape))
        out.append(flat[start:start + n].reshape(shape))
        start += n
    return out


def parse_folders(text: str) -> List[Path]:
    folders = [Path(t.strip()).expanduser() for t in str(text).split(",") if t.strip()]
    if not folders:
        raise HarnessError("give the training images with --data DIR (several: --data T91,BSD200)")
    return folders


class PatchSampler:
    """Random aligned LR/HR patch batches with the 8 flips/rotations, from a seeded numpy generator.

    Every valid patch position of every usable image is equally likely (so large images
    are not under-sampled next to T91's small ones). The generator state goes into
    ``last.pt``: a resumed run draws exactly the batches the uninterrupted one would.
    Y folders give 1-channel batches, RGB folders 3-channel ones, from the same draws.
    """

    def __init__(self, folders: Sequence[TrainFolder], scale: int, patch: int, batch: int, seed: int):
        self.scale, self.patch, self.batch = scale, patch, batch
        self.lr_patch = patch // scale
        spaces = {f.space for f in folders}
        if len(spaces) > 1:
            raise ValueError(f"training folders of several spaces ({', '.join(sorted(spaces))}) in one sampler")
        self.channels = 3 if spaces == {"rgb"} else 1
        p = self.lr_patch
        self.hr: List[np.ndarray] = []
        self.lr: List[np.ndarray] = []
        self.used: List[int] = []
        skipped: List[str] = []
        total = 0
        for f in folders:
            used = 0
            for name, hr, lr in zip(f.names, f.hr, f.lr):
                total += 1
                if lr.shape[0] < p or lr.shape[1] < p:
                    skipped.append(name)
                    continue
                self.hr.append(hr)
                self.lr.append(lr)
                used += 1
            self.used.append(used)
        where = ", ".join(str(f.images_dir) for f in folders)
        if not self.hr:
            biggest = max((min(h.shape[:2]) for f in folders for h in f.hr), default=0) // scale * scale
            hint = f"use --patch {biggest} or bigger images" if biggest >= 2 * scale else "use bigger images"
            raise HarnessError(f"all {total} images in {where} are smaller than the {patch}-pixel patch; {hint}")
        if skipped:
            shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
            warnings.warn(f"{len(skipped)} of {total} images in {where} are smaller than the {patch}-pixel patch "
                          f"and are skipped ({shown})")
        counts = np.array([(l.shape[0] - p + 1) * (l.shape[1] - p + 1) for l in self.lr], np.int64)
        self._ends = np.cumsum(counts)
        self.rng = np.random.default_rng(seed)

    def next(self):
        """(LR, HR) float32 tensors of shapes (B, C, p, p) and (B, C, sp, sp); C is 1 (Y) or 3 (RGB)."""
        import torch

        p, s, c = self.lr_patch, self.scale, self.channels
        picks = self.rng.integers(0, int(self._ends[-1]), size=self.batch)
        turns = self.rng.integers(0, 4, size=self.batch)
        flips = self.rng.integers(0, 2, size=self.batch)
        lr_out = np.empty((self.batch, c, p, p), np.float32)
        hr_out = np.empty((self.batch, c, p * s, p * s), np.float32)
        for b, pick in enumerate(picks):
            i = int(np.searchsorted(self._ends, pick, side="right"))
            offset = int(pick) - (int(self._ends[i - 1]) if i else 0)
            lr_img = self.lr[i]
            y, x = divmod(offset, lr_img.shape[1] - p + 1)
            lr_p = lr_img[y:y + p, x:x + p]
            hr_p = self.hr[i][y * s:(y + p) * s, x * s:(x + p) * s]
            if flips[b]:
                lr_p, hr_p = lr_p[:, ::-1], hr_p[:, ::-1]
            if c == 1:
                lr_out[b, 0] = np.rot90(lr_p, int(turns[b]))
                hr_out[b, 0] = np.rot90(hr_p, int(turns[b]))
            else:  # HxWx3 uint8 -> 3xHxW (rot90 turns the first two axes)
                lr_out[b] = np.moveaxis(np.rot90(lr_p, int(turns[b])), 2, 0)
                hr_out[b] = np.moveaxis(np.rot90(hr_p, int(turns[b])), 2, 0)
        if c == 3:  # uint8 -> [0, 1] in float32, as the quality protocol feeds RGB models
            lr_out /= 255.0
            hr_out /= 255.0
        return torch.from_numpy(lr_out), torch.from_numpy(hr_out)

    def get_state(self) -> str:
        return json.dumps(self.rng.bit_generator.state)

    def set_state(self, state: str) -> None:
        self.rng.bit_generator.state = json.loads(state)


# --------------------------------------------------------------------------- settings

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


def recipe_for(family: str, model_id: Optional[str] = None) -> Dict:
    """The family's recipe (:data:`RECIPES`), or :data:`GENERIC_RECIPE` for a family without one.

    ``by_model`` entries (fnmatch pattern -> keys) override the family's keys for matching ids.
    A recipe with ``from_base`` (GhostSR) takes those keys from the recipe of ``model_id``'s base
    network (the registry family's ``base_of``): a Ghost-FSRCNN fine-tunes at FSRCNN's rate and
    loss, a Ghost-EDSR at EDSR's rate and patch. Without ``model_id`` the family's own keys stand.
    """
    recipe = RECIPES.get(family, GENERIC_RECIPE)
    if model_id is not None and recipe.get("by_model"):
        # Members of a family that need their own settings (the largest ESPCN/FSRCNN: a longer
        # schedule), by fnmatch pattern on the id; the first match wins and is named in the record.
        overrides = recipe["by_model"]
        recipe = {k: v for k, v in recipe.items() if k != "by_model"}
        for pattern, changes in overrides.items():
            if fnmatch.fnmatchcase(model_id, pattern):
                recipe.update(changes, matched=pattern)
                break
    if recipe.get("from_base") and model_id is not None:
        from .models.registry import family_name

        base = init_source(model_id)
        if base != model_id:
            base_family = family_name(base)
            base_recipe = recipe_for(base_family, base)
            recipe = dict(recipe, base=base_family)
            for key in recipe["from_base"]:
                if key in base_recipe:
                    recipe[key] = base_recipe[key]
                else:
                    recipe.pop(key, None)
    return recipe


def default_patch(family: str, scale: int, model_id: Optional[str] = None) -> int:
    """The HR patch when --patch is not given: the recipe's LR patch times the scale, else
    DEFAULT_PATCH rounded down to a multiple of the scale."""
    lr_patch = recipe_for(family, model_id).get("lr_patch")
    return int(lr_patch) * scale if lr_patch else DEFAULT_PATCH // scale * scale


def recipe_record(family: str, scale: int, model_id: Optional[str] = None) -> Dict:
    """The recipe a run started from, for the provenance (--lr/--batch/--steps/--patch may override it)."""
    recipe = recipe_for(family, model_id)
    record = {"name": family if family in RECIPES else "generic", "lr": recipe["lr"], "batch": recipe["batch"],
              "steps": recipe["steps"], "patch": default_patch(family, scale, model_id)}
    if "base" in recipe:
        record["from_base"] = {"family": recipe["base"], "keys": list(recipe["from_base"])}
    if "loss" in recipe:
        record["loss"] = recipe["loss"]
    if "loss_border" in recipe:
        record["loss_border"] = recipe["loss_border"]
    if "betas" in recipe:
        record["betas"] = list(recipe["betas"])
    if "note" in recipe:
        record["note"] = recipe["note"]
    return record


def betas_for(family: str, model_id: Optional[str] = None) -> Tuple[float, float]:
    """Adam's betas of the family's recipe (PyTorch's default, 0.9 and 0.999, unless it says otherwise)."""
    b1, b2 = recipe_for(family, model_id).get("betas", (0.9, 0.999))
    return float(b1), float(b2)


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
            from .models.registry import family_name

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


def cosine_lr(step: int, steps: int, lr: float, min_lr: float) -> float:
    """The learning rate after ``step`` completed steps: cosine from ``lr`` to ``min_lr`` at ``steps``."""
    t = min(max(step, 0), steps) / steps
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


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


class NotTrainable(HarnessError):
    """A model with nothing to train (fixed weights, no parameters): pools skip it."""


@dataclass(frozen=True)
class Target:
    """What the trainer needs to know of a trainable id: its registry family, scale and space."""

    family: str
    scale: int
    space: str  # "y" (1-channel BT.601 Y) or "rgb" (3 channels)


_LEARNABLE_HINT = "give a learnable model such as eSR-TM_s2_K7_C4, ABPN_s2 or BSRN_s2 (python -m harness zoo list)"


def _esr_family(model_id: str) -> Optional[str]:
    from .models import esr

    return next((f for f, p in esr.PATTERNS.items() if p.fullmatch(model_id)), None)


def _refuse_fixed_esr(model_id: str, family: str) -> None:
    if family in FIXED_FAMILIES:
        raise NotTrainable(f"{model_id} has fixed weights (the authors' bicubic); nothing to train: {_LEARNABLE_HINT}")


def _rng_kept():
    """Runs a block without touching torch's global RNG (building a model to look at it draws weights)."""
    import torch

    return torch.random.fork_rng(devices=[])


def fresh_model(model_id: str, scale: Optional[int] = None):
    """The :class:`~harness.models.base.Upscaler` of ``model_id`` with fresh weights; its ``module``
    is what the trainer trains. eSR ids: :func:`harness.models.esr.build_module` (the authors'
    init); others: the registry's ``resolve(model_id)`` (the module's own init). The initial
    weights come from torch's global RNG (seeded by :func:`train_model`). ``scale`` is used for
    scale-free ids only (``package.module:Class``). NotTrainable for fixed-weight models."""
    import torch

    from .models import esr, id_scale
    from .models.registry import lookup, resolve

    family = _esr_family(model_id)
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
    from .models.registry import lookup

    family = _esr_family(model_id)
    if family is not None:  # no module built: the eSR pool is 1185 ids
        from .models import esr

        _refuse_fixed_esr(model_id, family)
        return Target(family, esr.parse(model_id)[1]["scale"], "y")
    with _rng_kept():
        model = fresh_model(model_id, scale)
    return Target(lookup(model_id).name, int(model.scale), model.input_space)


def trainable(model_id: str, scale: Optional[int] = None) -> Tuple[str, int]:
    """(family, scale) of a trainable id; a one-line error for fixed or unknown ids."""
    t = target(model_id, scale)
    return t.family, t.scale


# --------------------------------------------------------------------------- initial weights (fine-tuning)

INIT_SHORTHANDS = ("shipped", "official")


@dataclass(frozen=True)
class InitWeights:
    """What ``--init-weights`` resolved to for one model: the choice handed to the family's
    ``load_weights`` and the files behind it (hashed into the provenance)."""

    given: str          # as on the command line
    choice: str         # for load_weights: a path, or a family's own form (ClassSR's branches:A,B,C)
    files: Tuple[Path, ...]
    source: str         # the id whose weights they are (the base network of a GhostSR id)

    def sha256(self) -> List[str]:
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in self.files]

    def describe(self) -> str:
        """The provenance's ``init``: ``weights FILE (sha256 ...)``."""
        what = ", ".join(str(f) for f in self.files) if self.given in INIT_SHORTHANDS else self.choice
        shas = ", ".join(self.sha256()) or "no file"
        extra = f"; {self.given} weights of {self.source}" if self.given in INIT_SHORTHANDS else ""
        return f"weights {what} (sha256 {shas}{extra})"


def init_source(model_id: str) -> str:
    """The id whose shipped/official weights ``--init-weights shipped``/``official`` loads for
    ``model_id``: the registry family's ``base_of`` (GhostSR: its base network), else the id itself."""
    from .models.registry import lookup

    family = lookup(model_id)
    return family.base_of(model_id) if family.base_of is not None else model_id


def resolve_init(model_id: str, given: str) -> InitWeights:
    """``--init-weights`` for ``model_id``: a file, ``shipped``/``official`` (of :func:`init_source`),
    or a family's own ``KIND:FILE,...`` form (ClassSR: ``branches:D16,D36,D56``); one-line errors."""
    import re

    given = str(given).strip()
    if given in INIT_SHORTHANDS:
        source = init_source(model_id)
        if given == "shipped":
            from .weights import shipped_file

            return InitWeights(given, str(shipped_file(source)), (shipped_file(source),), source)
        if _esr_family(source) is None:
            raise HarnessError(f"--init-weights official: the harness keeps official weights for the eSR pool only, "
                               f"not {source}; give --init-weights FILE or shipped")
        from .models import esr
        from .weights import manifest, official_file

        stem = esr.official_name(source)
        if stem not in manifest():
            raise HarnessError(f"--init-weights official: the eSR authors published no {source}; give "
                               f"--init-weights FILE or shipped")
        path = official_file(stem)
        return InitWeights(given, str(path), (path,), source)
    path = Path(given).expanduser()
    kind = re.fullmatch(r"([A-Za-z]\w*):(.+)", given)
    if kind and not path.exists():  # the family's loader reads it; hash the files it names
        files = tuple(Path(t.strip()).expanduser().resolve() for t in kind.group(2).split(",")
                      if t.strip() and Path(t.strip()).expanduser().is_file())
        return InitWeights(given, given, files, model_id)
    if not path.is_file():
        raise HarnessError(f"--init-weights {given}: no such file; give a weights file (a state dict such as "
                           f"the <id>.pt that train writes), shipped or official")
    path = path.resolve()
    return InitWeights(given, str(path), (path,), model_id)


def state_sha256(module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, bytes): the start of a fine-tune, exactly."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}\t{t.dtype}\t{tuple(t.shape)}\n".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def load_init(model_id: str, model, init: InitWeights):
    """``model``'s module with the ``init`` weights, through the registry family's ``load_weights``
    (GhostSR ghostifies a base-network state dict; ClassSR takes ``branches:``)."""
    from .models.registry import lookup

    return lookup(model_id).load_weights(model_id, init.choice, model)


# --------------------------------------------------------------------------- files

def default_out(model_id: str) -> Path:
    return _cache_root() / model_id


def _atomic_save(obj, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _atomic_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Dict:
    import torch

    try:
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        except TypeError:  # torch < 1.13 has no weights_only
            ckpt = torch.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same user error
        raise HarnessError(f"cannot read checkpoint {path} ({type(exc).__name__}); delete it and train "
                           f"again with --force") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HarnessError(f"{path} is not a training checkpoint of this harness; delete it or train again with --force")
    return ckpt


def _finite(module, optimizer=None) -> bool:
    import torch

    tensors = list(module.state_dict().values())
    if optimizer is not None:
        tensors += [v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


# --------------------------------------------------------------------------- validation

class Validator:
    """Validation PSNR with the harness's own protocol (QualityEvaluator), LR pairs made once.

    The module being trained is scored inside the model's own :class:`Upscaler` (its space,
    scale and notes; ``models[model_id]``, which :func:`train_model` fills with the one it
    trains, else ``resolve(model_id)``): Y models see Y, RGB models RGB, and PSNR is on Y as
    the protocol says.
    """

    def __init__(self, val_data: Optional[str], set_name: str = "Set5"):
        from .datasets import EMBEDDED, ENV_DATA, _set_dir, data_root, embedded_set, find_set
        from .quality import QualityEvaluator

        if val_data:
            self.image_set = find_set(data_root(val_data), set_name)
        else:
            env = os.environ.get(ENV_DATA)
            root = Path(env).expanduser() if env else None
            if root is not None and root.is_dir() and _set_dir(root, set_name) is not None:
                self.image_set = find_set(root, set_name)
            else:
                self.image_set = embedded_set()
        self.evaluator = QualityEvaluator(show_progress=False)
        self.standard = self.image_set.name != EMBEDDED
        self.models: Dict[str, object] = {}

    def model_for(self, model_id: str, module):
        """The Upscaler of ``model_id`` with ``module`` (in eval mode) as its network."""
        import copy

        from .models import resolve

        template = self.models.get(model_id)
        if template is None:
            with _rng_kept():
                template = self.models[model_id] = resolve(model_id)
        model = copy.copy(template)
        model.module = module.eval()
        model.weights = "training"
        return model

    def psnr(self, model_id: str, module) -> float:
        was_training = module.training
        try:
            return float(self.evaluator.evaluate(self.model_for(model_id, module), self.image_set).psnr)
        except RuntimeError as exc:  # e.g. an image too small for the network's own downsampling
            raise HarnessError(f"{model_id} failed on the validation set {self.image_set.name} "
                               f"({_first_line(exc)}); use bigger validation images or --val-every 0") from None
        finally:
            module.train(was_training)

    def record(self) -> Dict:
        return {"name": self.image_set.name, "images": len(self.image_set), "origin": self.image_set.origin}


# --------------------------------------------------------------------------- training

class _StopFlag:
    """First Ctrl-C: finish the current step, save last.pt and stop; a second one aborts at once."""

    def __init__(self):
        self.set = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _config(model_id: str, settings: Settings, scale: int, patch: int, lr: float, data: Sequence[TrainFolder],
            init: Optional[str] = None) -> Dict:
    config = {"model": model_id, "scale": scale, "steps": settings.steps, "batch": settings.batch, "patch": patch,
              "lr": lr, "min_lr": settings.min_lr, "seed": settings.seed,
              "data": [f.key for f in data]}
    if settings.loss not in (None, "l1"):  # only MSE runs carry it: L1 checkpoints stay as they were
        config["loss"] = settings.loss
    if init is not None:  # only fine-tunes carry it: other checkpoints stay as they were
        config["init"] = init
    return config


def _hooks(module):
    """The module's own training hooks, if it has them: ``training_loss(lr, hr) -> (loss, parts)``
    (used instead of L1) and ``trainable_parameters()`` (only those are optimised; the others are
    frozen). None for each hook it lacks."""
    loss = getattr(module, "training_loss", None)
    select = getattr(module, "trainable_parameters", None)
    return (loss if callable(loss) else None), (select if callable(select) else None)


def _parts_text(parts: Optional[Dict[str, float]]) -> str:
    return "" if not parts else " (" + ", ".join(f"{k} {v:.5g}" for k, v in parts.items()) + ")"


def train_model(model_id: str, settings: Settings, data: Sequence[TrainFolder], out: Path,
                validator: Optional[Validator] = None, resume: bool = False, stop_at: Optional[int] = None,
                show_progress: bool = False, log=None) -> Dict:
    """Train one model in ``out``; returns the provenance record (``status`` finished or paused)."""
    import torch

    from .progress import progress

    t = target(model_id, settings.scale)
    family, scale = t.family, t.scale
    wrong = sorted({f.space for f in data} - {t.space})
    if wrong:
        raise HarnessError(f"{model_id} trains on {t.space.upper()} pairs, but the training data was loaded as "
                           f"{', '.join(w.upper() for w in wrong)} (load_folder(..., space={t.space!r}))")
    recipe = recipe_record(family, scale, model_id)
    settings = for_family(settings, family, model_id)
    patch = patch_for(settings, model_id, scale, family)
    lr = lr_for(settings, family, model_id)
    sampler = PatchSampler(data, scale, patch, settings.batch, settings.seed)
    last_path, best_path = out / "last.pt", out / "best.pt"
    resuming = resume and last_path.is_file()
    init = resolve_init(model_id, settings.init_weights) if settings.init_weights and not resuming else None
    config = _config(model_id, settings, scale, patch, lr, data, init.describe() if init else None)
    log = log or (lambda msg: None)

    previous_threads = torch.get_num_threads()
    threads = settings.threads or previous_threads
    torch.set_num_threads(threads)
    torch_rng = torch.get_rng_state()
    try:
        torch.manual_seed(settings.seed)
        # eSR: the authors' init; others: the module's own; drawn from the seeded torch RNG
        model = fresh_model(model_id, settings.scale)
        if init is not None:  # a fine-tune: the given weights replace the init (a resumed run has them in last.pt)
            model.module = load_init(model_id, model, init)
        module = model.module.to(settings.device).train()
        model.module = module
        if settings.device != "cpu":
            # Fixed patch shapes: let cuDNN time its algorithms once instead of using its heuristics.
            # (On an H100 these small nets are host-bound anyway: each process keeps one CPU core busy,
            # ESPCN_s2_D34_S32 ~100 steps/s with six runs at once; --jobs is how to fill the GPU.)
            torch.backends.cudnn.benchmark = True
        if validator is not None:
            validator.models[model_id] = model  # scored as this Upscaler (space, scale) with the trained module
        loss_hook, select = _hooks(module)
        # Layers that follow the schedule (GhostSR's Gumbel temperature): told the step before each one.
        scheduled = [m for m in module.modules() if callable(getattr(m, "training_progress", None))]
        if loss_hook is not None:  # the model's own loss sees the whole patch
            border = {"hr_pixels": 0, "how": "off (the model's own training_loss)"}
        else:
            border = loss_border(settings.loss_border, module, 3 if t.space == "rgb" else 1, patch // scale,
                                 scale, settings.device)
        crop = int(border["hr_pixels"])
        if crop:  # only runs that crop carry it: earlier checkpoints stay as they were
            config["loss_border"] = crop
        if select is not None:  # only these are optimised; the rest is frozen (no gradient, no update)
            trained = list(select())
            chosen = {id(p) for p in trained}
            if not trained:
                raise HarnessError(f"{model_id}: trainable_parameters() returned no parameter; nothing to train")
            for p in module.parameters():
                if id(p) not in chosen:
                    p.requires_grad_(False)
        else:
            trained = list(module.parameters())
        betas = betas_for(family, model_id)
        optimizer = torch.optim.Adam(trained, lr=lr, betas=betas)
        steps, min_lr = settings.steps, settings.min_lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: cosine_lr(e, steps, lr, min_lr) / lr)
        state = {"step": 0, "best_psnr": None, "best_step": None, "last_psnr": None, "history": [],
                 "wall_s": 0.0, "cpu_s": 0.0, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if init is not None:  # the exact start, whatever files and loader made it (kept in last.pt's state)
            state["init_state_sha256"] = state_sha256(module)
        if resuming:
            ckpt = load_checkpoint(last_path)
            if ckpt["config"].get("model") != model_id:
                raise HarnessError(f"{last_path} is a checkpoint of {ckpt['config'].get('model')}, not {model_id}; "
                                   f"give another --out or train again with --force")
            if "init" in ckpt["config"]:  # a fine-tune goes on from last.pt: its start is the checkpoint's
                config["init"] = ckpt["config"]["init"]
            changed = [f"{k} {ckpt['config'].get(k)} -> {v}" for k, v in config.items() if ckpt["config"].get(k) != v]
            if changed:
                warnings.warn(f"resuming {model_id} with changed settings ({'; '.join(changed)}); the result is "
                              f"no longer what one uninterrupted run gives")
            module.load_state_dict(ckpt["module"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if changed:  # the schedule of this run's --lr/--steps from here on, by LambdaLR's own formula
                scheduler.base_lrs = [lr for _ in optimizer.param_groups]
                for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas):
                    group["lr"] = lr * fn(scheduler.last_epoch)
            sampler.set_state(ckpt["rng"]["numpy"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            state = ckpt["state"]
        params = list(module.parameters())

        def save_last(step: int) -> None:
            if not _finite(module, optimizer):  # never replace the last good checkpoint with NaN
                raise HarnessError(f"the weights became NaN/inf by step {step}; lower --lr (was {lr:g}); "
                                   f"{_kept(last_path)}")
            state["step"] = step
            _atomic_save({"format": CHECKPOINT_FORMAT, "config": config, "step": step,
                          "module": module.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(),
                          "rng": {"numpy": sampler.get_state(), "torch": torch.get_rng_state()},
                          "state": state}, last_path)

        start = int(state["step"])
        done_json = out / f"{model_id}.json"
        if resuming and start >= steps and done_json.is_file() and (out / f"{model_id}.pt").is_file():
            try:  # --resume of a finished run: nothing to do; its record stays as written
                return json.loads(done_json.read_text())
            except ValueError:
                pass  # a damaged record is written again below
        # Where each stretch of steps ran (a run started on a GPU box may be finished on a laptop).
        state.setdefault("segments", []).append({"from_step": start, "device": _device_name(settings.device)})
        wall0, cpu0 = time.perf_counter(), time.process_time()
        wall_before, cpu_before = float(state["wall_s"]), float(state["cpu_s"])
        stop = min(steps, stop_at) if stop_at else steps
        bar = progress(None, total=steps, desc=model_id, disable=not show_progress)
        bar.n = bar.last_print_n = bar.initial = start
        running, interrupted = state.get("running_loss"), False
        diverged = float(getattr(module, "diverged_loss", DIVERGED_LOSS))
        step = start
        try:
            with _StopFlag() as flag:
                while step < stop:
                    lr_batch, hr_batch = sampler.next()
                    if settings.device != "cpu":
                        lr_batch = lr_batch.to(settings.device, non_blocking=True)
                        hr_batch = hr_batch.to(settings.device, non_blocking=True)
                    parts = None
                    for layer in scheduled:
                        layer.training_progress(step, steps)
                    try:
                        if loss_hook is not None:  # the model's own loss (ClassSR: L1 + class + average)
                            loss, parts = loss_hook(lr_batch, hr_batch)
                        else:
                            loss = (mse_loss if settings.loss == "mse" else l1_loss)(
                                crop_border(module(lr_batch), crop), crop_border(hr_batch, crop))
                    except RuntimeError as exc:  # e.g. a patch too small for the network's own downsampling
                        raise HarnessError(f"{model_id} failed on {tuple(lr_batch.shape)} LR patches at step "
                                           f"{step + 1} ({_first_line(exc)}); try a bigger --patch") from None
                    value = float(loss.item())
                    if not math.isfinite(value) or value > diverged:
                        what = "NaN" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.3g}"
                        raise HarnessError(f"loss became {what} at step {step + 1}; lower --lr (was {lr:g}) "
                                           f"or check the images in --data; {_kept(last_path)}")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    if not all(bool(torch.isfinite(p).all()) for p in params):
                        raise HarnessError(f"the weights became NaN/inf at step {step}; lower --lr "
                                           f"(was {lr:g}); {_kept(last_path)}")
                    running = value if running is None else 0.98 * running + 0.02 * value
                    state["running_loss"] = running
                    if parts:  # the same running mean for each part of the model's own loss
                        before = state.get("running_parts") or {}
                        state["running_parts"] = {k: float(v) if k not in before else
                                                  0.98 * before[k] + 0.02 * float(v) for k, v in parts.items()}
                    if validator is not None and (step % settings.val_every == 0 or step == steps):
                        psnr = validator.psnr(model_id, module)
                        state["last_psnr"] = psnr
                        running_parts = state.get("running_parts")
                        state["history"].append([step, psnr] + ([dict(running_parts)] if running_parts else []))
                        if state["best_psnr"] is None or psnr > state["best_psnr"]:
                            state["best_psnr"], state["best_step"] = psnr, step
                            _atomic_save({k: v.detach().cpu() for k, v in module.state_dict().items()}, best_path)
                        msg = (f"{model_id} step {step}/{steps} loss {running:.5f}{_parts_text(running_parts)} "
                               f"{validator.image_set.name} PSNR {psnr:.2f} dB (best {state['best_psnr']:.2f})")
                        if show_progress:
                            bar.write(msg, file=sys.stderr)
                        else:
                            log(msg)
                    state["wall_s"] = wall_before + time.perf_counter() - wall0
                    state["cpu_s"] = cpu_before + time.process_time() - cpu0
                    state["segments"][-1].update(to_step=step, wall_s=round(time.perf_counter() - wall0, 3),
                                                 cpu_s=round(time.process_time() - cpu0, 3))
                    if step % settings.checkpoint_every == 0 or step == stop or flag.set:
                        save_last(step)
                    bar.update(1)
                    if step % 10 == 0 or step == stop:
                        post = {"loss": f"{running:.4f}", "lr": f"{optimizer.param_groups[0]['lr']:.1e}"}
                        if state["last_psnr"] is not None:
                            post["psnr"] = f"{state['last_psnr']:.2f}"
                        bar.set_postfix(post, refresh=False)
                    if flag.set:
                        interrupted = True
                        break
        finally:
            bar.close()
        if interrupted:
            log(f"{model_id}: stopped at step {step} of {steps}; {last_path} saved, continue with --resume")
            raise KeyboardInterrupt
        extra: Dict = {"optimizer": f"Adam (betas {betas[0]:g}, {betas[1]:g})", "loss_border": border}
        if "init" in config:
            extra["init"] = config["init"]
            extra["init_state_sha256"] = state.get("init_state_sha256")
        if loss_hook is not None:
            extra["loss"] = str(getattr(module, "loss_name", f"{type(module).__name__}.training_loss"))
            extra["loss_parts"] = state.get("running_parts")
        if select is not None:
            total = sum(p.numel() for p in module.parameters())
            n_trained = sum(p.numel() for p in trained)
            extra["trained_parameters"] = {"trained": n_trained, "frozen": total - n_trained,
                                           "by": f"{type(module).__name__}.trainable_parameters"}
        record = provenance(model_id, family, scale, settings, patch, lr, threads, data, sampler, validator,
                            state, step, space=t.space, recipe=recipe, extra=extra)
        if step < steps:
            record["status"] = "paused"
            return record
        weights = out / f"{model_id}.pt"
        if not _finite(module):
            raise HarnessError(f"the final weights of {model_id} hold NaN/inf; lower --lr (was {lr:g})")
        _atomic_save({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, weights)
        record["weights"] = str(weights)
        record["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        _atomic_text(json.dumps(_json_safe(record), indent=2) + "\n", out / f"{model_id}.json")
        return record
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_rng_state(torch_rng)


def _device_name(device: str) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA ...)``: GPU runs are not bit-reproducible across GPU models."""
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def _json_safe(obj):
    """Strict JSON has no NaN/inf (an exact reconstruction's PSNR is inf): those become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _kept(last_path: Path) -> str:
    return f"the last good checkpoint {last_path} is kept" if last_path.is_file() else "no checkpoint was written"


def provenance(model_id, family, scale, settings: Settings, patch, lr, threads, data, sampler, validator,
               state, step, space: str = "y", recipe: Optional[Dict] = None, extra: Optional[Dict] = None) -> Dict:
    """The provenance record; ``extra`` overrides or adds entries (a fine-tune's ``init``, a model's
    own ``loss`` and its ``loss_parts``, ``trained_parameters``, the recipe's Adam betas)."""
    import torch

    from .export import harness_version

    esr_family = _esr_family(model_id) is not None
    record = {
        "model": model_id, "family": family, "scale": scale, "status": "finished",
        "input_space": space,
        "data": [f.record(used) for f, used in zip(data, sampler.used)],
        "images": sum(sampler.used),
        "steps": step, "batch": settings.batch, "patch": patch, "lr_patch": patch // scale,
        "recipe": recipe if recipe is not None else recipe_record(family, scale),
        "augmentation": "random flips and 90-degree rotations (8 orientations)",
        "degradation": "modcrop, MATLAB-faithful bicubic shrink of the uint8 RGB image, " +
                       ("BT.601 Y in [0, 1]" if space == "y" else "RGB in [0, 1]"),
        "loss": settings.loss.upper(), "optimizer": "Adam (betas 0.9, 0.999)",
        "lr_schedule": {"type": "cosine", "lr": lr, "min_lr": settings.min_lr, "steps": settings.steps},
        "init": "authors' initialisation (harness.models.esr.build_module)" if esr_family else
                "module default (PyTorch), as the registry's resolve(id) builds it",
        "seed": settings.seed, "threads": threads, "device": _device_name(settings.device),
        "segments": state.get("segments", []),
        "wall_time_s": round(float(state["wall_s"]), 3), "cpu_time_s": round(float(state["cpu_s"]), 3),
        "validation": None if validator is None else dict(validator.record(), every=settings.val_every),
        "final_psnr": state["last_psnr"] if state["history"] and state["history"][-1][0] == step else None,
        "best_psnr": state["best_psnr"], "best_step": state["best_step"],
        "history": state["history"],
        "started": state["started"], "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "harness_version": harness_version(), "torch_version": torch.__version__,
        "python_version": platform.python_version(), "machine": platform.machine(),
    }
    record.update(extra or {})
    return record


# --------------------------------------------------------------------------- runs

@dataclass
class Plan:
    model_id: str
    scale: int
    out: Path
    action: str  # train, resume, skip
    reason: str = ""
    space: str = "y"  # the space of its training pairs (load_folder(..., space=))


def plan(model_ids: Sequence[str], settings: Settings, out: Optional[str], pool: bool,
         resume: bool, force: bool) -> List[Plan]:
    """What to do with each model, checked before any training starts (so a pool fails early)."""
    init = settings.init_weights
    if init and len(model_ids) > 1 and init not in INIT_SHORTHANDS:
        raise HarnessError(f"--init-weights {init} starts one model; with --pool or several ids give "
                           f"--init-weights shipped or official (each model's own)")
    plans = []
    for mid in model_ids:
        try:
            t = target(mid, settings.scale)
        except NotTrainable:
            if pool:
                plans.append(Plan(mid, 0, Path(), "skip", "fixed weights, nothing to train"))
                continue
            raise
        family, scale, space = t.family, t.scale, t.space
        patch_for(settings, mid, scale, family)
        lr_for(settings, family)
        folder = (Path(out).expanduser() / mid if pool else Path(out).expanduser()) if out else default_out(mid)
        final, last = folder / f"{mid}.pt", folder / "last.pt"
        if force:
            plans.append(Plan(mid, scale, folder, "train", space=space))
        elif resume and last.is_file():
            plans.append(Plan(mid, scale, folder, "resume", space=space))
        elif final.is_file():
            plans.append(Plan(mid, scale, folder, "skip", f"already trained ({final}; --force retrains)", space))
        elif resume and not pool:
            raise HarnessError(f"no checkpoint {last} to resume; run without --resume to start {mid}, "
                               f"or give the --out of the earlier run")
        elif last.is_file():
            raise HarnessError(f"{last} holds an unfinished run of {mid}; add --resume to continue it "
                               f"or --force to start over")
        else:
            plans.append(Plan(mid, scale, folder, "train", space=space))
        if init and plans[-1].action == "train":  # the weights must exist and fit before any training starts
            _check_init(mid, settings.scale, init)
    return plans


LOCK_NAME = ".train.lock"


@contextlib.contextmanager
def hold_folders(plans: Sequence[Plan]):
    """Own every ``--out`` folder that will be trained for the whole run.

    Two runs writing one folder corrupt each other (a second ``--resume`` reads the first one's
    last.pt and saves its own over it), so the second is refused with the first one's pid. The
    lock is ``flock`` on ``<out>/.train.lock``: the kernel drops it when the holder exits, even on
    SIGKILL, so a crashed run never leaves a stale lock. Without ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with contextlib.ExitStack() as held:
        # one lock per folder: a second flock on the same folder would be refused as held
        folders = {p.out.resolve(): p.out for p in plans}
        for out in folders.values():
            path = out / LOCK_NAME
            try:
                out.mkdir(parents=True, exist_ok=True)
                handle = held.enter_context(open(path, "a+"))
            except OSError:  # a folder that cannot be made: its own training reports that, as one model's failure
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HarnessError(f"{out} is being trained by {holder} (lock {path}); wait for it to finish, "
                                   f"stop it (Ctrl-C saves last.pt for --resume) or give another --out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {platform.node()}\n")
            handle.flush()
        yield


def _check_init(model_id: str, scale: Optional[int], given: str) -> None:
    with _rng_kept():
        load_init(model_id, fresh_model(model_id, scale), resolve_init(model_id, given))


def run(model_ids: Sequence[str], settings: Settings, out: Optional[str] = None, pool: bool = False,
        resume: bool = False, force: bool = False, stop_at: Optional[int] = None,
        show_progress: bool = False, log=None, jobs: int = 1) -> List[Dict]:
    """Train ``model_ids``; a record per model (skipped ones included).

    ``jobs`` > 1 trains that many models at once, each in its own process with one torch
    thread (unless ``--threads`` says otherwise), the most expensive first: on a small CPU
    several single-threaded trainings of small nets use the cores better than one
    multi-threaded one. A model that fails there is reported and the others go on.
    """
    settings.check()
    if stop_at is not None and stop_at < 1:
        raise HarnessError(f"--stop-at {stop_at}: give a positive step number")
    if resume and force:
        raise HarnessError("--resume and --force contradict each other: --resume continues last.pt, "
                           "--force starts over; give one")
    if jobs < 1:
        raise HarnessError(f"--jobs {jobs}: give a positive number of parallel trainings")
    folders = parse_folders(",".join(settings.data))
    plans = plan(model_ids, settings, out, pool, resume, force)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    records = []
    for p in plans:
        if p.action == "skip":
            log(f"{p.model_id}: skipped, {p.reason}")
            records.append({"model": p.model_id, "status": "skipped", "reason": p.reason})
    todo = [p for p in plans if p.action != "skip"]
    with hold_folders(todo):
        return records + _run_plans(todo, settings, folders, stop_at, show_progress, log, jobs)


def _run_plans(todo: Sequence[Plan], settings: Settings, folders: Sequence[Path], stop_at, show_progress, log,
               jobs: int) -> List[Dict]:
    if jobs > 1 and len(todo) > 1:
        return _run_parallel(todo, settings, folders, stop_at, jobs, log)
    records: List[Dict] = []
    validator = Validator(settings.val_data, settings.val_set) if settings.val_every else None
    loaded: Dict[Tuple[int, str], List[TrainFolder]] = {}
    for p in todo:
        if (p.scale, p.space) not in loaded:
            if any(scale != p.scale for scale, _ in loaded):
                loaded.clear()  # one scale in memory at a time (pools go scale by scale)
            loaded[p.scale, p.space] = [load_folder(f, p.scale, show_progress, space=p.space) for f in folders]
        record = _train_planned(p, settings, loaded[p.scale, p.space], validator, stop_at, show_progress, log)
        records.append(record)
        if record["status"] == "paused":
            log(f"{p.model_id}: paused at step {record['steps']} of {record['lr_schedule']['steps']}; "
                f"continue with --resume")
            break
    return records


def _train_planned(p: Plan, settings: Settings, data: Sequence[TrainFolder], validator, stop_at, show_progress,
                   log) -> Dict:
    if p.action == "train":
        for name in ("last.pt", "best.pt", f"{p.model_id}.pt", f"{p.model_id}.json"):
            if (p.out / name).is_file():
                (p.out / name).unlink()
    p.out.mkdir(parents=True, exist_ok=True)
    record = train_model(p.model_id, settings, data, p.out, validator, resume=p.action == "resume",
                         stop_at=stop_at, show_progress=show_progress, log=log)
    record["out"] = str(p.out)
    return record


def _log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_WATCHED_PARENT: Optional[int] = None


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """In a ``--jobs`` worker: exit when the parent process is gone (killed, even by SIGKILL), so no
    orphan keeps training (and writing its folder) after the run was stopped. The checkpoints are
    written atomically, so ``--resume`` continues from the last one."""
    global _WATCHED_PARENT
    if _WATCHED_PARENT == parent:
        return
    _WATCHED_PARENT = parent

    def watch():
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _train_in_child(p: Plan, settings: Settings, folders: Sequence[Path], stop_at) -> Dict:
    """One model in a worker process (``--jobs``): its own data cache read and validator."""
    _exit_with_parent(os.getppid())
    data = [load_folder(f, p.scale, space=p.space) for f in folders]
    validator = Validator(settings.val_data, settings.val_set) if settings.val_every else None
    return _train_planned(p, settings, data, validator, stop_at, False, _log_stderr)


def training_cost(model_id: str, settings: Settings) -> float:
    """MACs of a whole training run (forward on the LR patches x batch x steps): orders ``--jobs`` work."""
    from .models.complexity import complexity

    t = target(model_id, settings.scale)
    s = for_family(settings, t.family, model_id)
    patch = patch_for(s, model_id, t.scale, t.family)
    with _rng_kept():
        module = fresh_model(model_id, settings.scale).module
    try:
        macs = complexity(module, t.scale, out_hw=(patch, patch), channels=1 if t.space == "y" else 3)["macs_per_fhd"]
    except RuntimeError:  # the patch is too small for the network: its run stops at step 1 with a one-line error
        return 0.0
    return float(macs) * s.batch * s.steps


def _run_parallel(todo: Sequence[Plan], settings: Settings, folders: Sequence[Path], stop_at, jobs: int,
                  log) -> List[Dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from dataclasses import replace

    for scale, space in sorted({(p.scale, p.space) for p in todo}):  # make the caches once, before the workers race
        for f in folders:
            load_folder(f, scale, space=space)
    child = replace(settings, threads=settings.threads or 1)
    order = sorted(todo, key=lambda p: training_cost(p.model_id, settings), reverse=True)
    log(f"training {len(order)} models, {jobs} at a time ({child.threads} torch thread(s) each), longest first")
    records, failed = [], []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_child, p, child, list(folders), stop_at): p for p in order}
        for future in as_completed(futures):
            p = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the pool
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log(f"{p.model_id}: FAILED ({reason})")
                failed.append(p.model_id)
                records.append({"model": p.model_id, "status": "failed", "reason": reason, "out": str(p.out)})
                continue
            log(f"{p.model_id}: {record['status']} at step {record['steps']} ({record['wall_time_s'] / 60:.1f} min)")
            records.append(record)
    if failed:
        log(f"{len(failed)} of {len(order)} models failed: {', '.join(failed)}")
    return records


# --------------------------------------------------------------------------- command line

def cmd_train(args) -> int:
    from .models.pools import pool_ids

    ids = [t.strip() for t in (args.model or "").split(",") if t.strip()]
    try:
        scales = [int(s) for s in args.scale.split(",") if s.strip()] if args.scale else []
    except ValueError:
        raise HarnessError(f"--scale {args.scale}: give integers such as 2 or 2,4") from None
    if args.pool:
        from .models import id_scale

        ids += [i for i in pool_ids(args.pool) if not scales or id_scale(i) in scales]
    elif len(scales) > 1:
        raise HarnessError(f"--scale {args.scale}: give one scale for the scale-free ids (package.module:Class); "
                           f"several scales only filter a --pool")
    if not ids:
        raise HarnessError("give a model id (python -m harness train eSR-TM_s2_K7_C4 --data T91) or --pool NAME")
    if not args.data:
        raise HarnessError("give the training images with --data DIR (several: --data T91,BSD200)")
    settings = Settings(data=[args.data], steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                        min_lr=args.min_lr, seed=args.seed, threads=args.threads, val_every=args.val_every,
                        val_data=args.val_data, val_set=args.val_set, checkpoint_every=args.checkpoint_every,
                        scale=scales[0] if scales and not args.pool else None,
                        init_weights=args.init_weights, device=args.device, loss=args.loss,
                        loss_border=args.loss_border)
    if getattr(args, "cluster", None):
        from .cluster import train_on_cluster  # Ray is imported there, only when asked for

        return train_on_cluster(ids, args, args.cluster, settings=settings)
    records = run(ids, settings, out=args.out, pool=bool(args.pool) or len(ids) > 1, resume=args.resume,
                  force=args.force, stop_at=args.stop_at, show_progress=not args.json and sys.stderr.isatty(),
                  jobs=args.jobs)
    if args.json:
        json.dump(_json_safe(records), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from .output import emit

        rows = [{"model": r["model"], "status": r["status"], "steps": r.get("steps"),
                 "psnr": r.get("final_psnr"), "best": r.get("best_psnr"),
                 "set": (r.get("validation") or {}).get("name"),
                 "hours": r["wall_time_s"] / 3600 if "wall_time_s" in r else None,
                 "weights": r.get("weights") or r.get("reason", "")} for r in records]
        emit(rows, ("model", "status", "steps", "psnr", "best", "set", "hours", "weights"), False,
             digits={"psnr": 2, "best": 2, "hours": 2}, headers={"psnr": "PSNR (dB)", "best": "best (dB)"})
    return 1 if any(r["status"] == "failed" for r in records) else 0


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``train`` to the CLI's subparsers (harness/cli.py wires it in)."""
    p = subparsers.add_parser(
        "train", help="train learnable zoo models (eSR pool, ABPN, BSRN, EDSR, GhostSR, ClassSR, ...) on a "
                      "folder of images, from scratch or (--init-weights) from given weights",
        description="Train any learnable model of the zoo: the eSR pool on the Y channel, RGB models (ABPN, "
                    "BSRN) on RGB patches (L1, Adam, cosine LR decay, random aligned patches with flips/rotations, "
                    "MATLAB-bicubic LR; steps/batch/lr/patch from the family's recipe). Fixed-weight models "
                    "(bicubic, ONNX files) are refused. Writes last.pt/best.pt checkpoints and, at the end, <id>.pt "
                    "(use with --weights PATH) and <id>.json (provenance) in --out.")
    p.add_argument("model", nargs="?", help="model id(s), comma-separated (python -m harness zoo list)")
    p.add_argument("--pool", help="train every model of a pool (default, paper-front, all); fixed-weight "
                                  "bicubic rows are skipped, finished ones too unless --force")
    p.add_argument("--scale", help="with --pool: only these scales, e.g. 2 or 2,4; with ids: the scale of "
                                   "scale-free ids (package.module:Class)")
    p.add_argument("--data", metavar="DIR[,DIR]", help="training image folder(s), images directly inside or in "
                                                       "DIR/HR/ (T91, BSD200, General100, DIV2K); comma-separated")
    p.add_argument("--steps", type=int, help="training steps (default: the family's recipe, 15000; 60000 for "
                                             "ESPCN_s*_D34_S32, FSRCNN_s*_S12_M4 and eSR-CNN_s*_C2_D1_S3; 20000 "
                                             "for ABPN)")
    p.add_argument("--batch", type=int, help="patches per step (default: the family's recipe, 32 for "
                                             "eSR-MAX/TM/TR, 16 for the others)")
    p.add_argument("--patch", type=int, help=f"HR patch size in pixels, a multiple of the scale "
                                             f"(default {DEFAULT_PATCH}; {DEFAULT_PATCH // 3 * 3} at x3; ABPN "
                                             f"64 and BSRN 48 LR pixels, i.e. times the scale)")
    p.add_argument("--loss", choices=LOSSES, help="training loss (default: the family's recipe: MSE for "
                                                  "the eSR pool's families, L1 for the others)")
    p.add_argument("--loss-border", metavar="auto|off|N",
                   help="HR pixels left out of the loss at each side of a patch, where the convolutions see zero "
                        "padding instead of picture: auto (the net's receptive radius times the scale; nothing for "
                        "nets whose field spans the patch), off, or a number (default: the family's recipe: auto "
                        "for eSR-MAX and eSR-TR, off for the others)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the family's recipe, 5e-3 for "
                                            "eSR-MAX/TM/TR, 4e-3 for eSR-CNN, 1e-3 for most others)")
    p.add_argument("--min-lr", type=float, default=1e-5, help="learning rate reached at --steps by the cosine "
                                                              "decay (default 1e-5)")
    p.add_argument("--init-weights", metavar="FILE|shipped|official",
                   help="fine-tune: start from these weights instead of the initialisation, loaded as --weights "
                        "loads them (a Ghost-<id> takes a state dict of <id> and ghostifies it); shipped/official: "
                        "the project's/the authors' weights of the id (of <id> for Ghost-<id>); ClassSR: "
                        "branches:D16,D36,D56 (trained FSRCNN branches, a fresh classifier). Recorded in the "
                        "provenance with its sha256; --resume continues from last.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and patch sampling (default 0)")
    p.add_argument("--device", default="cpu", help="where to train: cpu (default), cuda or cuda:N (the checkpoints "
                                                  "and weights are saved for the CPU either way)")
    p.add_argument("--jobs", type=int, default=1, help="train this many models at once, one process each with one "
                                                       "torch thread (default 1); the longest runs start first")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own, one per physical core); "
                                               "recorded, as results can differ in the last bits across counts")
    p.add_argument("--val-every", type=int, default=1000, help="validate every N steps and at the end "
                                                               "(default 1000; 0: no validation)")
    p.add_argument("--val-data", metavar="DIR", help="folder holding <Set>/HR/ for validation (default: "
                                                     "$HARNESS_DATA if it holds the set, else the embedded images)")
    p.add_argument("--val-set", default="Set5", help="validation set under --val-data (default Set5)")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="save last.pt every N steps (default 1000)")
    p.add_argument("--out", metavar="DIR", help="output folder (default $HARNESS_CACHE/train/<id>/; with --pool "
                                                "or several ids: DIR/<id>/)")
    p.add_argument("--resume", action="store_true", help="continue from last.pt in the output folder")
    p.add_argument("--force", action="store_true", help="start over even if a finished or unfinished run exists")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="pause at this step (last.pt saved; "
                                                               "continue later with --resume)")
    p.add_argument("--json", action="store_true", help="print the provenance records as JSON")
    p.add_argument("--cluster", metavar="ADDRESS", help="train one Ray task per model on the Ray cluster at ADDRESS "
                                                       "(HEAD:6379; 'local': a local Ray instance); results land "
                                                       "in --out as without it (needs the [ray] extra)")
    p.set_defaults(func=cmd_train)
    return p
