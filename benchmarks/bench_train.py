"""Training throughput, peak memory, and the wall time of one default epoch and a default run.

    python benchmarks/bench_train.py [--data DIR] [--steps 20] [--threads 2] [KEY=VALUE ...]

Without ``--data`` it records ``--episodes`` expert episodes of two scenarios (highway-env) into
a temp directory and annotates them with the privileged teacher. It then times, under the
default :class:`~rsd.train_config.TrainConfig` (plus overrides):

* ``loader``: the DataLoader alone (rasterise + risk targets + collate), samples/s;
* ``step``: forward + backward + AdamW on one fixed batch, samples/s;
* ``train``: ``rsd.train.train`` end to end for ``--steps`` steps after 3 warm-up steps (from
  its own ``metrics.jsonl``), samples/s;
* peak RSS of this process and of its DataLoader workers (``getrusage``), and on CUDA the
  peak of allocated tensor memory.

The default dataset (``rsd generate`` defaults: every built-in scenario x 12 episodes) is
estimated from the mean keyframes per recorded episode and the train split (seed % 5 != 4);
one epoch and the whole default run (``epochs`` of them) are that many samples at the
end-to-end rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rsd.config import load_config
from rsd.train_config import TrainConfig


def _record(root: Path, episodes: int) -> Path:
    from rsd.data.store import FrameStore
    from rsd.pipeline.annotate import annotate
    from rsd.pipeline.generate import GenerateConfig, generate
    from rsd.teacher.cache import CACHE_NAME, AnnotationCache
    from rsd.teacher.factory import make_teacher

    cfg = GenerateConfig(scenarios=("highway", "dense"), episodes_per_scenario=episodes)
    generate(cfg, root, progress=False)
    with AnnotationCache(root / CACHE_NAME) as cache:
        annotate(FrameStore(root), make_teacher("privileged"), cache, progress=False)
    return root


def _rate(fn, samples: int, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return samples * repeat / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an annotated dataset (default: record one)")
    parser.add_argument("--episodes", type=int, default=2, help="per scenario, when recording")
    parser.add_argument("--steps", type=int, default=20, help="timed end-to-end steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rsd.data.store import FrameStore
    from rsd.pipeline.dist import METRICS_NAME, Dist
    from rsd.pipeline.generate import GenerateConfig
    from rsd.pipeline.train import train
    from rsd.pipeline.train_data import make_loader, open_training_data, to_device

    cfg = load_config(TrainConfig, None, args.overrides)
    tmp = tempfile.TemporaryDirectory(prefix="bench_train-")
    data = args.data or _record(Path(tmp.name) / "ds", args.episodes)
    store = FrameStore(data)
    per_episode = len(store) / max(len(store.manifest["shards"]), 1)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = Dist(rank=0, world=1, device=dev, owns_group=False)
    ds, _, _ = open_training_data(cfg, data, lambda m: None)
    print(
        f"{len(store)} keyframes ({per_episode:.1f}/episode), {len(ds)} train; {cfg.variant}, "
        f"model {cfg.model.kind}, batch {cfg.batch_size}, {cfg.num_workers} workers, "
        f"{torch.get_num_threads()} threads, {dev.type}"
    )

    # the loader alone: one pass over the train split
    t0 = time.perf_counter()
    n = sum(len(b["frame_id"]) for b in make_loader(ds, cfg, d, epoch=0, skip_batches=0))
    loader_rate = n / (time.perf_counter() - t0)

    # one optimiser step on a fixed batch
    model = cfg.task.build_model(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batch = to_device(next(iter(make_loader(ds, cfg, d, 0, 0))), dev)
    stride = int(getattr(model, "feature_stride", 1))

    def one_step() -> None:
        outputs = model(batch["features"])
        terms = cfg.task.loss(outputs, batch["targets"], cfg, stride)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    bs = len(batch["frame_id"])
    step_rate = _rate(one_step, bs, repeat=5)
    params = sum(p.numel() for p in model.parameters())

    # end to end, from train()'s own log
    run = Path(tmp.name) / "run"
    warm = 3
    steps_per_epoch = -(-len(ds) // cfg.batch_size)
    epochs = -(-(warm + args.steps) // steps_per_epoch)
    over = [f"epochs={max(epochs, 1)}", f"stop_after_steps={warm + args.steps}", "log_every=1"]
    e2e_cfg = load_config(TrainConfig, None, [*args.overrides, *over])
    train(e2e_cfg, data, run, progress=False)
    lines = [json.loads(ln) for ln in (run / METRICS_NAME).read_text().splitlines()]
    rates = [ln["samples_per_s"] for ln in lines if "samples_per_s" in ln][warm:]
    e2e = statistics.median(rates)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    from rsd.data.dataset import VAL_EVERY
    from rsd.sim.spec import builtin_scenarios

    gen = GenerateConfig()
    default_eps = len(builtin_scenarios()) * gen.episodes_per_scenario
    seeds = range(gen.seed, gen.seed + gen.episodes_per_scenario)
    train_share = sum(s % VAL_EVERY != VAL_EVERY - 1 for s in seeds) / len(seeds)
    train_samples = default_eps * per_episode * train_share
    epoch_s = train_samples / e2e
    print(f"model: {params / 1e6:.2f} M parameters")
    print(f"loader:     {loader_rate:8.1f} samples/s  (rasterise + targets + collate)")
    print(f"step:       {step_rate:8.1f} samples/s  (forward + backward + AdamW, batch {bs})")
    print(f"train:      {e2e:8.1f} samples/s  (end to end, median of {len(rates)} steps)")
    print(f"peak RSS:   {rss:8.0f} MiB (this process), {rss_workers:.0f} MiB (largest worker)")
    if dev.type == "cuda":
        print(f"peak CUDA:  {torch.cuda.max_memory_allocated() / 2**20:8.0f} MiB allocated")
    print(
        f"default dataset ~{train_samples:.0f} train samples ({default_eps} episodes): one epoch "
        f"~{epoch_s / 60:.1f} min, {cfg.epochs} epochs ~{cfg.epochs * epoch_s / 3600:.2f} h"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
