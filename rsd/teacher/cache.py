"""The annotation cache: every :class:`RiskAssessment` a teacher gave, in one SQLite file.

One table keyed by ``(teacher_id, prompt_version, frame_id)`` holds the assessment's JSON
(``RiskAssessment.model_dump_json()``, so a round trip is exact) beside its status, failure
reason, latency and creation time, which :meth:`AnnotationCache.stats` and
:meth:`AnnotationCache.missing` read without decoding any JSON.

Writes: :meth:`AnnotationCache.put_many` commits a whole batch in one transaction, so a writer
killed at any moment (``kill -9``) leaves either all of a batch or none of it. A new answer
replaces a stored one unless it is worse (``failed`` < ``partial`` < ``ok``): an ``ok`` retry
replaces a ``failed`` answer, never the reverse, unless ``force=True``.

Several processes may write at once (``rsd annotate --shard i/n`` into one file): the database
runs in WAL mode (readers never block the writer) with a busy timeout, and each write takes the
write lock up front (``BEGIN IMMEDIATE``). With ``synchronous=NORMAL`` a committed batch survives
a killed process; only a power cut may lose the last few. WAL needs a local file system (not
NFS): on a cluster, give each node its own file and merge with :meth:`AnnotationCache.put_many`.
"""

from __future__ import annotations

import gc
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsd.teacher.schema import RiskAssessment, Status

CACHE_NAME = "annotations.sqlite"
"""Default cache file, inside the dataset directory."""

__all__ = ["AnnotationCache", "CacheStats", "QUALITY"]

QUALITY: dict[Status, int] = {Status.FAILED: 0, Status.PARTIAL: 1, Status.OK: 2}
"""How good an answer is; a stored answer is only replaced by one at least as good."""
_CHUNK = 500
"""Frame ids per ``IN (...)`` query (SQLite allows 32,766 variables since 3.32)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assessments (
    teacher_id     TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    frame_id       TEXT NOT NULL,
    status         TEXT NOT NULL,
    quality        INTEGER NOT NULL,
    failure_reason TEXT,
    latency_s      REAL,
    created        REAL NOT NULL,
    assessment     TEXT NOT NULL,
    PRIMARY KEY (teacher_id, prompt_version, frame_id)
)
"""
# A rowid table, not WITHOUT ROWID: answers are 1-4 KB, and a WITHOUT ROWID row over ~1 KB
# spills into overflow pages, which made lookups ~3x slower.
_COLUMNS = (
    "teacher_id, prompt_version, frame_id, status, quality, failure_reason, latency_s, created, "
    "assessment"
)
_INSERT = f"INSERT INTO assessments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT = (
    _INSERT + " ON CONFLICT (teacher_id, prompt_version, frame_id) DO UPDATE SET "
    "status = excluded.status, quality = excluded.quality, "
    "failure_reason = excluded.failure_reason, latency_s = excluded.latency_s, "
    "created = excluded.created, assessment = excluded.assessment "
    "WHERE excluded.quality >= assessments.quality"
)
_REPLACE = _INSERT.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while decoding many answers at once: every few
    hundred new objects it would otherwise walk the whole (growing) heap, which made bulk
    decoding ~4x slower. Pydantic models make no reference cycles, so nothing leaks."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class CacheStats:
    """What the cache holds for one (teacher, prompt version)."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    """``ok`` / ``partial`` / ``failed`` -> count (absent statuses are 0)."""
    failure_reasons: dict[str, int] = field(default_factory=dict)
    """Reason -> count over the ``failed`` and ``partial`` answers that give one."""
    mean_latency_s: float | None = None
    """Mean over the answers with a latency; None when none has one."""

    def count(self, status: Status | str) -> int:
        return self.by_status.get(Status(status).value, 0)

    def text(self) -> str:
        parts = [f"{s.value} {self.count(s)}" for s in Status]
        lines = [f"{self.total} assessments: " + ", ".join(parts)]
        if self.failure_reasons:
            reasons = sorted(self.failure_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append("  reasons: " + ", ".join(f"{r} {n}" for r, n in reasons))
        if self.mean_latency_s is not None:
            lines.append(f"  mean latency {self.mean_latency_s * 1000:.1f} ms")
        return "\n".join(lines)


class AnnotationCache:
    """Teacher answers on disk, one row per (teacher id, prompt version, frame id).

    ``AnnotationCache(path)`` creates the file (and its directory) when needed. Use it as a
    context manager or call :meth:`close`. One object serves one thread; open one per process.
    """

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        # a larger page cache and memory-mapped reads roughly double random lookups
        self._db.execute("PRAGMA cache_size = -32768")  # KiB
        self._db.execute("PRAGMA mmap_size = 268435456")
        self._setup()

    def _setup(self) -> None:
        # switching to WAL needs a moment alone with the file: retry while a peer sets it up
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise sqlite3.OperationalError(f"journal mode is {mode}, not wal")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- writing ----------------------------------------------------------------------------

    def put_many(
        self,
        assessments: Iterable[RiskAssessment],
        *,
        force: bool = False,
        latencies: Sequence[float | None] | None = None,
    ) -> None:
        """Store ``assessments`` in one transaction (all or none).

        A stored answer is replaced only by one at least as good (see :data:`QUALITY`), or by
        anything with ``force``. ``latencies`` (one per assessment) fill the latency column
        where an assessment carries no ``latency_s`` of its own; the JSON is stored as given.
        """
        items = list(assessments)
        if latencies is not None and len(latencies) != len(items):
            raise ValueError(f"{len(latencies)} latencies for {len(items)} assessments")
        now = time.time()
        rows = []
        for k, a in enumerate(items):
            latency = a.latency_s
            if latency is None and latencies is not None:
                latency = latencies[k]
            rows.append(
                (
                    a.teacher_id,
                    a.prompt_version,
                    a.frame_id,
                    a.status.value,
                    QUALITY[a.status],
                    a.failure_reason,
                    latency,
                    now,
                    a.model_dump_json(),
                )
            )
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_REPLACE if force else _UPSERT, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, assessment: RiskAssessment, *, force: bool = False) -> None:
        """Store one assessment (see :meth:`put_many`)."""
        self.put_many([assessment], force=force)

    # -- reading ----------------------------------------------------------------------------

    def get(self, frame_id: str, teacher_id: str, prompt_version: str) -> RiskAssessment | None:
        """The stored answer, or None."""
        row = self._db.execute(
            "SELECT assessment FROM assessments "
            "WHERE teacher_id = ? AND prompt_version = ? AND frame_id = ?",
            (teacher_id, prompt_version, frame_id),
        ).fetchone()
        return None if row is None else RiskAssessment.model_validate_json(row[0])

    def _rows(
        self, columns: str, frame_ids: Iterable[str], teacher_id: str, prompt_version: str
    ) -> Iterator[tuple[Any, ...]]:
        ids = list(dict.fromkeys(frame_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT frame_id, {columns} FROM assessments "
                f"WHERE teacher_id = ? AND prompt_version = ? AND frame_id IN ({marks})",
                (teacher_id, prompt_version, *chunk),
            )

    def get_many(
        self, frame_ids: Iterable[str], teacher_id: str, prompt_version: str
    ) -> dict[str, RiskAssessment]:
        """Frame id -> stored answer, for the ids that have one (in the order asked)."""
        ids = list(dict.fromkeys(frame_ids))
        found = dict(self._rows("assessment", ids, teacher_id, prompt_version))
        with _gc_paused():
            return {
                fid: RiskAssessment.model_validate_json(found[fid]) for fid in ids if fid in found
            }

    def statuses(
        self, frame_ids: Iterable[str], teacher_id: str, prompt_version: str
    ) -> dict[str, Status]:
        """Frame id -> status of its stored answer (no JSON decoded)."""
        rows = self._rows("status", frame_ids, teacher_id, prompt_version)
        return {fid: Status(s) for fid, s in rows}

    def missing(
        self,
        frame_ids: Iterable[str],
        teacher_id: str,
        prompt_version: str,
        retry_failed: bool = False,
    ) -> list[str]:
        """The ids among ``frame_ids`` (order kept, duplicates dropped) with no stored answer;
        with ``retry_failed``, also those whose answer failed."""
        ids = list(dict.fromkeys(frame_ids))
        have = self.statuses(ids, teacher_id, prompt_version)
        return [
            fid for fid in ids if fid not in have or (retry_failed and have[fid] is Status.FAILED)
        ]

    def stats(
        self,
        teacher_id: str,
        prompt_version: str,
        frame_ids: Iterable[str] | None = None,
    ) -> CacheStats:
        """Counts by status and failure reason and the mean latency of one teacher's answers
        (all of them, or those of ``frame_ids``)."""
        if frame_ids is None:
            rows: Iterable[tuple[Any, ...]] = self._db.execute(
                "SELECT frame_id, status, failure_reason, latency_s FROM assessments "
                "WHERE teacher_id = ? AND prompt_version = ?",
                (teacher_id, prompt_version),
            )
        else:
            rows = self._rows(
                "status, failure_reason, latency_s", frame_ids, teacher_id, prompt_version
            )
        by_status: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        latencies: list[float] = []
        for _, status, reason, latency in rows:
            by_status[status] += 1
            if reason is not None and status != Status.OK.value:
                reasons[reason] += 1
            if latency is not None:
                latencies.append(latency)
        return CacheStats(
            total=sum(by_status.values()),
            by_status=dict(by_status),
            failure_reasons=dict(reasons),
            mean_latency_s=sum(latencies) / len(latencies) if latencies else None,
        )

    def iter_assessments(
        self, teacher_id: str, prompt_version: str, status: Status | None = None
    ) -> Iterator[RiskAssessment]:
        """Every stored answer of one teacher (optionally of one status), by frame id."""
        where = "teacher_id = ? AND prompt_version = ? AND frame_id > ?"
        params: list[str] = [teacher_id, prompt_version]
        if status is not None:
            where += " AND status = ?"
            params.append(Status(status).value)
        # keyset pages: bounded memory, and no read transaction held open between pages
        last = ""
        while True:
            page = self._db.execute(
                f"SELECT frame_id, assessment FROM assessments WHERE {where} "
                f"ORDER BY frame_id LIMIT {_CHUNK}",
                (params[0], params[1], last, *params[2:]),
            ).fetchall()
            for _, text in page:
                yield RiskAssessment.model_validate_json(text)
            if len(page) < _CHUNK:
                return
            last = page[-1][0]

    def teachers(self) -> list[tuple[str, str, int]]:
        """(teacher id, prompt version, number of answers) for everything in the cache."""
        return list(
            self._db.execute(
                "SELECT teacher_id, prompt_version, COUNT(*) FROM assessments "
                "GROUP BY teacher_id, prompt_version ORDER BY teacher_id, prompt_version"
            )
        )

    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM assessments").fetchone()[0]

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnnotationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnnotationCache({str(self.path)!r})"
