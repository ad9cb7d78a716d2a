"""ONNX Runtime's errors, as the one-line messages name them: the reason kept, the C++ noise dropped."""
from __future__ import annotations

import pytest

from conftest import tiny_y_onnx
from harness.errors import HarnessError
from harness.ortsession import ort_reason, ort_session

# Verbatim from onnxruntime 1.32 (InferenceSession on a file with ir_version 99, and one stamped opset 40)
IR_99 = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/t99.onnx failed:/onnxruntime_src/onnxruntime/core/graph/"
         "model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const "
         "onnxruntime::IOnnxRuntimeOpSchemaRegistryList*, const onnxruntime::logging::Logger&, const "
         "onnxruntime::ModelOptions&) Unsupported model IR version: 99, max supported IR version: 14\n")
OPSET_40 = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/t40.onnx failed:/onnxruntime_src/onnxruntime/core/"
            "graph/model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const "
            "std::unordered_map<std::__cxx11::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool, "
            "const std::string&, int) ONNX Runtime only *guarantees* support for models stamped with official released "
            "onnx opset versions. Opset 40 is under development")


@pytest.mark.parametrize("text,want", [
    (IR_99, "Unsupported model IR version: 99, max supported IR version: 14: save it with IR version 14 or lower "
            "(onnx: model.ir_version = 14), or upgrade onnxruntime"),
    (OPSET_40, "ONNX Runtime only *guarantees* support for models stamped with official released onnx opset "
               "versions. Opset 40 is under development"),
    ("plain reason", "plain reason"),
])
def test_ort_reason_keeps_the_reason(text, want):
    assert ort_reason(RuntimeError(text), limit=500) == want


def test_a_file_newer_than_onnxruntime_reads_names_the_file_and_the_fix(tmp_path):
    import onnx

    path = tiny_y_onnx(tmp_path / "tiny.onnx")
    model = onnx.load(str(path))
    model.ir_version = 99
    onnx.save(model, str(path))
    with pytest.raises(HarnessError) as err:
        ort_session(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ONNX Runtime cannot load it (Unsupported model IR version: 99, max supported")
    assert "model.ir_version = " in msg and "onnxruntime_src" not in msg and "\n" not in msg
