"""Benchmark of the journal store (a script, not a test).

    python bench/bench_journal.py                      # sizes 1k,100k; < 1 minute
    python bench/bench_journal.py --sizes 1k,100k,1M   # add a million-event journal
    python bench/bench_journal.py --compare bench/results/baseline.json

Measures, on one disk (``--dir``, default the system temp folder):

* durable appends/s: one event per ``append`` from one thread, and from 16 threads (group
  commit), against this machine's raw sqlite3 rate of single-row ``INSERT`` + ``COMMIT`` with
  the same settings (WAL, ``synchronous=FULL``). The ratio is the figure to watch.
* verify: events/s of a full ``verify()`` (chain + decrypt every event).
* state load: ``latest_snapshot`` + reading the events after it, at several journal sizes
  (should not grow with the journal), next to reading the whole stream.
* chain check: what every writing command runs first (``Journal.check_chain``: the newest
  snapshot's anchor, the events under it hash only, the events after it opened; should not
  grow with the journal), next to rehashing the whole chain without decrypting (the option of
  a full prefix pass, which does grow).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Metric,
    environment,
    finish,
    median_of,
    parse_args,
    print_header,
    print_table,
    timed,
)

from journal import _chain, _crypto
from journal._journal import Journal, KdfParams

PASSWORD = "benchmark password"
STREAM = "bench/dev"
TAIL = 100  # events after the latest snapshot in the state-load case


def _size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1k,100k", help="journal sizes for state load")
    parser.add_argument("--appends", type=int, default=1000, help="appends per rate run")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")


def _payload(i: int) -> dict[str, Any]:
    """A typical lifecycle event (~300 bytes of JSON)."""
    return {
        "type": "resource.created",
        "resource": f"database-{i}",
        "resource_type": "prisma_postgres.Database",
        "props": {"name": f"database-{i}", "region": "us-east-1", "project": "project"},
        "outputs": {"id": f"db_{i:08d}", "status": "ready", "region": "us-east-1"},
        "actor": "bench",
        "time": "2025-01-01T00:00:00.000Z",
        "run": "run-0001",
    }


def _open(path: Path) -> Journal:
    return Journal.open(path, password=PASSWORD, kdf=KdfParams.minimum())


def raw_sqlite_rate(folder: Path, n: int) -> float:
    path = folder / f"raw-{secrets.token_hex(4)}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, stream TEXT, data BLOB)")
    blob = secrets.token_bytes(330)  # about one sealed event
    t0 = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (stream, data) VALUES (?, ?)", (STREAM, blob))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    _remove(path)
    return n / elapsed


def append_rate(folder: Path, n: int, threads: int) -> tuple[float, float]:
    """(appends/s, mean appends per transaction)."""
    path = folder / f"journal-{secrets.token_hex(4)}.db"
    with _open(path) as journal:
        journal.append(STREAM, [_payload(0)])  # created and warm
        stats = journal.store.stats
        tx0, rq0 = stats.append_transactions, stats.append_requests
        if threads <= 1:
            t0 = time.perf_counter()
            for i in range(n):
                journal.append(STREAM, [_payload(i)])
            elapsed = time.perf_counter() - t0
        else:
            per = n // threads
            barrier = threading.Barrier(threads + 1)

            def work(k: int) -> None:
                barrier.wait()
                for i in range(per):
                    journal.append(f"{STREAM}{k % 4}", [_payload(i)])

            pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
            for thread in pool:
                thread.start()
            barrier.wait()
            t0 = time.perf_counter()
            for thread in pool:
                thread.join()
            elapsed = time.perf_counter() - t0
            n = per * threads
        batch = (stats.append_requests - rq0) / max(1, stats.append_transactions - tx0)
    _remove(path)
    return n / elapsed, batch


def build_journal(path: Path, size: int) -> float:
    """A journal of ``size`` events in one stream, snapshots every 1000 events and one
    ``TAIL`` events before the head. Returns the seconds it took."""
    t0 = time.perf_counter()
    with _open(path) as journal:
        chunk = 1000
        state = {f"database-{i}": _payload(i)["outputs"] for i in range(50)}
        snap_at = max(1, size - TAIL)
        written = 0
        while written < size:
            count = min(chunk, size - written)
            journal.append(STREAM, [_payload(written + i) for i in range(count)])
            written += count
            if written % 1000 == 0 and written <= snap_at:
                journal.put_snapshot(STREAM, written, {"resources": state, "seq": written})
        journal.put_snapshot(STREAM, snap_at, {"resources": state, "seq": snap_at})
    return time.perf_counter() - t0


def state_load(journal: Journal) -> float:
    def once() -> float:
        t0 = time.perf_counter()
        snap = journal.latest_snapshot(STREAM)
        after = snap[0] if snap else 0
        sum(1 for _ in journal.read(STREAM, after_seq=after))
        return time.perf_counter() - t0

    return once


def chain_check(journal: Journal) -> Callable[[], float]:
    def once() -> float:
        t0 = time.perf_counter()
        journal.check_chain()
        return time.perf_counter() - t0

    return once


def hash_only_pass(journal: Journal) -> int:
    """Rehash every event from the genesis, nothing decrypted: the full prefix pass."""
    hasher = _crypto.event_hasher(journal.journal_id)
    prev = journal.genesis
    count = 0
    for count, row in enumerate(journal.store.read(), start=1):
        prev = _chain.step(hasher, prev, count, row)
    return count


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.rmtree(str(path) + ".locks", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_journal", extra=_extra, argv=argv)
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    env = environment()
    print_header("bench_journal", env)
    folder = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    print(f"# databases in {folder} ; {args.runs} runs, medians\n")
    metrics: list[Metric] = []
    try:
        # interleaved, so that drifts of the disk's flush latency hit every case alike
        raws: list[float] = []
        singles: list[float] = []
        multis: list[float] = []
        batches: list[float] = []
        for _ in range(max(1, args.runs)):
            raws.append(raw_sqlite_rate(folder, args.appends))
            singles.append(append_rate(folder, args.appends, 1)[0])
            rate, batch = append_rate(folder, args.appends * 2, args.threads)
            multis.append(rate)
            batches.append(batch)
        raw, single, multi = (statistics.median(x) for x in (raws, singles, multis))
        batch = statistics.median(batches)
        rates = [
            ["raw sqlite3 INSERT+COMMIT (WAL, FULL)", raw, "commits/s", 1.0, ""],
            ["journal.append, 1 thread", single, "appends/s", single / raw, ""],
            [
                f"journal.append, {args.threads} threads",
                multi,
                "appends/s",
                multi / raw,
                f"group commit: {batch:.1f} appends/transaction",
            ],
        ]
        metrics += [
            Metric("raw_sqlite_commits_per_s", raw, "1/s"),
            Metric("append_1_thread_per_s", single, "1/s"),
            Metric(f"append_{args.threads}_threads_per_s", multi, "1/s"),
            Metric("append_1_thread_ratio_to_raw", single / raw, "x"),
            Metric(f"append_{args.threads}_threads_ratio_to_raw", multi / raw, "x"),
        ]

        size_rows: list[list[object]] = []
        verify_rate = 0.0
        for size in sizes:
            path = folder / f"size-{size}.db"
            build = build_journal(path, size)
            mib = (
                sum(
                    os.path.getsize(str(path) + s)
                    for s in ("", "-wal")
                    if os.path.exists(str(path) + s)
                )
                / 2**20
            )
            with _open(path) as journal:
                load = median_of(state_load(journal), args.runs)
                check = median_of(chain_check(journal), args.runs)
                hashed = timed(lambda j=journal: hash_only_pass(j))
                full = timed(lambda j=journal: sum(1 for _ in j.read(STREAM)))
                verify = timed(journal.verify)
            verify_rate = size / verify
            label = f"{size:,}"
            size_rows.append(
                [label, build, mib, load * 1000, check * 1000, hashed, full, verify, size / verify]
            )
            metrics += [
                Metric(f"state_load_ms@{label}", load * 1000, "ms", higher_is_better=False),
                Metric(f"chain_check_ms@{label}", check * 1000, "ms", higher_is_better=False),
                Metric(f"hash_only_pass_s@{label}", hashed, "s", higher_is_better=False),
                Metric(f"verify_events_per_s@{label}", size / verify, "1/s"),
            ]
            _remove(path)
        rates.append(
            [f"verify, {sizes[-1]:,} events", verify_rate, "events/s", "", "chain + decrypt all"]
        )

        rate_headers = ["case", "rate", "unit", "ratio to raw", "note"]
        print_table(rate_headers, rates)
        size_headers = [
            "events",
            "build s",
            "MiB",
            f"state load ms (snapshot + {TAIL})",
            f"chain check ms ({_chain.WINDOW:,} hashed + {TAIL} opened)",
            "hash-only full pass s",
            "read whole stream s",
            "verify s",
            "verify events/s",
        ]
        print_table(size_headers, size_rows)
        return finish(
            args,
            env,
            metrics,
            tables={"rates": (rate_headers, rates), "sizes": (size_headers, size_rows)},
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
