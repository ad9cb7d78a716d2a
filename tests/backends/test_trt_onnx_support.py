"""TensorRT's ONNX parser, checked without TensorRT: every graph the harness exports (each family, naive
and fast forms, each ClassSR part) passes onnx-tensorrt's operator support matrix of TensorRT 8.5
(JetPack 5.1) and 10.x, recorded in harness/backends/trt_onnx_support.json with its source commit.

The INT8 QDQ graphs (ONNX Runtime's post-training quantization, and the QAT export) are the one thing
TensorRT genuinely refuses: they quantize activations to UINT8 with an asymmetric zero point (and biases
to INT32), while TensorRT takes only signed INT8 with zero point 0. That is why the TensorRT backend
builds INT8 engines from the fp32 ONNX with its entropy calibrator; the tests below pin that reason
down, and show that the same quantizer set to TensorRT's scheme passes. Hand-built graphs show that
the checker catches each kind of problem.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.backends.trt_onnx_check import DATA, check_graph, supported_versions
from harness.export import export_classsr_parts

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]

TRT = ("8.5", "10.x")
FAST = ("eSR-MAX_s2_K3_C2", "eSR-TM_s2_K7_C4", "eSR-TR_s2_K5_C2", "eSR-CNN_s2_C4_D3_S6")  # naive + fast forms
NAIVE_ONLY = ("Bicubic_s2", "eSR-Bicubic_s2", "ESPCN_s2_D0_S3", "ESPCN_s2_D3_S6", "FSRCNN_s2_D6_S1_M1", "ABPN_s2",
              "BSRN_s2", "EDSR_s2", "Ghost-FSRCNN_s2_D56_S12_M4", "Ghost-ESPCN_s2_D3_S6")
EXPORTS = [(m, "naive") for m in FAST + NAIVE_ONLY] + [(m, "fast") for m in FAST]
# INT8 QDQ of every family but BSRN (its 1600 Q/DQ nodes take ~15 s to calibrate; same quantizer, same scheme)
INT8 = FAST + tuple(m for m in NAIVE_ONLY if m != "BSRN_s2")
QDQ = ("QuantizeLinear", "DequantizeLinear")

_CACHE: Dict[Tuple[str, str], Path] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("trt-onnx")


def exported(model_id: str, form: str, workdir: Path) -> Path:
    """The harness's own export of ``model_id`` (init weights) in ``form``: naive, fast or int8 (ONNX
    Runtime QDQ of the naive graph through harness.quantize.quantize_qdq), made once per module."""
    from harness.export import export_model
    from harness.models import resolve
    from harness.quantize import calibration_inputs, quantize_qdq

    key = (model_id, form)
    if key not in _CACHE:
        model = resolve(model_id, weights="init")
        if form == "int8":
            fp32 = exported(model_id, "naive", workdir)
            inputs = calibration_inputs(model.scale, model.input_space, count=1, patch=24)
            _CACHE[key] = quantize_qdq(fp32, fp32.with_name(f"{model_id}.naive.int8.onnx"), inputs)
        else:
            path, got = export_model(model_id, model.module, workdir / model_id, form=form)
            assert got == form, f"{model_id} has no {form} form"
            _CACHE[key] = path
    return _CACHE[key]


def assert_refused_only_for_uint8_qdq(path: Path, trt: str) -> None:
    """The QDQ graph's problems are exactly TensorRT's symmetric signed-INT8 rule, on Q/DQ nodes only: UINT8
    zero points (and data), non-zero zero points, INT32 bias DequantizeLinear. Every other node passes."""
    problems = check_graph(path, trt)
    assert problems, f"{path.name}: expected TensorRT {trt} to refuse ONNX Runtime's UINT8 QDQ"
    for p in problems:
        assert p.op_type in QDQ or (p.op_type == "Identity" and p.kind == "dtype" and "UINT8" in p.message), p
        assert p.kind in ("zero_point_type", "zero_point_value", "dtype"), p
        if p.kind == "dtype":
            assert re.search(r"' is (UINT8|INT32);", p.message), p
        if p.kind == "zero_point_type":
            assert re.search(r"is (UINT8|INT32): TensorRT quantizes to signed INT8", p.message), p
    model = onnx.load(str(path))
    activation_q = [n.name for n in model.graph.node if n.op_type == "QuantizeLinear"
                    and n.input[0] not in {t.name for t in model.graph.initializer}]
    uint8 = {p.node for p in problems if p.kind == "zero_point_type" and "UINT8" in p.message}
    assert activation_q and set(activation_q) <= uint8, "every activation QuantizeLinear is refused for UINT8"


# --- the recorded data --------------------------------------------------------------------------
def test_support_data_records_its_source_and_versions():
    data = json.loads(DATA.read_text())
    assert supported_versions() == list(TRT)
    for version, (lo, hi) in zip(TRT, ((7, 17), (9, 20))):
        sec = data["versions"][version]
        src = sec["source"]
        assert src["repository"] == "onnx/onnx-tensorrt" and src["path"] == "docs/operators.md"
        assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]) and src["commit"] in src["url"]
        assert (sec["opset"]["min"], sec["opset"]["max"]) == (lo, hi)
        ops = sec["operators"]
        assert ops["DepthToSpace"]["importer_checks"]["attributes"]["mode"] == ["DCR", "CRD"]
        assert ops["Resize"]["checks"]["attributes"]["mode"] == ["nearest", "linear"]
        assert ops["QuantizeLinear"]["restrictions"] == "`y_zero_point` must be 0"
        assert "UINT8" not in ops["QuantizeLinear"]["importer_checks"]["zero_point"]["types"]
        assert ops["DequantizeLinear"]["types"][0] == "INT8" and not ops["Unique"]["supported"]
    assert data["versions"]["8.5"]["source"]["commit"].startswith("df60e732")  # onnx-tensorrt 8.5.2.2
    assert not data["versions"]["8.5"]["operators"]["LayerNormalization"]["supported"]
    assert data["versions"]["10.x"]["operators"]["LayerNormalization"]["supported"]


# --- what the harness exports -------------------------------------------------------------------
@pytest.mark.parametrize("trt", TRT)
@pytest.mark.parametrize("model_id, form", EXPORTS)
def test_exported_graph_is_supported(model_id, form, trt, workdir):
    problems = check_graph(exported(model_id, form, workdir), trt)
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize("trt", TRT)
def test_classsr_parts_are_supported(trt, workdir):
    from harness.models import classsr, resolve

    folder = workdir / "classsr"
    paths = ({p: folder / f"{classsr.MODEL_ID}.{p}.onnx" for p in classsr.ONNX_PARTS} if folder.is_dir()
             else export_classsr_parts(resolve(classsr.MODEL_ID, weights="init"), folder))
    assert set(paths) == {"classifier", "branch0", "branch1", "branch2"}
    for part, path in paths.items():
        problems = check_graph(path, trt)
        assert problems == [], f"{part}:\n" + "\n".join(map(str, problems))


def test_depth_to_space_is_crd_and_ghost_constant_of_shape_is_int64(workdir):
    """The two attributes/types the verdicts above hinge on: PixelShuffle exports DepthToSpace in CRD mode
    (the importer's non-DCR branch), and GhostSR's pad amounts go through an INT64 ConstantOfShape, which
    the 8.5 matrix row lists as FP32 only but the 8.5 importer imports (see the JSON's importer_ref)."""
    espcn = onnx.load(str(exported("ESPCN_s2_D0_S3", "naive", workdir)))
    modes = [a.s for n in espcn.graph.node if n.op_type == "DepthToSpace" for a in n.attribute if a.name == "mode"]
    assert modes == [b"CRD"]
    ghost = onnx.load(str(exported("Ghost-FSRCNN_s2_D56_S12_M4", "naive", workdir)))
    values = [helper.get_attribute_value(n.attribute[0]).data_type for n in ghost.graph.node
              if n.op_type == "ConstantOfShape"]
    assert values and set(values) == {TensorProto.INT64}
    row = json.loads(DATA.read_text())["versions"]["8.5"]["operators"]["ConstantOfShape"]
    assert row["types"] == ["FP32"] and "INT64" in row["importer_types"]


# --- INT8: ONNX Runtime's QDQ is refused, which is why TensorRT INT8 calibrates the fp32 graph -------
@pytest.mark.parametrize("trt", TRT)
@pytest.mark.parametrize("model_id", INT8)
def test_ort_qdq_graph_is_refused_for_its_uint8_zero_points(model_id, trt, workdir):
    assert_refused_only_for_uint8_qdq(exported(model_id, "int8", workdir), trt)


def test_harness_int8_path_refused_and_its_fp32_source_supported(workdir):
    """Through the backends' own functions: the fp32 graph TensorRT calibrates passes, int8_onnx's does not."""
    from harness.export import exported_onnx
    from harness.models import resolve
    from harness.quantize import int8_onnx

    model = resolve("ESPCN_s2_D0_S3", weights="init")
    fp32, form = exported_onnx(model, "fast", workdir / "backend")
    assert form == "naive"
    qdq, source = int8_onnx(model, fp32)
    assert source["method"] == "ort-minmax-qdq"
    for trt in TRT:
        assert check_graph(fp32, trt) == []
        assert_refused_only_for_uint8_qdq(qdq, trt)


def test_qat_export_is_refused_for_its_uint8_activations(tmp_path):
    import torch

    from harness.models import resolve
    from harness.quantize import qat_finetune

    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(1, 3, 8, 8, generator=gen), torch.rand(1, 3, 16, 16, generator=gen))]
    out = qat_finetune("ABPN_s2", resolve("ABPN_s2", weights="init").module, batches, steps=0,
                       out=tmp_path / "ABPN_s2.qat.onnx", observe_batches=1)
    for trt in TRT:
        assert_refused_only_for_uint8_qdq(out["onnx"], trt)


@pytest.mark.parametrize("model_id", ("ESPCN_s2_D3_S6", "ABPN_s2", "FSRCNN_s2_D6_S1_M1"))
def test_same_quantizer_in_tensorrt_scheme_passes(model_id, workdir):
    """Signed INT8 symmetric activations and float biases (ONNX Runtime options) make a QDQ graph both
    TensorRT versions take: the refusal above is the quantization scheme, not the networks."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32 = exported(model_id, "naive", workdir)
    feeds = iter([{"lr": np.random.default_rng(0).random((1, 3 if model_id == "ABPN_s2" else 1, 12, 12),
                                                         dtype=np.float32)}])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    out = fp32.with_name(f"{model_id}.trt-int8.onnx")
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    for trt in TRT:
        assert check_graph(out, trt) == []


# --- the checker catches problems (hand-built graphs) ----------------------------------------------
def graph(nodes, inputs=None, initializers=(), opset=17, output="y", out_type=TensorProto.FLOAT):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(output, out_type, None)],
                          initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def kinds(model, trt):
    return [(p.op_type, p.kind) for p in check_graph(model, trt)]


@pytest.mark.parametrize("trt", TRT)
def test_unsupported_and_unknown_ops_and_custom_domains(trt):
    assert kinds(graph([helper.make_node("Unique", ["x"], ["y"])]), trt) == [("Unique", "unsupported_op")]
    assert kinds(graph([helper.make_node("NoSuchOp", ["x"], ["y"])]), trt) == [("NoSuchOp", "unsupported_op")]
    custom = graph([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")])
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert kinds(custom, trt) == [("Gelu", "custom_domain")]


def test_version_differences_and_unknown_versions():
    ln = graph([helper.make_node("LayerNormalization", ["x", "s"], ["y"])],
               initializers=[numpy_helper.from_array(np.ones(4, np.float32), "s")])
    assert kinds(ln, "8.5") == [("LayerNormalization", "unsupported_op")] and kinds(ln, "10.x") == []
    assert check_graph(ln, "8.5.2.2") == check_graph(ln, "8.5") and check_graph(ln, "10.13") == []
    with pytest.raises(ValueError, match="7.1"):
        check_graph(ln, "7.1")


@pytest.mark.parametrize("trt", TRT)
def test_depth_to_space_mode_and_rank(trt):
    for mode in ("DCR", "CRD"):
        assert kinds(graph([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)]), trt) == []
    bad = check_graph(graph([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="RCD")]), trt)
    assert [(p.kind, "mode='RCD'" in p.message) for p in bad] == [("attribute", True)]
    rank3 = graph([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2)],
                  inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4, 4])])
    assert kinds(rank3, trt) == [("DepthToSpace", "input_rank")]


@pytest.mark.parametrize("trt", TRT)
def test_resize_modes(trt):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    ok = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                          coordinate_transformation_mode="half_pixel")
    assert kinds(graph([ok], initializers=[scales]), trt) == []
    cubic = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic")
    crop = helper.make_node("Resize", ["x", "", "scales"], ["y"], coordinate_transformation_mode="tf_crop_and_resize")
    for node in (cubic, crop):
        assert kinds(graph([node], initializers=[scales]), trt) == [("Resize", "attribute")]
    anti = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", antialias=1)
    assert kinds(graph([anti], initializers=[scales], opset=18), "10.x") == [("Resize", "attribute")]


def qdq_model(zero_point, scale=(0.1,), axis=None):
    zp = numpy_helper.from_array(np.array(zero_point), "zp")
    sc = numpy_helper.from_array(np.array(scale, np.float32), "sc")
    attrs = {} if axis is None else {"axis": axis}
    q = helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q"], **attrs)
    dq = helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["y"], **attrs)
    return graph([q, dq], initializers=[sc, zp])


@pytest.mark.parametrize("trt", TRT)
def test_qdq_zero_points_and_scales(trt):
    assert kinds(qdq_model(np.int8(0)), trt) == []
    uint8 = check_graph(qdq_model(np.uint8(128)), trt)
    assert ("QuantizeLinear", "zero_point_type") in [(p.op_type, p.kind) for p in uint8]
    assert ("DequantizeLinear", "dtype") in [(p.op_type, p.kind) for p in uint8]
    assert any("UINT8" in p.message and "signed" in p.message for p in uint8)
    assert kinds(qdq_model(np.uint8(0)), trt).count(("QuantizeLinear", "zero_point_type")) == 1  # type alone
    assert kinds(qdq_model(np.int8(3)), trt) == [("QuantizeLinear", "zero_point_value"),
                                                 ("DequantizeLinear", "zero_point_value")]
    assert kinds(qdq_model(np.int8(0), scale=(-0.1,)), trt) == [("QuantizeLinear", "scale"),
                                                               ("DequantizeLinear", "scale")]
    per_channel = qdq_model(np.zeros(8, np.int8), scale=np.full(8, 0.1), axis=1)
    assert kinds(per_channel, trt) == [("QuantizeLinear", "per_channel_activation"),
                                       ("DequantizeLinear", "per_channel_activation")]
    # no zero point (ONNX default 0): 8.5's importer wants all three inputs, 10.x takes two
    w = numpy_helper.from_array(np.zeros((8, 8, 1, 1), np.int8), "w")
    sc = numpy_helper.from_array(np.array(0.1, np.float32), "sc")
    nodes = [helper.make_node("DequantizeLinear", ["w", "sc"], ["wf"]), helper.make_node("Conv", ["x", "wf"], ["y"])]
    missing = kinds(graph(nodes, initializers=[w, sc]), trt)
    assert missing == ([("DequantizeLinear", "zero_point_missing")] if trt == "8.5" else [])


def test_per_channel_weights_pass():
    w = numpy_helper.from_array(np.zeros((8, 8, 3, 3), np.int8), "w")
    sc = numpy_helper.from_array(np.full(8, 0.1, np.float32), "sc")
    zp = numpy_helper.from_array(np.zeros(8, np.int8), "zp")
    nodes = [helper.make_node("DequantizeLinear", ["w", "sc", "zp"], ["wf"], axis=0),
             helper.make_node("Conv", ["x", "wf"], ["y"], pads=[1, 1, 1, 1])]
    for trt in TRT:
        assert kinds(graph(nodes, initializers=[w, sc, zp]), trt) == []


@pytest.mark.parametrize("trt", TRT)
def test_opset_range(trt):
    node = [helper.make_node("Relu", ["x"], ["y"])]
    lo, hi = (7, 17) if trt == "8.5" else (9, 20)
    assert kinds(graph(node, opset=lo), trt) == [] and kinds(graph(node, opset=hi), trt) == []
    for opset in (lo - 1, hi + 1):
        problems = check_graph(graph(node, opset=opset), trt)
        assert [(p.node, p.kind) for p in problems] == [("<model>", "opset")]
        assert f"opset {opset} is outside" in problems[0].message


@pytest.mark.parametrize("trt", TRT)
def test_types_constant_inputs_and_subgraphs(trt):
    ints = [helper.make_tensor_value_info("x", TensorProto.INT32, [4])]
    assert kinds(graph([helper.make_node("Sqrt", ["x"], ["y"])], inputs=ints, out_type=TensorProto.INT32),
                 trt) == [("Sqrt", "dtype")]
    # Slice's axes must be an initializer (a Constant node counts): computed axes are refused
    consts = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("s", 0), ("e", 2), ("a", 1))]
    ok = helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])
    assert kinds(graph([ok], initializers=consts), trt) == []
    computed = [helper.make_node("Identity", ["a"], ["a2"]), helper.make_node("Slice", ["x", "s", "e", "a2"], ["y"])]
    assert kinds(graph(computed, initializers=consts), trt) == [("Slice", "constant_input")]
    # a node inside an If branch is walked too
    branch = helper.make_graph([helper.make_node("Unique", ["x"], ["u"])], "then", [],
                               [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)])
    cond = numpy_helper.from_array(np.array(True), "c")
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
    assert ("Unique", "unsupported_op") in kinds(graph([node], initializers=[cond]), trt)


def test_ort_tensorrt_provider_refuses_the_uint8_qdq_graph(monkeypatch):
    """The graph the checker refuses above must not be handed to ONNX Runtime's TensorRT provider either."""
    import onnxruntime as ort

    from harness.backends import make_backend
    from harness.errors import HarnessError

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(HarnessError, match="use --backend tensorrt --precision int8"):
        make_backend("onnxruntime", precision="int8", device="tensorrt")._provider()
    assert make_backend("onnxruntime", precision="fp16", device="tensorrt")._provider() == "TensorrtExecutionProvider"
