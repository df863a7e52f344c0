"""Projection into a camera on hand-computed cases, the layout of shown objects, the picture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsd.config import ConfigError
from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.teacher.camera import (
    BEHIND,
    OUTSIDE,
    box_corners_3d,
    front_camera,
    layout_objects,
    project,
)
from rsd.teacher.camera_render import CameraRenderConfig, render_camera
from rsd.teacher.match import resolve
from tests.teacher.camera_fixtures import CAM_POS, CX, CY, F_PX, camera, with_camera, write_image


@pytest.fixture
def cam(tmp_path: Path):
    return camera(write_image(tmp_path / "front.png"))


def test_a_point_straight_ahead_lands_at_the_principal_point(cam) -> None:
    uv, depth = project(CAM_POS + [10.0, 0.0, 0.0], cam)
    np.testing.assert_allclose(uv, [CX, CY])
    assert depth == pytest.approx(10.0)
    # 1 m to the right (ego y = -1) at 10 m: f * 1 / 10 px right of the centre; 1 m down: below
    uv = project(np.array([CAM_POS + [10.0, -1.0, 0.0], CAM_POS + [10.0, 0.0, -1.0]]), cam)[0]
    np.testing.assert_allclose(uv, [[CX + F_PX / 10, CY], [CX, CY + F_PX / 10]])


def test_points_behind_the_camera_are_dropped(cam) -> None:
    uv, depth = project(np.array([[-5.0, 0.0, 1.6], CAM_POS + [0.05, 0.0, 0.0]]), cam)
    assert np.isnan(uv).all() and depth[0] == pytest.approx(-6.5)


def test_a_camera_looking_left_sees_the_left() -> None:
    # rotate the forward camera by +90 deg about ego z: its optical axis is ego +y
    yaw = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    cam = camera(Path("unused.png"), rot=yaw @ camera(Path("x")).sensor_to_ego[:3, :3])
    uv, depth = project(CAM_POS + [0.0, 8.0, 0.0], cam)
    np.testing.assert_allclose(uv, [CX, CY])
    assert depth == pytest.approx(8.0)
    # ahead of the ego is to this camera's right
    assert project(CAM_POS + [1.0, 8.0, 0.0], cam)[0][0] == pytest.approx(CX + F_PX / 8)


def test_a_box_projects_its_eight_corners_where_expected(cam) -> None:
    """A 2 m cube centred 10 m in front of the camera, at camera height."""
    cx, cy, cz = CAM_POS + [10.0, 0.0, 0.0]
    corners = box_corners_3d(cx, cy, cz, 0.0, 2.0, 2.0, 2.0)
    uv, depth = project(corners, cam)
    f = F_PX
    near, far = f / 9.0, f / 11.0  # px per metre of offset at the rear (9 m) and front (11 m)
    expected = np.array(
        [
            [CX - far, CY + far],  # bottom front-left: left (ego +y) and below
            [CX + far, CY + far],  # bottom front-right
            [CX + near, CY + near],  # bottom rear-right
            [CX - near, CY + near],  # bottom rear-left
            [CX - far, CY - far],  # top front-left
            [CX + far, CY - far],
            [CX + near, CY - near],
            [CX - near, CY - near],
        ]
    )
    np.testing.assert_allclose(uv, expected)
    np.testing.assert_allclose(depth, [11, 11, 9, 9, 11, 11, 9, 9])


def test_layout_shows_what_is_in_view_and_says_why_not(cam) -> None:
    frame = synthetic_frame(
        [
            synthetic_agent(1, 20.0, 0.0),  # ahead: shown
            synthetic_agent(2, -15.0, 0.0),  # behind the ego
            synthetic_agent(3, 5.0, 30.0),  # ahead of the camera but far out to the left
            synthetic_agent(4, 40.0, -3.5),  # ahead, one lane right: shown
        ]
    )
    layout = layout_objects(frame, cam)
    assert {b.object_id for b in layout.shown} == {1, 4}
    assert layout.hidden == {2: BEHIND, 3: OUTSIDE}
    assert [b.object_id for b in layout.shown] == [4, 1]  # farthest first
    one = layout.box_of(1)
    assert one is not None and one.depth == pytest.approx(20.0 - CAM_POS[0])
    u0, v0, u1, v1 = one.box
    assert u0 < CX < u1  # straight ahead
    # seen from 1.6 m, a car on the ground lies below the horizon: its box runs from the
    # roof's far edge (the front face) down to the ground at its rear face
    car = frame.agent(1)
    front, rear = 20.0 + car.length / 2 - CAM_POS[0], 20.0 - car.length / 2 - CAM_POS[0]
    assert v0 == pytest.approx(CY + F_PX * (CAM_POS[2] - car.height) / front)
    assert v1 == pytest.approx(CY + F_PX * CAM_POS[2] / rear)
    # the mark sits on the projected centre column; the right-lane car lies right of centre
    assert one.mark[0] == pytest.approx(CX)
    assert layout.box_of(4).mark[0] > CX
    assert layout.object_at(one.mark) == 1 and layout.object_at(layout.box_of(4).mark) == 4
    assert layout.object_at(np.array([5.0, 5.0])) is None


def test_a_box_cut_by_the_near_plane_stays_finite_and_clipped(cam) -> None:
    # a truck beside the camera: centre 3 m ahead of the lens, its rear behind the lens
    truck = synthetic_agent(7, CAM_POS[0] + 3.0, 2.5)
    truck.length = 10.0
    layout = layout_objects(synthetic_frame([truck]), cam)
    [shown] = layout.shown
    assert np.isfinite(shown.box).all()
    assert shown.box[0] == 0.0  # reaches past the left edge of the image
    assert 0 <= shown.box[2] <= cam.width and 0 <= shown.box[3] <= cam.height


def test_position_answers_match_through_the_layout(cam) -> None:
    frame = synthetic_frame([synthetic_agent(1, 20.0, 0.0), synthetic_agent(4, 40.0, -3.5)])
    layout = layout_objects(frame, cam)
    known = {1, 4}
    u0, v0, u1, v1 = layout.box_of(4).box
    assert resolve({"bbox_2d": [u0, v0, u1, v1]}, frame, known, layout) == (4, "position")
    assert resolve({"point": list(layout.box_of(1).mark)}, frame, known, layout) == (
        1,
        "position",
    )
    assert resolve({"id": 4}, frame, known, layout) == (4, "id")
    assert resolve({"point": [1.0, 1.0]}, frame, known, layout) == (None, "unknown")


def test_render_draws_boxes_and_labels_and_scales_the_layout(cam) -> None:
    frame = with_camera(synthetic_frame([synthetic_agent(1, 12.0, 0.0)]), cam)
    assert front_camera(frame) is cam
    png, layout = render_camera(frame, cam, CameraRenderConfig(max_side_px=160))
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape == (90, 160, 3) and (layout.width, layout.height) == (160, 90)
    full = layout_objects(frame, cam)
    np.testing.assert_allclose(layout.shown[0].box, full.shown[0].box / 2)
    # the label (white) sits at the mark; the image elsewhere is still the grey photo
    u, v = np.round(layout.shown[0].mark).astype(int)
    assert (img[v - 1 : v + 2, u - 6 : u + 7] > 200).all(axis=-1).any()
    assert (img[2, 2] == 120).all()
    # the box's left edge is drawn in a colour that is not the photo's grey
    u0 = int(round(layout.shown[0].box[0]))
    column = img[int(layout.shown[0].box[1]) + 2 : int(layout.shown[0].box[3]) - 2, u0]
    assert (np.ptp(column.astype(int), axis=-1) > 40).any()


def test_unreadable_or_mis_sized_images_are_named(tmp_path: Path) -> None:
    frame = synthetic_frame([synthetic_agent(1, 12.0, 0.0)])
    missing = camera(tmp_path / "nope.jpg")
    with pytest.raises(ConfigError, match="nope.jpg"):
        render_camera(frame, missing)
    small = camera(write_image(tmp_path / "small.png", size=(100, 50)))
    with pytest.raises(ConfigError, match=r"small.png: image is 100 x 50 .* 320 x 180"):
        render_camera(frame, small)
    bad = camera(write_image(tmp_path / "ok.png"))
    bad.intrinsics = np.eye(2)
    with pytest.raises(ValueError, match="intrinsics"):
        layout_objects(frame, bad)
