"""This machine and its data: the board model (a Pi profile needs a Raspberry Pi), free disk where
engines and ONNX files are cached, the embedded images the frames are built from, and the
standard test sets under ``$HARNESS_DATA``."""
from __future__ import annotations

import re
import shutil

from ..errors import HarnessError
from .context import Context
from .result import Check
from .system import not_in_capture

DISK_MIN_GB = 2.0  # engine caches, ONNX exports and LR frame caches of a full sweep fit well within this


def check_board(ctx: Context) -> Check:
    sysm = ctx.system
    model = sysm.text("/proc/device-tree/model")
    cpuinfo = sysm.text("/proc/cpuinfo") or ""
    if not model:
        for key in ("Model", "model name", "Hardware"):
            m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
            if m:
                model = m.group(1).strip()
                break
    data = {"model": model}
    if ctx.kind == "rpi":
        if model and "raspberry pi" in model.lower():
            return Check("board", "ok", model, required=True, data=data)
        return Check("board", "wrong", f"{model or 'unknown board'}: not a Raspberry Pi",
                     "run doctor on the Pi, or pick this machine's profile (--device cpu)", True, data)
    return Check("board", "info", model or "unknown (no /proc/device-tree/model, no model name in /proc/cpuinfo)",
                 data=data)


def check_disk(ctx: Context) -> Check:
    if not ctx.system.live:
        return not_in_capture(ctx.system, "disk")
    from ..weights import cache_dir

    where = cache_dir()
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(str(probe))
    except OSError as exc:
        return Check("disk", "absent", f"cannot stat {probe}: {exc}", "set HARNESS_CACHE to a writable folder", True)
    free_gb = usage.free / 2 ** 30
    data = {"cache_dir": str(where), "free_gb": round(free_gb, 2)}
    value = f"{free_gb:.1f} GB free for {where} (engine and ONNX caches)"
    if free_gb < DISK_MIN_GB:
        return Check("disk", "wrong", value + f": below {DISK_MIN_GB:.0f} GB",
                     "free space there, or set HARNESS_CACHE to a folder on a larger disk", True, data)
    return Check("disk", "ok", value, required=True, data=data)


def check_frames(ctx: Context) -> Check:
    if not ctx.system.live:
        return not_in_capture(ctx.system, "frames")
    try:
        from ..datasets import embedded_set

        images = embedded_set()
        name, img = next(iter(images))
    except Exception as exc:  # noqa: BLE001 - scikit-image missing or its data files stripped
        return Check("frames", "wrong", f"embedded images not loadable ({type(exc).__name__}: {exc})",
                     "./scripts/bootstrap.sh (scikit-image ships the images), or pass --frames DIR to bench", True)
    return Check("frames", "ok", f"embedded: 14 Full-HD mosaics of {len(images)} images ({images.origin})",
                 required=True, data={"images": len(images)})


def check_datasets(ctx: Context) -> Check:
    if not ctx.system.live:
        return not_in_capture(ctx.system, "datasets")
    from ..datasets import ENV_DATA, available_sets, data_root

    try:
        root = data_root()
    except HarnessError as exc:
        return Check("datasets", "wrong", str(exc).split(";")[0], f"fix ${ENV_DATA}, or unset it")
    if root is None:
        return Check("datasets", "info", f"no data root (${ENV_DATA} unset): quality uses the embedded set; "
                     f"standard sets: python -m harness data fetch Set5 --data DIR")
    found = available_sets(root)
    if not found:
        return Check("datasets", "wrong", f"no test set under {root}",
                     f"python -m harness data fetch Set5 --data {root}", data={"root": str(root)})
    return Check("datasets", "ok", f"{', '.join(found)} under {root}", data={"root": str(root), "sets": found})
