"""``rsd demo``: the whole pipeline on the embedded default, baseline against RSD.

    rsd demo                 # ~5 min on 2 idle CPU cores (<= 15 min shared); writes demo/
    rsd demo --quick         # a tiny version (smoke test, < 1 min)

Stages, each written to its own place under ``--out`` and skipped on a re-run once its output
is complete (so a killed demo resumes where it stopped):

1. ``data/``: record a small dataset with the privileged expert
   (:func:`rsd.pipeline.generate.generate`, itself resumable per episode);
2. annotate it with the privileged teacher into ``data/annotations.sqlite`` (cached frames are
   skipped);
3. train ``runs/baseline`` and ``runs/rsd`` (same seed, data and schedule; an interrupted run is
   resumed from its checkpoint);
4. open-loop evaluation of both on the validation split, on the training rig and on an unseen
   rig: ``runs/*/eval_<rig>.json``;
5. closed-loop driving of both on held-out seeds: ``runs/*/drive/metrics.json``;
6. the report: ``report/index.html``.

A stage is done when ``.stages/<name>.json`` exists (it records the stage's seconds) and its
outputs are there. The demo's config is stored in ``demo.yaml``; another config in the same
directory is refused rather than mixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.stages import (  # noqa: F401 (re-exported)
    STAGE_DIR,
    StageRunner,
    check_config_dir,
    evaluate_run,
    run_finished,
    train_run,
)
from rsd.stages import flatten as _flatten
from rsd.stages import num as _num
from rsd.stages import read_json as _read_json

VARIANTS = ("baseline", "rsd")
CONFIG_FILE = "demo.yaml"


@dataclass(frozen=True)
class DemoConfig:
    """What ``rsd demo`` computes. Defaults: the full demo (~5 min on 2 idle CPU cores)."""

    scenarios: tuple[str, ...] = ("all",)
    episodes_per_scenario: int = 6
    """Recorded episodes per scenario (seeds ``data_seed ...``; seed % 5 == 4 is validation)."""
    data_seed: int = 0
    rig: str = "dense360"
    """The training rig."""
    unseen_rig: str = "sparse_noisy"
    """A rig neither model was trained on (open-loop evaluation only)."""
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 20
    seed: int = 0
    """Training seed, the same for both variants."""
    model: dict[str, Any] = field(
        default_factory=lambda: {
            "kind": "vad",
            "backbone": {"stem_channels": 16, "channels": 32, "depth": 1, "plan_dim": 32},
            "risk_head": {"hidden": 16},
        }
    )
    """``TrainConfig.model`` overrides (a small, fast model)."""
    max_samples: int | None = None
    """Train on at most this many samples (None: the whole train split)."""
    eval_max_samples: int | None = None
    drive_episodes: int = 3
    """Closed-loop episodes per scenario, on seeds from ``drive_seed`` (never trained on)."""
    drive_seed: int = 10_000
    drive_scenarios: tuple[str, ...] = ()
    """Scenarios driven closed loop (empty: the same as ``scenarios``)."""
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("episodes_per_scenario", "epochs", "batch_size", "drive_episodes", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"demo.{name}: must be >= 1, got {getattr(self, name)}")
        if self.rig == self.unseen_rig:
            raise ConfigError("demo.unseen_rig must differ from demo.rig")


QUICK = DemoConfig(
    episodes_per_scenario=2,  # seeds 3 (train) and 4 (validation)
    data_seed=3,
    epochs=1,
    model={
        "kind": "vad",
        "backbone": {
            "stem_channels": 8,
            "channels": 16,
            "depth": 1,
            "plan_dim": 32,
            "agent_tokens": 4,
        },
        "risk_head": {"hidden": 8},
    },
    max_samples=64,
    eval_max_samples=32,
    drive_episodes=1,
)
"""``rsd demo --quick``: 2 episodes per scenario, 1 epoch, 1 drive episode per scenario."""


# -- stages ----------------------------------------------------------------------------------


class Demo(StageRunner):
    """The stages of one demo directory; ``run()`` does what is not done yet."""

    label = "demo"

    def __init__(self, cfg: DemoConfig, out: str | Path, *, progress: bool = True) -> None:
        super().__init__(out, progress=progress)
        self.cfg = cfg
        self.data = self.out / "data"
        self.runs = {v: self.out / "runs" / v for v in VARIANTS}
        self.report_dir = self.out / "report"

    def _say(self, msg: str) -> None:
        self.say(msg)

    def _check_dir(self) -> None:
        from rsd.config import dump_yaml

        check_config_dir(self.out, CONFIG_FILE, dump_yaml(self.cfg), "a demo")

    # the stages

    def _generate_cfg(self):
        from rsd.pipeline.generate import GenerateConfig

        return GenerateConfig(
            scenarios=self.cfg.scenarios,
            episodes_per_scenario=self.cfg.episodes_per_scenario,
            seed=self.cfg.data_seed,
        )

    def _dataset_complete(self) -> bool:
        path = self.data / "manifest.json"
        return path.exists() and bool(json.loads(path.read_text()).get("complete"))

    def generate(self) -> None:
        from rsd.pipeline.generate import generate

        summary = generate(
            self._generate_cfg(), self.data, workers=self.cfg.workers, progress=self.progress
        )
        if not summary.complete:
            raise RuntimeError(f"dataset {self.data} incomplete: {len(summary.failed)} failed")

    def _teacher(self):
        from rsd.teacher.factory import make_teacher

        return make_teacher("privileged")

    def _annotated(self) -> bool:
        from rsd.data.store import FrameStore
        from rsd.teacher.cache import CACHE_NAME, AnnotationCache

        if not (self.data / CACHE_NAME).exists():
            return False
        teacher = self._teacher()
        with AnnotationCache(self.data / CACHE_NAME) as cache:
            ids = list(FrameStore(self.data).frame_ids)
            return not cache.missing(ids, teacher.teacher_id, teacher.prompt_version)

    def annotate(self) -> None:
        from rsd.data.store import FrameStore
        from rsd.pipeline.annotate import annotate
        from rsd.teacher.cache import CACHE_NAME, AnnotationCache

        with AnnotationCache(self.data / CACHE_NAME) as cache:
            s = annotate(FrameStore(self.data), self._teacher(), cache, progress=self.progress)
        print(s.text())

    def train_config(self, variant: str):
        from rsd.config import load_config
        from rsd.train_config import TrainConfig

        c = self.cfg
        overrides = [
            f"variant={variant}",
            f"epochs={c.epochs}",
            f"batch_size={c.batch_size}",
            f"lr={c.lr}",
            f"warmup_steps={c.warmup_steps}",
            f"seed={c.seed}",
            f"rig={c.rig}",
            "num_workers=0",
            "log_every=5",
        ]
        if c.max_samples is not None:
            overrides.append(f"max_samples={c.max_samples}")
        overrides += [f"model.{k}={v}" for k, v in _flatten(c.model).items()]
        return load_config(TrainConfig, None, overrides)

    def _trained(self, variant: str) -> bool:
        return run_finished(self.runs[variant])

    def train(self, variant: str) -> None:
        train_run(
            self.train_config(variant),
            self.data,
            self.runs[variant],
            progress=self.progress,
            say=self.say,
        )

    def _eval_path(self, variant: str, rig: str) -> Path:
        return self.runs[variant] / f"eval_{rig}.json"

    def evaluate(self, variant: str, rig: str) -> None:
        path = self._eval_path(variant, rig)
        evaluate_run(
            self.runs[variant], self.data, rig, path, self.cfg.eval_max_samples, self.progress
        )

    def _drive_dir(self, variant: str) -> Path:
        return self.runs[variant] / "drive"

    def drive(self, variant: str) -> None:
        from rsd.pipeline.drive import drive_to_dir
        from rsd.policy import PlannerSpec
        from rsd.sim.spec import builtin_scenarios

        c = self.cfg
        names = c.drive_scenarios or c.scenarios
        scenarios = builtin_scenarios() if names == ("all",) else list(names)
        spec = PlannerSpec("model", str(self.runs[variant]))
        drive_to_dir(
            self._drive_dir(variant),
            scenarios,
            c.drive_episodes,
            c.drive_seed,
            c.workers,
            spec,
            None,
            self.progress,
        )

    def report(self) -> None:
        from rsd.report import write_report

        path = write_report(
            [self.runs[v] for v in VARIANTS], self.report_dir, title="rsd demo: baseline vs RSD"
        )
        self.report_path = Path(path)

    # all of it

    def run(self) -> Path:
        """Do every stage not done yet; returns the report's path."""
        self._check_dir()
        c = self.cfg
        self.stage("generate", self.generate, self._dataset_complete)
        self.stage("annotate", self.annotate, self._annotated)
        for v in VARIANTS:
            self.stage(f"train_{v}", lambda v=v: self.train(v), lambda v=v: self._trained(v))
        for v in VARIANTS:
            for rig in (c.rig, c.unseen_rig):
                self.stage(
                    f"eval_{v}_{rig}",
                    lambda v=v, r=rig: self.evaluate(v, r),
                    lambda v=v, r=rig: self._eval_path(v, r).exists(),
                )
        for v in VARIANTS:
            self.stage(
                f"drive_{v}",
                lambda v=v: self.drive(v),
                lambda v=v: (self._drive_dir(v) / "metrics.json").exists(),
            )
        self.report_path = self.report_dir / "index.html"
        self.stage("report", self.report, self.report_path.exists)
        return self.report_path

    def headline(self) -> dict[str, dict[str, float]]:
        """``{metric: {variant: value}}`` from the stages' outputs (NaN where missing)."""
        rows: dict[str, dict[str, float]] = {}
        for v in VARIANTS:
            seen = _read_json(self._eval_path(v, self.cfg.rig))
            unseen = _read_json(self._eval_path(v, self.cfg.unseen_rig))
            drv = _read_json(self._drive_dir(v) / "metrics.json").get("overall", {})
            plan, det = seen.get("planning") or {}, seen.get("detection") or {}
            values = {
                "L2 avg (m)": _num(plan.get("L2 (VAD avg)@avg")),
                "ADE (m)": _num(plan.get("ADE")),
                "collision (%)": 100 * _num(plan.get("Collision (VAD avg)@avg")),
                "mASE": _num(det.get("mASE")),
                "mAVE (m/s)": _num(det.get("mAVE")),
                f"ADE {self.cfg.unseen_rig} (m)": _num((unseen.get("planning") or {}).get("ADE")),
                "closed-loop DS": _num(drv.get("driving_score")),
                "closed-loop SR (%)": _num(drv.get("success_rate")),
                "closed-loop collision (%)": _num(drv.get("collision_rate")),
            }
            for k, x in values.items():
                rows.setdefault(k, {})[v] = x
        return rows


# -- helpers ---------------------------------------------------------------------------------


def format_headline(rows: dict[str, dict[str, float]]) -> str:
    """The baseline-vs-RSD table, one metric per line."""
    width = max(len(k) for k in rows) + 2
    head = f"{'metric':<{width}}{'baseline':>10}{'rsd':>10}"
    lines = [head, "-" * len(head)]
    for k, by in rows.items():
        cells = "".join(
            f"{'-' if math.isnan(by.get(v, math.nan)) else format(by[v], '.3f'):>10}"
            for v in VARIANTS
        )
        lines.append(f"{k:<{width}}{cells}")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig, out: str | Path, *, progress: bool = True) -> Demo:
    """Run (or finish) the demo in ``out``; prints the headline table and the report's path."""
    demo = Demo(cfg, out, progress=progress)
    path = demo.run()
    total = sum(demo.seconds.values())
    print()
    print(format_headline(demo.headline()))
    print()
    skipped = len(demo.seconds) - len(demo.ran)
    print(
        f"stages: {len(demo.ran)} computed, {skipped} done before; "
        f"stage time {total:.1f} s (this call {time.monotonic() - demo.t0:.1f} s)"
    )
    print(f"report: {path}")
    return demo


# -- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), metavar="DIR", help="output dir (demo)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny version: 2 episodes per scenario, 1 epoch, 1 drive episode",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    cfg = QUICK if args.quick else DemoConfig()
    if args.workers is not None:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    run_demo(cfg, args.out, progress=not args.no_progress)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.demo ...``: the same as ``rsd demo ...``."""
    from rsd.cli import main as cli_main

    return cli_main(["demo", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
