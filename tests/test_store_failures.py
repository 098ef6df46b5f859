"""The store through the CLI when things go wrong: a journal file that is empty or not a
journal, a migrate killed part way, a full disk under the run lock, a read-only file system,
a rekey to a weak password. Real files, real subprocesses, real mounts (skipped where the
sandbox cannot mount)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import memory_provider as mp
import pytest
from cli_harness import make_project, run

from journal._errors import StorageError
from journal._journal import Journal


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def _journal(project: Path) -> Path:
    return project / ".journal" / "journal.db"


# --- a journal file that is empty, or not a journal ---------------------------------------------


def test_an_empty_journal_file_is_refused_and_nothing_is_created_twice(
    project: Path, cloud: mp.Cloud
) -> None:
    run("deploy", code=0)
    assert len(cloud.all()) == 1
    head = run("verify", code=0).stdout.split("head: ")[1].strip()
    _journal(project).write_bytes(b"")  # the journal lost its contents
    for leftover in _journal(project).parent.glob("journal.db-*"):
        leftover.unlink()

    refused = run("deploy", code=2)
    assert "is an empty file, not a journal" in refused.stderr
    assert "--new" in refused.stderr
    assert len(cloud.all()) == 1  # nothing was created a second time
    assert _journal(project).read_bytes() == b""
    assert "empty file, not a journal" in run("plan", code=2).stderr

    lost = run("verify", "--expect-head", head, code=1)
    assert "is empty, but --expect-head says it held history" in lost.stderr
    assert "deploy first" not in lost.stderr

    started = run("deploy", "--new", code=0)
    assert "moved to" in started.stderr and "a new journal was started" in started.stderr
    assert len(list(_journal(project).parent.glob("journal.db.replaced-*"))) == 1


def test_verify_expect_head_on_a_missing_journal_reports_lost_history(project: Path) -> None:
    head = "3:" + "ab" * 32
    result = run("verify", "--expect-head", head, code=1)
    assert "is missing, but --expect-head says it held history" in result.stderr
    assert "deploy first" not in result.stderr
    assert "deploy first" in run("verify", code=2).stderr  # without a pinned head: as before


def test_configure_refuses_a_file_that_is_not_a_journal(project: Path) -> None:
    _journal(project).parent.mkdir()
    _journal(project).write_bytes(b"some notes, not a journal\n" * 20)
    result = run(
        "configure",
        "--provider",
        "prisma-postgres",
        "--from-env",
        "TOKEN",
        code=2,
        env={"TOKEN": "t0ken-value"},
    )
    assert "is not a journal" in result.stderr
    run(
        "configure",
        "--provider",
        "prisma-postgres",
        "--from-env",
        "TOKEN",
        "--new",
        code=0,
        env={"TOKEN": "t0ken-value"},
    )
    (aside,) = _journal(project).parent.glob("journal.db.replaced-*")
    assert aside.read_bytes() == b"some notes, not a journal\n" * 20


# --- rekey: weak passwords ----------------------------------------------------------------------


@pytest.mark.parametrize("weak", [" ", "        ", "short"])
def test_rekey_refuses_a_weak_password(
    project: Path, monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    run("deploy", code=0)
    before = _journal(project).read_bytes()
    monkeypatch.setenv("JOURNAL_NEW_PASSWORD", weak)
    result = run("rekey", code=2)
    assert "blank" in result.stderr or "too short" in result.stderr
    assert _journal(project).read_bytes() == before
    run("verify", code=0)  # the old password still opens it


# --- mounts: a full disk under the run lock, a read-only file system -----------------------------


@contextlib.contextmanager
def _mounted(args: list[str], where: Path) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_while_taking_the_run_lock_is_a_storage_error(project: Path) -> None:
    """The stages' lock files live in journal.db.locks/: a full tmpfs mounted there."""
    run("deploy", code=0)
    locks = project / ".journal" / "journal.db.locks"
    for old in locks.iterdir():
        old.unlink()
    with _mounted(["-t", "tmpfs", "-o", "size=64k", "tmpfs"], locks):
        fd = os.open(locks / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        result = run("deploy", code=1)
    assert "cannot write the run lock file" in result.stderr
    assert "No space left on device" in result.stderr
    assert "the program raised" not in result.stderr


def test_a_journal_on_a_read_only_file_system_can_be_read(project: Path) -> None:
    run("deploy", code=0)
    folder = project / ".journal"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with _mounted(["--bind", str(folder)], folder):
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only ({done.stderr.strip()})")
        assert "ok: " in run("verify", code=0).stdout
        assert "one" in run("history", code=0).stdout
        assert "one" in run("show", code=0).stdout
        refused = run("deploy", code=1)
        assert "read-only" in refused.stderr.lower()
        with Journal.open(_journal(project), create=False) as jr:
            assert jr.verify().events > 0
            with pytest.raises(StorageError, match=r"read-only \(it is on a read-only file"):
                jr.append("demo/dev", [{"type": "x"}])
            with pytest.raises(StorageError, match=r"can be read .* but not written"):
                jr.rekey("a new password here")
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before


# --- a migrate killed part way -------------------------------------------------------------------

MIGRATOR = textwrap.dedent(
    """
    import sys, time
    from journal._migrate import migrate
    source, target, stop_what, stop_at = sys.argv[1:5]

    def progress(what, done, total):
        print(what, done, total, flush=True)
        if what == stop_what and done == int(stop_at):
            print("PAUSED", flush=True)
            time.sleep(600)

    migrate(source, target, batch_rows=40, progress=progress)
    print("DONE", flush=True)
    """
)


def _source(project: Path) -> Path:
    source = project / "source.db"
    with Journal.open(source) as jr:
        for n in range(3):
            stream = f"app/s{n}"
            for i in range(4):
                jr.append(stream, [{"type": "e", "i": i, "j": j} for j in range(25)])
                jr.put_snapshot(stream, jr.head()[0], {"n": n, "i": i})
    return source


def _kill_migrate(source: Path, target: str, what: str, at: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", MIGRATOR, str(source), target, what, str(at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "PAUSED":
                break
        else:
            pytest.fail(f"the migrate ended before {what} {at}: {proc.stderr.read()}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("what", "at"),
    [("events", 40), ("events", 160), ("events", 300), ("snapshots", 12)],
)
def test_a_killed_migrate_leaves_a_target_that_refuses_to_open(
    project: Path, what: str, at: int
) -> None:
    """Killed after the first batch, in the middle, after the last event, and after the last
    snapshot (before the copy was compared and verified): never a copy that verifies."""
    source = _source(project)
    target = project / "copy.db"
    _kill_migrate(source, str(target), what, at)
    assert target.exists()
    result = run("verify", "--journal", str(target), code=1)
    assert "incomplete copy left by an interrupted `journal migrate`" in result.stderr
    assert "re-run `journal migrate` into a fresh target" in result.stderr
    assert "ok:" not in result.stdout
    assert "incomplete" in run("history", "--journal", str(target), code=1).stderr
    again = run("migrate", "--journal", str(source), "--to", str(target), code=2)
    assert "holds an incomplete copy left by an interrupted migrate" in again.stderr
    target.unlink()
    for leftover in project.glob("copy.db-*"):
        leftover.unlink()
    run("migrate", "--journal", str(source), "--to", str(target), code=0)
    assert "ok: 300 event(s)" in run("verify", "--journal", str(target), code=0).stdout


def test_a_migrate_to_postgres_killed_part_way_refuses_to_open(project: Path) -> None:
    import secrets

    import psycopg

    pg = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    schema = "jkill_" + secrets.token_hex(6)
    target = f"{pg}?schema={schema}"
    try:
        _kill_migrate(_source(project), target, "events", 120)
        result = run("verify", "--journal", target, code=1)
        assert "incomplete copy left by an interrupted `journal migrate`" in result.stderr
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_finished_migrate_is_complete(project: Path) -> None:
    source = _source(project)
    target = project / "copy.db"
    proc = subprocess.run(
        [sys.executable, "-c", MIGRATOR, str(source), str(target), "never", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("DONE"), proc.stderr
    assert (
        "ok: 300 event(s) in 3 stream(s)" in run("verify", "--journal", str(target), code=0).stdout
    )
