"""The averages ``rsd train`` logs (:mod:`rsd.pipeline.train`): per interval of ``log_every``
steps and per epoch; ``run`` is the training loop's run state (step, steps per epoch, config,
processes)."""

from __future__ import annotations

import time
from typing import Any


class Meter:
    """Averages of the logged values over ``log_every`` steps, and the epoch's mean loss."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.n, self.t = 0, time.monotonic()
        self.epoch_loss, self.epoch_n = 0.0, 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            if k != "stop":  # a key logged on some steps only is averaged over those
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1
        self.n += 1
        self.epoch_loss += values["loss"]
        self.epoch_n += 1

    def line(self, run: Any, lr: float) -> dict[str, float]:
        """The interval's log line; starts the next interval."""
        dt = time.monotonic() - self.t
        rec = {"step": run.step, "epoch": run.step / run.steps_per_epoch, "lr": lr}
        rec |= {k: s / self.counts[k] for k, s in self.sums.items()}
        rec["samples_per_s"] = self.n * run.cfg.batch_size * run.d.world / max(dt, 1e-9)
        self.sums, self.counts, self.n, self.t = {}, {}, 0, time.monotonic()
        return rec

    def epoch_line(self, run: Any, seconds: float) -> dict[str, float]:
        rec = {"step": run.step, "epoch": run.step // run.steps_per_epoch}
        rec["loss"] = self.epoch_loss / max(self.epoch_n, 1)
        rec["seconds"] = seconds
        self.epoch_loss, self.epoch_n = 0.0, 0
        return rec
