"""Model configs (frozen dataclasses, loadable with :func:`rsd.config.load_config`); the module
that turns them into models is :mod:`rsd.models.build`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rsd.config import ConfigError
from rsd.scene import FUTURE_STEPS, SIM_CLASSES, AgentClass


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class BackboneConfig:
    """A BEV driving model: encoder, detection / map heads and the planner.

    Shared by both kinds; ``cnn`` ignores the detection and attention fields.
    """

    stem_channels: int = 32
    """Channels at stride 2."""
    channels: int = 64
    """C of the BEV features handed to the heads (and to the RiskHead)."""
    depth: int = 3
    """Residual blocks in the last stage."""
    feature_stride: int = 4
    """BEV cells per feature cell: 4 -> (160, 64) input gives (40, 16) features. 2 or 4."""
    stem: Literal["conv", "patch"] = "conv"
    """``conv``: 3x3 stride-2 conv, a residual block at stride 2, a strided residual block;
    ``patch``: one ``feature_stride`` x ``feature_stride`` patchify conv straight to the
    feature resolution (vad; ~half the FLOPs of the small recipe, see bench_recipe.py)."""
    channels_last: bool = False
    """Keep the convolutions' weights and activations in NHWC (faster oneDNN kernels on CPU)."""
    n_modes: int = 6
    """M planning modes."""
    horizon: int = FUTURE_STEPS
    """T waypoints (0.5 s apart): the frames' :data:`rsd.scene.FUTURE_STEPS`, checked."""
    n_classes: int = len(SIM_CLASSES)
    """Detection classes: ``AgentClass`` values ``0 .. n_classes - 1`` (3 = the simulator's;
    ``len(AgentClass)`` = every class real data has), checked."""
    use_ego_status: bool = True
    """Let the planner read ``ego_status``; off, it sees only the raster and the command."""
    use_route: bool = True
    """Let the planner's queries read the route ahead as points (``route``, 20 points from 2
    to 40 m; :func:`rsd.data.features.route_feature`) besides the raster's ROUTE channel."""
    agent_tokens: int = 16
    """Top-k heatmap peaks the planner attends to (vad)."""
    plan_dim: int = 64
    """Width of the planner's queries and tokens."""
    plan_heads: int = 4
    plan_layers: int = 1
    """Rounds of (agents, BEV, feed-forward) for the ego queries (vad)."""
    speed_prior: bool = True
    """Waypoints are residuals on driving straight on at the current speed
    (:func:`~rsd.models.plan_head.waypoints_from_steps`); off, the planner predicts the whole
    motion from its queries (which still read the speed through ``ego_status``): "keep going"
    is then no free default, one suspected source of the copycat that does not brake."""
    step_scale: float = 2.0
    """Metres per unit of a predicted waypoint step (the residual on the prior)."""
    scale_floor: float = 0.05
    """Smallest Laplace scale (m), keeps the NLL finite."""

    def __post_init__(self) -> None:
        _check(self.feature_stride in (2, 4), "backbone.feature_stride must be 2 or 4")
        _check(self.stem in ("conv", "patch"), f"backbone.stem: conv or patch, got {self.stem}")
        # the targets have these sizes: another value would fail deep inside a loss
        _check(
            self.horizon == FUTURE_STEPS,
            f"backbone.horizon must equal rsd.scene.FUTURE_STEPS = {FUTURE_STEPS},"
            f" got {self.horizon}",
        )
        _check(
            1 <= self.n_classes <= len(AgentClass),
            f"backbone.n_classes must be in [1, {len(AgentClass)}] (rsd.scene.AgentClass"
            f" values 0 .. n_classes - 1), got {self.n_classes}",
        )
        for name in ("stem_channels", "channels", "n_modes", "horizon", "n_classes", "plan_dim"):
            _check(getattr(self, name) > 0, f"backbone.{name} must be > 0")
        _check(
            self.depth >= 0 and self.agent_tokens >= 1, "backbone: depth >= 0, agent_tokens >= 1"
        )
        _check(self.plan_dim % self.plan_heads == 0, "backbone.plan_dim % plan_heads must be 0")
        _check(self.plan_dim % 4 == 0, "backbone.plan_dim must be a multiple of 4")
        _check(self.scale_floor > 0 and self.step_scale > 0, "backbone: scales must be > 0")


@dataclass(frozen=True)
class RiskHeadConfig:
    """The RiskHead plug-in: a light encoder-decoder over BEV features."""

    hidden: int = 32
    """Channels inside the head."""
    coarse: bool = True
    """A stride-2 level inside the head (3x3 stride 2, 3x3 dilation 2, bilinear back up, fused
    with the full-resolution path by a 3x3): a receptive field of about +-7 feature cells.
    False: 1x1 -> 3x3 dilation 2 -> 1x1 at the feature grid's resolution (+-3 cells, about
    2/3 of the head's time); the backbone's features already carry the wider context."""
    gate_init: float = 1.0
    """Initial value of the per-channel gate in ``F * (1 + gate * A)``."""
    use_deformable: bool = True
    """Add a deformable-attention-style sampling block (offsets + weights, grid_sample)."""
    deform_heads: int = 4
    deform_points: int = 4
    """Sampling points per head and location."""
    prior: float = 0.05
    """Initial risk probability everywhere (sets the output bias)."""
    mode_cost: float = 2.0
    """Initial weight (learned, kept > 0) of the risk cost the planner's mode selection sees
    (mean risk probability along a mode's waypoints, subtracted from its logit); 0: off."""
    planner_grad: bool = False
    """Let the driving losses reach the head through the map the planner reads (the gain and
    the mode cost). Off (the default): the planner reads a stop-gradient copy, so only the
    distillation terms train the head; with it on, the planning terms (two orders of magnitude
    larger in gradient) drive the predicted map towards whatever helps imitation, which in
    the demo recipe was an empty map (the student's risk collapsed)."""
    refine: bool = False
    """Risk-aware plan refinement: a tiny MLP reads the (planner's copy of the) risk map around
    each waypoint and adds a residual ``(dx, dy)`` to it, in ``plan`` and every mode of
    ``plan_traj``. Zero-initialised: an untrained refinement leaves the plan as it was. Meant
    for the one-mode recipe, where the mode cost has no choice to make and the map otherwise
    reaches the plan only through the feature gain; off by default until a run has measured it
    (no training run with it yet)."""
    refine_hidden: int = 16
    """Hidden units of the refinement MLP."""
    teacher_forcing: float = 0.0
    """Training only: the probability, per sample, that the planner reads the teacher's map
    (max-pooled to the feature grid, as the oracle reads it) in place of the head's prediction;
    the head itself still learns from the distillation terms alone. At evaluation and in closed
    loop the planner reads the head's map, as with 0 (the default). So the planner learns to use
    maps as sharp as the teacher's while the head learns to predict them: privileged
    distillation, the ``oracle`` arm's training with a deployable test time."""
    refine_reach: float = 2.0
    """Offset (m, ego frame) of the samples around a waypoint: ahead 1x and 2x, left, right."""
    refine_scale: float = 1.0
    """Metres per unit of the refinement's output."""

    def __post_init__(self) -> None:
        _check(self.hidden > 0 and self.deform_points > 0, "risk_head: hidden, points > 0")
        _check(self.hidden % self.deform_heads == 0, "risk_head.hidden % deform_heads must be 0")
        _check(0.0 < self.prior < 1.0, "risk_head.prior must be in (0, 1)")
        _check(self.mode_cost >= 0, "risk_head.mode_cost must be >= 0")
        _check(self.refine_hidden > 0, "risk_head.refine_hidden must be > 0")
        _check(self.refine_reach > 0, "risk_head.refine_reach must be > 0")
        _check(self.refine_scale > 0, "risk_head.refine_scale must be > 0")
        _check(0.0 <= self.teacher_forcing <= 1.0, "risk_head.teacher_forcing must be in [0, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Which backbone, and how the RiskHead is built where a task attaches one."""

    kind: Literal["vad", "cnn"] = "vad"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    risk_head: RiskHeadConfig = field(default_factory=RiskHeadConfig)

    def __post_init__(self) -> None:
        _check(self.kind in ("vad", "cnn"), f"model.kind must be vad or cnn, got {self.kind!r}")
