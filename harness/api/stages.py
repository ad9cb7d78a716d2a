"""A sweep's two stages, each model's code in worker processes: quality (:func:`quality_stage`, every
core) and speed (:func:`run_bench`, one model at a time, nothing else running), each row stored as
soon as it exists; and how long they will take (:class:`Estimate` as they go, :func:`prior_pace` and
:func:`paper_pace` before)."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import HarnessError
from .plan import Pairs


def quality_backend(model) -> str:
    """The ``backend`` key of a model's quality rows: its exported fp32 graph on ONNX Runtime (an
    export folder), else "torch" (also for classical code: the key stores join on). What really
    computed a row is its ``runtime`` (:func:`harness.models.base.quality_runtime`)."""
    return "onnxruntime" if getattr(model, "export_dir", None) else "torch"


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
    from ..exported import resolve_model
    from ..progress import progress as bar_of
    from ..runner import failure_record, measure, measure_isolated, measure_task, pool_rounds, with_status
    from ..worker import Worker

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
    from ..results.files import write_text_atomic

    out: Dict[str, List[float]] = {}
    rows = [r for r in store.rows("run_id = ? AND measurement = 'speed'", (run_id,)) if r["status"] != "failed"]
    several = len({(r["device"], r["backend"], r["precision"]) for r in rows}) > 1
    for r in rows:
        times = (json.loads(r["data"] or "{}") or {}).get("times_ms") or []
        key = f"{r['model']} x{r['scale']}"
        out[f"{r['device']}/{r['backend']}/{r['precision']} {key}" if several else key] = times
    return write_text_atomic(Path(path), json.dumps(out), elsewhere="give another --export-times FILE")


def row_seconds(measurement: str, data: Dict[str, Any]) -> Optional[float]:
    """The wall seconds a stored row took, from its ``data``: a speed row's phases summed (``phases_s``),
    a quality row's ``seconds``; None where the row did not record them."""
    if measurement == "speed":
        phases = data.get("phases_s")
        return sum(v for v in phases.values() if isinstance(v, (int, float))) if isinstance(phases, dict) else None
    seconds = data.get("seconds") if measurement.startswith("quality:") else None
    return float(seconds) if isinstance(seconds, (int, float)) else None


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
            seconds = row_seconds(r["measurement"], json.loads(r["data"] or "{}"))
            if seconds is None:
                continue
            if r["measurement"] == "speed" and r["backend"] == cfg.backend and r["precision"] == cfg.precision:
                speed.append(seconds)
            elif r["measurement"] != "speed":
                quality.append(seconds)
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
    from ..results.paper import frame_from_store, stored_rows

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

    from ..models.base import quality_runtime
    from ..progress import progress as bar_of
    from ..protocol import quality_task
    from ..worker import Worker

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
