"""Training speed of the experiment's recipe, old against new, and of each speed lever alone.

    python benchmarks/bench_recipe.py --data DIR [--threads 1] [--batches 8] [--compile]

``DIR`` is an annotated dataset (``rsd generate`` + ``rsd annotate``). For every recipe, in one
process on ``--threads`` torch threads, it prints:

* ``step``: forward + backward + AdamW of the baseline task on ``--batches`` real batches,
  samples/s from the best of 3 passes per batch (the machine is shared);
* ``GFLOP``: FLOPs of one such step (``torch.utils.flop_counter.FlopCounterMode``, forward and
  backward; the optimiser's element-wise work is not counted), and the GFLOP/s achieved;
* ``ceiling``: the GFLOP/s of a one-thread 1024 x 1024 float32 matmul measured right before
  that recipe (the machine's load drifts: each ratio uses its own neighbour), and the ratio;
* ``loader``: samples/s of the dataset + collate in the main process (``num_workers=0``, the
  recipe's setting), with the raster cache cold (rasterising) and warm (reading it back), with
  the recipe's augmentation;
* ``run``: the estimated wall time of one training run of the recipe on the demo dataset
  (samples x epochs at the combined rate ``1 / (1 / loader + 1 / step)``, warm cache).

Recipes: ``old`` (the recipe before issue 11's item 6: 3x3 stem, NCHW, batch 16, 32 m wide
view at 0.5 m), ``new`` (:func:`rsd.pipeline.experiment_config.ExperimentConfig`'s ``train``)
and ``old + one lever`` for each lever.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from rsd.config import load_config
from rsd.pipeline.experiment_config import ExperimentConfig, flatten
from rsd.train_config import TrainConfig

OLD = {
    "model.backbone.stem": "conv",
    "model.backbone.feature_stride": 4,
    "model.backbone.channels_last": False,
    "batch_size": 16,
    "grid.y_min": -16.0,
    "grid.y_max": 16.0,
    "grid.resolution": 0.5,
    "raster_cache": False,
}
"""The experiment recipe's values before the levers (the rest is the current recipe)."""
LEVERS = {
    "old + patch stem": {"model.backbone.stem": "patch"},
    "old + channels_last": {"model.backbone.channels_last": True},
    "old + batch 32": {"batch_size": 32},
    "old + raster cache": {"raster_cache": True},
    "old + wide 1 m view": {"grid.y_min": -32.0, "grid.y_max": 32.0, "grid.resolution": 1.0},
}
NEW_VARIANTS = {
    "new, feature stride 4": {"model.backbone.feature_stride": 4},
    "new, batch 32": {"batch_size": 32},
}
DEMO_TRAIN_SAMPLES = 1900
"""Train-split samples of the demo dataset (7 scenarios x 6 episodes), for the run estimate."""


def matmul_gflops(n: int = 1024, repeat: int = 8) -> float:
    """GFLOP/s of an n x n float32 matmul on the current thread count (best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def recipe(overrides: dict[str, Any]) -> TrainConfig:
    train = {**flatten(ExperimentConfig().train), "variant": "baseline", **overrides}
    return load_config(TrainConfig, None, [f"{k}={v}" for k, v in train.items()])


def loader_rate(cfg: TrainConfig, data: Path, batches: int) -> tuple[float, float, list]:
    """(cold, warm) loader samples/s over ``batches`` batches and the batches themselves."""
    from rsd.pipeline.dist import Dist
    from rsd.pipeline.train_data import make_loader, open_training_data

    d = Dist(rank=0, world=1, device=torch.device("cpu"), owns_group=False)
    rates, out = [], []
    for _ in range(2):  # the first pass fills the cache (when the recipe has one)
        ds, _, _ = open_training_data(cfg, data, lambda m: None)
        t0, n, out = time.perf_counter(), 0, []
        for b in make_loader(ds, cfg, d, epoch=0, skip_batches=0):
            out.append(b)
            n += len(b["frame_id"])
            if len(out) == batches:
                break
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1], out


def step_rate(
    cfg: TrainConfig, batches: list, compile_model: bool, passes: int = 3
) -> tuple[float, float, float]:
    """(samples/s, GFLOP per step, compile s) of the baseline task's training step (FLOPs are
    counted on the eager model)."""
    torch.manual_seed(0)
    model = cfg.task.build_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stride = int(getattr(model, "feature_stride", 1))
    fwd = torch.compile(model) if compile_model else model

    def step(b: dict) -> None:
        terms = cfg.task.loss(fwd(b["features"]), b["targets"], cfg, stride)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()

    t0 = time.perf_counter()
    step(batches[0])
    compile_s = time.perf_counter() - t0 if compile_model else 0.0
    with FlopCounterMode(display=False) as fc:
        terms = cfg.task.loss(model(batches[0]["features"]), batches[0]["targets"], cfg, stride)
        terms["loss"].backward()
    opt.zero_grad(set_to_none=True)
    # best of ``passes`` per batch: the machine is shared, and the fastest pass is the one
    # least disturbed by other jobs (the matmul ceiling is taken the same way)
    best = [float("inf")] * len(batches)
    for _ in range(passes):
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            step(b)
            best[i] = min(best[i], time.perf_counter() - t0)
    n = sum(len(b["frame_id"]) for b in batches)
    return n / sum(best), fc.get_total_flops() / 1e9, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an annotated dataset")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per recipe")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--only", nargs="*", help="recipe names to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipes: dict[str, dict[str, Any]] = {"old": OLD}
    recipes.update({k: {**OLD, **v} for k, v in LEVERS.items()})
    recipes["new"] = {}
    recipes.update(NEW_VARIANTS)
    if args.compile:
        recipes["new + torch.compile"] = {"compile": True}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), data {args.data}")
    head = "recipe                  step/s  GFLOP/step  GFLOP/s  ceiling  ratio  loader cold/warm"
    print(head + "  run (min)")
    for name, over in recipes.items():
        if args.only and name not in args.only:
            continue
        over = dict(over)
        use_compile = bool(over.pop("compile", False))
        cfg = recipe(over)
        with tempfile.TemporaryDirectory(prefix="bench_recipe-") as tmp:
            cfg = _with_cache_dir(cfg, Path(tmp))
            cold, warm, batches = loader_rate(cfg, args.data, args.batches)
        ceiling = matmul_gflops()
        rate, gflop, compile_s = step_rate(cfg, batches, use_compile)
        achieved = gflop * rate / cfg.batch_size
        run_min = DEMO_TRAIN_SAMPLES * cfg.epochs * (1 / warm + 1 / rate) / 60
        extra = f"  (compile {compile_s:.0f} s)" if use_compile else ""
        print(
            f"{name:22s} {rate:7.0f} {gflop:10.2f} {achieved:8.1f} {ceiling:8.0f} "
            f"{achieved / ceiling:6.2f}  {cold:6.0f}/{warm:<6.0f}     {run_min:6.1f}{extra}"
        )


def _with_cache_dir(cfg: TrainConfig, tmp: Path) -> TrainConfig:
    """``cfg`` with its raster cache (if on) in ``tmp``, so that every recipe starts cold."""
    import dataclasses

    return dataclasses.replace(cfg, raster_cache_dir=str(tmp)) if cfg.raster_cache else cfg


if __name__ == "__main__":
    main()
