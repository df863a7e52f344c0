"""What ``rsd report`` reads from run directories, and its numbers: per rig and per variant,
mean +- std over the runs (seeds), and the retention of each run on an unseen rig.

In each run directory:

* ``config.yaml`` (``rsd train``): ``variant`` (baseline / rsd), ``seed``, ``rig``, model kind;
* ``metrics.jsonl``: the training curves (loss terms vs step);
* ``eval*.json`` (``rsd eval``): open-loop metrics, one file per sensor rig;
* ``drive*/**/metrics.json`` (``rsd drive``): closed-loop metrics, and the GIFs beside them
  (captioned by a ``selection.json`` beside them where the experiment chose the episodes).

A run inside an experiment directory (``EXP/runs/<arm>/seed<S>``) is grouped by its arm (arms
share variants: ``rsd_noisy25`` is an ``rsd``); any other run by its config's ``variant``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rsd.config import ConfigError
from rsd.metrics.stats import mean_std, retention
from rsd.report.labels import CLOSED_LOOP, KEPT, OPEN_LOOP, PCT_KEYS, VARIANT_ORDER

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


def experiment_arm(run_dir: Path) -> str | None:
    """The arm of a run directory laid out as ``EXP/runs/<arm>/seed<S>``; None otherwise."""
    run_dir = Path(run_dir).resolve()
    if re.fullmatch(r"seed\d+", run_dir.name) and run_dir.parent.parent.name == "runs":
        return run_dir.parent.name
    return None


def _gifs(drive_dir: Path, variant: str) -> list[tuple[str, str]]:
    """``(caption, path)`` of the GIFs under ``drive_dir``: those a ``selection.json`` names
    (failure first, then success), captioned by it, then any other."""
    sel = _read_json(drive_dir / "videos" / "selection.json") or {}
    chosen = [c for c in sel.get("chosen") or [] if isinstance(c, dict) and c.get("gif")]
    out = []
    for c in chosen:
        path = drive_dir / "videos" / str(c["gif"])
        again = c.get("redriven_outcome")
        note = "" if again in (None, c.get("outcome")) else f", re-driven: {again}"
        caption = f"{variant} · {c.get('kind')}: {c.get('episode')} ({c.get('outcome')}{note})"
        out.append((caption, str(path)))
    named = {p for _, p in out}
    for g in sorted(str(p) for p in drive_dir.rglob("*.gif")):
        if g not in named:
            out.append((f"{variant} · {Path(g).stem}", g))
    return out


def load_drive(drive_dir: Path) -> dict | None:
    """A closed-loop result directory (``metrics.json`` of ``rsd drive``), or None."""
    data = _read_json(Path(drive_dir) / "metrics.json")
    return data if data and "overall" in data else None


def load_run(run_dir: Path) -> dict:
    """What a run directory holds, as one dict (see the module doc)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory")
    cfg: dict = {}
    if (run_dir / "config.yaml").exists():
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    variant = str(cfg.get("variant", "unknown"))
    group = experiment_arm(run_dir) or variant
    evals = []
    for path in sorted(run_dir.glob("eval*.json")):
        data = _read_json(path)
        if data and "planning" in data:
            evals.append({"file": path.name, **data})
    drives = []
    for path in sorted(run_dir.glob("drive*/**/metrics.json")):
        data = load_drive(path.parent)
        if data:
            rig = (data.get("settings") or {}).get("rig") or cfg.get("rig", "?")
            rel = str(path.parent.relative_to(run_dir))
            gifs = _gifs(path.parent, group)
            drives.append({"dir": rel, "rig": rig, "gifs": gifs, **data})
    arm = experiment_arm(run_dir)
    return {
        "name": f"{arm}/{run_dir.name}" if arm else run_dir.name,  # seed0 alone says little
        "path": str(run_dir.resolve()),
        "variant": group,
        "config_variant": variant,
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
    """A metric of an eval JSON; the fractions of :data:`PCT_KEYS` as % (one unit everywhere)."""
    value = (ev.get(group) or {}).get(key) if group else ev.get(key)
    if key in PCT_KEYS and isinstance(value, (int, float)):
        return 100.0 * value
    return value


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


SAME_EPISODES = ("scenarios", "episodes", "first_seed")
"""Settings of ``rsd drive`` that fix which episodes are driven."""


def _expert_cells(expert: dict | None, drives: Sequence[dict]) -> dict | None:
    """The expert's reference numbers for a closed-loop section: ``overall`` and
    ``per_scenario`` values (one drive: no std), and whether it drove the same episodes
    (scenarios, episodes per scenario, first seed) as every drive of the section."""
    if not expert:
        return None
    settings = expert.get("settings") or {}
    same = all(
        all((d.get("settings") or {}).get(k) == settings.get(k) for k in SAME_EPISODES)
        for d in drives
    )
    per = expert.get("per_scenario") or {}
    return {
        "overall": {k: expert["overall"].get(k) for k, _, _ in CLOSED_LOOP},
        "per_scenario": {
            s: {k: (v or {}).get(k) for k in ("driving_score", "success_rate")}
            for s, v in per.items()
        },
        "same_episodes": same,
        "settings": {k: settings.get(k) for k in SAME_EPISODES},
    }


def _closed_loop(
    runs: Sequence[dict], variants: list[str], expert: dict | None = None
) -> list[dict]:
    """Per drive rig: overall metrics, success per skill and DS / SR per scenario, and the
    expert's reference numbers (``expert``: its ``rsd drive`` metrics, or None)."""
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
                "expert": _expert_cells(expert, [d for _, d in entries]),
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


def summarise_runs(runs: Sequence[dict], expert: dict | None = None) -> dict:
    """The report's numbers: per rig (open loop) and per drive rig (closed loop), per variant,
    mean +- std over runs; the retention (ratio) of each metric of :data:`KEPT` on each unseen
    rig; with ``expert`` (the privileged expert's ``rsd drive`` metrics), its reference row in
    every closed-loop section."""
    variants = _variants(runs)
    return {
        "variants": variants,
        "runs": [_slim(r) for r in runs],
        "open_loop": _open_loop(runs, variants),
        "closed_loop": _closed_loop(runs, variants, expert),
    }
