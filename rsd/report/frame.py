"""One keyframe as a PNG a person can read at a glance (what ``rsd show`` writes).

Left: the scene in BEV (forward up, left on the left): ground-truth drivable area and lane
lines, the free space the rig sees now, sensor hits (now in red, past keyframes fading), agent
boxes with ``id`` and class, their futures, the ego box and the expert's future. Right: every
BEV input channel as the model receives it, labelled, and the map targets. Title: scenario,
frame id, time, ego speed, command and rig.

``render_frame(frame, rig, grid)`` works on any :class:`~rsd.scene.Frame` (no store needed).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from rsd.data.features import build_features
from rsd.data.raster import RasterConfig
from rsd.data.rigs import SensorRig
from rsd.data.targets import map_targets
from rsd.geometry import BEVGrid, InputChannel, TargetChannel, box_corners, input_channel_names
from rsd.scene import SIM_CLASSES, AgentClass, Command, Frame, class_hex

CLASS_COLOURS = {cls: class_hex(cls) for cls in AgentClass}
"""Box colour per class (:data:`rsd.scene.CLASS_RGB`, the teacher's pictures' too)."""
EGO_COLOUR = "#0072b2"
PAST_HITS = np.array([0.1, 0.45, 0.75])
FIGSIZE = (14.0, 8.6)
"""Figure size (inches) of :func:`render_frame`."""


def _scene_rgb(bev: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB background (maps, free space, past hits) and (H, W, 4) RGBA current hits."""
    h, w = bev.shape[1:]
    rgb = np.full((h, w, 3), 0.93)  # off-road: light grey
    rgb[targets[TargetChannel.DRIVABLE] > 0] = (0.62, 0.62, 0.64)  # road: mid grey
    seen = bev[InputChannel.VISIBLE] > 0
    rgb[seen] = rgb[seen] * 0.7 + np.array([0.55, 0.85, 0.55]) * 0.3  # seen free space: green
    rgb[targets[TargetChannel.LANE_BOUNDARY] > 0] = (1.0, 1.0, 1.0)
    n_hist = bev.shape[0] - InputChannel.HITS
    for k in range(n_hist - 1, 0, -1):  # past hits, oldest first and palest
        fade = (k - 1) / max(n_hist - 1, 1)
        rgb[bev[InputChannel.HITS + k] > 0] = PAST_HITS * (1 - fade) + np.ones(3) * fade
    now = np.zeros((h, w, 4))
    now[bev[InputChannel.HITS] > 0] = (0.85, 0.05, 0.05, 1.0)
    return rgb, now


def _draw_scene(ax, frame: Frame, bev: np.ndarray, targets: np.ndarray, grid: BEVGrid) -> None:
    from matplotlib.patches import Polygon

    extent = (grid.y_max, grid.y_min, grid.x_min, grid.x_max)
    background, hits_now = _scene_rgb(bev, targets)
    ax.imshow(background, extent=extent, interpolation="nearest")
    ax.imshow(hits_now, extent=extent, interpolation="nearest", zorder=4)
    for a in frame.agents:
        colour = CLASS_COLOURS.get(a.cls, "k")
        fut = a.future[a.future_valid]
        if len(fut):
            path = np.vstack([[a.x, a.y], fut[:, :2]])
            ax.plot(path[:, 1], path[:, 0], "--", color=colour, lw=1, alpha=0.8)
        corners = box_corners(a.x, a.y, a.yaw, a.length, a.width)
        ax.add_patch(Polygon(corners[:, ::-1], closed=True, fc=colour, ec="k", lw=0.8, alpha=0.7))
        if grid.contains(np.array([a.x, a.y])):
            ax.annotate(
                f"{a.id} {a.cls.name.lower()}",
                (a.y, a.x),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=7,
                ha="left" if a.y < grid.y_max - 6 else "right",
                va="center",
                zorder=6,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )
    ego = frame.ego
    ego_box = box_corners(0.0, 0.0, 0.0, ego.length, ego.width)
    ax.add_patch(Polygon(ego_box[:, ::-1], closed=True, fc=EGO_COLOUR, ec="k", lw=1.0))
    plan = np.vstack([[0.0, 0.0], ego.future[ego.future_valid][:, :2]])
    ax.plot(plan[:, 1], plan[:, 0], "-o", color=EGO_COLOUR, ms=3, lw=2)
    ax.set_xlim(grid.y_max, grid.y_min)
    ax.set_ylim(grid.x_min, grid.x_max)
    ax.set_xlabel("y (m, left +)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title("scene (ground truth + what the rig sees)", fontsize=10)


def _legend(ax, frame: Frame) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # the simulator's classes always, real data's when the frame has them: a short legend
    shown = set(SIM_CLASSES) | {a.cls for a in frame.agents}
    handles = [
        Patch(fc=c, ec="k", label=k.name.lower()) for k, c in CLASS_COLOURS.items() if k in shown
    ]
    handles += [
        Patch(fc=EGO_COLOUR, ec="k", label="ego"),
        Line2D([], [], color=EGO_COLOUR, marker="o", ms=3, label="expert future\n(6 x 0.5 s)"),
        Line2D([], [], color="k", ls="--", lw=1, label="agent futures"),
        Patch(fc=(0.85, 0.05, 0.05), label="sensor hits now"),
        Patch(fc=PAST_HITS, label="hits 0.5-1.5 s ago\n(paler = older)"),
        Patch(fc=(0.75, 0.85, 0.7), ec="0.5", label="seen free space"),
        Patch(fc=(0.62, 0.62, 0.64), label="drivable"),
    ]
    ax.legend(handles=handles, loc="center", fontsize=8, frameon=False)
    ax.axis("off")


def render_frame(
    frame: Frame,
    rig: SensorRig,
    grid: BEVGrid | None = None,
    raster: RasterConfig | None = None,
    dpi: int = 100,
) -> Image.Image:
    """An RGB image of ``frame`` under ``rig``: the scene and every BEV input channel.

    The image is ``FIGSIZE * dpi`` pixels (1400 x 860 at the default 100 dpi).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = grid or BEVGrid()
    raster = raster or RasterConfig()
    bev, targets = build_features(frame, rig, grid, raster)["bev"], map_targets(frame, grid)
    panels = [(name, bev[c]) for c, name in enumerate(input_channel_names(raster.history))]
    panels += [("target: drivable", targets[0]), ("target: lane boundary", targets[1])]

    fig = Figure(figsize=FIGSIZE, dpi=dpi)
    FigureCanvasAgg(fig)
    n_cols = len(panels) // 2 + 1  # one free slot for the legend
    gs = fig.add_gridspec(2, 1 + n_cols, width_ratios=[2.3] + [1] * n_cols)
    _draw_scene(fig.add_subplot(gs[:, 0]), frame, bev, targets, grid)
    _legend(fig.add_subplot(gs[1, n_cols]), frame)
    extent = (grid.y_max, grid.y_min, grid.x_min, grid.x_max)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(gs[i // n_cols, 1 + i % n_cols])
        ax.imshow(img, extent=extent, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"[{i}] {name}" if i < bev.shape[0] else name, fontsize=9)
        ax.tick_params(labelsize=6)
    ego = frame.ego
    fig.suptitle(
        f"{frame.scenario}  |  {frame.frame_id}  |  t = {frame.t:.1f} s  |  "
        f"ego {ego.speed:.1f} m/s ({ego.speed * 3.6:.0f} km/h), offset {ego.lane_offset:+.2f} m"
        f"  |  command: {Command(frame.command).name}  |  rig: {rig.name}",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.05, top=0.92, wspace=0.3, hspace=0.18)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy())
