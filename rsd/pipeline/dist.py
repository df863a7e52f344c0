"""The machinery of ``rsd train`` around the loop: processes (DDP set-up, collectives, the stop
flag that SIGINT / SIGTERM raise) and the run's logs (``metrics.jsonl`` + TensorBoard)."""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

METRICS_NAME = "metrics.jsonl"
TB_DIR = "tb"


# -- processes -----------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int
    world: int
    device: torch.device
    owns_group: bool

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.to(self.device)
            dist.all_reduce(t)
        return t.cpu()

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running stats). DDP broadcasts them
        from rank 0 before each forward anyway, so this changes nothing the next step would
        see; it makes every rank's saved or returned weights the same."""
        if self.world > 1:
            for b in model.buffers():
                dist.broadcast(b.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather_json(self, obj: Any) -> list[Any]:
        """``obj`` of every rank (as JSON over byte tensors: no pickle)."""
        data = json.dumps(obj).encode()
        if self.world == 1:
            return [json.loads(data)]
        mine = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([len(data)], device=self.device))
        n = int(max(s.item() for s in sizes))
        padded = torch.zeros(n, dtype=torch.uint8, device=self.device)
        padded[: len(data)] = mine
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return [
            json.loads(bytes(p[: int(s.item())].cpu().tolist()))
            for p, s in zip(parts, sizes, strict=True)
        ]


def setup_dist() -> Dist:
    """This process's place in the run: DDP when ``WORLD_SIZE > 1`` (torchrun's environment;
    the group is initialised here unless the caller already did), else a single process.
    One GPU per process (``LOCAL_RANK``) when CUDA is available, else the CPU."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, device, owns)


class StopFlag:
    """SIGINT / SIGTERM ask for a clean stop at the next step boundary; a second Ctrl-C
    raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# -- logging -------------------------------------------------------------------------------


class RunLog:
    """metrics.jsonl + TensorBoard, rank 0 only; lines past ``start_step`` (left by a run that
    died after its last checkpoint) are dropped so a resumed log has no duplicate steps."""

    def __init__(self, run_dir: Path, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / METRICS_NAME
        if self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines() if _step(ln) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        self.tb = SummaryWriter(str(run_dir / TB_DIR), purge_step=start_step + 1)

    def write(self, record: dict[str, Any], prefix: str) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                self.tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.tb.close()


def _step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62
