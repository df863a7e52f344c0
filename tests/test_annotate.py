"""``rsd annotate``: resumable after kill -9, shards, summary counts, retries, the teacher
factory, errors, and (where the teachers exist) the privileged teacher and ``--show``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rsd.cli import main
from rsd.config import ConfigError
from rsd.data.store import FrameStore
from rsd.pipeline.annotate import annotate, select_frames
from rsd.pipeline.generate import GenerateConfig, generate
from rsd.scene import Frame
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.factory import make_teacher
from rsd.teacher.schema import ObjectRisk, RiskAssessment, Status

ROOT = Path(__file__).resolve().parents[1]
FAKE = "tests.test_annotate:FakeTeacher"


def fake_status(frame_id: str) -> tuple[Status, str | None]:
    """What :class:`FakeTeacher` answers for a frame: about 1 in 5 time out, 1 in 10 is not
    JSON, 1 in 10 is repaired."""
    k = zlib.crc32(frame_id.encode()) % 10
    if k < 2:
        return Status.FAILED, "timeout"
    if k == 2:
        return Status.FAILED, "not_json"
    if k == 3:
        return Status.PARTIAL, "missing_objects"
    return Status.OK, None


class FakeTeacher:
    """Deterministic stand-in teacher: risk from each agent's distance, failures by frame id
    (see :func:`fake_status`) unless ``fail=False``; sleeps ``RSD_FAKE_DELAY`` s per batch."""

    teacher_id = "fake"
    prompt_version = "fake-v1"

    def __init__(self, fail: bool = True) -> None:
        self.fail = fail
        self.delay = float(os.environ.get("RSD_FAKE_DELAY", "0"))
        self.asked: list[str] = []

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        time.sleep(self.delay)
        self.asked += [f.frame_id for f in frames]
        return [self._one(f) for f in frames]

    def _one(self, frame: Frame) -> RiskAssessment:
        status, reason = fake_status(frame.frame_id) if self.fail else (Status.OK, None)
        if status is Status.FAILED:
            return RiskAssessment(
                frame_id=frame.frame_id,
                teacher_id=self.teacher_id,
                prompt_version=self.prompt_version,
                status=status,
                failure_reason=reason,
                raw_text="I cannot see the image",
            )
        risks = {a.id: round(1.0 / (1.0 + abs(a.x) / 10.0), 6) for a in frame.agents}
        order = sorted(risks, key=lambda i: (-risks[i], i))
        return RiskAssessment(
            frame_id=frame.frame_id,
            teacher_id=self.teacher_id,
            prompt_version=self.prompt_version,
            scene_risk=max(risks.values(), default=0.0),
            objects=[
                ObjectRisk(object_id=i, risk=risks[i], rank=r + 1, rationale=f"{i} is near")
                for r, i in enumerate(order)
            ],
            status=status,
            failure_reason=reason,
        )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """~60 synthetic keyframes in 24 shards (the fake recorder of the generate tests)."""
    out = tmp_path_factory.mktemp("annotate") / "ds"
    cfg = GenerateConfig(
        scenarios=("a", "b", "c"),
        episodes_per_scenario=8,
        recorder="tests.data.frames:fake_record_episode",
    )
    generate(cfg, out, progress=False)
    assert len(FrameStore(out)) >= 40
    return out


def _rows(cache_path: Path) -> dict[str, str]:
    """frame id -> stored JSON, straight from the file."""
    with AnnotationCache(cache_path) as cache:
        return {a.frame_id: a.model_dump_json() for a in cache.iter_assessments("fake", "fake-v1")}


def test_kill_9_then_rerun_annotates_every_frame_once_as_an_uninterrupted_run(
    dataset, tmp_path
) -> None:
    store = FrameStore(dataset)
    killed = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-m", "rsd.commands.annotate", str(dataset), "--teacher", FAKE]
    cmd += ["--cache", str(killed), "--batch-size", "3", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RSD_FAKE_DELAY": "0.08"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def committed() -> int:
        try:
            with sqlite3.connect(killed) as db:
                return db.execute("SELECT COUNT(*) FROM assessments").fetchone()[0]
        except sqlite3.Error:  # not created yet
            return 0

    deadline = time.monotonic() + 60
    while committed() < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = committed()
    assert 9 <= done < len(store) and done % 3 == 0  # whole batches only
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} already cached, of {len(store)}" in rerun.stdout

    clean = tmp_path / "clean.sqlite"
    with AnnotationCache(clean) as cache:
        annotate(store, FakeTeacher(), cache, batch_size=7, progress=False)
    with sqlite3.connect(killed) as db:
        assert db.execute("SELECT COUNT(*) FROM assessments").fetchone()[0] == len(store)
    assert _rows(killed) == _rows(clean)
    assert sorted(_rows(killed)) == sorted(store.frame_ids)


def test_shards_cover_every_frame_exactly_once(dataset, tmp_path) -> None:
    store = FrameStore(dataset)
    cache_path = tmp_path / "c.sqlite"
    asked: list[list[str]] = []
    for shard in ("0/2", "1/2"):
        argv = ["annotate", str(dataset), "--teacher", FAKE, "--shard", shard]
        assert main([*argv, "--cache", str(cache_path), "--no-progress"]) == 0
    with AnnotationCache(cache_path) as cache:
        for i in (0, 1):
            teacher = FakeTeacher()
            s = annotate(store, teacher, cache, shard=(i, 2), progress=False)
            assert s.annotated == 0 and s.cached == len(store.frame_ids[i::2])
            asked.append(select_frames(store.frame_ids, (i, 2)))
    assert sorted(asked[0] + asked[1]) == sorted(store.frame_ids)
    assert not set(asked[0]) & set(asked[1])
    assert asked[0] == [f for j, f in enumerate(store.frame_ids) if j % 2 == 0]
    assert sorted(_rows(cache_path)) == sorted(store.frame_ids)


def test_summary_counts_failures_and_retry_asks_only_the_failed(dataset, tmp_path) -> None:
    store = FrameStore(dataset)
    expected = Counter(fake_status(f)[0].value for f in store.frame_ids)
    reasons: dict[str, Counter] = {"failed": Counter(), "partial": Counter()}
    for f in store.frame_ids:
        status, reason = fake_status(f)
        if reason:
            reasons[status.value][reason] += 1
    assert expected["failed"] and expected["partial"] and expected["ok"]  # all kinds occur
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        s = annotate(store, FakeTeacher(), cache, batch_size=5, progress=False)
        assert (s.frames, s.cached, s.annotated) == (len(store), 0, len(store))
        assert s.by_status == expected and s.reasons == reasons
        assert s.failed_in_cache == expected["failed"]
        assert s.mean_latency_s is not None and s.frames_per_s > 0
        text = s.text()
        counts = f"ok {expected['ok']}, partial {expected['partial']}, failed {expected['failed']}"
        assert counts in text
        assert f"failed by reason: timeout {reasons['failed']['timeout']}, not_json" in text
        assert f"partial by reason: missing_objects {expected['partial']}" in text
        assert "--retry-failed" in text
        stats = cache.stats("fake", "fake-v1")
        assert stats.by_status == expected
        assert stats.failure_reasons == reasons["failed"] + reasons["partial"]

        # nothing left to do without --retry-failed
        again = FakeTeacher(fail=False)
        s = annotate(store, again, cache, progress=False)
        assert s.annotated == 0 and again.asked == []
        # with it: exactly the failed frames are asked again, and now succeed
        s = annotate(store, again, cache, retry_failed=True, progress=False)
        failed = [f for f in store.frame_ids if fake_status(f)[0] is Status.FAILED]
        assert again.asked == failed and s.by_status == {"ok": len(failed)}
        assert s.failed_in_cache == 0
        stats = cache.stats("fake", "fake-v1")
        ok_now = expected["ok"] + expected["failed"]
        assert stats.by_status == {"ok": ok_now, "partial": expected["partial"]}


def test_limit_takes_the_first_frames_of_the_shard(dataset, tmp_path) -> None:
    store = FrameStore(dataset)
    teacher = FakeTeacher()
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        s = annotate(store, teacher, cache, shard=(1, 3), limit=4, batch_size=3, progress=False)
    assert teacher.asked == list(store.frame_ids[1::3][:4]) and s.frames == 4


def test_default_cache_lives_in_the_dataset(dataset, tmp_path, capsys) -> None:
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    assert main(["annotate", str(ds), "--teacher", FAKE, "--limit", "5", "--no-progress"]) == 0
    assert "5 frames annotated" in capsys.readouterr().out
    with AnnotationCache(ds / CACHE_NAME) as cache:
        assert len(cache) == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}"], "no such directory"),
        (["{ds}", "--teacher", "gpt"], "unknown; choose one of privileged, openai"),
        (["{ds}", "--model-dir", "m"], "--model-dir applies to --teacher transformers"),
        (["{ds}", "--teacher", "transformers"], "needs --model-dir"),
        (["{ds}", "--teacher", "no.such.module:T"], "cannot import no.such.module"),
        (["{ds}", "--noise", "1.5"], "noise 1.5"),
        (["{ds}", "--out", "x.png"], "--out goes with --show"),
        (["{ds}", "--teacher", FAKE, "--batch-size", "0"], "batch size 0"),
        (["{ds}", "--teacher", FAKE, "--show", "nope", "--out", "{tmp}/x.png"], "no such frame"),
    ],
)
def test_bad_options_fail_with_a_clear_error(dataset, tmp_path, capsys, argv, message) -> None:
    where = {"missing": tmp_path / "nope", "ds": dataset, "tmp": tmp_path}
    argv = [a.format(**where) for a in argv]
    cache = ["--cache", str(tmp_path / "c.sqlite"), "--no-progress"]
    assert main(["annotate", *argv, *cache]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rsd annotate: error:") and message in err
    if argv[0] == str(tmp_path / "nope"):
        assert str(tmp_path / "nope") in err  # the error names the dataset


def test_bad_shard_is_refused_by_the_parser(dataset, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["annotate", str(dataset), "--shard", "2/2"])
    assert "i/n" in capsys.readouterr().err


def test_factory_builds_custom_teachers_and_refuses_unknown_options() -> None:
    t = make_teacher(FAKE, fail=False)
    assert isinstance(t, FakeTeacher) and t.fail is False
    assert make_teacher(FAKE, fail=None).fail is True  # None means "default"
    with pytest.raises(ConfigError, match="colour"):
        make_teacher(FAKE, colour="red")
    with pytest.raises(ConfigError, match="not a Teacher"):
        make_teacher("collections:OrderedDict")


def test_factory_wraps_in_noise_and_builds_vlm_teachers(tmp_path) -> None:
    pytest.importorskip("rsd.teacher.privileged")
    pytest.importorskip("rsd.teacher.noisy")
    noisy = make_teacher("privileged", noise=0.25, noise_seed=3)
    assert noisy.teacher_id == "noisy(0.25,seed=3,privileged)"
    assert noisy.base.teacher_id == "privileged"
    assert make_teacher("privileged", horizon=3.0).config.horizon == 3.0
    with pytest.raises(ConfigError, match="unknown option"):
        make_teacher("privileged", model_dir="x")
    pytest.importorskip("rsd.teacher.vlm")
    pytest.importorskip("openai")
    vlm = make_teacher("openai", base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1.0)
    assert vlm.teacher_id == "vlm:openai:m"  # built without touching the network
    with pytest.raises(ConfigError, match="teacher 'openai'"):
        make_teacher("openai", concurrency=0)
    with pytest.raises(ConfigError, match="teacher 'transformers'"):
        make_teacher("transformers", model_dir=str(tmp_path / "no-model"), device="cpu")


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory) -> Path:
    """One recorded highway-env episode (51 keyframes, about a second to record)."""
    out = tmp_path_factory.mktemp("annotate-real") / "ds"
    generate(
        GenerateConfig(scenarios=("sudden_brake",), episodes_per_scenario=1), out, progress=False
    )
    return out


def test_privileged_teacher_annotates_a_recorded_episode(real_dataset, tmp_path, capsys) -> None:
    pytest.importorskip("rsd.teacher.privileged")
    store = FrameStore(real_dataset)
    cache_path = tmp_path / "c.sqlite"
    argv = ["annotate", str(real_dataset), "--cache", str(cache_path), "--no-progress"]
    assert main([*argv, "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert f"teacher privileged (prompt intent-v2): {len(store)} frames annotated" in out
    with AnnotationCache(cache_path) as cache:
        got = cache.get_many(store.frame_ids, "privileged", "intent-v2")
        assert list(got) == list(store.frame_ids)
        for frame in store:
            a = got[frame.frame_id]
            assert a.status is Status.OK
            assert {o.object_id for o in a.objects} <= {ag.id for ag in frame.agents}
            assert sorted(o.rank for o in a.objects) == list(range(1, len(a.objects) + 1))
        # the braking lead is judged risky somewhere in the episode
        assert max(a.scene_risk for a in got.values()) > 0.5
    assert main(argv) == 0  # a re-run finds everything cached
    assert f"0 frames annotated (ok 0, partial 0, failed 0), {len(store)} already" in (
        capsys.readouterr().out
    )


def test_show_writes_scene_table_and_risk_map(real_dataset, tmp_path, capsys) -> None:
    for module in ("rsd.teacher.privileged", "rsd.teacher.render", "rsd.teacher.risk_map"):
        pytest.importorskip(module)
    from PIL import Image

    store = FrameStore(real_dataset)
    fid = store.frame_ids[len(store) // 2]
    cache_path = tmp_path / "c.sqlite"
    png = tmp_path / "out" / "show.png"
    argv = ["annotate", str(real_dataset), "--cache", str(cache_path), "--show", fid]
    assert main([*argv, "--out", str(png)]) == 0
    assert fid in capsys.readouterr().out
    assert png.stat().st_size > 20_000
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (1700, 750)
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 200  # a picture, not a blank canvas
    with AnnotationCache(cache_path) as cache:  # annotated on the way, and only that frame
        assert len(cache) == 1 and cache.get(fid, "privileged", "intent-v2") is not None
