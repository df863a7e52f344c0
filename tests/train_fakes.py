"""Helpers for the training tests: tiny model and grid overrides, a tiny dataset on disk (synthetic
frames, privileged-teacher answers) and a DDP worker for ``torch.multiprocessing.spawn``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

TINY = [
    "model.kind=cnn",
    "model.backbone.stem_channels=8",
    "model.backbone.channels=8",
    "model.backbone.depth=0",
    "model.backbone.plan_dim=16",
    "model.backbone.plan_heads=2",
    "model.risk_head.hidden=8",
    "model.risk_head.deform_heads=2",
    "model.risk_head.deform_points=2",
]
"""Overrides for a model small enough for quick tests."""
SMALL_GRID = ["grid.x_min=-8", "grid.x_max=24", "grid.y_min=-8", "grid.y_max=8"]
"""A 64 x 32 grid instead of 160 x 64."""

# -- data ----------------------------------------------------------------------------------


def tiny_dataset(root: Path, episodes: int = 2, annotate: bool = True) -> Path:
    """A small dataset of synthetic frames (``tests.data.frames``) with privileged-teacher
    answers in ``annotations.sqlite``; seeds 0.. (seed 4 would go to val)."""
    from rsd.data.store import FrameStore
    from rsd.pipeline.annotate import annotate as run_annotate
    from rsd.pipeline.generate import GenerateConfig, generate
    from rsd.teacher.cache import CACHE_NAME, AnnotationCache
    from rsd.teacher.factory import make_teacher
    from tests.data.frames import fake_record_episode

    cfg = GenerateConfig(scenarios=("highway",), episodes_per_scenario=episodes)
    generate(cfg, root, progress=False, episode_fn=fake_record_episode)
    if annotate:
        with AnnotationCache(root / CACHE_NAME) as cache:
            run_annotate(FrameStore(root), make_teacher("privileged"), cache, progress=False)
    return root


# -- DDP -----------------------------------------------------------------------------------


def ddp_worker(rank: int, world: int, store: str, data: str, out: str, overrides: list[str]):
    """One process of a CPU (gloo) DDP run: train, then save this rank's weights.

    The process group meets through a file (``store``), not a TCP port that another process
    could take between picking and binding it; ``rsd.train`` finds the group initialised and
    reads its rank and world size from the environment as under torchrun."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from rsd.config import load_config
    from rsd.pipeline.train import train
    from rsd.train_config import TrainConfig

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cfg = load_config(TrainConfig, None, overrides)
        result = train(cfg, data, out, progress=False)
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()
