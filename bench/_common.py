"""Shared helpers for the benchmark scripts in ``bench/`` (scripts, not tests).

A script builds a list of ``Metric`` objects and one or more tables, then calls ``finish``::

    args = parse_args("what this measures", name="bench_x", extra=add_my_flags)
    env = environment()
    print_header("bench_x", env)
    ...
    print_table(["case", "rate"], rows)
    return finish(args, env, metrics, tables={"main": (headers, rows)})

``finish`` writes ``bench/results/<name>.json`` (or ``--json PATH``; ``--no-json`` to skip) and,
with ``--compare BASELINE.json``, prints every metric against the baseline and flags changes
for the worse beyond ``--threshold`` (default 20%); the exit status is then 1. ``--record``
merges this run's metrics into ``bench/results/baseline.json`` (same names replaced, the other
scripts' metrics kept), after the comparison.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BASELINE",
    "RESULTS",
    "Metric",
    "environment",
    "finish",
    "fmt",
    "median_of",
    "parse_args",
    "print_header",
    "print_table",
    "timed",
]

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
BASELINE = RESULTS / "baseline.json"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    higher_is_better: bool = True


def parse_args(
    description: str,
    *,
    name: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--json", type=Path, default=RESULTS / f"{name}.json", help="output")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    parser.add_argument("--compare", type=Path, help="a baseline JSON written by this script")
    parser.add_argument(
        "--threshold", type=float, default=0.20, help="relative change flagged (default 0.20)"
    )
    parser.add_argument(
        "--record", action="store_true", help=f"merge these metrics into {BASELINE.name}"
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.bench_name = name
    return args


def _git(*cmd: str) -> str:
    try:
        out = subprocess.run(
            ["git", *cmd], cwd=BENCH, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def environment() -> dict[str, Any]:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": commit + ("+dirty" if dirty else ""),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else (os.cpu_count() or 0),
    }


def print_header(title: str, env: dict[str, Any]) -> None:
    print(f"# {title}")
    print(
        f"# {env['date']}  commit {env['commit']}  {env['python']}  {env['platform']}  "
        f"cores {env['cores_usable']}/{env['cores']}"
    )
    print()


def fmt(value: object) -> str:
    """Numbers with sensible precision and thousands separators; anything else as str."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def numeric(i: int) -> bool:
        return all(isinstance(row[i], int | float) for row in rows) and bool(rows)

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric(i) else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "| " + " | ".join(parts) + " |"

    print(line(list(headers)))
    print(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if numeric(i) else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    for row in cells:
        print(line(row))
    print()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_of(fn: Callable[[], float], runs: int) -> float:
    """Median of ``runs`` calls of ``fn``, which returns one measurement."""
    return statistics.median(fn() for _ in range(max(1, runs)))


def _compare(metrics: Sequence[Metric], baseline: Path, threshold: float) -> list[str]:
    data = json.loads(baseline.read_text())
    old = {m["name"]: m for m in data.get("metrics", [])}
    rows: list[list[object]] = []
    flagged: list[str] = []
    for metric in metrics:
        before = old.get(metric.name)
        if before is None or not before.get("value"):
            rows.append([metric.name, "-", metric.value, "-", "new"])
            continue
        change = (metric.value - before["value"]) / abs(before["value"])
        worse = -change if metric.higher_is_better else change
        status = "REGRESSION" if worse > threshold else ("improved" if -worse > threshold else "")
        if status == "REGRESSION":
            flagged.append(metric.name)
        rows.append([metric.name, before["value"], metric.value, f"{change:+.1%}", status])
    print(f"## compared with {baseline} ({data.get('environment', {}).get('commit', '?')})")
    print_table(["metric", "baseline", "now", "change", ""], rows)
    return flagged


def finish(
    args: argparse.Namespace,
    env: dict[str, Any],
    metrics: Sequence[Metric],
    tables: dict[str, tuple[Sequence[str], Sequence[Sequence[object]]]] | None = None,
) -> int:
    """Write the JSON results, compare with a baseline if asked; return the exit status."""
    if not args.no_json:
        path: Path = args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": args.bench_name,
            "environment": env,
            "arguments": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k not in {"bench_name"}
            },
            "metrics": [asdict(m) for m in metrics],
            "tables": {
                name: {"headers": list(h), "rows": [list(r) for r in rows]}
                for name, (h, rows) in (tables or {}).items()
            },
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"results written to {path}")
    flagged = [] if args.compare is None else _compare(metrics, args.compare, args.threshold)
    if getattr(args, "record", False):
        record(args.bench_name, env, metrics)
    if flagged:
        print(f"regressions beyond {args.threshold:.0%}: {', '.join(flagged)}", file=sys.stderr)
        return 1
    return 0


def record(name: str, env: dict[str, Any], metrics: Sequence[Metric]) -> None:
    """Merge ``metrics`` into the baseline: same names replaced, every other metric kept."""
    data: dict[str, Any] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    fresh = {m.name for m in metrics}
    kept = [m for m in data.get("metrics", []) if m.get("name") not in fresh]
    data["metrics"] = kept + [asdict(m) for m in metrics]
    data.setdefault("sources", {})[name] = env
    data.setdefault("benchmark", "baseline (bench/run_all.py --record-baseline)")
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{len(metrics)} metrics of {name} recorded in {BASELINE}")
