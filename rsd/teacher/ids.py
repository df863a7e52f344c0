"""Teacher ids: the name under which a teacher's answers are cached, and back to the teacher.

A built-in teacher is named by its kind (``privileged``); a teacher with a fraction of its
answers corrupted (:class:`rsd.teacher.noisy.NoisyTeacher`) names itself
``noisy(RATE,seed=S,BASE)``.
"""

from __future__ import annotations

import re
from typing import Any

from rsd.config import ConfigError
from rsd.teacher.factory import make_teacher

_NOISY = re.compile(r"noisy\(([0-9.eE+-]+),seed=(-?\d+),(.+)\)")


def noisy_teacher_id(rate: float, seed: int = 0, base: str = "privileged") -> str:
    """The ``teacher_id`` of ``base`` with a fraction ``rate`` of its answers corrupted."""
    return make_teacher(base, noise=rate, noise_seed=seed).teacher_id


def teacher_from_id(teacher_id: str) -> Any:
    """The teacher whose ``teacher_id`` is ``teacher_id``: a built-in kind, or a noisy one."""
    m = _NOISY.fullmatch(teacher_id)
    if m:
        teacher = make_teacher(m.group(3), noise=float(m.group(1)), noise_seed=int(m.group(2)))
    else:
        teacher = make_teacher(teacher_id)
    if teacher.teacher_id != teacher_id:
        raise ConfigError(
            f"teacher {teacher_id!r}: cannot rebuild it (got {teacher.teacher_id!r}); "
            "annotate the dataset with it first ('rsd annotate')"
        )
    return teacher
