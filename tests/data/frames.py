"""Synthetic frames and fake recorders for store / generate tests.

``fake_record_episode(scenario, seed)`` is a deterministic stand-in for
``rsd.sim.recorder.record_episode``: the same (scenario, seed) always gives the same frames,
with every field set (None and non-None relations, empty agent lists, events, all enums).
"""

from __future__ import annotations

import dataclasses
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsd.scene import (
    FUTURE_STEPS,
    PAST_STEPS,
    AgentClass,
    AgentState,
    Command,
    EgoState,
    Frame,
    LaneGeometry,
    LineKind,
    SkillGroup,
    frame_id,
)


@dataclass
class FakeEpisode:
    """Same shape as ``rsd.sim.recorder.RecordedEpisode``."""

    frames: list[Frame]
    outcome: dict = field(default_factory=dict)


def _traj(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(n, 3)).astype(np.float32), rng.random(n) < 0.7


def make_frame(
    scenario: str,
    seed: int,
    step: int,
    rng: np.random.Generator,
    n_agents: int = 3,
    n_lanes: int = 2,
) -> Frame:
    """A frame with every field set to a non-default, random value."""
    ep, epv = _traj(rng, PAST_STEPS)
    ef, efv = _traj(rng, FUTURE_STEPS)
    ego = EgoState(
        speed=float(rng.uniform(0, 30)),
        accel=float(rng.normal()),
        yaw_rate=float(rng.normal()),
        length=4.5,
        width=1.85,
        height=1.5,
        lane_id=f"a>b>{step % 3}",
        lane_offset=float(rng.normal()),
        world_x=float(rng.normal() * 100),
        world_y=float(rng.normal()),
        world_yaw=float(rng.normal()),
        target_speed=float(rng.uniform(0, 30)),
        past=ep,
        past_valid=epv,
        future=ef,
        future_valid=efv,
    )
    agents = []
    for k in range(n_agents):
        ap, apv = _traj(rng, PAST_STEPS)
        af, afv = _traj(rng, FUTURE_STEPS)
        agents.append(
            AgentState(
                id=int(rng.integers(0, 10**9)),
                cls=AgentClass(k % 3),
                x=float(rng.normal() * 30),
                y=float(rng.normal() * 5),
                yaw=float(rng.normal()),
                vx=float(rng.normal()),
                vy=float(rng.normal()),
                length=float(rng.uniform(4, 10)),
                width=2.0,
                height=1.7,
                accel=float(rng.normal()),
                lane_id=f"a>b>{k}",
                lane_relation=None if k == 1 else k - 1,
                behaviour=["idm", "aggressive", "défensif"][k % 3],
                past=ap,
                past_valid=apv,
                future=af,
                future_valid=afv,
            )
        )
    lanes = [
        LaneGeometry(
            lane_id=f"a>b>{k}",
            centre=rng.normal(size=(2 + k * 3, 2)).astype(np.float32),
            width=3.5 + k / 10,
            left_line=LineKind(k % 3),
            right_line=LineKind((k + 1) % 3),
            relation=None if k == 0 else -k,
        )
        for k in range(n_lanes)
    ]
    return Frame(
        frame_id=frame_id(scenario, seed, step),
        scenario=scenario,
        skill=SkillGroup(step % 5),
        seed=seed,
        step=step,
        t=step / 10,
        ego=ego,
        agents=agents,
        lanes=lanes,
        command=Command(step % 5),
        events=[f"brake:{step}"] if step % 2 else [],
    )


def fake_record_episode(scenario: Any, seed: int) -> FakeEpisode:
    """Deterministic fake episode: 0-5 keyframes, agent counts 0-3, lane counts 0-2.
    A scenario YAML path is named like the real recorder does: by its spec's name."""
    name = str(scenario)
    if name.endswith((".yaml", ".yml")):
        from rsd.sim.spec import load_scenario

        name = load_scenario(name).name
    rng = np.random.default_rng([zlib.crc32(name.encode()), seed])
    n = int(rng.integers(0, 6))
    frames = [
        make_frame(
            name,
            seed,
            40 + 5 * i,
            rng,
            n_agents=int(rng.integers(0, 4)),
            n_lanes=int(rng.integers(0, 3)),
        )
        for i in range(n)
    ]
    return FakeEpisode(
        frames,
        {
            "success": n > 2,
            "crashed": n <= 2,
            "steps": 40 + 5 * n,
            "params": {"density": np.float64(rng.random())},
        },
    )


def slow_record_episode(scenario: Any, seed: int) -> FakeEpisode:
    """:func:`fake_record_episode` after ``RSD_FAKE_DELAY`` seconds (default 0.2)."""
    time.sleep(float(os.environ.get("RSD_FAKE_DELAY", "0.2")))
    return fake_record_episode(scenario, seed)


def failing_record_episode(scenario: Any, seed: int) -> FakeEpisode:
    """Fails on odd seeds, like a recorder that crashes on some episodes."""
    if seed % 2:
        raise RuntimeError(f"simulated failure of {scenario}/{seed}")
    return fake_record_episode(scenario, seed)


def assert_frames_equal(a: Any, b: Any, where: str = "frame") -> None:
    """Field-by-field equality of frames (or their parts), arrays compared with dtype."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
        for f in dataclasses.fields(a):
            assert_frames_equal(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, f"{where}: dtype differs"
        assert np.array_equal(a, b), f"{where}: arrays differ"
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_frames_equal(x, y, f"{where}[{i}]")
    else:
        both_nan = isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)
        assert type(a) is type(b) and (a == b or both_nan), f"{where}: {a!r} != {b!r}"
