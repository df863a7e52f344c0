"""Share of the agents a teacher rates risky (risk > 0.3) whose centre lies outside the BEV
grid, per scenario, for the old 32 m view and the 64 m view of the current recipe.

    rsd generate DIR episodes_per_scenario=4 && rsd annotate DIR
    python benchmarks/risky_outside_grid.py DIR [--teacher privileged] [--prompt-version V]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from rsd.data.store import FrameStore
from rsd.geometry import BEVGrid
from rsd.teacher.cache import CACHE_NAME, AnnotationCache

GRIDS = {
    "old x[-24,56] y[-16,16] 0.5 m": BEVGrid(),
    "wide x[-24,56] y[-32,32] 1 m": BEVGrid(y_min=-32, y_max=32, resolution=1.0),
}
RISKY = 0.3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="dataset annotated by the teacher")
    p.add_argument("--teacher", default="privileged")
    p.add_argument("--prompt-version", default="intent-v2")
    args = p.parse_args()
    store = FrameStore(args.data)
    with AnnotationCache(args.data / CACHE_NAME) as cache:
        answers = cache.get_many(list(store.frame_ids), args.teacher, args.prompt_version)
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0] * (1 + len(GRIDS)))
    for i in range(len(store)):
        frame = store[i]
        a = answers.get(frame.frame_id)
        if a is None:
            continue
        risk = {o.object_id: o.risk for o in a.objects}
        for ag in frame.agents:
            if risk.get(ag.id, 0.0) <= RISKY:
                continue
            for key in (frame.scenario, "all"):
                c = counts[key]
                c[0] += 1
                for j, grid in enumerate(GRIDS.values()):
                    c[1 + j] += not bool(grid.contains([ag.x, ag.y]))
    print(f"{len(answers)} answers of {args.teacher}/{args.prompt_version}")
    print("scenario       risky agents  " + "  ".join(f"outside {k}" for k in GRIDS))
    for key, c in sorted(counts.items()):
        shares = "  ".join(f"{100 * o / max(c[0], 1):26.1f} %" for o in c[1:])
        print(f"{key:14s} {c[0]:12d}  {shares}")


if __name__ == "__main__":
    main()
