"""What an open-loop evaluation reads: the sensor rig to evaluate with and the split of a
dataset (with the teacher's risk targets when the model has a RiskHead and the dataset holds
usable answers). Used by ``rsd eval`` and by ``rsd report``'s risk-map figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.data.dataset import BEVDataset, split_indices
from rsd.data.rigs import load_rig
from rsd.data.store import open_store
from rsd.teacher.cache import CACHE_NAME, AnnotationCache


def resolve_rig(rig: str | Path | None, train_rig: str) -> Any:
    """The :class:`~rsd.data.rigs.SensorRig` to evaluate with: ``rig`` (built-in name or YAML
    path) or the run's own. A malformed file raises ConfigError naming the bad field."""
    if rig is not None and Path(rig).suffix in (".yaml", ".yml") and not Path(rig).exists():
        raise ConfigError(f"rig file {rig}: no such file")
    try:
        return load_rig(train_rig if rig is None else rig)
    except ConfigError as e:
        where = f"rig file {rig}" if rig is not None and Path(rig).exists() else "rig"
        raise ConfigError(f"{where}: {e}") from None


def open_eval_data(
    data_dir: Path, cfg: Any, rig: Any, split: str, max_samples: int | None
) -> tuple[Any, bool, str]:
    """(dataset, whether it carries teacher targets, teacher note) for ``split`` of
    ``data_dir`` rasterised under ``rig``, for a model trained with ``cfg`` (a TrainConfig)."""
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
