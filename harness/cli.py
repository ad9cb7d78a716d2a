"""Command line: ``python -m harness <command>`` (also the ``harness`` script).

Every command that prints a table takes ``--json``. Errors the user can fix print one
line (``error: ...``) and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUALITY_COLUMNS = ("model", "scale", "set", "psnr", "ssim", "images")
BASELINES = ("bicubic-matlab", "bicubic-opencv", "Bicubic_s{scale}")


def _csv_list(text: Optional[str]) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _scales(text: Optional[str]) -> List[int]:
    try:
        return [int(s) for s in _csv_list(text)]
    except ValueError:
        raise HarnessError(f"--scale {text}: give integers such as 2 or 2,3,4") from None


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")


def _add_device(p: argparse.ArgumentParser) -> None:
    """The options that choose where and how models run (bench, selfcheck, run-all)."""
    p.add_argument("--device", default="cpu", help="device profile name or path (devices/*.toml; default cpu)")
    p.add_argument("--backend", help="override the profile's backend: onnxruntime, tensorrt, torch")
    p.add_argument("--precision", help="override the profile's precision: fp32, fp16, int8")
    p.add_argument("--frames", metavar="DIR", help="folder of Full-HD frames (default: embedded mosaics)")
    _add_calib(p)


def _add_calib(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-data", metavar="DIR[,DIR]",
                   help="INT8 calibration images (training images, e.g. DIV2K_train_HR), for --precision int8 on "
                        "ONNX Runtime (QDQ) and TensorRT (entropy calibrator); default: the embedded images")


def _calib_folders(args) -> Optional[List[str]]:
    """The --calib-data folders (each must exist), or None for the embedded images."""
    from .api import calib_folders

    return calib_folders(_csv_list(getattr(args, "calib_data", None)))


def _config(args):
    """(profile, BenchConfig) of the device options on the command line."""
    from .api import bench_config

    timeout = getattr(args, "timeout", None)
    if timeout is not None and timeout <= 0:
        raise HarnessError(f"--timeout {timeout:g}: give a positive number of seconds")
    repeats = getattr(args, "repeats", None)
    if repeats is not None and repeats < 1:
        raise HarnessError(f"--repeats {repeats}: give at least 1")
    return bench_config(args.device, backend=getattr(args, "backend", None),
                        precision=getattr(args, "precision", None), weights=getattr(args, "weights", None),
                        form=getattr(args, "form", None), repeats=repeats, timeout_s=timeout,
                        frames_dir=getattr(args, "frames", None), calib_data=_csv_list(getattr(args, "calib_data", None)),
                        onnx_dir=getattr(args, "onnx_dir", None))


def _add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="shipped",
                   help="weights of the learned models: shipped (trained by the project, in the package; the "
                        "default, for the default pool), official (imported with zoo import-esr or zoo "
                        "import-bsrn), init "
                        "(untrained), or a weights file; bicubic baselines ignore it")


def _add_onnx_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx-dir", metavar="DIR",
                   help="run the models of an export folder (python -m harness export --out DIR, on a machine with "
                        "PyTorch): the device needs no PyTorch")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR",
                   help="folder holding test sets as DIR/<Set>/HR/*.png (default: $HARNESS_DATA; "
                        "without either, the embedded scikit-image set)")


# --------------------------------------------------------------------------- quality

def _model_ids(args) -> List[str]:
    """Ids from --model and/or --pool (a pool is filtered to --scale when given)."""
    from .models import id_scale
    from .models.pools import pool_ids

    ids = _csv_list(getattr(args, "model", None))
    pool = getattr(args, "pool", None)
    if pool:
        scales = _scales(getattr(args, "scale", None))
        ids += [i for i in pool_ids(pool) if not scales or id_scale(i) in scales]
    return ids


def cmd_quality(args) -> int:
    from .api import quality_results
    from .output import emit

    model_ids = _model_ids(args)
    if not model_ids:
        raise HarnessError("give --model ID (several: --model A,B) or --pool NAME, e.g. --model bicubic-matlab")
    results = quality_results(model_ids, _scales(args.scale), args.data, _csv_list(args.sets), weights=args.weights,
                              progress=not args.json and sys.stderr.isatty(), onnx_dir=args.onnx_dir)
    rows = [r.record(per_image=args.per_image) for r in results]
    if not args.per_image:
        rows = [{k: r[k] for k in QUALITY_COLUMNS} for r in rows]
    emit(rows, QUALITY_COLUMNS, args.json, digits={"psnr": 2, "ssim": 4},
         headers={"psnr": "PSNR (dB)", "ssim": "SSIM"})
    return 0


# --------------------------------------------------------------------------- data

def cmd_data_list(args) -> int:
    from .datasets import EMBEDDED, SOURCES, STANDARD_SETS, data_root, embedded_set, find_set
    from .output import emit

    root = data_root(args.data)
    rows = []
    for name in STANDARD_SETS:
        row = {"set": name, "images": 0, "where": "", "download": ""}
        source = SOURCES.get(name)
        row["download"] = f"data fetch {name}" if source and source.url else "by request (see README)"
        if root is not None:
            try:
                found = find_set(root, name)
                row.update(images=len(found), where=found.origin)
            except HarnessError:
                row["where"] = "missing"
        else:
            row["where"] = "no --data / $HARNESS_DATA"
        rows.append(row)
    emb = embedded_set()
    rows.append({"set": EMBEDDED, "images": len(emb), "where": emb.origin, "download": "bundled"})
    emit(rows, ("set", "images", "where", "download"), args.json)
    return 0


def cmd_data_fetch(args) -> int:
    from .datasets import ENV_DATA, fetch

    target = args.data or os.environ.get(ENV_DATA) or str(PROJECT_ROOT / "data")
    dest = fetch(args.name, Path(target), url=args.url, progress=not args.quiet)
    count = sum(1 for p in dest.iterdir() if p.is_file())
    print(f"{args.name}: {count} HR images in {dest}" + ("" if args.data or os.environ.get(ENV_DATA)
                                                         else f" (use --data {target})"))
    return 0


# --------------------------------------------------------------------------- frames

def cmd_frames(args) -> int:
    from .frames import FHD_HEIGHT, FHD_WIDTH, load_frames
    from .imageio import save_rgb
    from .output import emit

    frames = load_frames(args.frames)
    rows = []
    for f in frames:
        rows.append({"frame": f.name, "source": f.source, "size": f"{f.rgb.shape[1]}x{f.rgb.shape[0]}",
                     "lr_x2": f"{FHD_WIDTH // 2}x{FHD_HEIGHT // 2}", "lr_x3": f"{FHD_WIDTH // 3}x{FHD_HEIGHT // 3}",
                     "lr_x4": f"{FHD_WIDTH // 4}x{FHD_HEIGHT // 4}"})
        if args.save:
            save_rgb(Path(args.save) / f"{f.name.replace('#', '_')}.png", f.rgb)
    emit(rows, ("frame", "source", "size", "lr_x2", "lr_x3", "lr_x4"), args.json)
    return 0


# --------------------------------------------------------------------------- zoo

def _param_count(model) -> Optional[int]:
    module = getattr(model, "module", None)
    if module is None:
        return None
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad) +
               sum(p.numel() for p in module.parameters() if not p.requires_grad))


def cmd_zoo_list(args) -> int:
    from .models import SCALES, families, id_scale, resolve
    from .models.pools import pool_ids
    from .output import emit

    if args.shipped:
        from .train.ship import acceptance_rows
        from .weights import shipped_manifest

        rows = acceptance_rows(shipped_manifest())
        columns = ["model", "steps", "cpu_min", "gpu_min", "set5", "ours", "official", "delta", "tolerance", "passes"]
        if any(r["reference"] for r in rows):  # methods without official weights: read against their base network
            columns += ["reference", "reference_psnr"]
        emit(rows, columns, args.json,
             digits={"cpu_min": 1, "gpu_min": 1, "set5": 2, "ours": 2, "official": 2, "delta": 2, "tolerance": 1,
                     "reference_psnr": 2},
             headers={"cpu_min": "CPU min", "gpu_min": "GPU min", "set5": "Set5 dB", "ours": "Set14 dB",
                      "official": "official Set14", "delta": "delta dB", "tolerance": "tol dB", "passes": "within",
                      "reference": "vs (shipped)", "reference_psnr": "its Set14"})
        return 0
    scales = _scales(args.scale) or list(SCALES)
    if args.pool:
        pairs = [(i, id_scale(i)) for i in pool_ids(args.pool) if id_scale(i) in scales]
    else:
        pairs = [(mid, s) for family in families() for s in scales for mid in family.ids(s)]
    rows = []
    for mid, s in progress_list(pairs, "zoo", args.json):
        model = resolve(mid, s)
        row = {"id": mid, "family": model.family, "scale": s, "input": model.input_space,
               "params": _param_count(model)}
        row.update(_complexity(model))
        rows.append(row)
    emit(rows, ("id", "family", "scale", "input", "params", "macs_per_fhd"), args.json,
         headers={"macs_per_fhd": "MACs/FHD frame"})
    return 0


def cmd_zoo_ship(args) -> int:
    from .train.ship import ship

    manifest = ship(args.train_dir, _csv_list(args.models) or None, args.data, _csv_list(args.sets),
                    show_progress=sys.stderr.isatty())
    t = manifest["totals"]
    gpu = f" and {t['gpu_hours']:.2f} GPU hours" if t.get("gpu_hours") else ""
    print(f"shipped {t['models']} models ({t['cpu_hours']:.2f} CPU hours{gpu} of training); {t['passing']} within "
          f"tolerance of the official weights" + (f"; below: {', '.join(t['failing'])}" if t["failing"] else ""))
    return 0


def progress_list(items, desc, quiet):
    from .progress import progress

    return progress(items, total=len(items), desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False)


def _complexity(model) -> dict:
    """MACs per Full-HD output frame (and bytes moved) where the model is a network."""
    module = getattr(model, "module", None)
    if module is None:
        return {"macs_per_fhd": None}
    try:
        from .models.complexity import complexity
    except ImportError:  # pragma: no cover - complexity lands with the export stage
        return {"macs_per_fhd": None}
    info = complexity(module, model.scale, channels=model.channels)
    return {"macs_per_fhd": info["macs_per_fhd"], "bytes_per_fhd": info["bytes_per_fhd"]}


def cmd_zoo_import_esr(args) -> int:
    from .weights import import_esr

    report = import_esr(args.path, show_progress=sys.stderr.isatty())
    print(report.summary())
    return 1 if report.mismatched else 0


def cmd_zoo_import_bsrn(args) -> int:
    from .weights import import_bsrn

    report = import_bsrn(args.path, show_progress=sys.stderr.isatty())
    print(report.summary())
    return 1 if report.mismatched else 0


# --------------------------------------------------------------------------- bench

SPEED_COLUMNS = ("model", "scale", "backend", "precision", "form", "median_ms", "p90_ms", "p99_ms", "fhd_per_s",
                 "cov", "cpu_util_pct", "mean_w", "mj_per_frame", "psnr_vs_reference", "status")
SPEED_HEADERS = {"median_ms": "median ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms", "fhd_per_s": "FHD/s",
                 "cov": "CoV", "cpu_util_pct": "CPU %", "mean_w": "W", "mj_per_frame": "mJ/frame",
                 "psnr_vs_reference": "vs ref dB"}


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
    from .api import calib_key, config_key, export_key, export_scales, model_scale_pairs, run_bench
    from .backends import make_backend
    from .environment import capture
    from .exported import resolve_model
    from .output import emit
    from .results.store import ResultStore

    profile, cfg = _config(args)
    model_ids = _model_ids(args)
    if not model_ids:
        raise HarnessError("give --model ID (several: --model A,B) or --pool NAME")
    make_backend(cfg.backend, precision=cfg.precision, device=cfg.target)  # unknown backend/precision: one line
    pairs = model_scale_pairs(model_ids, _scales(args.scale) or export_scales(cfg.onnx_dir))
    for mid, s in pairs:  # fail on a bad id or missing weights before any measurement
        resolve_model(mid, s, cfg.weights, onnx_dir=cfg.onnx_dir)
    store = ResultStore(args.db)
    key = config_key(cfg.device, cfg.backend, cfg.precision, cfg.weights, cfg.form, cfg.frames_dir, pairs,
                     *calib_key(cfg), *export_key(cfg.onnx_dir))
    run_id, resumed = store.start_run(cfg.device, key, command=" ".join(sys.argv), profile=profile,
                                      environment=capture(), resume=args.resume)
    if resumed:
        print(f"resuming run {run_id}: {len(store.done_keys(run_id))} measurement(s) already stored", file=sys.stderr)
    tty = not args.json and sys.stderr.isatty()
    records = run_bench(pairs, cfg, store, run_id, isolate=not args.in_process, progress=tty,
                        log=None if tty else (lambda m: print(m, file=sys.stderr, flush=True)))
    rows = [dict(r) for r in store.rows("run_id = ? AND measurement = 'speed'", (run_id,))]
    csv_path = store.export_csv(Path(args.db).parent / f"speed_{cfg.device}.csv", "run_id = ?", (run_id,))
    if args.json:
        emit([json.loads(r["data"]) for r in rows], SPEED_COLUMNS, True)
    else:
        emit(rows, SPEED_COLUMNS, False, digits={"median_ms": 2, "p90_ms": 2, "p99_ms": 2, "fhd_per_s": 2, "cov": 3,
                                                "cpu_util_pct": 0, "mean_w": 2, "mj_per_frame": 1,
                                                "psnr_vs_reference": 1}, headers=SPEED_HEADERS)
        report_problems(rows)
        print(f"run {run_id}: {len(records)} measured now, stored in {args.db}; CSV {csv_path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- selfcheck

def cmd_selfcheck(args) -> int:
    from .output import emit
    from .selfcheck import LARGE, SMALL, TARGET_PCT, check_model

    _, cfg = _config(args)
    models = _csv_list(args.model) or [SMALL, LARGE]
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


# --------------------------------------------------------------------------- plot

def cmd_plot(args) -> int:
    from .results.plots import draw_all
    from .results.store import ResultStore

    if not Path(args.db).is_file():
        raise HarnessError(f"{args.db}: no results database; run ./run_all.sh or python -m harness bench first")
    files = draw_all(ResultStore(args.db), args.out, run_id=args.run)
    if not files:
        raise HarnessError(f"{args.db} holds no model with both speed and quality measured; run ./run_all.sh")
    for f in files:
        print(f)
    return 0


# --------------------------------------------------------------------------- upscale, compare, results

def cmd_upscale(args) -> int:
    from .models import resolve
    from .upscale import upscale_files

    model = resolve(args.model, _scales(args.scale)[0] if args.scale else None, args.weights)
    for path in upscale_files(model, args.inputs, args.output):
        print(path)
    return 0


def cmd_compare(args) -> int:
    """Measure MODEL like the pool (quality + speed into the store), then one verdict line."""
    from .api import calib_key, config_key, run_bench
    from .compare import verdict, verdict_line
    from .datasets import data_root, resolve_sets
    from .environment import capture
    from .models import resolve
    from .results.plots import collect, draw_all
    from .quality import QualityEvaluator
    from .results.store import ResultStore

    profile, cfg = _config(args)
    weights = args.weights or ("init" if ":" in args.model else "shipped")
    cfg.weights = weights
    model = resolve(args.model, _scales(args.scale)[0] if args.scale else None, weights)
    baseline = resolve(f"Bicubic_s{model.scale}")
    sets = resolve_sets(data_root(args.data), _csv_list(args.sets))
    store = ResultStore(args.db)
    run_id, _ = store.start_run(cfg.device, config_key("compare", args.model, weights, cfg.device, cfg.backend,
                                                       *calib_key(cfg)),
                                command=" ".join(sys.argv), profile=profile, environment=capture())
    evaluator = QualityEvaluator(show_progress=sys.stderr.isatty())
    known = {(p["model"], p["scale"]) for p in collect(store)
             if (p["device"], p["backend"], p["precision"]) == (cfg.device, cfg.backend, cfg.precision)}
    todo = [model] + ([] if (baseline.id, baseline.scale) in known else [baseline])
    for m in todo:
        for image_set in sets:
            rec = evaluator.evaluate(m, image_set).record()
            rec.update(device=cfg.device, backend="torch", precision="fp32", family=m.family, status="ok")
            store.add(run_id, f"quality:{image_set.name}", rec)
    run_bench([(args.model if m is model else m.id, m.scale) for m in todo], cfg, store, run_id,
              progress=sys.stderr.isatty())
    points = collect(store)
    mine = next((p for p in points if p["model"] == model.id and p["scale"] == model.scale
                 and (p["device"], p["backend"], p["precision"]) == (cfg.device, cfg.backend, cfg.precision)), None)
    if mine is None:
        report_problems(store.rows("run_id = ?", (run_id,)))
        raise HarnessError(f"{args.model} could not be measured on {cfg.device}/{cfg.backend} (see above)")
    result = verdict(mine, points)
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        print()
    else:
        print(verdict_line(result))
    if result["compared_with"] <= 1:
        print(f"only bicubic is in {args.db} for {cfg.device} x{model.scale}: run ./run_all.sh --device {cfg.device} "
              f"--pool default first to compare with the pool", file=sys.stderr)
    draw_all(store, args.plots)
    return 0


def cmd_results_merge(args) -> int:
    from .results.store import ResultStore

    store = ResultStore(args.db)
    for path in args.files:
        if not Path(path).is_file():
            raise HarnessError(f"{path}: no such results database")
        added, present = store.merge(path)
        print(f"{path}: {added} rows added, {present} already present")
    return 0


def cmd_report(args) -> int:
    from .results.report import write_report
    from .results.store import ResultStore

    if not Path(args.db).is_file():
        raise HarnessError(f"{args.db}: no results database; run ./run_all.sh first")
    html, md = write_report(ResultStore(args.db), args.out, run_id=args.run, plots_dir=args.plots)
    print(html)
    print(md)
    return 0


# --------------------------------------------------------------------------- doctor

def cmd_doctor(args) -> int:
    from .doctor import doctor

    return doctor(args.device, as_json=args.json, capture_dir=args.capture, replay_dir=args.replay,
                  seconds=args.seconds)


# --------------------------------------------------------------------------- export

def cmd_export(args) -> int:
    from .exported import export_models

    precisions = _csv_list(args.precision) or ["fp32"]
    forms = _csv_list(args.forms) or ["naive", "fast"]
    for f in forms:
        if f not in ("naive", "fast"):
            raise HarnessError(f"--forms {args.forms}: give naive, fast or naive,fast")
    from .api import sweep_pairs

    _, pairs, weights_of = sweep_pairs(_csv_list(args.models), args.pool, _scales(args.scale), args.weights)
    quiet = args.json
    manifest = export_models(pairs, args.out, weights=args.weights, weights_of=weights_of, forms=forms,
                             precisions=precisions, calib_data=_calib_folders(args),
                             log=None if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    if args.json:
        json.dump(manifest, sys.stdout, indent=1)
        print()
        return 0
    files = sum(len(e["files"]) for e in manifest["models"])
    print(f"{args.out}: {len(manifest['models'])} models, {files} ONNX files and manifest.json; copy the folder to "
          f"the device and run: ./run_all.sh --device DEVICE --onnx-dir FOLDER")
    return 0


# --------------------------------------------------------------------------- int8-report

def cmd_int8_report(args) -> int:
    from .int8_report import columns, describe, int8_report, parse_frame_size
    from .output import emit

    quiet = args.json or not sys.stderr.isatty()
    rows = int8_report(args.model, weights=args.weights, data=args.data, sets=_csv_list(args.sets),
                       calib_data=_calib_folders(args), qat_steps=args.qat_steps, qat_lr=args.qat_lr,
                       qat_batch=args.qat_batch, runs=args.runs, frame=parse_frame_size(args.frame_size),
                       threads=args.threads, log=None if quiet else (lambda m: print(m, file=sys.stderr)))
    cols, headers = columns(args.qat_steps > 0)
    emit(rows, cols, args.json, digits={c: 2 for c in cols if c != "images"}, headers=headers)
    if not args.json:
        for line in describe(rows):
            print(line)
    return 0


# --------------------------------------------------------------------------- ghost-report

def cmd_ghost_report(args) -> int:
    from .ghost_report import describe, ghost_report, rows
    from .int8_report import parse_frame_size
    from .output import _finite, emit

    quiet = args.json or not sys.stderr.isatty()
    report = ghost_report(args.model, weights=args.weights, base_weights=args.base_weights, data=args.data,
                          sets=_csv_list(args.sets), runs=args.runs, frame=parse_frame_size(args.frame_size),
                          threads=args.threads, log=None if quiet else (lambda m: print(m, file=sys.stderr)))
    if args.json:
        json.dump(_finite(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table, cols, headers, digits = rows(report)
    emit(table, cols, False, digits=digits, headers=headers)
    for line in describe(report):
        print(line)
    return 0


# --------------------------------------------------------------------------- run-all

def cmd_run_all(args) -> int:
    """The main job (:func:`harness.api.run_all`), then its summary table and where everything went."""
    from .api import run_all, summary_rows
    from .output import emit
    from .results.store import ResultStore

    _config(args)  # option errors (device, --timeout, --repeats) before any work
    run = run_all(device=args.device, pool=args.pool, models=_csv_list(args.models), scales=_scales(args.scale),
                  weights=args.weights, data=args.data, sets=_csv_list(args.sets), frames=args.frames, out=args.out,
                  plots=args.plots, resume=args.resume, repeats=args.repeats, timeout=args.timeout,
                  backend=args.backend, precision=args.precision, calib_data=_csv_list(args.calib_data),
                  onnx_dir=args.onnx_dir, progress=True, command=" ".join(sys.argv))
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
    report_problems(ResultStore(run.db).rows("run_id = ?", (run.run_id,)))
    print(f"{len(run.figures)} figure files in {args.plots}; report {run.report} (and report.md)", file=sys.stderr)
    print(f"results in {run.db} (run {run.run_id}), {run.csv}; {run.seconds:.0f} s", file=sys.stderr)
    if run.emulated:
        print(f"EMULATED ({run.emulated}): the FHD/s, latency and power above are not the device's", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness",
                                     description="Benchmark super-resolution models on edge devices: "
                                                 "quality (PSNR/SSIM), speed (Full-HD frames/s), power.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("quality", help="PSNR/SSIM of models on test sets (standard Y-channel protocol)")
    p.add_argument("--model", help="model id(s), comma-separated (python -m harness zoo list)")
    p.add_argument("--pool", help="a named pool of models: all, default, paper-front, methods (or a "
                                   "comma-separated union)")
    p.add_argument("--scale", help="scale(s) for scale-free ids such as bicubic-matlab, and the pool's "
                                   "scales (default 2,3,4)")
    _add_weights(p)
    _add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found under --data, else embedded)")
    p.add_argument("--per-image", action="store_true", help="include per-image scores (with --json)")
    _add_onnx_dir(p)
    _add_json(p)
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("data", help="list or download test sets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    q = dsub.add_parser("list", help="which test sets are present")
    _add_data(q)
    _add_json(q)
    q.set_defaults(func=cmd_data_list)
    q = dsub.add_parser("fetch", help="download a test set (hash-checked) into DATA/<Set>/HR")
    q.add_argument("name", help="Set5, Set14, BSD100, Urban100 or DIV2K")
    q.add_argument("--data", metavar="DIR", help="data folder (default: $HARNESS_DATA, else ./data)")
    q.add_argument("--url", help="a mirror of the same archive (http(s):// or file://); the pinned hash is still checked")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_data_fetch)

    p = sub.add_parser("frames", help="the 14 Full-HD frames of the speed benchmark")
    p.add_argument("--frames", metavar="DIR", help="folder of Full-HD (or larger) images; default: embedded mosaics")
    p.add_argument("--save", metavar="DIR", help="also write the frames as PNG into DIR")
    _add_json(p)
    p.set_defaults(func=cmd_frames)

    p = sub.add_parser("zoo", help="the models the harness knows")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True
    q = zsub.add_parser("list", help="model ids with family, scale, parameters and MACs per Full-HD frame")
    q.add_argument("--pool", help="only this pool: all, default, paper-front, methods (or a comma-separated union)")
    q.add_argument("--scale", help="only these scales (default 2,3,4)")
    q.add_argument("--shipped", action="store_true", help="the shipped weights instead: training cost and "
                                                         "Set5/Set14 PSNR against the official weights")
    _add_json(q)
    q.set_defaults(func=cmd_zoo_list)
    q = zsub.add_parser("ship", help="put weights trained by 'train' into the package (--weights shipped) with "
                                     "their provenance and acceptance figures in its manifest")
    q.add_argument("train_dir", metavar="DIR", help="the --out folder of python -m harness train --pool (DIR/<id>/)")
    q.add_argument("--models", help="only these ids (default: every finished run in DIR)")
    q.add_argument("--data", metavar="DIR", help="folder holding Set5/Set14 (DIR/<Set>/HR) to measure the "
                                                 "acceptance figures; without it they are kept only for unchanged files")
    q.add_argument("--sets", default="Set5,Set14", help="sets measured (default Set5,Set14; Set14 decides acceptance)")
    q.set_defaults(func=cmd_zoo_ship)
    q = zsub.add_parser("import-esr", help="verify (SHA-256) and store the official eSR weights for --weights official")
    q.add_argument("path", help="a folder of eSR .model files (searched recursively) or the pnavarre/eSR zip archive")
    q.set_defaults(func=cmd_zoo_import_esr)
    q = zsub.add_parser("import-bsrn", help="verify (SHA-256) and store the official BSRN weights for --weights official")
    q.add_argument("path", help="a folder holding net_g_BSRN_x{2,3,4}.pth (searched recursively; xiaom233/BSRN "
                                "experiments/pretrained_models/) or the repository's zip archive")
    q.set_defaults(func=cmd_zoo_import_bsrn)

    p = sub.add_parser("bench", help="speed (FHD/s), latency percentiles and power on the 14 Full-HD frames")
    _add_device(p)
    p.add_argument("--model", help="model id(s), comma-separated")
    p.add_argument("--pool", help="a named pool: all, default, paper-front, methods (or a comma-separated union)")
    p.add_argument("--scale", help="scales for scale-free ids and pools (default 2,3,4)")
    p.add_argument("--form", default="auto", choices=("auto", "fast", "naive"),
                   help="graph form for ONNX backends (auto: time both, keep the faster)")
    _add_weights(p)
    p.add_argument("--repeats", type=int, help="at most this many timed passes over the frames (profile default)")
    p.add_argument("--timeout", type=float, help="seconds per model before it is recorded as hung (profile default)")
    p.add_argument("--resume", action="store_true", help="continue the newest run of the same configuration")
    p.add_argument("--in-process", action="store_true", help="measure in this process (no isolation; for debugging)")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    _add_onnx_dir(p)
    _add_json(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("selfcheck", help="the harness's own timing overhead against a bare loop, and the spread")
    _add_device(p)
    p.add_argument("--model", help="models to check (default: a small and a large one)")
    p.add_argument("--runs", type=int, default=3, help="alternating runs of each way (default 3)")
    _add_json(p)
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser("upscale", help="upscale images with a model (Y models: colour via bicubic CbCr)")
    p.add_argument("--model", required=True, help="model id, ONNX file or module:Class")
    p.add_argument("--scale", help="scale for scale-free ids")
    _add_weights(p)
    p.add_argument("inputs", nargs="+", help="images or folders of images")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("compare", help="measure a new model like the pool and say whether it beats bicubic")
    p.add_argument("model", help="an ONNX file (1-channel Y or 3-channel RGB), module:Class, or a zoo id")
    p.add_argument("--scale", help="the scale (read from an ONNX file; needed for module:Class)")
    p.add_argument("--weights", help="weights for module:Class (a state dict file); zoo ids: shipped (default) or official")
    _add_device(p)
    _add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found, else embedded)")
    p.add_argument("--repeats", type=int, help="at most this many timed passes (profile default)")
    p.add_argument("--timeout", type=float, help="seconds per model (profile default)")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    p.add_argument("--plots", default=str(PROJECT_ROOT / "plots"), help="figures folder (default: plots/)")
    _add_json(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("results", help="manage results stores")
    rsub = p.add_subparsers(dest="results_command", metavar="ACTION")
    rsub.required = True
    q = rsub.add_parser("merge", help="merge stores from other devices into one (no duplicates)")
    q.add_argument("files", nargs="+", help="harness.db files to merge in")
    q.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="the store merged into")
    q.set_defaults(func=cmd_results_merge)

    p = sub.add_parser("plot", help="quality-speed (and energy) trade-off figures from the results store")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    p.add_argument("--run", help="only this run id (default: everything in the store)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "plots"), help="figures folder (default: plots/)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="the self-contained HTML report (and a Markdown summary) from a store")
    p.add_argument("--db", default=str(PROJECT_ROOT / "results" / "harness.db"), help="results database")
    p.add_argument("--run", help="only this run id (default: everything in the store)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "results"), help="folder for report.html/report.md")
    p.add_argument("--plots", default=str(PROJECT_ROOT / "plots"), help="figures folder (default: plots/)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("int8-report", help="FP32 against INT8 (post-training and QAT) of one model: PSNR (RGB "
                                           "and Y) per set and ONNX Runtime CPU latency on a Full-HD frame")
    p.add_argument("--model", default="ABPN_s3", help="model id (default ABPN_s3; QAT needs an ABPN)")
    _add_weights(p)
    _add_data(p)
    p.add_argument("--sets", help="comma-separated sets, e.g. DIV2K (default: every set found, else embedded)")
    _add_calib(p)
    p.add_argument("--qat-steps", type=int, default=0,
                   help="quantization-aware fine-tuning steps on --calib-data patches (default 0: no QAT column)")
    p.add_argument("--qat-lr", type=float, default=5e-5, help="QAT Adam learning rate (default 5e-5)")
    p.add_argument("--qat-batch", type=int, default=16, help="QAT batch of 96-pixel HR patches (default 16)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per graph, the median is reported (default 5)")
    p.add_argument("--frame-size", default="1920x1080", help="output frame timed, WxH (default 1920x1080)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: its own choice)")
    _add_json(p)
    p.set_defaults(func=cmd_int8_report)

    p = sub.add_parser("ghost-report", help="a base network against its GhostSR version: params, MACs, ONNX "
                                            "Runtime CPU latency on a Full-HD frame, PSNR/SSIM per set, changes")
    p.add_argument("--model", required=True, help="the GhostSR id, e.g. Ghost-FSRCNN_s2_D56_S12_M4 or Ghost-EDSR_s2")
    p.add_argument("--weights", required=True,
                   help="weights of the ghost network: a file (e.g. the Ghost-<id>.pt that train --init-weights "
                        "writes; a state dict of <id> is ghostified untuned), shipped or init")
    p.add_argument("--base-weights", default="shipped",
                   help="weights of the base network <id>: a file, shipped (the default) or official")
    _add_data(p)
    p.add_argument("--sets", help="comma-separated sets, e.g. Set5,Set14 (default: every set found, else embedded); "
                                  "none: no PSNR/SSIM, only params, MACs and latency (untrained weights, e.g. EDSR)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per network, the median is reported (default 5)")
    p.add_argument("--frame-size", default="1920x1080", help="output frame timed, WxH (default 1920x1080)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: its own choice)")
    _add_json(p)
    p.set_defaults(func=cmd_ghost_report)

    from .train import add_train_parser

    add_train_parser(sub)

    p = sub.add_parser("run-all", help="the main job (what ./run_all.sh runs)")
    _add_device(p)
    p.add_argument("--models", help=f"model ids, comma-separated; '{{scale}}' is filled in; ID=WEIGHTS gives one "
                                    f"model its own weights file (e.g. BSRN_s{{scale}}=DIR/net_g_BSRN_x{{scale}}.pth); "
                                    f"a fixed-scale id runs at its own scale (the baselines {','.join(BASELINES)} "
                                    f"are always included)")
    p.add_argument("--pool", default=None,
                   help="also every model of this pool: default (the eSR cut; its weights ship with the project), "
                        "methods (ABPN, GhostSR, ClassSR, ... whose trained weights ship), paper-front, all (needs "
                        "--weights official), a comma-separated union, or none (the baselines and --models only); "
                        "default: default,methods (default alone with --weights other than shipped)")
    _add_weights(p)
    p.add_argument("--scale", help="scales (default 2,3,4)")
    _add_data(p)
    p.add_argument("--sets", help="comma-separated sets (default: every set found, else embedded)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "results"), help="results folder (default: results/)")
    p.add_argument("--plots", default=str(PROJECT_ROOT / "plots"), help="figures folder (default: plots/)")
    p.add_argument("--resume", action="store_true", help="continue the newest run of the same configuration")
    p.add_argument("--repeats", type=int, help="at most this many timed passes (profile default)")
    p.add_argument("--timeout", type=float, help="seconds per model (profile default)")
    _add_onnx_dir(p)
    _add_json(p)
    p.set_defaults(func=cmd_run_all)

    p = sub.add_parser("doctor", help="is this device ready? Python, venv, libraries, CUDA, power meters, clocks, "
                                      "throttling, disk, data: ok/absent/wrong with the fix")
    p.add_argument("--device", default="cpu", help="device profile name or path (devices/*.toml; default cpu)")
    _add_json(p)
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
    _add_weights(p)
    p.add_argument("--scale", help="scales (default 2,3,4)")
    p.add_argument("--forms", default="naive,fast", help="export forms (default naive,fast: the device times both "
                                                         "and keeps the faster, as run-all does)")
    p.add_argument("--precision", default="fp32", help="fp32 (default) or fp32,int8 (adds QDQ INT8 graphs for "
                                                       "--precision int8 on ONNX Runtime)")
    _add_calib(p)
    _add_json(p)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        from .exported import needs_torch

        print(f"error: {needs_torch(f'python -m harness {args.command}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
