"""The one-sentence rationale of the privileged teacher for one agent: the numbers behind its
risk and category (:meth:`rsd.teacher.privileged.PrivilegedTeacher.features`)."""

from __future__ import annotations

import numpy as np

from rsd.scene import AgentClass
from rsd.teacher.schema import RiskCategory


def _class_name(cls: int) -> str:
    """``"Car"``, ``"Traffic cone"``...: any :class:`AgentClass`, real-data classes included."""
    return AgentClass(cls).name.replace("_", " ").capitalize()


def _where(rel: float, dx: float) -> str:
    side = "ahead" if dx >= 0 else "behind"
    if np.isnan(rel):
        return f"{abs(dx):.0f} m {side} on another road"
    if rel == 0:
        return f"{abs(dx):.0f} m {side} in the ego lane"
    direction = "left" if rel > 0 else "right"
    if abs(rel) == 1:
        return f"{abs(dx):.0f} m {side} in the {direction} lane"
    return f"{abs(dx):.0f} m {side}, {abs(rel):.0f} lanes to the {direction}"


INTENT_NOTE_M = 1.0
"""Departure from constant velocity (m) from which the rationale names it."""


def rationale(f: dict[str, np.ndarray], i: int, cat: RiskCategory) -> str:
    """One or two sentences with the numbers behind the judgement of agent ``i``; the second
    names how far its logged future departs from constant velocity (``dev``), when it does."""
    text = _sentence(f, i, cat)
    dev = float(f["dev"][i]) if "dev" in f else 0.0
    if dev >= INTENT_NOTE_M:
        text += f" Its next 3 s depart {dev:.1f} m from constant velocity."
    return text


def _sentence(f: dict[str, np.ndarray], i: int, cat: RiskCategory) -> str:
    name = f"{_class_name(int(f['cls'][i]))} {int(f['ids'][i])}"
    rel, x = float(f["rel"][i]), float(f["x"][i])
    where = _where(rel, x)
    lane = where.split(" m ", 1)[1]  # "ahead in the ego lane"
    ttc = float(f["ttc"][i])
    ttc_s = f"TTC {ttc:.1f} s" if np.isfinite(ttc) else "no collision course"
    near = f"closest gap {f['d_min'][i]:.1f} m at {f['t_min'][i]:.1f} s"
    acc, close, gap = float(f["accel"][i]), float(f["closing"][i]), float(f["gap"][i])
    rate = f"closing at {close:.1f} m/s" if close >= 0 else f"opening at {-close:.1f} m/s"
    if cat is RiskCategory.LEAD_BRAKING:
        if acc <= -0.5:
            what = f"brakes at {-acc:.1f} m/s^2"
        elif close > 0 and f["speed"][i] < 0.5:
            what = "is stopped"
        else:
            what = f"is {close:.1f} m/s slower"
        return f"{name} {what} {gap:.0f} m {lane}; {ttc_s}."
    if cat is RiskCategory.FOLLOWING:
        return f"{name} is {gap:.0f} m {lane}, headway {f['headway'][i]:.1f} s, {rate}."
    if cat is RiskCategory.CUT_IN:
        return (
            f"{name} cuts in from the {'left' if f['y'][i] > 0 else 'right'} to {gap:.0f} m"
            f" ahead within"
            f" {f['t_enter'][i]:.1f} s (headway {f['headway'][i]:.1f} s); {ttc_s}."
        )
    if cat is RiskCategory.MERGING_CONFLICT:
        return f"{name} and the ego merge into one path, {where}; {ttc_s}, {near}."
    if cat is RiskCategory.CROSSING_CONFLICT:
        return f"{name} crosses the ego's path, {where}; {ttc_s}, {near}."
    if cat is RiskCategory.REAR:
        return f"{name} approaches {where}, {rate}; {ttc_s}."
    return f"{name} is {where}, {rate}; no conflict ({near})."
