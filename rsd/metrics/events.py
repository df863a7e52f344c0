"""Long-tail moments of the recorded episodes, for scores over event windows: a frame is an
event where a scripted brake or cut-in is active or another road's car comes into conflict
with the expert's path; a frame is in an event window within 3 s of one in its episode."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsd.metrics.risk import near_miss_labels
from rsd.scene import Frame

EVENT_SCRIPTS = ("brake", "cut_in")
"""Scripted events (``Frame.events`` entries ``"name:agent"``) that mark a long-tail moment."""


def is_event_frame(frame: Frame, conflict_m: float = 2.0) -> bool:
    """Whether ``frame`` is a long-tail moment: a scripted brake or cut-in is active, or a
    merge / crossing conflict: an agent on another road (``lane_relation`` None: a ramp, a
    ring entry, a crossing road) whose logged future comes within ``conflict_m`` m (box gap)
    of the expert's future at the same step."""
    if any(ev.split(":")[0] in EVENT_SCRIPTS for ev in frame.events):
        return True
    others = [a for a in frame.agents if a.lane_relation is None]
    if not others:
        return False
    ego = frame.ego
    near = near_miss_labels(
        np.stack([a.future for a in others]),
        np.stack([a.future_valid for a in others]),
        np.array([[a.length, a.width] for a in others]),
        ego.future,
        np.array([ego.length, ego.width]),
        distance=conflict_m,
        ego_future_valid=ego.future_valid,
    )
    return bool(near.any())


def event_windows(episode: Any, t: Any, is_event: Any, window_s: float = 3.0) -> np.ndarray:
    """(N,) bool: frames within ``window_s`` seconds (before or after) of an event frame of the
    same episode. ``episode`` (N,) keys (e.g. ``"cut_in-00003"``), ``t`` (N,) s, ``is_event``
    (N,) bool."""
    ep = np.asarray(episode)
    t = np.asarray(t, float)
    ev = np.asarray(is_event, bool)
    out = np.zeros(len(t), bool)
    for key in np.unique(ep[ev]):
        rows = ep == key
        times = t[rows & ev]
        gap = np.abs(t[rows][:, None] - times[None, :]).min(axis=1)
        out[rows] = gap <= window_s + 1e-9
    return out
