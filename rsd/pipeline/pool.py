"""Compute independent units of work a few at a time in spawned processes, each with one
torch thread, stopping all of them cleanly on Ctrl-C or SIGTERM.

On a small model one thread trains about as fast as two, so two processes nearly double the
throughput of 2 cores, where two 2-thread processes slowed each other ~30x.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler of the parallel section: stop like Ctrl-C (runs save checkpoints)."""
    raise KeyboardInterrupt


def _one_thread() -> None:
    import torch  # the units train and drive models: keep each process on one core

    torch.set_num_threads(1)


def run_in_pool(
    fn: Callable[..., None],
    units: Mapping[str, tuple[Any, ...]],
    workers: int,
    say: Callable[[str], None],
) -> None:
    """Call ``fn(*args)`` for every ``name -> args`` of ``units``, ``workers`` at a time in
    spawned processes, in the order given (``fn`` must be picklable: a module-level function).
    A failed unit is reported and the others go on (RuntimeError naming the failures at the
    end); Ctrl-C / SIGTERM cancels the queue and sends SIGINT to the running units, which save
    their work (KeyboardInterrupt re-raised)."""
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_one_thread)
    futures = {pool.submit(fn, *args): name for name, args in units.items()}
    failed: list[str] = []
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for fut in as_completed(futures):
            failed += _outcome(fut, futures[fut], say)
    except KeyboardInterrupt:
        say("interrupted: stopping the runs in progress (checkpoints are saved)")
        _stop(pool, futures)
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    pool.shutdown()
    if failed:
        raise RuntimeError("runs failed (the others are complete):\n  " + "\n  ".join(failed))


def _outcome(fut: Future, name: str, say: Callable[[str], None]) -> list[str]:
    err = fut.exception()
    if isinstance(err, KeyboardInterrupt):  # a run was stopped: stop them all
        raise KeyboardInterrupt
    if err is not None:
        say(f"run {name}: FAILED ({err!r}); the others go on")
        return [f"{name}: {err!r}"]
    say(f"run {name}: done")
    return []


def _stop(pool: ProcessPoolExecutor, futures: dict[Future, Any]) -> None:
    """Cancel queued units; running ones get SIGINT and save their checkpoint."""
    for fut in futures:
        fut.cancel()
    for child in mp.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)
    pool.shutdown(wait=True, cancel_futures=True)
