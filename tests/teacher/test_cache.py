"""Annotation cache: exact JSON round trips, WAL, missing(), the never-downgrade rule, stats,
paging, and two processes writing into one file at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rsd.teacher.cache as cache_mod
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory, Status

ROOT = Path(__file__).resolve().parents[2]
T, P = "fake", "v1"


def _a(
    frame_id: str,
    status: Status = Status.OK,
    *,
    teacher: str = T,
    prompt: str = P,
    reason: str | None = None,
    latency: float | None = None,
    risk: float = 0.5,
) -> RiskAssessment:
    objects = []
    if status is not Status.FAILED:
        objects = [
            ObjectRisk(
                object_id=7,
                risk=risk,
                rank=1,
                category=RiskCategory.CUT_IN,
                rationale="cuts in 12 m ahead, «closing» at 3 m/s",
                flags=["clamped"] if status is Status.PARTIAL else [],
            ),
            ObjectRisk(object_id=3, risk=risk / 2, rank=2),
        ]
    return RiskAssessment(
        frame_id=frame_id,
        teacher_id=teacher,
        prompt_version=prompt,
        scene_risk=risk,
        objects=objects,
        status=status,
        failure_reason=reason,
        raw_text='{"objects": [...]}' if status is not Status.OK else None,
        latency_s=latency,
        counters={"missing": 1} if status is Status.PARTIAL else {},
    )


def test_round_trip_is_exact_json(tmp_path) -> None:
    items = [
        _a("f0", latency=0.25),
        _a("f1", Status.PARTIAL, reason="missing_objects"),
        _a("f2", Status.FAILED, reason="timeout"),
    ]
    with AnnotationCache(tmp_path / "sub" / "c.sqlite") as cache:
        cache.put_many(items)
        for a in items:
            back = cache.get(a.frame_id, T, P)
            assert back == a and back.model_dump_json() == a.model_dump_json()
        assert cache.get("f0", T, "v2") is None and cache.get("f0", "other", P) is None
        assert cache.get("nope", T, P) is None
        assert len(cache) == 3
    # reopened from disk: the same
    with AnnotationCache(tmp_path / "sub" / "c.sqlite") as cache:
        assert [cache.get(a.frame_id, T, P) for a in items] == items


def test_wal_mode_is_on(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    with AnnotationCache(path) as cache:
        assert cache.journal_mode() == "wal"
        cache.put(_a("f0"))
    # persistent: a plain connection sees it too
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_keeps_order_drops_duplicates_and_retries_failed_on_request(tmp_path) -> None:
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([_a("b"), _a("d", Status.FAILED, reason="timeout"), _a("e", Status.PARTIAL)])
        cache.put(_a("a", teacher="other"))  # another teacher's answer does not count
        cache.put(_a("c", prompt="v0"))  # nor an older prompt's
        ids = ["e", "a", "b", "c", "d", "a", "f"]
        assert cache.missing(ids, T, P) == ["a", "c", "f"]
        assert cache.missing(iter(ids), T, P, retry_failed=True) == ["a", "c", "d", "f"]
        assert cache.missing([], T, P) == []


def test_failed_is_replaced_by_ok_but_never_the_reverse_unless_forced(tmp_path) -> None:
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        cache.put(_a("f", Status.FAILED, reason="timeout"))
        cache.put(_a("f", Status.OK, risk=0.9))
        assert cache.get("f", T, P).status is Status.OK
        # a later failure or repair does not overwrite a good answer...
        cache.put_many([_a("f", Status.FAILED, reason="http_500"), _a("f", Status.PARTIAL)])
        kept = cache.get("f", T, P)
        assert kept.status is Status.OK and kept.scene_risk == 0.9
        # ...an equally good one does (a re-run with the same teacher)
        cache.put(_a("f", Status.OK, risk=0.7))
        assert cache.get("f", T, P).scene_risk == 0.7
        # partial sits between the two
        cache.put_many([_a("g", Status.FAILED, reason="x"), _a("g", Status.PARTIAL)])
        cache.put(_a("g", Status.FAILED, reason="y"))
        assert cache.get("g", T, P).status is Status.PARTIAL
        # force overwrites whatever is there
        cache.put(_a("f", Status.FAILED, reason="timeout"), force=True)
        assert cache.get("f", T, P).status is Status.FAILED
        assert len(cache) == 2  # replaced, never duplicated


def test_get_many_in_order_over_several_chunks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache_mod, "_CHUNK", 7)
    items = [_a(f"f{k:03d}", risk=k / 100) for k in range(40)]
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(items)
        ask = [f"f{k:03d}" for k in (39, 3, 3, 17, 99, 0)] + [a.frame_id for a in items[20:]]
        got = cache.get_many(iter(ask), T, P)
        assert list(got) == list(dict.fromkeys(f for f in ask if f != "f099"))
        assert all(got[f] == items[int(f[1:])] for f in got)
        assert cache.get_many([], T, P) == {}


def test_stats_count_statuses_reasons_and_mean_latency(tmp_path) -> None:
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(
            [
                _a("a", latency=1.0),
                _a("b", latency=3.0),
                _a("c", Status.FAILED, reason="timeout", latency=2.0),
                _a("d", Status.FAILED, reason="timeout"),
                _a("e", Status.FAILED, reason="not_json"),
                _a("f", Status.PARTIAL, reason="missing_objects"),
            ],
            latencies=[9.0, 9.0, 9.0, 5.0, None, None],  # used only where latency_s is None
        )
        cache.put(_a("z", teacher="other"))
        s = cache.stats(T, P)
        assert s.total == 6
        assert s.by_status == {"ok": 2, "failed": 3, "partial": 1}
        assert s.count(Status.FAILED) == 3 and s.count("partial") == 1
        assert s.failure_reasons == {"timeout": 2, "not_json": 1, "missing_objects": 1}
        assert s.mean_latency_s == pytest.approx((1 + 3 + 2 + 5) / 4)
        assert "ok 2, partial 1, failed 3" in s.text() and "timeout 2" in s.text()
        sub = cache.stats(T, P, frame_ids=["a", "e", "nope"])
        assert sub.by_status == {"ok": 1, "failed": 1} and sub.failure_reasons == {"not_json": 1}
        assert cache.stats(T, "v9").total == 0 and cache.stats(T, "v9").mean_latency_s is None
        assert cache.teachers() == [("fake", "v1", 6), ("other", "v1", 1)]
        with pytest.raises(ValueError, match="latencies"):
            cache.put_many([_a("a")], latencies=[1.0, 2.0])


def test_iter_assessments_pages_in_frame_order(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache_mod, "_CHUNK", 4)
    items = [_a(f"f{k:02d}", Status.FAILED if k % 3 == 0 else Status.OK) for k in range(13)]
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(reversed(items))
        cache.put(_a("f05", prompt="v2"))
        assert list(cache.iter_assessments(T, P)) == items
        failed = list(cache.iter_assessments(T, P, status=Status.FAILED))
        assert [a.frame_id for a in failed] == ["f00", "f03", "f06", "f09", "f12"]
        assert [a.frame_id for a in cache.iter_assessments(T, "v2")] == ["f05"]


N_BATCHES = 60
_WRITER = """
import sys, time
from pathlib import Path
from rsd.teacher.cache import AnnotationCache
from rsd.teacher.schema import RiskAssessment
path, who, go, n_batches = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
Path(f"{go}.ready{who}").touch()
while not go.exists():
    time.sleep(0.005)
cache = AnnotationCache(path)  # both processes create the brand-new file at once
for b in range(n_batches):
    batch = [
        RiskAssessment(frame_id=f"p{who}-{b:02d}-{k}", teacher_id="t", prompt_version="v",
                       scene_risk=0.5, raw_text="x" * 500)
        for k in range(10)
    ]
    batch.append(RiskAssessment(frame_id=f"shared-{b:02d}", teacher_id="t", prompt_version="v"))
    cache.put_many(batch)
cache.close()
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path) -> None:
    path, go = tmp_path / "c.sqlite", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(who), str(go), str(N_BATCHES)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for who in (0, 1)
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{go}.ready{w}").exists() for w in (0, 1)):  # both at the barrier
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.005)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    with AnnotationCache(path) as cache:
        assert len(cache) == 2 * N_BATCHES * 10 + N_BATCHES
        ids = [f"p{w}-{b:02d}-{k}" for w in (0, 1) for b in range(N_BATCHES) for k in range(10)]
        assert cache.missing(ids + [f"shared-{b:02d}" for b in range(N_BATCHES)], "t", "v") == []
        assert all(a.raw_text == "x" * 500 for a in cache.get_many(ids, "t", "v").values())
