"""Where the expert's own plans leave the drivable area (the plan score's DAC): per scenario,
the frames whose tracked ego box has a corner off the raster, the frames with a corner outside
every lane polygon in exact geometry (the raster's quantisation aside), and how far outside
the worst corner lies (distance to the nearest lane centreline minus half its width).

    python benchmarks/expert_dac.py DATASET [--grid-y 16 --resolution 0.5]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from matplotlib.path import Path as Polygon

from rsd.data.store import open_store
from rsd.data.targets import build_targets
from rsd.geometry import BEVGrid, box_corners, world_to_pixel
from rsd.metrics.plan_score import PlanScoreConfig, known_past, track_plan


def lane_geometry(frame) -> tuple[list[Polygon], list[tuple[np.ndarray, float]]]:
    """The frame's lane polygons (centreline offset by +-width/2, as the raster draws them)
    and ``(centreline (P, 2), width)`` of every lane."""
    polys, lines = [], []
    for ln in frame.lanes:
        c = np.asarray(ln.centre, float)
        if len(c) < 2:
            continue
        seg = np.diff(c, axis=0)
        seg /= np.linalg.norm(seg, axis=1, keepdims=True) + 1e-12
        tan = np.zeros_like(c)
        tan[:-1] += seg
        tan[1:] += seg
        tan /= np.linalg.norm(tan, axis=1, keepdims=True) + 1e-12
        off = np.stack([-tan[:, 1], tan[:, 0]], 1) * ln.width / 2
        polys.append(Polygon(np.concatenate([c + off, (c - off)[::-1]])))
        lines.append((c, ln.width))
    return polys, lines


def outside_m(pts: np.ndarray, lines: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """(M,) distance (m) of ``pts`` (M, 2) beyond the nearest lane edge (<= 0 inside)."""
    best = np.full(len(pts), np.inf)
    for c, width in lines:
        a, s = c[:-1], np.diff(c, axis=0)
        u = ((pts[:, None] - a) * s).sum(-1) / np.maximum((s * s).sum(-1), 1e-12)
        foot = a + np.clip(u, 0, 1)[..., None] * s
        best = np.minimum(best, np.linalg.norm(pts[:, None] - foot, axis=-1).min(1) - width / 2)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--grid-y", type=float, default=16.0, help="half width of the view (m)")
    p.add_argument("--resolution", type=float, default=0.5, help="cell size (m)")
    args = p.parse_args()
    store = open_store(args.data)
    grid = BEVGrid(y_min=-args.grid_y, y_max=args.grid_y, resolution=args.resolution)
    cfg = PlanScoreConfig()
    out: dict[str, Counter] = defaultdict(Counter)
    for i in range(len(store)):
        f = store[i]
        if not f.ego.future_valid.all():
            continue
        tg = build_targets(f, grid)
        drv = tg["target_maps"][0]
        speed = np.array([f.ego.speed])
        past = known_past(tg["ego_past"][None], tg["ego_past_valid"][None], speed, cfg.dt)
        tr = track_plan(tg["ego_future"][None, :, :2], past, cfg)
        length, width = tg["ego_size"][:2]
        xy, yaw = tr["xy"][0, 1:], tr["yaw"][0, 1:]
        corners = box_corners(xy[:, 0], xy[:, 1], yaw, length, width).reshape(-1, 2)
        rc = np.floor(world_to_pixel(corners, grid)).astype(int)
        h, w = drv.shape
        inside = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
        off_raster = inside & (drv[np.clip(rc[:, 0], 0, h - 1), np.clip(rc[:, 1], 0, w - 1)] < 0.5)
        polys, lines = lane_geometry(f)
        in_lane = np.logical_or.reduce([q.contains_points(corners) for q in polys])
        off_exact = inside & ~in_lane
        o = out[f.scenario]
        o["frames"] += 1
        o["off raster"] += int(off_raster.any())
        o["off exact"] += int(off_exact.any())
        if off_exact.any():
            worst = outside_m(corners[off_exact], lines).max()
            o["<=0.5 m"] += int(worst <= 0.5)
            o["<=1 m"] += int(worst <= 1.0)
    cols = ("frames", "off raster", "off exact", "<=0.5 m", "<=1 m")
    print(f"{'':14s}" + "".join(f"{c:>12s}" for c in cols))
    for name in sorted(out):
        print(f"{name:14s}" + "".join(f"{out[name][c]:12d}" for c in cols))


if __name__ == "__main__":
    main()
