"""``rsd export``: a teacher's cached risk labels over a frame source, as ``labels.jsonl`` +
``risk_maps.npz`` + ``meta.json`` (see :mod:`rsd.pipeline.export` and the README's "Exported
risk labels")."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsd.teacher.cache import CACHE_NAME

DEFAULT_GRID = "-24,56,-16,16,0.5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        required=True,
        metavar="KIND:DIR",
        help="sim:DIR (rsd generate), nuscenes:DIR or bench2drive:DIR",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--cache", type=Path, metavar="PATH", help=f"default DIR/{CACHE_NAME}")
    parser.add_argument(
        "--grid",
        default=DEFAULT_GRID,
        metavar="X0,X1,Y0,Y1,RES",
        help=f"BEV grid of the risk maps (m, ego frame); write --grid=X0,... when X0 < 0 "
        f"(default {DEFAULT_GRID})",
    )
    parser.add_argument("--teacher-id", metavar="ID", help="whose answers (when several)")
    parser.add_argument("--prompt-version", metavar="V", help="which prompt version")


def run(args: argparse.Namespace) -> int:
    from rsd.config import ConfigError
    from rsd.datasets import open_source, parse_source
    from rsd.pipeline.export import export_labels, parse_grid
    from rsd.teacher.cache import AnnotationCache

    grid = parse_grid(args.grid)
    frames = open_source(args.source)
    cache_path = args.cache or parse_source(args.source)[1] / CACHE_NAME
    if not cache_path.is_file():
        raise ConfigError(f"annotation cache {cache_path}: missing; run 'rsd annotate' first")
    with AnnotationCache(cache_path) as cache:
        summary = export_labels(
            frames, cache, args.out, grid, args.teacher_id, args.prompt_version, args.source
        )
    print(summary.text())
    return 0
