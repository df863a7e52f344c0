"""How many "too fast" states the noisy expert (DART, ``rsd.sim.noisy_expert``) visits, against
the expert's own recording on the same scenarios and seeds; seconds per episode of each.

A frame is "too fast" when the ego's speed exceeds its label's first-segment speed (the
expert's mean speed over the next 0.5 s, ``|future[0]| / 0.5 s``) by more than ``--margin``
m/s: the expert wants to slow down more than it can do in 0.5 s at 4 m/s^2 (the share of the
recording is the baseline); "too slow" the other way round.

    python benchmarks/dart_states.py [--scenarios sudden_brake cut_in] [--seeds 0 1] [--p 0.3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rsd.scene import KEYFRAME_DT
from rsd.sim.noisy_expert import DartNoise, NoisyExpertRecipe
from rsd.sim.recorder import record_episode
from rsd.sim.relabel import student_episode


def _stats(frames: list) -> np.ndarray:
    """(N, 3) per frame: ego speed minus the label's first-segment speed, minus the label's
    mean speed over its 3 s (m/s), and the time headway (s) to the nearest agent ahead within
    1.8 m of the ego's axis (bumper to bumper; inf if none)."""
    rows = []
    for f in frames:
        fut = f.ego.future[:, :2]
        first = np.hypot(*fut[0]) / KEYFRAME_DT
        mean = np.hypot(*np.diff(np.vstack([[0, 0], fut]), axis=0).T).sum() / (
            len(fut) * KEYFRAME_DT
        )
        gaps = [a.x - (f.ego.length + a.length) / 2 for a in f.agents if a.x > 0 and abs(a.y) < 1.8]
        thw = min(gaps) / max(f.ego.speed, 0.1) if gaps else np.inf
        rows.append((f.ego.speed - first, f.ego.speed - mean, thw))
    return np.array(rows).reshape(-1, 3)


def _timed(fn):  # noqa: ANN001, ANN202
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", nargs="+", default=["sudden_brake", "cut_in"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--p", type=float, default=DartNoise().p, help="perturbation probability")
    p.add_argument("--margin", type=float, default=2.0, help="m/s")
    args = p.parse_args()
    recipe = NoisyExpertRecipe(DartNoise(p=args.p), mix_seed=1)
    rows = {"expert": [[], 0.0, 0.0, 0], "dart": [[], 0.0, 0.0, 0]}
    dv: list[float] = []  # |DART ego speed - the recording's at the same step| (m/s)
    for name in args.scenarios:
        for seed in args.seeds:
            rec, wall, cpu = _timed(lambda n=name, s=seed: record_episode(n, s))
            dart, dwall, dcpu = _timed(
                lambda n=name, s=seed: student_episode(n, s, recipe.factory(), 0.0, 1, "dart1")
            )
            own = {f.step: f.ego.speed for f in rec.frames}
            dv.extend(abs(f.ego.speed - own[f.step]) for f in dart.frames if f.step in own)
            for key, r, w, c in (("expert", rec, wall, cpu), ("dart", dart, dwall, dcpu)):
                rows[key][0].extend(_stats(r.frames))
                rows[key][1] += w
                rows[key][2] += c
                rows[key][3] += int(bool(r.outcome.get("crashed")))
            print(
                f"{name} seed {seed}: expert {len(rec.frames)} frames {wall:.1f} s, "
                f"dart {len(dart.frames)} frames {dwall:.1f} s "
                f"(crashed {dart.outcome['crashed']}, steps {dart.outcome['steps']})"
            )
    n_ep = len(args.scenarios) * len(args.seeds)
    dv_ = np.array(dv)
    print(
        f"DART vs the recording at the same step: |speed difference| mean {dv_.mean():.2f} m/s, "
        f"> 2 m/s in {100 * np.mean(dv_ > 2):.1f} % of {len(dv_)} frames"
    )
    print(f"\n{n_ep} episodes each; noise p={args.p}, margin {args.margin} m/s")
    print(
        "| driver | frames | too fast % | too slow % | faster than 3 s mean > margin % "
        "| headway < 1 s % | crashed | s/episode wall | CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for key, (st, wall, cpu, crashed) in rows.items():
        g = np.array(st).reshape(-1, 3)
        fast, slow = 100 * np.mean(g[:, 0] > args.margin), 100 * np.mean(g[:, 0] < -args.margin)
        fast3, close = 100 * np.mean(g[:, 1] > args.margin), 100 * np.mean(g[:, 2] < 1.0)
        print(
            f"| {key} | {len(g)} | {fast:.1f} | {slow:.1f} | {fast3:.1f} | {close:.1f} | "
            f"{crashed} | {wall / n_ep:.1f} | {cpu / n_ep:.1f} |"
        )


if __name__ == "__main__":
    main()
