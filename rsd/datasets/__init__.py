"""Readers of real driving data into :class:`rsd.scene.Frame`s, and :func:`open_source`, which
opens any source (``sim:DIR``, ``nuscenes:DIR``, ``bench2drive:DIR``) as a frame sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsd.config import ConfigError

SOURCE_KINDS = ("sim", "nuscenes", "bench2drive")


def parse_source(spec: str) -> tuple[str, Path]:
    """``"KIND:DIR"`` -> ``(kind, Path(DIR))``; a bare directory means ``sim:DIR``."""
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in SOURCE_KINDS:
        if sep and kind and not Path(str(spec)).exists() and "/" not in kind:
            raise ConfigError(f"source {spec!r}: unknown kind {kind!r}; expected {SOURCE_KINDS}")
        return "sim", Path(str(spec))
    if not rest:
        raise ConfigError(f"source {spec!r}: give a directory after {kind}:")
    return kind, Path(rest)


def open_source(spec: str) -> Any:
    """The frames of a source as a sequence with ``frame_ids``, ``index_of``, ``len`` and
    ``[i]`` (:class:`rsd.pipeline.annotate.FrameSource`): a store made by ``rsd generate``
    (``sim:DIR``), a nuScenes release (``nuscenes:DIR``) or Bench2Drive clips
    (``bench2drive:DIR``). A missing or malformed table or file is a ConfigError naming it."""
    kind, path = parse_source(spec)
    if kind == "nuscenes":
        from rsd.datasets.nuscenes import NuScenesReader

        return NuScenesReader(path)
    if kind == "bench2drive":
        from rsd.datasets.bench2drive import Bench2DriveReader

        return Bench2DriveReader(path)
    from rsd.data.store import open_store

    return open_store(path)
