"""What a run is, before anything runs: its (model, scale) pairs, its configuration and the key that
identifies it in the store (so ``--resume`` finds it), its timing controls, and the checks that fail
before any work (unknown ids, unwritable folders, bad values): one line each, naming the fix."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import HarnessError

BASELINES = ("bicubic-matlab", "bicubic-opencv", "Bicubic_s{scale}")


Pairs = List[Tuple[str, int]]


def as_list(value) -> List:
    """None -> [], one value -> [value], else a list of the values."""
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def model_scale_pairs(model_ids: Sequence[str], scales: Sequence[int]) -> Pairs:
    """(model id, scale) pairs: a fixed-scale id keeps its own scale (and must agree with
    ``scales`` if given); a scale-free id runs at each scale (default 2, 3, 4)."""
    from ..models import SCALES, id_scale

    pairs: Pairs = []
    for mid in model_ids:
        fixed = id_scale(mid)
        if fixed is not None:
            if scales and fixed not in scales:
                raise HarnessError(f"model {mid} is a x{fixed} model but --scale {','.join(map(str, scales))} was given")
            pairs.append((mid, fixed))
        else:
            pairs.extend((mid, s) for s in (scales or SCALES))
    return pairs


def models_at_scales(specs: Sequence[str], scales: Sequence[int], explicit: bool = False):
    """``(pairs, weights_of)`` for run-all's models: each spec ``ID[=WEIGHTS]`` with ``{scale}``
    filled in at every scale (``BSRN_s{scale}=DIR/net_g_BSRN_x{scale}.pth``). A scale-free id runs
    at every scale, a fixed-scale id at its own; it is an error only when ``explicit`` scales leave
    it out. ``weights_of`` maps (id, scale) to the spec's own weights (absent: the global weights).
    Only the first ``=`` splits (a weights path may hold more), and only after a known id: an ONNX
    file whose path holds an ``=`` is one id."""
    from ..models import id_scale
    from ..models.registry import family_name

    pairs: Pairs = []
    weights_of: Dict[Tuple[str, int], str] = {}
    matched = set()
    for s in scales:
        for spec in specs:
            text = spec.format(scale=s)
            mid, _, weights = text.partition("=")
            mid, weights = mid.strip(), weights.strip()
            if weights and not family_name(mid) and family_name(text.strip()):  # an '=' inside an ONNX path
                mid, weights = text.strip(), ""
            fixed = id_scale(mid)
            if fixed is not None and fixed != s:
                continue
            matched.add(spec)
            if (mid, s) not in pairs:
                pairs.append((mid, s))
            if weights:
                weights_of[(mid, s)] = weights
    for spec in specs:
        if spec not in matched and explicit:
            mid = spec.partition("=")[0].strip()
            raise HarnessError(f"model {mid} is a x{id_scale(mid)} model but --scale {','.join(map(str, scales))} "
                               f"was given; add {id_scale(mid)} to --scale or drop the model")
    return pairs, weights_of


def export_scales(onnx_dir) -> List[int]:
    """The scales an export folder holds ([] without one: the usual default)."""
    if not onnx_dir:
        return []
    from ..exported import open_folder

    return open_folder(onnx_dir).scales()


def sweep_pairs(models: Sequence[str] = (), pool: Optional[str] = None, scales: Sequence[int] = (),
                weights: str = "shipped", onnx_dir=None):
    """``(scales, pairs, weights_of)`` of a sweep (run-all, export): the bicubic baselines, ``models``
    and ``pool`` at ``scales``. Without a pool: default,methods (default alone with weights other
    than shipped); with an export folder, every model in it (pool ``exported``)."""
    explicit = bool(scales)
    scales = list(scales) or export_scales(onnx_dir) or [2, 3, 4]
    # the bicubic baselines are always measured: every figure is read against them
    model_ids = list(BASELINES) + [m for m in models if m not in BASELINES]
    pairs, weights_of = models_at_scales(model_ids, scales, explicit=explicit)
    pool = pool or ("exported" if onnx_dir else "default,methods" if weights == "shipped" else "default")
    if pool == "exported":
        if not onnx_dir:
            raise HarnessError("--pool exported means every model of an export folder: give --onnx-dir DIR")
        from ..exported import open_folder

        pairs.extend(p for p in open_folder(onnx_dir).pairs() if p[1] in scales and p not in pairs)
    elif pool != "none":
        from ..models.pools import pool_ids

        pairs.extend(p for p in model_scale_pairs(pool_ids(pool), []) if p[1] in scales and p not in pairs)
    return scales, pairs, weights_of


def calib_key(cfg) -> list:
    """The calibration folders in a run's configuration key, only for INT8 runs that name them
    (so every other run keeps the key it had)."""
    return [{"calib_data": cfg.calib_data}] if cfg.precision == "int8" and cfg.calib_data else []


def export_key(onnx_dir) -> list:
    """An export folder's manifest digest in a run's configuration key (a re-export is a new run);
    nothing without one, so every other run keeps the key it had."""
    if not onnx_dir:
        return []
    from ..exported import open_folder

    return [{"onnx_manifest": open_folder(onnx_dir).digest}]


def config_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def writable_folder(folder: Path, option: str, how: str = "") -> Path:
    """``folder`` created if needed and proven writable (a file written and removed), else a one-line
    error naming it and the fix (``how``: how to give another folder, default ``OPTION DIR``): a sweep
    must not find out after hours that it cannot write its results."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=str(folder), prefix=".write-check-"):
            pass
    except OSError as exc:
        raise HarnessError(f"{option} {folder}: cannot write there ({exc.strerror or type(exc).__name__}); give a "
                           f"writable folder with {how or option + ' DIR'} or fix its permissions") from None
    return folder


def calib_folders(folders) -> Optional[List[str]]:
    """INT8 calibration folders (each must exist), or None for the embedded images."""
    out = []
    for f in as_list(folders):
        if not Path(f).is_dir():
            raise HarnessError(f"--calib-data {f}: no such folder; give folders of training images "
                               f"(e.g. DIV2K/DIV2K_train_HR), comma-separated")
        out.append(str(Path(f).resolve()))
    return out or None


def timing_overrides(repeats=None, timeout=None, warmup=None, iterations=None, duration=None, threads=None,
                     ci_target=None, pipeline=None) -> Dict[str, Any]:
    """The timing controls (``--repeats``, ``--timeout``, and trtexec's ``--warmup``, ``--iterations``,
    ``--duration``, ``--threads``, with ``--ci-target`` and ``--pipeline``) as :class:`harness.runner.BenchConfig`
    overrides of the device profile; None leaves the profile's value. A bad value is one line."""
    def need(name, value, ok, what):
        if value is not None and (isinstance(value, bool) or not ok(value)):
            raise HarnessError(f"--{name} {value:g}: {what}" if isinstance(value, float) else f"--{name} {value}: {what}")

    need("repeats", repeats, lambda v: int(v) == v and v >= 1, "give at least 1")
    need("timeout", timeout, lambda v: v > 0, "give a positive number of seconds")
    need("warmup", warmup, lambda v: int(v) == v and v >= 0, "give 0 or more warm-up passes")
    need("iterations", iterations, lambda v: int(v) == v and v >= 1, "give at least 1 timed frame")
    need("duration", duration, lambda v: v > 0, "give a positive number of seconds")
    need("threads", threads, lambda v: int(v) == v and v >= 0, "give 0 (the library's choice) or more")
    need("ci-target", ci_target, lambda v: v >= 0, "give a percentage (0: no adaptive stop)")
    if pipeline not in (None, "model", "color"):
        raise HarnessError(f"--pipeline {pipeline}: give model (the model alone) or color (RGB frame -> RGB frame)")
    given = dict(repeats=repeats, timeout_s=timeout, warmup=warmup, iterations=iterations, max_time_s=duration,
                 threads=threads, ci_target_pct=ci_target, pipeline=None if pipeline == "model" else pipeline)
    return {k: v for k, v in given.items() if v is not None}


def timing_key(overrides: Dict[str, Any], rounds: int = 1) -> list:
    """The timing controls in a run's configuration key, only where given (so every other run keeps
    the key it had)."""
    controls = {k: v for k, v in overrides.items() if k not in ("repeats", "timeout_s")}
    return [{"timing": controls, "rounds": rounds}] if controls or rounds > 1 else []


def bench_config(device: str = "cpu", **overrides):
    """A device profile (name or path) as a :class:`harness.runner.BenchConfig`, with ``overrides``."""
    from ..devices import load_profile
    from ..runner import BenchConfig

    profile = load_profile(device)
    if "calib_data" in overrides:
        overrides["calib_data"] = calib_folders(overrides["calib_data"])
    return profile, BenchConfig.from_profile(profile, **overrides)


def sweep_timing(cfg, profile: Dict, timing: Dict[str, Any]):
    """A sweep's timing: the profile's ``sweep_ci_target_pct``, ``sweep_max_time_s`` and
    ``sweep_warmup_frames`` where it sets them and the command line did not give ``--ci-target`` /
    ``--duration`` / ``--warmup``."""
    changes = {}
    where = profile.get("path") or f"the {profile['name']} profile"
    for key, field_name, kind in (("sweep_ci_target_pct", "ci_target_pct", float),
                                  ("sweep_max_time_s", "max_time_s", float),
                                  ("sweep_warmup_frames", "warmup_frames", int)):
        value = profile.get(key)
        if value is None or field_name in timing or (field_name == "warmup_frames" and "warmup" in timing):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or kind(value) != value:
            raise HarnessError(f"{where}: {key} = {value!r} is not {'an integer' if kind is int else 'a number'} >= 0; "
                               f"fix the value")
        changes[field_name] = kind(value)
    return replace(cfg, **changes) if changes else cfg


def data_identity(image_sets, frame_list) -> Dict[str, Any]:
    """What a run was measured on, by content: each set's digest (names and image bytes) and the
    frames' (names and pixels). Part of a run's identity: a resume over changed data is a new run."""
    h = hashlib.sha256()
    for f in frame_list:
        h.update(f.name.encode())
        h.update(f.rgb.tobytes())
    return {"sets": {s.name: s.digest() for s in image_sets}, "frames": h.hexdigest()[:16]}


def resume_miss(store, setup: str, data_ids: Dict[str, Any]) -> str:
    """Why ``--resume`` found no run to continue in ``store``: the data changed since the newest run
    of the same configuration (naming what changed), or there is no such run."""
    for run in reversed(store.runs()):
        try:
            before = (json.loads(run.get("environment") or "{}") or {}).get("run_data") or {}
        except (TypeError, ValueError):
            continue
        if before.get("setup") != setup:
            continue
        changed = [name for name in sorted(set(before.get("sets", {})) | set(data_ids["sets"]))
                   if before.get("sets", {}).get(name) != data_ids["sets"].get(name)]
        if before.get("frames") != data_ids["frames"]:
            changed.append("the Full-HD frames")
        return f"the data changed since run {run['run_id']} ({', '.join(changed) or 'content'} differ)"
    return f"no earlier run of this configuration in {store.path}"


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (a module already loaded counts)."""
    import importlib.util
    import sys

    if sys.modules.get(name) is not None:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def backend_ready(cfg, device: str) -> None:
    """Fail before any work where the run's backend cannot run on this machine at all (its library is absent,
    or it has no way to the target): every row would fail for the same reason after the quality stage. Nothing
    is initialised here (no CUDA context in the parent of the measuring processes): a library that is installed
    but broken, or a GPU that does not answer, is still one failed row per model with the reason."""
    backend, target = cfg.backend, str(cfg.target)
    why = ""
    if backend == "tensorrt":
        from ..backends.tensorrt_backend import PYCUDA_MISSING, TENSORRT_MISSING

        why = TENSORRT_MISSING if not _installed("tensorrt") else PYCUDA_MISSING if not _installed("pycuda") else ""
    elif backend == "torch" and not _installed("torch"):
        why = "torch is not installed (./scripts/bootstrap.sh with HARNESS_TORCH=1 installs it)"
    elif backend == "torch" and target.startswith("cuda"):
        import torch

        if torch.version.cuda is None:
            why = (f"this PyTorch ({torch.__version__}) is a CPU build: install a CUDA build "
                   f"(HARNESS_MACHINE=nvidia ./scripts/bootstrap.sh)")
    elif backend == "onnxruntime" and target.split(":")[0] in ("cuda", "tensorrt"):
        from ..backends.onnxruntime_backend import PROVIDERS, provider_missing

        why = provider_missing(PROVIDERS[target.split(":")[0]])
    if why:
        others = [b for b in ("torch", "onnxruntime") if b != backend]
        raise HarnessError(f"--device {device}: the {backend} backend cannot run here: {why}; or measure with "
                           f"another backend ({' or '.join('--backend ' + b for b in others)})")
