"""Resumable stages for the multi-step commands (``rsd demo``, ``rsd experiment``).

A stage is a named piece of work with a check that its outputs are there. :class:`StageRunner`
runs a stage unless ``OUT/.stages/<name>.json`` (its marker) exists and its outputs are
complete; the marker records the stage's kind, wall seconds and CPU seconds, so totals over a
directory include the work of earlier sittings.

CPU seconds of a stage: :func:`cpu_seconds` before and after, i.e. ``time.process_time()`` of
this process (every thread) plus ``resource.getrusage(RUSAGE_CHILDREN)`` user + system time
of the child processes that have been waited for (process pools, data-loader workers).
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rsd.config import ConfigError

STAGE_DIR = ".stages"


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its waited-for children (user + system)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


class StageRunner:
    """The stages of one output directory; ``stage()`` does what is not done yet.

    ``dry_run``: ``stage()`` only records and prints whether each stage is done or to do.
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

    def stage(
        self,
        name: str,
        fn: Callable[[], None],
        outputs: Callable[[], bool],
        kind: str | None = None,
    ) -> None:
        """Run ``fn`` unless its marker and ``outputs()`` say it is done. ``kind`` (default
        ``name``) groups stages in the time totals (``train``, ``eval``, ...)."""
        marker = self.marker(name)
        k = len(self.plan) + 1
        done = marker.exists() and outputs()
        self.plan.append((name, done))
        if self.dry_run:
            print(f"  {k:3d} {name:<40} {'done' if done else 'to do'}", flush=True)
            return
        if done:
            rec = json.loads(marker.read_text())
            self.seconds[name], self.cpu[name] = rec["seconds"], rec.get("cpu_seconds")
            self.say(f"stage {k} {name}: done before ({rec['seconds']:.1f} s), skipped")
            return
        self.say(f"stage {k} {name} ...")
        t, c = time.monotonic(), cpu_seconds()
        fn()
        dt, dc = time.monotonic() - t, cpu_seconds() - c
        if not outputs():
            raise RuntimeError(f"{self.label} stage {name} finished without its outputs")
        marker.parent.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rec = {
            "kind": kind or name,
            "seconds": round(dt, 2),
            "cpu_seconds": round(dc, 2),
            "finished": when,
        }
        marker.write_text(json.dumps(rec) + "\n")
        self.seconds[name], self.cpu[name] = dt, dc
        self.ran.append(name)
        self.say(f"stage {k} {name}: {dt:.1f} s wall, {dc:.1f} s CPU")


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


# -- small helpers ---------------------------------------------------------------------------


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": value}`` (booleans as ``true``/``false`` override text)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = str(v).lower() if isinstance(v, bool) else v
    return out


def clean(x: Any) -> Any:
    """Strict JSON: NaN / inf -> null, tuples -> lists, numpy / torch scalars -> floats."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as strict JSON (see :func:`clean`)."""
    from rsd.data.store import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(clean(obj), indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    """The JSON object at ``path``; ``{}`` when there is no file."""
    return json.loads(path.read_text()) if path.exists() else {}


def num(x: Any) -> float:
    """``x`` as a float; NaN for None, booleans and anything not a number."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


# -- the run stages shared by rsd demo and rsd experiment ------------------------------------


def run_finished(run: Path) -> bool:
    """Whether ``run`` holds a checkpoint of a training run that did all its steps."""
    from rsd.checkpoint import checkpoint_path, load_checkpoint

    path = checkpoint_path(run)
    if not path.exists():
        return False
    ck = load_checkpoint(path, optimizer=False)
    return ck.meta.get("step") == ck.meta.get("total_steps")


def train_run(
    cfg: Any, data: Path, run: Path, *, progress: bool, say: Callable[[str], None]
) -> None:
    """Train ``cfg`` (a ``TrainConfig``) on ``data`` into ``run``, resuming its checkpoint
    when there is one; an interrupted run raises KeyboardInterrupt, a failed one RuntimeError."""
    from rsd.checkpoint import checkpoint_path
    from rsd.train import train

    resume = checkpoint_path(run).exists()
    if resume:
        say(f"resuming {run} from its checkpoint")
    result = train(cfg, data, run, resume=resume, progress=progress)
    if result.status == "interrupted":
        raise KeyboardInterrupt
    if result.status != "done":
        raise RuntimeError(f"training {run} stopped early ({result.status})")


def evaluate_run(
    run: Path, data: Path, rig: str, path: Path, max_samples: int | None, progress: bool
) -> None:
    """Open-loop evaluation of ``run`` on the validation split of ``data`` under ``rig``,
    written atomically to ``path``."""
    from rsd.evaluate import evaluate

    res = evaluate(run, data, rig=rig, split="val", max_samples=max_samples, progress=progress)
    write_json(path, res)
