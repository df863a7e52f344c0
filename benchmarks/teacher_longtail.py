"""What share of the teacher's risky frames are long-tail events (issue 12), and how the intent
teacher (``intent-v2``, no expert plan) differs from the plan-based one (``intent-v2+plan``).

    python benchmarks/teacher_longtail.py [--seeds 2] [--risky 0.3]

Records ``--seeds`` episodes of every built-in scenario (seeds 0..), assesses every keyframe
with both teachers and prints, per teacher: risky frames (scene risk >= ``--risky``), the share
of them from long-tail scenarios (sudden_brake, cut_in, merge, intersection), the share whose
riskiest object is a long-tail category (cut-in, braking lead, merging or crossing conflict),
the long-tail scenarios' share of all frames for reference, and the correlation of scene risk
with the expert's peak planned deceleration (how much of the imitation label it repeats).
"""

from __future__ import annotations

import argparse

import numpy as np

from rsd.scene import KEYFRAME_DT, Frame
from rsd.sim.recorder import record_episode
from rsd.sim.spec import builtin_scenarios
from rsd.teacher.privileged import PrivilegedConfig, PrivilegedTeacher
from rsd.teacher.schema import RiskCategory

LONG_TAIL = ("sudden_brake", "cut_in", "merge", "intersection")
EVENT_CATS = {
    RiskCategory.CUT_IN,
    RiskCategory.LEAD_BRAKING,
    RiskCategory.MERGING_CONFLICT,
    RiskCategory.CROSSING_CONFLICT,
}


def _peak_decel(f: Frame) -> float:
    """The expert's peak planned deceleration (m/s^2) over its 3 s future."""
    xy = np.concatenate([np.zeros((1, 2)), np.asarray(f.ego.future)[:, :2]])
    speed = np.concatenate([[f.ego.speed], np.hypot(*np.diff(xy, axis=0).T) / KEYFRAME_DT])
    return float(max(0.0, -np.diff(speed).min() / KEYFRAME_DT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--risky", type=float, default=0.3)
    args = parser.parse_args()
    frames = [
        f for name in builtin_scenarios() for s in range(args.seeds)
        for f in record_episode(name, s).frames
    ]  # fmt: skip
    tail = np.array([f.scenario in LONG_TAIL for f in frames])
    decel = np.array([_peak_decel(f) for f in frames])
    print(f"{len(frames)} keyframes, {tail.mean():.0%} from long-tail scenarios")
    for use_plan in (False, True):
        teacher = PrivilegedTeacher(PrivilegedConfig(use_plan=use_plan))
        answers = teacher.assess(frames)
        scene = np.array([a.scene_risk for a in answers])
        risky = scene >= args.risky
        top_event = np.array(
            [bool(a.objects) and a.objects[0].category in EVENT_CATS for a in answers]
        )
        n = max(int(risky.sum()), 1)
        print(
            f"{teacher.prompt_version:<16} risky {risky.sum():4d} ({risky.mean():.0%} of frames);"
            f" of them long-tail scenario {tail[risky].sum() / n:.0%},"
            f" long-tail top category {top_event[risky].sum() / n:.0%};"
            f" corr(scene risk, expert peak decel) {np.corrcoef(scene, decel)[0, 1]:.2f}"
        )


if __name__ == "__main__":
    main()
