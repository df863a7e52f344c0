"""Closed-loop driving into a directory: what ``rsd drive``, ``rsd demo`` and
``rsd experiment`` record (``episodes.jsonl`` + ``metrics.json``); and the experiment's
references: the privileged expert driven once on the same scenario seeds
(``OUT/expert/drive``), and per arm the GIFs of the first failure and the first success of the
first seed's episodes (``drive/videos/``, with ``selection.json``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

from rsd.data.jsonio import read_json, write_json
from rsd.data.rigs import DEFAULT_RIG, load_rig
from rsd.data.store import atomic_write
from rsd.metrics.driving import driving_metrics
from rsd.pipeline.layout import ExperimentLayout
from rsd.pipeline.stages import Stage
from rsd.policy import PlannerSpec, load_planner
from rsd.sim.closed_loop import drive
from rsd.sim.episode_log import EpisodeLog
from rsd.sim.spec import load_scenario

EXPERT_DRIVE = Path("expert") / "drive"
"""Where an experiment keeps the expert's closed-loop reference (relative to its directory)."""
VIDEOS = "videos"
SELECTION = "selection.json"


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
    route_cache: str | None = None,
) -> dict:
    """Drive ``episodes`` seeds from ``first_seed`` of every scenario with the planner of
    ``spec`` (:class:`~rsd.policy.PlannerSpec`) and write ``out/episodes.jsonl`` and
    ``out/metrics.json`` (driving metrics + the settings), both atomically; returns the
    metrics. What ``rsd drive``, ``rsd demo`` and ``rsd experiment`` record. ``route_cache``:
    where the expert's reference routes are kept (:mod:`rsd.sim.route_cache`)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    logs = drive(scenarios, episodes, first_seed, workers, spec, videos, progress, route_cache)
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


def read_logs(path: Path) -> list[EpisodeLog]:
    """The episode logs of an ``episodes.jsonl``."""
    return [EpisodeLog.from_json(line) for line in Path(path).read_text().splitlines() if line]


def select_episodes(logs: Sequence[EpisodeLog]) -> list[tuple[str, EpisodeLog]]:
    """``[("failure", log), ("success", log)]``: the first episode (in the logs' order,
    scenario then seed) that did not end in ``success`` and the first that did; a kind with no
    such episode is left out. Deterministic: the same logs give the same choice."""
    failure = next((lg for lg in logs if lg.outcome != "success"), None)
    success = next((lg for lg in logs if lg.outcome == "success"), None)
    return [(k, lg) for k, lg in (("failure", failure), ("success", success)) if lg is not None]


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def videos_done(drive_dir: Path) -> bool:
    """Whether ``drive_dir/videos`` holds the GIFs chosen from the current ``episodes.jsonl``."""
    sel = read_json(drive_dir / VIDEOS / SELECTION)
    episodes = drive_dir / "episodes.jsonl"
    if not sel or not episodes.exists() or sel.get("episodes_sha256") != _digest(episodes):
        return False
    return all((drive_dir / VIDEOS / c["gif"]).exists() for c in sel.get("chosen", []))


def record_videos(
    drive_dir: Path, scenarios: Sequence[str], spec: PlannerSpec, progress: bool = False
) -> list[dict]:
    """Re-drive the episodes :func:`select_episodes` picks from ``drive_dir/episodes.jsonl``
    (one each, with video on; nothing else is driven again) into
    ``drive_dir/videos/<kind>-<episode>.gif``, and write ``selection.json`` (the choice, each
    episode's recorded outcome and the re-driven one, which differs only if the planner is not
    deterministic; the digest of the episodes it was chosen from). ``scenarios``: the names or
    YAML paths the episodes were driven from. Returns the chosen entries."""
    episodes = drive_dir / "episodes.jsonl"
    by_name = {load_scenario(s).name: s for s in scenarios}
    out = drive_dir / VIDEOS
    out.mkdir(parents=True, exist_ok=True)
    chosen = []
    for kind, log in select_episodes(read_logs(episodes)):
        gif = f"{kind}-{log.episode_id}.gif"
        scenario = by_name.get(log.scenario, log.scenario)
        again = drive([scenario], 1, log.seed, 1, spec, {log.episode_id: str(out / gif)}, progress)
        chosen.append(
            {
                "kind": kind,
                "episode": log.episode_id,
                "outcome": log.outcome,
                "redriven_outcome": again[0].outcome,
                "gif": gif,
            }
        )
    write_json(out / SELECTION, {"episodes_sha256": _digest(episodes), "chosen": chosen})
    return chosen


def reference_stages(
    layout: ExperimentLayout, arms: Sequence[str], scenarios: list[str], progress: bool = False
) -> list[Stage]:
    """The experiment's stages after its runs: ``drive_expert`` (the privileged expert on the
    same scenario seeds, once, into :data:`EXPERT_DRIVE`) and, for each arm whose first-seed
    run has driven, ``videos_<arm>`` (:func:`record_videos`)."""
    c = layout.cfg
    expert_dir = layout.out / EXPERT_DRIVE

    def expert() -> None:
        spec = PlannerSpec("expert")
        drive_to_dir(
            expert_dir, scenarios, c.drive_episodes, c.drive_seed, c.workers, spec, None, progress
        )

    stages = [
        Stage("drive_expert", expert, lambda: (expert_dir / "metrics.json").exists(), "drive")
    ]
    seed = c.seeds[0]
    for arm in arms:
        d = layout.drive_dir(arm, seed)
        spec = PlannerSpec("model", str(layout.run_dir(arm, seed)))
        record = lambda d=d, spec=spec: record_videos(d, scenarios, spec)  # noqa: E731
        stages.append(Stage(f"videos_{arm}", record, lambda d=d: videos_done(d), "videos"))
    return stages
