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

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rsd.config import to_dict
from rsd.data.features import build_features
from rsd.data.raster import RasterConfig
from rsd.data.rigs import SensorRig, load_rig
from rsd.data.targets import build_targets
from rsd.geometry import BEVGrid, InputChannel
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


class RasterCache:
    """Rasters of the frames *as recorded* (no augmentation), memory-mapped on disk as uint8:
    the ``bev`` input ``(N, C, H, W)`` and the ``target_maps`` ``(N, 2, H, W)`` of every frame
    index of one dataset, filled lazily (an index is computed on first use, then read back).

    Every raster value is 0, 0.5 or 1 (lines: striped 0.5), stored as twice the value, so a
    read gives bit-identical float32 tensors; a frame with any other value is not cached. The
    file name is a hash of the dataset identity, rig, grid and raster config: another of any of
    them is another file (nothing stale is ever read). Each entry's flag is written after its
    data, so a process killed mid-write leaves that entry unfilled, never half-filled. Workers
    and DDP processes share the file (distinct indices; a lost entry is only recomputed).

    Augmented samples are rasterised live: the displacement changes the whole view, and a cache
    per (frame, epoch draw) would be filled once and read never.
    """

    def __init__(self, directory: str | Path, key: dict[str, Any], n: int, shape: tuple) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(directory) / f"raster-{digest}.npy"
        self.n, self.shape = int(n), tuple(shape)  # shape: (C + 2, H, W)
        self._mm: np.ndarray | None = None
        self.broken = False
        """Set when the file could not be made or opened (read-only data...): no caching."""

    def _open(self) -> np.ndarray | None:
        # opened lazily in each process: a memmap does not survive pickling into workers
        if self._mm is None and not self.broken:
            try:
                self._mm = self._map()
            except OSError:
                self.broken = True
        return self._mm

    def _map(self) -> np.ndarray:
        full = (self.n, 1 + int(np.prod(self.shape)))  # column 0: the filled flag
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=full).flush()
            os.replace(tmp, self.path)  # atomic: no process ever maps a half-made header
        mm = np.load(self.path, mmap_mode="r+")
        if mm.shape != full:
            raise ValueError(f"{self.path}: shape {mm.shape}, expected {full}; delete it")
        return mm

    def __getstate__(self) -> dict[str, Any]:
        # a pickled memmap is a full in-memory copy: workers map the file themselves
        return {**self.__dict__, "_mm": None}

    def get(self, index: int) -> np.ndarray | None:
        """(C + 2, H, W) float32 rasters of frame ``index``, or None when not cached yet."""
        mm = self._open()
        if mm is None or mm[index, 0] != 1:
            return None
        return mm[index, 1:].reshape(self.shape).astype(np.float32) * np.float32(0.5)

    def put(self, index: int, rasters: np.ndarray) -> None:
        """Store (C + 2, H, W) rasters of frame ``index`` (skipped unless all in {0, .5, 1})."""
        code = rasters * 2
        if not np.array_equal(code, np.round(code)) or code.min() < 0 or code.max() > 2:
            return
        mm = self._open()
        if mm is not None:
            mm[index, 1:] = code.astype(np.uint8).ravel()
            mm[index, 0] = 1  # after the data


def raster_cache_for(
    directory: str | Path, identity: dict, frames: int, rig: Any, grid: BEVGrid, raster: Any
) -> RasterCache:
    """The :class:`RasterCache` in ``directory`` of a dataset (``identity``, e.g.
    :func:`rsd.checkpoint.dataset_identity`, ``frames`` in all) under ``rig``, ``grid`` and
    ``raster`` (a :class:`~rsd.data.raster.RasterConfig`)."""
    key = {"data": identity, "rig": to_dict(rig), "grid": to_dict(grid), "raster": to_dict(raster)}
    return RasterCache(
        directory, key, frames, (InputChannel.HITS + raster.history + 2, *grid.shape)
    )


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
        cache: optional :class:`RasterCache` of ``frames`` under this rig, grid and raster:
            samples shown as recorded read their ``bev`` and ``target_maps`` from it.
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        rig: SensorRig | str | Path = "dense360",
        grid: BEVGrid | None = None,
        raster: RasterConfig | None = None,
        indices: Sequence[int] | None = None,
        augment: Any = None,
        cache: RasterCache | None = None,
    ) -> None:
        self.frames = frames
        self.rig = rig if isinstance(rig, SensorRig) else load_rig(rig)
        self.grid = grid or BEVGrid()
        self.raster = raster or RasterConfig()
        self.indices = list(range(len(frames))) if indices is None else list(indices)
        self.augment = augment
        self.cache = cache
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
        recorded = self.frames[index]
        frame = recorded
        if self.augment is not None:
            frame = self.augment(frame, index, self.epoch)
        use_cache = self.cache is not None and frame is recorded
        cached = self.cache.get(index) if use_cache else None
        bev, maps = (None, None) if cached is None else (cached[:-2], cached[-2:])
        features = build_features(frame, self.rig, self.grid, self.raster, bev=bev)
        targets = build_targets(frame, self.grid, maps=maps)
        if use_cache and cached is None:
            self.cache.put(index, np.concatenate([features["bev"], targets["target_maps"]]))
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
