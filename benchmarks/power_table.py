"""Power of the paired closed-loop comparison at the variances a report quotes (no experiment
needed): training seeds x episodes -> power to detect a collision rate of ``--arm-rate`` against
``--base-rate`` (%), and the seeds needed for 80 % power (:mod:`rsd.metrics.power`).

    python benchmarks/power_table.py [--base-rate 34] [--arm-rate 24] [--seed-std 8 15]
        [--measured-episodes 40] [--correlation 0] [--seeds 3 5 10 15 20 30]
        [--episodes 40 100 200 400]

``--seed-std``: the seed-to-seed std (points) of one arm's observed rate, measured over
``--measured-episodes`` episodes per seed; its binomial part is taken out
(:func:`~rsd.metrics.power.components_from_rates`). ``--correlation``: of the two arms'
outcomes on the same episode (0 ignores the help of pairing: conservative). Markdown output.
"""

from __future__ import annotations

import argparse

from rsd.metrics.power import components_from_rates, power_table, seeds_needed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-rate", type=float, default=34.0)
    parser.add_argument("--arm-rate", type=float, default=24.0)
    parser.add_argument("--seed-std", type=float, nargs="+", default=[8.0, 15.0])
    parser.add_argument("--measured-episodes", type=int, default=40)
    parser.add_argument("--correlation", type=float, default=0.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 15, 20, 30])
    parser.add_argument("--episodes", type=int, nargs="+", default=[40, 100, 200, 400])
    args = parser.parse_args()
    effect = args.arm_rate - args.base_rate
    for std in args.seed_std:
        var = components_from_rates(
            args.base_rate, args.arm_rate, std, args.measured_episodes, args.correlation
        )
        print(
            f"\nCollision {args.base_rate:g} % -> {args.arm_rate:g} %, seed-to-seed std {std:g}"
            f" points at {args.measured_episodes} episodes/seed (between-seed std of the paired"
            f" difference {var.between**0.5:.1f}, within-seed {var.within**0.5:.1f} points),"
            f" outcome correlation {args.correlation:g}; power at alpha 0.05:\n"
        )
        print("| seeds \\ episodes per seed | " + " | ".join(map(str, args.episodes)) + " |")
        print("|---" * (len(args.episodes) + 1) + "|")
        grid = power_table(effect, var, args.seeds, args.episodes)
        for n, row in zip(args.seeds, grid, strict=True):
            print(f"| {n} | " + " | ".join(f"{100 * p:.0f} %" for p in row) + " |")
        need = [seeds_needed(effect, var, m) for m in args.episodes]
        print("| **seeds for 80 %** | " + " | ".join(str(k or ">1000") for k in need) + " |")


if __name__ == "__main__":
    main()
