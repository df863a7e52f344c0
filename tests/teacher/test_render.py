"""The VLM scene picture: exact pixel <-> metre transform, what is drawn where, odd frames."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rsd.data.synthetic import random_frame, synthetic_agent, synthetic_frame
from rsd.scene import AgentClass, LaneGeometry, LineKind
from rsd.teacher.render import (
    CLASS_FILL,
    EGO,
    PixelTransform,
    RenderConfig,
    make_transform,
    render_scene,
)


@pytest.fixture(scope="module")
def real_frames():
    from rsd.sim.recorder import record_episode

    return record_episode("cut_in", 0).frames[::10]


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_transform_orientation_and_scale():
    tf = make_transform(RenderConfig(size_px=512, metres_ahead=60, metres_behind=20, half_width=30))
    assert (tf.width, tf.height) == (384, 512) and tf.px_per_m == pytest.approx(6.4)
    ego = tf.to_pixel(np.array([0.0, 0.0]))
    np.testing.assert_allclose(ego, [192.0, 384.0])
    ahead, left = tf.to_pixel(np.array([[10.0, 0.0], [0.0, 5.0]]))
    assert ahead[1] < ego[1] and ahead[0] == ego[0]  # forward = up
    assert left[0] < ego[0] and left[1] == ego[1]  # left = left
    corners = tf.to_pixel(np.array([[60.0, 30.0], [-20.0, -30.0]]))
    np.testing.assert_allclose(corners, [[0.0, 0.0], [384.0, 512.0]])


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-200, 200),
    st.floats(-200, 200),
    st.integers(32, 2048),
    st.floats(1, 150),
    st.floats(0, 80),
    st.floats(2, 80),
)
def test_round_trip(x, y, size, ahead, behind, half):
    tf = make_transform(
        RenderConfig(size_px=size, metres_ahead=ahead, metres_behind=behind, half_width=half)
    )
    xy = np.array([[x, y], [0.0, 0.0]])
    np.testing.assert_allclose(tf.to_ego(tf.to_pixel(xy)), xy, atol=1e-9)
    uv = np.array([[x * 3, y * 3]])
    np.testing.assert_allclose(tf.to_pixel(tf.to_ego(uv)), uv, atol=1e-9)


def test_render_draws_ego_and_agents_where_the_transform_says():
    agents = [
        synthetic_agent(3, 25.0, 0.0, vx=15.0),
        synthetic_agent(7, -10.0, 3.5, vx=25.0, cls=AgentClass.TRUCK),
        synthetic_agent(9, 500.0, 0.0, vx=20.0),  # far outside: not drawn, no crash
    ]
    frame = synthetic_frame(agents, ego_speed=20.0)
    png, tf = render_scene(frame)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = _decode(png)
    assert img.shape == (tf.height, tf.width, 3)
    u, v = np.round(tf.to_pixel(np.array([0.0, 0.0]))).astype(int)
    assert np.abs(img[v, u] - EGO).sum() < 30
    for a, colour in ((agents[0], CLASS_FILL[AgentClass.CAR]), (agents[1], CLASS_FILL[2])):
        # a point inside the box, off the heading line through its centre
        u, v = np.round(tf.to_pixel(np.array([a.x - a.length / 4, a.y + 0.4]))).astype(int)
        assert np.abs(img[v, u] - colour).sum() < 40, (a.id, img[v, u])


def test_render_is_deterministic_and_changes_with_config():
    frame = random_frame(3)
    a, tf_a = render_scene(frame)
    b, _ = render_scene(frame)
    assert a == b
    c, tf_c = render_scene(frame, RenderConfig(size_px=256, arrows=False))
    assert c != a and tf_c.height == 256 and tf_c.px_per_m == pytest.approx(tf_a.px_per_m / 2)


def test_odd_frames_render():
    empty = synthetic_frame([], n_lanes=0)
    png, tf = render_scene(empty)
    assert _decode(png).shape[:2] == (tf.height, tf.width)
    frame = synthetic_frame([synthetic_agent(1, 5.0, 1.0, vx=np.nan)])
    frame.lanes += [
        LaneGeometry("x", np.zeros((1, 2), np.float32), 3.5, LineKind.STRIPED, LineKind.NONE),
        LaneGeometry("y", np.zeros((3, 2), np.float32), 3.5, LineKind.CONTINUOUS, LineKind(1)),
    ]
    render_scene(frame)


def test_real_frames_render(real_frames):
    for f in real_frames:
        png, tf = render_scene(f)
        assert isinstance(tf, PixelTransform) and len(png) > 1000


def test_bad_config_raises():
    with pytest.raises(ValueError):
        make_transform(RenderConfig(metres_ahead=0, metres_behind=0))


def test_labels_do_not_cover_neighbouring_boxes():
    # side by side in adjacent lanes, plus one just ahead: the dense-traffic case
    agents = [
        synthetic_agent(8, 30.0, 1.75, vx=20.0),
        synthetic_agent(14, 29.0, -1.75, vx=20.0),
        synthetic_agent(3, 23.0, 1.75, vx=20.0),
        synthetic_agent(21, 36.0, -1.75, vx=20.0),
    ]
    png, tf = render_scene(synthetic_frame(agents, n_lanes=2, ego_lane=0))
    img = _decode(png)
    for a in agents:
        for dx in (-a.length / 4, a.length / 4):
            u, v = np.round(tf.to_pixel(np.array([a.x + dx, a.y + 0.45]))).astype(int)
            assert np.abs(img[v, u] - CLASS_FILL[AgentClass.CAR]).sum() < 40, (a.id, dx)
