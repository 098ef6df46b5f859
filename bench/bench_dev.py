"""Dev-loop benchmark: from saving a change to the run being reconciled, in a running `journal dev`.

    python bench/bench_dev.py                 # 10 edits of each kind; under a minute
    python bench/bench_dev.py --runs 30 --databases 50
    python bench/bench_dev.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/bench_dev.py --compare bench/results/baseline.json

``journal dev PROGRAM`` runs as a subprocess (a fresh journal, default key-derivation
profile). By default it runs with ``--no-local`` against the local Prisma-compatible API this
script starts in metadata-only mode (zero latency; ``PRISMA_API_URL``): the CLI has no switch
for metadata-only mode itself. With ``--postgres-url`` it runs ``journal dev --local
--postgres-url URL`` instead, so databases are real ``CREATE DATABASE`` on that server (the
stage is destroyed at the end).

The program is a project and ``--databases`` (3) databases. Edits alternate between

* a no-op edit: only a comment changes (the run finds every resource unchanged), and
* an edit that adds one database (the run creates exactly one).

For each, the time from just before the file is written to the ``reconciled in N ms`` line
appearing on the dev process's output (measured here), and the ``N`` it prints (measured by the
dev loop from the file's modification time). For comparison the same edits go through
``journal._program.dev.DevLoop`` in this process with the changes handed over directly (no file
watcher, no process boundary): what the run itself costs.

Target (issue 7): under 300 ms from save to reconciled for a no-op edit.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table
from bench_scale import (
    PASSWORD,
    environ,
    journal_command,
    kdf_profile,
    load_average,
    metadata_api,
    spread,
    stop_process,
)

from journal._program.app import RunSettings

TARGET_NOOP_MS = 300.0
STAGE = "bench-dev"

PROGRAM = '''\
"""bench_dev's program: a project and some databases."""
import journal
from journal.resources.prisma_postgres import Database, Project

with journal.app("bench-dev") as app:
    project = Project("project", delete=True)
    for i in range({databases}):
        Database(f"db-{{i}}", project=project, delete=True)
{extras}
    app.export(project_id=project.id)
# edit {edit}
'''

_RECONCILED = re.compile(r"^(reconciled|failed) in (\d+) ms \((from save|first run)\)")
_SUMMARY = re.compile(r": deploy (succeeded|failed) in ([0-9.]+)s: (.*)$")


def program_text(databases: int, extras: int, edit: int) -> str:
    lines = "\n".join(
        f'    Database("extra-{k}", project=project, delete=True)' for k in range(extras)
    )
    return PROGRAM.format(databases=databases, extras=lines, edit=edit)


@dataclass
class Edits:
    """The sequence of edits: (kind, extras after it)."""

    runs: int
    plan: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for done in range(self.runs):
            self.plan.append(("no-op edit", done))
            self.plan.append(("add one database", done + 1))


@dataclass
class Outcome:
    external_ms: list[float] = field(default_factory=list)
    reported_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)
    in_process_ms: list[float] = field(default_factory=list)


class DevProcess:
    """``journal dev`` as a subprocess; its output lines with their arrival times."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.transcript: list[str] = []
        self.proc = subprocess.Popen(
            [*journal_command(), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            self.transcript.append(line.rstrip("\n"))
            self.lines.put((now, line.rstrip("\n")))

    def next_reconciled(self, timeout: float) -> tuple[float, re.Match[str], str | None]:
        """Wait for the next ``reconciled in`` line: (arrival time, match, summary line)."""
        deadline = time.monotonic() + timeout
        summary: str | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                tail = "\n".join(self.transcript[-20:])
                raise RuntimeError(f"no `reconciled in` line from journal dev:\n{tail}")
            try:
                when, line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if _SUMMARY.search(line):
                summary = line
            found = _RECONCILED.match(line)
            if found:
                return when, found, summary

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT)
        self._reader.join(timeout=5)


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(runs=10)
    parser.add_argument("--databases", type=int, default=3, help="databases in the program")
    parser.add_argument("--settle", type=float, default=0.3, help="seconds between edits")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--postgres-url", default=None, help="use the local API on this server")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process loop")
    parser.add_argument("--dir", type=Path, default=None, help="where the projects go")


def run_subprocess(
    folder: Path, args: argparse.Namespace, edits: Edits
) -> tuple[float, dict[str, Outcome]]:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "alchemy.run.py"
    program.write_text(program_text(args.databases, 0, 0))
    env = {
        **os.environ,
        "JOURNAL_PASSWORD": PASSWORD,
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    mode = ["--no-local"]
    if args.postgres_url:
        mode = ["--local", "--postgres-url", args.postgres_url]
    dev = DevProcess(["dev", *mode, "--stage", STAGE, str(program)], folder, env)
    outcomes: dict[str, Outcome] = {}
    try:
        _, first, _ = dev.next_reconciled(args.timeout)
        first_ms = float(first.group(2))
        for number, (kind, extras) in enumerate(edits.plan, start=1):
            time.sleep(args.settle)
            text = program_text(args.databases, extras, number)
            saved = time.time()
            program.write_text(text)
            seen, found, summary = dev.next_reconciled(args.timeout)
            if found.group(1) != "reconciled" or summary is None:
                raise RuntimeError(f"the run after edit {number} failed: {dev.transcript[-10:]}")
            counts = _SUMMARY.search(summary)
            assert counts is not None
            want = "unchanged" if kind == "no-op edit" else "1 created"
            if want not in counts.group(3) or (kind == "no-op edit" and "," in counts.group(3)):
                raise RuntimeError(f"edit {number} ({kind}): unexpected {summary!r}")
            out = outcomes.setdefault(kind, Outcome())
            out.external_ms.append((seen - saved) * 1000.0)
            out.reported_ms.append(float(found.group(2)))
            out.run_ms.append(float(counts.group(2)) * 1000.0)
    finally:
        dev.stop()
        if args.postgres_url:
            _destroy_postgres(folder, args.postgres_url, env)
    return first_ms, outcomes


def _destroy_postgres(folder: Path, url: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [*journal_command(), "destroy", "--yes", "--local", "--postgres-url", url],
        cwd=folder,
        env={**env, "JOURNAL_STAGE": STAGE},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        print(f"warning: could not destroy the dev stage: {proc.stderr.strip()}", file=sys.stderr)


def run_in_process(folder: Path, args: argparse.Namespace, edits: Edits) -> dict[str, list[float]]:
    """The same edits through DevLoop in this process, changes handed over directly."""
    from journal._program.dev import DevLoop

    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "alchemy.run.py"
    program.write_text(program_text(args.databases, 0, 0))
    location = folder / ".journal" / "journal.db"

    def settings() -> RunSettings:
        return RunSettings(command="deploy", stage=STAGE, location=str(location), password=PASSWORD)

    def changes(root: Path, stop: threading.Event) -> Iterator[set[Path]]:
        for number, (_, extras) in enumerate(edits.plan, start=1):
            program.write_text(program_text(args.databases, extras, number))
            yield {program.resolve()}

    loop = DevLoop(program, settings, changes=changes, max_runs=1 + len(edits.plan))
    with environ({"JOURNAL_PASSWORD": PASSWORD}):  # run_once reads stored credentials with it
        runs = loop.run()
    out: dict[str, list[float]] = {}
    for run, (kind, _) in zip(runs[1:], edits.plan, strict=True):
        if not run.ok:
            raise RuntimeError(f"in-process dev run failed: {run.error}")
        out.setdefault(kind, []).append(run.since_save_ms)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_dev", extra=_extra, argv=argv)
    env = environment()
    print_header("bench_dev", env)
    started_load = load_average()
    where = (
        f"local API on {args.postgres_url} (real PostgreSQL)"
        if args.postgres_url
        else "local API, metadata-only, zero latency (journal dev --no-local + PRISMA_API_URL)"
    )
    print(
        f"# {where}; program: a project + {args.databases} databases; KDF {kdf_profile()}; "
        f"load average {started_load}"
    )
    print(f"# {args.runs} edits of each kind, {args.settle:g} s apart; medians\n")
    root = Path(tempfile.mkdtemp(prefix="bench-dev-", dir=args.dir))
    edits = Edits(args.runs)
    metrics: list[Metric] = []
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    try:
        if args.postgres_url:
            first_ms, outcomes = run_subprocess(root / "dev", args, edits)
        else:
            with metadata_api(0.0):
                first_ms, outcomes = run_subprocess(root / "dev", args, edits)
                if not args.no_in_process:
                    for kind, values in run_in_process(root / "inproc", args, edits).items():
                        outcomes[kind].in_process_ms = values
        headers = [
            "edit",
            "save -> line ms (measured here)",
            "'reconciled in' ms (printed)",
            "run ms (printed)",
            "in process, no watcher ms",
            "target ms",
            "verdict",
        ]
        rows: list[list[object]] = []
        spreads: list[list[object]] = []
        for kind, out in outcomes.items():
            external = statistics.median(out.external_ms)
            reported = statistics.median(out.reported_ms)
            inner = statistics.median(out.run_ms)
            local = statistics.median(out.in_process_ms) if out.in_process_ms else "-"
            is_noop = kind == "no-op edit"
            verdict = "-"
            if is_noop:
                verdict = "met" if max(external, reported) < TARGET_NOOP_MS else "missed"
            rows.append(
                [
                    kind,
                    external,
                    reported,
                    inner,
                    local,
                    TARGET_NOOP_MS if is_noop else "-",
                    verdict,
                ]
            )
            spreads.append(
                [
                    kind,
                    len(out.external_ms),
                    spread([v / 1000 for v in out.external_ms]),
                    spread([v / 1000 for v in out.reported_ms]),
                ]
            )
            slug = "noop_edit" if is_noop else "add_edit"
            metrics += [
                Metric(f"dev.{slug}_ms", external, "ms", higher_is_better=False),
                Metric(f"dev.{slug}_printed_ms", reported, "ms", higher_is_better=False),
            ]
            if out.in_process_ms:
                metrics.append(
                    Metric(f"dev.{slug}_in_process_ms", local, "ms", higher_is_better=False)  # type: ignore[arg-type]
                )
        metrics.append(Metric("dev.first_run_ms", first_ms, "ms", higher_is_better=False))
        print(f"first run (creates the journal, derives its key): {first_ms:.0f} ms\n")
        print_table(headers, rows)
        s_headers = [
            "edit",
            "edits",
            "measured s min / median / max",
            "printed s min / median / max",
        ]
        print_table(s_headers, spreads)
        tables["dev loop"] = (headers, rows)
        tables["spread"] = (s_headers, spreads)
        ended_load = load_average()
        print(f"# load average at the end: {ended_load}")
        tables["conditions"] = (
            ["load average (1, 5, 15 min) at the start", "at the end"],
            [[started_load, ended_load]],
        )
        return finish(args, env, metrics, tables=tables)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
