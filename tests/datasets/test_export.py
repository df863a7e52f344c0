"""rsd annotate / show / export with --source on the nuScenes fixture; the exported labels
read back by a separate Python that imports numpy and json only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rsd.cli import main
from rsd.pipeline.export import FORMAT_VERSION, parse_grid
from tests.datasets.nuscenes_fixture import write_fixture

READER = r"""
import json, sys
import numpy as np
out = sys.argv[1]
meta = json.load(open(out + "/meta.json"))
rows = [json.loads(line) for line in open(out + "/labels.jsonl")]
with np.load(out + "/risk_maps.npz", allow_pickle=False) as z:
    maps, tokens = z["maps"], z["sample_tokens"]
assert meta["format_version"] == 1 and maps.shape == (meta["samples"], 40, 20), maps.shape
assert maps.shape[1:] == (meta["grid"]["rows"], meta["grid"]["cols"])
assert [r["sample_token"] for r in rows] == tokens.tolist()
assert [r["map_index"] for r in rows] == list(range(len(rows)))
assert 0.0 <= maps.min() and maps.max() <= 1.0
for r in rows:
    ranks = sorted(o["rank"] for o in r["objects"])
    assert ranks == list(range(1, len(ranks) + 1)), ranks
    assert all(o["class"] in meta["classes"] and o["source_id"] for o in r["objects"])
print(json.dumps({"n": len(rows), "tokens": tokens.tolist(), "rsd": "rsd" in sys.modules,
                  "max": float(maps.max()), "objects": sum(len(r["objects"]) for r in rows)}))
"""


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
    res = subprocess.run(
        [sys.executable, "-I", "-c", READER, str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["rsd"] is False and got["n"] == 13  # every sample annotated by the physics teacher
    assert got["tokens"][:2] == ["s0_00", "s0_01"] and got["objects"] > 20
    assert got["max"] > 0  # some object of the fixture is risky enough to paint
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["teacher_id"] == "privileged"


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
