"""Figures of ``rsd report`` (matplotlib, Agg, no display): training curves and risk maps,
returned as PNG bytes so that the page can embed them."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsd.checkpoint import load_for_eval
from rsd.data.dataset import collate
from rsd.data.rigs import resolve_rig
from rsd.geometry import InputChannel, box_corners
from rsd.models import with_full_risk_map
from rsd.tasks import eval_dataset

VARIANT_COLOURS = {"baseline": "#0072b2", "rsd": "#d55e00"}
NOT_TERMS = {"step", "epoch", "lr", "grad_norm", "samples_per_s", "seconds"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def read_curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``term -> [(step, value)]`` from the training lines of a ``metrics.jsonl`` (those with
    ``lr``; the per-epoch lines are skipped). Unreadable lines are ignored."""
    curves: dict[str, list[tuple[int, float]]] = {}
    if not path.exists():
        return curves
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or "lr" not in rec:
            continue
        for k, v in rec.items():
            if k not in NOT_TERMS and isinstance(v, (int, float)) and np.isfinite(v):
                curves.setdefault(k, []).append((int(rec["step"]), float(v)))
    return curves


GRAD_PREFIX = "grad/"
"""Prefix of the per-term gradient norms ``rsd train`` logs (:mod:`rsd.losses.gradnorm`)."""


def curve_terms(runs: Sequence[tuple[str, str, dict]]) -> tuple[list[str], list[str]]:
    """Every loss term (``loss`` first, then in first-seen order) and every gradient-norm key
    (``grad/<term>``) in the curves of ``runs`` (``(label, variant, curves)``): what
    :func:`training_curves` and :func:`gradient_curves` draw, one panel / line each."""
    seen: list[str] = []
    for _, _, curves in runs:
        seen += [t for t in curves if t not in seen]
    losses = sorted((t for t in seen if not t.startswith(GRAD_PREFIX)), key=lambda t: t != "loss")
    return losses, [t for t in seen if t.startswith(GRAD_PREFIX)]


def _log_if_wide(ax: Any, vals: Sequence[float]) -> None:
    if vals and min(vals) > 0 and max(vals) / min(vals) > 20:
        ax.set_yscale("log")
    if ax.get_yscale() == "linear":
        ax.ticklabel_format(axis="y", useOffset=False)


def training_curves(runs: Sequence[tuple[str, str, dict]]) -> bytes | None:
    """One panel per loss term (``loss`` first; every term, RSD's ``distill_*``, ``traj_nll``,
    ``traj_risk_mass`` included), one line per run coloured by variant.

    ``runs``: ``(label, variant, curves)`` with curves from :func:`read_curves`."""
    from matplotlib.figure import Figure

    terms, _ = curve_terms(runs)
    if not terms:
        return None
    cols = min(4, len(terms))
    rows = -(-len(terms) // cols)
    fig = Figure(figsize=(3.4 * cols, 2.5 * rows + 0.4))
    styles = ["-", "--", ":", "-."]
    for i, term in enumerate(terms):
        ax = fig.add_subplot(rows, cols, i + 1)
        seen: dict[str, int] = {}
        for label, variant, curves in runs:
            if term not in curves:
                continue
            n = seen[variant] = seen.get(variant, -1) + 1
            steps, values = zip(*curves[term], strict=True)
            colour = VARIANT_COLOURS.get(variant, "0.4")
            ax.plot(steps, values, styles[n % 4], color=colour, lw=1.3, label=label)
        _log_if_wide(ax, [v for _, _, c in runs for _, v in c.get(term, [])])
        ax.set_title(term, fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.supxlabel("optimiser step", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def gradient_curves(runs: Sequence[tuple[str, str, dict]]) -> bytes | None:
    """The gradient norm of every weighted loss term (``grad/<term>``), one panel per variant,
    one line per term (the same colour in every panel; seeds of a variant as line styles), log
    scale: which terms actually move the weights. None when no run logged any."""
    from matplotlib.figure import Figure

    _, grads = curve_terms(runs)
    if not grads:
        return None
    variants = list(dict.fromkeys(v for _, v, c in runs if any(g in c for g in grads)))
    cols = min(3, len(variants))
    rows = -(-len(variants) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.2 * rows + 0.6))
    palette = [f"C{i % 10}" for i in range(len(grads))]
    styles = ["-", "--", ":", "-."]
    for i, variant in enumerate(variants):
        ax = fig.add_subplot(rows, cols, i + 1)
        members = [(label, c) for label, v, c in runs if v == variant]
        for n, (_, curves) in enumerate(members):
            for colour, g in zip(palette, grads, strict=True):
                if g not in curves:
                    continue
                steps, values = zip(*curves[g], strict=True)
                label = g[len(GRAD_PREFIX) :] if n == 0 else None
                ax.plot(steps, values, styles[n % 4], color=colour, lw=1.2, label=label)
        _log_if_wide(ax, [v for _, c in members for g in grads for _, v in c.get(g, [])])
        ax.set_title(f"{variant}: gradient norm per term", fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.supxlabel("optimiser step", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _bev_rgb(bev: np.ndarray) -> np.ndarray:
    """(H, W, 3) picture of a ``bev`` input (C, H, W): road grey, lines white, seen free space
    green, sensor hits now red (older hits darker red)."""
    rgb = np.full((*bev.shape[1:], 3), 0.95)
    rgb[bev[InputChannel.DRIVABLE] > 0] = (0.62, 0.62, 0.64)
    seen = bev[InputChannel.VISIBLE] > 0
    rgb[seen] = rgb[seen] * 0.7 + np.array([0.55, 0.85, 0.55]) * 0.3
    rgb[bev[InputChannel.LANE_LINES] > 0] = (1.0, 1.0, 1.0)
    for k in range(bev.shape[0] - 1, InputChannel.HITS - 1, -1):
        rgb[bev[k] > 0] = (0.85, 0.05, 0.05) if k == InputChannel.HITS else (0.5, 0.2, 0.2)
    return rgb


def _boxes(ax: Any, boxes: np.ndarray, colour: str) -> None:
    from matplotlib.patches import Polygon

    for b in boxes:
        corners = box_corners(b[0], b[1], b[5], b[2], b[3])
        ax.add_patch(Polygon(corners[:, ::-1], closed=True, fill=False, ec=colour, lw=0.9))
    ego = box_corners(0.0, 0.0, 0.0, 4.084, 1.85)
    ax.add_patch(Polygon(ego[:, ::-1], closed=True, fc="#0072b2", ec="k", lw=0.8))


def risk_examples(run_dir: Path, data_dir: Path, n: int = 3, scan: int = 48) -> bytes | None:
    """BEV input, teacher risk map and student risk map for the ``n`` val frames with the
    highest teacher risk among ``scan`` spread evenly over the split; None when the run has no
    RiskHead or the data has no teacher answers."""
    from matplotlib.figure import Figure

    ev = load_for_eval(run_dir)
    cfg = ev.config
    ds, has_teacher, _ = eval_dataset(data_dir, cfg, resolve_rig(None, cfg.rig), "val", None)
    if not has_teacher:
        return None
    stride = max(len(ds) // scan, 1)  # spread over the split: neighbouring keyframes look alike
    samples = [ds[i] for i in range(0, len(ds), stride)]
    samples.sort(key=lambda s: -float(s["targets"]["risk_map"].max()))
    samples = samples[:n]
    batch = collate(samples)
    with torch.inference_mode():
        out = with_full_risk_map(ev.model(batch["features"]), cfg.grid.shape)
    if "risk_map" not in out:
        return None
    g = cfg.grid
    extent = (g.y_max, g.y_min, g.x_min, g.x_max)
    ph = 3.6  # panel height (in); panels keep the grid's metres-per-inch in both directions
    pw = max(ph * (g.y_max - g.y_min) / (g.x_max - g.x_min), 1.2)
    fig = Figure(figsize=(3 * len(samples) * pw + 1.6, ph + 1.1), layout="constrained")
    titles = ("input", "teacher", "student")
    risk_axes, im = [], None
    for r, s in enumerate(samples):
        mask = batch["targets"]["agent_mask"][r].numpy()
        boxes = batch["targets"]["agent_boxes"][r].numpy()[mask]
        bev, teacher = s["features"]["bev"].numpy(), s["targets"]["risk_map"][0].numpy()
        pics = [_bev_rgb(bev), teacher, out["risk_map"][r, 0].numpy()]
        for c, pic in enumerate(pics):
            ax = fig.add_subplot(1, 3 * len(samples), 3 * r + c + 1)
            kw = {} if c == 0 else {"cmap": "inferno", "vmin": 0.0, "vmax": 1.0}
            shown = ax.imshow(pic, extent=extent, interpolation="nearest", **kw)
            _boxes(ax, boxes, "k" if c == 0 else "#56b4e9")
            ax.set_xlim(g.y_max, g.y_min)
            ax.set_ylim(g.x_min, g.x_max)
            ax.tick_params(labelsize=6)
            ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{s['frame_id']}\nx (m)", fontsize=8)
            else:
                ax.set_yticklabels([])
                risk_axes.append(ax)
                im = shown
    fig.colorbar(im, ax=risk_axes, fraction=0.02, pad=0.01, label="risk")
    fig.suptitle(f"rig {cfg.rig}: BEV input | teacher risk target | student RiskHead", fontsize=10)
    return _png(fig)
