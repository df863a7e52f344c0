"""Model sizes and CPU speed: both backbones, with and without the RiskHead.

    python benchmarks/bench_models.py [--threads 2] [--rounds 10] [--recipe experiment|default]
    python benchmarks/bench_models.py --overhead-only [--pairs 31]   # the RiskHead's budget
    python benchmarks/bench_models.py --split [--pairs 31]   # where the RiskHead's time goes

Per model: parameters (and the RiskHead's share of its backbone); inference latency at batch 1
and 16 (``eval``, ``no_grad``); training throughput at batch 16 (forward + backward + SGD step
on a surrogate loss, the mean of every output). Each figure is the best of ``--rounds``, taken
round-robin over all models and both memory layouts (contiguous / channels_last), so that a
burst of load on a shared machine hits every variant alike; the faster layout is named.
Inputs are random rasters of the default grid (7 x 160 x 64) with 8 agents. ``--recipe
experiment`` (default) builds the experiment's model (``rsd.pipeline.experiment_config``: the
53 k VADLite and its head), ``default`` the ``ModelConfig`` defaults; the RiskHead has the
space-time target's 6 channels and the mode cost.

The last lines give the overhead the issue bounds (<= 10 % of the backbone's parameters,
training-step and inference time), measured as training runs it: the ``rsd`` task's model and
loss (RiskHead, distillation terms, likelihood constraint) against the ``baseline`` task's, on
the experiment's ``TrainConfig`` (its grid, model and loss weights) and one synthetic batch of
16 with 8 agents and teacher targets; a step is forward + loss + backward + gradient clipping
+ AdamW, inference a forward in ``eval`` mode (``no_grad``; no full-grid risk map: that is
made on request, ``rsd.models.with_full_risk_map``). Baseline and RSD alternate (A/B/A/B, the
order flipped every pair) and each ratio is the median over ``--pairs`` of the per-pair ratios,
in process CPU time (one thread: robust to other processes on a shared machine) and wall time.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from rsd.config import apply_overrides, from_dict
from rsd.models import ModelConfig, build_model
from rsd.models.protocol import Features
from rsd.pipeline.experiment_config import ExperimentConfig
from rsd.scene import FUTURE_STEPS, Command
from rsd.train_config import TrainConfig

IN_CHANNELS = 7
RISK_CHANNELS = 6
CONFIG = {"cfg": ModelConfig()}
VARIANTS = [("vad", False), ("vad", True), ("cnn", False), ("cnn", True)]


def _batch(b: int, channels_last: bool) -> Features:
    g = torch.Generator().manual_seed(b)
    bev = (torch.rand(b, IN_CHANNELS, 160, 64, generator=g) > 0.8).float()
    if channels_last:
        bev = bev.contiguous(memory_format=torch.channels_last)
    return {
        "bev": bev,
        "command": torch.randint(0, len(Command), (b,), generator=g),
        "ego_status": torch.rand(b, 4, generator=g) * 20,
    }


def _model(kind: str, risk: bool, channels_last: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dataclasses.replace(CONFIG["cfg"], kind=kind)
    model = build_model(cfg, IN_CHANNELS, risk_head=risk, risk_channels=RISK_CHANNELS)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _inference(kind: str, risk: bool, b: int, cl: bool) -> Callable[[], object]:
    model, batch = _model(kind, risk, cl).eval(), _batch(b, cl)

    def call() -> None:
        with torch.no_grad():
            model(batch)

    return call


def _train_step(kind: str, risk: bool, cl: bool) -> Callable[[], object]:
    model, batch = _model(kind, risk, cl).train(), _batch(16, cl)
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)

    def step() -> None:
        loss = sum(v.float().mean() for v in model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _best_times(fns: dict[tuple, Callable[[], object]], rounds: int) -> dict[tuple, float]:
    """Best wall time (s) of each function over ``rounds`` round-robin passes (+2 warm-up)."""
    best = dict.fromkeys(fns, float("inf"))
    for r in range(rounds + 2):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if r >= 2:
                best[key] = min(best[key], time.perf_counter() - t0)
    return best


def _recipe(variant: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """The experiment's ``TrainConfig`` (grid, model, loss) for ``variant``, plus dotted
    ``overrides``."""
    data = copy.deepcopy(ExperimentConfig().train)
    apply_overrides(data, [f"variant={variant}", *overrides])
    return from_dict(TrainConfig, data)


def _task_batch(cfg: TrainConfig, b: int = 16, k: int = 8) -> tuple[dict, dict]:
    """(features, targets) of ``b`` synthetic frames on ``cfg.grid``: ``k`` cars spread over the
    view, each driving 8 m/s ahead, the ego 10 m/s; the teacher's maps hold one risky patch per
    channel, every agent is judged and ranked, the road is a band 24 cells wide."""
    g = torch.Generator().manual_seed(0)
    grid, t = cfg.grid, torch.arange(1, FUTURE_STEPS + 1) * 0.5
    h, w = grid.shape
    xs = grid.x_min + torch.rand(b, k, generator=g) * (grid.x_max - grid.x_min)
    ys = grid.y_min + torch.rand(b, k, generator=g) * (grid.y_max - grid.y_min)
    boxes = torch.zeros(b, k, 8)
    boxes[..., 0], boxes[..., 1], boxes[..., 6] = xs, ys, 8.0
    boxes[..., 2:5] = torch.tensor([4.5, 1.9, 1.5])
    zeros = torch.zeros(b, k, len(t))
    future = torch.stack([xs[..., None] + 8 * t, ys[..., None] + zeros, zeros], -1)  # x, y, yaw
    ego = torch.stack([10 * t, 0 * t, 0 * t], -1).expand(b, -1, -1)
    risk = torch.zeros(b, cfg.risk_map.channels, h, w)
    risk[:, :, h // 4 : h // 4 + 4, w // 2 : w // 2 + 3] = 1.0
    maps = torch.zeros(b, 2, h, w)
    maps[:, 0, :, w // 2 - 12 : w // 2 + 12] = 1.0
    agent_risk = torch.rand(b, k, generator=g)
    every = torch.ones(b, k, dtype=torch.bool)
    features = {
        "bev": (torch.rand(b, cfg.in_channels, h, w, generator=g) > 0.8).float(),
        "command": torch.randint(0, len(Command), (b,), generator=g),
        "ego_status": torch.rand(b, 4, generator=g) * 10,
    }
    targets = {
        "ego_size": torch.tensor([4.5, 1.9, 1.5]).repeat(b, 1),
        "ego_future": ego.contiguous(),
        "ego_future_valid": torch.ones(b, len(t), dtype=torch.bool),
        "agent_boxes": boxes,
        "agent_cls": torch.zeros(b, k, dtype=torch.long),
        "agent_mask": every,
        "agent_in_grid": every,
        "agent_future": future,
        "agent_future_valid": every[..., None].expand(b, k, len(t)).contiguous(),
        "agent_vel_valid": every,
        "target_maps": maps,
        "risk_map": risk,
        "agent_risk": agent_risk,
        "agent_rank": agent_risk.argsort(1, descending=True).argsort(1) + 1,
        "agent_risk_valid": every,
        "risk_valid": torch.ones(b, dtype=torch.bool),
        "scene_risk": torch.rand(b, generator=g),
    }
    return features, targets


def _task_fns(
    variant: str, overrides: Sequence[str] = ()
) -> tuple[torch.nn.Module, Callable[[], object], Callable[[], object]]:
    """(model, one training step, one inference pass) of ``variant``'s task on the recipe."""
    cfg = _recipe(variant, overrides)
    torch.manual_seed(0)
    model = cfg.task.build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    features, targets = _task_batch(cfg)
    stride = int(model.feature_stride)

    def step() -> None:
        model.train()
        terms = cfg.task.loss(model(features), targets, cfg, stride)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(features)

    return model, step, infer


def _ab_ratio(base: Callable[[], object], other: Callable[[], object], pairs: int) -> tuple:
    """Median over ``pairs`` (after 2 warm-up pairs) of ``other / base - 1`` in CPU and in
    wall time, the two run back to back in alternating order; and the median times (s)."""
    cpu, wall, times = [], [], {0: [], 1: []}
    for i in range(pairs + 2):
        got = {}
        for j in (0, 1) if i % 2 else (1, 0):
            c0, w0 = time.process_time(), time.perf_counter()
            (base, other)[j]()
            got[j] = (time.process_time() - c0, time.perf_counter() - w0)
        if i >= 2:
            cpu.append(got[1][0] / got[0][0] - 1)
            wall.append(got[1][1] / got[0][1] - 1)
            times[0].append(got[0][0])
            times[1].append(got[1][0])
    med = statistics.median
    return med(cpu), med(wall), med(times[0]), med(times[1])


def head_overhead(pairs: int) -> None:
    """Print the RiskHead's overhead in the experiment recipe (see the module docstring)."""
    base_model, base_step, base_infer = _task_fns("baseline")
    rsd_model, rsd_step, rsd_infer = _task_fns("rsd")
    n_base = sum(p.numel() for p in base_model.parameters())
    n_head = sum(p.numel() for p in rsd_model.head.parameters())
    print(f"RiskHead overhead, experiment recipe ({_recipe('rsd').model.risk_head}):")
    print(f"  params      {n_head:,} / {n_base:,} = {n_head / n_base:+.1%}")
    runs = (("train step", base_step, rsd_step), ("inference", base_infer, rsd_infer))
    for name, base, other in runs:
        cpu, wall, t_base, t_rsd = _ab_ratio(base, other, pairs)
        print(
            f"  {name:<11} {cpu:+.1%} CPU ({1e3 * t_base:.1f} -> {1e3 * t_rsd:.1f} ms),"
            f" {wall:+.1%} wall; median of {pairs} A/B pairs, batch 16"
        )


SPLIT = {
    "the recipe": [],
    "+ deformable block": ["model.risk_head.use_deformable=true"],
    "+ coarse level": ["model.risk_head.coarse=true"],
    "+ full-grid distillation": ["loss.distill_full_grid=true"],
    "- mode cost": ["model.risk_head.mode_cost=0"],
    "- distillation terms": ["loss.distill_map=0", "loss.distill_agent=0", "loss.distill_rank=0"],
    "- risk-mass penalty": ["loss.traj_risk_mass=0"],
}
"""``--split``: the rsd task with these overrides, each against the baseline."""


def head_split(pairs: int) -> None:
    """Print where the RiskHead's time goes: the overhead of the rsd task with one part added
    to or taken from the recipe (each against the baseline, A/B pairs as above)."""
    _, base_step, base_infer = _task_fns("baseline")
    print(f"{'rsd task':<26}{'train step':>12}{'inference':>12}   (CPU, vs baseline)")
    for name, overrides in SPLIT.items():
        _, step, infer = _task_fns("rsd", overrides)
        train = _ab_ratio(base_step, step, pairs)[0]
        inf = _ab_ratio(base_infer, infer, pairs)[0]
        print(f"{name:<26}{train:>+12.1%}{inf:>+12.1%}   {' '.join(overrides)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--recipe", choices=("experiment", "default"), default="experiment")
    parser.add_argument("--pairs", type=int, default=31, help="A/B pairs of the overhead")
    parser.add_argument("--overhead-only", action="store_true", help="only the RiskHead's budget")
    parser.add_argument("--split", action="store_true", help="where the RiskHead's time goes")
    args = parser.parse_args()
    if args.overhead_only or args.split:
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, 1 thread\n")
        (head_split if args.split else head_overhead)(args.pairs)
        return
    if args.recipe == "experiment":
        CONFIG["cfg"] = from_dict(ModelConfig, ExperimentConfig().train["model"])
    print(f"recipe {args.recipe}: {CONFIG['cfg']}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, input (B, 7, 160, 64)\n")

    print(f"{'backbone':<10}{'params':>10}{'RiskHead':>10}{'ratio':>8}")
    for kind in ("vad", "cnn"):
        rsd = _model(kind, True)
        n_base = sum(p.numel() for p in rsd.model.parameters())
        n_head = sum(p.numel() for p in rsd.head.parameters())
        print(f"{kind:<10}{n_base:>10,}{n_head:>10,}{n_head / n_base:>8.1%}")

    layouts = (False, True)
    infer = {(v, b, cl): _inference(*v, b, cl) for v in VARIANTS for b in (1, 16) for cl in layouts}
    t_inf = _best_times(infer, args.rounds)
    train = {(v, cl): _train_step(*v, cl) for v in VARIANTS for cl in layouts}
    t_train = _best_times(train, max(3, args.rounds // 2))

    def best(times: dict[tuple, float], *key: object) -> tuple[float, str]:
        t, cl = min((times[(*key, cl)], cl) for cl in layouts)
        return t, "cl" if cl else "contig"

    print(f"\n{'model':<10}{'b=1 ms':>16}{'b=16 ms':>17}{'train b=16 samples/s':>26}")
    figures = {}
    for v in VARIANTS:
        (t1, f1), (t16, f16), (tt, ft) = best(t_inf, v, 1), best(t_inf, v, 16), best(t_train, v)
        figures[v] = (t1, t16, tt)
        name = f"{v[0]}{'+risk' if v[1] else ''}"
        print(f"{name:<10}{1e3 * t1:>8.1f} {f1:<7}{1e3 * t16:>9.1f} {f16:<7}{16 / tt:>17.1f} {ft}")
    print()
    torch.set_num_threads(1)  # the budget is measured on one thread (CPU time per process)
    head_overhead(args.pairs)


if __name__ == "__main__":
    main()
