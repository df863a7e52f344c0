"""The tracked expert plan: the expert's own future as a plan, and the closed loop with it."""

import numpy as np
import pytest

from rsd.scene import FUTURE_STEPS
from rsd.sim.closed_loop import run_episode
from rsd.sim.controller import ego_pose
from rsd.sim.convert import to_up
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.recorder import KEY_EVERY
from rsd.sim.tracked_expert import TrackedExpertPlanner, expert_path


def test_expert_path_is_the_future_the_expert_then_drives():
    """The copy's path is exactly what the expert does next on the episode itself (the copy is
    faithful), and the episode is untouched by computing it."""
    ep = make_episode("cut_in", 3)
    expert = PrivilegedExpert(ep)
    for _ in range(40):
        ep.step(*expert.act())
    before = ego_pose(ep.ego).copy()
    path = expert_path(ep, expert)
    assert np.array_equal(ego_pose(ep.ego), before)
    driven = []
    for _ in range(FUTURE_STEPS):
        for _ in range(KEY_EVERY):
            ep.step(*expert.act())
        driven.append(to_up(ep.ego.position))
    assert path.shape == (FUTURE_STEPS, 2)
    np.testing.assert_allclose(path, np.array(driven), atol=1e-9)


def test_expert_path_continues_at_the_last_velocity_past_the_end(tmp_path):
    from tests.sim.test_closed_loop import _short_highway

    ep = make_episode(_short_highway(tmp_path, seconds=1), 1)
    expert = PrivilegedExpert(ep)
    path = expert_path(ep, expert)  # 1 s left: two keyframes, four extrapolated
    steps = np.diff(path, axis=0)
    np.testing.assert_allclose(steps[1:], np.repeat(steps[1:2], 4, axis=0), atol=1e-9)
    assert np.hypot(*steps[0]) == pytest.approx(ep.ego.speed * 0.5, rel=0.1)


def test_tracked_expert_keeps_up_with_the_expert(tmp_path):
    """Tracking the expert's plan on a short dense highway: no incident, and within 2 % of
    the distance the expert drives itself (its reference route)."""
    from tests.sim.test_closed_loop import _short_highway

    log = run_episode(_short_highway(tmp_path, 6), 2, TrackedExpertPlanner)
    assert log.infractions == [] and log.route_completion > 98.0
