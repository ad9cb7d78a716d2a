#!/usr/bin/env python3
"""Benchmark: ONNX Runtime's best export form against eager PyTorch, on the 14 Full-HD frames.

    .venv/bin/python scripts/bench-forms.py                        # every form (issue 22, point 5)
    .venv/bin/python scripts/bench-forms.py --forms naive,fast     # only the forms before issue 22
    .venv/bin/python scripts/bench-forms.py --models eSR-MAX_s2_K3_C1,FSRCNN_s2_D56_S12_M4 --weights shipped

For each model (default: the 12 official eSR models whose parity data ships in ../shared, two
per family over x2/x3/x4, plus Bicubic_s2) it prepares the harness's own sessions, on the same
weights and the same LR frames: the torch backend (eager PyTorch fp32, CPU) and the ONNX Runtime
backend once per export form the model has (``--form <form>``: exported, verified against
PyTorch and cached as every run does). Both use the profile's threads (0: the libraries' own
choice). Then ``--rounds`` interleaved rounds (torch, each form; torch, each form; ...) each time
every frame once, each pass after ``--gap`` idle seconds (the previous session's threads would
otherwise still spin during it: measured, 7.7 against 3.3 ms a frame for eSR-MAX_s2_K3_C1) and one
untimed frame; a round's figure is its median ms per frame, and the table gives the median of
the rounds. Per model: torch ms, each form's ms (``-``: the family has no such form), the best
form, torch / best (the speed-up), and how far the best form's output is from PyTorch's on the
first frame (max abs), and, when forms beyond naive,fast are timed, the speed-up of the better of
those two (the choice before issue 22); then the per-family minimum speed-up and the geometric
mean of each. "rounds" is the range of the speed-up within single rounds (torch and the best form
timed in the same round), and the last line gives the geometric mean round by round: how far the
machine's load moved the figures. ``--auto`` also runs the harness's own choice (``--form auto``:
each form timed briefly) and prints which form it kept.

The official weights must be imported first (``python -m harness zoo import-esr
../shared/esr-official/model-files``; ``HARNESS_CACHE`` chooses the cache); ``--weights shipped``
runs the shipped ones where the default pool has them. Figures depend on the host's load: run it
on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLE = ("eSR-MAX_s2_K3_C1", "eSR-MAX_s4_K7_C8", "eSR-TM_s2_K7_C16", "eSR-TM_s3_K5_C8", "eSR-TR_s2_K5_C2",
          "eSR-TR_s4_K7_C16", "eSR-CNN_s2_C6_D3_S15", "eSR-CNN_s3_C2_D1_S3", "ESPCN_s2_D0_S3", "ESPCN_s4_D40_S32",
          "FSRCNN_s2_D6_S1_M1", "FSRCNN_s3_D56_S12_M4", "Bicubic_s2")


def time_pass(session, batch, gap_s: float = 0.0) -> float:
    """Median ms per frame of one pass over ``batch`` (each frame loaded, then computed under the clock),
    after ``gap_s`` seconds idle and one untimed frame."""
    import numpy as np

    from harness.backends.base import timed_compute

    time.sleep(gap_s)
    session.infer(batch[-1])
    times = []
    for x in batch:
        session.load(x)
        wall, _ = timed_compute(session)
        times.append(wall * 1e3)
    return float(np.median(times))


def bench_model(model_id: str, args, frames, forms: List[str]) -> Dict[str, object]:
    import numpy as np

    from harness.backends import as_nchw, make_backend
    from harness.frames import lr_inputs
    from harness.models import id_scale, resolve
    from harness.models.fast import BASE_FORMS, candidate_forms
    from harness.weights import cache_dir

    scale = id_scale(model_id)
    model = resolve(model_id, scale, args.weights)  # fixed-weight models (Bicubic_s*) ignore it
    batch = [as_nchw(x) for x in lr_inputs(frames, scale, model.input_space)]
    shapes = [batch[0].shape]
    workdir = args.cache or str(cache_dir())
    sessions = {"torch": make_backend("torch", threads=args.threads).prepare(model, shapes)}
    t0 = time.perf_counter()
    for form in candidate_forms(model.module, forms):
        session = make_backend("onnxruntime", threads=args.threads, workdir=workdir, form=form).prepare(model, shapes)
        if session.form == form:  # a form the family lacks falls back to naive: timed once, under its own name
            sessions[form] = session
    prepare_s = time.perf_counter() - t0
    reference = sessions["torch"].infer(batch[0])
    max_abs = {k: float(np.abs(s.infer(batch[0]).astype(np.float64) - reference).max())
               for k, s in sessions.items() if k != "torch"}
    for s in sessions.values():  # warm-up: two frames each
        for x in batch[:2]:
            s.infer(x)
    rounds: Dict[str, List[float]] = {k: [] for k in sessions}
    for _ in range(args.rounds):
        for k, s in sessions.items():
            rounds[k].append(time_pass(s, batch[:args.frames], args.gap))
    for s in sessions.values():
        s.close()
    ms = {k: float(np.median(v)) for k, v in rounds.items()}
    ort = {k: v for k, v in ms.items() if k != "torch"}
    best = min(ort, key=ort.get)
    base = min((f for f in ort if f in BASE_FORMS), key=ort.get)  # naive is always timed
    record = {"model": model_id, "family": model.family, "scale": scale, "weights": model.weights,
              "torch_ms": ms["torch"], "forms_ms": ort, "rounds_ms": rounds, "best": best, "best_ms": ort[best],
              "speedup": ms["torch"] / ort[best], "base_best": base, "base_speedup": ms["torch"] / ort[base],
              "max_abs_vs_torch": max_abs, "prepare_s": prepare_s}
    if args.auto:
        auto = make_backend("onnxruntime", threads=args.threads, workdir=workdir, form="auto").prepare(model, shapes)
        record["auto"] = auto.form
        record["auto_trial_ms"] = auto.details.get("form_trial_ms")
        auto.close()
    return record


def round_speedups(record) -> List[float]:
    """Each round's speed-up of the best form: torch over the best form, both timed in that round."""
    rounds = record["rounds_ms"]
    return [t / b for t, b in zip(rounds["torch"], rounds[record["best"]])]


def table(records: List[Dict[str, object]], forms: List[str], auto: bool) -> str:
    from harness.models.fast import BASE_FORMS

    shown = [f for f in forms if any(f in r["forms_ms"] for r in records)]
    new = any(f not in BASE_FORMS for f in shown)  # then also the speed-up of the forms before issue 22
    head = (["model", "torch ms"] + [f"{f} ms" for f in shown] + ["best", "x torch", "rounds", "max abs"]
            + (["x torch (naive,fast)"] if new else []) + (["auto"] if auto else []))
    rows = [head]
    for r in records:
        row = [r["model"], f"{r['torch_ms']:.1f}"]
        row += [f"{r['forms_ms'][f]:.1f}" if f in r["forms_ms"] else "-" for f in shown]
        paired = round_speedups(r)
        row += [r["best"], f"{r['speedup']:.2f}", f"{min(paired):.2f}-{max(paired):.2f}",
                f"{r['max_abs_vs_torch'][r['best']]:.1e}"]
        row += [f"{r['base_speedup']:.2f}"] if new else []
        rows.append(row + ([r.get("auto", "")] if auto else []))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.append("")
    for key, what in (("speedup", "best form"), ("base_speedup", "best of naive,fast")) if new else (("speedup", "best form"),):
        families: Dict[str, List[float]] = {}
        for r in records:
            families.setdefault(r["family"], []).append(r[key])
        geomean = math.exp(sum(math.log(r[key]) for r in records) / len(records))
        lines.append(f"{what}: per family, the smallest speed-up over torch: "
                     + ", ".join(f"{f} x{min(v):.2f}" for f, v in families.items()))
        lines.append(f"{what}: geometric mean over {len(records)} models: x{geomean:.2f}")
    paired = [round_speedups(r) for r in records]
    per_round = [math.exp(sum(math.log(p[i]) for p in paired) / len(paired)) for i in range(min(map(len, paired)))]
    lines.append("best form: geometric mean of each round's own speed-ups (torch and the form timed in the same round): "
                 + ", ".join(f"x{g:.2f}" for g in per_round))
    lines.append(round_interval(per_round))
    return "\n".join(lines)


def round_interval(per_round: List[float]) -> str:
    """The median of the rounds' geometric means and its distribution-free 95 % interval (order statistics,
    :func:`harness.stats.median_ci`), or why there is none: the line that says whether a goal is clearly met."""
    import statistics

    from harness.stats import median_ci, median_ci_coverage

    ci = median_ci(per_round)
    head = f"best form: median of the {len(per_round)} rounds' geometric means x{statistics.median(per_round):.2f}"
    if ci is None:
        return f"{head}; no interval under 6 rounds (--rounds 6 or more gives one)"
    return (f"{head}, 95 % interval x{ci[0]:.2f} to x{ci[1]:.2f} (order statistics; coverage "
            f"{100 * median_ci_coverage(len(per_round)):.1f} %)")


def main(argv=None) -> int:
    from harness.models.fast import FORMS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(SAMPLE), help="comma-separated model ids (default: the sample)")
    p.add_argument("--weights", default="official", help="official (imported), shipped or init (Bicubic_s*: none)")
    p.add_argument("--forms", default=",".join(FORMS), help=f"export forms to time (default: all, {','.join(FORMS)}; "
                                                            "naive,fast: as before issue 22)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3; the median is reported)")
    p.add_argument("--frames", type=int, default=14, help="frames per round (default: all 14)")
    p.add_argument("--gap", type=float, default=0.5, help="idle seconds before each pass (default 0.5: the "
                                                           "previous session's threads stop spinning)")
    p.add_argument("--threads", type=int, default=0, help="threads for both (default 0: the profile's, the libraries' own)")
    p.add_argument("--cache", help="export cache folder (default: $HARNESS_CACHE or .cache)")
    p.add_argument("--auto", action="store_true", help="also report which form --form auto keeps")
    p.add_argument("--json", help="write the records to this file")
    args = p.parse_args(argv)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    unknown = [f for f in forms if f not in FORMS]
    if unknown:
        p.error(f"unknown form(s) {', '.join(unknown)}; give some of {', '.join(FORMS)}")

    from harness.frames import load_frames

    frames = load_frames()
    records = []
    t0 = time.time()
    from harness.errors import HarnessError

    for model_id in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            record = bench_model(model_id, args, frames, forms)
        except HarnessError as exc:  # e.g. the official weights not imported: one line, as the CLI says it
            print(f"bench-forms: {exc}", file=sys.stderr)
            return 2
        records.append(record)
        print(f"{model_id}: torch {record['torch_ms']:.1f} ms, " + ", ".join(
            f"{k} {v:.1f}" for k, v in record["forms_ms"].items()) + f" ms -> x{record['speedup']:.2f}",
            file=sys.stderr, flush=True)
    print(f"forms timed: {', '.join(forms)}; {args.rounds} interleaved rounds of {args.frames} Full-HD frames, "
          f"median ms per frame; {time.time() - t0:.0f} s")
    print(table(records, [f for f in FORMS if f in forms], args.auto))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
