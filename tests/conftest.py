import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HARNESS_NO_PROGRESS", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATASETS = SHARED / "datasets"


@pytest.fixture
def shared_datasets():
    if not (DATASETS / "Set5" / "HR").is_dir():
        pytest.skip(f"needs the development data in {DATASETS} (absent here)")
    return DATASETS


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
