"""Data: on-disk store, sensor rigs, BEV rasteriser and the torch dataset.

Names are imported lazily so that ``rsd --help`` and ``rsd rigs`` do not pay for torch.

* :mod:`rsd.data.rigs` -- ``SensorRig``, ``RangeSensorConfig``, ``MapRasterConfig``, ``load_rig``
* :mod:`rsd.data.raycast` -- 2D ray casting with occlusion, ``scan``
* :mod:`rsd.data.raster` -- ``BEVGrid``, ``RasterConfig``, channel enums, ``rasterise``
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
    "BEVGrid": "rsd.data.raster",
    "RasterConfig": "rsd.data.raster",
    "InputChannel": "rsd.data.raster",
    "TargetChannel": "rsd.data.raster",
    "BoxField": "rsd.data.raster",
    "EgoStatusField": "rsd.data.raster",
    "hits_channel": "rsd.data.raster",
    "input_channel_names": "rsd.data.raster",
    "rasterise": "rsd.data.raster",
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
