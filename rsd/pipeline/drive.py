"""Closed-loop driving into a directory: what ``rsd drive``, ``rsd demo`` and
``rsd experiment`` record (``episodes.jsonl`` + ``metrics.json``)."""

from __future__ import annotations

import time
from pathlib import Path

from rsd.data.jsonio import write_json
from rsd.data.rigs import DEFAULT_RIG, load_rig
from rsd.data.store import atomic_write
from rsd.metrics.driving import driving_metrics
from rsd.policy import PlannerSpec, load_planner
from rsd.sim.closed_loop import drive


def rig_of(spec: PlannerSpec) -> str | None:
    """The name of the sensor rig the planner of ``spec`` sees: the given one, else a run's
    own (from its checkpoint) or the untrained planner's default; None for the expert, which
    reads the ground truth."""
    if spec.kind in ("expert", "expert_plan"):
        return None
    if spec.kind == "untrained":
        return load_rig(spec.rig or DEFAULT_RIG).name
    return load_planner(str(spec.run_dir), spec.rig, spec.device).rig.name


def drive_to_dir(
    out: Path,
    scenarios: list[str],
    episodes: int,
    first_seed: int,
    workers: int,
    spec: PlannerSpec,
    videos: dict[str, str] | None = None,
    progress: bool = True,
) -> dict:
    """Drive ``episodes`` seeds from ``first_seed`` of every scenario with the planner of
    ``spec`` (:class:`~rsd.policy.PlannerSpec`) and write ``out/episodes.jsonl`` and
    ``out/metrics.json`` (driving metrics + the settings), both atomically; returns the
    metrics. What ``rsd drive``, ``rsd demo`` and ``rsd experiment`` record."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    logs = drive(scenarios, episodes, first_seed, workers, spec, videos, progress)
    wall = time.perf_counter() - t0
    atomic_write(out / "episodes.jsonl", "".join(log.to_json() + "\n" for log in logs).encode())
    metrics = driving_metrics(logs)
    metrics["settings"] = {
        "planner": spec.kind,
        "run_dir": spec.run_dir,
        "rig": rig_of(spec),
        "replan_s": spec.replan_s,
        "scenarios": scenarios,
        "episodes": episodes,
        "first_seed": first_seed,
        "workers": workers,
        "wall_s": round(wall, 2),
        "episodes_per_minute": round(60.0 * len(logs) / max(wall, 1e-9), 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics
