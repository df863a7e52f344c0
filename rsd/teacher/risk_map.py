"""BEV risk targets: a teacher's per-object risks -> a risk map and per-agent target vectors.

**Space-time targets** (default, ``time_channels = 6``): one ``(H, W)`` channel per future
keyframe ``k = 1..time_channels`` (0.5 s apart): each object's footprint *where its logged
future puts it at* ``0.5 k`` s, painted with its risk (an invalid future step paints nothing).
With ``time_channels = 0`` the target is the single map of before (one channel):

The single map is ``(H, W)`` float32 in [0, 1] on the dataset's :class:`~rsd.geometry.BEVGrid`
(row 0 the far front, column 0 the far left). Each object's oriented footprint is painted with
its risk; optionally the area it sweeps over its next ``sweep_steps`` future keyframes (0.5 s
each) is painted with ``risk * sweep_decay**k``; where footprints overlap, the map holds the
maximum. A light Gaussian blur (``sigma_m``) then adds a halo that never lowers a value:
``map = max(painted, blur(painted))``. An object with risk 0 paints nothing; ids the frame does
not have (a teacher's invention) have no box and are ignored.

Per-agent targets follow :class:`~rsd.data.dataset.BEVDataset`'s agent order (sorted by id, all
agents of the frame): ``risk (K,)``, ``rank (K,)`` (1 = most risky, 0 where unknown) and
``valid (K,)`` (the teacher judged this agent).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from rsd.config import ConfigError
from rsd.data.dataset import BEVDataset
from rsd.geometry import BEVGrid, BoxField, box_corners
from rsd.scene import FUTURE_STEPS, Frame
from rsd.teacher.schema import RiskAssessment


@dataclass(frozen=True)
class RiskMapConfig:
    """How per-object risks become a BEV map."""

    sweep_future: bool = True
    """Also paint the area each object sweeps over its near future."""
    sweep_steps: int = 2
    """Future keyframes (0.5 s each) swept."""
    sweep_decay: float = 0.6
    """The sweep towards keyframe ``k`` is painted with ``risk * sweep_decay**k``."""
    sigma_m: float = 0.75
    """Standard deviation of the smoothing (m); 0 switches it off."""
    time_channels: int = FUTURE_STEPS
    """Space-time channels, one per future keyframe (0.5 s); 0: the single current map (the
    sweep fields apply to it only)."""

    def __post_init__(self) -> None:
        if self.sweep_steps < 0 or not 0.0 <= self.sweep_decay <= 1.0 or self.sigma_m < 0:
            raise ConfigError(
                "risk_map: need sweep_steps >= 0, 0 <= sweep_decay <= 1 and sigma_m >= 0"
            )
        if not 0 <= self.time_channels <= FUTURE_STEPS:
            raise ConfigError(
                f"risk_map.time_channels must be in [0, {FUTURE_STEPS}] (the logged future's"
                f" keyframes), got {self.time_channels}"
            )

    @property
    def channels(self) -> int:
        """C of the target ``(C, H, W)``: ``time_channels``, or 1 for the single map."""
        return max(self.time_channels, 1)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of a few points (N, 2), counter-clockwise."""
    pts = sorted(map(tuple, points.tolist()))

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


@functools.lru_cache(maxsize=16)
def _kernel(sigma_cells: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma_cells)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_cells) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur(img: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W) image, zero outside."""
    k = _kernel(sigma_cells)
    r = len(k) // 2
    pad = np.pad(img, r)
    rows = sum(k[i] * pad[i : i + img.shape[0], :] for i in range(len(k)))
    return sum(k[i] * rows[:, i : i + img.shape[1]] for i in range(len(k)))


def paint_risk(
    boxes: np.ndarray,
    risks: np.ndarray,
    grid: BEVGrid,
    cfg: RiskMapConfig = RiskMapConfig(),
    future: np.ndarray | None = None,
    future_valid: np.ndarray | None = None,
) -> np.ndarray:
    """The risk map ``(H, W)`` float32 in [0, 1] of K objects.

    Args:
        boxes: (K, >=6) rows laid out as ``agent_boxes`` (:class:`BoxField`: x, y, l, w, h,
            yaw, ...), ego frame (m, rad).
        risks: (K,) in [0, 1]; objects with risk <= 0 paint nothing.
        future: (K, T, 3) future ``(x, y, yaw)`` per object (only with ``cfg.sweep_future``).
        future_valid: (K, T) bool.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    risks = np.clip(np.asarray(risks, dtype=np.float64), 0.0, 1.0)
    keep = np.flatnonzero(risks > 0)
    img = Image.new("F", (grid.width, grid.height))
    if len(keep):
        b = boxes[keep]
        length, width = b[:, BoxField.LENGTH], b[:, BoxField.WIDTH]
        polys: list[tuple[float, np.ndarray]] = []
        now = box_corners(b[:, BoxField.X], b[:, BoxField.Y], b[:, BoxField.YAW], length, width)
        polys += [(float(r), c) for r, c in zip(risks[keep], now, strict=True)]
        if cfg.sweep_future and cfg.sweep_steps > 0 and future is not None:
            steps = min(cfg.sweep_steps, future.shape[1])
            fut = np.asarray(future, np.float64)[keep, :steps]
            ok = (
                np.ones(fut.shape[:2], bool) if future_valid is None else future_valid[keep, :steps]
            )
            prev = now
            for k in range(steps):
                cur = box_corners(fut[:, k, 0], fut[:, k, 1], fut[:, k, 2], length, width)
                for j in np.flatnonzero(ok[:, k] & ok[:, :k].all(axis=1)):
                    hull = _hull(np.concatenate([prev[j], cur[j]]))
                    polys.append((float(risks[keep[j]] * cfg.sweep_decay ** (k + 1)), hull))
                prev = cur
        draw = ImageDraw.Draw(img)
        for value, corners in sorted(polys, key=lambda p: p[0]):  # the highest value wins
            draw.polygon(grid.pil_xy(corners).ravel().tolist(), fill=value)
    out = np.asarray(img, dtype=np.float32).copy()
    if cfg.sigma_m > 0 and len(keep):
        out = np.maximum(out, _blur(out, cfg.sigma_m / grid.resolution))
    return np.clip(out, 0.0, 1.0)


def paint_space_time(
    boxes: np.ndarray,
    risks: np.ndarray,
    grid: BEVGrid,
    cfg: RiskMapConfig = RiskMapConfig(),
    future: np.ndarray | None = None,
    future_valid: np.ndarray | None = None,
) -> np.ndarray:
    """The ``(C, H, W)`` float32 target (``C = cfg.channels``): with ``cfg.time_channels`` > 0,
    channel ``k`` holds every object's footprint at its future keyframe ``k`` (``future[:, k]``,
    0.5 (k + 1) s ahead) painted with its risk; else ``paint_risk(...)[None]``. Arguments as
    :func:`paint_risk`; ``future`` (K, T, 3) is required with time channels."""
    if cfg.time_channels == 0:
        return paint_risk(boxes, risks, grid, cfg, future, future_valid)[None]
    boxes = np.asarray(boxes, np.float64)
    out = np.zeros((cfg.time_channels, *grid.shape), np.float32)
    if future is None or len(boxes) == 0:
        return out
    fut = np.asarray(future, np.float64)
    ok = np.ones(fut.shape[:2], bool) if future_valid is None else np.asarray(future_valid, bool)
    still = RiskMapConfig(sweep_future=False, sigma_m=cfg.sigma_m, time_channels=0)
    risks = np.asarray(risks, np.float64)
    for k in range(min(cfg.time_channels, fut.shape[1])):
        moved = boxes.copy()
        moved[:, BoxField.X], moved[:, BoxField.Y] = fut[:, k, 0], fut[:, k, 1]
        moved[:, BoxField.YAW] = fut[:, k, 2]
        out[k] = paint_risk(moved, np.where(ok[:, k], risks, 0.0), grid, still)
    return out


def _aligned(ids: np.ndarray, assessment: RiskAssessment | None) -> dict[str, np.ndarray]:
    k = len(ids)
    out = {
        "risk": np.zeros(k, np.float32),
        "rank": np.zeros(k, np.int64),
        "valid": np.zeros(k, bool),
    }
    if assessment is None or not assessment.usable:
        return out
    by_id = assessment.by_id()
    for i, agent_id in enumerate(ids.tolist()):
        obj = by_id.get(int(agent_id))
        if obj is not None:
            out["risk"][i], out["rank"][i], out["valid"][i] = obj.risk, obj.rank, True
    return out


def object_targets(frame: Frame, assessment: RiskAssessment | None) -> dict[str, np.ndarray]:
    """Per-agent targets in BEVDataset order (agents sorted by id): ``risk (K,)`` float32,
    ``rank (K,)`` int64 (0 where unknown), ``valid (K,)`` bool."""
    ids = np.array(sorted(a.id for a in frame.agents), dtype=np.int64)
    return _aligned(ids, assessment)


def risk_map(
    frame: Frame,
    assessment: RiskAssessment | None,
    grid: BEVGrid | None = None,
    cfg: RiskMapConfig = RiskMapConfig(),
) -> np.ndarray:
    """The ``(H, W)`` float32 risk map of ``frame`` under ``assessment`` (zeros when there is
    none or it is not usable) on ``grid`` (default :class:`BEVGrid`): :func:`risk_maps`, its
    time channels collapsed by their maximum (for pictures)."""
    return risk_maps(frame, assessment, grid, cfg).max(axis=0)


def risk_maps(
    frame: Frame,
    assessment: RiskAssessment | None,
    grid: BEVGrid | None = None,
    cfg: RiskMapConfig = RiskMapConfig(),
) -> np.ndarray:
    """The ``(C, H, W)`` float32 target of ``frame`` (:func:`paint_space_time`) under
    ``assessment`` (zeros when there is none or it is not usable)."""
    grid = grid or BEVGrid()
    agents = sorted(frame.agents, key=lambda a: a.id)
    if not agents:
        return np.zeros((cfg.channels, *grid.shape), np.float32)
    boxes = np.zeros((len(agents), len(BoxField)))
    for i, a in enumerate(agents):
        boxes[i, : BoxField.YAW + 1] = (a.x, a.y, a.length, a.width, a.height, a.yaw)
    risks = _aligned(np.array([a.id for a in agents]), assessment)["risk"]
    future = np.stack([a.future for a in agents])
    valid = np.stack([a.future_valid for a in agents])
    return paint_space_time(boxes, risks, grid, cfg, future, valid)


TARGET_KINDS = ("risk", "occupancy")
"""What :class:`RiskTargetDataset` paints: the teacher's risk, or (the ``aux_only`` control)
every agent's future occupancy, a non-risk target of the same shape."""

ORACLE_FEATURE = "oracle_risk"
"""The feature key under which the ``oracle`` control hands the teacher's maps to the model."""


class RiskTargetDataset(Dataset):
    """A :class:`BEVDataset` whose samples also carry the teacher's targets (a target builder).

    Added to ``sample["targets"]``: ``risk_map`` (C, H, W) float32 (``C = cfg.channels``),
    ``agent_risk`` (K,) float32, ``agent_rank`` (K,) int64, ``agent_risk_valid`` (K,) bool,
    ``scene_risk`` () float32 and ``risk_valid`` () bool (False, with a zero map, when
    ``assessments`` has no usable entry for the frame). Batch with
    :func:`rsd.data.dataset.collate` (pads every ``agent_*`` target).

    Args:
        base: the BEV dataset (its grid is used).
        assessments: ``frame_id -> RiskAssessment`` (a dict, a cache...).
        cfg: how the map is painted.
        target: ``risk`` (the teacher's) or ``occupancy``: every agent painted with 1, agent
            risk 1, no ranking, scene risk 0, valid on every frame (``assessments`` unused).
        oracle_input: also put the ``risk_map`` target into ``sample["features"]`` under
            :data:`ORACLE_FEATURE` (the ``oracle`` control: the planner reads the teacher).
    """

    def __init__(
        self,
        base: BEVDataset,
        assessments: Mapping[str, RiskAssessment],
        cfg: RiskMapConfig | None = None,
        *,
        target: str = "risk",
        oracle_input: bool = False,
    ) -> None:
        if target not in TARGET_KINDS:
            raise ConfigError(f"risk target must be one of {TARGET_KINDS}, got {target!r}")
        self.base = base
        self.assessments = assessments
        self.cfg = cfg or RiskMapConfig()
        self.target, self.oracle_input = target, oracle_input

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the base dataset (its augmentation draws)."""
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.base[i]
        found = self.assessments.get(sample["frame_id"])
        assessment = found if found is not None and found.usable else None
        sample["targets"].update(self.teacher_targets(sample["targets"], assessment))
        if self.oracle_input:
            sample["features"][ORACLE_FEATURE] = sample["targets"]["risk_map"]
        return sample

    def teacher_targets(
        self, gt: Mapping[str, torch.Tensor], assessment: RiskAssessment | None
    ) -> dict[str, torch.Tensor]:
        """The teacher's targets of one sample from its ground-truth ``gt`` (agent boxes,
        futures and ids) and the frame's usable ``assessment`` (None: zeros, not valid)."""
        ids = gt["agent_ids"].numpy()
        if self.target == "occupancy":
            per_agent = {
                "risk": np.ones(len(ids), np.float32),
                "rank": np.zeros(len(ids), np.int64),
                "valid": np.ones(len(ids), bool),
            }
            valid, scene = True, 0.0
        else:
            per_agent = _aligned(ids, assessment)
            valid = assessment is not None
            scene = assessment.scene_risk if assessment is not None else 0.0
        grid = self.base.grid
        if not valid:
            heat = np.zeros((self.cfg.channels, *grid.shape), np.float32)
        else:
            heat = paint_space_time(
                gt["agent_boxes"].numpy(),
                per_agent["risk"],
                grid,
                self.cfg,
                gt["agent_future"].numpy(),
                gt["agent_future_valid"].numpy(),
            )
        return {
            "risk_map": torch.from_numpy(heat),
            "agent_risk": torch.from_numpy(per_agent["risk"]),
            "agent_rank": torch.from_numpy(per_agent["rank"]),
            "agent_risk_valid": torch.from_numpy(per_agent["valid"]),
            "scene_risk": torch.tensor(scene, dtype=torch.float32),
            "risk_valid": torch.tensor(valid),
        }
