"""``rsd report``: one self-contained HTML page comparing runs, plus ``summary.md`` / ``.json``.

    rsd report runs/baseline-s0 runs/baseline-s1 runs/rsd-s0 runs/rsd-s1 --out report/
    rsd report EXP/runs/*/seed0 --paired EXP/results.json --expert EXP/expert/drive --out r/

``--paired`` gives every difference its paired 95 % interval (and colours only those whose
interval excludes zero): an experiment's ``results.json`` (its ``paired`` rows), ``rsd compare
--json``'s file (its ``rows``), or an experiment directory (computed as ``rsd compare`` does,
every arm against ``baseline``). Without it nothing is coloured.

What it reads and computes: :mod:`rsd.report.runs` and :mod:`rsd.report.build`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rsd.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--title", default="rsd report")
    parser.add_argument(
        "--paired",
        type=Path,
        default=None,
        help="paired intervals: results.json, rsd compare --json output, or an experiment dir",
    )
    parser.add_argument(
        "--expert",
        type=Path,
        default=None,
        help="the expert's rsd drive directory: a reference column in the closed-loop tables",
    )


def paired_rows(source: Path) -> list[dict[str, Any]]:
    """The paired rows of ``--paired`` (see the module doc)."""
    if source.is_dir():
        from rsd.pipeline.compare import arms_of, compare_arms
        from rsd.pipeline.experiment_config import BASELINE, ExperimentConfig

        long_tail = ExperimentConfig().long_tail
        arms = arms_of(source)
        if BASELINE not in arms:
            raise ConfigError(f"--paired {source}: no {BASELINE} runs under runs/ ({arms})")
        return [
            row
            for arm in arms
            if arm != BASELINE
            for row in compare_arms(source, arm, BASELINE, long_tail)
        ]
    try:
        data = json.loads(source.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--paired {source}: not a readable JSON file ({e})") from None
    rows = data.get("paired", data.get("rows")) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise ConfigError(f"--paired {source}: expected a 'paired' or 'rows' list")
    return rows


def run(args: argparse.Namespace) -> int:
    from rsd.report.build import write_report  # torch and the models: not for 'rsd --help'

    paired = paired_rows(args.paired) if args.paired is not None else []
    index = write_report(args.runs, args.out, title=args.title, paired=paired, expert=args.expert)
    print((index.parent / "summary.md").read_text())
    print(f"report: {index}")
    return 0
