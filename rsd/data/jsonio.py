"""Atomic file writes, and strict-JSON result files (evaluations, summaries, results) written
with them and read back leniently."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one:
    a temp file ``.NAME.*.tmp`` in the same directory, fsync, ``os.replace``, fsync the dir."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp's 0600 would hide a shared dataset from others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
