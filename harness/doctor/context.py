"""What every check is given: :class:`Context` (the device profile, the :class:`System` it reads,
the device kind, the library probes' results), :func:`kind_of` a profile, and :func:`version_tuple`
for the version comparisons."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from .system import System


@dataclass
class Context:
    """One doctor run: ``kind`` is jetson / rpi / cuda / cpu (:func:`kind_of`); ``libs`` the library
    probes (empty when the system is not live)."""

    profile: Dict[str, object]
    system: System
    kind: str                       # jetson / rpi / cuda / cpu
    libs: Dict[str, Dict[str, object]] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return str(self.profile.get("backend", "")).lower()

    @property
    def target(self) -> str:
        return str(self.profile.get("target", "")).lower()

    @property
    def precision(self) -> str:
        return str(self.profile.get("precision", "")).lower()

    @property
    def name(self) -> str:
        return str(self.profile.get("name", "?"))


def kind_of(profile: Mapping[str, object]) -> str:
    """jetson / rpi / cuda / cpu for ``profile`` (as the power meters pick their candidates)."""
    from ..power.auto import device_kind

    return device_kind(dict(profile))


def version_tuple(text: Optional[str]) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:3])
