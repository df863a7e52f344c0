"""``rsd bench``: speed and size figures for the foundation, printed as a table.

* **recorder**: for each scenario, one seeded episode three ways in one run — replaying the
  expert's own actions through the raw environment step (the cost of highway-env itself),
  the expert driving without recording, and the full recorder (expert + snapshots + frame
  building). Overheads are ratios measured in the same process.
* **raster**: BEV input + targets per second on one core for the default grid and rig.
* **dataset**: wall time and size on disk of ``rsd generate`` with the default config
  (``--dataset``; takes minutes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenarios", default=None, help="comma-separated scenarios (default: all)")
    p.add_argument("--seed", type=int, default=0, help="episode seed for the recorder figures")
    p.add_argument("--repeats", type=int, default=2, help="repeats per measurement (best kept)")
    p.add_argument("--frames", type=int, default=300, help="keyframes for the raster figure")
    p.add_argument(
        "--only",
        choices=["recorder", "raster", "dataset"],
        action="append",
        help="run only these parts (repeatable); default: recorder and raster",
    )
    p.add_argument("--dataset", action="store_true", help="also time `rsd generate` defaults")
    p.add_argument("--workers", type=int, default=2, help="workers for --dataset")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _time_scenario(name: str, seed: int, repeats: int) -> dict:
    from rsd.sim.episode import make_episode
    from rsd.sim.expert import PrivilegedExpert
    from rsd.sim.recorder import record_episode

    actions: list[tuple[float, float]] = []

    def expert_only(log: bool = False) -> None:
        ep = make_episode(name, seed)
        ex = PrivilegedExpert(ep)
        while not ep.done:
            a = ex.act()
            if log:
                actions.append(a)
            ep.step(*a)
        ep.env.close()

    def raw() -> None:
        # the same episode, the expert's recorded actions replayed: highway-env's own cost
        ep = make_episode(name, seed)
        for a in actions:
            ep.step(*a)
        ep.env.close()

    expert_only(log=True)
    t_raw = _best(raw, repeats)
    t_exp = _best(expert_only, repeats)
    t_rec = _best(lambda: record_episode(name, seed), repeats)
    n = len(actions)
    return {
        "scenario": name,
        "steps": n,
        "raw_steps_per_s": n / t_raw,
        "expert_steps_per_s": n / t_exp,
        "recorder_steps_per_s": n / t_rec,
        "expert_overhead_pct": 100 * (t_exp / t_raw - 1),
        "recording_overhead_pct": 100 * (t_rec / t_exp - 1),
        "total_overhead_pct": 100 * (t_rec / t_raw - 1),
    }


def bench_recorder(scenarios: list[str], seed: int, repeats: int) -> list[dict]:
    return [_time_scenario(name, seed, repeats) for name in scenarios]


def bench_raster(n_frames: int, seed: int) -> dict:
    import torch

    from rsd.data.dataset import BEVDataset
    from rsd.data.rigs import load_rig
    from rsd.geometry import BEVGrid
    from rsd.sim.recorder import record_episode

    torch.set_num_threads(1)
    frames = []
    for name in ("dense", "intersection", "highway"):
        frames += record_episode(name, seed).frames
    frames = (frames * (n_frames // max(len(frames), 1) + 1))[:n_frames]
    ds = BEVDataset(frames, load_rig("dense360"), BEVGrid())
    ds[0]
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    dt = time.perf_counter() - t0
    return {
        "frames": len(ds),
        "frames_per_s": len(ds) / dt,
        "agents_mean": float(np.mean([len(f.agents) for f in frames])),
    }


def bench_dataset(workers: int) -> dict:
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "default"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rsd.cli", "generate", str(out), "--workers", str(workers)],
            check=True,
        )
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": dt,
        "bytes": size,
        "keyframes": manifest["totals"]["keyframes"],
        "episodes": manifest["totals"]["shards"],
    }


def run(args: argparse.Namespace) -> int:
    from rsd.sim.spec import builtin_scenarios

    only = set(args.only or ["recorder", "raster"])
    if args.dataset:
        only.add("dataset")
    scenarios = args.scenarios.split(",") if args.scenarios else builtin_scenarios()
    out: dict = {}
    if "recorder" in only:
        rows = bench_recorder(scenarios, args.seed, args.repeats)
        out["recorder"] = rows
        print(f"\nrecorder (one episode each, best of {args.repeats}; steps/s at 10 Hz)")
        print(
            f"{'scenario':<14}{'steps':>6}{'raw':>9}{'expert':>9}{'recorder':>10}"
            f"{'expert +%':>11}{'record +%':>11}{'total +%':>10}"
        )
        for r in rows:
            print(
                f"{r['scenario']:<14}{r['steps']:>6}{r['raw_steps_per_s']:>9.0f}"
                f"{r['expert_steps_per_s']:>9.0f}{r['recorder_steps_per_s']:>10.0f}"
                f"{r['expert_overhead_pct']:>11.1f}{r['recording_overhead_pct']:>11.1f}"
                f"{r['total_overhead_pct']:>10.1f}"
            )
    if "raster" in only:
        r = bench_raster(args.frames, args.seed)
        out["raster"] = r
        print(
            f"\nraster (default grid, rig dense360, 1 thread): {r['frames_per_s']:.0f} frames/s "
            f"over {r['frames']} keyframes ({r['agents_mean']:.1f} agents per frame)"
        )
    if "dataset" in only:
        r = bench_dataset(args.workers)
        out["dataset"] = r
        print(
            f"\ndefault dataset: {r['keyframes']} keyframes from {r['episodes']} episodes in "
            f"{r['seconds']:.0f} s with {args.workers} workers, {r['bytes'] / 2**20:.1f} MiB"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0
