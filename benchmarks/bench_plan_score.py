"""Plan-score throughput on one core: frames/s of :func:`rsd.metrics.plan_score.plan_scores`.

    python benchmarks/bench_plan_score.py [--frames 2000] [--agents 20] [--repeat 3]

Synthetic frames: the ego at 20-30 m/s on a straight road, ``--agents`` cars within +-60 m in
three lanes driving 15-30 m/s, plans = the expert's future plus 1 m noise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rsd.geometry import BEVGrid
from rsd.metrics.plan_score import plan_scores


def synthetic(n: int, k: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The arguments of ``plan_scores`` for ``n`` random frames with ``k`` agents each."""
    rng = np.random.default_rng(seed)
    grid = BEVGrid()
    t = 0.5 * np.arange(1, 7)
    v = rng.uniform(20, 30, n)
    expert = np.stack([v[:, None] * t, np.zeros((n, 6))], -1)
    ax, ay = rng.uniform(-60, 60, (n, k)), rng.choice([-4.0, 0.0, 4.0], (n, k))
    av = rng.uniform(15, 30, (n, k))
    boxes = np.zeros((n, k, 8))
    boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3] = ax, ay, 4.5, 1.85
    boxes[..., 6] = av
    future = np.stack([ax[..., None] + av[..., None] * t, np.repeat(ay[..., None], 6, -1)], -1)
    future = np.concatenate([future, np.zeros((n, k, 6, 1))], -1)
    y = grid.y_max - (np.arange(grid.width) + 0.5) * grid.resolution
    road = np.broadcast_to(np.abs(y) < 6, (n, grid.height, grid.width)).astype(np.float32)
    return {
        "plan": expert + rng.normal(0, 1.0, expert.shape),
        "ego_future": expert,
        "ego_future_valid": np.ones((n, 6), bool),
        "agent_boxes": boxes,
        "agent_future": future,
        "agent_future_valid": np.ones((n, k, 6), bool),
        "agent_mask": np.ones((n, k), bool),
        "drivable": road,
        "grid": grid,
        "ego_size": np.tile([4.5, 1.85], (n, 1)),
        "ego_speed": v,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    kwargs = synthetic(args.frames, args.agents)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        s = plan_scores(**kwargs)
        best = min(best, time.perf_counter() - t0)
    print(
        f"{args.frames} frames x {args.agents} agents: {best * 1e3:.0f} ms, "
        f"{args.frames / best:.0f} frames/s (best of {args.repeat}); "
        f"mean PDMS {np.nanmean(s['pdm_score']):.3f}"
    )


if __name__ == "__main__":
    main()
