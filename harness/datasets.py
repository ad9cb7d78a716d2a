"""Test sets: discovery in ``ROOT/<Set>/HR/``, the embedded default, and downloads.

A test set is a list of HR images. Standard sets live under a data root given by
``--data DIR`` or ``$HARNESS_DATA``; without one, the images bundled inside
scikit-image's wheel form the set named ``embedded`` (never mixed with standard-set
figures: it is labelled ``embedded`` everywhere).
"""
from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from .cachefile import file_lock, sha256_of
from .errors import HarnessError
from .imageio import is_image_file, load_rgb

STANDARD_SETS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109", "DIV2K")
EMBEDDED = "embedded"
_ALIASES = {"b100": "BSD100", "bsds100": "BSD100", "div2k_valid": "DIV2K"}

# Real photographs and textures shipped inside scikit-image's wheel (no download).
# Synthetic/binary images (checkerboard, horse, logo, ...) are left out on purpose.
EMBEDDED_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "brick", "grass",
                   "gravel", "moon", "coins", "page", "text", "hubble_deep_field", "immunohistochemistry")

ENV_DATA = "HARNESS_DATA"


@dataclass
class ImageSet:
    """A named list of HR images; ``loaders`` yield RGB uint8 arrays lazily."""

    name: str
    items: List[Tuple[str, Callable[[], np.ndarray]]]
    origin: str = ""
    files: Optional[List[Path]] = None  # the image files, for a set read from a folder

    def __len__(self) -> int:
        return len(self.items)

    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the set's content: each image's name and file bytes (the
        decoded pixels for the embedded set), so a run scored on other images is another run."""
        import hashlib

        h = hashlib.sha256(self.name.encode())
        if self.files is not None:
            for path in self.files:
                h.update(path.name.encode())
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        else:
            for name, rgb in self:
                h.update(name.encode())
                h.update(str(rgb.shape).encode())
                h.update(np.ascontiguousarray(rgb).tobytes())
        return h.hexdigest()[:16]

    def __iter__(self) -> Iterator[Tuple[str, np.ndarray]]:
        for name, load in self.items:
            yield name, load()

    @property
    def standard(self) -> bool:
        return self.name != EMBEDDED


def canonical_set_name(name: str) -> str:
    """``set14`` -> ``Set14``, ``B100`` -> ``BSD100``; unknown names are returned as given."""
    low = name.strip().lower()
    if low in _ALIASES:
        return _ALIASES[low]
    for std in STANDARD_SETS + (EMBEDDED,):
        if std.lower() == low:
            return std
    return name.strip()


def data_root(arg: Optional[str] = None) -> Optional[Path]:
    """The data root from ``--data``, else ``$HARNESS_DATA``, else None (embedded only)."""
    value = arg or os.environ.get(ENV_DATA)
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise HarnessError(f"data folder {root} does not exist; create it and put test sets in "
                           f"{root}/<Set>/HR/ (or run: python -m harness data fetch Set5 --data {root})")
    return root


def set_dir(root: Path, name: str) -> Optional[Path]:
    """The folder of set ``name`` under ``root``, matched case-insensitively (and B100 for BSD100)."""
    wanted = {name.lower()} | {alias for alias, std in _ALIASES.items() if std == name}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() in wanted:
                return child
    return None


def _image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def missing_set_message(root: Optional[Path], name: str) -> str:
    where = f"{root}/{name}/HR/" if root else f"<DATA>/{name}/HR/ (pass --data DATA or set {ENV_DATA})"
    source = SOURCES.get(name)
    if source is not None and source.url:
        how = f"get it with: python -m harness data fetch {name}" + (f" --data {root}" if root else " --data DATA")
    elif source is not None:
        how = source.note
    else:
        how = f"it is not one of the standard sets ({', '.join(STANDARD_SETS)}), so it cannot be fetched"
    return f"test set {name} not found: put its HR images (png/bmp/jpg) in {where}; {how}"


def find_set(root: Optional[Path], name: str) -> ImageSet:
    """Load set ``name`` from ``root/<name>/HR`` (or the embedded set); one-line error when missing."""
    name = canonical_set_name(name)
    if name == EMBEDDED:
        return embedded_set()
    if root is None:
        raise HarnessError(missing_set_message(None, name))
    folder = set_dir(root, name)
    if folder is None:
        raise HarnessError(missing_set_message(root, name))
    hr = folder / "HR"
    if not hr.is_dir():
        # Also accept a folder holding the images directly (common in downloaded archives).
        files = _image_files(folder)
        if not files:
            raise HarnessError(f"{folder} has no HR/ subfolder with images; move the HR images to {hr}/")
    else:
        files = _image_files(hr)
        if not files:
            raise HarnessError(f"{hr} holds no png/bmp/jpg images; put the {name} HR images there")
    return ImageSet(name, [(p.stem, (lambda p=p: load_rgb(p))) for p in files], origin=str(files[0].parent),
                    files=list(files))


def available_sets(root: Optional[Path]) -> List[str]:
    """Standard sets present under ``root``, in the canonical order."""
    if root is None:
        return []
    found = []
    for name in STANDARD_SETS:
        folder = set_dir(root, name)
        if folder is not None and ((folder / "HR").is_dir() and _image_files(folder / "HR") or _image_files(folder)):
            found.append(name)
    return found


def resolve_sets(root: Optional[Path], names: Optional[Sequence[str]]) -> List[ImageSet]:
    """The sets to evaluate: the named ones (each must exist), else every standard set under
    ``root``, else the embedded set when no data root is given."""
    if names:
        return [find_set(root, n) for n in names]
    if root is None:
        return [embedded_set()]
    found = available_sets(root)
    if not found:
        raise HarnessError(f"no test set found under {root}: expected {root}/<Set>/HR/*.png for one of "
                           f"{', '.join(STANDARD_SETS)} (python -m harness data fetch Set5 --data {root}), "
                           f"or leave out --data to use the embedded images")
    return [find_set(root, n) for n in found]


def _load_embedded(name: str) -> np.ndarray:
    from skimage import data as skdata

    img = np.asarray(getattr(skdata, name)())
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def embedded_set() -> ImageSet:
    """The images bundled inside scikit-image's wheel (photos and textures)."""
    try:
        from skimage import data as skdata
    except ImportError:  # pragma: no cover - scikit-image is a hard dependency
        raise HarnessError("scikit-image is not installed; run ./scripts/bootstrap.sh") from None
    names = [n for n in EMBEDDED_IMAGES if hasattr(skdata, n)]
    return ImageSet(EMBEDDED, [(n, (lambda n=n: _load_embedded(n))) for n in names],
                    origin=f"scikit-image {_skimage_version()} bundled data")


def _skimage_version() -> str:
    import skimage

    return skimage.__version__


# --------------------------------------------------------------------------- downloads

@dataclass(frozen=True)
class Source:
    """Where a test set can be downloaded from, and how to find its HR images in the archive."""

    url: str
    known_hash: str  # pooch format: "sha256:<hex>" or "md5:<hex>" (only where no SHA-256 is published)
    members: str  # glob of the HR image paths inside the archive
    note: str = ""
    size: Optional[int] = None


# The EDSR authors' benchmark archive holds Set5, Set14, B100 and Urban100 (HR + LR); only an MD5
# is published for it (e.g. by torchsr). DIV2K's SHA-256 is the one TensorFlow Datasets pins.
_EDSR_BENCHMARK = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
_EDSR_MD5 = "md5:4ace41d33c2384b97e6b320cd0afd6ba"
SOURCES: Dict[str, Source] = {
    "Set5": Source(_EDSR_BENCHMARK, _EDSR_MD5, "benchmark/Set5/HR/*", "EDSR benchmark archive"),
    "Set14": Source(_EDSR_BENCHMARK, _EDSR_MD5, "benchmark/Set14/HR/*", "EDSR benchmark archive"),
    "BSD100": Source(_EDSR_BENCHMARK, _EDSR_MD5, "benchmark/B100/HR/*", "EDSR benchmark archive"),
    "Urban100": Source(_EDSR_BENCHMARK, _EDSR_MD5, "benchmark/Urban100/HR/*", "EDSR benchmark archive"),
    "DIV2K": Source("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
                    "sha256:20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
                    "DIV2K_valid_HR/*", "DIV2K validation HR, 100 images", size=448993893),
    "Manga109": Source("", "", "", "Manga109 is given out by its authors on request (http://www.manga109.org): "
                       "copy its PNG pages there yourself"),
}


def _file_url_downloader(url: str, output_file, pooch_obj=None, check_only: bool = False):
    """pooch has no file:// downloader; copying a local archive lets mirrors and tests use it."""
    src = Path(url2pathname(urlparse(url).path))
    if check_only:
        return src.is_file()
    if not src.is_file():
        raise HarnessError(f"{src}: no such file (from {url})")
    if hasattr(output_file, "write"):
        with open(src, "rb") as fh:
            shutil.copyfileobj(fh, output_file)
    else:
        shutil.copyfile(src, output_file)


def _extract_members(archive: Path, pattern: str, dest: Path) -> int:
    """Copy the archive members matching ``pattern`` (images only) flat into ``dest``; ValueError
    for an archive that is none or would lose images."""
    dest.mkdir(parents=True, exist_ok=True)
    seen: Dict[str, str] = {}

    def target(member: str) -> Path:
        name = Path(member).name
        if name in seen:  # flattening would silently keep only one of them
            raise ValueError(f"it holds two images named {name} ({seen[name]} and {member}): flattened into one "
                             f"folder, one would be lost")
        seen[name] = member
        return dest / name

    count = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir() and fnmatch.fnmatch(info.filename, pattern) and is_image_file(info.filename):
                    with zf.open(info) as src, open(target(info.filename), "wb") as out:
                        shutil.copyfileobj(src, out)
                    count += 1
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.isfile() and fnmatch.fnmatch(member.name, pattern) and is_image_file(member.name):
                    src = tf.extractfile(member)
                    with src, open(target(member.name), "wb") as out:
                        shutil.copyfileobj(src, out)
                    count += 1
    else:
        raise ValueError("not a zip or tar archive")
    return count


def _install(archive: Path, pattern: str, dest: Path, where: str, fix: str) -> int:
    """Extract into a temporary folder beside ``dest``, then move the images into ``dest``: a failed
    extraction leaves no half set (nor a set folder it created). Its one-line errors name ``where``
    (the archive, or its address when the archive is not kept) and end with ``fix``."""
    made = [p for p in (dest.parent, dest) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=str(dest.parent)))
    try:
        try:
            count = _extract_members(archive, pattern, tmp)
        except ValueError as exc:
            raise HarnessError(f"{where}: {exc}{fix or '; delete it and fetch again'}") from None
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            text = str(exc).strip().splitlines()
            raise HarnessError(f"{where}: cannot extract it ({type(exc).__name__}{': ' + text[0][:120] if text else ''})"
                               f"{fix or '; delete it and fetch again'}") from None
        if count == 0:
            raise HarnessError(f"{where}: no images match {pattern} in the archive; is it the right file?{fix}")
        dest.mkdir(exist_ok=True)  # made here, not renamed from mkdtemp's private (0700) folder
        for item in tmp.iterdir():  # a second fetch refreshes the images, keeps any others
            os.replace(str(item), str(dest / item.name))
        tmp.rmdir()
        return count
    except BaseException:
        shutil.rmtree(str(tmp), ignore_errors=True)
        for folder in reversed(made):  # the set folder this call created, when it is still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def fetch(name: str, root: Path, url: Optional[str] = None, progress: bool = True,
          log: Optional[Callable[[str], None]] = None) -> Path:
    """Download set ``name`` (hash-checked, cached in ``root/.downloads``) into ``root/<name>/HR``.

    ``url`` replaces the source's address (a mirror or a local ``file://`` copy); the pinned
    hash is still checked. A set without a pinned hash (Manga109, given out on request: ``url``
    is then required) is downloaded afresh each time, never kept (nothing could verify a kept
    copy); ``log`` (default: stderr) gets its SHA-256 so the user can pin it, and every image of
    the archive is taken. A failure leaves no stray download and no half-extracted folder.
    """
    import pooch

    name = canonical_set_name(name)
    source = SOURCES.get(name)
    if source is None:
        raise HarnessError(f"unknown test set '{name}'; fetchable sets: "
                           f"{', '.join(n for n, s in SOURCES.items() if s.url)}")
    if not source.url and not url:
        raise HarnessError(f"{name} cannot be downloaded: {source.note}, into {root / name / 'HR'}/")
    address = url or source.url
    pinned = bool(source.known_hash)
    root.mkdir(parents=True, exist_ok=True)
    cache = root / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    fname = Path(urlparse(address).path).name or f"{name}.archive"
    downloader = _file_url_downloader if address.startswith("file:") else pooch.HTTPDownloader(progressbar=progress)
    # unpinned: into a folder of its own, removed at the end whatever happens
    folder = cache if pinned else Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=str(cache)))
    logger = pooch.get_logger()
    level = logger.level
    try:
        try:
            if not pinned:  # its hash is printed below: not pooch's own note (which names its Python API)
                logger.setLevel(logging.WARNING)
            with file_lock(cache / fname) if pinned else contextlib.nullcontext():  # runs sharing DATA download once
                archive = Path(pooch.retrieve(address, known_hash=source.known_hash or None, fname=fname,
                                              path=folder, downloader=downloader, progressbar=progress))
        except ValueError as exc:  # pooch's hash mismatch
            raise HarnessError(f"{address}: downloaded file does not match the pinned hash "
                               f"{source.known_hash} ({str(exc).splitlines()[0][:120]}); the file was discarded") from None
        except HarnessError:
            raise
        except Exception as exc:  # network errors come in many types
            raise HarnessError(f"{address}: download failed ({exc.__class__.__name__}: {str(exc)[:160]}); "
                               f"check the network or pass --url with a mirror of the same archive") from None
        if pinned:
            _install(archive, source.members, root / name / "HR", str(archive), "")
        else:
            digest = sha256_of(archive)
            _install(archive, source.members or "*", root / name / "HR", f"{address} ({archive.name})",
                     f"; the download was removed: give --url an archive of the {name} HR images")
            (log or (lambda text: print(text, file=sys.stderr)))(
                f"{name}: {address} has no pinned hash; what was fetched has sha256:{digest} (check it against "
                f"the publisher's; pin it in SOURCES in harness/datasets.py)")
    finally:
        logger.setLevel(level)
        if not pinned:
            shutil.rmtree(str(folder), ignore_errors=True)
            with contextlib.suppress(OSError):
                cache.rmdir()  # when it holds nothing else
    return root / name / "HR"
