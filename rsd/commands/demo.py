"""``rsd demo``: the whole pipeline on the embedded default, baseline against RSD.

    rsd demo                 # ~5 min on 2 idle CPU cores (<= 15 min shared); writes demo/
    rsd demo --quick         # a tiny version (smoke test, < 1 min)

The demo is the built-in experiment config ``demo`` (``demo_quick`` with ``--quick``), run by
the same code as ``rsd experiment`` (:mod:`rsd.pipeline.experiment`): record a dataset with
the privileged expert, annotate it with the privileged teacher, train ``runs/baseline/seed0``
and ``runs/rsd/seed0`` (same seed, data and schedule), evaluate both open loop on the
training rig and an unseen rig, drive both closed loop on held-out seeds, aggregate
(``results.md``) and write ``report/index.html``. Every stage is resumable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = ("open_loop", "unseen_rig", "closed_loop_overall")
"""The result groups the demo prints (every group is in ``results.md``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), metavar="DIR", help="output dir (demo)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny version: 2 episodes per scenario, 1 epoch, 1 drive episode",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rsd.pipeline.experiment import run_experiment
    from rsd.pipeline.experiment_config import load_experiment_config

    name = "demo_quick" if args.quick else "demo"
    overrides = [] if args.workers is None else [f"workers={args.workers}"]
    cfg = load_experiment_config(name, overrides)
    command = f"rsd demo{' --quick' if args.quick else ''} --out {args.out}"
    run_experiment(cfg, args.out, progress=not args.no_progress, command=command, summary=SUMMARY)
    return 0
