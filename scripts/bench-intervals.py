#!/usr/bin/env python3
"""Benchmark: how wide are the speed intervals of a sweep, and how many front decisions are
statistically tied, with one sequential round against interleaved rounds (--rounds N)?

    .venv/bin/python scripts/bench-intervals.py                      # the default run, 1 vs 3 rounds
    .venv/bin/python scripts/bench-intervals.py --scale 2 --rounds 3 # a shorter one: x2 only

It runs ``run-all`` twice on this machine with the same options into temporary folders (first one
round, then N rounds, each model getting the same total time budget) and prints, for each: the
models timed, the median and 90th percentile of the FHD/s interval half-widths (% of the median),
the share of front members that are statistically tied, and the wall time. Figures depend on the
host's load: run it on an otherwise idle machine, and twice to see the spread.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(args, rounds: int, folder: Path):
    import numpy as np

    import harness

    t0 = time.time()
    run = harness.run_all(device=args.device, pool=args.pool, scales=[int(s) for s in args.scale.split(",")] if args.scale
                          else (), out=folder / "results", plots=folder / "plots", rounds=rounds, progress=args.progress,
                          duration=args.duration)
    table = run.table
    ok = table[table["speed_status"] == "ok"] if "speed_status" in table else table
    widths = ok["ci_halfwidth_pct"].astype(float).dropna().to_numpy() if "ci_halfwidth_pct" in ok else np.array([])
    front = run.front
    tied = int(front["tied"].astype(bool).sum()) if "tied" in front and len(front) else 0
    from harness.results.store import ResultStore

    spreads = []  # how far apart each model's rounds landed: (max - min) / median of the round medians
    with ResultStore(run.db, readonly=True) as store:
        for r in store.rows("run_id = ? AND measurement = 'speed' AND status = 'ok'", (run.run_id,)):
            medians = [m for m in (json.loads(r["data"]).get("round_medians_ms") or []) if m]
            if len(medians) > 1:
                spreads.append(100.0 * (max(medians) - min(medians)) / float(np.median(medians)))
    return {"rounds": rounds, "models": len(ok), "round_spread_pct": float(np.median(spreads)) if spreads else None,
            "median_halfwidth_pct": float(np.median(widths)) if widths.size else
            float("nan"), "p90_halfwidth_pct": float(np.percentile(widths, 90)) if widths.size else float("nan"),
            "front": len(front), "tied": tied, "tied_share": tied / len(front) if len(front) else float("nan"),
            "wall_s": time.time() - t0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--pool", default=None, help="as for run-all (default: its default pools)")
    p.add_argument("--scale", default=None, help="as for run-all (default 2,3,4)")
    p.add_argument("--rounds", type=int, default=3, help="the interleaved run's rounds (default 3)")
    p.add_argument("--duration", type=float, default=None, help="time budget per model (profile default)")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-intervals-") as tmp:
        for rounds in (1, args.rounds):
            rows.append(one(args, rounds, Path(tmp) / f"r{rounds}"))
            r = rows[-1]
            print(f"rounds={r['rounds']}: {r['models']} speed rows, interval half-width median "
                  f"{r['median_halfwidth_pct']:.1f} % (p90 {r['p90_halfwidth_pct']:.1f} %), front {r['front']} "
                  f"members of which {r['tied']} statistically tied ({100 * r['tied_share']:.0f} %), "
                  f"{r['wall_s']:.0f} s" + (f"; the rounds' medians of a model spread {r['round_spread_pct']:.1f} % "
                                            f"(median over models)" if r["round_spread_pct"] is not None else ""),
                  flush=True)
    a, b = rows
    print(f"median half-width: {a['median_halfwidth_pct']:.1f} % with one round, {b['median_halfwidth_pct']:.1f} % with "
          f"{b['rounds']} interleaved rounds ({b['median_halfwidth_pct'] / a['median_halfwidth_pct']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
