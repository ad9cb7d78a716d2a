#!/usr/bin/env python3
"""Held-out error of the speed predictor (harness.predict) on the eSR authors' measurements.

Per paper device (Jetson AGX Xavier, GTX 1080 Max-Q, Raspberry Pi 400): random 5-fold cross-validation
(a fixed seed; the fit may use the indicators of families in its training folds) and leave-one-family-out
(the fit never sees the held-out family): the share of held-out models predicted within ±10 % and ±20 %
of the measured FHD/s, the median absolute error, how many fell inside the reported 90 % band, and the
same per family. Then the "neighbour" check of the measurements themselves (harness.predict.noise_floor).

    .venv/bin/python scripts/bench-predictor.py [--table PATH/tests.pkl] [--device agx,maxq,rpi] [--scale 2]

The table is read only through harness.results.paper.paper_frame (a restricted unpickler); default
$ESR_TESTS, else ../shared/esr-official/tests.pkl beside the checkout.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.predict import DEVICE_NAMES, evaluate, noise_floor, summarize  # noqa: E402
from harness.predict.features import pool_features  # noqa: E402
from harness.results.paper import paper_frame  # noqa: E402


def line(label: str, s: dict) -> str:
    return (f"  {label:<22} {s['n']:>5} {100 * s['within10']:>7.1f} {100 * s['within20']:>7.1f} "
            f"{s['median_pct']:>8.1f} {100 * s['in_band']:>8.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("ESR_TESTS") or str(ROOT.parent / "shared" / "esr-official" / "tests.pkl")
    ap.add_argument("--table", default=default, help="the eSR repository's data/tests.pkl (or its archive)")
    ap.add_argument("--device", default="agx,maxq,rpi", help="paper devices, comma-separated")
    ap.add_argument("--seed", type=int, default=0, help="the random 5-fold permutation's seed")
    ap.add_argument("--scale", default="", help="only these scales, comma-separated (default: all)")
    args = ap.parse_args(argv)
    table = paper_frame(args.table)
    if args.scale:
        table = table[table["scale"].isin([int(v) for v in args.scale.split(",")])].reset_index(drop=True)
    start = time.perf_counter()
    feats = pool_features(table["model"])
    print(f"{len(table)} models, {table['family'].nunique()} families; features in {time.perf_counter() - start:.1f} s")
    header = f"  {'':<22} {'n':>5} {'±10 %':>7} {'±20 %':>7} {'median%':>8} {'in band':>8}"
    for device in [d.strip() for d in args.device.split(",") if d.strip()]:
        print(f"\n== {device}: {DEVICE_NAMES[device]} (speed in Full-HD frames/s) ==")
        for split, title in (("random", "random 5-fold (seed %d)" % args.seed), ("family", "leave-one-family-out")):
            res = evaluate(table, device, split=split, seed=args.seed, features=feats)
            print(f"{title}; estimators chosen inside the training folds: "
                  + ", ".join(f"{k} x{v}" for k, v in res.groupby("fold")["estimator"].first().value_counts().items()))
            print(header)
            print(line("all", summarize(res)))
            for fam, part in res.groupby("family"):
                print(line(fam, summarize(part)))
        nb = noise_floor(table, device)
        print(f"neighbour check (eSR-MAX/TM/TR, C against C-1 and C+1): n {nb['n']}, within ±10 % "
              f"{100 * nb['within10']:.1f}, ±20 % {100 * nb['within20']:.1f}, median {nb['median_pct']:.1f} %, "
              f"sigma of one measurement {100 * nb['sigma']:.1f} %")
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
