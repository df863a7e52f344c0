"""``rsd compare``: arm vs arm over an experiment directory, every metric paired by training
seed and then by scenario episode (closed loop) or frame (open loop), with a hierarchical
bootstrap 95 % interval.

    rsd compare EXP_DIR                      # every arm against baseline
    rsd compare EXP_DIR --arm rsd --base baseline --boot 4000 --json compare.json

Definitions: :mod:`rsd.pipeline.compare`, :func:`rsd.metrics.stats.paired_effect`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsd.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exp_dir", type=Path, help="experiment directory (with runs/)")
    parser.add_argument("--arm", action="append", help="arm(s) to compare (default: all others)")
    parser.add_argument("--base", default="baseline", help="reference arm (default baseline)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap generator")
    parser.add_argument(
        "--long-tail",
        nargs="*",
        default=None,
        help="scenarios of the long-tail closed-loop group (default: the experiment config's)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")


def run(args: argparse.Namespace) -> int:
    from rsd.data.jsonio import write_json
    from rsd.pipeline.compare import arms_of, compare_arms
    from rsd.pipeline.experiment_config import ExperimentConfig
    from rsd.report.tables import paired_table

    long_tail = args.long_tail if args.long_tail is not None else ExperimentConfig().long_tail
    if args.boot < 100:
        raise ConfigError(f"--boot: expected >= 100 replicates, got {args.boot}")
    arms = arms_of(args.exp_dir)
    if args.base not in arms:
        raise ConfigError(f"--base {args.base}: no runs of it in {args.exp_dir}/runs ({arms})")
    others = args.arm or [a for a in arms if a != args.base]
    rows = []
    for arm in others:
        if arm not in arms:
            raise ConfigError(f"--arm {arm}: no runs of it in {args.exp_dir}/runs ({arms})")
        rows += compare_arms(args.exp_dir, arm, args.base, long_tail, args.boot, args.seed)
    if not rows:
        print("nothing pairs: no metric is in both arms' runs")
        return 1
    print(paired_table(rows))
    print(
        "\ndifference = arm - base: two-level mean (training seeds weigh the same), hierarchical"
        f" bootstrap over seeds then units ({args.boot} replicates, seed {args.seed});"
        " a verdict only where the 95 % interval excludes 0."
    )
    if any(r.get("seeds", 0) < 2 for r in rows):
        print(
            "warning: some rows rest on one training seed: their intervals cover the episodes"
            " or frames sampled, not the run-to-run spread of training (train more seeds)."
        )
    if args.json is not None:
        write_json(args.json, {"rows": rows})
        print(f"rows: {args.json}")
    return 0
