"""Training a pool over a Ray cluster: ``python -m harness train --pool all --data DIR --cluster ADDRESS``.

Why it exists: the eSR pool is 1185 networks; one machine trains them one after another,
a cluster trains one per free slot. Each model is one Ray task that runs the single-machine
trainer (:func:`harness.train.loop.train_model`) unchanged, in a task-local temporary folder, and
returns the bytes of the files it wrote (``<id>.pt``, ``<id>.json``, ``last.pt``, ``best.pt``);
the driver writes them into the local output folder (the same layout as without
``--cluster``), so the workers need no shared filesystem.

Data: the driver makes (or reads from its cache) the LR/HR pairs of ``--data`` once per
(scale, space) -- Y for the eSR pool, RGB for ABPN/BSRN -- and puts them in the Ray object
store (``ray.put``; :class:`harness.train.data.TrainFolder` is plain arrays and paths, so it
pickles); the workers read them from there, so the training folder only has to exist on the
machine that runs the command. Validation
(``--val-data``) is built on each worker: leave it out (the embedded images, shipped with the
package) or give a path that exists on every worker.

Resources: a task asks for one GPU when the cluster has GPUs (and trains on it), else
``--threads`` CPUs (default 1). A task that fails is submitted once more; models that fail twice are listed with the
reason and the command exits with 1. Ray is an optional extra: nothing here is imported by
the single-machine path.

``HARNESS_CLUSTER_FAIL=ID[:N][,ID[:N]]`` (read by the driver, raised inside the worker) makes
the task of ``ID`` fail on its first ``N`` attempts (default: every attempt); it exists to test
the retry path.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..errors import HarnessError
from ..numeric import json_safe
from .data import load_folder, parse_folders
from .files import atomic_text
from .loop import train_model
from .planning import hold_folders, plan
from .settings import Settings
from .validation import Validator

ATTEMPTS = 2          # a failed task is submitted once more
FAIL_ENV = "HARNESS_CLUSTER_FAIL"
GATHERED = ("last.pt", "best.pt")  # besides <id>.pt and <id>.json
RAY_MISSING = "Ray is not installed: pip install 'ray[default]' (or the project's [ray] extra)"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise HarnessError(RAY_MISSING) from None
    return ray


def _injected_failures() -> Dict[str, Optional[int]]:
    """{model id: attempts that fail (None: all)} from HARNESS_CLUSTER_FAIL."""
    spec: Dict[str, Optional[int]] = {}
    for item in os.environ.get(FAIL_ENV, "").split(","):
        item = item.strip()
        if not item:
            continue
        mid, _, count = item.partition(":")
        spec[mid] = int(count) if count.strip().isdigit() else None
    return spec


def _train_task(model_id: str, settings, data, val: Optional[tuple], resume_files: Dict[str, bytes],
                stop_at: Optional[int], attempt: int, inject: bool) -> Dict:
    """Runs on a worker: trains ``model_id`` in a temporary folder and returns the files' bytes."""
    if inject:
        raise RuntimeError(f"injected failure of {model_id} on attempt {attempt} ({FAIL_ENV})")
    validator = Validator(*val) if val is not None else None
    with tempfile.TemporaryDirectory(prefix=f"harness-train-{model_id}-") as tmp:
        out = Path(tmp)
        for name, blob in resume_files.items():
            (out / name).write_bytes(blob)
        record = train_model(model_id, settings, data, out, validator, resume=bool(resume_files),
                             stop_at=stop_at, show_progress=False)
        names = (f"{model_id}.pt", f"{model_id}.json") + GATHERED
        files = {n: (out / n).read_bytes() for n in names if (out / n).is_file()}
    return {"record": record, "files": files, "node": platform.node()}


def _reason(exc: BaseException) -> str:
    """One line: the worker's own exception when Ray wraps it, else Ray's error."""
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(err, HarnessError) else f"{type(err).__name__}: {first}".rstrip(": ")


def _write(out: Path, model_id: str, result: Dict, address: str, attempt: int) -> Dict:
    """The task's files into ``out`` (atomically); the provenance names the local weights."""
    out.mkdir(parents=True, exist_ok=True)
    record = dict(result["record"])
    cluster = {"address": address, "node": result["node"], "attempt": attempt}
    for name, blob in result["files"].items():
        if name == f"{model_id}.json":
            continue
        fd, tmp = tempfile.mkstemp(dir=out, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, out / name)
    if record.get("status") == "finished":
        record["weights"] = str(out / f"{model_id}.pt")  # the sha256 is of the same bytes
        record["cluster"] = cluster
        atomic_text(json.dumps(json_safe(record), indent=2) + "\n", out / f"{model_id}.json")
    record["out"] = str(out)
    return record


def train_on_cluster(model_ids: Sequence[str], options, address: str, settings=None, log=None) -> int:
    """Train ``model_ids`` as Ray tasks on the cluster at ``address`` ('local': a local Ray instance).

    ``options`` is the parsed ``train`` command line; ``settings`` its :class:`harness.train.settings.Settings`
    (made from ``options`` when not given). Prints the table (or JSON) of all models and returns
    the exit code: 1 when a model failed twice.
    """
    from ..output import emit
    from ..progress import progress

    if not address or not str(address).strip():
        raise HarnessError("--cluster: give a Ray address such as HEAD:6379, or 'local' for a local Ray instance")
    address = str(address).strip()
    if settings is None:
        settings = Settings(
            data=[options.data], steps=options.steps, batch=options.batch, patch=options.patch, lr=options.lr,
            min_lr=options.min_lr, seed=options.seed, threads=options.threads, val_every=options.val_every,
            val_data=options.val_data, val_set=options.val_set, checkpoint_every=options.checkpoint_every,
            init_weights=getattr(options, "init_weights", None))
    settings.check()
    stop_at = getattr(options, "stop_at", None)
    resume, force = bool(getattr(options, "resume", False)), bool(getattr(options, "force", False))
    if stop_at is not None and stop_at < 1:
        raise HarnessError(f"--stop-at {stop_at}: give a positive step number")
    if resume and force:
        raise HarnessError("--resume and --force contradict each other: --resume continues last.pt, "
                           "--force starts over; give one")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    ray = _import_ray()  # before any work, so a missing Ray is the first thing said
    folders = parse_folders(",".join(settings.data))
    pool = bool(getattr(options, "pool", None)) or len(model_ids) > 1
    plans = plan(model_ids, settings, getattr(options, "out", None), pool, resume, force)
    val = (settings.val_data, settings.val_set) if settings.val_every else None
    if val is not None:
        Validator(*val)  # a bad --val-data / --val-set is a one-line error here, not on every worker
    todo = [p for p in plans if p.action != "skip"]
    records: Dict[str, Dict] = {}
    for p in plans:
        if p.action == "skip":
            log(f"{p.model_id}: skipped, {p.reason}")
            records[p.model_id] = {"model": p.model_id, "status": "skipped", "reason": p.reason}

    failed = 0
    if todo:
        started_here = not ray.is_initialized()
        if started_here:
            _init(ray, address, settings)
        try:
            with hold_folders(todo):
                failed = _run(ray, todo, settings, folders, val, stop_at, address, records, log, progress)
        finally:
            if started_here:
                ray.shutdown()

    rows = [records[p.model_id] for p in plans]
    if getattr(options, "json", False):
        json.dump(json_safe(rows), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        table = [{"model": r["model"], "status": r["status"], "attempts": r.get("attempts"),
                  "steps": r.get("steps"), "psnr": r.get("final_psnr"),
                  "hours": r["wall_time_s"] / 3600 if "wall_time_s" in r else None,
                  "node": (r.get("cluster") or {}).get("node"),
                  "weights": r.get("weights") or r.get("reason", "")} for r in rows]
        emit(table, ("model", "status", "attempts", "steps", "psnr", "hours", "node", "weights"), False,
             digits={"psnr": 2, "hours": 2}, headers={"psnr": "PSNR (dB)", "weights": "weights / reason"})
    if failed:
        log(f"{failed} of {len(todo)} models failed twice; run the same command again to retry them "
            f"(finished ones are skipped)")
    return 1 if failed else 0


def _init(ray, address: str, settings) -> None:
    kwargs = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        # "local" (not None): always a new instance, never one named by RAY_ADDRESS
        kwargs.update(address="local", num_cpus=max(cpus, settings.threads or 1))
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - unreachable head, version mismatch: one line
        raise HarnessError(f"cannot connect to the Ray cluster at {address} ({_reason(exc)}); start it with "
                           f"'ray start --head' and give --cluster HEAD:6379, or use --cluster local") from None


def _run(ray, todo, settings, folders, val, stop_at, address, records, log, progress) -> int:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    resources = {"num_gpus": 1, "num_cpus": settings.threads or 1} if gpus >= 1 else \
        {"num_cpus": settings.threads or 1}
    if gpus >= 1 and settings.device == "cpu":  # the task holds a GPU: train on it (Ray sets CUDA_VISIBLE_DEVICES)
        from dataclasses import replace

        settings = replace(settings, device="cuda")
    # max_retries=0: the retry is ours (resubmitted below), so that it is counted and reported
    task = ray.remote(_train_task).options(max_retries=0, retry_exceptions=False, **resources)
    inject = _injected_failures()

    data_refs = {}
    for scale, space in sorted({(p.scale, p.space) for p in todo}):  # Y pairs for eSR, RGB for ABPN/BSRN
        data_refs[scale, space] = ray.put([load_folder(f, scale, space=space) for f in folders])
    resume_files: Dict[str, Dict[str, bytes]] = {}
    for p in todo:
        if p.action == "train":
            for name in ("last.pt", "best.pt", f"{p.model_id}.pt", f"{p.model_id}.json"):
                if (p.out / name).is_file():
                    (p.out / name).unlink()
        resume_files[p.model_id] = {n: (p.out / n).read_bytes() for n in GATHERED
                                    if p.action == "resume" and (p.out / n).is_file()}

    def submit(p, attempt):
        injected = p.model_id in inject and (inject[p.model_id] is None or attempt <= inject[p.model_id])
        return task.remote(p.model_id, settings, data_refs[p.scale, p.space], val, resume_files[p.model_id], stop_at,
                           attempt, injected)

    log(f"training {len(todo)} models on {address} ({'1 GPU' if gpus >= 1 else f'{settings.threads or 1} CPU'} "
        f"per task; cluster: {ray.cluster_resources().get('CPU', 0):g} CPUs, {gpus:g} GPUs)")
    pending = {submit(p, 1): (p, 1) for p in todo}
    failed = 0
    bar = progress(None, total=len(todo), desc="cluster", disable=not sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            p, attempt = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - any task failure: retried once, then reported
                reason = _reason(exc)
                if attempt < ATTEMPTS:
                    log(f"{p.model_id}: attempt {attempt} failed ({reason}); retrying")
                    pending[submit(p, attempt + 1)] = (p, attempt + 1)
                    continue
                failed += 1
                log(f"{p.model_id}: failed {attempt} times ({reason})")
                records[p.model_id] = {"model": p.model_id, "status": "failed", "attempts": attempt,
                                       "reason": reason}
            else:
                record = _write(p.out, p.model_id, result, address, attempt)
                record["attempts"] = attempt
                records[p.model_id] = record
            bar.update(1)
    finally:
        bar.close()
        for ref in pending:  # Ctrl-C: do not leave tasks running on the cluster
            ray.cancel(ref, force=True)
    log(f"cluster run: {len(todo) - failed} of {len(todo)} models done in {time.perf_counter() - t0:.1f} s")
    return failed
