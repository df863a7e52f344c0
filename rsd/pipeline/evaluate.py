"""Open-loop evaluation (``rsd eval``) of a trained run on the held-out split of a dataset.

    rsd eval RUN --data DIR --out RUN/eval.json
    rsd eval RUN --data DIR --rig front_short --out RUN/eval_front_short.json
    rsd eval RUN --data DIR --rig-file my_rig.yaml --out RUN/eval_my_rig.json

The model of ``RUN`` (:func:`rsd.checkpoint.load_for_eval`: safetensors + JSON, nothing
unpickled) runs over the ``val`` split of ``DIR`` (by episode, :func:`rsd.data.dataset.split_of`)
rasterised under the run's sensor rig, or under another rig on purpose: rigs change what is
drawn into the input channels, never their layout, so evaluating on a rig the model never saw
measures how much it keeps on an unfamiliar sensor configuration.

Metrics (definitions in :mod:`rsd.metrics` and ``shared/facts.md``), computed over the whole
split at once (no average of per-batch averages):

* ``planning``: L2 in the VAD (running average) and UniAD (per step) conventions, ADE, FDE and
  the VAD collision rate (:func:`rsd.metrics.planning.planning_metrics`);
* ``detection`` (models with a detection head): nuScenes-style mAP, mATE, mASE, mAOE, mAVE,
  NDS and per-class entries (:func:`rsd.metrics.detection.detection_metrics`);
* ``plan_score``: a navsim-style PDM score of every frame's plan against the logged agent
  futures (:func:`rsd.metrics.plan_score.plan_scores`): ``pdm_score`` and its sub-scores
  ``pdm_nc``, ``pdm_dac``, ``pdm_ttc``, ``pdm_ep``, ``pdm_comfort`` over all scored frames
  (``pdm_frames``), and the same with the suffix ``_events`` over the frames within 3 s of a
  scripted brake or cut-in or a merge / crossing conflict
  (:func:`rsd.metrics.events.is_event_frame`, :func:`~rsd.metrics.events.event_windows`);
* ``risk`` (models with a RiskHead, when ``DIR`` holds the teacher's answers): student vs
  teacher per-object MAE, Kendall tau-b, top-1 agreement, risk-map L1, and the AUROC of the
  student's risk for agents that come within 2 m of the expert's future (near misses).

Plus meta: ``run``, ``data``, ``rig``, ``train_rig``, ``unseen_rig``, ``split``, ``n_samples``,
``samples_per_s`` (model forward only, at ``batch_size``), ``end_to_end_samples_per_s`` (with
rasterising). Metrics with nothing to average are ``null`` in the JSON.

Per-frame values (what ``rsd compare`` pairs arms on) go to an ``.npz`` beside the JSON
(:func:`per_frame_path`): ``frame_id``, ``episode`` (``scenario-seed``), ``in_event_window``,
``ade`` and ``fde`` (m) and the plan score with its sub-scores (NaN where a frame is not scored).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from rsd.checkpoint import load_for_eval, rig_hash
from rsd.config import ConfigError
from rsd.data.dataset import collate
from rsd.data.jsonio import atomic_write, clean
from rsd.data.rigs import resolve_rig
from rsd.data.store import open_store
from rsd.geometry import BEVGrid, EgoStatusField, TargetChannel
from rsd.losses import student_agent_risk
from rsd.metrics.detection import detection_metrics, gts_from_targets
from rsd.metrics.events import event_windows, is_event_frame
from rsd.metrics.plan_score import SUB_SCORES, plan_scores, summarise_plan_scores
from rsd.metrics.planning import planning_metrics
from rsd.metrics.risk import near_miss_labels, risk_map_l1, risk_metrics
from rsd.models import with_full_risk_map
from rsd.models.detection import decode_detections
from rsd.scene import class_names
from rsd.tasks import eval_dataset

PLAN_KEYS = ("ego_future", "ego_future_valid", "ego_size")
PER_FRAME_SUFFIX = ".frames.npz"
EVENT_WINDOW_S = 3.0
"""Frames within this many seconds of an event frame of their episode are in its window."""


def per_frame_path(json_path: Path) -> Path:
    """Where the per-frame values of the evaluation written to ``json_path`` go:
    ``eval_x.json`` -> ``eval_x.frames.npz``."""
    return Path(json_path).with_suffix(PER_FRAME_SUFFIX)


def _frame_scores(
    out: dict[str, torch.Tensor], targets: dict[str, Any], features: dict[str, Any], grid: BEVGrid
) -> dict[str, np.ndarray]:
    """Per-frame plan score (:func:`plan_scores`), ADE and FDE (m) of one batch."""
    t = {k: v.detach().cpu().numpy() for k, v in targets.items() if hasattr(v, "detach")}
    plan = out["plan"].detach().float().cpu().numpy()
    scores = plan_scores(
        plan,
        t["ego_future"],
        t["ego_future_valid"],
        t["agent_boxes"],
        t["agent_future"],
        t["agent_future_valid"],
        t["agent_mask"],
        t["target_maps"][:, TargetChannel.DRIVABLE],
        grid,
        ego_size=t["ego_size"],
        ego_speed=features["ego_status"][:, EgoStatusField.SPEED].cpu().numpy(),
        ego_past=t["ego_past"],
        ego_past_valid=t["ego_past_valid"],
    )
    err = np.linalg.norm(plan[..., :2] - t["ego_future"][..., :2], axis=-1)
    valid = t["ego_future_valid"]
    n_valid = valid.sum(1)
    ade = np.where(n_valid > 0, (err * valid).sum(1) / np.maximum(n_valid, 1), np.nan)
    fde = np.where(valid[:, -1], err[:, -1], np.nan)
    return {k: v for k, v in scores.items() if k != "valid"} | {"ade": ade, "fde": fde}


AGENT_KEYS = ("agent_boxes", "agent_future", "agent_future_valid", "agent_mask")


def _numpy(batch: dict[str, Any], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {k: batch[k].detach().cpu().numpy() for k in keys if k in batch}


def _cat_padded(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate (B, K, ...) arrays along B, padding K (axis 1) with zeros / False."""
    k = max(p.shape[1] for p in parts)
    out = []
    for p in parts:
        pad = [(0, 0)] * p.ndim
        pad[1] = (0, k - p.shape[1])
        out.append(np.pad(p, pad))
    return np.concatenate(out)


def _risk_batch(
    outputs: dict[str, torch.Tensor], targets: dict[str, Any], grid: BEVGrid
) -> dict[str, np.ndarray]:
    """Per-object student / teacher risk, validity and near-miss labels of one batch's
    ``targets`` (the student's risk read out at the agents on the loss side)."""
    b = _numpy(targets, ("agent_mask", "agent_in_grid", "agent_risk", "agent_risk_valid"))
    seen = b["agent_mask"] & b["agent_in_grid"]
    with_teacher = targets["risk_valid"].cpu().numpy()[:, None]
    near = near_miss_labels(
        targets["agent_future"],
        targets["agent_future_valid"],
        targets["agent_boxes"],
        targets["ego_future"],
        targets.get("ego_size"),
        agent_mask=targets["agent_mask"],
        ego_future_valid=targets["ego_future_valid"],
    )
    return {
        "pred": student_agent_risk(outputs, targets, grid).detach().float().cpu().numpy(),
        "teacher": b["agent_risk"],
        "valid": seen & b["agent_risk_valid"] & with_teacher,
        "near_miss": near,
        "near_miss_valid": seen,
    }


class _Collector:
    """What the metrics need of every batch, kept until the whole split is seen (metrics
    over the split at once, no average of per-batch averages)."""

    def __init__(
        self, grid: BEVGrid, feature_stride: int, with_risk: bool, classes: tuple[str, ...]
    ) -> None:
        self.grid, self.stride, self.with_risk = grid, feature_stride, with_risk
        self.classes = classes
        """Detection classes: the model's (``class_names(backbone.n_classes)``)."""
        self.plans: list[np.ndarray] = []
        self.plan_in: list[dict] = []
        self.agent_in: list[dict] = []
        self.det_preds: list[dict] = []
        self.det_gts: list[dict] = []
        self.risk_parts: list[dict] = []
        self.map_l1, self.map_n = 0.0, 0
        self.frame_ids: list[str] = []
        self.per_frame: list[dict[str, np.ndarray]] = []

    def add(
        self,
        out: dict[str, torch.Tensor],
        targets: dict[str, Any],
        features: dict[str, Any],
        frame_ids: list[str],
    ) -> None:
        self.frame_ids += list(frame_ids)
        self.per_frame.append(_frame_scores(out, targets, features, self.grid))
        self.plans.append(out["plan"].float().cpu().numpy())
        self.plan_in.append(_numpy(targets, PLAN_KEYS))
        self.agent_in.append(_numpy(targets, AGENT_KEYS))
        if "det_heatmap" in out:
            dets = decode_detections(out, self.grid, self.stride)
            self.det_preds += [{k: v.cpu().numpy() for k, v in d.items()} for d in dets]
            self.det_gts += gts_from_targets(targets)
        if self.with_risk and "risk_logits" in out:
            self.risk_parts.append(_risk_batch(out, targets, self.grid))
            n_valid = int(targets["risk_valid"].sum())
            if n_valid:  # every frame has H x W pixels: weighting by frames is exact
                valid = targets["risk_valid"]
                l1 = risk_map_l1(out["risk_map"], targets["risk_map"], None, valid)
                self.map_l1, self.map_n = self.map_l1 + l1 * n_valid, self.map_n + n_valid

    @property
    def n_samples(self) -> int:
        return sum(len(p) for p in self.plans)

    def planning(self) -> dict[str, float]:
        flat = {k: np.concatenate([p[k] for p in self.plan_in]) for k in self.plan_in[0]}
        agents = {k: _cat_padded([a[k] for a in self.agent_in]) for k in self.agent_in[0]}
        return planning_metrics(
            np.concatenate(self.plans),
            flat["ego_future"],
            flat["ego_future_valid"],
            agent_boxes=agents["agent_boxes"],
            agent_future=agents["agent_future"],
            agent_future_valid=agents["agent_future_valid"],
            agent_mask=agents["agent_mask"],
            ego_size=flat.get("ego_size"),
        )

    def frames(self, data_dir: Path) -> dict[str, np.ndarray]:
        """Every frame's values (:func:`_frame_scores`), ``frame_id``, ``episode`` and
        ``in_event_window`` (frames of ``data_dir`` read again for their events)."""
        per = {k: np.concatenate([p[k] for p in self.per_frame]) for k in self.per_frame[0]}
        store = open_store(data_dir)
        frames = [store[store.index_of(f)] for f in self.frame_ids]
        episode = np.array([f"{f.scenario}-{f.seed:05d}" for f in frames])
        is_event = [is_event_frame(f) for f in frames]
        window = event_windows(episode, [f.t for f in frames], is_event, EVENT_WINDOW_S)
        ids = np.array(self.frame_ids)
        return per | {"frame_id": ids, "episode": episode, "in_event_window": window}

    def metrics(self, per_frame: dict[str, np.ndarray]) -> dict[str, Any]:
        """``planning``, ``plan_score``, and ``detection`` / ``risk`` where the model has those
        heads."""
        scores = {k: per_frame[k] for k in ("pdm_score", *SUB_SCORES)}
        scores["valid"] = ~np.isnan(per_frame["pdm_score"])
        window = per_frame["in_event_window"]
        events = summarise_plan_scores(scores, window, "_events")
        plan_score = summarise_plan_scores(scores) | events
        res: dict[str, Any] = {"planning": self.planning(), "plan_score": plan_score}
        if self.det_preds:
            res["detection"] = detection_metrics(self.det_preds, self.det_gts, self.classes)
        if self.risk_parts:
            r = {k: _cat_padded([p[k] for p in self.risk_parts]) for k in self.risk_parts[0]}
            res["risk"] = risk_metrics(
                r["pred"],
                r["teacher"],
                r["valid"],
                near_miss=r["near_miss"],
                near_miss_valid=r["near_miss_valid"],
            )
            res["risk"]["risk_map_l1"] = self.map_l1 / self.map_n if self.map_n else float("nan")
        return res


def evaluate(
    run_dir: Path,
    data_dir: Path,
    *,
    rig: str | Path | None = None,
    split: str = "val",
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: bool = True,
    per_frame_out: Path | None = None,
) -> dict:
    """Open-loop metrics of the model of ``run_dir`` on ``split`` of ``data_dir`` (module doc).

    ``rig``: a built-in rig name or YAML path; default the run's training rig. Returns the
    JSON-ready dict (``nan`` -> ``None``) that ``rsd eval`` writes; ``per_frame_out``: where to
    write the per-frame values (module doc), atomically.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected >= 1, got {batch_size}")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples: expected >= 1 or None, got {max_samples}")
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such run directory or checkpoint")
    ev = load_for_eval(run_dir)  # no expect_rig: another rig is the point of the exercise
    cfg, model = ev.config, ev.model
    sensor_rig = resolve_rig(rig, cfg.rig)
    ds, has_teacher, teacher_note = eval_dataset(data_dir, cfg, sensor_rig, split, max_samples)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    classes = class_names(cfg.model.backbone.n_classes)
    seen = _Collector(cfg.grid, model.feature_stride, has_teacher, classes)
    model_s, t0 = 0.0, time.perf_counter()
    bar = tqdm(total=len(ds), desc="rsd eval", unit="sample", disable=not progress)
    with torch.inference_mode():
        for batch in loader:
            t = time.perf_counter()
            out = with_full_risk_map(model(batch["features"]), cfg.grid.shape)
            model_s += time.perf_counter() - t
            seen.add(out, batch["targets"], batch["features"], batch["frame_id"])
            bar.update(len(batch["features"]["bev"]))
    bar.close()
    wall, n = time.perf_counter() - t0, seen.n_samples
    result: dict[str, Any] = {
        "run": str(run_dir),
        "data": str(data_dir.resolve()),
        "split": split,
        "rig": sensor_rig.name,
        "rig_hash": rig_hash(sensor_rig),
        "train_rig": ev.meta["rig"]["name"],
        "unseen_rig": rig_hash(sensor_rig) != ev.meta["rig"]["hash"],
        "variant": cfg.variant,
        "seed": cfg.seed,
        "model": cfg.model.kind,
        "step": ev.meta.get("step"),
        "n_samples": n,
        "batch_size": batch_size,
        "samples_per_s": n / max(model_s, 1e-9),
        "end_to_end_samples_per_s": n / max(wall, 1e-9),
        "wall_s": wall,
        "teacher": teacher_note,
    }
    per_frame = seen.frames(data_dir)
    if per_frame_out is not None:
        buf = io.BytesIO()
        np.savez(buf, **per_frame)
        Path(per_frame_out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(per_frame_out, buf.getvalue())
    result |= seen.metrics(per_frame)
    result["warnings"] = risk_warnings(result.get("risk") or {})
    return clean(result)


def risk_warnings(risk: dict[str, Any]) -> list[str]:
    """Plain-language warnings about the student's risk (shown by ``rsd eval`` and kept in its
    JSON): a collapsed map (:func:`rsd.metrics.risk.risk_collapse`)."""
    if risk.get("risk_collapsed") != 1.0:
        return []
    s, t = risk["student_risk_on_risky"], risk["teacher_risk_on_risky"]
    return [
        f"the student's risk map has collapsed: mean risk {s:.3g} on the objects the teacher"
        f" rates risky (teacher: {t:.2f}); its rank agreement and map L1 mean little"
    ]
