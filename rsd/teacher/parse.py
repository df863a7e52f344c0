"""From a VLM's raw answer to a :class:`~rsd.teacher.schema.RiskAssessment`; never raises.

Models wrap JSON in code fences or prose, leave trailing commas, use single quotes, give risks
as strings or percentages, invent or forget ids, tie ranks... The parser repairs what it safely
can and records what it did:

* per object ``flags``: ``missing`` (not answered: risk 0, lowest ranks), ``clamped`` (score
  outside [0, 1]), ``reranked`` (ranks missing, duplicated or not 1..N: re-ranked by risk),
  ``invalid_risk`` (no usable number: risk 0), ``by_position`` (matched from image coordinates);
* ``counters``: how many of each, plus ``unknown_ids`` (dropped entries), ``duplicate_ids``,
  ``bad_entries``, ``unknown_categories`` (-> ``none``), ``json_repairs``;
* ``status``: ``ok`` when nothing about the objects was repaired, ``partial`` when something
  was, ``failed`` with ``failure_reason`` (``not_json``, ``bad_schema``, or the backend's
  error such as ``timeout``) when nothing usable came back. ``raw_text`` always keeps the answer.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from rsd.scene import Frame
from rsd.teacher.match import ImageMap, as_int, resolve
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory, Status

MAX_SCAN_CHARS = 200_000
"""Answers longer than this are cut before searching them for JSON."""
MAX_CANDIDATES = 40
"""At most this many ``{`` positions are tried as the start of a JSON object."""
OBJECT_KEYS = ("objects", "risks", "agents", "object_risks", "results")
RISK_KEYS = ("risk", "risk_score", "score", "risk_level")
WORD_RISK = {"none": 0.0, "negligible": 0.05, "low": 0.2, "medium": 0.5, "moderate": 0.5}
WORD_RISK |= {"high": 0.8, "very high": 0.95, "critical": 1.0, "extreme": 1.0}
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_PY_LITERALS = re.compile(r"\b(True|False|None)\b")
_CATEGORY_ALIASES = {
    "lead": "lead_braking",
    "braking": "lead_braking",
    "cutin": "cut_in",
    "merging": "merging_conflict",
    "merge": "merging_conflict",
    "lane_change": "merging_conflict",
    "crossing": "crossing_conflict",
    "follow": "following",
    "rear_approach": "rear",
}
NOT_REPAIRS = frozenset({"json_repairs", "by_position"})
"""Counters that do not by themselves make an assessment ``partial``."""


def _loads(text: str) -> tuple[Any, int] | None:
    """``(value, repairs)`` from ``text`` as JSON, trying safe repairs; ``None`` if hopeless."""
    attempts = [text]
    fixed = _TRAILING_COMMA.sub(r"\1", text)
    if '"' not in text and "'" in text:  # single quotes are safe only with no double quotes
        fixed = fixed.replace("'", '"')
    fixed = _PY_LITERALS.sub(lambda m: {"True": "true", "False": "false"}.get(m[1], "null"), fixed)
    if fixed != text:
        attempts.append(fixed)
    for repairs, candidate in enumerate(attempts):
        try:
            return json.loads(candidate), repairs
        except (ValueError, RecursionError):
            continue
    return None


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the ``}`` closing the ``{`` at ``start`` (strings respected)."""
    depth, in_str, quote, escape = 0, False, "", False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == quote:
                in_str = False
        elif c in "\"'":
            in_str, quote = True, c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def extract_json(text: str) -> tuple[Any, int] | None:
    """The answer's JSON value (preferring an object with an object list) and the number of
    syntax repairs needed; ``None`` when there is none. Looks at the whole text, then inside
    code fences, then at every balanced ``{...}`` in the text."""
    text = text[:MAX_SCAN_CHARS]
    pieces = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    found: list[tuple[Any, int]] = []
    for piece in pieces:
        got = _loads(piece) if piece else None
        if got is not None and isinstance(got[0], (dict, list)):
            found.append(got)
    if not any(_find_answer(v) is not None for v, _ in found):
        starts = [m.start() for m in re.finditer(r"\{", text)][:MAX_CANDIDATES]
        covered = -1
        for s in starts:
            if s < covered:
                continue
            end = _balanced_end(text, s)
            if end is None:
                continue
            got = _loads(text[s:end])
            if got is not None:
                found.append(got)
                covered = end
    for value, repairs in found:
        answer = _find_answer(value)
        if answer is not None:
            return answer, repairs
    return found[0] if found else None


def _find_answer(value: Any, depth: int = 0) -> Any | None:
    """``value`` itself if it holds an object list, else the first such mapping nested in it
    (e.g. ``{"answer": {"objects": [...]}}``), up to 4 levels down."""
    if _objects_of(value) is not None:
        return value
    if depth < 4 and isinstance(value, Mapping):
        for child in value.values():
            if isinstance(child, Mapping):
                found = _find_answer(child, depth + 1)
                if found is not None:
                    return found
    return None


def _objects_of(value: Any) -> list | None:
    """The per-object list in a parsed answer (a top-level list counts), if any."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        for key in OBJECT_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
    return None


def as_score(v: Any) -> float | None:
    """A risk score from ``0.7``, ``"0.7"``, ``"70%"``, ``"high"``...; may lie outside [0, 1]
    (the caller clamps); ``None`` when there is no finite number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str) and len(v) <= 64:
        s = v.strip().lower()
        if s in WORD_RISK:
            return WORD_RISK[s]
        try:
            f = float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def as_category(v: Any) -> RiskCategory | None:
    """A :class:`RiskCategory` from its value written loosely (case, spaces, hyphens)."""
    if not isinstance(v, str) or len(v) > 64:
        return None
    s = re.sub(r"[\s\-]+", "_", v.strip().lower())
    s = _CATEGORY_ALIASES.get(s, s)
    try:
        return RiskCategory(s)
    except ValueError:
        return None


def _failed(frame: Frame, reason: str, text: str | None, **common: Any) -> RiskAssessment:
    return RiskAssessment(
        frame_id=frame.frame_id,
        status=Status.FAILED,
        failure_reason=reason,
        raw_text=text,
        **common,
    )


def parse_assessment(
    text: str | None,
    frame: Frame,
    *,
    teacher_id: str,
    prompt_version: str,
    transform: ImageMap | None = None,
    error: str | None = None,
    latency_s: float = 0.0,
) -> RiskAssessment:
    """The assessment ``text`` (a VLM's answer about ``frame``) amounts to; never raises.

    ``error`` is the backend's failure reason, if the request failed; ``transform`` (the
    top-down picture's pixel transform, or a camera picture's layout) lets entries given in
    image coordinates match objects (see :mod:`rsd.teacher.match`).
    """
    common = {"teacher_id": teacher_id, "prompt_version": prompt_version, "latency_s": None}
    if isinstance(latency_s, int | float) and math.isfinite(latency_s):
        common["latency_s"] = float(latency_s)
    if text is not None and not isinstance(text, str):
        text, error = None, error or "not_text"
    try:
        if error is not None or text is None:
            return _failed(frame, str(error or "no_answer")[:64], text, **common)
        return _parse(text, frame, transform, common)
    except Exception as e:  # a parser bug must not lose a whole annotation run
        return _failed(frame, f"parse_error:{type(e).__name__}", text, **common)


def _parse(text: str, frame: Frame, transform: ImageMap | None, common: dict) -> RiskAssessment:
    got = extract_json(text)
    if got is None:
        return _failed(frame, "not_json", text, **common)
    value, repairs = got
    entries = _objects_of(value)
    if (
        entries is None
        and not frame.agents
        and isinstance(value, Mapping)
        and "scene_risk" in value
    ):
        entries = []  # nothing to judge but the scene
    if entries is None:
        return _failed(frame, "bad_schema", text, **common)
    counters: Counter[str] = Counter()
    if repairs:
        counters["json_repairs"] += repairs
    known = {a.id for a in frame.agents}
    answered: dict[int, dict] = {}  # object id -> fields, in answer order
    for entry in entries:
        if not isinstance(entry, Mapping):
            counters["bad_entries"] += 1
            continue
        oid, how = resolve(entry, frame, known, transform)
        if oid is None:
            counters["unknown_ids"] += 1
            continue
        if oid in answered:
            counters["duplicate_ids"] += 1
            continue
        flags: list[str] = ["by_position"] if how == "position" else []
        risk = next((as_score(entry[k]) for k in RISK_KEYS if k in entry), None)
        if risk is None:
            risk, flags = 0.0, [*flags, "invalid_risk"]
        elif not 0.0 <= risk <= 1.0:
            risk, flags = min(max(risk, 0.0), 1.0), [*flags, "clamped"]
        category = as_category(entry.get("category"))
        if category is None:
            counters["unknown_categories"] += 1
            category = RiskCategory.NONE
        rationale = entry.get("rationale", entry.get("reason", ""))
        rationale = rationale if isinstance(rationale, str) else json.dumps(rationale)[:200]
        answered[oid] = {
            "risk": risk,
            "rank": as_int(entry.get("rank")),
            "category": category,
            "rationale": rationale[:1000],
            "flags": flags,
        }
    _rank(answered)
    objects = [ObjectRisk(object_id=oid, **f) for oid, f in answered.items()]
    missing = sorted(known - set(answered))
    for k, oid in enumerate(missing):
        rank = len(answered) + k + 1
        objects.append(ObjectRisk(object_id=oid, risk=0.0, rank=rank, flags=["missing"]))
    objects.sort(key=lambda o: o.rank)
    for o in objects:
        for flag in o.flags:
            counters[flag] += 1
    scene = as_score(value.get("scene_risk")) if isinstance(value, Mapping) else None
    if scene is None:
        scene = max((o.risk for o in objects), default=0.0)
        counters["scene_risk_missing"] += 1
    elif not 0.0 <= scene <= 1.0:
        scene = min(max(scene, 0.0), 1.0)
        counters["clamped"] += 1
    repaired = any(k not in NOT_REPAIRS for k in counters)
    return RiskAssessment(
        frame_id=frame.frame_id,
        scene_risk=scene,
        objects=objects,
        status=Status.PARTIAL if repaired else Status.OK,
        raw_text=text,
        counters=dict(counters),
        **common,
    )


def _rank(answered: dict[int, dict]) -> None:
    """Keep the model's ranks when they are exactly 1..N over the answered objects, else
    re-rank all of them by risk (ties: the model's rank, then answer order), flagged."""
    given = [f["rank"] for f in answered.values()]
    if sorted(r for r in given if r is not None) == list(range(1, len(given) + 1)):
        return
    order = sorted(
        enumerate(answered),
        key=lambda p: (-answered[p[1]]["risk"], answered[p[1]]["rank"] or 1 << 30, p[0]),
    )
    for new, (_, oid) in enumerate(order, start=1):
        f = answered[oid]
        f["flags"] = [*f["flags"], "reranked"]
        f["rank"] = new
