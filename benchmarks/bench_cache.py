"""Annotation cache throughput: lookups/s of ``get`` and ``get_many`` (each lookup returns a
decoded :class:`~rsd.teacher.schema.RiskAssessment`), of ``missing``, and batched writes.

    python benchmarks/bench_cache.py [--frames 20000] [--objects 12] [--batch 64]

The cache is a fresh file in a temp directory, filled with ``--frames`` synthetic assessments
of ``--objects`` objects each (a rationale sentence per object, like a VLM's answer).
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from pathlib import Path

from rsd.teacher.cache import AnnotationCache
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory, Status

TEACHER, PROMPT = "bench", "v1"


def _assessment(k: int, n_objects: int, rng: random.Random) -> RiskAssessment:
    risks = sorted((rng.random() for _ in range(n_objects)), reverse=True)
    cats = list(RiskCategory)
    objects = [
        ObjectRisk(
            object_id=100 + j,
            risk=r,
            rank=j + 1,
            category=cats[j % len(cats)],
            rationale=f"object {100 + j} closes in at {rng.uniform(0, 9):.1f} m/s in the ego lane",
        )
        for j, r in enumerate(risks)
    ]
    status = Status.FAILED if k % 50 == 0 else Status.OK
    return RiskAssessment(
        frame_id=f"highway-{k // 100:05d}-{k % 100:04d}",
        teacher_id=TEACHER,
        prompt_version=PROMPT,
        scene_risk=risks[0] if risks else 0.0,
        objects=objects if status is Status.OK else [],
        status=status,
        failure_reason="timeout" if status is Status.FAILED else None,
        latency_s=rng.uniform(0.5, 2.0),
    )


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10,.0f} lookups/s  ({1e6 * seconds / n:6.1f} us each)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--objects", type=int, default=12, help="objects per assessment")
    parser.add_argument("--batch", type=int, default=64, help="assessments per transaction")
    parser.add_argument("--lookups", type=int, default=20_000, help="random get() calls")
    args = parser.parse_args()

    rng = random.Random(0)
    items = [_assessment(k, args.objects, rng) for k in range(args.frames)]
    ids = [a.frame_id for a in items]
    with tempfile.TemporaryDirectory() as tmp, AnnotationCache(Path(tmp) / "c.sqlite") as cache:
        t0 = time.perf_counter()
        for s in range(0, len(items), args.batch):
            cache.put_many(items[s : s + args.batch])
        dt = time.perf_counter() - t0
        n_batches = -(-len(items) // args.batch)
        size = (Path(tmp) / "c.sqlite").stat().st_size + (Path(tmp) / "c.sqlite-wal").stat().st_size
        print(
            f"{args.frames} assessments x {args.objects} objects, {size / 1e6:.1f} MB on disk; "
            f"journal {cache.journal_mode()}"
        )
        print(
            f"put_many ({args.batch}/txn): {args.frames / dt:10,.0f} rows/s "
            f"({1e3 * dt / n_batches:.2f} ms per transaction)"
        )

        del items  # lookups run without 20k live models making every GC pass longer
        gc.collect()
        probe = [rng.choice(ids) for _ in range(args.lookups)]
        t0 = time.perf_counter()
        for fid in probe:
            cache.get(fid, TEACHER, PROMPT)
        print(f"get:                 {_rate(len(probe), time.perf_counter() - t0)}")

        shuffled = ids[:]
        rng.shuffle(shuffled)
        t0 = time.perf_counter()
        got = cache.get_many(shuffled, TEACHER, PROMPT)
        print(f"get_many (all ids):  {_rate(len(got), time.perf_counter() - t0)}")
        del got

        t0 = time.perf_counter()
        n = 0
        for s in range(0, len(shuffled), args.batch):
            n += len(cache.get_many(shuffled[s : s + args.batch], TEACHER, PROMPT))
        print(f"get_many ({args.batch} ids):  {_rate(n, time.perf_counter() - t0)}")

        t0 = time.perf_counter()
        left = cache.missing(shuffled, TEACHER, PROMPT, retry_failed=True)
        dt = time.perf_counter() - t0
        print(f"missing (no JSON):   {_rate(len(shuffled), dt)}  -> {len(left)} to redo")


if __name__ == "__main__":
    main()
