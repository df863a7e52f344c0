"""The aggregate stage of an experiment: every complete run's metrics, over seeds, into
``results.json``, ``results.md`` and the report; redone whenever its inputs change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rsd.config import to_dict
from rsd.data.jsonio import read_json, write_json
from rsd.metrics.stats import aggregate
from rsd.pipeline.compare import compare_arms
from rsd.pipeline.drive import EXPERT_DRIVE, read_logs
from rsd.pipeline.experiment_config import BASELINE, COMPATIBLE_KEYS
from rsd.pipeline.layout import ExperimentLayout
from rsd.pipeline.stages import STAGE_DIR, time_totals
from rsd.pipeline.summary import (
    ALSO_CHECKED,
    check_targets,
    pool_outcomes,
    reference_metrics,
    run_metrics,
)
from rsd.report.page import markdown_page
from rsd.report.tables import results_markdown
from rsd.sim.closed_loop import EpisodeLog


def inputs_digest(layout: ExperimentLayout) -> str:
    """A digest of the aggregate's inputs (paths, sizes, mtimes of the complete runs' outputs)
    and of the config (but for the keys that only select the runs)."""
    settings = {k: v for k, v in to_dict(layout.cfg).items() if k not in COMPATIBLE_KEYS}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    paths = [
        p
        for arm, seeds in layout.complete_runs().items()
        for s in seeds
        for p in layout.run_outputs(arm, s)
    ]
    paths += [p for p in expert_outputs(layout) if p.exists()]
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def expert_outputs(layout: ExperimentLayout) -> list[Path]:
    """The expert reference's files (:data:`rsd.pipeline.drive.EXPERT_DRIVE`)."""
    d = layout.out / EXPERT_DRIVE
    return [d / "metrics.json", d / "episodes.jsonl"]


def expert_metrics(layout: ExperimentLayout) -> dict[str, dict[str, float]]:
    """The closed-loop groups of the expert's reference drive; empty when it has not driven."""
    episodes = layout.out / EXPERT_DRIVE / "episodes.jsonl"
    if not episodes.exists():
        return {}
    return reference_metrics(read_logs(episodes), layout.cfg.long_tail)


def is_aggregated(layout: ExperimentLayout) -> bool:
    res = read_json(layout.out / "results.json")
    return bool(res) and res.get("inputs_digest") == inputs_digest(layout)


def episode_logs(layout: ExperimentLayout, arm: str, seed: int) -> list[EpisodeLog]:
    return read_logs(layout.drive_dir(arm, seed) / "episodes.jsonl")


def per_run(layout: ExperimentLayout) -> dict[str, dict[int, dict[str, dict[str, float]]]]:
    """``{arm: {seed: {group: {metric: value}}}}`` of every complete run."""
    c = layout.cfg
    out: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
    for arm, seeds in layout.complete_runs().items():
        for s in seeds:
            out.setdefault(arm, {})[s] = run_metrics(
                read_json(layout.eval_path(arm, s, c.rig)),
                read_json(layout.eval_path(arm, s, c.unseen_rig)),
                episode_logs(layout, arm, s),
                c.long_tail,
            )
    return out


def pooled_outcomes(layout: ExperimentLayout) -> dict[str, dict[str, dict[str, Any]]]:
    """Closed-loop outcomes pooled over every complete seed of each arm."""
    out = {}
    for arm, seeds in layout.complete_runs().items():
        logs = [log for s in seeds for log in episode_logs(layout, arm, s)]
        out[arm] = pool_outcomes(logs, layout.cfg.long_tail)
    return out


def stage_times(layout: ExperimentLayout) -> dict[str, Any]:
    """Wall and CPU seconds over every stage marker of the directory (all sittings)."""
    own = ("aggregate", "report")  # the stages that read the times
    markers = [p for p in (layout.out / STAGE_DIR).glob("*.json") if p.stem not in own]
    return time_totals(markers)


def aggregate_stage(layout: ExperimentLayout, command: str) -> None:
    """Write ``results.json``, ``results.md`` and ``report/results.html``."""
    runs = per_run(layout)
    agg = aggregate(runs, BASELINE)
    pooled = pooled_outcomes(layout)
    targets = check_targets(agg)
    for arm in ALSO_CHECKED:
        if arm in runs:
            targets += check_targets(agg, arm)
    # paired by training seed, then scenario episode / frame: the intervals the report colours by
    paired = [
        row
        for arm in runs
        if arm != BASELINE and BASELINE in runs
        for row in compare_arms(layout.out, arm, BASELINE, layout.cfg.long_tail)
    ]
    times = stage_times(layout)
    expert = expert_metrics(layout)
    res = {
        "command": command,
        "config": to_dict(layout.cfg),
        "arms": {
            arm: {
                "seeds": sorted(by_seed),
                "runs": {str(s): str(layout.run_dir(arm, s)) for s in sorted(by_seed)},
            }
            for arm, by_seed in runs.items()
        },
        "metrics": agg,
        "pooled": pooled,
        "paired": paired,
        "expert": expert,
        "targets": targets,
        "time": times,
        "inputs_digest": inputs_digest(layout),
    }
    write_json(layout.out / "results.json", res)
    md = results_markdown(agg, targets, times, command, list(runs), pooled, paired, expert)
    (layout.out / "results.md").write_text(md)
    layout.report_dir.mkdir(parents=True, exist_ok=True)
    (layout.report_dir / "results.html").write_text(markdown_page(md, "rsd experiment results"))
