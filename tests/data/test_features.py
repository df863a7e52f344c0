"""Ego status: the same meaning in training and closed loop (target speed in, no acceleration)."""

import dataclasses

import numpy as np
import pytest

from rsd.data.features import ego_status
from rsd.data.synthetic import synthetic_frame
from rsd.geometry import EgoStatusField


def test_ego_status_columns_and_no_acceleration() -> None:
    f = synthetic_frame(ego_speed=12.0)
    ego = dataclasses.replace(f.ego, target_speed=25.0, yaw_rate=0.1, lane_offset=-0.3)
    f = dataclasses.replace(f, ego=ego)
    s = ego_status(f)
    assert s.shape == (len(EgoStatusField),) and s.dtype == np.float32
    assert s[EgoStatusField.SPEED] == 12.0
    assert s[EgoStatusField.TARGET_SPEED] == 25.0
    assert s[EgoStatusField.YAW_RATE] == pytest.approx(0.1)
    assert s[EgoStatusField.LANE_OFFSET] == pytest.approx(-0.3)
    braking = dataclasses.replace(f, ego=dataclasses.replace(ego, accel=-6.0))
    np.testing.assert_array_equal(ego_status(braking), s)  # the copycat input is gone


def test_unknown_target_speed_reads_as_the_current_speed() -> None:
    f = synthetic_frame(ego_speed=17.0)
    f = dataclasses.replace(f, ego=dataclasses.replace(f.ego, target_speed=float("nan")))
    assert ego_status(f)[EgoStatusField.TARGET_SPEED] == 17.0
