"""Soak: the reliability suite's scenarios, long (a script, not a test).

    python bench/soak.py                         # about 8 minutes on 2 cores
    python bench/soak.py --quick                 # a smoke run, about a minute
    python bench/soak.py --kill-every 1 --randoms 40 --fault-rounds 10

Runs the harness of ``tests/test_reliability.py`` with the same checks, only more of it:

* crash injection: a 50-resource deploy / update / destroy of ``memory.Thing`` in a child
  process killed with SIGKILL after every ``--kill-every``-th event (both after its commit and
  inside its transaction), around and inside the snapshot write, and at ``--randoms`` random
  times; each kill is followed by one converging run and the checks (journal verifies, no
  pending operation, remote objects = projection, no duplicate names, nothing unrecorded or
  lost). Against the SQLite and the PostgreSQL journal, without and with replaces
  (``--no-replaces`` leaves the second out), and with Prisma resources on the local API (real
  PostgreSQL databases and roles).
* fault injection: ``--fault-rounds`` rounds of deploy / update / destroy through the local API
  with ``--fault-rate`` of each fault (429, 5xx, timeout, lost answer) per request;
  ``--client-timeouts`` also makes the client give up before slow answers arrive.
* concurrency: ``--writers`` processes deploying ``--stages`` stages ``--rounds`` times each.
* a store that fails like a full disk after K rows, for a spread of K.

Prints one table per scenario; the JSON (``bench/results/soak.json``) holds the same tables.
The figures to watch: every column after ``converged`` should be 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
TESTS = BENCH.parent / "tests"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(TESTS))

import test_reliability as rel  # noqa: E402
from _common import Metric, environment, finish, parse_args, print_header, print_table  # noqa: E402

CRASH_HEADERS = [
    "journal",
    "program",
    "kill points",
    "kills",
    "converged",
    "reruns",
    "duplicates",
    "unrecorded",
    "lost",
    "verify failures",
    "pending left",
    "other",
    "seconds",
]


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--n", type=int, default=50, help="resources per deploy (memory)")
    parser.add_argument("--kill-every", type=int, default=3, help="kill after every K-th event")
    parser.add_argument("--randoms", type=int, default=12, help="random-time kills per journal")
    parser.add_argument(
        "--no-replaces",
        action="store_true",
        help="leave out the crash rows with replaces",
    )
    parser.add_argument("--stores", default="sqlite,postgres", help="journals to soak")
    parser.add_argument("--prisma-n", type=int, default=2, help="databases per Prisma deploy")
    parser.add_argument("--fault-rounds", type=int, default=6, help="deploy/update/destroy")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="rate of EACH fault kind")
    parser.add_argument(
        "--client-timeouts",
        action="store_true",
        help="client timeout 0.2 s < the server's slow answers (creates answered too late)",
    )
    parser.add_argument("--writers", type=int, default=6, help="concurrent deploying processes")
    parser.add_argument("--stages", type=int, default=3, help="stages they share")
    parser.add_argument("--rounds", type=int, default=5, help="deploys per writer")
    parser.add_argument("--seed", type=int, default=20240601)


def _row(journal: str, program: str, tally: rel.Tally, seconds: float) -> list[object]:
    return [
        journal,
        program,
        tally.kill_points,
        tally.kills,
        tally.converged,
        tally.reruns,
        tally.duplicates,
        tally.unrecorded,
        tally.lost,
        tally.verify_failures,
        tally.pending_left,
        tally.other,
        round(seconds, 1),
    ]


def _location(kind: str, folder: Path, stack: Any) -> str:
    if kind == "sqlite":
        return str(folder / ".journal" / "journal.db")
    return str(stack.enter_context(rel.pg_schema()))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def _show_problems(title: str, tally: rel.Tally) -> None:
    if tally.problems:
        print(f"## problems: {title} ({len(tally.problems)})")
        for line in tally.problems[:20]:
            print("  " + line.splitlines()[0][:300])
        print()


def main(argv: list[str] | None = None) -> int:
    import contextlib

    # SIGTERM unwinds like Ctrl-C, so the PostgreSQL schemas and local API objects go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(
        "Reliability soak: crash, fault and concurrency injection",
        name="soak",
        extra=_extra,
        argv=argv,
    )
    if args.quick:
        args.kill_every, args.randoms, args.n = 25, 2, 30
        args.fault_rounds, args.writers, args.rounds = 1, 4, 2
    os.environ.setdefault("JOURNAL_PASSWORD", "soak password")
    os.environ.setdefault("JOURNAL_KDF", "minimum")
    env = environment()
    print_header("soak", env)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    metrics: list[Metric] = []
    tables: dict[str, tuple[Sequence[str], Sequence[Sequence[object]]]] = {}
    failed_total = 0

    # --- crash injection ----------------------------------------------------------------
    rows: list[list[object]] = []
    variants = [False] if args.no_replaces else [False, True]
    for kind in stores:
        for replaces in variants:
            with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
                folder = Path(tmp)
                scenario = rel.CrashScenario(
                    _location(kind, folder, stack),
                    folder,
                    n=args.n,
                    seed=args.seed,
                    replaces=replaces,
                )
                plan = rel.kill_plan(
                    scenario.events_per_run, every=args.kill_every, randoms=args.randoms
                )
                tally, secs = _timed(functools.partial(rel.crash_rounds, scenario, plan))
            program = f"{args.n} memory.Thing" + (" + replaces" if replaces else "")
            rows.append(_row(kind, program, tally, secs))
            _show_problems(f"crash, {kind}, {program}", tally)
            failed_total += tally.failed
            name = f"crash.{kind}{'.replaces' if replaces else ''}.failures"
            metrics.append(Metric(name, tally.failed, "count", False))
    with tempfile.TemporaryDirectory() as tmp, rel.pg_schema() as location, rel.local_api() as api:
        scenario = rel.PrismaScenario(location, Path(tmp), api, n=args.prisma_n, seed=args.seed)
        every = max(1, args.kill_every // 3)
        plan = rel.kill_plan(scenario.events_per_run, every=every, randoms=args.randoms // 2)
        tally, secs = _timed(lambda: rel.crash_rounds(scenario, plan))
    program = f"prisma 1+{args.prisma_n}+{args.prisma_n}"
    rows.append(_row("postgres", program, tally, secs))
    _show_problems("crash, prisma", tally)
    failed_total += tally.failed
    metrics.append(Metric("crash.prisma.failures", tally.failed, "count", False))
    print("## crash injection (SIGKILL of the deploying process, then one converging run)")
    print_table(CRASH_HEADERS, rows)
    tables["crash"] = (CRASH_HEADERS, rows)

    # --- fault injection -------------------------------------------------------------------
    headers = [
        "faults",
        "client timeout",
        "rounds",
        "phases",
        "runs needed (max)",
        "runs needed (mean)",
        "converged",
        "duplicates",
        "unrecorded",
        "lost",
        "verify failures",
        "other",
    ]
    with tempfile.TemporaryDirectory() as tmp, rel.pg_schema() as location, rel.local_api() as api:
        scenario = rel.PrismaScenario(location, Path(tmp), api, n=args.prisma_n)
        client = 0.2 if args.client_timeouts else None
        (tally, runs), _secs = _timed(
            lambda: rel.fault_rounds(
                scenario,
                args.fault_rounds,
                rate=args.fault_rate,
                seed=args.seed,
                client_timeout_s=client,
            )
        )
    rate = f"{args.fault_rate:.0%} each of 429/5xx/timeout/lost"
    fault_rows: list[list[object]] = [
        [
            rate,
            "0.2 s" if client else "30 s",
            args.fault_rounds,
            len(runs),
            max(runs, default=0),
            round(sum(runs) / max(1, len(runs)), 2),
            tally.converged,
            tally.duplicates,
            tally.unrecorded,
            tally.lost,
            tally.verify_failures,
            tally.other + tally.pending_left,
        ]
    ]
    _show_problems("faults", tally)
    failed_total += tally.failed
    metrics.append(Metric("faults.failures", tally.failed, "count", False))
    print("## fault injection through the local API (deploy, update, destroy per round)")
    print_table(headers, fault_rows)
    tables["faults"] = (headers, fault_rows)

    # --- concurrency -----------------------------------------------------------------------
    headers = [
        "journal",
        "writers",
        "stages",
        "deploys",
        "LockedErrors retried",
        "interleaved / other",
        "duplicates",
        "unrecorded",
        "lost",
        "verify failures",
        "seconds",
    ]
    conc_rows: list[list[object]] = []
    for kind in stores:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            folder = Path(tmp)
            location = _location(kind, folder, stack)
            (tally, locked), secs = _timed(
                functools.partial(
                    rel.concurrent_deploys,
                    location,
                    folder,
                    writers=args.writers,
                    stages=args.stages,
                    rounds=args.rounds,
                )
            )
        conc_rows.append(
            [
                kind,
                args.writers,
                args.stages,
                args.writers * args.rounds,
                locked,
                tally.other + tally.pending_left,
                tally.duplicates,
                tally.unrecorded,
                tally.lost,
                tally.verify_failures,
                round(secs, 1),
            ]
        )
        _show_problems(f"concurrency, {kind}", tally)
        failed_total += tally.failed
        metrics.append(Metric(f"concurrency.{kind}.failures", tally.failed, "count", False))
    print("## concurrent deploys (odd writers wait for the lock, even ones retry LockedError)")
    print_table(headers, conc_rows)
    tables["concurrency"] = (headers, conc_rows)

    # --- a store that fails mid-run --------------------------------------------------------
    disk_rows: list[list[object]] = []
    budgets = [1, 2, 5, 9, 14, 20, 27, 33, 40, 47] if not args.quick else [1, 9, 25]
    for kind in stores:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            folder = Path(tmp)
            location = _location(kind, folder, stack)
            tally, secs = _timed(
                functools.partial(rel.store_failure_rounds, location, folder, budgets, n=20)
            )
        disk_rows.append(_row(kind, "20 memory.Thing, store fails after K rows", tally, secs))
        _show_problems(f"store failures, {kind}", tally)
        failed_total += tally.failed
        metrics.append(Metric(f"store_failures.{kind}.failures", tally.failed, "count", False))
    print("## a store that fails like a full disk after K rows (then heals)")
    headers = [*CRASH_HEADERS]
    headers[2], headers[3] = "failure points", "failures raised"
    print_table(headers, disk_rows)
    tables["store_failures"] = (headers, disk_rows)

    metrics.append(Metric("failures", failed_total, "count", False))
    status = finish(args, env, metrics, tables)
    return status or (1 if failed_total else 0)


if __name__ == "__main__":
    sys.exit(main())
