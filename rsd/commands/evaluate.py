"""``rsd eval``: open-loop evaluation of a trained run on the held-out split of a dataset.

    rsd eval RUN --data DIR --out RUN/eval.json
    rsd eval RUN --data DIR --rig front_short --out RUN/eval_front_short.json
    rsd eval RUN --data DIR --rig-file my_rig.yaml --out RUN/eval_my_rig.json

Metrics and their definitions: :mod:`rsd.pipeline.evaluate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsd.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="training run directory (or checkpoint file)")
    parser.add_argument("--data", type=Path, required=True, help="dataset directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--rig", default=None, help="built-in rig name (default: the run's rig)")
    which.add_argument("--rig-file", type=Path, default=None, help="rig YAML file")
    parser.add_argument("--split", default="val", choices=["train", "val"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-samples", type=int, default=None, help="first N samples only")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rsd.data.jsonio import write_json
    from rsd.pipeline.evaluate import evaluate, per_frame_path
    from rsd.report.tables import eval_table

    if args.rig_file is not None and not args.rig_file.exists():
        raise ConfigError(f"--rig-file {args.rig_file}: no such file")
    result = evaluate(
        args.run_dir,
        args.data,
        rig=args.rig_file if args.rig_file is not None else args.rig,
        split=args.split,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        progress=not args.no_progress,
        per_frame_out=per_frame_path(args.out),
    )
    write_json(args.out, result)
    print(eval_table(result))
    print(f"metrics: {args.out}")
    return 0
