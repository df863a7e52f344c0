"""Text tables: the Markdown of ``rsd report`` (``summary.md``) and of ``rsd experiment``
(``results.md``), and the printouts of ``rsd eval`` and ``rsd demo``.

Numbers arrive keyed by metric identifiers; labels come from :mod:`rsd.report.labels`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rsd.metrics.stats import as_number, excludes_zero
from rsd.report.labels import (
    CLOSED_LOOP,
    EVAL_TABLE,
    EXPERIMENT_GROUPS,
    LOWER_IS_BETTER,
    OPEN_LOOP,
    POOLED_OUTCOMES,
    compare_group_title,
    experiment_label,
    plan_score_label,
)

BASELINE = "baseline"
"""The arm (variant) others are compared with: its cells carry no change in %."""

# -- rsd report ------------------------------------------------------------------------------


def fmt_stat(s: dict, digits: int = 3) -> str:
    """``mean ± std`` of a :func:`rsd.report.runs.stat_cell` (``mean`` alone for one run, ``-``
    for none)."""
    if s["mean"] is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    return text if s["std"] is None else f"{text} ± {s['std']:.{digits}f}"


def stat_of(value: Any) -> dict:
    """A one-value cell for :func:`fmt_stat` (None: missing)."""
    x = as_number(value)
    return {"mean": None if math.isnan(x) else x, "std": None}


def _md_row(label: str, cells: dict, variants: list[str], digits: int) -> str:
    return f"| {label} | " + " | ".join(fmt_stat(cells[v], digits) for v in variants) + " |"


def summary_markdown(summary: dict, title: str) -> str:
    """The tables of ``rsd report`` in Markdown (``summary.md``): the warnings, open loop per
    rig, closed loop (with the expert's reference column when there is one) and the paired
    differences when given."""
    vs = summary["variants"]
    head = "| metric | " + " | ".join(vs) + " |\n|---|" + "---:|" * len(vs)
    lines = [f"# {title}\n", f"Runs: {', '.join(r['name'] for r in summary['runs'])}\n"]
    lines += [f"**WARNING**: {w}\n" for w in summary.get("warnings") or []]
    labels = {key: label for _, key, label, _ in OPEN_LOOP}
    for sec in summary["open_loop"]:
        role = "training rig" if sec["training_rig"] else "unseen rig"
        lines.append(f"## Open loop: {sec['rig']} ({role})\n\n{head}")
        for key, cells in sec["metrics"].items():
            if any(c["n"] for c in cells.values()):
                lines.append(_md_row(labels[key], cells, vs, 3))
        if sec["kept"]:
            lines.append(
                f"\n### Retention on {sec['rig']} (ratio to the training rig's; 1 = nothing lost)\n"
            )
            lines.append(head)
            for key, cells in sec["kept"].items():
                if any(c["n"] for c in cells.values()):
                    lines.append(_md_row(labels[key], cells, vs, 3))
        lines.append("")
    names = {k: label for k, label, _ in CLOSED_LOOP}
    for sec in summary["closed_loop"]:
        expert = sec.get("expert")
        ref = (expert or {}).get("overall") or {}
        lines.append(f"## Closed loop (rig {sec['rig']})\n")
        if expert:
            same = "same episodes" if expert["same_episodes"] else "NOT the same episodes"
            lines.append(f"Last column: the privileged expert as a reference ({same}).\n")
            lines.append(head.replace(" |\n", " | expert |\n", 1) + "---:|")
        else:
            lines.append(head)
        for key, cells in sec["overall"].items():
            row = _md_row(names[key], cells, vs, 1)
            lines.append(f"{row} {fmt_stat(stat_of(ref.get(key)), 1)} |" if expert else row)
        for skill, cells in sec["per_skill_success"].items():
            row = _md_row(f"success: {skill} (%)", cells, vs, 1)
            lines.append(f"{row} - |" if expert else row)
        lines.append("")
    if summary.get("paired"):
        lines += ["## Paired differences against the baseline\n", paired_table(summary["paired"])]
    return "\n".join(lines) + "\n"


# -- rsd experiment --------------------------------------------------------------------------


def fmt_number(x: Any) -> str:
    """``x`` with 3 decimals; ``-`` for a missing number."""
    x = as_number(x)
    return "-" if math.isnan(x) else f"{x:.3f}"


def fmt_pct(x: Any) -> str:
    """A signed change in % with 1 decimal (``+4.2%``); ``-`` for a missing number."""
    x = as_number(x)
    return "-" if math.isnan(x) else f"{x:+.1f}%"


def cell_of(agg: Mapping, group: str, metric: str, arm: str) -> dict[str, Any]:
    """The aggregate cell (:func:`rsd.metrics.stats.aggregate`) of one arm; NaNs if absent."""
    return agg.get(group, {}).get(metric, {}).get(arm) or {
        "mean": math.nan,
        "std": math.nan,
        "delta_pct": math.nan,
    }


def format_cell(cell: Mapping[str, Any], with_delta: bool = True) -> str:
    """``mean ± std (Δ%)``; ``-`` for a missing number."""
    text = f"{fmt_number(cell.get('mean'))} ± {fmt_number(cell.get('std'))}"
    return f"{text} ({fmt_pct(cell.get('delta_pct'))})" if with_delta else text


def format_table(
    agg: Mapping[str, Any],
    group: str,
    arms: Sequence[str],
    reference: Mapping[str, Any] | None = None,
) -> str:
    """One markdown table of an aggregate group: metrics as rows, arms as columns; with
    ``reference`` (``{metric: value}``, the privileged expert's on the same scenario seeds) a
    last column ``expert (ref.)``."""
    cols = [*arms, "expert (ref.)"] if reference else list(arms)
    head = "| metric | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for metric, cells in (agg.get(group) or {}).items():
        row = [
            format_cell(cell_of(agg, group, metric, a), with_delta=a != BASELINE)
            if a in cells
            else "-"
            for a in arms
        ]
        if reference:
            row.append(fmt_number(reference.get(metric)))
        lines.append(f"| {experiment_label(metric)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_times(times: Mapping[str, Any]) -> str:
    """Wall and CPU time, in total and per stage kind, as a markdown table."""
    lines = ["| stages | count | wall (s) | CPU (s) |", "|---|---|---|---|"]
    for kind, t in [*times["by_kind"].items(), ("total", times["total"])]:
        lines.append(f"| {kind} | {t['stages']} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |")
    return "\n".join(lines)


def format_pooled(pooled: Mapping[str, Any], arms: Sequence[str]) -> str:
    """Markdown table of pooled outcomes per arm (``{arm: {group: rsd.metrics.stats.
    outcome_rates(...)}}``): rate % [95 % interval] (count)."""
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
                lo, hi = (as_number(v) for v in c["ci95_pct"])
                rate = as_number(c["rate_pct"])
                cells.append(f"{rate:.1f} [{lo:.1f}, {hi:.1f}] ({c['count']})")
            lines.append(f"| {arm} | {g} | {row['episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(
    agg: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    times: Mapping[str, Any],
    command: str,
    arms: Sequence[str],
    pooled: Mapping[str, Any] | None = None,
    paired: Sequence[Mapping[str, Any]] = (),
    expert: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """``results.md``: the paired effects against the baseline (where runs pair), a table per
    metric group (the closed-loop ones with the ``expert`` reference column when given:
    ``{group: {metric: value}}``), the closed-loop outcomes pooled over seeds (Wilson
    intervals: used where nothing pairs), the targets, the time spent, the command."""
    parts = [
        "# rsd experiment",
        "",
    ]
    if paired:
        parts += [
            "",
            "## Paired effects against the baseline",
            "",
            "Arm - baseline on the same training seeds and the same scenario episodes (closed"
            " loop) or frames (open loop); 95 % intervals from a hierarchical bootstrap over"
            " seeds, then units; a verdict only where the interval excludes 0.",
            "",
            paired_table(paired),
        ]
    parts += ["", "Cells: mean ± sample std over seeds (change of the mean vs baseline, %)."]
    if expert:
        parts += [
            "Closed loop, last column: the privileged expert on the same scenario seeds, scored"
            " with the same definitions (one drive: no std)."
        ]
    for g, title in EXPERIMENT_GROUPS.items():
        if g in agg:
            parts += ["", f"## {title}", "", format_table(agg, g, arms, (expert or {}).get(g))]
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


# -- rsd eval, rsd demo ----------------------------------------------------------------------


def eval_table(result: dict) -> str:
    """A compact text table of the headline metrics of an ``rsd eval`` result."""
    unseen = " (unseen)" if result["unseen_rig"] else " (training rig)"
    lines = [
        f"run {result['run']}  variant {result['variant']}  rig {result['rig']}{unseen}",
        f"{result['split']}: {result['n_samples']} samples  "
        f"{result['samples_per_s']:.1f} samples/s model, "
        f"{result['end_to_end_samples_per_s']:.1f} with rasterising (batch {result['batch_size']})",
    ]
    width = max(len(label) for _, _, label, _ in EVAL_TABLE) + 2
    for group, key, label, unit in EVAL_TABLE:
        if group not in result:
            continue
        v = result[group].get(key)
        if unit == "%" and v is not None:
            v = 100 * v
        shown = "-" if v is None else f"{v:.3f}"
        lines.append(f"  {group:<10}{label:<{width}}{shown:>9} {unit}")
    if "risk" not in result:
        lines.append(f"  risk      not measured ({result['teacher']})")
    lines += [f"  WARNING: {w}" for w in result.get("warnings") or []]
    return "\n".join(lines)


# -- rsd compare, paired intervals in results.md ----------------------------------------------


NOT_RESOLVED = "not resolved"
"""The verdict on a paired difference whose 95 % interval contains zero (never coloured)."""


def paired_verdict(row: Mapping[str, Any]) -> str:
    """``better`` / ``worse`` where the 95 % interval of the paired difference excludes 0
    (by the metric's direction), else :data:`NOT_RESOLVED` (the data do not tell)."""
    if not excludes_zero(row["ci95"]):
        return NOT_RESOLVED
    lower = row["metric"] in LOWER_IS_BETTER
    return "better" if (as_number(row["diff"]) < 0) == lower else "worse"


def paired_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown tables (one per group) of paired effects (``rsd.pipeline.compare``): difference
    arm - base with its 95 % interval, relative effect with its interval, d_z, seeds, units,
    and a verdict only where the interval excludes zero."""
    parts: list[str] = []
    for group in dict.fromkeys(r["group"] for r in rows):
        parts += ["", f"### {compare_group_title(group)}", ""]
        parts += [
            "| metric | arm vs base | base mean | difference [95 % CI] | relative % [95 % CI]"
            " | d_z | seeds | units | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["group"] == group):
            lo, hi = r["ci95"]
            rlo, rhi = r["rel_ci95_pct"]
            parts.append(
                f"| {plan_score_label(r['metric'])} | {r['arm']} vs {r['base']} "
                f"| {fmt_number(r['base_mean'])} "
                f"| {fmt_number(r['diff'])} [{fmt_number(lo)}, {fmt_number(hi)}] "
                f"| {fmt_pct(r['rel_pct'])} [{fmt_pct(rlo)}, {fmt_pct(rhi)}] "
                f"| {fmt_number(r['d_z'])} | {r['seeds']} | {r['units']} | {paired_verdict(r)} |"
            )
    return "\n".join(parts).lstrip("\n")
