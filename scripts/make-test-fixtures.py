#!/usr/bin/env python3
"""Writes the small reference data the protocol tests need into tests/fixtures/matlab/, from the
development data in ../shared (which a clone does not have), and records where each piece came from.

    .venv/bin/python scripts/make-test-fixtures.py [--shared ../shared]

For each Set5 image: a 96x96 crop of the HR image (at an offset that is a multiple of 12, so it
lines up with the LR grid at x2, x3 and x4) and the matching crops of MATLAB's own
``imresize(HR, 1/s, 'bicubic')`` output at x2/x3/x4 (SwinIR's copies of the Set5 LR images). The
crops are small (about 30 KB per image); the tests compare the harness's downscale of the HR crop
with MATLAB's pixels away from the crop border (where the antialiased kernel reaches outside it).
"""
import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "matlab"
CROP = 96  # HR pixels, a multiple of 12 = lcm(2, 3, 4)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args()
    set5 = Path(args.shared) / "datasets" / "Set5"
    OUT.mkdir(parents=True, exist_ok=True)
    sources = {"what": "Set5 HR crops and MATLAB imresize(HR, 1/s, 'bicubic') LR crops at x2/x3/x4",
               "origin": "../shared/datasets/Set5 (HR: SwinIR testsets/Set5/HR; LR: SwinIR testsets/Set5/LR_bicubic, "
                         "made by MATLAB imresize)", "crop_hr": CROP, "files": {}}
    for hr_path in sorted((set5 / "HR").glob("*.png")):
        hr = np.asarray(Image.open(hr_path).convert("RGB"))
        h, w = (hr.shape[0] // 12) * 12, (hr.shape[1] // 12) * 12
        top = ((h - CROP) // 2) // 12 * 12
        left = ((w - CROP) // 2) // 12 * 12
        arrays = {"hr": hr[top:top + CROP, left:left + CROP], "top": np.int64(top), "left": np.int64(left)}
        record = {"hr": {"file": hr_path.name, "sha256": sha256(hr_path), "crop": [top, left, CROP, CROP]}}
        for s in (2, 3, 4):
            lr_path = set5 / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png"
            lr = np.asarray(Image.open(lr_path).convert("RGB"))
            arrays[f"lr_x{s}"] = lr[top // s:(top + CROP) // s, left // s:(left + CROP) // s]
            record[f"lr_x{s}"] = {"file": f"LR_bicubic/X{s}/{lr_path.name}", "sha256": sha256(lr_path)}
        out = OUT / f"set5_{hr_path.stem}.npz"
        np.savez_compressed(out, **arrays)
        sources["files"][out.name] = record
    (OUT / "SOURCES.json").write_text(json.dumps(sources, indent=1) + "\n")
    print(f"wrote {len(sources['files'])} fixtures into {OUT}")


if __name__ == "__main__":
    main()
