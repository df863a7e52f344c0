"""Risk labels any trainer can load: a teacher's cached answers over a frame source, written
as ``labels.jsonl`` + ``risk_maps.npz`` + ``meta.json`` (format documented in the README,
"Exported risk labels"; readable with numpy and json alone).

* ``meta.json``: ``format_version``, the teacher id and prompt version, the source, the BEV
  grid (``x_min, x_max, y_min, y_max, resolution`` in m, ``rows``, ``cols``; row 0 at
  ``x_max``, column 0 at ``y_max``), the class names, counts.
* ``labels.jsonl``: one object per exported sample, in the source's order, keyed by the data
  set's own ``sample_token`` (nuScenes sample token, Bench2Drive ``clip/frame``, rsd frame id),
  with ``map_index`` (its row in the npz), ``lane_offset`` (the ego's signed offset from its
  lane's centreline, m; null when unknown) and per object ``object_id``, ``source_id``,
  ``class``, ``x``, ``y`` (ego frame, m), ``vx``, ``vy`` (ego axes, m/s; null when unknown),
  ``velocity_valid``, ``risk``, ``rank``, ``category``, ``rationale``.
* ``risk_maps.npz``: ``maps`` ``(N, rows, cols)`` float32 in [0, 1] and ``sample_tokens``
  ``(N,)`` unicode (no pickled objects).

Every file is written to a temporary name and renamed, so a reader never sees half a file.

Versions: 1 had no ``lane_offset``, ``vx``, ``vy``, ``velocity_valid``; 2 adds them and changes
the meaning of no version-1 field, so a version-1 reader that ignores keys it does not know
reads a version-2 file correctly (:data:`FORMAT_VERSION`).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.geometry import BEVGrid
from rsd.scene import AgentClass, AgentState, Frame, lane_offset_known
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.risk_map import risk_map
from rsd.teacher.schema import RiskAssessment

FORMAT_VERSION = 2
"""2: per object ``vx``, ``vy``, ``velocity_valid`` and per sample ``lane_offset`` added (null =
unknown); every version-1 field unchanged."""
LABELS_NAME = "labels.jsonl"
MAPS_NAME = "risk_maps.npz"
META_NAME = "meta.json"


@dataclass
class ExportSummary:
    """What one export wrote."""

    out_dir: str
    teacher_id: str
    prompt_version: str
    samples: int
    """Samples written (frames with a usable answer)."""
    missing: int
    """Frames without an answer of this teacher in the cache."""
    failed: int
    """Frames whose answer failed (not exported)."""

    def text(self) -> str:
        return (
            f"exported {self.samples} samples to {self.out_dir} (teacher {self.teacher_id}, "
            f"prompt {self.prompt_version}); {self.missing} without an answer, "
            f"{self.failed} failed"
        )


def parse_grid(text: str) -> BEVGrid:
    """``"x_min,x_max,y_min,y_max,resolution"`` (m) -> :class:`BEVGrid`."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 5:
        raise ConfigError(f"--grid {text!r}: expected x_min,x_max,y_min,y_max,resolution in m")
    return BEVGrid(*values)


def pick_teacher(
    cache: AnnotationCache, teacher_id: str | None, prompt_version: str | None
) -> tuple[str, str]:
    """The (teacher id, prompt version) to export: the one matching the given parts, which
    must be unique in the cache; a ConfigError listing what the cache holds otherwise."""
    held = [(t, p) for t, p, _ in cache.teachers()]
    fit = [(t, p) for t, p in held if teacher_id in (None, t) and prompt_version in (None, p)]
    if len(fit) != 1:
        listing = ", ".join(f"{t} (prompt {p})" for t, p in held) or "nothing"
        why = "no answers match" if not fit else "several teachers match"
        raise ConfigError(f"{why}; the cache holds: {listing}; choose with --teacher-id")
    return fit[0]


def _known(value: float, valid: bool, digits: int = 3) -> float | None:
    """``value`` rounded, or None (JSON null) where the source did not measure it."""
    return round(float(value), digits) if valid and np.isfinite(value) else None


def object_fields(ag: AgentState | None) -> dict[str, Any]:
    """What the frame knows of one assessed object: class, position and velocity; unknowns
    (an id the frame lacks, a velocity the data set cannot give) as null / False."""
    if ag is None:
        fields = {"class": "", "x": None, "y": None, "vx": None, "vy": None}
        return {"source_id": "", **fields, "velocity_valid": False}
    return {
        "source_id": ag.source_id,
        "class": AgentClass(ag.cls).name.lower(),
        "x": _known(ag.x, True),
        "y": _known(ag.y, True),
        "vx": _known(ag.vx, ag.velocity_valid),
        "vy": _known(ag.vy, ag.velocity_valid),
        "velocity_valid": bool(ag.velocity_valid),
    }


def sample_record(frame: Frame, a: RiskAssessment, map_index: int) -> dict[str, Any]:
    """The ``labels.jsonl`` line of one frame (see the module doc)."""
    agents = {ag.id: ag for ag in frame.agents}
    objects = []
    for o in sorted(a.objects, key=lambda o: o.rank):
        objects.append(
            {
                "object_id": o.object_id,
                **object_fields(agents.get(o.object_id)),
                "risk": o.risk,
                "rank": o.rank,
                "category": str(o.category),
                "rationale": o.rationale,
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "sample_token": frame.frame_id,
        "map_index": map_index,
        "status": str(a.status),
        "scene_risk": a.scene_risk,
        "lane_offset": _known(frame.ego.lane_offset, lane_offset_known(frame.ego)),
        "objects": objects,
    }


def _atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_labels(
    frames: Sequence[Frame],
    cache: AnnotationCache,
    out_dir: str | Path,
    grid: BEVGrid,
    teacher_id: str | None = None,
    prompt_version: str | None = None,
    source: str = "",
) -> ExportSummary:
    """Write the labels of ``frames`` (any frame source) from ``cache`` to ``out_dir``."""
    teacher_id, prompt_version = pick_teacher(cache, teacher_id, prompt_version)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    maps: list[np.ndarray] = []
    tokens: list[str] = []
    missing = failed = 0
    for i in range(len(frames)):
        frame = frames[i]
        a = cache.get(frame.frame_id, teacher_id, prompt_version)
        if a is None or not a.usable:
            missing += a is None
            failed += a is not None
            continue
        lines.append(json.dumps(sample_record(frame, a, len(maps)), ensure_ascii=False))
        maps.append(risk_map(frame, a, grid))
        tokens.append(frame.frame_id)
    buf = io.BytesIO()
    stack = np.stack(maps) if maps else np.zeros((0, *grid.shape), np.float32)
    np.savez_compressed(buf, maps=stack.astype(np.float32), sample_tokens=np.array(tokens, str))
    _atomic(out / MAPS_NAME, buf.getvalue())
    _atomic(out / LABELS_NAME, ("\n".join(lines) + ("\n" if lines else "")).encode())
    meta = {
        "format_version": FORMAT_VERSION,
        "teacher_id": teacher_id,
        "prompt_version": prompt_version,
        "source": source,
        "grid": {**asdict(grid), "rows": grid.height, "cols": grid.width},
        "classes": [c.name.lower() for c in AgentClass],
        "samples": len(tokens),
        "missing": missing,
        "failed": failed,
    }
    _atomic(out / META_NAME, (json.dumps(meta, indent=1) + "\n").encode())
    return ExportSummary(str(out), teacher_id, prompt_version, len(tokens), missing, failed)
