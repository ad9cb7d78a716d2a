"""The runner: times one model on the 14 Full-HD frames with one backend, power-windowed.

For each (model, scale): build the model, prepare the backend session for the Full-HD LR
shape, check its output against the PyTorch fp32 reference (PSNR between them, so a broken
FP16/INT8 conversion is flagged rather than plotted), warm up, then time every frame over
several passes. After ``min_repeats`` whole passes, timing stops at the first frame where the
median's 95 % interval is within ``ci_target_pct``, the time budget ``max_time_s`` is spent or
``repeats`` passes are done (at the end of a pass for a model whose cost depends on the frame, such as
ClassSR's routing; ``iterations`` fixes the count instead). Every raw time is kept in the record. Reported: the
median latency and FHD/s (Full-HD output frames per second, 1000 / median ms) with their 95 %
intervals, p90/p99 where the sample supports them, mean, the coefficient of variation, what
stopped the timing, CPU use in % of one core, peak RSS, device memory, temperatures and clocks before/after, and power/energy
windowed exactly on the timed loop. On GPU backends compute-only (inputs already on the
device) and end-to-end (with host<->device copies) are timed separately.

:func:`measure_isolated` runs :func:`measure` in a child process with a timeout, so a crash,
hang, NaN output or out-of-memory becomes a failure record and a sweep goes on.
"""
from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .backends.base import timed_compute
from .errors import HarnessError
from .timing import seconds
from .worker import describe_exception, run_once

# How far a backend's output may be from the fp32 reference (PSNR in dB on 0..255 after the clamp,
# and for FP16 the largest pixel difference): FP16 rounding (11-bit mantissa) through a few conv
# layers stays near 60 dB and within a grey level or two; 50 dB / 2 grey levels leaves room for
# longer networks while a conversion that breaks a layer falls far below. (Not yet measured on a
# GPU: a lent one should check the margin with the default pool.)
REFERENCE_MIN_PSNR = {"fp32": 60.0, "fp16": 50.0, "int8": 30.0}
REFERENCE_MAX_ABS = {"fp16": 2.0 / 255.0}


@dataclass
class BenchConfig:
    device: str = "cpu"            # profile name
    backend: str = "onnxruntime"
    precision: str = "fp32"
    target: str = "cpu"            # where the backend runs: cpu, cuda, cuda:1, tensorrt (ORT provider)
    threads: int = 0
    warmup: int = 1                # warm-up passes over the frames
    repeats: int = 50              # at most this many timed passes
    min_repeats: int = 1
    max_time_s: float = 8.0        # the time budget: stop timing after this long (the cpu profile's value)
    ci_target_pct: float = 3.0     # stop once the median's 95 % interval is within +-this % (0: never)
    iterations: int = 0            # > 0: exactly this many timed frames, no adaptive stop (trtexec --iterations)
    pipeline: str = "model"        # "color": time RGB frame -> Y model + CbCr bicubic -> RGB as one
    warmup_frames: int = 0         # > 0: warm up on this many frames instead of `warmup` passes (a sweep's)
    weights: str = "shipped"
    form: str = "auto"
    power_meter: object = "none"
    timeout_s: float = 600.0
    build_timeout_s: float = 3600.0  # TensorRT: the untimed engine build before each model's measurement
    trtexec: bool = True            # TensorRT: also time the same engine with trtexec where it exists

    @classmethod
    def from_profile(cls, profile: Dict, **overrides) -> "BenchConfig":
        """The one place a device profile (``harness/profiles/<name>.toml``, ``devices/<name>.toml``) becomes a
        configuration; ``overrides`` (``backend``, ``precision``, ``repeats``, ``timeout_s``, ``weights``, ``form``,
        ``frames_dir``, ``calib_data``, ``onnx_dir``, ...) win where given and not None. TensorRT always runs on CUDA."""
        given = {k: v for k, v in overrides.items() if v is not None}
        backend = given.pop("backend", None) or profile["backend"]
        precision = given.pop("precision", None) or profile["precision"]
        target = "cuda" if backend == "tensorrt" else profile.get("target", "cpu")
        base = cls()  # a profile that leaves a key out gets the dataclass default, one value everywhere
        values = dict(device=profile["name"], backend=backend, precision=precision, target=target,
                      peak_gflops=profile.get(f"peak_gflops_{precision}"), peak_gbps=profile.get("peak_gbps"),
                      power_meter=profile.get("power_meter", base.power_meter))
        for name in ("threads", "warmup", "repeats", "min_repeats", "max_time_s", "timeout_s", "build_timeout_s",
                     "ci_target_pct", "iterations", "warmup_frames"):
            values[name] = profile.get(name, getattr(base, name))
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise HarnessError(f"BenchConfig.from_profile: unknown option(s) {', '.join(unknown)}")
        values.update(given)
        where = profile.get("path") or f"the {profile['name']} profile"
        for name, kind in (("repeats", int), ("min_repeats", int), ("warmup", int), ("threads", int),
                           ("timeout_s", float), ("build_timeout_s", float), ("max_time_s", float),
                           ("ci_target_pct", float), ("iterations", int), ("warmup_frames", int)):
            value = values[name]
            try:
                if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
                    raise ValueError(value)
                values[name] = kind(value)
            except (TypeError, ValueError):
                raise HarnessError(f"{where}: {name} = {value!r} is not {'an integer' if kind is int else 'a number'}; "
                                   f"fix the value") from None
            if values[name] < 0 or (name.endswith("_s") and name != "max_time_s" and values[name] == 0):
                raise HarnessError(f"{where}: {name} = {value!r} must be positive; fix the value")
        return cls(**values)
    frames_dir: Optional[str] = None
    workdir: Optional[str] = None  # export/engine cache (default: $HARNESS_CACHE or .cache/)
    reference_check: bool = True
    peak_gflops: Optional[float] = None  # the device's peak compute at this precision, when known
    peak_gbps: Optional[float] = None    # the device's peak memory bandwidth, when known
    calib_data: Optional[List[str]] = None  # INT8 calibration image folders (default: the embedded images)
    onnx_dir: Optional[str] = None  # an export folder (python -m harness export): its files run, no PyTorch needed


def latency_stats(seconds: List[float]) -> Dict[str, object]:
    """Median/mean/min ms with the median's 95 % interval, FHD/s (1000 / median) with its interval,
    the interval's half-width in %, the CoV, and p90/p99 where the sample supports them
    (:func:`harness.stats.latency_summary`)."""
    from .stats import latency_summary

    return latency_summary(seconds)


def output_max_abs(reference: np.ndarray, test: np.ndarray) -> float:
    """The largest difference of two outputs after the protocol's clamp (0..1)."""
    return float(np.abs(np.clip(reference, 0, 1).astype(np.float64) - np.clip(test, 0, 1)).max())


def _is_reference_itself(cfg: "BenchConfig") -> bool:
    """ONNX Runtime fp32 on the CPU is the reference of a user's ONNX file: no check against itself."""
    return cfg.backend == "onnxruntime" and cfg.precision == "fp32" and str(cfg.target) == "cpu"


def _is_torch_reference(cfg: "BenchConfig") -> bool:
    """PyTorch fp32 on the CPU is the reference of every network: no check against itself."""
    return cfg.backend == "torch" and cfg.precision == "fp32" and str(cfg.target) == "cpu"


def output_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB, 0..255 scale) between two model outputs after the protocol's clamp."""
    from .metrics import psnr

    return psnr(np.clip(reference, 0, 1) * 255.0, np.clip(test, 0, 1) * 255.0)


def probe_check(model, session) -> Optional[Dict[str, object]]:
    """An exported model's reference check: the backend's output on the model's probe (an export
    folder's ``probe.npz``) against the PyTorch fp32 output stored at export, ``{'psnr': dB, 'max_abs':
    ..., 'input_shape': ...}``; None when the model has no probe."""
    probe = getattr(model, "probe", None)
    if not probe:
        return None
    with np.load(probe) as data:
        x, want = data["lr"], data["sr"]
    got = session.infer(np.ascontiguousarray(x, dtype=np.float32))
    if tuple(got.shape) != tuple(want.shape):
        raise HarnessError(f"{model.id}: output {tuple(got.shape)} on the export probe is not the exported "
                           f"{tuple(want.shape)}; re-export the model")
    return {"psnr": output_psnr(want, got), "max_abs": output_max_abs(want, got), "input_shape": list(x.shape)}


def _thermal_and_clocks(target: str = "cpu") -> Dict[str, object]:
    """CPU temperatures and clock; on a CUDA target also the GPU's (NVML), before and after the timed loop."""
    import psutil

    out: Dict[str, object] = {}
    if str(target).startswith("cuda"):
        from .power.nvml import gpu_state

        out["gpu"] = gpu_state(int(target.split(":")[1]) if ":" in target else 0)
    try:
        temps = psutil.sensors_temperatures() or {}
        out["temps_c"] = {name: max(t.current for t in entries) for name, entries in temps.items() if entries}
    except (AttributeError, OSError):
        out["temps_c"] = {}
    try:
        freq = psutil.cpu_freq()
        out["cpu_mhz"] = float(freq.current) if freq else None
    except (AttributeError, OSError, NotImplementedError):
        out["cpu_mhz"] = None
    return out


def make_sampler(spec, device: str):
    """(sampler or None, reason). ``auto`` picks the device's first working meter; a meter
    that is absent or unreadable leaves power as NaN with the reason, never estimated."""
    if spec in (None, "none"):
        return None, "no power meter configured"
    from .power import make_meter
    from .power.sampler import PowerSampler

    try:
        meter = make_meter(spec, device=device)
        ok, why = meter.probe()
        if not ok:
            return None, why
        sampler = PowerSampler(meter)
        sampler.start()
        return sampler, ""
    except HarnessError as exc:
        return None, str(exc)


class Phases:
    """Where a measurement's wall time goes: :meth:`mark` closes the phase running since the last mark."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident set (Linux: VmHWM), so a long-lived worker reports each
    model's own peak; False where the kernel does not offer it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset_ok: bool) -> float:
    """The peak resident set since :func:`_reset_peak_rss` (VmHWM), else since the process began."""
    if reset_ok:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(model_id: str, scale: int, cfg: BenchConfig, inputs: Optional[List[np.ndarray]] = None,
            inputs_cache: Optional[Dict] = None) -> Dict:
    """Time one model in this process; returns a record (see module docstring). ``inputs_cache``: a
    dict that keeps the LR frames between calls (a worker measuring many models at the same scale)."""
    clock = Phases()
    rss_reset = _reset_peak_rss()
    from .backends import as_nchw, make_backend
    from .backends.torch_backend import TorchBackend
    from .environment import emulation
    from .exported import resolve_model
    from .frames import load_frames, lr_inputs
    from .weights import cache_dir

    clock.mark("imports")
    model = resolve_model(model_id, scale, cfg.weights, onnx_dir=cfg.onnx_dir)
    clock.mark("build")
    frames_inputs = inputs is None
    if inputs is None:
        key = (cfg.frames_dir, scale, model.input_space)
        inputs = (inputs_cache or {}).get(key)
        if inputs is None:
            frames = (inputs_cache or {}).get((cfg.frames_dir,)) or load_frames(cfg.frames_dir)
            inputs = lr_inputs(frames, scale, model.input_space)
            if inputs_cache is not None:
                for old in [k for k in inputs_cache if len(k) == 3][:-1]:  # keeps the Y and RGB frames of the
                    inputs_cache.pop(old)                                  # scale being swept, and the decoded
                inputs_cache[key] = inputs                                 # Full-HD frames (key: their folder)
                inputs_cache[(cfg.frames_dir,)] = frames
    batch = [as_nchw(x) for x in inputs]
    clock.mark("inputs")
    backend = make_backend(cfg.backend, precision=cfg.precision, threads=cfg.threads, device=cfg.target,
                           workdir=cfg.workdir or str(cache_dir()), form=cfg.form, calib_data=cfg.calib_data)
    record: Dict[str, object] = {"model": model.id, "scale": scale, "family": model.family, "device": cfg.device,
                                 "backend": cfg.backend, "precision": cfg.precision, "weights": model.weights,
                                 "frames": len(batch), "input_shape": list(batch[0].shape),
                                 "threads": cfg.threads}  # the profile's (0: the library's own choice)
    emulated = emulation()
    if emulated:  # timings under an emulator say nothing about the device: every table and figure says so
        record["emulated"] = emulated
    t0 = time.perf_counter()
    session = backend.prepare(model, [batch[0].shape])
    record["prepare_s"] = time.perf_counter() - t0
    clock.mark("prepare")  # export (or the export cache), sessions, the form trial
    record["form"] = session.form
    record["session"] = dict(session.details)
    record["runtime"] = session.details.get("runtime", "unknown")  # what really ran: numpy, opencv, onnxruntime, ...
    record["colour_space"] = model.input_space  # what the model runs on: "y" or "rgb"
    if cfg.precision == "int8":  # which images calibrated the INT8 graph or engine
        record["calibration"] = session.details.get("calibration")
    record["versions"] = backend.versions()

    out = session.infer(batch[0])
    expected = (1, model.channels, batch[0].shape[2] * scale, batch[0].shape[3] * scale)
    if tuple(out.shape) != expected:
        raise HarnessError(f"{model.id} on {cfg.backend}: output shape {tuple(out.shape)} is not {expected}")
    if not np.all(np.isfinite(out)):
        raise HarnessError(f"{model.id} on {cfg.backend}/{cfg.precision}: output holds NaN/inf")
    exported = probe_check(model, session) if cfg.reference_check else None
    if exported is not None:  # an exported model: against the PyTorch output stored with it (no PyTorch here)
        record["psnr_vs_reference"] = exported["psnr"]
        record["reference"] = dict(exported, source="PyTorch fp32 output stored at export, on its probe crop")
    elif cfg.reference_check and getattr(model, "module", None) is not None and _is_torch_reference(cfg):
        record["reference"] = {"source": "none: this run is the PyTorch fp32 reference (CPU)"}
    elif cfg.reference_check and getattr(model, "module", None) is not None:
        ref_session = TorchBackend(precision="fp32", device="cpu", threads=cfg.threads).prepare(model, [batch[0].shape])
        ref = ref_session.infer(batch[0])
        record["psnr_vs_reference"] = output_psnr(ref, out)
        record["reference"] = {"source": "PyTorch fp32 on this machine, first frame", "max_abs": output_max_abs(ref, out)}
    elif cfg.reference_check and getattr(model, "onnx_path", None) and not _is_reference_itself(cfg):
        # a user's ONNX file: against its own fp32 run on ONNX Runtime's CPU provider
        ref = model.run_onnx(np.ascontiguousarray(batch[0], dtype=np.float32))
        record["psnr_vs_reference"] = output_psnr(ref, out)
        record["reference"] = {"source": "ONNX Runtime CPU fp32 of the same file, first frame",
                               "max_abs": output_max_abs(ref, out)}
    if "psnr_vs_reference" in record:
        floor = REFERENCE_MIN_PSNR.get(cfg.precision, 30.0)
        limit = REFERENCE_MAX_ABS.get(cfg.precision)
        max_abs = (record.get("reference") or {}).get("max_abs")
        notes = []
        if not record["psnr_vs_reference"] >= floor:
            notes.append(f"{record['psnr_vs_reference']:.1f} dB < {floor:.0f} dB")
        if limit is not None and max_abs is not None and max_abs > limit:
            notes.append(f"max difference {max_abs * 255:.1f} > {limit * 255:.0f} grey levels")
        record["reference_ok"] = not notes
        if notes:
            record["reference_note"] = (f"output differs from the {record['reference']['source'].split(',')[0]} "
                                        f"reference: {'; '.join(notes)} for {cfg.precision}")

    if cfg.pipeline == "color":  # the application's path, timed as one: LR RGB frame -> model (+ CbCr) -> RGB
        from .pipeline import ColorPipeline

        session = ColorPipeline(session, model, scale)
        batch = [as_nchw(x) for x in lr_inputs(load_frames(cfg.frames_dir), scale, "rgb")] if frames_inputs else \
            [as_nchw(np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x) for x in inputs]
        record["pipeline"] = "color"
        record["session"] = dict(session.details)
        record["input_shape"] = list(batch[0].shape)

    clock.mark("reference")
    if cfg.warmup_frames > 0:  # a sweep's warm-up counts the full-size runs the session has had since its creation:
        # the output check above, and the form trial's runs of the chosen form where it is timed in the trial's own session
        ran = 1 if session.details.get("fresh_after_trial") else \
            1 + sum(1 + n for form, n in (session.details.get("form_trial_runs") or {}).items()
                    if form == session.form) + (session.details.get("form_primed") == session.form) \
            + (session.form in (session.details.get("form_second_run_ms") or {}))
        warm = [batch[i % len(batch)] for i in range(max(1, cfg.warmup_frames - ran))]
        record["warmup_runs_before"] = ran
    else:
        warm = [x for _ in range(max(cfg.warmup, 0)) for x in batch]
    record["warmup_frames_run"] = len(warm)
    for x in warm:
        session.load(x)
        session.compute()
    clock.mark("warmup")

    record["before"] = _thermal_and_clocks(cfg.target)
    sampler, power_reason = make_sampler(cfg.power_meter, cfg.device)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)  # microsecond accounting (psutil's ticks are 10 ms)
    wall0 = time.perf_counter()
    routed = getattr(model, "merge_routing", None) is not None  # its cost follows each frame's content
    compute_s, gpu_ms, passes, stop = time_session(session, batch, cfg, sampler, whole_passes=routed)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    clock.mark("timing")
    record["passes"] = passes
    record["timing_stop"] = stop
    record["timing"] = {k: getattr(cfg, k) for k in ("warmup", "warmup_frames", "repeats", "min_repeats",
                                                     "max_time_s", "ci_target_pct", "iterations", "threads")}
    record["times_ms"] = [round(t * 1e3, 5) for t in compute_s]  # every raw time, in the store
    record["timed_wall_s"] = wall
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    record["cpu_util_pct"] = 100.0 * cpu_s / wall if wall > 0 else float("nan")
    record.update(latency_stats(compute_s))
    if gpu_ms:
        record["gpu_median_ms"] = float(np.median(gpu_ms))

    if sampler is not None:
        sampler.stop()
        summary = sampler.summary()
        record["power"] = summary.to_dict()
        record["power_meter"] = sampler.info()
        record["mean_w"] = float(summary.mean_w)
        record["mj_per_frame"] = float(summary.energy_j) * 1e3 / len(compute_s) if compute_s else float("nan")
        record["power_reason"] = summary.reason or ""
    else:
        record["mean_w"] = float("nan")
        record["mj_per_frame"] = float("nan")
        record["power_reason"] = power_reason

    if cfg.target != "cpu" and session.form != "native":
        e2e = []
        for _ in range(passes):
            for x in batch:
                e2e.append(seconds(session.infer, x))
        record["e2e"] = latency_stats(e2e)
    if cfg.backend == "tensorrt" and cfg.trtexec and session.details.get("engine"):
        record["trtexec"] = trtexec_parity(session.details, record, cfg)
    out_hw = (batch[0].shape[2] * scale, batch[0].shape[3] * scale)
    record.update(roofline(model, cfg, record.get("fhd_per_s"), out_hw))
    routing = _routing(model, session, batch)
    if routing is not None:  # a routed model: what the frames really cost, not the static worst case
        record["routing"] = routing
        record["macs_per_fhd_static"] = record.get("macs_per_fhd")
        record["macs_per_fhd"] = routing["macs_routed_per_image"]
    record["after"] = _thermal_and_clocks(cfg.target)
    record["peak_rss_mb"] = _peak_rss_mb(rss_reset)
    record["device_memory_bytes"] = session.device_memory_bytes()
    session.close()
    clock.mark("after")  # end-to-end times, trtexec, roofline, routing, temperatures
    record["phases_s"] = clock.seconds
    record["pid"] = os.getpid()  # the measuring process (a sweep's worker measures several models)
    return record


def pool_rounds(records: List[Dict]) -> Dict:
    """One record from the rounds of one model (``--rounds``): every raw time pooled and the figures
    recomputed from them, each round's median kept (``round_medians_ms``), energy and CPU use
    weighted by each round's share; a failed round makes the record failed with its reason."""
    failed = next((r for r in records if r.get("status") == "failed"), None)
    if failed is not None:
        i = records.index(failed) + 1
        return dict(failed, reason=f"round {i} of {len(records)}: {failed.get('reason', '')}", rounds=len(records))
    out = dict(records[-1])
    times = [t for r in records for t in r.get("times_ms") or []]
    out.update(latency_stats([t / 1e3 for t in times]))
    out["times_ms"] = times
    out["rounds"] = len(records)
    out["round_medians_ms"] = [r.get("median_ms") for r in records]
    out["timing_stop"] = f"{len(records)} rounds (" + ", ".join(str(r.get("timing_stop")) for r in records) + ")"
    out["passes"] = sum(int(r.get("passes") or 0) for r in records)
    walls = [float(r.get("timed_wall_s") or 0.0) for r in records]
    out["timed_wall_s"] = sum(walls)
    counts = [len(r.get("times_ms") or []) for r in records]

    def weighted(key, weights):
        vals = [r.get(key) for r in records]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals) or not sum(weights) > 0:
            return float("nan")
        return float(sum(v * w for v, w in zip(vals, weights)) / sum(weights))

    out["cpu_util_pct"] = weighted("cpu_util_pct", walls)
    out["mean_w"] = weighted("mean_w", walls)
    out["mj_per_frame"] = weighted("mj_per_frame", counts)
    if any(r.get("status") == "flagged" for r in records):
        out["status"] = "flagged"
    out.update(roofline_update(out))
    return out


def roofline_update(record: Dict) -> Dict:
    """The roofline fraction of a record whose FHD/s changed (pooled rounds)."""
    bound = record.get("roofline_fhd_per_s")
    fhd = record.get("fhd_per_s")
    if isinstance(bound, (int, float)) and bound and isinstance(fhd, (int, float)) and math.isfinite(fhd):
        return {"roofline_fraction": fhd / bound}
    return {}


def trtexec_parity(details: Dict, record: Dict, cfg: BenchConfig) -> Dict[str, object]:
    """trtexec on the very engine the harness timed, at the same input shape: GPU compute time without
    data transfers against the harness's CUDA-event median (the 5 % check), and its Latency with transfers
    against the harness's end-to-end median. Absent trtexec, or a failed run, is recorded with the reason."""
    from .backends import trtexec as tx

    exe = tx.find_trtexec()
    if not exe:
        return {"status": "absent", "reason": tx.NOT_FOUND}
    shape = tuple(record["input_shape"])
    name = next(iter(details.get("io_dtypes") or {"lr": None}))
    logs = Path(details["engine"]).with_suffix("")
    out: Dict[str, object] = {"status": "ok", "trtexec": exe}
    try:
        compute = tx.run(None, cfg.precision, shape, name, trtexec=exe, load_engine=details["engine"],
                         data_transfers=False, timeout_s=min(cfg.timeout_s, 600), log_path=f"{logs}.trtexec-compute.log")
        out["version"] = compute.version
        out["compute"] = tx.compare(record.get("gpu_median_ms") or record.get("median_ms"), compute, "compute")
        e2e = tx.run(None, cfg.precision, shape, name, trtexec=exe, load_engine=details["engine"],
                     data_transfers=True, timeout_s=min(cfg.timeout_s, 600), log_path=f"{logs}.trtexec-e2e.log")
        harness_e2e = (record.get("e2e") or {}).get("median_ms")
        if harness_e2e:
            out["e2e"] = tx.compare(harness_e2e, e2e, "e2e")
    except HarnessError as exc:
        out.update(status="failed", reason=str(exc))
    return out


def _routing(model, session, batch) -> Optional[Dict]:
    """Routing statistics of a model that routes its input (ClassSR) over one untimed pass of the frames."""
    merge = getattr(model, "merge_routing", None)
    if merge is None:
        return None
    records = []
    for x in batch:
        session.infer(x)
        records.append(getattr(session, "last_routing", None) or getattr(model, "last_routing", None))
    return merge(records)


def roofline(model, cfg: BenchConfig, fhd_per_s, out_hw=(1080, 1920)) -> Dict[str, object]:
    """MACs and bytes per output frame (Full-HD in every real run), and where the device's peaks are known the roofline
    bound on FHD/s (min of compute- and bandwidth-bound) and the fraction of it attained."""
    module = getattr(model, "module", None)
    stored = getattr(model, "complexity", None)  # an exported model: measured at export, per Full-HD frame
    if module is not None:
        from .models.complexity import complexity

        info = complexity(module, model.scale, out_hw=tuple(out_hw), channels=model.channels)
    elif stored:
        ratio = (out_hw[0] * out_hw[1]) / (1080.0 * 1920.0)  # convolutional: cost in proportion to pixels
        info = {k: (int(round(v * ratio)) if k != "params" else v) for k, v in stored.items()}
    else:
        return {}
    traffic = info["bytes_per_fhd_fp16"] if cfg.precision in ("fp16", "int8") else info["bytes_per_fhd"]
    out: Dict[str, object] = {"params": info["params"], "macs_per_fhd": info["macs_per_fhd"], "bytes_per_fhd": traffic}
    bounds = []
    if cfg.peak_gflops and info["macs_per_fhd"]:
        bounds.append(cfg.peak_gflops * 1e9 / (2.0 * info["macs_per_fhd"]))
    if cfg.peak_gbps and traffic:
        bounds.append(cfg.peak_gbps * 1e9 / traffic)
    if bounds:
        out["roofline_fhd_per_s"] = min(bounds)
        if fhd_per_s and math.isfinite(fhd_per_s):
            out["roofline_fraction"] = fhd_per_s / out["roofline_fhd_per_s"]
    return out


def time_session(session, batch, cfg: BenchConfig, sampler=None, whole_passes: bool = False):
    """The timed loop: passes over the frames, each frame loaded then computed under the clock.

    After ``cfg.min_repeats`` whole passes, timing stops as soon as the median's 95 % interval is within
    +-``cfg.ci_target_pct`` % ("interval"), the time budget ``cfg.max_time_s`` is spent ("time budget") or
    ``cfg.repeats`` passes are done ("pass limit"), checked after every frame: a pass of 14 slow frames no
    longer runs to its end once the interval is there. With a power ``sampler``, the loop then runs on until
    it has lasted the meter's ``min_window_s`` ("power window"): a fast model's 42 frames on a GPU take 20 ms,
    in which NVML's energy counter may not move at all. With ``whole_passes`` (a model whose cost depends on
    the frame's content, such as ClassSR's routing) it is checked at the end of a pass only, so that every
    frame is timed equally often. With ``cfg.iterations`` > 0, exactly that many frames are timed
    ("iterations"). Returns (per-frame compute seconds, per-frame GPU ms where the backend measures it, the
    passes begun (the last may be partial), what stopped it). The power window is opened and closed exactly
    around it.
    """
    from .stats import pooled_halfwidth_pct, prepare_cuts

    compute_s: List[float] = []
    gpu_ms: List[float] = []
    frames = len(batch)
    stop = ""
    met = False  # the stop rule was met, and the loop runs on only to fill the power meter's window
    # With a meter, the window lasts at least what the meter needs to measure it (PowerSampler.min_window_s).
    window_min = sampler.min_window_s if sampler is not None and cfg.iterations <= 0 else 0.0
    prepare_cuts(max(cfg.min_repeats * frames, 1024))  # SciPy's import and its per-n calls stay out of the window
    start = time.perf_counter()
    if sampler is not None:
        sampler.window_start()
    while not stop:
        session.load(batch[len(compute_s) % frames])
        wall, gpu = timed_compute(session)
        compute_s.append(wall)
        if gpu is not None:
            gpu_ms.append(gpu)
        n = len(compute_s)
        if cfg.iterations > 0:
            stop = "iterations" if n >= cfg.iterations else ""
        elif n >= cfg.min_repeats * frames and (not whole_passes or n % frames == 0):
            elapsed = time.perf_counter() - start
            if met:
                stop = "power window" if elapsed >= window_min else ""
            elif cfg.ci_target_pct > 0 and pooled_halfwidth_pct(compute_s) <= cfg.ci_target_pct:
                stop = "interval"
            elif elapsed >= cfg.max_time_s:
                stop = "time budget"
            elif n >= cfg.repeats * frames:
                stop = "pass limit"
            if stop and not met and elapsed < window_min:
                stop, met = "", True
    if sampler is not None:
        sampler.window_end()
    return compute_s, gpu_ms, -(-len(compute_s) // frames), stop


# --------------------------------------------------------------------------- isolation

def _child(conn, model_id, scale, cfg, inputs_path):
    from .children import become_child

    become_child()
    try:
        inputs = None
        if inputs_path:
            data = np.load(inputs_path)
            inputs = [data[k] for k in sorted(data.files)]
        conn.send(("ok", measure(model_id, scale, cfg, inputs)))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        conn.send(("error", describe_exception(exc)))
    finally:
        conn.close()


def with_status(record: Dict) -> Dict:
    """A measured record's status: ``flagged`` when its output failed the reference check, else ``ok``."""
    record["status"] = "ok" if record.get("reference_ok", True) else "flagged"
    record["reason"] = record.get("reference_note", "")
    return record


def measure_task(task: Dict, state: Dict, tick) -> Dict:
    """:func:`measure` in a :class:`harness.worker.Worker` child that measures one model after another
    (a sweep: no process start and imports per model); ``task``: ``model, scale, cfg``."""
    import gc

    try:
        return with_status(measure(task["model"], task["scale"], task["cfg"], inputs_cache=state.setdefault("lr", {})))
    finally:
        gc.collect()  # the model's session and arrays go before the next model is timed
        # what outlives a model (modules imported for it, caches) is not scanned again: each collect then
        # looks at one model's objects (ms), not at PyTorch's and ONNX Runtime's modules (~80 ms)
        gc.freeze()


def failure_record(model_id: str, scale: int, cfg: BenchConfig, reason: str) -> Dict:
    from .models.registry import family_name

    return {"model": model_id, "scale": scale, "family": family_name(model_id), "device": cfg.device,
            "backend": cfg.backend, "precision": cfg.precision, "weights": cfg.weights, "status": "failed",
            "reason": reason}


def _build_child(conn, model_id, scale, cfg):
    """Prepare the model's session once (TensorRT: build and cache its engines), untimed."""
    from .children import become_child

    become_child()
    try:
        from .backends import make_backend
        from .exported import resolve_model
        from .frames import FHD_HEIGHT, FHD_WIDTH
        from .weights import cache_dir

        model = resolve_model(model_id, scale, cfg.weights, onnx_dir=cfg.onnx_dir)
        backend = make_backend(cfg.backend, precision=cfg.precision, threads=cfg.threads, device=cfg.target,
                               workdir=cfg.workdir or str(cache_dir()), form=cfg.form, calib_data=cfg.calib_data)
        t0 = time.perf_counter()
        session = backend.prepare(model, [(1, model.channels, FHD_HEIGHT // scale, FHD_WIDTH // scale)])
        kept = ("engine_source", "build_s", "engine", "form_trial_ms", "form_trial_runs", "form_first_run_ms",
                "form_second_run_ms", "form_primed", "form_skipped", "form_strip_ms", "form_strip_rows", "timing_cache",
                "layer_precisions")
        details = {k: session.details.get(k) for k in kept if k in session.details}
        details.update(form=session.form, prepare_s=time.perf_counter() - t0)
        session.close()
        conn.send(("ok", details))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        conn.send(("error", describe_exception(exc)))
    finally:
        conn.close()


def measure_isolated(model_id: str, scale: int, cfg: BenchConfig, inputs_path: Optional[str] = None) -> Dict:
    """:func:`measure` in a fresh child process (spawned: no inherited threads or CUDA state).

    On TensorRT the engines are first built in a child of their own, under ``cfg.build_timeout_s``
    (an FP16 build takes minutes on a Xavier, two with ``--form auto``): the measuring child then
    loads them from the cache, and its ``timeout_s`` bounds the measurement alone."""
    build = None
    if cfg.backend == "tensorrt":
        status, payload = _isolated(_build_child, (model_id, scale, cfg), cfg.build_timeout_s, "building its engine")
        if status != "ok":
            return failure_record(model_id, scale, cfg, f"engine build: {payload}")
        build = payload
    status, payload = _isolated(_child, (model_id, scale, cfg, inputs_path), cfg.timeout_s, "measuring")
    if status != "ok":
        return failure_record(model_id, scale, cfg, payload)
    with_status(payload)
    if build is not None:
        payload["build"] = build
    return payload


def _isolated(target, args, timeout_s: float, what: str):
    """Run ``target(conn, *args)`` in a spawned child: ``("ok", payload)`` or ``("error", reason)``;
    a timeout, crash or silent exit is an error with its reason (:func:`harness.worker.run_once`)."""
    option = "the profile's build_timeout_s" if target is _build_child else "--timeout"
    return run_once(target, args, timeout_s, what, option)
