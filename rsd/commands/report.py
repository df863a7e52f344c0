"""``rsd report``: one self-contained HTML page comparing runs, plus ``summary.md`` / ``.json``.

    rsd report runs/baseline-s0 runs/baseline-s1 runs/rsd-s0 runs/rsd-s1 --out report/

What it reads and computes: :mod:`rsd.report.runs` and :mod:`rsd.report.build`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--title", default="rsd report")


def run(args: argparse.Namespace) -> int:
    from rsd.report.build import write_report  # torch and the models: not for 'rsd --help'

    index = write_report(args.runs, args.out, title=args.title)
    print((index.parent / "summary.md").read_text())
    print(f"report: {index}")
    return 0
