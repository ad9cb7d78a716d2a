"""The Python API: what the command line does, callable from a notebook.

::

    import harness
    q = harness.quality("eSR-TM_s2_K7_C4", scale=2, data="DATA", sets=["Set5"])   # DataFrame, one row per set
    r = harness.bench("eSR-TM_s2_K7_C4", device="cpu")                             # BenchResult
    run = harness.run_all(device="cpu", pool="none", models=["eSR-MAX_s{scale}_K3_C1"], scales=[2], out="results")
    run.table, run.front                                                           # DataFrames
    df = harness.load_results("results/harness.db")

What a run is before it runs (its pairs, configuration key and timing controls) is in
:mod:`harness.api.plan`; the sweep's quality and speed stages and their time estimates in
:mod:`harness.api.stages`; this module re-exports what the command line calls of them.

Nothing here imports PyTorch or ONNX Runtime until a model needs it. Progress goes to stderr
(``progress=True``); the command line (:mod:`harness.cli`) only parses, calls these and prints.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from ..errors import HarnessError
from .plan import (
    BASELINES,
    Pairs,
    as_list,
    backend_ready,
    bench_config,
    calib_folders,
    calib_key,
    config_key,
    data_identity,
    export_key,
    export_scales,
    model_scale_pairs,
    models_at_scales,
    resume_miss,
    sweep_pairs,
    sweep_timing,
    timing_key,
    timing_overrides,
    writable_folder,
)
from .stages import (
    PAPER_PACE_DEVICES,
    SWEEP_FIXED_S,
    SWEEP_FRAME_TIMES,
    WORKER_RECYCLE,
    Estimate,
    duration_text,
    export_times,
    paper_pace,
    prior_pace,
    quality_backend,
    quality_stage,
    quality_workers,
    run_bench,
)

# the API proper, then the stage helpers the command line and scripts call (each defined in .plan or .stages)
__all__ = ["BenchResult", "Latency", "RunResult", "bench", "compare", "import_paper", "load_results", "paper_figures",
           "paper_overlay", "paper_predictions", "plots_beside", "quality", "quality_results", "run_all", "summary_rows",
           "BASELINES", "Pairs", "as_list", "bench_config", "calib_folders", "calib_key", "config_key", "data_identity",
           "export_key", "export_scales", "model_scale_pairs", "models_at_scales", "resume_miss", "sweep_pairs",
           "sweep_timing", "timing_key", "timing_overrides", "writable_folder",
           "PAPER_PACE_DEVICES", "SWEEP_FIXED_S", "SWEEP_FRAME_TIMES", "WORKER_RECYCLE", "Estimate", "duration_text",
           "export_times", "paper_pace", "prior_pace", "quality_backend", "quality_stage", "quality_workers", "run_bench"]

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _log(progress: bool) -> Callable[[str], None]:
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)


def plots_beside(results: Union[str, Path], plots: Union[str, Path, None] = None) -> Path:
    """The figures folder: ``plots`` where given, else a ``plots`` folder beside the results folder
    ``results`` (the checkout's ``plots/`` beside its ``results/``; ``run/plots`` beside ``run/results``),
    so figures go where their results go, never into the checkout behind a caller's back."""
    return Path(plots) if plots is not None else Path(results).parent / "plots"


# --------------------------------------------------------------------------- quality

def quality_results(model_ids: Sequence[str], scales: Sequence[int] = (), data=None, sets: Sequence[str] = (),
                    weights: str = "shipped", progress: bool = False, onnx_dir=None):
    """:class:`harness.protocol.QualityResult` of every model at every scale on every set."""
    from ..datasets import data_root, resolve_sets
    from ..exported import resolve_model
    from ..protocol import QualityEvaluator

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

    results = quality_results(as_list(models), [int(s) for s in as_list(scale)], data, as_list(sets), weights,
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
        from ..runner import latency_stats

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
    backend_ready(cfg, device)
    ids = as_list(models)
    pairs = model_scale_pairs(ids, [int(s) for s in as_list(scale)] or export_scales(onnx_dir))
    from ..exported import resolve_model

    for mid, s in pairs:  # a bad id or missing weights fails before any measurement
        resolve_model(mid, s, cfg.weights, onnx_dir=onnx_dir)
    results = [BenchResult.from_record(r) for r in run_bench(pairs, cfg, isolate=isolate, progress=progress,
                                                             rounds=rounds)]
    return results[0] if len(results) == 1 and isinstance(models, str) and len(pairs) == 1 else results


# --------------------------------------------------------------------------- the main job


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
            out: Union[str, Path] = PROJECT_ROOT / "results", plots: Union[str, Path, None] = None,
            resume: bool = False, repeats=None, timeout=None, backend=None, precision=None, calib_data=None,
            onnx_dir=None, progress: bool = False, log: Optional[Callable[[str], None]] = None,
            command: str = "", keep_failed: bool = False, warmup=None, iterations=None, duration=None,
            threads=None, ci_target=None, rounds: int = 1, export_times_to: Optional[Union[str, Path]] = None,
            pipeline: str = "model", isolation: str = "worker") -> RunResult:
    """The main job: quality of every model on every set found (else the embedded set), speed and
    power on the 14 Full-HD frames with the device profile, all in one results store; then the
    joined table, CSV, summary, figures and report: the store, CSV, summary and report in ``out``, the
    figures in ``plots`` (default: a ``plots`` folder beside ``out``, :func:`plots_beside`). ``log`` gets
    one line per step (default: stderr when ``progress``, else nothing).

    Model code runs in child processes in both stages, so a model that raises, crashes, hangs
    (``timeout``) or runs out of memory is one failure row and the sweep goes on. ``resume``
    continues the newest run of the same configuration and data, measuring what it lacks and
    again what failed (unless ``keep_failed``). The timing controls and ``rounds`` are :func:`bench`'s;
    ``export_times_to`` writes every raw time of the run as JSON (:func:`export_times`). ``isolation``:
    ``"worker"`` (one process measures the models one after another, replaced after a fault) or
    ``"process"`` (a fresh process per model). A sweep stops timing a model at the profile's
    ``sweep_ci_target_pct`` / ``sweep_max_time_s`` (where set and not overridden by ``ci_target`` /
    ``duration``): looser than a single ``bench``, and recorded with each row."""
    from ..datasets import data_root, resolve_sets
    from ..environment import capture, not_the_device
    from ..exported import resolve_model
    from ..frames import FHD_HEIGHT, FHD_WIDTH, load_frames
    from ..results.files import write_text_atomic
    from ..results.plots import draw_all
    from ..results.report import write_report
    from ..results.store import ResultStore
    from ..results.table import front as front_of
    from ..results.table import load_table, to_csv
    from ..results.visual import draw_visuals
    from ..weights import cache_dir

    log = log or _log(progress)
    timing = timing_overrides(repeats, timeout, warmup, iterations, duration, threads, ci_target, pipeline)
    if int(rounds) != rounds or rounds < 1:
        raise HarnessError(f"--rounds {rounds}: give at least 1")
    if isolation not in ("worker", "process"):
        raise HarnessError(f"isolation {isolation!r}: give 'worker' or 'process'")
    profile, cfg = bench_config(device, backend=backend, precision=precision, weights=weights, frames_dir=frames,
                                onnx_dir=onnx_dir, calib_data=calib_data, **timing)
    cfg = sweep_timing(cfg, profile, timing)
    backend_ready(cfg, device)
    scale_list, pairs, weights_of = sweep_pairs(as_list(models), pool, [int(s) for s in as_list(scales)],
                                                cfg.weights, onnx_dir=onnx_dir)
    out_dir = Path(out)
    plots = plots_beside(out_dir, plots)
    for folder, option in ((out_dir, "--out"), (plots, "--plots")):  # found now, not after the sweep
        writable_folder(folder, option)
    writable_folder(cache_dir(), "the cache folder", "HARNESS_CACHE=DIR")  # LR frames, ONNX files, engines
    # bad ids/weights fail before any work
    built = [resolve_model(mid, s, weights_of.get((mid, s), cfg.weights), onnx_dir=onnx_dir) for mid, s in pairs]
    image_sets = resolve_sets(data_root(data), as_list(sets))
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
            plots: Union[str, Path, None] = None, *, backend=None, precision=None, repeats=None,
            timeout=None, frames=None, calib_data=None, progress: bool = False, command: str = "") -> Dict[str, Any]:
    """Measure a new model like the pool (quality and speed into the store ``db``, with the same
    backend's bicubic if the store lacks it), redraw the figures, and say whether it beats bicubic
    and where it sits against the pool: :func:`harness.compare.verdict` plus ``line`` (one sentence)
    and ``only_bicubic`` (the store held nothing else to compare with on this device and scale). Where the
    store holds the eSR paper's table, ``paper`` places the model on the paper's AGX and RPi figures as
    predicted (:func:`paper_predictions`)."""
    from ..compare import verdict, verdict_line
    from ..datasets import data_root, resolve_sets
    from ..environment import capture
    from ..models import resolve
    from ..models.base import quality_runtime
    from ..protocol import QualityEvaluator
    from ..results.plots import collect, draw_all
    from ..results.store import ResultStore

    weights = weights or ("init" if ":" in model else "shipped")
    plots = plots_beside(Path(db).parent, plots)
    profile, cfg = bench_config(device, backend=backend, precision=precision, weights=weights, repeats=repeats,
                                timeout_s=timeout, frames_dir=frames, calib_data=calib_data)
    backend_ready(cfg, device)
    scales = [int(s) for s in as_list(scale)]
    built = resolve(model, scales[0] if scales else None, weights)
    baseline = resolve(f"Bicubic_s{built.scale}")
    image_sets = resolve_sets(data_root(data), as_list(sets))
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
    from ..results.table import load_results as load

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
    from ..results.paper import import_table
    from ..results.store import ResultStore

    with ResultStore(_paper_db(out)) as store:
        return import_table(path, store)


def _paper_points(out: Union[str, Path]):
    from ..results.paper import IMPORT_FIX, is_paper_device
    from ..results.plots import collect
    from ..results.store import ResultStore

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
    from ..results.overlay import overlay
    from ..results.paper_plots import set_key

    return overlay(_paper_points(out), device, [int(s) for s in as_list(scales)], set_key(set_name))


def paper_figures(out: Union[str, Path] = PROJECT_ROOT / "results", device: Optional[str] = None, scales=(),
                  set_name: str = PAPER_SET, plots: Union[str, Path, None] = None,
                  predicted: Optional[List[Dict[str, Any]]] = None, overlay: bool = True,
                  progress: bool = False) -> Dict[str, Any]:
    """The paper's trade-off figures (PSNR on ``set_name`` against FHD/s, and power against FHD/s) from the
    authors' table in ``out/harness.db``, per paper device (``device``, default all three) and scale (default 2,
    3, 4), written into ``plots`` (default: beside ``out``) as ``paper_<device>_x<scale>_<set>`` and
    ``paper_power_<device>_x<scale>`` (PNG and SVG); with ``overlay``, the harness's own measurements of the
    same models on top and the statistics of :func:`paper_overlay`. ``predicted``: extra points (``model``,
    ``scale``, ``psnr``: set -> dB, ``fhd_per_s``, ``fhd_per_s_low``, ``fhd_per_s_high``) drawn hollow and
    labelled ``(predicted)``. Returns ``files`` and ``verdicts`` (the :func:`paper_overlay` dicts)."""
    from ..results.overlay import overlay as compare_all
    from ..results.paper import device_key
    from ..results.paper_plots import draw_paper, set_key

    key = set_key(set_name)
    points = _paper_points(out)
    scale_list = [int(s) for s in as_list(scales)]
    devices = [device_key(device)] if device else []
    plots = writable_folder(plots_beside(_paper_db(out).parent, plots), "--plots")
    files = draw_paper(points, plots, devices, scale_list, key, overlay=overlay, predicted=predicted,
                       compare_with=device, log=_log(progress))
    verdicts = compare_all(points, device, scale_list, key) if overlay else []
    return {"files": files, "verdicts": verdicts}


PREDICTED_ON = ("agx", "rpi")  # the paper devices a new model is placed on by compare (the edge devices)


def paper_predictions(db: Union[str, Path], model, scale: int, psnr: Dict[str, float],
                      plots: Union[str, Path, None] = None, devices: Sequence[str] = PREDICTED_ON,
                      set_name: str = PAPER_SET) -> Dict[str, Any]:
    """A model placed on the eSR paper's figures of ``devices`` as **predicted**: its FHD/s there from
    :mod:`harness.predict` (fitted on the paper's table in ``db``), with the 90 % band and the reasons it is
    unlike the fitted pool, drawn on the paper's figure at ``scale`` with the quality measured here
    (``psnr``: set -> dB, this harness's protocol). Returns ``{device: {prediction..., files}}``, or
    ``{"reason": ...}`` when nothing can be predicted (no table in the store, no PyTorch module to
    compute features from)."""
    from ..predict import fit
    from ..predict.features import module_features
    from ..predict.model import paper_family
    from ..results.paper import frame_from_store, stored_rows
    from ..results.store import ResultStore

    db = _paper_db(db)
    plots = plots_beside(db.parent, plots)
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
