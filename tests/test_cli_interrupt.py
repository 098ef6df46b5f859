"""Ctrl-C and SIGTERM through the CLI, in a subprocess, against the local API on an embedded
PostgreSQL of the test's own.

Signals are sent at moments chosen by watching the command's output lines (the first
``created`` line, half of them, ...), never by sleeping. After each
interruption: exit 130, one ``interrupted:`` line, no traceback; the next deploy converges
with nothing created twice, and destroy leaves nothing in the local API or in PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from journal._journal import Journal
from journal._projection import rebuild_and_check

pytestmark = pytest.mark.slow

APP = "interrupt"
STAGE = "t"
PROGRAM = """
import os
import journal
from journal.resources.prisma_postgres import Database, Project

with journal.app("interrupt") as app:
    project = Project("project", delete=True)
    for i in range(int(os.environ["N"])):
        Database(f"db{i}", project=project, delete=True)
"""
#: the size of the long case (the acceptance scenario); the others use SMALL
LARGE = int(os.environ.get("JOURNAL_TEST_INTERRUPT_N", "200"))
SMALL = int(os.environ.get("JOURNAL_TEST_INTERRUPT_SMALL", "40"))
#: DROP DATABASE forces a checkpoint: on a loaded 2-core machine 64 of them at once queue
#: past the local API's pool timeout (a load limit of the local API, not what is tested here)
DESTROY = ("destroy", "--local", "--yes", "--concurrency", "16")


@dataclass
class Outcome:
    returncode: int
    stdout: list[str]
    stderr: str

    @property
    def text(self) -> str:
        return "\n".join(self.stdout) + "\n--- stderr\n" + self.stderr


#: ``watch(proc, line, stderr_so_far)``, called for each stdout line
Watcher = Callable[[subprocess.Popen[str], str, list[str]], None]


@pytest.fixture
def project() -> Iterator[Path]:
    """A project folder outside pytest's temporary root (other pytest sessions reset that
    root to mode 0700, which locks out the embedded PostgreSQL's system user under root)."""
    pytest.importorskip("pgserver")
    from journal.resources.prisma_postgres.local import EmbeddedPostgres

    folder = Path(tempfile.mkdtemp(prefix="journal-int-"))
    (folder / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    try:
        yield folder
    finally:
        embedded = EmbeddedPostgres(folder / ".journal" / "postgres")
        if embedded.is_running():
            embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


def journal(
    project: Path, *args: str, n: int, watch: Watcher | None = None, timeout: float = 600
) -> Outcome:
    """Run ``journal ARGS`` in ``project``; ``watch(proc, line, stderr)`` sees each stdout
    line as it is printed (unbuffered), with the stderr lines printed so far."""
    env = {**os.environ, "N": str(n), "JOURNAL_STAGE": STAGE, "CI": "true"}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from journal.cli import main; main()", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err: list[str] = []

    def read_stderr() -> None:
        if proc.stderr is not None:
            for raw in proc.stderr:
                err.append(raw)

    reader = threading.Thread(target=read_stderr)
    reader.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if watch is not None:
                watch(proc, line, err)
        proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return Outcome(proc.returncode, lines, "".join(err))


def after(prefix: str, count: int, *signals: signal.Signals) -> Watcher:
    """Send ``signals`` once ``count`` lines start with ``prefix``: the first then, each
    further one on a later line once the process has said it is stopping (on stderr for a
    run, on stdout for ``dev``): two signals that arrive before Python runs its handler are
    seen as one."""
    seen = [0]
    acknowledged = [False]
    queue = list(signals)

    def watch(proc: subprocess.Popen[str], line: str, stderr: list[str]) -> None:
        if seen[0] >= count and queue:
            said = line.startswith("stopping") or any(e.startswith("stopping") for e in stderr)
            acknowledged[0] = acknowledged[0] or said
            if acknowledged[0]:
                proc.send_signal(queue.pop(0))  # a further signal, on a later line
                acknowledged[0] = False
            return
        if line.startswith(prefix):
            seen[0] += 1
            if seen[0] == count and queue:
                proc.send_signal(queue.pop(0))

    return watch


def assert_interrupted(out: Outcome) -> None:
    assert out.returncode == 130, out.text
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1, out.text
    assert "run `journal" in lines[0]
    assert "Traceback" not in out.stderr and "is closed" not in out.text, out.text
    assert "failed" not in "\n".join(out.stdout).replace("deploy failed", ""), out.text


def assert_converged(project: Path, n: int) -> None:
    """The journal verifies with nothing pending, and the local API and PostgreSQL hold
    exactly the stage's objects: each database once, ready, with its owner and login."""
    from journal.resources.prisma_postgres.local import LocalPrismaApi

    with Journal.open(project / ".journal" / "journal.db") as jr:
        jr.verify()
        same, state = rebuild_and_check(jr, f"{APP}/{STAGE}")
    assert same and state.pending() == []
    recorded = {
        r.outputs["id"]
        for r in state.resources.values()
        if r.outputs and r.type.endswith("Database")
    }
    api = LocalPrismaApi(data_dir=project / ".journal" / "postgres").start()
    try:
        inv = api.inventory()
    finally:
        api.stop()
    names = [d.name for d in inv.databases]
    assert len(names) == n and len(set(names)) == n, "each database exists once"
    assert {d.id for d in inv.databases} == recorded
    assert {d.state for d in inv.databases} <= {"ready"}
    assert len(inv.projects) == (1 if n else 0)
    assert len(inv.pg_databases) == n + 1, "its databases and the metadata database"
    assert len(inv.pg_roles) == 2 * n, "an owner and a default login per database"


def deploy_converges(project: Path, n: int) -> Outcome:
    out = journal(project, "deploy", "--local", n=n)
    assert out.returncode == 0, out.text
    assert f"{APP}/{STAGE}: deploy succeeded" in out.text
    assert_converged(project, n)
    again = journal(project, "deploy", "--local", n=n)
    assert again.returncode == 0 and f"{n + 1} unchanged" in again.text, again.text
    return out


def destroy_leaves_nothing(project: Path, n: int) -> None:
    out = journal(project, *DESTROY, n=n)
    assert out.returncode == 0, out.text
    assert_converged(project, 0)


def test_sigint_at_several_moments_of_a_large_local_deploy(project: Path) -> None:
    n = LARGE
    # once the first call ended (the project; a pipe gets no line when a call starts): the
    # databases are just being launched, most are not started
    first = journal(project, "deploy", "--local", n=n, watch=after("created", 1, signal.SIGINT))
    assert_interrupted(first)
    assert "stopping (SIGINT)" in first.stderr
    # half way through the databases
    half = journal(project, "deploy", "--local", n=n, watch=after("created", n // 2, signal.SIGINT))
    assert_interrupted(half)
    assert "resolving" not in half.text, "a stop leaves nothing pending"
    out = deploy_converges(project, n)
    assert "resolving" not in out.text
    # destroy, interrupted a quarter of the way
    stopped = journal(project, *DESTROY, n=n, watch=after("deleted", n // 4, signal.SIGINT))
    assert_interrupted(stopped)
    destroy_leaves_nothing(project, n)


def test_a_second_sigint_abandons_calls_in_flight(project: Path) -> None:
    n = SMALL
    out = journal(
        project,
        "deploy",
        "--local",
        n=n,
        watch=after("created", 3, signal.SIGINT, signal.SIGINT),
    )
    assert_interrupted(out)
    assert "abandoning the calls in flight" in out.stderr
    converged = deploy_converges(project, n)
    assert "deploy succeeded" in converged.text
    destroy_leaves_nothing(project, n)


def test_sigterm_stops_like_ctrl_c(project: Path) -> None:
    n = SMALL
    out = journal(project, "deploy", "--local", n=n, watch=after("created", 3, signal.SIGTERM))
    assert_interrupted(out)
    assert "stopping (SIGTERM)" in out.stderr
    deploy_converges(project, n)
    destroy_leaves_nothing(project, n)


def test_dev_twice_ctrl_c_abandons_then_deploy_converges(project: Path) -> None:
    n = SMALL
    out = journal(project, "dev", n=n, watch=after("created", 3, signal.SIGINT, signal.SIGINT))
    assert_interrupted(out)
    deploy_converges(project, n)
    destroy_leaves_nothing(project, n)


def test_a_wrong_password_with_local_starts_no_postgres(project: Path) -> None:
    with Journal.open(project / ".journal" / "journal.db", password="the right one"):
        pass
    env_password = os.environ["JOURNAL_PASSWORD"]
    assert env_password != "the right one"
    out = journal(project, "deploy", "--local", n=1)
    assert out.returncode == 2, out.text
    assert "password" in out.stderr and "Traceback" not in out.stderr
    assert not (project / ".journal" / "postgres").exists(), "initdb never ran"
    out = journal(project, "dev", "--once", n=1)
    assert out.returncode == 2 and not (project / ".journal" / "postgres").exists()


def test_plan_local_starts_nothing(project: Path) -> None:
    from journal.resources.prisma_postgres.local import EmbeddedPostgres

    fresh = journal(project, "plan", "--local", n=2)
    assert fresh.returncode == 0, fresh.text
    assert "plan: 3 to create" in fresh.text
    assert not (project / ".journal").exists(), "no journal, no PostgreSQL, nothing"
    assert journal(project, "deploy", "--local", n=2).returncode == 0
    EmbeddedPostgres(project / ".journal" / "postgres").stop()
    planned = journal(project, "plan", "--local", n=3)
    assert planned.returncode == 0, planned.text
    assert "plan: 1 to create, 3 unchanged" in planned.text
    assert "starting the local" not in planned.text
    assert not EmbeddedPostgres(project / ".journal" / "postgres").is_running()
