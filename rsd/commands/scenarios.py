"""``rsd scenarios``: the scenario suite as a table (skill group, env id, duration, ranges)."""

from __future__ import annotations

import argparse

from rsd.sim.spec import ScenarioSpec, builtin_scenarios, load_scenario, param_ranges


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario-file", metavar="YAML", help="validate a custom scenario file and show it"
    )
    parser.add_argument("--params", action="store_true", help="list every parameter with its range")


def _key_ranges(spec: ScenarioSpec) -> str:
    ranges = param_ranges(spec)
    key = [
        f"{k}={v}"
        for k, v in ranges.items()
        if k.startswith("events") or k in ("traffic.count", "ego.speed")
    ]
    return "; ".join(key)


def run(args: argparse.Namespace) -> int:
    specs = (
        [load_scenario(args.scenario_file)]
        if args.scenario_file
        else [load_scenario(n) for n in builtin_scenarios()]
    )
    rows = [
        (spec.name, spec.skill.name.lower(), spec.env_id, f"{spec.duration:g}", _key_ranges(spec))
        for spec in specs
    ]
    head = ("scenario", "skill", "env id", "duration s", "key ranges")
    # columns as wide as their longest entry plus two spaces: long names never run together
    widths = [max(len(r[i]) for r in [head, *rows]) + 2 for i in range(4)]

    def line(r: tuple[str, ...]) -> str:
        left = "".join(f"{c:<{w}}" for c, w in zip(r[:3], widths, strict=False))
        return f"{left}{r[3]:>{widths[3] - 2}}  {r[4]}"

    print(line(head))
    print("-" * max(100, len(line(head))))
    for spec, row in zip(specs, rows, strict=True):
        print(line(row))
        if args.params or args.scenario_file:
            print(f"    {spec.description}")
            for k, v in param_ranges(spec).items():
                print(f"    {k:<28}{v}")
    if args.scenario_file:
        print(f"{args.scenario_file}: valid")
    return 0
