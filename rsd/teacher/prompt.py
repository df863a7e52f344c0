"""The question a VLM teacher is asked about one frame (versioned).

:func:`build_prompt` gives a system and a user text. The user text carries what the paper's
prompt carries (ego speed and the ego's signed offset from its lane centreline) plus the
grounded object list the picture's numbers refer to: id, class, relative position, speed,
relative velocity, closing speed and lane relation. The answer format is JSON only, described
both in words and as :data:`ANSWER_SCHEMA` for servers with structured output.

Any change to the text must bump :data:`PROMPT_VERSION`: it is part of every cache key.
"""

from __future__ import annotations

import math

from rsd.scene import AgentState, Command, EgoState, Frame
from rsd.teacher.camera import CameraLayout
from rsd.teacher.schema import RiskCategory

PROMPT_VERSION = "risk-v1"
"""Bump whenever the text of the prompt or the answer schema changes."""
CAMERA_PROMPT_VERSION = "risk-cam-v1"
"""The same for the camera-view prompt (:func:`build_camera_prompt`)."""

CATEGORY_HELP: dict[RiskCategory, str] = {
    RiskCategory.LEAD_BRAKING: "a vehicle ahead on the ego's path is braking or much slower",
    RiskCategory.CUT_IN: "a vehicle is moving into the ego's lane close ahead",
    RiskCategory.MERGING_CONFLICT: "merging or lane-change conflict beside the ego",
    RiskCategory.CROSSING_CONFLICT: "paths cross at an intersection or roundabout",
    RiskCategory.FOLLOWING: "ordinary car-following on the ego's path at a comfortable gap",
    RiskCategory.REAR: "approaching fast from behind",
    RiskCategory.NONE: "no interaction worth attention",
}

ANSWER_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "scene_risk": {"type": "number", "description": "overall risk of the scene, 0 to 1"},
        "objects": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "description": "object id as in the list"},
                    "risk": {"type": "number", "description": "0 = harmless, 1 = imminent"},
                    "rank": {"type": "integer", "description": "1 = most risky, no ties"},
                    "category": {"type": "string", "enum": [c.value for c in RiskCategory]},
                    "rationale": {"type": "string", "description": "one short sentence"},
                },
                "required": ["id", "risk", "rank", "category", "rationale"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["scene_risk", "objects"],
    "additionalProperties": False,
}
"""JSON schema of the answer (no numeric bounds: several guided-decoding engines reject them;
the parser clamps instead)."""

SYSTEM_PROMPT = """\
You are the risk assessor of an automated car (the ego). You judge, for every other road \
user in a traffic scene, how much risk it poses to the ego in the next 3 seconds, and you \
rank them. You answer with one JSON object and nothing else: no prose, no code fences."""

COMMAND_TEXT = {
    Command.KEEP_LANE: "keep its lane",
    Command.CHANGE_LEFT: "change to the lane on its left",
    Command.CHANGE_RIGHT: "change to the lane on its right",
    Command.TURN_LEFT: "turn left",
    Command.TURN_RIGHT: "turn right",
}


COLUMNS_HELP = (
    "x metres ahead (+) / behind (-), y metres to the left (+) / right (-), speed over "
    "ground in m/s, velocity relative to the ego in m/s, closing speed in m/s (+ = getting "
    "closer), lane relative to the ego's lane."
)


def _lane_text(relation: int | None, no_relation: str = "other road") -> str:
    if relation is None:
        return no_relation
    if relation == 0:
        return "ego lane"
    side = "left" if relation > 0 else "right"
    n = abs(relation)
    return f"{n} lane{'s' if n > 1 else ''} to the {side}"


def _num(v: float, fmt: str = "+.1f") -> str:
    if not math.isfinite(v):
        return "unknown"
    text = format(v, fmt)
    return text if float(text) != 0 else format(0.0, fmt)  # no "-0.0"


def object_line(a: AgentState, ego_speed: float, no_relation: str = "other road") -> str:
    """One row of the object list (a plain text table row); ``no_relation`` is the lane text
    of an agent without a lane relation (the simulator: on another road)."""
    rvx, rvy = a.vx - ego_speed, a.vy
    dist = math.hypot(a.x, a.y)
    # closing speed: how fast the distance shrinks (+ = getting closer)
    closing = -(a.x * rvx + a.y * rvy) / dist if dist > 1e-6 else 0.0
    if a.velocity_valid:
        motion = f"{_num(a.speed, '.1f')} | ({_num(rvx)}, {_num(rvy)}) | {_num(closing)}"
    else:  # real data that cannot tell: say so rather than show a made-up 0
        motion = "unknown | unknown | unknown"
    lane = _lane_text(a.lane_relation, no_relation)
    return f"{a.id} | {a.cls.name.lower()} | {_num(a.x)} | {_num(a.y)} | {motion} | {lane}"


def build_prompt(frame: Frame) -> tuple[str, str]:
    """``(system, user)`` texts for ``frame``; the scene image is attached separately."""
    objects = sorted(frame.agents, key=lambda a: a.id)
    rows = "\n".join(object_line(a, frame.ego.speed) for a in objects) or "(no other road users)"
    user = f"""\
The image shows the scene from above: forward is up, left is left. The blue box marked EGO \
is the ego car. Every other road user is a box with its id number in a white label; yellow \
arrows show each one's motion relative to the ego over 1 s. Grey is road, white lines are lane \
markings (dashed: may be crossed), faint grid lines are 10 m apart.

{_ego_text(frame)}

Road users ({len(objects)}), in the ego frame: {COLUMNS_HELP} Some may lie \
outside the image.
id | class | x | y | speed | rel v (x, y) | closing | lane
{rows}

{_task_text()}"""
    return SYSTEM_PROMPT, user


def _ego_text(frame: Frame) -> str:
    ego = frame.ego
    return f"""\
Ego state:
- speed: {_num(ego.speed, ".1f")} m/s ({_num(ego.speed * 3.6, ".0f")} km/h)
- acceleration: {_num(ego.accel, "+.1f")} m/s^2
- lateral offset from its lane centreline: {_offset_text(ego)}
- intention: {COMMAND_TEXT.get(frame.command, "keep its lane")}"""


def _offset_text(ego: EgoState) -> str:
    if not math.isfinite(ego.lane_offset):
        return "unknown (no lane map)"
    return f"{_num(ego.lane_offset, '+.2f')} m (positive = left of the centre)"


def _task_text() -> str:
    categories = "\n".join(f"  - {c.value}: {CATEGORY_HELP[c]}" for c in RiskCategory)
    return f"""\
For every road user listed, give:
- "id": its id
- "risk": a number from 0 (harmless) to 1 (collision imminent without action)
- "rank": 1 for the most risky, 2 for the next, ... (every object once, no ties)
- "category": one of
{categories}
- "rationale": one short sentence
Also give "scene_risk", the overall risk of the scene from 0 to 1.

Answer with JSON only, exactly in this form:
{{"scene_risk": 0.3, "objects": [{{"id": 4, "risk": 0.7, "rank": 1, "category": "cut_in", \
"rationale": "..."}}]}}"""


def build_camera_prompt(frame: Frame, layout: CameraLayout) -> tuple[str, str]:
    """``(system, user)`` texts for ``frame`` seen by the camera of ``layout`` (the picture
    :func:`rsd.teacher.camera_render.render_camera` drew); every object is listed, with
    whether the picture shows it and, if not, why."""
    objects = sorted(frame.agents, key=lambda a: a.id)
    rows = "\n".join(
        # real data rarely knows lanes: no relation means unknown, not another road
        f"{object_line(a, frame.ego.speed, 'unknown')} | {_in_image(a.id, layout)}"
        for a in objects
    )
    n_shown = len(layout.shown)
    user = f"""\
The image is the ego car's front camera ({layout.width} x {layout.height} pixels). Each road \
user visible in it has a coloured 3D box and its id number in a white label. Road users \
behind the camera or outside the image are not drawn: they are listed below with the reason, \
judge them from the numbers.

{_ego_text(frame)}

Road users ({len(objects)}, {n_shown} shown in the image), in the ego frame: {COLUMNS_HELP} \
The last column says whether the image shows it.
id | class | x | y | speed | rel v (x, y) | closing | lane | in image
{rows or "(no other road users)"}

{_task_text()}"""
    return SYSTEM_PROMPT, user


def _in_image(object_id: int, layout: CameraLayout) -> str:
    why = layout.hidden.get(object_id)
    return "yes" if why is None else f"no ({why})"
