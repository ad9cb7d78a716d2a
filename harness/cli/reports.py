"""From measurements to figures and reports: plot, report, results (merge, check, salvage), int8-report,
ghost-report."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..errors import HarnessError
from .options import PROJECT_ROOT, add_calib, add_data, add_json, add_plots, add_weights, calib_folders_of, csv_list


def cmd_plot(args) -> int:
    from ..api import plots_beside
    from ..results.plots import draw_all
    from ..results.store import ResultStore

    if not Path(args.db).is_file():
        raise HarnessError(f"{args.db}: no results database; run ./run_all.sh or python -m harness bench first")
    with ResultStore(args.db, readonly=True) as store:  # a store in a read-only folder draws too
        files = draw_all(store, plots_beside(Path(args.db).parent, args.out), run_id=args.run)
    if not files:
        raise HarnessError(f"{args.db} holds no model with both speed and quality measured; run ./run_all.sh")
    for f in files:
        print(f)
    return 0


def cmd_results_merge(args) -> int:
    from ..results.store import ResultStore

    for path in args.files:
        if not Path(path).is_file():
            raise HarnessError(f"{path}: no such results database or side file (.unsaved.jsonl)")
    with ResultStore(args.db) as store:
        for path in args.files:
            added, present = store.merge(path)
            print(f"{path}: {added} rows added, {present} already present")
    return 0


def cmd_results_check(args) -> int:
    from ..results.repair import check_store

    res = check_store(args.db)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if res["ok"] else 1
    db = shlex.quote(str(args.db))
    if res["error"]:
        print(f"{args.db}: unreadable ({res['error']})")
    else:
        counts = ", ".join(f"{res[t] if res[t] is not None else 'unreadable'} {t}" for t in ("runs", "measurements"))
        found = "ok" if res["integrity"] == ["ok"] else \
            f"{len(res['integrity'])} problem(s), first: {res['integrity'][0]}"
        print(f"{args.db}: {counts}; integrity check: {found}")
    for side in res["side_files"]:
        print(f"{side}: measurements the store refused and kept aside")
    if res["unsaved"] or res["unsaved_unreadable"]:
        missing = res["unsaved_missing"]
        print(f"side files: {res['unsaved']} rows ({'?' if missing is None else missing} not in the store)"
              + (f", {res['unsaved_unreadable']} unreadable lines" if res["unsaved_unreadable"] else ""))
    if res["damaged"]:
        print(f"verdict: damaged; salvage its readable rows (and the side files' rows) into a new store with "
              f"`python -m harness results salvage {db} --to NEW.db`, check NEW.db, then move {db} aside and NEW.db "
              f"in its place")
    elif res["unsaved_missing"]:
        sides = " ".join(shlex.quote(s) for s in res["side_files"])
        print(f"verdict: sound, but {res['unsaved_missing']} measured rows are only in the side file; bring them in "
              f"with `python -m harness results merge {sides} --db {db}`")
    else:
        print("verdict: healthy" + (" (the side file's rows are all in the store: it can be deleted)"
                                    if res["side_files"] else ""))
    return 0 if res["ok"] else 1


def cmd_results_salvage(args) -> int:
    from ..results.repair import salvage

    res = salvage(args.db, args.to)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if res["error"]:
        print(f"{args.db}: nothing readable ({res['error']})")
    else:
        print(f"{args.db}: {res['runs']} runs and {res['measurements']} measurements recovered")

    def ranges(rs) -> str:
        return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in rs)

    if res["lost_measurements"] or res["lost_runs"]:
        n = sum(b - a + 1 for a, b in res["lost_measurements"])
        exp = res["expected_measurements"]
        lost = f"{exp - res['measurements']} of {exp} measurements" if exp is not None and exp >= res["measurements"] \
            else f"up to {n} measurements"
        print(f"lost: {lost} (unreadable row ids {ranges(res['lost_measurements']) or 'none'}"
              + (f"; run rows {ranges(res['lost_runs'])}" if res["lost_runs"] else "") + ")")
    elif not res["error"]:
        print("lost: nothing")
    for side in res["side_files"]:
        print(f"{side}: taken in")
    if res["side_rows"] or res["side_unreadable"]:
        print(f"side files: {res['side_rows']} rows, {res['side_added']} added"
              + (f", {res['side_unreadable']} unreadable lines" if res["side_unreadable"] else ""))
    to, db = shlex.quote(str(args.to)), shlex.quote(str(args.db))
    print(f"wrote {args.to}; check it with `python -m harness results check {to}`, then move {db} aside "
          f"and {to} in its place")
    return 0


def cmd_report(args) -> int:
    from ..api import plots_beside
    from ..results.report import write_report
    from ..results.store import ResultStore

    if not Path(args.db).is_file():
        raise HarnessError(f"{args.db}: no results database; run ./run_all.sh first")
    with ResultStore(args.db, readonly=True) as store:  # a store in a read-only folder reports too
        html, md = write_report(store, args.out, run_id=args.run, plots_dir=plots_beside(args.out, args.plots))
    print(html)
    print(md)
    return 0


def cmd_int8_report(args) -> int:
    from ..int8_report import columns, describe, int8_report, parse_frame_size
    from ..output import emit

    quiet = args.json or not sys.stderr.isatty()
    rows = int8_report(args.model, weights=args.weights, data=args.data, sets=csv_list(args.sets),
                       calib_data=calib_folders_of(args), qat_steps=args.qat_steps, qat_lr=args.qat_lr,
                       qat_batch=args.qat_batch, runs=args.runs, frame=parse_frame_size(args.frame_size),
                       threads=args.threads, log=None if quiet else (lambda m: print(m, file=sys.stderr)))
    cols, headers = columns(args.qat_steps > 0)
    emit(rows, cols, args.json, digits={c: 2 for c in cols if c != "images"}, headers=headers)
    if not args.json:
        for line in describe(rows):
            print(line)
    return 0


def cmd_ghost_report(args) -> int:
    from ..ghost_report import describe, ghost_report, rows
    from ..int8_report import parse_frame_size
    from ..numeric import json_safe
    from ..output import emit

    quiet = args.json or not sys.stderr.isatty()
    report = ghost_report(args.model, weights=args.weights, base_weights=args.base_weights, data=args.data,
                          sets=csv_list(args.sets), runs=args.runs, frame=parse_frame_size(args.frame_size),
                          threads=args.threads, log=None if quiet else (lambda m: print(m, file=sys.stderr)))
    if args.json:
        json.dump(json_safe(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table, cols, headers, digits = rows(report)
    emit(table, cols, False, digits=digits, headers=headers)
    for line in describe(report):
        print(line)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("results", help="manage results stores")
    rsub = p.add_subparsers(dest="results_command", metavar="ACTION")
    rsub.required = True
    q = rsub.add_parser("merge", help="merge stores from other devices into one (no duplicates), or bring back "
                                      "the rows a store kept aside (its .unsaved.jsonl side file)")
    q.add_argument("files", nargs="+", help="harness.db files (or .unsaved.jsonl side files) to merge in")
    q.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="the store merged into")
    q.set_defaults(func=cmd_results_merge)
    q = rsub.add_parser("check", help="integrity check of a store, its row counts and its side file's rows "
                                      "(exit status 0: healthy, 1: damaged or rows waiting in the side file)")
    q.add_argument("db", nargs="?", default=str(PROJECT_ROOT / "results" / "harness.db"),
                   help="the store (default results/harness.db); it is only read")
    add_json(q)
    q.set_defaults(func=cmd_results_check)
    q = rsub.add_parser("salvage", help="copy the readable rows of a damaged store (and its side file's rows) "
                                        "into a new store")
    q.add_argument("db", help="the damaged store; it is only read")
    q.add_argument("--to", required=True, help="the new store to write (must not exist)")
    add_json(q)
    q.set_defaults(func=cmd_results_salvage)

    p = sub.add_parser("plot", help="quality-speed (and energy) trade-off figures from the results store")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    p.add_argument("--run", help="only this run id (default: everything in the store)")
    p.add_argument("--out", default=None, help="figures folder (default: a plots/ folder beside --db's folder: the "
                                               "checkout's plots/ for the default)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="the self-contained HTML report (and a Markdown summary) from a store")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    p.add_argument("--run", help="only this run id (default: everything in the store)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "results"), help="folder for report.html/report.md")
    add_plots(p, "--out")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("int8-report", help="FP32 against INT8 (post-training and QAT) of one model: PSNR (RGB "
                                           "and Y) per set and ONNX Runtime CPU latency on a Full-HD frame")
    p.add_argument("--model", default="ABPN_s3", help="model id (default ABPN_s3; QAT needs an ABPN)")
    add_weights(p)
    add_data(p)
    p.add_argument("--sets", help="comma-separated sets, e.g. DIV2K (default: every set found, else embedded)")
    add_calib(p)
    p.add_argument("--qat-steps", type=int, default=0,
                   help="quantization-aware fine-tuning steps on --calib-data patches (default 0: no QAT column)")
    p.add_argument("--qat-lr", type=float, default=5e-5, help="QAT Adam learning rate (default 5e-5)")
    p.add_argument("--qat-batch", type=int, default=16, help="QAT batch of 96-pixel HR patches (default 16)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per graph, the median is reported (default 5)")
    p.add_argument("--frame-size", default="1920x1080", help="output frame timed, WxH (default 1920x1080)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: its own choice)")
    add_json(p)
    p.set_defaults(func=cmd_int8_report)

    p = sub.add_parser("ghost-report", help="a base network against its GhostSR version: params, MACs, ONNX "
                                            "Runtime CPU latency on a Full-HD frame, PSNR/SSIM per set, changes")
    p.add_argument("--model", required=True, help="the GhostSR id, e.g. Ghost-FSRCNN_s2_D56_S12_M4 or Ghost-EDSR_s2")
    p.add_argument("--weights", required=True,
                   help="weights of the ghost network: a file (e.g. the Ghost-<id>.pt that train --init-weights "
                        "writes; a state dict of <id> is ghostified untuned), shipped or init")
    p.add_argument("--base-weights", default="shipped",
                   help="weights of the base network <id>: a file, shipped (the default) or official")
    add_data(p)
    p.add_argument("--sets", help="comma-separated sets, e.g. Set5,Set14 (default: every set found, else embedded); "
                                  "none: no PSNR/SSIM, only params, MACs and latency (untrained weights, e.g. EDSR)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per network, the median is reported (default 5)")
    p.add_argument("--frame-size", default="1920x1080", help="output frame timed, WxH (default 1920x1080)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: its own choice)")
    add_json(p)
    p.set_defaults(func=cmd_ghost_report)
