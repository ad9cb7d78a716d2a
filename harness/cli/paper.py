"""``python -m harness paper``: the eSR paper's trade-off figures from the authors' published table, and
this harness's measurements of the same models beside them (the table comes in with ``zoo import-esr``)."""
from __future__ import annotations

import json
import sys

from .options import PROJECT_ROOT, add_json, add_plots, scales_of


def cmd_paper(args) -> int:
    from ..api import paper_figures
    from ..numeric import json_safe

    result = paper_figures(out=args.out, device=args.device, scales=scales_of(args.scale), set_name=args.set,
                           plots=args.plots, progress=sys.stderr.isatty() and not args.json)
    verdicts = result["verdicts"]
    if args.json:
        json.dump(json_safe({"files": [str(f) for f in result["files"]], "verdicts": verdicts}), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for f in result["files"]:
        print(f)
    if not result["files"]:
        print(f"no figure: the table holds no model of the chosen device(s) and scale(s) ({args.out})")
    for v in verdicts:
        print(v["line"])
    if not verdicts:
        print("no measurement of your own of the paper's models (same id and scale, --weights official) in the "
              "store: measure some with python -m harness run-all --weights official --out "
              f"{args.out} to set your device beside the paper")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("paper", help="the eSR paper's trade-off figures from the authors' published table (imported "
                                     "by zoo import-esr), with your device's measurements of the same models beside")
    p.add_argument("--device", choices=("agx", "maxq", "rpi"),
                   help="the paper device: agx (Jetson AGX Xavier), maxq (GTX 1080 Max-Q), rpi (Raspberry Pi 400); "
                        "default: the figures of all three, each of your devices compared with the matching one "
                        "(Jetson: agx, Raspberry Pi or CPU: rpi, CUDA GPU: maxq)")
    p.add_argument("--scale", help="only these scales (default 2,3,4)")
    p.add_argument("--set", default="Set14", help="the set whose PSNR is plotted: Set5, Set14, BSD100 (the paper's "
                                                  "BSDS100), Urban100, Manga109 or mean (default Set14)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "results"),
                   help="folder of the results store harness.db holding the imported table (default results/)")
    add_plots(p, "the store")
    add_json(p)
    p.set_defaults(func=cmd_paper)
