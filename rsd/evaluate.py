"""``rsd eval``: open-loop evaluation of a trained run on the held-out split of a dataset.

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
* ``risk`` (models with a RiskHead, when ``DIR`` holds the teacher's answers): student vs
  teacher per-object MAE, Kendall tau-b, top-1 agreement, risk-map L1, and the AUROC of the
  student's risk for agents that come within 2 m of the expert's future (near misses).

Plus meta: ``run``, ``data``, ``rig``, ``train_rig``, ``unseen_rig``, ``split``, ``n_samples``,
``samples_per_s`` (model forward only, at ``batch_size``), ``end_to_end_samples_per_s`` (with
rasterising). Metrics with nothing to average are ``null`` in the JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsd.config import ConfigError
from rsd.pipeline.evaluate_data import open_eval_data, resolve_rig
from rsd.pipeline.files import clean, write_json
from rsd.report.tables import eval_table

PLAN_KEYS = ("ego_future", "ego_future_valid", "ego_size")
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
    outputs: dict[str, torch.Tensor], batch: dict[str, Any], grid: Any
) -> dict[str, np.ndarray]:
    """Per-object student / teacher risk, validity and near-miss labels of one batch's
    ``targets`` (the student's risk read out at the agents on the loss side)."""
    from rsd.losses import student_agent_risk
    from rsd.metrics.risk import near_miss_labels

    b = _numpy(batch, ("agent_mask", "agent_in_grid", "agent_risk", "agent_risk_valid"))
    seen = b["agent_mask"] & b["agent_in_grid"]
    with_teacher = batch["risk_valid"].cpu().numpy()[:, None]
    near = near_miss_labels(
        batch["agent_future"],
        batch["agent_future_valid"],
        batch["agent_boxes"],
        batch["ego_future"],
        batch.get("ego_size"),
        agent_mask=batch["agent_mask"],
        ego_future_valid=batch["ego_future_valid"],
    )
    return {
        "pred": student_agent_risk(outputs, batch, grid).detach().float().cpu().numpy(),
        "teacher": b["agent_risk"],
        "valid": seen & b["agent_risk_valid"] & with_teacher,
        "near_miss": near,
        "near_miss_valid": seen,
    }


def evaluate(
    run_dir: Path,
    data_dir: Path,
    *,
    rig: str | Path | None = None,
    split: str = "val",
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: bool = True,
) -> dict:
    """Open-loop metrics of the model of ``run_dir`` on ``split`` of ``data_dir`` (module doc).

    ``rig``: a built-in rig name or YAML path; default the run's training rig. Returns the
    JSON-ready dict (``nan`` -> ``None``) that ``rsd eval`` writes.
    """
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from rsd.checkpoint import load_for_eval, rig_hash
    from rsd.data.dataset import collate
    from rsd.metrics.detection import detection_metrics, gts_from_targets
    from rsd.metrics.planning import planning_metrics
    from rsd.metrics.risk import risk_map_l1, risk_metrics
    from rsd.models.detection import decode_detections

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
    ds, has_teacher, teacher_note = open_eval_data(data_dir, cfg, sensor_rig, split, max_samples)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)

    plans, plan_in, agent_in, det_preds, det_gts, risk_parts = [], [], [], [], [], []
    map_l1, map_n = 0.0, 0
    model_s, t0 = 0.0, time.perf_counter()
    bar = tqdm(total=len(ds), desc="rsd eval", unit="sample", disable=not progress)
    with torch.inference_mode():
        for batch in loader:
            features, targets = batch["features"], batch["targets"]
            t = time.perf_counter()
            out = model(features)
            model_s += time.perf_counter() - t
            plans.append(out["plan"].float().cpu().numpy())
            plan_in.append(_numpy(targets, PLAN_KEYS))
            agent_in.append(_numpy(targets, AGENT_KEYS))
            if "det_heatmap" in out:
                dets = decode_detections(out, cfg.grid, model.feature_stride)
                det_preds += [{k: v.cpu().numpy() for k, v in d.items()} for d in dets]
                det_gts += gts_from_targets(targets)
            if has_teacher and "risk_logits" in out:
                risk_parts.append(_risk_batch(out, targets, cfg.grid))
                n_valid = int(targets["risk_valid"].sum())
                if n_valid:  # every frame has H x W pixels: weighting by frames is exact
                    valid = targets["risk_valid"]
                    l1 = risk_map_l1(out["risk_map"], targets["risk_map"], None, valid)
                    map_l1, map_n = map_l1 + l1 * n_valid, map_n + n_valid
            bar.update(len(features["bev"]))
    bar.close()
    wall = time.perf_counter() - t0
    n = sum(len(p) for p in plans)

    flat = {k: np.concatenate([p[k] for p in plan_in]) for k in plan_in[0]}
    agents = {k: _cat_padded([a[k] for a in agent_in]) for k in agent_in[0]}
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
        "planning": planning_metrics(
            np.concatenate(plans),
            flat["ego_future"],
            flat["ego_future_valid"],
            agent_boxes=agents["agent_boxes"],
            agent_future=agents["agent_future"],
            agent_future_valid=agents["agent_future_valid"],
            agent_mask=agents["agent_mask"],
            ego_size=flat.get("ego_size"),
        ),
    }
    if det_preds:
        result["detection"] = detection_metrics(det_preds, det_gts)
    if risk_parts:
        r = {k: _cat_padded([p[k] for p in risk_parts]) for k in risk_parts[0]}
        result["risk"] = risk_metrics(
            r["pred"],
            r["teacher"],
            r["valid"],
            near_miss=r["near_miss"],
            near_miss_valid=r["near_miss_valid"],
        )
        result["risk"]["risk_map_l1"] = map_l1 / map_n if map_n else float("nan")
    return clean(result)


# -- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="training run directory (or checkpoint file)")
    parser.add_argument("--data", type=Path, required=True, help="dataset directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--rig", default=None, help="built-in rig name (default: the run's rig)")
    which.add_argument("--rig-file", type=Path, default=None, help="rig YAML file")
    parser.add_argument("--split", default="val", choices=["train", "val"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-samples", type=int, default=None, help="first N samples only")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.rig_file is not None and not args.rig_file.exists():
        raise ConfigError(f"--rig-file {args.rig_file}: no such file")
    result = evaluate(
        args.run_dir,
        args.data,
        rig=args.rig_file if args.rig_file is not None else args.rig,
        split=args.split,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        progress=not args.no_progress,
    )
    write_json(args.out, result)
    print(eval_table(result))
    print(f"metrics: {args.out}")
    return 0
