"""Data: on-disk store, sensor rigs, BEV rasteriser, feature and target builders, the dataset.

The grid and the channel layouts live in :mod:`rsd.geometry`.

Names are imported lazily so that ``rsd --help`` and ``rsd rigs`` do not pay for torch.

* :mod:`rsd.data.rigs` -- ``SensorRig``, ``RangeSensorConfig``, ``MapRasterConfig``, ``load_rig``
* :mod:`rsd.data.raycast` -- 2D ray casting with occlusion, ``scan``
* :mod:`rsd.data.raster` -- ``RasterConfig``, map and sensor drawing
* :mod:`rsd.data.features` -- ``build_features`` (model input: what the rig senses)
* :mod:`rsd.data.targets` -- ``build_targets`` (ground truth)
* :mod:`rsd.data.dataset` -- ``BEVDataset``, ``collate``, ``split_of``
* :mod:`rsd.data.synthetic` -- hand-made frames for tests and demos
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SensorRig": "rsd.data.rigs",
    "RangeSensorConfig": "rsd.data.rigs",
    "MapRasterConfig": "rsd.data.rigs",
    "load_rig": "rsd.data.rigs",
    "builtin_rig_names": "rsd.data.rigs",
    "scan": "rsd.data.raycast",
    "RasterConfig": "rsd.data.raster",
    "build_features": "rsd.data.features",
    "batch_of_one": "rsd.data.features",
    "build_targets": "rsd.data.targets",
    "BEVDataset": "rsd.data.dataset",
    "collate": "rsd.data.dataset",
    "split_of": "rsd.data.dataset",
    "split_indices": "rsd.data.dataset",
    "FrameStore": "rsd.data.store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rsd.data' has no attribute {name!r}")
