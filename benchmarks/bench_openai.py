"""Client-side throughput of the OpenAI-compatible backend against a local server that answers
every request after a fixed delay (a stand-in for model latency).

    python benchmarks/bench_openai.py [--delay 0.2] [--concurrency 1 4 16] [--requests 32 64]

Requests carry a real rendered scene (PNG data URL), the real prompt and the answer schema.
With a server delay ``d`` and ``c`` requests in flight, the ideal is ``c / d`` requests/s;
the table prints the measured rate and its ratio to that ideal (client overhead: threads,
JSON, base64, HTTP). The server runs in its own process.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.teacher.chat_server

from rsd.data.synthetic import random_frame  # noqa: E402
from rsd.teacher.backends.openai_backend import OpenAIBackend, OpenAIConfig  # noqa: E402
from rsd.teacher.vlm import make_request  # noqa: E402
from tests.teacher.chat_server import ChatServer, Reply, answer_for  # noqa: E402


def _delayed(delay: float):
    def script(body: dict, n: int) -> Reply:
        return Reply(answer_for(body), delay_s=delay)

    return script


def _serve(delay: float, urls: mp.Queue, stop: mp.Event) -> None:
    """Server process: its own interpreter, so that it does not share the client's GIL."""
    with ChatServer(_delayed(delay)) as srv:
        urls.put(srv.url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.2, help="server answer delay (s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args()

    frames = [random_frame(seed) for seed in range(8)]
    reqs = [make_request(f)[0] for f in frames]
    png_kb = sum(len(r.image_png) for r in reqs) / len(reqs) / 1024

    print(f"server delay {args.delay * 1000:.0f} ms, mean PNG {png_kb:.1f} KiB")
    print(f"{'conc':>5} {'requests':>9} {'time s':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6}")
    urls, stop = mp.Queue(), mp.Event()
    server = mp.Process(target=_serve, args=(args.delay, urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=30)
    try:
        for c in args.concurrency:
            backend = OpenAIBackend(OpenAIConfig(base_url=url, model="bench", concurrency=c))
            backend.generate(reqs[:c])  # warm-up: connections, imports
            for n in args.requests:
                batch = [reqs[i % len(reqs)] for i in range(n)]
                t0 = time.perf_counter()
                out = backend.generate(batch)
                dt = time.perf_counter() - t0
                failed = sum(r.error is not None for r in out)
                rate, ideal = n / dt, c / args.delay
                note = f"  ({failed} failed)" if failed else ""
                ratio = rate / ideal
                print(f"{c:>5} {n:>9} {dt:>8.2f} {rate:>8.1f} {ideal:>8.1f} {ratio:>6.2f}{note}")
            backend.close()
    finally:
        stop.set()
        server.join(timeout=5)


if __name__ == "__main__":
    main()
