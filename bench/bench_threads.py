"""What a thread pool of the engine's size costs to start (a script, not a test).

    python bench/bench_threads.py                          # 32..512 threads, 5 runs
    python bench/bench_threads.py --sizes 64,256 --work-ms 0.5 --runs 9

The engine runs provider calls on a new ``ThreadPoolExecutor(concurrency)`` per run, which
starts a thread per call submitted until it has ``concurrency`` of them. ``Thread.start()``
waits until the new thread runs; when the threads already started are busy with Python code
(a call's CPU: building the request, parsing the answer), the new one waits for the GIL,
up to the switch interval (5 ms) per start. This measures, for each pool size, submitting
that many calls at once, each ``--work-ms`` of CPU then ``--latency-ms`` of waiting (an API
call), on a fresh pool: how long until the last call *started*, the wall time of the batch,
and the CPU; with ``--work-ms 0`` as the unloaded reference. Medians of ``--runs``,
interleaved.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def batch(size: int, work_s: float, latency_s: float) -> tuple[float, float, float]:
    """(last start, wall, CPU) seconds of ``size`` calls on a fresh pool of ``size``."""
    starts: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        with lock:
            starts.append(time.perf_counter())
        _spin(work_s / 2)  # the request
        time.sleep(latency_s)
        _spin(work_s / 2)  # the answer

    cpu, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(size) as pool:
        for _ in range(size):
            pool.submit(call)
    wall = time.perf_counter() - t0
    return max(starts) - t0, wall, time.process_time() - cpu


def main() -> int:
    def extra(parser: Any) -> None:
        parser.add_argument("--sizes", default="32,64,128,256,512", help="pool sizes")
        parser.add_argument("--work-ms", type=float, default=0.5, help="CPU per call")
        parser.add_argument("--latency-ms", type=float, default=100.0, help="wait per call")

    args = parse_args(__doc__.splitlines()[0], name="bench_threads", extra=extra)
    env = environment()
    print_header("thread pool start-up under load", env)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    cases = [(size, work) for size in sizes for work in (0.0, args.work_ms / 1000)]
    samples: dict[tuple[int, float], list[tuple[float, float, float]]] = {c: [] for c in cases}
    for _ in range(args.runs):
        for size, work in cases:
            samples[(size, work)].append(batch(size, work, args.latency_ms / 1000))
    rows: list[list[object]] = []
    metrics: list[Metric] = []
    for (size, work), got in samples.items():
        last, wall, cpu = (statistics.median(x[i] for x in got) for i in range(3))
        work_ms = f"{work * 1000:g}"
        rows.append([size, work_ms, round(last * 1000, 1), round(wall, 3), round(cpu, 3)])
        if work:
            metrics.append(Metric(f"threads.{size}.last_start_ms", last * 1000, "ms", False))
    print(f"{args.latency_ms:g} ms per call, median of {args.runs} runs")
    print_table(["threads = calls", "CPU ms/call", "last call started ms", "wall s", "CPU s"], rows)
    return finish(args, env, metrics, {"threads": (["size", "work", "last", "wall", "cpu"], rows)})


if __name__ == "__main__":
    raise SystemExit(main())
