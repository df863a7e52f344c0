"""The parts of ``rsd report``'s page that say how far a number can be trusted: the paired
differences against the baseline (beside every difference, coloured only where the 95 %
interval excludes zero), the full table of paired effects, and the warning boxes of runs whose
student risk map has collapsed.

Paired rows are those of :func:`rsd.pipeline.compare.compare_arms` (``rsd compare --json``'s
``rows``, ``results.json``'s ``paired``): ``{"group", "metric", "arm", "base", "diff",
"ci95", "rel_pct", "rel_ci95_pct", "base_mean", "d_z", "seeds", "units", ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from rsd.metrics.risk import COLLAPSE_RATIO, RISKY
from rsd.metrics.stats import as_number, delta_pct
from rsd.report.labels import compare_group_title, plan_score_label
from rsd.report.tables import BASELINE, NOT_RESOLVED, fmt_pct, paired_verdict

PairKey = tuple[str, str]
"""``(group, metric)`` of a paired row, e.g. ``("open_loop[dense360]", "ade")``."""


def index_paired(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping]:
    """``{(group, metric, arm): row}`` of the rows against :data:`BASELINE` (the column the
    page's differences are taken against)."""
    return {(r["group"], r["metric"], r["arm"]): r for r in rows if r.get("base") == BASELINE}


def _num(x: Any, digits: int) -> str:
    x = as_number(x)
    return "-" if math.isnan(x) else f"{x:+.{digits}f}"


def diff_html(
    effect: Mapping[str, Any] | None, mean: Any, base_mean: Any, digits: int
) -> tuple[str, str]:
    """``(html, verdict)`` of one difference against the baseline: with a paired ``effect``,
    ``Δ diff [lo, hi]`` coloured good / bad only where the interval excludes zero (verdict
    ``better`` / ``worse``), else marked and verdict :data:`NOT_RESOLVED`; without one, the
    relative change of the seed means, uncoloured and saying that no paired interval exists
    (verdict ``""``). ``("", "")`` when there is nothing to compare."""
    if effect is not None and math.isfinite(as_number(effect.get("diff"))):
        lo, hi = effect["ci95"]
        text = f"Δ {_num(effect['diff'], digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"
        verdict = paired_verdict(effect)
        if verdict == NOT_RESOLVED:
            return f'<span class="diff">{escape(text)} {NOT_RESOLVED}</span>', verdict
        cls = "good" if verdict == "better" else "bad"
        return f'<span class="diff {cls}">{escape(text)} {verdict}</span>', verdict
    if mean is None or base_mean is None:
        return "", ""
    rel = delta_pct(mean, base_mean)
    if math.isnan(rel):
        return "", ""
    return f'<span class="diff">Δ {rel:+.1f} %, no paired interval</span>', ""


def paired_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """Every paired row as HTML tables (one per group): difference arm - base [95 % interval],
    relative % [interval], d_z, seeds, units, and the verdict, coloured only where the
    interval excludes zero."""
    if not rows:
        return (
            '<p class="note">No paired intervals given (<code>rsd report --paired</code> with an'
            " experiment's <code>results.json</code>, its directory, or <code>rsd compare"
            " --json</code>): the differences above are the seed means' and nothing is"
            " coloured.</p>"
        )
    parts = [
        '<p class="note">Arm - base on the same training seeds and the same scenario episodes'
        " (closed loop) or frames (open loop); 95 % intervals from a hierarchical bootstrap over"
        " seeds, then units. A verdict only where the interval excludes 0. With one training"
        " seed an interval covers the episodes or frames sampled, not the spread of"
        " training.</p>"
    ]
    head = (
        "<tr><th>metric</th><th>arm vs base</th><th>base mean</th><th>difference [95 % CI]</th>"
        "<th>relative [95 % CI]</th><th>d_z</th><th>seeds</th><th>units</th><th>verdict</th></tr>"
    )
    for group in dict.fromkeys(r["group"] for r in rows):
        body = []
        for r in (r for r in rows if r["group"] == group):
            lo, hi = r["ci95"]
            diff = f"{_num(r['diff'], 3)} [{_num(lo, 3)}, {_num(hi, 3)}]"
            rlo, rhi = r["rel_ci95_pct"]
            verdict = paired_verdict(r)
            cls = {"better": "good", "worse": "bad"}.get(verdict, "")
            body.append(
                f"<tr><td>{escape(plan_score_label(str(r['metric'])))}</td>"
                f"<td>{escape(str(r['arm']))} vs {escape(str(r['base']))}</td>"
                f"<td>{_num(r['base_mean'], 3).lstrip('+')}</td><td>{diff}</td>"
                f"<td>{fmt_pct(r['rel_pct'])} [{fmt_pct(rlo)}, {fmt_pct(rhi)}]</td>"
                f"<td>{_num(r.get('d_z'), 2)}</td><td>{escape(str(r.get('seeds')))}</td>"
                f"<td>{escape(str(r.get('units')))}</td>"
                f'<td class="{cls}">{verdict}</td></tr>'
            )
        parts.append(
            f"<h3>{escape(compare_group_title(str(group)))}</h3>"
            f'<div class="card"><table>{head}{"".join(body)}</table></div>'
        )
    return "\n".join(parts)


def collapse_warnings(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per (run, eval) whose student risk map has collapsed
    (:func:`rsd.metrics.risk.risk_collapse`, recorded by ``rsd eval`` in its ``risk`` group):
    ``{"run", "variant", "seed", "rig", "student_risk_on_risky", "teacher_risk_on_risky"}``."""
    out = []
    for r in summary["runs"]:
        for ev in r["evals"]:
            risk = ev.get("risk") or {}
            if as_number(risk.get("risk_collapsed")) != 1.0:
                continue
            out.append(
                {
                    "run": r["name"],
                    "variant": r["variant"],
                    "seed": r["seed"],
                    "rig": ev.get("rig"),
                    "student_risk_on_risky": as_number(risk.get("student_risk_on_risky")),
                    "teacher_risk_on_risky": as_number(risk.get("teacher_risk_on_risky")),
                }
            )
    return out


def warning_text(w: Mapping[str, Any]) -> str:
    """One sentence of a collapse warning, with its figures."""
    return (
        f"run {w['run']} ({w['variant']}, seed {w['seed']}) on rig {w['rig']}: the student's"
        f" risk map has collapsed: mean risk {w['student_risk_on_risky']:.3g} on the objects"
        f" the teacher rates risky (teacher risk > {RISKY}), against the teacher's"
        f" {w['teacher_risk_on_risky']:.3g} there (collapsed: under {COLLAPSE_RATIO:g} of it);"
        " its rank agreement and map L1 mean little"
    )


def warnings_html(warnings: Sequence[Mapping[str, Any]]) -> str:
    """A visible warning box per collapsed run (empty string when there is none)."""
    return "\n".join(
        f'<div class="warn"><b>Warning: collapsed student risk map.</b> '
        f"{escape(warning_text(w))}.</div>"
        for w in warnings
    )
