import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HARNESS_NO_PROGRESS", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
DATASETS = SHARED / "datasets"
OFFICIAL = SHARED / "esr-official"  # the official eSR weights and their parity data
MODEL_FILES = OFFICIAL / "model-files"
PARITY = sorted((OFFICIAL / "parity").glob("*.npz")) if (OFFICIAL / "parity").is_dir() else []
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


@pytest.fixture(autouse=True)
def fresh_form_memory():
    """Each test starts with an empty memory of screened-out forms (the ONNX Runtime backend keeps one per
    process, for a sweep), so that no test's form trials depend on the tests run before it."""
    import sys

    backend = sys.modules.get("harness.backends.onnxruntime_backend")
    if backend is not None:
        backend.SCREENED = backend.ScreenedForms()
    yield


PROJECT_OUTPUTS = [Path(__file__).resolve().parents[1] / name for name in ("results", "plots")]


def _outputs_listing():
    return {f: f.stat().st_mtime_ns for folder in PROJECT_OUTPUTS if folder.is_dir() for f in folder.iterdir()}


@pytest.fixture(autouse=True)
def leaves_project_outputs_alone():
    """No test writes into the project's own results/ or plots/ (a user's runs live there): each test
    gives its own folders (tmp_path). A test that wrote there fails, naming what it wrote."""
    before = _outputs_listing()
    yield
    after = _outputs_listing()
    written = sorted(str(f) for f, mtime in after.items() if before.get(f) != mtime)
    assert not written, f"the test wrote into the project's results/plots folders: {written}"


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


def tiny_y_onnx(path, scale: int = 2):
    """A user's Y model file without PyTorch: 0.9 * lr + 0.05, nearest-neighbour x``scale`` (DepthToSpace)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 1, "H", "W"])
    consts = [helper.make_tensor("a", TensorProto.FLOAT, [], [0.9]), helper.make_tensor("b", TensorProto.FLOAT, [], [0.05])]
    nodes = [helper.make_node("Mul", ["lr", "a"], ["m"]), helper.make_node("Add", ["m", "b"], ["t"]),
             helper.make_node("Concat", ["t"] * (scale * scale), ["c"], axis=1),
             helper.make_node("DepthToSpace", ["c"], ["sr"], blocksize=scale)]
    # IR version 8 (onnx 1.10) pinned: the installed onnx's newest may be beyond the installed ONNX Runtime's
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], initializer=consts),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, {"scale": str(scale)})  # what the fake TensorRT parser reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
