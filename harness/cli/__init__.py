"""Command line: ``python -m harness <command>`` (also the ``harness`` script).

The command line only parses, calls the API (:mod:`harness.api` and the stage modules) and prints.
Every command that prints a table takes ``--json``. Errors the user can fix print one line
(``error: ...``) and exit with status 2; Ctrl-C exits with 130 and SIGTERM (``kill``, ``timeout``,
a batch scheduler) with 143, each after one line and the same clean-up (a sweep's rows stay).
Commands live beside their parsers, by area:
:mod:`.measure` (quality, bench, run-all, selfcheck, compare, export, doctor), :mod:`.catalogue`
(data, frames, zoo, upscale), :mod:`.reports` (plot, report, results, int8-report, ghost-report),
:mod:`.paper` (paper: the eSR authors' figures), and ``train`` (:mod:`harness.train.cli`).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as after Ctrl-C (children ended,
    files closed) instead of dying at once."""


def _terminated(signum, frame):
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return _run(args)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
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
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
