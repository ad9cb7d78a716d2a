"""Which checks a device profile gets, and in which order (:func:`run_checks`): the host and its
Python, the libraries, the CUDA device, the Jetson or Raspberry Pi checks, the CPU, the power
meters, then disk and data. Library probes run here, once, when the system is live."""
from __future__ import annotations

from typing import List, Mapping, Optional

from .context import Context, kind_of
from .host import check_board, check_datasets, check_disk, check_frames
from .jetson import check_jetson_clocks, check_l4t, check_nvpmodel, check_trtexec
from .libraries import check_cuda_device, check_fp16, check_libraries, probe_libraries
from .meters import power_checks
from .python_env import check_python, check_venv
from .result import Check
from .rpi import check_cpu_features, check_governor, check_temperature, check_throttled
from .system import System


def run_checks(profile: Mapping[str, object], system: Optional[System] = None) -> List[Check]:
    """Every check for ``profile`` on ``system`` (live ``/`` when None), in a fixed order."""
    system = system or System()
    ctx = Context(dict(profile), system, kind_of(profile))
    if system.live:
        ctx.libs = probe_libraries()
    checks: List[Optional[Check]] = [check_python(ctx), check_venv(ctx), check_board(ctx)]
    if ctx.kind == "jetson":
        checks.append(check_l4t(ctx))
    checks += check_libraries(ctx)
    checks += [check_fp16(ctx), check_cuda_device(ctx)]
    if ctx.kind == "jetson":
        checks += [check_nvpmodel(ctx), check_jetson_clocks(ctx), check_trtexec(ctx)]
    if ctx.kind == "rpi":
        checks.append(check_throttled(ctx))
    checks += [check_governor(ctx), check_temperature(ctx), check_cpu_features(ctx)]
    checks += power_checks(profile, system)
    checks += [check_disk(ctx), check_frames(ctx), check_datasets(ctx)]
    return [c for c in checks if c is not None]
