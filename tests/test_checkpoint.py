"""Checkpoints: exact round trips of weights, optimiser and RNG states, a file that is plain
safetensors (no pickle), atomic replacement, and refusal of another rig or model config."""

from __future__ import annotations

import dataclasses
import json
import random
import struct

import numpy as np
import pytest
import torch

from rsd import checkpoint as ck
from rsd.config import load_config
from rsd.data.rigs import load_rig
from rsd.pipeline.train import train
from rsd.train_config import TrainConfig
from tests.train_fakes import SMALL_GRID, TINY, tiny_dataset


def _stepped_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        opt.step()
    return model, opt


def test_save_load_round_trip_is_exact_and_pickle_free(tmp_path):
    model, opt = _stepped_optimizer()
    path = tmp_path / "c" / "last.safetensors"
    ck.save_checkpoint(path, model.state_dict(), opt.state_dict(), {"step": 3, "epoch": 1})
    # the file is exactly: 8-byte header length, a JSON header, raw tensor bytes
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    assert len(raw) == 8 + n + max(ends)
    assert set(header["__metadata__"]) == {"rsd"}
    got = ck.load_checkpoint(path)
    assert got.step == 3 and got.epoch == 1
    for k, v in model.state_dict().items():
        assert torch.equal(got.model[k], v), k
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(got.optimizer)
    want = opt.state_dict()
    assert fresh.state_dict()["param_groups"] == want["param_groups"]
    for pid, state in want["state"].items():
        for name, t in state.items():
            assert torch.equal(fresh.state_dict()["state"][pid][name], t), (pid, name)


def test_rng_state_round_trip_through_json():
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    state = json.loads(json.dumps(ck.rng_state()))
    first = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    random.seed(9)
    np.random.seed(9)  # noqa: NPY002
    torch.manual_seed(9)
    ck.set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _stepped_optimizer()
    path = tmp_path / "last.safetensors"
    ck.save_checkpoint(path, model.state_dict(), None, {"step": 1, "epoch": 0})
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(OSError):
        ck.save_checkpoint(path, model.state_dict(), opt.state_dict(), {"step": 2, "epoch": 0})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temp left


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ck.CheckpointError, match="not a readable safetensors"):
        ck.load_checkpoint(bad)
    with pytest.raises(ck.CheckpointError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path / "missing.safetensors")


def test_load_for_eval_refuses_another_rig_or_model(tmp_path):
    data = tiny_dataset(tmp_path / "ds", episodes=1)
    overrides = [*TINY, *SMALL_GRID, "batch_size=4", "num_workers=0", "epochs=1"]
    cfg = load_config(TrainConfig, None, overrides)
    result = train(cfg, data, tmp_path / "run", progress=False)
    loaded = ck.load_for_eval(tmp_path / "run", expect_rig="dense360", expect_model=cfg.model)
    assert not loaded.model.training
    for k, v in result.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v.cpu()), k
    assert loaded.meta["dataset"]["train_frames"] == 1  # fake episodes: 3 frames, 1 train
    with pytest.raises(ck.CheckpointError, match="rig 'dense360'.*rig 'sparse_noisy'"):
        ck.load_for_eval(tmp_path / "run", expect_rig="sparse_noisy")
    # same name, other settings: the config hash tells them apart
    tweaked = load_rig("dense360", ["sensors.0.beams=90"])
    with pytest.raises(ck.CheckpointError, match="config hash"):
        ck.load_for_eval(tmp_path / "run", expect_rig=tweaked)
    other = dataclasses.replace(cfg.model, kind="vad" if cfg.model.kind != "vad" else "cnn")
    with pytest.raises(ck.CheckpointError, match="model.kind: checkpoint"):
        ck.load_for_eval(tmp_path / "run", expect_model=other)
    # weights of an older model layout (here: without the route embedding) are refused by name
    path = ck.checkpoint_path(tmp_path / "run")
    saved = ck.load_checkpoint(path, optimizer=False)
    older = {k: v for k, v in saved.model.items() if ".route." not in k}
    assert len(older) < len(saved.model)
    ck.save_checkpoint(path, older, None, saved.meta)
    with pytest.raises(ck.CheckpointError, match="does not fit the model.*route"):
        ck.load_for_eval(tmp_path / "run")
