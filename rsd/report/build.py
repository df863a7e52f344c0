"""``rsd report``'s outputs for a list of run directories: ``index.html`` (one self-contained
page: inline CSS, images as base64 ``data:`` URIs, so the single file works when moved or
mailed), ``summary.md`` (tables for a README or a pull request) and ``summary.json`` (the same
numbers, machine-readable, ``null`` for missing).

Runs are grouped by variant; a metric is reported as mean +- std over the runs (seeds) of a
variant, std being the sample standard deviation (n - 1), shown only for two runs or more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rsd.config import ConfigError
from rsd.data.jsonio import clean, write_json
from rsd.report.page import render_page
from rsd.report.plots import read_curves, risk_examples, training_curves
from rsd.report.runs import load_run, summarise_runs
from rsd.report.tables import summary_markdown


def _curves_png(loaded: Sequence[dict]) -> bytes | None:
    """The training curves of every run, labelled ``variant sSEED``."""
    labelled = []
    for r in loaded:
        curves = read_curves(Path(r["path"]) / "metrics.jsonl")
        labelled.append((f"{r['variant']} s{r['seed']}", r["variant"], curves))
    return training_curves(labelled)


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
    """``(caption, path)`` of every GIF under the runs' drive directories."""
    gifs = []
    for r in loaded:
        for d in r["drives"]:
            gifs += [
                (f"{r['variant']} s{r['seed']} · {d['dir']} · {Path(g).stem}", g) for g in d["gifs"]
            ]
    return gifs


def write_report(runs: Sequence[Path], out_dir: Path, *, title: str = "rsd report") -> Path:
    """Write ``index.html``, ``summary.md`` and ``summary.json`` for ``runs`` into ``out_dir``
    and return the path of ``index.html``."""
    if not runs:
        raise ConfigError("rsd report: give at least one run directory")
    loaded = [load_run(Path(r)) for r in runs]
    summary = clean(summarise_runs(loaded))
    summary["title"] = title
    summary["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(summary_markdown(summary, title))
    risk_png, risk_note = _risk_png(loaded)
    html = render_page(summary, _curves_png(loaded), risk_png, risk_note, _gifs(loaded))
    index = out_dir / "index.html"
    index.write_text(html)
    return index
