"""A checkpoint as a simulator :class:`~rsd.sim.planners.Planner`: the only place where the
simulator meets models.

:class:`ModelPlanner` runs any :class:`~rsd.models.protocol.BEVBackbone` on the rasterised
live frame; :class:`PlannerSpec` is the picklable recipe (a
:class:`~rsd.sim.planners.PlannerRecipe`) from which :func:`rsd.sim.closed_loop.drive`'s
worker processes build their planner: the expert, a trained run, or a tiny untrained model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rsd.checkpoint import load_for_eval
from rsd.data.features import batch_of_one, build_features
from rsd.data.raster import RasterConfig
from rsd.data.rigs import load_rig
from rsd.geometry import BEVGrid, input_channel_names
from rsd.models import BackboneConfig, ModelConfig, build_model, with_full_risk_map
from rsd.scene import KEYFRAME_DT, Frame
from rsd.sim.planners import ExpertPlanner, Planner, PlanOutput
from rsd.sim.tracked_expert import TrackedExpertPlanner
from rsd.teacher.physics import constant_velocity_frame
from rsd.teacher.privileged import PrivilegedConfig, PrivilegedTeacher
from rsd.teacher.risk_map import RiskMapConfig, risk_maps


class ModelPlanner:
    """A driving model (a :class:`~rsd.models.protocol.BEVBackbone`) as a planner: builds the
    input features of the live frame under ``rig`` (:func:`rsd.data.features.build_features`,
    the same builder as training) and returns ``outputs["plan"][0]`` (and ``risk_map``, its
    time channels collapsed by their maximum).

    An ``oracle`` model (its ``oracle_key`` set) also reads the teacher's maps: ``teacher``
    (the privileged teacher) is run live on each frame and its answer painted with
    ``risk_map_cfg``. A live frame has no logged future, so the live teacher sees the agents at
    constant velocity (no intent): the closed-loop oracle is weaker than the open-loop one."""

    def __init__(
        self,
        model: Any,
        rig: Any,
        grid: Any = None,
        raster: Any = None,
        device: str = "cpu",
        teacher: Any = None,
        risk_map_cfg: RiskMapConfig | None = None,
    ) -> None:
        self.model, self.rig, self.device = model.eval(), rig, device
        self.grid, self.raster = grid or BEVGrid(), raster or RasterConfig()
        self.oracle_key = getattr(model, "oracle_key", None)
        if self.oracle_key is not None and teacher is None:
            raise ValueError("an oracle model needs a teacher to run live")
        self.teacher, self.risk_map_cfg = teacher, risk_map_cfg or RiskMapConfig()

    def plan(self, frame: Frame) -> PlanOutput:
        features = build_features(frame, self.rig, self.grid, self.raster)
        if self.oracle_key is not None:
            # a live frame has no logged future, and space-time maps paint the agents where
            # their future puts them (nothing where it is invalid): extrapolate at constant
            # velocity, as the teacher itself does on a live frame
            now = constant_velocity_frame(frame)
            answer = self.teacher.assess([now])[0]
            features = {
                **features,
                self.oracle_key: risk_maps(now, answer, self.grid, self.risk_map_cfg),
            }
        with torch.inference_mode():
            out = self.model(batch_of_one(features, self.device))
            out = with_full_risk_map(out, self.grid.shape)  # for the rollout video
        risk = out.get("risk_map")
        return PlanOutput(
            waypoints=out["plan"][0].float().cpu().numpy().astype(np.float64),
            risk_map=None if risk is None else risk[0].amax(dim=0).float().cpu().numpy(),
        )


@dataclass(frozen=True)
class PlannerSpec:
    """A picklable recipe for a planner (worker processes build their own)."""

    kind: str = "expert"
    """``expert`` | ``expert_plan`` (the expert's 3 s plan tracked by the controller: the
    ceiling of imitation, :mod:`rsd.sim.tracked_expert`) | ``model`` (a trained run) |
    ``untrained`` (a tiny random model: smoke tests and speed measurements)."""
    run_dir: str | None = None
    rig: str | None = None
    """Sensor rig for ``model`` (default: the run's own); ``dense360`` for ``untrained``."""
    device: str = "cpu"
    replan_s: float = KEYFRAME_DT

    @property
    def name(self) -> str:
        """The planner's name in the episode logs: the kind, or the run of a model."""
        return self.kind if self.kind != "model" else str(self.run_dir)

    def factory(self) -> Callable[[Any], Planner]:
        return planner_factory(self)

    def init_worker(self) -> None:
        """One torch thread per worker process: the workers already use every core."""
        torch.set_num_threads(1)


def load_planner(run_dir: str, rig: str | None = None, device: str = "cpu") -> ModelPlanner:
    """The trained model of ``run_dir`` (via :func:`rsd.checkpoint.load_for_eval`) as a
    planner; ``rig`` overrides the run's sensor rig (evaluation on an unfamiliar rig)."""
    ev = load_for_eval(run_dir, device=device)
    cfg = ev.config
    teacher = None
    if cfg.task.oracle:  # the privileged teacher of the run's prompt version, live
        teacher = PrivilegedTeacher(PrivilegedConfig(use_plan=cfg.prompt_version.endswith("+plan")))
    rig_ = load_rig(rig or cfg.rig)
    return ModelPlanner(ev.model, rig_, cfg.grid, cfg.raster, device, teacher, cfg.risk_map)


def tiny_model_planner(rig: str = "dense360", seed: int = 0) -> ModelPlanner:
    """An untrained small VADLite + RiskHead (weights from ``seed``) as a planner."""
    torch.manual_seed(seed)
    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    in_channels = len(input_channel_names(RasterConfig().history))
    model = build_model(ModelConfig(backbone=bb), in_channels, risk_head=True)
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
    if spec.kind == "expert_plan":
        return TrackedExpertPlanner
    if spec.kind not in ("model", "untrained"):
        raise ValueError(f"unknown planner kind {spec.kind!r}")
    return lambda episode: _model_planner(spec)
