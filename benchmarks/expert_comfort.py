"""Is the expert's discomfort real or an artefact of its 0.5 s keyframes?

Runs the privileged expert through seeded episodes exactly as ``rsd generate`` records them,
logging the ego at every 10 Hz step, and scores comfort (``rsd.metrics.plan_score.comfort``)
at every recorded keyframe twice: on the plan score's spline through the logged keyframes (what
``benchmarks/expert_plan_score.py`` scores) and on the expert's true 10 Hz motion over the same
3 s (positions, velocities and accelerations by finite differences of highway-env's Euler
steps, which are exact for its integrator). Prints per scenario and over event windows the
share of comfortable keyframes for both, which of nuPlan's bounds the true motion breaks, and
the share of keyframes whose true 3 s holds a longitudinal acceleration below -4.05 m/s^2 (the
expert really brakes harder than nuPlan's bound).

    python benchmarks/expert_comfort.py [--episodes 3] [--scenarios a,b]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from rsd.metrics.events import event_windows, is_event_frame
from rsd.metrics.plan_score import PlanScoreConfig, comfort, comfort_signals, known_past, track_plan
from rsd.scene import FUTURE_STEPS, PAST_STEPS, SIM_HZ
from rsd.sim.convert import heading_to_up, to_up
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.recorder import KEY_EVERY, build_frame, run_expert_episode
from rsd.sim.spec import builtin_scenarios

HORIZON = FUTURE_STEPS * KEY_EVERY
"""10 Hz steps of the plan's horizon."""


def run_episode(scenario: str, seed: int) -> tuple[list, np.ndarray]:
    """The keyframes (Frames, as ``rsd generate`` records them before its crash trimming) and
    the ego's world-up ``(x, y, heading)`` (S, 3) (m, rad) at every 10 Hz step."""
    ep = make_episode(scenario, seed)
    expert = PrivilegedExpert(ep)
    xy: list = []
    try:
        snaps, infos = run_expert_episode(
            ep, expert, lambda e: xy.append([*to_up(e.ego.position), heading_to_up(e.ego.heading)])
        )
        last = len(snaps) - 1
        keys = range(PAST_STEPS, last - FUTURE_STEPS + 1)
        frames = [build_frame(ep, snaps, k, infos) for k in keys]
    finally:
        ep.env.close()
    return frames, np.asarray(xy, float)


def true_track(frame, world_xy: np.ndarray) -> dict[str, np.ndarray]:
    """The expert's 10 Hz motion over the 3 s after ``frame``, in its ego frame, as
    :func:`~rsd.metrics.plan_score.track_plan` returns a plan's, with the car's body heading
    as yaw (navsim's states carry the heading of its bicycle model; highway-env's centre moves
    at the slip angle beta to it, which jumps with the steering)."""
    s0 = frame.step
    p = world_xy[s0 : s0 + HORIZON + 3, :2]  # two extra steps for the forward differences
    c, s = np.cos(frame.ego.world_yaw), np.sin(frame.ego.world_yaw)
    rel = p - np.array([frame.ego.world_x, frame.ego.world_y])
    local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], -1)
    vel = np.diff(local, axis=0) * SIM_HZ  # v_k moves the car from step k to k+1
    acc = np.diff(vel, axis=0) * SIM_HZ
    n = HORIZON + 1
    yaw = world_xy[s0 : s0 + n, 2] - frame.ego.world_yaw
    return {
        "t": np.arange(n) / SIM_HZ,
        "xy": local[None, :n],
        "vel": vel[None, :n],
        "acc": acc[None, :n],
        "yaw": yaw[None],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=3, help="seeds 0..N-1 of every scenario")
    p.add_argument("--scenarios", default="", help="comma-separated (default: all built-in)")
    args = p.parse_args()
    names = args.scenarios.split(",") if args.scenarios else sorted(builtin_scenarios())
    cfg = PlanScoreConfig()
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in names:
        for seed in range(args.episodes):
            frames, world_xy = run_episode(name, seed)
            for f in frames:
                if f.step + HORIZON + 2 >= len(world_xy) or not f.ego.future_valid.all():
                    continue
                past = known_past(
                    f.ego.past[None], f.ego.past_valid[None], np.array([f.ego.speed]), cfg.dt
                )
                spline = track_plan(f.ego.future[None, :, :2], past, cfg)
                truth = true_track(f, world_xy)
                lon_true = comfort_signals(truth, cfg)["lon"]
                rows.append(
                    {
                        "scenario": name,
                        "episode": f"{name}-{seed}",
                        "t": f.t,
                        "event": is_event_frame(f),
                        "c_spline": comfort(spline, cfg)[0],
                        "c_true": comfort(truth, cfg)[0],
                        "hard_brake": bool((lon_true < cfg.lon_accel[0]).any()),
                        **{f"fail_{k}": not v[0] for k, v in comfort(truth, cfg, True).items()},
                    }
                )
    windows = event_windows(
        [r["episode"] for r in rows], [r["t"] for r in rows], [r["event"] for r in rows]
    )
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups["all"].append(i)
        groups[r["scenario"]].append(i)
        if windows[i]:
            groups["event windows"].append(i)
    bounds = [k for k in rows[0] if k.startswith("fail_")]
    print(f"{len(rows)} keyframes in {time.perf_counter() - t0:.0f} s")
    head = ["frames", "C spline", "C true", "brake<-4.05"] + [b[5:] for b in bounds]
    print(f"{'':14s}" + "".join(f"{h:>12s}" for h in head))
    for g, idx in groups.items():
        sel = [rows[i] for i in idx]
        vals = [len(sel)] + [
            np.mean([r[k] for r in sel]) for k in ("c_spline", "c_true", "hard_brake", *bounds)
        ]
        print(f"{g:14s}{vals[0]:12d}" + "".join(f"{v:12.3f}" for v in vals[1:]))


if __name__ == "__main__":
    main()
