"""Shared by the doctor tests: the device captures under tests/fixtures/devices/, the power their
INA3221 files give by hand, and canned library probes (the real ones are child processes)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from harness.doctor import LIBRARIES, Check

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ROOT / "tests" / "fixtures" / "devices"
JP5 = DEVICES / "jetson-agx-xavier-jp5"
JP4 = DEVICES / "jetson-agx-xavier-jp4"
PI = DEVICES / "rpi400-bookworm"

# Hand-computed from the fixture files: sum of in{N}_input (mV) x curr{N}_input (mA) / 1e6 per rail.
JP5_INA_W = (19104 * (24 + 24 + 65 + 0 + 16) + 4968 * 557) / 1e6        # 5.231592 W
JP4_INA_W = (0 + 305 + 1088 + 0 + 152 + 1087) / 1000.0                   # in_power{N}_input, mW


def by_name(checks: List[Check]) -> Dict[str, Check]:
    return {c.name: c for c in checks}


def canned_libraries(names=LIBRARIES):
    return {"torch": {"ok": False, "missing": True, "error": "torch is not installed"},
            "onnxruntime": {"ok": True, "version": "1.16.3", "providers": ["CPUExecutionProvider"]},
            "tensorrt": {"ok": False, "missing": True, "error": "tensorrt is not installed"},
            "pycuda": {"ok": False, "missing": True, "error": "pycuda is not installed"}}

