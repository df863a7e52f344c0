"""Closed-loop throughput on one core: episodes/min and where an episode's time goes.

    python benchmarks/bench_closed_loop.py [--planner expert model] [--arm rsd]
        [--scenarios highway intersection] [--episodes 1] [--replan 0.5] [--workers 1]

Planners: ``expert`` (the privileged expert acts itself) and ``model`` (an untrained model of
the experiment's recipe, :class:`~rsd.pipeline.experiment_config.ExperimentConfig`'s
``train_config(ARM, 0)``: the same size, rig, grid and raster as the experiment's runs; weights
from seed 0, so its driving is not a trained one's, but every step costs what a trained model's
does). Episodes are seeds from 10 000 (``EVAL_SEED``) of each scenario. With ``--workers 1``
(default) the split per episode is timed by wrapping the closed loop's functions:

* ``setup``: :func:`~rsd.sim.episode.make_episode` and the goal route; ``route``: the
  expert's reference drive of open-road scenarios (:func:`~rsd.sim.route.reference_route`,
  once per (scenario, seed) and process; read from a file with ``--warm-routes``);
* ``sim``: highway-env steps (:meth:`~rsd.sim.episode.Episode.step`);
* ``snapshot`` / ``frame``: the 10 Hz snapshots and the live frame built at each re-plan;
* ``command``: the shadow expert's driving command at each re-plan;
* ``features``: :func:`rsd.data.features.build_features` (rasterisation); ``forward``: the
  model; ``controller``: :class:`~rsd.sim.controller.TrajectoryController` (``set_plan`` and
  ``act_on``); ``expert``: the expert's own ``act`` and its display plan;
* ``other``: the rest (logging, nearby speeds, route progress, python).

With ``--workers N`` the episodes are driven over N processes (``drive``) and only the
throughput is printed. One torch thread per process.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

import rsd.policy as policy
import rsd.sim.closed_loop as closed_loop
import rsd.sim.route as route
import rsd.sim.route_cache as route_cache
from rsd.data.rigs import load_rig
from rsd.pipeline.experiment_config import ExperimentConfig
from rsd.sim.controller import TrajectoryController
from rsd.sim.envs import layout_of
from rsd.sim.episode import Episode
from rsd.sim.planners import ExpertPlanner, Planner
from rsd.sim.spec import EVAL_SEED, load_scenario

SPLIT = (
    "setup",
    "route",
    "sim",
    "snapshot",
    "frame",
    "command",
    "features",
    "forward",
    "controller",
    "expert",
    "other",
)
FULL_STEPS = 300
"""Steps of an episode driven to its end (30 s at 10 Hz): an untrained model ends its episodes
early (collision, off-road), so its throughput is also given at this length."""


def recipe_model_planner(arm: str = "rsd", seed: int = 0) -> policy.ModelPlanner:
    """An untrained model of the experiment recipe's arm ``arm`` (training seed ``seed``) as a
    planner on the recipe's rig, grid and raster."""
    cfg = ExperimentConfig().train_config(arm, seed)
    if cfg.task.oracle:
        raise SystemExit(f"arm {arm!r} is an oracle: it needs a live teacher, pick another")
    torch.manual_seed(seed)
    model = cfg.task.build_model(cfg)
    return policy.ModelPlanner(model, load_rig(cfg.rig), cfg.grid, cfg.raster)


@dataclass(frozen=True)
class RecipeModel:
    """A :class:`~rsd.sim.planners.PlannerRecipe` of :func:`recipe_model_planner` (workers)."""

    arm: str = "rsd"
    replan_s: float = 0.5

    @property
    def name(self) -> str:
        return f"untrained-{self.arm}"

    def factory(self) -> Callable[[Any], Planner]:
        planner = recipe_model_planner(self.arm)
        return lambda episode: planner

    def init_worker(self) -> None:
        torch.set_num_threads(1)


@dataclass(frozen=True)
class ExpertAt:
    """The expert's recipe with a re-plan period (its plan is display only)."""

    replan_s: float = 0.5
    name: str = "expert"

    def factory(self) -> Callable[[Any], Planner]:
        return ExpertPlanner

    def init_worker(self) -> None:
        """Nothing to set up."""


class _Timer:
    """Seconds per category; nested timed calls are charged to the innermost only, except
    inside an ``inclusive`` category, which takes everything beneath it."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.stack: list[list[float]] = []  # [start, time spent in nested timed calls]
        self.inclusive_depth = 0

    def wrap(
        self, name: str, fn: Callable[..., Any], inclusive: bool = False
    ) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.inclusive_depth:
                return fn(*args, **kwargs)
            self.stack.append([time.perf_counter(), 0.0])
            self.inclusive_depth += inclusive
            try:
                return fn(*args, **kwargs)
            finally:
                self.inclusive_depth -= inclusive
                start, inner = self.stack.pop()
                spent = time.perf_counter() - start
                self.total[name] += spent - inner
                if self.stack:
                    self.stack[-1][1] += spent

        return timed


@contextlib.contextmanager
def _instrumented(timer: _Timer) -> Iterator[None]:
    """Wrap the closed loop's parts with ``timer`` (restored on exit)."""
    targets = [
        (closed_loop, "make_episode", "setup"),
        (closed_loop, "route_progress", "setup"),
        (route, "reference_route", "route"),
        (closed_loop, "cached_reference_route", "route"),
        (Episode, "step", "sim"),
        (closed_loop, "snapshot", "snapshot"),
        (closed_loop, "live_frame", "frame"),
        (route.RouteCommander, "command", "command"),
        (policy, "build_features", "features"),
        (TrajectoryController, "set_plan", "controller"),
        (TrajectoryController, "act_on", "controller"),
        (ExpertPlanner, "act", "expert"),
        (ExpertPlanner, "plan", "expert"),
    ]
    # route_progress calls reference_route through route's module globals; getattr on the
    # class gives the plain function, which setattr puts back as is
    saved = [(obj, attr, obj.__dict__[attr]) for obj, attr, _ in targets]
    for obj, attr, name in targets:
        setattr(obj, attr, timer.wrap(name, getattr(obj, attr), inclusive=name == "route"))
    try:
        yield
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)


def _timed_model(planner: policy.ModelPlanner, timer: _Timer) -> None:
    planner.model = timer.wrap("forward", planner.model)


def profile(
    recipe: Any,
    scenarios: list[str],
    episodes: int,
    seed: int = EVAL_SEED,
    route_cache: str | None = None,
) -> tuple[float, int, int, dict[str, float]]:
    """Drive the episodes in this process, timed: (wall s, episodes, steps, s per category)."""
    timer = _Timer()
    factory = recipe.factory()
    planner = factory(None) if isinstance(recipe, RecipeModel) else None
    if planner is not None:
        _timed_model(planner, timer)
        factory = lambda episode: planner  # noqa: E731
    steps = 0
    t0 = time.perf_counter()
    with _instrumented(timer):
        for scenario, s in closed_loop.episode_pairs(scenarios, episodes, seed):
            log = timer.wrap("all", closed_loop.run_episode)(
                scenario, s, factory, recipe.replan_s, recipe.name, None, route_cache
            )
            steps += len(log.t)
    wall = time.perf_counter() - t0
    split = {k: v for k, v in timer.total.items() if k != "all"}
    split["other"] = wall - sum(split.values())
    return wall, len(scenarios) * episodes, steps, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", nargs="+", default=["expert", "model"])
    parser.add_argument("--arm", default="rsd", help="the recipe arm of the model planner")
    parser.add_argument("--scenarios", nargs="+", default=["highway", "intersection"])
    parser.add_argument("--episodes", type=int, default=1, help="seeds per scenario")
    parser.add_argument("--replan", type=float, default=0.5, help="seconds between plans")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--warm-routes",
        action="store_true",
        help="compute the expert's reference routes into a route cache before timing (what "
        "every run of an experiment but the first finds, rsd.sim.route_cache)",
    )
    args = parser.parse_args()
    routes = tempfile.mkdtemp(prefix="bench-routes-") if args.warm_routes else None
    if routes is not None:
        for scenario, s in closed_loop.episode_pairs(args.scenarios, args.episodes):
            if layout_of(load_scenario(scenario).env_id) not in route.GOAL_LAYOUTS:
                route_cache.cached_reference_route(scenario, s, routes)
        route.reference_route.cache_clear()  # timed runs read the files, not this process' copy

    torch.set_num_threads(1)
    print(
        f"scenarios {' '.join(args.scenarios)} x {args.episodes} seed(s) from {EVAL_SEED}, "
        f"re-plan every {args.replan} s, {args.workers} process(es), 1 torch thread each"
    )
    for kind in args.planner:
        if kind == "model":
            recipe: Any = RecipeModel(args.arm, args.replan)
            n_params = sum(p.numel() for p in recipe_model_planner(args.arm).model.parameters())
            label = f"model ({args.arm} recipe, {n_params / 1e3:.0f} k params, untrained)"
        elif kind == "expert":
            recipe, label = ExpertAt(args.replan), "expert"
        else:
            raise SystemExit(f"unknown planner {kind!r} (expert | model)")
        if args.workers > 1:
            t0 = time.perf_counter()
            logs = closed_loop.drive(
                args.scenarios,
                args.episodes,
                workers=args.workers,
                recipe=recipe,
                progress=False,
                route_cache=routes,
            )
            wall = time.perf_counter() - t0
            steps = sum(len(log.t) for log in logs)
            rate = 60 * len(logs) / wall
            print(f"{label}: {rate:.1f} episodes/min ({steps} steps, {wall:.1f} s)")
            continue
        wall, n, steps, split = profile(recipe, args.scenarios, args.episodes, EVAL_SEED, routes)
        per_ep = (split["setup"] + split.get("route", 0.0)) / n
        full = FULL_STEPS * (wall - per_ep * n) / steps + per_ep
        routes_note = ", routes from the cache" if routes else ""
        print(
            f"{label}{routes_note}: {60 * n / wall:.1f} episodes/min as driven ({n} episodes, "
            f"{steps} steps, {wall:.1f} s); {1e3 * wall / steps:.2f} ms/step; "
            f"{60 / full:.1f} episodes/min at {FULL_STEPS} steps/episode"
        )
        for name in SPLIT:
            if name in split:
                print(
                    f"  {name:<11} {1e3 * split[name] / steps:6.2f} ms/step "
                    f"{split[name] / n:6.2f} s/episode {100 * split[name] / wall:5.1f} %"
                )


if __name__ == "__main__":
    main()
