"""Where model weights come from, and the local store of the imported official eSR pool.

The official eSR weights (pnavarre/eSR, GPL-3.0) are never committed to the project: the
user imports them once from a folder of ``.model`` files or the repository's zip archive
(``python -m harness zoo import-esr PATH``). Each file is checked against the SHA-256
manifest committed in ``harness/models/esr_official_manifest.json`` and copied into
``$HARNESS_CACHE/weights/esr-official/`` (default ``.cache/`` in the checkout).

The project also *ships* weights it trained itself with ``python -m harness train`` (the
``default`` pool, a few KB each) in ``harness/models/weights/shipped/``, with their provenance
and acceptance figures in ``manifest.json`` there (``python -m harness zoo ship`` writes both),
so a fresh checkout runs the pool with no download.

The official BSRN weights (xiaom233/BSRN, MIT) are imported the same way (``python -m harness
zoo import-bsrn PATH``: the three ``net_g_BSRN_x{s}.pth`` files, checked against
``harness/models/bsrn_official_manifest.json``) into ``$HARNESS_CACHE/weights/bsrn-official/``.

Weight choices (``--weights``): ``shipped`` (the project's own, the default), ``official``
(the imported pool), ``init`` (the authors' initialisation, for training), or a path to a
state-dict file. Fixed-weight models (the bicubic baselines) ignore the choice and record ``none``.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .cachefile import atomic_write_bytes, sha256_of
from .errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = Path(__file__).resolve().parent / "models" / "esr_official_manifest.json"
BSRN_MANIFEST = Path(__file__).resolve().parent / "models" / "bsrn_official_manifest.json"
CACHE_ENV = "HARNESS_CACHE"
SHIPPED_DIR = Path(__file__).resolve().parent / "models" / "weights" / "shipped"
SHIPPED_MANIFEST = SHIPPED_DIR / "manifest.json"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or PROJECT_ROOT / ".cache").expanduser()


def official_dir() -> Path:
    return cache_dir() / "weights" / "esr-official"


def manifest() -> Dict[str, Dict]:
    """file stem (e.g. ``eSR-TM_s2_K7_C16``, ``Bicubic_s3``) -> {sha256, bytes}."""
    with open(MANIFEST) as fh:
        return json.load(fh)["files"]


def bsrn_official_dir() -> Path:
    return cache_dir() / "weights" / "bsrn-official"


def bsrn_manifest() -> Dict[str, Dict]:
    """file stem (``net_g_BSRN_x2`` ...) -> {sha256, bytes}: the files published in xiaom233/BSRN."""
    with open(BSRN_MANIFEST) as fh:
        return json.load(fh)["files"]


def _check_imported(path: Path, entry: Optional[Dict], how: str) -> Path:
    """``path`` when it still matches its manifest's SHA-256 (the store is a cache of verified
    imports: a file damaged since is never loaded); a one-line error saying how to re-import it."""
    if entry is not None and sha256_of(path) != entry["sha256"]:
        raise HarnessError(f"{path} does not match its SHA-256 in the manifest (damaged since it was imported); "
                           f"delete it and import it again: {how}")
    return path


def bsrn_official_file(file_stem: str) -> Path:
    """The imported official BSRN checkpoint (SHA-256 checked); a one-line error saying how to import it when absent."""
    path = bsrn_official_dir() / f"{file_stem}.pth"
    if not path.is_file():
        raise HarnessError(f"official weights {file_stem}.pth are not imported (no {path}); run: python -m harness "
                           f"zoo import-bsrn PATH (a folder holding the net_g_BSRN_x*.pth files of xiaom233/BSRN, "
                           f"experiments/pretrained_models/, or the repository's zip archive), or give --weights FILE")
    return _check_imported(path, bsrn_manifest().get(file_stem), "python -m harness zoo import-bsrn PATH")


def official_file(file_stem: str) -> Path:
    """The imported official weights file (SHA-256 checked); a one-line error saying how to import when absent."""
    path = official_dir() / f"{file_stem}.model"
    if not path.is_file():
        raise HarnessError(f"official weights for {file_stem} are not imported (no {path}); run: "
                           f"python -m harness zoo import-esr PATH (a folder of eSR .model files or the "
                           f"pnavarre/eSR zip archive)")
    return _check_imported(path, manifest().get(file_stem), "python -m harness zoo import-esr PATH")


def shipped_manifest() -> Dict:
    """The shipped-weights manifest (``{"models": {id: entry}, ...}``); empty models when none is shipped."""
    if not SHIPPED_MANIFEST.is_file():
        return {"models": {}}
    with open(SHIPPED_MANIFEST) as fh:
        return json.load(fh)


def shipped_ids() -> List[str]:
    return sorted(shipped_manifest()["models"])


def shipped_file(model_id: str) -> Path:
    """The shipped weights of ``model_id``, checked against the manifest's SHA-256."""
    entry = shipped_manifest()["models"].get(model_id)
    if entry is None:
        raise HarnessError(f"no shipped weights for {model_id} (the project ships the default pool's: python -m "
                           f"harness zoo list --shipped); give --weights official where the authors published "
                           f"weights (eSR pool: after zoo import-esr PATH), --weights FILE (e.g. trained with "
                           f"python -m harness train), or --weights init for timing only")
    path = SHIPPED_DIR / entry["file"]
    if not path.is_file() or sha256_of(path) != entry["sha256"]:
        raise HarnessError(f"shipped weights file {path} is missing or does not match its SHA-256 in "
                           f"{SHIPPED_MANIFEST}; restore it with git checkout -- {path}")
    return path


@dataclass
class ImportReport:
    imported: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)  # "name (where)"
    unknown: List[str] = field(default_factory=list)
    store: Path = None  # where the files went; defaults to the eSR store
    known: Dict[str, Dict] = None  # the manifest checked against; defaults to the eSR one
    suffix: str = ".model"

    def summary(self) -> str:
        store = self.store or official_dir()
        total = len(self.known if self.known is not None else manifest())
        have = sum(1 for _ in store.glob(f"*{self.suffix}")) if store.is_dir() else 0
        parts = [f"imported {len(self.imported)}", f"already present {len(self.unchanged)}"]
        if self.unknown:
            parts.append(f"{len(self.unknown)} not in the manifest (skipped)")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with a wrong SHA-256 (NOT imported: "
                         f"{', '.join(self.mismatched[:3])}{' ...' if len(self.mismatched) > 3 else ''})")
        return f"{'; '.join(parts)}; the store {store} holds {have} of {total} official models"


def _sources(path: Path, suffix: str = ".model", what: str = "the eSR repository's model-files/ folder or its zip archive"
             ) -> Iterator[Tuple[str, str, callable]]:
    """(file stem, where, opener) for every ``suffix`` file in a folder (recursively) or a zip."""
    if path.is_dir():
        for p in sorted(path.rglob(f"*{suffix}")):
            yield p.stem, str(p), (lambda p=p: open(p, "rb"))
    elif path.is_file() and zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        for info in zf.infolist():
            if not info.is_dir() and info.filename.endswith(suffix):
                yield Path(info.filename).stem, f"{path}:{info.filename}", (lambda i=info: zf.open(i))
    elif path.exists():
        raise HarnessError(f"{path}: neither a folder of {suffix} files nor a zip archive; give {what}")
    else:
        raise HarnessError(f"{path}: no such file or folder; give {what}")


def holds_model_files(path) -> bool:
    """Whether ``path`` is a folder (searched recursively) or a zip archive holding eSR ``.model`` files."""
    path = Path(path).expanduser()
    if path.is_dir():
        return next(path.rglob("*.model"), None) is not None
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith(".model") for n in zf.namelist())
    return False


def import_esr(path, show_progress: bool = False) -> ImportReport:
    """Verify each official ``.model`` file against the manifest and copy it into the store."""
    return _import_verified(path, manifest(), official_dir(), ".model",
                            "the eSR repository's model-files/ folder or its zip archive", "import eSR weights",
                            show_progress)


def import_bsrn(path, show_progress: bool = False) -> ImportReport:
    """Verify the official ``net_g_BSRN_x{s}.pth`` files against their manifest and copy them into the store.

    Other ``.pth`` files in the folder or archive (BasicSR experiments hold many) are skipped as unknown.
    """
    return _import_verified(path, bsrn_manifest(), bsrn_official_dir(), ".pth",
                            "xiaom233/BSRN's experiments/pretrained_models/ folder or the repository's zip archive",
                            "import BSRN weights", show_progress)


def _import_verified(path, known: Dict[str, Dict], dest: Path, suffix: str, what: str, desc: str,
                     show_progress: bool) -> ImportReport:
    from .progress import progress

    path = Path(path).expanduser()
    report = ImportReport(store=dest, known=known, suffix=suffix)
    found = list(_sources(path, suffix, what))
    if not found:
        raise HarnessError(f"{path}: holds no {suffix} files; give {what}")
    dest.mkdir(parents=True, exist_ok=True)
    for stem, where, opener in progress(found, desc=desc, disable=not show_progress):
        entry = known.get(stem)
        if entry is None:
            report.unknown.append(stem)
            continue
        with opener() as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            report.mismatched.append(f"{stem} ({where})")
            continue
        target = dest / f"{stem}{suffix}"
        if target.is_file() and target.stat().st_size == len(data) and \
                sha256_of(target) == entry["sha256"]:
            report.unchanged.append(stem)
            continue
        atomic_write_bytes(target, data)  # a killed import never leaves a half file under the real name
        report.imported.append(stem)
    return report
