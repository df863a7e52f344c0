"""The HTML pages: ``rsd report``'s (one page, inline CSS, images as base64 ``data:`` URIs)
and ``rsd experiment``'s (its ``results.md`` rendered by markdown-it).

Every string that comes from the runs (names, variants, rigs, titles, captions) is escaped
with :func:`html.escape`; the Markdown renderer has raw HTML switched off.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from rsd.report.effects import (
    PairKey,
    collapse_warnings,
    diff_html,
    index_paired,
    paired_section,
    warnings_html,
)
from rsd.report.labels import CLOSED_LOOP, OPEN_LOOP
from rsd.report.tables import BASELINE, fmt_stat

MAX_GIFS = 24
"""At most this many GIFs are embedded (two per arm: a failure and a success)."""
MAX_GIF_BYTES = 8 << 20

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2330;
 background:#f4f5f7;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 32px 60px}
header{background:#1d2330;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:26px} header p{margin:0;color:#b9c0cc;font-size:14px}
nav{margin-top:10px} nav a{color:#9cc7ff;margin-right:16px;font-size:14px;text-decoration:none}
h2{margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #d5d9e0;font-size:21px}
h3{margin:20px 0 8px;font-size:16px;color:#333a48}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:14px 18px;
 margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;font-size:14px;min-width:420px}
th,td{padding:5px 12px;text-align:right;white-space:nowrap}
th{background:#eef0f4;font-weight:600} th:first-child,td:first-child{text-align:left}
tr:nth-child(even) td{background:#fafbfc}
td.best{font-weight:700} .good{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600}
.diff{font-size:12px;font-weight:400;color:#5f6675}
.warn{background:#fdecea;border:2px solid #b3261e;border-radius:8px;padding:10px 16px;
 margin:12px 0;color:#5f1410}
.tag{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.baseline{background:#0072b2} .rsd{background:#d55e00} .unknown{background:#777}
.note{color:#5f6675;font-size:13px} img{max-width:100%;height:auto}
.gifs{display:flex;flex-wrap:wrap;gap:14px} .gifs figure{margin:0;background:#fff;padding:8px;
 border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)} .gifs img{max-width:380px}
figcaption{font-size:12px;color:#5f6675;margin-top:4px}
dl dt{font-weight:600;margin-top:10px} dl dd{margin:2px 0 0 18px;font-size:14px}
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _tag(variant: str) -> str:
    cls = variant if variant in ("baseline", "rsd") else "unknown"
    return f'<span class="tag {cls}">{escape(variant)}</span>'


Row = tuple[str, dict, bool, PairKey | None]
"""(label, {variant: stats}, lower is better, (group, metric) of its paired rows or None)."""


def _table(
    rows: list[Row],
    variants: list[str],
    digits: int,
    paired: Mapping[tuple[str, str, str], Mapping] | None = None,
    reference: Mapping[str, Any] | None = None,
) -> str:
    """Rows -> table, one column per variant (the better mean bold), and in every
    non-baseline cell its difference against the baseline (:func:`rsd.report.effects.
    diff_html`): the paired ``Δ [95 % interval]`` from ``paired`` (:func:`rsd.report.effects.
    index_paired`), coloured only where the interval excludes zero; seed means alone never
    colour one. ``reference``: ``{label: value}`` of an extra "expert (reference)" column."""
    base = BASELINE if BASELINE in variants and len(variants) > 1 else None
    head = "".join(f"<th>{_tag(v)}</th>" for v in variants)
    if reference is not None:
        head += "<th>expert (reference)</th>"
    out = [f"<table><tr><th>metric</th>{head}</tr>"]
    for label, cells, lower, pkey in rows:
        if not any(cells[v]["n"] for v in variants):
            continue
        shown = {
            v: round(cells[v]["mean"], digits) for v in variants if cells[v]["mean"] is not None
        }
        best = (min if lower else max)(shown.values()) if len(shown) > 1 else None
        if best is not None and list(shown.values()).count(best) > 1:
            best = None  # equal as shown: nobody is better
        tds = ""
        for v in variants:
            cls = "best" if best is not None and shown.get(v) == best else ""
            text = escape(fmt_stat(cells[v], digits))
            if base is not None and v != base:
                effect = (paired or {}).get((*pkey, v)) if pkey else None
                diff, _ = diff_html(effect, cells[v]["mean"], cells[base]["mean"], digits)
                text += f"<br>{diff}" if diff else ""
            tds += f'<td class="{cls}">{text}</td>'
        if reference is not None:
            value = reference.get(label)
            tds += f"<td>{'-' if value is None else f'{value:.{digits}f}'}</td>"
        out.append(f"<tr><td>{escape(label)}</td>{tds}</tr>")
    return "\n".join(out) + "</table>"


def _runs_table(summary: dict) -> str:
    rows = [
        "<table><tr><th>run</th><th>variant</th><th>seed</th><th>model</th>"
        "<th>training rig</th><th>open-loop evals</th><th>closed-loop</th></tr>"
    ]
    for r in summary["runs"]:
        evals = ", ".join(f"{e['rig']} ({e['n_samples']})" for e in r["evals"]) or "-"
        drives = ", ".join(f"{d['dir']} ({d['overall'].get('episodes')} eps)" for d in r["drives"])
        rows.append(
            f"<tr><td title='{escape(r['path'])}'>{escape(r['name'])}</td><td>{_tag(r['variant'])}"
            f"</td><td>{escape(str(r['seed']))}</td><td>{escape(str(r['model']))}</td>"
            f"<td>{escape(str(r['rig']))}</td><td>{escape(evals)}</td>"
            f"<td>{escape(drives or '-')}</td></tr>"
        )
    return "\n".join(rows) + "</table>"


def _open_loop(summary: dict, paired: Mapping) -> str:
    vs = summary["variants"]
    parts = []
    if not summary["open_loop"]:
        return '<p class="note">No eval*.json in the runs (run <code>rsd eval</code>).</p>'
    lower = {key: lo for _, key, _, lo in OPEN_LOOP}
    labels = {key: label for _, key, label, _ in OPEN_LOOP}
    for sec in summary["open_loop"]:
        role = "training rig" if sec["training_rig"] else "unseen rig"
        group = f"open_loop[{sec['rig']}]"
        rows = [(labels[k], cells, lower[k], (group, k)) for k, cells in sec["metrics"].items()]
        parts.append(f'<h3>{escape(sec["rig"])} <span class="note">({role})</span></h3>')
        parts.append(f'<div class="card">{_table(rows, vs, 3, paired)}</div>')
        if sec["kept"]:
            kept: list[Row] = [(labels[k], cells, False, None) for k, cells in sec["kept"].items()]
            parts.append(
                f"<h3>Retention on the unseen rig {escape(sec['rig'])}</h3>"
                '<p class="note">Ratio to the same run\'s training-rig value (errors: train /'
                " unseen; scores: unseen / train); 1 = nothing lost, mean ± std over runs.</p>"
                f'<div class="card">{_table(kept, vs, 3)}</div>'
            )
    return "\n".join(parts)


def _expert_note(expert: Mapping | None) -> str:
    if not expert:
        return (
            '<p class="note">No expert reference (<code>rsd report --expert DRIVE_DIR</code>'
            " with <code>rsd drive --planner expert</code>'s output; the experiment drives it"
            " once into <code>expert/drive</code>).</p>"
        )
    st = expert["settings"]
    same = (
        "the same scenario episodes as the runs"
        if expert["same_episodes"]
        else "NOT the same scenario episodes as every run: compare with care"
    )
    return (
        '<p class="note">Expert (reference): the privileged expert driven with the same metric'
        f" definitions on {escape(str(st.get('episodes')))} episodes per scenario from seed"
        f" {escape(str(st.get('first_seed')))}: {same}.</p>"
    )


def _closed_loop(summary: dict, paired: Mapping) -> str:
    vs = summary["variants"]
    if not summary["closed_loop"]:
        return (
            '<p class="note">No drive*/metrics.json in the runs (run <code>rsd drive</code>).</p>'
        )
    parts = []
    for sec in summary["closed_loop"]:
        expert = sec.get("expert")
        rows: list[Row] = [
            (label, sec["overall"][k], lo, ("closed_loop_overall", k))
            for k, label, lo in CLOSED_LOOP
        ]
        ref = None
        if expert:
            ref = {label: expert["overall"].get(k) for k, label, _ in CLOSED_LOOP}
        parts.append(f"<h3>Overall (rig {escape(str(sec['rig']))})</h3>")
        parts.append(f'<div class="card">{_table(rows, vs, 1, paired, ref)}')
        parts.append(f"{_expert_note(expert)}</div>")
        skills: list[Row] = [(s, c, False, None) for s, c in sec["per_skill_success"].items()]
        if skills:
            parts.append(
                f'<h3>Success rate per skill (%)</h3><div class="card">'
                f"{_table(skills, vs, 1)}</div>"
            )
        scn: list[Row] = []
        ref_scn: dict[str, Any] = {}
        for s, cells in sec["per_scenario"].items():
            scn.append((f"{s}: DS", cells["driving_score"], False, None))
            scn.append((f"{s}: SR %", cells["success_rate"], False, None))
            e = ((expert or {}).get("per_scenario") or {}).get(s) or {}
            ref_scn |= {f"{s}: DS": e.get("driving_score"), f"{s}: SR %": e.get("success_rate")}
        if scn:
            table = _table(scn, vs, 1, None, ref_scn if expert else None)
            parts.append(f'<h3>Per scenario</h3><div class="card">{table}</div>')
    return "\n".join(parts)


def _gifs(gifs: list[tuple[str, str]]) -> str:
    if not gifs:
        return '<p class="note">No GIFs under the runs\' drive directories (rsd drive --video).</p>'
    figs, skipped = [], 0
    for caption, path in gifs:
        p = Path(path)
        if len(figs) >= MAX_GIFS or not p.exists() or p.stat().st_size > MAX_GIF_BYTES:
            skipped += 1
            continue
        figs.append(
            f'<figure><img src="{data_uri(p.read_bytes(), "image/gif")}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    note = (
        f'<p class="note">{skipped} more not embedded (size / count limit).</p>' if skipped else ""
    )
    return f'<div class="gifs">{"".join(figs)}</div>{note}'


DEFINITIONS = """<dl>
<dt>L2 (VAD avg) @T</dt><dd>Mean over the first 2T waypoints (0.5 s apart) of the distance between
planned and expert positions: an average of averages, as VAD / ST-P3 report it.
"mean" = average over 1, 2, 3 s.</dd>
<dt>L2 (UniAD step) @T</dt><dd>The distance at the waypoint of time T alone (UniAD's convention);
larger than the VAD number for the same plan.</dd>
<dt>ADE / FDE</dt><dd>Mean distance over all 6 waypoints / at the last (3 s).</dd>
<dt>Plan collision (exact boxes / VAD grid)</dt><dd>Per-step indicator averaged like L2 (VAD);
steps where the expert collides are excluded. In % of the steps. Exact boxes: the ego box turned
along the plan vs the agents' true future boxes. VAD grid: VAD's own test, an unrotated
4.084 x 1.85 m box shifted 0.5 m forward on a 0.5 m occupancy grid of the agents.</dd>
<dt>mAP, mATE, mASE, mAOE, mAVE, NDS</dt><dd>nuScenes detection (Caesar et al., CVPR 2020):
nuscenes-devkit 1.2.0's numbers; greedy centre-distance matching at 0.5/1/2/4 m,
AP over recall &gt; 0.1 with precision &gt; 0.1;
TP errors at 2 m: translation (m), 1 - scale IoU, yaw (rad), velocity (m/s);
NDS = (5 mAP + Σ max(0, 1 - mTP)) / 9 here (no attribute error; nuScenes divides by 10 with AAE).
</dd>
<dt>Risk agreement</dt><dd>Student RiskHead vs the teacher's per-object risks: MAE, Kendall tau-b of
the two rankings per frame, top-1 (same most-risky object), L1 between the risk maps; near-miss
AUROC = how well the student's risk separates agents that later come within 2 m of the
expert's path from the others.</dd>
<dt>Driving Score, Success rate</dt><dd>Bench2Drive / CARLA leaderboard: DS = route completion ×
product of infraction penalties (vehicle collision 0.60, timeout 0.70, off-road
1 − share of the route driven off the road), mean over routes;
SR = share of routes completed (≥ 95 %) with no infraction.</dd>
<dt>Efficiency, Comfortness</dt><dd>Bench2Drive: at 20 route checkpoints, mean ego speed / mean
speed of the vehicles within 50 m since the last one (%), averaged; share of whole 2 s chunks
whose Savitzky-Golay smoothed accelerations, jerks (d|a|/dt) and yaw rate stay inside nuPlan's
bounds.</dd>
<dt>Throughput</dt><dd>Model forward samples/s at the eval batch size on the eval machine
(rasterising excluded; the eval JSON also has the end-to-end figure).</dd>
<dt>mean ± std</dt><dd>Over the runs (seeds) of a variant; std is the sample standard deviation
(n − 1). Δ beside a cell: arm − baseline with its paired 95 % interval (<code>rsd compare</code>:
paired by training seed, then scenario episode or frame; hierarchical bootstrap), coloured
only where the interval excludes zero, "not resolved" otherwise; where no paired interval
exists, the relative change of the seed means, never coloured.</dd>
<dt>Units</dt><dd>Rates (success, collision, off-road, plan collision, route completion) in %
everywhere: page, <code>summary.md</code>, <code>results.md</code> and the command-line tables.
</dd>
<dt>Expert (reference)</dt><dd>The privileged expert (ground-truth state) driven on the same
scenario seeds and scored with the same definitions: what the scenarios allow.</dd>
</dl>
<p class="note">Sources: Hu et al., "Planning-oriented Autonomous Driving" (UniAD, CVPR 2023);
Jiang et al., "VAD" (ICCV 2023) and the ST-P3 evaluation code they share; Caesar et al.,
"nuScenes" (CVPR 2020) detection benchmark; Jia et al., "Bench2Drive" (NeurIPS 2024 D&amp;B);
Karnchanachari et al., "nuPlan" comfort bounds.</p>"""


def _curves(figures: Mapping[str, Any]) -> str:
    """Loss terms and gradient norms per term, with the list of what each figure plots."""
    if not figures.get("curves"):
        return '<p class="note">No metrics.jsonl in the runs.</p>'
    terms = ", ".join(figures.get("terms") or [])
    html = (
        f'<div class="card"><img src="{data_uri(figures["curves"], "image/png")}" alt="curves">'
        f'<p class="note">Every loss term, one panel each: {escape(terms)}.</p></div>'
    )
    if figures.get("grads"):
        grads = ", ".join(figures.get("grad_terms") or [])
        html += (
            f'<h3>Gradient norm of each loss term</h3><div class="card"><img src="'
            f'{data_uri(figures["grads"], "image/png")}" alt="gradient norms">'
            f'<p class="note">||d term / d weights|| as <code>rsd train</code> logs it'
            f" (<code>grad_terms_every</code>), one panel per variant: {escape(grads)}.</p></div>"
        )
    else:
        html += '<p class="note">No gradient norms per term in the runs\' metrics.jsonl.</p>'
    return html


def render_page(
    summary: dict,
    figures: Mapping[str, Any],
    gifs: list[tuple[str, str]],
    paired: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole page as a string. ``figures``: ``curves`` / ``grads`` / ``risk`` (PNG bytes or
    None), ``terms`` / ``grad_terms`` (what the first two plot), ``risk_note``; ``gifs``:
    ``(caption, path)``; ``paired``: paired rows (:mod:`rsd.report.effects`)."""
    title = escape(summary.get("title", "rsd report"))
    index = index_paired(paired)
    sections = []
    warned = warnings_html(collapse_warnings(summary))
    if warned:
        sections.append(("warnings", "Warnings", warned))
    sections += [
        ("runs", "Runs", f'<div class="card">{_runs_table(summary)}</div>'),
        ("open", "Open loop (held-out val split)", _open_loop(summary, index)),
        ("closed", "Closed loop (highway-env)", _closed_loop(summary, index)),
        ("paired", "Paired differences against the baseline", paired_section(paired)),
        ("curves", "Training curves", _curves(figures)),
    ]
    risk_png, risk_note = figures.get("risk"), str(figures.get("risk_note", ""))
    risk = (
        f'<div class="card"><img src="{data_uri(risk_png, "image/png")}" alt="risk maps">'
        f'<p class="note">{escape(risk_note)}; boxes: agents, blue: ego.</p></div>'
        if risk_png
        else f'<p class="note">{escape(risk_note)}</p>'
    )
    sections.append(("risk", "Risk maps: teacher vs student", risk))
    sections.append(("rollouts", "Closed-loop rollouts", _gifs(gifs)))
    sections.append(("defs", "Metric definitions", f'<div class="card">{DEFINITIONS}</div>'))
    nav = "".join(f'<a href="#{k}">{escape(name)}</a>' for k, name, _ in sections)
    body = "\n".join(f'<h2 id="{k}">{escape(name)}</h2>\n{html}' for k, name, html in sections)
    runs = len(summary["runs"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{CSS}</style></head>
<body><header><h1>{title}</h1>
<p>{runs} run{"s" if runs != 1 else ""} · variants: {escape(", ".join(summary["variants"]))} ·
generated {escape(summary.get("generated", ""))}</p><nav>{nav}</nav></header>
<main>
{body}
</main></body></html>
"""


RESULTS_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
)


def markdown_page(md: str, title: str) -> str:
    """A plain HTML page of a Markdown text (headings, tables, code): CommonMark with GFM
    tables, raw HTML in ``md`` shown as text rather than passed through."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{RESULTS_CSS}</style></head><body>\n{body}</body></html>\n"
    )
