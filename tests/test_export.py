"""ONNX export of every family (naive and fast forms) matches PyTorch in ONNX Runtime with
dynamic H/W; the fast eSR form equals the naive one (also with official weights and extreme
keys); user ONNX files with the wrong I/O are rejected with a one-line error."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from conftest import MODEL_FILES, OFFICIAL, PARITY

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None
from onnx import TensorProto, helper

from harness.errors import HarnessError
from harness.export import export_model, export_onnx, verify_onnx
from harness.models import esr, resolve
from harness.models.fast import fast_form
from harness.models.onnx_file import check_onnx_io, onnx_io

FAST_FAMILIES = ("eSR-MAX", "eSR-TM", "eSR-TR", "eSR-CNN")


def small_ids(s: int):
    """One small model of every family at scale ``s`` (small C/D keep the exports quick)."""
    return [f"eSR-MAX_s{s}_K3_C2", f"eSR-TM_s{s}_K5_C2", f"eSR-TR_s{s}_K3_C2", f"eSR-CNN_s{s}_C2_D3_S3",
            f"ESPCN_s{s}_D0_S3", f"ESPCN_s{s}_D4_S6", f"FSRCNN_s{s}_D6_S3_M1", f"eSR-Bicubic_s{s}",
            f"Bicubic_s{s}"]


ALL_SMALL = [i for s in (2, 3, 4) for i in small_ids(s)]


def family(model_id: str) -> str:
    return "Bicubic" if model_id.startswith("Bicubic_") else esr.parse(model_id)[0]


def randomised(model_id: str, seed: int = 0):
    """The module with random weights: init weights are near-identity and would hide mistakes."""
    module = resolve(model_id).module
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module


# --- export: checker, ORT vs PyTorch at two input sizes, metadata ---------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id", ALL_SMALL)
def test_export_matches_pytorch(model_id, tmp_path):
    module = randomised(model_id)
    for form in ("naive", "fast"):
        path, written = export_model(model_id, module, tmp_path, form=form)
        expected = form if family(model_id) in FAST_FAMILIES else "naive"
        assert written == expected and path == tmp_path / f"{model_id}.{expected}.onnx"
        onnx.checker.check_model(str(path))
        for shape in ((1, 1, 40, 52), (2, 1, 23, 17)):  # one file, two sizes: H/W/batch dynamic
            assert verify_onnx(path, module, shape=shape, atol=1e-4) <= 1e-4
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["model_id"] == model_id and props["form"] == expected
        assert props["scale"] == str(module.scale) and props["harness_version"]
        assert check_onnx_io(path) == 1


@pytest.mark.torch
def test_export_model_rejects_unknown_form(tmp_path):
    with pytest.raises(HarnessError, match="eSR-MAX_s2_K3_C1.*naive, fast"):
        export_model("eSR-MAX_s2_K3_C1", esr.build_module("eSR-MAX_s2_K3_C1"), tmp_path, form="quick")


@pytest.mark.torch
def test_verify_onnx_names_the_file_on_mismatch(tmp_path):
    module = randomised("eSR-TM_s2_K3_C2")
    path = export_onnx(module, tmp_path / "tm.onnx")
    other = randomised("eSR-TM_s2_K3_C2", seed=1)
    with pytest.raises(HarnessError, match="tm.onnx"):
        verify_onnx(path, other)


# --- the fast form in PyTorch ----------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id", ALL_SMALL)
def test_fast_equals_naive(model_id):
    module = randomised(model_id)
    fast = fast_form(module)
    if family(model_id) not in FAST_FAMILIES:
        assert fast is None
        return
    x = torch.rand(2, 1, 19, 27, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (fast(x) - module(x)).abs().max().item() <= 1e-5


@pytest.mark.torch
def test_fast_form_shares_weights():
    module = randomised("eSR-CNN_s2_C2_D3_S3")
    fast = fast_form(module)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in module.parameters()}
    x = torch.rand(1, 1, 12, 14)
    with torch.no_grad():
        module.filter[4].weight.mul_(2.0)  # editing the original changes the fast form too
        assert (fast(x) - module(x)).abs().max().item() <= 1e-5


@pytest.mark.torch
@pytest.mark.parametrize("model_id", ["eSR-TM_s3_K3_C4", "eSR-TR_s2_K3_C4", "eSR-CNN_s4_C4_D3_S3"])
def test_fast_softmax_is_stable_for_huge_keys(model_id):
    """Keys in the hundreds overflow a plain exp in fp32; both forms must stay finite and agree."""
    module = randomised(model_id)
    s, c = module.scale, module.channels
    conv = module.filter if isinstance(module.filter, torch.nn.Conv2d) else module.filter[4]
    with torch.no_grad():
        conv.weight[c * s * s:].mul_(400.0)  # key (and query) channels only; values stay O(1)
    x = torch.rand(1, 1, 16, 18, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits_max = module.filter(x).abs().max().item() if family(model_id) != "eSR-CNN" else 0.0
        naive, fast = module(x), fast_form(module)(x)
    if logits_max:
        assert logits_max > 100  # exp(100) = inf in fp32: the test really is extreme
    assert torch.isfinite(naive).all() and torch.isfinite(fast).all()
    assert (fast - naive).abs().max().item() <= 1e-5 * max(1.0, naive.abs().max().item())


# --- official weights on the parity fixtures -------------------------------------------------
def official_fast_fixtures():
    return [p for p in PARITY if esr.parse(esr.official_id(p.stem))[0] in FAST_FAMILIES]


@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("fixture", official_fast_fixtures() or [None],
                         ids=[p.stem for p in official_fast_fixtures()] or ["no-shared"])
def test_fast_form_official_parity(fixture, tmp_path):
    if fixture is None or not MODEL_FILES.is_dir():
        pytest.skip(f"official eSR weights and parity fixtures not found under {OFFICIAL} (../shared)")
    model_id = esr.official_id(fixture.stem)
    module = esr.load_official(model_id, MODEL_FILES / f"{esr.official_name(model_id)}.model")
    data = np.load(fixture)
    lr = data["lr"][None, None]
    with torch.no_grad():
        fast = fast_form(module)(torch.from_numpy(lr))[0, 0].numpy()
    assert np.abs(fast - data["sr"]).max() <= 1e-5
    path, form = export_model(model_id, module, tmp_path, form="fast")
    assert form == "fast"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sr = sess.run(None, {"lr": lr})[0][0, 0]
    assert np.abs(sr - data["sr"]).max() <= 1e-4


# --- checks of user-supplied ONNX files ------------------------------------------------------
def save_graph(path, inputs, outputs, nodes, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # any onnx, any ORT
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_onnx_check_rejects_two_inputs(tmp_path):
    t = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 1, "h", "w"])  # noqa: E731
    path = save_graph(tmp_path / "two.onnx", [t("a"), t("b")], [t("y")], [helper.make_node("Add", ["a", "b"], ["y"])])
    assert [i.name for i in onnx_io(path)["inputs"]] == ["a", "b"]
    with pytest.raises(HarnessError, match=r"two\.onnx has 2 inputs \(a, b\)") as err:
        check_onnx_io(path)
    assert "\n" not in str(err.value)


def test_onnx_check_rejects_four_channels(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 4, 1, 1], [0.25] * 4)
    path = save_graph(tmp_path / "rgba.onnx", [x], [y], [helper.make_node("Conv", ["x", "w"], ["y"])], [w])
    info = onnx_io(path)
    assert [i.name for i in info["inputs"]] == ["x"]  # the initializer is not an input
    assert info["inputs"][0].shape == ("n", 4, "h", "w")
    with pytest.raises(HarnessError, match=r"rgba\.onnx.*4 input channels.*1 \(Y\) or 3 \(RGB\)"):
        check_onnx_io(path)


def test_onnx_check_rejects_two_outputs_and_bad_files(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    ys = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 3, "h", "w"]) for n in ("y", "z")]
    nodes = [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])]
    path = save_graph(tmp_path / "twoout.onnx", [x], ys, nodes)
    with pytest.raises(HarnessError, match=r"twoout\.onnx has 2 outputs"):
        check_onnx_io(path)
    one = save_graph(tmp_path / "rgb.onnx", [x], ys[:1], nodes[:1])
    assert check_onnx_io(one) == 3
    with pytest.raises(HarnessError, match="missing.onnx does not exist"):
        check_onnx_io(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx file\xff" * 10)
    with pytest.raises(HarnessError, match="cannot read ONNX file .*junk.onnx"):
        check_onnx_io(junk)


@pytest.mark.parametrize("case,message", [
    ("fp16_input", "input 'x' is float16; the harness feeds float32 images"),
    ("int_output", "output 'y' is uint8; the harness reads a float image"),
    ("fixed_size", "has a fixed height/width"),
])
def test_onnx_check_says_what_to_re_export(tmp_path, case, message):
    """Inputs the runner cannot feed or outputs it cannot score are refused in one line with the fix,
    rather than an ONNX Runtime traceback, wrong advice or a 7 dB score."""
    in_type = TensorProto.FLOAT16 if case == "fp16_input" else TensorProto.FLOAT
    out_type = TensorProto.UINT8 if case == "int_output" else in_type
    dims = ["n", 1, 64, 64] if case == "fixed_size" else ["n", 1, "h", "w"]
    x = helper.make_tensor_value_info("x", in_type, dims)
    y = helper.make_tensor_value_info("y", out_type, dims)
    node = helper.make_node("Cast", ["x"], ["y"], to=out_type) if case == "int_output" else \
        helper.make_node("Identity", ["x"], ["y"])
    path = save_graph(tmp_path / f"{case}.onnx", [x], [y], [node])
    with pytest.raises(HarnessError, match=message) as err:
        check_onnx_io(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and "re-export it" in str(err.value)
