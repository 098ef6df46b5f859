"""History-length benchmark: no-op deploy and `journal history | tail` as the journal grows.

    python bench/bench_history.py                       # 1k, 100k, 1M events; about 2 minutes
    python bench/bench_history.py --sizes 1k,100k       # quick: well under a minute
    python bench/bench_history.py --filler other        # the extra events in another stream
    python bench/bench_history.py --compare bench/results/baseline.json

For each size a journal (default key-derivation profile) gets one real deploy of the app of
``bench_scale`` (``--app-size`` 100: a project, 100 databases, a connection each, against the
metadata-only local API), then *filler* events up to the size, appended through the public
API (``Journal.append``, many payloads per call, payloads from ``journal._events.make_event``):
by default no-op runs of the same stage (``run.started`` + ``run.finished``, what a long ``dev``
session leaves), with the stage's snapshot written at the end as every real run does. The time
it takes to generate them is printed.

Then, interleaved across sizes so drifts hit all alike (medians of ``--runs``):

* no-op deploy in process (``run_program``, the journal opened per run, key cached), and end to
  end (``journal deploy``, fresh process: start-up and key derivation included);
* ``journal history | tail -n 20`` (fresh process), ``--history-runs`` times (once at >= 1M
  unless told), with its peak memory.

Target (issue 7): the no-op deploy at 1M events within 1.2x of the same at 1k events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table
from bench_scale import (
    APP,
    PASSWORD,
    STAGE,
    deploy,
    environ,
    journal_command,
    kdf_profile,
    load_average,
    metadata_api,
    resource_count,
    spread,
    write_program,
)

from journal._events import make_event
from journal._journal import Journal
from journal._projection import apply, load_state, snapshot_state, stream_name

TARGET_RATIO = 1.2
TAIL = 20


def _size(text: str) -> int:
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def _label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(runs=9)
    parser.add_argument("--sizes", default="1k,100k,1M", help="total events (default 1k,100k,1M)")
    parser.add_argument("--app-size", type=int, default=100, help="N of the deployed app")
    parser.add_argument(
        "--filler",
        choices=("same", "other"),
        default="same",
        help="filler runs in the app's own stage (default) or in another app's stream",
    )
    parser.add_argument("--batch", type=int, default=10_000, help="payloads per append")
    parser.add_argument("--history-runs", type=int, default=None, help="default 3, 1 at >= 1M")
    parser.add_argument("--dir", type=Path, default=None, help="where the journals go")


def _run_pair(run: str, when: dt.datetime, app: str, stage: str) -> list[dict[str, Any]]:
    """The two events of a no-op run, as the engine writes them."""
    started = make_event(
        "run.started",
        app=app,
        stage=stage,
        command="deploy",
        actor="bench",
        host="bench-host",
        pid=4242,
        since=when.isoformat(timespec="seconds"),
        program="/bench/alchemy.run.py",
        program_hash="0" * 32,
    )
    started.update(run=run, time=when.isoformat(timespec="milliseconds"))
    finished = make_event(
        "run.finished",
        status="succeeded",
        counts={"noop": 201},
        duration_s=0.05,
        failures=[],
    )
    later = when + dt.timedelta(milliseconds=50)
    finished.update(run=run, time=later.isoformat(timespec="milliseconds"))
    return [started, finished]


def generate(location: Path, total: int, filler: str, batch: int) -> tuple[int, float]:
    """Append no-op runs until the journal holds ``total`` events; (events added, seconds)."""
    t0 = time.perf_counter()
    with Journal.open(location, password=PASSWORD, create=False) as jr:
        head = jr.head()[0]
        if filler == "same":
            stream, app = stream_name(APP, STAGE), APP
            state = load_state(jr, stream)
        else:
            stream, app = stream_name("filler-app", STAGE), "filler-app"
            state = None
        when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        added = 0
        want = max(0, total - head)
        want -= want % 2
        while added < want:
            payloads: list[dict[str, Any]] = []
            while len(payloads) < min(batch, want - added):
                payloads += _run_pair(uuid.uuid4().hex[:16], when, app, STAGE)
                when += dt.timedelta(seconds=30)
            events = jr.append(stream, payloads)
            if state is not None:
                for ev in events:
                    apply(state, ev.seq, ev.version, ev.payload)
            added += len(events)
        if state is not None:
            snapshot_state(jr, state)  # every real run ends with one
    return added, time.perf_counter() - t0


def _mib(location: Path) -> float:
    return sum(
        os.path.getsize(str(location) + s)
        for s in ("", "-wal")
        if os.path.exists(str(location) + s)
    ) / (1 << 20)


def history_tail(location: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """``journal history | tail -n 20``: (seconds, peak MiB of `journal history`, last line)."""
    t0 = time.perf_counter()
    head = subprocess.Popen(
        [*journal_command(), "history", "--journal", str(location)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    tail = subprocess.Popen(
        ["tail", "-n", str(TAIL)], stdin=head.stdout, stdout=subprocess.PIPE, env=env
    )
    assert head.stdout is not None
    head.stdout.close()  # tail owns the read end now
    out, _ = tail.communicate(timeout=3600)
    _, status, usage = os.wait4(head.pid, 0)
    head.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    assert head.stderr is not None
    err = head.stderr.read().decode(errors="replace")
    head.stderr.close()
    if head.returncode != 0:
        raise RuntimeError(f"journal history exited {head.returncode}: {err}")
    peak_mib = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    lines = out.decode(errors="replace").splitlines()
    return seconds, peak_mib, lines[-1] if lines else ""


def cli_noop(folder: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*journal_command(), "deploy", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or "unchanged" not in proc.stdout:
        raise RuntimeError(f"journal deploy: {proc.returncode} {proc.stdout[-500:]} {proc.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_history", extra=_extra, argv=argv)
    sizes = sorted(_size(s) for s in args.sizes.split(",") if s.strip())
    env = environment()
    print_header("bench_history", env)
    started_load = load_average()
    resources = resource_count(args.app_size, 100)
    print(
        f"# app: {resources} resources; filler: no-op runs in "
        f"{'the same stage' if args.filler == 'same' else 'another stream'}; "
        f"KDF {kdf_profile()}; load average {started_load}"
    )
    print(f"# {args.runs} runs, interleaved across sizes, medians\n")
    root = Path(tempfile.mkdtemp(prefix="bench-history-", dir=args.dir))
    metrics: list[Metric] = []
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    try:
        with metadata_api(0.0) as api:
            del api  # the environment points at it
            folders: dict[int, Path] = {}
            built: dict[int, tuple[int, float, float]] = {}
            program_env = {"BENCH_N": str(args.app_size), "BENCH_PROJECT_ID": ""}
            with environ(program_env):
                for size in sizes:
                    folder = root / f"events-{_label(size)}"
                    program = write_program(folder)
                    location = folder / ".journal" / "journal.db"
                    location.parent.mkdir(parents=True)
                    Journal.open(location, password=PASSWORD).close()
                    deploy(program, location, "deploy", None)
                    added, seconds = generate(location, size, args.filler, args.batch)
                    folders[size] = folder
                    built[size] = (added, seconds, _mib(location))
                    print(
                        f"generated {added:,} events for the {_label(size)} journal in "
                        f"{seconds:.1f} s ({added / seconds if seconds else 0:,.0f} events/s), "
                        f"{_mib(location):,.0f} MiB",
                        flush=True,
                    )
                print()

                in_process: dict[int, list[float]] = {s: [] for s in sizes}
                via_cli: dict[int, list[float]] = {s: [] for s in sizes}
                cli_env = {
                    **os.environ,
                    **program_env,
                    "JOURNAL_PASSWORD": PASSWORD,
                    "JOURNAL_STAGE": STAGE,
                    "NO_COLOR": "1",
                }
                for size in sizes:  # one untimed run each: the first run after a bulk append
                    folder = folders[size]
                    deploy(
                        folder / "alchemy.run.py",
                        folder / ".journal" / "journal.db",
                        "deploy",
                        None,
                    )
                for _ in range(max(1, args.runs)):
                    for size in sizes:
                        folder = folders[size]
                        location = folder / ".journal" / "journal.db"
                        t0 = time.perf_counter()
                        result = deploy(folder / "alchemy.run.py", location, "deploy", None)
                        in_process[size].append(time.perf_counter() - t0)
                        if result.counts != {"noop": resources}:
                            raise RuntimeError(f"expected a no-op deploy, got {result.counts}")
                        via_cli[size].append(cli_noop(folder, cli_env))

            tails: dict[int, list[tuple[float, float]]] = {s: [] for s in sizes}
            last_lines: dict[int, str] = {}
            for size in sizes:
                runs = args.history_runs or (1 if size >= 1_000_000 else 3)
                location = folders[size] / ".journal" / "journal.db"
                for _ in range(max(1, runs)):
                    seconds, peak, last = history_tail(location, cli_env)
                    tails[size].append((seconds, peak))
                    last_lines[size] = last
                print(f"history+tail at {_label(size)}: {spread([t for t, _ in tails[size]])} s")
            print()

        base = statistics.median(in_process[sizes[0]])
        headers = [
            "events",
            "MiB",
            "generated in s",
            "no-op deploy s (in process)",
            f"x {_label(sizes[0])}",
            "no-op deploy s (CLI)",
            "history+tail s",
            "history events/s",
            "history peak MiB",
        ]
        rows: list[list[object]] = []
        spreads: list[list[object]] = []
        for size in sizes:
            noop = statistics.median(in_process[size])
            noop_cli = statistics.median(via_cli[size])
            tail_s = statistics.median(t for t, _ in tails[size])
            peak = max(p for _, p in tails[size])
            added, gen_s, mib = built[size]
            rows.append(
                [_label(size), mib, gen_s, noop, noop / base, noop_cli, tail_s, size / tail_s, peak]
            )
            spreads.append(
                [
                    _label(size),
                    spread(in_process[size]),
                    spread(via_cli[size]),
                    spread([t for t, _ in tails[size]]),
                    len(tails[size]),
                ]
            )
            label = _label(size)
            metrics += [
                Metric(f"history.noop_deploy_s@{label}", noop, "s", higher_is_better=False),
                Metric(f"history.noop_deploy_cli_s@{label}", noop_cli, "s", higher_is_better=False),
                Metric(f"history.tail_s@{label}", tail_s, "s", higher_is_better=False),
                Metric(
                    f"history.generate_events_per_s@{label}", added / gen_s if gen_s else 0, "1/s"
                ),
            ]
        print("## medians")
        print_table(headers, rows)
        s_headers = [
            "events",
            "no-op in process min / median / max",
            "no-op CLI min / median / max",
            "history+tail min / median / max",
            "history runs",
        ]
        print_table(s_headers, spreads)
        tables["history length"] = (headers, rows)
        tables["spread"] = (s_headers, spreads)
        if len(sizes) > 1:
            ratio = statistics.median(in_process[sizes[-1]]) / base
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            print(
                f"no-op deploy at {_label(sizes[-1])} events: {ratio:.2f}x the same at "
                f"{_label(sizes[0])} (target <= {TARGET_RATIO}x): {verdict}"
            )
            metrics.append(
                Metric(
                    f"history.noop_ratio_{_label(sizes[-1])}_vs_{_label(sizes[0])}",
                    ratio,
                    "x",
                    higher_is_better=False,
                )
            )
        print(f"last line of `journal history` at {_label(sizes[-1])}: {last_lines[sizes[-1]]}")
        ended_load = load_average()
        print(f"# load average at the end: {ended_load}")
        tables["conditions"] = (
            ["load average (1, 5, 15 min) at the start", "at the end"],
            [[started_load, ended_load]],
        )
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"# this process's peak memory: {peak_self:,.0f} MiB")
        return finish(args, env, metrics, tables=tables)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
