"""The expert's reference routes kept on disk, so that each (scenario, seed) is driven once.

A model's open-road episode measures its route completion along the privileged expert's own
drive of the same scenario and seed (:func:`~rsd.sim.route.reference_route`): a whole expert
episode, as costly as the model's episode itself (``benchmarks/bench_closed_loop.py``), and
recomputed by every arm and training seed of an experiment on the same scenario seeds. With a
cache directory each route is computed once and read back afterwards.

The file name carries a digest of everything the route depends on: the scenario spec, the
seed, the source of the simulator (``rsd/sim``, ``rsd/scene.py``, ``rsd/geometry.py``,
``rsd/config.py``) and the highway-env and numpy versions. A change to any of them gives new
names, so a stale route is never read (old files are left behind, a few kB each). Writes are
atomic, so concurrent runs may fill the same directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from rsd.sim.route import reference_route
from rsd.sim.spec import load_scenario

_PACKAGE = Path(__file__).resolve().parents[1]
_SOURCES = ("sim", "scene.py", "geometry.py", "config.py")
"""What decides an expert drive, relative to the ``rsd`` package."""


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the simulator's source files (sorted by path) and the versions of
    highway-env and numpy: what besides the scenario and the seed decides an expert drive."""
    import highway_env  # noqa: PLC0415 (only needed here; the import is already paid by sim)

    h = hashlib.sha256()
    for name in _SOURCES:
        root = _PACKAGE / name
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        files += sorted(root.rglob("*.yaml")) if root.is_dir() else []
        for f in files:
            h.update(str(f.relative_to(_PACKAGE)).encode())
            h.update(f.read_bytes())
    h.update(f"highway_env {getattr(highway_env, '__version__', '?')}".encode())
    h.update(f"numpy {np.__version__}".encode())
    return h.hexdigest()


def route_file(cache_dir: str | Path, scenario: str, seed: int) -> Path:
    """Where the route of ``scenario`` (a name or YAML path) and ``seed`` is kept."""
    spec = load_scenario(scenario)
    key = hashlib.sha256(
        f"{spec.model_dump_json()}|{int(seed)}|{code_fingerprint()}".encode()
    ).hexdigest()
    return Path(cache_dir) / f"{spec.name}-{int(seed):05d}-{key[:16]}.npy"


def cached_reference_route(scenario: str, seed: int, cache_dir: str | Path | None) -> np.ndarray:
    """:func:`~rsd.sim.route.reference_route` of ``scenario`` and ``seed`` ((N, 2) world-up
    positions, m), read from ``cache_dir`` if it is there, else computed and written there;
    ``cache_dir`` None: computed (and kept in memory for this process only)."""
    if cache_dir is None:
        return reference_route(scenario, seed)
    path = route_file(cache_dir, scenario, seed)
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a torn or foreign file: compute it again
            pass
    route = reference_route(scenario, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, route, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return route
