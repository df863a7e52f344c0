"""Typed configs: YAML + dotted overrides, and errors that name the bad field."""

from dataclasses import dataclass

import pytest

from rsd.config import ConfigError, dump_yaml, from_dict, load_config, to_dict


@dataclass(frozen=True)
class _Sensor:
    beams: int = 360
    range_m: float = 50.0
    name: str = "lidar"


@dataclass(frozen=True)
class _Rig:
    sensors: tuple[_Sensor, ...] = (_Sensor(),)
    scale: float = 1.0
    enabled: bool = True


def test_defaults_yaml_and_overrides_compose(tmp_path):
    f = tmp_path / "rig.yaml"
    f.write_text("scale: 2\nsensors:\n  - {beams: 90, name: front}\n  - {beams: 45}\n")
    cfg = load_config(_Rig, f, ["sensors.1.range_m=12.5", "enabled=false"])
    assert cfg.scale == 2.0 and isinstance(cfg.scale, float)
    assert cfg.sensors == (_Sensor(90, 50.0, "front"), _Sensor(45, 12.5, "lidar"))
    assert cfg.enabled is False


def test_round_trip_through_yaml(tmp_path):
    cfg = _Rig(sensors=(_Sensor(10, 5.0, "a"),), scale=3.0)
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    assert load_config(_Rig, f) == cfg
    assert from_dict(_Rig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["sensors.0.beams=many"], "sensors[0].beams"),
        (["sensors.0.bims=3"], "sensors[0].bims"),
        (["scael=2"], "scael"),
        (["enabled=3"], "enabled"),
        (["scale"], "key=value"),
    ],
)
def test_bad_values_name_the_field(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_config(_Rig, None, overrides)


def test_malformed_yaml_names_the_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("sensors: [\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(_Rig, f)


def test_exponent_without_dot_is_a_number():
    # PyYAML follows YAML 1.1 and reads 1e-3 as a string; a learning rate must still parse
    assert load_config(_Rig, None, ["scale=1e-3"]).scale == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="scale"):
        load_config(_Rig, None, ["scale=fast"])
