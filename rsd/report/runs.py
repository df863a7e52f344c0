"""What ``rsd report`` reads from run directories, and its numbers: per rig and per variant,
mean +- std over the runs (seeds), and the retention of each run on an unseen rig.

In each run directory:

* ``config.yaml`` (``rsd train``): ``variant`` (baseline / rsd), ``seed``, ``rig``, model kind;
* ``metrics.jsonl``: the training curves (loss terms vs step);
* ``eval*.json`` (``rsd eval``): open-loop metrics, one file per sensor rig;
* ``drive*/**/metrics.json`` (``rsd drive``): closed-loop metrics, and the GIFs beside them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rsd.config import ConfigError
from rsd.metrics.stats import mean_std, retention
from rsd.report.labels import CLOSED_LOOP, KEPT, OPEN_LOOP, VARIANT_ORDER

EVAL_KEPT_KEYS = (
    "file",
    "rig",
    "unseen_rig",
    "n_samples",
    "samples_per_s",
    "planning",
    "detection",
    "risk",
)
"""What ``summary.json`` keeps of each eval JSON."""


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_run(run_dir: Path) -> dict:
    """What a run directory holds, as one dict (see the module doc)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory")
    cfg: dict = {}
    if (run_dir / "config.yaml").exists():
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    evals = []
    for path in sorted(run_dir.glob("eval*.json")):
        data = _read_json(path)
        if data and "planning" in data:
            evals.append({"file": path.name, **data})
    drives = []
    for path in sorted(run_dir.glob("drive*/**/metrics.json")):
        data = _read_json(path)
        if data and "overall" in data:
            rig = (data.get("settings") or {}).get("rig") or cfg.get("rig", "?")
            rel = str(path.parent.relative_to(run_dir))
            gifs = sorted(str(p) for p in path.parent.rglob("*.gif"))
            drives.append({"dir": rel, "rig": rig, "gifs": gifs, **data})
    return {
        "name": run_dir.name,
        "path": str(run_dir.resolve()),
        "variant": str(cfg.get("variant", "unknown")),
        "seed": cfg.get("seed"),
        "rig": cfg.get("rig", "?"),
        "model": (cfg.get("model") or {}).get("kind", "?"),
        "evals": evals,
        "drives": drives,
    }


def stat_cell(values: Sequence[float | None]) -> dict:
    """``{"mean", "std", "n", "values"}`` over the finite values (:func:`rsd.metrics.stats.
    mean_std`: std with n - 1); None where undefined, ``values`` as given."""
    mean, std, n = mean_std(values)
    return {
        "mean": None if math.isnan(mean) else mean,
        "std": None if math.isnan(std) else std,
        "n": n,
        "values": list(values),
    }


def _variants(runs: Sequence[dict]) -> list[str]:
    found = {r["variant"] for r in runs}
    return [v for v in VARIANT_ORDER if v in found] + sorted(found - set(VARIANT_ORDER))


def _get(ev: dict, group: str, key: str) -> float | None:
    return (ev.get(group) or {}).get(key) if group else ev.get(key)


def _eval_values(runs, variant, rig, group, key) -> list[float | None]:
    """The metric of every eval of ``variant``'s runs on ``rig`` (one per run, in run order)."""
    evals = [ev for r in runs if r["variant"] == variant for ev in r["evals"] if ev["rig"] == rig]
    return [_get(ev, group, key) for ev in evals]


def _run_retention(runs, variant, rig, group, key, lower) -> list[float | None]:
    """Per run of ``variant``: the retention (ratio) of ``key`` on ``rig`` against the run's
    training-rig eval; None where it cannot be computed."""
    out = []
    for r in runs:
        if r["variant"] != variant:
            continue
        train = [ev for ev in r["evals"] if not ev.get("unseen_rig")]
        unseen = [ev for ev in r["evals"] if ev["rig"] == rig]
        if train and unseen:
            kept = retention(_get(train[0], group, key), _get(unseen[0], group, key), lower)
            out.append(None if math.isnan(kept) else kept)
    return out


def _open_loop(runs: Sequence[dict], variants: list[str]) -> list[dict]:
    """Per eval rig (training rigs first): the metrics and, on an unseen rig, the retentions."""
    lower = {key: lo for _, key, _, lo in OPEN_LOOP}
    group_of = {key: g for g, key, _, _ in OPEN_LOOP}
    rigs: dict[str, bool] = {}
    for r in runs:
        for ev in r["evals"]:
            rigs[ev["rig"]] = rigs.get(ev["rig"], False) or not ev.get("unseen_rig", False)
    sections = []
    for rig, training in sorted(rigs.items(), key=lambda kv: (not kv[1], kv[0])):
        table = {
            key: {v: stat_cell(_eval_values(runs, v, rig, group, key)) for v in variants}
            for group, key, _, _ in OPEN_LOOP
        }
        kept = {}
        if not training:
            kept = {
                key: {
                    v: stat_cell(_run_retention(runs, v, rig, group_of[key], key, lower[key]))
                    for v in variants
                }
                for key in KEPT
            }
        sections.append({"rig": rig, "training_rig": training, "metrics": table, "kept": kept})
    return sections


def _over(by_variant: dict[str, list[dict]], value: Callable[[dict], Any]) -> dict:
    """``{variant: stat_cell(value(d) for each drive result d of the variant)}``."""
    return {v: stat_cell([value(d) for d in ds]) for v, ds in by_variant.items()}


def _closed_loop(runs: Sequence[dict], variants: list[str]) -> list[dict]:
    """Per drive rig: overall metrics, success per skill and DS / SR per scenario."""
    closed: dict[str, list] = {}
    for r in runs:
        for d in r["drives"]:
            closed.setdefault(d["rig"], []).append((r["variant"], d))
    sections = []
    for rig, entries in closed.items():
        by_v = {v: [d for vv, d in entries if vv == v] for v in variants}
        skills = sorted({s for _, d in entries for s in d.get("multi_ability", {})})
        scenarios = sorted({s for _, d in entries for s in d.get("per_scenario", {})})
        sections.append(
            {
                "rig": rig,
                "overall": {
                    k: _over(by_v, lambda d, k=k: d["overall"].get(k)) for k, _, _ in CLOSED_LOOP
                },
                "per_skill_success": {
                    s: _over(by_v, lambda d, s=s: d["multi_ability"].get(s)) for s in skills
                },
                "per_scenario": {
                    s: {
                        k: _over(by_v, lambda d, s=s, k=k: (d["per_scenario"].get(s) or {}).get(k))
                        for k in ("driving_score", "success_rate")
                    }
                    for s in scenarios
                },
            }
        )
    return sections


def _slim(run: dict) -> dict:
    """A run as ``summary.json`` lists it: meta, and the headline parts of its results."""
    slim = {k: v for k, v in run.items() if k not in ("evals", "drives")}
    slim["evals"] = [{k: ev.get(k) for k in EVAL_KEPT_KEYS} for ev in run["evals"]]
    slim["drives"] = [
        {k: d.get(k) for k in ("dir", "rig", "overall", "multi_ability")} for d in run["drives"]
    ]
    return slim


def summarise_runs(runs: Sequence[dict]) -> dict:
    """The report's numbers: per rig (open loop) and per drive rig (closed loop), per variant,
    mean +- std over runs; plus the retention (ratio) of each metric of :data:`KEPT` on each
    unseen rig."""
    variants = _variants(runs)
    return {
        "variants": variants,
        "runs": [_slim(r) for r in runs],
        "open_loop": _open_loop(runs, variants),
        "closed_loop": _closed_loop(runs, variants),
    }
