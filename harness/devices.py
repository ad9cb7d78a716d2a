"""Device profiles: one ``<name>.toml`` per device (built-in: ``harness/profiles/``; your own:
``devices/``), chosen by ``--device NAME`` or a path."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

from .errors import HarnessError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.8-3.10 (JetPack 5 ships 3.8)
    import tomli as tomllib

# The built-in profiles are package data (an installed harness finds them); a checkout's devices/
# folder holds the user's own, which win over a built-in of the same name.
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
USER_DIR = Path(__file__).resolve().parent.parent / "devices"
REQUIRED = ("name", "backend", "precision")


def available() -> List[str]:
    return sorted({p.stem for d in (USER_DIR, PROFILES_DIR) for p in d.glob("*.toml")})


def profile_path(name_or_path: str) -> Path:
    """The file of a profile: a path as given, else devices/<name>.toml, else the built-in one."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        return path
    mine = USER_DIR / f"{name_or_path}.toml"
    return mine if mine.is_file() else PROFILES_DIR / f"{name_or_path}.toml"


def load_profile(name_or_path: str) -> Dict:
    path = profile_path(name_or_path)
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
        raise HarnessError(f"{path}: profile lacks {', '.join(missing)}; see harness/profiles/cpu.toml for the fields")
    profile["path"] = str(path)
    return profile
