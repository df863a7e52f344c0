"""2D ray casting of range sensors against agents' oriented boxes, with occlusion.

Vectorised in numpy over history steps x boxes: for each box only the beams inside its angular
span (seen from the sensor) are tested, with a slab test in the box's own frame, and the nearest
hit per beam wins through an ``np.minimum.at`` depth buffer. The ego is never a target.

Noise and dropout are deterministic: each (frame id, rig, sensor) seeds a ``numpy`` Generator
from ``zlib.crc32`` of ``"{frame_id}|{rig}|{sensor}"`` that draws one row of noise and dropout per
history step (row ``k`` = ``k`` keyframes ago, the same whatever the history length), so the same
frame gives the same returns in every process and run, and different frames differ.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from rsd.data.rigs import RangeSensorConfig, SensorRig
from rsd.scene import PAST_STEPS, Frame

TWO_PI = 2.0 * np.pi


@dataclass
class SensorScan:
    """One sensor's scans over the history steps; step ``k`` is ``k`` keyframes ago (0 = now).

    All positions are in the **current** ego frame (motion-compensated).
    """

    sensor: RangeSensorConfig
    origins: np.ndarray
    """(S, 2) sensor position (m) at each step."""
    angles: np.ndarray
    """(S, B) absolute beam directions (rad) at each step."""
    ranges: np.ndarray
    """(S, B) measured range (m), noise included; ``inf`` where nothing was returned."""
    returned: np.ndarray
    """(S, B) bool: the beam hit an agent within range and was not dropped."""
    dropped: np.ndarray
    """(S, B) bool: the beam was lost (dropout); it says nothing about free space."""
    step_valid: np.ndarray
    """(S,) bool: the ego's pose at that step is known (else the step is blank)."""

    def points(self, k: int = 0) -> np.ndarray:
        """(P, 2) hit points (m) of step ``k`` in the current ego frame."""
        m = self.returned[k]
        r = self.ranges[k, m]
        a = self.angles[k, m]
        return self.origins[k] + np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def cast_rays(
    origins: np.ndarray,
    start_angles: np.ndarray,
    beams: int,
    beam_step: float,
    boxes: np.ndarray,
    box_valid: np.ndarray,
    max_range: float,
) -> np.ndarray:
    """Distance along each beam to the nearest box, per step.

    Args:
        origins: (S, 2) ray origins (m).
        start_angles: (S,) absolute angle (rad) of the edge of beam 0; beam ``i`` points at
            ``start + (i + 0.5) * beam_step``.
        beams: B, beams per step.
        beam_step: angle between neighbouring beams (rad).
        boxes: (S, N, 5) boxes ``(x, y, yaw, length, width)`` per step (m, rad).
        box_valid: (S, N) bool, which boxes exist at each step.
        max_range: hits at or beyond this distance (m) are ignored.

    Returns:
        (S, B) float64 ranges (m), ``inf`` where no box was hit within ``max_range``.
    """
    n_steps = origins.shape[0]
    out = np.full(n_steps * beams, np.inf)
    s_idx, n_idx = np.nonzero(box_valid)
    if s_idx.size == 0:
        return out.reshape(n_steps, beams)
    b = boxes[s_idx, n_idx]
    cx, cy, yaw, hl, hw = b[:, 0], b[:, 1], b[:, 2], b[:, 3] / 2, b[:, 4] / 2
    ox, oy = origins[s_idx, 0], origins[s_idx, 1]
    dx, dy = cx - ox, cy - oy
    c, s = np.cos(yaw), np.sin(yaw)
    # Sensor origin in each box's frame.
    lx, ly = -(c * dx + s * dy), -(-s * dx + c * dy)
    keep = ~((np.abs(lx) < hl) & (np.abs(ly) < hw))  # a sensor inside a box sees through it
    keep &= np.hypot(dx, dy) - np.hypot(hl, hw) < max_range
    # Angular span of each box seen from the origin (< pi, the box is convex and outside).
    sx, sy = np.array([1, -1, -1, 1]), np.array([1, 1, -1, -1])
    kx = dx[:, None] + c[:, None] * (sx * hl[:, None]) - s[:, None] * (sy * hw[:, None])
    ky = dy[:, None] + s[:, None] * (sx * hl[:, None]) + c[:, None] * (sy * hw[:, None])
    centre = np.arctan2(dy, dx)
    rel = (np.arctan2(ky, kx) - centre[:, None] + np.pi) % TWO_PI - np.pi
    lo = (centre + rel.min(axis=1) - start_angles[s_idx]) % TWO_PI
    hi = lo + (rel.max(axis=1) - rel.min(axis=1))
    # Candidate beams: centres inside [lo, hi], also one turn back for spans crossing 2*pi.
    box_ids, beam_ids = [], []
    for shift in (0.0, TWO_PI):
        k0 = np.maximum(np.ceil((lo - shift) / beam_step - 0.5), 0).astype(np.int64)
        k1 = np.minimum(np.floor((hi - shift) / beam_step - 0.5), beams - 1).astype(np.int64)
        counts = np.where(keep, np.maximum(k1 - k0 + 1, 0), 0)
        total = int(counts.sum())
        if total == 0:
            continue
        owner = np.repeat(np.arange(len(counts)), counts)
        first = np.cumsum(counts) - counts
        box_ids.append(owner)
        beam_ids.append(k0[owner] + np.arange(total) - first[owner])
    if not box_ids:
        return out.reshape(n_steps, beams)
    m = np.concatenate(box_ids)
    k = np.concatenate(beam_ids)
    # Slab test in the box frame.
    phi = start_angles[s_idx[m]] + (k + 0.5) * beam_step - yaw[m]
    ux, uy = np.cos(phi), np.sin(phi)
    with np.errstate(divide="ignore", invalid="ignore"):
        tx1, tx2 = (-hl[m] - lx[m]) / ux, (hl[m] - lx[m]) / ux
        ty1, ty2 = (-hw[m] - ly[m]) / uy, (hw[m] - ly[m]) / uy
        t_near = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
        t_far = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
        hit = (t_far >= t_near) & (t_near > 0) & (t_near < max_range)
    np.minimum.at(out, s_idx[m][hit] * beams + k[hit], t_near[hit])
    return out.reshape(n_steps, beams)


def _poses_at(frame: Frame, history: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ego poses (S, 3) + valid (S,), agent boxes (S, N, 5) + valid (S, N) for steps 0..S-1."""
    n = len(frame.agents)
    ego = np.zeros((history, 3))
    ego_valid = np.ones(history, dtype=bool)
    if history > 1:  # step k is past[-k]: reverse the oldest-first past arrays
        ego[1:] = frame.ego.past[::-1][: history - 1]
        ego_valid[1:] = frame.ego.past_valid[::-1][: history - 1]
    boxes = np.zeros((history, n, 5))
    valid = np.zeros((history, n), dtype=bool)
    if n == 0:
        return ego, ego_valid, boxes, valid
    agents = frame.agents
    boxes[0, :, :3] = [(a.x, a.y, a.yaw) for a in agents]
    boxes[:, :, 3:] = [(a.length, a.width) for a in agents]
    valid[0] = True
    if history > 1:
        past = np.stack([a.past for a in agents], axis=1)  # (P, N, 3), oldest first
        past_valid = np.stack([a.past_valid for a in agents], axis=1)
        boxes[1:, :, :3] = past[::-1][: history - 1]
        valid[1:] = past_valid[::-1][: history - 1]
    valid &= ego_valid[:, None]
    return ego, ego_valid, boxes, valid


def noise_seed(frame_id: str, rig_name: str, sensor_name: str) -> int:
    """Seed of the noise/dropout Generator of one (frame, rig, sensor)."""
    return zlib.crc32(f"{frame_id}|{rig_name}|{sensor_name}".encode())


def _noise(frame_id: str, rig_name: str, sensor_name: str, beams: int):
    """(PAST_STEPS + 1, B) standard normal range noise and (PAST_STEPS + 1, B) uniform dropout
    draws; row ``k`` belongs to history step ``k`` whatever the raster's history length."""
    rng = np.random.default_rng(noise_seed(frame_id, rig_name, sensor_name))
    shape = (PAST_STEPS + 1, beams)
    return rng.standard_normal(shape), rng.random(shape)


def scan(frame: Frame, rig: SensorRig, history: int = 1) -> list[SensorScan]:
    """Scans of every sensor of ``rig`` at the current and ``history - 1`` past keyframes.

    At a past keyframe the sensor sits at the ego's past pose (``ego.past``) and sees the
    agents' past poses (``agent.past`` where ``past_valid``); results stay in the current ego
    frame. A step whose ego pose is invalid returns nothing (``step_valid`` False).
    """
    ego, ego_valid, boxes, valid = _poses_at(frame, history)
    cos_e, sin_e = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    scans = []
    for sensor in rig.sensors:
        fov = np.deg2rad(sensor.fov_deg)
        step = fov / sensor.beams
        origins = ego[:, :2] + np.stack(
            [
                cos_e * sensor.mount_x - sin_e * sensor.mount_y,
                sin_e * sensor.mount_x + cos_e * sensor.mount_y,
            ],
            axis=1,
        )
        start = ego[:, 2] + np.deg2rad(sensor.mount_yaw_deg) - fov / 2
        ranges = cast_rays(origins, start, sensor.beams, step, boxes, valid, sensor.range_m)
        angles = start[:, None] + (np.arange(sensor.beams) + 0.5) * step
        dropped = np.zeros_like(ranges, dtype=bool)
        if sensor.noise_std_m > 0 or sensor.dropout > 0:
            noise, lost = _noise(frame.frame_id, rig.name, sensor.name, sensor.beams)
            ranges += sensor.noise_std_m * noise[:history]
            dropped = lost[:history] < sensor.dropout
        returned = np.isfinite(ranges) & ~dropped & (ranges > 0) & (ranges < sensor.range_m)
        returned &= ego_valid[:, None]
        ranges[~returned] = np.inf
        scans.append(SensorScan(sensor, origins, angles, ranges, returned, dropped, ego_valid))
    return scans
