"""The libraries a backend needs: torch, onnxruntime, tensorrt and pycuda, each imported in a child
Python (:func:`probe_library`), so a broken library cannot take doctor down and this process never
imports one; their checks against the profile (versions, ONNX Runtime's CUDA provider, TensorRT's
fast FP16), the fix for each, and the CUDA device they open (else ``nvidia-smi -L``, else a Jetson's
integrated GPU node)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from .context import Context, version_tuple
from .jetson import GPU_DEVFREQ, TRT_RANGE
from .result import Check
from .system import not_in_capture, recorded_check

ORT_MIN = (1, 12)  # pyproject's lower bound

_PROBE = r'''
import json, sys
name = sys.argv[1]
out = {"ok": False}
try:
    if name == "torch":
        import torch
        out["version"] = torch.__version__
        out["cuda_build"] = getattr(torch.version, "cuda", None)
        try:
            out["cuda_available"] = bool(torch.cuda.is_available())
            if out["cuda_available"]:
                out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    elif name == "onnxruntime":
        import onnxruntime as ort
        out["version"] = ort.__version__
        out["providers"] = list(ort.get_available_providers())
        out["device"] = ort.get_device()
    elif name == "tensorrt":
        import tensorrt as trt
        out["version"] = trt.__version__
        try:
            builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
            out["fast_fp16"] = bool(builder.platform_has_fast_fp16)
            out["fast_int8"] = bool(builder.platform_has_fast_int8)
        except Exception as exc:
            out["builder_error"] = "%s: %s" % (type(exc).__name__, exc)
    elif name == "pycuda":
        import pycuda
        out["version"] = getattr(pycuda, "VERSION_TEXT", None)
        import pycuda.driver as cuda
        try:
            cuda.init()
            out["devices"] = [cuda.Device(i).name() for i in range(cuda.Device.count())]
            out["capabilities"] = [".".join(map(str, cuda.Device(i).compute_capability()))
                                   for i in range(cuda.Device.count())]
            out["driver"] = cuda.get_driver_version()
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    out["ok"] = True
except BaseException as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
sys.stdout.write("\n@@doctor@@" + json.dumps(out) + "\n")
'''
LIBRARIES = ("torch", "onnxruntime", "tensorrt", "pycuda")


def probe_library(name: str, timeout_s: float = 120.0) -> Dict[str, object]:
    """Import ``name`` in a child Python (never in this process) and report version and facts."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return {"ok": False, "missing": True, "error": f"{name} is not installed for {sys.executable}"}
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"importing {name} took over {timeout_s:.0f} s"}
    out = proc.stdout.decode("utf-8", errors="replace")
    marker = out.rfind("@@doctor@@")
    if marker >= 0:
        try:
            return json.loads(out[marker + len("@@doctor@@"):].strip().splitlines()[0])
        except (ValueError, IndexError):
            pass
    err = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return {"ok": False, "error": f"importing {name} killed the interpreter (rc={proc.returncode})"
                                  + (f": {err[-1]}" if err else "")}


def probe_libraries(names: Sequence[str] = LIBRARIES) -> Dict[str, Dict[str, object]]:
    """All probes at once (each a child process; torch alone takes seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        results = dict(zip(names, pool.map(probe_library, names)))
    return results


def _lib_missing_fix(ctx: Context, name: str) -> str:
    if name == "torch":
        if ctx.kind == "jetson":
            return "measuring needs no PyTorch; to export or train here install NVIDIA's JetPack torch wheel"
        return "measuring needs no PyTorch (export on a workstation: run-all --onnx-dir); to export here: " \
               "HARNESS_TORCH=1 ./scripts/bootstrap.sh"
    if name == "onnxruntime":
        return "./scripts/bootstrap.sh (onnxruntime is a core dependency)"
    if name == "tensorrt":
        if ctx.kind == "jetson":
            return ("sudo apt install python3-libnvinfer (JetPack), in a venv made with --system-site-packages "
                    "for the system Python 3.8 (HARNESS_MACHINE=jetson ./scripts/bootstrap.sh)")
        here = []  # what measures this GPU without TensorRT, where the probes found it
        if (ctx.libs.get("torch") or {}).get("devices"):
            here.append("--backend torch (PyTorch sees the GPU)")
        if "CUDAExecutionProvider" in ((ctx.libs.get("onnxruntime") or {}).get("providers") or []):
            here.append("--backend onnxruntime --precision fp32 (its CUDA provider is here)")
        return ("pip install -e '.[nvidia]' (tensorrt>=8.5,<11 from pypi.nvidia.com), or "
                + (" or ".join(here) if here else "--backend onnxruntime with onnxruntime-gpu"))
    if name == "pycuda":
        if ctx.kind == "jetson":
            return "PATH=/usr/local/cuda/bin:$PATH pip install pycuda (./scripts/bootstrap.sh does this)"
        return "pip install -e '.[nvidia]' (pycuda builds against the CUDA toolkit: nvcc on PATH)"
    return "./scripts/bootstrap.sh"


def check_libraries(ctx: Context) -> List[Check]:
    sysm = ctx.system
    trt_backend = ctx.backend == "tensorrt"
    required = {"torch": ctx.backend == "torch", "onnxruntime": ctx.backend == "onnxruntime",
                "tensorrt": trt_backend, "pycuda": trt_backend}
    if not sysm.live:
        return [not_in_capture(sysm, name) for name in LIBRARIES]
    out: List[Check] = []
    for name in LIBRARIES:
        res = ctx.libs.get(name) or {"ok": False, "error": "not probed"}
        req = required[name]
        if not res.get("ok"):
            why = str(res.get("error") or "not importable")
            status = "absent" if res.get("missing") else "wrong"
            value = "not installed" if res.get("missing") else f"not importable ({why})"
            out.append(Check(name, status, value, _lib_missing_fix(ctx, name), req, dict(res)))
            continue
        version = str(res.get("version") or "unknown")
        vt = version_tuple(version)
        if name == "torch":
            extra = f"CUDA build {res.get('cuda_build')}" if res.get("cuda_build") else "CPU build"
            if res.get("cuda_available"):
                extra += ", GPU " + ", ".join(res.get("devices") or [])
            out.append(Check(name, "ok", f"{version} ({extra})", required=req, data=dict(res)))
        elif name == "onnxruntime":
            providers = list(res.get("providers") or [])
            value = f"{version}, providers {', '.join(providers) or 'none'}"
            if vt[:2] < ORT_MIN:
                out.append(Check(name, "wrong", value + f": older than {ORT_MIN[0]}.{ORT_MIN[1]}",
                                 "pip install -U 'onnxruntime>=1.12' (./scripts/bootstrap.sh)", req, dict(res)))
            elif ctx.backend == "onnxruntime" and ctx.target == "cuda" and "CUDAExecutionProvider" not in providers:
                out.append(Check(name, "wrong", value + ": no CUDAExecutionProvider for target cuda",
                                 "pip install onnxruntime-gpu (matching your CUDA), or use the tensorrt backend",
                                 req, dict(res)))
            else:
                out.append(Check(name, "ok", value, required=req, data=dict(res)))
        elif name == "tensorrt":
            lo, hi = TRT_RANGE
            if not (lo <= vt[:2] and vt[:1] < hi):
                fix = ("JetPack 5.1.x (TensorRT 8.5.2), the last JetPack for AGX Xavier" if ctx.kind == "jetson"
                       else "pip install 'tensorrt>=8.5,<11' (the [nvidia] extra)")
                out.append(Check(name, "wrong", f"{version}: FP16/INT8 engines need TensorRT >= 8.5 and < 11",
                                 fix, req, dict(res)))
            else:
                out.append(Check(name, "ok", version, required=req, data=dict(res)))
        elif name == "pycuda":
            devices = res.get("devices")
            value = version + (f", CUDA devices: {', '.join(devices)}" if devices else
                               f" (CUDA: {res.get('cuda_error') or 'no device'})")
            out.append(Check(name, "ok", value, required=req, data=dict(res)))
    return out


def check_fp16(ctx: Context) -> Optional[Check]:
    """TensorRT's platform_has_fast_fp16 (FP16 profiles on the TensorRT backend)."""
    if ctx.backend != "tensorrt":
        return None
    required = ctx.precision == "fp16"
    if not ctx.system.live:
        return not_in_capture(ctx.system, "fp16")
    res = ctx.libs.get("tensorrt") or {}
    if not res.get("ok"):
        return Check("fp16", "absent", "unknown: tensorrt is not importable", _lib_missing_fix(ctx, "tensorrt"),
                     required)
    if "fast_fp16" not in res:
        return Check("fp16", "absent", f"unknown: no TensorRT builder ({res.get('builder_error') or 'no GPU'})",
                     "check the CUDA device line above", required, dict(res))
    if res["fast_fp16"]:
        return Check("fp16", "ok", "platform_has_fast_fp16 = True", required=required, data=dict(res))
    return Check("fp16", "wrong", "platform_has_fast_fp16 = False: FP16 engines would not be faster",
                 "use a GPU with fast FP16 (Volta or newer; the Xavier's has it) or --precision fp32",
                 required, dict(res))


def check_cuda_device(ctx: Context) -> Optional[Check]:
    """A CUDA device that CUDA opens (pycuda/torch, live), else nvidia-smi -L, else a Jetson's GPU node."""
    if ctx.target != "cuda" and ctx.kind not in ("jetson", "cuda"):
        return None
    sysm = ctx.system
    required = ctx.target == "cuda" and sysm.live
    if sysm.live:
        for lib in ("pycuda", "torch"):
            devs = (ctx.libs.get(lib) or {}).get("devices")
            if devs:
                return Check("cuda device", "ok", ", ".join(str(d) for d in devs) + f" (via {lib})",
                             required=required, data={"devices": devs, "via": lib})
    smi = sysm.run("nvidia_smi")
    gpus = [ln.strip() for ln in (smi.output or "").splitlines() if re.match(r"\s*GPU \d+:", ln)]
    if gpus:
        return Check("cuda device", "ok", "; ".join(gpus) + " (nvidia-smi -L)", required=required,
                     data={"devices": gpus, "via": "nvidia-smi"})
    nodes = [os.path.basename(p) for p in sysm.glob("/sys/class/devfreq/*") if GPU_DEVFREQ.search(os.path.basename(p))]
    if ctx.kind == "jetson" and sysm.live and not nodes and os.path.exists("/dev/nvhost-ctrl-gpu"):
        nodes = ["/dev/nvhost-ctrl-gpu"]
    if ctx.kind == "jetson" and nodes:
        value = f"integrated GPU {nodes[0]}"
        if not sysm.live:
            return Check("cuda device", "ok", value + " (devfreq node in the capture)", data={"node": nodes[0]})
        pyc = ctx.libs.get("pycuda") or {}
        if pyc.get("ok") and pyc.get("cuda_error"):
            return Check("cuda device", "wrong", value + f", but CUDA does not open it ({pyc['cuda_error']})",
                         "sudo usermod -aG video $USER, then log in again", required, {"node": nodes[0]})
        return Check("cuda device", "absent", value + "; no CUDA library here to open it (pycuda: "
                     f"{pyc.get('error') or 'not installed'})", _lib_missing_fix(ctx, "pycuda"), required,
                     {"node": nodes[0]})
    if not sysm.live:
        if recorded_check(sysm, "cuda device"):
            return not_in_capture(sysm, "cuda device")
        return Check("cuda device", "info", f"not in capture ({smi.why or 'no GPU in nvidia-smi -L'})")
    if smi.output is not None:
        first = (smi.output.strip().splitlines() or ["no output"])[0]
        why = f"nvidia-smi -L: {first[:80]}"
    else:
        why = smi.why
    return Check("cuda device", "absent", f"no CUDA device visible ({why})",
                 "install the NVIDIA driver (nvidia-smi -L must list the GPU) and pycuda, or use --device cpu",
                 required)
