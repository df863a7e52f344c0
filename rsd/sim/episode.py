"""One seeded episode of a scenario: the contract between the simulator, the expert and the
recorder.

``make_episode(spec, seed)`` draws the spec's parameters from ``seed`` (numpy Generator),
builds the road with highway-env (reset with the same seed), places NPCs with drawn classes,
sizes and behaviours, and arms the scripted events. ``Episode.step(accel, steer)`` advances
one ``1 / SIM_HZ`` s step with physical controls. Nothing here renders.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsd.scene import SIM_HZ, AgentClass
from rsd.sim import layouts
from rsd.sim.envs import EGO_ACCEL, EGO_STEER, layout_of, make_env, to_normalised
from rsd.sim.junctions import junction_connectors
from rsd.sim.spec import ScenarioSpec, draw_params, load_scenario


@dataclass
class SimAgent:
    """A non-ego vehicle."""

    vehicle: Any
    """The highway-env vehicle object."""
    id: int
    """Stable within the episode, assigned in order of appearance, from 1."""
    cls: AgentClass
    height: float
    """Height (m); length and width live on the vehicle (``LENGTH``, ``WIDTH``)."""
    behaviour: str
    """``idm`` | ``aggressive`` | ``defensive`` | ``scripted``."""


class Episode:
    """A running episode. ``t = step_count / SIM_HZ`` seconds have elapsed."""

    def __init__(self, spec: ScenarioSpec, seed: int) -> None:
        self.spec = spec
        self.seed = int(seed)
        self.rng = np.random.default_rng([self.seed, _stable_hash(spec.name)])
        self.params: dict[str, Any] = draw_params(spec, self.rng)
        self.layout = layout_of(spec.env_id)
        self.env = make_env(spec.env_id, dict(spec.config), spec.duration, self.seed)
        self.road = self.env.unwrapped.road
        self.ego = self.env.unwrapped.vehicle
        self.ego_height = 0.0
        self.step_count = 0
        self.crashed = False
        self.offroad = False
        self.reached_goal = False
        self.route: list[tuple] = []
        """The ego's planned route (lane indices); the expert follows it."""
        self.ego_target_speed = float(self.params["ego.target_speed"])
        self._agents: dict[int, SimAgent] = {}
        self._next_id = 1
        self.connectors = junction_connectors(self.road.network)
        """``(id, lane)`` junction connectors (:mod:`rsd.sim.junctions`): road, not graph."""
        self._lanes = [*self.road.network.lanes_list(), *(lane for _, lane in self.connectors)]
        self.spawn_sites: list[tuple[tuple, float]] = []
        self.give_way: Any = None
        self.scripts: list[tuple[int, Any]] = []
        layouts.populate(self)

    # ---- agents -------------------------------------------------------------------------
    def register(self, vehicle: Any, cls: AgentClass, height: float, behaviour: str) -> SimAgent:
        """Add ``vehicle`` to the road (if absent) and give it the next agent id."""
        if vehicle not in self.road.vehicles:
            self.road.vehicles.append(vehicle)
        agent = SimAgent(vehicle, self._next_id, cls, height, behaviour)
        self._agents[id(vehicle)] = agent
        self._next_id += 1
        return agent

    def agents(self) -> list[SimAgent]:
        """Every non-ego vehicle currently on the road, in id order."""
        out = []
        for v in self.road.vehicles:
            if v is self.ego:
                continue
            a = self._agents.get(id(v))
            if a is None:  # a vehicle we did not create (should not happen): adopt it
                a = self.register(v, AgentClass.CAR, 1.5, "idm")
            out.append(a)
        return sorted(out, key=lambda a: a.id)

    def __deepcopy__(self, memo: dict[int, Any]) -> Episode:
        """An independent copy (e.g. to label a state with an expert rollout from it): agents
        are looked up by their vehicle's ``id()``, so the copy re-keys them on its copies."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, copy.deepcopy(v, memo))
        new._agents = {id(a.vehicle): a for a in new._agents.values()}
        return new

    def agent_by_vehicle(self, vehicle: Any) -> SimAgent | None:
        return self._agents.get(id(vehicle))

    # ---- stepping -----------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Elapsed time (s)."""
        return self.step_count / SIM_HZ

    @property
    def done(self) -> bool:
        return (
            self.crashed
            or self.offroad
            or self.reached_goal
            or self.step_count >= round(self.spec.duration * SIM_HZ)
        )

    @property
    def success(self) -> bool:
        """Reached the end (duration or goal) without a crash or leaving the road."""
        return self.done and not self.crashed and not self.offroad

    def step(self, accel: float, steer: float) -> None:
        """Advance one ``1/SIM_HZ`` s step with acceleration ``accel`` (m/s^2, forward
        positive) and front-wheel steering angle ``steer`` (rad, highway-env's sign: positive
        turns towards +y of its world, i.e. to the right on screen). Controls are clipped to
        ``EGO_ACCEL``/``EGO_STEER``; the ego never reverses."""
        if self.done:
            return
        dt = 1.0 / SIM_HZ
        accel = float(np.clip(accel, *EGO_ACCEL))
        accel = max(accel, -self.ego.speed / dt)  # stop at standstill, never reverse
        steer = float(np.clip(steer, *EGO_STEER))
        u = self.env.unwrapped
        u.time += dt
        u._simulate(to_normalised(accel, steer))
        self.step_count += 1
        layouts.after_step(self)
        self.crashed = bool(self.ego.crashed)
        self.offroad = not self._on_some_lane()
        self.reached_goal = layouts.reached_goal(self)

    def _on_some_lane(self) -> bool:
        """highway-env's ``on_road`` tests only the closest lane, which flags a car crossing
        from a roundabout entry (whose end is not the ring lane's start) onto the ring as off
        the road; we test every lane of the network and the junction connectors
        (:mod:`rsd.sim.junctions`)."""
        if self.ego.on_road:
            return True
        pos = self.ego.position
        return any(lane.on_lane(pos, margin=1.0) for lane in self._lanes)

    def active_events(self) -> list[str]:
        """Scripted events in progress, e.g. ``["brake:7"]``."""
        t = self.t
        out = []
        for agent_id, script in self.scripts:
            if script.active(t):
                out.append(f"{script.name}:{agent_id}")
        return out

    def close(self) -> None:
        self.env.close()


def _stable_hash(text: str) -> int:
    """A process-independent hash of a name (Python's ``hash`` is salted per process)."""
    h = 0
    for ch in text.encode():
        h = (h * 131 + ch) % (2**31)
    return h


def make_episode(spec_or_name: ScenarioSpec | str, seed: int) -> Episode:
    """Build the episode of ``spec_or_name`` (a spec, built-in name or YAML path) for ``seed``."""
    spec = spec_or_name if isinstance(spec_or_name, ScenarioSpec) else load_scenario(spec_or_name)
    return Episode(spec, seed)
