"""``rsd annotate --source nuscenes:DIR --teacher openai`` end to end: the nuScenes reader's
frames, the front camera view sent to a local OpenAI-compatible server, the answers matched
back to the dataset's object ids and cached under the camera prompt's version."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsd.cli import main
from rsd.datasets import open_source
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.prompt import CAMERA_PROMPT_VERSION
from tests.datasets.nuscenes_fixture import write_fixture
from tests.teacher.chat_server import ChatServer, image_urls, listed_ids, user_text


def test_annotate_nuscenes_through_the_camera(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("RSD_TEST_VLM_KEY", "sk-test")
    root = tmp_path / "nuscenes"
    write_fixture(root)
    frames = open_source(f"nuscenes:{root}")
    with ChatServer() as srv:
        argv = ["annotate", "--source", f"nuscenes:{root}", "--teacher", "openai"]
        argv += ["--base-url", srv.url, "--api-key-env", "RSD_TEST_VLM_KEY", "--no-progress"]
        assert main(argv) == 0
        requests = srv.count
        bodies = list(srv.bodies)
        assert main(argv) == 0 and srv.count == requests  # resumable: all cached
    assert requests == len(frames) > 0
    for body in bodies:  # the front camera's photo and the camera prompt
        assert len(image_urls(body)) == 1 and "front camera" in user_text(body)
    with AnnotationCache(root / CACHE_NAME) as cache:
        held = cache.teachers()
        assert [(pv, n) for _, pv, n in held] == [(CAMERA_PROMPT_VERSION, len(frames))]
        tid = held[0][0]
        for i in range(len(frames)):
            frame = frames[i]
            a = cache.get(frame.frame_id, tid, CAMERA_PROMPT_VERSION)
            assert a is not None and a.frame_id == frame.frame_id
            # every object the server was told about is matched back to the reader's ids
            assert a.by_id() and set(a.by_id()) <= {ag.id for ag in frame.agents}
    assert any(listed_ids(b) for b in bodies)
