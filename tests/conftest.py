import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HARNESS_NO_PROGRESS", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATASETS = SHARED / "datasets"
# PyTorch is optional (the [torch] extra): a device venv, e.g. scripts/test-py38.sh's, has none.
HAS_TORCH = importlib.util.find_spec("torch") is not None


def pytest_collection_modifyitems(config, items):
    """Tests marked `torch` (they build, train or export a PyTorch model) skip where torch is absent."""
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason="needs PyTorch (not installed here; pip install -e '.[torch]')")
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip)


@pytest.fixture
def shared_datasets():
    if not (DATASETS / "Set5" / "HR").is_dir():
        pytest.skip(f"needs the development data in {DATASETS} (absent here)")
    return DATASETS


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny tensors run fastest that way (and far faster than on two
    threads of a busy 2-core machine); the previous count is restored after it. Nothing to do where
    PyTorch is absent (the module-wide fixture also serves that module's torch-free tests)."""
    if not HAS_TORCH:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
