"""Dataset generation: record expert episodes into a sharded, resumable dataset.

The job list is every (scenario, seed) pair, episode-major: job ``j`` is episode
``j // S`` of scenario ``j % S`` with seed ``cfg.seed + j // S``. A shard ``(i, n)`` runs the
jobs with ``j % n == i`` (a Slurm array over one output directory works). Each job writes one
shard atomically (see :mod:`rsd.data.store`), so a run stopped at any moment, even by
``kill -9``, resumes where it stopped without losing or duplicating a keyframe. The manifest
is rebuilt from the shards on disk, periodically and at the end. On a re-run every shard
is checked against the manifest's sha256; one that differs (or does not decode) is recorded
again.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import multiprocessing as mp
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rsd.config import ConfigError, dump_yaml, to_dict
from rsd.data.store import (
    atomic_write,
    build_manifest,
    prepare_directory,
    remove_stale_temps,
    scan_shards,
    shard_name,
    write_manifest,
    write_shard,
)
from rsd.sim.spec import builtin_scenarios, load_scenario

DEFAULT_RECORDER = "rsd.sim.recorder:record_episode"
CONFIG_NAME = "generate.yaml"
MANIFEST_EVERY_S = 10.0
"""How often (s) the manifest is rewritten during a run (and always at its end)."""
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

EpisodeFn = Callable[[Any, int], Any]
"""``(scenario name or YAML path, seed) -> RecordedEpisode`` (``.frames``, ``.outcome``)."""


@dataclass(frozen=True)
class GenerateConfig:
    """What a dataset is made of; a directory only ever holds data of one such config."""

    scenarios: tuple[str, ...] = ("all",)
    """Built-in scenario names; ``all`` expands to the whole suite."""
    scenario_files: tuple[str, ...] = ()
    """Custom scenario YAML files (``rsd.sim.spec``), recorded in addition to ``scenarios``."""
    episodes_per_scenario: int = 12
    seed: int = 0
    """Episode ``e`` of every scenario uses seed ``seed + e``."""
    recorder: str = DEFAULT_RECORDER
    """``module:function`` recording one episode: ``(scenario, seed) -> RecordedEpisode``."""


@dataclass(frozen=True)
class Job:
    """One episode to record: job ``index`` of the plan."""

    index: int
    scenario: str
    seed: int
    source: str
    """What the recorder is given: the scenario name or the path of its YAML file."""

    @property
    def file(self) -> str:
        return shard_name(self.scenario, self.seed)


@dataclass
class GenerateSummary:
    """What one ``generate`` call did (counts of episodes unless named otherwise)."""

    planned: int
    mine: int
    skipped: int
    recorded: int
    keyframes_new: int
    keyframes_total: int
    bytes_total: int
    seconds: float
    complete: bool
    failed: list[dict[str, Any]]

    def text(self) -> str:
        lines = [
            f"episodes: {self.recorded} recorded, {self.skipped} already done, "
            f"{len(self.failed)} failed (this process: {self.mine} of {self.planned} planned)",
            f"keyframes: {self.keyframes_new} new, {self.keyframes_total} in the dataset; "
            f"{self.bytes_total / 1e6:.1f} MB on disk; {self.seconds:.1f} s",
            "dataset complete" if self.complete else "dataset INCOMPLETE: re-run to finish",
        ]
        lines += [f"  failed {f['scenario']} seed {f['seed']}: {f['error']}" for f in self.failed]
        return "\n".join(lines)


def resolve(
    cfg: GenerateConfig, validate: bool = True
) -> tuple[GenerateConfig, list[tuple[str, str]]]:
    """Expand ``all``, read scenario files' names; return the config and (name, source).
    With ``validate``, built-in names are checked by loading their specs."""
    names: list[str] = []
    for s in cfg.scenarios:
        if s == "all":
            names += builtin_scenarios()
        else:
            names.append(s)
    names = list(dict.fromkeys(names))
    if names and validate:
        for s in names:
            load_scenario(s)  # unknown names fail here, before any work starts
    pairs = [(s, s) for s in names]
    if cfg.scenario_files:
        pairs += [(load_scenario(p).name, str(p)) for p in cfg.scenario_files]
    if not pairs:
        raise ConfigError("scenarios: nothing to record")
    seen: set[str] = set()
    for name, _ in pairs:
        if not _NAME_RE.match(name):
            raise ConfigError(f"scenarios: {name!r} is not a usable scenario name")
        if name in seen:
            raise ConfigError(f"scenarios: {name!r} is listed twice")
        seen.add(name)
    if cfg.episodes_per_scenario < 1 or cfg.seed < 0:
        raise ConfigError("episodes_per_scenario must be >= 1 and seed >= 0")
    return dataclasses.replace(cfg, scenarios=tuple(names)), pairs


def plan(cfg: GenerateConfig, pairs: list[tuple[str, str]]) -> list[Job]:
    """The deterministic job list: episode-major, so any prefix covers every scenario."""
    return [
        Job(e * len(pairs) + k, name, cfg.seed + e, src)
        for e in range(cfg.episodes_per_scenario)
        for k, (name, src) in enumerate(pairs)
    ]


def _identity(cfg: GenerateConfig) -> dict[str, Any]:
    files = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in cfg.scenario_files}
    return {"config": to_dict(cfg), "scenario_files_sha256": files}


def _load_recorder(spec: str) -> EpisodeFn:
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr or "record_episode")
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"recorder: cannot load {spec!r}: {e}") from None


_WORKER: dict[str, Any] = {}


def _init_worker(out: str, episode_fn: EpisodeFn | str, ignore_sigint: bool) -> None:
    if ignore_sigint:  # Ctrl-C is handled once, by the parent
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    fn = _load_recorder(episode_fn) if isinstance(episode_fn, str) else episode_fn
    _WORKER.update(out=Path(out), fn=fn)


def _run_job(job: Job) -> dict[str, Any]:
    """Record one episode and write its shard; failures are returned, not raised."""
    try:
        episode = _WORKER["fn"](job.source, job.seed)
        frames = list(episode.frames)
        for f in frames:
            if (f.scenario, f.seed) != (job.scenario, job.seed):
                raise ValueError(
                    f"recorder returned frame {f.frame_id} for job {job.scenario}/{job.seed}"
                )
        if len({f.frame_id for f in frames}) != len(frames):
            raise ValueError("recorder returned duplicate frame ids")
        entry = write_shard(
            _WORKER["out"] / job.file,
            frames,
            scenario=job.scenario,
            seed=job.seed,
            outcome=dict(episode.outcome),
        )
        return {"ok": True, "job": job.index, "entry": entry}
    except Exception as e:
        return {
            "ok": False,
            "job": job.index,
            "scenario": job.scenario,
            "seed": job.seed,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }


def generate(
    cfg: GenerateConfig,
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
    episode_fn: EpisodeFn | None = None,
) -> GenerateSummary:
    """Record the jobs of ``shard`` (i, n) not yet on disk into ``out``; rewrite the manifest.

    ``episode_fn`` replaces ``cfg.recorder`` (tests); with ``workers > 1`` it must be picklable.
    """
    t0 = time.monotonic()
    out = Path(out)
    cfg, pairs = resolve(cfg, validate=episode_fn is None and cfg.recorder == DEFAULT_RECORDER)
    run = _open_run(cfg, plan(cfg, pairs), out, shard, force)
    todo = [j for j in run.mine if j.file not in run.found]
    bar = tqdm(
        total=len(run.mine),
        initial=len(run.mine) - len(todo),
        unit="ep",
        desc="generate",
        disable=not progress,
        dynamic_ncols=True,
    )
    fn: EpisodeFn | str = episode_fn if episode_fn is not None else cfg.recorder
    failed, new_frames, manifest = _record(run, _results(todo, out, fn, workers), bar)
    return GenerateSummary(
        planned=len(run.jobs),
        mine=len(run.mine),
        skipped=len(run.mine) - len(todo),
        recorded=len(todo) - len(failed),
        keyframes_new=new_frames,
        keyframes_total=manifest["totals"]["keyframes"],
        bytes_total=manifest["totals"]["bytes"],
        seconds=time.monotonic() - t0,
        complete=manifest["complete"],
        failed=failed,
    )


@dataclass
class _Run:
    """A dataset directory being filled: the plan, this process's share, what is on disk."""

    out: Path
    ident: dict[str, Any]
    jobs: list[Job]
    mine: list[Job]
    known: dict[str, Any]
    expected: dict[str, int]
    """Shard file -> job index, of every job of the plan."""
    found: dict[str, Any]
    """Shard file -> manifest entry, of the shards on disk (grows as jobs finish)."""

    def manifest(self, failed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        # shards added after generation (DAgger rounds: they carry an origin) are kept
        added = [e for f, e in self.known.items() if f not in self.expected and e.get("origin")]
        return build_manifest(self.ident, len(self.jobs), self.found, failed or (), added)


def _open_run(
    cfg: GenerateConfig, jobs: list[Job], out: Path, shard: tuple[int, int], force: bool
) -> _Run:
    """Check the directory holds data of ``cfg`` only (or is empty), drop stale temp files
    and corrupt shards, write the first manifest and the config: the state to resume from."""
    ident = _identity(cfg)
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"--shard {i}/{n}: need 0 <= i < n")
    known = prepare_directory(out, ident, force, extra_files=(CONFIG_NAME,))
    mine = [j for j in jobs if j.index % n == i]
    # a sharded run leaves the temp files of other processes' jobs alone
    remove_stale_temps(out, {j.file for j in mine} if n > 1 else None)
    expected = {j.file: j.index for j in jobs}
    found, corrupt = scan_shards(out, expected, known, remove_corrupt=True)
    for err in corrupt:
        print(f"rsd generate: {err}; recording it again", file=sys.stderr)
    run = _Run(out, ident, jobs, mine, known, expected, found)
    write_manifest(out, run.manifest())  # first: it holds the config
    if not (out / CONFIG_NAME).exists():
        atomic_write(out / CONFIG_NAME, dump_yaml(cfg).encode())
    return run


def _record(
    run: _Run, results: Generator[dict[str, Any], None, None], bar: Any
) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """Take the job ``results`` as they come, rewriting the manifest now and then and at the
    end (even on Ctrl-C); returns (failures, new keyframes, the final manifest)."""
    failed: list[dict[str, Any]] = []
    new_frames = 0
    last_write = time.monotonic()
    try:
        for res in results:
            if res["ok"]:
                run.found[res["entry"]["file"]] = {**res["entry"], "job": res["job"]}
                new_frames += res["entry"]["keyframes"]
            else:
                failed.append(res)
                print(
                    f"\nrsd generate: {res['scenario']} seed {res['seed']} failed:\n"
                    f"{res['traceback']}",
                    file=sys.stderr,
                )
            bar.update(1)
            bar.set_postfix(keyframes=new_frames, failed=len(failed))
            if time.monotonic() - last_write > MANIFEST_EVERY_S:
                write_manifest(run.out, run.manifest(failed))
                last_write = time.monotonic()
    finally:
        results.close()  # on Ctrl-C: stop the pool before the final manifest
        bar.close()
        # also picks up shards other --shard processes wrote meanwhile
        run.found, _ = scan_shards(run.out, run.expected, run.known, trusted=run.found)
        manifest = run.manifest(failed)
        write_manifest(run.out, manifest)
    return failed, new_frames, manifest


def _results(todo: list[Job], out: Path, fn: EpisodeFn | str, workers: int):
    """Results of ``todo`` in completion order: in-process, or from a spawn pool."""
    if workers <= 1 or len(todo) <= 1:
        _init_worker(str(out), fn, ignore_sigint=False)
        for job in todo:
            yield _run_job(job)
        return
    ctx = mp.get_context("spawn")  # no fork of a process that may hold threads (torch, tqdm)
    with ctx.Pool(
        min(workers, len(todo)),
        initializer=_init_worker,
        initargs=(str(out), fn, True),
        maxtasksperchild=50,
    ) as pool:
        yield from pool.imap_unordered(_run_job, todo, chunksize=1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (the ``--shard`` of ``rsd generate`` and
    ``rsd annotate``); an :class:`argparse.ArgumentTypeError` otherwise."""
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or not int(m[1]) < int(m[2]):
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n with 0 <= i < n")
    return int(m[1]), int(m[2])
