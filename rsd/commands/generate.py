"""``rsd generate``: record expert episodes into a sharded, resumable dataset.

The job list is every (scenario, seed) pair, episode-major: job ``j`` is episode
``j // S`` of scenario ``j % S`` with seed ``cfg.seed + j // S``. ``--shard i/n`` runs the jobs
with ``j % n == i`` (a Slurm array over one output directory works). Each job writes one
shard atomically (see :mod:`rsd.data.store`), so a run stopped at any moment, even by
``kill -9``, resumes where it stopped without losing or duplicating a keyframe. The manifest
is rebuilt from the shards on disk, periodically and at the end. On a re-run every shard
is checked against the manifest's sha256; one that differs (or does not decode) is recorded
again. The library is
:mod:`rsd.pipeline.generate`.
"""

from __future__ import annotations

import argparse
import json
import sys

from rsd.config import load_config
from rsd.pipeline.generate import GenerateConfig, generate, parse_shard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "recorder=MODULE:ATTR (an override or a --config key) records with a custom function: "
        "it imports MODULE and calls ATTR(scenario, seed) for every episode, i.e. runs that "
        "code, by design. Name only code you trust."
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="dataset directory (created)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, anywhere after OUT_DIR, e.g. seed=100",
    )
    parser.add_argument("--scenarios", help="comma-separated built-in scenarios (default: all)")
    parser.add_argument(
        "--scenario-file",
        action="append",
        default=[],
        metavar="YAML",
        help="a custom scenario file (repeatable); alone, only these are recorded",
    )
    parser.add_argument("--episodes-per-scenario", type=int, metavar="N")
    parser.add_argument("--seed", type=int, metavar="S", help="seed of the first episode")
    parser.add_argument("--config", metavar="YAML", help="a GenerateConfig YAML file")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes")
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="i/n",
        help="record only jobs j with j %% n == i",
    )
    parser.add_argument(
        "--force", action="store_true", help="delete a dataset of another config found in OUT_DIR"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """Defaults <- --config YAML <- KEY=VALUE overrides <- explicit flags."""
    overrides = list(args.overrides)
    if args.scenarios is not None:
        overrides.append(f"scenarios={json.dumps(args.scenarios.split(','))}")
    elif args.scenario_file:
        overrides.append("scenarios=[]")
    if args.scenario_file:
        overrides.append(f"scenario_files={json.dumps(args.scenario_file)}")
    if args.episodes_per_scenario is not None:
        overrides.append(f"episodes_per_scenario={args.episodes_per_scenario}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    return load_config(GenerateConfig, args.config, overrides)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    summary = generate(
        cfg,
        args.out_dir,
        shard=args.shard,
        workers=args.workers,
        force=args.force,
        progress=not args.no_progress,
    )
    print(summary.text())
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.commands.generate ...``: the same as ``rsd generate ...``."""
    from rsd.cli import main as cli_main  # here: rsd.cli imports this module

    return cli_main(["generate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
