"""The camera-view VLM teacher: its prompt, and annotation end to end through a local server.

The end-to-end test drives :func:`rsd.pipeline.annotate.annotate` (the library call behind
``rsd annotate``) over camera frames with the ``openai`` teacher against the scripted
OpenAI-compatible server: ``rsd annotate --source`` belongs to the readers' branch, so the
command line itself is not exercised here.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.scene import Frame
from rsd.teacher.camera import BEHIND, OUTSIDE, layout_objects
from rsd.teacher.factory import make_teacher
from rsd.teacher.prompt import CAMERA_PROMPT_VERSION, PROMPT_VERSION, build_camera_prompt
from rsd.teacher.schema import Status
from tests.teacher.camera_fixtures import H, W, camera, with_camera, write_image


def _scene(speed: float) -> Frame:
    return synthetic_frame(
        [
            synthetic_agent(11, 14.0, 0.0, vx=speed - 4.0),  # lead car
            synthetic_agent(12, 30.0, 3.5, vx=speed),  # left lane ahead
            synthetic_agent(13, -12.0, -3.5, vx=speed + 3.0),  # behind, right lane
            synthetic_agent(14, 3.0, 9.0, vx=speed),  # beside, out of the camera's view
        ],
        ego_speed=speed,
    )


def test_camera_prompt_lists_every_object_and_says_which_are_not_shown(tmp_path: Path) -> None:
    frame = _scene(17.5)
    frame.ego.lane_offset = float("nan")
    layout = layout_objects(frame, camera(write_image(tmp_path / "f.png")))
    system, user = build_camera_prompt(frame, layout)
    assert "JSON" in system and CAMERA_PROMPT_VERSION != PROMPT_VERSION
    assert "17.5 m/s (63 km/h)" in user
    assert "lane centreline: unknown (no lane map)" in user
    rows = dict(re.findall(r"^(\d+) \|.*\| ([^|\n]+)$", user, re.MULTILINE))
    assert rows == {
        "11": "yes",
        "12": "yes",
        "13": f"no ({BEHIND})",
        "14": f"no ({OUTSIDE})",
    }
    frame.agent(12).lane_relation = None
    assert "| unknown | yes" in build_camera_prompt(frame, layout)[1]  # lane not known
    assert "(4, 2 shown in the image)" in user and f"({W} x {H} pixels)" in user
    frame.ego.lane_offset = -0.3
    assert "lane centreline: -0.30 m (positive = left" in build_camera_prompt(frame, layout)[1]


class Frames:
    """A frame source as :func:`annotate` reads it (what a dataset reader gives)."""

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.frame_ids = [f.frame_id for f in frames]

    def index_of(self, frame_id: str) -> int:
        return self.frame_ids.index(frame_id)

    def __getitem__(self, i: int) -> Frame:
        return self.frames[i]


def test_annotate_camera_frames_end_to_end(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("openai")
    from rsd.pipeline.annotate import annotate
    from rsd.teacher.cache import AnnotationCache
    from tests.teacher.chat_server import ChatServer, Reply, answer_for, image_urls, user_text

    monkeypatch.setenv("RSD_TEST_VLM_KEY", "sk-test")
    speeds = [15.0, 20.0, 25.0]
    frames = []
    for k, speed in enumerate(speeds):
        f = _scene(speed)
        f.frame_id = f"sample-token-{k}"
        frames.append(with_camera(f, camera(write_image(tmp_path / f"cam{k}.png"))))
    no_cam = with_camera(_scene(30.0), None)
    no_cam.frame_id = "sample-token-nocam"
    layouts = {
        s: layout_objects(f, f.cameras["CAM_FRONT"]) for s, f in zip(speeds, frames, strict=True)
    }
    by_box_risk = {11: 0.8, 12: 0.3}

    def script(body: dict, n: int) -> Reply:
        text = user_text(body)
        speed = float(re.search(r"speed: ([\d.]+) m/s", text)[1])
        if speed == 15.0:  # answers with the ids of the list
            return Reply(answer_for(body))
        # a grounding-style answer: image boxes instead of ids (ids wrong on purpose)
        objs = [
            {"id": 99, "bbox_2d": [float(v) for v in b.box], "risk": by_box_risk[b.object_id]}
            for b in layouts[speed].shown
        ]
        return Reply(json.dumps({"scene_risk": 0.8, "objects": objs}))

    source = Frames([*frames, no_cam])
    with ChatServer(script) as srv, AnnotationCache(tmp_path / "cache.sqlite") as cache:
        teacher = make_teacher(
            "openai",
            view="camera",
            base_url=srv.url,
            api_key_env="RSD_TEST_VLM_KEY",
            max_retries=0,
            timeout_s=5.0,
        )
        assert teacher.prompt_version == CAMERA_PROMPT_VERSION
        summary = annotate(source, teacher, cache, batch_size=2, progress=False)
        assert summary.annotated == 4 and srv.count == 3  # no request for the frame without
        tid, pv = teacher.teacher_id, teacher.prompt_version
        got = {fid: cache.get(fid, tid, pv) for fid in source.frame_ids}
        again = annotate(source, teacher, cache, batch_size=2, progress=False)
        assert again.cached == 4 and again.annotated == 0 and srv.count == 3  # resumable
        bodies = list(srv.bodies)

    by_ids = got["sample-token-0"]
    assert by_ids.status is Status.OK and sorted(by_ids.by_id()) == [11, 12, 13, 14]
    for fid in ("sample-token-1", "sample-token-2"):
        a = got[fid]
        risks = {oid: o.risk for oid, o in a.by_id().items()}
        assert risks == {11: 0.8, 12: 0.3, 13: 0.0, 14: 0.0}, a.counters
        assert a.counters["by_position"] == 2 and a.counters["missing"] == 2
        assert [o.object_id for o in a.objects[:2]] == [11, 12]  # ranked by risk
    assert got["sample-token-nocam"].failure_reason == "no_camera"
    for body in bodies:  # the picture sent is the camera's, at its own size
        [url] = image_urls(body)
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert img.size == (W, H) and "front camera" in user_text(body)
    pixels = np.asarray(img.convert("RGB")).astype(int)
    assert (np.ptp(pixels, axis=-1) > 40).any()  # coloured boxes drawn on the grey photo


def test_view_is_checked() -> None:
    from rsd.config import ConfigError

    pytest.importorskip("openai")
    with pytest.raises(ConfigError, match="view 'side'"):
        make_teacher("openai", view="side")
