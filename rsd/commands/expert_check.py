"""``rsd expert-check``: drive the privileged expert through the scenario suite.

Prints, per scenario: episodes, success rate, collisions, off-road exits, goal reached,
mean ego speed and simulation cost; exits non-zero when any scenario is below
``--min-success`` (95 % by default).
"""

from __future__ import annotations

import argparse
import time

from rsd.config import ConfigError
from rsd.sim.spec import builtin_scenarios, load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated names or YAML paths (default: every built-in scenario)",
    )
    parser.add_argument("--seeds", type=int, default=50, help="episodes per scenario")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--min-success",
        type=float,
        default=95.0,
        help="fail (exit 1) when a scenario's success rate %% is below this",
    )
    parser.add_argument(
        "--show-failures", action="store_true", help="list the seeds that failed and why"
    )


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'scenario':<16}{'episodes':>9}{'success %':>11}{'collisions':>11}"
        f"{'off-road':>9}{'goal':>6}{'mean v m/s':>11}{'ms/step':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['scenario']:<16}{r['episodes']:>9}{r['success']:>11.1f}{r['collisions']:>11}"
            f"{r['offroad']:>9}{r['goal']:>6}{r['mean_speed']:>11.1f}{r['ms_per_step']:>9.2f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rsd.sim.expert_check import run_many, summarise  # highway-env: not for --help

    names = [s for s in args.scenarios.split(",") if s] or builtin_scenarios()
    for n in names:
        load_scenario(n)  # validate up front: a bad name fails before any work
    if args.seeds < 1:
        raise ConfigError(f"--seeds: expected a positive count, got {args.seeds}")
    pairs = [(n, s) for n in names for s in range(args.first_seed, args.first_seed + args.seeds)]
    t0 = time.perf_counter()
    results = run_many(pairs, args.workers)
    rows = summarise(results, names)
    print(format_table(rows))
    print(
        f"{len(pairs)} episodes in {time.perf_counter() - t0:.1f} s wall "
        f"({args.workers} worker{'s' if args.workers != 1 else ''})"
    )
    if args.show_failures:
        for r in results:
            if not r.success:
                why = "collision" if r.crashed else "off-road"
                print(f"  failed: {r.scenario} seed {r.seed}: {why}")
    bad = [r["scenario"] for r in rows if r["success"] < args.min_success]
    if bad:
        print(f"below {args.min_success:g}% success: {', '.join(bad)}")
        return 1
    return 0
