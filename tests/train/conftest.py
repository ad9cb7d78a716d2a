"""Fixtures of the training tests: an isolated ``$HARNESS_CACHE`` for every test, and the tiny
training and validation folders."""
from __future__ import annotations

import pytest

from .helpers import smooth_images


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setenv("HARNESS_NO_PROGRESS", "1")


@pytest.fixture
def data(tmp_path):
    return smooth_images(tmp_path / "train")


@pytest.fixture
def val_root(tmp_path):
    smooth_images(tmp_path / "val" / "Set5" / "HR", n=2, size=(32, 32), seed=7)
    return tmp_path / "val"
