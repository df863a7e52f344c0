"""A teacher that corrupts another teacher's answers: for robustness studies of distillation.

``NoisyTeacher(base, rate, seed)`` asks ``base`` and then, for each usable assessment, with the
random stream of ``(seed, frame_id)`` (independent of the batch and of ``rate``):

* **drops** each object with probability ``rate``;
* adds **score noise**: ``risk += rate * 0.5 * z``, ``z ~ N(0, 1)``, clamped to [0, 1]
  (flag ``noisy``);
* **invents** a risky object with probability ``rate``: a real agent of the frame gets risk
  ``U(0.7, 1)`` (added back if it was dropped; flag ``invented``). With probability 1/4 of an
  invention, or when the frame has no agents, the id is one the frame does not have
  (``max id + 1000 + j``): a hallucinated object, as a VLM may answer; map and matching code
  must ignore it;
* **shuffles** ranks with probability ``rate``: a random ``rate`` share of the ranks is permuted
  among themselves (flag ``reranked``). Otherwise the kept objects keep the base's order
  (renumbered 1..N), the invented one placed before the first object with a lower risk; scores
  and ranks may then disagree, as they can in a VLM's answer.

The same uniform and normal draws are used at every rate (only thresholds and scales change),
so corruption grows monotonically with ``rate`` for a given frame; ``rate = 0`` returns the
base assessments unchanged apart from ``teacher_id``. Ranks stay a permutation of 1..N;
``scene_risk`` becomes the maximum noisy risk. Failed assessments pass through.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from rsd.scene import Frame
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory, Teacher

INVENTED_OFFSET = 1000
"""Invented non-existent ids are ``max real id + INVENTED_OFFSET + j``."""


def _rng(seed: int, frame_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(frame_id.encode())])


class NoisyTeacher:
    """Wraps any :class:`~rsd.teacher.schema.Teacher`; see the module docstring."""

    def __init__(self, base: Teacher, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.base = base
        self.rate = float(rate)
        self.seed = int(seed)
        # the seed is part of the id: two noise seeds are two teachers (and two cache keys)
        self.teacher_id = f"noisy({rate},seed={self.seed},{base.teacher_id})"
        self.prompt_version = base.prompt_version

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        answers = self.base.assess(frames)
        return [self.corrupt(f, a) for f, a in zip(frames, answers, strict=True)]

    def corrupt(self, frame: Frame, assessment: RiskAssessment) -> RiskAssessment:
        """The corrupted copy of ``assessment`` (of ``frame``); reproducible per frame id."""
        out = assessment.model_copy(deep=True, update={"teacher_id": self.teacher_id})
        if self.rate == 0.0 or not assessment.usable:
            return out
        rate, rng = self.rate, _rng(self.seed, frame.frame_id)
        objects = sorted(out.objects, key=lambda o: o.rank)
        n = len(objects)
        # Every draw happens whatever the rate, so that the streams line up across rates.
        u_drop = rng.random(n)
        z = rng.standard_normal(n)
        u_invent, u_fake, u_which, u_risk = rng.random(4)
        u_shuffle = rng.random()
        u_pick = rng.random(n + 1)

        counters = dict(out.counters)
        kept: list[ObjectRisk] = []
        for obj, u, zi in zip(objects, u_drop, z, strict=True):
            if u < rate:
                counters["noisy_dropped"] = counters.get("noisy_dropped", 0) + 1
                continue
            risk = float(np.clip(obj.risk + 0.5 * rate * zi, 0.0, 1.0))
            kept.append(obj.model_copy(update={"risk": risk, "flags": [*obj.flags, "noisy"]}))

        if u_invent < rate:
            agent_ids = sorted(a.id for a in frame.agents)
            if not agent_ids or u_fake < 0.25:
                top = max([*agent_ids, *(o.object_id for o in objects), 0])
                target = top + INVENTED_OFFSET + int(u_which * 100)
            else:
                target = agent_ids[int(u_which * len(agent_ids))]
            kept = [o for o in kept if o.object_id != target]
            risk = 0.7 + 0.3 * float(u_risk)
            at = next((i for i, o in enumerate(kept) if o.risk < risk), len(kept))
            fake = ObjectRisk(
                object_id=target,
                risk=risk,
                rank=1,
                category=RiskCategory.NONE,
                rationale="",
                flags=["invented"],
            )
            kept.insert(at, fake)
            counters["noisy_invented"] = counters.get("noisy_invented", 0) + 1

        ranks = np.arange(1, len(kept) + 1)
        if u_shuffle < rate and len(kept) > 1:
            chosen = np.flatnonzero(u_pick[: len(kept)] < rate)
            if len(chosen) > 1:
                ranks[chosen] = ranks[chosen][rng.permutation(len(chosen))]
                counters["noisy_reranked"] = len(chosen)
        final = []
        for i, (obj, rank) in enumerate(zip(kept, ranks.tolist(), strict=True)):
            flags = [*obj.flags, "reranked"] if rank != i + 1 else obj.flags
            final.append(obj.model_copy(update={"rank": rank, "flags": flags}))
        final.sort(key=lambda o: o.rank)
        scene = max((o.risk for o in final), default=0.0)
        return out.model_copy(update={"objects": final, "scene_risk": scene, "counters": counters})
