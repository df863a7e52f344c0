"""Every class has one colour, distinct from the others, in every picture that draws classes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.report.frame import CLASS_COLOURS, EGO_COLOUR
from rsd.scene import CLASS_RGB, AgentClass, class_hex
from rsd.teacher.camera_render import class_colour
from rsd.teacher.render import EGO, render_scene


def test_every_class_has_a_distinct_colour():
    assert set(CLASS_RGB) == set(AgentClass)
    colours = [np.array(CLASS_RGB[c]) for c in AgentClass]
    for i, a in enumerate(colours):
        assert np.abs(a - np.array(EGO)).sum() > 60  # never taken for the ego
        for b in colours[i + 1 :]:
            assert np.abs(a - b).sum() > 60, (a, b)  # told apart at a glance, not merely !=
    assert set(CLASS_COLOURS) == set(AgentClass)
    assert len(set(CLASS_COLOURS.values()) | {EGO_COLOUR}) == len(AgentClass) + 1
    for c in AgentClass:
        assert class_colour(int(c)) == CLASS_RGB[c]
        assert CLASS_COLOURS[c] == class_hex(c)
        assert tuple(int(class_hex(c)[i : i + 2], 16) for i in (1, 3, 5)) == CLASS_RGB[c]


def test_teacher_picture_paints_each_class_in_its_colour():
    # one agent per class, side by side ahead of the ego, big enough to hit a pixel inside
    agents = [
        synthetic_agent(i, 12.0 + 7.0 * (i // 4), -6.0 + 4.0 * (i % 4), vx=0.0, cls=c)
        for i, c in enumerate(AgentClass)
    ]
    for a in agents:
        a.length, a.width = 3.0, 2.0
    png, tf = render_scene(synthetic_frame(agents, ego_speed=5.0, n_lanes=0))
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    for a in agents:
        u, v = np.round(tf.to_pixel(np.array([a.x - a.length / 4, a.y + 0.4]))).astype(int)
        assert np.abs(img[v, u] - CLASS_RGB[a.cls]).sum() < 40, (a.cls.name, img[v, u])
