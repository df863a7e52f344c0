"""Training data for ``rsd train``: the train split of a dataset directory under a rig, with the
teacher's risk targets for the ``rsd`` variant, and a loader whose order is a function of
(seed, epoch) alone, so a run resumed in the middle of an epoch sees the same batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from rsd.checkpoint import dataset_identity
from rsd.config import ConfigError
from rsd.data.augment import Augmenter
from rsd.data.dataset import BEVDataset, collate, raster_cache_for, seed_of, split_indices
from rsd.data.rigs import load_rig
from rsd.data.store import open_store
from rsd.pipeline.dist import Dist
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.train_config import TrainConfig

# -- data ----------------------------------------------------------------------------------


def open_training_data(cfg: TrainConfig, data_dir: Path, say: Callable[[str], None]):
    """(dataset, dataset identity, rig) of the train split of ``data_dir`` under ``cfg``."""

    rig = load_rig(cfg.rig)
    store = open_store(data_dir)
    indices = split_indices(store, "train")
    if cfg.episodes_below is not None:
        ids = store.frame_ids
        indices = [i for i in indices if seed_of(ids[i]) < cfg.episodes_below]
    indices = indices[: cfg.max_samples]
    if not indices:
        below = "" if cfg.episodes_below is None else f" of seeds < {cfg.episodes_below}"
        raise ConfigError(f"dataset {data_dir}: no frames{below} in the train split")

    augment = Augmenter(cfg.augment, seed=cfg.seed) if cfg.augment.prob > 0 else None
    identity = dataset_identity(store.manifest, len(store), len(indices))
    cache = None
    if cfg.raster_cache:
        where = cfg.raster_cache_dir or data_dir / ".raster_cache"
        data_key = {k: identity[k] for k in ("manifest_sha256", "frames")}  # not the split
        cache = raster_cache_for(where, data_key, len(store), rig, cfg.grid, cfg.raster)
    ds: Dataset = BEVDataset(
        store,
        rig=rig,
        grid=cfg.grid,
        raster=cfg.raster,
        indices=indices,
        augment=augment,
        cache=cache,
    )
    if cfg.task.teacher_targets:
        path = data_dir / CACHE_NAME
        if not path.exists():
            raise ConfigError(
                f"{path}: no risk annotations; the {cfg.variant} task learns from a teacher's"
                " answers."
                f" Run 'rsd annotate {data_dir}' first (the offline privileged teacher), or"
                " train --variant baseline"
            )
        ids = [store.frame_ids[i] for i in indices]
        with AnnotationCache(path) as cache:
            found = cache.get_many(ids, cfg.teacher, cfg.prompt_version)
            held = ", ".join(f"{t}/{p} ({n})" for t, p, n in cache.teachers()) or "nothing"
        usable = {k: a for k, a in found.items() if a.usable}
        if not usable:
            raise ConfigError(
                f"{path}: no usable answers of teacher={cfg.teacher!r} prompt_version="
                f"{cfg.prompt_version!r} for the training frames (the cache holds: {held});"
                f" run 'rsd annotate {data_dir} --teacher ...' or set teacher=/prompt_version="
            )
        if len(usable) < len(ids):
            say(
                f"rsd train: {len(ids) - len(usable)} of {len(ids)} training frames have no usable"
                f" answer of {cfg.teacher}; they train without risk targets"
            )
        ds = cfg.task.with_targets(ds, usable, cfg)
    elif cfg.task.risk_terms:  # aux_only: targets of its own, no teacher
        ds = cfg.task.with_targets(ds, {}, cfg)
    return ds, identity, rig


class _Skip(Sampler[int]):
    """A sampler without its first ``skip`` indices (resuming in the middle of an epoch)."""

    def __init__(self, base: DistributedSampler, skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        it = iter(self.base)
        for _ in range(self.skip):
            next(it)
        return it

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)


def seed_worker(worker_id: int) -> None:
    """Seed a DataLoader worker's global streams; leave Ctrl-C to the training process, which
    stops at the next step boundary (a worker killed by it would fail the epoch instead)."""
    import random
    import signal

    import numpy as np

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32  # distinct per worker, derived from the loader's seed
    np.random.seed(seed)  # noqa: NPY002 (the global stream: whatever a worker uses)
    random.seed(seed)


def make_loader(ds: Dataset, cfg: TrainConfig, d: Dist, epoch: int, skip_batches: int):

    sampler = DistributedSampler(ds, num_replicas=d.world, rank=d.rank, seed=cfg.seed)
    sampler.set_epoch(epoch)  # the permutation is a function of (seed, epoch) alone
    if hasattr(ds, "set_epoch"):  # so are the augmentation draws
        ds.set_epoch(epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # worker seeds
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=_Skip(sampler, skip_batches * cfg.batch_size),
        num_workers=cfg.num_workers,
        collate_fn=collate,
        generator=gen,
        worker_init_fn=seed_worker,
        pin_memory=d.device.type == "cuda",
    )


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``batch`` with every tensor on ``device``, nested dicts (features, targets) included."""
    return {
        k: to_device(v, device)
        if isinstance(v, dict)
        else v.to(device, non_blocking=True)
        if isinstance(v, torch.Tensor)
        else v
        for k, v in batch.items()
    }
