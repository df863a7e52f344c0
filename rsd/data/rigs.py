"""Sensor rigs: what the car "sees" (range sensors with occlusion, plus a map raster).

A :class:`SensorRig` is a frozen config: one or more 2D ray-casting range sensors
(:class:`RangeSensorConfig`) and the map layers it gets (:class:`MapRasterConfig`). Rigs
change only *what* is drawn into the BEV input channels, never the channel layout, so a model
trained on one rig can be evaluated on another ("unfamiliar sensor configuration").

Built-in rigs live as YAML in ``rsd/data/builtin_rigs/``; :func:`load_rig` takes a built-in
name or a path to a YAML file, plus dotted overrides (``sensors.0.beams=90``).

The ray casting itself is in :mod:`rsd.data.raycast`. This module is also the ``rsd rigs``
subcommand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rsd.config import ConfigError, load_config, load_yaml

BUILTIN_DIR = Path(__file__).with_name("builtin_rigs")
DEFAULT_RIG = "dense360"


@dataclass(frozen=True)
class RangeSensorConfig:
    """A planar range sensor (a 2D lidar / radar stand-in) mounted on the ego.

    Beams are spread uniformly over ``fov_deg``, centred on ``mount_yaw_deg``: beam ``i`` points
    at ``mount_yaw + (-fov/2 + (i + 0.5) * fov / beams)`` in the ego's body frame. A beam returns
    the distance to the first agent box it meets (ego excluded) within ``range_m``.
    """

    name: str = "roof"
    beams: int = 720
    fov_deg: float = 360.0
    """Horizontal field of view (degrees), in (0, 360]."""
    range_m: float = 80.0
    """Maximum range (m); nothing farther is returned."""
    mount_x: float = 0.0
    """Mounting position in the ego body frame (m): x forward from the ego's centre..."""
    mount_y: float = 0.0
    """... and y to the left."""
    mount_yaw_deg: float = 0.0
    """Direction of the fov centre (degrees, counter-clockwise from the ego's heading)."""
    noise_std_m: float = 0.0
    """Gaussian range noise (m) on every return."""
    dropout: float = 0.0
    """Probability in [0, 1) that a beam returns nothing at all."""

    def __post_init__(self) -> None:
        checks = [
            ("beams", self.beams >= 1, "must be >= 1"),
            ("fov_deg", 0.0 < self.fov_deg <= 360.0, "must be in (0, 360]"),
            ("range_m", self.range_m > 0.0, "must be > 0"),
            ("noise_std_m", self.noise_std_m >= 0.0, "must be >= 0"),
            ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ConfigError(f"sensor {self.name!r}: {name} {why}, got {getattr(self, name)}")


@dataclass(frozen=True)
class MapRasterConfig:
    """Which map layers the rig provides as input channels (ground truth from the frame)."""

    drivable: bool = True
    """Drivable-area raster (union of lane polygons)."""
    lane_lines: bool = True
    """Painted lane lines (continuous 1.0, striped 0.5)."""
    range_m: float | None = None
    """Map drawn only within this distance of the ego (m); ``None`` = the whole grid."""

    def __post_init__(self) -> None:
        if self.range_m is not None and self.range_m <= 0:
            raise ConfigError(f"map.range_m must be > 0 or null, got {self.range_m}")


@dataclass(frozen=True)
class SensorRig:
    """A named set of range sensors plus map layers."""

    name: str = DEFAULT_RIG
    sensors: tuple[RangeSensorConfig, ...] = (RangeSensorConfig(),)
    map: MapRasterConfig = field(default_factory=MapRasterConfig)

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ConfigError(f"rig {self.name!r}: sensors: at least one sensor is needed")
        names = [s.name for s in self.sensors]
        if len(set(names)) != len(names):
            raise ConfigError(f"rig {self.name!r}: sensors must have distinct names, got {names}")


def builtin_rig_names() -> list[str]:
    """Names of the built-in rigs (the YAML files in ``rsd/data/builtin_rigs``)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_rig(name_or_path: str | Path = DEFAULT_RIG, overrides: Sequence[str] = ()) -> SensorRig:
    """A built-in rig by name, or a rig from a YAML file, with dotted ``key=value`` overrides.

    Raises :class:`~rsd.config.ConfigError` naming the bad field (``sensors[0].beams: ...``) or
    listing the built-in names when ``name_or_path`` is neither.
    """
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"unknown rig {str(name_or_path)!r} (built-in: {', '.join(builtin_rig_names())};"
                " or pass a path to a YAML file)"
            )
    data = load_yaml(path)
    if not data.get("sensors"):  # not the default's sensor, silently
        raise ConfigError(f"{path}: sensors: a rig file lists at least one sensor")
    # a file without a name is named after itself, not after the default rig
    named = [] if "name" in data else [f"name={path.stem}"]
    return load_config(SensorRig, path, [*named, *overrides])


def rig_summary(rig: SensorRig) -> list[str]:
    """Human-readable lines describing a rig, one per sensor plus one for the map."""
    lines = []
    for s in rig.sensors:
        lines.append(
            f"  {s.name:<10} {s.beams:>4} beams  fov {s.fov_deg:5.1f} deg  range {s.range_m:5.1f} m"
            f"  mount ({s.mount_x:+.1f}, {s.mount_y:+.1f}) m yaw {s.mount_yaw_deg:+.0f} deg"
            f"  noise {s.noise_std_m:.2f} m  dropout {s.dropout:.0%}"
        )
    m = rig.map
    layers = [n for n, on in (("drivable", m.drivable), ("lane_lines", m.lane_lines)) if on]
    reach = "whole grid" if m.range_m is None else f"within {m.range_m:.0f} m"
    lines.append(f"  map        {', '.join(layers) or 'none'} ({reach})")
    return lines


def resolve_rig(rig: str | Path | None, train_rig: str) -> SensorRig:
    """The :class:`SensorRig` to evaluate with: ``rig`` (built-in name or YAML
    path) or the run's own. A malformed file raises ConfigError naming the bad field."""
    if rig is not None and Path(rig).suffix in (".yaml", ".yml") and not Path(rig).exists():
        raise ConfigError(f"rig file {rig}: no such file")
    try:
        return load_rig(train_rig if rig is None else rig)
    except ConfigError as e:
        where = f"rig file {rig}" if rig is not None and Path(rig).exists() else "rig"
        raise ConfigError(f"{where}: {e}") from None
