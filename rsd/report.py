"""``rsd report``: one self-contained HTML page comparing runs, plus ``summary.md`` / ``.json``.

    rsd report runs/baseline-s0 runs/baseline-s1 runs/rsd-s0 runs/rsd-s1 --out report/

In each run directory it reads what the other commands leave there:

* ``config.yaml`` (``rsd train``): ``variant`` (baseline / rsd), ``seed``, ``rig``, model kind;
* ``metrics.jsonl``: the training curves (loss terms vs step);
* ``eval*.json`` (``rsd eval``): open-loop metrics, one file per sensor rig;
* ``drive*/**/metrics.json`` (``rsd drive``): closed-loop metrics, and the GIFs beside them.

Runs are grouped by variant; a metric is reported as mean +- std over the runs (seeds) of a
variant, std being the sample standard deviation (n - 1), shown only for two runs or more.
The page embeds its images (PNG, GIF) as base64 ``data:`` URIs and its CSS inline: the single
file works when moved or mailed. The same numbers go to ``summary.json`` (machine-readable,
``null`` for missing) and ``summary.md`` (tables for a README or a pull request).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from rsd.config import ConfigError

VARIANT_ORDER = ("baseline", "rsd")
OPEN_LOOP = [  # (group, key, label, lower is better)
    ("planning", "L2 (VAD avg)@1s", "L2 VAD-avg @1s (m)", True),
    ("planning", "L2 (VAD avg)@2s", "L2 VAD-avg @2s (m)", True),
    ("planning", "L2 (VAD avg)@3s", "L2 VAD-avg @3s (m)", True),
    ("planning", "L2 (VAD avg)@avg", "L2 VAD-avg mean (m)", True),
    ("planning", "L2 (UniAD step)@3s", "L2 UniAD-step @3s (m)", True),
    ("planning", "ADE", "ADE (m)", True),
    ("planning", "FDE", "FDE (m)", True),
    ("planning", "Collision (VAD avg)@avg", "collision VAD-avg mean", True),
    ("detection", "mAP", "mAP", False),
    ("detection", "NDS", "NDS", False),
    ("detection", "mATE", "mATE (m)", True),
    ("detection", "mASE", "mASE", True),
    ("detection", "mAOE", "mAOE (rad)", True),
    ("detection", "mAVE", "mAVE (m/s)", True),
    ("risk", "risk MAE", "risk MAE vs teacher", True),
    ("risk", "risk Kendall tau-b", "risk Kendall tau-b", False),
    ("risk", "risk top-1 agreement", "risk top-1 agreement", False),
    ("risk", "risk map L1", "risk map L1", True),
    ("risk", "risk AUROC (near-miss)", "near-miss AUROC", False),
    ("", "samples_per_s", "model samples/s", False),
]
KEPT = ["L2 (VAD avg)@avg", "ADE", "FDE", "mAP", "NDS"]
"""Metrics whose share kept on an unseen rig is reported."""
CLOSED_LOOP = [  # (key, label, lower is better)
    ("driving_score", "Driving Score", False),
    ("success_rate", "Success rate (%)", False),
    ("route_completion", "Route completion (%)", False),
    ("efficiency", "Efficiency (%)", False),
    ("comfortness", "Comfortness (%)", False),
    ("collision_rate", "Collision rate (%)", True),
    ("offroad_rate", "Off-road rate (%)", True),
]


# -- reading runs --------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_run(run_dir: Path) -> dict:
    """What a run directory holds, as one dict (see the module doc)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory")
    cfg: dict = {}
    if (run_dir / "config.yaml").exists():
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    evals = []
    for path in sorted(run_dir.glob("eval*.json")):
        data = _read_json(path)
        if data and "planning" in data:
            evals.append({"file": path.name, **data})
    drives = []
    for path in sorted(run_dir.glob("drive*/**/metrics.json")):
        data = _read_json(path)
        if data and "overall" in data:
            rig = (data.get("settings") or {}).get("rig") or cfg.get("rig", "?")
            rel = str(path.parent.relative_to(run_dir))
            gifs = sorted(str(p) for p in path.parent.rglob("*.gif"))
            drives.append({"dir": rel, "rig": rig, "gifs": gifs, **data})
    return {
        "name": run_dir.name,
        "path": str(run_dir.resolve()),
        "variant": str(cfg.get("variant", "unknown")),
        "seed": cfg.get("seed"),
        "rig": cfg.get("rig", "?"),
        "model": (cfg.get("model") or {}).get("kind", "?"),
        "evals": evals,
        "drives": drives,
    }


# -- aggregation ---------------------------------------------------------------------------


def mean_std(values: Sequence[float | None]) -> dict:
    """``{"mean", "std", "n", "values"}`` over the finite values; std with n - 1 (None for one)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    mean = sum(xs) / n if n else None
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n, "values": list(values)}


def _variants(runs: Sequence[dict]) -> list[str]:
    found = {r["variant"] for r in runs}
    return [v for v in VARIANT_ORDER if v in found] + sorted(found - set(VARIANT_ORDER))


def _get(ev: dict, group: str, key: str) -> float | None:
    return (ev.get(group) or {}).get(key) if group else ev.get(key)


def _kept(train: float | None, unseen: float | None, lower: bool) -> float | None:
    """Share (%) of training-rig performance kept on the unseen rig (100 = nothing lost)."""
    if train is None or unseen is None:
        return None
    num, den = (train, unseen) if lower else (unseen, train)
    return 100.0 * num / den if den else None


def summarise_runs(runs: Sequence[dict]) -> dict:
    """The report's numbers: per rig (open loop) and per drive rig (closed loop), per variant,
    mean +- std over runs; plus the share of performance kept on each unseen rig."""
    variants = _variants(runs)
    lower = {key: lo for _, key, _, lo in OPEN_LOOP}
    rigs: dict[str, bool] = {}
    for r in runs:
        for ev in r["evals"]:
            rigs[ev["rig"]] = rigs.get(ev["rig"], False) or not ev.get("unseen_rig", False)
    open_loop = []
    for rig, training in sorted(rigs.items(), key=lambda kv: (not kv[1], kv[0])):
        table = {}
        for group, key, _, _ in OPEN_LOOP:
            table[key] = {v: mean_std(_eval_values(runs, v, rig, group, key)) for v in variants}
        kept = {}
        if not training:
            for key in KEPT:
                group = next(g for g, k, _, _ in OPEN_LOOP if k == key)
                kept[key] = {
                    v: mean_std(_run_kept(runs, v, rig, group, key, lower[key])) for v in variants
                }
        open_loop.append({"rig": rig, "training_rig": training, "metrics": table, "kept": kept})
    closed = {}
    for r in runs:
        for d in r["drives"]:
            closed.setdefault(d["rig"], []).append((r["variant"], d))
    closed_loop = []
    for rig, entries in closed.items():
        by_v = {v: [d for vv, d in entries if vv == v] for v in variants}
        skills = sorted({s for _, d in entries for s in d.get("multi_ability", {})})
        scenarios = sorted({s for _, d in entries for s in d.get("per_scenario", {})})
        closed_loop.append(
            {
                "rig": rig,
                "overall": {
                    k: _over(by_v, lambda d, k=k: d["overall"].get(k)) for k, _, _ in CLOSED_LOOP
                },
                "per_skill_success": {
                    s: _over(by_v, lambda d, s=s: d["multi_ability"].get(s)) for s in skills
                },
                "per_scenario": {
                    s: {
                        k: _over(by_v, lambda d, s=s, k=k: (d["per_scenario"].get(s) or {}).get(k))
                        for k in ("driving_score", "success_rate")
                    }
                    for s in scenarios
                },
            }
        )
    slim = [{k: v for k, v in r.items() if k not in ("evals", "drives")} for r in runs]
    for s, r in zip(slim, runs, strict=True):
        s["evals"] = [
            {
                k: ev.get(k)
                for k in (
                    "file",
                    "rig",
                    "unseen_rig",
                    "n_samples",
                    "samples_per_s",
                    "planning",
                    "detection",
                    "risk",
                )
            }
            for ev in r["evals"]
        ]
        s["drives"] = [
            {k: d.get(k) for k in ("dir", "rig", "overall", "multi_ability")} for d in r["drives"]
        ]
    return {"variants": variants, "runs": slim, "open_loop": open_loop, "closed_loop": closed_loop}


def _eval_values(runs, variant, rig, group, key) -> list[float | None]:
    """The metric of every eval of ``variant``'s runs on ``rig`` (one per run, in run order)."""
    evals = [ev for r in runs if r["variant"] == variant for ev in r["evals"] if ev["rig"] == rig]
    return [_get(ev, group, key) for ev in evals]


def _over(by_variant: dict[str, list[dict]], value) -> dict:
    """``{variant: mean_std(value(d) for each drive result d of the variant)}``."""
    return {v: mean_std([value(d) for d in ds]) for v, ds in by_variant.items()}


def _run_kept(runs, variant, rig, group, key, lower) -> list[float | None]:
    out = []
    for r in runs:
        if r["variant"] != variant:
            continue
        train = [ev for ev in r["evals"] if not ev.get("unseen_rig")]
        unseen = [ev for ev in r["evals"] if ev["rig"] == rig]
        if train and unseen:
            out.append(_kept(_get(train[0], group, key), _get(unseen[0], group, key), lower))
    return out


# -- text output ---------------------------------------------------------------------------


def fmt_stat(s: dict, digits: int = 3) -> str:
    """``mean +- std`` (``mean`` alone for one run, ``-`` for none)."""
    if s["mean"] is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    return text if s["std"] is None else f"{text} ± {s['std']:.{digits}f}"


def _md_row(label: str, cells: dict, variants: list[str], digits: int) -> str:
    return f"| {label} | " + " | ".join(fmt_stat(cells[v], digits) for v in variants) + " |"


def summary_markdown(summary: dict, title: str) -> str:
    """The report's tables in Markdown."""
    vs = summary["variants"]
    head = "| metric | " + " | ".join(vs) + " |\n|---|" + "---:|" * len(vs)
    lines = [f"# {title}\n", f"Runs: {', '.join(r['name'] for r in summary['runs'])}\n"]
    labels = {key: label for _, key, label, _ in OPEN_LOOP}
    for sec in summary["open_loop"]:
        role = "training rig" if sec["training_rig"] else "unseen rig"
        lines.append(f"## Open loop: {sec['rig']} ({role})\n\n{head}")
        for key, cells in sec["metrics"].items():
            if any(c["n"] for c in cells.values()):
                lines.append(_md_row(labels[key], cells, vs, 3))
        if sec["kept"]:
            lines.append(f"\n### Performance kept on {sec['rig']} (% of the training rig's)\n")
            lines.append(head)
            for key, cells in sec["kept"].items():
                if any(c["n"] for c in cells.values()):
                    lines.append(_md_row(labels[key], cells, vs, 1))
        lines.append("")
    names = {k: label for k, label, _ in CLOSED_LOOP}
    for sec in summary["closed_loop"]:
        lines.append(f"## Closed loop (rig {sec['rig']})\n\n{head}")
        for key, cells in sec["overall"].items():
            lines.append(_md_row(names[key], cells, vs, 1))
        for skill, cells in sec["per_skill_success"].items():
            lines.append(_md_row(f"success: {skill}", cells, vs, 1))
        lines.append("")
    return "\n".join(lines) + "\n"


# -- the page ------------------------------------------------------------------------------


def write_report(runs: Sequence[Path], out_dir: Path, *, title: str = "rsd report") -> Path:
    """Write ``index.html``, ``summary.md`` and ``summary.json`` for ``runs`` into ``out_dir``
    and return the path of ``index.html``."""
    from rsd.evaluate import no_nan, write_json
    from rsd.report_html import render_page
    from rsd.report_plots import read_curves, risk_examples, training_curves

    if not runs:
        raise ConfigError("rsd report: give at least one run directory")
    loaded = [load_run(Path(r)) for r in runs]
    summary = no_nan(summarise_runs(loaded))
    summary["title"] = title
    summary["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(summary_markdown(summary, title))

    labelled = []
    for r in loaded:
        curves = read_curves(Path(r["path"]) / "metrics.jsonl")
        labelled.append((f"{r['variant']} s{r['seed']}", r["variant"], curves))
    curves_png = training_curves(labelled)
    risk_png, risk_note = None, "no rsd run with an eval*.json pointing at its dataset"
    for r in loaded:
        data = next((ev.get("data") for ev in r["evals"] if ev.get("data")), None)
        if r["variant"] == "rsd" and data and Path(data).exists():
            try:
                risk_png = risk_examples(Path(r["path"]), Path(data))
                risk_note = f"run {r['name']}, val frames of {data}"
            except Exception as e:  # a figure must not cost the whole report
                risk_note = f"risk maps of {r['name']} not drawn: {e}"
            if risk_png:
                break
    gifs = []
    for r in loaded:
        for d in r["drives"]:
            gifs += [
                (f"{r['variant']} s{r['seed']} · {d['dir']} · {Path(g).stem}", g) for g in d["gifs"]
            ]
    html = render_page(summary, curves_png, risk_png, risk_note, gifs)
    index = out_dir / "index.html"
    index.write_text(html)
    return index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--title", default="rsd report")


def run(args: argparse.Namespace) -> int:
    index = write_report(args.runs, args.out, title=args.title)
    print((index.parent / "summary.md").read_text())
    print(f"report: {index}")
    return 0
