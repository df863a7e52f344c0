"""Resumable stages for the multi-step commands (``rsd demo``, ``rsd experiment``).

A :class:`Stage` is a named piece of work with a check that its outputs are there.
:class:`StageRunner` runs a stage unless it :meth:`~StageRunner.is_done`: its marker
``OUT/.stages/<name>.json`` exists and its outputs are complete. The marker records the
stage's kind, wall seconds and CPU seconds, so totals over a directory include the work of
earlier sittings.

CPU seconds of a stage: :func:`cpu_seconds` before and after, i.e. ``time.process_time()`` of
this process (every thread) plus ``resource.getrusage(RUSAGE_CHILDREN)`` user + system time
of the child processes that have been waited for (process pools, data-loader workers).
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsd.config import ConfigError

STAGE_DIR = ".stages"


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its waited-for children (user + system)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


@dataclass(frozen=True)
class Stage:
    """One resumable piece of work: ``fn`` computes it, ``outputs()`` says its outputs are
    complete; ``kind`` (default ``name``) groups stages in the time totals (``train``...)."""

    name: str
    fn: Callable[[], None]
    outputs: Callable[[], bool]
    kind: str | None = None


class StageRunner:
    """The stages of one output directory; :meth:`run_stage` does what is not done yet.

    ``dry_run``: :meth:`run_stage` only records and prints whether each stage is done or to do.
    """

    label = "stages"
    """Prefix of the progress lines (``[label 12.3 s] ...``)."""

    def __init__(self, out: str | Path, *, progress: bool = True, dry_run: bool = False) -> None:
        self.out, self.progress, self.dry_run = Path(out), progress, dry_run
        self.t0 = time.monotonic()
        self.ran: list[str] = []
        """Stages computed by this call (the others were skipped as done)."""
        self.seconds: dict[str, float] = {}
        """Wall seconds of every stage met by this call (from the marker when skipped)."""
        self.cpu: dict[str, float | None] = {}
        """CPU seconds of the same stages (None: a marker written before CPU time was kept)."""
        self.plan: list[tuple[str, bool]] = []
        """``(stage, done)`` of every stage met, in order (filled in dry runs too)."""

    def marker(self, name: str) -> Path:
        return self.out / STAGE_DIR / f"{name}.json"

    def say(self, msg: str) -> None:
        print(f"[{self.label} {time.monotonic() - self.t0:7.1f} s] {msg}", flush=True)

    def is_done(self, stage: Stage) -> bool:
        """Whether ``stage``'s marker exists and its outputs are complete."""
        return self.marker(stage.name).exists() and stage.outputs()

    def run_stage(self, stage: Stage) -> None:
        """Compute ``stage`` unless it :meth:`is_done`; write its marker with its times."""
        name, k = stage.name, len(self.plan) + 1
        done = self.is_done(stage)
        self.plan.append((name, done))
        if self.dry_run:
            print(f"  {k:3d} {name:<40} {'done' if done else 'to do'}", flush=True)
            return
        if done:
            rec = json.loads(self.marker(name).read_text())
            self.seconds[name], self.cpu[name] = rec["seconds"], rec.get("cpu_seconds")
            self.say(f"stage {k} {name}: done before ({rec['seconds']:.1f} s), skipped")
            return
        self.say(f"stage {k} {name} ...")
        t, c = time.monotonic(), cpu_seconds()
        stage.fn()
        dt, dc = time.monotonic() - t, cpu_seconds() - c
        if not stage.outputs():
            raise RuntimeError(f"{self.label} stage {name} finished without its outputs")
        self._write_marker(stage, dt, dc)
        self.seconds[name], self.cpu[name] = dt, dc
        self.ran.append(name)
        self.say(f"stage {k} {name}: {dt:.1f} s wall, {dc:.1f} s CPU")

    def _write_marker(self, stage: Stage, wall: float, cpu: float) -> None:
        marker = self.marker(stage.name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        rec = {
            "kind": stage.kind or stage.name,
            "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        marker.write_text(json.dumps(rec) + "\n")


def check_config_dir(
    out: Path, filename: str, text: str, what: str, same: Callable[[str], bool] | None = None
) -> None:
    """Store ``text`` (a config as YAML) in ``out/filename``, or refuse with a
    :class:`ConfigError` when the directory holds another config. ``same(stored_text)``
    decides whether a stored config is compatible (default: equal text); a compatible one is
    replaced by ``text``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    if path.exists():
        old = path.read_text()
        if old == text:
            return
        if not (same(old) if same is not None else False):
            raise ConfigError(
                f"{out} holds {what} of another config ({path}); choose another --out or delete it"
            )
    path.write_text(text)


def time_totals(markers: Iterable[Path]) -> dict[str, Any]:
    """Wall and CPU seconds summed over stage markers: ``{"total": {"wall_s", "cpu_s",
    "stages"}, "by_kind": {kind: {...}}}``; a marker without CPU time adds none (and is
    counted in ``cpu_missing``)."""

    def empty() -> dict[str, Any]:
        return {"wall_s": 0.0, "cpu_s": 0.0, "stages": 0, "cpu_missing": 0}

    total, by_kind = empty(), {}
    for path in sorted(markers):
        rec = json.loads(path.read_text())
        kind = rec.get("kind") or path.stem
        for acc in (total, by_kind.setdefault(kind, empty())):
            acc["wall_s"] += float(rec.get("seconds", 0.0))
            acc["stages"] += 1
            if rec.get("cpu_seconds") is None:
                acc["cpu_missing"] += 1
            else:
                acc["cpu_s"] += float(rec["cpu_seconds"])
    for acc in (total, *by_kind.values()):
        acc["wall_s"], acc["cpu_s"] = round(acc["wall_s"], 2), round(acc["cpu_s"], 2)
    return {"total": total, "by_kind": by_kind}
