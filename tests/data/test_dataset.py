"""BEVDataset over any Sequence[Frame]: determinism, collation with padding, episode splits."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from rsd.data.dataset import BEVDataset, collate, split_indices, split_of
from rsd.data.features import FEATURE_KEYS
from rsd.data.synthetic import random_frame, synthetic_agent, synthetic_frame
from rsd.geometry import ROUTE_POINTS, BoxField


class _Source:
    """A minimal Sequence[Frame] that is not a list (like a FrameStore)."""

    def __init__(self, frames):
        self._frames = frames

    def __len__(self):
        return len(self._frames)

    def __getitem__(self, i):
        return self._frames[i]


def _frames_with_agents(counts):
    frames = []
    for seed, n in enumerate(counts):
        agents = [synthetic_agent(10 + i, 8.0 * (i + 1), 0.0) for i in range(n)]
        frames.append(synthetic_frame(agents, seed=seed))
    return frames


def test_collate_pads_and_masks():
    ds = BEVDataset(_Source(_frames_with_agents([2, 0, 5])), rig="dense360")
    samples = [ds[i] for i in range(3)]
    batch = collate(samples)
    assert set(batch) == {"features", "targets", "frame_id", "index"}
    assert set(batch["features"]) == set(FEATURE_KEYS)
    assert batch["features"]["route"].shape == (3, ROUTE_POINTS, 2)
    feats, gt = batch["features"], batch["targets"]
    c, h, w = samples[0]["features"]["bev"].shape
    assert feats["bev"].shape == (3, c, h, w)
    assert gt["agent_boxes"].shape == (3, 5, len(BoxField))
    assert gt["agent_future"].shape == (3, 5, 6, 3)
    expected_mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    assert torch.equal(gt["agent_mask"], expected_mask)
    assert torch.equal(gt["agent_boxes"][0, :2], samples[0]["targets"]["agent_boxes"])
    assert torch.equal(gt["agent_boxes"][2], samples[2]["targets"]["agent_boxes"])
    assert (gt["agent_boxes"][0, 2:] == 0).all() and (gt["agent_boxes"][1] == 0).all()
    assert (gt["agent_cls"][~gt["agent_mask"]] == -1).all()
    assert (gt["agent_ids"][gt["agent_mask"]] >= 10).all()
    assert not gt["agent_future_valid"][~gt["agent_mask"]].any()
    assert batch["frame_id"] == [s["frame_id"] for s in samples]
    assert feats["command"].shape == (3,) and gt["ego_future"].shape == (3, 6, 3)
    assert torch.equal(batch["index"], torch.tensor([0, 1, 2]))


def test_same_index_same_tensors():
    frames = [random_frame(s) for s in range(4)]
    a = BEVDataset(frames, rig="sparse_noisy")  # noisy rig: determinism is not free
    b = BEVDataset(list(frames), rig="sparse_noisy")
    for i in range(4):
        x, y = a[i], b[i]
        assert x["frame_id"] == y["frame_id"] == frames[i].frame_id
        for part in ("features", "targets"):
            for key, value in x[part].items():
                assert torch.equal(value, y[part][key]), key
        assert torch.equal(x["index"], y["index"])
    assert not torch.equal(a[0]["features"]["bev"], a[1]["features"]["bev"])


def test_workers_give_identical_batches():
    ds = BEVDataset([random_frame(s) for s in range(6)], rig="sparse_noisy")
    direct = collate([ds[i] for i in range(6)])
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    bevs = torch.cat([b["features"]["bev"] for b in loader])
    ids = [fid for b in loader for fid in b["frame_id"]]
    assert torch.equal(bevs, direct["features"]["bev"]) and ids == direct["frame_id"]


def test_split_is_by_episode_seed():
    assert [split_of(synthetic_frame(seed=s)) for s in range(10)] == (
        ["train"] * 4 + ["val"] + ["train"] * 4 + ["val"]
    )
    assert split_of("cut-in-fast-00014-0120") == "val"  # dashes in the scenario name
    assert split_of("cut-in-fast-00013-0120") == "train"
    frames = [synthetic_frame(seed=seed, step=step) for seed in range(10) for step in (0, 5)]
    val = split_indices(frames, "val")
    assert [frames[i].seed for i in val] == [4, 4, 9, 9]
    assert sorted(val + split_indices(frames, "train")) == list(range(20))


def test_split_uses_frame_ids_when_the_source_has_them():
    class _IdsOnly(_Source):
        frame_ids = ("a-00004-0000", "a-00005-0000")

        def __getitem__(self, i):
            raise AssertionError("split_indices should not decode frames")

    assert split_indices(_IdsOnly([None, None]), "val") == [0]
    ds = BEVDataset.split([synthetic_frame(seed=s) for s in range(5)], "val")
    assert len(ds) == 1 and ds[0]["frame_id"] == synthetic_frame(seed=4).frame_id


def test_raster_cache_gives_bit_identical_samples(tmp_path) -> None:
    """A sample read back from the raster cache equals the one rasterised live, bit for bit;
    augmented samples bypass the cache; another grid is another file."""

    from rsd.data.augment import AugmentConfig, Augmenter
    from rsd.data.dataset import BEVDataset, raster_cache_for
    from rsd.data.raster import RasterConfig
    from rsd.data.rigs import load_rig
    from rsd.data.synthetic import random_frame
    from rsd.geometry import BEVGrid

    frames = [random_frame(i, n_agents=6) for i in range(4)]
    rig, grid, raster = load_rig("dense360"), BEVGrid(), RasterConfig()
    cache = raster_cache_for(tmp_path, {"data": "x"}, len(frames), rig, grid, raster)
    live = BEVDataset(frames, rig=rig, grid=grid, raster=raster)
    cached = BEVDataset(frames, rig=rig, grid=grid, raster=raster, cache=cache)
    for i in range(len(frames)):
        first, again, ref = cached[i], cached[i], live[i]  # fill, then read back
        assert cache.get(i) is not None
        for item in (first, again):
            assert torch.equal(item["features"]["bev"], ref["features"]["bev"])
            assert torch.equal(item["targets"]["target_maps"], ref["targets"]["target_maps"])
    # a displaced sample is rasterised from its own viewpoint, not read from the cache
    aug = Augmenter(AugmentConfig(prob=1.0, min_speed=0.0), seed=0)
    shifted = BEVDataset(frames, rig=rig, grid=grid, raster=raster, augment=aug, cache=cache)
    live_aug = BEVDataset(frames, rig=rig, grid=grid, raster=raster, augment=aug)
    assert any(
        not torch.equal(shifted[i]["features"]["bev"], cached[i]["features"]["bev"])
        for i in range(len(frames))
    )
    for i in range(len(frames)):
        assert torch.equal(shifted[i]["features"]["bev"], live_aug[i]["features"]["bev"])
    wide = BEVGrid(y_min=-32.0, y_max=32.0, resolution=1.0)
    other = raster_cache_for(tmp_path, {"data": "x"}, len(frames), rig, wide, raster)
    assert other.path != cache.path and other.get(0) is None
