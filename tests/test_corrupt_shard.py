"""A shard damaged after it was written (flipped bytes: its sha256 no longer matches the
manifest's) stops ``rsd train`` / ``rsd annotate`` / ``rsd eval`` with the one-line
``rsd CMD: error: corrupt shard PATH: ...``, also when a DataLoader worker met it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rsd.cli import main
from rsd.config import ConfigError, load_config
from rsd.data.store import CorruptShardError, read_manifest
from rsd.pipeline.train import train
from rsd.train_config import TrainConfig
from tests.train_fakes import SMALL_GRID, TINY, tiny_dataset

TRAIN = [*TINY, *SMALL_GRID, "batch_size=2", "warmup_steps=1", "epochs=1", "log_every=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Seeds 0-4 of ``highway``: seed 4 is the val episode."""
    return tiny_dataset(tmp_path_factory.mktemp("corrupt") / "ds", episodes=5)


def damaged_copy(data: Path, out: Path, shard: str) -> Path:
    """A copy of ``data`` with one byte of ``shard``'s deflated data flipped (same size)."""
    shutil.copytree(data, out)
    path = out / shard
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def one_line_error(capsys, command: str, path: Path) -> None:
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == err.splitlines()[-1].strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith(f"rsd {command}: error: corrupt shard {path}: "), err
    assert "sha256" in last


def test_error_is_a_config_error_and_survives_the_dataloader_report() -> None:
    err = CorruptShardError("/d/x.npz", "sha256 differs")
    assert isinstance(err, ConfigError) and str(err) == "corrupt shard /d/x.npz: sha256 differs"
    # what torch re-raises from a worker: one text, the worker's traceback first
    report = (
        "Caught CorruptShardError in DataLoader worker process 0.\nOriginal Traceback:\n"
        f"  ...\nrsd.data.shard.CorruptShardError: {err}\n"
    )
    again = CorruptShardError(report)
    assert str(again) == str(err) and again.path == Path("/d/x.npz")


@pytest.mark.parametrize("workers", [0, 1])
def test_train_names_the_file_in_one_line(data, tmp_path, capsys, workers) -> None:
    path = damaged_copy(data, tmp_path / "ds", "highway-00000.npz")
    argv = ["train", "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "run")]
    rc = main([*argv, "--no-progress", *TRAIN, f"num_workers={workers}"])
    assert rc == 2
    one_line_error(capsys, "train", path)


def test_annotate_names_the_file_in_one_line(data, tmp_path, capsys) -> None:
    path = damaged_copy(data, tmp_path / "ds", "highway-00002.npz")
    cache = tmp_path / "cache.sqlite"
    rc = main(["annotate", str(tmp_path / "ds"), "--cache", str(cache), "--no-progress"])
    assert rc == 2
    one_line_error(capsys, "annotate", path)


def test_eval_names_the_file_in_one_line(data, tmp_path, capsys) -> None:
    cfg = load_config(TrainConfig, None, [*TRAIN, "num_workers=0"])
    train(cfg, data, tmp_path / "run", progress=False)
    val = [e["file"] for e in read_manifest(data)["shards"] if e["seed"] == 4]
    path = damaged_copy(data, tmp_path / "ds", val[0])
    argv = ["eval", str(tmp_path / "run"), "--data", str(tmp_path / "ds"), "--no-progress"]
    rc = main([*argv, "--out", str(tmp_path / "eval.json")])
    assert rc == 2
    one_line_error(capsys, "eval", path)
