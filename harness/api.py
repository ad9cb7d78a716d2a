"""The Python API: what the command line does, callable from a notebook.

::

    import harness
    q = harness.quality("eSR-TM_s2_K7_C4", scale=2, data="DATA", sets=["Set5"])   # DataFrame, one row per set
    r = harness.bench("eSR-TM_s2_K7_C4", device="cpu")                             # BenchResult
    run = harness.run_all(device="cpu", pool="none", models=["eSR-MAX_s{scale}_K3_C1"], scales=[2], out="results")
    run.table, run.front                                                           # DataFrames
    df = harness.load_results("results/harness.db")

Nothing here imports PyTorch or ONNX Runtime until a model needs it. Progress goes to stderr
(``progress=True``); the command line (:mod:`harness.cli`) only parses, calls these and prints.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .errors import HarnessError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BASELINES = ("bicubic-matlab", "bicubic-opencv", "Bicubic_s{scale}")
Pairs = List[Tuple[str, int]]


def _as_list(value) -> List:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _log(progress: bool) -> Callable[[str], None]:
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)


# --------------------------------------------------------------------------- models x scales

def model_scale_pairs(model_ids: Sequence[str], scales: Sequence[int]) -> Pairs:
    """(model id, scale) pairs: a fixed-scale id keeps its own scale (and must agree with
    ``scales`` if given); a scale-free id runs at each scale (default 2, 3, 4)."""
    from .models import SCALES, id_scale

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
    from .models import id_scale
    from .models.registry import family_name

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
    from .exported import open_folder

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
        from .exported import open_folder

        pairs.extend(p for p in open_folder(onnx_dir).pairs() if p[1] in scales and p not in pairs)
    elif pool != "none":
        from .models.pools import pool_ids

        pairs.extend(p for p in model_scale_pairs(pool_ids(pool), []) if p[1] in scales and p not in pairs)
    return scales, pairs, weights_of


def quality_backend(model) -> str:
    """The ``backend`` key of a model's quality rows: its exported fp32 graph on ONNX Runtime (an
    export folder), else "torch" (also for classical code: the key stores join on). What really
    computed a row is its ``runtime`` (:func:`harness.models.base.quality_runtime`)."""
    return "onnxruntime" if getattr(model, "export_dir", None) else "torch"


# --------------------------------------------------------------------------- configuration keys

def calib_key(cfg) -> list:
    """The calibration folders in a run's configuration key, only for INT8 runs that name them
    (so every other run keeps the key it had)."""
    return [{"calib_data": cfg.calib_data}] if cfg.precision == "int8" and cfg.calib_data else []


def export_key(onnx_dir) -> list:
    """An export folder's manifest digest in a run's configuration key (a re-export is a new run);
    nothing without one, so every other run keeps the key it had."""
    if not onnx_dir:
        return []
    from .exported import open_folder

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
    for f in _as_list(folders):
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
    from .devices import load_profile
    from .runner import BenchConfig

    profile = load_profile(device)
    if "calib_data" in overrides:
        overrides["calib_data"] = calib_folders(overrides["calib_data"])
    return profile, BenchConfig.from_profile(profile, **overrides)


# --------------------------------------------------------------------------- quality

def quality_results(model_ids: Sequence[str], scales: Sequence[int] = (), data=None, sets: Sequence[str] = (),
                    weights: str = "shipped", progress: bool = False, onnx_dir=None):
    """:class:`harness.protocol.QualityResult` of every model at every scale on every set."""
    from .datasets import data_root, resolve_sets
    from .exported import resolve_model
    from .protocol import QualityEvaluator

    pairs = model_scale_pairs(model_ids, scales)
    models = [resolve_model(mid, s, weights, onnx_dir=onnx_dir) for mid, s in pairs]  # bad ids fail first
    image_sets = resolve_sets(data_root(data), list(sets))
    evaluator = QualityEvaluator(show_progress=progress)
    return [evaluator.evaluate(model, image_set) for image_set in image_sets for model in models]


def quality(models: Union[str, Sequence[str]], scale=None, data=None, sets: Optional[Sequence[str]] = None,
            weights: str = "shipped", onnx_dir=None, per_image: bool = False, progress: bool = False):
    """PSNR/SSIM by the standard protocol: a DataFrame with one row per model x scale x set
    (``model, scale, set, psnr, ssim, images, weights``; with ``per_image`` the per-image scores)."""
    import pandas as pd

    results = quality_results(_as_list(models), [int(s) for s in _as_list(scale)], data, _as_list(sets), weights,
                              progress, onnx_dir)
    if per_image:
        return pd.DataFrame([dict(model=r.model, scale=r.scale, set=r.set, weights=r.weights, **img)
                             for r in results for img in r.per_image])
    return pd.DataFrame([r.record() for r in results], columns=["model", "scale", "set", "psnr", "ssim", "images",
                                                               "weights"])


# --------------------------------------------------------------------------- speed

@dataclass
class Latency:
    """Per-frame latency of a timed loop (ms), typed: the median with its 95 % interval (``median_ci_ms``,
    None below 6 samples) and half-width in %, p90/p99 (None where the sample does not support them),
    mean, min, CoV and count."""
    median_ms: float
    median_ci_ms: Optional[List[float]]
    ci_halfwidth_pct: float
    p90_ms: Optional[float]
    p99_ms: Optional[float]
    mean_ms: float
    min_ms: float
    cov: float
    n: int

    @classmethod
    def from_values(cls, seconds: Sequence[float]) -> "Latency":
        from .runner import latency_stats

        return cls.from_record(latency_stats(list(seconds)))

    @classmethod
    def from_record(cls, record: Dict) -> "Latency":
        nan = float("nan")
        return cls(median_ms=record.get("median_ms", nan), median_ci_ms=record.get("median_ms_ci"),
                   ci_halfwidth_pct=record.get("ci_halfwidth_pct", nan), p90_ms=record.get("p90_ms"),
                   p99_ms=record.get("p99_ms"), mean_ms=record.get("mean_ms", nan), min_ms=record.get("min_ms", nan),
                   cov=record.get("cov", nan), n=int(record.get("n") or 0))


@dataclass
class BenchResult:
    """One model's speed (and power) on one device: ``fhd_per_s``, ``latency``, ``record`` (all of it)."""
    model: str
    scale: int
    device: str
    backend: str
    precision: str
    status: str
    reason: str
    fhd_per_s: float
    fhd_per_s_ci: Optional[List[float]]
    latency: Latency
    mean_w: float
    mj_per_frame: float
    record: Dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, rec: Dict) -> "BenchResult":
        nan = float("nan")
        return cls(model=rec["model"], scale=int(rec["scale"]), device=rec.get("device", ""),
                   backend=rec.get("backend", ""), precision=rec.get("precision", ""), status=rec.get("status", "ok"),
                   reason=rec.get("reason", ""), fhd_per_s=rec.get("fhd_per_s", nan),
                   fhd_per_s_ci=rec.get("fhd_per_s_ci"), latency=Latency.from_record(rec), mean_w=rec.get("mean_w", nan),
                   mj_per_frame=rec.get("mj_per_frame", nan), record=rec)

    def to_dict(self) -> Dict:
        out = asdict(self)
        out.pop("record")
        return out


def run_bench(pairs: Pairs, cfg, store=None, run_id: Optional[str] = None, isolate: Union[bool, str] = True,
              progress: bool = False, weights_of=None, log: Optional[Callable[[str], None]] = None,
              resolved: Optional[Dict[Tuple[str, int], str]] = None, keep_failed: bool = False,
              rounds: int = 1, estimate: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """Measure each (model, scale) not yet in the run; every record is stored as soon as it exists
    (``store`` given). ``weights_of``: (model, scale) -> weights for pairs that do not use ``cfg.weights``;
    ``resolved``: (model, scale) -> the weights label of a model the caller has already built (it is
    not built again here: only the measuring child builds it). A failed row of the run is measured
    again unless ``keep_failed``. ``rounds`` > 1 times the models in interleaved rounds (A B C, A B C,
    ...; each round with its share of the time budget) and pools each model's rounds into one record
    (:func:`harness.runner.pool_rounds`), stored after its last round.

    ``isolate``: ``"worker"`` (or True) measures the models one after another in a worker process,
    replaced after a crash or hang and every :data:`WORKER_RECYCLE` models (TensorRT: a fresh process
    per model, after its engine build); ``"process"`` a fresh process per model; False in this
    process. Each record's ``phases_s`` says where its wall time went (``process``: start, imports
    and transfer). ``estimate`` gets a line with the time left, after the first models and then
    every few minutes."""
    from .exported import resolve_model
    from .progress import progress as bar_of
    from .runner import failure_record, measure, measure_isolated, measure_task, pool_rounds, with_status
    from .worker import Worker

    mode = "worker" if isolate is True else ("process" if isolate == "process" else ("worker" if isolate else "none"))
    if mode == "worker" and cfg.backend == "tensorrt":
        mode = "process"  # the engine build runs in its own child first (measure_isolated)
    done = store.done_keys(run_id, include_failed=keep_failed) if store is not None else set()
    todo = []
    for mid, s in pairs:
        own = (weights_of or {}).get((mid, s))
        one = replace(cfg, weights=own) if own else cfg
        weights = (resolved or {}).get((mid, s)) or resolve_model(mid, s, one.weights, onnx_dir=one.onnx_dir).weights
        if (one.device, one.backend, one.precision, mid, s, "speed", weights) not in done:
            todo.append((mid, s, one if rounds <= 1 else replace(one, max_time_s=one.max_time_s / rounds), weights))
    records: List[Dict] = []
    pending: Dict[Tuple[str, int], List[Dict]] = {}
    steps = [(r, item) for r in range(max(rounds, 1)) for item in todo]
    bar = bar_of(steps, total=len(steps), desc=f"bench {cfg.device}", disable=not progress)
    eta = Estimate(len(steps), "bench", estimate)
    worker = Worker(measure_task, what="measuring") if mode == "worker" else None
    try:
        for r, (mid, s, one, weights) in bar:
            runs = pending.setdefault((mid, s), [])
            if runs and runs[-1].get("status") == "failed":
                eta.step()
                continue  # a model that failed a round is not timed again
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{mid} x{s}" + (f" round {r + 1}/{rounds}" if rounds > 1 else ""))
            t0 = time.perf_counter()
            if worker is not None:
                if worker.calls >= WORKER_RECYCLE:
                    worker.close()  # a fresh process now and then: nothing builds up over a long sweep
                status, payload = worker.call({"model": mid, "scale": s, "cfg": one}, one.timeout_s)
                rec = payload if status == "ok" else failure_record(mid, s, one, str(payload))
            elif mode == "process":
                rec = measure_isolated(mid, s, one)
            else:
                try:
                    rec = with_status(measure(mid, s, one))
                except HarnessError as exc:
                    rec = failure_record(mid, s, one, str(exc))
            if isinstance(rec.get("phases_s"), dict):
                wall = time.perf_counter() - t0
                rec["phases_s"]["process"] = max(0.0, wall - sum(rec["phases_s"].values()))
            eta.step()
            runs.append(rec)
            if r + 1 < rounds and rec.get("status") != "failed":
                continue
            if rounds > 1:
                rec = pool_rounds(runs)
            rec["weights"] = weights
            if store is not None:
                store.add(run_id, "speed", rec)
            records.append(rec)
            if log is not None:  # a log file gets one line per model instead of a bar
                figure = rec.get("reason", "")
                if rec.get("status") != "failed":
                    ci = rec.get("fhd_per_s_ci")
                    figure = f"{rec['fhd_per_s']:.2f} FHD/s" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
                log(f"[{len(records)}/{len(todo)}] {mid} x{s}: {rec.get('status')} {figure}")
    finally:
        if worker is not None:
            worker.close()
    return records


WORKER_RECYCLE = 50  # models a bench worker measures before it is replaced by a fresh process


class Estimate:
    """The time a long stage has left, from its own pace so far: a line to ``say`` after the first
    :attr:`first` steps, then every :attr:`every_s` seconds (nothing when ``say`` is None)."""

    first = 3
    every_s = 300.0

    def __init__(self, total: int, what: str, say: Optional[Callable[[str], None]]):
        self.total, self.what, self.say = total, what, say
        self.done = 0
        self.start = time.monotonic()
        self.last: Optional[float] = None

    def step(self) -> None:
        self.done += 1
        if self.say is None or self.done >= self.total:
            return
        now = time.monotonic()
        if (self.last is None and self.done >= self.first) or (self.last is not None and now - self.last >= self.every_s):
            self.last = now
            pace = (now - self.start) / self.done
            self.say(f"{self.what}: {self.done}/{self.total} done, about {duration_text(pace * (self.total - self.done))} "
                     f"left ({pace:.1f} s each so far)")


def duration_text(seconds: float) -> str:
    """``95`` -> ``2 min``, ``5400`` -> ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def export_times(store, run_id: str, path: Union[str, Path]) -> Path:
    """Every raw per-frame time (ms) of a run's speed rows, as JSON: ``{"MODEL xSCALE": [ms, ...]}``
    (with the device, backend and precision in front where the run holds several)."""
    from .results.files import write_text_atomic

    out: Dict[str, List[float]] = {}
    rows = [r for r in store.rows("run_id = ? AND measurement = 'speed'", (run_id,)) if r["status"] != "failed"]
    several = len({(r["device"], r["backend"], r["precision"]) for r in rows}) > 1
    for r in rows:
        times = (json.loads(r["data"] or "{}") or {}).get("times_ms") or []
        key = f"{r['model']} x{r['scale']}"
        out[f"{r['device']}/{r['backend']}/{r['precision']} {key}" if several else key] = times
    return write_text_atomic(Path(path), json.dumps(out), elsewhere="give another --export-times FILE")


def bench(models: Union[str, Sequence[str]], device: str = "cpu", scale=None, frames=None, *, backend=None,
          precision=None, weights: str = "shipped", form: str = "auto", repeats=None, timeout=None, onnx_dir=None,
          calib_data=None, isolate: bool = True, progress: bool = False, warmup=None, iterations=None,
          duration=None, threads=None, ci_target=None, rounds: int = 1, pipeline: str = "model"):
    """Time models on the 14 Full-HD frames with a device profile: a :class:`BenchResult` (a list for
    several models or scales). Each model runs in its own process unless ``isolate=False``. The
    timing controls (``warmup`` passes, exactly ``iterations`` frames, a ``duration`` budget in s,
    ``threads``, ``ci_target`` %: see :func:`timing_overrides`) override the profile; ``rounds`` > 1
    interleaves the models' timing in rounds and pools them; ``pipeline="color"`` times the whole
    application path (LR RGB frame -> Y model + CbCr bicubic -> RGB frame)."""
    _, cfg = bench_config(device, backend=backend, precision=precision, weights=weights, form=form,
                          frames_dir=frames, onnx_dir=onnx_dir, calib_data=calib_data,
                          **timing_overrides(repeats, timeout, warmup, iterations, duration, threads, ci_target,
                                             pipeline))
    ids = _as_list(models)
    pairs = model_scale_pairs(ids, [int(s) for s in _as_list(scale)] or export_scales(onnx_dir))
    from .exported import resolve_model

    for mid, s in pairs:  # a bad id or missing weights fails before any measurement
        resolve_model(mid, s, cfg.weights, onnx_dir=onnx_dir)
    results = [BenchResult.from_record(r) for r in run_bench(pairs, cfg, isolate=isolate, progress=progress,
                                                             rounds=rounds)]
    return results[0] if len(results) == 1 and isinstance(models, str) and len(pairs) == 1 else results


# --------------------------------------------------------------------------- the main job

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


def prior_pace(store, cfg, exclude: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """Seconds per pair of the newest earlier run on this device, backend and precision that recorded
    where its time went: ``speed_s`` (median wall of a speed row), ``quality_s`` (median per set),
    ``run_id``; None when the store holds no such run."""
    import statistics

    runs = [r["run_id"] for r in store.runs() if r["device"] == cfg.device and r["run_id"] != exclude]
    for run_id in reversed(runs):
        rows = store.rows("run_id = ? AND backend IN (?, ?, ?) AND status != 'failed'",
                          (run_id, cfg.backend, "torch", "onnxruntime"))
        speed, quality = [], []
        for r in rows:
            data = json.loads(r["data"] or "{}")
            if r["measurement"] == "speed" and r["backend"] == cfg.backend and r["precision"] == cfg.precision:
                if isinstance(data.get("phases_s"), dict):
                    speed.append(sum(v for v in data["phases_s"].values() if isinstance(v, (int, float))))
            elif r["measurement"].startswith("quality:") and isinstance(data.get("seconds"), (int, float)):
                quality.append(float(data["seconds"]))
        if speed:
            return {"run_id": run_id, "speed_s": statistics.median(speed),
                    "quality_s": statistics.median(quality) if quality else 0.0}
    return None


# a rough model of a sweep pair's wall time from the model's speed: a fixed part plus this many Full-HD frame
# times (the form trial, the output check, warm-up, timing, quality), fitted on the full 1191-pair --pool all sweep
# on a 2-core x86-64 VM (scripts/profile-sweep.py --db: 0.53 s + 44.1 frame times, within 14 % per pair there at the
# median, 32 % at the 90th percentile)
SWEEP_FIXED_S = 0.5
SWEEP_FRAME_TIMES = 44
PAPER_PACE_DEVICES = {"rpi": ("speed_RPI", "Raspberry Pi 400")}  # device profile -> the paper's speeds of it


def paper_pace(store, device: str, pairs: Sequence[Tuple[str, int]]) -> Optional[Dict[str, Any]]:
    """A first estimate of a sweep's time on a device of the eSR paper (a Raspberry Pi) before any model has
    run here, from the paper's measured speeds of the pairs' models (the table imported into ``store``):
    ``SWEEP_FIXED_S + SWEEP_FRAME_TIMES / FHD/s`` per pair, the median of those for a model the table lacks.
    ``total_s``, ``known`` (pairs the table has), ``device``; None where the device is not one of the paper's,
    the store holds no table, or the table has none of the models."""
    import statistics

    if device not in PAPER_PACE_DEVICES:
        return None
    from .results.paper import frame_from_store, stored_rows

    if not stored_rows(store):
        return None
    column, name = PAPER_PACE_DEVICES[device]
    table = frame_from_store(store)
    speeds = {m: float(v) for m, v in zip(table["model"], table[column]) if v == v and float(v) > 0}
    per = [SWEEP_FIXED_S + SWEEP_FRAME_TIMES / speeds[m] for m, _ in pairs if m in speeds]
    if not per:
        return None
    return {"total_s": sum(per) + statistics.median(per) * (len(pairs) - len(per)), "known": len(per),
            "device": name}


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


def quality_workers(cores: Optional[int] = None) -> Tuple[int, int]:
    """(workers, threads each) for the quality stage: two workers where there are two cores or more (the
    stage times nothing, so it may use every core; one model's images are scored while the other's run),
    each with its share of the cores."""
    import os

    cores = cores or os.cpu_count() or 1
    workers = 2 if cores >= 2 else 1
    return workers, max(1, cores // workers)


def quality_stage(store, run_id: str, cfg, todo, image_sets, weights_of, data, keep_failed: bool = False,
                  progress: bool = False, log: Optional[Callable[[str], None]] = None,
                  estimate: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """Score each (pair, model) of ``todo`` on each set not yet in the run, in worker processes
    (:class:`harness.worker.Worker`; :func:`quality_workers` of them, each on its share of the cores): a
    model that raises, crashes, hangs (no image finished within ``cfg.timeout_s``) or runs out of memory is
    one failure row with its reason, and the next model runs in a fresh worker. Each row is stored as soon
    as it exists (by this thread: the workers' answers come back through threads that only wait)."""
    import queue
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from .models.base import quality_runtime
    from .progress import progress as bar_of
    from .protocol import quality_task
    from .worker import Worker

    done = store.done_keys(run_id, include_failed=keep_failed)
    tasks = []
    for image_set in image_sets:
        for (mid, s), model in todo:
            qbackend = quality_backend(model)
            if (cfg.device, qbackend, "fp32", model.id, model.scale, f"quality:{image_set.name}",
                    model.weights) not in done:
                tasks.append((image_set, mid, s, model, qbackend))
    records: List[Dict] = []
    bar = bar_of(None, total=len(tasks), desc="quality", disable=not progress)
    eta = Estimate(len(tasks), "quality", estimate)
    count, threads = quality_workers()
    count = max(1, min(count, len(tasks)))
    free: "queue.Queue[Worker]" = queue.Queue()
    pool = [Worker(quality_task, what="on one image (or preparing the model)") for _ in range(count)]
    for w in pool:
        free.put(w)

    def score(task: Dict) -> Tuple[str, Any, float]:
        worker = free.get()
        try:
            t0 = time.perf_counter()
            status, payload = worker.call(task, cfg.timeout_s)
            return status, payload, time.perf_counter() - t0
        finally:
            free.put(worker)

    def finish(item, outcome) -> None:
        image_set, mid, s, model, qbackend = item
        status, payload, seconds = outcome
        eta.step()
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{model.id} x{s} {image_set.name}")
        bar.update(1)
        if status == "ok":
            rec = dict(payload, status="ok", reason="", seconds=seconds)
        else:
            rec = {"model": model.id, "scale": model.scale, "set": image_set.name, "weights": model.weights,
                   "status": "failed", "reason": str(payload)}
            if log is not None:
                log(f"quality {model.id} x{s} {image_set.name}: failed: {payload}")
        rec.update(device=cfg.device, backend=qbackend, precision="fp32", family=model.family,
                   runtime=quality_runtime(model), colour_space=model.input_space)
        store.add(run_id, f"quality:{image_set.name}", rec)
        records.append(rec)

    executor = ThreadPoolExecutor(max_workers=count)
    finished_cleanly = False
    try:
        running: Dict[Any, Any] = {}
        pending = list(tasks)
        while pending or running:
            while pending and len(running) < count:  # no more in flight than workers: rows come back in order
                item = pending.pop(0)
                image_set, mid, s, _, _ = item
                task = dict(model=mid, scale=s, weights=weights_of.get((mid, s), cfg.weights), onnx_dir=cfg.onnx_dir,
                            data=str(data) if data else None, set=image_set.name, threads=threads)
                running[executor.submit(score, task)] = item
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in [f for f in running if f in finished]:
                finish(running.pop(fut), fut.result())
        finished_cleanly = True
    finally:
        for w in pool:  # after Ctrl-C (or any error here) a busy worker's child goes at once
            w.close() if finished_cleanly else w.discard()
        executor.shutdown(wait=finished_cleanly)
        if hasattr(bar, "close"):
            bar.close()
    return records


@dataclass
class RunResult:
    """What :func:`run_all` made: the run id, the joined table and the front(s), and its files."""
    run_id: str
    resumed: bool
    table: "pd.DataFrame"    # harness.results.table
    front: "pd.DataFrame"
    db: Path
    csv: Path
    summary: Path
    report: Path
    figures: List[Path]
    emulated: Optional[str] = None
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return int((self.table["status"] != "ok").sum()) if len(self.table) else 0


SUMMARY_COLUMNS = ("model", "scale", "fhd_per_s", "median_ms", "mj_per_frame", "form", "status", "reason")


def summary_rows(table) -> List[Dict]:
    """One row per (model, scale) of a run's table: PSNR per set beside speed and energy."""
    import math

    rows = []
    for rec in table.sort_values(["scale", "model"]).to_dict("records"):
        row = {k: rec.get(k) for k in SUMMARY_COLUMNS}
        row.update({k: v for k, v in rec.items() if k.startswith("psnr:")})
        for k, v in list(row.items()):
            if isinstance(v, float) and math.isnan(v):
                row[k] = None
        if rec.get("emulated"):
            row["emulated"] = rec["emulated"]
        rows.append(row)
    return rows


def run_all(device: str = "cpu", pool: Optional[str] = None, models: Sequence[str] = (), scales=(),
            weights: str = "shipped", data=None, sets: Optional[Sequence[str]] = None, frames=None,
            out: Union[str, Path] = PROJECT_ROOT / "results", plots: Union[str, Path] = PROJECT_ROOT / "plots",
            resume: bool = False, repeats=None, timeout=None, backend=None, precision=None, calib_data=None,
            onnx_dir=None, progress: bool = False, log: Optional[Callable[[str], None]] = None,
            command: str = "", keep_failed: bool = False, warmup=None, iterations=None, duration=None,
            threads=None, ci_target=None, rounds: int = 1, export_times_to: Optional[Union[str, Path]] = None,
            pipeline: str = "model", isolation: str = "worker") -> RunResult:
    """The main job: quality of every model on every set found (else the embedded set), speed and
    power on the 14 Full-HD frames with the device profile, all in one results store; then the
    joined table, CSV, summary, figures and report. ``log`` gets one line per step (default: stderr
    when ``progress``, else nothing).

    Model code runs in child processes in both stages, so a model that raises, crashes, hangs
    (``timeout``) or runs out of memory is one failure row and the sweep goes on. ``resume``
    continues the newest run of the same configuration and data, measuring what it lacks and
    again what failed (unless ``keep_failed``). The timing controls and ``rounds`` are :func:`bench`'s;
    ``export_times_to`` writes every raw time of the run as JSON (:func:`export_times`). ``isolation``:
    ``"worker"`` (one process measures the models one after another, replaced after a fault) or
    ``"process"`` (a fresh process per model). A sweep stops timing a model at the profile's
    ``sweep_ci_target_pct`` / ``sweep_max_time_s`` (where set and not overridden by ``ci_target`` /
    ``duration``): looser than a single ``bench``, and recorded with each row."""
    from .datasets import data_root, resolve_sets
    from .environment import capture, not_the_device
    from .exported import resolve_model
    from .frames import FHD_HEIGHT, FHD_WIDTH, load_frames
    from .results.files import write_text_atomic
    from .results.plots import draw_all
    from .results.report import write_report
    from .results.store import ResultStore
    from .results.table import front as front_of
    from .results.table import load_table, to_csv
    from .results.visual import draw_visuals
    from .weights import cache_dir

    log = log or _log(progress)
    timing = timing_overrides(repeats, timeout, warmup, iterations, duration, threads, ci_target, pipeline)
    if int(rounds) != rounds or rounds < 1:
        raise HarnessError(f"--rounds {rounds}: give at least 1")
    if isolation not in ("worker", "process"):
        raise HarnessError(f"isolation {isolation!r}: give 'worker' or 'process'")
    profile, cfg = bench_config(device, backend=backend, precision=precision, weights=weights, frames_dir=frames,
                                onnx_dir=onnx_dir, calib_data=calib_data, **timing)
    cfg = sweep_timing(cfg, profile, timing)
    scale_list, pairs, weights_of = sweep_pairs(_as_list(models), pool, [int(s) for s in _as_list(scales)],
                                                cfg.weights, onnx_dir=onnx_dir)
    out_dir = Path(out)
    for folder, option in ((out_dir, "--out"), (Path(plots), "--plots")):  # found now, not after the sweep
        writable_folder(folder, option)
    writable_folder(cache_dir(), "the cache folder", "HARNESS_CACHE=DIR")  # LR frames, ONNX files, engines
    # bad ids/weights fail before any work
    built = [resolve_model(mid, s, weights_of.get((mid, s), cfg.weights), onnx_dir=onnx_dir) for mid, s in pairs]
    image_sets = resolve_sets(data_root(data), _as_list(sets))
    frame_list = load_frames(frames)
    store = ResultStore(out_dir / "harness.db")
    try:
        setup = config_key("run-all", cfg.device, cfg.backend, cfg.precision, cfg.weights, frames,
                           [s.name for s in image_sets], pairs, *calib_key(cfg),
                           *([sorted(f"{m}_x{s}={w}" for (m, s), w in weights_of.items())] if weights_of else []),
                           *export_key(onnx_dir), *timing_key(timing, rounds))
        data_ids = data_identity(image_sets, frame_list)  # the run is also the images it was scored on
        key = config_key(setup, data_ids)
        environment = capture()
        environment["run_data"] = dict(data_ids, setup=setup)
        mismatch = not_the_device(profile, environment)
        if mismatch:  # recorded with the run, and said first
            environment["not_the_device"] = mismatch
            log(f"warning: {mismatch}")
        run_id, resumed = store.start_run(cfg.device, key, command=command or " ".join(sys.argv), profile=profile,
                                          environment=environment, resume=resume)
        if resume and not resumed:
            log(f"warning: --resume: {resume_miss(store, setup, data_ids)}; starting a new run")
        started = time.time()
        emulated = str(environment["emulated"]) if environment.get("emulated") else None
        if emulated:
            log(f"EMULATED ({emulated}): this run's timings are meaningless; it checks that the software works")
        log(f"run {run_id}{' (resumed)' if resumed else ''}: device {profile['name']} ({profile.get('description', '')}); "
            f"sets: {', '.join(f'{s.name} ({len(s)})' for s in image_sets)}; {len(built)} models at x"
            f"{','.join(map(str, scale_list))}; {len(frame_list)} Full-HD frames ({frame_list[0].source}, "
            f"{FHD_WIDTH}x{FHD_HEIGHT})")

        # quality: device-independent (PyTorch fp32, the exported fp32 graph on ONNX Runtime's CPU, or
        # classical code), stored once per run; model code runs in a worker process
        pace = prior_pace(store, cfg, exclude=run_id)
        if pace is not None:
            per_pair = pace["speed_s"] * rounds + pace["quality_s"] * len(image_sets)
            log(f"{len(pairs)} model/scale pairs: about {duration_text(per_pair * len(pairs))} on this device (from run "
                f"{pace['run_id']}: {per_pair:.1f} s per pair); the estimate is updated as the sweep goes")
        elif (paper := paper_pace(store, profile["name"], pairs)) is not None:
            log(f"{len(pairs)} model/scale pairs: roughly {duration_text(paper['total_s'])} on this device, from the "
                f"eSR paper's {paper['device']} speeds of {paper['known']} of the models (a rough model of a pair's "
                f"time); the estimate is updated from this sweep's own pace after the first models")
        else:
            log(f"{len(pairs)} model/scale pairs; a time estimate follows after the first models")
        quality_stage(store, run_id, cfg, list(zip(pairs, built)), image_sets, weights_of, data, keep_failed,
                      progress=progress and sys.stderr.isatty(), log=log, estimate=log)

        # speed and power: the models one after another in a worker process (or each in its own)
        run_bench(pairs, cfg, store, run_id, isolate=isolation, progress=progress and sys.stderr.isatty(),
                  weights_of=weights_of, log=None if sys.stderr.isatty() and progress else log,
                  resolved={pair: model.weights for pair, model in zip(pairs, built)}, keep_failed=keep_failed,
                  rounds=rounds, estimate=log)
        if export_times_to:
            log(f"raw times: {export_times(store, run_id, export_times_to)}")

        table = load_table(store, run_id)
        csv_path = to_csv(table, out_dir / f"results_{cfg.device}.csv")
        summary_path = write_text_atomic(out_dir / f"summary_{cfg.device}.json",
                                         json.dumps(summary_rows(table), indent=2, default=str),
                                         elsewhere="give another --out DIR")
        figures = draw_all(store, plots, run_id=run_id)
        figures += draw_visuals(store, image_sets[0], plots, run_id=run_id, weights=cfg.weights, onnx_dir=onnx_dir,
                                timeout_s=cfg.timeout_s, log=log)  # model code in a worker process
        html, _ = write_report(store, out_dir, run_id=run_id, plots_dir=plots, figures=figures)  # drawn once
    finally:
        store.close()  # a WAL checkpoint: harness.db alone holds every row (it may be copied elsewhere)
    return RunResult(run_id=run_id, resumed=resumed, table=table, front=front_of(table), db=out_dir / "harness.db",
                     csv=csv_path, summary=summary_path, report=html, figures=figures, emulated=emulated,
                     seconds=time.time() - started)


def compare(model: str, device: str = "cpu", scale=None, weights: Optional[str] = None, data=None,
            sets: Optional[Sequence[str]] = None, db: Union[str, Path] = PROJECT_ROOT / "results" / "harness.db",
            plots: Union[str, Path] = PROJECT_ROOT / "plots", *, backend=None, precision=None, repeats=None,
            timeout=None, frames=None, calib_data=None, progress: bool = False, command: str = "") -> Dict[str, Any]:
    """Measure a new model like the pool (quality and speed into the store ``db``, with the same
    backend's bicubic if the store lacks it), redraw the figures, and say whether it beats bicubic
    and where it sits against the pool: :func:`harness.compare.verdict` plus ``line`` (one sentence)
    and ``only_bicubic`` (the store held nothing else to compare with on this device and scale). Where the
    store holds the eSR paper's table, ``paper`` places the model on the paper's AGX and RPi figures as
    predicted (:func:`paper_predictions`)."""
    from .compare import verdict, verdict_line
    from .datasets import data_root, resolve_sets
    from .environment import capture
    from .models import resolve
    from .models.base import quality_runtime
    from .protocol import QualityEvaluator
    from .results.plots import collect, draw_all
    from .results.store import ResultStore

    weights = weights or ("init" if ":" in model else "shipped")
    profile, cfg = bench_config(device, backend=backend, precision=precision, weights=weights, repeats=repeats,
                                timeout_s=timeout, frames_dir=frames, calib_data=calib_data)
    scales = [int(s) for s in _as_list(scale)]
    built = resolve(model, scales[0] if scales else None, weights)
    baseline = resolve(f"Bicubic_s{built.scale}")
    image_sets = resolve_sets(data_root(data), _as_list(sets))
    store = ResultStore(db)
    try:
        run_id, _ = store.start_run(cfg.device, config_key("compare", model, weights, cfg.device, cfg.backend,
                                                           *calib_key(cfg)),
                                    command=command or " ".join(sys.argv), profile=profile, environment=capture())
        evaluator = QualityEvaluator(show_progress=progress and sys.stderr.isatty())
        here = (cfg.device, cfg.backend, cfg.precision)
        known = {(p["model"], p["scale"]) for p in collect(store) if (p["device"], p["backend"], p["precision"]) == here}
        todo = [built] + ([] if (baseline.id, baseline.scale) in known else [baseline])
        for m in todo:
            for image_set in image_sets:
                rec = evaluator.evaluate(m, image_set).record()
                rec.update(device=cfg.device, backend=quality_backend(m), precision="fp32", family=m.family, status="ok",
                           runtime=quality_runtime(m), colour_space=m.input_space)
                store.add(run_id, f"quality:{image_set.name}", rec)
        pairs = [(model if m is built else m.id, m.scale) for m in todo]
        run_bench(pairs, cfg, store, run_id, progress=progress and sys.stderr.isatty(),
                  resolved={pair: m.weights for pair, m in zip(pairs, todo)})
        points = collect(store)
        mine = next((p for p in points if p["model"] == built.id and p["scale"] == built.scale
                     and (p["device"], p["backend"], p["precision"]) == here), None)
        if mine is None:
            why = next((f"{r['measurement']}: {r['reason']}" for r in store.rows("run_id = ?", (run_id,))
                        if r["status"] != "ok"), "no speed or quality row")
            raise HarnessError(f"{model} could not be measured on {cfg.device}/{cfg.backend} ({why})")
        result = verdict(mine, points)
        draw_all(store, plots)
        paper = paper_predictions(db, built, built.scale, mine.get("psnr") or {}, plots)
        return dict(result, line=verdict_line(result), only_bicubic=result["compared_with"] <= 1, run_id=run_id,
                    device=cfg.device, scale=built.scale, paper=paper)
    finally:
        store.close()


def load_results(path: Union[str, Path], run_id: Optional[str] = None):
    """The joined table (quality and speed, one row per model x scale x device x backend x precision x
    weights) of any results store (``harness.db``)."""
    from .results.table import load_results as load

    return load(path, run_id)


# --------------------------------------------------------------------------- the eSR paper's own table

PAPER_SET = "Set14"  # the set the paper figures plot by default (the set the shipped weights are accepted on)


def _paper_db(out: Union[str, Path]) -> Path:
    """The results store of an ``--out`` folder (``DIR/harness.db``), or the ``.db`` file given."""
    out = Path(out)
    return out if out.suffix == ".db" else out / "harness.db"


def import_paper(path: Union[str, Path], out: Union[str, Path] = PROJECT_ROOT / "results"):
    """Read the eSR authors' ``data/tests.pkl`` safely (the file, or the repository's folder or archive) and
    keep it in the results store ``out/harness.db`` as devices ``paper-agx``, ``paper-maxq``, ``paper-rpi``,
    replacing an earlier import. Returns a :class:`harness.results.paper.PaperImport` (``summary()``; a
    ``warning`` when the file is not the published one)."""
    from .results.paper import import_table
    from .results.store import ResultStore

    with ResultStore(_paper_db(out)) as store:
        return import_table(path, store)


def _paper_points(out: Union[str, Path]):
    from .results.paper import IMPORT_FIX, is_paper_device
    from .results.plots import collect
    from .results.store import ResultStore

    db = _paper_db(out)
    if not db.is_file():
        raise HarnessError(f"{db}: no results database, so no eSR paper table; import it with {IMPORT_FIX}")
    with ResultStore(db, readonly=True) as store:
        points = collect(store)
    if not any(is_paper_device(p["device"]) for p in points):
        raise HarnessError(f"{db}: holds no eSR paper table; import it with {IMPORT_FIX}")
    return points


def paper_overlay(out: Union[str, Path] = PROJECT_ROOT / "results", device: Optional[str] = None, scales=(),
                  set_name: str = PAPER_SET) -> List[Dict[str, Any]]:
    """The harness's own measurements of the paper's models (weights official) beside the paper's: one dict per
    own device/backend/precision group and scale (:func:`harness.results.overlay.compare`: ``psnr_diffs``,
    ``mean_diff``, ``rho``, ``paper_front``, ``my_front``, ``paper_on_mine``, ``mine_on_paper``) with its
    ``line``. ``device``: the paper device compared (``agx``, ``maxq``, ``rpi``; default: the one matching each
    group). Empty when the store holds no own measurement of those models."""
    from .results.overlay import overlay
    from .results.paper_plots import set_key

    return overlay(_paper_points(out), device, [int(s) for s in _as_list(scales)], set_key(set_name))


def paper_figures(out: Union[str, Path] = PROJECT_ROOT / "results", device: Optional[str] = None, scales=(),
                  set_name: str = PAPER_SET, plots: Union[str, Path] = PROJECT_ROOT / "plots",
                  predicted: Optional[List[Dict[str, Any]]] = None, overlay: bool = True,
                  progress: bool = False) -> Dict[str, Any]:
    """The paper's trade-off figures (PSNR on ``set_name`` against FHD/s, and power against FHD/s) from the
    authors' table in ``out/harness.db``, per paper device (``device``, default all three) and scale (default
    2, 3, 4), written into ``plots`` as ``paper_<device>_x<scale>_<set>`` and ``paper_power_<device>_x<scale>``
    (PNG and SVG); with ``overlay``, the harness's own measurements of the same models on top and the
    statistics of :func:`paper_overlay`. ``predicted``: extra points (``model``, ``scale``, ``psnr``: set ->
    dB, ``fhd_per_s``, ``fhd_per_s_low``, ``fhd_per_s_high``) drawn hollow and labelled ``(predicted)``.
    Returns ``files`` and ``verdicts`` (the :func:`paper_overlay` dicts)."""
    from .results.overlay import overlay as compare_all
    from .results.paper import device_key
    from .results.paper_plots import draw_paper, set_key

    key = set_key(set_name)
    points = _paper_points(out)
    scale_list = [int(s) for s in _as_list(scales)]
    devices = [device_key(device)] if device else []
    writable_folder(Path(plots), "--plots")
    files = draw_paper(points, plots, devices, scale_list, key, overlay=overlay, predicted=predicted,
                       compare_with=device, log=_log(progress))
    verdicts = compare_all(points, device, scale_list, key) if overlay else []
    return {"files": files, "verdicts": verdicts}


PREDICTED_ON = ("agx", "rpi")  # the paper devices a new model is placed on by compare (the edge devices)


def paper_predictions(db: Union[str, Path], model, scale: int, psnr: Dict[str, float],
                      plots: Union[str, Path] = PROJECT_ROOT / "plots", devices: Sequence[str] = PREDICTED_ON,
                      set_name: str = PAPER_SET) -> Dict[str, Any]:
    """A model placed on the eSR paper's figures of ``devices`` as **predicted**: its FHD/s there from
    :mod:`harness.predict` (fitted on the paper's table in ``db``), with the 90 % band and the reasons it is
    unlike the fitted pool, drawn on the paper's figure at ``scale`` with the quality measured here
    (``psnr``: set -> dB, this harness's protocol). Returns ``{device: {prediction..., files}}``, or
    ``{"reason": ...}`` when nothing can be predicted (no table in the store, no PyTorch module to
    compute features from)."""
    from .predict import fit
    from .predict.features import module_features
    from .predict.model import paper_family
    from .results.paper import frame_from_store, stored_rows
    from .results.store import ResultStore

    db = _paper_db(db)
    if not db.is_file():
        return {"reason": f"{db}: no results store"}
    with ResultStore(db, readonly=True) as store:
        if not stored_rows(store):
            return {"reason": f"no eSR paper table in {db} (python -m harness zoo import-esr PATH adds it)"}
        table = frame_from_store(store)
    module = getattr(model, "module", None)
    if module is None:
        return {"reason": f"{model.id} has no PyTorch module to compute the predictor's features from"}
    feats = module_features(module, scale)
    out: Dict[str, Any] = {}
    for device in devices:
        try:  # a model of a family in the table is predicted with that family's fit, any other from its features
            p = fit(table, device).predict(feats, paper_family(model.id), model.id)
        except HarnessError as exc:
            out[device] = {"reason": str(exc)}
            continue
        point = {"model": model.id, "scale": scale, "psnr": dict(psnr), "fhd_per_s": p.fhd_per_s,
                 "fhd_per_s_low": p.low, "fhd_per_s_high": p.high}
        files = paper_figures(db, device=device, scales=[scale], set_name=set_name, plots=plots, predicted=[point],
                              overlay=False)["files"]
        out[device] = dict(p.to_dict(), label=p.label, files=[str(f) for f in files])
    return out
