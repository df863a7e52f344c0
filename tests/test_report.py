"""``rsd report`` on fabricated run directories with known numbers: both variants' figures,
mean +- std over two seeds worked out by hand, summary.json round trip, images embedded."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from rsd.cli import main
from rsd.report.build import write_report
from rsd.report.page import markdown_page
from rsd.report.runs import load_run, stat_cell, summarise_runs

# (variant, seed) -> (ADE on the training rig, ADE on the unseen rig, closed-loop DS, SR)
KNOWN = {
    ("baseline", 0): (1.0, 2.0, 40.0, 10.0),
    ("baseline", 1): (3.0, 5.0, 50.0, 30.0),
    ("rsd", 0): (0.5, 0.6, 60.0, 50.0),
    ("rsd", 1): (0.7, 1.0, 70.0, 60.0),
}


def _gif(path: Path) -> None:
    frames = [Image.new("RGB", (24, 16), (40 * i, 90, 160)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def fake_run(root: Path, variant: str, seed: int) -> Path:
    ade, ade_unseen, ds, sr = KNOWN[(variant, seed)]
    run = root / f"{variant}-s{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"variant: {variant}\nseed: {seed}\nrig: dense360\nmodel:\n  kind: vad\n"
    )
    lines = [
        {"step": s, "epoch": s / 10, "lr": 1e-3, "loss": 10.0 / s, "plan_l1": 5.0 / s}
        for s in range(1, 11)
    ]
    lines.append({"step": 10, "epoch": 1, "loss": 1.0, "seconds": 3.0})  # an epoch line
    (run / "metrics.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    for name, rig, unseen, value in (
        ("eval.json", "dense360", False, ade),
        ("eval_front_short.json", "front_short", True, ade_unseen),
    ):
        ev = {
            "run": str(run),
            "rig": rig,
            "train_rig": "dense360",
            "unseen_rig": unseen,
            "n_samples": 40,
            "samples_per_s": 100.0 + seed,
            "planning": {"ade": value, "fde": 2 * value, "l2_vad_avg": value / 2},
            "detection": {"mAP": 0.5 if variant == "rsd" else 0.4, "NDS": None},
        }
        (run / name).write_text(json.dumps(ev))
    drive = run / "drive"
    (drive / "videos").mkdir(parents=True)
    overall = {"episodes": 4, "driving_score": ds, "success_rate": sr, "collision_rate": 25.0}
    metrics = {
        "overall": overall,
        "per_scenario": {"cut_in": overall},
        "per_skill": {"merging": overall},
        "multi_ability": {"merging": sr},
        "settings": {"rig": None},
    }
    (drive / "metrics.json").write_text(json.dumps(metrics))
    _gif(drive / "videos" / f"cut_in-1000{seed}.gif")
    return run


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [fake_run(tmp_path / "runs", v, s) for v, s in KNOWN]


def test_mean_std_is_the_sample_std():
    s = stat_cell([1.0, 3.0, None])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(math.sqrt(2.0)) and s["n"] == 2
    assert stat_cell([4.0])["std"] is None and stat_cell([])["mean"] is None


def test_report_tables_numbers_and_embedded_images(runs, tmp_path):
    index = write_report(runs, tmp_path / "report", title="known numbers")
    assert index == tmp_path / "report" / "index.html"
    html = index.read_text()
    # ADE, training rig: baseline (1, 3) -> 2.000 +- sqrt(2) = 1.414; rsd (0.5, 0.7) -> 0.6 +- 0.141
    assert "2.000 ± 1.414" in html and "0.600 ± 0.141" in html
    # closed loop DS: baseline (40, 50) -> 45.0 +- 7.1; rsd (60, 70) -> 65.0 +- 7.1
    assert "45.0 ± 7.1" in html and "65.0 ± 7.1" in html
    # retention on the unseen rig (ADE, lower is better: train / unseen), a ratio: baseline
    # 0.5, 0.6 -> 0.550 +- 0.071; rsd 0.833, 0.7 -> 0.767 +- 0.094
    assert "0.550 ± 0.071" in html and "0.767 ± 0.094" in html
    assert "front_short" in html and "Metric definitions" in html
    # self-contained: every src / href is a data: URI or an in-page anchor
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    gifs = re.findall(r'src="data:image/gif;base64,([^"]+)"', html)
    assert len(pngs) >= 1 and len(gifs) == 4  # training curves; one GIF per run
    assert Image.open(io.BytesIO(base64.b64decode(pngs[0]))).size[0] > 300

    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["variants"] == ["baseline", "rsd"]
    ade = summary["open_loop"][0]["metrics"]["ade"]
    assert summary["open_loop"][0]["rig"] == "dense360" and summary["open_loop"][0]["training_rig"]
    assert ade["baseline"]["mean"] == 2.0 and ade["baseline"]["std"] == pytest.approx(2**0.5)
    assert ade["rsd"]["values"] == [0.5, 0.7]
    # round trip: the file holds exactly what summarise_runs computes (NaN as null)
    fresh = json.loads(json.dumps(summarise_runs([load_run(r) for r in runs])))
    assert {k: summary[k] for k in fresh} == fresh
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "| ADE (m) | 2.000 ± 1.414 | 0.600 ± 0.141 |" in md


def test_report_cli_and_a_single_run(runs, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["report", str(runs[0]), "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "1.000" in html and not re.search(r"± \d", html)  # one run: no std
    assert "report:" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2


SCRIPT = "<script>alert(1)</script>"


def test_names_and_titles_are_escaped(tmp_path):
    """A run name, variant, seed or title holding HTML comes out as text, never as markup."""
    run = tmp_path / f"run{SCRIPT.replace('/', '_')}"
    run.mkdir()
    (run / "config.yaml").write_text(f"variant: '{SCRIPT}'\nseed: '{SCRIPT}'\nrig: '{SCRIPT}'\n")
    ev = {"rig": SCRIPT, "unseen_rig": False, "n_samples": 1, "planning": {"ade": 1.0}}
    (run / "eval.json").write_text(json.dumps(ev))
    drive = run / "drive"
    drive.mkdir()
    overall = {"episodes": 1, "driving_score": 50.0}
    metrics = {
        "overall": overall,
        "per_scenario": {SCRIPT: overall},
        "multi_ability": {SCRIPT: 0.0},
        "settings": {"rig": SCRIPT},
    }
    (drive / "metrics.json").write_text(json.dumps(metrics))
    html = write_report([run], tmp_path / "report", title=SCRIPT).read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = markdown_page(f"# {SCRIPT}\n\n| run | x |\n|---|---|\n| {SCRIPT} | 1 |\n", SCRIPT)
    assert "<script>" not in page and page.count("&lt;script&gt;") == 3
    assert "<table>" in page and "<h1>" in page


def _hostile(obj, tag, keys=False):
    """``obj`` with every string value (and with ``keys``, every dict key) replaced by markup
    that would run if interpolated unescaped; numbers and structure kept."""
    if isinstance(obj, dict):
        return {(_hostile(k, tag) if keys else k): _hostile(v, tag, keys) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hostile(v, tag, keys) for v in obj]
    if isinstance(obj, str):
        return f'{obj}"><script>alert("{tag}")</script><img src=x onerror=alert(1)>'
    return obj


def test_every_field_of_config_eval_and_drive_files_is_escaped(tmp_path):
    """Hostile strings in every string field of a run's ``config.yaml`` and eval JSON, and in
    the names (scenarios, skills) and fields of its drive ``metrics.json``, come out as text,
    never as markup."""
    import yaml

    runs = [fake_run(tmp_path / "runs", v, s) for v, s in KNOWN]
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["seed"] = str(cfg["seed"])
        (run / "config.yaml").write_text(yaml.safe_dump(_hostile(cfg, "config")))
        for name in ("eval.json", "eval_front_short.json"):
            data = json.loads((run / name).read_text())
            (run / name).write_text(json.dumps(_hostile(data, name)))
        data = json.loads((run / "drive/metrics.json").read_text())
        data["settings"]["rig"] = "dense360"
        data = {k: _hostile(v, "drive", keys=k != "overall") for k, v in data.items()}
        (run / "drive/metrics.json").write_text(json.dumps(data))
    html = write_report(runs, tmp_path / "report", title=_hostile("t", "title")).read_text()
    assert "<script" not in html and "<img src=x" not in html
    for tag in ("config", "eval.json", "eval_front_short.json", "drive", "title"):
        assert f"&lt;script&gt;alert(&quot;{tag}&quot;)" in html, tag  # it reached the page
    md = (tmp_path / "report" / "summary.md").read_text()
    page = markdown_page(md, "summary")
    assert "<script" not in page
