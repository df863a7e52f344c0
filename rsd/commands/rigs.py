"""``rsd rigs``: the built-in sensor rigs and their settings, or one rig as YAML."""

from __future__ import annotations

import argparse

from rsd.config import dump_yaml
from rsd.data.rigs import DEFAULT_RIG, builtin_rig_names, load_rig, rig_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rig", nargs="?", help="print this rig (name or YAML path) as YAML")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. sensors.0.beams=90 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    if args.rig:
        print(dump_yaml(load_rig(args.rig, args.overrides)), end="")
        return 0
    for name in builtin_rig_names():
        rig = load_rig(name)
        default = "  (default)" if name == DEFAULT_RIG else ""
        print(f"{name}{default}")
        print("\n".join(rig_summary(rig)))
    return 0
