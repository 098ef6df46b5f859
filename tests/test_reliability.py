"""Reliability: what survives SIGKILL, flaky APIs, concurrent deploys and sick disks.

Every scenario ends the same way: ``journal.verify()`` passes, the projection (``load_state``)
has no pending operation and matches a full fold, and the remote side holds exactly what the
journal says: no duplicate names, no object the journal does not know (*unrecorded*), no
object the journal knows that is gone (*lost*).

- **Crash injection.** A deploy (or destroy) of 50 ``memory.Thing`` objects, whose remote side
  is an SQLite file (``MEMORY_CLOUD``) that outlives the process, runs in a child process that
  SIGKILLs itself at a chosen point: right after the transaction holding its K-th event
  commits (``commit:K``), inside that transaction before COMMIT (``txn:K``), around and inside
  the snapshot write (``snapshot:before|txn|after``); or the parent kills it at a random time
  (``random``). Then one more run, waiting for the stage's lock, must converge. Phases rotate:
  create, update and replace, destroy. Against the SQLite and the PostgreSQL journal; and the
  same with Prisma resources on the local API, checked against its inventory and the real
  PostgreSQL databases and roles.
- **Fault injection** through the local API: 429s, 5xx, timeouts and lost answers, 5% each;
  deploys and destroys converge within a few re-runs, without duplicates.
- **Concurrency**: processes deploying the same stage and other stages at once, waiting for
  the lock or retrying on ``LockedError``; runs of one stage never interleave.
- **Disk trouble**: the SQLite journal's disk fills up mid-run (a small tmpfs) or is read-only
  (remounted); PostgreSQL turns read-only mid-run; a store that fails after K appends (both
  stores). A clear error, a journal that verifies, and the next run converges.

The harness (``CrashScenario``, ``PrismaScenario``, ``fault_rounds``, ``concurrent_deploys``,
``store_failure_rounds``) takes its sizes as arguments: the tests run it small, and
``bench/soak.py`` runs it long, with the same checks.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from journal._errors import IntegrityError
from journal._journal import Journal
from journal._projection import load_state, rebuild_and_check

TESTS = Path(__file__).resolve().parent
PG = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
APP = "rel"

# --- the deploying process ------------------------------------------------------------------

CHILD = textwrap.dedent(
    '''
    """One run of the reliability suite; REL_KILL makes it SIGKILL itself at a chosen point."""
    import json, os, signal, sys, time

    APP = "rel"
    TRIPPED = []  # appends refused by the fail:K mode


    def install_kill(mode):
        if not mode:
            return
        from journal._store._postgres import PostgresStore
        from journal._store._sqlite import SQLiteStore

        kind, _, arg = mode.partition(":")
        state = {"rows": 0, "armed": False}

        def die():
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)

        def full(what):
            from journal._errors import StorageError

            raise StorageError(f"the disk is full while {what} (injected after {arg} rows)")

        for cls in (SQLiteStore, PostgresStore):
            def append(self, requests, seal, genesis, _orig=cls.append):
                rows = sum(len(r.plaintexts) for r in requests)
                if kind == "fail" and state["rows"] + rows > int(arg):
                    state["rows"] = int(arg)  # full from now on
                    TRIPPED.append(rows)
                    full(f"appending to the journal at {self.location}")
                if kind == "txn" and state["rows"] + rows >= int(arg):
                    state["armed"] = True  # die inside this transaction, before COMMIT
                result = _orig(self, requests, seal, genesis)
                state["rows"] += rows
                if kind == "commit" and state["rows"] >= int(arg):
                    die()
                return result

            def write(self, fn, action, _orig=cls._write):
                def wrapped(conn):
                    result = fn(conn)
                    if action == "appending to" and state["armed"]:
                        die()
                    if mode == "snapshot:txn" and action.startswith("writing a snapshot"):
                        die()
                    return result
                return _orig(self, wrapped, action)

            def put_snapshot(self, snapshot, _orig=cls.put_snapshot):
                if kind == "fail" and state["rows"] >= int(arg):
                    full("writing a snapshot")
                if mode == "snapshot:before":
                    die()
                _orig(self, snapshot)
                if mode == "snapshot:after":
                    die()

            cls.append, cls._write, cls.put_snapshot = append, write, put_snapshot


    def short_client_timeout(seconds):
        from journal.resources.prisma_postgres import _client

        real = _client.PrismaClient._default_http
        _client.PrismaClient._default_http = staticmethod(lambda timeout_s: real(seconds))


    def declare(kind, n, gen):
        if kind == "memory":
            from memory_provider import Thing

            replaces = os.environ.get("REL_REPLACES") == "1"
            parents = [Thing(f"p{i}", tag=f"g{gen}") for i in range(max(1, n // 5))]
            for i in range(n - len(parents)):
                # with replaces, every other generation replaces every 7th child
                size = 2 if replaces and gen % 2 == 1 and i % 7 == 0 else 1
                Thing(f"c{i}", parent=parents[i % len(parents)], tag=f"g{gen}", size=size)
        else:
            from journal.resources.prisma_postgres import Connection, Database, Project

            project = Project("project", delete=True)
            for i in range(n):
                db = Database(f"db{i}", project=project, name=f"db{i}-g{gen}", delete=True)
                Connection(f"con{i}", database=db)


    def once(kind, location, stage, phase, n, gen, timeout):
        import journal
        from journal._program.app import RunSettings, run_settings
        from journal._journal import Journal
        from journal._ops import destroy_stage

        if phase == "destroy":
            with Journal.open(location) as jr:
                return destroy_stage(jr, APP, stage, lock_timeout=timeout)
        settings = RunSettings(stage=stage, lock_timeout=timeout)
        with run_settings(settings), journal.app(APP, journal=location):
            declare(kind, n, gen)
        return settings.results[0]


    def main():
        env = os.environ
        install_kill(env.get("REL_KILL", ""))
        if env.get("REL_CLIENT_TIMEOUT"):
            short_client_timeout(float(env["REL_CLIENT_TIMEOUT"]))
        from journal._errors import JournalError, LockedError

        kind, location, stage = env["REL_KIND"], env["REL_LOCATION"], env["REL_STAGE"]
        if kind == "memory":
            import memory_provider  # registers memory.Thing (recovery and destroy need it)
        phase, n, gen = env["REL_PHASE"], int(env["REL_N"]), int(env.get("REL_GEN", "0"))
        timeout = float(env.get("REL_LOCK_TIMEOUT", "60"))
        rounds, retry = int(env.get("REL_ROUNDS", "1")), env.get("REL_RETRY") == "1"
        report = {"runs": [], "locked": 0, "tripped": TRIPPED}
        for r in range(rounds):
            while True:
                try:
                    result = once(kind, location, stage, phase, n, gen + r, timeout)
                except LockedError:
                    if not retry:
                        raise
                    report["locked"] += 1
                    time.sleep(0.02)
                    continue
                except JournalError as exc:
                    report["error"] = f"{type(exc).__name__}: {exc}"
                    print(json.dumps(report), flush=True)
                    sys.exit(1)
                break
            report["runs"].append({"status": result.status, "failures": result.failures})
            if not result.ok:
                print(json.dumps(report), flush=True)
                sys.exit(1)
        print(json.dumps(report), flush=True)


    main()
    '''
)


def _write_child(folder: Path) -> Path:
    path = folder / "rel_child.py"
    if not path.exists():
        path.write_text(CHILD)
    return path


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(TESTS), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.setdefault("JOURNAL_KDF", "minimum")
    env.update(extra)
    return env


@dataclass
class ChildRun:
    returncode: int
    killed: bool
    report: dict[str, Any]
    stderr: str
    seconds: float

    @property
    def why(self) -> str:
        return (json.dumps(self.report) + " " + self.stderr[-2000:]).strip()


def run_child(
    folder: Path,
    env: dict[str, str],
    *,
    kill_after_s: float | None = None,
    timeout: float = 180,
) -> ChildRun:
    """Run the child program; ``kill_after_s``: the parent SIGKILLs it after that long."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(_write_child(folder))],
        env=_child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if kill_after_s is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=kill_after_s)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    return ChildRun(
        proc.returncode, proc.returncode == -signal.SIGKILL, report, err, time.monotonic() - t0
    )


# --- tallies and checks ----------------------------------------------------------------------


@dataclass
class Tally:
    """What a scenario tried and what it found; every count after ``kills`` should be 0."""

    kill_points: int = 0  # kill points tried
    kills: int = 0  # runs that were really killed (the others finished first)
    converged: int = 0  # checks after a converging run that found nothing wrong
    reruns: int = 0  # runs beyond the first that converging needed
    duplicates: int = 0
    unrecorded: int = 0
    lost: int = 0
    verify_failures: int = 0
    pending_left: int = 0
    other: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return (
            self.duplicates
            + self.unrecorded
            + self.lost
            + self.verify_failures
            + self.pending_left
            + self.other
        )

    def add(self, other: Tally) -> None:
        for name in (
            "kill_points",
            "kills",
            "converged",
            "reruns",
            "duplicates",
            "unrecorded",
            "lost",
            "verify_failures",
            "pending_left",
            "other",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems


def _journal_side(location: str, stream: str, tally: Tally, where: str) -> Any:
    """Verify the journal and return the stream's state (None if it does not verify)."""
    with Journal.open(location, create=False) as jr:
        try:
            jr.verify()
        except IntegrityError as exc:
            tally.verify_failures += 1
            tally.problems.append(f"{where}: verify failed: {exc}")
            return None
        same, state = rebuild_and_check(jr, stream)
        if not same:
            tally.other += 1
            tally.problems.append(f"{where}: the snapshot disagrees with a full fold")
        pending = [r.id for r in state.resources.values() if r.pending is not None]
        if pending:
            tally.pending_left += len(pending)
            tally.problems.append(f"{where}: pending operations left: {pending}")
        return state


def _compare_ids(
    kind: str, remote: Sequence[tuple[str, str]], recorded: set[str], tally: Tally, where: str
) -> None:
    """``remote``: (id, unique name) of every remote object of one kind."""
    counts = collections.Counter(name for _, name in remote)
    dups = sorted(name for name, n in counts.items() if n > 1)
    if dups:
        tally.duplicates += len(dups)
        tally.problems.append(f"{where}: duplicate {kind} names: {dups}")
    ids = {oid for oid, _ in remote}
    if ids - recorded:
        tally.unrecorded += len(ids - recorded)
        tally.problems.append(f"{where}: unrecorded {kind}s: {sorted(ids - recorded)}")
    if recorded - ids:
        tally.lost += len(recorded - ids)
        tally.problems.append(f"{where}: {kind}s in the journal but gone: {sorted(recorded - ids)}")


def _recorded_ids(state: Any, type_name: str) -> set[str]:
    out: set[str] = set()
    for res in state.resources.values():
        if res.type == type_name:
            if res.outputs is not None:
                out.add(res.outputs["id"])
            out.update(r["outputs"]["id"] for r in res.retired)
    return out


# --- crash injection ---------------------------------------------------------------------------


def kill_plan(events: int, *, every: int = 0, randoms: int = 2) -> list[str]:
    """Kill points for a run of about ``events`` events: a spread of ``commit:K`` and ``txn:K``
    (or every ``every``-th K of both kinds), the three snapshot points, and random times."""
    if every:
        ks = list(range(1, events + 1, every))
        plan = [f"{mode}:{k}" for k in ks for mode in ("commit", "txn")]
    else:
        plan = [
            "commit:1",
            f"txn:{max(2, events // 5)}",
            f"commit:{events // 3}",
            f"txn:{events // 2}",
            f"commit:{2 * events // 3}",
            f"txn:{events - 3}",
            f"commit:{events - 1}",
        ]
    plan += ["snapshot:before", "snapshot:txn", "snapshot:after"]
    plan += ["random"] * randoms
    return plan


class CrashScenario:
    """One stage of ``n`` memory.Things in the journal at ``location``; the remote side is the
    SQLite file ``folder/cloud.db``. ``step`` runs a phase killed at a point, converges it and
    checks the result."""

    kind = "memory"

    def __init__(
        self,
        location: str,
        folder: Path,
        *,
        n: int = 50,
        stage: str = "crash",
        seed: int = 0,
        replaces: bool = False,
    ) -> None:
        self.location = location
        self.replaces = replaces
        self.folder = folder
        self.n = n
        self.stage = stage
        self.stream = f"{APP}/{stage}"
        self.rng = random.Random(seed)
        self.gen = -1
        self.phase_index = 0
        self.cloud = str(folder / "cloud.db")
        self.tally = Tally()
        self.random_window = (0.3, 1.5)

    def env(self, phase: str, kill: str = "") -> dict[str, str]:
        return {
            "REL_KIND": self.kind,
            "REL_LOCATION": self.location,
            "REL_STAGE": self.stage,
            "REL_PHASE": phase,
            "REL_N": str(self.n),
            "REL_GEN": str(max(self.gen, 0)),
            "REL_KILL": kill,
            "REL_LOCK_TIMEOUT": "60",
            "MEMORY_CLOUD": self.cloud,
            "MEMORY_LATENCY": "0.002",
            "REL_REPLACES": "1" if self.replaces else "0",
        }

    @property
    def events_per_run(self) -> int:
        return 2 * self.n + 3

    def next_phase(self) -> str:
        """create, update (+ replaces), destroy; again."""
        phase = ("deploy", "deploy", "destroy")[self.phase_index % 3]
        self.phase_index += 1
        if phase == "deploy":
            self.gen += 1
        return phase

    def step(self, kill: str, *, max_runs: int = 3) -> ChildRun:
        phase = self.next_phase()
        where = f"{self.kind} {phase} gen {self.gen} killed at {kill}"
        self.tally.kill_points += 1
        if kill == "random":
            delay = self.rng.uniform(*self.random_window)
            first = run_child(self.folder, self.env(phase), kill_after_s=delay)
        else:
            first = run_child(self.folder, self.env(phase, kill))
        if kill.startswith("fail:"):  # the store fails like a full disk: a clear error
            tripped = bool(first.report.get("tripped"))
            self.tally.kills += tripped
            if tripped and (first.returncode == 0 or "disk is full" not in first.why):
                self.tally.other += 1
                self.tally.problems.append(f"{where}: no clear error: {first.why}")
        else:
            self.tally.kills += first.killed
            if not first.killed and first.returncode != 0:
                self.tally.other += 1
                self.tally.problems.append(f"{where}: the run failed: {first.why}")
        runs = 0
        while True:
            runs += 1
            again = run_child(self.folder, self.env(phase))
            if again.returncode == 0:
                break
            if runs >= max_runs:
                self.tally.other += 1
                self.tally.problems.append(f"{where}: did not converge: {again.why}")
                return first
        self.tally.reruns += runs - 1
        before = self.tally.failed
        self.check(phase, where)
        if self.tally.failed == before:
            self.tally.converged += 1
        return first

    def remote(self) -> list[dict[str, Any]]:
        if not Path(self.cloud).exists():
            return []
        with contextlib.closing(sqlite3.connect(self.cloud, timeout=30)) as conn:
            rows = conn.execute("SELECT data FROM objects").fetchall()
        objects = [json.loads(r[0]) for r in rows]
        return [o for o in objects if o["name"].endswith(f"-{self.stage}")]

    def check(self, phase: str, where: str) -> None:
        state = _journal_side(self.location, self.stream, self.tally, where)
        if state is None:
            return
        objects = self.remote()
        recorded = _recorded_ids(state, "memory.Thing")
        _compare_ids("object", [(o["id"], o["name"]) for o in objects], recorded, self.tally, where)
        self._quarantine([o["id"] for o in objects if o["id"] not in recorded])
        want = self.n if phase == "deploy" else 0
        if len(state.resources) != want:
            self.tally.other += 1
            self.tally.problems.append(f"{where}: {len(state.resources)} resources, not {want}")
        stale = [o["name"] for o in objects if o["id"] in recorded and o["tag"] != f"g{self.gen}"]
        if phase == "deploy" and stale:
            self.tally.other += 1
            self.tally.problems.append(f"{where}: objects not updated: {stale[:5]}")

    def _quarantine(self, ids: list[str]) -> None:
        """Take unrecorded objects out of the remote side once they are counted, so that one
        leak is not counted again by every later check (and cannot mask a later one)."""
        if ids:
            with contextlib.closing(sqlite3.connect(self.cloud, timeout=30)) as conn:
                conn.executemany("DELETE FROM objects WHERE id = ?", [(i,) for i in ids])
                conn.commit()


class PrismaScenario(CrashScenario):
    """The same with a Project, ``n`` Databases and ``n`` Connections on the local API; the
    remote side is the API's inventory and the real databases and roles behind it."""

    kind = "prisma"

    def __init__(self, location: str, folder: Path, api: Any, **kw: Any) -> None:
        kw.setdefault("n", 2)
        super().__init__(location, folder, **kw)
        self.api = api
        self.random_window = (0.4, 2.5)

    def env(self, phase: str, kill: str = "") -> dict[str, str]:
        env = super().env(phase, kill)
        env.update(PRISMA_API_URL=self.api.url, PRISMA_SERVICE_TOKEN="token-reliability")
        return env

    @property
    def events_per_run(self) -> int:
        return 2 * (2 * self.n + 1) + 3

    def check(self, phase: str, where: str) -> None:
        from journal.resources.prisma_postgres.local._backend import (
            database_name,
            login_role,
            meta_database,
            owner_role,
        )

        state = _journal_side(self.location, self.stream, self.tally, where)
        if state is None:
            return
        inv = self.api.inventory()
        prefix = self.api.prefix
        t = "prisma-postgres."
        _compare_ids(
            "project",
            [(p.id, p.name) for p in inv.projects],
            _recorded_ids(state, t + "Project"),
            self.tally,
            where,
        )
        _compare_ids(
            "database",
            [(d.id, f"{d.project_id}/{d.name}") for d in inv.databases],
            _recorded_ids(state, t + "Database"),
            self.tally,
            where,
        )
        ours = [c for c in inv.connections if c.name != "default"]  # defaults come with a db
        _compare_ids(
            "connection",
            [(c.id, f"{c.database_id}/{c.name}") for c in ours],
            _recorded_ids(state, t + "Connection"),
            self.tally,
            where,
        )
        want_dbs = {database_name(prefix, d.id) for d in inv.databases}
        want_roles = {owner_role(prefix, d.id) for d in inv.databases}
        want_roles |= {login_role(prefix, c.id) for c in inv.connections}
        want_dbs.add(meta_database(prefix))  # the API's own records
        if set(inv.pg_databases) != want_dbs or set(inv.pg_roles) != want_roles:
            self.tally.unrecorded += 1
            self.tally.problems.append(
                f"{where}: PostgreSQL objects differ from the API's records: databases "
                f"{sorted(set(inv.pg_databases) ^ want_dbs)}, roles "
                f"{sorted(set(inv.pg_roles) ^ want_roles)}"
            )
        want = 2 * self.n + 1 if phase == "deploy" else 0
        if len(state.resources) != want:
            self.tally.other += 1
            self.tally.problems.append(f"{where}: {len(state.resources)} resources, not {want}")


def crash_rounds(scenario: CrashScenario, plan: Sequence[str]) -> Tally:
    for kill in plan:
        scenario.step(kill)
    return scenario.tally


# --- fault injection through the local API -------------------------------------------------------


def fault_rounds(
    scenario: PrismaScenario,
    rounds: int,
    *,
    rate: float = 0.05,
    seed: int = 1,
    server_timeout_s: float = 0.3,
    client_timeout_s: float | None = None,
    max_runs: int = 6,
) -> tuple[Tally, list[int]]:
    """``rounds`` times (deploy, update, destroy) with ``rate`` of each fault on every request;
    each phase is re-run until it succeeds (at most ``max_runs``). Returns the tally and how
    many runs each phase needed."""
    from journal.resources.prisma_postgres.local import Faults

    runs_needed: list[int] = []
    for r in range(rounds):
        for _ in range(3):
            phase = scenario.next_phase()
            where = f"faults round {r} {phase} gen {scenario.gen}"
            scenario.api.set_faults(
                Faults(
                    rate_429=rate,
                    rate_5xx=rate,
                    rate_lost=rate,
                    rate_timeout=rate,
                    timeout_s=server_timeout_s,
                    seed=seed * 1000 + len(runs_needed),
                )
            )
            env = scenario.env(phase)
            if client_timeout_s is not None:
                env["REL_CLIENT_TIMEOUT"] = str(client_timeout_s)
            runs = 0
            while True:
                runs += 1
                if run_child(scenario.folder, env).returncode == 0:
                    break
                if runs >= max_runs:
                    scenario.tally.other += 1
                    scenario.tally.problems.append(f"{where}: no success in {max_runs} runs")
                    break
            runs_needed.append(runs)
            scenario.api.set_faults(Faults())
            before = scenario.tally.failed
            scenario.check(phase, where)
            scenario.tally.converged += scenario.tally.failed == before
    return scenario.tally, runs_needed


# --- concurrent deploys ----------------------------------------------------------------------


def concurrent_deploys(
    location: str,
    folder: Path,
    *,
    writers: int = 4,
    stages: int = 2,
    rounds: int = 3,
    n: int = 10,
) -> tuple[Tally, int]:
    """``writers`` processes deploy ``rounds`` times each; writer w deploys stage ``w %
    stages``; odd writers wait for the lock, even ones retry on LockedError. Returns the tally
    and how many LockedErrors were retried."""
    cloud = str(folder / "cloud.db")
    procs = []
    for w in range(writers):
        env = {
            "REL_KIND": "memory",
            "REL_LOCATION": location,
            "REL_STAGE": f"s{w % stages}",
            "REL_PHASE": "deploy",
            "REL_N": str(n),
            "REL_GEN": str(w * 100),
            "REL_ROUNDS": str(rounds),
            "REL_RETRY": "1" if w % 2 == 0 else "0",
            "REL_LOCK_TIMEOUT": "0" if w % 2 == 0 else "120",
            "MEMORY_CLOUD": cloud,
            "MEMORY_LATENCY": "0.002",
            "REL_REPLACES": "0",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(_write_child(folder))],
                env=_child_env(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    tally = Tally()
    locked = 0
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            tally.other += 1
            tally.problems.append(f"writer {w} failed: {err[-2000:]}")
            continue
        locked += json.loads(out.splitlines()[-1])["locked"]
    with Journal.open(location, create=False) as jr:
        streams = [s for s in jr.streams() if s.startswith(f"{APP}/")]
        for stream in streams:
            current: str | None = None
            runs = 0
            for ev in jr.read(stream):
                kind, run = ev.payload["type"], ev.payload.get("run")
                if kind == "run.started":
                    if current is not None:
                        tally.other += 1
                        tally.problems.append(f"{stream}: run {run} started inside {current}")
                    current, runs = run, runs + 1
                elif run != current:
                    tally.other += 1
                    tally.problems.append(f"{stream}: event of run {run} inside run {current}")
                if kind == "run.finished":
                    current = None
            stage = int(stream.rsplit("/s", 1)[1])
            expected = rounds * sum(1 for w in range(writers) if w % stages == stage)
            if runs != expected:
                tally.other += 1
                tally.problems.append(f"{stream}: {runs} runs, not {expected}")
    for s in range(stages):
        scenario = CrashScenario(location, folder, n=n, stage=f"s{s}")
        scenario.tally = tally
        last_gen = _last_generation(location, f"{APP}/s{s}")
        scenario.gen = last_gen
        scenario.check("deploy", f"stage s{s} after concurrent deploys")
    tally.converged += tally.failed == 0
    return tally, locked


def _last_generation(location: str, stream: str) -> int:
    with Journal.open(location, create=False) as jr:
        state = load_state(jr, stream)
    tags = {r.props.get("tag") for r in state.resources.values()}
    assert len(tags) == 1, f"{stream} is not one generation: {tags}"
    return int(str(tags.pop())[1:])


# --- disk trouble ------------------------------------------------------------------------------


def store_failure_rounds(location: str, folder: Path, budgets: Sequence[int], n: int = 20) -> Tally:
    """For each budget K: a deploy (or destroy) whose store fails like a full disk once K rows
    are appended (``fail:K``): a clear error, a journal that verifies, and the next run (on a
    healthy store) converges."""
    scenario = CrashScenario(location, folder, n=n, stage="disk")
    return crash_rounds(scenario, [f"fail:{k}" for k in budgets])


# --- PostgreSQL helpers ------------------------------------------------------------------------


def pg_sql(query: str, params: tuple[Any, ...] = (), url: str = PG) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def pg_url(dbname: str) -> str:
    return urlunsplit(urlsplit(PG)._replace(path="/" + dbname, query=""))


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A journal URL in a schema of its own (dropped afterwards)."""
    name = "rel_" + secrets.token_hex(6)
    try:
        yield f"{PG}?schema={name}"
    finally:
        pg_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    name = "rel_" + secrets.token_hex(6)
    pg_sql(f"CREATE DATABASE {name}", url=pg_url("postgres"))
    try:
        yield pg_url(name)
    finally:
        pg_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", url=pg_url("postgres"))


@contextlib.contextmanager
def local_api() -> Iterator[Any]:
    from journal.resources.prisma_postgres.local import LocalPrismaApi

    api = LocalPrismaApi(postgres_url=pg_url("postgres"), prefix="rel" + uuid.uuid4().hex[:8])
    api.start()
    try:
        yield api
    finally:
        api.purge()


# --- the tests ---------------------------------------------------------------------------------


def _assert_clean(tally: Tally) -> None:
    assert tally.failed == 0, "\n".join(tally.problems)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / ".journal" / "journal.db")
    else:
        with pg_schema() as url:
            yield url


def test_sigkill_at_many_points_of_a_50_resource_deploy(location: str, tmp_path: Path) -> None:
    scenario = CrashScenario(location, tmp_path, n=50, seed=7)
    plan = kill_plan(scenario.events_per_run, randoms=2)
    tally = crash_rounds(scenario, plan)
    print(f"{tally.kill_points} kill points, {tally.kills} kills, {tally.reruns} reruns")
    _assert_clean(tally)
    assert tally.kills >= len(plan) - 3, "most kill points were reached"
    assert tally.converged == len(plan)


def test_a_crash_inside_a_replace_leaks_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / ".journal" / "journal.db")
    scenario = CrashScenario(location, tmp_path, n=5, stage="rep", replaces=True)
    scenario.next_phase()
    assert run_child(tmp_path, scenario.env("deploy")).returncode == 0  # gen 0: create
    scenario.next_phase()  # gen 1: replaces child c0 (same name)
    env = scenario.env("deploy")
    env["MEMORY_AFTER_CREATE"] = "30"  # every create then hangs: the kill lands after it
    proc = subprocess.Popen(
        [sys.executable, str(_write_child(tmp_path))],
        env=_child_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while len(scenario.remote()) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert len(scenario.remote()) == 6, "the new c0 exists beside the old one"
    assert run_child(tmp_path, scenario.env("deploy")).returncode == 0
    scenario.check("deploy", "after a crash inside a replace")
    _assert_clean(scenario.tally)


def test_sigkill_with_prisma_resources_on_the_local_api(tmp_path: Path) -> None:
    with pg_schema() as location, local_api() as api:
        scenario = PrismaScenario(location, tmp_path, api, n=2, seed=3)
        events = scenario.events_per_run
        plan = ["commit:1", f"txn:{events // 3}", f"commit:{events // 2}", "snapshot:txn", "random"]
        tally = crash_rounds(scenario, plan)
        _assert_clean(tally)
        assert tally.kills >= 3


def test_faults_on_the_local_api_converge_without_duplicates(tmp_path: Path) -> None:
    with pg_schema() as location, local_api() as api:
        scenario = PrismaScenario(location, tmp_path, api, n=2)
        tally, runs = fault_rounds(scenario, rounds=2, rate=0.05, seed=11)
        print(f"runs needed per phase: {runs}")
        _assert_clean(tally)
        assert max(runs) <= 6


class _FirstRequestIsSlow:
    """Stands in for the local API's fault injector: the first request is answered after
    ``seconds`` (and performed then); every other request is answered at once."""

    def __init__(self, seconds: float) -> None:
        from journal.resources.prisma_postgres.local import Faults

        self.faults = Faults(timeout_s=seconds)
        self.calls = 0

    def roll(self) -> tuple[Any, Any, int]:
        from journal.resources.prisma_postgres.local._faults import Fault

        self.calls += 1
        return self.faults, Fault.TIMEOUT if self.calls == 1 else Fault.NONE, 500

    def set(self, faults: Any) -> None:
        pass


def test_a_create_answered_after_the_client_gave_up_is_not_duplicated(tmp_path: Path) -> None:
    with pg_schema() as location, local_api() as api:
        scenario = PrismaScenario(location, tmp_path, api, n=1)
        api._injector = _FirstRequestIsSlow(1.5)  # POST /v1/projects, the run's first request
        scenario.next_phase()
        env = scenario.env("deploy")
        env["REL_CLIENT_TIMEOUT"] = "0.3"
        assert run_child(tmp_path, env).returncode == 1  # the project's create timed out
        time.sleep(1.5)  # the server performs it meanwhile
        assert run_child(tmp_path, scenario.env("deploy")).returncode == 0
        scenario.check("deploy", "after a create answered too late")
        _assert_clean(scenario.tally)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_deploys_of_the_same_and_other_stages(kind: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            location = str(tmp_path / ".journal" / "journal.db")
        else:
            location = stack.enter_context(pg_schema())
        tally, locked = concurrent_deploys(location, tmp_path, writers=4, stages=2, rounds=3)
        print(f"{locked} LockedErrors retried")
        _assert_clean(tally)


def test_a_store_that_fails_mid_run(location: str, tmp_path: Path) -> None:
    tally = store_failure_rounds(location, tmp_path, budgets=[1, 9, 25, 40, 3, 30], n=20)
    _assert_clean(tally)
    assert tally.kills == 6


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here (no mount command: {exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    filler = folder / "filler"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_sqlite_journal_on_a_full_then_read_only_disk(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    with _tmpfs(mnt, "4m"):
        location = str(mnt / ".journal" / "journal.db")
        scenario = CrashScenario(location, tmp_path, n=30, stage="disk")
        scenario.next_phase()
        assert run_child(tmp_path, scenario.env("deploy")).returncode == 0
        scenario.next_phase()  # an update of all 30: more than the disk has left
        with Journal.open(location, create=False) as jr:
            before = jr.head()[0]
        filler = _fill(mnt, leave=160 * 1024)
        full = run_child(tmp_path, scenario.env("deploy"))
        assert full.returncode == 1
        assert "disk is full" in full.why and "nothing was written" in full.why, full.why
        filler.unlink()
        with Journal.open(location, create=False) as jr:
            jr.verify()
            assert jr.head()[0] > before + 2, "the disk filled up in the middle of the run"
        assert run_child(tmp_path, scenario.env("deploy")).returncode == 0
        scenario.check("deploy", "after the disk was full")

        with Journal.open(location, create=False) as jr:
            head = jr.head()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        try:
            scenario.next_phase()  # destroy, on a read-only disk
            ro = run_child(tmp_path, scenario.env("destroy"))
            assert ro.returncode == 1
            # the journal opens read-only (it can be read); the run stops before any write,
            # at its stage's lock file, saying why
            error = ro.report["error"]
            assert error.startswith("StorageError: cannot create the run lock file"), error
            assert location in error and "Read-only file system" in error, error
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        with Journal.open(location, create=False) as jr:
            assert jr.head() == head and jr.verify().events == head[0]
        assert run_child(tmp_path, scenario.env("destroy")).returncode == 0
        scenario.check("destroy", "after the disk was read-only")
        _assert_clean(scenario.tally)


def _pg_events(url: str) -> int:
    if not pg_sql("SELECT 1 FROM pg_tables WHERE schemaname = 'journal'", url=url):
        return 0
    return int(pg_sql("SELECT count(*) FROM journal.events", url=url)[0][0])


def test_postgres_turns_read_only_mid_run(tmp_path: Path) -> None:
    with pg_database() as location:
        dbname = location.rsplit("/", 1)[1]
        scenario = CrashScenario(location, tmp_path, n=30, stage="ro")
        scenario.next_phase()
        env = scenario.env("deploy")
        env.update(MEMORY_LATENCY="0.1", JOURNAL_CONCURRENCY="2")  # a run of about 1.5 s
        proc = subprocess.Popen(
            [sys.executable, str(_write_child(tmp_path))],
            env=_child_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while _pg_events(location) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            admin = pg_url("postgres")
            pg_sql(f"ALTER DATABASE {dbname} SET default_transaction_read_only = on", url=admin)
            # new sessions are read-only; end the run's writer and readers (they reconnect),
            # not the session holding its lock (that is test_pg_store's lost-lock case)
            pg_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() "
                "AND query NOT LIKE 'INSERT INTO \"journal\".locks%%'",
                (dbname,),
                url=admin,
            )
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 1, err[-3000:]
        error = json.loads(out.splitlines()[-1])["error"]
        assert f"the journal database at {location} is read-only" in error, error
        before = _pg_events(location)
        pg_sql(f"ALTER DATABASE {dbname} RESET default_transaction_read_only", url=admin)
        with Journal.open(location, create=False) as jr:
            assert jr.verify().events == before >= 20  # stopped mid-run, and intact
        assert run_child(tmp_path, scenario.env("deploy")).returncode == 0
        scenario.check("deploy", "after PostgreSQL was read-only")
        _assert_clean(scenario.tally)
