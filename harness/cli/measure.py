"""Measuring: quality, bench, run-all (the main job), selfcheck, compare, export, doctor."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Tuple

from ..api import BASELINES
from ..errors import HarnessError
from ..export import FORMS as EXPORT_FORMS
from ..results.table import GPU_LATENCIES, gpu_columns, gpu_latencies
from .options import (
    PROJECT_ROOT,
    add_calib,
    add_data,
    add_device,
    add_fresh_process,
    add_ids,
    add_json,
    add_onnx_dir,
    add_plots,
    add_timing,
    add_weights,
    calib_folders_of,
    csv_list,
    device_config,
    model_ids_of,
    scales_of,
    timing_of,
)

QUALITY_COLUMNS = ("model", "scale", "set", "psnr", "ssim", "images")

SPEED_COLUMNS = ("model", "scale", "backend", "precision", "form", "median_ms", "p90_ms", "p99_ms", "fhd_per_s",
                 "ci_halfwidth_pct", "timing_stop", "cov", "cpu_util_pct", "mean_w", "mj_per_frame",
                 "psnr_vs_reference", "status")

SPEED_HEADERS = {"median_ms": "median ms", **GPU_LATENCIES, "p90_ms": "p90 ms", "p99_ms": "p99 ms", "fhd_per_s": "FHD/s",
                 "ci_halfwidth_pct": "+-% (95%)", "timing_stop": "stopped by", "cov": "CoV", "cpu_util_pct": "CPU %",
                 "mean_w": "W", "mj_per_frame": "mJ/frame", "psnr_vs_reference": "vs ref dB"}


def speed_columns(rows) -> Tuple[str, ...]:
    """bench's columns: on a GPU (rows with CUDA-event or end-to-end times) those two after the median."""
    at = SPEED_COLUMNS.index("median_ms") + 1
    return SPEED_COLUMNS[:at] + tuple(gpu_columns(rows)) + SPEED_COLUMNS[at:]


def cmd_quality(args) -> int:
    from ..api import quality_results
    from ..output import emit

    model_ids = model_ids_of(args)
    if not model_ids:
        raise HarnessError("give a model id (several: A B, or --model A,B) or --pool NAME, e.g. quality bicubic-matlab")
    results = quality_results(model_ids, scales_of(args.scale), args.data, csv_list(args.sets), weights=args.weights,
                              progress=not args.json and sys.stderr.isatty(), onnx_dir=args.onnx_dir)
    rows = [r.record(per_image=args.per_image) for r in results]
    if not args.per_image:
        rows = [{k: r[k] for k in QUALITY_COLUMNS} for r in rows]
    emit(rows, QUALITY_COLUMNS, args.json, digits={"psnr": 2, "ssim": 4},
         headers={"psnr": "PSNR (dB)", "ssim": "SSIM"})
    return 0


def report_problems(rows) -> None:
    """Failures and flagged outputs one line each, and why power was not measured (once)."""
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['model']} x{r['scale']}: {r['status']}: {r['reason']}", file=sys.stderr)
    reasons = {json.loads(r["data"]).get("power_reason") for r in rows
               if r["measurement"] == "speed" and r["mean_w"] is None and r["status"] == "ok"}
    for reason in sorted(x for x in reasons if x):
        print(f"power not measured: {reason}", file=sys.stderr)


def cmd_bench(args) -> int:
    from ..api import backend_ready, calib_key, config_key, export_key, export_scales, model_scale_pairs, timing_key
    from ..backends import make_backend
    from ..environment import capture, not_the_device
    from ..exported import resolve_model
    from ..results.store import ResultStore

    profile, cfg = device_config(args)
    model_ids = model_ids_of(args)
    if not model_ids:
        raise HarnessError("give a model id (several: A B, or --model A,B) or --pool NAME, e.g. bench eSR-MAX_s2_K3_C1")
    make_backend(cfg.backend, precision=cfg.precision, device=cfg.target)  # unknown backend/precision: one line
    backend_ready(cfg, args.device)  # its library absent: one line, before the store is touched
    pairs = model_scale_pairs(model_ids, scales_of(args.scale) or export_scales(cfg.onnx_dir))
    for mid, s in pairs:  # fail on a bad id or missing weights before any measurement
        resolve_model(mid, s, cfg.weights, onnx_dir=cfg.onnx_dir)
    store = ResultStore(args.db)
    if args.rounds < 1:
        raise HarnessError(f"--rounds {args.rounds}: give at least 1")
    key = config_key(cfg.device, cfg.backend, cfg.precision, cfg.weights, cfg.form, cfg.frames_dir, pairs,
                     *calib_key(cfg), *export_key(cfg.onnx_dir), *timing_key(timing_of(args), args.rounds))
    environment = capture()
    mismatch = not_the_device(profile, environment)
    if mismatch:
        environment["not_the_device"] = mismatch
        print(f"warning: {mismatch}", file=sys.stderr)
    run_id, resumed = store.start_run(cfg.device, key, command=" ".join(sys.argv), profile=profile,
                                      environment=environment, resume=args.resume)
    if resumed:
        print(f"resuming run {run_id}: {len(store.done_keys(run_id))} measurement(s) already stored", file=sys.stderr)
    tty = not args.json and sys.stderr.isatty()
    try:
        return _bench_run(args, cfg, pairs, store, run_id, tty)
    finally:
        store.close()


def _bench_run(args, cfg, pairs, store, run_id, tty) -> int:
    from ..api import export_times, run_bench
    from ..output import emit

    isolate = False if args.in_process else ("process" if args.fresh_process else "worker")
    records = run_bench(pairs, cfg, store, run_id, isolate=isolate, progress=tty,
                        log=None if tty else (lambda m: print(m, file=sys.stderr, flush=True)),
                        keep_failed=args.keep_failed, rounds=args.rounds)
    if args.export_times:
        print(f"raw times: {export_times(store, run_id, args.export_times)}", file=sys.stderr)
    rows = []
    for r in store.rows("run_id = ? AND measurement = 'speed'", (run_id,)):
        data = json.loads(r["data"] or "{}")
        rows.append(dict(dict(r), ci_halfwidth_pct=data.get("ci_halfwidth_pct"), timing_stop=data.get("timing_stop"),
                         **gpu_latencies(data)))
    csv_path = store.export_csv(Path(args.db).parent / f"speed_{cfg.device}.csv", "run_id = ?", (run_id,))
    columns = speed_columns(rows)
    if args.json:
        emit([dict(json.loads(r["data"]), **{c: r[c] for c in GPU_LATENCIES}) for r in rows], columns, True)
    else:
        emit(rows, columns, False, digits={"median_ms": 2, "p90_ms": 2, "p99_ms": 2, "fhd_per_s": 2, "cov": 3,
                                           "gpu_median_ms": 3, "e2e_median_ms": 2, "ci_halfwidth_pct": 1,
                                           "cpu_util_pct": 0, "mean_w": 2, "mj_per_frame": 1,
                                           "psnr_vs_reference": 1}, headers=SPEED_HEADERS)
        report_problems(rows)
        print(f"run {run_id}: {len(records)} measured now, stored in {args.db}; CSV {csv_path}", file=sys.stderr)
    failed = sum(r["status"] == "failed" for r in rows)
    if failed:
        print(f"{failed} model(s) failed (reasons above, and in {args.db}); fix them and run again with --resume",
              file=sys.stderr)
    return 1 if failed else 0


def cmd_selfcheck(args) -> int:
    from ..output import emit
    from ..selfcheck import LARGE, SMALL, TARGET_PCT, check_model

    _, cfg = device_config(args)
    models = csv_list(args.model) or [SMALL, LARGE]
    rows = [check_model(mid, cfg, runs=args.runs, frames_dir=args.frames) for mid in models]
    emit(rows, ("model", "form", "bare_ms", "runner_ms", "overhead_pct", "within_target", "bare_spread_pct",
                "runner_spread_pct", "power_sampler"), args.json,
         digits={"bare_ms": 3, "runner_ms": 3, "overhead_pct": 2, "bare_spread_pct": 2, "runner_spread_pct": 2},
         headers={"bare_ms": "bare ms/frame", "runner_ms": "runner ms/frame", "overhead_pct": "overhead %",
                  "within_target": f"within {TARGET_PCT:.0f}%", "bare_spread_pct": "bare spread %",
                  "runner_spread_pct": "runner spread %", "power_sampler": "with sampler"})
    if not args.json and rows and not rows[0]["power_sampler"]:
        print(f"power sampler not running: {rows[0]['power_reason']}", file=sys.stderr)
    return 0


def paper_lines(paper: dict) -> list:
    """compare's lines for the model placed on the eSR paper's devices as predicted."""
    from ..predict import DEVICE_NAMES

    if "reason" in paper:
        return [f"not placed on the eSR paper's figures: {paper['reason']}"]
    lines = []
    for device, p in paper.items():
        name = DEVICE_NAMES.get(device, device)
        if "reason" in p:
            lines.append(f"predicted on {name}: none ({p['reason']})")
            continue
        basis = "its family's fit" if p["basis"] == "family" else "the features alone (its family is not in the table)"
        lines.append(f"predicted on {name}: {p['fhd_per_s']:.3g} FHD/s ({p['band_share']:.0%} band "
                     f"{p['low']:.3g}-{p['high']:.3g}; from the eSR authors' measurements, {basis}); figure: "
                     f"{', '.join(f for f in p['files'] if f.endswith('.png')) or 'none'}")
        lines += [f"warning: unlike the predictor's pool on {name}: {w}" for w in p["warnings"]]
    return lines


def cmd_compare(args) -> int:
    """Measure MODEL like the pool (quality + speed into the store), then one verdict line."""
    from ..api import compare

    device_config(args)  # option errors before any work
    result = compare(args.model, device=args.device, scale=scales_of(args.scale) or None, weights=args.weights,
                     data=args.data, sets=csv_list(args.sets), db=args.db, plots=args.plots, backend=args.backend,
                     precision=args.precision, repeats=args.repeats, timeout=args.timeout, frames=args.frames,
                     calib_data=csv_list(args.calib_data), progress=True, command=" ".join(sys.argv))
    if args.json:
        json.dump({k: v for k, v in result.items() if k != "line"}, sys.stdout, indent=2, default=str)
        print()
    else:
        print(result["line"])
        for line in paper_lines(result.get("paper") or {}):
            print(line)
    if result["only_bicubic"]:
        print(f"only bicubic is in {args.db} for {result['device']} x{result['scale']}: run ./run_all.sh --device "
              f"{result['device']} --pool default first to compare with the pool", file=sys.stderr)
    return 0


def cmd_run_all(args) -> int:
    """The main job (:func:`harness.api.run_all`), then its summary table and where everything went."""
    from ..api import plots_beside, run_all, summary_rows
    from ..output import emit
    from ..results.store import ResultStore

    device_config(args)  # option errors (device, --timeout, --repeats) before any work
    run = run_all(device=args.device, pool=args.pool, models=csv_list(args.models), scales=scales_of(args.scale),
                  weights=args.weights, data=args.data, sets=csv_list(args.sets), frames=args.frames, out=args.out,
                  plots=args.plots, resume=args.resume, repeats=args.repeats, timeout=args.timeout,
                  backend=args.backend, precision=args.precision, calib_data=csv_list(args.calib_data),
                  onnx_dir=args.onnx_dir, progress=True, command=" ".join(sys.argv), keep_failed=args.keep_failed,
                  warmup=args.warmup, iterations=args.iterations, duration=args.duration, threads=args.threads,
                  ci_target=args.ci_target, rounds=args.rounds, export_times_to=args.export_times,
                  pipeline=args.pipeline or "model", isolation="process" if args.fresh_process else "worker")
    rows = summary_rows(run.table)
    sets = [c.split(":", 1)[1] for c in run.table.columns if c.startswith("psnr:")]
    columns = ["model", "scale"] + [f"psnr:{s}" for s in sets] + ["fhd_per_s", "median_ms", "mj_per_frame",
                                                                   "form", "status"]
    digits = dict({c: 2 for c in columns if c.startswith("psnr")}, fhd_per_s=2, median_ms=2, mj_per_frame=1)
    if run.emulated and not args.json:
        print(f"EMULATED ({run.emulated}): FHD/s, median ms and mJ/frame below are not the device's")
    emit(rows, columns, args.json, digits=digits,
         headers=dict({f"psnr:{s}": f"PSNR {s}" for s in sets}, fhd_per_s="FHD/s", median_ms="median ms",
                      mj_per_frame="mJ/frame"))
    with ResultStore(run.db, readonly=True) as stored:
        report_problems(stored.rows("run_id = ?", (run.run_id,)))
    plots = plots_beside(args.out, args.plots)
    print(f"{len(run.figures)} figure files in {plots}; report {run.report} (and report.md)", file=sys.stderr)
    print(f"results in {run.db} (run {run.run_id}), {run.csv}; {run.seconds:.0f} s", file=sys.stderr)
    if run.emulated:
        print(f"EMULATED ({run.emulated}): the FHD/s, latency and power above are not the device's", file=sys.stderr)
    failed = int((~run.table["status"].isin(["ok", "flagged"])).sum()) if len(run.table) else 0
    if failed:
        print(f"{failed} model(s) failed (reasons above); fix them and run again with --resume: the failed "
              f"ones are measured again, the rest kept", file=sys.stderr)
    return 1 if failed else 0


def cmd_doctor(args) -> int:
    from ..doctor import doctor

    return doctor(args.device, as_json=args.json, capture_dir=args.capture, replay_dir=args.replay,
                  seconds=args.seconds)


def cmd_export(args) -> int:
    from ..exported import export_models

    precisions = csv_list(args.precision) or ["fp32"]
    from ..export import FORMS

    forms = csv_list(args.forms) or list(FORMS)
    for f in forms:
        if f not in FORMS:
            raise HarnessError(f"--forms {args.forms}: give forms among {','.join(FORMS)} (docs/models.md)")
    from ..api import sweep_pairs

    _, pairs, weights_of = sweep_pairs(csv_list(args.models), args.pool, scales_of(args.scale), args.weights)
    quiet = args.json
    manifest = export_models(pairs, args.out, weights=args.weights, weights_of=weights_of, forms=forms,
                             precisions=precisions, calib_data=calib_folders_of(args),
                             log=None if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    if args.json:
        json.dump(manifest, sys.stdout, indent=1)
        print()
        return 0
    files = sum(len(e["files"]) for e in manifest["models"])
    print(f"{args.out}: {len(manifest['models'])} models, {files} ONNX files and manifest.json; copy the folder to "
          f"the device and run: ./run_all.sh --device DEVICE --onnx-dir FOLDER")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("quality", help="PSNR/SSIM of models on test sets (standard Y-channel protocol)")
    add_ids(p)
    p.add_argument("--model", help="model id(s), comma-separated (python -m harness zoo list)")
    p.add_argument("--pool", help="a named pool of models: all, default, paper-front, methods (or a "
                                   "comma-separated union)")
    p.add_argument("--scale", help="scale(s) for scale-free ids such as bicubic-matlab, and the pool's "
                                   "scales (default 2,3,4)")
    add_weights(p)
    add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found under --data, else embedded)")
    p.add_argument("--per-image", action="store_true", help="include per-image scores (with --json)")
    add_onnx_dir(p)
    add_json(p)
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("bench", help="speed (FHD/s), latency percentiles and power on the 14 Full-HD frames")
    add_device(p)
    add_ids(p)
    p.add_argument("--model", help="model id(s), comma-separated")
    p.add_argument("--pool", help="a named pool: all, default, paper-front, methods (or a comma-separated union)")
    p.add_argument("--scale", help="scales for scale-free ids and pools (default 2,3,4)")
    p.add_argument("--form", default="auto", choices=("auto",) + EXPORT_FORMS,
                   help="graph form for ONNX backends (auto: time every form the model has, keep the fastest; "
                        "docs/models.md)")
    add_weights(p)
    add_timing(p)
    p.add_argument("--resume", action="store_true", help="continue the newest run of the same configuration "
                                                         "(and data): measure what it lacks and what failed")
    p.add_argument("--keep-failed", action="store_true", help="with --resume: keep failed rows as they are "
                                                              "instead of measuring them again")
    p.add_argument("--in-process", action="store_true", help="measure in this process (no isolation; for debugging)")
    add_fresh_process(p)
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    add_onnx_dir(p)
    add_json(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("selfcheck", help="the harness's own timing overhead against a bare loop, and the spread")
    add_device(p)
    p.add_argument("--model", help="models to check (default: a small and a large one)")
    p.add_argument("--runs", type=int, default=3, help="alternating runs of each way (default 3)")
    add_json(p)
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser("compare", help="measure a new model like the pool and say whether it beats bicubic")
    p.add_argument("model", help="an ONNX file (1-channel Y or 3-channel RGB), module:Class, or a zoo id")
    p.add_argument("--scale", help="the scale (read from an ONNX file; needed for module:Class)")
    p.add_argument("--weights", help="weights for module:Class (a state dict file); zoo ids: shipped (default) or official")
    add_device(p)
    add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found, else embedded)")
    p.add_argument("--repeats", type=int, help="at most this many timed passes (profile default)")
    p.add_argument("--timeout", type=float, help="seconds per model (profile default)")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    add_plots(p, "--db")
    add_json(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("run-all", help="the main job (what ./run_all.sh runs)")
    add_device(p)
    p.add_argument("--models", help=f"model ids, comma-separated; '{{scale}}' is filled in; ID=WEIGHTS gives one "
                                    f"model its own weights file (e.g. BSRN_s{{scale}}=DIR/net_g_BSRN_x{{scale}}.pth); "
                                    f"a fixed-scale id runs at its own scale (the baselines {','.join(BASELINES)} "
                                    f"are always included)")
    p.add_argument("--pool", default=None,
                   help="also every model of this pool: default (the eSR cut; its weights ship with the project), "
                        "methods (ABPN, GhostSR, ClassSR, ... whose trained weights ship), paper-front, all (needs "
                        "--weights official), a comma-separated union, or none (the baselines and --models only); "
                        "default: default,methods (default alone with --weights other than shipped)")
    add_weights(p)
    p.add_argument("--scale", help="scales (default 2,3,4)")
    add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found, else embedded)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "results"), help="results folder (default: results/)")
    add_plots(p, "--out")
    p.add_argument("--resume", action="store_true", help="continue the newest run of the same configuration "
                                                         "(and data): measure what it lacks and what failed")
    p.add_argument("--keep-failed", action="store_true", help="with --resume: keep failed rows as they are "
                                                              "instead of measuring them again")
    add_timing(p)
    add_fresh_process(p)
    add_onnx_dir(p)
    add_json(p)
    p.set_defaults(func=cmd_run_all)

    p = sub.add_parser("doctor", help="is this device ready? Python, venv, libraries, CUDA, power meters, clocks, "
                                      "throttling, disk, data: ok/absent/wrong with the fix")
    p.add_argument("--device", default="cpu",
                   help="device profile name or path (harness/profiles/*.toml or your devices/*.toml; default cpu)")
    add_json(p)
    p.add_argument("--capture", metavar="DIR", help="also save what a test needs from this device (sensor files, "
                                                    "command outputs, tegrastats lines) into DIR, for a bug report")
    p.add_argument("--replay", metavar="DIR", help="check a folder written by --capture instead of this machine")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of tegrastats lines in a capture (default 3)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("export", help="write models as verified ONNX files plus a manifest, to measure them on a "
                                      "device without PyTorch (run-all --onnx-dir DIR)")
    p.add_argument("--out", required=True, metavar="DIR", help="the export folder (created; an existing one is "
                                                               "updated, other models' entries kept)")
    p.add_argument("--models", help="model ids, comma-separated, as in run-all ('{scale}' filled in, ID=WEIGHTS); "
                                    "the bicubic networks Bicubic_s{scale} are always included")
    p.add_argument("--pool", default=None, help="also every model of this pool, as in run-all (default: "
                                                "default,methods; none: the baselines and --models only)")
    add_weights(p)
    p.add_argument("--scale", help="scales (default 2,3,4)")
    p.add_argument("--forms", default=None, help=f"export forms (default all the model has among "
                                                 f"{','.join(EXPORT_FORMS)}: the device times them and keeps the "
                                                 f"fastest, as run-all does)")
    p.add_argument("--precision", default="fp32", help="fp32 (default) or fp32,int8 (adds QDQ INT8 graphs for "
                                                       "--precision int8 on ONNX Runtime)")
    add_calib(p)
    add_json(p)
    p.set_defaults(func=cmd_export)
