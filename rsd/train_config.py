"""``TrainConfig``: everything that decides what ``rsd train`` computes, as one frozen dataclass.

Loaded like every rsd config (:func:`rsd.config.load_config`): defaults <- ``--config`` YAML <-
dotted ``key=value`` overrides (``lr=1e-3``, ``model.kind=vad``, ``loss.risk_map=2``). A bad key
or value fails at start with a :class:`~rsd.config.ConfigError` naming it. The resolved config is
written to ``RUN/config.yaml`` and carried by every checkpoint.

The learning rate follows :func:`lr_at`: linear warm-up over ``warmup_steps``, then cosine decay
to ``min_lr_ratio * lr`` at the last step; it is a pure function of the step, so a resumed run
picks it up exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rsd.config import ConfigError, to_dict
from rsd.data.augment import AugmentConfig
from rsd.data.raster import RasterConfig
from rsd.geometry import BEVGrid, input_channel_names
from rsd.losses import LossWeights
from rsd.models.config import ModelConfig
from rsd.tasks import TASKS, Task, task_named
from rsd.teacher.risk_map import RiskMapConfig

VARIANTS = tuple(TASKS)
"""The tasks a run can train (:mod:`rsd.tasks`): ``baseline``, ``rsd``, ``constraint_only``."""

RUN_CONTROL_KEYS = frozenset(
    {
        "stop_after_steps",
        "log_every",
        "num_workers",
        "checkpoint_every",
        "raster_cache",
        "raster_cache_dir",
        "grad_terms_every",
    }
)
"""Keys that may change between a run and its resume: they do not change what is computed."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Units: steps are optimiser updates (one batch per process)."""

    variant: str = "rsd"
    """The task (:mod:`rsd.tasks`): ``baseline``, ``rsd`` or ``constraint_only``; it decides
    the RiskHead, the teacher's targets and the loss terms."""
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    epochs: int = 20
    batch_size: int = 16
    """Samples per process and step (the global batch is ``batch_size * world_size``)."""
    lr: float = 3e-4
    """Peak learning rate (AdamW), reached after the warm-up."""
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    """The cosine decay ends at ``lr * min_lr_ratio``."""
    grad_clip: float = 1.0
    """Max global gradient norm; 0 switches clipping off."""
    seed: int = 0
    deterministic: bool = True
    """Deterministic kernels (cuDNN, ``torch.use_deterministic_algorithms`` in warn-only mode)."""
    num_workers: int = 2
    """DataLoader worker processes per training process (0 = load in the main process)."""
    rig: str = "dense360"
    """Sensor rig: a built-in name or a YAML path (``rsd rigs``)."""
    grid: BEVGrid = field(default_factory=BEVGrid)
    raster: RasterConfig = field(default_factory=RasterConfig)
    risk_map: RiskMapConfig = field(default_factory=RiskMapConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Recovery augmentation of training frames (:mod:`rsd.data.augment`; ``augment.prob=0``
    switches it off)."""
    raster_cache: bool = True
    """Keep the rasters of frames shown as recorded in a uint8 memory map and read them back in
    later epochs (:class:`rsd.data.dataset.RasterCache`; bit-identical samples, so it is a run
    control key)."""
    raster_cache_dir: str | None = None
    """Where the raster cache lives; None: ``DATA/.raster_cache``."""
    teacher: str = "privileged"
    """Teacher id whose cached answers are the risk targets (``rsd`` variant)."""
    prompt_version: str = "intent-v2"
    probe_of: str | None = None
    """A probe: a finished run whose model's weights (its backbone; the wrapped model of a run
    with a RiskHead) start this run and stay frozen, so only what this run's task adds trains
    (the RiskHead, its gate and plan refinement). With ``variant=rsd`` and a baseline run it
    measures how much of the teacher's risk the features learned without a teacher already
    hold. Tasks without a RiskHead have nothing to probe with."""
    max_samples: int | None = None
    """Train on the first N samples of the train split only (quick runs, overfitting checks)."""
    episodes_below: int | None = None
    """Train on the episodes whose seed is below N only: the first N recorded episodes of every
    scenario, of which the train split holds 4 in 5 (DAgger and DART frames count by the
    training seed they were collected on). One dataset then gives a data-size learning curve
    whose validation frames are the same for every point; ``null``: every episode."""
    log_every: int = 10
    """Steps between lines of ``metrics.jsonl`` / TensorBoard points."""
    grad_terms_every: int | None = 50
    """Every this many steps, log each loss term's own gradient norm (``grad/<term>``; one
    extra backward pass per term on that step); ``null``: never."""
    checkpoint_every: int | None = 200
    """Also save the checkpoint every this many steps, inside epochs too, so that a run killed
    without warning (``kill -9``, a lost node) loses at most that many steps; ``null``: at
    epoch ends and on signals only. Resuming from such a save is exact like any other."""
    stop_after_steps: int | None = None
    """Stop (checkpoint saved, as on Ctrl-C) once this many steps are done; for tests and
    time-boxed jobs. ``rsd train --resume`` goes on to the end unless given a new one."""

    def __post_init__(self) -> None:
        task_named(self.variant)
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("betas", all(0 <= b < 1 for b in self.betas), "must be in [0, 1)"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "must be in [0, 1]"),
            ("grad_clip", self.grad_clip >= 0, "must be >= 0 (0 = off)"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("num_workers", self.num_workers >= 0, "must be >= 0"),
            ("max_samples", self.max_samples is None or self.max_samples >= 1, "must be >= 1"),
            (
                "episodes_below",
                self.episodes_below is None or self.episodes_below >= 1,
                "must be >= 1 or null",
            ),
            ("log_every", self.log_every >= 1, "must be >= 1"),
            (
                "checkpoint_every",
                self.checkpoint_every is None or self.checkpoint_every >= 1,
                "must be >= 1 or null",
            ),
            (
                "stop_after_steps",
                self.stop_after_steps is None or self.stop_after_steps >= 1,
                "must be >= 1 or null",
            ),
        ]
        if self.probe_of is not None and not self.task.risk_head:
            checks.append(("probe_of", False, f"the {self.variant} task has no RiskHead to train"))
        for name, ok, why in checks:
            if not ok:
                raise ConfigError(f"{name}: {why}, got {getattr(self, name)!r}")

    @property
    def task(self) -> Task:
        """The task this run trains (model, targets, loss)."""
        return task_named(self.variant)

    @property
    def in_channels(self) -> int:
        """C of the ``bev`` input under ``raster``."""
        return len(input_channel_names(self.raster.history))


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts (``to_dict`` output)."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def check_resumable(saved: dict, cfg: TrainConfig) -> None:
    """Refuse to resume a run of ``saved`` (a config dict) under ``cfg`` when anything but
    :data:`RUN_CONTROL_KEYS` differs: the result would not be the run that was started. A key
    the saved config lacks (written before the option existed) counts as its default, which
    by this project's rule for new options keeps the old behaviour."""
    now, default = to_dict(cfg), to_dict(TrainConfig())
    diff = [
        k
        for k in config_diff(saved, now)
        if k not in RUN_CONTROL_KEYS
        and not (_get(saved, k) == "<absent>" and _get(now, k) == _get(default, k))
    ]
    if diff:
        shown = ", ".join(
            f"{k} (checkpoint {_get(saved, k)!r}, now {_get(now, k)!r})" for k in diff
        )
        raise ConfigError(f"--resume: the config differs from the checkpoint's in {shown}")


def _get(d: dict, dotted: str) -> object:
    for part in dotted.split("."):
        d = d.get(part, "<absent>") if isinstance(d, dict) else "<absent>"
    return d


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of update ``step`` (0-based) of ``total_steps``: linear warm-up to
    ``cfg.lr`` over ``warmup_steps`` (the first update already uses ``lr / warmup_steps``), then
    cosine decay to ``cfg.lr * min_lr_ratio`` at the last update."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(total_steps - 1 - cfg.warmup_steps, 1)
    progress = min(max((step - cfg.warmup_steps) / span, 0.0), 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
