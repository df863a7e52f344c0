"""Strict-JSON result files (evaluations, summaries, results): written atomically, read back
leniently."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rsd.data.shard import atomic_write


def clean(x: Any) -> Any:
    """Strict JSON: NaN / inf -> null, tuples -> lists, numpy / torch scalars -> floats."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as strict JSON (see :func:`clean`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(clean(obj), indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    """The JSON object at ``path``; ``{}`` when there is no file."""
    return json.loads(path.read_text()) if path.exists() else {}
