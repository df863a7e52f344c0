"""``rsd compare``: arm vs arm over an experiment directory, every metric paired by training
seed and then by scenario episode (closed loop) or frame (open loop), with a hierarchical
bootstrap 95 % interval.

    rsd compare EXP_DIR                      # every arm against baseline
    rsd compare EXP_DIR --arm rsd --base baseline --boot 4000 --json compare.json
    rsd compare EXP_DIR --arm rsd --power 0.25   # + seeds needed for a 25 % effect
    rsd compare EXP_DIR --arm dagger=OTHER_EXP/runs/baseline   # an arm of another experiment

Definitions: :mod:`rsd.pipeline.compare`, :func:`rsd.metrics.stats.paired_effect`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rsd.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exp_dir", type=Path, help="experiment directory (with runs/)")
    parser.add_argument(
        "--arm",
        action="append",
        help="arm(s) to compare (default: all others); NAME=PATH takes the seed<S> runs under "
        "PATH (an arm of another experiment: other data, the same scenario seeds and frames)",
    )
    parser.add_argument(
        "--base", default="baseline", help="reference arm (default baseline; NAME=PATH as --arm)"
    )
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap generator")
    parser.add_argument(
        "--long-tail",
        nargs="*",
        default=None,
        help="scenarios of the long-tail closed-loop group (default: the experiment config's)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument(
        "--power",
        type=float,
        default=None,
        metavar="EFFECT",
        help="also estimate the power to detect a relative effect EFFECT (0.25: 25 %% of the "
        "base's mean) on the closed-loop metric --power-metric, and the training seeds needed "
        "for 80 %% power (variance components measured on this experiment's pairs)",
    )
    parser.add_argument("--power-metric", default="collision_rate", help="(with --power)")


def run(args: argparse.Namespace) -> int:
    from rsd.data.jsonio import write_json
    from rsd.pipeline.compare import arms_of, compare_arms
    from rsd.pipeline.experiment_config import ExperimentConfig
    from rsd.report.tables import paired_table

    long_tail = args.long_tail if args.long_tail is not None else ExperimentConfig().long_tail
    if args.boot < 100:
        raise ConfigError(f"--boot: expected >= 100 replicates, got {args.boot}")
    arms = arms_of(args.exp_dir)
    _check_arm("--base", args.base, args.exp_dir, arms)
    others = args.arm or [a for a in arms if a != args.base]
    rows = []
    for arm in others:
        _check_arm("--arm", arm, args.exp_dir, arms)
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
    power = []
    if args.power is not None:
        from rsd.pipeline.compare import power_rows

        if not 0 < args.power < 10:
            raise ConfigError(f"--power: expected a relative effect such as 0.25, got {args.power}")
        for arm in others:
            power += power_rows(
                args.exp_dir, arm, args.base, args.power, long_tail, args.power_metric
            )
        print("\n" + format_power(power, args.power))
    if args.json is not None:
        write_json(args.json, {"rows": rows, **({"power": power} if power else {})})
        print(f"rows: {args.json}")
    return 0


def _check_arm(flag: str, arm: str, exp_dir: Path, arms: list[str]) -> None:
    """ConfigError unless ``arm`` has runs: an arm of ``exp_dir``, or ``NAME=PATH`` whose
    ``PATH`` holds ``seed<S>`` run directories."""
    from rsd.pipeline.compare import arm_dir, seed_dirs

    if "=" in arm:
        if not seed_dirs(exp_dir, arm):
            raise ConfigError(
                f"{flag} {arm}: no seed<S> run directories in {arm_dir(exp_dir, arm)}"
            )
    elif arm not in arms:
        raise ConfigError(f"{flag} {arm}: no runs of it in {exp_dir}/runs ({arms})")


def format_power(rows: list[dict], effect: float) -> str:
    """The lines of ``rsd compare --power``: per arm and closed-loop group, the variance
    components, the power now and the training seeds needed for 80 % power."""
    if not rows:
        return "power: no closed-loop episodes pair"
    ks = list(rows[0]["seeds_needed"])
    head = (
        f"{'arm vs base':<24} {'group':<22} {'seeds':>5} {'eps':>5} {'base':>7} {'target':>7} "
        f"{'sd_b':>6} {'sd_w':>6} {'power':>6}  " + " ".join(f"{f'n@{k}':>6}" for k in ks)
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        sd_b, sd_w = (r[k] ** 0.5 if r[k] == r[k] else float("nan") for k in ("between", "within"))
        need = " ".join(f"{(r['seeds_needed'][k] or '>1000')!s:>6}" for k in ks)
        lines.append(
            f"{r['arm'] + ' vs ' + r['base']:<24} {r['group']:<22} {r['seeds']:>5} "
            f"{r['episodes']:>5.0f} {r['base_mean']:>7.2f} {r['target']:>7.2f} {sd_b:>6.2f} "
            f"{sd_w:>6.2f} {r['power_now']:>6.2f}  {need}"
        )
    metric = rows[0]["metric"]
    lines.append(
        f"\npower to detect a {100 * effect:.0f} % relative difference in {metric} (target ="
        f" {effect} x |base mean|) at alpha 0.05, two-sided t-test over training seeds of each"
        " seed's mean paired difference (rsd.metrics.power); sd_b, sd_w: between-seed and"
        " within-seed std of the paired difference measured here; n@M: training seeds needed"
        " for 80 % power with M paired episodes per seed. One seed: no between-seed spread,"
        " nothing to estimate (NaN)."
    )
    return "\n".join(lines)
