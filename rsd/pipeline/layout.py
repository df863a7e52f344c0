"""Where an experiment keeps its dataset and each run's outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsd.pipeline.experiment_config import ExperimentConfig


@dataclass(frozen=True)
class ExperimentLayout:
    """``out/data`` (dataset + annotation cache), ``out/runs/<arm>/seed<S>`` (a training run,
    its ``eval_<rig>.json`` files and ``drive/``), ``out/report``."""

    out: Path
    cfg: ExperimentConfig

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def report_dir(self) -> Path:
        return self.out / "report"

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / arm / f"seed{seed}"

    def eval_path(self, arm: str, seed: int, rig: str) -> Path:
        return self.run_dir(arm, seed) / f"eval_{rig}.json"

    def drive_dir(self, arm: str, seed: int) -> Path:
        return self.run_dir(arm, seed) / "drive"

    def run_outputs(self, arm: str, seed: int) -> list[Path]:
        """The files the aggregate reads of one run."""
        d = self.drive_dir(arm, seed)
        return [
            self.eval_path(arm, seed, self.cfg.rig),
            self.eval_path(arm, seed, self.cfg.unseen_rig),
            d / "metrics.json",
            d / "episodes.jsonl",
        ]

    def complete_runs(self) -> dict[str, list[int]]:
        """``{arm: [seed, ...]}`` of the configured runs whose outputs are all there."""
        out: dict[str, list[int]] = {}
        for arm in self.cfg.arms:
            for s in self.cfg.seeds:
                if all(p.exists() for p in self.run_outputs(arm, s)):
                    out.setdefault(arm, []).append(s)
        return out
