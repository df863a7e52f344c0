"""What the intent teacher's signal adds beyond what the baseline already reads (issue 12).

    python benchmarks/probe_teacher_signal.py RUN DATA [--kernel 1] [--steps 300]
        [--max-frames N] [--json OUT.json]

Encodes every keyframe of ``DATA`` with the frozen baseline of ``RUN`` (``model.encode``:
BEV features ``(B, C, Hf, Wf)``) and builds two space-time risk targets per frame, each
max-pooled to the feature grid:

* **intent**: the default privileged teacher (``intent-v2``: the agents' *logged* futures, a
  departure from constant velocity that conflicts with the ego's route counts) painted where
  the logged futures put the agents (:func:`rsd.teacher.risk_map.risk_maps`, the run's
  ``risk_map`` config); read from ``DATA/annotations.sqlite`` when it holds the answers, else
  computed;
* **current**: the same teacher on the *current-state* frame, whose agent futures are the
  constant-velocity extrapolation from now (:func:`rsd.teacher.physics.constant_velocity_frame`):
  what the teacher says from the present alone, which is what it sees of a live frame.

The same teacher, thresholds and painting for both, so the difference is the intent alone
(the ``physics`` teacher would also differ in thresholds and terms). The same probe
(:mod:`rsd.metrics.probe`) is fitted from the features to each target on the training split
and scored on the validation split (episode seed % 5 == 4). Prints one table, target x score
(:func:`rsd.metrics.probe.probe_scores`), over

* all cells (mostly empty road: this reads "where are the cars" as much as "which are risky");
* ``@agents``: the cells some agent's footprint covers at that future step (where the target's
  own futures put it, no halo): which of the cars' cells are risky;
* ``@differ``: the cells both targets call risky left out: this target's own risky cells (what
  it adds over the other) against its safe cells;

and the share of the risky cells where the two teachers disagree.

If the probe reads the current-state risk well but the intent risk clearly worse, the teacher
adds information the baseline's features do not hold; if both read equally well, it adds
little. One thread; ~1-2 minutes on the demo data (1975 frames).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rsd.checkpoint import load_for_eval
from rsd.data.dataset import BEVDataset, collate, split_indices
from rsd.data.store import open_store
from rsd.geometry import BoxField
from rsd.metrics.probe import ProbeConfig, fit_and_predict, paired_auroc_interval, score_targets
from rsd.scene import Frame
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.physics import constant_velocity_frame
from rsd.teacher.privileged import PROMPT_VERSION, TEACHER_ID, PrivilegedTeacher
from rsd.teacher.risk_map import RiskMapConfig, paint_space_time, risk_maps

BATCH = 64
RISKY = 0.3
"""Object risk above which the per-scenario count calls an object risky."""
KEYS = ("features", "intent", "current", "occupied_intent", "occupied_current")
ROWS = ("current", "intent", "current@agents", "intent@agents", "current@differ", "intent@differ")


def _subsample(indices: list[int], n: int | None) -> list[int]:
    """``n`` indices spread evenly over ``indices`` (all of them when ``n`` is None)."""
    if n is None or n >= len(indices):
        return indices
    return [indices[i] for i in np.linspace(0, len(indices) - 1, n).round().astype(int)]


def _cached_intent(data: Path, frame_ids: list[str]) -> dict:
    """The intent teacher's usable cached answers of ``frame_ids`` (empty without a cache)."""
    path = data / CACHE_NAME
    if not path.exists():
        return {}
    with AnnotationCache(path) as cache:
        found = cache.get_many(frame_ids, TEACHER_ID, PROMPT_VERSION)
    return {k: a for k, a in found.items() if a.usable}


def _occupied(frame: Frame, grid, cfg: RiskMapConfig) -> np.ndarray:
    """(T, H, W) float32, 1 on the cells some agent's footprint covers at each future keyframe
    (where ``frame``'s futures put it; no halo): the cells whose risk is in question."""
    agents = sorted(frame.agents, key=lambda a: a.id)
    exact = RiskMapConfig(sigma_m=0.0, time_channels=cfg.time_channels)
    if not agents:
        return np.zeros((exact.channels, *grid.shape), np.float32)
    boxes = np.zeros((len(agents), len(BoxField)))
    for i, a in enumerate(agents):
        boxes[i, : BoxField.YAW + 1] = (a.x, a.y, a.length, a.width, a.height, a.yaw)
    future = np.stack([a.future for a in agents])
    valid = np.stack([a.future_valid for a in agents])
    return paint_space_time(boxes, np.ones(len(agents)), grid, exact, future, valid)


def _encode_split(
    ev, store, indices: list[int], cached: dict, risky: Counter
) -> dict[str, torch.Tensor]:
    """Of the frames ``indices``: ``features`` (N, C, Hf, Wf) and, max-pooled to the feature
    grid, both targets and the agents' footprints under each (``occupied_*``), (N, T, Hf, Wf).
    Counts the objects each teacher calls risky into ``risky[(target, scenario)]``."""
    cfg, teacher = ev.config, PrivilegedTeacher()
    ds = BEVDataset(store, rig=cfg.rig, grid=cfg.grid, raster=cfg.raster, indices=indices)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in KEYS}
    for start in range(0, len(indices), BATCH):
        chunk = range(start, min(start + BATCH, len(indices)))
        with torch.inference_mode():
            f = ev.model.encode(collate([ds[i] for i in chunk])["features"]).float()
        frames = [store[indices[i]] for i in chunk]
        now = [constant_velocity_frame(fr) for fr in frames]
        missing = [fr for fr in frames if fr.frame_id not in cached]
        answers = {**cached, **{a.frame_id: a for a in teacher.assess(missing)}}
        judged = {"intent": [answers[fr.frame_id] for fr in frames], "current": teacher.assess(now)}
        for k, found in judged.items():
            for fr, a in zip(frames, found, strict=True):
                risky[k, fr.scenario] += sum(o.risk > RISKY for o in a.objects)
        seen = {"intent": frames, "current": now}  # where each teacher puts the agents
        maps = {
            **{
                k: [
                    risk_maps(fr, a, cfg.grid, cfg.risk_map)
                    for fr, a in zip(seen[k], judged[k], strict=True)
                ]
                for k in judged
            },
            "occupied_intent": [_occupied(fr, cfg.grid, cfg.risk_map) for fr in frames],
            "occupied_current": [_occupied(fr, cfg.grid, cfg.risk_map) for fr in now],
        }
        for k, v in maps.items():  # max-pooled: a cell is as risky as its riskiest part
            out[k].append(F.adaptive_max_pool2d(torch.from_numpy(np.stack(v)), f.shape[-2:]))
        out["features"].append(f.contiguous())
    return {k: torch.cat(v) for k, v in out.items()}


def _auroc_gap(preds, val, masks, episodes: list[str], threshold: float) -> dict[str, float]:
    """AUROC(intent) - AUROC(current) on the agents' cells, with a 95 % interval from a
    bootstrap over validation episodes (paired: the same draw for both)."""
    _, group = np.unique(episodes, return_inverse=True)
    sides = []
    for k in ("intent", "current"):
        m = masks[k]
        cell_group = torch.from_numpy(group).reshape(-1, 1, 1, 1).expand(m.shape)[m]
        sides.append((preds[k][m].numpy(), (val[k][m] > threshold).numpy(), cell_group.numpy()))
    return paired_auroc_interval(sides[0], sides[1], n_boot=500)


def _table(scores: dict) -> str:
    cols = ("auroc", "balanced_l1", "r2", "positive", "cells")
    head = f"{'target':<18}" + "".join(f"{c:>13}" for c in cols)
    rows = [head, "-" * len(head)]
    for name in ROWS:
        s = scores[name]
        cells = [
            f"{s[c]:>13d}" if c == "cells" else f"{s[c]:>13.3%}" if c == "positive"
            else f"{s[c]:>13.3f}"
            for c in cols
        ]  # fmt: skip
        rows.append(f"{name:<18}" + "".join(cells))
    gap = scores["intent-current@agents"]
    rows.append(
        f"AUROC intent - current on the agents' cells: {gap['diff']:+.3f}"
        f" (95 % interval {gap['lo']:+.3f} .. {gap['hi']:+.3f}, bootstrap over"
        f" {gap['groups']} validation episodes)"
    )
    d = scores["disagreement"]
    rows.append(
        f"risky cells (either target > threshold) where the two disagree: {d['share']:.1%}"
        f" ({d['cells']} cells)"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained baseline run directory")
    parser.add_argument("data", type=Path, help="its dataset directory")
    parser.add_argument("--kernel", type=int, default=1, help="probe convolution (1 or 3)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per probe")
    parser.add_argument("--threshold", type=float, default=0.3, help="risky: target above")
    parser.add_argument("--max-frames", type=int, default=None, help="per split, evenly spread")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ev = load_for_eval(args.run)
    store = open_store(args.data)
    splits = {s: _subsample(split_indices(store, s), args.max_frames) for s in ("train", "val")}
    if not splits["train"] or not splits["val"]:
        sys.exit(f"{args.data}: need frames in both the train and the val split")
    ids = [store.frame_ids[i] for s in splits.values() for i in s]
    cached = _cached_intent(args.data, ids)
    risky: Counter = Counter()
    data = {s: _encode_split(ev, store, idx, cached, risky) for s, idx in splits.items()}
    t1 = time.perf_counter()
    cfg = ProbeConfig(kernel=args.kernel, steps=args.steps, threshold=args.threshold)
    names = ("intent", "current")
    preds = fit_and_predict(
        data["train"]["features"],
        {k: data["train"][k] for k in names},
        data["val"]["features"],
        cfg,
    )
    agents = {k: data["val"][f"occupied_{k}"] > 0.5 for k in names}
    val = {k: data["val"][k] for k in names}
    scores = score_targets(preds, val, cfg.threshold, {"agents": agents})
    episodes = [store.frame_ids[i].rsplit("-", 1)[0] for i in splits["val"]]
    scores["intent-current@agents"] = _auroc_gap(preds, val, agents, episodes, cfg.threshold)
    t2 = time.perf_counter()
    feat = data["val"]["features"]
    print(
        f"run {args.run} ({ev.config.variant}, rig {ev.config.rig}), data {args.data}:"
        f" {len(splits['train'])} train / {len(splits['val'])} val frames; features"
        f" {tuple(feat.shape[1:])}, targets {tuple(data['val']['intent'].shape[1:])}"
        f" (max-pooled); intent answers: {len(cached)} cached, {len(ids) - len(cached)} computed"
    )
    print(
        f"probe: {args.kernel}x{args.kernel} conv, {args.steps} Adam steps, one thread;"
        f" risky = target > {args.threshold}; encode + targets {t1 - t0:.0f} s, probes"
        f" {t2 - t1:.0f} s"
    )
    print(_table(scores))
    scenarios = sorted({sc for _, sc in risky})
    print(
        f"objects with risk > {RISKY}, intent / current, train + val frames: "
        + ", ".join(f"{sc} {risky['intent', sc]} / {risky['current', sc]}" for sc in scenarios)
    )
    scores["risky_objects"] = {f"{k}/{sc}": n for (k, sc), n in sorted(risky.items())}
    if args.json is not None:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        meta = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        tmp.write_text(json.dumps({"args": meta, "scores": scores}, indent=1))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
