"""Recovery augmentation: training frames seen from a slightly displaced ego, labelled with a
path back to the expert's.

Why: the privileged expert drives on its lane's centreline, so every recorded frame shows an
ego centred and aligned with its lane, and a planner trained on them learns "drive straight
ahead in my own frame". In closed loop the first small error then compounds: the model, now a
little off-centre or yawed, again plans straight ahead, and the ego leaves the road within
seconds (measured before this module: most closed-loop episodes of both models ended off-road).
The remedy is old (ALVINN's shifted views, ChauffeurNet's perturbations, DART's noise): show
the model displaced states with the corrective plan as the label.

:func:`perturb_frame` moves the ego by ``dy`` metres sideways and ``dyaw`` radians in its own
frame at the frame's time and re-expresses everything (agents, their past and future, lanes,
the ego's past) rigidly in the new ego frame; the scene itself is unchanged, so visibility and
the BEV raster are recomputed from the new viewpoint by the usual rasteriser. The ego's
future label starts straight ahead of the displaced ego and blends into the expert's future
(in the new frame) with a smoothstep over ``recover_s`` seconds: it rejoins the expert's
path, with the expert's speed profile. Speeds, accelerations and the command are kept.

:class:`Augmenter` draws the displacement per (seed, epoch, frame index), so a sample is a pure
function of those (exact resume, identical in every DataLoader worker). It never displaces a
nearly stopped ego (a lateral recovery needs forward motion) or one whose displaced box would
overlap another road user.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from rsd.config import ConfigError
from rsd.geometry import box_corners
from rsd.scene import KEYFRAME_DT, Frame

__all__ = ["AugmentConfig", "Augmenter", "perturb_frame"]


@dataclass(frozen=True)
class AugmentConfig:
    """How training frames are displaced (``prob`` 0 switches it off)."""

    prob: float = 0.5
    """Fraction of training samples shown displaced."""
    max_lateral: float = 1.2
    """Largest sideways displacement (m); drawn uniformly in ``[-max, max]``."""
    max_yaw: float = 0.1
    """Largest heading displacement (rad, ~6 deg); drawn uniformly in ``[-max, max]``."""
    recover_s: float = 2.5
    """Time (s) over which the label's offset fades out (smoothstep)."""
    min_speed: float = 3.0
    """An ego slower than this (m/s) is never displaced."""

    def __post_init__(self) -> None:
        checks = [
            ("prob", 0.0 <= self.prob <= 1.0, "must be in [0, 1]"),
            ("max_lateral", self.max_lateral >= 0.0, "must be >= 0"),
            ("max_yaw", 0.0 <= self.max_yaw < np.pi / 2, "must be in [0, pi/2)"),
            ("recover_s", self.recover_s > 0.0, "must be > 0"),
            ("min_speed", self.min_speed >= 0.0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ConfigError(f"augment.{name}: {why}, got {getattr(self, name)!r}")


class _Rigid:
    """The map from the old ego frame to the frame of an ego displaced by ``(0, dy)`` and
    rotated by ``dyaw``: ``p -> R(-dyaw) (p - (0, dy))``, ``yaw -> yaw - dyaw``."""

    def __init__(self, dy: float, dyaw: float) -> None:
        self.dy, self.dyaw = float(dy), float(dyaw)
        c, s = np.cos(-self.dyaw), np.sin(-self.dyaw)
        self.rot = np.array([[c, -s], [s, c]])

    def points(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.array([0.0, self.dy])) @ self.rot.T

    def vectors(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=np.float64) @ self.rot.T

    def poses(self, poses: np.ndarray) -> np.ndarray:
        """(N, 3) ``x, y, yaw`` poses, same dtype as given."""
        out = np.array(poses, dtype=np.float64, copy=True)
        if len(out):
            out[:, :2] = self.points(out[:, :2])
            out[:, 2] = _wrap(out[:, 2] - self.dyaw)
        return out.astype(np.asarray(poses).dtype)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def recovery_label(future: np.ndarray, valid: np.ndarray, tf: _Rigid, recover_s: float):
    """The ego's future label (T, 3) after displacement ``tf``: it leaves the new ego straight
    ahead (along its displaced heading, at the expert's speed profile) and blends into the
    expert's future expressed in the new frame with weight ``smoothstep(t / recover_s)``, so
    it is tangent to the ego's heading at the start and on the expert's path from
    ``recover_s`` on. Yaw follows the label's direction of travel where it moves."""
    future = np.asarray(future)
    fut = tf.poses(future).astype(np.float64)
    t = KEYFRAME_DT * np.arange(1, len(fut) + 1)
    old = np.vstack([[0.0, 0.0], future[:, :2].astype(np.float64)])
    arc = np.cumsum(np.hypot(*np.diff(old, axis=0).T))  # the expert's distance travelled
    straight = np.column_stack([arc, np.zeros_like(arc)])
    w = _smoothstep(t / recover_s)[:, None]
    fut[:, :2] = (1.0 - w) * straight + w * fut[:, :2]
    prev = np.vstack([[0.0, 0.0], fut[:-1, :2]])
    step = fut[:, :2] - prev
    moving = (np.hypot(step[:, 0], step[:, 1]) > 0.2) & np.asarray(valid, dtype=bool)
    fut[moving, 2] = np.arctan2(step[moving, 1], step[moving, 0])
    return fut.astype(future.dtype)


def perturb_frame(frame: Frame, dy: float, dyaw: float, recover_s: float = 2.5) -> Frame:
    """``frame`` seen from an ego displaced ``dy`` m to the left and rotated ``dyaw`` rad
    counter-clockwise (see the module doc). ``frame`` is not modified."""
    tf = _Rigid(dy, dyaw)
    ego = frame.ego
    past = tf.poses(ego.past)
    if len(past):  # the ego came along its old path, shifted to end at the new position
        past[:, :2] -= tf.points(np.zeros((1, 2)))[0].astype(past.dtype)
    c, s = np.cos(ego.world_yaw), np.sin(ego.world_yaw)
    new_ego = dataclasses.replace(
        ego,
        lane_offset=float(ego.lane_offset + dy),
        world_x=float(ego.world_x - s * dy),
        world_y=float(ego.world_y + c * dy),
        world_yaw=float(_wrap(np.asarray(ego.world_yaw + dyaw))),
        past=past,
        past_valid=ego.past_valid.copy(),
        future=recovery_label(ego.future, ego.future_valid, tf, recover_s),
        future_valid=ego.future_valid.copy(),
    )
    agents = []
    for a in frame.agents:
        xy = tf.points(np.array([[a.x, a.y]]))[0]
        v = tf.vectors(np.array([[a.vx, a.vy]]))[0]
        agents.append(
            dataclasses.replace(
                a,
                x=float(xy[0]),
                y=float(xy[1]),
                yaw=float(_wrap(np.asarray(a.yaw - dyaw))),
                vx=float(v[0]),
                vy=float(v[1]),
                past=tf.poses(a.past),
                past_valid=a.past_valid.copy(),
                future=tf.poses(a.future),
                future_valid=a.future_valid.copy(),
            )
        )
    lanes = [
        dataclasses.replace(lane, centre=tf.points(lane.centre).astype(lane.centre.dtype))
        for lane in frame.lanes
    ]
    route = tf.points(frame.route).astype(np.float32).reshape(-1, 2)
    return dataclasses.replace(
        frame,
        ego=new_ego,
        agents=agents,
        lanes=lanes,
        route=route,
        events=copy.copy(frame.events),
    )


def _overlaps(frame: Frame, margin: float = 0.3) -> bool:
    """Whether the ego's box (at the origin, grown by ``margin``) overlaps any agent's box."""
    e = frame.ego
    ego = box_corners(0.0, 0.0, 0.0, e.length + 2 * margin, e.width + 2 * margin)
    for a in frame.agents:
        if np.hypot(a.x, a.y) > e.length + a.length:
            continue
        if _convex_overlap(ego, box_corners(a.x, a.y, a.yaw, a.length, a.width)):
            return True
    return False


def _convex_overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Separating-axis test of two convex polygons (N, 2), (M, 2)."""
    for poly in (p, q):
        edges = np.roll(poly, -1, axis=0) - poly
        for ex, ey in edges:
            axis = np.array([-ey, ex])
            a, b = p @ axis, q @ axis
            if a.max() < b.min() or b.max() < a.min():
                return False
    return True


class Augmenter:
    """Draws and applies displacements: ``augmenter(frame, index, epoch)``."""

    def __init__(self, cfg: AugmentConfig, seed: int = 0) -> None:
        self.cfg, self.seed = cfg, int(seed)

    def draw(self, index: int, epoch: int) -> tuple[float, float] | None:
        """``(dy, dyaw)`` for sample ``index`` in ``epoch``, or None (shown as recorded)."""
        c = self.cfg
        if c.prob <= 0.0:
            return None
        rng = np.random.default_rng([self.seed, int(epoch), int(index), 0x5EED])
        u, a, b = rng.random(3)
        if u >= c.prob:
            return None
        return float((2 * a - 1) * c.max_lateral), float((2 * b - 1) * c.max_yaw)

    def __call__(self, frame: Frame, index: int, epoch: int) -> Frame:
        d = self.draw(index, epoch)
        if d is None or frame.ego.speed < self.cfg.min_speed:
            return frame
        out = perturb_frame(frame, d[0], d[1], self.cfg.recover_s)
        return frame if _overlaps(out) else out
