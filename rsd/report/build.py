"""``rsd report``'s outputs for a list of run directories: ``index.html`` (one self-contained
page: inline CSS, images as base64 ``data:`` URIs, so the single file works when moved or
mailed), ``summary.md`` (tables for a README or a pull request) and ``summary.json`` (the same
numbers, machine-readable, ``null`` for missing).

Runs are grouped by variant; a metric is reported as mean +- std over the runs (seeds) of a
variant, std being the sample standard deviation (n - 1), shown only for two runs or more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.data.jsonio import clean, write_json
from rsd.report.effects import collapse_warnings, warning_text
from rsd.report.page import render_page
from rsd.report.plots import (
    curve_terms,
    gradient_curves,
    read_curves,
    risk_examples,
    training_curves,
)
from rsd.report.runs import load_drive, load_run, summarise_runs
from rsd.report.tables import summary_markdown


def _curve_figures(loaded: Sequence[dict]) -> dict[str, Any]:
    """The training curves of every run (labelled ``variant sSEED``): every loss term, the
    gradient norm of every term, and the lists of both."""
    labelled = []
    for r in loaded:
        curves = read_curves(Path(r["path"]) / "metrics.jsonl")
        labelled.append((f"{r['variant']} s{r['seed']}", r["variant"], curves))
    terms, grads = curve_terms(labelled)
    return {
        "curves": training_curves(labelled),
        "grads": gradient_curves(labelled),
        "terms": terms,
        "grad_terms": grads,
    }


def _risk_png(loaded: Sequence[dict]) -> tuple[bytes | None, str]:
    """Teacher vs student risk maps of the first ``rsd`` run whose eval names a dataset that
    exists, and a note saying which (or why there is none)."""
    png, note = None, "no rsd run with an eval*.json pointing at its dataset"
    for r in loaded:
        data = next((ev.get("data") for ev in r["evals"] if ev.get("data")), None)
        if r["variant"] == "rsd" and data and Path(data).exists():
            try:
                png = risk_examples(Path(r["path"]), Path(data))
                note = f"run {r['name']}, val frames of {data}"
            except Exception as e:  # a figure must not cost the whole report
                note = f"risk maps of {r['name']} not drawn: {e}"
            if png:
                break
    return png, note


def _gifs(loaded: Sequence[dict]) -> list[tuple[str, str]]:
    """``(caption, path)`` of every GIF under the runs' drive directories (captions from
    :func:`rsd.report.runs.load_run`, with the seed)."""
    gifs = []
    for r in loaded:
        for d in r["drives"]:
            gifs += [(f"{caption} · seed {r['seed']}", g) for caption, g in d["gifs"]]
    return gifs


def write_report(
    runs: Sequence[Path],
    out_dir: Path,
    *,
    title: str = "rsd report",
    paired: Sequence[Mapping[str, Any]] = (),
    expert: Path | None = None,
) -> Path:
    """Write ``index.html``, ``summary.md`` and ``summary.json`` for ``runs`` into ``out_dir``
    and return the path of ``index.html``. ``paired``: paired rows (``rsd compare``'s, the
    experiment's ``results.json`` ``paired``) that give every difference its interval and
    decide which are coloured; ``expert``: a directory with the expert's ``rsd drive``
    ``metrics.json``, shown as the reference column of the closed-loop tables."""
    if not runs:
        raise ConfigError("rsd report: give at least one run directory")
    expert_metrics = None
    if expert is not None:
        expert_metrics = load_drive(Path(expert))
        if expert_metrics is None:
            raise ConfigError(f"--expert {expert}: no closed-loop metrics.json there")
    loaded = [load_run(Path(r)) for r in runs]
    summary = clean(summarise_runs(loaded, expert_metrics))
    summary["title"] = title
    summary["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    summary["warnings"] = [warning_text(w) for w in collapse_warnings(summary)]
    summary["paired"] = clean(list(paired))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(summary_markdown(summary, title))
    figures = _curve_figures(loaded)
    figures["risk"], figures["risk_note"] = _risk_png(loaded)
    html = render_page(summary, figures, _gifs(loaded), paired)
    index = out_dir / "index.html"
    index.write_text(html)
    return index
