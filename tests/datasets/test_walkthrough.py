"""The README's real-data walk-through, step by step, on the nuScenes fixture (with its map
expansion): ``rsd annotate --source nuscenes:FIXTURE --teacher openai`` against a local
OpenAI-compatible server -> ``rsd export`` -> the labels read by the README's numpy+json
snippet (run as written, once in a ``python -I`` that imports no rsd) -> the RiskHead hooked
onto a third-party-style BEV model and trained a few steps on them, keyed by sample token,
its inputs the samples' own front-camera images."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rsd.cli import main
from rsd.datasets import open_source
from rsd.losses.risk import distill_map_loss
from rsd.models import hook_risk_head
from rsd.scene import FRONT_CAMERA
from tests.datasets.nuscenes_fixture import ARC_RADIUS, EGO_CIRCLE, write_expansion, write_fixture
from tests.models.test_hook import BEV_H, BEV_W, DIM, TinyBEVFormer
from tests.teacher.chat_server import ChatServer, Reply, answer_for

README = Path(__file__).resolve().parents[2] / "README.md"
GRID = "-8,24,-12,12,4"
"""The export grid: 8 x 6 cells of 4 m, the BEV grid of :class:`TinyBEVFormer`."""


def readme_reader() -> str:
    """The README's numpy+json reader snippet (the python block that opens ``OUT/meta.json``)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if 'open("OUT/meta.json")' in b]
    assert len(found) == 1, "the README has no single numpy+json reader snippet"
    return found[0]


def grey_png(path: str) -> np.ndarray:
    """(H, W) uint8 pixels of an 8-bit greyscale PNG with filter 0 on every row (as the
    fixture writes them; no imaging library in the environment)."""
    data, pos, idat = Path(path).read_bytes(), 8, b""
    width = height = 0
    while pos < len(data):
        (length,), tag = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert (rows[:, 0] == 0).all()  # filter type 0: the bytes are the pixels
    return rows[:, 1:]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, int]:
    """Steps 1-4 (show, annotate, export): (dataroot, labels folder, requests answered)."""
    pytest.importorskip("openai")
    tmp = tmp_path_factory.mktemp("walkthrough")
    root = tmp / "nuscenes"
    write_fixture(root)
    write_expansion(root)
    src = f"nuscenes:{root}"
    png = tmp / "frame.png"
    assert main(["show", "--source", src, "--index", "5", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    mp = pytest.MonkeyPatch()
    mp.setenv("VLM_KEY", "sk-test")
    try:
        with ChatServer(lambda body, n: Reply(answer_for(body))) as srv:
            argv = ["annotate", "--source", src, "--teacher", "openai", "--base-url", srv.url]
            argv += ["--model", "test-vlm", "--api-key-env", "VLM_KEY", "--no-progress"]
            assert main(argv) == 0
            assert main(argv) == 0  # resumable: the second run asks nothing
            requests = srv.count
    finally:
        mp.undo()
    out = tmp / "labels"
    assert main(["export", "--source", src, "--out", str(out), f"--grid={GRID}"]) == 0
    return root, out, requests


def test_steps_1_to_5_annotate_export_read_without_rsd(exported, tmp_path) -> None:
    root, out, requests = exported
    frames = open_source(f"nuscenes:{root}")
    assert requests == len(frames) == 13
    script = readme_reader().replace("OUT/", f"{out}/")
    script += (
        "\nimport sys\nprint(json.dumps({'rsd': 'rsd' in sys.modules, 'tokens': list(labels),"
        " 'sums': [float(risk_target(t).sum()) for t in labels],"
        " 'offsets': [labels[t]['lane_offset'] for t in labels],"
        " 'objects': [len(labels[t]['objects']) for t in labels]}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["rsd"] is False and got["tokens"] == [f.frame_id for f in frames]
    # the VLM's answers reached the labels: objects listed, risk painted on the grid
    assert sum(got["objects"]) > 20 and sum(s > 0 for s in got["sums"]) >= 10
    # the map expansion gave the lane offset the prompt carried: the ego 0.5 m left of its lane
    radius = EGO_CIRCLE[2]
    assert got["offsets"] == pytest.approx([ARC_RADIUS - radius] * 13, abs=3e-3)


def test_step_6_riskhead_on_a_third_party_model_learns_the_exported_labels(exported) -> None:
    root, out, _ = exported
    namespace: dict = {}
    exec(readme_reader().replace("OUT/", f"{out}/"), namespace)  # the README's reader, as is
    risk_target = namespace["risk_target"]
    frames = open_source(f"nuscenes:{root}")
    # the user's pipeline: its own inputs (the front camera image), labels by sample token,
    # as the README's hook snippet builds them
    images = []
    for frame in frames:
        pixels = grey_png(frame.cameras[FRONT_CAMERA].image_path).astype(np.float32) / 255.0
        img = torch.from_numpy(pixels)[None, None].expand(1, 3, -1, -1)
        images.append(torch.nn.functional.interpolate(img, size=(32, 32), mode="bilinear"))
    x = torch.cat(images)  # (N, 3, 32, 32)
    found = [risk_target(frame.frame_id) for frame in frames]
    valid = torch.tensor([m is not None for m in found])
    meta = namespace["meta"]
    empty = np.zeros((meta["grid"]["rows"], meta["grid"]["cols"]), np.float32)
    y = torch.from_numpy(np.stack([empty if m is None else m for m in found]))[:, None]
    assert bool(valid.all()) and y.shape == (len(frames), 1, BEV_H, BEV_W)

    torch.manual_seed(0)
    model = TinyBEVFormer()
    rsd = hook_risk_head(model, "encoder", DIM, layout="tokens", grid=(BEV_H, BEV_W))
    opt = torch.optim.Adam(rsd.parameters(), lr=3e-3)
    rsd.train()
    losses = []
    for _ in range(40):
        out_model = rsd(x)
        distill = distill_map_loss(rsd.risk_map(size=y.shape[-2:]), y, valid, 0.05)
        loss = distill + out_model["plan"].pow(2).mean()  # the model's own term rides along
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(distill.detach()))
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.6 * first, (first, last)
    assert model.bev_queries.weight.grad is not None  # the model trained through the hook
    assert rsd.detach() is model and not any("risk" in k for k in model.state_dict())
