"""``ExperimentConfig``: what ``rsd experiment`` (and ``rsd demo``, a built-in experiment)
computes, and the built-in configs under ``rsd/experiments/``.

Loaded as defaults <- YAML (a path or a built-in name) <- dotted overrides. A YAML file may
start from another config with ``base: NAME``; a YAML ``arms`` mapping replaces the arms of
what it starts from (rather than merging into them), ``train`` is merged key by key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsd.config import (
    ConfigError,
    apply_overrides,
    deep_merge,
    flatten,
    from_dict,
    load_config,
    load_yaml,
    to_dict,
)
from rsd.sim.noisy_expert import DartNoise
from rsd.teacher.ids import noisy_teacher_id
from rsd.train_config import TrainConfig

BASELINE = "baseline"
"""The arm every other arm is compared with (required)."""
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "experiments"
COMPATIBLE_KEYS = ("workers", "parallel_runs", "seeds", "arms")
"""Config keys whose change does not invalidate results already computed."""


def _default_arms() -> dict[str, dict[str, Any]]:
    return {
        "baseline": {"variant": "baseline"},
        "rsd": {"variant": "rsd"},
        "rsd_no_constraint": {"variant": "rsd", "loss.traj_risk_mass": 0, "loss.risk_alpha": 0},
        "constraint_only": {"variant": "constraint_only"},
        "aux_only": {"variant": "aux_only"},
        "oracle": {"variant": "oracle"},
        "rsd_noisy25": {"variant": "rsd", "teacher": noisy_teacher_id(0.25)},
        "rsd_noisy50": {"variant": "rsd", "teacher": noisy_teacher_id(0.5)},
        "rsd_riskweighted": {"variant": "rsd", "loss.risk_imitation_alpha": 4.0},
        "rsd_balanced_rw": {
            "variant": "rsd",
            "loss.risk_imitation_alpha": 4.0,
            "loss.distill_balance": 0.05,
        },
    }


def _default_train() -> dict[str, Any]:
    """The small-model recipe every built-in config starts from (53 k parameters; 55 k with the
    RiskHead).

    Issue 11 (``benchmarks/bench_recipe.py`` measures each choice): one plan mode (below), a
    view 64 m wide at 1 m cells (x in [-24, 56] m, y in [-32, 32] m: the agents the teacher
    rates risky in roundabouts and intersections were 40 % outside the old 32 m view), a
    patchify stem to
    stride 2 (2 m feature cells), NHWC convolutions, and the raster cache (TrainConfig's
    default). The old recipe: ``grid.y_min=-16 grid.y_max=16 grid.resolution=0.5
    model.backbone.stem=conv model.backbone.feature_stride=4 model.backbone.channels_last=false``.
    """
    return {
        "epochs": 6,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_steps": 20,
        "num_workers": 0,
        "log_every": 5,
        "grid": {"x_min": -24.0, "x_max": 56.0, "y_min": -32.0, "y_max": 32.0, "resolution": 1.0},
        "model": {
            "kind": "vad",
            "backbone": {
                "stem_channels": 16,
                "channels": 32,
                "depth": 1,
                "plan_dim": 32,
                "stem": "patch",
                "feature_stride": 2,
                "channels_last": True,
                # one plan (VAD's command-conditioned single trajectory) instead of 6 modes:
                # the 6-mode classifier picked the wrong mode (demo data, 357 validation
                # frames: ADE of the chosen mode 0.928 m, of the best mode 0.414 m); one mode
                # gave ADE 0.719 m and, on dev seeds 100-104 (35 episodes), DS 59.5 -> 69.2,
                # off-road 40.0 -> 22.9 %. The RiskHead's mode cost has no choice to make then;
                # its map reaches the planner through the gain, the risk mass and the NLL.
                "n_modes": 1,
                # no constant-speed prior under the waypoints: with it, "keep going" cost the
                # planner nothing and it kept its speed toward slower cars. Dev seeds 100-109,
                # one training seed, 70 episodes (README "Closed loop"): DS 71.4 -> 79.0,
                # dense collisions 60 -> 20 %.
                "speed_prior": False,
            },
            # a light head: the deformable block alone cost +30 % of a training step and +40 %
            # of inference, the stride-2 level ~5 and ~3 points (bench_models.py --split)
            "risk_head": {"hidden": 8, "use_deformable": False, "coarse": False},
        },
    }


@dataclass(frozen=True)
class ExperimentConfig:
    """What ``rsd experiment`` computes. Defaults: 10 arms x 3 seeds on the default dataset."""

    scenarios: tuple[str, ...] = ("all",)
    episodes_per_scenario: int = 12
    """Recorded episodes per scenario (seeds ``data_seed ...``; seed % 5 == 4 is validation)."""
    data_seed: int = 0
    rig: str = "dense360"
    """The training rig."""
    unseen_rig: str = "sparse_noisy"
    """A rig no arm is trained on (open-loop evaluation only)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds; every arm is trained once per seed."""
    arms: dict[str, dict[str, Any]] = field(default_factory=_default_arms)
    """Arm name -> extra ``TrainConfig`` dotted overrides (on top of ``train``)."""
    train: dict[str, Any] = field(default_factory=_default_train)
    """``TrainConfig`` overrides common to every arm (nested or dotted keys)."""
    eval_max_samples: int | None = None
    """Open-loop evaluation on at most this many validation samples (None: all)."""
    drive_episodes: int = 10
    """Closed-loop episodes per scenario, on seeds from ``drive_seed`` (never recorded)."""
    drive_seed: int = 10_000
    drive_scenarios: tuple[str, ...] = ()
    """Scenarios driven closed loop (empty: every built-in scenario)."""
    long_tail: tuple[str, ...] = ("sudden_brake", "cut_in", "merge", "intersection")
    """Driven scenarios counted as long tail; the others are nominal."""
    dagger_rounds: int = 0
    """DAgger rounds after generation (:mod:`rsd.pipeline.dagger`); 0: none."""
    dagger_episodes: int = 4
    """Student episodes per scenario and round (training seeds of the dataset)."""
    dagger_beta: float = 0.5
    """The expert drives a re-plan period of round ``r`` with probability ``beta ** r``."""
    dart_episodes: int = 0
    """Noisy-expert (DART) rollouts per scenario on the dataset's training seeds, after
    generation and before DAgger (:func:`rsd.pipeline.dagger.dart_stages`); 0: none."""
    dart_noise: DartNoise = field(default_factory=DartNoise)
    """The noise injected into the expert's plan (:class:`rsd.sim.noisy_expert.DartNoise`)."""
    workers: int = 2
    """Processes for recording and closed-loop driving (does not change any result)."""
    parallel_runs: int | None = None
    """Runs (train, evaluate, drive of one arm and seed) computed at a time, each in its own
    process with one torch thread (driving then runs inside that process); None: ``workers``.
    1 computes them in this process with torch's default threads."""

    def __post_init__(self) -> None:
        if self.dart_episodes < 0:
            raise ConfigError(f"experiment.dart_episodes: must be >= 0, got {self.dart_episodes}")
        if self.dagger_rounds < 0 or not 0.0 <= self.dagger_beta <= 1.0:
            raise ConfigError("experiment.dagger_rounds must be >= 0, dagger_beta in [0, 1]")
        for name in ("episodes_per_scenario", "drive_episodes", "workers", "dagger_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"experiment.{name}: must be >= 1, got {getattr(self, name)}")
        if self.parallel_runs is not None and self.parallel_runs < 1:
            raise ConfigError(f"experiment.parallel_runs: must be >= 1, got {self.parallel_runs}")
        if self.rig == self.unseen_rig:
            raise ConfigError("experiment.unseen_rig must differ from experiment.rig")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"experiment.seeds: need distinct seeds, got {list(self.seeds)}")
        if BASELINE not in self.arms:
            raise ConfigError(f"experiment.arms: needs a {BASELINE!r} arm to compare with")
        for arm in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", arm):
                raise ConfigError(f"experiment.arms.{arm}: use letters, digits, _ and - only")
            self.train_config(arm, self.seeds[0])  # every arm must make a valid TrainConfig

    @property
    def runs_at_a_time(self) -> int:
        return self.parallel_runs or self.workers

    def train_overrides(self, arm: str, seed: int) -> list[str]:
        """The ``TrainConfig`` overrides of one run: ``train``, then the arm's, then the seed."""
        if arm not in self.arms:
            raise ConfigError(f"experiment.arms: no arm {arm!r} (have {', '.join(self.arms)})")
        arm_over = self.arms[arm]
        if not isinstance(arm_over, Mapping):
            raise ConfigError(f"experiment.arms.{arm}: expected a mapping of overrides")
        common = [f"{k}={v}" for k, v in flatten(self.train).items()]
        own = [f"{k}={v}" for k, v in flatten(dict(arm_over)).items()]
        return [f"rig={self.rig}", *common, *own, f"seed={seed}"]

    def train_config(self, arm: str, seed: int) -> TrainConfig:
        """The ``TrainConfig`` of ``arm`` at training seed ``seed``."""
        try:
            return load_config(TrainConfig, None, self.train_overrides(arm, seed))
        except ConfigError as e:
            raise ConfigError(f"experiment.arms.{arm}: {e}") from None


def builtin_configs() -> list[str]:
    """Names of the built-in configs (``rsd/experiments/<name>.yaml``)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the path of the built-in config of that name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if not builtin.exists():
        raise ConfigError(
            f"no config {name_or_path!r}: not a file, nor a built-in "
            f"({', '.join(builtin_configs())})"
        )
    return builtin


def _merged(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The plain config dict of a YAML file, on top of its ``base`` (or the defaults)."""
    path = config_path(name_or_path)
    if str(path) in seen:
        raise ConfigError(f"{path}: 'base' configs form a loop ({' -> '.join(seen)})")
    data = load_yaml(path)
    base_name = data.pop("base", None)
    base = _merged(base_name, (*seen, str(path))) if base_name else to_dict(ExperimentConfig())
    if "arms" in data:
        base["arms"] = {}
    return deep_merge(base, data)


def load_experiment_config(
    name_or_path: str | Path | None = "default", overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Defaults <- YAML (a path or a built-in name, on top of its ``base``) <- dotted
    overrides."""
    base = to_dict(ExperimentConfig()) if name_or_path is None else _merged(name_or_path)
    apply_overrides(base, overrides)
    return from_dict(ExperimentConfig, base)
