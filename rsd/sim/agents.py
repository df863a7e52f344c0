"""Non-ego vehicles: IDM/MOBIL drivers with real sizes, behaviour profiles and scripts.

highway-env's own ``AggressiveVehicle``/``DefensiveVehicle`` are linear controllers that
log features every step (memory grows) and brake weakly; we use IDM throughout and vary
its parameters per behaviour instead. The IDM gap is bumper to bumper (highway-env uses
centre distance with a fixed 10 m jam distance, which lets trucks touch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle

from rsd.scene import AGENT_CLASS_SIZES, AgentClass

MAX_BRAKE = 9.0
"""Braking capability of every NPC (m/s^2): enough to follow a hard-braking car."""


@dataclass(frozen=True)
class Profile:
    """IDM/MOBIL parameters of one behaviour (SI units)."""

    time_wanted: float
    jam: float
    acc: float
    comfort_brake: float
    politeness: float
    min_gain: float
    speed_factor: float


PROFILES: dict[str, Profile] = {
    "idm": Profile(1.5, 3.0, 3.0, 4.0, 0.2, 0.3, 1.0),
    "aggressive": Profile(0.9, 2.5, 4.0, 5.0, 0.0, 0.1, 1.12),
    "defensive": Profile(2.0, 4.0, 2.0, 3.0, 0.5, 0.6, 0.9),
    "scripted": Profile(1.2, 3.0, 3.0, 4.0, 0.0, 0.3, 1.0),
}


def set_size(vehicle: object, length: float, width: float) -> None:
    """Give one vehicle instance its own size; highway-env reads ``LENGTH``/``WIDTH`` from the
    instance in ``polygon()`` (collisions), the bicycle model and its controllers, but caches
    ``diagonal`` (the collision pre-check radius) at construction, so refresh it too."""
    vehicle.LENGTH = float(length)
    vehicle.WIDTH = float(width)
    vehicle.diagonal = float(np.hypot(length, width))


def draw_size(cls: AgentClass, jitter: float, rng: np.random.Generator) -> tuple[float, ...]:
    """(length, width, height) in metres: the class's nominal size times ``1 +- jitter``."""
    nominal = np.asarray(AGENT_CLASS_SIZES[cls])
    return tuple(float(x) for x in nominal * (1.0 + rng.uniform(-jitter, jitter, size=3)))


class NPC(IDMVehicle):
    """IDM/MOBIL vehicle with a bumper-gap IDM, a behaviour profile and optional script.

    A script is a callable ``script(vehicle, t) -> float | None`` returning an acceleration
    override (m/s^2) at episode time ``t`` (s), or ``None`` to drive normally.
    """

    ACC_MAX = MAX_BRAKE
    DELTA = 4.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.profile = PROFILES["idm"]
        self.jam = 3.0
        self.script = None
        self.give_way = None
        """Optional ``give_way(vehicle) -> float | None``: distance (m) to a point where the
        vehicle must stop now (e.g. a roundabout entry), or ``None``."""
        self.clock = 0.0
        self.override: float | None = None

    def apply_profile(self, name: str, target_speed: float) -> None:
        p = PROFILES[name]
        self.profile = p
        self.TIME_WANTED = p.time_wanted
        self.jam = p.jam
        self.COMFORT_ACC_MAX = p.acc
        self.COMFORT_ACC_MIN = -p.comfort_brake
        self.POLITENESS = p.politeness
        self.LANE_CHANGE_MIN_ACC_GAIN = p.min_gain
        self.target_speed = target_speed * p.speed_factor

    def desired_gap(self, ego_vehicle, front_vehicle=None, projected: bool = True) -> float:
        """Desired centre distance (m): IDM's bumper gap plus both half lengths."""
        tau = getattr(ego_vehicle, "TIME_WANTED", self.TIME_WANTED)
        jam = getattr(ego_vehicle, "jam", self.jam)
        ab = -self.COMFORT_ACC_MAX * self.COMFORT_ACC_MIN
        dv = np.dot(ego_vehicle.velocity - front_vehicle.velocity, ego_vehicle.direction)
        v = max(ego_vehicle.speed, 0.0)
        return (
            jam
            + (ego_vehicle.LENGTH + front_vehicle.LENGTH) / 2
            + v * tau
            + v * dv / (2 * np.sqrt(ab))
        )

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        """IDM acceleration (m/s^2) of ``ego_vehicle`` behind ``front_vehicle``.

        highway-env measures the gap on the follower's *current* lane even when the leader
        was found on a connected or target lane; on a circular lane that distance is
        meaningless (a car 50 m down an exit road came out 6 m ahead and froze the NPC
        forever), so distances that disagree with the straight-line one fall back to it."""
        if ego_vehicle is None or not hasattr(ego_vehicle, "speed"):
            return 0.0
        v0 = getattr(ego_vehicle, "target_speed", 0.0) or 0.0
        lane = getattr(ego_vehicle, "lane", None)
        if lane is not None and lane.speed_limit is not None:
            v0 = float(np.clip(v0, 0.0, lane.speed_limit))
        v = max(ego_vehicle.speed, 0.0)
        a = self.COMFORT_ACC_MAX * (1 - (v / max(abs(v0), 1e-3)) ** self.DELTA)
        if front_vehicle is not None and self._phantom(ego_vehicle, front_vehicle):
            front_vehicle = None
        if front_vehicle is not None:
            d_euc = float(np.linalg.norm(front_vehicle.position - ego_vehicle.position))
            d = ego_vehicle.lane_distance_to(front_vehicle)
            if not d_euc - 1.0 <= d <= d_euc + 10.0:  # an arc is never shorter than its chord
                d = d_euc
            gap = self.desired_gap(ego_vehicle, front_vehicle)
            a -= self.COMFORT_ACC_MAX * (gap / max(d, 0.1)) ** 2
        return float(a)

    @staticmethod
    def _phantom(ego_vehicle, front) -> bool:
        """A "leader" highway-env found by projecting onto a connected curved lane that is
        really beside us, heading another way (e.g. a car waiting at the next approach)."""
        rel = front.position - ego_vehicle.position
        d = ego_vehicle.direction
        lateral = abs(d[0] * rel[1] - d[1] * rel[0])
        aligned = float(np.dot(d, front.direction)) > 0.5
        return not aligned and lateral > (ego_vehicle.WIDTH + front.WIDTH) / 2 + 1.0

    def act(self, action=None) -> None:
        if self.crashed:
            return
        self.override = self.script(self, self.clock) if self.script is not None else None
        super().act(action)
        if self.give_way is not None:
            d = self.give_way(self)
            if d is not None:
                self.action["acceleration"] = min(self.action["acceleration"], self.stop_acc(d))
        if self.override is not None:
            self.action["acceleration"] = float(self.override)

    def predict_trajectory_constant_speed(self, times: np.ndarray):
        return predict_along_route(self, times)

    def stop_acc(self, d: float) -> float:
        """IDM acceleration (m/s^2) towards a standstill point ``d`` m ahead of the front."""
        v = max(self.speed, 0.0)
        ab = -self.COMFORT_ACC_MAX * self.COMFORT_ACC_MIN
        s_star = 1.0 + v * self.TIME_WANTED * 0.5 + v * v / (2 * np.sqrt(ab))
        free = 1 - (v / max(self.target_speed, 0.1)) ** self.DELTA
        a = self.COMFORT_ACC_MAX * (free - (s_star / max(d, 0.1)) ** 2)
        return float(np.clip(a, -MAX_BRAKE, self.COMFORT_ACC_MAX))

    def step(self, dt: float) -> None:
        self.clock += dt
        # never reverse: highway-env's MIN_SPEED is -40 m/s
        if self.speed + self.action["acceleration"] * dt < 0:
            self.action["acceleration"] = -self.speed / dt
        super().step(dt)


def predict_along_route(
    v, times: np.ndarray, speed: float | None = None
) -> tuple[list[np.ndarray], list[float]]:
    """Positions and headings of ``v`` at ``times`` (s) driving its route at constant speed
    (its own, or ``speed`` m/s).

    Replaces highway-env's ``ControlledVehicle.predict_trajectory_constant_speed``, which
    indexes the next route lane with the *current* road's lane id and raises ``IndexError``
    when a two-lane ring road leads to a one-lane exit.
    """
    net = v.road.network
    route = list(getattr(v, "route", None) or [v.lane_index])
    while len(route) > 1 and tuple(route[0][:2]) != tuple(v.lane_index[:2]):
        route.pop(0)
    lanes = []
    cur_id = v.lane_index[2]
    for fr, to, i in route:
        n = len(net.graph[fr][to])
        i = min(cur_id, n - 1) if i is None else i
        lanes.append(net.get_lane((fr, to, i)))
    if tuple(route[0][:2]) != tuple(v.lane_index[:2]):
        lanes = [v.lane]
    s0 = v.lane.local_coordinates(v.position)[0]
    pos, head = [], []
    for t in np.atleast_1d(times):
        s, k = s0 + (v.speed if speed is None else speed) * float(t), 0
        while k < len(lanes) - 1 and s > lanes[k].length:
            s -= lanes[k].length
            k += 1
        pos.append(lanes[k].position(s, 0.0))
        head.append(lanes[k].heading_at(s))
    return pos, head


class BrakeScript:
    """Brake at ``decel`` (m/s^2) from time ``at`` (s) to standstill, hold ``hold`` s, then
    return to normal IDM driving. ``active`` is true while braking or holding."""

    name = "brake"

    def __init__(self, at: float, decel: float, hold: float) -> None:
        self.at, self.decel, self.hold = at, decel, hold
        self.stopped_at: float | None = None
        self.done = False

    def active(self, t: float) -> bool:
        return t >= self.at and not self.done

    def __call__(self, v: NPC, t: float) -> float | None:
        if t < self.at or self.done:
            return None
        if v.speed <= 0.05:
            self.stopped_at = t if self.stopped_at is None else self.stopped_at
            if t - self.stopped_at >= self.hold:
                self.done = True
                v.enable_lane_change = True
                return None
            return 0.0
        return -self.decel


class CutInScript:
    """Once the vehicle is ``gap`` m ahead of the ego's front (after ``at`` s), steer into
    the ego's lane; then brake at ``decel`` for ``brake_time`` s."""

    name = "cut_in"

    def __init__(self, ego, at: float, gap: float, decel: float, brake_time: float) -> None:
        self.ego, self.at, self.gap = ego, at, gap
        self.decel, self.brake_time = decel, brake_time
        self.started: float | None = None
        self.entered: float | None = None
        self.done = False

    def active(self, t: float) -> bool:
        return self.started is not None and not self.done

    def __call__(self, v: NPC, t: float) -> float | None:
        ego = self.ego
        if self.started is None:
            lead = v.position - ego.position
            ahead = float(np.dot(lead, ego.direction)) - (v.LENGTH + ego.LENGTH) / 2
            if t >= self.at and ahead >= self.gap and ego.lane_index[:2] == v.lane_index[:2]:
                self.started = t
                v.target_lane_index = ego.lane_index
            return None
        if self.done:
            return None
        v.target_lane_index = (*v.target_lane_index[:2], ego.lane_index[2])
        if self.entered is None:
            if v.lane_index == ego.lane_index:
                self.entered = t
            elif t - self.started > 8.0:
                self.done = True
            return None
        if t - self.entered < self.brake_time and self.decel > 0:
            return -self.decel
        self.done = True
        return None
