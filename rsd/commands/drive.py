"""``rsd drive``: closed-loop evaluation of a trained run (or the privileged expert).

    rsd drive RUN --scenarios highway,cut_in --episodes 20 --workers 2 --out eval/drive
    rsd drive --planner expert --out eval/expert --video highway-10000

Every episode drives seeds ``--seed, --seed + 1, ...`` (default 10 000: training data uses
seeds from 0, so the two never overlap) of every scenario. Writes to ``--out``:
``episodes.jsonl`` (one :class:`~rsd.sim.closed_loop.EpisodeLog` per line), ``metrics.json``
(:func:`rsd.metrics.driving.driving_metrics` plus the command's settings) and, for each
``--video EPISODE_ID``, ``videos/EPISODE_ID.gif``; prints a table per scenario and per skill.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rsd.config import ConfigError
from rsd.sim.spec import EVAL_SEED, builtin_scenarios, load_scenario

if TYPE_CHECKING:
    from rsd.policy import PlannerSpec

COLUMNS = [
    ("episodes", "eps", "d"),
    ("driving_score", "DS", ".1f"),
    ("success_rate", "SR %", ".1f"),
    ("route_completion", "RC %", ".1f"),
    ("efficiency", "eff %", ".1f"),
    ("comfortness", "comf %", ".1f"),
    ("collision_rate", "coll %", ".1f"),
    ("offroad_rate", "off %", ".1f"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", help="training run directory (or checkpoint file)")
    parser.add_argument(
        "--planner",
        choices=["model", "expert", "expert_plan", "untrained"],
        default=None,
        help="expert: the privileged expert (reference); expert_plan: the expert's 3 s plan "
        "tracked by the controller like a model's (what perfect imitation of the training "
        "labels would score); untrained: a tiny random model (smoke test / speed); default: "
        "the model of RUN",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--scenarios", default="", help="comma-separated built-in names (default: all)"
    )
    which.add_argument(
        "--scenario-file",
        action="append",
        default=[],
        metavar="YAML",
        help="scenario spec file (repeatable)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes (seeds) per scenario")
    parser.add_argument(
        "--seed",
        type=int,
        default=EVAL_SEED,
        help=f"first seed (default {EVAL_SEED}; training uses 0..N-1)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--rig", default=None, help="sensor rig for the model (default: the run's)")
    parser.add_argument(
        "--replan", type=float, default=0.5, help="seconds between plans (0.1 = every step)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--video",
        action="append",
        default=[],
        metavar="EPISODE_ID",
        help="write a GIF of this episode, e.g. highway-10003 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--route-cache",
        default=None,
        metavar="DIR",
        help="keep the expert's reference routes of open-road scenarios here (each scenario "
        "seed driven once for all the runs that share DIR; results unchanged)",
    )


def _fmt(value: float, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def format_table(metrics: dict) -> str:
    """Per-scenario, per-skill and overall rows of :func:`driving_metrics` output."""
    head = f"{'':<18}" + "".join(f"{title:>8}" for _, title, _ in COLUMNS)
    lines = [head, "-" * len(head)]

    def row(name: str, m: dict) -> str:
        return f"{name:<18}" + "".join(f"{_fmt(m[k], f):>8}" for k, _, f in COLUMNS)

    lines += [row(k, m) for k, m in metrics["per_scenario"].items()]
    lines.append("-" * len(head))
    lines += [row(f"[{k}]", m) for k, m in metrics["per_skill"].items()]
    lines.append("-" * len(head))
    lines.append(row("overall", metrics["overall"]))
    return "\n".join(lines)


def _planner_spec(args: argparse.Namespace) -> PlannerSpec:
    from rsd.policy import PlannerSpec

    kind = args.planner or "model"
    if kind == "model" and not args.run_dir:
        raise ConfigError("give a run directory (RUN) or --planner expert|expert_plan|untrained")
    if kind != "model" and args.run_dir:
        raise ConfigError(f"--planner {kind} takes no run directory (got {args.run_dir})")
    if kind == "model" and not Path(args.run_dir).exists():
        raise ConfigError(f"{args.run_dir}: no such run directory or checkpoint")
    if args.replan <= 0:
        raise ConfigError(f"--replan: expected seconds > 0, got {args.replan}")
    return PlannerSpec(kind, args.run_dir, args.rig, args.device, args.replan)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: ``rsd drive --help`` need not load torch
    from rsd.pipeline.drive import drive_to_dir
    from rsd.policy import load_planner
    from rsd.sim.closed_loop import episode_pairs

    spec = _planner_spec(args)
    scenarios = (
        args.scenario_file or [s for s in args.scenarios.split(",") if s] or builtin_scenarios()
    )
    names = [load_scenario(s).name for s in scenarios]  # a bad name or file fails here, naming it
    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected a positive count, got {args.episodes}")
    if args.workers < 1:
        raise ConfigError(f"--workers: expected >= 1, got {args.workers}")
    by_path = dict(zip(scenarios, names, strict=True))
    pairs = episode_pairs(scenarios, args.episodes, args.seed)
    ids = {f"{by_path[s]}-{k:05d}" for s, k in pairs}
    unknown = [v for v in args.video if v not in ids]
    if unknown:
        raise ConfigError(
            f"--video {unknown[0]}: not an episode of this run (e.g. {sorted(ids)[0]})"
        )
    if spec.kind == "model":  # load once here: a bad checkpoint fails before any worker starts
        load_planner(spec.run_dir, spec.rig, spec.device)
    out: Path = args.out
    videos = {v: str(out / "videos" / f"{v}.gif") for v in args.video}
    metrics = drive_to_dir(
        out,
        scenarios,
        args.episodes,
        args.seed,
        args.workers,
        spec,
        videos,
        not args.no_progress,
        args.route_cache,
    )
    wall, n = metrics["settings"]["wall_s"], metrics["overall"].get("episodes", 0)
    print(format_table(metrics))
    print(
        f"{n} episodes in {wall:.1f} s "
        f"({metrics['settings']['episodes_per_minute']:.1f} per minute, "
        f"{args.workers} worker{'s' if args.workers != 1 else ''}); logs: {out}/episodes.jsonl"
    )
    for v, path in videos.items():
        print(f"video {v}: {path}")
    return 0
