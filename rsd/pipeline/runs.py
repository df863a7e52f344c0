"""One run's stages, shared by ``rsd experiment`` and ``rsd demo``: train (resuming a
checkpoint), evaluate open loop into a JSON file, and whether a run is finished."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsd.checkpoint import checkpoint_path, load_checkpoint
from rsd.data.jsonio import write_json
from rsd.pipeline.evaluate import evaluate, per_frame_path
from rsd.pipeline.train import train


def run_finished(run: Path) -> bool:
    """Whether ``run`` holds a checkpoint of a training run that did all its steps."""
    path = checkpoint_path(run)
    if not path.exists():
        return False
    ck = load_checkpoint(path, optimizer=False)
    return ck.meta.get("step") == ck.meta.get("total_steps")


def train_run(
    cfg: Any, data: Path, run: Path, *, progress: bool, say: Callable[[str], None]
) -> None:
    """Train ``cfg`` (a ``TrainConfig``) on ``data`` into ``run``, resuming its checkpoint
    when there is one; a run that already did all its steps is kept as it is (e.g. one trained
    on its own, or copied in, perhaps by older code); an interrupted run raises
    KeyboardInterrupt, a failed one RuntimeError."""
    if run_finished(run):
        say(f"{run} holds a finished run: kept")
        return
    resume = checkpoint_path(run).exists()
    if resume:
        say(f"resuming {run} from its checkpoint")
    result = train(cfg, data, run, resume=resume, progress=progress)
    if result.status == "interrupted":
        raise KeyboardInterrupt
    if result.status != "done":
        raise RuntimeError(f"training {run} stopped early ({result.status})")


def evaluate_run(
    run: Path, data: Path, rig: str, path: Path, max_samples: int | None, progress: bool
) -> None:
    """Open-loop evaluation of ``run`` on the validation split of ``data`` under ``rig``,
    written atomically to ``path`` (per-frame values first, beside it: :func:`per_frame_path`)."""
    res = evaluate(
        run,
        data,
        rig=rig,
        split="val",
        max_samples=max_samples,
        progress=progress,
        per_frame_out=per_frame_path(path),
    )
    write_json(path, res)
