#!/usr/bin/env python3
"""Benchmark: where a sweep's time goes, per model/scale pair.

    .venv/bin/python scripts/profile-sweep.py --db results/harness.db [--run RUN_ID]   # a run already made
    .venv/bin/python scripts/profile-sweep.py --sample 20 --weights official          # a fresh sample of --pool all

Each speed row records its phases (``phases_s``: process start/imports/transfer, imports inside
the measuring process, model build and weight load, LR inputs, export + sessions + form trial,
the reference check, warm-up, timing, the rest) and each quality row its wall time; this prints
their mean per pair, their share, and the run's seconds per pair (wall time of the run / pairs).
It also fits each pair's time to its frame time, ``a + b * median frame seconds`` (least squares; a
pair's time is its speed phases plus its quality seconds shared by the quality workers, which run
side by side): the model behind the first estimate of a sweep on a Raspberry Pi from the eSR
paper's speeds (``SWEEP_FIXED_S`` and ``SWEEP_FRAME_TIMES`` in ``harness/api/stages.py``).
With ``--sample N`` it first runs ``run-all`` on N pairs spread evenly over ``--pool all`` (every
family and scale), into a temporary folder, with the options given.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("process", "imports", "build", "inputs", "prepare", "reference", "warmup", "timing", "after")


def sample_ids(n: int):
    """``n`` ids spread evenly over --pool all (sorted: families and scales interleave)."""
    from harness.models.pools import pool_ids

    ids = pool_ids("all")
    step = len(ids) / n
    return [ids[int(i * step)] for i in range(n)]


def table(db: Path, run_id=None):
    from harness.api.stages import row_seconds

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    if run_id is None:
        run_id = con.execute("SELECT run_id FROM runs WHERE device NOT LIKE 'paper-%' "  # not the eSR paper's table
                             "ORDER BY started DESC LIMIT 1").fetchone()["run_id"]
    rows = [dict(r) for r in con.execute("SELECT * FROM measurements WHERE run_id = ?", (run_id,))]
    speed = [json.loads(r["data"]) for r in rows if r["measurement"] == "speed" and r["status"] != "failed"]
    quality = [json.loads(r["data"]) for r in rows if r["measurement"].startswith("quality:")]
    pairs = {(r["model"], r["scale"]) for r in rows}
    created = [r["created"] for r in rows]
    started = con.execute("SELECT started FROM runs WHERE run_id = ?", (run_id,)).fetchone()["started"]
    out = {p: sum((s.get("phases_s") or {}).get(p, 0.0) for s in speed) / max(len(speed), 1) for p in PHASES}
    out["quality"] = sum(row_seconds("quality:", q) or 0.0 for q in quality) / max(len(pairs), 1)
    per_pair = (max(created) - started) / max(len(pairs), 1) if created else float("nan")
    return run_id, len(pairs), len(speed), out, per_pair, rows


def pace_fit(rows, quality_workers: int):
    """(a, b, pairs, median and 90th-percentile relative error) of pair seconds ~ a + b * frame seconds over a
    run's timed pairs (``rows``: its measurements, as :func:`table` read them); a pair's seconds are its speed
    phases plus its quality seconds / ``quality_workers``."""
    import numpy as np

    from harness.api.stages import row_seconds

    speed, quality = {}, {}
    for r in rows:
        model, scale, measurement, median_ms = r["model"], r["scale"], r["measurement"], r["median_ms"]
        seconds = row_seconds(measurement, json.loads(r["data"] or "{}"))
        if seconds is None:
            continue
        if measurement == "speed" and r["status"] != "failed" and median_ms:
            speed[model, scale] = (median_ms / 1e3, seconds)
        elif measurement != "speed":
            quality[model, scale] = quality.get((model, scale), 0.0) + seconds
    if len(speed) < 3:
        return None
    frame = np.array([f for f, _ in speed.values()])
    pair = np.array([s + quality.get(k, 0.0) / quality_workers for k, (_, s) in speed.items()])
    (a, b), *_ = np.linalg.lstsq(np.vstack([np.ones_like(frame), frame]).T, pair, rcond=None)
    error = np.abs(pair / (a + b * frame) - 1)
    return float(a), float(b), len(speed), float(np.median(error)), float(np.percentile(error, 90))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="a results store to read (default: run a sample first)")
    p.add_argument("--run", help="the run (default: the newest)")
    p.add_argument("--sample", type=int, default=20, help="pairs of --pool all to run when no --db (default 20)")
    p.add_argument("--weights", default="official", help="as for run-all (default official: --pool all needs them)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--fresh-process", action="store_true", help="as for run-all")
    args = p.parse_args()
    tmp = None
    if args.db:
        db = Path(args.db)
    else:
        import harness

        tmp = tempfile.TemporaryDirectory(prefix="profile-sweep-")
        t0 = time.time()
        run = harness.run_all(device=args.device, pool="none", models=sample_ids(args.sample), weights=args.weights,
                              out=Path(tmp.name) / "results", plots=Path(tmp.name) / "plots", progress=True,
                              isolation="process" if args.fresh_process else "worker")
        print(f"run {run.run_id}: {time.time() - t0:.0f} s", file=sys.stderr)
        db = run.db
    run_id, pairs, timed, phases, per_pair, rows = table(db, args.run)
    total = sum(phases.values())
    print(f"run {run_id}: {pairs} pairs ({timed} timed), {per_pair:.2f} s per pair (run wall time / pairs)")
    print(f"{'phase':<10} {'s per pair':>10} {'share':>6}")
    for name, value in phases.items():
        print(f"{name:<10} {value:>10.2f} {100 * value / total if total else 0:>5.0f}%")
    print(f"{'sum':<10} {total:>10.2f}")
    from harness.api import SWEEP_FIXED_S, SWEEP_FRAME_TIMES, quality_workers

    workers = quality_workers()[0]
    fit = pace_fit(rows, workers)
    if fit is not None:
        a, b, n, med, p90 = fit
        print(f"pair time ~ {a:.2f} s + {b:.1f} frame times (least squares over {n} pairs, quality shared by "
              f"{workers} workers; relative error median {100 * med:.0f} %, 90th percentile "
              f"{100 * p90:.0f} %); the Pi first estimate uses {SWEEP_FIXED_S:g} s + {SWEEP_FRAME_TIMES:g}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
