"""The privileged expert: drives an :class:`~rsd.sim.episode.Episode` from ground truth.

* Lateral: pure pursuit on the target lane's centreline (followed along the route), inverted
  through highway-env's kinematic bicycle (``beta = arctan(tan(steer) / 2)``, yaw rate
  ``v sin(beta) / (L / 2)``), so the centre's path curvature is ``sin(beta) / (L / 2)``.
* Longitudinal: IDM towards the vehicles on its path (projected onto the path, lateral
  overlap, plus vehicles whose *target* lane is the ego's: cut-ins), a kinematic stopping
  check against braking leaders (privileged acceleration), curvature speed limits.
* Lane changes: MOBIL-style gain with safe gaps to the new leader and follower; mandatory when
  the lane ends (on-ramp).
* Give way (roundabout, intersection): other vehicles are predicted along their routes at
  constant speed; a conflict zone on the ego's path that they reach before the ego has
  cleared it becomes a stop line.

All quantities are SI (m, s, m/s, m/s^2, rad) in highway-env's world frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from highway_env import utils

from rsd.scene import SIM_HZ
from rsd.sim.agents import predict_along_route
from rsd.sim.convert import lane_points
from rsd.sim.episode import Episode
from rsd.sim.layouts import RING

A_MAX, B_COMF, T_GAP, S0 = 2.0, 3.0, 1.2, 2.5
"""IDM parameters of the ego: max accel, comfortable decel (m/s^2), time gap (s), jam (m)."""
A_LAT = 2.5
"""Lateral acceleration allowed in curves (m/s^2)."""
PRED_T = np.arange(0.0, 8.01, 0.25)
"""Prediction times for the give-way check (s)."""


class PrivilegedExpert:
    """``act() -> (accel, steer)`` in m/s^2 and rad for the current state of ``episode``."""

    def __init__(self, episode: Episode) -> None:
        self.ep = episode
        self.target = tuple(episode.ego.lane_index)
        self.last_change = -10.0
        self.prev_accel = 0.0
        self.yielding = episode.layout in ("roundabout", "intersection")

    # ---- geometry -----------------------------------------------------------------------
    def _next(self, idx: tuple) -> tuple | None:
        net = self.ep.road.network
        fr, to, i = idx
        nexts = net.graph.get(to, {})
        if not nexts:
            return None
        cand = [r for r in self.ep.route if r[0] == to]
        nto = cand[0][1] if cand else sorted(nexts)[0]
        if nto not in nexts:
            return None
        n = len(nexts[nto])
        nid = cand[0][2] if cand and cand[0][2] is not None else min(i, n - 1)
        if cand and cand[0][2] is None and n > 1 and len(net.graph[fr][to]) != n:
            end = net.get_lane(idx).position(net.get_lane(idx).length, 0.0)
            nid = min(range(n), key=lambda k: net.get_lane((to, nto, k)).distance(end))
        return (to, nto, nid)

    def lane_path(self, idx: tuple, length: float, ds: float = 1.0) -> np.ndarray:
        """(N, 3) points (x, y, heading) every ``ds`` m along the lane ``idx`` from the ego's
        projection, continuing along the route."""
        net = self.ep.road.network
        lane = net.get_lane(idx)
        s = max(lane.local_coordinates(self.ep.ego.position)[0], 0.0)
        left = int(length // ds) + 1  # points still to place
        chunks = []
        while left > 0:
            if s > lane.length:
                nxt = self._next(idx)
                if nxt is None:
                    break
                s -= lane.length
                idx, lane = nxt, net.get_lane(nxt)
                continue
            n = min(left, int((lane.length - s) // ds) + 1)
            ss = s + ds * np.arange(n)
            chunks.append(lane_points(lane, ss))
            s = float(ss[-1]) + ds
            left -= n
        return np.concatenate(chunks) if chunks else np.zeros((0, 3))

    # ---- lane choice --------------------------------------------------------------------
    def choose_lane(self) -> None:
        """Update :attr:`target` (the lane the expert wants): follow the route past a lane's
        end, then consider a lane change. :meth:`act` does this every step; the closed loop's
        commander runs it in shadow."""
        self._update_target()
        self._maybe_change_lane()

    def _update_target(self) -> None:
        """Advance the target lane along the route once the ego is past its end."""
        net = self.ep.road.network
        for _ in range(4):
            lane = net.get_lane(self.target)
            if lane.local_coordinates(self.ep.ego.position)[0] <= lane.length:
                return
            nxt = self._next(self.target)
            if nxt is None:
                return
            self.target = nxt

    def _lane_ends(self, idx: tuple) -> bool:
        nxt = self._next(idx)
        if nxt is None:
            return self.ep.layout == "merge"
        return idx[2] >= len(self.ep.road.network.graph[nxt[0]][nxt[1]])

    def _neighbours(self, idx: tuple) -> tuple[Any, float, Any, float]:
        """(leader, bumper gap, follower, bumper gap) of the ego on lane ``idx``."""
        ego = self.ep.ego
        lane = self.ep.road.network.get_lane(idx)
        s_e = lane.local_coordinates(ego.position)[0]
        lead = foll = None
        g_lead = g_foll = np.inf
        for o in self.ep.road.vehicles + self.ep.road.objects:
            if o is ego:
                continue
            s_o, lat = lane.local_coordinates(o.position)
            tgt = getattr(o, "target_lane_index", None)
            if abs(lat) > lane.width_at(s_o) / 2 + o.WIDTH / 2 - 0.2 and tgt != idx:
                continue
            gap = abs(s_o - s_e) - (o.LENGTH + ego.LENGTH) / 2
            if s_o >= s_e and gap < g_lead:
                lead, g_lead = o, gap
            elif s_o < s_e and gap < g_foll:
                foll, g_foll = o, gap
        return lead, g_lead, foll, g_foll

    def _safe_gaps(self, idx: tuple, margin: float = 1.0) -> bool:
        """Whether the leader and follower on lane ``idx`` leave the ego room (m)."""
        v = self.ep.ego.speed
        lead, gl, foll, gf = self._neighbours(idx)
        if lead is not None and gl < margin * max(5.0, 0.4 * v + 1.5 * (v - lead.speed)):
            return False
        if foll is not None:
            need = margin * max(6.0, 0.6 * foll.speed + 2.0 * (foll.speed - v))
            if gf < need:
                return False
        return True

    def _maybe_abort(self) -> None:
        """Go back to the lane we came from when the gap closes during a lane change
        (e.g. an NPC moves into the same lane from the other side)."""
        origin = getattr(self, "origin", None)
        if origin is None or origin[:2] != self.target[:2] or self._lane_ends(origin):
            return
        lane = self.ep.road.network.get_lane(origin)
        if abs(lane.local_coordinates(self.ep.ego.position)[1]) > 2.0:
            return  # mostly across: finishing is safer than turning back
        if not self._safe_gaps(self.target, margin=0.6):
            self.target, self.origin = origin, None
            self.last_change = self.ep.t

    def _maybe_change_lane(self) -> None:
        ep, ego = self.ep, self.ep.ego
        if ep.layout not in ("straight", "merge"):
            return
        lane = ep.road.network.get_lane(self.target)
        if abs(lane.local_coordinates(ego.position)[1]) > 0.6:
            self._maybe_abort()
            return  # still changing
        if ep.t - self.last_change < 3.0:
            return
        mandatory = self._lane_ends(self.target)
        if ego.speed < 5.0 and not mandatory:
            return
        lead, g_lead, _, _ = self._neighbours(self.target)
        a_cur = self._idm(ego.speed, lead, g_lead)
        best, best_gain = None, 0.0
        n = len(ep.road.network.graph[self.target[0]][self.target[1]])
        for k in (self.target[2] - 1, self.target[2] + 1):
            if not 0 <= k < n:
                continue
            cand = (*self.target[:2], k)
            c_lane = ep.road.network.get_lane(cand)
            if c_lane.forbidden or self._lane_ends(cand):
                continue
            if mandatory and k > self.target[2]:
                continue
            if not self._safe_gaps(cand):
                continue
            v = ego.speed
            l2, gl, _, _ = self._neighbours(cand)
            gain = self._idm(v, l2, gl) - a_cur
            threshold = -np.inf if mandatory else (0.25 if k > self.target[2] else 0.5)
            if gain > threshold and (best is None or gain > best_gain):
                best, best_gain = cand, gain
        if best is not None:
            self.origin = self.target
            self.target = best
            self.last_change = ep.t

    # ---- longitudinal -------------------------------------------------------------------
    def _idm(self, v: float, lead: Any, gap: float, v_lead: float | None = None) -> float:
        """IDM acceleration (m/s^2) for speed ``v`` behind ``lead`` at bumper ``gap``."""
        v0 = max(self.ep.ego_target_speed, 0.1)
        a = A_MAX * (1 - (v / v0) ** 4)
        if lead is not None and np.isfinite(gap):
            vl = lead.speed if v_lead is None else v_lead
            s_star = S0 + v * T_GAP + v * (v - vl) / (2 * np.sqrt(A_MAX * B_COMF))
            a -= A_MAX * (max(s_star, S0) / max(gap, 0.1)) ** 2
        return a

    def _on_path(self, path: np.ndarray) -> float:
        """Minimum acceleration demanded by the vehicles/objects on ``path``."""
        ep, ego = self.ep, self.ep.ego
        acc = np.inf
        if len(path) < 2:
            return acc
        xy = path[:, :2]
        for o in ep.road.vehicles + ep.road.objects:
            if o is ego:
                continue
            d = np.hypot(*(xy - o.position).T)
            i = int(np.argmin(d))
            if i == 0 and np.dot(o.position - ego.position, ego.direction) < 0:
                continue  # behind
            dh = abs(utils.wrap_to_pi(o.heading - path[i, 2]))
            tgt = getattr(o, "target_lane_index", None)
            if tgt is not None and tuple(tgt) == self.target and d[i] < 6.0:
                d[i] = 0.0  # cutting into our lane: treat as in our path already
            extent = abs(np.sin(dh)) * o.LENGTH / 2 + abs(np.cos(dh)) * o.WIDTH / 2
            if d[i] > ego.WIDTH / 2 + extent + 0.3 or (dh > np.pi / 4 and o.speed > 0.5):
                continue
            gap = i * 1.0 - (ego.LENGTH + o.LENGTH) / 2
            vl = o.speed * np.cos(dh)
            a = self._idm(ego.speed, o, gap, vl)
            a_l = float(getattr(o, "action", {}).get("acceleration", 0.0)) if vl > 0.5 else 0.0
            if a_l < -1.0 or vl < 0.5:  # stopping check against a braking / stopped leader
                stop_l = vl * vl / (2 * max(-a_l, 1.0)) if vl > 0.5 else 0.0
                room = gap + stop_l - 2.0 - ego.speed / SIM_HZ
                b_req = ego.speed**2 / (2 * max(room, 0.1))
                if b_req > B_COMF:
                    a = min(a, -b_req)
            acc = min(acc, a)
        return acc

    def _curvature_speed(self, path: np.ndarray, base: int = 6) -> float:
        """Speed (m/s) allowed now by the path's curvature ahead, measured over ``base`` m
        chords (robust to the small jumps where highway-env lanes meet)."""
        if len(path) < 2 * base:
            return np.inf
        d = np.diff(path[:, :2], axis=0)
        h = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        kappa = np.abs(h[base:] - h[:-base]) / base
        s = np.arange(len(kappa)) + base / 2
        v_c = np.sqrt(A_LAT / np.maximum(kappa, 1e-4))
        return float(np.min(np.sqrt(v_c**2 + 2 * 1.5 * np.maximum(s - 3.0, 0.0))))

    def _give_way(self, path: np.ndarray) -> float:
        """Acceleration (m/s^2) that stops the ego before a conflict zone it cannot clear
        before another vehicle gets there (``inf`` if none)."""
        ep, ego = self.ep, self.ep.ego
        if len(path) < 2:
            return np.inf
        xy = path[:, :2]
        v = ego.speed
        v_max = max(self.ep.ego_target_speed, 1.0)
        stop_at = np.inf
        in_ring = self.target[0] in RING and self.target[1] in RING
        stop_line = None
        if ep.layout == "intersection":
            if self.target[0][0] != "o":
                return np.inf  # inside the junction: never stop in it, clear it
            lane = ep.road.network.get_lane(self.target)
            s_ego = lane.local_coordinates(ego.position)[0]
            stop_line = lane.length - s_ego - ego.LENGTH / 2 - 2.5  # turning NPCs cut corners
        for o in ep.road.vehicles:
            if o is ego or not hasattr(o, "route"):
                continue
            rel = o.position - ego.position
            if np.hypot(*rel) > 80:
                continue
            if (
                np.dot(rel, ego.direction) < -ego.LENGTH / 2
                and np.dot(o.direction, ego.direction) > 0
            ):
                continue  # behind us, same way: it is the one to give way
            if in_ring and not (o.lane_index[0] in RING and o.lane_index[1] in RING):
                continue  # circulating traffic has priority over entering vehicles
            speed = o.speed
            if stop_line is not None and o.lane_index[0][0] == "o" and speed < 4.0:
                rest = o.lane.length - o.lane.local_coordinates(o.position)[0]
                if rest < 15.0:
                    speed = 4.0  # a car waiting at its own line may start any time
            pos, head = predict_along_route(o, PRED_T, speed)
            q = np.asarray(pos)
            d = np.hypot(xy[None, :, 0] - q[:, None, 0], xy[None, :, 1] - q[:, None, 1])
            idx = np.argmin(d, axis=1)
            dh = np.asarray(head) - path[idx, 2]
            extent = np.abs(np.sin(dh)) * o.LENGTH / 2 + np.abs(np.cos(dh)) * o.WIDTH / 2
            r_k = ego.WIDTH / 2 + extent + 0.6
            inside = d[np.arange(len(q)), idx] < r_k
            if not inside.any() or (speed < 0.5 and not inside[0]):
                continue  # no conflict, or a car waiting outside our path
            r = float(np.max(r_k[inside]))
            s_c = float(np.min(idx[inside]))
            t_first = float(PRED_T[np.argmax(inside)])
            t_last = float(PRED_T[len(inside) - 1 - np.argmax(inside[::-1])])
            if inside[-1]:
                t_last = np.inf
            d_in = s_c - r - ego.LENGTH / 2
            d_out = s_c + r + ego.LENGTH / 2
            if stop_line is not None:
                d_in = min(d_in, stop_line)
            if d_in < v * v / (2 * 6.0) + 0.5:
                continue  # committed: cannot stop before it any more
            t_out = _time_to(d_out, v, v_max, 1.5)
            t_in = _time_to(d_in, v, v_max, A_MAX)
            if t_out + 1.2 < t_first or t_last + 0.8 < t_in:
                continue
            stop_at = min(stop_at, d_in - (0.5 if stop_line is not None else 1.5))
        if not np.isfinite(stop_at):
            return np.inf
        a = self._idm(v, _STOPPED, max(stop_at, 0.1) + S0 - 0.5)
        b_req = v * v / (2 * max(stop_at, 0.1))
        return min(a, -b_req) if b_req > B_COMF else a

    # ---- main -----------------------------------------------------------------------------
    def act(self) -> tuple[float, float]:
        """(acceleration m/s^2, steering rad) for this step."""
        ep, ego = self.ep, self.ep.ego
        self.choose_lane()
        v = max(ego.speed, 0.0)
        horizon = max(40.0, 4.0 * v + 25.0)
        path = self.lane_path(self.target, horizon)
        # steering: pure pursuit
        changing = self.target != tuple(ego.lane_index)
        ld = float(np.clip(0.6 * v + 4.0, 5.0, 25.0))
        if changing:
            ld = max(ld, 1.3 * v)
        steer = 0.0
        if len(path) >= 2:
            k = int(min(round(ld), len(path) - 1))
            target = path[k, :2] - ego.position
            dist = max(float(np.hypot(*target)), 1e-3)
            alpha = utils.wrap_to_pi(np.arctan2(target[1], target[0]) - ego.heading)
            kappa = 2 * np.sin(alpha) / dist
            beta = np.arcsin(np.clip(kappa * ego.LENGTH / 2, -0.99, 0.99))
            steer = float(np.arctan(2 * np.tan(beta)))
        # longitudinal
        v_des = min(ep.ego_target_speed, self._curvature_speed(path))
        a = A_MAX * (1 - (v / max(v_des, 0.1)) ** 4)
        a = min(a, self._on_path(path))
        if changing:  # also respect whoever is still ahead in the lane we are leaving
            a = min(a, self._on_path(self.lane_path(tuple(ego.lane_index), horizon)))
        if self.yielding:
            a = min(a, self._give_way(path))
        a = float(np.clip(a, -9.0, A_MAX))
        # comfort: limit jerk when not braking hard
        if a > -B_COMF:
            a = float(np.clip(a, self.prev_accel - 1.0, self.prev_accel + 0.4))
        self.prev_accel = a
        return a, steer


class _Stopped:
    speed = 0.0


_STOPPED = _Stopped()


def _time_to(d: float, v: float, v_max: float, a: float) -> float:
    """Time (s) to cover ``d`` m from speed ``v`` accelerating at ``a`` up to ``v_max``."""
    if d <= 0:
        return 0.0
    v = max(v, 0.0)
    t_acc = max(v_max - v, 0.0) / a
    d_acc = v * t_acc + 0.5 * a * t_acc**2
    if d <= d_acc:
        return float((-v + np.sqrt(v * v + 2 * a * d)) / a)
    return float(t_acc + (d - d_acc) / v_max)
