"""Planners for closed-loop driving: the :class:`Planner` protocol and the built-ins.

A planner sees the live :class:`~rsd.scene.Frame` (past context, no future, the driving
command) and returns a :class:`PlanOutput`: ``(T, 2)`` waypoints in the ego frame at 0.5 s
steps, and its risk-attention map when it has one. :class:`ExpertPlanner` is the privileged
expert (the reference); :class:`ModelPlanner` runs any :class:`~rsd.models.protocol.BEVBackbone`
on the rasterised live frame; :class:`PlannerSpec` is the picklable recipe worker processes
build them from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame


@dataclass
class PlanOutput:
    waypoints: np.ndarray
    """(T, 2) x, y in the ego frame at the plan's time, 0.5 s apart."""
    risk_map: np.ndarray | None = None
    """(H, W) risk-attention map on the model's BEV grid, if it has one."""


class Planner(Protocol):
    def plan(self, frame: Frame) -> PlanOutput: ...


class ExpertPlanner:
    """The privileged expert's own actions (the reference, an upper bound). It drives with
    :meth:`act` every step, bypassing the tracking controller; :meth:`plan` only gives its
    intent for display: its target lane's centreline at the current speed."""

    def __init__(self, episode: Any) -> None:
        from rsd.sim.expert import PrivilegedExpert

        self.ep = episode
        self.expert = PrivilegedExpert(episode)

    def act(self) -> tuple[float, float]:
        return self.expert.act()

    def plan(self, frame: Frame) -> PlanOutput:
        v = max(float(self.ep.ego.speed), 1.0)
        return PlanOutput(_route_ahead(self.expert, frame, v))


class ModelPlanner:
    """A driving model (a :class:`~rsd.models.protocol.BEVBackbone`) as a planner: rasterises
    the live frame under ``rig`` and returns ``outputs["plan"][0]`` (and ``risk_map``)."""

    def __init__(
        self, model: Any, rig: Any, grid: Any = None, raster: Any = None, device: str = "cpu"
    ) -> None:
        from rsd.data.raster import BEVGrid, RasterConfig

        self.model, self.rig, self.device = model.eval(), rig, device
        self.grid, self.raster = grid or BEVGrid(), raster or RasterConfig()

    def plan(self, frame: Frame) -> PlanOutput:
        import torch

        from rsd.data.raster import rasterise

        arrays = rasterise(frame, self.rig, self.grid, self.raster)
        keys = ("bev", "command", "ego_status", "ego_size", "ego_past", "ego_past_valid")
        batch = {k: torch.from_numpy(arrays[k])[None].to(self.device) for k in keys}
        with torch.inference_mode():
            out = self.model(batch)
        risk = out.get("risk_map")
        return PlanOutput(
            waypoints=out["plan"][0].float().cpu().numpy().astype(np.float64),
            risk_map=None if risk is None else risk[0, 0].float().cpu().numpy(),
        )


@dataclass(frozen=True)
class PlannerSpec:
    """A picklable recipe for a planner (worker processes build their own)."""

    kind: str = "expert"
    """``expert`` | ``model`` (a trained run) | ``untrained`` (a tiny random model: smoke
    tests and speed measurements)."""
    run_dir: str | None = None
    rig: str | None = None
    """Sensor rig for ``model`` (default: the run's own); ``dense360`` for ``untrained``."""
    device: str = "cpu"
    replan_s: float = KEYFRAME_DT


def load_planner(run_dir: str, rig: str | None = None, device: str = "cpu") -> ModelPlanner:
    """The trained model of ``run_dir`` (via :func:`rsd.checkpoint.load_for_eval`) as a
    planner; ``rig`` overrides the run's sensor rig (evaluation on an unfamiliar rig)."""
    from rsd.checkpoint import load_for_eval
    from rsd.data.rigs import load_rig

    ev = load_for_eval(run_dir, device=device)
    cfg = ev.config
    return ModelPlanner(ev.model, load_rig(rig or cfg.rig), cfg.grid, cfg.raster, device)


def tiny_model_planner(rig: str = "dense360", seed: int = 0) -> ModelPlanner:
    """An untrained small VADLite + RiskHead (weights from ``seed``) as a planner."""
    import torch

    from rsd.data.raster import input_channel_names
    from rsd.data.rigs import load_rig
    from rsd.models.config import BackboneConfig, ModelConfig, build_model

    torch.manual_seed(seed)
    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    model = build_model(ModelConfig(backbone=bb), len(input_channel_names()))
    return ModelPlanner(model, load_rig(rig))


@functools.lru_cache(maxsize=2)
def _model_planner(spec: PlannerSpec) -> ModelPlanner:
    if spec.kind == "untrained":
        return tiny_model_planner(spec.rig or "dense360")
    if spec.run_dir is None:
        raise ValueError("a model planner needs run_dir")
    return load_planner(spec.run_dir, spec.rig, spec.device)


def planner_factory(spec: PlannerSpec) -> Callable[[Any], Planner]:
    """``episode -> planner`` for ``spec``; models are loaded once per process."""
    if spec.kind == "expert":
        return ExpertPlanner
    if spec.kind not in ("model", "untrained"):
        raise ValueError(f"unknown planner kind {spec.kind!r}")
    return lambda episode: _model_planner(spec)


def _route_ahead(expert: Any, frame: Frame, speed: float) -> np.ndarray:
    """(T, 2) points of ``expert``'s target path at ``speed`` x 0.5 s steps, ego frame."""
    from rsd.sim.convert import EgoTransform, to_up

    path = expert._path(expert.target, speed * KEYFRAME_DT * FUTURE_STEPS + 2.0)
    tf = EgoTransform(frame.ego.world_x, frame.ego.world_y, frame.ego.world_yaw)
    if len(path) < 2:
        return np.zeros((FUTURE_STEPS, 2))
    pts = tf.points(to_up(path[:, :2]))
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    want = speed * KEYFRAME_DT * np.arange(1, FUTURE_STEPS + 1)
    return np.column_stack([np.interp(want, s, pts[:, 0]), np.interp(want, s, pts[:, 1])])
