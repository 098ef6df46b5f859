"""Where a no-op `journal deploy` spends its time, phase by phase (a script, not a test).

    python bench/bench_noop.py                 # N = 1,000 and 300, 7 runs
    python bench/bench_noop.py --sizes 1000 --runs 11

The side-by-side figures (bench_alchemy.py) time the whole command; this splits it. Each
phase is timed on its own, medians of ``--runs``, on a stage of N databases deployed once
against the local API in metadata-only mode:

* start-up, in fresh processes: the interpreter (``python -c pass``), importing the CLI
  (``journal --help`` imports nothing more), then the modules a deploy adds (engine,
  journal, program runner, the Prisma resources);
* the key derivation (Argon2id, the journal's profile), which the CLI runs on a second
  thread while it imports (so it costs wall time only where it outlasts the imports);
* in process, the key cached: opening the journal, the chain check a writing command runs
  (the 2,048 events under the newest snapshot rehashed, the events after it opened), loading
  the stage's state (snapshot + tail), and running the program: ``run_program`` as the
  CLI calls it (the program's imports once cached, the stage's lock, ``run.started``,
  declaring and deciding N resources, ``run.finished``);
* the whole command, ``journal deploy`` in a fresh process, for comparison.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table
from bench_scale import (
    PASSWORD,
    STAGE,
    _ints,
    deploy,
    journal_command,
    load_average,
    make_project,
    metadata_api,
    write_program,
)

from journal._chain import check_chain
from journal._crypto import clear_kek_cache
from journal._journal import Journal
from journal._projection import load_state

APP = "bench-scale"
#: what a deploy imports beyond the CLI (the program imports the provider itself)
DEPLOY_IMPORTS = (
    "import journal.cli, journal._program.runner, journal._program.dev, journal._journal, "
    "journal._binding, journal.resources.prisma_postgres"
    "._resources, http.client"
)


def _process_s(code: str, runs: int) -> float:
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _in_process_s(fn: Callable[[], object], runs: int) -> float:
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def phases(n: int, runs: int, root: Path) -> tuple[list[list[object]], list[Metric]]:
    folder = root / f"noop-{n}"
    rows: list[list[object]] = []
    metrics: list[Metric] = []

    summed: list[float] = []

    def add(phase: str, seconds: float, note: str, *, in_sum: bool = False) -> None:
        if in_sum:
            summed.append(seconds)
        rows.append([phase, round(seconds * 1000, 1), note])
        slug = re.sub(r"[^a-z0-9]+", "_", phase.split(" (")[0].lower()).strip("_")
        metrics.append(Metric(f"noop.n{n}.{slug}_ms", seconds * 1000, "ms", False))

    python = _process_s("pass", runs)
    cli = _process_s("import journal.cli", runs)
    imports = _process_s(DEPLOY_IMPORTS, runs)
    add("interpreter (python -c pass)", python, "fresh process", in_sum=True)
    add("CLI import (click, commands)", cli - python, "what `journal --help` pays", in_sum=True)
    add(
        "deploy's imports",
        imports - cli,
        "engine, journal, runner, Prisma resources",
        in_sum=True,
    )
    with metadata_api() as api:
        os.environ.update({"BENCH_N": str(n), "BENCH_PROJECT_ID": make_project(api, f"noop-{n}")})
        program = write_program(folder)
        location = folder / ".journal" / "journal.db"
        deploy(program, location, "deploy", None)

        def derive() -> None:
            clear_kek_cache()
            Journal.open(location, password=PASSWORD, create=False).close()

        add("key derivation (Argon2id)", _in_process_s(derive, runs), "on a second thread")
        Journal.open(location, password=PASSWORD, create=False).close()  # cached from here
        add(
            "open the journal (key cached)",
            _in_process_s(lambda: Journal.open(location, password=PASSWORD).close(), runs),
            "",
        )
        with Journal.open(location, password=PASSWORD, create=False) as jr:
            check = _in_process_s(lambda: check_chain(jr), runs)
            add("chain check", check, "part of running the program")
            stream = f"{APP}/{STAGE}"
            state = _in_process_s(lambda: load_state(jr, stream), runs)
            add("load state", state, "part of running the program")
        run = _in_process_s(lambda: deploy(program, location, "deploy", None), runs)
        add("run the program", run, "open, lock, check, load, events", in_sum=True)
        add(
            "declare and decide",
            run - check - state,
            f"{n:,} resources: the program's loop, each one's decision",
        )
        env = {
            **os.environ,
            "JOURNAL_PASSWORD": PASSWORD,
            "JOURNAL_STAGE": STAGE,
            "NO_COLOR": "1",
            "PRISMA_API_URL": api.url,
        }
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                [*journal_command(), "deploy", str(folder)],
                cwd=folder,
                env=env,
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        whole = statistics.median(walls)
    total = sum(summed)
    add("sum: interpreter, imports, program", total, "the key derivation overlaps")
    add("`journal deploy`, no-op, whole command", whole, "fresh process")
    add(
        "the rest",
        whole - total,
        "the CLI's own steps (password check, stage binding), exit",
    )
    shutil.rmtree(folder, ignore_errors=True)
    return rows, metrics


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=_ints, default=[1000, 300], help="N (default 1000,300)")
    parser.set_defaults(runs=7)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_noop", extra=_extra, argv=argv)
    env = environment()
    print_header("bench_noop", env)
    print(f"# load average {load_average()}; {args.runs} runs, medians")
    journal_command()  # byte-compiles the package once, as every CLI figure assumes
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    metrics: list[Metric] = []
    root = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    try:
        for n in args.sizes:
            rows, found = phases(n, args.runs, root)
            headers = ["phase", "ms", "note"]
            print(f"\n## no-op deploy of N = {n:,}, by phase")
            print_table(headers, rows)
            tables[f"no-op deploy of N = {n:,}, by phase"] = (headers, rows)
            metrics += found
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return finish(args, env, metrics, tables)


if __name__ == "__main__":
    raise SystemExit(main())
