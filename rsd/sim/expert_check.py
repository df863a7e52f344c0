"""The privileged expert through the scenario suite: one result per (scenario, seed) and a
summary row per scenario (what ``rsd expert-check`` prints)."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert


@dataclass
class EpisodeResult:
    scenario: str
    seed: int
    success: bool
    crashed: bool
    offroad: bool
    goal: bool
    mean_speed: float
    steps: int
    seconds: float


def run_one(scenario: str, seed: int) -> EpisodeResult:
    """Drive one episode with the expert until it is done."""
    t0 = time.perf_counter()
    ep = make_episode(scenario, seed)
    expert = PrivilegedExpert(ep)
    speed_sum = 0.0
    while not ep.done:
        ep.step(*expert.act())
        speed_sum += ep.ego.speed
    ep.close()
    return EpisodeResult(
        scenario,
        seed,
        ep.success,
        ep.crashed,
        ep.offroad,
        ep.reached_goal,
        speed_sum / max(ep.step_count, 1),
        ep.step_count,
        time.perf_counter() - t0,
    )


def _run_pair(pair: tuple[str, int]) -> EpisodeResult:
    return run_one(*pair)


def run_many(pairs: list[tuple[str, int]], workers: int = 1) -> list[EpisodeResult]:
    """:func:`run_one` for every (scenario, seed) of ``pairs`` over ``workers`` processes, in
    order, with a progress bar."""
    results: list[EpisodeResult] = []
    with tqdm(total=len(pairs), unit="ep", desc="expert-check") as bar:
        if workers <= 1:
            for p in pairs:
                results.append(_run_pair(p))
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for r in pool.map(_run_pair, pairs, chunksize=2):
                    results.append(r)
                    bar.update()
    return results


def summarise(results: list[EpisodeResult], scenarios: list[str]) -> list[dict]:
    rows = []
    for name in scenarios:
        rs = [r for r in results if r.scenario == name]
        n = max(len(rs), 1)
        steps = sum(r.steps for r in rs)
        rows.append(
            {
                "scenario": name,
                "episodes": len(rs),
                "success": 100.0 * sum(r.success for r in rs) / n,
                "collisions": sum(r.crashed for r in rs),
                "offroad": sum(r.offroad for r in rs),
                "goal": sum(r.goal for r in rs),
                "mean_speed": sum(r.mean_speed for r in rs) / n,
                "ms_per_step": 1000.0 * sum(r.seconds for r in rs) / max(steps, 1),
            }
        )
    return rows
