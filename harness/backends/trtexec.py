"""NVIDIA's ``trtexec`` on the harness's ONNX, as a reference for the TensorRT backend's timings.

``command`` builds the flags for the installed TensorRT (8.5 on JetPack 5.1, 10.x on desktops),
``run`` executes it and ``parse_log``/``parse_times`` read its console summary and ``--exportTimes``
JSON; ``compare`` says whether the harness's median is within 5 % of trtexec's. No TensorRT import.

What trtexec measures (samples/common/sampleInference.cpp and sampleReporting.cpp, 8.5.2 to 10.16):
* "GPU Compute Time": CUDA events around ``enqueue`` on the compute stream, the harness's compute-only
  ``last_gpu_ms``. "Latency" = H2D + GPU Compute + D2H of one query (event times, not a wall clock);
  H2D/D2H run on their own streams, overlapping the neighbouring queries. With ``--noDataTransfers``
  H2D = D2H = 0 and Latency equals GPU Compute Time (on a Jetson, an integrated GPU, trtexec then also
  uses managed memory). Percentiles are ``sorted[max(n - 1 - int((1 - p/100) n), 0)]``.
* Flags: ``--workspace`` is deprecated from 8.4 (``--memPoolSize=workspace:MiB``) and an unknown option
  in 10, as are ``--explicitBatch`` (a no-op since 8.0) and ``--buildOnly`` (``--skipInference``, 8.6+);
  trtexec 10 stops with "[E] Unknown option" and ``&&&& FAILED``. ``--int8`` without ``--calib`` sets
  dummy dynamic ranges: fine for timing, meaningless for quality. fp32 gets ``--noTF32`` (the harness
  clears TF32), int8 also ``--fp16`` (the harness's INT8 builds allow FP16 fallback). With ``--dumpProfile``
  or ``--exportProfile`` and no ``--separateProfileRun`` trtexec prints no performance summary.
* ``--exportTimes``: a list of per-query objects (startEnqMs ... latencyMs). Up to 8.4 it also held the
  warm-up queries (drop them with ``warmup_ms``); 7.x named the copies inMs/outMs, 8.2 added endToEndMs.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..errors import HarnessError

Shape = Tuple[int, int, int, int]
JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
NOT_FOUND = ("trtexec not found (PATH, /usr/src/tensorrt/bin, /usr/local/TensorRT*/bin): JetPack installs it as "
             "/usr/src/tensorrt/bin/trtexec (sudo apt install nvidia-jetpack if absent); on a desktop it is in the "
             "TensorRT tar/deb (bin/), not in the pip wheel; or pass its path")
# Flags trtexec 10 rejects ("Unknown option"), with what to use instead.
REMOVED_IN_10 = {"--workspace": "--memPoolSize=workspace:<MiB>", "--explicitBatch": "nothing (always explicit)",
                 "--buildOnly": "--skipInference", "--batch": "--shapes", "--maxBatch": "--maxShapes"}
_FIELDS = {"Latency": "latency", "End-to-End Host Latency": "e2e_host", "Enqueue Time": "enqueue",
           "H2D Latency": "h2d", "GPU Compute Time": "gpu_compute", "D2H Latency": "d2h"}
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)"
_PREFIX = re.compile(r"^\s*((?:\[[^\]]*\]\s?)*)")
_BANNER = re.compile(r"&&&& (RUNNING|PASSED|FAILED|WAIVED) TensorRT\.trtexec \[TensorRT v(\d+)\]"
                     r"(?: \[b(\d+)\])?(?: # (.*))?")
_STAT_VALUE = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=?\s*(" + _NUM + r") ms")


@dataclass
class Stats:
    """One summary line: min/max/mean/median and the percentiles printed (8.4: 99 %; 8.5+: 90/95/99 %)."""
    min: float
    max: float
    mean: float
    median: float
    percentiles: Dict[float, float] = field(default_factory=dict)
    # None where the log had no such percentile (8.4 and older print only 99 %)
    p90 = property(lambda self: self.percentiles.get(90.0))
    p95 = property(lambda self: self.percentiles.get(95.0))
    p99 = property(lambda self: self.percentiles.get(99.0))


@dataclass
class TrtexecSummary:
    version: Optional[str] = None          # "8.5.2" ("TensorRT version:" line, else the banner's v8502)
    build: Optional[int] = None            # 10.x banners: [b35]
    command: Optional[str] = None          # what followed "# " in the &&&& banner
    passed: Optional[bool] = None          # &&&& PASSED / FAILED; None when neither was printed
    device: Optional[str] = None
    precision: Optional[str] = None        # "FP32+FP16" (build runs only)
    data_transfers: Optional[bool] = None  # "Data transfers: Enabled/Disabled"
    throughput_qps: Optional[float] = None
    latency: Optional[Stats] = None
    gpu_compute: Optional[Stats] = None
    h2d: Optional[Stats] = None
    d2h: Optional[Stats] = None
    enqueue: Optional[Stats] = None
    e2e_host: Optional[Stats] = None       # "End-to-End Host Latency": TensorRT <= 8.2 only
    total_host_walltime_s: Optional[float] = None
    total_gpu_compute_s: Optional[float] = None
    warmup_queries: Optional[int] = None
    timed_queries: Optional[int] = None
    no_summary_reason: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    times: Optional[Dict[str, List[float]]] = None  # run(): the --exportTimes file, parsed

    @property
    def version_tuple(self) -> Tuple[int, ...]:
        return parse_version(self.version) if self.version else ()


def parse_version(version: Union[str, int, Sequence[int]]) -> Tuple[int, ...]:
    """(major, minor, patch) from "8.5.2.2", "10.13", 8502, 100900, "v101300" or (8, 5)."""
    if isinstance(version, (tuple, list)):
        return tuple(int(v) for v in version)
    text = str(version).strip().lstrip("vV")
    if text.isdigit() and len(text) >= 4:  # trtexec's banner: 8.x = M*1000+m*100+p, 10.x = M*10000+m*100+p
        n = int(text)
        return (n // 10000, n // 100 % 100, n % 100) if n >= 10000 else (n // 1000, n // 100 % 10, n % 100)
    parts = re.findall(r"\d+", text)
    if not parts:
        raise HarnessError(f"trtexec: cannot read a TensorRT version from {version!r}; give e.g. '8.5.2' or '10.9'")
    return tuple(int(p) for p in parts[:3])


def find_trtexec() -> Optional[str]:
    """trtexec on PATH, else where JetPack puts it, else the newest /usr/local/TensorRT*/bin; None if absent."""
    found = shutil.which("trtexec")
    if found:
        return found
    tarballs = sorted(glob.glob("/usr/local/TensorRT*/bin/trtexec"),  # TensorRT-10.13.0.35 before TensorRT-10.9...
                      key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)
    for path in [JETPACK_TRTEXEC] + tarballs:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _spec(name: str, shape: Sequence[int]) -> str:
    return f"{name}:" + "x".join(str(int(d)) for d in shape)


def command(onnx_path, precision: str, shape: Shape, input_name: str = "lr", version="8.5", *,
            trtexec: str = "trtexec", warmup_ms: float = 500, iterations: int = 100, duration_s: float = 3,
            export_times: Optional[str] = None, timing_cache: Optional[str] = None, data_transfers: bool = True,
            profile: Optional[Tuple[Shape, Shape, Shape]] = None, workspace_mb: int = 1024,
            save_engine: Optional[str] = None, load_engine: Optional[str] = None,
            export_profile: Optional[str] = None, spin_wait: bool = False, build_only: bool = False,
            extra: Sequence[str] = ()) -> List[str]:
    """The trtexec command line for one precision and one input shape (N, C, H, W).

    ``profile`` (min, opt, max) reproduces the harness engine's optimisation profile when it covers
    several shapes; without it ``--shapes`` alone makes trtexec build min = opt = max = ``shape``, which
    is what the harness builds for a single-shape run. ``load_engine`` times a saved engine (no build
    flags). No ``--useCudaGraph``: the harness launches each inference itself."""
    ver = parse_version(version)
    cmd = [str(trtexec)]
    if load_engine:
        cmd.append(f"--loadEngine={load_engine}")
    else:
        cmd.append(f"--onnx={onnx_path}")
        if ver < (8, 0):
            cmd.append("--explicitBatch")  # TensorRT 7 parsed ONNX as implicit batch without it
        flags = {"fp32": ["--noTF32"], "fp16": ["--fp16"], "int8": ["--fp16", "--int8"]}.get(precision)
        if flags is None:
            raise HarnessError(f"trtexec: precision {precision!r} is not one of fp32, fp16, int8")
        cmd += flags
        mib = int(workspace_mb)
        cmd.append(f"--memPoolSize=workspace:{mib}" if ver >= (8, 4) else f"--workspace={mib}")  # 10: no --workspace
        if profile is not None:
            for flag, dims in zip(("--minShapes", "--optShapes", "--maxShapes"), profile):
                cmd.append(f"{flag}={_spec(input_name, dims)}")
        if timing_cache:
            cmd.append(f"--timingCacheFile={timing_cache}")
        if save_engine:
            cmd.append(f"--saveEngine={save_engine}")
        if build_only:
            cmd.append("--skipInference" if ver >= (8, 6) else "--buildOnly")
    cmd.append(f"--shapes={_spec(input_name, shape)}")
    cmd += [f"--warmUp={_num(warmup_ms)}", f"--iterations={int(iterations)}", f"--duration={_num(duration_s)}"]
    if not data_transfers:
        cmd.append("--noDataTransfers")
    if spin_wait:
        cmd.append("--useSpinWait")
    if export_times:
        cmd.append(f"--exportTimes={export_times}")
    if export_profile:  # without --separateProfileRun the profiler run prints no performance summary
        cmd += [f"--exportProfile={export_profile}", "--separateProfileRun"]
    extra = [str(e) for e in extra]
    if ver >= (10,):
        for flag in extra:
            name = flag.split("=", 1)[0]
            if name in REMOVED_IN_10:
                raise HarnessError(f"trtexec {'.'.join(map(str, ver))} has no {name} (it stops with 'Unknown "
                                   f"option'); use {REMOVED_IN_10[name]}")
    return cmd + extra


def _strip(line: str) -> Tuple[str, str]:
    """(severity letter or "", message) without the [date-time] [I] [TRT] prefixes."""
    m = _PREFIX.match(line)
    tags = re.findall(r"\[([^\]]*)\]", m.group(1)) if m else []
    severity = next((t for t in tags if t in ("I", "W", "E", "V", "F")), "")
    return severity, line[m.end():].rstrip() if m else line.rstrip()


def _stats(text: str) -> Optional[Stats]:
    values: Dict[str, float] = {}
    percentiles: Dict[float, float] = {}
    for key, pct, value in _STAT_VALUE.findall(text):
        if pct:
            percentiles[float(pct)] = float(value)
        else:
            values[key] = float(value)
    if not all(k in values for k in ("min", "max", "mean", "median")):
        return None
    return Stats(values["min"], values["max"], values["mean"], values["median"], percentiles)


def parse_log(text: str) -> TrtexecSummary:
    """Everything the harness needs from trtexec's console output (8.x and 10.x formats); a later run in
    the same text overrides an earlier one."""
    s = TrtexecSummary()
    for raw in text.splitlines():
        banner = _BANNER.search(raw)
        if banner:
            state, packed, build, cmdline = banner.groups()
            s.version = s.version or ".".join(map(str, parse_version(packed)))
            s.build = int(build) if build else s.build
            s.command = cmdline.strip() if cmdline else s.command
            if state in ("PASSED", "FAILED"):
                s.passed = state == "PASSED"
            continue
        severity, msg = _strip(raw)
        key, _, rest = msg.partition(": ")
        if key in _FIELDS:
            setattr(s, _FIELDS[key], _stats(rest) or getattr(s, _FIELDS[key]))
        elif key == "Throughput" and rest.endswith("qps"):
            s.throughput_qps = float(rest.split()[0])
        elif key in ("Total Host Walltime", "Total GPU Compute Time") and re.fullmatch(_NUM + " s", rest):
            setattr(s, "total_host_walltime_s" if key.startswith("Total Host") else "total_gpu_compute_s",
                    float(rest[:-2]))
        elif key == "TensorRT version":
            s.version = rest.strip()
        elif key == "Selected Device":
            s.device = rest.strip()
        elif key == "Precision":
            s.precision = rest.strip()
        elif key == "Data transfers":
            s.data_transfers = rest.strip() == "Enabled"
        elif msg.startswith("The e2e network timing is not reported"):
            s.no_summary_reason = msg
        elif severity == "W" and msg.startswith("  ") and s.warnings and s.warnings[-1].startswith("* "):
            s.warnings[-1] += " " + msg.strip()  # the "  If not already in use, ..." continuation
        elif severity in ("E", "F") and msg:
            s.errors.append(msg)
        elif severity == "W" and msg:
            s.warnings.append(msg)
        count = re.match(r"(Warmup completed|Timing trace has) (\d+) queries", msg)
        if count:
            setattr(s, "warmup_queries" if count.group(1).startswith("Warmup") else "timed_queries",
                    int(count.group(2)))
    return s


# --- --exportTimes -----------------------------------------------------------------------
_CANONICAL = ["startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs", "startD2hMs",
              "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "endToEndMs"]
_ALIASES = dict({k.lower(): k for k in _CANONICAL}, inms="h2dMs", outms="d2hMs", startinms="startH2dMs",
                endinms="endH2dMs", startoutms="startD2hMs", endoutms="endD2hMs")  # 7.x names


def parse_times(data, warmup_ms: Optional[float] = None) -> Dict[str, List[float]]:
    """Per-query lists (computeMs, latencyMs, h2dMs, d2hMs, enqueueMs, start/end times ...) from an
    --exportTimes file's text, bytes or parsed list. ``warmup_ms``: drop queries whose compute started
    before it (trtexec's own rule), needed for files from TensorRT <= 8.4, which kept the warm-up."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        text = re.sub(r"(:\s*)-?(?:inf|nan)\b", r"\1null", data)  # C++ streams print inf/nan, not JSON
        try:
            data = json.loads(text)
        except ValueError:
            data = json.loads(text.rstrip().rstrip(",") + "\n]")  # a file cut short before its "]"
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [])
    out: Dict[str, List[float]] = {}
    for entry in data:
        row = {_ALIASES.get(k.lower(), k): v for k, v in entry.items() if isinstance(v, (int, float))}
        if warmup_ms is not None and row.get("startComputeMs", math.inf) < warmup_ms:
            continue
        if "startEnqMs" in row and "endEnqMs" in row:
            row["enqueueMs"] = row["endEnqMs"] - row["startEnqMs"]
        if "computeMs" not in row and "startComputeMs" in row and "endComputeMs" in row:
            row["computeMs"] = row["endComputeMs"] - row["startComputeMs"]
        if "latencyMs" not in row and "computeMs" in row:
            row["latencyMs"] = row.get("h2dMs", 0.0) + row["computeMs"] + row.get("d2hMs", 0.0)
        for k, v in row.items():
            out.setdefault(k, []).append(float(v))
    return out


def median(values: Sequence[float]) -> float:
    v = sorted(values)
    if not v:
        return math.nan
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def percentile(values: Sequence[float], p: float) -> float:
    """trtexec's findPercentile, in its float32 arithmetic and without interpolation, so it picks the
    same sample as the printed summary: sorted[max(n - 1 - int((1 - p/100) n), 0)]."""
    v = sorted(values)
    if not v:
        return math.nan
    exclude = int(_f32(_f32(1 - _f32(_f32(p) / 100)) * len(v)))
    return v[max(len(v) - 1 - exclude, 0)]


def stats(values: Sequence[float], percentiles: Sequence[float] = (90, 95, 99)) -> Stats:
    v = list(values)
    mean = sum(v) / len(v) if v else math.nan
    return Stats(min(v, default=math.nan), max(v, default=math.nan), mean, median(v),
                 {float(p): percentile(v, p) for p in percentiles})


# --- harness vs trtexec -------------------------------------------------------------------
def compare(harness_median_ms: float, summary: TrtexecSummary, kind: str = "compute",
            tolerance: float = 0.05) -> Dict[str, object]:
    """The harness's median against trtexec's: ``kind`` "compute" uses GPU Compute Time, "e2e" Latency
    (H2D + compute + D2H when trtexec ran with data transfers)."""
    if kind not in ("compute", "e2e"):
        raise HarnessError(f"compare: kind must be 'compute' or 'e2e', not {kind!r}")
    metric = "GPU Compute Time" if kind == "compute" else "Latency"
    ref_stats = summary.gpu_compute if kind == "compute" else summary.latency
    ref = ref_stats.median if ref_stats else None
    notes: List[str] = []
    if kind == "e2e" and (summary.data_transfers is False or (summary.h2d and summary.d2h and
                                                             summary.h2d.max == 0 and summary.d2h.max == 0)):
        notes.append("trtexec ran with --noDataTransfers: its Latency is the GPU compute time alone")
    notes += [w for w in summary.warnings if w.startswith("* ")]
    result: Dict[str, object] = {"kind": kind, "metric": metric, "harness_ms": float(harness_median_ms),
                                 "trtexec_ms": ref, "tolerance_pct": 100 * tolerance, "notes": notes}
    if not ref or not harness_median_ms or not math.isfinite(harness_median_ms):
        why = summary.no_summary_reason or "trtexec printed no performance summary"
        result.update(ratio=None, diff_pct=None, within=False, verdict=f"no comparison ({why})")
        return result
    ratio = harness_median_ms / ref
    diff = 100 * (ratio - 1)
    within = abs(ratio - 1) <= tolerance + 1e-12
    detail = f"harness {harness_median_ms:.4g} ms vs trtexec {metric} median {ref:.4g} ms"
    if within:
        verdict = f"within {100 * tolerance:g} % ({detail}, {diff:+.1f} %)"
    else:
        verdict = f"harness {'slower' if diff > 0 else 'faster'} by {abs(diff):.1f} % ({detail})"
    result.update(ratio=ratio, diff_pct=diff, within=within, verdict=verdict)
    return result


def probe_version(trtexec: str, timeout_s: float = 60) -> Optional[str]:
    """The TensorRT version from ``trtexec --help``'s &&&& banner (trtexec has no --version: 8.5 and 10.x fail it)."""
    try:
        out = subprocess.run([trtexec, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=timeout_s).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_log(out).version


def run(onnx_path, precision: str, shape: Shape, input_name: str = "lr", *, trtexec: Optional[str] = None,
        version=None, timeout_s: float = 1800, log_path: Optional[str] = None, **options) -> TrtexecSummary:
    """Run trtexec (``options`` go to :func:`command`) and return its parsed summary, with ``times``
    from ``export_times``; a one-line HarnessError names trtexec and the fix when it cannot."""
    exe = trtexec or find_trtexec()
    if not exe:
        raise HarnessError(NOT_FOUND)
    version = version or probe_version(exe) or "8.5"
    cmd = command(onnx_path, precision, shape, input_name, version, trtexec=exe, **options)
    try:  # its own process group, so a timeout also ends whatever it started
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                start_new_session=True)
    except OSError as exc:
        raise HarnessError(f"trtexec ({exe}) could not start: {exc}; check the path and its permissions") from None
    try:
        out = proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, OSError):
            proc.kill()
        proc.communicate()
        raise HarnessError(f"trtexec ({exe}) did not finish in {timeout_s:g} s (an engine build takes minutes on "
                           f"a Xavier): raise the timeout, or reuse a timing cache or saved engine") from None
    if log_path:
        Path(log_path).write_text(out, encoding="utf-8")
    summary = parse_log(out)
    if proc.returncode != 0 or summary.passed is False:
        first = summary.errors[0] if summary.errors else (out.strip().splitlines() or ["no output"])[-1]
        hint = " (a flag this TensorRT lacks: pass version=)" if "Unknown option" in first else ""
        raise HarnessError(f"trtexec failed (exit {proc.returncode}): {first[:200]}{hint}")
    if summary.gpu_compute is None:
        raise HarnessError(f"trtexec ({exe}) printed no performance summary: "
                           f"{summary.no_summary_reason or 'see its log'}")
    times = options.get("export_times")
    if times and os.path.isfile(times):
        summary.times = parse_times(Path(times).read_text(encoding="utf-8"))
    return summary
