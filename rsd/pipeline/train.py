"""Training (``rsd train``): a driving model (``baseline``) or one with risk distillation.

    rsd train --data DIR --variant rsd --out RUN [--config YAML] [key=value ...]
    torchrun --nproc_per_node=4 -m rsd.cli train --data DIR --variant rsd --out RUN

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
line per epoch; every ``grad_terms_every`` steps also ``grad/<term>``, each weighted term's own
gradient norm, single process only), ``tb/`` (the same in TensorBoard) and
``checkpoints/last.safetensors`` (:mod:`rsd.checkpoint`), written after every epoch, every
``checkpoint_every`` steps and when the run is stopped: Ctrl-C / SIGTERM set a flag and the
loop saves at the next step boundary, then exits. ``--resume`` continues exactly: the data
order, the RNG states and the learning-rate schedule are those of the run that was never
interrupted. A loss term that turns NaN or inf
stops the run naming the step and the term; the last good checkpoint is kept.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from rsd.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rig_hash,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rsd.config import ConfigError, dump_yaml, to_dict
from rsd.data.jsonio import atomic_write
from rsd.losses.gradnorm import term_grad_norms
from rsd.pipeline.dist import Dist, RunLog, StopFlag, setup_dist
from rsd.pipeline.train_data import make_loader, open_training_data, to_device
from rsd.pipeline.train_meter import Meter
from rsd.train_config import TrainConfig, check_resumable, lr_at

CONFIG_NAME = "config.yaml"

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

    The model, targets and loss are those of ``cfg``'s task (:mod:`rsd.tasks`); ``loss_fn``
    replaces :func:`rsd.losses.total_loss` (same signature, called with the task's ``risk``
    flag). Raises ConfigError for
    an unusable config, dataset or run directory, and :class:`TrainingDiverged` on NaN / inf.
    """
    d = setup_dist()
    try:
        run = _setup(cfg, Path(data), Path(out), resume, d, loss_fn)
        return _loop(run, progress)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


# -- setup ---------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything one training run holds between steps."""

    cfg: TrainConfig
    d: Dist
    out: Path
    ds: Any
    identity: dict
    rig_id: dict
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn | None
    step: int
    steps_per_epoch: int
    total: int
    last_saved: int | None
    last_line: dict[str, float] = field(default_factory=dict)
    """The last logged line."""

    @property
    def lead(self) -> bool:
        return self.d.rank == 0

    @property
    def ckpt_file(self) -> Path:
        return checkpoint_path(self.out)

    def say(self, msg: str) -> None:
        if self.lead:
            print(msg, file=sys.stderr)

    def save(self, status: str) -> None:
        """Checkpoint model, optimizer and every rank's RNG state (rank 0 writes)."""
        self.d.sync_buffers(self.model)
        rngs = self.d.gather_json(rng_state())
        if self.lead:
            meta = {
                "config": to_dict(self.cfg),
                "rig": self.rig_id,
                "dataset": self.identity,
                "epoch": self.step // self.steps_per_epoch,
                "step": self.step,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total,
                "world_size": self.d.world,
                "threads": torch.get_num_threads(),
                "status": status,
                "rng": rngs,
                "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            state = (self.model.state_dict(), self.optimizer.state_dict())
            save_checkpoint(self.ckpt_file, *state, meta)
        self.d.barrier()
        self.last_saved = self.step


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on weight matrices and kernels only, not on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global stream: whatever uses it)
    torch.manual_seed(seed)


def _checkpoint_to_resume(cfg: TrainConfig, out: Path, resume: bool, d: Dist) -> Any:
    """The checkpoint ``--resume`` continues (checked against ``cfg``), or None; refuses to
    start over a run that exists."""
    ckpt_file = checkpoint_path(out)
    if not resume:
        if ckpt_file.exists():
            step = load_checkpoint(ckpt_file, optimizer=False).step
            raise ConfigError(
                f"{out} already holds a run (checkpoint at step {step}); pass --resume to "
                "continue it, or choose another --out"
            )
        return None
    ckpt = load_checkpoint(ckpt_file)
    check_resumable(ckpt.config, cfg)
    if ckpt.meta["world_size"] != d.world:
        raise CheckpointError(
            f"{ckpt_file} was written by {ckpt.meta['world_size']} processes; resume it "
            f"with as many (this run has {d.world}) to continue the same data order"
        )
    return ckpt


def _deterministic() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def _setup(
    cfg: TrainConfig, data: Path, out: Path, resume: bool, d: Dist, loss_fn: LossFn | None
) -> _Run:
    """Data, model, optimizer and step of a new or resumed run (RNG draws in a fixed order)."""
    ckpt = _checkpoint_to_resume(cfg, out, resume, d)
    if cfg.deterministic:
        _deterministic()
    _seed_all(cfg.seed)
    say = (lambda msg: print(msg, file=sys.stderr)) if d.rank == 0 else (lambda msg: None)
    ds, identity, rig = open_training_data(cfg, data, say)
    rig_id = {"name": rig.name, "hash": rig_hash(rig)}
    if ckpt is not None:
        for what, now, then in (("dataset", identity, ckpt.meta["dataset"]),
                                ("rig", rig_id, ckpt.meta["rig"])):  # fmt: skip
            if now != then:
                raise CheckpointError(f"--resume: the {what} changed: checkpoint {then}, now {now}")
    model = cfg.task.build_model(cfg).to(d.device)
    if cfg.probe_of is not None:
        _start_probe(model, Path(cfg.probe_of), load=ckpt is None)
    _seed_all(cfg.seed + d.rank)  # per-process streams (dropout) after a common init
    optimizer = _optimizer(model, cfg)
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
    net: nn.Module = model
    if d.world > 1:
        ids = [d.device.index] if d.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    steps_per_epoch = math.ceil(math.ceil(len(ds) / d.world) / cfg.batch_size)
    step = ckpt.step if ckpt is not None else 0
    run = _Run(cfg, d, out, ds, identity, rig_id, model, net, optimizer, loss_fn, step,
               steps_per_epoch, cfg.epochs * steps_per_epoch,
               step if ckpt is not None else None)  # fmt: skip
    if run.lead:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG_NAME, dump_yaml(cfg).encode())
    if ckpt is not None:
        _restore_rng(run, ckpt)
    return run


def _start_probe(model: nn.Module, source: Path, load: bool) -> None:
    """Freeze ``model``'s backbone (``probe_of``), after loading it from ``source``'s
    checkpoint (a fresh run; a resumed one has its own)."""
    if load:
        weights = load_checkpoint(checkpoint_path(source), optimizer=False).model
        if any(k.startswith("head.") for k in weights):  # a run with a RiskHead: its backbone
            weights = {k[6:]: v for k, v in weights.items() if k.startswith("model.")}
        try:
            model.model.load_state_dict(weights)
        except RuntimeError as e:
            raise ConfigError(f"probe_of: {source}'s weights do not fit this model: {e}") from e
    model.freeze_backbone()


def _restore_rng(run: _Run, ckpt: Any) -> None:
    """Last of the setup: nothing after it may draw before the first step."""
    threads = torch.get_num_threads()
    if ckpt.meta.get("threads", threads) != threads:
        run.say(
            f"rsd train: warning: the run used {ckpt.meta['threads']} torch threads, this "
            f"process has {threads}; the result will equal an uninterrupted "
            "run's only up to float rounding (set OMP_NUM_THREADS to match)"
        )
    set_rng_state(ckpt.meta["rng"][run.d.rank])


# -- the loop ------------------------------------------------------------------------------


def _step(run: _Run, batch: dict[str, Any], lr: float, flag: StopFlag) -> dict[str, float]:
    """One optimiser update: every loss term, ``loss``, ``grad_norm`` (averaged over the
    processes) and ``stop`` (> 0 when any process was asked to stop, up to the reduction)."""
    cfg = run.cfg
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    batch = to_device(batch, run.d.device)
    stride = int(getattr(run.model, "feature_stride", 1))
    outputs = run.net(batch["features"])
    if run.loss_fn is None:
        terms = cfg.task.loss(outputs, batch["targets"], cfg, stride)
    else:
        risk = cfg.task.risk_terms
        terms = run.loss_fn(outputs, batch["targets"], cfg.loss, cfg.grid, stride, risk=risk)
    run.optimizer.zero_grad(set_to_none=True)
    every = cfg.grad_terms_every
    per_term = {}
    if every and (run.step + 1) % every == 0 and run.d.world == 1:  # (DDP: not its reducer's)
        per_term = term_grad_norms(terms, [p for p in run.model.parameters() if p.requires_grad])
    terms["loss"].backward()
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    gnorm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
    names = [n for n in terms if n != "loss"] + ["loss", "grad_norm", "stop"]
    parts = [torch.as_tensor(terms[n]).detach().float().cpu() for n in names[:-2]]
    parts += [gnorm.detach().float().cpu(), torch.tensor(float(flag.requested))]
    values = dict(
        zip(names, (run.d.all_sum(torch.stack(parts)) / run.d.world).tolist(), strict=True)
    )
    bad = next((n for n in names[:-1] if not math.isfinite(values[n])), None)
    if bad is not None:
        kept = (
            f"the last good checkpoint {run.ckpt_file} (step {run.last_saved}) is kept"
            if run.last_saved is not None
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"training diverged at step {run.step + 1} (epoch "
            f"{run.step // run.steps_per_epoch + 1}): "
            f"{'loss term' if bad != 'grad_norm' else 'the'} {bad!r} is {values[bad]}; {kept}"
        )
    run.optimizer.step()
    run.step += 1
    return values | per_term


def _epoch(run: _Run, flag: StopFlag, meter: Meter, log: RunLog, bar: tqdm) -> str:
    """The rest of the current epoch; returns ``done`` (epoch finished, saved and logged),
    ``interrupted`` or ``stopped`` (saved)."""
    cfg = run.cfg
    spe = run.steps_per_epoch
    epoch, skip, t_epoch = run.step // spe, run.step % spe, time.monotonic()
    for batch in make_loader(run.ds, cfg, run.d, epoch, skip):
        lr = lr_at(cfg, run.step, run.total)
        values = _step(run, batch, lr, flag)
        meter.add(values)
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}")
        if run.step % cfg.log_every == 0 or run.step == run.total:
            run.last_line = meter.line(run, lr)
            log.write(run.last_line, "train")
        status = "done"
        if values["stop"] > 0:
            status = "interrupted"
        elif cfg.stop_after_steps is not None and run.step >= cfg.stop_after_steps:
            status = "stopped"
        if status != "done":
            run.save(status)
            return status
        periodic = cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0
        if periodic and run.step % spe:  # (an epoch's last step is saved below)
            run.save("step")  # kill -9 loses at most checkpoint_every steps
    run.save("epoch")
    log.write(meter.epoch_line(run, time.monotonic() - t_epoch), "epoch")
    return "done"


def _loop(run: _Run, progress: bool) -> TrainResult:
    cfg, d = run.cfg, run.d
    resumed = run.last_saved is not None
    run.say(
        f"rsd train: {cfg.variant}, {len(run.ds)} samples, {d.world} process(es) on "
        f"{d.device.type}, {run.steps_per_epoch} steps/epoch x {cfg.epochs} epochs"
        + (f"; resuming at step {run.step}" if resumed else "")
    )
    log = RunLog(run.out, run.step, enabled=run.lead)
    bar = tqdm(total=run.total, initial=run.step, unit="step", disable=not (progress and run.lead))
    bar.set_description(f"train {cfg.variant}")
    run.net.train()
    status, meter = "done", Meter()
    try:
        with StopFlag() as flag:
            while run.step < run.total and status == "done":
                status = _epoch(run, flag, meter, log, bar)
    finally:
        bar.close()
        log.close()
    if status != "done":
        run.say(
            f"rsd train: {status} at step {run.step}; checkpoint {run.ckpt_file}; "
            "continue with --resume"
        )
    return TrainResult(
        model=run.model, step=run.step, status=status, run_dir=run.out, metrics=run.last_line
    )
