"""DAgger rounds of an experiment: the student drives, the privileged expert labels.

Round ``r`` (1 .. ``dagger_rounds``), two resumable stages:

1. ``dagger{r}_train``: train a student, the baseline arm's recipe at the first training seed,
   on the dataset as it stands (the expert's episodes plus rounds ``1 .. r-1``), into
   ``OUT/dagger/round{r}``.
2. ``dagger{r}_collect``: that student drives ``dagger_episodes`` training seeds of every
   scenario (:func:`round_jobs`; never a validation or evaluation seed), with the expert's
   control mixed in with probability ``dagger_beta ** r`` per 0.5 s re-plan period; every
   visited keyframe is labelled with the expert's plan from that exact state
   (:func:`rsd.sim.relabel.student_episode`). Each episode is one shard
   ``dagger{r}-{scenario}-{seed}.npz`` of the same store, its frame ids
   ``{scenario}~dagger{r}-{seed}-{step}``, its origin (``kind``, ``round``, ``student``,
   ``expert_prob``) in the shard's outcome and in its manifest entry
   (:func:`rsd.data.store.add_shards`).

After the last round every arm trains from scratch on the aggregate, with its own recipe: the
arms then differ from a run without DAgger in their data alone, and no arm inherits the
student's optimiser state or schedule. Same config, same data: rollouts and the mixture's
coin are seeded. A shard already on disk that decodes is kept on a re-run; a regenerated
manifest (``rsd generate`` lists only its own shards) makes the collect stage add them again.

DART (``dart_episodes`` > 0, :func:`dart_stages`): before any DAgger round, the privileged
expert with injected noise (:mod:`rsd.sim.noisy_expert`) drives ``dart_episodes`` training seeds
of every scenario through the same collection (:func:`collect_shards`), every visited keyframe
labelled with the clean expert's plan: recovery states (too slow, too fast, too close, off the
lane centre) without a trained student. Origin ``kind: dart`` with the noise's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rsd.config import to_dict
from rsd.data.dataset import split_of
from rsd.data.store import (
    CorruptShardError,
    add_shards,
    read_manifest,
    shard_entry,
    shard_name,
    write_shard,
)
from rsd.pipeline.experiment_config import BASELINE, ExperimentConfig
from rsd.pipeline.layout import ExperimentLayout
from rsd.pipeline.runs import run_finished, train_run
from rsd.pipeline.stages import Stage
from rsd.policy import PlannerSpec
from rsd.scene import frame_id
from rsd.sim.noisy_expert import NoisyExpertRecipe
from rsd.sim.relabel import student_episode
from rsd.sim.spec import builtin_scenarios


def round_tag(r: int) -> str:
    return f"dagger{r}"


def student_dir(layout: ExperimentLayout, r: int) -> Path:
    """The training run of round ``r``'s student."""
    return layout.out / "dagger" / f"round{r}"


def round_jobs(cfg: ExperimentConfig, r: int) -> list[tuple[str, int]]:
    """(scenario, seed) driven in round ``r``: ``dagger_episodes`` of the dataset's training
    seeds per scenario, taken in turn from where round ``r - 1`` stopped."""
    names, train = _scenarios(cfg), _train_seeds(cfg)
    n = cfg.dagger_episodes
    picks = [train[((r - 1) * n + k) % len(train)] for k in range(n)]
    return [(name, seed) for seed in picks for name in names]


def _scenarios(cfg: ExperimentConfig) -> list[str]:
    return [n for s in cfg.scenarios for n in (builtin_scenarios() if s == "all" else [s])]


def _train_seeds(cfg: ExperimentConfig) -> list[int]:
    """The dataset's training seeds (all of them if it has none)."""
    seeds = [cfg.data_seed + e for e in range(cfg.episodes_per_scenario)]
    return [s for s in seeds if split_of(frame_id("x", s, 0)) == "train"] or seeds


def shard_file(r: int, scenario: str, seed: int) -> str:
    return f"{round_tag(r)}-{shard_name(scenario, seed)}"


@dataclass(frozen=True)
class CollectJob:
    """One labelled rollout, one shard: ``planner`` (a picklable
    :class:`~rsd.sim.planners.PlannerRecipe`) drives ``scenario`` / ``seed`` mixed with the
    expert (``expert_prob``, coin seeded by ``mix_seed``); frame ids carry ``tag``; ``origin``
    goes into the shard's outcome and its manifest entry."""

    scenario: str
    seed: int
    path: str
    tag: str
    planner: Any
    expert_prob: float
    mix_seed: int
    origin: dict[str, Any]


def _collect(job: CollectJob) -> dict[str, Any]:
    rec = student_episode(
        job.scenario, job.seed, job.planner.factory(), job.expert_prob, job.mix_seed, job.tag
    )
    outcome = {**rec.outcome, "origin": job.origin}
    entry = write_shard(job.path, rec.frames, scenario=job.scenario, seed=job.seed, outcome=outcome)
    return {**entry, "origin": job.origin}


def collect_shards(
    jobs: list[CollectJob], data: Path, workers: int, desc: str, progress: bool = True
) -> int:
    """Each job's rollout into its shard in ``data`` (a shard on disk that decodes is kept, a
    corrupt one redone), ``workers`` processes at a time; adds them all to the manifest;
    returns their labelled keyframes."""
    done: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if Path(job.path).exists():
            try:
                e = shard_entry(job.path)
                done[job.path] = {**e, "origin": e["outcome"].get("origin")}
            except CorruptShardError:
                Path(job.path).unlink()
    todo = [j for j in jobs if j.path not in done]
    with tqdm(total=len(todo), unit="ep", desc=desc, disable=not progress) as bar:
        results = []
        if workers <= 1 or len(todo) <= 1:
            for j in todo:
                results.append(_collect(j))
                bar.update()
        else:
            init = todo[0].planner.init_worker
            with ProcessPoolExecutor(workers, initializer=init) as pool:
                for e in pool.map(_collect, todo):
                    results.append(e)
                    bar.update()
    done.update({j.path: e for j, e in zip(todo, results, strict=True)})
    entries = [done[j.path] for j in jobs]
    add_shards(data, entries)
    return sum(e["keyframes"] for e in entries)


def collect_round(
    cfg: ExperimentConfig, data: Path, student: Path, r: int, progress: bool = True
) -> int:
    """Round ``r``'s student rollouts into shards of ``data`` (kept when already there);
    adds them to the manifest; returns the number of labelled keyframes of the round."""
    p = cfg.dagger_beta**r
    spec = PlannerSpec("model", str(student))
    origin = {"kind": "dagger", "round": r, "student": str(student), "expert_prob": p}
    jobs = [
        CollectJob(s, k, str(data / shard_file(r, s, k)), round_tag(r), spec, p, r, origin)
        for s, k in round_jobs(cfg, r)
    ]
    return collect_shards(jobs, data, cfg.workers, f"dagger {r}", progress)


def round_collected(cfg: ExperimentConfig, data: Path, r: int) -> bool:
    """Whether every shard of round ``r`` is in the manifest of ``data``."""
    return _in_manifest(data, [shard_file(r, s, k) for s, k in round_jobs(cfg, r)])


def _in_manifest(data: Path, names: list[str]) -> bool:
    """Whether every shard file of ``names`` is in the manifest of ``data``."""
    try:
        files = {e["file"] for e in read_manifest(data)["shards"]}
    except (FileNotFoundError, ValueError):
        return False
    return all(n in files for n in names)


def dagger_stages(
    cfg: ExperimentConfig, layout: ExperimentLayout, progress: bool, say: Callable[[str], None]
) -> list[Stage]:
    """The two stages of every round (none with ``dagger_rounds = 0``)."""
    stages: list[Stage] = []
    data = layout.data
    for r in range(1, cfg.dagger_rounds + 1):
        run = student_dir(layout, r)
        tc = cfg.train_config(BASELINE, cfg.seeds[0])

        def train(run: Path = run, tc: Any = tc) -> None:
            train_run(tc, data, run, progress=progress, say=say)

        def collect(run: Path = run, r: int = r) -> None:
            n = collect_round(cfg, data, run, r, progress)
            say(f"dagger round {r}: {n} labelled keyframes")

        stages.append(
            Stage(f"{round_tag(r)}_train", train, lambda run=run: run_finished(run), "dagger")
        )
        stages.append(
            Stage(
                f"{round_tag(r)}_collect",
                collect,
                lambda r=r: round_collected(cfg, data, r),
                "dagger",
            )
        )
    return stages


# DART: the noisy expert drives -------------------------------------------------------------


def dart_jobs(cfg: ExperimentConfig, data: Path) -> list[CollectJob]:
    """``dart_episodes`` noisy-expert rollouts per scenario on the dataset's training seeds,
    taken in turn; pass ``m`` (1, 2, ... once the seeds run out) seeds the noise and names the
    shard ``dart{m}-{scenario}-{seed}.npz`` (frame ids ``{scenario}~dart{m}-{seed}-{step}``)."""
    train = _train_seeds(cfg)
    jobs = []
    for k in range(cfg.dart_episodes):
        seed, m = train[k % len(train)], k // len(train) + 1
        recipe = NoisyExpertRecipe(cfg.dart_noise, m)
        origin = {"kind": "dart", "pass": m, "noise": to_dict(cfg.dart_noise)}
        for name in _scenarios(cfg):
            path = str(data / f"dart{m}-{shard_name(name, seed)}")
            jobs.append(CollectJob(name, seed, path, f"dart{m}", recipe, 0.0, m, origin))
    return jobs


def dart_stages(
    cfg: ExperimentConfig, layout: ExperimentLayout, progress: bool, say: Callable[[str], None]
) -> list[Stage]:
    """The ``dart_collect`` stage (none with ``dart_episodes = 0``): after generation, before
    DAgger and training."""
    if cfg.dart_episodes == 0:
        return []
    data = layout.data

    def collect() -> None:
        n = collect_shards(dart_jobs(cfg, data), data, cfg.workers, "dart", progress)
        say(f"dart: {n} labelled keyframes")

    def collected() -> bool:
        return _in_manifest(data, [Path(j.path).name for j in dart_jobs(cfg, data)])

    return [Stage("dart_collect", collect, collected, "dagger")]
