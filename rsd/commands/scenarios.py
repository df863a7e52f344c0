"""``rsd scenarios``: the scenario suite as a table (skill group, env id, duration, ranges)."""

from __future__ import annotations

import argparse

from rsd.sim.spec import builtin_scenarios, load_scenario, param_ranges


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario-file", metavar="YAML", help="validate a custom scenario file and show it"
    )
    parser.add_argument("--params", action="store_true", help="list every parameter with its range")


def run(args: argparse.Namespace) -> int:
    specs = (
        [load_scenario(args.scenario_file)]
        if args.scenario_file
        else [load_scenario(n) for n in builtin_scenarios()]
    )
    head = f"{'scenario':<14}{'skill':<17}{'env id':<19}{'duration s':>10}  key ranges"
    print(head)
    print("-" * 100)
    for spec in specs:
        ranges = param_ranges(spec)
        key = [
            f"{k}={v}"
            for k, v in ranges.items()
            if k.startswith("events") or k in ("traffic.count", "ego.speed")
        ]
        print(
            f"{spec.name:<14}{spec.skill.name.lower():<17}{spec.env_id:<19}"
            f"{spec.duration:>10g}  {'; '.join(key)}"
        )
        if args.params or args.scenario_file:
            print(f"    {spec.description}")
            for k, v in ranges.items():
                print(f"    {k:<28}{v}")
    if args.scenario_file:
        print(f"{args.scenario_file}: valid")
    return 0
