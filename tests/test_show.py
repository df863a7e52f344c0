"""rsd show: a PNG of one frame, from a synthetic frame and through the CLI with a fake store."""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from rsd.commands import show as show_command
from rsd.data.rigs import load_rig
from rsd.data.synthetic import random_frame
from rsd.report import frame as show


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    show_command.add_arguments(parser)
    return parser.parse_args(argv)


class _FakeStore:
    def __init__(self, frames):
        self.frames = frames

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i]

    def index_of(self, frame_id):
        for i, f in enumerate(self.frames):
            if f.frame_id == frame_id:
                return i
        raise KeyError(f"frame {frame_id!r} is not in the store")


def test_render_frame_size_and_content():
    img = show.render_frame(random_frame(1, 12), load_rig("dense360"), dpi=50)
    assert img.size == (round(show.FIGSIZE[0] * 50), round(show.FIGSIZE[1] * 50))
    pixels = np.asarray(img).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # a picture, not a blank canvas


def test_cli_writes_png_of_the_requested_frame(tmp_path, monkeypatch, capsys):
    frames = [random_frame(s, 8) for s in range(3)]
    monkeypatch.setattr(show_command, "_open_store", lambda path: _FakeStore(frames))
    out = tmp_path / "sub" / "frame.png"
    args = _parse(
        [str(tmp_path), "--frame", frames[2].frame_id, "--rig", "front_short"]
        + ["--out", str(out), "--dpi", "40"]
    )
    assert show_command.run(args) == 0
    assert out.stat().st_size > 1000
    with Image.open(out) as png:
        assert png.format == "PNG"
        assert png.size == (round(show.FIGSIZE[0] * 40), round(show.FIGSIZE[1] * 40))
    assert frames[2].frame_id in capsys.readouterr().out


def test_cli_reports_unknown_frame(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(show_command, "_open_store", lambda path: _FakeStore([random_frame(0, 2)]))
    args = _parse([str(tmp_path), "--index", "5"])
    assert show_command.run(args) == 2
    assert "out of range" in capsys.readouterr().err
