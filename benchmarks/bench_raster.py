"""Rasteriser throughput on one core: frames/s of ``BEVDataset.__getitem__`` (ray casting over
the history keyframes, map and free-space drawing, targets, tensor conversion).

    python benchmarks/bench_raster.py [--rig dense360] [--agents 20] [--frames 200]

Frames are synthetic (``rsd.data.synthetic.random_frame``): a 4-lane road with ``--agents``
cars, vans and trucks, all within +-80 m of the ego.
"""

from __future__ import annotations

import argparse
import time

import torch

from rsd.data.dataset import BEVDataset
from rsd.data.raster import RasterConfig
from rsd.data.rigs import builtin_rig_names
from rsd.data.synthetic import random_frame
from rsd.geometry import BEVGrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", action="append", help="rig(s) to time (default: all built-in)")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()

    torch.set_num_threads(1)
    frames = [random_frame(seed, args.agents) for seed in range(args.frames)]
    grid, raster = BEVGrid(), RasterConfig()
    print(
        f"grid {grid.height}x{grid.width} at {grid.resolution} m, history {raster.history}, "
        f"{args.agents} agents/frame, {args.frames} frames, 1 thread"
    )
    for name in args.rig or builtin_rig_names():
        ds = BEVDataset(frames, rig=name, grid=grid, raster=raster)
        ds[0]  # warm-up (caches, imports)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            best = min(best, time.perf_counter() - t0)
        print(f"{name:<14} {len(ds) / best:8.0f} frames/s  ({1e3 * best / len(ds):.2f} ms/frame)")


if __name__ == "__main__":
    main()
