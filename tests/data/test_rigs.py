"""Sensor rigs: built-ins, YAML loading, ray casting with occlusion, seeded noise."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pytest

from rsd.commands import rigs as rigs_command
from rsd.config import ConfigError, dump_yaml
from rsd.data.raycast import scan
from rsd.data.rigs import SensorRig, builtin_rig_names, load_rig
from rsd.data.synthetic import synthetic_agent, synthetic_frame

CLEAN = ["sensors.0.noise_std_m=0.0", "sensors.0.dropout=0.0"]


def _in_box(points: np.ndarray, agent, margin: float = 0.05) -> np.ndarray:
    c, s = np.cos(agent.yaw), np.sin(agent.yaw)
    d = points - np.array([agent.x, agent.y])
    lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    return (np.abs(lx) <= agent.length / 2 + margin) & (np.abs(ly) <= agent.width / 2 + margin)


def test_builtin_rigs_exist_and_differ():
    names = builtin_rig_names()
    assert {"dense360", "sparse_noisy", "front_short"} <= set(names)
    loaded = {n: load_rig(n) for n in names}
    for a, b in itertools.combinations(names, 2):
        assert loaded[a].sensors != loaded[b].sensors, (a, b)
    dense, sparse, front = loaded["dense360"], loaded["sparse_noisy"], loaded["front_short"]
    assert dense.sensors[0].beams >= 4 * sparse.sensors[0].beams
    assert sparse.sensors[0].dropout > 0 and sparse.sensors[0].noise_std_m > 0
    assert front.sensors[0].fov_deg < 180 and front.sensors[0].mount_x > 1.0
    assert dense.map.lane_lines and not front.map.lane_lines


@pytest.mark.parametrize("name", builtin_rig_names())
def test_yaml_round_trip(tmp_path, name):
    rig = load_rig(name)
    path = tmp_path / "rig.yaml"
    path.write_text(dump_yaml(rig))
    assert load_rig(path) == rig
    assert load_rig(str(path)) == rig


def test_override_changes_one_field():
    rig = load_rig("dense360", ["sensors.0.beams=90", "map.lane_lines=false"])
    assert rig.sensors[0].beams == 90 and not rig.map.lane_lines
    assert rig.sensors[0].range_m == load_rig("dense360").sensors[0].range_m


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("sensors:\n  - name: a\n    beamz: 10\n", "sensors[0].beamz"),
        ("sensors:\n  - name: a\n    beams: many\n", "sensors[0].beams"),
        ("sensors: [{name: a}]\nmap:\n  drivable: maybe\n", "map.drivable"),
        ("sensors:\n  - name: a\n    dropout: 1.5\n", "dropout"),
        ("sensors:\n  - name: a\n    fov_deg: 400\n", "fov_deg"),
    ],
)
def test_bad_field_is_named(tmp_path, yaml_text, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_rig(path)


def test_unknown_rig_lists_builtins():
    with pytest.raises(ConfigError, match="dense360"):
        load_rig("no_such_rig")


def test_rigs_command_lists_every_rig(capsys):
    assert rigs_command.run(argparse.Namespace(rig=None, overrides=[])) == 0
    out = capsys.readouterr().out
    for name in builtin_rig_names():
        assert name in out


def test_car_hidden_behind_car_gets_no_hits():
    front, hidden = synthetic_agent(1, 10.0, 0.0), synthetic_agent(2, 20.0, 0.0)
    rig = load_rig("dense360", CLEAN)
    pts = scan(synthetic_frame([front, hidden]), rig)[0].points(0)
    assert _in_box(pts, front).sum() > 10
    assert _in_box(pts, hidden).sum() == 0
    # Not vacuous: alone, the far car is seen.
    alone = scan(synthetic_frame([hidden]), rig)[0].points(0)
    assert _in_box(alone, hidden).sum() > 5


def test_ranges_match_hand_computed_faces():
    rig = load_rig("dense360", CLEAN)
    # Rear face of a 4.5 m car centred at x=10 is at x=7.75; nearest beam is 0.25 deg off axis.
    sc = scan(synthetic_frame([synthetic_agent(1, 10.0, 0.0)]), rig)[0]
    assert sc.ranges[0].min() == pytest.approx(7.75 / np.cos(np.deg2rad(0.25)), abs=1e-6)
    # Turned 90 deg, the near face is at x = 10 - width/2.
    sc = scan(synthetic_frame([synthetic_agent(1, 10.0, 0.0, yaw=np.pi / 2)]), rig)[0]
    assert sc.ranges[0].min() == pytest.approx((10.0 - 1.85 / 2) / np.cos(np.deg2rad(0.25)))
    assert sc.returned[0].sum() > 0 and np.isinf(sc.ranges[0][~sc.returned[0]]).all()


def test_out_of_range_and_out_of_fov_are_not_seen():
    front_only = load_rig("front_short", CLEAN)
    behind = synthetic_frame([synthetic_agent(1, -10.0, 0.0)])
    assert scan(behind, front_only)[0].returned.sum() == 0
    assert scan(behind, load_rig("dense360", CLEAN))[0].returned.sum() > 0
    far = synthetic_frame([synthetic_agent(1, 45.0, 0.0)])  # front_short reaches 40 m
    assert scan(far, front_only)[0].returned.sum() == 0


def test_mounting_offset_shifts_the_origin():
    rig = load_rig("front_short", CLEAN)  # bumper at x=+2.2
    sc = scan(synthetic_frame([synthetic_agent(1, 10.0, 0.0)]), rig)[0]
    assert np.allclose(sc.origins[0], [2.2, 0.0])
    assert sc.ranges[0].min() == pytest.approx(7.75 - 2.2, abs=0.01)


def test_past_keyframes_are_motion_compensated():
    rig = load_rig("dense360", CLEAN)
    # Ego at 20 m/s: 0.5 s ago it was at x=-10. A car keeping pace was then at x=0 (rear face
    # at -2.25); a parked car stays at x=10 (rear face 7.75), both in the current ego frame.
    for vx, rear_x in ((20.0, -2.25), (0.0, 7.75)):
        frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0, vx=vx)], ego_speed=20.0)
        sc = scan(frame, rig, history=2)[0]
        assert np.allclose(sc.origins[1], [-10.0, 0.0])
        assert sc.points(1)[:, 0].min() == pytest.approx(rear_x, abs=0.01)


def test_invalid_past_ego_pose_blanks_that_step():
    frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0)])
    frame.ego.past_valid[-2] = False  # 1.0 s ago unknown
    sc = scan(frame, load_rig("dense360"), history=3)[0]
    assert sc.returned[0].any() and sc.returned[1].any() and not sc.returned[2].any()


def _busy(step: int):
    agents = [synthetic_agent(i, 8.0 * i, (-1) ** i * 3.5) for i in range(1, 8)]
    return synthetic_frame(agents, seed=3, step=step)


def test_noise_and_dropout_reproducible_per_frame_id():
    rig = load_rig("sparse_noisy")
    a, b = scan(_busy(0), rig, history=2)[0], scan(_busy(0), rig, history=2)[0]
    np.testing.assert_array_equal(a.ranges, b.ranges)
    np.testing.assert_array_equal(a.dropped, b.dropped)
    assert a.dropped.any()
    other = scan(_busy(5), rig, history=2)[0]  # same scene, another frame id
    assert not np.array_equal(a.dropped, other.dropped)
    assert not np.array_equal(a.dropped[0], a.dropped[1])  # steps differ too
    clean = scan(_busy(0), load_rig("sparse_noisy", CLEAN), history=2)[0]
    both = a.returned & clean.returned
    assert both.any() and not np.allclose(a.ranges[both], clean.ranges[both])
    assert np.abs(a.ranges[both] - clean.ranges[both]).max() < 2.0  # 0.3 m noise, not garbage


def test_rig_name_is_part_of_the_seed():
    base = load_rig("sparse_noisy")
    renamed = SensorRig(name="other", sensors=base.sensors, map=base.map)
    a, b = scan(_busy(0), base)[0], scan(_busy(0), renamed)[0]
    assert not np.array_equal(a.dropped, b.dropped)


def test_noise_of_a_step_does_not_depend_on_history_length():
    rig = load_rig("sparse_noisy")
    short, long = scan(_busy(0), rig, history=1)[0], scan(_busy(0), rig, history=4)[0]
    np.testing.assert_array_equal(short.ranges[0], long.ranges[0])
    np.testing.assert_array_equal(short.dropped[0], long.dropped[0])


def test_rig_file_without_sensors_is_an_error_not_the_default(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nmap: {lane_lines: false}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: sensors: a rig file lists at least one"):
        load_rig(f)
    f.write_text("name: mine\nsensors: []\n")
    with pytest.raises(ConfigError, match="sensors"):
        load_rig(f)
    with pytest.raises(ConfigError, match="at least one sensor"):
        SensorRig(sensors=())
    f.write_text("sensors: [{name: bumper, beams: 30, fov_deg: 90}]\n")
    rig = load_rig(f)
    assert rig.name == "mine" and [(s.name, s.beams) for s in rig.sensors] == [("bumper", 30)]
