"""Training checkpoints: one safetensors file, no pickle anywhere.

``RUN/checkpoints/last.safetensors`` holds

* tensors ``model.<name>``: the model's state dict (unwrapped from DDP);
* tensors ``optim.<param index>.<name>``: the optimiser's per-parameter state (AdamW moments and
  step counts);
* the header metadata key ``rsd``: one JSON document with ``format``, the resolved training
  config, ``rig`` (name and :func:`rig_hash`), ``dataset`` (manifest hash, frame counts),
  ``epoch`` and ``step`` (updates done), ``world_size``, the optimiser's param groups and
  non-tensor state, and the RNG states of every process (python, numpy, torch, cuda; bytes as
  base64).

Loading reads tensors with :mod:`safetensors` and JSON with :mod:`json`, so a checkpoint can
never run code. Writes go to a temp file in the same directory and are renamed over the old
checkpoint, so a crash at any moment leaves the previous checkpoint intact.

:func:`load_for_eval` builds the model of a run and refuses, naming the mismatch, a checkpoint
made for another sensor rig or model config.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rsd.config import ConfigError, dump_yaml, from_dict, to_dict
from rsd.data.rigs import SensorRig, load_rig
from rsd.train_config import TrainConfig, config_diff

FORMAT = "rsd-checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.safetensors"


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable, or made for something else."""


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run keeps its checkpoint."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST


def rig_hash(rig: Any) -> str:
    """Short sha256 of a :class:`~rsd.data.rigs.SensorRig`'s resolved config."""
    return hashlib.sha256(dump_yaml(rig).encode()).hexdigest()[:16]


def dataset_identity(manifest: Mapping[str, Any], frames: int, train_frames: int) -> dict:
    """What a run was trained on: a hash over the manifest's shards (file, sha256), and the
    number of frames in the dataset and in the training set."""
    shards = [[s["file"], s["sha256"]] for s in manifest.get("shards", [])]
    digest = hashlib.sha256(json.dumps(shards).encode()).hexdigest()[:16]
    return {"manifest_sha256": digest, "frames": frames, "train_frames": train_frames}


# -- optimiser state: tensors apart, the rest as JSON --------------------------------------


def flatten_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` -> (tensors ``{"<param>.<name>": T}``, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in state_dict["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [dict(g) for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any]) -> dict:
    """Inverse of :func:`flatten_optimizer`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in rest["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in rest["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# -- RNG states as JSON --------------------------------------------------------------------


def _b64(t: torch.Tensor | np.ndarray) -> str:
    arr = t.numpy() if isinstance(t, torch.Tensor) else t
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode()


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and cuda RNG states, JSON-able."""
    _, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (saved as is)
    version, internal, gauss_next = random.getstate()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": [version, list(internal), gauss_next],
        "numpy": {
            "keys": _b64(keys.astype("<u4")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in cuda],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    keys = np.frombuffer(base64.b64decode(n["keys"]), dtype="<u4").astype(np.uint32)
    mt = ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(mt)  # noqa: NPY002 (restored as saved)
    torch.set_rng_state(_bytes_tensor(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_bytes_tensor(s) for s in state["cuda"]])


# -- save / load ---------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model's state dict, the optimiser's (or None) and the meta."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]


def save_checkpoint(
    path: str | Path,
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
) -> None:
    """Write a checkpoint atomically (temp file + rename over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage (tied weights)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model_state.items()}
    doc = {**meta, "format": FORMAT, "optimizer": None}
    if optimizer_state is not None:
        opt_tensors, rest = flatten_optimizer(optimizer_state)
        tensors.update(
            {f"optim.{k}": v.detach().cpu().contiguous() for k, v in opt_tensors.items()}
        )
        doc["optimizer"] = rest
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"rsd": json.dumps(doc, allow_nan=True)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, optimizer: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            names = list(f.keys())
            model = {n[6:]: f.get_tensor(n) for n in names if n.startswith("model.")}
            opt = {n[6:]: f.get_tensor(n) for n in names if optimizer and n.startswith("optim.")}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        meta = json.loads(header["rsd"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: no rsd metadata; not a checkpoint of rsd train") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, this rsd reads {FORMAT}")
    opt_state = None
    if optimizer and meta.get("optimizer") is not None:
        opt_state = unflatten_optimizer(opt, meta["optimizer"])
    return Checkpoint(model=model, optimizer=opt_state, meta=meta)


@dataclass
class EvalModel:
    """What :func:`load_for_eval` returns: the model in eval mode and where it came from."""

    model: torch.nn.Module
    config: Any
    """The run's :class:`~rsd.train_config.TrainConfig`."""
    meta: dict[str, Any]


def check_compatible(meta: Mapping[str, Any], expect_rig: Any = None, expect_model: Any = None):
    """Raise :class:`CheckpointError` naming what differs from the expected rig / model."""

    where = meta.get("path", "checkpoint")
    if expect_rig is not None:
        rig = expect_rig if isinstance(expect_rig, SensorRig) else load_rig(expect_rig)
        got, want = meta["rig"], {"name": rig.name, "hash": rig_hash(rig)}
        if got != want:
            raise CheckpointError(
                f"{where} was trained with rig {got['name']!r} (config hash {got['hash']}); "
                f"refusing to load it for rig {want['name']!r} (config hash {want['hash']})"
            )
    if expect_model is not None:
        want_model = to_dict(expect_model)
        diff = config_diff(meta["config"]["model"], want_model)
        if diff:
            shown = ", ".join(
                f"model.{k}: checkpoint {_dotted(meta['config']['model'], k)!r}, "
                f"expected {_dotted(want_model, k)!r}"
                for k in diff
            )
            raise CheckpointError(f"{where} was trained with another model config ({shown})")


def _dotted(d: Any, key: str) -> Any:
    for part in key.split("."):
        d = d.get(part, "<absent>") if isinstance(d, dict) else "<absent>"
    return d


def load_for_eval(
    run_dir: str | Path,
    expect_rig: Any = None,
    expect_model: Any = None,
    device: str | torch.device = "cpu",
) -> EvalModel:
    """The trained model of ``run_dir`` (a run directory or a checkpoint file), in eval mode.

    ``expect_rig`` (a SensorRig or rig name) and ``expect_model`` (a ModelConfig) are checked
    against the checkpoint first; a mismatch raises :class:`CheckpointError` naming it.
    """

    path = Path(run_dir)
    path = path if path.is_file() else checkpoint_path(path)
    ckpt = load_checkpoint(path, optimizer=False)
    check_compatible({**ckpt.meta, "path": str(path)}, expect_rig, expect_model)
    cfg = from_dict(TrainConfig, ckpt.config)
    model = cfg.task.build_model(cfg)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as e:  # missing / unexpected keys or shapes: an older model layout
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{path} does not fit the model this rsd builds from its config (trained by an "
            f"older version? e.g. before the ROUTE input channel and route points): {first}"
        ) from None
    return EvalModel(model=model.to(device).eval(), config=cfg, meta=ckpt.meta)
