"""``rsd train``: train a driving model (``baseline``) or one with risk distillation (``rsd``).

    rsd train --data DIR --variant rsd --out RUN [--config YAML] [key=value ...]
    torchrun --nproc_per_node=4 -m rsd.train --data DIR --variant rsd --out RUN

One script for one or N processes: DDP switches on when ``WORLD_SIZE > 1`` (set by
``torchrun``), with gloo on CPU and nccl on GPU (one GPU per process, ``LOCAL_RANK``). Every
process sees a different shard of each epoch's permutation (``DistributedSampler``, same seed);
rank 0 writes the logs and checkpoints.

Data: the train split of ``DIR`` (by episode, :func:`rsd.data.dataset.split_indices`) under the
config's rig. The ``rsd`` variant reads its targets from ``DIR/annotations.sqlite`` (the answers
of ``teacher`` / ``prompt_version``); a dataset without them is refused with the command to run
(``rsd annotate DIR``) rather than annotated on the fly: annotation is a separate, resumable,
shardable job, and a VLM teacher must never be started implicitly by training.

``RUN`` receives ``config.yaml`` (resolved), ``metrics.jsonl`` (every ``log_every`` steps: step,
epoch, lr, grad norm and every loss term, averaged over the interval and the processes, plus one
line per epoch), ``tb/`` (the same in TensorBoard) and ``checkpoints/last.safetensors``
(:mod:`rsd.checkpoint`), written after every epoch and when the run is stopped: Ctrl-C / SIGTERM
set a flag and the loop saves at the next step boundary, then exits. ``--resume`` continues
exactly: the data order, the RNG states and the learning-rate schedule are those of the run that
was never interrupted. A loss term that turns NaN or inf stops the run naming the step and the
term; the last good checkpoint is kept.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from rsd.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rig_hash,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rsd.config import ConfigError, dump_yaml, load_config, to_dict
from rsd.train_config import VARIANTS, TrainConfig, check_resumable, lr_at, resolve
from rsd.train_data import make_loader, open_training_data, to_device
from rsd.train_runtime import Dist, RunLog, StopFlag, setup_dist

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
TB_DIR = "tb"

LossFn = Callable[..., dict[str, torch.Tensor]]


class TrainingDiverged(RuntimeError):
    """A loss term or the gradient norm became NaN or inf."""


@dataclass
class TrainResult:
    model: nn.Module
    """The trained model (unwrapped from DDP), on the training device."""
    step: int
    status: str
    """``done``, ``stopped`` (``stop_after_steps``) or ``interrupted`` (a signal)."""
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    """The last logged line."""


# -- training ------------------------------------------------------------------------------


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on weight matrices and kernels only, not on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global stream: whatever uses it)
    torch.manual_seed(seed)


def train(
    cfg: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    loss_fn: LossFn | None = None,
) -> TrainResult:
    """Train under ``cfg`` on the dataset ``data`` into the run directory ``out``.

    ``loss_fn`` replaces :func:`rsd.losses.total_loss` (same signature). Raises ConfigError for
    an unusable config, dataset or run directory, and :class:`TrainingDiverged` on NaN / inf.
    """
    d = setup_dist()
    try:
        return _train(resolve(cfg), Path(data), Path(out), resume, progress, loss_fn, d)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(cfg, data, out, resume, progress, loss_fn, d: Dist) -> TrainResult:
    from tqdm import tqdm

    from rsd.data.store import atomic_write
    from rsd.losses import total_loss
    from rsd.models import build_model

    loss_fn = loss_fn or total_loss
    lead = d.rank == 0

    def say(msg: str) -> None:
        if lead:
            print(msg, file=sys.stderr)

    ckpt_file = checkpoint_path(out)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(ckpt_file)
        check_resumable(ckpt.config, cfg)
        if ckpt.meta["world_size"] != d.world:
            raise CheckpointError(
                f"{ckpt_file} was written by {ckpt.meta['world_size']} processes; resume it "
                f"with as many (this run has {d.world}) to continue the same data order"
            )
    elif ckpt_file.exists():
        raise ConfigError(
            f"{out} already holds a run (checkpoint at step "
            f"{load_checkpoint(ckpt_file, optimizer=False).step}); pass --resume to continue "
            "it, or choose another --out"
        )
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    _seed_all(cfg.seed)
    ds, identity, rig = open_training_data(cfg, data, say)
    rig_id = {"name": rig.name, "hash": rig_hash(rig)}
    if ckpt is not None:
        for what, now, then in (("dataset", identity, ckpt.meta["dataset"]),
                                ("rig", rig_id, ckpt.meta["rig"])):  # fmt: skip
            if now != then:
                raise CheckpointError(f"--resume: the {what} changed: checkpoint {then}, now {now}")
    model = build_model(cfg.model, cfg.in_channels, cfg.grid).to(d.device)
    _seed_all(cfg.seed + d.rank)  # per-process streams (dropout) after a common init
    optimizer = _optimizer(model, cfg)
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        step = ckpt.step
    net: nn.Module = model
    if d.world > 1:
        ids = [d.device.index] if d.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    stride = int(getattr(model, "feature_stride", 1))
    per_rank = math.ceil(len(ds) / d.world)
    steps_per_epoch = math.ceil(per_rank / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG_NAME, dump_yaml(cfg).encode())
    log = RunLog(out, step, enabled=lead)
    last_saved = step if ckpt is not None else None

    def save(status: str) -> None:
        nonlocal last_saved
        d.sync_buffers(model)
        rngs = d.gather_json(rng_state())
        if lead:
            meta = {
                "config": to_dict(cfg),
                "rig": rig_id,
                "dataset": identity,
                "epoch": step // steps_per_epoch,
                "step": step,
                "steps_per_epoch": steps_per_epoch,
                "total_steps": total,
                "world_size": d.world,
                "threads": torch.get_num_threads(),
                "status": status,
                "rng": rngs,
                "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            save_checkpoint(ckpt_file, model.state_dict(), optimizer.state_dict(), meta)
        d.barrier()
        last_saved = step

    if ckpt is not None:
        if ckpt.meta.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            say(
                f"rsd train: warning: the run used {ckpt.meta['threads']} torch threads, this "
                f"process has {torch.get_num_threads()}; the result will equal an uninterrupted "
                "run's only up to float rounding (set OMP_NUM_THREADS to match)"
            )
        set_rng_state(ckpt.meta["rng"][d.rank])  # last: nothing above may draw from it
    say(
        f"rsd train: {cfg.variant}, {len(ds)} samples, {d.world} process(es) on {d.device.type},"
        f" {steps_per_epoch} steps/epoch x {cfg.epochs} epochs"
        + (f"; resuming at step {step}" if ckpt is not None else "")
    )
    bar = tqdm(total=total, initial=step, unit="step", disable=not (progress and lead))
    bar.set_description(f"train {cfg.variant}")
    net.train()
    status, last = "done", {}
    sums: dict[str, float] = {}
    n_sum, t_log, epoch_loss, epoch_n = 0, time.monotonic(), 0.0, 0
    try:
        with StopFlag() as flag:
            while step < total and status == "done":
                epoch = step // steps_per_epoch
                t_epoch = time.monotonic()
                for batch in make_loader(ds, cfg, d, epoch, step - epoch * steps_per_epoch):
                    lr = lr_at(cfg, step, total)
                    for g in optimizer.param_groups:
                        g["lr"] = lr
                    batch = to_device(batch, d.device)
                    outputs = net(batch["features"])
                    terms = loss_fn(
                        outputs, batch["targets"], cfg.loss, cfg.grid, stride, cfg.variant
                    )
                    optimizer.zero_grad(set_to_none=True)
                    terms["loss"].backward()
                    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
                    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    names = [n for n in terms if n != "loss"] + ["loss", "grad_norm"]
                    parts = [torch.as_tensor(terms[n]).detach().float().cpu() for n in names[:-1]]
                    parts += [gnorm.detach().float().cpu(), torch.tensor(float(flag.requested))]
                    values = (d.all_sum(torch.stack(parts)) / d.world).tolist()
                    finite = [math.isfinite(v) for v in values[:-1]]
                    bad = next((n for n, ok in zip(names, finite, strict=True) if not ok), None)
                    if bad is not None:
                        kept = (
                            f"the last good checkpoint {ckpt_file} (step {last_saved}) is kept"
                            if last_saved is not None
                            else "no checkpoint had been written yet"
                        )
                        raise TrainingDiverged(
                            f"training diverged at step {step + 1} (epoch {epoch + 1}): "
                            f"{'loss term' if bad != 'grad_norm' else 'the'} {bad!r} is "
                            f"{values[names.index(bad)]}; {kept}"
                        )
                    optimizer.step()
                    step += 1
                    for n, v in zip(names, values[:-1], strict=True):
                        sums[n] = sums.get(n, 0.0) + v
                    n_sum += 1
                    epoch_loss += values[names.index("loss")]
                    epoch_n += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{values[names.index('loss')]:.4f}", lr=f"{lr:.2e}")
                    if step % cfg.log_every == 0 or step == total:
                        dt = time.monotonic() - t_log
                        last = {"step": step, "epoch": step / steps_per_epoch, "lr": lr}
                        last |= {n: s / n_sum for n, s in sums.items()}
                        last["samples_per_s"] = n_sum * cfg.batch_size * d.world / max(dt, 1e-9)
                        log.write(last, "train")
                        sums, n_sum, t_log = {}, 0, time.monotonic()
                    if values[-1] > 0:
                        status = "interrupted"
                    elif cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
                        status = "stopped"
                    if status != "done":
                        save(status)
                        break
                else:
                    save("epoch")
                    rec = {"step": step, "epoch": step // steps_per_epoch}
                    rec["loss"] = epoch_loss / max(epoch_n, 1)
                    rec["seconds"] = time.monotonic() - t_epoch
                    log.write(rec, "epoch")
                    epoch_loss, epoch_n = 0.0, 0
    finally:
        bar.close()
        log.close()
    if status != "done":
        say(f"rsd train: {status} at step {step}; checkpoint {ckpt_file}; continue with --resume")
    return TrainResult(model=model, step=step, status=status, run_dir=out, metrics=last)


# -- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset dir")
    parser.add_argument("--variant", choices=VARIANTS, help="default: the config's (rsd)")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN", help="run directory")
    parser.add_argument("--config", metavar="YAML", help="a TrainConfig YAML file")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN from its checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. lr=0.001 model.kind=cnn",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults <- --config YAML (on --resume: RUN/config.yaml, whose ``stop_after_steps`` is
    dropped) <- KEY=VALUE <- --variant."""
    path, overrides = args.config, list(args.overrides)
    if path is None and args.resume and (args.out / CONFIG_NAME).exists():
        path = args.out / CONFIG_NAME
        overrides.insert(0, "stop_after_steps=null")  # a stop of the last session is spent
    if args.variant is not None:
        overrides.append(f"variant={args.variant}")
    return load_config(TrainConfig, path, overrides)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        result = train(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress)
    except TrainingDiverged as e:
        print(f"rsd train: error: {e}", file=sys.stderr)
        return 1
    if result.status == "done" and int(os.environ.get("RANK", "0")) == 0:
        loss = result.metrics.get("loss")
        tail = f", last loss {loss:.4f}" if loss is not None else ""
        print(f"trained {result.step} steps{tail}; checkpoint {checkpoint_path(args.out)}")
    return 130 if result.status == "interrupted" else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.train ...`` (and under ``torchrun``): the same as ``rsd train ...``."""
    from rsd.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
