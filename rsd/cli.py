"""The ``rsd`` command line. Each subcommand lives in its own module exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported lazily so that
``rsd --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "scenarios": (
        "rsd.commands.scenarios",
        "list the scenario suite: skill groups, highway-env ids and parameter ranges",
    ),
    "generate": (
        "rsd.commands.generate",
        "record expert episodes into a sharded, resumable dataset (keyframes at 2 Hz)",
    ),
    "show": (
        "rsd.commands.show",
        "write a PNG of one keyframe: BEV input channels, boxes, expert future",
    ),
    "annotate": (
        "rsd.commands.annotate",
        "run a risk teacher (privileged, openai, transformers) over a dataset into its cache",
    ),
    "export": (
        "rsd.commands.export",
        "write a teacher's cached risk labels + BEV risk maps in a format any trainer can load",
    ),
    "train": (
        "rsd.commands.train",
        "train a driving model, baseline or with risk distillation (DDP under torchrun)",
    ),
    "rigs": ("rsd.commands.rigs", "list the built-in sensor rigs and their settings"),
    "expert-check": (
        "rsd.commands.expert_check",
        "drive every scenario with the privileged expert over many seeds; print success table",
    ),
    "drive": (
        "rsd.commands.drive",
        "closed-loop driving of a trained run (or the expert): DS, SR, efficiency, comfort, GIFs",
    ),
    "eval": (
        "rsd.commands.evaluate",
        "open-loop metrics of a run on the held-out split (planning, detection, risk, speed)",
    ),
    "compare": (
        "rsd.commands.compare",
        "arm vs arm: paired effects with hierarchical bootstrap 95 % CIs",
    ),
    "report": (
        "rsd.commands.report",
        "one HTML page (+ summary.md/json) comparing runs: baseline vs RSD, open and closed loop",
    ),
    "demo": (
        "rsd.commands.demo",
        "the whole pipeline, baseline vs RSD: data, teacher, training, evaluation, report",
    ),
    "experiment": (
        "rsd.commands.experiment",
        "the headline experiment: every arm x seed trained, evaluated, driven; mean/std table",
    ),
    "bench": ("rsd.commands.bench", "measure recorder overhead, rasteriser speed and dataset size"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the ``selected`` subcommand's module is imported (all when None)."""
    parser = argparse.ArgumentParser(
        prog="rsd",
        description=(
            "Risk Semantic Distillation for end-to-end driving: record long-tail scenarios in "
            "highway-env, annotate risk with a teacher, distil it into a BEV driving model."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'rsd COMMAND --help' for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module, _parser=p)
        if selected is None or selected == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The parsed command line. ``KEY=VALUE`` overrides may stand anywhere after the command
    (argparse alone takes them only in one block): words that argparse leaves over join the
    command's ``overrides`` in order; a command without them says where its overrides go."""
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else "")
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    sub = args._parser if getattr(args, "_module", None) else parser
    unknown = " ".join(extra)
    if any(a.startswith("-") or "=" not in a for a in extra):
        sub.error(f"unrecognized arguments: {unknown}")
    positional = any(a.dest == "overrides" and not a.option_strings for a in sub._actions)
    if not positional:
        where = "give each after --set" if hasattr(args, "overrides") else "it takes none"
        sub.error(f"unrecognized arguments: {unknown} (KEY=VALUE overrides: {where})")
    args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "_module", None):
        build_parser("").print_help()
        return 0
    from rsd.config import ConfigError

    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except ConfigError as e:
        print(f"rsd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nrsd {args.command}: interrupted; finished work is kept, re-run to resume.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
