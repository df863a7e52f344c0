"""The stages of ``rsd experiment`` (and of ``rsd demo``, a built-in experiment config).

One dataset, grown by noisy-expert (DART) rollouts and DAgger rounds if any
(:mod:`rsd.pipeline.dagger`), annotated by every teacher an arm needs; then for each seed and each
arm (all arms of seed 0 first, so an interrupted experiment already holds complete seeds): train
``runs/<arm>/seed<S>``, evaluate it open loop on the validation split on the training rig and on an
unseen rig (``eval_<rig>.json``), drive it closed loop on held-out seeds (``drive/metrics.json``,
``drive/episodes.jsonl``); finally aggregate over seeds
(:mod:`rsd.pipeline.results`) and write the report.

Every stage is skipped once it :meth:`~rsd.pipeline.stages.StageRunner.is_done`. The config
lives in ``OUT/experiment.yaml``; another config in the same directory is refused, except for
changes that leave every existing result valid (:data:`COMPATIBLE_KEYS`: ``workers``,
``parallel_runs``, the list of ``seeds``, adding or removing arms; an arm kept must keep its
overrides).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from rsd.config import ConfigError, dump_yaml, from_dict, to_dict
from rsd.data.jsonio import read_json
from rsd.data.store import FrameStore
from rsd.pipeline.annotate import annotate
from rsd.pipeline.dagger import dagger_stages, dart_stages
from rsd.pipeline.drive import EXPERT_DRIVE, drive_to_dir, reference_stages
from rsd.pipeline.experiment_config import COMPATIBLE_KEYS, ExperimentConfig
from rsd.pipeline.generate import GenerateConfig, generate
from rsd.pipeline.layout import ExperimentLayout
from rsd.pipeline.pool import run_in_pool
from rsd.pipeline.results import aggregate_stage, is_aggregated
from rsd.pipeline.runs import evaluate_run, run_finished, train_run
from rsd.pipeline.stages import Stage, StageRunner, check_config_dir
from rsd.policy import PlannerSpec
from rsd.report.build import write_report
from rsd.report.labels import EXPERIMENT_GROUPS
from rsd.report.tables import format_table
from rsd.sim.spec import builtin_scenarios
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.ids import teacher_from_id

CONFIG_FILE = "experiment.yaml"
ADDED_OFF_KEYS = ("dart_episodes", "dart_noise")
"""Config keys added later whose default is off: a stored config without them computed that."""


class Experiment(StageRunner):
    """The stages of one experiment directory; :meth:`run` does what is not done yet."""

    label = "experiment"

    def __init__(
        self,
        cfg: ExperimentConfig,
        out: str | Path,
        *,
        only: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        progress: bool = True,
        dry_run: bool = False,
        command: str | None = None,
    ) -> None:
        super().__init__(out, progress=progress, dry_run=dry_run)
        self.cfg = cfg
        for arm in only or ():
            if arm not in cfg.arms:
                raise ConfigError(f"--only: no arm {arm!r} (have {', '.join(cfg.arms)})")
        for s in seeds or ():
            if s not in cfg.seeds:
                raise ConfigError(f"--seeds: {s} is not one of the config's seeds {cfg.seeds}")
        self.arms = [a for a in cfg.arms if not only or a in only]
        self.seeds = [s for s in cfg.seeds if seeds is None or s in seeds]
        self.layout = ExperimentLayout(self.out, cfg)
        self.data = self.layout.data
        self.command = command or f"rsd experiment {self.out / CONFIG_FILE} --out {self.out}"

    def _check_dir(self) -> None:
        check_config_dir(
            self.out, CONFIG_FILE, dump_yaml(self.cfg), "an experiment", self._compatible
        )

    def _compatible(self, stored: str) -> bool:
        old, new = yaml.safe_load(stored) or {}, to_dict(self.cfg)
        defaults = to_dict(ExperimentConfig())
        for key in ADDED_OFF_KEYS:  # a directory made before the key: it computed the default
            old.setdefault(key, defaults[key])
        rest = [k for k in set(old) | set(new) if k not in COMPATIBLE_KEYS]
        if any(old.get(k) != new.get(k) for k in rest):
            return False
        old_arms, new_arms = old.get("arms") or {}, new["arms"]
        return all(old_arms[a] == new_arms[a] for a in set(old_arms) & set(new_arms))

    # data

    def _dataset_complete(self) -> bool:
        return bool(read_json(self.data / "manifest.json").get("complete"))

    def generate(self) -> None:
        gcfg = GenerateConfig(
            scenarios=self.cfg.scenarios,
            episodes_per_scenario=self.cfg.episodes_per_scenario,
            seed=self.cfg.data_seed,
        )
        summary = generate(gcfg, self.data, workers=self.cfg.workers, progress=self.progress)
        if not summary.complete:
            raise RuntimeError(f"dataset {self.data} incomplete: {len(summary.failed)} failed")

    def teachers(self) -> list[tuple[str, str]]:
        """``(teacher_id, prompt_version)`` of every teacher an arm learns from."""
        need: list[tuple[str, str]] = []
        for arm in self.cfg.arms:
            tc = self.cfg.train_config(arm, self.cfg.seeds[0])
            if tc.task.teacher_targets and (tc.teacher, tc.prompt_version) not in need:
                need.append((tc.teacher, tc.prompt_version))
        return need

    def _annotated(self) -> bool:
        if not (self.data / CACHE_NAME).exists():
            return False
        with AnnotationCache(self.data / CACHE_NAME) as cache:
            ids = list(FrameStore(self.data).frame_ids)
            return not any(cache.missing(ids, t, p) for t, p in self.teachers())

    def annotate(self) -> None:
        with AnnotationCache(self.data / CACHE_NAME) as cache:
            for tid, version in self.teachers():
                teacher = teacher_from_id(tid)
                if teacher.prompt_version != version:
                    raise ConfigError(
                        f"teacher {tid}: prompt_version {teacher.prompt_version!r}, the arms "
                        f"ask for {version!r}"
                    )
                s = annotate(FrameStore(self.data), teacher, cache, progress=self.progress)
                print(s.text())

    # runs

    def train_command(self, arm: str, seed: int, nproc: int | None = None) -> str:
        """The ``rsd train`` command line of one run (under ``torchrun`` with ``nproc``
        processes): what the train stage computes, to run it elsewhere, e.g. with DDP."""
        head = ["rsd", "train"]
        if nproc is not None:
            head = ["torchrun", f"--nproc_per_node={nproc}", "-m", "rsd.cli", "train"]
        args = ["--data", str(self.data), "--out", str(self.layout.run_dir(arm, seed))]
        return shlex.join([*head, *args, *self.cfg.train_overrides(arm, seed)])

    def train(self, arm: str, seed: int) -> None:
        # a finished run in its place (trained on its own with train_command()) is kept
        run = self.layout.run_dir(arm, seed)
        tc = self.cfg.train_config(arm, seed)
        train_run(tc, self.data, run, progress=self.progress, say=self.say)

    def evaluate(self, arm: str, seed: int, rig: str) -> None:
        path = self.layout.eval_path(arm, seed, rig)
        run = self.layout.run_dir(arm, seed)
        evaluate_run(run, self.data, rig, path, self.cfg.eval_max_samples, self.progress)

    def drive_scenarios(self) -> list[str]:
        names = [s for s in self.cfg.drive_scenarios if s != "all"]
        return names or builtin_scenarios()

    def drive(self, arm: str, seed: int) -> None:
        c = self.cfg
        spec = PlannerSpec("model", str(self.layout.run_dir(arm, seed)))
        out = self.layout.drive_dir(arm, seed)
        scenarios = self.drive_scenarios()
        # every arm and seed drives the same scenario seeds: the expert's routes once for all
        routes = str(self.layout.out / "routes")
        drive_to_dir(
            out,
            scenarios,
            c.drive_episodes,
            c.drive_seed,
            c.workers,
            spec,
            None,
            self.progress,
            routes,
        )

    def unit_stages(self, arm: str, seed: int) -> list[Stage]:
        """The stages of one run: train, evaluate on both rigs, drive."""
        c, lay, tag = self.cfg, self.layout, f"{arm}_seed{seed}"
        run = lay.run_dir(arm, seed)
        trained = lambda: run_finished(run)  # noqa: E731
        stages = [Stage(f"train_{tag}", lambda: self.train(arm, seed), trained, "train")]
        for rig in (c.rig, c.unseen_rig):
            stages.append(
                Stage(
                    f"eval_{tag}_{rig}",
                    lambda r=rig: self.evaluate(arm, seed, r),
                    lambda r=rig: lay.eval_path(arm, seed, r).exists(),
                    "eval",
                )
            )
        done = lambda: (lay.drive_dir(arm, seed) / "metrics.json").exists()  # noqa: E731
        stages.append(Stage(f"drive_{tag}", lambda: self.drive(arm, seed), done, "drive"))
        return stages

    def unit_done(self, arm: str, seed: int) -> bool:
        return all(self.is_done(s) for s in self.unit_stages(arm, seed))

    def run_unit(self, arm: str, seed: int) -> None:
        for stage in self.unit_stages(arm, seed):
            self.run_stage(stage)
            if self.dry_run and stage.kind == "train" and not self.plan[-1][1]:
                print(f"        {self.train_command(arm, seed)}")

    # all of it

    def run(self) -> Path:
        """Do every stage not done yet (in a dry run, list them); returns results.json's path."""
        if self.dry_run:
            print(f"experiment {self.out}: stages (done / to do), nothing is run")
        else:
            self._check_dir()
        self.run_stage(Stage("generate", self.generate, self._dataset_complete))
        dart = dart_stages(self.cfg, self.layout, self.progress, self.say)
        for stage in [*dart, *dagger_stages(self.cfg, self.layout, self.progress, self.say)]:
            self.run_stage(stage)
        self.run_stage(Stage("annotate", self.annotate, self._annotated))
        units = [(arm, s) for s in self.seeds for arm in self.arms]
        if self.cfg.runs_at_a_time > 1 and not self.dry_run:
            todo = {f"{a} seed {s}": (dump_yaml(self.cfg), str(self.out), a, s) for a, s in units}
            todo = {k: v for k, v in todo.items() if not self.unit_done(v[2], v[3])}
            if todo:
                self.say(f"{len(todo)} runs to compute, {self.cfg.runs_at_a_time} at a time")
                run_in_pool(_run_unit, todo, self.cfg.runs_at_a_time, self.say)
        for arm, s in units:  # parallel: all done by now, this records their times
            self.run_unit(arm, s)
        video_arms = self.arms if self.cfg.seeds[0] in self.seeds else []
        for stage in reference_stages(self.layout, video_arms, self.drive_scenarios()):
            self.run_stage(stage)
        lay = self.layout
        aggregated = Stage(
            "aggregate", lambda: aggregate_stage(lay, self.command), lambda: is_aggregated(lay)
        )
        self.run_stage(aggregated)
        report = Stage("report", self.report, self._reported, "report")
        self.run_stage(report)
        return self.out / "results.json"

    @property
    def report_path(self) -> Path:
        return self.layout.report_dir / "index.html"

    def _reported(self) -> bool:
        """The page exists and is not older than the results it shows."""
        results = self.out / "results.json"
        page = self.report_path
        return page.exists() and page.stat().st_mtime_ns >= results.stat().st_mtime_ns

    def report(self) -> None:
        """The HTML page comparing every complete run of every arm (its tables over seeds,
        beside the paired intervals of ``results.json``; curves; risk maps; the first seed's
        GIFs) with the expert's reference column."""
        done = self.layout.complete_runs()
        runs = [self.layout.run_dir(a, s) for a in self.cfg.arms for s in done.get(a, [])]
        seeds = sorted({s for ss in done.values() for s in ss})
        title = f"rsd experiment {self.out.name}: {', '.join(done)} (seeds {seeds})"
        paired = read_json(self.out / "results.json").get("paired") or []
        expert = self.out / EXPERT_DRIVE
        expert = expert if (expert / "metrics.json").exists() else None
        write_report(runs, self.layout.report_dir, title=title, paired=paired, expert=expert)


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    only: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    dry_run: bool = False,
    command: str | None = None,
    summary: Sequence[str] = ("open_loop", "closed_loop_long_tail"),
) -> Experiment:
    """Run (or finish) the experiment in ``out``; prints the ``summary`` groups of the
    results (mean over seeds per arm) and the time spent."""
    exp = Experiment(
        cfg, out, only=only, seeds=seeds, progress=progress, dry_run=dry_run, command=command
    )
    exp.run()
    if dry_run:
        todo = sum(not done for _, done in exp.plan)
        print(f"{len(exp.plan)} stages, {todo} to do")
        return exp
    res = read_json(exp.out / "results.json")
    arms = list(res.get("arms", {}))
    print()
    for g in summary:
        print(EXPERIMENT_GROUPS[g])
        print(format_table(res["metrics"], g, arms, (res.get("expert") or {}).get(g)))
        print()
    print(format_stage_times(res["time"], len(exp.ran), len(exp.plan) - len(exp.ran)))
    print(f"results: {exp.out / 'results.md'}, {exp.out / 'results.json'}")
    print(f"report: {exp.report_path}")
    return exp


def format_stage_times(times: dict, computed: int, skipped: int) -> str:
    """Stages computed / done before, and wall + CPU seconds over all sittings by kind."""
    t = times["total"]
    lines = [
        f"stages: {computed} computed, {skipped} done before; "
        f"all sittings: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU"
    ]
    for kind, k in times["by_kind"].items():
        wall, cpu = k["wall_s"], k["cpu_s"]
        lines.append(f"  {kind:<10} {k['stages']:3d} stages {wall:9.1f} s wall {cpu:9.1f} s CPU")
    return "\n".join(lines)


def _run_unit(cfg_yaml: str, out: str, arm: str, seed: int) -> None:
    """One run's stages in a pool process (one torch thread; driving in this process)."""
    torch.set_num_threads(1)
    cfg = from_dict(ExperimentConfig, yaml.safe_load(cfg_yaml))
    exp = Experiment(dataclasses.replace(cfg, workers=1, parallel_runs=1), out, progress=False)
    exp.label = f"{arm} seed {seed}"
    exp.run_unit(arm, seed)
