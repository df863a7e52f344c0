"""The closed loop's shortcuts change no result: sparse snapshots and the route cache."""

from importlib import resources

import numpy as np
import pytest

import rsd.sim.closed_loop as closed_loop
import rsd.sim.route_cache as route_cache
from rsd.policy import tiny_model_planner
from rsd.sim.closed_loop import ExpertPlanner, run_episode
from rsd.sim.route import reference_route


def _highway(tmp_path, seconds: int, name: str = "short_highway") -> str:
    text = (resources.files("rsd.sim.builtin") / "highway.yaml").read_text()
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("duration: 30", f"duration: {seconds}"))
    return str(path)


def _drive(scenario, replan_s, frames, route_cache_dir=None):
    planner = tiny_model_planner()
    log = run_episode(
        scenario,
        10_000,
        lambda ep: planner,
        replan_s,
        "tiny",
        lambda f, p: frames.append((f, p)),
        route_cache_dir,
    )
    log.wall_s = 0.0
    return log.to_json()


@pytest.mark.parametrize("replan_s", [0.5, 1.0, 0.3])
def test_sparse_snapshots_give_the_same_episode(tmp_path, monkeypatch, one_thread, replan_s):
    """Snapshotting only the steps a plan reads gives the log, the frames and the plans that
    snapshotting every step gives (a fixed untrained model; re-planning at 2 Hz, 1 Hz and
    every 3 steps, where every step is read)."""
    scenario = _highway(tmp_path, 6)
    sparse_frames: list = []
    sparse = _drive(scenario, replan_s, sparse_frames)
    monkeypatch.setattr(closed_loop, "SPARSE_SNAPSHOTS", False)
    dense_frames: list = []
    dense = _drive(scenario, replan_s, dense_frames)
    assert sparse == dense
    assert len(sparse_frames) == len(dense_frames) >= 6
    for (fa, pa), (fb, pb) in zip(sparse_frames, dense_frames, strict=True):
        assert fa.step == fb.step
        np.testing.assert_array_equal(fa.ego.past, fb.ego.past)
        np.testing.assert_array_equal(fa.ego.past_valid, fb.ego.past_valid)
        assert [a.id for a in fa.agents] == [a.id for a in fb.agents]
        for a, b in zip(fa.agents, fb.agents, strict=True):
            np.testing.assert_array_equal(a.past, b.past)
            np.testing.assert_array_equal(a.past_valid, b.past_valid)
        np.testing.assert_array_equal(pa.waypoints, pb.waypoints)
    # the last frame has a full past (more than 2.5 s driven)
    assert sparse_frames[-1][0].ego.past_valid.all()


def test_route_cache_is_written_once_and_read_back(tmp_path, monkeypatch):
    scenario = _highway(tmp_path, 4)
    cache = tmp_path / "routes"
    fresh = reference_route(scenario, 10_001)
    first = route_cache.cached_reference_route(scenario, 10_001, cache)
    np.testing.assert_array_equal(first, fresh)
    files = list(cache.glob("*.npy"))
    assert [f.name.split("-")[:2] for f in files] == [["highway", "10001"]]

    def refuse(*args):
        raise AssertionError("the cached route was computed again")

    monkeypatch.setattr(route_cache, "reference_route", refuse)
    again = route_cache.cached_reference_route(scenario, 10_001, cache)
    np.testing.assert_array_equal(again, fresh)
    assert not list(cache.glob("*.tmp"))


def test_route_file_names_every_input(tmp_path):
    """Another seed, another spec (a longer duration) or other simulator code: another file."""
    a, b = _highway(tmp_path, 4, "a"), _highway(tmp_path, 5, "b")
    name = route_cache.route_file(tmp_path, a, 1)
    assert route_cache.route_file(tmp_path, a, 1) == name
    assert route_cache.route_file(tmp_path, a, 2) != name
    assert route_cache.route_file(tmp_path, b, 1) != name


def test_fingerprint_follows_the_simulator_source(tmp_path, monkeypatch):
    """Editing any simulator file (here a copy of the package) changes the fingerprint."""
    import shutil

    pkg = tmp_path / "rsd"
    shutil.copytree(route_cache._PACKAGE / "sim", pkg / "sim")
    for name in ("scene.py", "geometry.py", "config.py"):
        shutil.copy(route_cache._PACKAGE / name, pkg / name)
    monkeypatch.setattr(route_cache, "_PACKAGE", pkg)
    route_cache.code_fingerprint.cache_clear()
    try:
        before = route_cache.code_fingerprint()
        route_cache.code_fingerprint.cache_clear()
        assert route_cache.code_fingerprint() == before  # a pure function of the files
        expert = pkg / "sim" / "expert.py"
        expert.write_text(expert.read_text() + "\n# an edit\n")
        route_cache.code_fingerprint.cache_clear()
        assert route_cache.code_fingerprint() != before
    finally:
        route_cache.code_fingerprint.cache_clear()


def test_a_torn_route_file_is_computed_again(tmp_path):
    scenario = _highway(tmp_path, 4)
    path = route_cache.route_file(tmp_path, scenario, 10_002)
    path.write_bytes(b"not a numpy file")
    route = route_cache.cached_reference_route(scenario, 10_002, tmp_path)
    np.testing.assert_array_equal(route, reference_route(scenario, 10_002))
    np.testing.assert_array_equal(np.load(path), route)


def test_a_cached_route_gives_the_same_episode(tmp_path, one_thread):
    scenario = _highway(tmp_path, 4)
    plain = _drive(scenario, 0.5, [])
    cached = _drive(scenario, 0.5, [], str(tmp_path / "routes"))
    again = _drive(scenario, 0.5, [], str(tmp_path / "routes"))  # read from the file
    assert plain == cached == again
    assert len(list((tmp_path / "routes").glob("*.npy"))) == 1


def test_the_expert_needs_no_route(tmp_path):
    """The expert drives the reference route itself: nothing is cached for it."""
    log = run_episode(_highway(tmp_path, 2), 10_000, ExpertPlanner, route_cache=str(tmp_path))
    assert log.route_completion == 100.0 and not list(tmp_path.glob("*.npy"))
