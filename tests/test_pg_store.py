"""The PostgreSQL store beyond the contract suite: run locks across processes (released when
the holder dies, waits and timeouts that name the holder), processes racing to create and
append, lost connections, read-only databases, error translation, and ``journal migrate``.

Each test gets a schema of its own in database ``test`` (``?schema=``), or, when it changes
database-wide settings, a database of its own; both are dropped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
import pytest
from click.testing import CliRunner

from journal._errors import (
    IntegrityError,
    JournalError,
    LockedError,
    StorageError,
    UnsupportedJournalError,
    UsageError,
    WrongPasswordError,
)
from journal._journal import Journal, KdfParams
from journal._migrate import migrate
from journal._store import open_store
from journal._store._postgres import DEFAULT_SCHEMA, PostgresStore, redact_url, translate_error

PG = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "pg-store test password"


def _admin_url(dbname: str = "postgres") -> str:
    """A URL of database ``dbname`` on the tests' server."""
    return urlunsplit(urlsplit(PG)._replace(path="/" + dbname, query=""))


def sql(query: str, params: tuple[Any, ...] = (), url: str = PG) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def schema() -> Iterator[str]:
    name = "pgt_" + secrets.token_hex(6)
    yield name
    sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def url(schema: str) -> str:
    return f"{PG}?schema={schema}"


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own (for database-wide settings); its URL."""
    name = "pgt_" + secrets.token_hex(6)
    sql(f"CREATE DATABASE {name}", url=_admin_url())
    yield _admin_url(name)
    sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", url=_admin_url())


def _terminate(pid: int) -> None:
    """End a backend, as a server restart or a network cut would, and wait until it is gone
    (pg_terminate_backend only signals it)."""
    sql("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while sql(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s UNION ALL "
        "SELECT 1 FROM pg_locks WHERE pid = %s",
        (pid, pid),
    ):
        assert time.monotonic() < deadline, f"backend {pid} did not exit"
        time.sleep(0.01)


def _open(location: str, **kw: Any) -> Journal:
    kw.setdefault("kdf", KdfParams.minimum())
    return Journal.open(location, password=kw.pop("password", PASSWORD), **kw)


def _env() -> dict[str, str]:
    return dict(os.environ, TEST_PASSWORD=PASSWORD)


def _fingerprint(schema: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for (table,) in sorted(sql("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))):
        rows = sql(f"SELECT * FROM {schema}.{table} ORDER BY 1")
        out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


# --- locations and URLs ----------------------------------------------------------------------


def test_location_never_shows_the_password() -> None:
    cases = {
        "postgresql://u:s3cret@h:5432/db": "postgresql://u@h:5432/db",
        "postgres://u:s3cret@h/db?schema=x": "postgres://u@h/db?schema=x",
        "postgresql://h/db?password=s3cret&sslmode=require": "postgresql://h/db?sslmode=require",
        "postgresql://u@h/db": "postgresql://u@h/db",
        "postgresql:///db": "postgresql:///db",
    }
    for url, shown in cases.items():
        assert redact_url(url) == shown
        store = open_store(url)
        assert store.location == shown and "s3cret" not in store.location
        store.close()


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    url = f"postgresql://journal:pa55word@127.0.0.1:{free}/db?connect_timeout=2"
    with pytest.raises(StorageError) as err:
        _open(url)
    text = str(err.value)
    assert "pa55word" not in text and err.value.__cause__ is None
    assert text.startswith(
        f"the journal database at postgresql://journal@127.0.0.1:{free}/db?connect_timeout=2 "
        "is unreachable (while connecting to it): "
    )
    assert err.value.exit_code == 1


def test_missing_database_says_to_create_it() -> None:
    url = _admin_url("pgt_missing_" + secrets.token_hex(4))
    with pytest.raises(StorageError, match=r"create the database first \(createdb\)"):
        _open(url)


def test_bad_urls_and_schemas_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not a valid PostgreSQL schema name"):
        open_store(f"{PG}?schema=" + "x" * 64)
    with pytest.raises(UsageError, match="is not a valid PostgreSQL URL"):
        open_store("postgresql://h/db?no_such_libpq_option=1")


@pytest.mark.parametrize(
    ("error", "cls", "text"),
    [
        (psycopg.errors.DiskFull("no space"), StorageError, "disk of the PostgreSQL server"),
        (psycopg.errors.ReadOnlySqlTransaction("ro"), StorageError, "is read-only"),
        (psycopg.errors.InsufficientPrivilege("denied"), StorageError, "denied the journal's"),
        (psycopg.errors.InvalidCatalogName("no db"), StorageError, "create the database first"),
        (psycopg.errors.InvalidPassword("pw"), StorageError, "refused the login"),
        (psycopg.errors.DataCorrupted("bad page"), IntegrityError, "is corrupt"),
        (psycopg.errors.UniqueViolation("dup"), StorageError, "at the same time"),
        (psycopg.errors.UndefinedTable("gone"), StorageError, "tables at"),
        (psycopg.errors.LockNotAvailable("busy"), StorageError, "stayed locked"),
        (psycopg.OperationalError("server closed"), StorageError, "is unreachable"),
        (psycopg.errors.SyntaxError("oops"), StorageError, "PostgreSQL error while appending"),
    ],
)
def test_psycopg_errors_are_translated(error: psycopg.Error, cls: type, text: str) -> None:
    translated = translate_error(error, "postgresql://u@h/db", "appending to", ["s3cret"])
    assert type(translated) is cls and text in str(translated)


# --- schema ----------------------------------------------------------------------------------


def test_default_schema_and_read_meta_writes_nothing(database: str) -> None:
    with pytest.raises(UsageError, match="no journal at"):
        _open(database, create=False)
    assert sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (DEFAULT_SCHEMA,), database) == []
    with _open(database) as jr:
        jr.append("app/dev", [{"type": "a"}])
        assert isinstance(jr.store, PostgresStore) and jr.store.schema == DEFAULT_SCHEMA
    tables = sql("SELECT tablename FROM pg_tables WHERE schemaname = 'journal'", url=database)
    assert sorted(t for (t,) in tables) == ["events", "keys", "locks", "meta", "snapshots"]


def test_other_tables_in_the_schema_are_not_a_journal(url: str, schema: str) -> None:
    sql(f"CREATE SCHEMA {schema}")
    sql(f"CREATE TABLE {schema}.todo (item text)")
    before = _fingerprint(schema)
    with pytest.raises(UnsupportedJournalError, match="holds tables but not a journal") as err:
        _open(url)
    assert err.value.exit_code == 2 and _fingerprint(schema) == before


def test_an_empty_schema_becomes_a_journal(url: str, schema: str) -> None:
    sql(f"CREATE SCHEMA {schema}")
    with _open(url) as jr:
        assert jr.append("app/dev", [{"type": "a"}])[0].seq == 1


def test_newer_format_is_refused(url: str, schema: str) -> None:
    with _open(url) as jr:
        jr.append("app/dev", [{"type": "a"}])
    sql(f"UPDATE {schema}.meta SET value = '2' WHERE key = 'format_version'")
    with pytest.raises(UnsupportedJournalError, match=r"format 2, newer .*: upgrade journal"):
        _open(url)


def test_stale_writer_fails_at_schema_level(url: str, schema: str) -> None:
    with _open(url) as jr:
        jr.append("app/dev", [{"type": "a"}])
    with pytest.raises(psycopg.errors.UniqueViolation, match="events_stream_version"):
        sql(f"INSERT INTO {schema}.events VALUES (2, 'app/dev', 1, 'k', '\\x00', '\\x00', '\\x00')")


def test_no_plaintext_in_the_database(url: str, schema: str) -> None:
    secret = "hunter2-" + secrets.token_hex(16) + "-geheimnis"
    kind = "resource.secret-type-" + secrets.token_hex(6)
    with _open(url) as jr:
        jr.append("app/dev", [{"type": kind, "outputs": {"dsn": {"$secret": secret}}}] * 3)
        jr.put_snapshot("app/dev", 3, {"resources": {"db": {"password": secret}}})
        with jr.lock("app/dev", holder={"actor": "ci"}):
            dump = repr([sql(f"SELECT * FROM {schema}.{t}") for t in _fingerprint(schema)])
    for needle in (secret, kind, json.dumps(secret)[1:-1]):
        assert needle not in dump
        assert needle.encode().hex() not in dump
    assert "actor" in dump  # the scan sees the holder row, which is clear text on purpose


# --- appends from threads and processes -----------------------------------------------------


def test_threads_are_group_committed(url: str) -> None:
    threads, per_thread = 12, 20
    with _open(url) as jr:
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait()
                for i in range(per_thread):
                    jr.append(f"app/t{n % 3}", [{"type": "w", "n": n, "i": i}])
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert errors == []
        total = threads * per_thread
        assert jr.store.stats.rows_appended == total
        assert jr.store.stats.append_transactions < total
        assert jr.verify().events == total


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from journal._errors import ConflictError
    from journal._journal import Journal, KdfParams
    location, stream, worker, count, start, mode = sys.argv[1:7]
    while time.time() < float(start):
        time.sleep(0.001)
    with Journal.open(location, password=os.environ["TEST_PASSWORD"],
                      kdf=KdfParams.minimum()) as jr:
        done = conflicts = 0
        while done < int(count):
            version = jr.stream_version(stream) if mode == "expect" else None
            try:
                jr.append(stream, [{"type": "w", "worker": worker, "i": done}],
                          expected_version=version)
                done += 1
            except ConflictError:
                conflicts += 1
        print(conflicts)
    """
)


@pytest.mark.parametrize("mode", ["expect", "blind"])
def test_processes_race_to_create_and_append(url: str, mode: str) -> None:
    """Four processes create the journal at once (one creation wins) and append 25 events
    each to one stream; with ``expect`` they pass expected_version and retry conflicts."""
    workers, count = 4, 25
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, "app/dev", f"w{n}", str(count), str(start), mode],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with _open(url) as jr:
        events = list(jr.read("app/dev"))
        assert len(events) == workers * count
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        for n in range(workers):
            mine = [e.payload["i"] for e in events if e.payload["worker"] == f"w{n}"]
            assert mine == list(range(count))
        assert jr.verify().events == len(events)


# --- run locks -------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from journal._journal import Journal
    jr = Journal.open(sys.argv[1], password=os.environ["TEST_PASSWORD"], create=False)
    with jr.lock("app/dev", holder={"actor": "alice", "command": "deploy"}):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)


def _holder(url: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(seconds)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked", proc.stderr and proc.stderr.read()
    return proc


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def test_lock_is_released_when_the_holder_process_dies(url: str, schema: str) -> None:
    with _open(url) as jr:
        proc = _holder(url, 60)
        try:
            with pytest.raises(LockedError) as err, jr.lock("app/dev", holder={"actor": "bob"}):
                pass
            assert err.value.holder["pid"] == proc.pid
            assert err.value.holder["actor"] == "alice"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            t0 = time.monotonic()
            with jr.lock("app/dev", holder={"actor": "bob"}, timeout=10):
                waited = time.monotonic() - t0
                rows = sql(f"SELECT holder FROM {schema}.locks WHERE stream = 'app/dev'")
                assert json.loads(rows[0][0])["actor"] == "bob"  # the dead holder's row replaced
            assert waited < 5, f"the dead holder's lock took {waited:.1f} s to go"
            assert sql(f"SELECT * FROM {schema}.locks") == []  # released cleanly: row gone
        finally:
            _reap(proc)


def test_lock_waits_and_the_timeout_names_actor_host_and_since(url: str) -> None:
    with _open(url) as jr:
        proc = _holder(url, 60)
        try:
            t0 = time.monotonic()
            with pytest.raises(LockedError) as err, jr.lock("app/dev", holder={}, timeout=0.6):
                pass
            assert time.monotonic() - t0 >= 0.6
            text = str(err.value)
            assert text.startswith("stage 'app/dev' is locked by another run (")
            assert "actor=alice" in text and "command=deploy" in text
            assert f"host={socket.gethostname()}" in text and f"pid={proc.pid}" in text
            since = err.value.holder["since"]
            assert isinstance(since, str)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}\+00:00", since)
            with jr.lock("app/prod", holder={"actor": "bob"}):  # other stages are free
                pass
        finally:
            _reap(proc)


def test_a_waiting_run_gets_the_lock_when_the_holder_finishes(url: str) -> None:
    with _open(url) as jr:
        proc = _holder(url, 0.8)
        try:
            t0 = time.monotonic()
            with jr.lock("app/dev", holder={"actor": "bob"}, timeout=20):
                assert time.monotonic() - t0 >= 0.3
        finally:
            _reap(proc)


def test_a_lost_lock_stops_the_run(url: str) -> None:
    with _open(url) as jr, jr.lock("app/dev", holder={"actor": "me"}):
        jr.append("app/dev", [{"type": "a"}])
        store = jr.store
        assert isinstance(store, PostgresStore)
        pid = store._held["app/dev"].info.backend_pid
        _terminate(pid)
        with pytest.raises(StorageError, match=r"lock of stage 'app/dev' .* was lost"):
            jr.append("app/dev", [{"type": "b"}])
        jr.append("app/other", [{"type": "c"}])  # streams it does not lock are unaffected
        assert [e.payload["type"] for e in jr.read()] == ["a", "c"]


def test_a_writer_stuck_on_the_head_times_out(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import journal._store._postgres as pg_store

    monkeypatch.setattr(pg_store, "WRITE_LOCK_TIMEOUT_S", 1)
    with _open(url) as jr, psycopg.connect(PG, autocommit=True) as other:
        jr.append("app/dev", [{"type": "a"}])
        with other.transaction():  # a writer that took the head and hangs in its transaction
            other.execute(
                "SELECT pg_advisory_xact_lock(%s)", (pg_store.advisory_key("journal-head", schema),)
            )
            t0 = time.monotonic()
            with pytest.raises(
                StorageError, match=r"stayed locked by another writer for \d+\.\d s"
            ):
                jr.append("app/dev", [{"type": "b"}])
            assert 0.9 < time.monotonic() - t0 < 10
        assert jr.append("app/dev", [{"type": "c"}])[0].seq == 2
        assert jr.verify().events == 2


def test_a_dropped_writer_connection_is_replaced(url: str) -> None:
    with _open(url) as jr:
        jr.append("app/dev", [{"type": "a"}])
        store = jr.store
        assert isinstance(store, PostgresStore) and store._writer_conn is not None
        _terminate(store._writer_conn.info.backend_pid)
        for conn in list(store._idle):
            _terminate(conn.info.backend_pid)
        assert jr.head()[0] == 1  # a dead reader is replaced, the read retried
        assert jr.append("app/dev", [{"type": "b"}])[0].seq == 2  # the writer reconnects
        assert jr.verify().events == 2


def test_read_only_database_is_a_clear_error_and_writes_nothing(database: str) -> None:
    with _open(database) as jr:
        jr.append("app/dev", [{"type": "a"}])
        dbname = database.rsplit("/", 1)[1]
        sql(f"ALTER DATABASE {dbname} SET default_transaction_read_only = on", url=_admin_url())
        store = jr.store
        assert isinstance(store, PostgresStore) and store._writer_conn is not None
        _terminate(store._writer_conn.info.backend_pid)
        with pytest.raises(StorageError, match=r"is read-only .*default_transaction_read_only"):
            jr.append("app/dev", [{"type": "b"}])
        sql(f"ALTER DATABASE {dbname} RESET default_transaction_read_only", url=_admin_url())
        store._drop_writer()
        assert jr.append("app/dev", [{"type": "c"}], expected_version=1)[0].seq == 2
        assert jr.verify().events == 2


# --- migrate ---------------------------------------------------------------------------------


def _sample(location: str) -> list[str]:
    with _open(location) as jr:
        for i in range(40):
            jr.append(f"app/s{i % 3}", [{"type": "e", "i": i, "blob": "x" * (i * 50)}] * 4)
        jr.put_snapshot("app/s1", 100, {"resources": {"a": 1}})
        jr.put_snapshot("app/s2", 160, {"resources": {"b": 2}})
        return [e.hash for e in jr.read()]


def _file_bytes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def test_migrate_sqlite_to_postgres_and_back(tmp_path: Path, url: str) -> None:
    src = tmp_path / "src" / "journal.db"
    hashes = _sample(str(src))
    before = _file_bytes(src.parent)
    report = migrate(src, url, password=PASSWORD, batch_rows=37)
    assert (report.events, report.snapshots, report.streams) == (160, 2, 3)
    assert report.head_hash == hashes[-1] and report.target == url
    after = _file_bytes(src.parent)
    locks = {name: digest for name, digest in after.items() if ".locks/" in name}
    empty = hashlib.sha256(b"").hexdigest()
    assert set(locks.values()) <= {empty}  # the stages' run locks were taken and released
    assert {k: v for k, v in after.items() if k not in locks} == before, "source changed"
    with _open(url, create=False) as jr:
        assert [e.hash for e in jr.read()] == hashes
        assert jr.latest_snapshot("app/s2") == (160, {"resources": {"b": 2}})
        jr.append("app/s0", [{"type": "after the move"}])  # the chain goes on
        assert jr.verify().events == 161

    back = tmp_path / "back" / "journal.db"
    report = migrate(url, back, password=PASSWORD)
    assert report.events == 161
    with _open(str(back), create=False) as jr:
        assert [e.hash for e in jr.read()][:160] == hashes and jr.verify().events == 161


def test_migrate_into_an_empty_file_and_refuse_any_other_file(tmp_path: Path) -> None:
    """A 0-byte file (as `mktemp` makes) is an empty location; a file with contents that is
    not a journal is refused and kept."""
    src = tmp_path / "journal.db"
    hashes = _sample(str(src))
    target = tmp_path / "copy.db"
    target.write_bytes(b"")
    assert migrate(src, target, password=PASSWORD).events == len(hashes)
    with _open(str(target), create=False) as jr:
        assert [e.hash for e in jr.read()] == hashes
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"my notes")
    with pytest.raises(JournalError, match="not a journal"):
        migrate(src, notes, password=PASSWORD)
    assert notes.read_bytes() == b"my notes"


def test_migrate_refuses_a_target_that_holds_a_journal(tmp_path: Path, url: str) -> None:
    src = tmp_path / "journal.db"
    _sample(str(src))
    with _open(url) as jr:
        jr.append("app/dev", [{"type": "theirs"}])
    with pytest.raises(UsageError, match=r"already holds a journal: migrate only into an empty"):
        migrate(src, url, password=PASSWORD)
    other = tmp_path / "other.db"
    with _open(str(other)):
        pass  # an empty journal is still a journal
    with pytest.raises(UsageError, match="already holds a journal"):
        migrate(src, other, password=PASSWORD)
    with pytest.raises(UsageError, match="are the same journal"):
        migrate(src, tmp_path / "." / "journal.db", password=PASSWORD)
    with _open(url) as jr:
        assert [e.payload["type"] for e in jr.read()] == ["theirs"]


def test_migrate_with_the_wrong_password_writes_nothing(
    tmp_path: Path, url: str, schema: str
) -> None:
    src = tmp_path / "journal.db"
    _sample(str(src))
    with pytest.raises(WrongPasswordError):
        migrate(src, url, password="not it")
    assert sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) == []


def test_migrate_waits_for_runs_in_progress(tmp_path: Path, url: str) -> None:
    _sample(url)
    with _open(url) as jr:
        jr.append("app/dev", [{"type": "e"}])
    proc = _holder(url, 60)
    try:
        with pytest.raises(LockedError, match="actor=alice"):
            migrate(url, tmp_path / "copy.db", password=PASSWORD, lock_timeout=0.2)
        assert (
            not (tmp_path / "copy.db").exists()
            or open_store(str(tmp_path / "copy.db")).read_meta() is None
        )
    finally:
        _reap(proc)


def test_migrate_command(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from journal.cli._commands_migrate import migrate as command
    from journal.cli._main import JournalGroup

    group = JournalGroup("journal", commands={"migrate": command})
    src = tmp_path / "journal.db"
    hashes = _sample(str(src))
    monkeypatch.setenv("JOURNAL_PASSWORD", PASSWORD)
    monkeypatch.setenv("JOURNAL_URL", str(src))
    result = CliRunner().invoke(group, ["migrate", "--to", url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        f"migrated 160 event(s) in 3 stream(s) and 2 snapshot(s) from {src} to {url} in "
    )
    assert lines[1] == f"verified: head 160:{hashes[-1]}"
    result = CliRunner().invoke(group, ["migrate", "--journal", str(src), "--to", url])
    assert result.exit_code == 2
    assert "error: the target" in result.output and "already holds a journal" in result.output
