"""What there is: test sets (data), the Full-HD frames, the model zoo, upscaling images."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from ..errors import HarnessError
from .options import PROJECT_ROOT, add_data, add_json, add_weights, csv_list, scales_of


def cmd_data_list(args) -> int:
    from ..datasets import EMBEDDED, SOURCES, STANDARD_SETS, data_root, embedded_set, find_set
    from ..output import emit

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
    from ..datasets import ENV_DATA, fetch

    target = args.data or os.environ.get(ENV_DATA) or str(PROJECT_ROOT / "data")
    dest = fetch(args.name, Path(target), url=args.url, progress=not args.quiet, log=print)
    count = sum(1 for p in dest.iterdir() if p.is_file())
    print(f"{args.name}: {count} HR images in {dest}" + ("" if args.data or os.environ.get(ENV_DATA)
                                                         else f" (use --data {target})"))
    return 0


def cmd_frames(args) -> int:
    from ..frames import FHD_HEIGHT, FHD_WIDTH, load_frames
    from ..imageio import save_rgb
    from ..output import emit

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


def _param_count(model) -> Optional[int]:
    module = getattr(model, "module", None)
    if module is None:
        return None
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad) +
               sum(p.numel() for p in module.parameters() if not p.requires_grad))


def cmd_zoo_list(args) -> int:
    from ..models import SCALES, families, id_scale, resolve
    from ..models.pools import pool_ids
    from ..output import emit

    if args.shipped:
        from ..train.ship import acceptance_rows
        from ..weights import shipped_manifest

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
    scales = scales_of(args.scale) or list(SCALES)
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
    from ..train.ship import ship

    manifest = ship(args.train_dir, csv_list(args.models) or None, args.data, csv_list(args.sets),
                    show_progress=sys.stderr.isatty())
    t = manifest["totals"]
    gpu = f" and {t['gpu_hours']:.2f} GPU hours" if t.get("gpu_hours") else ""
    print(f"shipped {t['models']} models ({t['cpu_hours']:.2f} CPU hours{gpu} of training); {t['passing']} within "
          f"tolerance of the official weights" + (f"; below: {', '.join(t['failing'])}" if t["failing"] else ""))
    return 0


def progress_list(items, desc, quiet):
    from ..progress import progress

    return progress(items, total=len(items), desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False)


def _complexity(model) -> dict:
    """MACs per Full-HD output frame (and bytes moved) where the model is a network."""
    module = getattr(model, "module", None)
    if module is None:
        return {"macs_per_fhd": None}
    try:
        from ..models.complexity import complexity
    except ImportError:  # pragma: no cover - complexity lands with the export stage
        return {"macs_per_fhd": None}
    info = complexity(module, model.scale, channels=model.channels)
    return {"macs_per_fhd": info["macs_per_fhd"], "bytes_per_fhd": info["bytes_per_fhd"]}


def cmd_zoo_import_esr(args) -> int:
    from ..api import import_paper
    from ..results.paper import holds_table
    from ..weights import holds_model_files, import_esr

    weights, table = holds_model_files(args.path), holds_table(args.path)
    if not weights and not table:
        raise HarnessError(f"{args.path}: holds neither eSR .model files nor data/tests.pkl; give the eSR "
                           f"repository's folder or zip archive, its model-files/ folder or its data/tests.pkl")
    status = 0
    if weights:
        report = import_esr(args.path, show_progress=sys.stderr.isatty())
        print(report.summary())
        status = 1 if report.mismatched else 0
    if table:
        done = import_paper(args.path, out=args.out)
        if done["warning"]:
            print(f"warning: {done['warning']}", file=sys.stderr)
        print(done.summary())
        print(f"draw the paper's figures with: python -m harness paper --out {args.out}")
    return status


def cmd_zoo_import_bsrn(args) -> int:
    from ..weights import import_bsrn

    report = import_bsrn(args.path, show_progress=sys.stderr.isatty())
    print(report.summary())
    return 1 if report.mismatched else 0


def cmd_upscale(args) -> int:
    from ..models import resolve
    from ..upscale import upscale_files

    model = resolve(args.model, scales_of(args.scale)[0] if args.scale else None, args.weights)
    for path in upscale_files(model, args.inputs, args.output):
        print(path)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("data", help="list or download test sets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    q = dsub.add_parser("list", help="which test sets are present")
    add_data(q)
    add_json(q)
    q.set_defaults(func=cmd_data_list)
    q = dsub.add_parser("fetch", help="download a test set (hash-checked) into DATA/<Set>/HR")
    q.add_argument("name", help="Set5, Set14, BSD100, Urban100 or DIV2K")
    q.add_argument("--data", metavar="DIR", help="data folder (default: $HARNESS_DATA, else ./data)")
    q.add_argument("--url", help="a mirror of the same archive (http(s):// or file://); the pinned hash is still checked "
                                 "(a set without one, e.g. Manga109: its SHA-256 is printed, to check and pin)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_data_fetch)

    p = sub.add_parser("frames", help="the 14 Full-HD frames of the speed benchmark")
    p.add_argument("--frames", metavar="DIR", help="folder of Full-HD (or larger) images; default: embedded mosaics")
    p.add_argument("--save", metavar="DIR", help="also write the frames as PNG into DIR")
    add_json(p)
    p.set_defaults(func=cmd_frames)

    p = sub.add_parser("zoo", help="the models the harness knows")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True
    q = zsub.add_parser("list", help="model ids with family, scale, parameters and MACs per Full-HD frame")
    q.add_argument("--pool", help="only this pool: all, default, paper-front, methods (or a comma-separated union)")
    q.add_argument("--scale", help="only these scales (default 2,3,4)")
    q.add_argument("--shipped", action="store_true", help="the shipped weights instead: training cost and "
                                                         "Set5/Set14 PSNR against the official weights")
    add_json(q)
    q.set_defaults(func=cmd_zoo_list)
    q = zsub.add_parser("ship", help="put weights trained by 'train' into the package (--weights shipped) with "
                                     "their provenance and acceptance figures in its manifest")
    q.add_argument("train_dir", metavar="DIR", help="the --out folder of python -m harness train --pool (DIR/<id>/)")
    q.add_argument("--models", help="only these ids (default: every finished run in DIR)")
    q.add_argument("--data", metavar="DIR", help="folder holding Set5/Set14 (DIR/<Set>/HR) to measure the "
                                                 "acceptance figures; without it they are kept only for unchanged files")
    q.add_argument("--sets", default="Set5,Set14", help="sets measured (default Set5,Set14; Set14 decides acceptance)")
    q.set_defaults(func=cmd_zoo_ship)
    q = zsub.add_parser("import-esr", help="verify (SHA-256) and store the official eSR weights for --weights "
                                           "official, and the authors' measurement table (data/tests.pkl) for paper")
    q.add_argument("path", help="the pnavarre/eSR repository's folder or zip archive (weights and table), a folder "
                                "of eSR .model files (searched recursively), or its data/tests.pkl alone")
    q.add_argument("--out", default=str(PROJECT_ROOT / "results"),
                   help="folder of the results store (harness.db) the table goes into (default results/)")
    q.set_defaults(func=cmd_zoo_import_esr)
    q = zsub.add_parser("import-bsrn", help="verify (SHA-256) and store the official BSRN weights for --weights official")
    q.add_argument("path", help="a folder holding net_g_BSRN_x{2,3,4}.pth (searched recursively; xiaom233/BSRN "
                                "experiments/pretrained_models/) or the repository's zip archive")
    q.set_defaults(func=cmd_zoo_import_bsrn)

    p = sub.add_parser("upscale", help="upscale images with a model (Y models: colour via bicubic CbCr)")
    p.add_argument("--model", required=True, help="model id, ONNX file or module:Class")
    p.add_argument("--scale", help="scale for scale-free ids")
    add_weights(p)
    p.add_argument("inputs", nargs="+", help="images or folders of images")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_upscale)
