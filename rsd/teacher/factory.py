"""Build a :class:`~rsd.teacher.schema.Teacher` from a name and options.

``make_teacher("privileged")`` is the offline physics teacher; ``"openai"`` is a VLM teacher on
any OpenAI-compatible endpoint (options: the fields of ``OpenAIConfig``, e.g. ``base_url``,
``model``, ``timeout_s``); ``"transformers"`` a VLM teacher on a local model directory (fields
of ``HFConfig``: ``model_dir``, ``device``, ``dtype``...). Both VLM kinds also take ``view``:
``"top_down"`` (default, simulator frames) or ``"camera"`` (real data's front camera).
``noise > 0`` wraps the teacher in ``NoisyTeacher`` (a deliberately worse teacher for
ablations).

A ``"module:attr"`` name is a custom teacher: ``attr`` is a class or function called with the
options that returns a Teacher (plug-ins, and fake teachers in tests).

Each kind is imported only when chosen, so a missing optional dependency (``openai``,
``transformers``) fails only for the teacher that needs it, with a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from typing import Any

from rsd.config import ConfigError
from rsd.teacher.schema import Teacher

__all__ = ["TEACHER_KINDS", "check_teacher_name", "make_teacher"]

TEACHER_KINDS: tuple[str, ...] = ("privileged", "openai", "transformers")
"""The built-in teachers; ``module:attr`` names a custom one."""
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_teacher_name(name: str) -> str:
    """``name`` if it is a built-in kind or a ``module:attr`` entry point, else ConfigError."""
    if name in TEACHER_KINDS or _ENTRY_POINT.match(name):
        return name
    raise ConfigError(
        f"teacher {name!r}: unknown; choose one of {', '.join(TEACHER_KINDS)} "
        "(or module:attr for a custom teacher)"
    )


def _import(module: str, attr: str, kind: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        hint = ""
        if kind in ("openai", "transformers", "vlm"):
            hint = "; the VLM teachers need the optional extra: pip install 'rsd[vlm]'"
        raise ConfigError(
            f"teacher {kind!r} is not available: cannot import {module} ({e}){hint}"
        ) from None
    except AttributeError:
        raise ConfigError(f"teacher {kind!r}: {module} has no {attr!r}") from None


def _field_names(cls: Any) -> list[str] | None:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    fields = getattr(cls, "model_fields", None)  # pydantic
    return list(fields) if isinstance(fields, dict) else None


def _build(cls: Any, options: dict[str, Any], what: str) -> Any:
    """``cls(**options)``, with unknown names or bad values as a ConfigError naming them."""
    names = _field_names(cls)
    if names is not None:
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                f"{what}: unknown option(s) {', '.join(unknown)}; known: {', '.join(names)}"
            )
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None


def _privileged(options: dict[str, Any]) -> Teacher:
    teacher_cls = _import("rsd.teacher.privileged", "PrivilegedTeacher", "privileged")
    config = options.pop("config", None)
    if options:  # the fields of PrivilegedConfig, given one by one
        config_cls = _import("rsd.teacher.privileged", "PrivilegedConfig", "privileged")
        config = _build(config_cls, options, "teacher 'privileged'")
    return teacher_cls(config)


def _backend(cls: Any, cfg: Any, kind: str) -> Any:
    """``cls(cfg)``; a missing package, a bad setting or an unreadable model directory
    becomes a ConfigError naming the teacher."""
    try:
        return cls(cfg)
    except ImportError as e:
        raise ConfigError(f"teacher {kind!r} is not available: {e}") from None
    except (ValueError, OSError) as e:
        raise ConfigError(f"teacher {kind!r}: {e}") from None


def _vlm(backend: Any, render: Any, view: str | None) -> Teacher:
    teacher_cls = _import("rsd.teacher.vlm", "VLMTeacher", "vlm")
    try:
        return teacher_cls(backend, render=render, view=view or "top_down")
    except ValueError as e:
        raise ConfigError(f"teacher: {e}") from None


def _openai(options: dict[str, Any]) -> Teacher:
    module = "rsd.teacher.backends.openai_backend"
    render, view = options.pop("render", None), options.pop("view", None)
    cfg = _build(_import(module, "OpenAIConfig", "openai"), options, "teacher 'openai'")
    return _vlm(_backend(_import(module, "OpenAIBackend", "openai"), cfg, "openai"), render, view)


def _transformers(options: dict[str, Any]) -> Teacher:
    module = "rsd.teacher.backends.hf_backend"
    render, view = options.pop("render", None), options.pop("view", None)
    cfg = _build(_import(module, "HFConfig", "transformers"), options, "teacher 'transformers'")
    backend_cls = _import(module, "HFBackend", "transformers")
    return _vlm(_backend(backend_cls, cfg, "transformers"), render, view)


def _custom(name: str, options: dict[str, Any]) -> Teacher:
    module, _, attr = name.partition(":")
    factory: Callable[..., Teacher] = _import(module, attr, name)
    try:
        return factory(**options)
    except TypeError as e:
        raise ConfigError(f"teacher {name!r}: {e}") from None


_BUILDERS: dict[str, Callable[[dict[str, Any]], Teacher]] = {
    "privileged": _privileged,
    "openai": _openai,
    "transformers": _transformers,
}


def make_teacher(kind: str, *, noise: float = 0.0, noise_seed: int = 0, **options: Any) -> Teacher:
    """The teacher ``kind`` (see :data:`TEACHER_KINDS`, or ``module:attr``) built with
    ``options``; options set to ``None`` are left at their defaults. With ``noise`` in
    (0, 1], wrapped in ``NoisyTeacher(base, rate=noise, seed=noise_seed)``.

    Raises :class:`ConfigError` for an unknown kind, unknown or bad options, or a teacher
    whose optional dependencies are missing.
    """
    check_teacher_name(kind)
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"noise {noise}: must be a rate in [0, 1]")
    opts = {k: v for k, v in options.items() if v is not None}
    builder = _BUILDERS.get(kind)
    teacher = builder(opts) if builder is not None else _custom(kind, opts)
    if not isinstance(teacher, Teacher):
        raise ConfigError(
            f"teacher {kind!r} built a {type(teacher).__name__}, which is not a Teacher "
            "(needs teacher_id, prompt_version and assess(frames))"
        )
    if noise > 0.0:
        noisy_cls = _import("rsd.teacher.noisy", "NoisyTeacher", "noisy")
        teacher = noisy_cls(teacher, rate=noise, seed=noise_seed)
    return teacher
