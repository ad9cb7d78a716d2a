"""ClassSR over FSRCNN branches (harness/models/classsr/, harness/backends/classsr_onnx.py): the patch
grid and overlap averaging, one batch per branch, routing statistics and MACs, the training forward and
loss, ONNX Runtime parity of the routed pipeline, weights, the registry entry, and the package's layout
(a light zoo import, module-level networks that pickle, imports flowing models -> backends only)."""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = nn = None

from harness.errors import HarnessError
from harness.models import all_ids, classsr, esr, id_scale, resolve
from harness.models.complexity import complexity

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness" / "models" / "classsr"

P, S, SCALE = classsr.PATCH, classsr.STRIDE, classsr.SCALE


pytestmark = pytest.mark.usefixtures("one_thread")


def test_image(h: int = 70, w: int = 90) -> np.ndarray:
    """A textured LR Y crop of an embedded photo (so that a trained-looking classifier has something to tell apart)."""
    from harness.color import rgb_to_y
    from harness.datasets import _load_embedded

    y = rgb_to_y(_load_embedded("astronaut")[100:100 + 4 * h, 60:60 + 4 * w]) / 255.0
    return np.ascontiguousarray(y[::4, ::4], dtype=np.float32)


test_image.__test__ = False  # a helper, not a test


def module_with(branches=None, classifier=None):
    torch.manual_seed(0)
    module = classsr.build_module()
    if branches is not None:
        module.branches = nn.ModuleList(branches)
    if classifier is not None:
        module.classifier = classifier
    return module.eval()


if torch is not None:  # stand-in modules for the tests marked `torch` (they need PyTorch to exist)
    class Nearest(nn.Module):
        """An identity-like branch: nearest-neighbour x4 upsampling."""

        def forward(self, x):
            return nn.functional.interpolate(x, scale_factor=SCALE, mode="nearest")

    class BrightnessRouter(nn.Module):
        """A stand-in classifier: dark patches -> branch 0, mid -> 1, bright -> 2 (all three used on a ramp)."""

        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            centres = torch.tensor([0.25, 0.5, 0.75])
            return -100.0 * (m[:, None] - centres[None]).abs()


def ramp(h: int = 70, w: int = 90) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


def route(module, lr: np.ndarray):
    with torch.inference_mode():
        sr, probs, labels = module.route(torch.from_numpy(lr)[None, None])
    return sr[0, 0].numpy(), probs.numpy(), labels.numpy()


def mixed_classifier(module, lr: np.ndarray, seed: int = 0):
    """Random classifier weights (std 0.1) and a bias that centres the logits on ``lr``'s patches,
    so that routing mixes the branches (the authors' init x 0.1 makes logits nearly constant)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.classifier.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        patches = module._patches(torch.from_numpy(lr)[None, None])[0]
        module.classifier.fc.bias -= module.classifier(patches).mean(dim=0)
    return module


# --- the patch grid and stitching ---------------------------------------------------------------
@pytest.mark.parametrize("length", [32, 33, 59, 60, 61, 70, 90, 270, 480])
def test_grid_covers_the_axis_exactly(length):
    starts = classsr.grid_starts(length)
    assert starts[0] == 0 and starts[-1] + P == length
    assert all(0 < b - a <= S for a, b in zip(starts, starts[1:]))  # every gap overlapped, none skipped
    assert starts[:-1] == list(range(0, S * (len(starts) - 1), S))  # the regular stride, the last flush
    assert classsr.grid_starts(20) == [0]


def test_coverage_counts_every_hr_pixel():
    count = classsr.coverage(70, 90)
    brute = np.zeros((280, 360))
    for y, x in classsr.patch_grid(70, 90):
        brute[4 * y:4 * y + 4 * P, 4 * x:4 * x + 4 * P] += 1
    assert count.shape == (280, 360) and count.min() >= 1 and np.array_equal(count, brute)


@pytest.mark.torch
@pytest.mark.parametrize("hw", [(70, 90), (20, 45), (32, 32)])
def test_identity_branches_reproduce_the_input_upsampled(hw):
    """Overlaps averaged as sum / count: nearest-upsampling branches give back the input upsampled,
    routed and probability-blended alike (20x45 is replicate-padded to 32 rows and cropped back)."""
    lr = np.random.default_rng(0).random(hw, dtype=np.float32)
    want = np.kron(lr, np.ones((SCALE, SCALE), np.float32))
    module = module_with(branches=[Nearest(), Nearest(), Nearest()], classifier=BrightnessRouter())
    sr, _, _ = route(module, lr)
    assert sr.shape == want.shape and np.abs(sr - want).max() <= 1e-6
    module.train()
    with torch.no_grad():
        soft, probs = module(torch.from_numpy(lr)[None, None])
    assert np.abs(soft[0, 0].numpy() - want).max() <= 1e-6
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(probs)))


# --- routing: one batch per branch, same result as patch by patch ----------------------------------
@pytest.mark.torch
def test_each_branch_runs_once_per_forward_with_all_its_patches():
    module = module_with(classifier=BrightnessRouter())
    calls = [[] for _ in module.branches]
    for i, branch in enumerate(module.branches):
        branch.register_forward_hook(lambda m, inp, out, i=i: calls[i].append(inp[0].shape[0]))
    lr = ramp()
    sr, _, labels = route(module, lr)
    assert [len(c) for c in calls] == [1, 1, 1]  # all three branches used, each called once
    assert [c[0] for c in calls] == np.bincount(labels, minlength=3).tolist()

    # the same image patch by patch, each through its branch alone, stitched by hand
    grid = classsr.patch_grid(70, 90)
    out = np.zeros((280, 360))
    with torch.no_grad():
        for (y, x), label in zip(grid, labels):
            patch = torch.from_numpy(lr[y:y + P, x:x + P].copy())[None, None]
            out[4 * y:4 * y + 4 * P, 4 * x:4 * x + 4 * P] += module.branches[label](patch)[0, 0].numpy()
    assert np.abs(sr - out / classsr.coverage(70, 90)).max() <= 1e-5

    for c in calls:
        c.clear()
    with torch.inference_mode():
        module(torch.from_numpy(np.stack([lr, lr[:, ::-1].copy()]))[:, None])  # two images, one call per branch
    assert [len(c) for c in calls] == [1, 1, 1] and sum(c[0] for c in calls) == 2 * len(grid)
    assert module.last_routing["images"] == 2 and module.last_routing["patches"] == 2 * len(grid)


# --- routing statistics ---------------------------------------------------------------------------
@pytest.mark.torch
def test_routing_stats_and_macs_saved():
    model = resolve(classsr.MODEL_ID)
    lr = test_image()
    model(lr)
    stats = model.last_routing
    assert stats["patches"] == 12 and stats["grid"] == [3, 4] and sum(stats["counts"]) == 12
    assert abs(sum(stats["shares"]) - 1.0) < 1e-12

    macs = classsr.patch_macs()
    # the per-patch counts are complexity.py's, on a 32x32 LR patch
    assert macs["branches"] == [complexity(esr.build_module(b), 4, out_hw=(128, 128))["macs_per_fhd"]
                                for b in classsr.BRANCH_IDS]
    assert macs["branches"][0] < macs["branches"][1] < macs["branches"][2]
    fc = model.module.classifier.fc
    for target in (2, 0):  # force every patch to the largest, then to the smallest branch
        with torch.no_grad():
            fc.weight.zero_()
            fc.bias.copy_(torch.tensor([10.0 if i == target else 0.0 for i in range(3)]))
        model(lr)
        stats = model.last_routing
        assert stats["counts"][target] == 12 and stats["shares"][target] == 1.0
        assert stats["macs_largest_same_patches"] == 12 * macs["branches"][2]
        assert stats["macs_classifier"] == 12 * macs["classifier"]
        assert stats["macs_routed"] == stats["macs_branches"] + stats["macs_classifier"]
        if target == 2:
            assert stats["macs_saved_pct"] == 0.0
            assert stats["macs_saved_pct_incl_classifier"] < 0  # the classifier is pure overhead then
        else:
            assert stats["macs_saved_pct"] == pytest.approx(100 * (1 - macs["branches"][0] / macs["branches"][2]))
    assert stats["macs_largest_whole_image"] == complexity(esr.build_module(classsr.BRANCH_IDS[2]), 4,
                                                           out_hw=(280, 360))["macs_per_fhd"]
    mixed = module_with(classifier=BrightnessRouter())
    route(mixed, ramp())
    assert 0 < mixed.last_routing["macs_saved_pct"] < 100 * (1 - macs["branches"][0] / macs["branches"][2])


@pytest.mark.torch
def test_static_complexity_is_the_worst_case():
    """On the meta device every patch goes to the largest branch: zoo list's count is an upper bound."""
    macs = classsr.patch_macs()
    info = complexity(classsr.build_module(), 4, out_hw=(280, 360))
    assert info["macs_per_fhd"] == 12 * (macs["classifier"] + macs["branches"][2])


# --- training ----------------------------------------------------------------------------------------
@pytest.mark.torch
def test_training_forward_is_differentiable_and_train_step_trains_the_classifier():
    module = module_with()
    module.train()
    torch.manual_seed(1)
    lr, hr = torch.rand(4, 1, P, P), torch.rand(4, 1, 4 * P, 4 * P)
    sr, probs = module(lr)
    assert sr.shape == hr.shape and probs.shape == (4, 3)
    classsr.classsr_loss(sr, hr, probs)[0].backward()
    for name, p in module.classifier.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    module.zero_grad()
    module.eval()
    optimizer = classsr.classifier_optimizer(module, lr=1e-3)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    parts = classsr.train_step(module, optimizer, lr, hr)
    assert set(parts) == {"l1", "class", "average", "total"} and np.isfinite(parts["total"])
    after = module.state_dict()
    assert not module.training  # mode restored
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("classifier."))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("branches."))  # frozen


def _authors_class_loss(p):  # codes/models/loss.py, class_loss_3class, transcribed
    n, m = len(p), len(p[0]) - 1
    return sum(m - (abs(r[0] - r[1]) + abs(r[0] - r[2]) + abs(r[1] - r[2])) for r in p) / n


def _authors_average_loss(p):  # codes/models/loss.py, average_loss_3class, transcribed
    n, m = len(p), len(p[0])
    sums = [sum(r[j] for r in p) for j in range(3)]
    return sum(abs(s - n / m) for s in sums) / ((n / m) * 4)


@pytest.mark.torch
def test_loss_terms_and_weights():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, 3, generator=gen) * 2, dim=1)
    sr, hr = torch.rand(6, 1, 8, 8, generator=gen), torch.rand(6, 1, 8, 8, generator=gen)
    total, parts = classsr.classsr_loss(sr, hr, probs)
    rows = probs.tolist()
    assert parts["class"] == pytest.approx(_authors_class_loss(rows), abs=1e-6)
    assert parts["average"] == pytest.approx(_authors_average_loss(rows), abs=1e-6)
    assert parts["l1"] == pytest.approx(float((sr - hr).abs().mean()), abs=1e-7)
    w = classsr.LOSS_WEIGHTS
    assert (w["l1"] / w["class"], w["average"] / w["class"]) == (2000.0, 6.0)
    assert float(total) == pytest.approx(1000 * parts["l1"] + 0.5 * parts["class"] + 3 * parts["average"], rel=1e-6)
    assert parts["total"] == pytest.approx(float(total))

    one_hot = torch.eye(3).repeat(2, 1)  # one-hot and perfectly balanced: both extra terms vanish
    assert float(classsr.class_loss(one_hot)) == 0.0 and float(classsr.average_loss(one_hot)) == 0.0
    assert float(classsr.class_loss(torch.full((4, 3), 1 / 3))) == pytest.approx(2.0)
    assert float(classsr.average_loss(torch.tensor([[1.0, 0, 0]] * 4))) == pytest.approx(1.0)


# --- ONNX Runtime ------------------------------------------------------------------------------------
@pytest.mark.torch
def test_onnx_pipeline_matches_pytorch(tmp_path):
    import onnx

    from harness.backends.classsr_onnx import ClassSROnnx
    from harness.export import export_classsr_parts

    lr = test_image()
    module = mixed_classifier(module_with(), lr)
    paths = export_classsr_parts(module, tmp_path)
    assert set(paths) == set(classsr.ONNX_PARTS)
    for path in paths.values():
        onnx.checker.check_model(str(path))
    pipe = ClassSROnnx(tmp_path, threads=1)  # a folder finds the four files by name

    sr, probs, labels = route(module, lr)
    assert len(set(labels.tolist())) >= 2  # the routing is not trivial
    top2 = np.sort(probs, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-4  # and not decided by a near-tie
    got = pipe(lr)
    assert got.shape == sr.shape and np.abs(got - sr).max() <= 1e-4
    assert pipe.last_routing["counts"] == module.last_routing["counts"]
    assert set(pipe.last_times_ms) == {"patch", "classify", "branches", "stitch", "total"}

    # as a backend session, on a batch of two and on an image smaller than a patch
    for x in (np.stack([lr, lr[::-1].copy()])[:, None], np.ascontiguousarray(lr[:20, :45])[None, None]):
        with torch.inference_mode():
            want = module(torch.from_numpy(x)).numpy()
        got = pipe.infer(x)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


@pytest.mark.torch
def test_tracing_the_routed_module_is_refused(tmp_path):
    from harness.export import export_onnx

    with pytest.raises(HarnessError, match="export_classsr_parts"):
        export_onnx(classsr.build_module(), tmp_path / "whole.onnx")


# --- weights and the registry ---------------------------------------------------------------------
@pytest.mark.torch
def test_weights_official_file_and_branches(tmp_path):
    with pytest.raises(HarnessError) as err:
        resolve(classsr.MODEL_ID, weights="official")
    assert "\n" not in str(err.value) and "no official weights" in str(err.value)

    lr = test_image(40, 36)
    trained = mixed_classifier(module_with(), lr, seed=3)
    path = tmp_path / "classsr.pt"
    torch.save(trained.state_dict(), path)
    model = resolve(classsr.MODEL_ID, weights=str(path))
    assert model.weights == str(path)
    with torch.inference_mode():
        want = trained(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    assert np.array_equal(model(lr), want)

    branch = esr.build_module(classsr.BRANCH_IDS[0])
    branch_file = tmp_path / "fsrcnn_d16.pt"
    torch.save(branch.state_dict(), branch_file)
    with pytest.raises(HarnessError) as err:  # a branch file is not a whole-module file
        resolve(classsr.MODEL_ID, weights=str(branch_file))
    assert str(branch_file) in str(err.value) and "\n" not in str(err.value)

    module = classsr.load_branches(classsr.build_module(), [branch_file, None, None])
    assert all(torch.equal(a, b) for a, b in zip(module.branches[0].state_dict().values(),
                                                 branch.state_dict().values()))
    with pytest.raises(HarnessError) as err:  # the d=16 file into the d=36 branch
        classsr.load_branches(classsr.build_module(), [None, branch_file, None])
    assert classsr.BRANCH_IDS[1] in str(err.value) and "\n" not in str(err.value)
    assert classsr.build([branch_file, None, None]).weights == "branches"


@pytest.mark.torch
def test_registry_resolves_classsr_at_x4_only():
    model = resolve(classsr.MODEL_ID)
    assert isinstance(model, classsr.ClassSRUpscaler)
    assert (model.family, model.scale, model.input_space) == ("ClassSR", 4, "y")
    assert id_scale(classsr.MODEL_ID) == 4 and model.last_routing is None
    assert classsr.MODEL_ID in all_ids((4,)) and classsr.MODEL_ID not in all_ids((2, 3))
    with pytest.raises(HarnessError, match="x4 only"):
        resolve("ClassSR-FSRCNN_s2")
    with pytest.raises(HarnessError, match="x4 model"):
        resolve(classsr.MODEL_ID, scale=3)
    sr = model(test_image(33, 50))
    assert sr.shape == (132, 200) and sr.dtype == np.float32 and model.last_routing["patches"] == 4  # rows 0, 1; columns 0, 18


@pytest.mark.torch
def test_runner_measures_the_routed_onnx_pipeline_and_stores_routing(tmp_path):
    """The ORT backend runs ClassSR as its routed pipeline (classification and stitching inside the
    timed compute) and the record carries the routing over all frames, with the routed MACs."""
    from harness.runner import BenchConfig, measure

    cfg = BenchConfig(device="cpu", backend="onnxruntime", precision="fp32", weights="init", repeats=1,
                      min_repeats=1, warmup=0, max_time_s=0.1, power_meter="none", workdir=str(tmp_path),
                      reference_check=False)
    rng = np.random.default_rng(0)
    frames = [rng.random((1, 1, 40, 60), dtype=np.float32) for _ in range(2)]
    record = measure(classsr.MODEL_ID, 4, cfg, frames)
    routing = record["routing"]
    assert record["form"] == "routed"
    assert routing["images"] == 2 and sum(routing["counts"]) == routing["patches"] == 2 * routing["patches_per_image"]
    assert abs(sum(routing["shares"]) - 1) < 1e-9
    assert record["macs_per_fhd"] == routing["macs_routed_per_image"]
    per_patch = routing["macs_per_patch"]
    expected = sum(c * m for c, m in zip(routing["counts"], per_patch["branches"])) \
        + routing["patches"] * per_patch["classifier"]
    assert routing["macs_routed"] == expected
    assert record["fhd_per_s"] > 0


@pytest.mark.torch
def test_tensorrt_refuses_the_routed_model_with_a_way_out():
    from harness.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(precision="fp16", device="cuda")
    backend.probe = lambda: (True, "")  # as if TensorRT were installed: the refusal comes before any engine
    with pytest.raises(HarnessError, match="--backend onnxruntime"):
        backend.prepare(classsr.build(), [(1, 1, 32, 32)])


# --- the package's layout ---------------------------------------------------------------------------
def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=300)


def test_the_zoo_and_export_folders_import_without_torch():
    """Registering and listing ClassSR, resolving a classical model and reading export folders need no PyTorch:
    the network modules are imported when a network is built."""
    res = _run("import sys, harness, harness.models, harness.exported\n"
               "from harness.exported import ExportedPipeline, open_folder, resolve_model\n"
               "from harness.models import all_ids, classsr, resolve\n"
               "resolve('bicubic-matlab', 2)\n"
               "assert classsr.MODEL_ID in all_ids((4,)) and classsr.merge_routing([]) is None\n"
               "heavy = [m for m in ('torch', 'harness.models.classsr.networks', 'harness.models.classsr.classifier',\n"
               "                     'harness.export', 'harness.backends.classsr_onnx')\n"
               "         if m in sys.modules]\n"
               "print(heavy)\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_building_without_torch_raises_the_torch_import_error():
    """Where PyTorch is absent the network modules still import (tests/test_py38.py imports them all), and
    building a network raises ImportError name 'torch', which the harness turns into its 'needs PyTorch' advice."""
    res = _run("import sys\n"
               "sys.modules['torch'] = None\n"
               "from harness.models import classsr\n"
               "from harness.models.classsr import networks\n"
               "assert classsr.ClassSR is networks.ClassSR\n"
               "try:\n"
               "    classsr.build()\n"
               "except ImportError as exc:\n"
               "    print(exc.name)\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "torch"


def _harness_imports(path: Path) -> set:
    """The harness modules ``path`` imports, function-level imports included (relative ones resolved)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; an __init__'s is its own folder too
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{target}.{a.name}" for a in node.names} | {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("harness")}


def test_imports_flow_from_models_to_backends_only():
    """models.classsr never imports a backend (the backend builds the pipeline) nor the exporter
    (harness.export writes its parts from above; tests/test_layers.py checks the whole package)."""
    for path in sorted(PACKAGE.glob("*.py")):
        imports = _harness_imports(path)
        assert not any(m.startswith(("harness.backends", "harness.export")) for m in imports), path.name
    backend = _harness_imports(ROOT / "harness" / "backends" / "classsr_onnx.py")
    assert "harness.models.classsr.routing" in backend and "harness.backends.onnxruntime_backend" not in backend


def test_package_modules_stay_small():
    for path in [*PACKAGE.glob("*.py"), ROOT / "harness" / "backends" / "classsr_onnx.py"]:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 500, path.name


@pytest.mark.torch
def test_networks_are_module_level_and_pickle_by_name():
    """The classes live at module level (no closure): modules pickle and deep-copy, and names pickled before
    the split (harness.models.classsr.ClassSR, ...) still resolve through the package."""
    from harness.models.classsr import classifier, networks

    module = classsr.build_module()
    assert type(module) is networks.ClassSR and type(module).__module__ == "harness.models.classsr.networks"
    assert type(module.classifier) is classifier.Classifier
    assert (classsr.ClassSR, classsr.Classifier, classsr.ClassifierProbs) == \
        (networks.ClassSR, classifier.Classifier, classifier.ClassifierProbs)
    clone = pickle.loads(pickle.dumps(module))
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), clone.state_dict().values()))
    # a pickle from before the split names harness.models.classsr.ClassSR / .Classifier (protocol 0: plain text)
    old = pickle.dumps(module, protocol=0)
    for name in (b"networks", b"classifier"):
        assert old.count(b"charness.models.classsr." + name + b"\n") == 1
        old = old.replace(b"charness.models.classsr." + name + b"\n", b"charness.models.classsr\n")
    legacy = pickle.loads(old)
    assert type(legacy) is networks.ClassSR and type(legacy.classifier) is classifier.Classifier
    lr = torch.from_numpy(test_image(33, 40))[None, None]
    with torch.inference_mode():
        assert torch.equal(module(lr), clone(lr)) and torch.equal(module(lr), legacy(lr))


@pytest.mark.torch
def test_onnx_runtime_backend_builds_the_pipeline_and_caches_it_by_weights(tmp_path):
    """The backend (not the model) builds ClassSR's pipeline: graphs under <workdir>/onnx/<id>.<digest>,
    exported once and reused; other weights get another folder."""
    from harness.backends.classsr_onnx import ClassSROnnx
    from harness.backends.onnxruntime_backend import OnnxRuntimeBackend
    from harness.export import module_digest

    model = resolve(classsr.MODEL_ID, weights="init")
    backend = OnnxRuntimeBackend(precision="fp32", threads=1, device="cpu", workdir=str(tmp_path))
    session = backend.prepare(model, [(1, 1, 40, 60)])
    folder = tmp_path / "onnx" / f"{classsr.MODEL_ID}.{module_digest(model.module)}"
    assert isinstance(session, ClassSROnnx) and session.paths == classsr.part_files(folder)
    stamps = {p: path.stat().st_mtime_ns for p, path in session.paths.items()}
    again = backend.prepare(model, [(1, 1, 40, 60)])
    assert {p: path.stat().st_mtime_ns for p, path in again.paths.items()} == stamps  # reused, not re-exported
    lr = test_image(40, 60)
    with torch.inference_mode():
        want = model.module(torch.from_numpy(lr)[None, None]).numpy()
    assert np.abs(again.infer(lr[None, None]) - want).max() <= 1e-4
