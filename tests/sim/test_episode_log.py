"""One outcome vocabulary and one success definition: an episode logged ``success`` is exactly
one the success rate counts."""

from __future__ import annotations

import itertools

import pytest

from rsd.metrics.driving import COMPLETE_AT, episode_success, summarise
from rsd.sim.episode_log import OUTCOMES, EpisodeLog, outcome_of


def _log(rc: float, infractions: tuple[str, ...] = ()) -> EpisodeLog:
    log = EpisodeLog(
        scenario="highway",
        skill="nominal",
        seed=10_000,
        planner="test",
        outcome="",
        route_completion=rc,
        route_length=100.0,
        progress=rc,
        reached_goal=False,
        duration=3.0,
        infractions=[{"t": 1.0, "type": k, "agent": None} for k in infractions],
        t=[0.0, 0.1, 0.2],
        x=[0.0, 1.0, 2.0],
        y=[0.0] * 3,
        yaw=[0.0] * 3,
        speed=[10.0] * 3,
        nearby_speed=[10.0] * 3,
    )
    log.outcome = outcome_of(log)
    return log


@pytest.mark.parametrize(
    ("rc", "infractions", "outcome"),
    [
        (100.0, (), "success"),
        (COMPLETE_AT, (), "success"),
        (85.0, (), "incomplete"),  # no infraction, but the route is not done: not a success
        (100.0, ("vehicle_collision",), "vehicle_collision"),
        (40.0, ("offroad",), "offroad"),
        (60.0, ("stuck",), "stuck"),
        (70.0, ("timeout",), "timeout"),
    ],
)
def test_outcome_by_hand(rc, infractions, outcome):
    log = _log(rc, infractions)
    assert log.outcome == outcome and outcome in OUTCOMES
    assert (log.outcome == "success") == episode_success(log)


def test_success_rate_is_the_share_of_episodes_logged_success():
    kinds = [(), ("vehicle_collision",), ("offroad",), ("stuck",)]
    logs = [_log(rc, k) for rc, k in itertools.product([20.0, 85.0, 94.9, 95.0, 100.0], kinds)]
    share = 100.0 * sum(lg.outcome == "success" for lg in logs) / len(logs)
    assert summarise(logs)["success_rate"] == pytest.approx(share) == 10.0  # 2 of 20
