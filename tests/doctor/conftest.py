"""Fixtures of the doctor tests."""
from __future__ import annotations

import pytest

from harness.doctor import checks

from .helpers import canned_libraries


@pytest.fixture
def fast_libs(monkeypatch):
    """Library probes are child processes (torch alone takes seconds); most tests do not need them.
    run_checks looks probe_libraries up in harness.doctor.checks, so it is replaced there."""
    monkeypatch.setattr(checks, "probe_libraries", canned_libraries)
