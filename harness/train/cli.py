"""The ``train`` command line: :func:`add_train_parser` (harness/cli.py wires it in) and
:func:`cmd_train`, which runs :func:`harness.train.planning.run` here or, with ``--cluster``,
:func:`harness.train.cluster.train_on_cluster` (Ray is imported only then)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import HarnessError
from ..numeric import json_safe
from .planning import run
from .recipes import DEFAULT_PATCH
from .settings import LOSSES, Settings


def cmd_train(args) -> int:
    """``python -m harness train``: the parsed arguments to a run (or a cluster run); the exit code."""
    from ..models.pools import pool_ids

    ids = [t.strip() for t in (args.model or "").split(",") if t.strip()]
    try:
        scales = [int(s) for s in args.scale.split(",") if s.strip()] if args.scale else []
    except ValueError:
        raise HarnessError(f"--scale {args.scale}: give integers such as 2 or 2,4") from None
    if args.pool:
        from ..models import id_scale

        ids += [i for i in pool_ids(args.pool) if not scales or id_scale(i) in scales]
    elif len(scales) > 1:
        raise HarnessError(f"--scale {args.scale}: give one scale for the scale-free ids (package.module:Class); "
                           f"several scales only filter a --pool")
    if not ids:
        raise HarnessError("give a model id (python -m harness train eSR-TM_s2_K7_C4 --data T91) or --pool NAME")
    if not args.data:
        raise HarnessError("give the training images with --data DIR (several: --data T91,BSD200)")
    settings = Settings(data=[args.data], steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                        min_lr=args.min_lr, seed=args.seed, threads=args.threads, val_every=args.val_every,
                        val_data=args.val_data, val_set=args.val_set, checkpoint_every=args.checkpoint_every,
                        scale=scales[0] if scales and not args.pool else None,
                        init_weights=args.init_weights, device=args.device, loss=args.loss,
                        loss_border=args.loss_border)
    if getattr(args, "cluster", None):
        from .cluster import train_on_cluster  # Ray is imported there, only when asked for

        return train_on_cluster(ids, args, args.cluster, settings=settings)
    records = run(ids, settings, out=args.out, pool=bool(args.pool) or len(ids) > 1, resume=args.resume,
                  force=args.force, stop_at=args.stop_at, show_progress=not args.json and sys.stderr.isatty(),
                  jobs=args.jobs)
    if args.json:
        json.dump(json_safe(records), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from ..output import emit

        rows = [{"model": r["model"], "status": r["status"], "steps": r.get("steps"),
                 "psnr": r.get("final_psnr"), "best": r.get("best_psnr"),
                 "set": (r.get("validation") or {}).get("name"),
                 "hours": r["wall_time_s"] / 3600 if "wall_time_s" in r else None,
                 "weights": r.get("weights") or r.get("reason", "")} for r in records]
        emit(rows, ("model", "status", "steps", "psnr", "best", "set", "hours", "weights"), False,
             digits={"psnr": 2, "best": 2, "hours": 2}, headers={"psnr": "PSNR (dB)", "best": "best (dB)"})
    return 1 if any(r["status"] == "failed" for r in records) else 0


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Adds ``train`` to the CLI's subparsers (harness/cli.py wires it in)."""
    p = subparsers.add_parser(
        "train", help="train learnable zoo models (eSR pool, ABPN, BSRN, EDSR, GhostSR, ClassSR, ...) on a "
                      "folder of images, from scratch or (--init-weights) from given weights",
        description="Train any learnable model of the zoo: the eSR pool on the Y channel, RGB models (ABPN, "
                    "BSRN) on RGB patches (L1, Adam, cosine LR decay, random aligned patches with flips/rotations, "
                    "MATLAB-bicubic LR; steps/batch/lr/patch from the family's recipe). Fixed-weight models "
                    "(bicubic, ONNX files) are refused. Writes last.pt/best.pt checkpoints and, at the end, <id>.pt "
                    "(use with --weights PATH) and <id>.json (provenance) in --out.")
    p.add_argument("model", nargs="?", help="model id(s), comma-separated (python -m harness zoo list)")
    p.add_argument("--pool", help="train every model of a pool (default, paper-front, all); fixed-weight "
                                  "bicubic rows are skipped, finished ones too unless --force")
    p.add_argument("--scale", help="with --pool: only these scales, e.g. 2 or 2,4; with ids: the scale of "
                                   "scale-free ids (package.module:Class)")
    p.add_argument("--data", metavar="DIR[,DIR]", help="training image folder(s), images directly inside or in "
                                                       "DIR/HR/ (T91, BSD200, General100, DIV2K); comma-separated")
    p.add_argument("--steps", type=int, help="training steps (default: the family's recipe, 15000; 60000 for "
                                             "ESPCN_s*_D34_S32, FSRCNN_s*_S12_M4 and eSR-CNN_s*_C2_D1_S3; 20000 "
                                             "for ABPN)")
    p.add_argument("--batch", type=int, help="patches per step (default: the family's recipe, 32 for "
                                             "eSR-MAX/TM/TR, 16 for the others)")
    p.add_argument("--patch", type=int, help=f"HR patch size in pixels, a multiple of the scale "
                                             f"(default {DEFAULT_PATCH}; {DEFAULT_PATCH // 3 * 3} at x3; ABPN "
                                             f"64 and BSRN 48 LR pixels, i.e. times the scale)")
    p.add_argument("--loss", choices=LOSSES, help="training loss (default: the family's recipe: MSE for "
                                                  "the eSR pool's families, L1 for the others)")
    p.add_argument("--loss-border", metavar="auto|off|N",
                   help="HR pixels left out of the loss at each side of a patch, where the convolutions see zero "
                        "padding instead of picture: auto (the net's receptive radius times the scale; nothing for "
                        "nets whose field spans the patch), off, or a number (default: the family's recipe: auto "
                        "for eSR-MAX and eSR-TR, off for the others)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the family's recipe, 5e-3 for "
                                            "eSR-MAX/TM/TR, 4e-3 for eSR-CNN, 1e-3 for most others)")
    p.add_argument("--min-lr", type=float, default=1e-5, help="learning rate reached at --steps by the cosine "
                                                              "decay (default 1e-5)")
    p.add_argument("--init-weights", metavar="FILE|shipped|official",
                   help="fine-tune: start from these weights instead of the initialisation, loaded as --weights "
                        "loads them (a Ghost-<id> takes a state dict of <id> and ghostifies it); shipped/official: "
                        "the project's/the authors' weights of the id (of <id> for Ghost-<id>); ClassSR: "
                        "branches:D16,D36,D56 (trained FSRCNN branches, a fresh classifier). Recorded in the "
                        "provenance with its sha256; --resume continues from last.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and patch sampling (default 0)")
    p.add_argument("--device", default="cpu", help="where to train: cpu (default), cuda or cuda:N (the checkpoints "
                                                  "and weights are saved for the CPU either way)")
    p.add_argument("--jobs", type=int, default=1, help="train this many models at once, one process each with one "
                                                       "torch thread (default 1); the longest runs start first")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own, one per physical core); "
                                               "recorded, as results can differ in the last bits across counts")
    p.add_argument("--val-every", type=int, default=1000, help="validate every N steps and at the end "
                                                               "(default 1000; 0: no validation)")
    p.add_argument("--val-data", metavar="DIR", help="folder holding <Set>/HR/ for validation (default: "
                                                     "$HARNESS_DATA if it holds the set, else the embedded images)")
    p.add_argument("--val-set", default="Set5", help="validation set under --val-data (default Set5)")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="save last.pt every N steps (default 1000)")
    p.add_argument("--out", metavar="DIR", help="output folder (default $HARNESS_CACHE/train/<id>/; with --pool "
                                                "or several ids: DIR/<id>/)")
    p.add_argument("--resume", action="store_true", help="continue from last.pt in the output folder")
    p.add_argument("--force", action="store_true", help="start over even if a finished or unfinished run exists")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="pause at this step (last.pt saved; "
                                                               "continue later with --resume)")
    p.add_argument("--json", action="store_true", help="print the provenance records as JSON")
    p.add_argument("--cluster", metavar="ADDRESS", help="train one Ray task per model on the Ray cluster at ADDRESS "
                                                       "(HEAD:6379; 'local': a local Ray instance); results land "
                                                       "in --out as without it (needs the [ray] extra)")
    p.set_defaults(func=cmd_train)
    return p
