"""``rsd train``: train a driving model (``baseline``) or one with risk distillation (``rsd``).

    rsd train --data DIR --variant rsd --out RUN [--config YAML] [key=value ...]
    torchrun --nproc_per_node=4 -m rsd.cli train --data DIR --variant rsd --out RUN

The training loop, its outputs and resumption are :mod:`rsd.pipeline.train`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rsd.config import load_config

TASK_HELP = "baseline, rsd, constraint_only, aux_only or oracle"
"""The task names for --help without importing torch (a test keeps it equal to rsd.tasks)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset dir")
    parser.add_argument(
        "--variant",
        metavar="TASK",
        help=f"{TASK_HELP} (the tasks of rsd/tasks.py); default: rsd",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RUN", help="run directory")
    parser.add_argument("--config", metavar="YAML", help="a TrainConfig YAML file")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN from its checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, anywhere on the line, e.g. lr=0.001 model.kind=cnn",
    )


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults <- --config YAML (on --resume: RUN/config.yaml, whose ``stop_after_steps`` is
    dropped) <- KEY=VALUE <- --variant."""
    from rsd.pipeline.train import CONFIG_NAME
    from rsd.train_config import TrainConfig

    path, overrides = args.config, list(args.overrides)
    if path is None and args.resume and (args.out / CONFIG_NAME).exists():
        path = args.out / CONFIG_NAME
        overrides.insert(0, "stop_after_steps=null")  # a stop of the last session is spent
    if args.variant is not None:
        overrides.append(f"variant={args.variant}")
    return load_config(TrainConfig, path, overrides)


def run(args: argparse.Namespace) -> int:
    from rsd.checkpoint import checkpoint_path
    from rsd.pipeline.train import TrainingDiverged, train

    cfg = config_from_args(args)
    try:
        result = train(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"rsd train: error: {e}", file=sys.stderr)
        return 1
    if result.status == "done" and int(os.environ.get("RANK", "0")) == 0:
        loss = result.metrics.get("loss")
        tail = f", last loss {loss:.4f}" if loss is not None else ""
        print(f"trained {result.step} steps{tail}; checkpoint {checkpoint_path(args.out)}")
    return 130 if result.status == "interrupted" else 0
