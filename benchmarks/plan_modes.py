"""ADE of the plan a model chooses against the best of its modes, per driving command.

    python benchmarks/plan_modes.py RUN DATA [N]

A multimodal planner is only as good as its mode choice: when the chosen mode's ADE is far
above the best mode's (minADE), the classifier, not the trajectories, is what fails. Reads N
(default 400) random validation frames of DATA (seed 0) with the run's own rig and grid.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from rsd.checkpoint import load_for_eval
from rsd.data.dataset import collate
from rsd.data.rigs import load_rig
from rsd.scene import Command
from rsd.tasks import eval_dataset


def mode_errors(run: str, data: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: ADE of the chosen mode, minADE over the modes, the command."""
    ev = load_for_eval(run)
    cfg = ev.config
    ds, _, _ = eval_dataset(Path(data), cfg, load_rig(cfg.rig), "val", None)
    idx = np.random.default_rng(0).choice(len(ds), min(n, len(ds)), replace=False)
    model = ev.model.eval()
    chosen, best, commands = [], [], []
    for batch in DataLoader(Subset(ds, idx.tolist()), batch_size=32, collate_fn=collate):
        feats, tgt = batch["features"], batch["targets"]
        with torch.inference_mode():
            out = model(feats)
        gt, ok = tgt["ego_future"][..., :2], tgt["ego_future_valid"].float()
        dist = (out["plan_traj"] - gt[:, None]).norm(dim=-1)  # (B, M, T)
        ade = (dist * ok[:, None]).sum(-1) / ok.sum(-1).clamp_min(1)[:, None]  # (B, M)
        pick = out["plan_logits"].argmax(-1)
        chosen += ade.gather(1, pick[:, None])[:, 0].tolist()
        best += ade.min(1).values.tolist()
        commands += feats["command"].tolist()
    return np.array(chosen), np.array(best), np.array(commands)


def main() -> None:
    run, data = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    chosen, best, commands = mode_errors(run, data, n)
    print(
        f"{len(chosen)} frames: ADE of the chosen mode {chosen.mean():.3f} m, "
        f"of the best mode {best.mean():.3f} m"
    )
    for c in np.unique(commands):
        m = commands == c
        print(
            f"  {Command(int(c)).name:12s} {m.sum():5d} frames: chosen {chosen[m].mean():.3f}, "
            f"best {best[m].mean():.3f}"
        )


if __name__ == "__main__":
    main()
