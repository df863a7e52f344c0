"""The foundation end to end on real highway-env episodes: generate -> store -> dataset ->
show, through the same CLI a user runs."""

import json

import numpy as np
import torch

from rsd.cli import main
from rsd.data.dataset import BEVDataset, collate
from rsd.data.store import FrameStore
from rsd.scene import AgentClass


def test_generate_store_dataset_show(tmp_path):
    out = tmp_path / "ds"
    rc = main(
        [
            "generate",
            str(out),
            "--scenarios",
            "highway,sudden_brake",
            "--episodes-per-scenario",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    store = FrameStore(out)
    assert len(store) == manifest["totals"]["keyframes"] > 40
    assert {fid.split("-")[0] for fid in store.frame_ids} == {"highway", "sudden_brake"}

    # a keyframe as the model will see it
    ds = BEVDataset(store, rig="dense360")
    batch = collate([ds[0], ds[len(ds) - 1], ds[5]])
    gt = batch["targets"]
    assert batch["features"]["bev"].shape == (3, 8, 160, 64)
    assert gt["ego_future"].shape == (3, 6, 3)
    # every real agent row carries a class of the suite; padding rows are masked out
    cls = gt["agent_cls"][gt["agent_mask"]]
    assert set(cls.tolist()) <= {c.value for c in AgentClass}
    # the expert drives forwards: its 3 s future is ahead of the ego
    assert torch.all(gt["ego_future"][:, -1, 0] > 5.0)

    # the nearest car ahead in the ego lane (never occluded) lights up the hits channel
    # where its rear bumper is, near y = 0
    leads = [
        (
            i,
            min(
                (a for a in f.agents if a.lane_relation == 0 and 6 < a.x < 50),
                key=lambda a: a.x,
                default=None,
            ),
        )
        for i, f in enumerate(store)
    ]
    leads = [(i, a) for i, a in leads if a is not None and abs(a.y) < 1.0]
    assert len(leads) > 10
    for i, lead in leads[:: max(len(leads) // 5, 1)]:
        rear = np.array([lead.x - lead.length / 2, lead.y])
        r, c = ds.grid.world_to_pixel(rear).astype(int)
        hits = ds[i]["features"]["bev"][3].numpy()
        assert hits[r - 2 : r + 3, c - 3 : c + 4].sum() > 0, store[i].frame_id

    png = tmp_path / "frame.png"
    assert main(["show", str(out), "--index", "3", "--out", str(png)]) == 0
    assert png.stat().st_size > 20_000
