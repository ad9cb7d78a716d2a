"""BSRN: official weights load strictly and reproduce the authors' output, shapes, an ONNX
graph that stays correct at sizes other than the export size (ESA's resize), and the
one-line errors of weight loading."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness.errors import HarnessError
from harness.export import export_onnx
from harness.models import bsrn, families
from harness.ortsession import ort_session

SHARED = Path(__file__).resolve().parents[3] / "shared"
OFFICIAL = SHARED / "bsrn-official"
SCALES = (2, 3, 4)


def need_official():
    if not OFFICIAL.is_dir():
        pytest.skip(f"official BSRN weights not found at {OFFICIAL} (development data, ../shared)")


def official_file(scale: int) -> Path:
    return OFFICIAL / f"net_g_BSRN_x{scale}.pth"


# --- parity with the official implementation -------------------------------------------------
@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("scale", SCALES)
def test_official_parity(scale):
    need_official()
    module = bsrn.load_official(f"BSRN_s{scale}", official_file(scale))  # strict=True inside
    data = np.load(OFFICIAL / "parity" / f"BSRN_x{scale}.npz")
    with torch.no_grad():
        sr = module(torch.from_numpy(data["lr"])[None])[0].numpy()
    assert sr.shape == data["sr"].shape
    assert np.abs(sr - data["sr"]).max() <= 1e-5


@pytest.mark.torch
@pytest.mark.shared
def test_wrong_scale_file_is_a_one_line_error():
    need_official()
    path = official_file(2)
    with pytest.raises(HarnessError) as err:
        bsrn.load_official("BSRN_s4", path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "upsampler" in msg


# --- architecture ----------------------------------------------------------------------------
@pytest.mark.torch
def test_param_counts_match_the_published_model():
    counts = {s: sum(p.numel() for p in bsrn.build_module(f"BSRN_s{s}").parameters()) for s in SCALES}
    # 64 features, 8 ESDBs; only the last conv (64 -> 3*s*s) depends on the scale.
    assert counts == {2: 331628, 3: 340283, 4: 352400}


@pytest.mark.torch
@pytest.mark.parametrize("scale", SCALES)
def test_output_shapes(scale):
    torch.manual_seed(0)
    model = bsrn.wrap(f"BSRN_s{scale}", bsrn.build_module(f"BSRN_s{scale}"))
    assert model.input_space == "rgb" and model.channels == 3 and model.scale == scale
    lr = np.random.default_rng(0).random((19, 23, 3), dtype=np.float32)
    sr = model(lr)
    assert sr.shape == (19 * scale, 23 * scale, 3) and sr.dtype == np.float32


def test_ids_and_pattern():
    assert bsrn.ids(3) == ["BSRN_s3"]
    assert bsrn.PATTERN.fullmatch("BSRN_s4") and not bsrn.PATTERN.fullmatch("BSRN_s5")
    with pytest.raises(HarnessError):
        bsrn.scale_of("BSRN_x4")


@pytest.mark.torch
def test_registry_resolves_bsrn():
    if "BSRN" not in [f.name for f in families()]:
        pytest.skip("BSRN is not registered in harness/models/__init__.py yet")
    from harness.models import resolve

    model = resolve("BSRN_s2")
    assert model.scale == 2 and model.input_space == "rgb"


# --- ONNX: one graph, any input size ---------------------------------------------------------
def _static_values(graph):
    """Names of the values fixed at export time (initializers, Constants, and what only they feed)."""
    static = {i.name for i in graph.initializer}
    for node in graph.node:  # ONNX nodes are topologically sorted
        if node.op_type == "Constant" or (node.input and all(i in static or not i for i in node.input)):
            static.update(node.output)
    return static


@pytest.mark.torch
def test_onnx_export_is_correct_at_other_sizes(tmp_path):
    """Exported once (export_onnx's 24x36 dummy), run at sizes whose ESA maps differ in size.

    ESA downsamples by a strided conv and a 7/3 max-pool and resizes back; a size frozen at
    export time would give a broadcast error or a mis-sized map at any other input size.
    """
    import onnx

    torch.manual_seed(0)
    module = bsrn.build_module("BSRN_s3")
    path = export_onnx(module, tmp_path / "bsrn.onnx", channels=3)

    # Structure: every Resize takes its output size from the runtime shape, not a constant.
    # Structure: every Resize takes its output H, W from the runtime shape. A frozen size shows
    # as ``Concat(Slice(Shape(x)), Constant)`` for the sizes input, so check each part.
    graph = onnx.load(str(path)).graph
    producers = {o: n for n in graph.node for o in n.output}
    static = _static_values(graph)
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 8  # one per ESDB's ESA
    for node in resizes:
        sizes = node.input[3] if len(node.input) > 3 else ""
        assert sizes and sizes not in static, "ESA resize exported with a fixed size"
        parts = producers[sizes].input if producers[sizes].op_type == "Concat" else [sizes]
        assert not any(p in static for p in parts), "ESA resize exported with a fixed H or W"

    # Behaviour: ORT vs eager at two sizes other than the export size (one not a multiple of 4).
    sess = ort_session(path, threads=2)
    rng = np.random.default_rng(0)
    for h, w in ((37, 45), (16, 58)):
        x = rng.random((1, 3, h, w), dtype=np.float32)
        got = sess.run(None, {"lr": x})[0]
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (1, 3, 3 * h, 3 * w)
        assert np.abs(got - want).max() <= 1e-4


# --- user errors -----------------------------------------------------------------------------
def _one_line_naming(err, path):
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg


@pytest.mark.torch
def test_missing_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(HarnessError) as err:
        bsrn.load_official("BSRN_s4", path)
    _one_line_naming(err, path)


@pytest.mark.torch
def test_unreadable_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(HarnessError) as err:
        bsrn.load_official("BSRN_s4", path)
    _one_line_naming(err, path)


@pytest.mark.torch
def test_wrong_network_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"params": torch.nn.Conv2d(3, 3, 3).state_dict()}, str(path))
    with pytest.raises(HarnessError) as err:
        bsrn.load_official("BSRN_s2", path)
    _one_line_naming(err, path)
    assert "missing" in str(err.value) and "unexpected" in str(err.value)


@pytest.mark.torch
def test_non_state_dict_is_a_one_line_error(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], str(path))
    with pytest.raises(HarnessError) as err:
        bsrn.load_official("BSRN_s3", path)
    _one_line_naming(err, path)


@pytest.mark.torch
def test_bare_and_basicsr_state_dicts_both_load(tmp_path):
    torch.manual_seed(0)
    state = bsrn.build_module("BSRN_s2").state_dict()
    for name, obj in (("bare.pth", state), ("basicsr.pth", {"params": state})):
        torch.save(obj, str(tmp_path / name))
        module = bsrn.load_official("BSRN_s2", tmp_path / name)
        assert torch.equal(module.upsampler.upsampleOneStep[0].weight, state["upsampler.upsampleOneStep.0.weight"])


# --- zoo import-bsrn: --weights official -----------------------------------------------------
@pytest.mark.torch
def test_official_choice_without_import_says_how_to_import(tmp_path, monkeypatch):
    from harness.models import resolve

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HarnessError) as err:
        resolve("BSRN_s3", weights="official")
    msg = str(err.value)
    assert "\n" not in msg and "zoo import-bsrn" in msg and "net_g_BSRN_x3.pth" in msg


def test_import_refuses_a_tampered_file_and_skips_other_checkpoints(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from harness.weights import bsrn_manifest, bsrn_official_dir

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert sorted(bsrn_manifest()) == [f"net_g_BSRN_x{s}" for s in SCALES]
    src = tmp_path / "pretrained_models"
    src.mkdir()
    (src / "net_g_BSRN_x2.pth").write_bytes(b"tampered")
    (src / "net_g_RFDN_x4.pth").write_bytes(b"another network")
    assert main(["zoo", "import-bsrn", str(src)]) == 1
    out = capsys.readouterr().out
    assert "wrong SHA-256" in out and "1 not in the manifest" in out and "holds 0 of 3" in out
    assert not (bsrn_official_dir() / "net_g_BSRN_x2.pth").exists()


@pytest.mark.torch
@pytest.mark.shared
def test_imported_official_weights_reproduce_the_parity_fixture(tmp_path, monkeypatch):
    from harness.models import resolve
    from harness.weights import import_bsrn

    need_official()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert sorted(import_bsrn(OFFICIAL).imported) == [f"net_g_BSRN_x{s}" for s in SCALES]
    assert sorted(import_bsrn(OFFICIAL).unchanged) == [f"net_g_BSRN_x{s}" for s in SCALES]  # idempotent
    model = resolve("BSRN_s2", weights="official")
    assert model.weights == "official"
    data = np.load(OFFICIAL / "parity" / "BSRN_x2.npz")
    with torch.no_grad():
        sr = model.module(torch.from_numpy(data["lr"])[None])[0].numpy()
    assert np.abs(sr - data["sr"]).max() <= 1e-5


@pytest.mark.torch
@pytest.mark.shared
def test_official_x4_reproduces_the_published_set5_figures(tmp_path, monkeypatch):
    """BSRN paper, Table 3 (x4 Set5): 32.35 dB / 0.8966, on Y with `scale` pixels cropped; the
    harness's quality protocol and the imported weights land on it."""
    from harness.datasets import resolve_sets
    from harness.models import resolve
    from harness.protocol import QualityEvaluator
    from harness.weights import import_bsrn

    need_official()
    data = SHARED / "datasets"
    if not (data / "Set5").is_dir():
        pytest.skip(f"Set5 not found in {data} (development data, ../shared)")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    import_bsrn(OFFICIAL)
    (set5,) = resolve_sets(data, ["Set5"])
    result = QualityEvaluator(show_progress=False).evaluate(resolve("BSRN_s4", weights="official"), set5)
    assert abs(result.psnr - 32.35) <= 0.02 and abs(result.ssim - 0.8966) <= 0.0005
