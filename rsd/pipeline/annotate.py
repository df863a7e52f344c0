"""Annotation: run a risk teacher over a dataset into the annotation cache.

Frames are taken in the dataset's order; a shard ``(i, n)`` keeps frames ``j`` with
``j % n == i`` (several processes, or a Slurm array, may share one cache file). Frames already
in the cache for this teacher and prompt version are skipped, so the run is resumable: each
batch is committed in one transaction once the teacher has answered, and a run stopped at any
moment (even by ``kill -9``) loses at most the batch in flight and never duplicates a frame.
``retry_failed`` asks again for frames whose answer failed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from rsd.config import ConfigError
from rsd.scene import Frame
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.schema import RiskAssessment, Status, Teacher


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
