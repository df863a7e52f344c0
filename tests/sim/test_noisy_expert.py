"""DART's driver: the expert's tracked plan with injected noise, labelled by the clean expert."""

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.scene import KEYFRAME_DT
from rsd.sim.controller import ego_pose
from rsd.sim.convert import EgoTransform
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.noisy_expert import (
    DartNoise,
    NoisyExpertPlanner,
    NoisyExpertRecipe,
    offset_laterally,
    scale_progress,
)
from rsd.sim.recorder import record_episode
from rsd.sim.relabel import StudentRollout, student_episode
from rsd.sim.tracked_expert import TrackedExpertPlanner, expert_path
from tests.sim.test_closed_loop import _short_highway


def test_scale_progress_moves_each_waypoint_along_the_path_by_the_factor() -> None:
    """Hand case, an L-shaped path of length 3: arc lengths 1, 2, 3 become 0.5, 1, 1.5 at
    0.5 and 2, 4, 6 at 2 (past the end: straight on along the last segment, +y)."""
    wp = np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(scale_progress(wp, 0.5), [[0.5, 0], [1, 0], [1.5, 0]])
    np.testing.assert_allclose(scale_progress(wp, 2.0), [[2, 0], [2, 2], [2, 4]])
    np.testing.assert_array_equal(scale_progress(np.zeros((3, 2)), 1.3), np.zeros((3, 2)))


def test_lateral_offset_ramps_in_along_a_smoothstep() -> None:
    """A straight plan along +x, offset 1 m over 1.5 s: at t = 0.5, 1.0, 1.5, 2.0 s the
    smoothstep u^2 (3 - 2u) of u = 1/3, 2/3, 1, 1 is 7/27, 20/27, 1, 1 (to the left, +y)."""
    wp = np.column_stack([np.arange(1, 5) * 10.0, np.zeros(4)])
    out = offset_laterally(wp, 1.0, 1.5)
    np.testing.assert_allclose(out[:, 0], wp[:, 0])
    np.testing.assert_allclose(out[:, 1], [7 / 27, 20 / 27, 1.0, 1.0])


def test_bad_noise_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="dart_noise.p"):
        DartNoise(p=1.5)
    with pytest.raises(ConfigError, match="dart_noise.scale"):
        DartNoise(scale=(1.3, 0.7))


def _driven(noise: DartNoise, steps: int = 30):
    """An episode driven ``steps`` by the expert, a noisy planner and a clean tracked planner
    following it every step (their ``tick``)."""
    ep = make_episode("cut_in", 3)
    driver = PrivilegedExpert(ep)
    noisy, clean = NoisyExpertPlanner(ep, noise, mix_seed=1), TrackedExpertPlanner(ep)
    for _ in range(steps):
        noisy.tick()
        clean.tick()
        ep.step(*driver.act())
    return ep, noisy, clean


def test_without_noise_the_plan_is_the_tracked_experts() -> None:
    ep, noisy, clean = _driven(DartNoise(p=0.0))
    for _ in range(3):  # three re-plans: never a perturbation
        np.testing.assert_array_equal(noisy.plan(None).waypoints, clean.plan(None).waypoints)
        assert noisy.factor == 1.0 and noisy.offset == 0.0
    assert noisy.perturbed_plans == 0


def test_with_noise_the_plans_speed_is_scaled_by_the_drawn_factor() -> None:
    """p = 1, longitudinal only: the plan's length along its path (so every segment's implied
    speed) is the clean plan's times the drawn factor; the factor holds for hold_s, then a new
    one is drawn."""
    noise = DartNoise(p=1.0, lateral_m=0.0, hold_s=1.0)
    ep, noisy, clean = _driven(noise)
    factors = []
    for _ in range(4):
        got, ref = noisy.plan(None).waypoints, clean.plan(None).waypoints
        factors.append(noisy.factor)
        length = lambda w: np.hypot(*np.diff(np.vstack([[0, 0], w]), axis=0).T).sum()  # noqa: E731
        assert 0.7 <= noisy.factor <= 1.3 and noisy.factor != 1.0
        assert length(got) == pytest.approx(noisy.factor * length(ref), rel=1e-3)
        first = np.hypot(*got[0]) / KEYFRAME_DT  # the first segment's speed, m/s
        assert first == pytest.approx(noisy.factor * np.hypot(*ref[0]) / KEYFRAME_DT, rel=1e-3)
    assert factors[0] == factors[1] != factors[2] == factors[3]  # held 2 re-plans (1 s)


@pytest.fixture(scope="module")
def short_highway(tmp_path_factory):
    return _short_highway(tmp_path_factory.mktemp("dart"), seconds=8)


def _dart(scenario, mix_seed=1, noise=None):
    recipe = NoisyExpertRecipe(noise or DartNoise(p=1.0), mix_seed)
    return student_episode(scenario, 2, recipe.factory(), 0.0, mix_seed, "dart")


def test_same_seeds_same_frames_another_mix_seed_other_states(short_highway) -> None:
    a, b, c = _dart(short_highway), _dart(short_highway), _dart(short_highway, mix_seed=2)
    assert a.frames and [f.frame_id for f in a.frames] == [f.frame_id for f in b.frames]
    for f, g in zip(a.frames, b.frames, strict=True):
        np.testing.assert_array_equal(f.ego.past, g.ego.past)
        np.testing.assert_array_equal(f.ego.future, g.ego.future)
    speeds = lambda r: [f.ego.speed for f in r.frames]  # noqa: E731
    assert speeds(a) != speeds(c)


def test_labels_are_the_clean_experts_plan_from_the_visited_state(short_highway) -> None:
    """Re-drive the noisy expert to each labelled keyframe: the stored future is the clean
    expert's path from that state (``expert_path``), and the visited states are not the
    expert's own (its speed differs from the recording's by more than 1 m/s somewhere)."""
    rec = _dart(short_highway)
    ep = make_episode(short_highway, 2)
    run = StudentRollout(ep, NoisyExpertRecipe(DartNoise(p=1.0), 1).factory()(ep), 0.0, 1, "x")
    checked = 0
    for f in rec.frames:
        while ep.step_count < f.step:
            run.step()
        tf = EgoTransform(*ego_pose(ep.ego))
        np.testing.assert_allclose(
            f.ego.future[:, :2], tf.points(expert_path(ep, run.expert)), atol=1e-6
        )
        checked += 1
    assert checked == len(rec.frames) > 5 and run.planner.perturbed_plans > 0
    own = {f.step: f.ego.speed for f in record_episode(short_highway, 2).frames}
    assert max(abs(f.ego.speed - own[f.step]) for f in rec.frames if f.step in own) > 1.0


def test_the_rollout_ticks_the_planner_so_its_expert_follows_the_episode() -> None:
    """StudentRollout calls the planner's ``tick`` every step (as the closed loop does): the
    planner's expert then plans exactly like the rollout's own labelling expert (without the
    tick its comfort state stays at the start and its path here differs by about 4 m)."""
    ep = make_episode("sudden_brake", 1)
    planner = NoisyExpertPlanner(ep, DartNoise(p=0.0))
    run = StudentRollout(ep, planner, 0.0, 0, "x")
    for _ in range(20):
        run.step()
    assert planner.clean.expert.prev_accel == run.expert.prev_accel != 0.0
    np.testing.assert_array_equal(
        expert_path(ep, planner.clean.expert), expert_path(ep, run.expert)
    )
