"""Command line: ``python -m harness <command>`` (also the ``harness`` script).

The command line only parses, calls the API (:mod:`harness.api` and the stage modules) and prints.
Every command that prints a table takes ``--json``. Errors the user can fix print one line
(``error: ...``) and exit with status 2. Commands live beside their parsers, by area:
:mod:`.measure` (quality, bench, run-all, selfcheck, compare, export, doctor), :mod:`.catalogue`
(data, frames, zoo, upscale), :mod:`.reports` (plot, report, results, int8-report, ghost-report),
:mod:`.paper` (paper: the eSR authors' figures), and ``train`` (:mod:`harness.train.cli`).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Optional, Sequence

from ..errors import HarnessError
from . import catalogue, measure, paper, reports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness",
                                     description="Benchmark super-resolution models on edge devices: "
                                                 "quality (PSNR/SSIM), speed (Full-HD frames/s), power.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from ..train import add_train_parser

    measure.add_parsers(sub)
    catalogue.add_parsers(sub)
    reports.add_parsers(sub)
    paper.add_parsers(sub)
    add_train_parser(sub)
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
        from ..exported import needs_torch

        print(f"error: {needs_torch(f'python -m harness {args.command}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
