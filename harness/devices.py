"""Device profiles: one ``devices/<name>.toml`` per device, chosen by ``--device NAME`` or a path."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

from .errors import HarnessError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.8-3.10 (JetPack 5 ships 3.8)
    import tomli as tomllib

DEVICES_DIR = Path(__file__).resolve().parent.parent / "devices"
REQUIRED = ("name", "backend", "precision")


def available() -> List[str]:
    return sorted(p.stem for p in DEVICES_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Dict:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = DEVICES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise HarnessError(f"unknown device '{name_or_path}': no {path}; available: {', '.join(available())} "
                           f"(or pass the path of a profile .toml)")
    try:
        with open(path, "rb") as fh:
            profile = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: invalid TOML ({exc}); fix the profile") from None
    missing = [k for k in REQUIRED if k not in profile]
    if missing:
        raise HarnessError(f"{path}: profile lacks {', '.join(missing)}; see devices/cpu.toml for the fields")
    profile["path"] = str(path)
    return profile
