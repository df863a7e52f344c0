"""Torch dataset over any ``Sequence[Frame]``: input features apart from targets, and collation.

The dataset knows nothing about storage: give it a list of frames, or a
``rsd.data.store.FrameStore`` (a ``Sequence[Frame]``), or anything with ``len`` and
``__getitem__``. Samples are a pure function of (frame, rig, grid, raster config): sensor noise
is seeded from the frame id (:mod:`rsd.data.raycast`), so an index gives bit-identical tensors in
every worker and every run.

Splits are by **episode**, never by frame: an episode (one scenario seed) is in ``val`` when
``seed % 5 == 4`` (20 %), otherwise in ``train``. All keyframes of an episode fall in the same
split, so held-out evaluation never sees a neighbouring keyframe of a training sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from rsd.data.features import build_features
from rsd.data.raster import RasterConfig
from rsd.data.rigs import SensorRig, load_rig
from rsd.data.targets import build_targets
from rsd.geometry import BEVGrid
from rsd.scene import Frame

SPLITS = ("train", "val")
VAL_EVERY = 5
"""An episode is in ``val`` when ``seed % VAL_EVERY == VAL_EVERY - 1``."""

AGENT_KEYS = (
    "agent_boxes",
    "agent_cls",
    "agent_ids",
    "agent_in_grid",
    "agent_future",
    "agent_future_valid",
)
"""Per-agent targets ``(K, ...)`` of :class:`BEVDataset`; :func:`collate` pads them, and any other
``agent_*`` target (e.g. teacher targets added by a wrapper), to the largest K in the batch."""
_AGENT_PAD = {"agent_cls": -1, "agent_ids": -1}


def seed_of(frame_or_id: Frame | str) -> int:
    """Episode seed of a frame, or parsed from a frame id ``"{scenario}-{seed:05d}-{step:04d}"``."""
    if isinstance(frame_or_id, Frame):
        return frame_or_id.seed
    try:
        return int(frame_or_id.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a frame id 'scenario-seed-step': {frame_or_id!r}") from None


def split_of(frame_or_id: Frame | str) -> str:
    """``"val"`` when the episode seed ``% 5 == 4``, else ``"train"`` (by episode, not frame)."""
    return "val" if seed_of(frame_or_id) % VAL_EVERY == VAL_EVERY - 1 else "train"


def split_indices(frames: Sequence[Frame], split: str) -> list[int]:
    """Indices of ``frames`` in ``split``. Uses ``frames.frame_ids`` when the source has it
    (cheap: no frame is decoded), else reads every frame."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    ids = getattr(frames, "frame_ids", None)
    keys: Sequence[Frame | str] = (
        ids if ids is not None else [frames[i] for i in range(len(frames))]
    )
    return [i for i, key in enumerate(keys) if split_of(key) == split]


class BEVDataset(Dataset):
    """BEV samples of a frame source under one sensor rig.

    Each item is ``{"features": ..., "targets": ..., "frame_id": str, "index": int64 scalar}``
    (``index``: position in ``frames``); ``features`` are the tensors of
    :func:`rsd.data.features.build_features` (what the rig senses: ``bev`` ``(C, H, W)``,
    ``command``, ``ego_status``) and ``targets`` those of
    :func:`rsd.data.targets.build_targets` (ground truth: ``agent_boxes`` ``(K, 8)``...).

    Args:
        frames: any ``Sequence[Frame]`` (list, ``FrameStore``...).
        rig: a :class:`SensorRig` or the name/path of one (default ``dense360``).
        grid: the BEV grid.
        raster: raster options (history keyframes).
        indices: optional subset of ``frames`` (e.g. from :func:`split_indices`).
        augment: optional :class:`rsd.data.augment.Augmenter` (training only): frames are then
            displaced as a function of (index, :attr:`epoch`), see :meth:`set_epoch`.
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        rig: SensorRig | str | Path = "dense360",
        grid: BEVGrid | None = None,
        raster: RasterConfig | None = None,
        indices: Sequence[int] | None = None,
        augment: Any = None,
    ) -> None:
        self.frames = frames
        self.rig = rig if isinstance(rig, SensorRig) else load_rig(rig)
        self.grid = grid or BEVGrid()
        self.raster = raster or RasterConfig()
        self.indices = list(range(len(frames))) if indices is None else list(indices)
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentation draws :meth:`__getitem__` uses (set before a loader's
        workers start: they copy it)."""
        self.epoch = int(epoch)

    @classmethod
    def split(cls, frames: Sequence[Frame], split: str, **kwargs: Any) -> BEVDataset:
        """The ``train`` or ``val`` part of ``frames`` (see :func:`split_of`)."""
        return cls(frames, indices=split_indices(frames, split), **kwargs)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        frame = self.frames[index]
        if self.augment is not None:
            frame = self.augment(frame, index, self.epoch)
        features = build_features(frame, self.rig, self.grid, self.raster)
        targets = build_targets(frame, self.grid)
        return {
            "features": {k: torch.from_numpy(v) for k, v in features.items()},
            "targets": {k: torch.from_numpy(v) for k, v in targets.items()},
            "frame_id": frame.frame_id,
            "index": torch.tensor(index, dtype=torch.int64),
        }


def _pad_agents(key: str, parts: list[torch.Tensor], counts: list[int]) -> torch.Tensor:
    """(B, K_max, ...) from B tensors (K_b, ...), padded with 0 / False (-1 for classes, ids)."""
    first = parts[0]
    out = torch.full(
        (len(parts), max(counts), *first.shape[1:]), _AGENT_PAD.get(key, 0), dtype=first.dtype
    )
    for b, part in enumerate(parts):
        out[b, : counts[b]] = part
    return out


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples of :class:`BEVDataset`: ``{"features", "targets", "frame_id", "index"}``.

    Fixed-size tensors are stacked (``bev`` -> ``(B, C, H, W)``). Per-agent targets are padded
    to ``K = max agents in the batch`` (``agent_boxes`` -> ``(B, K, 8)``) and the target
    ``agent_mask`` ``(B, K)`` bool marks the real agents; padding is 0 / False, and -1 for
    ``agent_cls`` and ``agent_ids``. Every other ``agent_*`` target is padded the same way
    (with 0). ``frame_id`` becomes a list of B strings, ``index`` a (B,) tensor.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    counts = [len(s["targets"]["agent_ids"]) for s in samples]
    features = {k: torch.stack([s["features"][k] for s in samples]) for k in samples[0]["features"]}
    targets: dict[str, torch.Tensor] = {}
    for key in samples[0]["targets"]:
        parts = [s["targets"][key] for s in samples]
        if key in AGENT_KEYS or key.startswith("agent_"):
            targets[key] = _pad_agents(key, parts, counts)
        else:
            targets[key] = torch.stack(parts)
    targets["agent_mask"] = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]
    return {
        "features": features,
        "targets": targets,
        "frame_id": [s["frame_id"] for s in samples],
        "index": torch.stack([s["index"] for s in samples]),
    }
