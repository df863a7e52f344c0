"""Animated GIF of a closed-loop episode: one picture per re-plan, top-down like ``rsd show``.

Forward is up, left is left: road (grey) and lane lines (white) from the frame's lanes, the
agents' boxes in their class colours with ids, the ego in blue, the planner's waypoints (blue
dots), and the model's risk-attention map blended in red where the planner has one. The header
gives scenario, seed, time, speed, command and, on the last picture, the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from rsd.data.targets import map_targets
from rsd.geometry import BEVGrid, box_corners
from rsd.scene import Command, Frame

SCALE = 4
"""Pixels per BEV cell."""
HEADER = 48
FPS = 4
"""Pictures per second of the GIF (re-plans every 0.5 s: twice real time)."""
_CLASS_RGB = {0: (230, 159, 0), 1: (204, 121, 167), 2: (213, 94, 0)}
_EGO_RGB = (0, 114, 178)


def render_step(frame: Frame, plan: Any, grid: Any = None, caption: str = "") -> Image.Image:
    """One picture: ``frame`` (live, ego frame) and ``plan`` (a ``PlanOutput``)."""
    grid = grid or BEVGrid()
    drivable, lines = map_targets(frame, grid)
    rgb = np.full((*grid.shape, 3), 236.0)
    rgb[drivable > 0] = (158, 158, 163)
    risk = getattr(plan, "risk_map", None)
    if risk is not None and risk.shape == grid.shape:
        a = np.clip(risk, 0.0, 1.0)[..., None] * 0.75
        rgb = rgb * (1 - a) + np.array([220.0, 20.0, 60.0]) * a
    rgb[lines > 0] = 255.0
    img = Image.fromarray(rgb.astype(np.uint8)).resize(
        (grid.width * SCALE, grid.height * SCALE), Image.NEAREST
    )
    draw = ImageDraw.Draw(img)  # drawing on the BEV picture clips everything to it

    def px(xy: np.ndarray) -> list[tuple[float, float]]:
        rc = grid.world_to_pixel(np.asarray(xy, dtype=float).reshape(-1, 2)) * SCALE
        return [(float(c), float(r)) for r, c in rc]

    for ag in frame.agents:
        if not grid.contains(np.array([ag.x, ag.y])):
            continue
        corners = box_corners(ag.x, ag.y, ag.yaw, ag.length, ag.width)
        draw.polygon(px(corners), fill=_CLASS_RGB.get(int(ag.cls), (0, 0, 0)), outline=(0, 0, 0))
        ((cx, cy),) = px([[ag.x, ag.y]])
        draw.text((cx + 9, cy - 5), str(ag.id), fill=(0, 0, 0))
    ego = frame.ego
    draw.polygon(px(box_corners(0, 0, 0, ego.length, ego.width)), fill=_EGO_RGB, outline=(0, 0, 0))
    wp = np.vstack([[0.0, 0.0], np.asarray(plan.waypoints, dtype=float).reshape(-1, 2)])
    pts = px(wp)
    draw.line(pts, fill=_EGO_RGB, width=2)
    for x, y in pts[1:]:
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_EGO_RGB, outline=(255, 255, 255))
    canvas = Image.new("RGB", (img.width, img.height + HEADER), (255, 255, 255))
    canvas.paste(img, (0, HEADER))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"{frame.scenario} seed {frame.seed}  t = {frame.t:.1f} s", fill=(0, 0, 0))
    draw.text((4, 17), f"{ego.speed:.1f} m/s  {Command(frame.command).name}", fill=(0, 0, 0))
    if caption:
        draw.text((4, 32), caption, fill=(180, 0, 0))
    return canvas


def write_gif(steps: list[tuple[Frame, Any]], log: Any, path: str | Path, grid: Any = None) -> Path:
    """Write the pictures of ``steps`` ((frame, plan) per re-plan) as a looping GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pics = []
    for i, (frame, plan) in enumerate(steps):
        last = i == len(steps) - 1
        caption = f"outcome: {log.outcome}, route {log.route_completion:.0f}%" if last else ""
        pics.append(render_step(frame, plan, grid, caption))
    if not pics:
        raise ValueError("no pictures to write")
    pics[0].save(
        path,
        save_all=True,
        append_images=pics[1:],
        duration=int(1000 / FPS),
        loop=0,
        optimize=False,
    )
    return path
