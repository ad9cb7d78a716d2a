"""harness.backends.trtexec: the trtexec command per TensorRT version, and the parsers run on real published
trtexec output (tests/fixtures/trtexec, sources in SOURCES.md). Every number asserted here was read off the
fixture text by hand. No TensorRT, no GPU: run() is exercised with a fake trtexec shell script."""
from __future__ import annotations

import gzip
import json
import os
import stat
import time
from pathlib import Path

import pytest

from harness.backends import trtexec as tx
from harness.errors import HarnessError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "trtexec"
TIMES_GZ = FIX / "exporttimes_trt8.4era_a100_fp32_resnet.json.gz"


def log(name: str) -> str:
    return (FIX / name).read_text(encoding="utf-8")


def times_text() -> str:
    with gzip.open(str(TIMES_GZ), "rt", encoding="utf-8") as f:
        return f.read()


# --- console logs ------------------------------------------------------------------------
def test_jetson_orin_nano_852_summary():
    s = tx.parse_log(log("trtexec_8.5.2_jetson_orin_nano.log"))
    assert s.version == "8.5.2" and s.version_tuple == (8, 5, 2) and s.build is None
    assert s.passed is True
    assert s.command == "trtexec --onnx=./yolox_s_leaky.onnx --saveEngine=./fp16.trt --fp16"
    assert s.throughput_qps == 97.8649
    lat = s.latency
    assert (lat.min, lat.max, lat.mean, lat.median) == (10.642, 10.9861, 10.7971, 10.7972)
    assert (lat.p90, lat.p95, lat.p99) == (10.9329, 10.949, 10.9744)
    assert s.gpu_compute.median == 10.1851 and s.gpu_compute.p99 == 10.356
    assert s.enqueue.median == 1.19873 and s.h2d.median == 0.310486 and s.d2h.median == 0.298584
    assert s.total_host_walltime_s == 3.0348 and s.total_gpu_compute_s == 3.02418
    assert s.e2e_host is None and s.warnings == [] and s.errors == []


def test_desktop_852_full_log_header_and_summary():
    s = tx.parse_log(log("trtexec_8.5.2_desktop_rtx3090.log"))
    assert s.version == "8.5.2" and s.passed is True
    assert s.device == "NVIDIA GeForce RTX 3090" and s.precision == "FP32+FP16" and s.data_transfers is True
    assert s.command.startswith("trtexec --onnx=yolov8n-seg-nms.onnx") and "--workspace=8192" in s.command
    assert (s.warmup_queries, s.timed_queries) == (40, 594)
    assert s.throughput_qps == 196.933 and s.total_host_walltime_s == 3.01626 and s.total_gpu_compute_s == 2.91731
    assert s.latency.median == 9.76929 and s.latency.p95 == 9.8645
    g = s.gpu_compute
    assert (g.min, g.max, g.mean, g.median, g.p90, g.p95, g.p99) == (4.76367, 5.03192, 4.9113, 4.9054, 4.94385,
                                                                       5.00531, 5.02271)
    assert s.h2d.median == 1.63263 and s.d2h.median == 3.22974 and s.enqueue.max == 2.75586
    # Latency is H2D + compute + D2H per query: the medians add up to within 0.1 %
    assert s.h2d.median + g.median + s.d2h.median == pytest.approx(s.latency.median, rel=1e-3)
    assert s.throughput_qps == pytest.approx(s.timed_queries / s.total_host_walltime_s, rel=1e-4)
    assert "--workspace flag has been deprecated by --memPoolSize flag." in s.warnings


def test_jetson_xavier_nx_852_profiler_run_has_no_summary():
    s = tx.parse_log(log("trtexec_8.5.2_jetson_xavier_nx_dumpprofile.log"))
    assert s.version == "8.5.2" and s.device == "Xavier" and s.passed is True and s.data_transfers is True
    assert s.command == "/usr/src/tensorrt/bin/trtexec --loadEngine=models/ocr/LPR_net.engine --dumpProfile --verbose"
    assert s.gpu_compute is None and s.latency is None and s.throughput_qps is None
    assert s.no_summary_reason.startswith("The e2e network timing is not reported")
    assert s.warnings == ["Shape missing for input with dynamic shape: image_inputAutomatically setting shape to: "
                          "1x3x48x96"]


def test_jetson_xavier_agx_852_truncated_lines_keep_what_is_whole():
    s = tx.parse_log(log("trtexec_8.5.2_jetson_xavier_agx_truncated.log"))
    assert s.version is None and s.passed is None  # the paste ends before the &&&& line
    assert s.throughput_qps == 43073.6
    assert s.latency.median == 0.385986 and s.latency.p99 == 0.404907
    assert s.gpu_compute.median == 0.369873 and s.gpu_compute.p95 == 0.374756
    assert s.gpu_compute.p99 is None and s.enqueue.p99 is None and s.h2d.p99 is None  # "= 0.s", "= 0.2551s"
    assert s.d2h is None


def test_trt10_13_summary_build_tag_and_enqueue_bound_warning():
    s = tx.parse_log(log("trtexec_10.13.0_desktop_qwen_image.log"))
    assert s.version == "10.13.0" and s.build == 35 and s.passed is True
    assert s.command.startswith("trtexec --onnx=transformer_step2.onnx --saveEngine=transformer_step2.plan --bf16")
    assert s.throughput_qps == 0.562059
    assert s.latency.median == 1667.89 and s.gpu_compute.median == 1667.19 and s.gpu_compute.p90 == 1672.56
    assert s.enqueue.median == 1663.63 and s.d2h.median == 0.0644531
    assert s.total_host_walltime_s == 17.7917 and s.total_gpu_compute_s == 16.662
    assert s.warnings == ["* Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be "
                          "under-utilized. If not already in use, --useCudaGraph (utilize CUDA graphs where "
                          "possible) may increase the throughput."]


def test_trt10_9_full_log():
    s = tx.parse_log(log("trtexec_10.9.0_desktop_rtx3070.log"))
    assert s.version == "10.9.0" and s.version_tuple == (10, 9, 0) and s.build == 34 and s.passed is True
    assert s.device == "NVIDIA GeForce RTX 3070" and s.precision == "FP32" and s.data_transfers is True
    assert (s.warmup_queries, s.timed_queries) == (2, 29)
    assert s.throughput_qps == 8.66824 and s.total_host_walltime_s == 3.34555
    assert s.throughput_qps == pytest.approx(29 / 3.34555, rel=1e-5)
    assert s.latency.median == 112.567 and s.gpu_compute.median == 111.208 and s.gpu_compute.p99 == 114.185
    assert s.h2d.median == 0.769043 and s.d2h.median == 0.609924
    assert any(w.startswith("* GPU compute time is unstable, with coefficient of variance = 1.08662%.") and
               w.endswith("may improve the stability.") for w in s.warnings)


def test_trt10_rejects_removed_flags_and_command_never_emits_them():
    s = tx.parse_log(log("trtexec_10.3.0_jetpack6_unknown_options.log"))
    assert s.passed is False and s.version == "10.3.0" and s.gpu_compute is None
    assert s.errors == ["Unknown option: --workspace 2048", "Unknown option: --buildOnly",
                        "Unknown option: --explicitBatch"]
    cmd = tx.command("m.onnx", "fp16", (1, 3, 640, 640), "images", "10.3", build_only=True,
                     profile=((1, 3, 640, 640),) * 3)
    rejected = [e.split()[2] for e in s.errors]
    assert not [a for a in cmd if a.split("=")[0] in rejected]
    assert "--skipInference" in cmd and "--memPoolSize=workspace:1024" in cmd


@pytest.mark.parametrize("name", ["trtexec_8.5.2_desktop_rtx3090.log", "trtexec_10.9.0_desktop_rtx3070.log"])
def test_prefixes_are_optional(name):
    """The same lines without the [date-time] stamp, without any prefix, or wrapped in another logger's tag."""
    text = log(name)
    ref = tx.parse_log(text)
    no_stamp = "\n".join(line.split("] ", 1)[1] if line.startswith("[") else line for line in text.splitlines())
    bare = "\n".join(tx._strip(line)[1] if not line.startswith("&&&&") else line for line in text.splitlines())
    wrapped = "\n".join("[INFO] " + line for line in text.splitlines())
    for variant in (no_stamp, bare, wrapped):
        s = tx.parse_log(variant)
        assert (s.version, s.passed, s.throughput_qps) == (ref.version, ref.passed, ref.throughput_qps)
        assert s.gpu_compute == ref.gpu_compute and s.latency == ref.latency and s.h2d == ref.h2d


# --- --exportTimes / --exportProfile ---------------------------------------------------------
def test_export_times_reproduces_trtexecs_own_summary():
    """TensorRT <= 8.4 exported the warm-up queries too; dropping those that began before the 200 ms
    warm-up gives back exactly the summary trtexec printed for that run (kept by TREx next to it)."""
    text = times_text()
    every = tx.parse_times(text)
    assert len(every["computeMs"]) == 1600 and every["computeMs"][:3] == [1.93843, 1.91283, 1.9159]
    t = tx.parse_times(text, warmup_ms=200)
    assert len(t["computeMs"]) == 1500 and min(t["startComputeMs"]) >= 200
    assert set(t) >= {"startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs",
                      "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "enqueueMs"}
    ref = json.loads((FIX / "exporttimes_trt8.4era_a100_fp32_resnet.trex_summary.json").read_text())
    gpu_min, gpu_max, gpu_mean, gpu_median, gpu_p99 = ref["performance_summary"]["GPU Compute Time"]
    g = tx.stats(t["computeMs"])
    assert (g.min, g.max, g.median, g.p99) == (gpu_min, gpu_max, gpu_median, gpu_p99) == (1.98438, 2.05927,
                                                                                          1.99072, 2.05621)
    assert g.mean == pytest.approx(gpu_mean, abs=1e-5)
    assert tx.median(t["latencyMs"]) == 1.99072  # --noDataTransfers: h2dMs = d2hMs = 0
    assert set(t["h2dMs"]) == {0.0} and set(t["d2hMs"]) == {0.0}
    wall_s = (t["endD2hMs"][-1] - t["startH2dMs"][0]) / 1000
    assert wall_s == pytest.approx(ref["performance_summary"]["Total Host Walltime"], abs=1e-5)  # 3.00424
    assert 1500 / wall_s == pytest.approx(ref["performance_summary"]["Throughput"], rel=1e-5)  # 499.294
    assert sum(t["computeMs"]) / 1000 == pytest.approx(3.00005, abs=1e-5)


def test_export_times_variants():
    text = times_text()
    first = json.loads(text)[:4]
    ref = tx.parse_times(first)
    # TensorRT 7.x key names, upper-case H2D/D2H, bytes, a dict wrapper: the same per-query values
    renames = {"h2dMs": "inMs", "d2hMs": "outMs", "startH2dMs": "startInMs", "endD2hMs": "endOutMs"}
    v7 = [{renames.get(k, k): v for k, v in e.items()} for e in first]
    upper = [{k.replace("H2d", "H2D").replace("D2h", "D2H"): v for k, v in e.items()} for e in first]
    for variant in (v7, upper, json.dumps(first).encode(), {"times": first}):
        got = tx.parse_times(variant)
        for key in ("computeMs", "h2dMs", "d2hMs", "latencyMs", "startH2dMs", "endD2hMs"):
            assert got[key] == ref[key]
    # inf/nan as a C++ stream prints them, and a file cut before its closing bracket
    lines = text.splitlines()
    damaged = "\n".join(lines[:3]).replace('"d2hMs" : 0', '"d2hMs" : inf', 1)
    got = tx.parse_times(damaged)
    assert got["computeMs"] == [1.93843, 1.91283] and got["d2hMs"] == [0.0]
    # without computeMs/latencyMs they are derived from the event times
    bare = [{k: v for k, v in e.items() if k not in ("computeMs", "latencyMs")} for e in first]
    got = tx.parse_times(bare)
    assert got["computeMs"] == pytest.approx(ref["computeMs"], abs=1e-4)
    assert got["latencyMs"] == pytest.approx(ref["latencyMs"], abs=1e-4)


def test_export_profile_fixture_is_valid_json():
    prof = json.loads((FIX / "exportprofile_trt8.4era_a100_fp32_resnet.json").read_text())
    assert prof[0] == {"count": 1}
    assert prof[1]["name"] == "Conv_0 + Relu_1" and prof[1]["medianMs"] == 0.52224


def test_median_and_trtexec_percentile():
    assert tx.median([4.0, 1.0, 3.0, 2.0]) == 2.5 and tx.median([3.0, 1.0, 2.0]) == 2.0
    ten = [float(i) for i in range(1, 11)]
    # float32 as in trtexec: (1 - 0.9f) * 10 = 1.0000002 -> exclude 1 -> sorted[8]
    assert tx.percentile(ten, 90) == 9.0 and tx.percentile(ten, 99) == 10.0 and tx.percentile(ten, 0) == 1.0
    assert tx.percentile(list(range(1, 101)), 95) == 95
    s = tx.stats(ten)
    assert (s.min, s.max, s.mean, s.median, s.p90, s.p95, s.p99) == (1.0, 10.0, 5.5, 5.5, 9.0, 10.0, 10.0)


# --- command per TensorRT version --------------------------------------------------------------
def test_command_trt85_and_trt10():
    base = dict(export_times="t.json", warmup_ms=500, iterations=200, duration_s=5)
    c85 = tx.command("sr.onnx", "fp16", (1, 1, 540, 960), "lr", "8.5.2", **base)
    assert c85 == ["trtexec", "--onnx=sr.onnx", "--fp16", "--memPoolSize=workspace:1024", "--shapes=lr:1x1x540x960",
                   "--warmUp=500", "--iterations=200", "--duration=5", "--exportTimes=t.json"]
    c10 = tx.command("sr.onnx", "fp16", (1, 1, 540, 960), "lr", "10.9", **base)
    assert c10 == c85  # the same flags mean the same in both
    for cmd in (c85, c10):
        assert not {"--explicitBatch", "--useCudaGraph", "--noDataTransfers", "--separateProfileRun"} & set(cmd)
        assert not any(a.startswith("--workspace=") for a in cmd)
    assert "--noDataTransfers" in tx.command("m", "fp16", (1, 3, 8, 8), version="10", data_transfers=False)
    assert tx.command("m", "fp16", (1, 3, 8, 8), version="8.5", build_only=True)[-5] == "--buildOnly"
    assert "--skipInference" in tx.command("m", "fp16", (1, 3, 8, 8), version=100900, build_only=True)


def test_command_older_versions_and_options():
    assert "--workspace=1024" in tx.command("m", "fp16", (1, 3, 8, 8), version="8.2.1")
    assert "--explicitBatch" not in tx.command("m", "fp16", (1, 3, 8, 8), version="8.2.1")
    assert {"--explicitBatch", "--workspace=1024"} <= set(tx.command("m", "fp16", (1, 3, 8, 8), version="7.1.3"))
    assert "--noTF32" in tx.command("m", "fp32", (1, 3, 8, 8), version="8.5")
    i8 = tx.command("m", "int8", (1, 3, 8, 8), version="8.5")
    assert i8[2:4] == ["--fp16", "--int8"] and not any(a.startswith("--calib") for a in i8)
    with pytest.raises(HarnessError, match="precision"):
        tx.command("m", "bf8", (1, 3, 8, 8))
    prof = tx.command("m", "fp16", (1, 1, 540, 960), version=(10, 9), timing_cache="tc.cache", save_engine="e.plan",
                      profile=((1, 1, 64, 64), (1, 1, 540, 960), (1, 1, 1080, 1920)), export_profile="p.json",
                      spin_wait=True, workspace_mb=2048)
    for flag in ("--minShapes=lr:1x1x64x64", "--optShapes=lr:1x1x540x960", "--maxShapes=lr:1x1x1080x1920",
                 "--timingCacheFile=tc.cache", "--saveEngine=e.plan", "--exportProfile=p.json",
                 "--separateProfileRun", "--useSpinWait", "--memPoolSize=workspace:2048"):
        assert flag in prof
    loaded = tx.command("m", "fp16", (1, 1, 540, 960), version="8.5", load_engine="e.plan", warmup_ms=200.5)
    assert loaded[:3] == ["trtexec", "--loadEngine=e.plan", "--shapes=lr:1x1x540x960"] and "--warmUp=200.5" in loaded
    assert "--fp16" not in loaded and not any(a.startswith("--onnx") for a in loaded)
    with pytest.raises(HarnessError, match="--skipInference"):
        tx.command("m", "fp16", (1, 3, 8, 8), version="10.3", extra=["--buildOnly"])
    assert tx.command("m", "fp16", (1, 3, 8, 8), version="8.5", extra=["--workspace=64"])[-1] == "--workspace=64"


def test_parse_version():
    assert tx.parse_version("8.5.2.2") == (8, 5, 2) and tx.parse_version(8502) == (8, 5, 2)
    assert tx.parse_version("v101300") == (10, 13, 0) and tx.parse_version("100001") == (10, 0, 1)
    assert tx.parse_version("10") == (10,) and tx.parse_version((8, 6)) == (8, 6)
    with pytest.raises(HarnessError):
        tx.parse_version("unknown")


# --- compare ----------------------------------------------------------------------------
def test_compare_arithmetic():
    s = tx.parse_log(log("trtexec_10.9.0_desktop_rtx3070.log"))  # GPU Compute median 111.208, Latency 112.567
    ok = tx.compare(112.0, s)
    assert ok["metric"] == "GPU Compute Time" and ok["trtexec_ms"] == 111.208 and ok["within"] is True
    assert ok["ratio"] == pytest.approx(112.0 / 111.208) and ok["diff_pct"] == pytest.approx(0.712179, abs=1e-5)
    assert ok["verdict"].startswith("within 5 % (") and "+0.7 %" in ok["verdict"]
    slow = tx.compare(120.0, s)
    assert slow["within"] is False and slow["verdict"].startswith("harness slower by 7.9 % (")
    fast = tx.compare(100.0, s)
    assert fast["verdict"].startswith("harness faster by 10.1 %")
    e2e = tx.compare(118.0, s, kind="e2e")
    assert e2e["metric"] == "Latency" and e2e["trtexec_ms"] == 112.567
    assert e2e["diff_pct"] == pytest.approx(4.826458, abs=1e-5) and e2e["within"] is True
    assert any(n.startswith("* GPU compute time is unstable") for n in e2e["notes"])
    edge = tx.TrtexecSummary(gpu_compute=tx.Stats(1.0, 3.0, 2.0, 2.0))
    assert tx.compare(2.1, edge)["within"] is True and tx.compare(2.1001, edge)["within"] is False
    assert tx.compare(1.9, edge, tolerance=0.1)["verdict"].startswith("within 10 %")
    none = tx.compare(5.0, tx.parse_log(log("trtexec_8.5.2_jetson_xavier_nx_dumpprofile.log")))
    assert none["ratio"] is None and none["verdict"].startswith("no comparison (The e2e network timing")
    copies_off = tx.TrtexecSummary(data_transfers=False, latency=tx.Stats(1.0, 1.0, 1.0, 1.0))
    assert "noDataTransfers" in tx.compare(1.0, copies_off, kind="e2e")["notes"][0]
    with pytest.raises(HarnessError):
        tx.compare(1.0, s, kind="wall")


# --- run() with a fake trtexec -------------------------------------------------------------
def fake_trtexec(tmp_path: Path, log_name: str, exit_code: int = 0, sleep_s: float = 0) -> Path:
    """A shell script that answers --help with a 10.9 banner, records its arguments, prints a fixture
    log, copies the exportTimes fixture to --exportTimes=FILE and exits with ``exit_code``."""
    times = tmp_path / "times_fixture.json"
    times.write_text(times_text(), encoding="utf-8")
    script = tmp_path / "trtexec"
    script.write_text(f"""#!/bin/sh
for a in "$@"; do
  case "$a" in
    --help) echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100900] [b34] # trtexec --help"
            echo "&&&& PASSED TensorRT.trtexec [TensorRT v100900] [b34] # trtexec --help"; exit 0;;
    --exportTimes=*) out="${{a#--exportTimes=}}";;
  esac
done
printf '%s\\n' "$@" > "{tmp_path / 'args.txt'}"
{f'exec sleep {sleep_s}' if sleep_s else ''}
cat "{FIX / log_name}"
if [ -n "$out" ]; then cp "{times}" "$out"; fi
exit {exit_code}
""", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_run_probes_the_version_and_parses(tmp_path):
    exe = fake_trtexec(tmp_path, "trtexec_10.9.0_desktop_rtx3070.log")
    out = tmp_path / "times.json"
    s = tx.run("sr.onnx", "fp16", (1, 1, 540, 960), trtexec=str(exe), export_times=str(out),
               log_path=str(tmp_path / "run.log"), timeout_s=20)
    assert s.gpu_compute.median == 111.208 and s.latency.median == 112.567 and s.passed is True
    assert len(s.times["computeMs"]) == 1600
    args = (tmp_path / "args.txt").read_text().split()
    assert args[:3] == ["--onnx=sr.onnx", "--fp16", "--memPoolSize=workspace:1024"]  # 10.9 from --help's banner
    assert "--shapes=lr:1x1x540x960" in args and f"--exportTimes={out}" in args
    assert (tmp_path / "run.log").read_text() == log("trtexec_10.9.0_desktop_rtx3070.log")


def test_run_failures_are_one_line_errors(tmp_path):
    exe = fake_trtexec(tmp_path, "trtexec_10.3.0_jetpack6_unknown_options.log", exit_code=1)
    with pytest.raises(HarnessError, match=r"trtexec failed \(exit 1\): Unknown option: --workspace 2048 .*version="):
        tx.run("m.onnx", "fp16", (1, 3, 8, 8), trtexec=str(exe), version="10.3")
    exe = fake_trtexec(tmp_path, "trtexec_8.5.2_jetson_xavier_nx_dumpprofile.log")
    with pytest.raises(HarnessError, match="printed no performance summary: The e2e network timing"):
        tx.run("m.onnx", "fp16", (1, 3, 8, 8), trtexec=str(exe), version="8.5")


def test_run_timeout(tmp_path):
    exe = fake_trtexec(tmp_path, "trtexec_10.9.0_desktop_rtx3070.log", sleep_s=30)
    t0 = time.monotonic()
    with pytest.raises(HarnessError, match=r"trtexec \(.*\) did not finish in 0.5 s"):
        tx.run("m.onnx", "fp16", (1, 3, 8, 8), trtexec=str(exe), version="10.9", timeout_s=0.5)
    assert time.monotonic() - t0 < 5


def test_find_trtexec_and_missing(tmp_path, monkeypatch):
    exe = fake_trtexec(tmp_path, "trtexec_10.9.0_desktop_rtx3070.log")
    monkeypatch.setenv("PATH", str(exe.parent) + os.pathsep + os.environ.get("PATH", ""))
    assert tx.find_trtexec() == str(exe)
    monkeypatch.setattr(tx, "find_trtexec", lambda: None)
    with pytest.raises(HarnessError, match="trtexec not found .*/usr/src/tensorrt/bin"):
        tx.run("m.onnx", "fp16", (1, 3, 8, 8))
