"""Runs of one or many models: what to do with each (:func:`plan`: train, resume or skip, checked
before any training starts), the folder locks (:func:`hold_folders`), and :func:`run`, in this
process or, with ``jobs`` > 1, in worker processes ordered by :func:`training_cost`."""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..children import exit_with_parent
from ..errors import HarnessError
from .data import TrainFolder, load_folder, parse_folders
from .files import cache_root
from .finetune import INIT_SHORTHANDS, check_init
from .loop import train_model
from .settings import Settings, for_family, lr_for, patch_for
from .targets import NotTrainable, fresh_model, rng_kept, target
from .validation import Validator

LOCK_NAME = ".train.lock"


def default_out(model_id: str) -> Path:
    """The run folder without --out: ``$HARNESS_CACHE/train/<id>/``."""
    return cache_root() / model_id


@dataclass
class Plan:
    """One model's part of a run: its output folder and what to do there."""

    model_id: str
    scale: int
    out: Path
    action: str  # train, resume, skip
    reason: str = ""
    space: str = "y"  # the space of its training pairs (load_folder(..., space=))


def plan(model_ids: Sequence[str], settings: Settings, out: Optional[str], pool: bool,
         resume: bool, force: bool) -> List[Plan]:
    """What to do with each model, checked before any training starts (so a pool fails early)."""
    init = settings.init_weights
    if init and len(model_ids) > 1 and init not in INIT_SHORTHANDS:
        raise HarnessError(f"--init-weights {init} starts one model; with --pool or several ids give "
                           f"--init-weights shipped or official (each model's own)")
    plans = []
    for mid in model_ids:
        try:
            t = target(mid, settings.scale)
        except NotTrainable:
            if pool:
                plans.append(Plan(mid, 0, Path(), "skip", "fixed weights, nothing to train"))
                continue
            raise
        family, scale, space = t.family, t.scale, t.space
        patch_for(settings, mid, scale, family)
        lr_for(settings, family)
        folder = (Path(out).expanduser() / mid if pool else Path(out).expanduser()) if out else default_out(mid)
        final, last = folder / f"{mid}.pt", folder / "last.pt"
        if force:
            plans.append(Plan(mid, scale, folder, "train", space=space))
        elif resume and last.is_file():
            plans.append(Plan(mid, scale, folder, "resume", space=space))
        elif final.is_file():
            plans.append(Plan(mid, scale, folder, "skip", f"already trained ({final}; --force retrains)", space))
        elif resume and not pool:
            raise HarnessError(f"no checkpoint {last} to resume; run without --resume to start {mid}, "
                               f"or give the --out of the earlier run")
        elif last.is_file():
            raise HarnessError(f"{last} holds an unfinished run of {mid}; add --resume to continue it "
                               f"or --force to start over")
        else:
            plans.append(Plan(mid, scale, folder, "train", space=space))
        if init and plans[-1].action == "train":  # the weights must exist and fit before any training starts
            check_init(mid, settings.scale, init)
    return plans


@contextlib.contextmanager
def hold_folders(plans: Sequence[Plan]):
    """Own every ``--out`` folder that will be trained for the whole run.

    Two runs writing one folder corrupt each other (a second ``--resume`` reads the first one's
    last.pt and saves its own over it), so the second is refused with the first one's pid. The
    lock is ``flock`` on ``<out>/.train.lock``: the kernel drops it when the holder exits, even on
    SIGKILL, so a crashed run never leaves a stale lock. Without ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with contextlib.ExitStack() as held:
        # one lock per folder: a second flock on the same folder would be refused as held
        folders = {p.out.resolve(): p.out for p in plans}
        for out in folders.values():
            path = out / LOCK_NAME
            try:
                out.mkdir(parents=True, exist_ok=True)
                handle = held.enter_context(open(path, "a+"))
            except OSError:  # a folder that cannot be made: its own training reports that, as one model's failure
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise HarnessError(f"{out} is being trained by {holder} (lock {path}); wait for it to finish, "
                                   f"stop it (Ctrl-C saves last.pt for --resume) or give another --out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {platform.node()}\n")
            handle.flush()
        yield


def run(model_ids: Sequence[str], settings: Settings, out: Optional[str] = None, pool: bool = False,
        resume: bool = False, force: bool = False, stop_at: Optional[int] = None,
        show_progress: bool = False, log=None, jobs: int = 1) -> List[Dict]:
    """Train ``model_ids``; a record per model (skipped ones included).

    ``jobs`` > 1 trains that many models at once, each in its own process with one torch
    thread (unless ``--threads`` says otherwise), the most expensive first: on a small CPU
    several single-threaded trainings of small nets use the cores better than one
    multi-threaded one. A model that fails there is reported and the others go on.
    """
    settings.check()
    if stop_at is not None and stop_at < 1:
        raise HarnessError(f"--stop-at {stop_at}: give a positive step number")
    if resume and force:
        raise HarnessError("--resume and --force contradict each other: --resume continues last.pt, "
                           "--force starts over; give one")
    if jobs < 1:
        raise HarnessError(f"--jobs {jobs}: give a positive number of parallel trainings")
    folders = parse_folders(",".join(settings.data))
    plans = plan(model_ids, settings, out, pool, resume, force)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    records = []
    for p in plans:
        if p.action == "skip":
            log(f"{p.model_id}: skipped, {p.reason}")
            records.append({"model": p.model_id, "status": "skipped", "reason": p.reason})
    todo = [p for p in plans if p.action != "skip"]
    with hold_folders(todo):
        return records + _run_plans(todo, settings, folders, stop_at, show_progress, log, jobs)


def _run_plans(todo: Sequence[Plan], settings: Settings, folders: Sequence[Path], stop_at, show_progress, log,
               jobs: int) -> List[Dict]:
    if jobs > 1 and len(todo) > 1:
        return _run_parallel(todo, settings, folders, stop_at, jobs, log)
    records: List[Dict] = []
    validator = Validator(settings.val_data, settings.val_set) if settings.val_every else None
    loaded: Dict[Tuple[int, str], List[TrainFolder]] = {}
    for p in todo:
        if (p.scale, p.space) not in loaded:
            if any(scale != p.scale for scale, _ in loaded):
                loaded.clear()  # one scale in memory at a time (pools go scale by scale)
            loaded[p.scale, p.space] = [load_folder(f, p.scale, show_progress, space=p.space) for f in folders]
        record = _train_planned(p, settings, loaded[p.scale, p.space], validator, stop_at, show_progress, log)
        records.append(record)
        if record["status"] == "paused":
            log(f"{p.model_id}: paused at step {record['steps']} of {record['lr_schedule']['steps']}; "
                f"continue with --resume")
            break
    return records


def _train_planned(p: Plan, settings: Settings, data: Sequence[TrainFolder], validator, stop_at, show_progress,
                   log) -> Dict:
    if p.action == "train":
        for name in ("last.pt", "best.pt", f"{p.model_id}.pt", f"{p.model_id}.json"):
            if (p.out / name).is_file():
                (p.out / name).unlink()
    p.out.mkdir(parents=True, exist_ok=True)
    record = train_model(p.model_id, settings, data, p.out, validator, resume=p.action == "resume",
                         stop_at=stop_at, show_progress=show_progress, log=log)
    record["out"] = str(p.out)
    return record


def _log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train_in_child(p: Plan, settings: Settings, folders: Sequence[Path], stop_at) -> Dict:
    """One model in a worker process (``--jobs``): its own data cache read and validator."""
    exit_with_parent(os.getppid())
    data = [load_folder(f, p.scale, space=p.space) for f in folders]
    validator = Validator(settings.val_data, settings.val_set) if settings.val_every else None
    return _train_planned(p, settings, data, validator, stop_at, False, _log_stderr)


def training_cost(model_id: str, settings: Settings) -> float:
    """MACs of a whole training run (forward on the LR patches x batch x steps): orders ``--jobs`` work."""
    from ..models.complexity import complexity

    t = target(model_id, settings.scale)
    s = for_family(settings, t.family, model_id)
    patch = patch_for(s, model_id, t.scale, t.family)
    with rng_kept():
        module = fresh_model(model_id, settings.scale).module
    try:
        macs = complexity(module, t.scale, out_hw=(patch, patch), channels=1 if t.space == "y" else 3)["macs_per_fhd"]
    except RuntimeError:  # the patch is too small for the network: its run stops at step 1 with a one-line error
        return 0.0
    return float(macs) * s.batch * s.steps


def _run_parallel(todo: Sequence[Plan], settings: Settings, folders: Sequence[Path], stop_at, jobs: int,
                  log) -> List[Dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from dataclasses import replace

    for scale, space in sorted({(p.scale, p.space) for p in todo}):  # make the caches once, before the workers race
        for f in folders:
            load_folder(f, scale, space=space)
    child = replace(settings, threads=settings.threads or 1)
    order = sorted(todo, key=lambda p: training_cost(p.model_id, settings), reverse=True)
    log(f"training {len(order)} models, {jobs} at a time ({child.threads} torch thread(s) each), longest first")
    records, failed = [], []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_child, p, child, list(folders), stop_at): p for p in order}
        for future in as_completed(futures):
            p = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the pool
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log(f"{p.model_id}: FAILED ({reason})")
                failed.append(p.model_id)
                records.append({"model": p.model_id, "status": "failed", "reason": reason, "out": str(p.out)})
                continue
            log(f"{p.model_id}: {record['status']} at step {record['steps']} ({record['wall_time_s'] / 60:.1f} min)")
            records.append(record)
    if failed:
        log(f"{len(failed)} of {len(order)} models failed: {', '.join(failed)}")
    return records
