"""``rsd show``: one keyframe as a PNG a person can read at a glance (the picture:
:func:`rsd.report.frame.render_frame`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.data.rigs import load_rig
from rsd.data.store import FrameStore
from rsd.datasets import open_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset_dir", type=Path, nargs="?", help="dataset directory made by 'rsd generate'"
    )
    parser.add_argument(
        "--source",
        metavar="KIND:DIR",
        help="instead of DATASET_DIR: sim:DIR, nuscenes:DIR or bench2drive:DIR",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--frame", help="frame id, e.g. highway-00012-0040")
    which.add_argument("--index", type=int, help="position of the frame in the dataset")
    rig = parser.add_mutually_exclusive_group()
    rig.add_argument("--rig", default="dense360", help="built-in rig name (see 'rsd rigs')")
    rig.add_argument("--rig-file", type=Path, help="rig YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override of the rig, e.g. sensors.0.beams=90 (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="PNG to write (default: FRAME_ID.png)")
    parser.add_argument("--dpi", type=int, default=100)


def _open_store(args: argparse.Namespace) -> Any:
    """The frames of DATASET_DIR or --source (exactly one)."""
    if (args.dataset_dir is None) == (args.source is None):
        raise ConfigError("give either DATASET_DIR or --source KIND:DIR")
    if args.source is None:
        return FrameStore(args.dataset_dir)
    return open_source(args.source)


def run(args: argparse.Namespace) -> int:
    from rsd.report.frame import render_frame  # matplotlib: not for 'rsd show --help'

    rig = load_rig(args.rig_file or args.rig, args.overrides)
    store = _open_store(args)
    try:
        index = store.index_of(args.frame) if args.frame is not None else args.index
        if not -len(store) <= index < len(store):
            raise IndexError(f"index {index} out of range: the dataset has {len(store)} frames")
    except (KeyError, IndexError) as e:
        print(f"rsd show: error: {e.args[0]}", file=sys.stderr)
        return 2
    frame = store[index]
    out = args.out or Path(f"{frame.frame_id}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    render_frame(frame, rig, dpi=args.dpi).save(out)
    print(f"wrote {out} ({frame.frame_id}, rig {rig.name})")
    return 0
