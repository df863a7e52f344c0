"""``rsd report`` as a researcher reads it (issue 12, item 7): differences coloured only where
a paired interval excludes zero, a warning box for a collapsed student risk map, every loss
term and gradient norm plotted, the expert's reference column, one unit per metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rsd.cli import main
from rsd.report.build import write_report
from rsd.report.plots import curve_terms, read_curves
from tests.test_report import KNOWN, fake_run


def _paired(metric, group, diff, lo, hi, arm="rsd"):
    return {
        "group": group,
        "metric": metric,
        "arm": arm,
        "base": "baseline",
        "diff": diff,
        "ci95": [lo, hi],
        "base_mean": 20.0,
        "rel_pct": 5 * diff,
        "rel_ci95_pct": [5 * lo, 5 * hi],
        "d_z": 0.5,
        "seeds": 2,
        "units": 40,
    }


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [fake_run(tmp_path / "runs", v, s) for v, s in KNOWN]


def _row(html: str, label: str) -> str:
    """The first table row of ``html`` whose first cell is ``label``."""
    m = re.search(rf"<tr><td>{re.escape(label)}</td>.*?</tr>", html)
    assert m, label
    return m.group(0)


def test_only_a_difference_whose_interval_excludes_zero_is_coloured(runs, tmp_path, capsys):
    results = tmp_path / "results.json"
    rows = [
        _paired("success_rate", "closed_loop_overall", 6.0, 2.0, 10.0),  # excludes 0: better
        _paired("collision_rate", "closed_loop_overall", -1.0, -5.0, 3.0),  # contains 0
    ]
    results.write_text(json.dumps({"paired": rows}))
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out), "--paired", str(results)]) == 0
    html = (out / "index.html").read_text()
    closed = html[html.index('id="closed"') : html.index('id="paired"')]
    success = _row(closed, "Success rate (%)")
    collision = _row(closed, "Collision rate (%)")
    assert 'class="diff good"' in success and "Δ +6.0 [+2.0, +10.0] better" in success
    assert 'class="diff"' in collision and "Δ -1.0 [-5.0, +3.0] not resolved" in collision
    assert "good" not in collision and "bad" not in collision
    # exactly one coloured difference in the page's tables, one coloured verdict below them
    assert len(re.findall(r'class="diff (?:good|bad)"', html)) == 1
    paired = html[html.index('id="paired"') : html.index('id="curves"')]
    assert len(re.findall(r'class="(?:good|bad)"', paired)) == 1
    assert paired.count('<td class="good">better</td>') == 1
    assert paired.count('<td class="">not resolved</td>') == 1
    # a difference with no paired interval: the seed means' change, never coloured
    ade = _row(html, "ADE (m)")
    assert "no paired interval" in ade and "good" not in ade and "bad" not in ade
    summary = json.loads((out / "summary.json").read_text())
    assert [r["metric"] for r in summary["paired"]] == ["success_rate", "collision_rate"]
    assert "| Success rate (%) | success_rate" not in capsys.readouterr().out


def test_without_paired_intervals_nothing_is_coloured(runs, tmp_path):
    html = write_report(runs, tmp_path / "r").read_text()
    assert not re.search(r'class="[^"]*\b(?:good|bad)\b', html)
    assert "No paired intervals given" in html


def test_paired_rows_from_compare_json_and_bad_files(runs, tmp_path):
    f = tmp_path / "compare.json"
    f.write_text(json.dumps({"rows": [_paired("ade", "open_loop[dense360]", -0.2, -0.3, -0.1)]}))
    out = tmp_path / "r"
    assert main(["report", *map(str, runs), "--out", str(out), "--paired", str(f)]) == 0
    ade = _row((out / "index.html").read_text(), "ADE (m)")
    assert 'class="diff good"' in ade and "Δ -0.200 [-0.300, -0.100] better" in ade
    f.write_text("[1, 2]")
    assert main(["report", str(runs[0]), "--out", str(out), "--paired", str(f)]) == 2


def test_a_collapsed_run_gets_a_warning_box_with_its_figures(runs, tmp_path):
    ev_path = runs[2] / "eval.json"  # rsd seed 0
    ev = json.loads(ev_path.read_text())
    risk = {"risk_collapsed": 1.0, "student_risk_on_risky": 7e-8, "teacher_risk_on_risky": 0.52}
    ev["risk"] = risk
    ev_path.write_text(json.dumps(ev))
    ok = json.loads((runs[3] / "eval.json").read_text())  # rsd seed 1: not collapsed
    ok["risk"] = {"risk_collapsed": 0.0, "student_risk_on_risky": 0.3, "teacher_risk_on_risky": 0.5}
    (runs[3] / "eval.json").write_text(json.dumps(ok))
    html = write_report(runs, tmp_path / "r").read_text()
    boxes = re.findall(r'<div class="warn">.*?</div>', html)
    assert len(boxes) == 1
    assert "rsd-s0" in boxes[0] and "7e-08" in boxes[0] and "0.52" in boxes[0]
    assert html.index('class="warn"') < html.index('id="runs"')  # before any table
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert len(summary["warnings"]) == 1 and "7e-08" in summary["warnings"][0]
    assert "**WARNING**" in (tmp_path / "r" / "summary.md").read_text()


RSD_TERMS = ["distill_risk_map", "distill_risk_obj", "traj_nll", "traj_risk_mass"]


def test_every_loss_term_and_gradient_norm_is_plotted(runs, tmp_path):
    terms = [f"term_{i}" for i in range(12)] + RSD_TERMS  # more than any cap
    lines = []
    for s in range(1, 6):
        rec = {"step": s, "epoch": s / 5, "lr": 1e-3, "loss": 1.0 / s}
        rec |= {t: 0.1 * s for t in terms}
        rec |= {f"grad/{t}": 0.01 * s for t in RSD_TERMS}
        lines.append(json.dumps(rec))
    (runs[2] / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    curves = read_curves(runs[2] / "metrics.jsonl")
    losses, grads = curve_terms([("rsd s0", "rsd", curves)])
    assert losses == ["loss", *terms] and grads == [f"grad/{t}" for t in RSD_TERMS]
    html = write_report(runs, tmp_path / "r").read_text()
    curves_html = html[html.index('id="curves"') : html.index('id="risk"')]
    for t in [*terms, "plan_l1"]:  # plan_l1: the other runs' term
        assert re.search(rf"[ ,]{t}[,.]", curves_html), t
    assert 'alt="gradient norms"' in curves_html and "grad/traj_risk_mass" in curves_html


def test_expert_reference_column(runs, tmp_path):
    expert = tmp_path / "expert" / "drive"
    expert.mkdir(parents=True)
    overall = {"episodes": 4, "driving_score": 97.5, "success_rate": 100.0, "collision_rate": 0.0}
    settings = {"scenarios": ["cut_in"], "episodes": 4, "first_seed": 10000}
    data = {"overall": overall, "per_scenario": {"cut_in": overall}, "settings": settings}
    (expert / "metrics.json").write_text(json.dumps(data))
    out = tmp_path / "r"
    assert main(["report", *map(str, runs), "--out", str(out), "--expert", str(expert)]) == 0
    html = (out / "index.html").read_text()
    assert "<th>expert (reference)</th>" in html
    assert _row(html, "Driving Score").endswith("<td>97.5</td></tr>")
    # the runs' drives have no settings: not shown as the same episodes
    assert "NOT the same scenario episodes" in html
    md = (out / "summary.md").read_text()
    assert "| metric | baseline | rsd | expert |" in md and "| 97.5 |" in md
    assert main(["report", str(runs[0]), "--out", str(out), "--expert", str(tmp_path)]) == 2


def test_plan_collision_is_a_percentage_on_the_page(runs, tmp_path):
    for run in runs:
        ev = json.loads((run / "eval.json").read_text())
        ev["planning"]["collision_box_avg"] = 0.25  # a fraction in the eval JSON
        (run / "eval.json").write_text(json.dumps(ev))
    html = write_report(runs, tmp_path / "r").read_text()
    row = _row(html, "plan collision, exact boxes (VAD-avg mean, %)")
    assert "25.000" in row and "0.250" not in row


def test_experiment_runs_are_grouped_by_arm_and_gifs_captioned(tmp_path):
    exp = tmp_path / "exp" / "runs"
    runs = []
    arms = ["baseline", "baseline", "rsd", "rsd_noisy25"]
    for (variant, seed), arm in zip(KNOWN, arms, strict=True):
        run = fake_run(tmp_path / "tmp", variant, seed)
        dest = exp / arm / f"seed{seed}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        run.rename(dest)
        runs.append(dest)
    videos = runs[2] / "drive" / "videos"
    (videos / "cut_in-10000.gif").rename(videos / "failure-cut_in-10000.gif")
    chosen = [
        {
            "kind": "failure",
            "episode": "cut_in-10000",
            "outcome": "vehicle_collision",
            "gif": "failure-cut_in-10000.gif",
            "redriven_outcome": "vehicle_collision",
        },
    ]
    (videos / "selection.json").write_text(json.dumps({"chosen": chosen}))
    html = write_report(runs, tmp_path / "r").read_text()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["variants"] == ["baseline", "rsd", "rsd_noisy25"]
    assert [r["name"] for r in summary["runs"]][2:] == ["rsd/seed0", "rsd_noisy25/seed1"]
    assert [r["config_variant"] for r in summary["runs"]] == ["baseline", "baseline", "rsd", "rsd"]
    assert "rsd · failure: cut_in-10000 (vehicle_collision) · seed 0" in html


def test_every_rate_is_labelled_in_percent_everywhere():
    """Rates are % in results.md, rsd compare, the page and rsd eval's printout: every label of
    a rate key says so (a fraction shown under a % label, or the reverse, fails here)."""
    from rsd.report.labels import (
        CLOSED_LOOP,
        EVAL_TABLE,
        OPEN_LOOP,
        PCT_KEYS,
        experiment_label,
        plan_score_label,
    )

    rates = ["success_rate", "collision_rate", "offroad_rate", "route_completion"]
    rates += ["collision_box_avg_pct", "collision_vad_grid_avg_pct"]
    for key in rates:
        assert "%" in experiment_label(key) and "%" in plan_score_label(key), key
    assert all("%" in label for key, label, _ in CLOSED_LOOP if key in rates)
    assert all("%" in label for _, key, label, _ in OPEN_LOOP if key in PCT_KEYS)
    assert {key for _, key, _, unit in EVAL_TABLE if unit == "%"} == PCT_KEYS
