"""The meter for "no measurement": every summary is NaN with the reason, never a made-up number."""
from __future__ import annotations

from typing import Dict, Tuple

from .base import Meter, MeterError, Reading

NO_METER = "no power meter configured"


class NoneMeter(Meter):
    name = "none"
    mode = "none"

    def __init__(self, reason: str = NO_METER) -> None:
        super().__init__()
        self.reason = reason

    def probe(self) -> Tuple[bool, str]:
        return False, self.reason

    def read(self) -> Reading:
        raise MeterError(self.reason)

    def info(self) -> Dict[str, object]:
        out = super().info()
        out["reason"] = self.reason
        return out
