"""Side by side with Alchemy 0.94: the same N-database program, the same local API, one run.

    python bench/bench_alchemy.py                      # N = 1,000 at 0 ms, N = 300 at 100 ms
    python bench/bench_alchemy.py --runs 5 --sizes 1000 --latency-sizes 300 --latency-ms 100
    python bench/bench_alchemy.py --compare bench/results/baseline.json
    python bench/bench_alchemy.py --record             # also save these metrics as the baseline

The anchor of issue 14. Pinned ``alchemy@0.94.0`` is installed from npm once into
``~/.cache/journal/npm`` (``bench/_alchemy.py``, shared with the import tests); without Node.js
or npm the script says so on one line and exits 0. For each latency (0 ms, then
``--latency-ms``), one local Prisma-compatible API process (metadata-only mode, as
bench_scale uses) serves both tools. Each run, one after the other in alternating order:

* TypeScript: ``alchemy.run.ts`` declares N databases in ``Promise.all`` in a project made
  beforehand; ``node --import tsx alchemy.run.ts`` deploys, deploys again (no-op) and destroys
  (``--destroy``); Alchemy's default destroy strategy is sequential (``--alchemy-destroy
  parallel`` for its other one);
* Python: the same N databases in a plain loop (bench_scale's program); the ``journal`` CLI
  deploys, deploys again and destroys (``destroy --yes``), each a fresh process paying the
  journal's key derivation (default profile) as a user's does.

Wall time of each process, medians of ``--runs``; after every deploy and destroy the API's
inventory is checked (Alchemy's destroy exits 0 even when a delete failed). The ratio is
journal / Alchemy; the goal is at most 0.5 on every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _alchemy
from _common import Metric, environment, finish, parse_args, print_header, print_table
from bench_scale import (
    PASSWORD,
    STAGE,
    TOKEN,
    ApiServer,
    _ints,
    journal_command,
    load_average,
    make_project,
    metadata_api,
    spread,
    write_program,
)

#: journal / Alchemy at most this: the goal of issue 14
GOAL = 0.5
CASES = ("deploy", "no-op", "destroy")
APP = "bench-scale"

ALCHEMY_PROGRAM = """\
// bench_alchemy's program: N databases declared in Promise.all (Alchemy 0.94)
import alchemy from "alchemy";
import { Database } from "alchemy/prisma-postgres";

const N = Number(process.env.BENCH_N);
const PROJECT_ID = process.env.BENCH_PROJECT_ID!;

const app = await alchemy("bench-scale", { destroyStrategy: DESTROY_STRATEGY });

await Promise.all(
  Array.from({ length: N }, (_, i) =>
    Database(`db-${i}`, { project: PROJECT_ID, delete: true }),
  ),
);

await app.finalize();
"""

JOURNAL_PROGRAM = '''\
"""bench_alchemy's program: N databases declared in a plain Python loop."""
import os

import journal
from journal.resources.prisma_postgres import Database

N = int(os.environ["BENCH_N"])
PROJECT_ID = os.environ["BENCH_PROJECT_ID"]

with journal.app("bench-scale") as app:
    for i in range(N):
        Database(f"db-{i}", project=PROJECT_ID, delete=True)
'''


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(runs=3)
    parser.add_argument("--sizes", type=_ints, default=[1000], help="N at zero latency")
    parser.add_argument(
        "--latency-sizes", type=_ints, default=[300], help="N with --latency-ms per call"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="per call (default 100)")
    parser.add_argument(
        "--alchemy-destroy",
        choices=("sequential", "parallel"),
        default="sequential",
        help="Alchemy's destroyStrategy (its default: sequential)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="journal's JOURNAL_CONCURRENCY"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the projects go")


@dataclass
class Tally:
    """Wall seconds per (tool, case) for one (latency, N)."""

    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, tool: str, case: str, seconds: float) -> None:
        self.samples.setdefault((tool, case), []).append(seconds)

    def median(self, tool: str, case: str) -> float | None:
        values = self.samples.get((tool, case))
        return statistics.median(values) if values else None


def _timed(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} exited {proc.returncode}: {' / '.join(tail)}")
    return wall


def _count(api: ApiServer, project_id: str) -> int:
    from journal.resources.prisma_postgres._client import PrismaClient

    with PrismaClient(token=TOKEN, base_url=api.url) as client:
        return len(client.list_databases(project_id=project_id))


def _check(api: ApiServer, project_id: str, expected: int, what: str) -> None:
    found = _count(api, project_id)
    if found != expected:
        raise RuntimeError(f"{what}: {found} databases on the API, expected {expected}")


def alchemy_lifecycle(
    folder: Path, api: ApiServer, n: int, strategy: str, tally: Tally, run: int
) -> None:
    project_id = make_project(api, f"alchemy-{n}-{run}")
    shutil.rmtree(folder / ".alchemy", ignore_errors=True)
    program = ALCHEMY_PROGRAM.replace("DESTROY_STRATEGY", f'"{strategy}"')
    _alchemy.prepare_project(folder, program)
    env = _alchemy.node_env(
        api.url,
        {
            "BENCH_N": str(n),
            "BENCH_PROJECT_ID": project_id,
            "PRISMA_SERVICE_TOKEN": TOKEN,
            "ALCHEMY_PASSWORD": PASSWORD,
        },
        STAGE,
    )
    steps = {
        "deploy": (_alchemy.node_command("alchemy.run.ts"), n),
        "no-op": (_alchemy.node_command("alchemy.run.ts"), n),
        "destroy": (_alchemy.node_command("alchemy.run.ts", "--destroy"), 0),
    }
    for case, (argv, expected) in steps.items():
        tally.add("alchemy", case, _timed(argv, folder, env, f"alchemy {case}"))
        _check(api, project_id, expected, f"alchemy {case}")


def journal_lifecycle(
    folder: Path, api: ApiServer, n: int, concurrency: int | None, tally: Tally, run: int
) -> None:
    project_id = make_project(api, f"journal-{n}-{run}")
    shutil.rmtree(folder / ".journal", ignore_errors=True)
    write_program(folder, JOURNAL_PROGRAM)
    env = {
        **os.environ,
        "JOURNAL_PASSWORD": PASSWORD,
        "JOURNAL_STAGE": STAGE,
        "NO_COLOR": "1",
        "BENCH_N": str(n),
        "BENCH_PROJECT_ID": project_id,
        "PRISMA_API_URL": api.url,
        "PRISMA_SERVICE_TOKEN": TOKEN,
    }
    if concurrency is not None:
        env["JOURNAL_CONCURRENCY"] = str(concurrency)
    journal = journal_command()
    steps = {
        "deploy": ([*journal, "deploy", str(folder)], n),
        "no-op": ([*journal, "deploy", str(folder)], n),
        "destroy": ([*journal, "destroy", "--yes"], 0),
    }
    for case, (argv, expected) in steps.items():
        tally.add("journal", case, _timed(argv, folder, env, f"journal {case}"))
        _check(api, project_id, expected, f"journal {case}")


def measure(root: Path, latency_ms: float, n: int, args: argparse.Namespace) -> Tally:
    tally = Tally()
    with metadata_api(latency_ms / 1000.0) as api:
        for run in range(max(1, args.runs)):
            order = ("alchemy", "journal") if run % 2 == 0 else ("journal", "alchemy")
            for tool in order:
                folder = root / f"{tool}-{latency_ms:g}ms-{n}"
                try:
                    if tool == "alchemy":
                        alchemy_lifecycle(folder, api, n, args.alchemy_destroy, tally, run)
                    else:
                        journal_lifecycle(folder, api, n, args.concurrency, tally, run)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    text = f"{tool}, N={n}, {latency_ms:g} ms, run {run + 1}: {exc}"
                    tally.failures.append(text)
                    print(f"warning: {text}", file=sys.stderr, flush=True)
            print(f"  {latency_ms:g} ms, N = {n:,}: run {run + 1} done", flush=True)
    return tally


def _slug(latency_ms: float, n: int, case: str) -> str:
    return f"alchemy.lat{latency_ms:g}ms.n{n}.{case.replace('-', '')}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_alchemy", extra=_extra, argv=argv)
    reason = _alchemy.missing_node()
    if reason is not None:
        print(f"bench_alchemy: skipped: {reason}")
        return 0
    try:
        home = _alchemy.alchemy_home()
    except _alchemy.AlchemyInstallFailed as exc:
        print(f"bench_alchemy: {exc}", file=sys.stderr)
        return 2
    env = environment()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    env["alchemy"] = f"Alchemy {_alchemy.ALCHEMY_VERSION} (Node {node})"
    print_header("bench_alchemy", env)
    started_load = load_average()
    print(f"# {env['alchemy']} from {home}; load average {started_load}")
    print(f"# {args.runs} runs of each lifecycle, alternating which tool goes first; medians\n")
    plan = [(0.0, n) for n in args.sizes] + [(args.latency_ms, n) for n in args.latency_sizes]
    root = Path(tempfile.mkdtemp(prefix="bench-alchemy-", dir=args.dir))
    metrics: list[Metric] = []
    headers = ["latency", "N", "case", "Alchemy s", "journal s", "journal / Alchemy", "goal"]
    rows: list[list[object]] = []
    spread_rows: list[list[object]] = []
    failures: list[list[object]] = []
    try:
        for latency_ms, n in plan:
            tally = measure(root, latency_ms, n, args)
            failures += [[f] for f in tally.failures]
            for case in CASES:
                theirs = tally.median("alchemy", case)
                ours = tally.median("journal", case)
                ratio = ours / theirs if ours is not None and theirs else None
                verdict = "-" if ratio is None else ("met" if ratio <= GOAL else "missed")
                rows.append(
                    [
                        f"{latency_ms:g} ms",
                        n,
                        case,
                        theirs if theirs is not None else "failed",
                        ours if ours is not None else "failed",
                        f"{ratio:.2f}" if ratio is not None else "-",
                        verdict,
                    ]
                )
                for tool in ("alchemy", "journal"):
                    spread_rows.append(
                        [
                            f"{latency_ms:g} ms",
                            n,
                            case,
                            tool,
                            spread(tally.samples.get((tool, case), [])),
                        ]
                    )
                slug = _slug(latency_ms, n, case)
                if ours is not None:
                    metrics.append(Metric(f"{slug}.journal_s", ours, "s", higher_is_better=False))
                if theirs is not None:
                    metrics.append(Metric(f"{slug}.alchemy_s", theirs, "s", higher_is_better=False))
                if ratio is not None:
                    metrics.append(Metric(f"{slug}.ratio", ratio, "x", higher_is_better=False))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ended_load = load_average()
    print(f"\n## side by side (goal: journal / Alchemy <= {GOAL}); load average {ended_load}")
    print_table(headers, rows)
    spread_headers = ["latency", "N", "case", "tool", "wall s min / median / max"]
    print_table(spread_headers, spread_rows)
    tables: dict[str, tuple[list[str], list[list[object]]]] = {
        "side by side": (headers, rows),
        "spread": (spread_headers, spread_rows),
    }
    if failures:
        print_table(["failed run"], failures)
        tables["failures"] = (["failed run"], failures)
    tables["conditions"] = (
        ["load average (1, 5, 15 min) at the start", "at the end"],
        [[started_load, ended_load]],
    )
    return finish(args, env, metrics, tables=tables)


if __name__ == "__main__":
    raise SystemExit(main())
