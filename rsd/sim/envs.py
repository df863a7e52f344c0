"""highway-env set-up: fixed environment variants, the shared config and env creation.

* ``merge-v0``/``roundabout-v0`` (and their generic versions) raise ``ValueError`` with a
  ``ContinuousAction``: their reward tests ``action in [0, 2]`` on an array. We register
  ``rsd-merge-v0`` and ``rsd-roundabout-v0`` whose ``_rewards`` ignore the action.
* The ego is a kinematic bicycle (``ContinuousAction``) at ``SIM_HZ`` for both policy and
  simulation (one integration step per policy step; measured ~2x faster than 20 Hz physics
  with the same behaviour). Acceleration range ``EGO_ACCEL`` allows hard braking.
* NPCs are created by :mod:`rsd.sim.layouts`, not by highway-env (the env's own NPC types
  are replaced by :class:`EnvFiller`, a throwaway class, because ``IntersectionEnv``
  overwrites class attributes such as ``COMFORT_ACC_MIN`` of whatever NPC type it is given).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import highway_env  # noqa: F401  (registers highway-env's ids)
import numpy as np
from highway_env.envs.merge_env import MergeGenericEnv
from highway_env.envs.roundabout_env import RoundaboutEnv
from highway_env.vehicle.behavior import IDMVehicle

from rsd.scene import SIM_HZ

EGO_ACCEL = (-9.0, 4.0)
"""Ego acceleration range (m/s^2)."""
EGO_STEER = (-0.6, 0.6)
"""Ego steering-angle range (rad)."""


class EnvFiller(IDMVehicle):
    """NPC type handed to highway-env; every such vehicle is removed after reset."""


def _plain_rewards(env: Any) -> dict[str, float]:
    v = env.vehicle
    return {"collision_reward": float(v.crashed), "on_road_reward": float(v.on_road)}


class FixedMergeEnv(MergeGenericEnv):
    """``merge-generic-v0`` whose reward does not compare a continuous action to a list."""

    def _rewards(self, action: Any) -> dict[str, float]:
        return _plain_rewards(self)

    def _reward(self, action: Any) -> float:
        return 0.0


class FixedRoundaboutEnv(RoundaboutEnv):
    """``roundabout-v0`` whose reward does not compare a continuous action to a list."""

    def _rewards(self, action: Any) -> dict[str, float]:
        return _plain_rewards(self)

    def _reward(self, action: Any) -> float:
        return 0.0


FIXED_IDS = {
    "rsd-merge-v0": f"{__name__}:FixedMergeEnv",
    "rsd-roundabout-v0": f"{__name__}:FixedRoundaboutEnv",
}


def register_envs() -> None:
    """Register the fixed variants with gymnasium (idempotent)."""
    for env_id, entry in FIXED_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry)


register_envs()


def layout_of(env_id: str) -> str:
    """Road layout of an env id: ``straight``, ``merge``, ``roundabout`` or ``intersection``."""
    for key in ("merge", "roundabout", "intersection"):
        if key in env_id:
            return key
    if "highway" in env_id:
        return "straight"
    raise ValueError(
        f"unsupported env id {env_id!r}: use a highway, merge, roundabout or "
        "intersection environment"
    )


def base_config(env_id: str, duration: float) -> dict[str, Any]:
    """highway-env config shared by every scenario (spec ``config`` is merged over it)."""
    cfg: dict[str, Any] = {
        "observation": {"type": "Kinematics", "vehicles_count": 1},
        "action": {
            "type": "ContinuousAction",
            "acceleration_range": list(EGO_ACCEL),
            "steering_range": list(EGO_STEER),
            "clip": True,
        },
        "simulation_frequency": SIM_HZ,
        "policy_frequency": SIM_HZ,
        "duration": duration,
        "offroad_terminal": True,
        "other_vehicles_type": f"{__name__}.EnvFiller",
        "show_trajectories": False,
        # NPCs must see leaders on the next lane segment: roundabout/intersection lanes are
        # 15-20 m long, and without this an NPC rear-ends a car stopped just past a node
        "neighbour_vehicles_connected_lanes": True,
    }
    layout = layout_of(env_id)
    if layout == "straight":
        cfg.update(vehicles_count=0, lanes_count=3)
    elif layout == "intersection":
        cfg.update(initial_vehicle_count=1, spawn_probability=0.0, destination="o2")
    elif layout == "merge":
        cfg.update(vehicles_count=0, lanes_count=2)
    return cfg


def make_env(env_id: str, config: dict[str, Any], duration: float, seed: int) -> gym.Env:
    """Create and reset the env; NPCs that highway-env placed are removed (ego kept)."""
    cfg = base_config(env_id, duration)
    cfg.update(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id, config=cfg, disable_env_checker=True)
        env.reset(seed=int(seed))

    u = env.unwrapped
    u.road.vehicles = [v for v in u.road.vehicles if v is u.vehicle]
    return env


def to_normalised(accel: float, steer: float) -> np.ndarray:
    """Physical controls (m/s^2, rad) -> highway-env's ContinuousAction in [-1, 1]^2."""
    a = np.interp(accel, EGO_ACCEL, (-1.0, 1.0))
    s = np.interp(steer, EGO_STEER, (-1.0, 1.0))
    return np.array([a, s], dtype=np.float64)
