"""One task per variant (after timm's distillation task): the model it builds, the targets it
reads and the loss it trains with. A training run's ``variant`` names its task; nothing else
in rsd branches on the variant.

=================== ========== ================ ==============================================
task                RiskHead   teacher targets  loss
=================== ========== ================ ==============================================
``baseline``        no         no               detection, map, imitation, ``plan_nll``,
                                                collision, boundary
``rsd``             yes        yes              + risk-weighted ``traj_nll``, ``traj_risk_mass``
                                                and the distillation terms
``constraint_only`` no         yes              + the likelihood constraint alone (ablation:
                                                the teacher's risk without the RiskHead)
=================== ========== ================ ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from rsd.config import ConfigError
from rsd.data.dataset import BEVDataset, split_indices
from rsd.data.store import open_store
from rsd.losses import total_loss
from rsd.models import build_model
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.risk_map import RiskTargetDataset
from rsd.teacher.schema import RiskAssessment


@dataclass(frozen=True)
class Task:
    """What one variant trains: ``cfg`` below is a :class:`~rsd.train_config.TrainConfig`."""

    name: str
    risk_head: bool
    """The model carries the RiskHead (a student risk map; the distillation terms apply)."""
    teacher_targets: bool
    """Samples carry the teacher's risk targets and the loss reads them (``risk=True``)."""
    summary: str

    def build_model(self, cfg: Any) -> nn.Module:
        """The untrained model of ``cfg`` for this task (every result is a ``BEVBackbone``)."""
        return build_model(cfg.model, cfg.in_channels, cfg.grid, risk_head=self.risk_head)

    def with_targets(self, ds: Any, answers: Mapping[str, RiskAssessment], cfg: Any) -> Any:
        """``ds`` (a ``BEVDataset``) with the teacher's risk targets built from ``answers``
        (frame id -> usable answer) added to each sample's ``targets``."""
        return RiskTargetDataset(ds, answers, cfg.risk_map)

    def loss(
        self, outputs: dict[str, Tensor], targets: dict[str, Any], cfg: Any, stride: int
    ) -> dict[str, Tensor]:
        """The weighted loss terms and ``"loss"`` (:func:`rsd.losses.total_loss`)."""
        return total_loss(outputs, targets, cfg.loss, cfg.grid, stride, risk=self.teacher_targets)


BASELINE = Task("baseline", False, False, "the driving model alone")
RSD = Task("rsd", True, True, "RiskHead + distillation + trajectory likelihood constraint")
CONSTRAINT_ONLY = Task(
    "constraint_only", False, True, "the likelihood constraint without the RiskHead (ablation)"
)
TASKS: dict[str, Task] = {t.name: t for t in (BASELINE, RSD, CONSTRAINT_ONLY)}
"""Every task by name: the values of ``TrainConfig.variant``."""


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"variant: {name!r} is not one of {', '.join(TASKS)}")
    return TASKS[name]


def eval_dataset(
    data_dir: Path, cfg: Any, rig: Any, split: str, max_samples: int | None
) -> tuple[Any, bool, str]:
    """(dataset, whether it carries teacher targets, teacher note) for ``split`` of
    ``data_dir`` under ``rig``, for a model trained with ``cfg`` (a TrainConfig): with the
    teacher's risk targets when its task has a RiskHead and the dataset holds usable answers.
    What ``rsd eval`` and the report's risk-map figure read."""
    store = open_store(Path(data_dir))
    try:
        indices = split_indices(store, split)[:max_samples]
    except ValueError as e:
        raise ConfigError(f"--split: {e}") from None
    if not indices:
        raise ConfigError(f"dataset {data_dir}: no frames in the {split!r} split")
    ds: Any = BEVDataset(store, rig=rig, grid=cfg.grid, raster=cfg.raster, indices=indices)
    path = Path(data_dir) / CACHE_NAME
    if not cfg.task.risk_head:
        return ds, False, "no RiskHead"
    if not path.exists():
        return ds, False, f"no {CACHE_NAME} in {data_dir}"
    with AnnotationCache(path) as cache:
        found = cache.get_many(
            [store.frame_ids[i] for i in indices], cfg.teacher, cfg.prompt_version
        )
    usable = {k: a for k, a in found.items() if a.usable}
    if not usable:
        return ds, False, f"no usable answers of {cfg.teacher}/{cfg.prompt_version}"
    note = f"{cfg.teacher}/{cfg.prompt_version}: {len(usable)} of {len(indices)} frames"
    return cfg.task.with_targets(ds, usable, cfg), True, note
