"""Result files: strict, portable JSON (no NaN, no numpy scalars), written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rsd.data.shard import atomic_write


def no_nan(x: Any) -> Any:
    """NaN -> None and numpy scalars -> Python numbers, recursively: strict, portable JSON."""
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [no_nan(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    return None if isinstance(x, float) and math.isnan(x) else x


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON atomically (readers see the old file or the new one)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(no_nan(data), indent=2) + "\n").encode())
