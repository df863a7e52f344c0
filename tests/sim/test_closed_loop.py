"""Closed-loop driving on real highway-env episodes: controller, runner, planners, CLI."""

import json
from importlib import resources

import numpy as np
import pytest

from rsd.cli import main
from rsd.policy import tiny_model_planner
from rsd.scene import KEYFRAME_DT
from rsd.sim.closed_loop import (
    EpisodeLog,
    ExpertPlanner,
    RouteProgress,
    run_episode,
)
from rsd.sim.controller import TrajectoryController, ego_pose
from rsd.sim.episode import make_episode
from rsd.sim.recorder import record_episode


def _short_highway(tmp_path, seconds=3):
    text = (resources.files("rsd.sim.builtin") / "highway.yaml").read_text()
    path = tmp_path / "short_highway.yaml"
    path.write_text(text.replace("duration: 30", f"duration: {seconds}"))
    return str(path)


def _track(lateral_shift: float, v_ref: float = 25.0, steps: int = 150):
    """Track a reference (straight, or a 4 s cosine lane change of ``lateral_shift`` m, to the
    left) re-planned every 0.5 s; returns (max lateral error m, speed errors m/s)."""
    ep = make_episode("highway", 1)
    ep.road.vehicles[:] = [ep.ego]  # the road to ourselves
    p0 = ego_pose(ep.ego)
    c, s = np.cos(p0[2]), np.sin(p0[2])

    def lat(d):
        return lateral_shift * (1 - np.cos(np.pi * np.clip((d - 20.0) / (4 * v_ref), 0, 1))) / 2

    ctl, errors, speeds = TrajectoryController(), [], []
    while ep.step_count < steps and not ep.done:
        pose = ego_pose(ep.ego)
        d = pose[:2] - p0[:2]
        along, across = c * d[0] + s * d[1], -s * d[0] + c * d[1]
        errors.append(abs(across - lat(along)))
        speeds.append(ep.ego.speed)
        if ep.step_count % 5 == 0:
            ahead = along + v_ref * KEYFRAME_DT * np.arange(1, 7)
            wx = p0[0] + c * ahead - s * lat(ahead) - pose[0]
            wy = p0[1] + s * ahead + c * lat(ahead) - pose[1]
            cy, sy = np.cos(pose[2]), np.sin(pose[2])
            ctl.set_plan(np.column_stack([cy * wx + sy * wy, -sy * wx + cy * wy]), pose, ep.t)
        ep.step(*ctl.act_on(ep.ego, ep.t))
    assert not ep.crashed and not ep.offroad
    return max(errors), np.abs(np.array(speeds[30:]) - v_ref)


def test_controller_tracks_a_straight_plan_at_constant_speed():
    lat_err, speed_err = _track(0.0, v_ref=27.0)
    assert lat_err < 0.1
    assert speed_err.max() < 0.3  # reached from ~25 m/s within 3 s, then held


def test_controller_tracks_a_lane_change():
    ep = make_episode("highway", 1)
    shift = 4.0 if ep.ego.lane_index[2] > 0 else -4.0  # towards a lane that exists
    lat_err, speed_err = _track(shift)
    assert lat_err < 0.5
    assert speed_err.max() < 0.5


def _brake_tracking(feedforward: bool, preview: float = 0.0) -> float:
    """Track a plan braking at 6 m/s^2 from 20 m/s (re-planned every 0.5 s from the true
    state, as a planner that keeps its intent would) with a point mass; speed lag after 1 s."""
    from rsd.sim.controller import ControllerConfig

    ctl = TrajectoryController(ControllerConfig(feedforward=feedforward, speed_preview=preview))
    v, x, dt, a_plan = 20.0, 0.0, 0.1, -6.0
    for step in range(10):
        t = step * dt
        if step % 5 == 0:  # the plan: positions at 0.5 .. 3 s of constant deceleration
            tau = KEYFRAME_DT * np.arange(1, 7)
            ahead = v * tau + 0.5 * a_plan * tau**2
            ctl.set_plan(np.column_stack([ahead, np.zeros(6)]), np.array([x, 0, 0]), t, v)
        accel, _ = ctl.act(np.array([x, 0.0, 0.0]), v, 5.0, t)
        x, v = x + v * dt, v + accel * dt
    return v - (20.0 + a_plan * 1.0)


def test_speed_feedforward_removes_the_braking_lag():
    """A proportional loop alone brakes too late (the plan's mean segment speed lags its
    instantaneous speed, and the loop needs an error to act); with the plan's own
    acceleration fed forward the speed after 1 s is within 0.3 m/s of the plan's 14 m/s."""
    assert abs(_brake_tracking(True)) < 0.1
    assert _brake_tracking(False, preview=0.25) > 1.0  # the former controller: ~2 m/s behind


def test_route_progress_is_monotone_and_ignores_far_points():
    rp = RouteProgress(np.column_stack([np.arange(0.0, 101.0), np.zeros(101)]))
    assert rp.length == pytest.approx(100.0)
    assert rp.update(np.array([10.3, 1.0])) == pytest.approx(10.3)
    assert rp.update(np.array([5.0, 0.0])) == pytest.approx(10.3)  # never goes back
    assert rp.update(np.array([50.0, 30.0])) == pytest.approx(10.3)  # far off the route
    assert rp.update(np.array([103.0, 0.0])) == pytest.approx(100.0)


def test_live_frame_matches_the_recorded_keyframe():
    """What a planner sees live is what the recorder stores (minus the future)."""
    seen = {}
    run_episode("highway", 3, ExpertPlanner, on_plan=lambda f, p: seen.setdefault(f.step, f))
    recorded = {f.step: f for f in record_episode("highway", 3).frames}
    for step in (20, 60):
        live, rec = seen[step], recorded[step]
        np.testing.assert_array_equal(live.ego.past, rec.ego.past)
        assert live.ego.past_valid.all() and not live.ego.future_valid.any()
        assert [a.id for a in live.agents] == [a.id for a in rec.agents]
        for a, b in zip(live.agents, rec.agents, strict=True):
            assert (a.x, a.y, a.vx) == (b.x, b.y, b.vx)
            np.testing.assert_array_equal(a.past, b.past)
    first = seen[0]
    assert not first.ego.past_valid.any()  # no history at the start of an episode


def test_drive_expert_is_deterministic_and_succeeds(tmp_path, capsys):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        argv = ["drive", "--planner", "expert", "--scenarios", "highway", "--episodes", "1"]
        assert main([*argv, "--seed", "10001", "--out", str(out), "--no-progress"]) == 0
        outs.append((out / "episodes.jsonl").read_text())
    assert outs[0] == outs[1]
    log = EpisodeLog.from_json(outs[0].splitlines()[0])
    assert log.outcome == "success" and log.route_completion == 100.0
    assert log.duration == pytest.approx(30.0) and len(log.t) == 301
    assert len(log.route_progress) == 301 and log.route_progress[-1] == pytest.approx(log.progress)
    assert (tmp_path / "run0" / "metrics.json").exists()
    assert "overall" in capsys.readouterr().out


def test_untrained_model_drives_an_episode_to_its_end(tmp_path):
    from rsd.sim.rollout_video import write_gif

    scenario = _short_highway(tmp_path)
    planner = tiny_model_planner()
    steps = []
    log = run_episode(
        scenario, 10_000, lambda ep: planner, on_plan=lambda f, p: steps.append((f, p))
    )
    n = len(log.t)
    assert log.outcome in ("success", "vehicle_collision", "offroad")
    assert n == round(log.duration * 10) + 1 and log.duration <= 3.0
    keys = ("x", "y", "yaw", "speed", "nearby_speed", "route_progress")
    assert all(len(getattr(log, k)) == n for k in keys)
    assert (np.diff(log.route_progress) >= 0).all() and log.route_progress[-1] == log.progress
    assert np.allclose(np.diff(log.t), 0.1)
    assert 0.0 <= log.route_completion <= 100.0 and log.route_length > 0
    assert (log.outcome == "success") == (not log.infractions)
    assert EpisodeLog.from_json(log.to_json()).to_json() == log.to_json()
    f, p = steps[0]
    assert p.waypoints.shape == (6, 2) and np.isfinite(p.waypoints).all()
    assert p.risk_map is not None and p.risk_map.shape == (160, 64)
    gif = write_gif(steps, log, tmp_path / "ep.gif")
    assert gif.stat().st_size > 0


def test_malformed_scenario_file_names_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_short_highway_text().replace("duration: 30", "duration: -4"))
    argv = ["drive", "--planner", "expert", "--scenario-file", str(bad), "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "duration" in err and "bad.yaml" in err


def test_unknown_video_episode_is_refused(tmp_path, capsys):
    argv = ["drive", "--planner", "expert", "--scenarios", "highway", "--episodes", "1"]
    assert main([*argv, "--out", str(tmp_path), "--video", "highway-00003"]) == 2
    assert "highway-00003" in capsys.readouterr().err


def _short_highway_text():
    return (resources.files("rsd.sim.builtin") / "highway.yaml").read_text()


def test_goal_scenarios_measure_completion_along_the_lane_route():
    done = run_episode("roundabout", 10_000, ExpertPlanner)
    assert done.outcome == "success" and done.reached_goal and done.route_completion == 100.0
    assert 100.0 < done.route_length < 300.0
    late = run_episode("roundabout", 10_002, ExpertPlanner)  # traffic holds the expert up
    assert late.outcome == "timeout" and not late.reached_goal
    assert 0.0 < late.route_completion < 100.0


def test_drive_loads_a_trained_run(tmp_path):
    """``rsd drive RUN`` builds the run's model through ``load_for_eval`` (here an untrained
    checkpoint) and can swap the sensor rig."""
    from rsd.checkpoint import checkpoint_path, rig_hash, save_checkpoint
    from rsd.config import to_dict
    from rsd.data.rigs import load_rig
    from rsd.models import BackboneConfig, ModelConfig
    from rsd.train_config import TrainConfig

    bb = BackboneConfig(stem_channels=8, channels=16, depth=1, plan_dim=32, agent_tokens=4)
    cfg = TrainConfig(model=ModelConfig(backbone=bb))
    model = cfg.task.build_model(cfg)
    rig = load_rig(cfg.rig)
    meta = {"config": to_dict(cfg), "rig": {"name": rig.name, "hash": rig_hash(rig)}}
    save_checkpoint(
        checkpoint_path(tmp_path / "run"), model.state_dict(), None, {**meta, "epoch": 0, "step": 0}
    )
    out = tmp_path / "drive"
    argv = [
        "drive",
        str(tmp_path / "run"),
        "--scenario-file",
        _short_highway(tmp_path, 2),
        "--episodes",
        "1",
    ]
    assert main([*argv, "--rig", "sparse_noisy", "--out", str(out), "--no-progress"]) == 0
    log = EpisodeLog.from_json((out / "episodes.jsonl").read_text().splitlines()[0])
    assert log.planner == str(tmp_path / "run") and log.duration <= 2.0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["rig"] == "sparse_noisy"
    # without --rig: the run's own rig is recorded, not null
    assert main([*argv, "--out", str(tmp_path / "own"), "--no-progress"]) == 0
    assert (
        json.loads((tmp_path / "own" / "metrics.json").read_text())["settings"]["rig"] == rig.name
    )
