"""The plan score (``rsd.metrics.plan_score``) of the expert's own logged futures, over all
frames, over event windows and per scenario: what a perfect imitator would score, and the
check that the score does not penalise the expert.

    python benchmarks/expert_plan_score.py DATASET [--grid-y 16 --resolution 0.5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rsd.data.store import open_store
from rsd.data.targets import build_targets
from rsd.geometry import BEVGrid
from rsd.metrics.events import event_windows, is_event_frame
from rsd.metrics.plan_score import plan_scores, summarise_plan_scores


def _pad(a: np.ndarray, k: int) -> np.ndarray:
    pad = [(0, 0)] * a.ndim
    pad[0] = (0, k - a.shape[0])
    return np.pad(a, pad)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--grid-y", type=float, default=16.0, help="half width of the view (m)")
    p.add_argument("--resolution", type=float, default=0.5, help="cell size (m)")
    args = p.parse_args()
    store = open_store(args.data)
    grid = BEVGrid(y_min=-args.grid_y, y_max=args.grid_y, resolution=args.resolution)
    frames = [store[i] for i in range(len(store))]
    tg = [build_targets(f, grid) for f in frames]
    k = max(len(t["agent_ids"]) for t in tg)

    def stack(key: str, agent: bool = False) -> np.ndarray:
        return np.stack([_pad(t[key], k) if agent else t[key] for t in tg])

    mask = np.stack([_pad(np.ones(len(t["agent_ids"]), bool), k) for t in tg])
    ef = stack("ego_future")
    t0 = time.perf_counter()
    s = plan_scores(
        ef[..., :2], ef, stack("ego_future_valid"), stack("agent_boxes", True),
        stack("agent_future", True), stack("agent_future_valid", True), mask,
        np.stack([t["target_maps"][0] for t in tg]), grid, stack("ego_size"),
        np.array([f.ego.speed for f in frames]), stack("ego_past"), stack("ego_past_valid"),
    )  # fmt: skip
    dt = time.perf_counter() - t0
    events = np.array([is_event_frame(f) for f in frames])
    episodes = [f"{f.scenario}-{f.seed}" for f in frames]
    windows = event_windows(episodes, [f.t for f in frames], events)
    print(f"{len(frames)} frames scored in {dt:.2f} s ({len(frames) / dt:.0f} frames/s)")
    keys = ("pdm_score", "pdm_dac", "pdm_comfort", "pdm_ttc", "pdm_ep", "pdm_frames")
    rows = [("all", summarise_plan_scores(s))]
    rows.append(("event windows", summarise_plan_scores(s, windows, "_events")))
    scenarios = np.array([f.scenario for f in frames])
    rows += [(n, summarise_plan_scores(s, scenarios == n)) for n in np.unique(scenarios)]
    print(f"{'':16s}" + "".join(f"{key:>13s}" for key in keys))
    for name, r in rows:
        vals = [r.get(key, r.get(f"{key}_events", float("nan"))) for key in keys]
        print(f"{name:16s}" + "".join(f"{v:13.3f}" for v in vals))


if __name__ == "__main__":
    main()
