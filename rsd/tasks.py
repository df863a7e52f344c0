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
``aux_only``        yes        no (occupancy)   as ``rsd``, but the head learns every agent's
                                                future occupancy (control: a non-risk target
                                                of the same shape; scene risk 0)
``oracle``          teacher's  yes, as input    as ``rsd``; the planner reads the teacher's
                                                maps at training *and* test time (the upper
                                                bound of what distillation could deliver)
=================== ========== ================ ==============================================

The oracle needs the teacher's maps wherever it runs: evaluation builds them from the cached
answers (:func:`eval_dataset`); closed loop runs the privileged teacher live on each frame
(:class:`rsd.policy.ModelPlanner`).
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
from rsd.teacher.risk_map import ORACLE_FEATURE, RiskTargetDataset
from rsd.teacher.schema import RiskAssessment


@dataclass(frozen=True)
class Task:
    """What one variant trains: ``cfg`` below is a :class:`~rsd.train_config.TrainConfig`."""

    name: str
    risk_head: bool
    """The model carries the RiskHead (a student risk map; the distillation terms apply)."""
    teacher_targets: bool
    """Samples carry the teacher's risk targets (from its cached answers)."""
    summary: str
    target: str = "risk"
    """What the risk targets hold: ``risk`` (the teacher's) or ``occupancy`` (``aux_only``)."""
    oracle: bool = False
    """The planner reads the teacher's maps as an input (at test time too)."""

    @property
    def risk_terms(self) -> bool:
        """The loss reads risk targets (``risk=True`` of :func:`rsd.losses.total_loss`)."""
        return self.teacher_targets or self.target != "risk"

    def build_model(self, cfg: Any) -> nn.Module:
        """The untrained model of ``cfg`` for this task (every result is a ``BEVBackbone``)."""
        return build_model(
            cfg.model,
            cfg.in_channels,
            cfg.grid,
            risk_head=self.risk_head,
            risk_channels=cfg.risk_map.channels,
            oracle_key=ORACLE_FEATURE if self.oracle else None,
            forcing_key=ORACLE_FEATURE if self._forced(cfg) else None,
        )

    def _forced(self, cfg: Any) -> bool:
        """The planner trains on the teacher's maps part of the time (``teacher_forcing``)."""
        return self.risk_head and cfg.model.risk_head.teacher_forcing > 0

    def with_targets(self, ds: Any, answers: Mapping[str, RiskAssessment], cfg: Any) -> Any:
        """``ds`` (a ``BEVDataset``) with the risk targets built from ``answers`` (frame id ->
        usable answer; unused for occupancy) added to each sample's ``targets`` (and, for the
        oracle and for teacher forcing, to its ``features``)."""
        feed = self.oracle or self._forced(cfg)
        return RiskTargetDataset(ds, answers, cfg.risk_map, target=self.target, oracle_input=feed)

    def loss(
        self, outputs: dict[str, Tensor], targets: dict[str, Any], cfg: Any, stride: int
    ) -> dict[str, Tensor]:
        """The weighted loss terms and ``"loss"`` (:func:`rsd.losses.total_loss`)."""
        return total_loss(outputs, targets, cfg.loss, cfg.grid, stride, risk=self.risk_terms)


BASELINE = Task("baseline", False, False, "the driving model alone")
RSD = Task("rsd", True, True, "RiskHead + distillation + trajectory likelihood constraint")
CONSTRAINT_ONLY = Task(
    "constraint_only", False, True, "the likelihood constraint without the RiskHead (ablation)"
)
AUX_ONLY = Task(
    "aux_only",
    True,
    False,
    "the RiskHead trained on future occupancy, a non-risk target (control)",
    target="occupancy",
)
ORACLE = Task(
    "oracle",
    True,
    True,
    "the teacher's maps given to the planner, in training and at test time (upper bound)",
    oracle=True,
)
TASKS: dict[str, Task] = {t.name: t for t in (BASELINE, RSD, CONSTRAINT_ONLY, AUX_ONLY, ORACLE)}
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
    task = cfg.task
    if not task.risk_head:
        return ds, False, "no RiskHead"
    if not task.teacher_targets:  # aux_only: its own targets, no teacher
        return task.with_targets(ds, {}, cfg), True, f"{task.target} targets"
    if not path.exists():
        if task.oracle:
            raise ConfigError(f"the oracle reads the teacher's maps: no {CACHE_NAME} in {data_dir}")
        return ds, False, f"no {CACHE_NAME} in {data_dir}"
    with AnnotationCache(path) as cache:
        found = cache.get_many(
            [store.frame_ids[i] for i in indices], cfg.teacher, cfg.prompt_version
        )
    usable = {k: a for k, a in found.items() if a.usable}
    if not usable:
        if task.oracle:
            raise ConfigError(
                f"the oracle reads the teacher's maps: no usable answers of"
                f" {cfg.teacher}/{cfg.prompt_version} in {path}"
            )
        return ds, False, f"no usable answers of {cfg.teacher}/{cfg.prompt_version}"
    note = f"{cfg.teacher}/{cfg.prompt_version}: {len(usable)} of {len(indices)} frames"
    return cfg.task.with_targets(ds, usable, cfg), True, note
