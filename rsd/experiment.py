"""Interim home of the experiment's statistics and Markdown (moving to rsd.metrics.stats and
rsd.report)."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from rsd.pipeline.files import num

BASELINE = "baseline"
CANDIDATE = "rsd"
"""The arm the issue's targets are checked for (and every arm of :data:`ALSO_CHECKED`)."""
ALSO_CHECKED = ("rsd_riskweighted", "rsd_balanced_rw")
"""Further arms whose targets are checked against the baseline when they are configured."""


# -- metrics of one run and over seeds (pure) ------------------------------------------------

GROUPS = {
    "open_loop": "Open loop, training rig (validation split)",
    "unseen_rig": "Open loop, unseen rig",
    "closed_loop_long_tail": "Closed loop, long-tail scenarios",
    "closed_loop_nominal": "Closed loop, nominal scenarios",
    "closed_loop_overall": "Closed loop, all scenarios",
    "collision_per_scenario": "Closed loop, collision rate (%) per scenario",
}
"""Metric groups of ``results.json`` / ``results.md``, in order, with their titles."""


def _closed_loop(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        "DS": num(summary.get("driving_score")),
        "SR (%)": num(summary.get("success_rate")),
        "collision (%)": num(summary.get("collision_rate")),
        "off-road (%)": num(summary.get("offroad_rate")),
        "route completion": num(summary.get("route_completion")),
        "episodes": num(summary.get("episodes")),
    }


def run_metrics(
    seen: Mapping[str, Any],
    unseen: Mapping[str, Any],
    logs: Sequence[Any],
    long_tail: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``{group: {metric: value}}`` of one run from its two evaluations (``rsd eval`` JSON on
    the training and on the unseen rig) and its closed-loop episode logs. Missing values are
    NaN. Units: metres, % and the detection scores as ``rsd eval`` gives them; the
    retentions are ratios (1: nothing lost on the unseen rig, below 1: worse there)."""
    from rsd.metrics.driving import driving_metrics

    plan, det = seen.get("planning") or {}, seen.get("detection") or {}
    uplan, udet = unseen.get("planning") or {}, unseen.get("detection") or {}
    open_loop = {
        "L2 (m)": num(plan.get("L2 (VAD avg)@avg")),
        "ADE (m)": num(plan.get("ADE")),
        "FDE (m)": num(plan.get("FDE")),
        "plan collision (%)": 100 * num(plan.get("Collision (VAD avg)@avg")),
        "mAP": num(det.get("mAP")),
        "NDS": num(det.get("NDS")),
        "mASE": num(det.get("mASE")),
        "mAVE (m/s)": num(det.get("mAVE")),
    }
    for k, v in (seen.get("risk") or {}).items():
        open_loop[k if k.startswith("risk") else f"risk {k}"] = num(v)
    ade_s, ade_u = open_loop["ADE (m)"], num(uplan.get("ADE"))
    nds_s, nds_u = open_loop["NDS"], num(udet.get("NDS"))
    unseen_rig = {
        "ADE (m)": ade_u,
        "L2 (m)": num(uplan.get("L2 (VAD avg)@avg")),
        "plan collision (%)": 100 * num(uplan.get("Collision (VAD avg)@avg")),
        "NDS": nds_u,
        "ADE retention": _ratio(ade_s, ade_u),
        "NDS retention": _ratio(nds_u, nds_s),
    }
    tail = [lg for lg in logs if lg.scenario in long_tail]
    nominal = [lg for lg in logs if lg.scenario not in long_tail]
    dm = driving_metrics(list(logs)) if logs else {"overall": {}, "per_scenario": {}}
    return {
        "open_loop": open_loop,
        "unseen_rig": unseen_rig,
        "closed_loop_long_tail": _closed_loop(driving_metrics(tail)["overall"] if tail else {}),
        "closed_loop_nominal": _closed_loop(driving_metrics(nominal)["overall"] if nominal else {}),
        "closed_loop_overall": _closed_loop(dm["overall"]),
        "collision_per_scenario": {
            k: num(v.get("collision_rate")) for k, v in sorted(dm["per_scenario"].items())
        },
    }


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (default 95 %) of a proportion ``k / n``; NaNs when ``n`` is 0."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (c - h) / d), min(1.0, (c + h) / d)


POOLED_OUTCOMES = ("vehicle_collision", "offroad", "success")


def pool_outcomes(logs: Sequence[Any], long_tail: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"long_tail" | "nominal" | "overall": {"episodes": n, outcome: {"count", "rate_pct",
    "ci95_pct": [lo, hi]}}}`` over episode logs pooled across seeds: the seed-to-seed std of a
    rate says how much training varies, the Wilson interval how much the episodes sampled
    do."""
    groups = {
        "long_tail": [lg for lg in logs if lg.scenario in long_tail],
        "nominal": [lg for lg in logs if lg.scenario not in long_tail],
        "overall": list(logs),
    }
    out: dict[str, dict[str, Any]] = {}
    for g, members in groups.items():
        n = len(members)
        row: dict[str, Any] = {"episodes": n}
        for outcome in POOLED_OUTCOMES:
            k = sum(lg.outcome == outcome for lg in members)
            lo, hi = wilson_interval(k, n)
            row[outcome] = {
                "count": k,
                "rate_pct": 100 * k / n if n else math.nan,
                "ci95_pct": [100 * lo, 100 * hi],
            }
        out[g] = row
    return out


def format_pooled(pooled: Mapping[str, Any], arms: Sequence[str]) -> str:
    """Markdown table of :func:`pool_outcomes` per arm: rate % [95 % interval] (count / n)."""
    head = "| arm | group | episodes | " + " | ".join(POOLED_OUTCOMES) + " |"
    lines = [head, "|" + "---|" * (3 + len(POOLED_OUTCOMES))]
    for arm in arms:
        for g in ("long_tail", "nominal"):
            row = (pooled.get(arm) or {}).get(g)
            if not row:
                continue
            cells = []
            for o in POOLED_OUTCOMES:
                c = row[o]
                lo, hi = (num(v) for v in c["ci95_pct"])
                rate = num(c["rate_pct"])
                cells.append(f"{rate:.1f} [{lo:.1f}, {hi:.1f}] ({c['count']})")
            lines.append(f"| {arm} | {g} | {row['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def summarise_values(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1) over the finite ``values``; NaN where undefined (no finite
    value; fewer than two for the std)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    mean = statistics.fmean(xs) if xs else math.nan
    std = statistics.stdev(xs) if len(xs) > 1 else math.nan
    return mean, std


def delta_pct(value: float, base: float) -> float:
    """``(value - base) / |base|`` in %; NaN when either is NaN or ``base`` is 0."""
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return math.nan
    return 100.0 * (value - base) / abs(base)


def aggregate(
    per_run: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]],
    baseline: str = BASELINE,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{group: {metric: {arm: {"values": {seed: v}, "mean", "std", "delta_pct"}}}}`` from
    ``{arm: {seed: {group: {metric: v}}}}``; ``delta_pct`` is the arm's mean against the
    ``baseline`` arm's mean (:func:`delta_pct`; NaN without a baseline)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for arm, runs in per_run.items():
        for seed, groups in runs.items():
            for g, metrics in groups.items():
                for m, v in metrics.items():
                    cell = out.setdefault(g, {}).setdefault(m, {}).setdefault(arm, {})
                    cell.setdefault("values", {})[str(seed)] = num(v)
    for g in out.values():
        for cells in g.values():
            for cell in cells.values():
                cell["mean"], cell["std"] = summarise_values(list(cell["values"].values()))
            base = cells.get(baseline, {}).get("mean", math.nan)
            for cell in cells.values():
                cell["delta_pct"] = delta_pct(cell["mean"], base)
    return out


def _cell(agg: Mapping, group: str, metric: str, arm: str) -> dict[str, Any]:
    return agg.get(group, {}).get(metric, {}).get(arm) or {
        "mean": math.nan,
        "std": math.nan,
        "delta_pct": math.nan,
    }


def check_targets(
    agg: Mapping[str, Any], arm: str = CANDIDATE, baseline: str = BASELINE
) -> list[dict[str, Any]]:
    """The issue's targets for ``arm`` against ``baseline``: ``[{"target", "measured",
    "met"}]``; ``met`` is None when a value is missing (NaN)."""

    def pair(group: str, metric: str) -> tuple[dict, dict]:
        return _cell(agg, group, metric, arm), _cell(agg, group, metric, baseline)

    rows: list[dict[str, Any]] = []

    def rel(target: str, group: str, metric: str, at_most_pct: float) -> None:
        a, b = pair(group, metric)
        d = a["delta_pct"]
        rows.append(
            {
                "target": target,
                "measured": f"{_f(a['mean'])} vs {_f(b['mean'])} ({_pct(d)})",
                "met": None if math.isnan(num(d)) else bool(d <= at_most_pct),
            }
        )

    def cmp(target: str, group: str, metric: str, higher: bool, slack_std: bool = False) -> None:
        a, b = pair(group, metric)
        x, y = num(a["mean"]), num(b["mean"])
        slack = num(b["std"]) if slack_std else 0.0
        slack = 0.0 if math.isnan(slack) else slack
        if math.isnan(x) or math.isnan(y):
            met = None
        elif slack_std:
            met = x >= y - slack if higher else x <= y + slack
        else:
            met = x > y if higher else x < y
        rows.append({"target": target, "measured": f"{_f(x)} vs {_f(y)}", "met": met})

    rel("long-tail collision rate >= 30% lower", "closed_loop_long_tail", "collision (%)", -30)
    cmp("long-tail driving score higher", "closed_loop_long_tail", "DS", higher=True)
    cmp(
        "nominal driving score not lower (by more than 1 std of baseline)",
        "closed_loop_nominal",
        "DS",
        higher=True,
        slack_std=True,
    )
    rel("ADE >= 10% lower", "open_loop", "ADE (m)", -10)
    rel("L2 >= 10% lower", "open_loop", "L2 (m)", -10)
    cmp("mASE lower", "open_loop", "mASE", higher=False)
    cmp("mAVE lower", "open_loop", "mAVE (m/s)", higher=False)
    cmp("plan collision lower", "open_loop", "plan collision (%)", higher=False)
    cmp("unseen-rig ADE retention higher", "unseen_rig", "ADE retention", higher=True)
    for r in rows:
        r["target"] = f"{arm} vs {baseline}: {r['target']}"
    return rows


# -- formatting ------------------------------------------------------------------------------


def _f(x: Any) -> str:
    x = num(x)
    return "-" if math.isnan(x) else f"{x:.3f}"


def _pct(x: Any) -> str:
    x = num(x)
    return "-" if math.isnan(x) else f"{x:+.1f}%"


def format_cell(cell: Mapping[str, Any], with_delta: bool = True) -> str:
    """``mean ± std (Δ%)``; ``-`` for a missing number."""
    text = f"{_f(cell.get('mean'))} ± {_f(cell.get('std'))}"
    return f"{text} ({_pct(cell.get('delta_pct'))})" if with_delta else text


def format_table(agg: Mapping[str, Any], group: str, arms: Sequence[str]) -> str:
    """One markdown table: metrics as rows, arms as columns."""
    head = "| metric | " + " | ".join(arms) + " |"
    lines = [head, "|" + "---|" * (len(arms) + 1)]
    for metric, cells in (agg.get(group) or {}).items():
        row = [
            format_cell(_cell(agg, group, metric, a), with_delta=a != BASELINE)
            if a in cells
            else "-"
            for a in arms
        ]
        lines.append(f"| {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def results_markdown(
    agg: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    times: Mapping[str, Any],
    command: str,
    arms: Sequence[str],
    pooled: Mapping[str, Any] | None = None,
) -> str:
    """``results.md``: a table per metric group, the closed-loop outcomes pooled over seeds,
    the targets, the time spent, the command."""
    parts = [
        "# rsd experiment",
        "",
        "Cells: mean ± sample std over seeds (change of the mean vs baseline, %).",
    ]
    for g, title in GROUPS.items():
        if g in agg:
            parts += ["", f"## {title}", "", format_table(agg, g, arms)]
    if pooled:
        parts += [
            "",
            "## Closed-loop outcomes pooled over seeds",
            "",
            "Rate % [Wilson 95 % interval] over every episode of every seed.",
            "",
            format_pooled(pooled, arms),
        ]
    parts += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "no", None: "-"}[t["met"]]
        parts.append(f"| {t['target']} | {t['measured']} | {met} |")
    parts += ["", "## Time", "", format_times(times), "", "## Command", "", f"    {command}", ""]
    return "\n".join(parts)


def format_times(times: Mapping[str, Any]) -> str:
    """Wall and CPU time, in total and per stage kind, as a markdown table."""
    lines = ["| stages | count | wall (s) | CPU (s) |", "|---|---|---|---|"]
    for kind, t in [*times["by_kind"].items(), ("total", times["total"])]:
        lines.append(f"| {kind} | {t['stages']} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |")
    return "\n".join(lines)


def markdown_tables_html(md: str) -> str:
    """A plain HTML page of ``results.md`` (headings, tables, the command)."""

    body: list[str] = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells))
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("    "):
            body.append(f"<pre>{html.escape(line.strip())}</pre>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>rsd experiment</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
