"""The CLI's progress reporter alone: what N resources cost it (a script, not a test).

    python bench/bench_progress.py                     # N = 1000, 9 runs
    python bench/bench_progress.py --sizes 1000,10000 --runs 15

The reporter is fed what the engine tells it for a deploy of N resources: how many will
settle, then, for each, its call's start and end and its settling (``noop`` rows: settling
only, as for an unchanged resource). It writes to a real pipe (a thread drains it), once as
a pipe (one line per changed resource) and once to a pseudo-terminal (``os.openpty``; the
live counter). A thread drains each, as a terminal would. ``threads`` rows make the calls
from a pool of 8 threads, as the engine's workers do. CPU seconds of this process (all its
threads, the drain included), medians of ``--runs``; the summary line is included.

Run it with another checkout's interpreter to compare: a reporter without ``expect`` /
``settled`` (before the counter) is fed what it takes.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table

from journal.cli import _output

TYPE = "prisma-postgres.Database"


@contextmanager
def piped_stdout(tty: bool) -> Iterator[dict[str, int]]:
    """sys.stdout and sys.stderr on the write end of a pipe (``tty``: a pseudo-terminal)
    that a thread drains; yields the count of bytes read."""
    read_fd, write_fd = os.openpty() if tty and hasattr(os, "openpty") else os.pipe()
    seen = {"bytes": 0}

    def drain() -> None:
        try:
            while chunk := os.read(read_fd, 1 << 16):
                seen["bytes"] += len(chunk)
        except OSError:  # a pseudo-terminal's reader gets EIO once the other end is closed
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stream = io.TextIOWrapper(os.fdopen(write_fd, "wb", buffering=1 << 16), encoding="utf-8")
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = stream
    try:
        yield seen
    finally:
        sys.stdout, sys.stderr = saved
        stream.close()
        reader.join()
        os.close(read_fd)


def feed(reporter: Any, n: int, *, changed: bool, pool: ThreadPoolExecutor | None) -> None:
    expect: Callable[[int], None] | None = getattr(reporter, "expect", None)
    settled: Callable[[], None] | None = getattr(reporter, "settled", None)
    if expect is not None:
        expect(n)

    def one(i: int) -> None:
        rid = f"db-{i}"
        if changed:
            reporter.resource(rid, TYPE, "create", "start", 0.0, None)
            reporter.resource(rid, TYPE, "create", "done", 0.0123, None)
        if settled is not None:
            settled()

    if pool is None:
        for i in range(n):
            one(i)
    else:
        list(pool.map(one, range(n)))


def once(n: int, *, terminal: bool, changed: bool, pool: ThreadPoolExecutor | None) -> float:
    with piped_stdout(tty=terminal):
        out = _output.Output()
        out.terminal = terminal
        out.color = terminal
        reporter = out.reporter()
        t0 = time.process_time()
        feed(reporter, n, changed=changed, pool=pool)
        out.echo(f"bench/progress: deploy succeeded in 0.10s: {n} created")
        sys.stdout.flush()
        return time.process_time() - t0


def main() -> int:
    def extra(parser: Any) -> None:
        parser.add_argument(
            "--sizes",
            type=lambda s: [int(x) for x in s.split(",")],
            default=[1000],
            help="N resources (comma-separated)",
        )

    args = parse_args("the progress reporter alone", name="bench_progress", extra=extra)
    os.environ["TERM"] = "xterm"  # a terminal that moves its cursor (TERM=dumb gets lines)
    os.environ.pop("NO_COLOR", None)
    if args.runs == 5:
        args.runs = 9
    env = environment()
    print_header("bench_progress", env)
    has_counter = hasattr(_output.ProgressReporter, "settled")
    print(f"reporter: {'live counter' if has_counter else 'two lines per call (no counter)'}")
    print()
    rows: list[list[object]] = []
    metrics: list[Metric] = []
    with ThreadPoolExecutor(8) as pool:
        for n in args.sizes:
            for changed in (True, False):
                for threads in (False, True):
                    cases: dict[str, list[float]] = {"pipe": [], "terminal": []}
                    for _ in range(args.runs):  # interleaved: pipe, terminal, pipe, ...
                        for mode in cases:
                            cases[mode].append(
                                once(
                                    n,
                                    terminal=mode == "terminal",
                                    changed=changed,
                                    pool=pool if threads else None,
                                )
                            )
                    what = ("created" if changed else "unchanged") + (
                        ", 8 threads" if threads else ""
                    )
                    med = {mode: statistics.median(v) * 1000 for mode, v in cases.items()}
                    rows.append([n, what, med["pipe"], med["terminal"]])
                    slug = ("created" if changed else "noop") + ("_threads" if threads else "")
                    for mode, value in med.items():
                        metrics.append(
                            Metric(f"progress.{mode}.{slug}.n{n}_ms", value, "ms", False)
                        )
    print_table(["N", "resources", "pipe CPU ms", "terminal CPU ms"], rows)
    return finish(
        args, env, metrics, tables={"progress": (["N", "resources", "pipe", "tty"], rows)}
    )


if __name__ == "__main__":
    raise SystemExit(main())
