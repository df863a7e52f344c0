"""``rsd experiment``: the headline experiment, every arm trained on several seeds.

    rsd experiment                       # the default config: 8 arms x 3 seeds -> experiment/
    rsd experiment quick --out /tmp/q    # a tiny version (smoke test, a few minutes)
    rsd experiment my.yaml train.epochs=20 seeds=[0,1,2,3,4]
    rsd experiment --dry-run             # the stage list, done / to do; nothing is run

It generalises ``rsd demo`` (:mod:`rsd.demo`): one dataset, annotated by every teacher an arm
needs, then for each seed and each arm (all arms of seed 0 first, so an interrupted experiment
already holds complete seeds): train ``runs/<arm>/seed<S>``, evaluate it open loop on the
validation split on the training rig and on an unseen rig (``eval_<rig>.json``), drive it
closed loop on held-out seeds (``drive/metrics.json``, ``drive/episodes.jsonl``); finally
aggregate over seeds into ``results.json``, ``results.md`` and ``report/index.html``: per arm
and metric the values per seed, mean, sample std (ddof 1) and the change of the mean against
the ``baseline`` arm in %, and the issue's targets (``rsd`` against ``baseline``) met or not.

With ``workers`` > 1 the runs (train, evaluate, drive of one arm and seed) are computed that many
at a time in a process pool, one torch thread each: the small default model trains about as
fast on one thread as on two, so two runs at once nearly halve the time on 2 cores.

Every stage is skipped once its marker (``.stages/<name>.json``) and outputs exist; a marker
records the stage's wall and CPU seconds (this process's ``time.process_time()`` plus the
user + system time of its waited-for child processes), summed over all sittings into the time
totals of ``results.json``.

The config lives in ``OUT/experiment.yaml``. Another config in the same directory is refused,
except for changes that leave every existing result valid: ``workers``, the list of ``seeds``,
and adding or removing arms (an arm kept must keep its overrides). ``--only`` and ``--seeds``
restrict what is computed in this call; the aggregate covers every configured (arm, seed)
whose outputs are complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shlex
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.stages import (
    StageRunner,
    check_config_dir,
    evaluate_run,
    flatten,
    num,
    read_json,
    run_finished,
    train_run,
    write_json,
)

CONFIG_FILE = "experiment.yaml"
BASELINE = "baseline"
"""The arm every other arm is compared with (required)."""
CANDIDATE = "rsd"
"""The arm the issue's targets are checked for (and every arm of :data:`ALSO_CHECKED`)."""
ALSO_CHECKED = ("rsd_riskweighted", "rsd_balanced_rw")
"""Further arms whose targets are checked against the baseline when they are configured."""
BUILTIN_DIR = Path(__file__).parent / "experiments"
COMPATIBLE_KEYS = ("workers", "seeds", "arms")
"""Config keys whose change does not invalidate results already computed (see module doc)."""


def noisy_teacher_id(rate: float, seed: int = 0, base: str = "privileged") -> str:
    """The ``teacher_id`` of ``base`` with a fraction ``rate`` of its answers corrupted."""
    from rsd.teacher.factory import make_teacher

    return make_teacher(base, noise=rate, noise_seed=seed).teacher_id


def _default_arms() -> dict[str, dict[str, Any]]:
    return {
        "baseline": {"variant": "baseline"},
        "rsd": {"variant": "rsd"},
        "rsd_no_constraint": {"variant": "rsd", "loss.traj_risk_mass": 0, "loss.risk_alpha": 0},
        "constraint_only": {"variant": "rsd", "risk_head": False},
        "rsd_noisy25": {"variant": "rsd", "teacher": noisy_teacher_id(0.25)},
        "rsd_noisy50": {"variant": "rsd", "teacher": noisy_teacher_id(0.5)},
        "rsd_riskweighted": {"variant": "rsd", "loss.risk_imitation_alpha": 4.0},
        "rsd_balanced_rw": {
            "variant": "rsd",
            "loss.risk_imitation_alpha": 4.0,
            "loss.distill_balance": 0.05,
        },
    }


def _default_train() -> dict[str, Any]:
    return {
        "epochs": 6,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_steps": 20,
        "num_workers": 0,
        "log_every": 5,
        "model": {
            "kind": "vad",
            "backbone": {"stem_channels": 16, "channels": 32, "depth": 1, "plan_dim": 32},
            "risk_head": {"hidden": 16},
        },
    }


@dataclass(frozen=True)
class ExperimentConfig:
    """What ``rsd experiment`` computes. Defaults: 8 arms x 3 seeds on the default dataset."""

    scenarios: tuple[str, ...] = ("all",)
    episodes_per_scenario: int = 12
    """Recorded episodes per scenario (seeds ``data_seed ...``; seed % 5 == 4 is validation)."""
    data_seed: int = 0
    rig: str = "dense360"
    """The training rig."""
    unseen_rig: str = "sparse_noisy"
    """A rig no arm is trained on (open-loop evaluation only)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds; every arm is trained once per seed."""
    arms: dict[str, dict[str, Any]] = field(default_factory=_default_arms)
    """Arm name -> extra ``TrainConfig`` dotted overrides (on top of ``train``)."""
    train: dict[str, Any] = field(default_factory=_default_train)
    """``TrainConfig`` overrides common to every arm (nested or dotted keys)."""
    eval_max_samples: int | None = None
    """Open-loop evaluation on at most this many validation samples (None: all)."""
    drive_episodes: int = 10
    """Closed-loop episodes per scenario, on seeds from ``drive_seed`` (never recorded)."""
    drive_seed: int = 10_000
    drive_scenarios: tuple[str, ...] = ()
    """Scenarios driven closed loop (empty: every built-in scenario)."""
    long_tail: tuple[str, ...] = ("sudden_brake", "cut_in", "merge", "intersection")
    """Driven scenarios counted as long tail; the others are nominal."""
    workers: int = 2
    """Processes (does not change any result): for recording, and above 1 the runs are
    computed this many at a time, each in its own process with one torch thread (driving
    then runs inside that process)."""

    def __post_init__(self) -> None:
        for name in ("episodes_per_scenario", "drive_episodes", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"experiment.{name}: must be >= 1, got {getattr(self, name)}")
        if self.rig == self.unseen_rig:
            raise ConfigError("experiment.unseen_rig must differ from experiment.rig")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"experiment.seeds: need distinct seeds, got {list(self.seeds)}")
        if BASELINE not in self.arms:
            raise ConfigError(f"experiment.arms: needs a {BASELINE!r} arm to compare with")
        for arm in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", arm):
                raise ConfigError(f"experiment.arms.{arm}: use letters, digits, _ and - only")
            self.train_config(arm, self.seeds[0])  # every arm must make a valid TrainConfig

    def train_overrides(self, arm: str, seed: int) -> list[str]:
        """The ``TrainConfig`` overrides of one run: ``train``, then the arm's, then the seed."""
        if arm not in self.arms:
            raise ConfigError(f"experiment.arms: no arm {arm!r} (have {', '.join(self.arms)})")
        arm_over = self.arms[arm]
        if not isinstance(arm_over, Mapping):
            raise ConfigError(f"experiment.arms.{arm}: expected a mapping of overrides")
        common = [f"{k}={v}" for k, v in flatten(self.train).items()]
        own = [f"{k}={v}" for k, v in flatten(dict(arm_over)).items()]
        return [f"rig={self.rig}", *common, *own, f"seed={seed}"]

    def train_config(self, arm: str, seed: int):
        """The resolved ``TrainConfig`` of ``arm`` at training seed ``seed``."""
        from rsd.config import load_config
        from rsd.train_config import TrainConfig, resolve

        try:
            return resolve(load_config(TrainConfig, None, self.train_overrides(arm, seed)))
        except ConfigError as e:
            raise ConfigError(f"experiment.arms.{arm}: {e}") from None


def builtin_configs() -> list[str]:
    """Names of the built-in configs (``rsd/experiments/<name>.yaml``)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the path of the built-in config of that name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if not builtin.exists():
        raise ConfigError(
            f"no config {name_or_path!r}: not a file, nor a built-in "
            f"({', '.join(builtin_configs())})"
        )
    return builtin


def load_experiment_config(
    name_or_path: str | Path | None = "default", overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Defaults <- YAML (a path or a built-in name) <- dotted overrides. A YAML ``arms`` mapping
    replaces the default arms (rather than merging into them); ``train`` is merged key by key
    into the default ``train``."""
    from rsd.config import _deep_merge, apply_overrides, from_dict, load_yaml, to_dict

    base = to_dict(ExperimentConfig())
    if name_or_path is not None:
        data = load_yaml(config_path(name_or_path))
        if "arms" in data:
            base["arms"] = {}
        _deep_merge(base, data)
    apply_overrides(base, overrides)
    return from_dict(ExperimentConfig, base)


# -- the stages ------------------------------------------------------------------------------


class Experiment(StageRunner):
    """The stages of one experiment directory; ``run()`` does what is not done yet."""

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
        self.data = self.out / "data"
        self.report_dir = self.out / "report"
        self.command = command or f"rsd experiment {self.out / CONFIG_FILE} --out {self.out}"

    # layout

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / arm / f"seed{seed}"

    def eval_path(self, arm: str, seed: int, rig: str) -> Path:
        return self.run_dir(arm, seed) / f"eval_{rig}.json"

    def drive_dir(self, arm: str, seed: int) -> Path:
        return self.run_dir(arm, seed) / "drive"

    def _check_dir(self) -> None:
        from rsd.config import dump_yaml

        check_config_dir(
            self.out, CONFIG_FILE, dump_yaml(self.cfg), "an experiment", self._compatible
        )

    def _compatible(self, stored: str) -> bool:
        import yaml

        from rsd.config import to_dict

        old, new = yaml.safe_load(stored) or {}, to_dict(self.cfg)
        rest = [k for k in set(old) | set(new) if k not in COMPATIBLE_KEYS]
        if any(old.get(k) != new.get(k) for k in rest):
            return False
        old_arms, new_arms = old.get("arms") or {}, new["arms"]
        return all(old_arms[a] == new_arms[a] for a in set(old_arms) & set(new_arms))

    # data

    def _dataset_complete(self) -> bool:
        path = self.data / "manifest.json"
        return path.exists() and bool(read_json(path).get("complete"))

    def generate(self) -> None:
        from rsd.pipeline.generate import GenerateConfig, generate

        gcfg = GenerateConfig(
            scenarios=self.cfg.scenarios,
            episodes_per_scenario=self.cfg.episodes_per_scenario,
            seed=self.cfg.data_seed,
        )
        summary = generate(gcfg, self.data, workers=self.cfg.workers, progress=self.progress)
        if not summary.complete:
            raise RuntimeError(f"dataset {self.data} incomplete: {len(summary.failed)} failed")

    def teachers(self) -> list[tuple[str, str]]:
        """``(teacher_id, prompt_version)`` of every teacher an ``rsd`` arm learns from."""
        need: list[tuple[str, str]] = []
        for arm in self.cfg.arms:
            tc = self.cfg.train_config(arm, self.cfg.seeds[0])
            if tc.variant == "rsd" and (tc.teacher, tc.prompt_version) not in need:
                need.append((tc.teacher, tc.prompt_version))
        return need

    def _annotated(self) -> bool:
        from rsd.data.store import FrameStore
        from rsd.teacher.cache import CACHE_NAME, AnnotationCache

        if not (self.data / CACHE_NAME).exists():
            return False
        with AnnotationCache(self.data / CACHE_NAME) as cache:
            ids = list(FrameStore(self.data).frame_ids)
            return not any(cache.missing(ids, t, p) for t, p in self.teachers())

    def annotate(self) -> None:
        from rsd.data.store import FrameStore
        from rsd.pipeline.annotate import annotate
        from rsd.teacher.cache import CACHE_NAME, AnnotationCache

        with AnnotationCache(self.data / CACHE_NAME) as cache:
            for tid, version in self.teachers():
                teacher = make_teacher_by_id(tid)
                if teacher.prompt_version != version:
                    raise ConfigError(
                        f"teacher {tid}: prompt_version {teacher.prompt_version!r}, the arms "
                        f"ask for {version!r}"
                    )
                s = annotate(FrameStore(self.data), teacher, cache, progress=self.progress)
                print(s.text())

    # runs

    def _trained(self, arm: str, seed: int) -> bool:
        return run_finished(self.run_dir(arm, seed))

    def train_command(self, arm: str, seed: int, nproc: int | None = None) -> str:
        """The ``rsd train`` command line of one run (under ``torchrun`` with ``nproc``
        processes): what the train stage computes, to run it elsewhere, e.g. with DDP."""
        head = ["rsd", "train"]
        if nproc is not None:
            head = ["torchrun", f"--nproc_per_node={nproc}", "-m", "rsd.train"]
        args = ["--data", str(self.data), "--out", str(self.run_dir(arm, seed))]
        return shlex.join([*head, *args, *self.cfg.train_overrides(arm, seed)])

    def train(self, arm: str, seed: int) -> None:
        run = self.run_dir(arm, seed)
        if self._trained(arm, seed):  # e.g. trained on its own with train_command()
            self.say(f"{run} holds a finished run: kept")
            return
        tc = self.cfg.train_config(arm, seed)
        train_run(tc, self.data, run, progress=self.progress, say=self.say)

    def evaluate(self, arm: str, seed: int, rig: str) -> None:
        path = self.eval_path(arm, seed, rig)
        run = self.run_dir(arm, seed)
        evaluate_run(run, self.data, rig, path, self.cfg.eval_max_samples, self.progress)

    def drive_scenarios(self) -> list[str]:
        from rsd.sim.spec import builtin_scenarios

        return list(self.cfg.drive_scenarios) or builtin_scenarios()

    def drive(self, arm: str, seed: int) -> None:
        from rsd.pipeline.drive import drive_to_dir
        from rsd.policy import PlannerSpec

        c, run = self.cfg, self.run_dir(arm, seed)
        spec = PlannerSpec("model", str(run))
        drive_to_dir(
            self.drive_dir(arm, seed),
            self.drive_scenarios(),
            c.drive_episodes,
            c.drive_seed,
            c.workers,
            spec,
            None,
            self.progress,
        )

    # aggregate

    def complete_runs(self) -> dict[str, list[int]]:
        """``{arm: [seed, ...]}`` of the configured runs whose outputs are all there."""
        out: dict[str, list[int]] = {}
        for arm in self.cfg.arms:
            for s in self.cfg.seeds:
                if all(p.exists() for p in self._run_outputs(arm, s)):
                    out.setdefault(arm, []).append(s)
        return out

    def _run_outputs(self, arm: str, seed: int) -> list[Path]:
        d = self.drive_dir(arm, seed)
        return [
            self.eval_path(arm, seed, self.cfg.rig),
            self.eval_path(arm, seed, self.cfg.unseen_rig),
            d / "metrics.json",
            d / "episodes.jsonl",
        ]

    def _inputs_digest(self) -> str:
        """A digest of the aggregate's inputs (paths, sizes, mtimes of the complete runs' outputs)
        and of the config (but for :data:`COMPATIBLE_KEYS`, which only select the runs)."""
        from rsd.config import to_dict

        settings = {k: v for k, v in to_dict(self.cfg).items() if k not in COMPATIBLE_KEYS}
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for arm, seeds in self.complete_runs().items():
            for s in seeds:
                for p in self._run_outputs(arm, s):
                    st = p.stat()
                    h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _aggregated(self) -> bool:
        res = read_json(self.out / "results.json")
        return bool(res) and res.get("inputs_digest") == self._inputs_digest()

    def per_run(self) -> dict[str, dict[int, dict[str, dict[str, float]]]]:
        """``{arm: {seed: {group: {metric: value}}}}`` of every complete run."""
        from rsd.sim.closed_loop import EpisodeLog

        out: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
        for arm, seeds in self.complete_runs().items():
            for s in seeds:
                text = (self.drive_dir(arm, s) / "episodes.jsonl").read_text()
                logs = [EpisodeLog.from_json(line) for line in text.splitlines() if line]
                out.setdefault(arm, {})[s] = run_metrics(
                    read_json(self.eval_path(arm, s, self.cfg.rig)),
                    read_json(self.eval_path(arm, s, self.cfg.unseen_rig)),
                    logs,
                    self.cfg.long_tail,
                )
        return out

    def pooled_outcomes(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Closed-loop outcomes pooled over every complete seed of each arm (see
        :func:`pool_outcomes`)."""
        from rsd.sim.closed_loop import EpisodeLog

        out = {}
        for arm, seeds in self.complete_runs().items():
            logs = []
            for s in seeds:
                text = (self.drive_dir(arm, s) / "episodes.jsonl").read_text()
                logs += [EpisodeLog.from_json(line) for line in text.splitlines() if line]
            out[arm] = pool_outcomes(logs, self.cfg.long_tail)
        return out

    def aggregate(self) -> None:
        from rsd.config import to_dict

        per_run = self.per_run()
        agg = aggregate(per_run)
        pooled = self.pooled_outcomes()
        targets = check_targets(agg)
        for arm in ALSO_CHECKED:
            if arm in per_run:
                targets += check_targets(agg, arm)
        times = self.time_totals()
        res = {
            "command": self.command,
            "config": to_dict(self.cfg),
            "arms": {
                arm: {
                    "seeds": sorted(runs),
                    "runs": {str(s): str(self.run_dir(arm, s)) for s in sorted(runs)},
                }
                for arm, runs in per_run.items()
            },
            "metrics": agg,
            "pooled": pooled,
            "targets": targets,
            "time": times,
            "inputs_digest": self._inputs_digest(),
        }
        write_json(self.out / "results.json", res)
        md = results_markdown(agg, targets, times, self.command, list(per_run), pooled)
        (self.out / "results.md").write_text(md)
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "index.html").write_text(markdown_tables_html(md))

    def time_totals(self) -> dict[str, Any]:
        """Wall and CPU seconds over every stage marker of this directory (all sittings)."""
        from rsd.stages import STAGE_DIR, time_totals

        markers = [p for p in (self.out / STAGE_DIR).glob("*.json") if p.stem != "aggregate"]
        return time_totals(markers)

    # all of it

    def run_unit(self, arm: str, seed: int) -> None:
        """The stages of one run: train, evaluate on both rigs, drive."""
        c, tag = self.cfg, f"{arm}_seed{seed}"
        self.stage(
            f"train_{tag}",
            lambda: self.train(arm, seed),
            lambda: self._trained(arm, seed),
            kind="train",
        )
        if self.dry_run and not self.plan[-1][1]:
            print(f"        {self.train_command(arm, seed)}")
        for rig in (c.rig, c.unseen_rig):
            self.stage(
                f"eval_{tag}_{rig}",
                lambda r=rig: self.evaluate(arm, seed, r),
                lambda r=rig: self.eval_path(arm, seed, r).exists(),
                kind="eval",
            )
        self.stage(
            f"drive_{tag}",
            lambda: self.drive(arm, seed),
            lambda: (self.drive_dir(arm, seed) / "metrics.json").exists(),
            kind="drive",
        )

    def _unit_done(self, arm: str, seed: int) -> bool:
        probe = Experiment(self.cfg, self.out, progress=False, dry_run=True)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            probe.run_unit(arm, seed)
        return all(done for _, done in probe.plan)

    def _run_parallel(self, units: list[tuple[str, int]]) -> None:
        """Compute the runs not done yet ``workers`` at a time, each in its own process with
        one torch thread (on a small model one thread is about as fast as two, so this
        nearly doubles throughput on 2 cores); seed-major order, as submitted."""
        import contextlib
        import multiprocessing as mp
        import os
        import signal
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from rsd.config import dump_yaml

        todo = [u for u in units if not self._unit_done(*u)]
        if not todo:
            return
        self.say(f"{len(todo)} runs to compute, {self.cfg.workers} at a time")
        text = dump_yaml(self.cfg)
        pool = ProcessPoolExecutor(self.cfg.workers, mp_context=mp.get_context("spawn"))
        futures = {pool.submit(_run_unit, text, str(self.out), a, s): (a, s) for a, s in todo}
        failed: list[str] = []
        old = signal.signal(signal.SIGTERM, _interrupt)
        try:
            for fut in as_completed(futures):
                arm, seed = futures[fut]
                err = fut.exception()
                if isinstance(err, KeyboardInterrupt):  # a run was stopped: stop them all
                    raise KeyboardInterrupt
                if err is not None:
                    failed.append(f"{arm} seed {seed}: {err!r}")
                    self.say(f"run {arm} seed {seed}: FAILED ({err!r}); the others go on")
                else:
                    self.say(f"run {arm} seed {seed}: done")
        except KeyboardInterrupt:
            # queued runs are cancelled; running ones get SIGINT and save their checkpoint
            self.say("interrupted: stopping the runs in progress (checkpoints are saved)")
            for fut in futures:
                fut.cancel()
            for child in mp.active_children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            signal.signal(signal.SIGTERM, old)
        pool.shutdown()
        if failed:
            raise RuntimeError("runs failed (the others are complete):\n  " + "\n  ".join(failed))

    def run(self) -> Path:
        """Do every stage not done yet (in a dry run, list them); returns results.json's path."""
        if self.dry_run:
            print(f"experiment {self.out}: stages (done / to do), nothing is run")
        else:
            self._check_dir()
        self.stage("generate", self.generate, self._dataset_complete)
        self.stage("annotate", self.annotate, self._annotated)
        units = [(arm, s) for s in self.seeds for arm in self.arms]
        if self.cfg.workers > 1 and not self.dry_run:
            self._run_parallel(units)
        for arm, s in units:  # parallel: all done by now, this records their times
            self.run_unit(arm, s)
        self.stage("aggregate", self.aggregate, self._aggregated)
        return self.out / "results.json"


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler of the parallel section: stop like Ctrl-C (runs save checkpoints)."""
    raise KeyboardInterrupt


def _run_unit(cfg_yaml: str, out: str, arm: str, seed: int) -> None:
    """One run's stages in a pool process: one torch thread, driving in this process."""
    import dataclasses

    import torch
    import yaml

    from rsd.config import from_dict

    torch.set_num_threads(1)
    cfg = from_dict(ExperimentConfig, yaml.safe_load(cfg_yaml))
    exp = Experiment(dataclasses.replace(cfg, workers=1), out, progress=False)
    exp.label = f"{arm} seed {seed}"
    exp.run_unit(arm, seed)


def make_teacher_by_id(teacher_id: str):
    """The teacher whose ``teacher_id`` is ``teacher_id``: a built-in kind, or
    ``noisy(RATE,seed=S,BASE)`` as :class:`rsd.teacher.noisy.NoisyTeacher` names itself."""
    from rsd.teacher.factory import make_teacher

    m = re.fullmatch(r"noisy\(([0-9.eE+-]+),seed=(-?\d+),(.+)\)", teacher_id)
    if m:
        teacher = make_teacher(m.group(3), noise=float(m.group(1)), noise_seed=int(m.group(2)))
    else:
        teacher = make_teacher(teacher_id)
    if teacher.teacher_id != teacher_id:
        raise ConfigError(
            f"teacher {teacher_id!r}: cannot rebuild it (got {teacher.teacher_id!r}); "
            "annotate the dataset with it first ('rsd annotate')"
        )
    return teacher


# -- metrics of one run and over seeds (pure) ------------------------------------------------

GROUPS = {
    "open_loop": "Open loop, training rig (validation split)",
    "unseen_rig": "Open loop, unseen rig",
    "closed_loop_long_tail": "Closed loop, long-tail scenarios",
    "closed_loop_nominal": "Closed loop, nominal scenarios",
    "closed_loop_overall": "Closed loop, all scenarios",
    "collision_per_scenario": "Closed loop, collision rate (%) per scenario",
}
"""Metric groups of ``results.json`` / ``results.md``, in order, with their titles."""


def _closed_loop(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        "DS": num(summary.get("driving_score")),
        "SR (%)": num(summary.get("success_rate")),
        "collision (%)": num(summary.get("collision_rate")),
        "off-road (%)": num(summary.get("offroad_rate")),
        "route completion": num(summary.get("route_completion")),
        "episodes": num(summary.get("episodes")),
    }


def run_metrics(
    seen: Mapping[str, Any],
    unseen: Mapping[str, Any],
    logs: Sequence[Any],
    long_tail: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``{group: {metric: value}}`` of one run from its two evaluations (``rsd eval`` JSON on
    the training and on the unseen rig) and its closed-loop episode logs. Missing values are
    NaN. Units: metres, % and the detection scores as ``rsd eval`` gives them; the
    retentions are ratios (1: nothing lost on the unseen rig, below 1: worse there)."""
    from rsd.metrics.driving import driving_metrics

    plan, det = seen.get("planning") or {}, seen.get("detection") or {}
    uplan, udet = unseen.get("planning") or {}, unseen.get("detection") or {}
    open_loop = {
        "L2 (m)": num(plan.get("L2 (VAD avg)@avg")),
        "ADE (m)": num(plan.get("ADE")),
        "FDE (m)": num(plan.get("FDE")),
        "plan collision (%)": 100 * num(plan.get("Collision (VAD avg)@avg")),
        "mAP": num(det.get("mAP")),
        "NDS": num(det.get("NDS")),
        "mASE": num(det.get("mASE")),
        "mAVE (m/s)": num(det.get("mAVE")),
    }
    for k, v in (seen.get("risk") or {}).items():
        open_loop[k if k.startswith("risk") else f"risk {k}"] = num(v)
    ade_s, ade_u = open_loop["ADE (m)"], num(uplan.get("ADE"))
    nds_s, nds_u = open_loop["NDS"], num(udet.get("NDS"))
    unseen_rig = {
        "ADE (m)": ade_u,
        "L2 (m)": num(uplan.get("L2 (VAD avg)@avg")),
        "plan collision (%)": 100 * num(uplan.get("Collision (VAD avg)@avg")),
        "NDS": nds_u,
        "ADE retention": _ratio(ade_s, ade_u),
        "NDS retention": _ratio(nds_u, nds_s),
    }
    tail = [lg for lg in logs if lg.scenario in long_tail]
    nominal = [lg for lg in logs if lg.scenario not in long_tail]
    dm = driving_metrics(list(logs)) if logs else {"overall": {}, "per_scenario": {}}
    return {
        "open_loop": open_loop,
        "unseen_rig": unseen_rig,
        "closed_loop_long_tail": _closed_loop(driving_metrics(tail)["overall"] if tail else {}),
        "closed_loop_nominal": _closed_loop(driving_metrics(nominal)["overall"] if nominal else {}),
        "closed_loop_overall": _closed_loop(dm["overall"]),
        "collision_per_scenario": {
            k: num(v.get("collision_rate")) for k, v in sorted(dm["per_scenario"].items())
        },
    }


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (default 95 %) of a proportion ``k / n``; NaNs when ``n`` is 0."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (c - h) / d), min(1.0, (c + h) / d)


POOLED_OUTCOMES = ("vehicle_collision", "offroad", "success")


def pool_outcomes(logs: Sequence[Any], long_tail: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"long_tail" | "nominal" | "overall": {"episodes": n, outcome: {"count", "rate_pct",
    "ci95_pct": [lo, hi]}}}`` over episode logs pooled across seeds: the seed-to-seed std of a
    rate says how much training varies, the Wilson interval how much the episodes sampled
    do."""
    groups = {
        "long_tail": [lg for lg in logs if lg.scenario in long_tail],
        "nominal": [lg for lg in logs if lg.scenario not in long_tail],
        "overall": list(logs),
    }
    out: dict[str, dict[str, Any]] = {}
    for g, members in groups.items():
        n = len(members)
        row: dict[str, Any] = {"episodes": n}
        for outcome in POOLED_OUTCOMES:
            k = sum(lg.outcome == outcome for lg in members)
            lo, hi = wilson_interval(k, n)
            row[outcome] = {
                "count": k,
                "rate_pct": 100 * k / n if n else math.nan,
                "ci95_pct": [100 * lo, 100 * hi],
            }
        out[g] = row
    return out


def format_pooled(pooled: Mapping[str, Any], arms: Sequence[str]) -> str:
    """Markdown table of :func:`pool_outcomes` per arm: rate % [95 % interval] (count / n)."""
    head = "| arm | group | episodes | " + " | ".join(POOLED_OUTCOMES) + " |"
    lines = [head, "|" + "---|" * (3 + len(POOLED_OUTCOMES))]
    for arm in arms:
        for g in ("long_tail", "nominal"):
            row = (pooled.get(arm) or {}).get(g)
            if not row:
                continue
            cells = []
            for o in POOLED_OUTCOMES:
                c = row[o]
                lo, hi = (num(v) for v in c["ci95_pct"])
                rate = num(c["rate_pct"])
                cells.append(f"{rate:.1f} [{lo:.1f}, {hi:.1f}] ({c['count']})")
            lines.append(f"| {arm} | {g} | {row['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def summarise_values(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1) over the finite ``values``; NaN where undefined (no finite
    value; fewer than two for the std)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = statistics.fmean(xs) if xs else math.nan
    std = statistics.stdev(xs) if len(xs) > 1 else math.nan
    return mean, std


def delta_pct(value: float, base: float) -> float:
    """``(value - base) / |base|`` in %; NaN when either is NaN or ``base`` is 0."""
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return math.nan
    return 100.0 * (value - base) / abs(base)


def aggregate(
    per_run: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]],
    baseline: str = BASELINE,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{group: {metric: {arm: {"values": {seed: v}, "mean", "std", "delta_pct"}}}}`` from
    ``{arm: {seed: {group: {metric: v}}}}``; ``delta_pct`` is the arm's mean against the
    ``baseline`` arm's mean (:func:`delta_pct`; NaN without a baseline)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for arm, runs in per_run.items():
        for seed, groups in runs.items():
            for g, metrics in groups.items():
                for m, v in metrics.items():
                    cell = out.setdefault(g, {}).setdefault(m, {}).setdefault(arm, {})
                    cell.setdefault("values", {})[str(seed)] = num(v)
    for g in out.values():
        for cells in g.values():
            for cell in cells.values():
                cell["mean"], cell["std"] = summarise_values(list(cell["values"].values()))
            base = cells.get(baseline, {}).get("mean", math.nan)
            for cell in cells.values():
                cell["delta_pct"] = delta_pct(cell["mean"], base)
    return out


def _cell(agg: Mapping, group: str, metric: str, arm: str) -> dict[str, Any]:
    return agg.get(group, {}).get(metric, {}).get(arm) or {
        "mean": math.nan,
        "std": math.nan,
        "delta_pct": math.nan,
    }


def check_targets(
    agg: Mapping[str, Any], arm: str = CANDIDATE, baseline: str = BASELINE
) -> list[dict[str, Any]]:
    """The issue's targets for ``arm`` against ``baseline``: ``[{"target", "measured",
    "met"}]``; ``met`` is None when a value is missing (NaN)."""

    def pair(group: str, metric: str) -> tuple[dict, dict]:
        return _cell(agg, group, metric, arm), _cell(agg, group, metric, baseline)

    rows: list[dict[str, Any]] = []

    def rel(target: str, group: str, metric: str, at_most_pct: float) -> None:
        a, b = pair(group, metric)
        d = a["delta_pct"]
        rows.append(
            {
                "target": target,
                "measured": f"{_f(a['mean'])} vs {_f(b['mean'])} ({_pct(d)})",
                "met": None if math.isnan(num(d)) else bool(d <= at_most_pct),
            }
        )

    def cmp(target: str, group: str, metric: str, higher: bool, slack_std: bool = False) -> None:
        a, b = pair(group, metric)
        x, y = num(a["mean"]), num(b["mean"])
        slack = num(b["std"]) if slack_std else 0.0
        slack = 0.0 if math.isnan(slack) else slack
        if math.isnan(x) or math.isnan(y):
            met = None
        elif slack_std:
            met = x >= y - slack if higher else x <= y + slack
        else:
            met = x > y if higher else x < y
        rows.append({"target": target, "measured": f"{_f(x)} vs {_f(y)}", "met": met})

    rel("long-tail collision rate >= 30% lower", "closed_loop_long_tail", "collision (%)", -30)
    cmp("long-tail driving score higher", "closed_loop_long_tail", "DS", higher=True)
    cmp(
        "nominal driving score not lower (by more than 1 std of baseline)",
        "closed_loop_nominal",
        "DS",
        higher=True,
        slack_std=True,
    )
    rel("ADE >= 10% lower", "open_loop", "ADE (m)", -10)
    rel("L2 >= 10% lower", "open_loop", "L2 (m)", -10)
    cmp("mASE lower", "open_loop", "mASE", higher=False)
    cmp("mAVE lower", "open_loop", "mAVE (m/s)", higher=False)
    cmp("plan collision lower", "open_loop", "plan collision (%)", higher=False)
    cmp("unseen-rig ADE retention higher", "unseen_rig", "ADE retention", higher=True)
    for r in rows:
        r["target"] = f"{arm} vs {baseline}: {r['target']}"
    return rows


# -- formatting ------------------------------------------------------------------------------


def _f(x: Any) -> str:
    x = num(x)
    return "-" if math.isnan(x) else f"{x:.3f}"


def _pct(x: Any) -> str:
    x = num(x)
    return "-" if math.isnan(x) else f"{x:+.1f}%"


def format_cell(cell: Mapping[str, Any], with_delta: bool = True) -> str:
    """``mean ± std (Δ%)``; ``-`` for a missing number."""
    text = f"{_f(cell.get('mean'))} ± {_f(cell.get('std'))}"
    return f"{text} ({_pct(cell.get('delta_pct'))})" if with_delta else text


def format_table(agg: Mapping[str, Any], group: str, arms: Sequence[str]) -> str:
    """One markdown table: metrics as rows, arms as columns."""
    head = "| metric | " + " | ".join(arms) + " |"
    lines = [head, "|" + "---|" * (len(arms) + 1)]
    for metric, cells in (agg.get(group) or {}).items():
        row = [
            format_cell(_cell(agg, group, metric, a), with_delta=a != BASELINE)
            if a in cells
            else "-"
            for a in arms
        ]
        lines.append(f"| {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def results_markdown(
    agg: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    times: Mapping[str, Any],
    command: str,
    arms: Sequence[str],
    pooled: Mapping[str, Any] | None = None,
) -> str:
    """``results.md``: a table per metric group, the closed-loop outcomes pooled over seeds,
    the targets, the time spent, the command."""
    parts = [
        "# rsd experiment",
        "",
        "Cells: mean ± sample std over seeds (change of the mean vs baseline, %).",
    ]
    for g, title in GROUPS.items():
        if g in agg:
            parts += ["", f"## {title}", "", format_table(agg, g, arms)]
    if pooled:
        parts += [
            "",
            "## Closed-loop outcomes pooled over seeds",
            "",
            "Rate % [Wilson 95 % interval] over every episode of every seed.",
            "",
            format_pooled(pooled, arms),
        ]
    parts += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "no", None: "-"}[t["met"]]
        parts.append(f"| {t['target']} | {t['measured']} | {met} |")
    parts += ["", "## Time", "", format_times(times), "", "## Command", "", f"    {command}", ""]
    return "\n".join(parts)


def format_times(times: Mapping[str, Any]) -> str:
    """Wall and CPU time, in total and per stage kind, as a markdown table."""
    lines = ["| stages | count | wall (s) | CPU (s) |", "|---|---|---|---|"]
    for kind, t in [*times["by_kind"].items(), ("total", times["total"])]:
        lines.append(f"| {kind} | {t['stages']} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |")
    return "\n".join(lines)


def markdown_tables_html(md: str) -> str:
    """A plain HTML page of ``results.md`` (headings, tables, the command)."""
    import html

    body: list[str] = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells))
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("    "):
            body.append(f"<pre>{html.escape(line.strip())}</pre>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>rsd experiment</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    only: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    dry_run: bool = False,
    command: str | None = None,
) -> Experiment:
    """Run (or finish) the experiment in ``out``; prints the main table and the time spent."""
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
    for g in ("open_loop", "closed_loop_long_tail"):
        print(GROUPS[g])
        print(format_table(res["metrics"], g, arms))
        print()
    t = res["time"]["total"]
    print(
        f"stages: {len(exp.ran)} computed, {len(exp.plan) - len(exp.ran)} done before; "
        f"all sittings: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU"
    )
    for kind, k in res["time"]["by_kind"].items():
        wall, cpu = k["wall_s"], k["cpu_s"]
        print(f"  {kind:<10} {k['stages']:3d} stages {wall:9.1f} s wall {cpu:9.1f} s CPU")
    print(f"results: {exp.out / 'results.md'}, {exp.out / 'results.json'}")
    return exp


# -- command line ----------------------------------------------------------------------------

HELP = """\
Trains every arm (baseline, rsd and the ablations: rsd without the likelihood constraint, the
constraint without a RiskHead, rsd with 25% / 50% noisy teachers, rsd with the teacher's
scene risk also weighting the imitation terms, and that plus a class-balanced distillation
map loss) once per seed on one
dataset, evaluates each run open loop on the training rig and on an unseen rig and closed loop
on held-out seeds, and aggregates over seeds: mean, sample std and change vs baseline of every
metric, and the issue's targets met or not (OUT/results.md, results.json, report/index.html).

Time: the default (8 arms x 3 seeds = 24 runs, 6 epochs of a small model on 3,268 samples,
10 drive episodes per scenario) measured 70 min elapsed and 2 h 14 min CPU on this 2-core
machine (training 76 %, closed loop 20 %); 'quick' takes a few minutes. Stages are
resumable: re-run the same command after an interruption (Ctrl-C stops every run, each
saving its checkpoint). Use --dry-run to see what is done. --only / --seeds compute a part
now (the aggregate covers what exists). Arms can be added to a finished experiment with
arms.NAME.KEY=VALUE overrides; the others are not recomputed.

Bigger, on a GPU: override the model and schedule, e.g.
  rsd experiment default --out big train.epochs=40 train.batch_size=64 \\
      train.model.backbone.channels=64 train.model.backbone.depth=2 seeds=[0,1,2,3,4]
The runs use the training loop of 'rsd train' (CUDA when available). To train a single run on
N GPUs with DDP, train it first under torchrun into the run directory the experiment expects,
then let the experiment find it (a finished run is kept; the stage only records its marker):
  torchrun --nproc_per_node=N -m rsd.train --data big/data --out big/runs/rsd/seed0 \\
      rig=dense360 epochs=40 ... variant=rsd seed=0
'rsd experiment ... --dry-run' prints the exact 'rsd train' command of every run to do
(the experiment's overrides: train, then the arm's, then the seed).
Give CONFIG and the KEY=VALUE overrides together, before or after the options.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description or "") + "\n\n" + HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "config",
        nargs="?",
        default="default",
        metavar="CONFIG",
        help="a YAML file, or a built-in config: default, quick (default: default)",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. seeds=[0,1]"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("experiment"), metavar="DIR", help="output dir"
    )
    parser.add_argument("--only", default=None, metavar="ARM[,ARM]", help="compute these arms")
    parser.add_argument("--seeds", default=None, metavar="S[,S]", help="compute these seeds")
    parser.add_argument("--dry-run", action="store_true", help="list the stages, run nothing")
    parser.add_argument("--workers", type=int, default=None, help="processes (config: 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    config, overrides = args.config, list(args.overrides)
    if "=" in config:  # only overrides given: the default config
        config, overrides = "default", [config, *overrides]
    if args.workers is not None:
        overrides.append(f"workers={args.workers}")
    cfg = load_experiment_config(config, overrides)
    only = [a for a in args.only.split(",") if a] if args.only else None
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s] if args.seeds else None
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected integers like 0,1") from None
    command = shlex.join(
        ["rsd", "experiment", args.config, *args.overrides, "--out", str(args.out)]
        + (["--only", args.only] if args.only else [])
        + (["--seeds", args.seeds] if args.seeds else [])
        + (["--workers", str(args.workers)] if args.workers is not None else [])
    )
    run_experiment(
        cfg,
        args.out,
        only=only,
        seeds=seeds,
        progress=not args.no_progress,
        dry_run=args.dry_run,
        command=command,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.experiment ...``: the same as ``rsd experiment ...``."""
    from rsd.cli import main as cli_main

    return cli_main(["experiment", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
