"""Complexity per Full-HD frame: exact MAC counts, parameter counts, the memory-traffic estimate."""
from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.models import resolve
from harness.models.complexity import complexity
from harness.models.fast import fast_form

pytestmark = pytest.mark.torch  # every test builds the PyTorch module it counts


def module_of(model_id):
    return resolve(model_id).module


def test_exact_macs_of_esr_heads():
    assert complexity(module_of("eSR-MAX_s2_K3_C1"), 2)["macs_per_fhd"] == 960 * 540 * 4 * 9
    tm = module_of("eSR-TM_s2_K7_C16")
    assert complexity(tm, 2)["macs_per_fhd"] == 960 * 540 * (2 * 4 * 16) * 49
    assert complexity(fast_form(tm), 2)["macs_per_fhd"] == 960 * 540 * (2 * 4 * 16) * 49


def test_exact_macs_of_transposed_and_padded_convs():
    # eSR-Bicubic_s3: a 15x15 1->1 transposed conv scattered from every LR pixel of 640x360.
    assert complexity(module_of("eSR-Bicubic_s3"), 3)["macs_per_fhd"] == 640 * 360 * 15 * 15
    # Bicubic_s4: 5x5 conv to 16 phases on the (symmetrically padded) 480x270 input.
    assert complexity(module_of("Bicubic_s4"), 4)["macs_per_fhd"] == 480 * 270 * 16 * 25


@pytest.mark.parametrize("model_id", ["eSR-TR_s3_K5_C4", "eSR-CNN_s2_C4_D5_S6", "ESPCN_s4_D4_S6",
                                      "FSRCNN_s2_D19_S3_M4", "Bicubic_s2"])
def test_params_and_bytes(model_id):
    module = module_of(model_id)
    c = complexity(module, module.scale)
    assert c["params"] == sum(p.numel() for p in module.parameters())
    assert c["macs_per_fhd"] > 0 and c["bytes_per_fhd"] > 0
    assert c["bytes_per_fhd"] == 2 * c["bytes_per_fhd_fp16"]
    assert all(isinstance(v, int) for v in c.values())
    assert next(module.parameters()).device.type == "cpu"  # measured on a copy


def test_bytes_grow_with_the_model():
    small = complexity(module_of("eSR-TM_s2_K3_C1"), 2)
    large = complexity(module_of("eSR-TM_s2_K7_C16"), 2)
    assert large["bytes_per_fhd"] > small["bytes_per_fhd"] > 0
    assert large["params"] > small["params"] and large["macs_per_fhd"] > small["macs_per_fhd"]
    assert complexity(module_of("ESPCN_s2_D64_S32"), 2)["bytes_per_fhd"] > \
        complexity(module_of("ESPCN_s2_D0_S3"), 2)["bytes_per_fhd"]


def test_fast_form_moves_fewer_bytes():
    tm = module_of("eSR-TM_s2_K7_C16")
    naive, fast = complexity(tm, 2), complexity(fast_form(tm), 2)
    assert fast["params"] == naive["params"] and fast["bytes_per_fhd"] < naive["bytes_per_fhd"]


def test_scale_must_divide_the_frame():
    with pytest.raises(HarnessError, match="x3 does not divide"):
        complexity(module_of("eSR-MAX_s3_K3_C1"), 3, out_hw=(1080, 1921))
