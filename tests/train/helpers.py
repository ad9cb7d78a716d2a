"""What the training tests share: tiny learnable image folders, short-run settings, checkpoint
loading and comparison, and the ``train`` command line as harness/cli.py wires it in."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None
from PIL import Image

from harness import train

SHARED = Path(__file__).resolve().parents[3] / "shared"
TM, ESPCN = "eSR-MAX_s2_K3_C2", "ESPCN_s2_D0_S3"
ABPN, BSRN = "ABPN_s2", "BSRN_s2"


def smooth_images(folder: Path, n: int = 4, size=(40, 48), seed: int = 0, suffix: str = ".png") -> Path:
    """Smooth random colour fields (bicubic blow-ups of 6x6 noise): an easily learnable SR task."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        small.resize((size[1], size[0]), Image.BICUBIC).save(folder / f"img{i:02d}{suffix}")
    return folder


def settings(data, **kw):
    base = dict(data=[str(data)], steps=12, batch=4, patch=16, threads=1, val_every=0, checkpoint_every=4, loss="l1")
    base.update(kw)
    return train.Settings(**base)


def load(path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 (JetPack 5) has no weights_only
        return torch.load(str(path), map_location="cpu")


weights = load


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(argv):
    """Parse ``train`` arguments with the parser harness/cli.py wires in, and run the command."""
    parser = argparse.ArgumentParser()
    train.add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train"] + list(argv))
    return args.func(args)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg
