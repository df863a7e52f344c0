"""Why a learned driver fails: its plans beside the expert's, re-plan by re-plan.

Drives ``SCENARIO`` on ``SEEDS`` with the model of ``RUN`` (closed loop, as ``rsd drive``) and,
at every re-plan, asks the privileged expert for its own 3 s plan from the same live state
(``rsd.sim.tracked_expert``, a copy of the episode; it never drives). Prints, for each failed
episode, its last ``--last`` re-plans: time, speed, command, the end (and first) waypoint of
the model's plan and of the expert's, and the three nearest agents (ego frame, m and m/s).
``--png`` also draws the BEV input (map, route, sensor hits now) with both plans at the
re-plan times ``--at``.

    python benchmarks/driver_diagnosis.py RUN intersection 100,101 --png turn.png --at 4.5,5
    python benchmarks/driver_diagnosis.py RUN dense 100,101,102,103

Use development seeds (100...), never the held-out evaluation seeds (10000...).
"""

from __future__ import annotations

import argparse

import numpy as np

from rsd.data.features import build_features
from rsd.geometry import InputChannel
from rsd.policy import load_planner
from rsd.sim.closed_loop import run_episode
from rsd.sim.tracked_expert import TrackedExpertPlanner


class _Beside:
    """The model plans and drives; the expert's plan from the same state is kept beside."""

    def __init__(self, ep, model, at: list[float]) -> None:
        self.ep, self.model, self.at = ep, model, at
        self.expert = TrackedExpertPlanner(ep)
        self.lines: list[str] = []
        self.shots: list[tuple] = []

    def tick(self) -> None:
        self.expert.tick()

    def plan(self, frame):
        out = self.model.plan(frame)
        ex, w = self.expert.plan(frame).waypoints, out.waypoints
        near = sorted(frame.agents, key=lambda a: a.x**2 + a.y**2)[:3]
        agents = " ".join(f"[{a.id}: {a.x:5.1f},{a.y:5.1f} v {a.vx:4.1f}]" for a in near)
        self.lines.append(
            f"t={self.ep.t:5.1f} v={self.ep.ego.speed:4.1f} cmd={int(frame.command)}"
            f" model end ({w[-1, 0]:5.1f},{w[-1, 1]:5.1f}) first ({w[0, 0]:4.1f},{w[0, 1]:4.1f})"
            f" expert end ({ex[-1, 0]:5.1f},{ex[-1, 1]:5.1f}) first ({ex[0, 0]:4.1f},"
            f"{ex[0, 1]:4.1f}) {agents}"
        )
        if any(abs(self.ep.t - t) < 1e-6 for t in self.at):
            self.shots.append((self.ep.t, frame, w, ex))
        return out


def _draw(shots: list[tuple], model, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = model.grid
    fig, axs = plt.subplots(1, len(shots), figsize=(4 * len(shots), 6), squeeze=False)
    for ax, (t, frame, w, ex) in zip(axs[0], shots, strict=True):
        bev = build_features(frame, model.rig, g, model.raster)["bev"]
        road = 0.5 * bev[InputChannel.DRIVABLE] + 0.5 * bev[InputChannel.LANE_LINES]
        img = np.stack([road, bev[InputChannel.ROUTE], bev[InputChannel.HITS]], axis=-1)
        ax.imshow(np.clip(img, 0, 1), extent=[g.y_max, g.y_min, g.x_min, g.x_max])
        ax.plot(w[:, 1], w[:, 0], "w.-", label="model")
        ax.plot(ex[:, 1], ex[:, 0], "y.-", label="expert")
        ax.set_title(f"{title} t={t:.1f} s, command {int(frame.command)}")
        ax.set_xlim(20, -20)
        ax.set_ylim(-10, 40)
    axs[0][0].legend()
    fig.savefig(path, dpi=70)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="training run directory")
    ap.add_argument("scenario")
    ap.add_argument("seeds", help="comma-separated development seeds, e.g. 100,101")
    ap.add_argument("--last", type=int, default=8, help="re-plans printed before a failure")
    ap.add_argument("--png", help="draw the re-plans at --at of the first seed here")
    ap.add_argument("--at", default="", help="comma-separated re-plan times (s) to draw")
    args = ap.parse_args()
    model = load_planner(args.run)
    at = [float(x) for x in args.at.split(",") if x]
    for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
        made: list[_Beside] = []

        def factory(ep, made=made, draw=(i == 0 and args.png is not None)):
            made.append(_Beside(ep, model, at if draw else []))
            return made[-1]

        log = run_episode(args.scenario, seed, factory)
        print(f"{args.scenario} {seed}: {log.outcome} {log.infractions}", flush=True)
        if log.outcome != "success":
            print("\n".join(made[-1].lines[-args.last :]), flush=True)
        if made[-1].shots:
            _draw(made[-1].shots, model, args.png, f"{args.scenario} {seed}")


if __name__ == "__main__":
    main()
