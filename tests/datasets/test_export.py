"""rsd annotate / show / export with --source on the nuScenes fixture; the exported labels
read back by a separate Python that imports numpy and json only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rsd.cli import main
from rsd.datasets import open_source
from rsd.pipeline.export import FORMAT_VERSION, LABELS_NAME, META_NAME, parse_grid
from tests.datasets.nuscenes_fixture import write_fixture

READER = r"""
import json, sys
import numpy as np
out = sys.argv[1]
meta = json.load(open(out + "/meta.json"))
rows = [json.loads(line) for line in open(out + "/labels.jsonl")]
with np.load(out + "/risk_maps.npz", allow_pickle=False) as z:
    maps, tokens = z["maps"], z["sample_tokens"]
version = meta["format_version"]
assert version in (1, 2) and maps.shape == (meta["samples"], 40, 20), maps.shape
assert maps.shape[1:] == (meta["grid"]["rows"], meta["grid"]["cols"])
assert [r["sample_token"] for r in rows] == tokens.tolist()
assert [r["map_index"] for r in rows] == list(range(len(rows)))
assert 0.0 <= maps.min() and maps.max() <= 1.0
unknown = []
for r in rows:
    ranks = sorted(o["rank"] for o in r["objects"])
    assert ranks == list(range(1, len(ranks) + 1)), ranks
    assert all(o["class"] in meta["classes"] and o["source_id"] for o in r["objects"])
    for o in r["objects"]:
        # version 1 did not record it (None); version 2: null velocity <=> velocity_valid false
        valid = o.get("velocity_valid")
        if version >= 2:
            assert (o["vx"] is None) == (o["vy"] is None) == (not valid), o
        if valid is False:
            unknown.append((r["sample_token"], o["source_id"]))
print(json.dumps({"n": len(rows), "tokens": tokens.tolist(), "rsd": "rsd" in sys.modules,
                  "max": float(maps.max()), "objects": sum(len(r["objects"]) for r in rows),
                  "unknown": unknown, "lane_offsets": [r.get("lane_offset") for r in rows]}))
"""


def read_without_rsd(out: Path, cwd: Path) -> dict:
    """Run :data:`READER` on an export in ``python -I`` (numpy and json only); its summary."""
    res = subprocess.run(
        [sys.executable, "-I", "-c", READER, str(out)], capture_output=True, text=True, cwd=cwd
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nuscenes")
    write_fixture(root)
    assert main(["annotate", "--source", f"nuscenes:{root}", "--no-progress"]) == 0
    return root


def test_export_reads_back_without_rsd(annotated, tmp_path) -> None:
    out = tmp_path / "labels"
    src = f"nuscenes:{annotated}"
    assert main(["export", "--source", src, "--out", str(out), "--grid=-10,30,-10,10,1"]) == 0
    got = read_without_rsd(out, tmp_path)
    assert got["rsd"] is False and got["n"] == 13  # every sample annotated by the physics teacher
    assert got["tokens"][:2] == ["s0_00", "s0_01"] and got["objects"] > 20
    assert got["max"] > 0  # some object of the fixture is risky enough to paint
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2 and meta["teacher_id"] == "privileged"
    # no map expansion here: the lane offset is unknown in every sample
    assert got["lane_offsets"] == [None] * 13
    # velocity validity: exactly the objects the reader could not difference (a lone
    # annotation: the car seen once, the barrier in scene 2's last sample) are marked unknown
    frames = open_source(src)
    lone = {(f.frame_id, ag.source_id) for f in frames for ag in f.agents if not ag.velocity_valid}
    assert ("s0_05", "inst_car_once_0") in lone
    assert {tuple(u) for u in got["unknown"]} <= lone and got["unknown"]
    rows = [json.loads(line) for line in (out / LABELS_NAME).read_text().splitlines()]
    by_key = {(f.frame_id, ag.source_id): ag for f in frames for ag in f.agents}
    for row in rows:
        for o in row["objects"]:
            ag = by_key[(row["sample_token"], o["source_id"])]
            assert o["velocity_valid"] == ag.velocity_valid
            if ag.velocity_valid:  # the reader's velocity, rounded to mm/s
                assert (o["vx"], o["vy"]) == (round(ag.vx, 3), round(ag.vy, 3))


def test_a_version_1_file_reads_with_the_same_reader(annotated, tmp_path) -> None:
    """Version 2 only adds fields: the same file less them, marked version 1, is read by the
    same numpy+json reader, its objects' velocity validity 'not recorded'."""
    out = tmp_path / "v1"
    src = f"nuscenes:{annotated}"
    assert main(["export", "--source", src, "--out", str(out), "--grid=-10,30,-10,10,1"]) == 0
    rows = [json.loads(line) for line in (out / LABELS_NAME).read_text().splitlines()]
    for row in rows:
        row["format_version"] = 1
        del row["lane_offset"]
        for o in row["objects"]:
            for key in ("vx", "vy", "velocity_valid"):
                del o[key]
    (out / LABELS_NAME).write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = json.loads((out / META_NAME).read_text())
    (out / META_NAME).write_text(json.dumps({**meta, "format_version": 1}))
    got = read_without_rsd(out, tmp_path)
    assert got["n"] == 13 and got["unknown"] == [] and got["lane_offsets"] == [None] * 13


def test_show_and_errors(annotated, tmp_path, capsys) -> None:
    png = tmp_path / "f.png"
    src = f"nuscenes:{annotated}"
    assert main(["show", "--source", src, "--index", "5", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["export", "--source", f"nuscenes:{tmp_path}", "--out", str(tmp_path)]) == 2
    assert "v1.0-*" in capsys.readouterr().err
    bad = ["export", "--source", f"nuscenes:{annotated}", "--out", str(tmp_path), "--grid", "1,2"]
    assert main(bad) == 2
    assert "--grid" in capsys.readouterr().err
    assert main(["annotate", "--source", "nuscenes:/nonexistent/x", "--no-progress"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_parse_grid() -> None:
    g = parse_grid("-10,30,-10,10,1")
    assert g.shape == (40, 20)
