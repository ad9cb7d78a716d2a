"""doctor's parsers on published outputs (nv_tegra_release, nvpmodel -q, jetson_clocks --show,
vcgencmd, the trtexec banner, /proc/cpuinfo), and the text table and exit status of a list of checks."""
from __future__ import annotations

import pytest

from harness.doctor import (
    Check,
    cpu_features,
    exit_code,
    format_lines,
    parse_jetson_clocks,
    parse_l4t,
    parse_nvpmodel,
    parse_throttled,
    parse_trtexec_version,
    parse_vc_temp,
)


def test_parse_l4t_releases():
    jp51 = parse_l4t("# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64, "
                     "DATE: Tue Jan 24 23:38:33 UTC 2023")
    assert jp51["release"] == "35.2.1" and jp51["jetpack"] == "5.1" and jp51["tensorrt"] == "8.5.2"
    assert parse_l4t("# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref")["jetpack"] == "5.1.1"
    assert parse_l4t("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref")["jetpack"] == "5.1.2"
    assert parse_l4t("# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t186ref")["jetpack"] == "4.6"
    assert parse_l4t("# R35 (release), REVISION: 1.0, GCID: 1")["release"] == "35.1.0"
    assert parse_l4t("# R99 (release), REVISION: 1")["jetpack"] is None
    assert parse_l4t("garbage") is None and parse_l4t(None) is None


def test_parse_nvpmodel_forms():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0, "fan": None}
    jp4 = parse_nvpmodel("NV Fan Mode:cool\nNV Power Mode: MODE_30W_4CORE\n5\n")
    assert jp4 == {"mode": "MODE_30W_4CORE", "id": 5, "fan": "cool"}
    # A non-root query that could not read some EMC caps still names the mode (published AGX Xavier output).
    noisy = ("NV Fan Mode:quiet\nNV Power Mode: MODE_15W_DESKTOP\n7\n"
             "NVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13\n")
    assert parse_nvpmodel(noisy)["id"] == 7
    assert parse_nvpmodel("command not found") is None


NANO_UNLOCKED = """SOC family:tegra210  Machine:jetson-nano
Online CPUs: 0-3
CPU Cluster Switching: Disabled
cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=153600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0
Fan: speed=0
NV Power Mode: MAXN
"""
NANO_LOCKED = """cpu0: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 CurrentFreq=1479000 IdleStates: WFI=0 c7=0
GPU MinFreq=921600000 MaxFreq=921600000 CurrentFreq=921600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
Fan: PWM=0
NV Power Mode: MAXN
"""  # noqa: E501 - the published line, as printed
ORIN_NANO = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super
Online CPUs: 0-5
cpu0:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1344000 CurrentFreq=729600 IdleStates: WFI=1 c7=1 
cpu1:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1344000 CurrentFreq=729600 IdleStates: WFI=1 c7=1 
GPU MinFreq=306000000 MaxFreq=918000000 CurrentFreq=306000000
Active GPU TPCs: 4
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
FAN Dynamic Speed Control=nvfancontrol hwmon0_pwm1=69
NV Power Mode: 25W
"""  # noqa: W291 - the published output has trailing blanks


def test_parse_jetson_clocks_published_outputs():
    unlocked = parse_jetson_clocks(NANO_UNLOCKED)
    assert not unlocked["locked"] and not unlocked["cpu_locked"] and not unlocked["gpu_locked"]
    assert not unlocked["emc_locked"]  # current == max but no override: the governor may lower it
    assert unlocked["mode"] == "MAXN" and unlocked["online_cpus"] == 2
    locked = parse_jetson_clocks(NANO_LOCKED)
    assert locked["locked"] and locked["emc"]["min"] == 204000000  # jetson_clocks leaves the EMC minimum
    orin = parse_jetson_clocks(ORIN_NANO)  # two blanks after "cpu0:", trailing blank, extra lines
    assert orin["online_cpus"] == 2 and not orin["locked"] and orin["mode"] == "25W"
    assert parse_jetson_clocks("Error: Run this script(/usr/bin/jetson_clocks) as a root user") is None


def test_parse_throttled_temp_trtexec_and_features():
    t = parse_throttled("throttled=0x50000")
    assert t["value"] == 0x50000 and t["occurred"] and not t["now"] and t["under_voltage"]
    assert t["flags"] == ["under-voltage has occurred", "throttling has occurred"]
    now = parse_throttled("throttled=0x50005")
    assert now["now"] and now["flags"][:2] == ["under-voltage now", "throttled now"]
    assert parse_throttled("throttled=0x0")["flags"] == [] and parse_throttled("VCHI init failed") is None
    assert parse_vc_temp("temp=45.3'C") == 45.3 and parse_vc_temp("") is None
    assert parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --help") == "8.5.2"
    assert parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b20] # trtexec") == "10.3.0"
    assert parse_trtexec_version("usage") is None
    assert cpu_features("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n") == \
        ["fp", "asimd", "evtstrm", "crc32", "cpuid"]
    assert "avx2" in cpu_features("flags\t\t: fpu sse avx2 fma\n")


def test_format_lines_and_exit_code():
    checks = [Check("python", "ok", "3.8.10 (aarch64)", required=True),
              Check("tensorrt", "absent", "not importable", "sudo apt install python3-libnvinfer", required=False),
              Check("governor", "wrong", "ondemand", "echo performance | sudo tee ...", required=True)]
    lines = format_lines(checks)
    assert lines[0] == "ok      python          3.8.10 (aarch64)"
    assert lines[1] == "absent  tensorrt        not importable -> fix: sudo apt install python3-libnvinfer"
    assert exit_code(checks) == 1 and exit_code(checks[:2]) == 0
    assert exit_code([Check("x", "info", "not in capture", required=True)]) == 1
    with pytest.raises(ValueError):
        Check("x", "fine", "?")



def test_a_gpu_without_tensorrt_is_told_what_measures_it_here():
    """The probes as a GPU machine without TensorRT gave them (PyTorch 2.11+cu130 seeing an H200, ONNX Runtime
    without its CUDA provider): the fix names --backend torch; with only the CPU provider and no GPU PyTorch it
    names onnxruntime-gpu; with the CUDA provider, that."""
    from harness.doctor.context import Context
    from harness.doctor.libraries import check_libraries
    from harness.doctor.system import System

    libs = {"torch": {"ok": True, "version": "2.11.0+cu130", "cuda_build": "13.0", "cuda_available": True,
                      "devices": ["NVIDIA H200"]},
            "onnxruntime": {"ok": True, "version": "1.30.0", "providers": ["CPUExecutionProvider"]},
            "tensorrt": {"ok": False, "missing": True, "error": "tensorrt is not installed"},
            "pycuda": {"ok": False, "missing": True, "error": "pycuda is not installed"}}
    profile = {"backend": "tensorrt", "target": "cuda", "precision": "fp16"}

    def trt_fix(libs):
        checks = {c.name: c for c in check_libraries(Context(dict(profile), System(), "cuda", libs))}
        return checks["tensorrt"].fix

    assert trt_fix(libs).endswith("or --backend torch (PyTorch sees the GPU)")
    assert trt_fix(dict(libs, torch={"ok": False, "missing": True})).endswith(
        "or --backend onnxruntime with onnxruntime-gpu")
    ort_gpu = {"ok": True, "version": "1.30.0", "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    assert trt_fix(dict(libs, onnxruntime=ort_gpu)).endswith(
        "or --backend torch (PyTorch sees the GPU) or --backend onnxruntime --precision fp32 (its CUDA provider is here)")
