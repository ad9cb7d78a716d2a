"""The eSR authors' published measurements (the eSR repository's ``data/tests.pkl``), read safely.

The file is a pickle: a dict, model id -> dict of numpy scalars, for the 1185 models of the
paper (Navarrete Michelini, Lu, Jiang, "edge-SR: Super-Resolution For The Masses", WACV 2022).
A pickle can run code, so it is read only through :class:`SafeUnpickler`, which allows the
two numpy callables its scalars need (``numpy.core.multiarray.scalar`` and ``numpy.dtype``) and
refuses any other global with one line naming the file.

The repository states no units; they are read from the values and the paper:

* ``speed_*``: Full-HD output frames per second (the paper's speed axis);
* ``power_AGX``: milliwatts (1.4-9.1 thousand: the Jetson's power rails), stored here as watts;
* ``power_MaxQ``: watts (38-143: the GPU board power);
* ``usage_RPI``: CPU usage in percent summed over the Pi's 4 cores (up to 400);
* ``temperature_MaxQ``: degrees Celsius; ``memory_MaxQ``: MB of GPU memory.

Quality is PSNR/SSIM/LPIPS on Set5, Set14, BSDS100 (this harness's ``BSD100``), Urban100 and
Manga109, measured with the authors' protocol.
"""
from __future__ import annotations

import importlib
import io
import math
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import HarnessError

# paper device -> (store device name, key suffix in tests.pkl, what it is)
DEVICES = {
    "agx": ("paper-agx", "AGX", "Jetson AGX Xavier (TensorRT fp16)"),
    "maxq": ("paper-maxq", "MaxQ", "GTX 1080 Max-Q"),
    "rpi": ("paper-rpi", "RPI", "Raspberry Pi 400"),
}
PAPER_SETS = {"Set5": "Set5", "Set14": "Set14", "BSDS100": "BSD100", "Urban100": "Urban100", "Manga109": "Manga109"}
ARCHIVE_MEMBER = "data/tests.pkl"  # where the table sits in the eSR repository
MAX_BYTES = 64 * 1024 * 1024  # the published table is 0.9 MB; anything far larger is not it

_ALLOWED = {
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy", "dtype"): ("numpy",),
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy scalar and dtype constructors; any other global is refused."""

    def __init__(self, file, source: str = "the pickle"):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        places = _ALLOWED.get((module, name))
        if places is None:
            raise HarnessError(f"{self._source}: refuses to load: the pickle asks for {module}.{name}, which a "
                               f"measurement table never needs (a pickle can run code); give the eSR repository's "
                               f"data/tests.pkl")
        for place in places:
            try:
                return getattr(importlib.import_module(place), name)
            except (ImportError, AttributeError):
                continue
        raise HarnessError(f"{self._source}: numpy cannot provide {module}.{name}; install numpy")

    def persistent_load(self, pid):  # pragma: no cover - pickle's hook; the table has no persistent ids
        raise HarnessError(f"{self._source}: refuses to load: the pickle uses persistent ids")


def _read_bytes(path: Path) -> Tuple[bytes, str]:
    """The table's bytes from a ``tests.pkl`` file, or from the repository's zip or tar archive."""
    if not path.exists():
        raise HarnessError(f"{path}: no such file; give the eSR repository's data/tests.pkl or its zip archive")
    if path.is_dir():
        for candidate in (path / ARCHIVE_MEMBER, path / "tests.pkl"):
            if candidate.is_file():
                return _read_bytes(candidate)
        raise HarnessError(f"{path}: holds no data/tests.pkl; give the eSR repository's folder, its data/tests.pkl "
                           f"or its zip archive")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n == ARCHIVE_MEMBER or n.endswith("/" + ARCHIVE_MEMBER)]
            if not names:
                raise HarnessError(f"{path}: the archive holds no {ARCHIVE_MEMBER}; give the eSR repository's zip")
            info = zf.getinfo(names[0])
            if info.file_size > MAX_BYTES:
                raise HarnessError(f"{path}: {names[0]} is {info.file_size} bytes, not the published table")
            return zf.read(names[0]), f"{path}:{names[0]}"
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            member = next((m for m in tf.getmembers() if m.isfile() and
                           (m.name == ARCHIVE_MEMBER or m.name.endswith("/" + ARCHIVE_MEMBER))), None)
            if member is None:
                raise HarnessError(f"{path}: the archive holds no {ARCHIVE_MEMBER}; give the eSR repository's archive")
            if member.size > MAX_BYTES:
                raise HarnessError(f"{path}: {member.name} is {member.size} bytes, not the published table")
            handle = tf.extractfile(member)
            assert handle is not None
            return handle.read(), f"{path}:{member.name}"
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise HarnessError(f"{path}: {size} bytes, not the published table (0.9 MB); give the eSR repository's "
                           f"data/tests.pkl")
    return path.read_bytes(), str(path)


def _number(value) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def load_tests(path: Union[str, Path]) -> Dict[str, Dict[str, float]]:
    """model id -> {key: float} from ``tests.pkl`` (or the repository's archive), through :class:`SafeUnpickler`.

    Every failure (a refused global, a damaged or foreign file) is one :class:`HarnessError` line naming the file.
    """
    path = Path(path)
    data, source = _read_bytes(path)
    try:
        table = SafeUnpickler(io.BytesIO(data), source).load()
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage to the file
        raise HarnessError(f"{source}: not a readable measurement table ({type(exc).__name__}: {exc}); give the eSR "
                           f"repository's data/tests.pkl") from None
    if not isinstance(table, dict) or not table or not all(isinstance(v, dict) for v in table.values()):
        raise HarnessError(f"{source}: not the eSR measurement table (expected a dict of model id -> dict of "
                           f"measurements); give the eSR repository's data/tests.pkl")
    out: Dict[str, Dict[str, float]] = {}
    for model, values in table.items():
        if not isinstance(model, str):
            raise HarnessError(f"{source}: a model id is {type(model).__name__}, not text: not the eSR table")
        out[model] = {str(k): v for k, v in ((k, _number(v)) for k, v in values.items()) if v is not None}
    if not any(k.startswith("speed_") for v in out.values() for k in v):
        raise HarnessError(f"{source}: no speed_* measurements: not the eSR measurement table")
    return out


def paper_frame(path: Union[str, Path]):
    """The table as a pandas DataFrame: one row per model id (``model``, ``family``, ``scale``), raw keys as columns."""
    import pandas as pd

    rows: List[Dict[str, Any]] = []
    for model, values in load_tests(path).items():
        family = model.split("_s")[0] if "_s" in model else model.split("_")[0]
        scale = next((int(p[1:]) for p in model.split("_")[1:] if p[:1] == "s" and p[1:].isdigit()), None)
        rows.append({"model": model, "family": family, "scale": scale, **values})
    return pd.DataFrame(rows).sort_values(["scale", "family", "model"], kind="stable").reset_index(drop=True)
