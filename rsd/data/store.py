"""The dataset on disk: shards (:mod:`rsd.data.shard`) plus ``manifest.json`` over them.

The manifest holds the schema version, the generation config, the number of planned jobs,
``complete`` (every planned shard present), totals, and per shard its file name, scenario,
seed, job index, keyframe count, size, sha256, episode outcome and frame ids. It is always
rebuilt from the shards present, so it can be regenerated after any interruption.
:func:`verify` checks the shards against it; :class:`FrameStore` reads the whole dataset as
one ``Sequence[Frame]``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from rsd.config import ConfigError
from rsd.data.shard import (
    SCHEMA_VERSION,
    SHARD_SUFFIX,
    STORED_FIELDS,
    UNSTORED_FIELDS,
    CorruptShardError,
    Shard,
    atomic_write,
    encode_frames,
    json_default,
    read_shard,
    shard_bytes,
    shard_entry,
    shard_name,
    write_shard,
)
from rsd.scene import Frame

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "SHARD_SUFFIX",
    "STORED_FIELDS",
    "UNSTORED_FIELDS",
    "CorruptShardError",
    "FrameStore",
    "Shard",
    "add_shards",
    "atomic_write",
    "build_manifest",
    "check_sha",
    "encode_frames",
    "prepare_directory",
    "remove_stale_temps",
    "read_manifest",
    "read_shard",
    "scan_shards",
    "shard_bytes",
    "shard_entry",
    "shard_name",
    "verify",
    "write_manifest",
    "write_shard",
]

MANIFEST_NAME = "manifest.json"


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the dataset in directory ``root``."""
    path = Path(root) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no manifest; is {root} a dataset made by 'rsd generate'?"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {manifest.get('schema_version')}, this rsd "
            f"reads {SCHEMA_VERSION}: generate the data again with 'rsd generate'"
        )
    return manifest


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write(
        Path(root) / MANIFEST_NAME,
        (json.dumps(manifest, indent=1, default=json_default) + "\n").encode(),
    )


def scan_shards(
    root: str | Path,
    expected: dict[str, int],
    known: dict[str, dict[str, Any]],
    remove_corrupt: bool = False,
    trusted: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[CorruptShardError]]:
    """Manifest entries of the expected shards (file name -> job index) found in ``root``.

    An entry in ``known`` (e.g. from the old manifest) is kept when the file's sha256 matches
    it; a mismatch (flipped bytes, an edited manifest) makes the shard corrupt. An entry in
    ``trusted`` (written or checked by this process) is kept when the size matches. Any other
    shard is decoded in full and hashed. Corrupt shards are skipped (and with
    ``remove_corrupt`` deleted, to be recorded again) and returned as errors; unexpected files
    are ignored.
    """
    found: dict[str, dict[str, Any]] = {}
    errors: list[CorruptShardError] = []
    trusted = trusted or {}
    for path in sorted(Path(root).glob(f"*{SHARD_SUFFIX}")):
        if path.name not in expected:
            continue
        e = trusted.get(path.name)
        try:
            if e is None or e["bytes"] != path.stat().st_size:
                e = known.get(path.name)
                if e is not None:
                    check_sha(path, e["sha256"])
                else:
                    e = shard_entry(path)
        except CorruptShardError as err:
            errors.append(err)
            if remove_corrupt:
                path.unlink(missing_ok=True)
            continue
        found[path.name] = {**e, "job": expected[path.name]}
    return found, errors


def check_sha(path: Path, sha256: str) -> bytes:
    """The bytes of ``path``; :class:`CorruptShardError` naming it when unreadable or when
    their sha256 is not ``sha256`` (the manifest's)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CorruptShardError(path, f"cannot read: {err.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise CorruptShardError(
            path, f"sha256 {digest[:12]}... does not match the manifest's {str(sha256)[:12]}..."
        )
    return data


def build_manifest(
    header: dict[str, Any],
    planned: int,
    entries: dict[str, dict[str, Any]],
    failed: Sequence[dict[str, Any]] = (),
    added: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest of ``entries`` (shards in job order) out of ``planned`` jobs, then the
    ``added`` shards made after generation (:func:`add_shards`: they count in the totals, not
    in ``complete``); ``header`` carries the config. Boolean outcome fields (success,
    crashed, ...) are counted."""
    shards = sorted(entries.values(), key=lambda e: e["job"]) + list(added)
    outcomes: dict[str, int] = {}
    for e in shards:
        for k, v in e["outcome"].items():
            if isinstance(v, bool):
                outcomes[k] = outcomes.get(k, 0) + int(v)
    return {
        "schema_version": SCHEMA_VERSION,
        **header,
        "planned_jobs": planned,
        "complete": len(entries) == planned,
        "totals": {
            "shards": len(shards),
            "keyframes": sum(e["keyframes"] for e in shards),
            "bytes": sum(e["bytes"] for e in shards),
            "outcomes": outcomes,
        },
        "failed": [{k: f[k] for k in ("scenario", "seed", "error")} for f in failed],
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shards": shards,
    }


def add_shards(root: str | Path, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add shard ``entries`` (from :func:`write_shard`, files already in ``root``) to the
    manifest of ``root`` after its generated shards, replacing entries of the same file;
    totals are updated, ``complete`` (the planned generation jobs) is kept. For shards made
    after generation, e.g. DAgger rounds; their entries should say where they come from
    (``origin``). Returns the new manifest (written atomically)."""
    manifest = read_manifest(root)
    files = {e["file"] for e in entries}
    shards = [e for e in manifest["shards"] if e["file"] not in files] + list(entries)
    totals = manifest.get("totals", {})
    totals.update(
        shards=len(shards),
        keyframes=sum(e["keyframes"] for e in shards),
        bytes=sum(e["bytes"] for e in shards),
    )
    manifest.update(shards=shards, totals=totals)
    write_manifest(root, manifest)
    return manifest


def prepare_directory(
    root: str | Path, header: dict[str, Any], force: bool = False, extra_files: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Make ``root`` ready to receive the dataset described by ``header`` (the manifest's
    config fields); return the shard entries of its manifest, keyed by file name.

    A dataset with another header, or shards without a manifest, are refused with a
    :class:`ConfigError` naming what differs, unless ``force``: then its shards, temp files,
    manifest and ``extra_files`` are deleted.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    old: dict[str, Any] | None = None
    if (root / MANIFEST_NAME).exists():
        try:
            old = read_manifest(root)
        except ValueError as e:
            if not force:
                raise ConfigError(f"{e}; --force deletes the dataset in {root}") from None
            old = {}
    elif any(root.glob(f"*{SHARD_SUFFIX}")):
        old = {}  # shards of unknown origin
    if old is None or all(old.get(k) == v for k, v in header.items()):
        return {e["file"]: e for e in (old or {}).get("shards", [])}
    if not force:
        was, now = old.get("config"), header.get("config")
        if isinstance(was, dict) and isinstance(now, dict):
            diff = [k for k in now if was.get(k) != now[k]] or [
                k for k in header if old.get(k) != header[k]
            ]
        else:
            diff = ["unknown: no manifest"]
        raise ConfigError(
            f"{root} holds a dataset made with another config (differs in: {', '.join(diff)});"
            " use another directory, or --force to delete it"
        )
    names = [MANIFEST_NAME, *extra_files]
    for p in [*root.glob(f"*{SHARD_SUFFIX}"), *root.glob(".*.tmp"), *(root / n for n in names)]:
        p.unlink(missing_ok=True)
    return {}


def remove_stale_temps(root: str | Path, shard_files: set[str] | None = None) -> None:
    """Delete temp files a killed writer left in ``root``: all, or only those of
    ``shard_files`` plus other temps older than a minute (when other processes may be
    writing into the same directory)."""
    for p in Path(root).glob(".*.tmp"):
        name = p.name[1:].rsplit(".", 2)[0]  # ".NAME.XXXX.tmp" -> NAME
        if shard_files is None or name in shard_files:
            p.unlink(missing_ok=True)
        elif not name.endswith(SHARD_SUFFIX) and time.time() - p.stat().st_mtime > 60:
            p.unlink(missing_ok=True)


def verify(root: str | Path, decode: bool = False) -> int:
    """Check every shard of the manifest against its size and sha256 (and with ``decode``,
    that it decodes). Returns the number of shards checked; raises :class:`CorruptShardError`
    naming the first bad file."""
    root = Path(root)
    shards = read_manifest(root)["shards"]
    for e in shards:
        path = root / e["file"]
        data = check_sha(path, e["sha256"])
        if decode:
            Shard(path, data).frames()
    return len(shards)


class FrameStore(Sequence[Frame]):
    """All keyframes of a dataset directory as one read-only ``Sequence[Frame]``.

    The order is the manifest's (shards in job order, frames in time order). The index comes
    from the manifest alone; shards are loaded when first touched, checked against their
    sha256, and kept in a small LRU cache (``cache_shards``). Picklable without the cache, so
    it can cross into ``DataLoader`` workers.
    """

    def __init__(self, path: str | Path, cache_shards: int = 64, check_sha: bool = True) -> None:
        root = Path(path)
        self.root = root.parent if root.name == MANIFEST_NAME else root
        self.manifest: dict[str, Any] = read_manifest(self.root)
        self.cache_shards = max(1, cache_shards)
        self.check_sha = check_sha
        self._shards: list[dict[str, Any]] = list(self.manifest["shards"])
        ids = [fid for e in self._shards for fid in e["frame_ids"]]
        self._frame_ids = tuple(ids)
        self._starts = [0]
        for e in self._shards:
            self._starts.append(self._starts[-1] + len(e["frame_ids"]))
        self._index = {fid: i for i, fid in enumerate(ids)}
        if len(self._index) != len(ids):
            dup = next(f for f in ids if ids.count(f) > 1)
            raise ValueError(f"{self.root}: frame id {dup} appears more than once")
        self._cache: OrderedDict[int, Shard] = OrderedDict()

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return self._frame_ids

    def index_of(self, frame_id: str) -> int:
        """Position of ``frame_id`` in the store; ``KeyError`` if absent."""
        try:
            return self._index[frame_id]
        except KeyError:
            raise KeyError(f"frame {frame_id!r} is not in {self.root}") from None

    def __len__(self) -> int:
        return len(self._frame_ids)

    def __contains__(self, item: object) -> bool:
        fid = item.frame_id if isinstance(item, Frame) else item
        return isinstance(fid, str) and fid in self._index

    @overload
    def __getitem__(self, i: int) -> Frame: ...
    @overload
    def __getitem__(self, i: slice) -> list[Frame]: ...
    def __getitem__(self, i: int | slice) -> Frame | list[Frame]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame index {i} out of range for {n} frames")
        k = bisect.bisect_right(self._starts, j) - 1
        return self._shard(k).frame(j - self._starts[k])

    def __iter__(self) -> Iterator[Frame]:
        for k in range(len(self._shards)):
            yield from self._shard(k).frames()

    def _shard(self, k: int) -> Shard:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        e = self._shards[k]
        path = self.root / e["file"]
        # the checksum first: a damaged file is named as such, not by what fails to decode
        shard = Shard(path, check_sha(path, e["sha256"]) if self.check_sha else None)
        if shard.frame_ids != e["frame_ids"]:
            raise CorruptShardError(path, "frame ids differ from the manifest's")
        shard.data = b""  # the columns are what is kept; the raw bytes were only for the check
        self._cache[k] = shard
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return shard

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state


def open_store(path: Path) -> FrameStore:
    """The dataset at ``path``, or a ConfigError naming it."""
    if not path.is_dir():
        raise ConfigError(f"dataset {path}: no such directory")
    try:
        return FrameStore(path)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"dataset {path}: {e}") from None
