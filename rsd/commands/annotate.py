"""``rsd annotate``: run a risk teacher over a dataset into the annotation cache.

Frames are taken in the dataset's order; ``--shard i/n`` keeps frames ``j`` with
``j % n == i`` (several processes, or a Slurm array, may share one cache file). Frames already
in the cache for this teacher and prompt version are skipped, so the run is resumable: each
batch is committed in one transaction once the teacher has answered, and a run stopped at any
moment (even by ``kill -9``) loses at most the batch in flight and never duplicates a frame.
``--retry-failed`` asks again for frames whose answer failed.

``rsd annotate DATASET --show FRAME_ID --out PNG`` draws one frame instead (see
:mod:`rsd.pipeline.annotate_show`): the scene image a VLM teacher sees, the teacher's
per-object table and the BEV risk map, annotating the frame first if it is not cached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rsd.config import ConfigError
from rsd.datasets import open_source, parse_source
from rsd.pipeline.generate import parse_shard
from rsd.teacher.cache import CACHE_NAME, AnnotationCache
from rsd.teacher.factory import check_teacher_name, make_teacher
from rsd.teacher.schema import Teacher

# CLI flag -> (teacher kind, option name of its config)
BACKEND_FLAGS: dict[str, tuple[str, str]] = {
    "base_url": ("openai", "base_url"),
    "model": ("openai", "model"),
    "api_key_env": ("openai", "api_key_env"),
    "timeout": ("openai", "timeout_s"),
    "max_retries": ("openai", "max_retries"),
    "concurrency": ("openai", "concurrency"),
    "no_json_schema": ("openai", "json_schema"),
    "model_dir": ("transformers", "model_dir"),
    "device": ("transformers", "device"),
    "dtype": ("transformers", "dtype"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", type=Path, nargs="?", metavar="DATASET", help="dataset directory (= sim:DIR)"
    )
    parser.add_argument(
        "--source",
        metavar="KIND:DIR",
        help="instead of DATASET: sim:DIR, nuscenes:DIR or bench2drive:DIR",
    )
    parser.add_argument(
        "--teacher",
        default="privileged",
        metavar="KIND",
        help="privileged (default, offline physics), openai, transformers, or MODULE:ATTR (a "
        "custom teacher: imports MODULE and calls ATTR, i.e. runs that code, by design)",
    )
    parser.add_argument("--noise", type=float, default=0.0, metavar="RATE", help="noisy wrapper")
    parser.add_argument("--noise-seed", type=int, default=0, metavar="S")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="frames per call")
    parser.add_argument("--cache", type=Path, metavar="PATH", help=f"default DATASET/{CACHE_NAME}")
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="i/n",
        help="frames j with j %% n == i",
    )
    parser.add_argument("--retry-failed", action="store_true", help="ask again where it failed")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N frames (of shard)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--show", metavar="FRAME_ID", help="draw this frame's risk to --out")
    parser.add_argument("--out", type=Path, metavar="PNG", help="with --show: the PNG to write")
    oa = parser.add_argument_group("openai teacher (any OpenAI-compatible endpoint)")
    oa.add_argument("--base-url", metavar="URL", help="e.g. http://localhost:8000/v1")
    oa.add_argument("--model", metavar="NAME", help="model name served at the endpoint")
    oa.add_argument("--api-key-env", metavar="VAR", help="environment variable with the key")
    oa.add_argument("--timeout", type=float, metavar="S", help="per request (s)")
    oa.add_argument("--max-retries", type=int, metavar="N")
    oa.add_argument("--concurrency", type=int, metavar="N", help="requests in flight")
    oa.add_argument(
        "--no-json-schema", action="store_const", const=False, help="no structured output"
    )
    hf = parser.add_argument_group("transformers teacher (local model directory)")
    hf.add_argument("--model-dir", metavar="DIR")
    hf.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:1...")
    hf.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"))


def teacher_from_args(args: argparse.Namespace, camera: bool = False) -> Teacher:
    """The teacher the flags describe; a backend flag given for another teacher is an error.
    ``camera``: real data with camera images: a VLM teacher looks at the front camera view
    (numbered marks on the photo), as the paper's teacher does, instead of the top-down
    picture of simulator frames."""
    kind = check_teacher_name(args.teacher)
    options: dict[str, Any] = {}
    for flag, (owner, option) in BACKEND_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if owner != kind:
            name = "--" + flag.replace("_", "-")
            raise ConfigError(f"{name} applies to --teacher {owner}, not {kind}")
        options[option] = value
    if kind == "transformers" and "model_dir" not in options:
        raise ConfigError("--teacher transformers needs --model-dir")
    if camera and kind in ("openai", "transformers"):
        options["view"] = "camera"
    return make_teacher(kind, noise=args.noise, noise_seed=args.noise_seed, **options)


def run(args: argparse.Namespace) -> int:
    from rsd.pipeline.annotate import annotate
    from rsd.pipeline.annotate_show import show_frame  # matplotlib: not for --help

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be >= 1")
    if args.out is not None and args.show is None:
        raise ConfigError("--out goes with --show FRAME_ID")
    if (args.dataset is None) == (args.source is None):
        raise ConfigError("give either DATASET or --source KIND:DIR")
    source = args.source or f"sim:{args.dataset}"
    store = open_source(source)
    teacher = teacher_from_args(args, camera=parse_source(source)[0] != "sim")
    with AnnotationCache(args.cache or parse_source(source)[1] / CACHE_NAME) as cache:
        if args.show is not None:
            out = args.out or Path(f"{args.show}-risk.png")
            a = show_frame(store, teacher, cache, args.show, out)
            print(f"wrote {out} ({args.show}, teacher {a.teacher_id}, {a.status.value})")
            return 0
        summary = annotate(
            store,
            teacher,
            cache,
            shard=args.shard,
            batch_size=args.batch_size,
            retry_failed=args.retry_failed,
            limit=args.limit,
            progress=not args.no_progress,
        )
    print(summary.text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rsd.commands.annotate ...``: the same as ``rsd annotate ...``."""
    from rsd.cli import main as cli_main  # here: rsd.cli imports this module

    return cli_main(["annotate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
