"""Training data: the images of a training folder as LR/HR pairs (MATLAB-bicubic degradation, in
the model's space), their ``.npz`` cache in ``$HARNESS_CACHE/train/``, and the random aligned patch
batches with the 8 flips/rotations (:class:`PatchSampler`)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import HarnessError
from .files import cache_root

CACHE_FORMAT = 1      # bump when the cached Y arrays change meaning
RGB_CACHE_FORMAT = 1  # the same for the RGB caches (their own key and file name: Y caches stay valid)
SPACES = ("y", "rgb")


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


def image_files(folder: Path) -> Tuple[Path, List[Path]]:
    """The training images of ``folder`` (directly in it, or in its ``HR/`` subfolder)."""
    from ..imageio import is_image_file

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


def degrade(rgb: np.ndarray, scale: int, space: str = "y") -> Tuple[np.ndarray, np.ndarray]:
    """(HR, LR): modcrop, MATLAB bicubic shrink on uint8 RGB; then BT.601 Y float32 in [0, 1]
    (``space='y'``), or the uint8 RGB images themselves (``'rgb'``)."""
    from ..color import rgb_to_y
    from ..imresize import downscale, modcrop

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
    from ..imageio import load_rgb
    from ..progress import progress

    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, not {space!r}")
    folder = Path(folder).expanduser()
    where, files = image_files(folder)
    key = cache_key(files, scale, space)
    tag = "" if space == "y" else f"{space}_"
    cache = cache_root() / f"{folder.name or 'data'}_x{scale}_{tag}{key[:16]}.npz"
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
        hr_img, lr_img = degrade(load_rgb(p), scale, space)
        hr.append(hr_img)
        lr.append(lr_img)
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
        counts = np.array([(x.shape[0] - p + 1) * (x.shape[1] - p + 1) for x in self.lr], np.int64)
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
