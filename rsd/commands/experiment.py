"""``rsd experiment``: the headline experiment, every arm trained on several seeds.

    rsd experiment                       # the default config: 10 arms x 3 seeds -> experiment/
    rsd experiment quick --out /tmp/q    # a tiny version (smoke test, a few minutes)
    rsd experiment my.yaml train.epochs=20 seeds=[0,1,2,3,4]
    rsd experiment --dry-run             # the stage list, done / to do; nothing is run
    rsd experiment demo --print-config   # the resolved config of a built-in, as YAML

The stages are :mod:`rsd.pipeline.experiment`'s; the config :mod:`rsd.pipeline.experiment_config`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rsd.config import ConfigError, dump_yaml

HELP = """\
Trains every arm (baseline, rsd and the ablations: rsd without the likelihood constraint, the
constraint without a RiskHead, rsd with 25% / 50% noisy teachers, rsd with the teacher's
scene risk also weighting the imitation terms, and that plus a class-balanced distillation
map loss) once per seed on one
dataset, evaluates each run open loop on the training rig and on an unseen rig and closed loop
on held-out seeds, and aggregates over seeds: mean, sample std and change vs baseline of every
metric, and the issue's targets met or not (OUT/results.md, results.json, report/index.html).

Time: the default (10 arms x 3 seeds = 30 runs, 6 epochs of a small model on 3,268 samples,
10 drive episodes per scenario) measured 70 min elapsed and 2 h 14 min CPU on this 2-core
machine (training 76 %, closed loop 20 %); 'quick' takes a few minutes. Stages are
resumable: re-run the same command after an interruption (Ctrl-C stops every run, each
saving its checkpoint). Use --dry-run to see what is done. --only / --seeds compute a part
now (the aggregate covers what exists). Arms can be added to a finished experiment with
arms.NAME.KEY=VALUE overrides; the others are not recomputed.

Bigger, on a GPU: override the model and schedule, e.g.
  rsd experiment default --out big train.epochs=40 train.batch_size=64 \\
      train.model.backbone.channels=64 train.model.backbone.depth=2 seeds=[0,1,2,3,4]
The runs use the training loop of 'rsd train' (CUDA when available). To train a single run on
N GPUs with DDP, train it first under torchrun into the run directory the experiment expects,
then let the experiment find it (a finished run is kept; the stage only records its marker):
  torchrun --nproc_per_node=N -m rsd.cli train --data big/data --out big/runs/rsd/seed0 \\
      rig=dense360 epochs=40 ... variant=rsd seed=0
'rsd experiment ... --dry-run' prints the exact 'rsd train' command of every run to do
(the experiment's overrides: train, then the arm's, then the seed).
CONFIG comes first; KEY=VALUE overrides may stand anywhere on the line.
A teacher named MODULE:ATTR (arms.NAME.teacher=...) imports MODULE and calls ATTR: it runs
that code, by design; name only code you trust.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description or "") + "\n\n" + HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "config",
        nargs="?",
        default="default",
        metavar="CONFIG",
        help="a YAML file or a built-in config: default, quick, demo, demo_quick",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. seeds=[0,1]"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("experiment"), metavar="DIR", help="output dir"
    )
    parser.add_argument("--only", default=None, metavar="ARM[,ARM]", help="compute these arms")
    parser.add_argument("--seeds", default=None, metavar="S[,S]", help="compute these seeds")
    parser.add_argument("--dry-run", action="store_true", help="list the stages, run nothing")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config (YAML), run nothing"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (config: 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rsd.pipeline.experiment import run_experiment
    from rsd.pipeline.experiment_config import load_experiment_config

    config, overrides = args.config, list(args.overrides)
    if "=" in config:  # only overrides given: the default config
        config, overrides = "default", [config, *overrides]
    if args.workers is not None:
        overrides.append(f"workers={args.workers}")
    cfg = load_experiment_config(config, overrides)
    only = [a for a in args.only.split(",") if a] if args.only else None
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s] if args.seeds else None
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected integers like 0,1") from None
    command = shlex.join(
        ["rsd", "experiment", args.config, *args.overrides, "--out", str(args.out)]
        + (["--only", args.only] if args.only else [])
        + (["--seeds", args.seeds] if args.seeds else [])
        + (["--workers", str(args.workers)] if args.workers is not None else [])
    )
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    run_experiment(
        cfg,
        args.out,
        only=only,
        seeds=seeds,
        progress=not args.no_progress,
        dry_run=args.dry_run,
        command=command,
    )
    return 0
