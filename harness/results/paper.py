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

import hashlib
import importlib
import io
import math
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import HarnessError
from .table import PAPER_PREFIX, is_paper_device  # noqa: F401 - is_paper_device: re-exported for the paper's callers

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
    return read_table(path)[0]


def read_table(path: Union[str, Path]) -> Tuple[Dict[str, Dict[str, float]], str, str]:
    """(:func:`load_tests`'s table, where it was read, the SHA-256 of the table's bytes)."""
    path = Path(path)
    data, source = _read_bytes(path)
    return _parse(data, source), source, hashlib.sha256(data).hexdigest()


def _parse(data: bytes, source: str) -> Dict[str, Dict[str, float]]:
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


# --------------------------------------------------------------------------- the table in the results store

PUBLISHED_SHA256 = "632b8f07ec24a56d5bcfe552bf6e38fe86d465e26c5f8cd96924b43de0db9ee4"  # pnavarre/eSR data/tests.pkl
PREFIX = PAPER_PREFIX  # the store's paper devices: paper-agx, paper-maxq, paper-rpi
BACKEND = "paper"
WEIGHTS = "official"
PROTOCOL = "the eSR authors' protocol, as published in data/tests.pkl (not measured by this harness)"
IMPORT_FIX = "python -m harness zoo import-esr PATH (the eSR repository's folder or zip, or its data/tests.pkl)"
# paper device -> (precision recorded, the paper's setup as recorded with the run)
SETUP = {
    "agx": ("fp16", "Jetson AGX Xavier, TensorRT fp16: speed and power of the board's rails, as published"),
    "maxq": ("fp32", "GTX 1080 Max-Q laptop GPU, fp32: speed, GPU board power, temperature and memory, as published"),
    "rpi": ("fp32", "Raspberry Pi 400 (4 Cortex-A72 cores), fp32 on the CPU: speed and CPU usage, as published"),
}
# raw power key -> factor to watts (power_AGX is mW, power_MaxQ is W: see the module docstring)
POWER_TO_W = {"power_AGX": 1e-3, "power_MaxQ": 1.0}
UNITS = {"fhd_per_s": "Full-HD output frames per second", "mean_w": "W", "mj_per_frame": "mJ per Full-HD frame",
         "cpu_util_pct": "% of one core, summed over the Pi's 4 cores (up to 400)", "temperature_c": "degrees C",
         "memory_mb": "MB of GPU memory", "power_raw": "as published: mW for power_AGX, W for power_MaxQ"}


# other names users give the paper's devices
ALIASES = {"jetson": "agx", "jetson-agx": "agx", "xavier": "agx", "pi": "rpi", "raspberry-pi": "rpi", "rpi400": "rpi"}


def device_key(name: str) -> str:
    """``agx``/``maxq``/``rpi`` from a paper device given as ``agx``, ``AGX``, ``paper-agx``, the table's column
    ``speed_AGX`` or an alias (``jetson``, ``xavier``, ``pi``, ...); a one-line error else."""
    key = str(name).lower()
    for prefix in (PREFIX, "speed_"):
        key = key[len(prefix):] if key.startswith(prefix) else key
    key = ALIASES.get(key, key)
    if key not in DEVICES:
        raise HarnessError(f"paper device {name!r}: give one of {', '.join(DEVICES)} (Jetson AGX Xavier, GTX 1080 "
                           f"Max-Q, Raspberry Pi 400)")
    return key


def family_of(model: str) -> str:
    return model.split("_s")[0] if "_s" in model else model.split("_")[0]


def _scale(model: str) -> Optional[int]:
    return next((int(p[1:]) for p in model.split("_")[1:] if p[:1] == "s" and p[1:].isdigit()), None)


def records(tests: Dict[str, Dict[str, float]], sha256: str, source: str = ""):
    """(paper device key, measurement, record) for every row the table becomes in the store: per paper
    device and model one ``speed`` row and one ``quality:<set>`` row per set (harness set names)."""
    for key, (device, suffix, what) in DEVICES.items():
        precision, setup = SETUP[key]
        common = {"device": device, "backend": BACKEND, "precision": precision, "weights": WEIGHTS,
                  "published": True, "source": source, "table_sha256": sha256, "paper_device": what}
        for model, values in tests.items():
            scale = _scale(model)
            speed = values.get(f"speed_{suffix}")
            if scale is None or speed is None:
                continue
            family = family_of(model)
            own = {k: v for k, v in values.items() if k.endswith("_" + suffix)}
            if "parameters" in values:
                own["parameters"] = values["parameters"]
            rec: Dict[str, Any] = dict(common, model=model, scale=scale, family=family, status="ok", reason="",
                                       fhd_per_s=speed, params=values.get("parameters"), units=dict(UNITS),
                                       setup=setup, raw=own)
            power_key = f"power_{suffix}"
            if power_key in values and power_key in POWER_TO_W:
                watts = values[power_key] * POWER_TO_W[power_key]
                rec.update(mean_w=watts, mj_per_frame=watts / speed * 1000.0 if speed > 0 else None,
                           power_raw=values[power_key], power_raw_key=power_key)
            else:
                rec["power_reason"] = f"the paper publishes no power for the {what}"
            if f"usage_{suffix}" in values:
                rec["cpu_util_pct"] = values[f"usage_{suffix}"]
            if f"temperature_{suffix}" in values:
                rec["temperature_c"] = values[f"temperature_{suffix}"]
            if f"memory_{suffix}" in values:
                rec["memory_mb"] = values[f"memory_{suffix}"]
            yield key, "speed", rec
            for paper_set, harness_set in PAPER_SETS.items():
                if f"psnr_{paper_set}" not in values:
                    continue
                raw = {f"{m}_{paper_set}": values[f"{m}_{paper_set}"] for m in ("psnr", "ssim", "lpips")
                       if f"{m}_{paper_set}" in values}
                yield key, f"quality:{harness_set}", dict(
                    common, model=model, scale=scale, family=family, status="ok", reason="", set=harness_set,
                    paper_set=paper_set, psnr=values.get(f"psnr_{paper_set}"), ssim=values.get(f"ssim_{paper_set}"),
                    lpips=values.get(f"lpips_{paper_set}"), protocol=PROTOCOL, raw=raw)


class PaperImport(dict):
    """What :func:`import_table` did: ``source``, ``sha256``, ``published`` (the published file?), ``models``,
    ``rows`` (stored), ``replaced`` (rows of an earlier import removed), ``devices``, ``db``, ``warning``."""

    def summary(self) -> str:
        which = "the published table" if self["published"] else "NOT the published table (see the warning)"
        again = f"; replaced {self['replaced']} rows of an earlier import" if self["replaced"] else ""
        return (f"imported the eSR measurement table {self['source']} (SHA-256 {self['sha256'][:12]}..., {which}): "
                f"{self['models']} models, {self['rows']} rows as devices {', '.join(self['devices'])} into "
                f"{self['db']}{again}")


def import_table(path: Union[str, Path], store) -> PaperImport:
    """Read ``tests.pkl`` safely and keep it in the results store as the published measurements of
    ``paper-agx``, ``paper-maxq`` and ``paper-rpi``: one run per paper device (configuration key from the
    table's SHA-256), replacing any earlier import of the table, all in one transaction."""
    import sqlite3
    import time
    import uuid

    from .store import storage_error

    tests, source, sha = read_table(path)
    warning = "" if sha == PUBLISHED_SHA256 else (
        f"{source}: SHA-256 {sha} is not the published table's ({PUBLISHED_SHA256[:12]}...): imported, but its "
        f"numbers may differ from the paper's")
    keys = list(dict.fromkeys(k for v in tests.values() for k in v))
    by_device: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {k: [] for k in DEVICES}
    for key, measurement, rec in records(tests, sha, source):
        by_device[key].append((measurement, rec))
    from ..numeric import number_or_none
    from .store import COLUMNS, ROW_COLUMNS, json_text  # the store's own row layout and JSON text

    runs, rows, now = [], [], time.time()
    for key, items in by_device.items():
        if not items:
            continue
        device = DEVICES[key][0]
        run_id = time.strftime("%Y%m%d-%H%M%S-", time.gmtime(now)) + key + "-" + uuid.uuid4().hex[:6]
        runs.append({"run_id": run_id, "started": now, "device": device, "config_key": f"paper:{key}:{sha}",
                     "command": f"python -m harness zoo import-esr {source}",
                     "profile": json_text({"name": device, "description": f"eSR paper (published): {DEVICES[key][2]}",
                                       "setup": SETUP[key][1], "keys": keys}),
                     "environment": json_text({"published": True, "source": source, "table_sha256": sha,
                                           "published_sha256": PUBLISHED_SHA256, "units": UNITS})})
        for measurement, rec in items:
            row = {"run_id": run_id, "device": device, "backend": BACKEND, "precision": rec["precision"],
                   "model": rec["model"], "scale": rec["scale"], "measurement": measurement, "weights": WEIGHTS,
                   "family": rec["family"], "form": None, "status": "ok", "reason": "", "created": now}
            row.update({c: number_or_none(rec.get(c)) for c in COLUMNS})
            row["data"] = json_text(rec)
            rows.append({k: row.get(k) for k in ROW_COLUMNS})
    db = store.db
    try:
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        old = [r[0] for r in db.execute("SELECT run_id FROM runs WHERE device LIKE ?", (PREFIX + "%",))]
        replaced = 0
        for run_id in old:
            replaced += db.execute("DELETE FROM measurements WHERE run_id = ?", (run_id,)).rowcount
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        replaced += db.execute("DELETE FROM measurements WHERE device LIKE ?", (PREFIX + "%",)).rowcount
    except sqlite3.Error as exc:
        db.rollback()
        raise storage_error(store.path, exc) from None
    added, _ = store._take(runs, rows)  # in the same transaction: the old table goes only with the new one in
    return PaperImport(source=source, sha256=sha, published=sha == PUBLISHED_SHA256, models=len(tests), rows=added,
                       replaced=replaced, devices=[DEVICES[k][0] for k, v in by_device.items() if v],
                       db=str(store.path), warning=warning)


def holds_table(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a table file, or a folder or archive holding ``data/tests.pkl`` (no reading of the table)."""
    path = Path(path)
    if path.is_dir():
        return any((path / c).is_file() for c in (ARCHIVE_MEMBER, "tests.pkl"))
    if not path.is_file():
        return False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return any(n == ARCHIVE_MEMBER or n.endswith("/" + ARCHIVE_MEMBER) for n in zf.namelist())
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            return any(m.name == ARCHIVE_MEMBER or m.name.endswith("/" + ARCHIVE_MEMBER) for m in tf.getmembers())
    return path.suffix.lower() != ".model"


def stored_rows(store) -> List:
    """The store's paper rows (newest import), ordered by id."""
    from .table import latest_rows

    return [r for r in latest_rows(store) if is_paper_device(r["device"])]


def frame_from_store(store):
    """The imported table as :func:`paper_frame` lays it out (one row per model: ``model``, ``family``,
    ``scale``, then the raw ``tests.pkl`` keys in the file's order, in its raw units: ``power_AGX`` in mW,
    ``power_MaxQ`` in W), read back from the results store; a one-line error naming the fix when the store
    holds no imported table."""
    import json

    import pandas as pd

    rows = stored_rows(store)
    if not rows:
        raise HarnessError(f"{store.path}: holds no eSR paper table; import it with {IMPORT_FIX}")
    keys: List[str] = []
    for run in store.runs():
        if is_paper_device(run["device"]):
            try:
                keys = list(json.loads(run["profile"] or "{}").get("keys") or []) or keys
            except (TypeError, ValueError, AttributeError):
                pass
    values: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        try:
            raw = json.loads(r["data"] or "{}").get("raw") or {}
        except (TypeError, ValueError, AttributeError):
            raw = {}
        values.setdefault(r["model"], {}).update({k: float(v) for k, v in raw.items() if v is not None})
    out = []
    for model, vals in values.items():
        order = [k for k in keys if k in vals] + sorted(k for k in vals if k not in keys)
        out.append({"model": model, "family": family_of(model), "scale": _scale(model), **{k: vals[k] for k in order}})
    columns = ["model", "family", "scale"] + [k for k in keys if any(k in v for v in values.values())]
    columns += sorted({k for v in values.values() for k in v} - set(columns))
    return pd.DataFrame(out, columns=columns).sort_values(["scale", "family", "model"], kind="stable") \
        .reset_index(drop=True)
