"""Privileged-teacher and risk-map throughput on recorded frames, one core.

    python benchmarks/bench_teacher.py [--scenario sudden_brake --scenario dense ...] [--seeds 2]

Records ``--seeds`` expert episodes of each scenario (default: all built-in scenarios), then
times ``PrivilegedTeacher.assess`` (the whole batch: physics, ranking, rationales, pydantic
objects) and ``risk_map`` (footprints + 2-step future sweep + smoothing on the default grid),
best of ``--repeat`` passes. Prints frames/s overall and per scenario.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from rsd.geometry import BEVGrid
from rsd.scene import Frame
from rsd.sim.recorder import record_episode
from rsd.sim.spec import builtin_scenarios
from rsd.teacher.privileged import PrivilegedTeacher
from rsd.teacher.risk_map import RiskMapConfig, risk_map


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="scenario(s) (default: all)")
    parser.add_argument("--seeds", type=int, default=2, help="episodes per scenario")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()

    torch.set_num_threads(1)
    by_scenario: dict[str, list[Frame]] = {}
    for name in args.scenario or builtin_scenarios():
        by_scenario[name] = [f for s in range(args.seeds) for f in record_episode(name, s).frames]
    frames = [f for fs in by_scenario.values() for f in fs]
    agents = sum(len(f.agents) for f in frames) / max(len(frames), 1)
    teacher, grid, cfg = PrivilegedTeacher(), BEVGrid(), RiskMapConfig()
    print(f"{len(frames)} frames, {agents:.1f} agents/frame, grid {grid.height}x{grid.width}")

    teacher.assess(frames[:5])  # warm-up
    t = _best(lambda: teacher.assess(frames), args.repeat)
    print(f"privileged teacher   {len(frames) / t:8.0f} frames/s  ({1e3 * t / len(frames):.2f} ms)")
    assessments = teacher.assess(frames)
    pairs = list(zip(frames, assessments, strict=True))
    t = _best(lambda: [risk_map(f, a, grid, cfg) for f, a in pairs], args.repeat)
    print(f"risk map             {len(frames) / t:8.0f} frames/s  ({1e3 * t / len(frames):.2f} ms)")
    for name, fs in by_scenario.items():
        t = _best(lambda fs=fs: teacher.assess(fs), args.repeat)
        k = sum(len(f.agents) for f in fs) / max(len(fs), 1)
        print(f"  {name:<14} {len(fs) / t:8.0f} frames/s  ({k:.1f} agents/frame)")


if __name__ == "__main__":
    main()
