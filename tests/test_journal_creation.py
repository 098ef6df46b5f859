"""Creating and opening a journal under stress: processes racing to create the same new
journal (both stores), a file in the way that is not a journal (refused unless ``new``),
compare-and-swap rekeys, chosen passwords, and waits that are reported as they were."""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from journal._errors import (
    KeysChangedError,
    MissingPasswordError,
    NoJournalError,
    NotAJournalError,
    StorageError,
    UnsupportedJournalError,
    WeakPasswordError,
    WrongPasswordError,
)
from journal._journal import MIN_PASSWORD_LENGTH, Journal, KdfParams
from journal._store import _sqlite as _sqlite_store
from journal._store._sqlite import SQLiteStore

PASSWORD = "creation-test password"
PG = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: the creation race: processes x iterations (each iteration a brand-new journal)
RACE_PROCESSES = 8
RACE_ITERATIONS = 200
PG_RACE_ITERATIONS = 40


def _admin_url(dbname: str = "postgres") -> str:
    return urlunsplit(urlsplit(PG)._replace(path="/" + dbname, query=""))


def _pg(query: str, url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of this test's own; its URL."""
    name = "jcreate_" + secrets.token_hex(6)
    _pg(f"CREATE DATABASE {name}", _admin_url())
    yield _admin_url(name)
    _pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", _admin_url())


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / ".journal" / "journal.db")
        return
    schema = "jcreate_" + secrets.token_hex(6)
    yield f"{PG}?schema={schema}"
    _pg(f"DROP SCHEMA IF EXISTS {schema} CASCADE", PG)


def _open(location: str, password: str = PASSWORD, **kw: Any) -> Journal:
    kw.setdefault("kdf", KdfParams.minimum())
    return Journal.open(location, password=password, **kw)


# --- the creation race -----------------------------------------------------------------------


def _race_worker(
    locations: list[str],
    barrier: Any,
    results: Any,
    worker: int,
) -> None:
    """One long-lived process: at each iteration, wait for every worker, then create (or
    find) the brand-new journal of that iteration, open it and append one event."""
    outcomes: list[tuple[int, str | None, str | None]] = []
    for i, where in enumerate(locations):
        try:
            barrier.wait(timeout=600)
        except threading.BrokenBarrierError:
            outcomes.append((i, None, "the barrier broke"))
            break
        try:
            with Journal.open(where, password=PASSWORD, kdf=KdfParams.minimum()) as jr:
                jr.append("app/dev", [{"type": "created", "worker": worker}])
                outcomes.append((i, jr.journal_id, None))
        except Exception as exc:
            outcomes.append((i, None, f"{type(exc).__name__}: {exc}"))
    results.put((worker, outcomes))


def _race(locations: list[str]) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(RACE_PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(locations, barrier, results, n))
        for n in range(RACE_PROCESSES)
    ]
    for proc in procs:
        proc.start()
    by_worker: dict[int, list[tuple[int, str | None, str | None]]] = {}
    try:
        while len(by_worker) < RACE_PROCESSES:
            try:
                worker, outcomes = results.get(timeout=900)
            except queue.Empty:
                pytest.fail(f"workers {sorted(set(range(RACE_PROCESSES)) - set(by_worker))} hung")
            by_worker[worker] = outcomes
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    failures = [
        f"iteration {i}, worker {w}: {error}"
        for w, outcomes in by_worker.items()
        for i, _, error in outcomes
        if error is not None
    ]
    assert failures == [], f"{len(failures)} failure(s):\n" + "\n".join(failures[:20])
    for i, where in enumerate(locations):
        ids = {outcomes[i][1] for outcomes in by_worker.values()}
        assert len(ids) == 1, f"iteration {i}: {len(ids)} different journals were created"
        with _open(where, create=False) as jr:
            assert jr.journal_id in ids
            workers = sorted(e.payload["worker"] for e in jr.read("app/dev"))
            assert workers == list(range(RACE_PROCESSES))
            assert jr.verify().events == RACE_PROCESSES


def test_processes_racing_to_create_a_sqlite_journal(tmp_path: Path) -> None:
    """8 processes x 200 brand-new journals: one journal each time, zero failures."""
    _race([str(tmp_path / f"j{i}" / "journal.db") for i in range(RACE_ITERATIONS)])


def test_processes_racing_to_create_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without hard links (link answers EPERM): creation falls back to a
    rename under an exclusive lock, with the same guarantees. The forked workers inherit
    the patched ``os.link``."""

    def no_link(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    _race([str(tmp_path / f"j{i}" / "journal.db") for i in range(PG_RACE_ITERATIONS)])
    assert (tmp_path / "j0" / "journal.db.create-lock").exists()  # the fallback did it


def test_processes_racing_to_create_a_postgres_journal(database: str) -> None:
    _race([f"{database}?schema=race_{i}" for i in range(PG_RACE_ITERATIONS)])


def test_busy_errors_report_the_time_really_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = str(tmp_path / "journal.db")
    with _open(where) as jr:
        jr.append("app/dev", [{"type": "a"}])
        monkeypatch.setattr(_sqlite_store, "BUSY_DEADLINE_S", 0.3)
        monkeypatch.setattr(_sqlite_store, "BUSY_TIMEOUT_MS", 10)
        other = sqlite3.connect(where, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            fresh = _open(where)  # a new connection: it takes the patched busy timeout
            try:
                with pytest.raises(StorageError, match="stayed locked") as err:
                    fresh.append("app/dev", [{"type": "b"}])
            finally:
                fresh.close()
        finally:
            other.execute("ROLLBACK")
            other.close()
        message = str(err.value)
        assert "60 s" not in message
        found = re.search(r"for (\d+\.\d) s", message)
        assert found is not None, message
        assert float(found.group(1)) >= 0.3  # it did wait the deadline, and says how long
        assert jr.append("app/dev", [{"type": "c"}])[0].seq == 2


# --- something in the way that is not a journal ------------------------------------------------


def test_an_empty_file_is_refused_and_never_recreated(tmp_path: Path) -> None:
    where = tmp_path / ".journal" / "journal.db"
    where.parent.mkdir()
    where.touch()
    with pytest.raises(NotAJournalError, match=r"is an empty file, not a journal.*--new") as err:
        _open(str(where))
    assert err.value.empty and err.value.exit_code == 2
    assert where.read_bytes() == b"" and sorted(p.name for p in where.parent.iterdir()) == [
        "journal.db"
    ]
    with pytest.raises(NotAJournalError):
        _open(str(where), create=False)
    with _open(str(where), new=True) as jr:  # the user says it is a new journal
        assert jr.append("app/dev", [{"type": "a"}])[0].seq == 1
        aside = jr.store.set_aside
    assert aside is not None and Path(aside).read_bytes() == b""  # moved, not deleted
    with _open(str(where)) as jr:
        assert jr.verify().events == 1


def test_an_empty_sqlite_database_and_other_files_are_refused(tmp_path: Path) -> None:
    where = tmp_path / "journal.db"
    sqlite3.connect(where).close()  # an SQLite database without tables
    where.write_bytes(b"")
    conn = sqlite3.connect(where)
    conn.execute("PRAGMA user_version = 1")  # a valid, empty database file
    conn.close()
    assert where.stat().st_size > 0
    with pytest.raises(NotAJournalError, match="an empty SQLite database"):
        _open(str(where))
    where.write_bytes(b"not a database at all " * 50)
    before = where.read_bytes()
    with pytest.raises(NotAJournalError, match="not a journal"):
        _open(str(where))
    with _open(str(where), new=True) as jr:
        aside = jr.store.set_aside
    assert aside is not None and Path(aside).read_bytes() == before


def test_new_never_replaces_a_journal_or_a_newer_one(tmp_path: Path) -> None:
    where = str(tmp_path / "journal.db")
    with _open(where) as jr:
        jr.append("app/dev", [{"type": "a"}])
        journal_id = jr.journal_id
    with _open(where, new=True) as jr:  # a journal is there: --new just opens it
        assert jr.journal_id == journal_id and jr.store.set_aside is None
    conn = sqlite3.connect(where)
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'format_version'")
    conn.commit()
    conn.close()
    with pytest.raises(UnsupportedJournalError, match="newer"):
        _open(where, new=True)


def test_no_journal_without_create_is_no_journal_error(location: str) -> None:
    with pytest.raises(NoJournalError, match="deploy first"):
        _open(location, create=False)


# --- rekey: compare-and-swap -------------------------------------------------------------------


def test_two_rekeys_of_the_same_keys_one_wins(location: str) -> None:
    with _open(location) as jr:
        jr.append("app/dev", [{"type": "a"}])
    first, second = _open(location), _open(location)
    try:
        first.rekey("the first new password")
        with pytest.raises(KeysChangedError, match=r"another process .* nothing was changed"):
            second.rekey("the second new password")
        with pytest.raises(KeysChangedError):  # and again: it never read the winner's keys
            second.rekey("the second new password")
    finally:
        first.close()
        second.close()
    for password in (PASSWORD, "the second new password"):
        with pytest.raises(WrongPasswordError):
            _open(location, password=password)
    with _open(location, password="the first new password") as jr:
        assert jr.verify().events == 1
        jr.rekey("and a third password")  # a journal opened after the rekey may rekey
    with _open(location, password="and a third password") as jr:
        assert jr.verify().events == 1


def _rekey_worker(location: str, barrier: Any, results: Any, n: int) -> None:
    with Journal.open(location, password=PASSWORD, create=False) as jr:
        barrier.wait(timeout=120)
        try:
            jr.rekey(f"new password of worker {n}")
            results.put((n, "won"))
        except KeysChangedError:
            results.put((n, "lost"))
        except Exception as exc:
            results.put((n, f"{type(exc).__name__}: {exc}"))


def test_concurrent_rekey_processes_exactly_one_wins(location: str) -> None:
    workers = 4
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        with _open(location, create=round_ == 0) as jr:
            if round_ == 0:
                jr.append("app/dev", [{"type": "a"}])
        barrier = ctx.Barrier(workers)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_rekey_worker, args=(location, barrier, results, n))
            for n in range(workers)
        ]
        for proc in procs:
            proc.start()
        outcomes = dict(results.get(timeout=300) for _ in procs)
        for proc in procs:
            proc.join(timeout=60)
        assert sorted(outcomes.values()) == ["lost"] * (workers - 1) + ["won"], outcomes
        (winner,) = [n for n, outcome in outcomes.items() if outcome == "won"]
        for n in range(workers):
            if n != winner:
                with pytest.raises(WrongPasswordError):
                    _open(location, password=f"new password of worker {n}")
        with _open(location, password=f"new password of worker {winner}") as jr:
            assert jr.verify().events == 1
            jr.rekey(PASSWORD)  # back, for the next round


# --- chosen passwords --------------------------------------------------------------------------


@pytest.mark.parametrize("weak", [" ", "\t \n", "short", "1234567", "   abc   "])
def test_weak_new_passwords_are_refused(location: str, weak: str) -> None:
    with pytest.raises(WeakPasswordError):
        _open(location, password=weak)  # creating a journal chooses its password
    with pytest.raises(NoJournalError):
        _open(location, create=False)  # and nothing was created
    with _open(location) as jr:
        with pytest.raises(WeakPasswordError, match=f"{MIN_PASSWORD_LENGTH}|blank"):
            jr.rekey(weak)
        with pytest.raises(MissingPasswordError):
            jr.rekey("")
    with _open(location) as jr:  # unchanged
        assert jr.verify().events == 0


def test_existing_journals_open_with_any_password(tmp_path: Path) -> None:
    """The minimum applies to passwords being chosen, not to journals that exist (made by an
    older version, with a short password)."""
    where = str(tmp_path / "old.db")
    store = SQLiteStore(where)
    store.create(Journal._new_meta("abc", KdfParams.minimum()))
    store.close()
    with _open(where, password="abc") as jr:
        assert jr.verify().events == 0


def test_a_failed_creation_leaves_no_staged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full (or any error) while the journal is being built: no half-made journal at the
    location, and no staging file left behind in its folder either."""

    def full(self: SQLiteStore, conn: sqlite3.Connection, meta: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SQLiteStore, "_write_meta", full)
    location = tmp_path / "journal.db"
    with pytest.raises(StorageError):
        Journal.open(str(location), password=PASSWORD, kdf=KdfParams.minimum())
    assert sorted(p.name for p in tmp_path.iterdir()) == []
