"""Model sizes and CPU speed: both backbones, with and without the RiskHead.

    python benchmarks/bench_models.py [--threads 2] [--rounds 10] [--recipe experiment|default]

Per model: parameters (and the RiskHead's share of its backbone); inference latency at batch 1
and 16 (``eval``, ``no_grad``); training throughput at batch 16 (forward + backward + SGD step
on a surrogate loss, the mean of every output). Each figure is the best of ``--rounds``, taken
round-robin over all models and both memory layouts (contiguous / channels_last), so that a
burst of load on a shared machine hits every variant alike; the faster layout is named.
Inputs are random rasters of the default grid (7 x 160 x 64) with 8 agents. ``--recipe
experiment`` (default) builds the experiment's model (``rsd.pipeline.experiment_config``: the
72 k VADLite and its head), ``default`` the ``ModelConfig`` defaults; the RiskHead has the
space-time target's 6 channels and the mode cost. The last lines give the overhead ratios the
issue bounds (<= 10 % of parameters, inference and training-step time).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import torch

from rsd.config import from_dict
from rsd.models import ModelConfig, build_model
from rsd.models.protocol import Features
from rsd.pipeline.experiment_config import ExperimentConfig
from rsd.scene import Command

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--recipe", choices=("experiment", "default"), default="experiment")
    args = parser.parse_args()
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
    print("\nRiskHead overhead (with / without - 1; the issue's bound is 10 %):")
    for kind in ("vad", "cnn"):
        (a1, a16, at), (r1, r16, rt) = figures[kind, False], figures[kind, True]
        rsd = _model(kind, True)
        n_base = sum(p.numel() for p in rsd.model.parameters())
        n_head = sum(p.numel() for p in rsd.head.parameters())
        print(
            f"  {kind}: params {n_head / n_base:+.1%}; inference b=1 {r1 / a1 - 1:+.1%},"
            f" b=16 {r16 / a16 - 1:+.1%}; train step b=16 {rt / at - 1:+.1%}"
        )


if __name__ == "__main__":
    main()
