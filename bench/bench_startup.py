"""Start-up benchmark: `journal --help` and `journal history` on a small journal, cold.

    python bench/bench_startup.py                 # 15 runs of each; about half a minute
    python bench/bench_startup.py --runs 30 --importtime
    python bench/bench_startup.py --compare bench/results/baseline.json

Every measurement is a fresh process (the file cache is warm: one untimed run of each command
goes first), interleaved across commands so drifts hit all alike; medians of ``--runs`` (at
least 10). Next to the commands: the interpreter alone and ``import journal``, for scale.

``journal history`` reads a small journal (one deploy of a project, two databases and their
connections: a dozen events; ``journal deploy`` redeploys it, a no-op, against the local API)
made with the default key-derivation profile, so every process pays Argon2id once, as a
user's does; the same journal made with the minimum profile, and the derivation timed in this
process, show how much of it is the key.

Target (issue 7): ``journal --help`` under 150 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table
from bench_scale import (
    PASSWORD,
    STAGE,
    deploy,
    environ,
    journal_command,
    kdf_profile,
    key_derivation_s,
    load_average,
    metadata_api,
    spread,
    write_program,
)

from journal._journal import Journal, KdfParams

TARGET_HELP_MS = 150.0


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(runs=15)
    parser.add_argument("--importtime", action="store_true", help="show what `--help` imports")
    parser.add_argument("--dir", type=Path, default=None, help="where the journals go")


def small_journal(folder: Path, kdf: KdfParams | None) -> Path:
    """A journal holding one deploy of a small app (about a dozen events)."""
    program = write_program(folder)
    location = folder / ".journal" / "journal.db"
    location.parent.mkdir(parents=True, exist_ok=True)
    Journal.open(location, password=PASSWORD, kdf=kdf).close()
    with environ({"BENCH_N": "2", "BENCH_PROJECT_ID": ""}):
        deploy(program, location, "deploy", None)
    return location


def cold_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
    elapsed = (time.perf_counter() - t0) * 1000.0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-1000:]}")
    return elapsed


_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def import_profile(script: str, env: dict[str, str], top: int = 15) -> list[list[object]]:
    """The modules `journal --help` spends its import time in (-X importtime, cumulative)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", script, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = []
    for line in proc.stderr.splitlines():
        found = _IMPORT.match(line)
        if found:
            depth = len(found.group(3)) // 2
            rows.append(
                [found.group(4), depth, int(found.group(2)) / 1000, int(found.group(1)) / 1000]
            )
    rows.sort(key=lambda r: -float(r[2]))  # type: ignore[arg-type]
    return [r for r in rows if int(r[1]) <= 2][:top]  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_startup", extra=_extra, argv=argv)
    runs = max(10, args.runs)
    env = environment()
    print_header("bench_startup", env)
    started_load = load_average()
    print(f"# KDF {kdf_profile()}; load average {started_load}")
    print(f"# {runs} fresh processes per command, interleaved, medians\n")
    root = Path(tempfile.mkdtemp(prefix="bench-startup-", dir=args.dir))
    metrics: list[Metric] = []
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(metadata_api(0.0))  # up for the no-op deploys too
        default_kdf = small_journal(root / "default", None)
        minimum_kdf = small_journal(root / "minimum", KdfParams.minimum())
        derive_cold, derive_warm = key_derivation_s(default_kdf, runs=5)
        journal = journal_command()
        child_env = {
            **os.environ,
            "JOURNAL_PASSWORD": PASSWORD,
            "NO_COLOR": "1",
            "JOURNAL_STAGE": STAGE,
            "BENCH_N": "2",
            "BENCH_PROJECT_ID": "",
        }
        cases: dict[str, tuple[list[str], str]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], "python"),
            "python -c 'import journal'": ([sys.executable, "-c", "import journal"], "import"),
            "journal --version": ([*journal, "--version"], "version"),
            "journal --help": ([*journal, "--help"], "help"),
            "journal deploy --help": ([*journal, "deploy", "--help"], "deploy_help"),
            "journal history (small journal)": (
                [*journal, "history", "--journal", str(default_kdf), "--stage", STAGE],
                "history_small",
            ),
            "journal history (same, minimum KDF)": (
                [*journal, "history", "--journal", str(minimum_kdf), "--stage", STAGE],
                "history_small_min_kdf",
            ),
            "journal deploy, no-op (same journal)": (
                [*journal, "deploy", str(default_kdf.parent.parent)],
                "deploy_noop_small",
            ),
        }
        for argv_, _ in cases.values():  # warm the file cache
            cold_ms(argv_, child_env, root)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, (argv_, _) in cases.items():
                samples[name].append(cold_ms(argv_, child_env, root))
        headers = ["command", "median ms", "min / median / max s", "target ms", "verdict"]
        rows: list[list[object]] = []
        for name, (_, slug) in cases.items():
            med = statistics.median(samples[name])
            target: object = "-"
            verdict = "-"
            if slug == "help":
                target = TARGET_HELP_MS
                verdict = "met" if med < TARGET_HELP_MS else "missed"
            rows.append([name, med, spread([v / 1000 for v in samples[name]]), target, verdict])
            metrics.append(Metric(f"startup.{slug}_ms", med, "ms", higher_is_better=False))
        rows.append(
            [
                f"key derivation in process ({kdf_profile().split(' ')[0]})",
                (derive_cold - derive_warm) * 1000,
                "-",
                "-",
                "-",
            ]
        )
        metrics.append(
            Metric("startup.key_derivation_ms", (derive_cold - derive_warm) * 1000, "ms", False)
        )
        print_table(headers, rows)
        tables["start-up"] = (headers, rows)
        if args.importtime:
            imp_headers = ["module", "depth", "cumulative ms", "self ms"]
            imp_rows = import_profile(journal[0], child_env)
            print("## what `journal --help` imports (-X importtime, one run, depth <= 2)")
            print_table(imp_headers, imp_rows)
            tables["imports of --help"] = (imp_headers, imp_rows)
        ended_load = load_average()
        print(f"# load average at the end: {ended_load}")
        tables["conditions"] = (
            ["load average (1, 5, 15 min) at the start", "at the end"],
            [[started_load, ended_load]],
        )
        return finish(args, env, metrics, tables=tables)
    finally:
        stack.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
