"""``rsd eval`` on a tiny trained run: finite metrics over exactly the val split, another rig on
purpose, a malformed rig file named by its bad field, the JSON the command writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rsd.cli import main
from rsd.config import ConfigError, load_config
from rsd.data.dataset import split_indices
from rsd.data.store import FrameStore
from rsd.pipeline.evaluate import evaluate
from rsd.pipeline.train import train
from rsd.train_config import TrainConfig
from tests.train_fakes import SMALL_GRID, TINY, tiny_dataset

VAD_TINY = [*TINY, "model.kind=vad", "model.backbone.agent_tokens=4"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Seeds 0-4: seed 4 is the val episode."""
    return tiny_dataset(tmp_path_factory.mktemp("eval") / "ds", episodes=5)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A tiny VAD-style model with the RiskHead, trained for a few steps."""
    out = tmp_path_factory.mktemp("eval") / "run"
    more = ["batch_size=4", "num_workers=0", "warmup_steps=1", "epochs=1", "log_every=1"]
    cfg = load_config(TrainConfig, None, [*VAD_TINY, *SMALL_GRID, *more])
    train(cfg, data, out, progress=False)
    return out


def test_metrics_are_finite_over_exactly_the_val_split(run, data):
    n_val = len(split_indices(FrameStore(data), "val"))
    assert n_val > 0
    res = evaluate(run, data, batch_size=2, progress=False)
    assert res["n_samples"] == n_val and res["split"] == "val"
    assert res["rig"] == res["train_rig"] == "dense360" and res["unseen_rig"] is False
    assert res["variant"] == "rsd" and res["samples_per_s"] > 0
    keys = ("l2_vad_1s", "l2_uniad_3s", "ade", "fde", "collision_box_avg", "collision_vad_grid_avg")
    for key in keys:
        assert math.isfinite(res["planning"][key]), key
    assert res["planning"]["l2_vad_3s"] == pytest.approx(res["planning"]["ade"])
    assert {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE"} <= set(res["detection"])
    assert 0 <= res["risk"]["risk_map_l1"] <= 1 and 0 <= res["risk"]["risk_mae"] <= 1
    # batching changes nothing: the metrics are over the whole split, not batch averages
    again = evaluate(run, data, batch_size=1, progress=False)
    assert again["planning"] == pytest.approx(res["planning"])
    assert again["risk"]["risk_map_l1"] == pytest.approx(res["risk"]["risk_map_l1"])
    one = evaluate(run, data, max_samples=1, progress=False)
    assert one["n_samples"] == 1


def test_another_rig_on_purpose(run, data):
    from rsd.data.dataset import BEVDataset
    from rsd.geometry import BEVGrid

    res = evaluate(run, data, rig="front_short", progress=False)
    assert res["rig"] == "front_short" and res["train_rig"] == "dense360"
    assert res["unseen_rig"] is True and math.isfinite(res["planning"]["ade"])
    # the model really sees other inputs under that rig
    grid = BEVGrid(x_min=-8, x_max=24, y_min=-8, y_max=8)
    store = FrameStore(data)
    a = BEVDataset.split(store, "val", rig="dense360", grid=grid)
    b = BEVDataset.split(store, "val", rig="front_short", grid=grid)
    assert any(
        not torch.equal(a[i]["features"]["bev"], b[i]["features"]["bev"]) for i in range(len(a))
    )


def test_cli_writes_json_and_a_bad_rig_file_names_the_field(run, data, tmp_path, capsys):
    out = tmp_path / "eval" / "eval.json"
    assert main(["eval", str(run), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    written = json.loads(out.read_text())
    assert written["n_samples"] > 0 and "ade" in written["planning"]
    assert "samples/s" in capsys.readouterr().out
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temp file

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsensors:\n  - name: roof\n    beams: many\n")
    args = ["eval", str(run), "--data", str(data), "--rig-file", str(bad), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "sensors[0].beams" in err and str(bad) in err
    bad.write_text("name: bad\nsensors:\n  - name: roof\n    dropout: 1.5\n")
    assert main(args) == 2 and "dropout" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="nothing: no such directory"):
        evaluate(run, tmp_path / "nothing", progress=False)
    no_val = tiny_dataset(tmp_path / "no_val", episodes=2, annotate=False)  # seeds 0, 1
    with pytest.raises(ConfigError, match="no frames in the 'val' split"):
        evaluate(run, no_val, progress=False)


def test_per_frame_values_beside_the_json_agree_with_it(run, data, tmp_path):
    import numpy as np

    from rsd.pipeline.evaluate import per_frame_path

    out = tmp_path / "eval_x.json"
    assert main(["eval", str(run), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    written = json.loads(out.read_text())
    frames = np.load(per_frame_path(out))
    store = FrameStore(data)
    assert list(frames["frame_id"]) == [store.frame_ids[i] for i in split_indices(store, "val")]
    # the split's ADE is the mean of the per-frame ADEs; the plan score the mean of its frames
    assert np.nanmean(frames["ade"]) == pytest.approx(written["planning"]["ade"])
    ps = written["plan_score"]
    scored = ~np.isnan(frames["pdm_score"])
    assert ps["pdm_frames"] == scored.sum() > 0
    assert np.nanmean(frames["pdm_score"]) == pytest.approx(ps["pdm_score"])
    assert 0 <= ps["pdm_score"] <= 1
    in_window = frames["in_event_window"] & scored
    assert ps["pdm_frames_events"] == in_window.sum()
    # PDMS is NC x DAC x the weighted mean, frame by frame
    f = {k: frames[k][scored] for k in ("pdm_score", "nc", "dac", "ttc", "ep", "comfort")}
    weighted = (5 * f["ttc"] + 5 * f["ep"] + 2 * f["comfort"]) / 12
    assert np.allclose(f["pdm_score"], f["nc"] * f["dac"] * weighted)
