"""``rsd annotate``: run a risk teacher over a dataset into the annotation cache.

Frames are taken in the dataset's order; ``--shard i/n`` keeps frames ``j`` with
``j % n == i`` (several processes, or a Slurm array, may share one cache file). Frames already
in the cache for this teacher and prompt version are skipped, so the run is resumable: each
batch is committed in one transaction once the teacher has answered, and a run stopped at any
moment (even by ``kill -9``) loses at most the batch in flight and never duplicates a frame.
``--retry-failed`` asks again for frames whose answer failed.

``rsd annotate DATASET --show FRAME_ID --out PNG`` draws one frame instead (see
:mod:`rsd.annotate_show`): the scene image a VLM teacher sees, the teacher's per-object table
and the BEV risk map, annotating the frame first if it is not cached.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rsd.config import ConfigError
from rsd.generate import _parse_shard
from rsd.scene import Frame
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.schema import RiskAssessment, Status, Teacher

CACHE_NAME = "annotations.sqlite"
"""Default cache file, inside the dataset directory."""


class FrameSource(Protocol):
    """What :func:`annotate` reads: a :class:`~rsd.data.store.FrameStore` or alike."""

    @property
    def frame_ids(self) -> Sequence[str]: ...
    def index_of(self, frame_id: str) -> int: ...
    def __getitem__(self, i: int) -> Frame: ...


@dataclass
class AnnotateSummary:
    """What one ``annotate`` call did."""

    teacher_id: str
    prompt_version: str
    frames: int
    """Frames of this shard (after ``--limit``)."""
    cached: int
    """Of those, already in the cache and not asked again."""
    annotated: int = 0
    """Answers written by this call."""
    by_status: Counter[str] = field(default_factory=Counter)
    """Status -> count over this call's answers."""
    reasons: dict[str, Counter[str]] = field(default_factory=dict)
    """Status (``failed``, ``partial``) -> reason -> count over this call's answers."""
    latency_total_s: float = 0.0
    seconds: float = 0.0
    """Wall time of the annotation loop."""
    failed_in_cache: int = 0
    """Frames of this shard whose stored answer is ``failed`` after the call."""

    @property
    def frames_per_s(self) -> float:
        return self.annotated / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_total_s / self.annotated if self.annotated else None

    def text(self) -> str:
        counts = ", ".join(f"{s.value} {self.by_status.get(s.value, 0)}" for s in Status)
        lines = [
            f"teacher {self.teacher_id} (prompt {self.prompt_version}): {self.annotated} frames "
            f"annotated ({counts}), {self.cached} already cached, of {self.frames}",
        ]
        for status, reasons in sorted(self.reasons.items()):
            ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(f"  {status} by reason: " + ", ".join(f"{r} {n}" for r, n in ranked))
        if self.annotated:
            lines.append(
                f"  mean latency {1000 * (self.mean_latency_s or 0.0):.1f} ms/frame, "
                f"{self.frames_per_s:.1f} frames/s over {self.seconds:.1f} s"
            )
        if self.failed_in_cache:
            lines.append(
                f"  {self.failed_in_cache} frames have a failed answer: re-run with "
                "--retry-failed to ask again"
            )
        return "\n".join(lines)


def select_frames(
    frame_ids: Sequence[str], shard: tuple[int, int] = (0, 1), limit: int | None = None
) -> list[str]:
    """The ids of frames ``j`` with ``j % n == i``, the first ``limit`` of them."""
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n")
    mine = list(frame_ids[i::n])
    return mine if limit is None else mine[: max(limit, 0)]


def check_answers(teacher: Teacher, batch: list[str], out: list[RiskAssessment]) -> None:
    """A teacher that answers for other frames or under another id is a programming error."""
    got = [a.frame_id for a in out]
    if sorted(got) != sorted(batch):
        raise RuntimeError(
            f"teacher {teacher.teacher_id!r} answered for {got[:4]}... when asked {batch[:4]}..."
        )
    for a in out:
        if (a.teacher_id, a.prompt_version) != (teacher.teacher_id, teacher.prompt_version):
            raise RuntimeError(
                f"teacher {teacher.teacher_id!r}/{teacher.prompt_version!r} returned an "
                f"assessment labelled {a.teacher_id!r}/{a.prompt_version!r}"
            )


def annotate(
    store: FrameSource,
    teacher: Teacher,
    cache: AnnotationCache,
    *,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 16,
    retry_failed: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> AnnotateSummary:
    """Annotate the frames of ``shard`` missing from ``cache``, one transaction per batch."""
    from tqdm import tqdm

    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: must be >= 1")
    tid, pv = teacher.teacher_id, teacher.prompt_version
    mine = select_frames(store.frame_ids, shard, limit)
    todo = cache.missing(mine, tid, pv, retry_failed=retry_failed)
    summary = AnnotateSummary(tid, pv, frames=len(mine), cached=len(mine) - len(todo))
    bar = tqdm(
        total=len(mine),
        initial=summary.cached,
        unit="frame",
        desc=f"annotate {tid}",
        disable=not progress,
        dynamic_ncols=True,
    )
    t_start = time.monotonic()
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            frames = [store[store.index_of(fid)] for fid in batch]
            t0 = time.monotonic()
            answers = teacher.assess(frames)
            share = (time.monotonic() - t0) / len(batch)
            check_answers(teacher, batch, answers)
            latencies = [share if a.latency_s is None else a.latency_s for a in answers]
            cache.put_many(answers, latencies=latencies)  # the batch, all or nothing
            for a, latency in zip(answers, latencies, strict=True):
                summary.by_status[a.status.value] += 1
                if a.status is not Status.OK:
                    reason = a.failure_reason or "unknown"
                    summary.reasons.setdefault(a.status.value, Counter())[reason] += 1
                summary.latency_total_s += latency
            summary.annotated += len(batch)
            counts = {st.value: summary.by_status[st.value] for st in Status}
            bar.set_postfix(counts, refresh=False)
            bar.update(len(batch))
    finally:
        summary.seconds = time.monotonic() - t_start
        bar.close()
    statuses = cache.statuses(mine, tid, pv)
    summary.failed_in_cache = sum(s is Status.FAILED for s in statuses.values())
    return summary


# -- command line ---------------------------------------------------------------------------

# CLI flag -> (teacher kind, option name of its config)
BACKEND_FLAGS: dict[str, tuple[str, str]] = {
    "base_url": ("openai", "base_url"),
    "model": ("openai", "model"),
    "api_key_env": ("openai", "api_key_env"),
    "timeout": ("openai", "timeout_s"),
    "max_retries": ("openai", "max_retries"),
    "concurrency": ("openai", "concurrency"),
    "no_json_schema": ("openai", "json_schema"),
    "model_dir": ("transformers", "model_dir"),
    "device": ("transformers", "device"),
    "dtype": ("transformers", "dtype"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="dataset directory")
    parser.add_argument(
        "--teacher",
        default="privileged",
        metavar="KIND",
        help="privileged (default, offline physics), openai or transformers",
    )
    parser.add_argument("--noise", type=float, default=0.0, metavar="RATE", help="noisy wrapper")
    parser.add_argument("--noise-seed", type=int, default=0, metavar="S")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="frames per call")
    parser.add_argument("--cache", type=Path, metavar="PATH", help=f"default DATASET/{CACHE_NAME}")
    parser.add_argument(
        "--shard",
        type=_parse_shard,
        default=(0, 1),
        metavar="i/n",
        help="frames j with j %% n == i",
    )
    parser.add_argument("--retry-failed", action="store_true", help="ask again where it failed")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N frames (of shard)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--show", metavar="FRAME_ID", help="draw this frame's risk to --out")
    parser.add_argument("--out", type=Path, metavar="PNG", help="with --show: the PNG to write")
    oa = parser.add_argument_group("openai teacher (any OpenAI-compatible endpoint)")
    oa.add_argument("--base-url", metavar="URL", help="e.g. http://localhost:8000/v1")
    oa.add_argument("--model", metavar="NAME", help="model name served at the endpoint")
    oa.add_argument("--api-key-env", metavar="VAR", help="environment variable with the key")
    oa.add_argument("--timeout", type=float, metavar="S", help="per request (s)")
    oa.add_argument("--max-retries", type=int, metavar="N")
    oa.add_argument("--concurrency", type=int, metavar="N", help="requests in flight")
    oa.add_argument(
        "--no-json-schema", action="store_const", const=False, help="no structured output"
    )
    hf = parser.add_argument_group("transformers teacher (local model directory)")
    hf.add_argument("--model-dir", metavar="DIR")
    hf.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:1...")
    hf.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"))


def teacher_from_args(args: argparse.Namespace) -> Teacher:
    """The teacher the flags describe; a backend flag given for another teacher is an error."""
    from rsd.teacher.factory import check_teacher_name, make_teacher

    kind = check_teacher_name(args.teacher)
    options: dict[str, Any] = {}
    for flag, (owner, option) in BACKEND_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if owner != kind:
            name = "--" + flag.replace("_", "-")
            raise ConfigError(f"{name} applies to --teacher {owner}, not {kind}")
        options[option] = value
    if kind == "transformers" and "model_dir" not in options:
        raise ConfigError("--teacher transformers needs --model-dir")
    return make_teacher(kind, noise=args.noise, noise_seed=args.noise_seed, **options)


def open_store(path: Path) -> Any:
    """The dataset at ``path``, or a ConfigError naming it."""
    from rsd.data.store import FrameStore

    if not path.is_dir():
        raise ConfigError(f"dataset {path}: no such directory")
    try:
        return FrameStore(path)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"dataset {path}: {e}") from None


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be >= 1")
    if args.out is not None and args.show is None:
        raise ConfigError("--out goes with --show FRAME_ID")
    store = open_store(args.dataset)
    teacher = teacher_from_args(args)
    with AnnotationCache(args.cache or args.dataset / CACHE_NAME) as cache:
        if args.show is not None:
            from rsd.annotate_show import show_frame

            out = args.out or Path(f"{args.show}-risk.png")
            a = show_frame(store, teacher, cache, args.show, out)
            print(f"wrote {out} ({args.show}, teacher {a.teacher_id}, {a.status.value})")
            return 0
        summary = annotate(
            store,
            teacher,
            cache,
            shard=args.shard,
            batch_size=args.batch_size,
            retry_failed=args.retry_failed,
            limit=args.limit,
            progress=not args.no_progress,
        )
    print(summary.text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.annotate ...``: the same as ``rsd annotate ...``."""
    from rsd.cli import main as cli_main

    return cli_main(["annotate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
