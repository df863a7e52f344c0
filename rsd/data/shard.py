"""Shard format: the keyframes of one episode as one ``.npz`` file, read without pickle.

A shard (``{scenario}-{seed:05d}.npz``, ``SCHEMA_VERSION`` 2) is a zip of ``.npy`` members
readable with ``np.load(path, allow_pickle=False)``. The frames of the episode are stored
column by column:

* one row per frame: ``frame_*`` (seed, step, t, skill, command) and ``ego_*`` columns;
* agents and lanes of all frames concatenated, with CSR offsets ``agent_offsets`` /
  ``lane_offsets`` of shape ``(F + 1,)`` (frame ``i`` owns rows ``offsets[i]:offsets[i+1]``);
  lane centre points likewise via ``lane_point_offsets`` over ``lane_points`` ``(P, 2)``, and
  each frame's route ahead (:attr:`rsd.scene.Frame.route`) via ``route_offsets`` over
  ``route_points`` ``(R, 2)``;
* ``None`` relations as a value column plus a ``*_has_relation`` bool column;
* every string (ids, lane ids, behaviours, events) as one UTF-8 JSON document in the uint8
  member ``strings``; shard metadata (schema version, scenario, seed, outcome) in ``meta``.

Scalars are float64 (Python floats round-trip exactly); trajectories ``(T, 3)``, validity
masks ``(T,)`` and lane points ``(N, 2)`` keep the data model's dtypes, float32 and bool (other
float arrays are cast to float32). Members are written in a fixed order with fixed zip
timestamps, so the same frames always give the same bytes and sha256. Files are written
atomically (temp file, fsync, ``os.replace``): a reader never sees half a shard.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.data.jsonio import atomic_write
from rsd.scene import (
    FUTURE_STEPS,
    PAST_STEPS,
    AgentClass,
    AgentState,
    Command,
    EgoState,
    Frame,
    LaneGeometry,
    LineKind,
    SkillGroup,
)

SCHEMA_VERSION = 3  # 2: ego_target_speed, route commands; 3: the route ahead (route_points)
SHARD_SUFFIX = ".npz"

EGO_SCALARS = (
    "speed",
    "accel",
    "yaw_rate",
    "length",
    "width",
    "height",
    "lane_offset",
    "world_x",
    "world_y",
    "world_yaw",
    "target_speed",
)
AGENT_SCALARS = ("x", "y", "yaw", "vx", "vy", "length", "width", "height", "accel")
TRAJ_FIELDS = {"past": (PAST_STEPS, 3), "future": (FUTURE_STEPS, 3)}
STORED_FIELDS: dict[str, tuple[str, ...]] = {
    "Frame": tuple(
        "frame_id scenario skill seed step t ego agents lanes command events route".split()
    ),
    "EgoState": (*EGO_SCALARS, "lane_id", "past", "past_valid", "future", "future_valid"),
    "AgentState": (
        "id",
        "cls",
        *AGENT_SCALARS,
        "lane_id",
        "lane_relation",
        "behaviour",
        "past",
        "past_valid",
        "future",
        "future_valid",
    ),
    "LaneGeometry": ("lane_id", "centre", "width", "left_line", "right_line", "relation"),
}
"""Every dataclass field the shard format stores (a test checks it against ``rsd.scene``)."""
UNSTORED_FIELDS = {"Frame": ("cameras",), "AgentState": ("z", "source_id", "velocity_valid")}
"""Left out on purpose: real data only (:mod:`rsd.datasets` reads it where it lies)."""
STRING_KEYS = (
    "frame_id", "scenario", "events", "ego_lane_id", "agent_lane_id", "agent_behaviour", "lane_id"
)  # fmt: skip
"""The lists in the ``strings`` member (one entry per frame, agent or lane)."""
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@functools.cache
def _expected_members() -> frozenset[str]:
    cols = set(encode_frames([], {})) - {"meta", "strings"}
    return frozenset({k for k in cols if "offsets" not in k} | set(STRING_KEYS))


class CorruptShardError(ConfigError):
    """A shard that cannot be read back, or whose bytes differ from the manifest's checksum: a
    :class:`ConfigError` (``rsd CMD: error: corrupt shard PATH: why``, no traceback).

    Built from one text (torch re-raising a DataLoader worker's error with the worker's
    traceback), it keeps the text's last line, the worker's ``...CorruptShardError: ...``."""

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        if reason is None:
            last = str(path).strip().splitlines()[-1].split(": ", 1)[-1]
            path, _, reason = last.removeprefix("corrupt shard ").partition(": ")
        self.path = Path(path)
        super().__init__(f"corrupt shard {self.path}: {reason}")


def shard_name(scenario: str, seed: int) -> str:
    """File name of the shard of episode ``(scenario, seed)``."""
    return f"{scenario}-{seed:05d}{SHARD_SUFFIX}"


def json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (np.ndarray, tuple, set)):
        return list(o.tolist() if isinstance(o, np.ndarray) else o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _json_bytes(obj: Any) -> np.ndarray:
    text = json.dumps(obj, sort_keys=True, default=json_default, allow_nan=True)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _offsets(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _stack(arrays: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    if not arrays:
        return np.zeros((0, *shape), dtype=dtype)
    return np.stack([np.asarray(a, dtype=dtype) for a in arrays])


def _traj_columns(prefix: str, objs: list[Any], cols: dict[str, np.ndarray]) -> None:
    for name, shape in TRAJ_FIELDS.items():
        cols[f"{prefix}_{name}"] = _stack([getattr(o, name) for o in objs], shape, np.float32)
        valid = [getattr(o, f"{name}_valid") for o in objs]
        cols[f"{prefix}_{name}_valid"] = _stack(valid, shape[:1], np.bool_)


def encode_frames(frames: Sequence[Frame], meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Frames -> the shard's named columns (see the module docstring)."""
    if any(f.cameras for f in frames):
        raise ValueError("shards store simulator frames; frames with cameras are real data")
    agents = [a for f in frames for a in f.agents]
    lanes = [ln for f in frames for ln in f.lanes]
    cols: dict[str, np.ndarray] = {
        "frame_seed": np.array([f.seed for f in frames], dtype=np.int64),
        "frame_step": np.array([f.step for f in frames], dtype=np.int64),
        "frame_t": np.array([f.t for f in frames], dtype=np.float64),
        "frame_skill": np.array([int(f.skill) for f in frames], dtype=np.int64),
        "frame_command": np.array([int(f.command) for f in frames], dtype=np.int64),
        "agent_offsets": _offsets([len(f.agents) for f in frames]),
        "agent_id": np.array([a.id for a in agents], dtype=np.int64),
        "agent_cls": np.array([int(a.cls) for a in agents], dtype=np.int64),
        "agent_relation": np.array([a.lane_relation or 0 for a in agents], dtype=np.int64),
        "agent_has_relation": np.array([a.lane_relation is not None for a in agents], bool),
        "lane_offsets": _offsets([len(f.lanes) for f in frames]),
        "lane_width": np.array([ln.width for ln in lanes], dtype=np.float64),
        "lane_left_line": np.array([int(ln.left_line) for ln in lanes], dtype=np.int64),
        "lane_right_line": np.array([int(ln.right_line) for ln in lanes], dtype=np.int64),
        "lane_relation": np.array([ln.relation or 0 for ln in lanes], dtype=np.int64),
        "lane_has_relation": np.array([ln.relation is not None for ln in lanes], dtype=bool),
        "lane_point_offsets": _offsets([len(ln.centre) for ln in lanes]),
        "lane_points": _stack([], (2,), np.float32)
        if not lanes
        else np.concatenate(
            [np.asarray(ln.centre, dtype=np.float32).reshape(-1, 2) for ln in lanes]
        ),
    }
    for name in EGO_SCALARS:
        cols[f"ego_{name}"] = np.array([getattr(f.ego, name) for f in frames], dtype=np.float64)
    _traj_columns("ego", [f.ego for f in frames], cols)
    for name in AGENT_SCALARS:
        cols[f"agent_{name}"] = np.array([getattr(a, name) for a in agents], dtype=np.float64)
    _traj_columns("agent", agents, cols)
    cols["route_offsets"] = _offsets([len(f.route) for f in frames])
    cols["route_points"] = (
        np.concatenate([np.asarray(f.route, dtype=np.float32).reshape(-1, 2) for f in frames])
        if frames
        else _stack([], (2,), np.float32)
    )
    cols["strings"] = _json_bytes(
        {
            "frame_id": [f.frame_id for f in frames],
            "scenario": [f.scenario for f in frames],
            "events": [list(f.events) for f in frames],
            "ego_lane_id": [f.ego.lane_id for f in frames],
            "agent_lane_id": [a.lane_id for a in agents],
            "agent_behaviour": [a.behaviour for a in agents],
            "lane_id": [ln.lane_id for ln in lanes],
        }
    )
    cols["meta"] = _json_bytes({**meta, "schema_version": SCHEMA_VERSION, "n_frames": len(frames)})
    return cols


def shard_bytes(frames: Sequence[Frame], meta: dict[str, Any]) -> bytes:
    """The exact bytes of a shard: deflated ``.npy`` members in sorted order, fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in sorted(encode_frames(frames, meta).items()):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=6)
    return buf.getvalue()


def write_shard(
    path: str | Path,
    frames: Sequence[Frame],
    *,
    scenario: str,
    seed: int,
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Atomically write one episode's shard; return its manifest entry."""
    path = Path(path)
    data = shard_bytes(frames, {"scenario": scenario, "seed": seed, "outcome": outcome or {}})
    atomic_write(path, data)
    return _entry(path, data, scenario, seed, [f.frame_id for f in frames], outcome or {})


def _entry(
    path: Path, data: bytes, scenario: str, seed: int, ids: list[str], outcome: dict[str, Any]
) -> dict[str, Any]:
    return {
        "file": path.name,
        "scenario": scenario,
        "seed": int(seed),
        "keyframes": len(ids),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "outcome": json.loads(_json_bytes(outcome).tobytes()),
        "frame_ids": ids,
    }


class Shard:
    """The columns of one loaded shard; frames are decoded one at a time, on demand."""

    def __init__(self, path: str | Path, data: bytes | None = None) -> None:
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes() if data is None else data
        except OSError as e:
            raise CorruptShardError(self.path, f"cannot read: {e.strerror}") from None
        try:
            with np.load(io.BytesIO(self.data), allow_pickle=False) as npz:
                self.cols = {k: npz[k] for k in npz.files}
            self.meta = json.loads(self.cols.pop("meta").tobytes())
            self.strings = json.loads(self.cols.pop("strings").tobytes())
        except Exception as e:  # zip/npy/JSON errors of a truncated or damaged file
            raise CorruptShardError(self.path, f"{type(e).__name__}: {e}") from None
        self._check()

    def _check(self) -> None:
        if self.meta.get("schema_version") != SCHEMA_VERSION:
            raise CorruptShardError(
                self.path,
                f"schema version {self.meta.get('schema_version')}"
                f", this rsd reads {SCHEMA_VERSION}: generate the data again with 'rsd generate'",
            )
        n, c, s = self.meta.get("n_frames"), self.cols, self.strings
        try:
            ao, lo, po = c["agent_offsets"], c["lane_offsets"], c["lane_point_offsets"]
            ro = c["route_offsets"]
            rows = {"frame": n, "ego": n, "scenario": n, "events": n, "agent": int(ao[-1])}
            rows |= {"lane": int(lo[-1]), "lane_points": int(po[-1]), "route": int(ro[-1])}
            lengths = {k: len(v) for k, v in [*c.items(), *s.items()] if "offsets" not in k}
            bad = [k for k, m in lengths.items() if m != rows.get(k, rows[k.split("_")[0]])]
            bad += [k for k, o, m in (("agent_offsets", ao, n), ("lane_offsets", lo, n),
                    ("lane_point_offsets", po, rows["lane"]), ("route_offsets", ro, n))
                    if len(o) != m + 1 or o[0] != 0
                    or np.any(np.diff(o) < 0)]  # fmt: skip
        except (KeyError, TypeError, IndexError) as e:
            raise CorruptShardError(self.path, f"missing or malformed member {e}") from None
        missing = _expected_members() - set(lengths)
        if missing:
            raise CorruptShardError(self.path, f"missing members {sorted(missing)}")
        if bad:
            raise CorruptShardError(self.path, f"columns disagree in length: {bad}")

    def __len__(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def frame_ids(self) -> list[str]:
        return list(self.strings["frame_id"])

    def frame(self, i: int) -> Frame:
        """Decode frame ``i`` of the shard (arrays are fresh copies)."""
        try:
            return self._decode(i)
        except Exception as e:  # an enum value or an offset that decodes to nonsense
            raise CorruptShardError(self.path, f"frame {i}: {type(e).__name__}: {e}") from None

    def _decode(self, i: int) -> Frame:
        c, s = self.cols, self.strings
        ego = EgoState(
            **{k: float(c[f"ego_{k}"][i]) for k in EGO_SCALARS},
            lane_id=s["ego_lane_id"][i],
            **_trajs(c, "ego", i),
        )
        a0, a1 = int(c["agent_offsets"][i]), int(c["agent_offsets"][i + 1])
        agents = [
            AgentState(
                id=int(c["agent_id"][j]),
                cls=AgentClass(int(c["agent_cls"][j])),
                **{k: float(c[f"agent_{k}"][j]) for k in AGENT_SCALARS},
                lane_id=s["agent_lane_id"][j],
                behaviour=s["agent_behaviour"][j],
                lane_relation=int(c["agent_relation"][j]) if c["agent_has_relation"][j] else None,
                **_trajs(c, "agent", j),
            )
            for j in range(a0, a1)
        ]
        l0, l1 = int(c["lane_offsets"][i]), int(c["lane_offsets"][i + 1])
        po, pts = c["lane_point_offsets"], c["lane_points"]
        lanes = [
            LaneGeometry(
                lane_id=s["lane_id"][j],
                centre=pts[po[j] : po[j + 1]].copy(),
                width=float(c["lane_width"][j]),
                left_line=LineKind(int(c["lane_left_line"][j])),
                right_line=LineKind(int(c["lane_right_line"][j])),
                relation=int(c["lane_relation"][j]) if c["lane_has_relation"][j] else None,
            )
            for j in range(l0, l1)
        ]
        return Frame(
            frame_id=s["frame_id"][i],
            scenario=s["scenario"][i],
            skill=SkillGroup(int(c["frame_skill"][i])),
            seed=int(c["frame_seed"][i]),
            step=int(c["frame_step"][i]),
            t=float(c["frame_t"][i]),
            ego=ego,
            agents=agents,
            lanes=lanes,
            command=Command(int(c["frame_command"][i])),
            events=list(s["events"][i]),
            route=c["route_points"][
                int(c["route_offsets"][i]) : int(c["route_offsets"][i + 1])
            ].copy(),
        )

    def frames(self) -> list[Frame]:
        return [self.frame(i) for i in range(len(self))]


def _trajs(cols: dict[str, np.ndarray], prefix: str, row: int) -> dict[str, np.ndarray]:
    out = {}
    for name in TRAJ_FIELDS:
        out[name] = cols[f"{prefix}_{name}"][row].copy()
        out[f"{name}_valid"] = cols[f"{prefix}_{name}_valid"][row].copy()
    return out


def read_shard(path: str | Path) -> list[Frame]:
    """All frames of one shard; :class:`CorruptShardError` (naming the file) if unreadable."""
    return Shard(path).frames()


def shard_entry(path: str | Path) -> dict[str, Any]:
    """Read and fully decode a shard found on disk; return its manifest entry."""
    shard = Shard(path)
    shard.frames()
    m = shard.meta
    return _entry(
        shard.path, shard.data, m["scenario"], m["seed"], shard.frame_ids, m.get("outcome", {})
    )
