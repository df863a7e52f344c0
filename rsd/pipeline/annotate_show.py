"""``rsd annotate DATASET --show FRAME_ID --out PNG``: one frame's risk as a picture.

Left, the scene image a VLM teacher is shown (:func:`rsd.teacher.render.render_scene`, with
its numbered marks); middle, the teacher's per-object table (rank, id, risk, category,
rationale); right, the BEV risk map the student learns from
(:func:`rsd.teacher.risk_map.risk_map` on the default :class:`~rsd.geometry.BEVGrid`) with
the agent boxes and ids. A frame not yet in the cache is annotated (and cached) first.
"""

from __future__ import annotations

import io
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rsd.config import ConfigError
from rsd.geometry import BEVGrid, box_corners
from rsd.pipeline.annotate import FrameSource, check_answers
from rsd.scene import Frame
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.render import RenderConfig, render_scene
from rsd.teacher.risk_map import RiskMapConfig, risk_map
from rsd.teacher.schema import RiskAssessment, Status, Teacher

TABLE_ROWS = 18
"""Objects listed in the --show table (the most risky first)."""


def _assessment_for(
    store: FrameSource, teacher: Teacher, cache: AnnotationCache, frame_id: str
) -> tuple[Frame, RiskAssessment]:
    """The frame and its cached answer; the teacher is asked (and the answer cached) if none."""
    try:
        frame = store[store.index_of(frame_id)]
    except KeyError:
        raise ConfigError(f"--show {frame_id}: no such frame in the dataset") from None
    a = cache.get(frame_id, teacher.teacher_id, teacher.prompt_version)
    if a is None:
        t0 = time.monotonic()
        answers = teacher.assess([frame])
        check_answers(teacher, [frame_id], answers)
        a = answers[0]
        cache.put_many([a], latencies=[time.monotonic() - t0])
    return frame, a


def _table(ax: Any, a: RiskAssessment) -> None:
    ax.axis("off")
    if a.status is Status.FAILED:
        raw = textwrap.shorten(a.raw_text or "(no answer)", 300)
        ax.text(0, 1, f"FAILED: {a.failure_reason}\n\n{textwrap.fill(raw, 60)}", va="top")
        return
    rows = [
        [
            str(o.rank),
            str(o.object_id),
            f"{o.risk:.2f}",
            o.category.value,
            textwrap.shorten(o.rationale, 100, placeholder="..."),
        ]
        for o in sorted(a.objects, key=lambda o: o.rank)[:TABLE_ROWS]
    ]
    if not rows:
        ax.text(0, 1, "no objects", va="top")
        return
    table = ax.table(
        cellText=rows,
        colLabels=["rank", "id", "risk", "category", "rationale"],
        colWidths=[0.06, 0.08, 0.07, 0.17, 0.62],
        loc="upper center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.25)
    hidden = len(a.objects) - len(rows)
    if hidden > 0:
        ax.text(0, 0, f"... and {hidden} more objects", fontsize=7, va="bottom")


def _risk_panel(ax: Any, frame: Frame, a: RiskAssessment) -> Any:
    from matplotlib.patches import Polygon

    grid = BEVGrid()
    rmap = risk_map(frame, a, grid, RiskMapConfig())
    extent = (grid.y_max, grid.y_min, grid.x_min, grid.x_max)
    im = ax.imshow(rmap, extent=extent, cmap="inferno", vmin=0.0, vmax=1.0)
    for ag in frame.agents:
        if grid.contains(np.array([ag.x, ag.y])):
            corners = box_corners(ag.x, ag.y, ag.yaw, ag.length, ag.width)
            ax.add_patch(Polygon(corners[:, ::-1], closed=True, fill=False, ec="c", lw=0.7))
            ax.text(ag.y, ag.x, str(ag.id), color="c", fontsize=6, ha="center", va="center")
    ego = box_corners(0.0, 0.0, 0.0, frame.ego.length, frame.ego.width)
    ax.add_patch(Polygon(ego[:, ::-1], closed=True, fc="#0072b2", ec="w", lw=0.8))
    ax.set_xlim(grid.y_max, grid.y_min)
    ax.set_ylim(grid.x_min, grid.x_max)
    ax.set_xlabel("y (m, left +)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title("BEV risk map (teacher target)", fontsize=10)
    return im


def show_frame(
    store: FrameSource,
    teacher: Teacher,
    cache: AnnotationCache,
    frame_id: str,
    out: Path,
    dpi: int = 100,
) -> RiskAssessment:
    """Write a PNG of ``frame_id``: the scene image a VLM teacher sees (with its numbered
    marks), the teacher's per-object table (rank, id, risk, category, rationale) and the BEV
    risk map. Returns the assessment shown (from the cache, or asked for and cached)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame, a = _assessment_for(store, teacher, cache, frame_id)
    png, _ = render_scene(frame, RenderConfig())
    fig = Figure(figsize=(17.0, 7.5), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.55, 0.75])
    ax = fig.add_subplot(gs[0, 0])
    with Image.open(io.BytesIO(png)) as img:
        ax.imshow(np.asarray(img.convert("RGB")))
    ax.axis("off")
    ax.set_title("scene image (what a VLM teacher sees)", fontsize=10)
    _table(fig.add_subplot(gs[0, 1]), a)
    ax_map = fig.add_subplot(gs[0, 2])
    fig.colorbar(_risk_panel(ax_map, frame, a), ax=ax_map, fraction=0.08, label="risk")
    latency = "" if a.latency_s is None else f"  |  {a.latency_s * 1000:.0f} ms"
    fig.suptitle(
        f"{frame.frame_id}  |  teacher {a.teacher_id} ({a.prompt_version})  |  "
        f"{a.status.value}  |  scene risk {a.scene_risk:.2f}  |  "
        f"ego {frame.ego.speed:.1f} m/s, offset {frame.ego.lane_offset:+.2f} m{latency}",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.02, right=0.97, bottom=0.07, top=0.9, wspace=0.12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return a
