"""Contract tests of the journal over every store (today: SQLite).

Each test gets a fresh ``Target``: one journal location of one store kind. A PostgreSQL store
joins by adding a kind to ``STORE_KINDS`` and a branch to ``target`` that returns a fresh
database URL and a ``fingerprint`` of that database. Tests that need raw file access (the
no-plaintext scan, simulated disk full) are SQLite-only and say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from journal._crypto import genesis_hash
from journal._errors import (
    ConflictError,
    LockedError,
    MissingPasswordError,
    NotAJournalError,
    StorageError,
    UnknownSequenceError,
    UnsupportedJournalError,
    UsageError,
    WrongPasswordError,
)
from journal._journal import Event, Journal, KdfParams, VerifyReport
from journal._secret import Secret
from journal._store import open_store
from journal._store._sqlite import SQLiteStore, translate_error

PASSWORD = "contract-test password ✓"
STORE_KINDS = ["sqlite", "postgres"]
#: the PostgreSQL server of the tests (each test gets a schema of its own in database `test`)
PG_SERVER = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Target:
    kind: str
    location: str
    root: Path  # everything this target may write lives under here

    def open(self, password: str | None = PASSWORD, **kw: Any) -> Journal:
        kw.setdefault("kdf", KdfParams.minimum())
        return Journal.open(self.location, password=password, **kw)

    def fingerprint(self) -> dict[str, str]:
        """The stored bytes; equal fingerprints = nothing was written. (-shm is SQLite's
        shared-memory index, rewritten by every reader, and is not data.)"""
        if self.kind == "postgres":
            return _pg_fingerprint(self.location)
        return {
            str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm")
        }


@pytest.fixture(params=STORE_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        root = tmp_path / "store"
        root.mkdir()
        return Target("sqlite", str(root / ".journal" / "journal.db"), root)
    if request.param == "postgres":
        schema = "contract_" + secrets.token_hex(6)
        (tmp_path / "store").mkdir()
        request.addfinalizer(lambda: _pg_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        return Target("postgres", f"{PG_SERVER}?schema={schema}", tmp_path / "store")
    raise AssertionError(request.param)


def _pg_sql(sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def _pg_fingerprint(location: str) -> dict[str, str]:
    """Every table of the journal's schema, row by row: equal = nothing was written."""
    schema = location.rpartition("?schema=")[2]
    tables = _pg_sql(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")
    out = {"schemas": repr(_pg_sql(f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'"))}
    for (table,) in sorted(tables):
        rows = _pg_sql(f"SELECT * FROM {schema}.{table} ORDER BY 1")
        out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


@pytest.fixture
def jr(target: Target) -> Iterator[Journal]:
    with target.open() as journal:
        yield journal


def _types(events: Iterator[Event] | list[Event]) -> list[str]:
    return [e.payload["type"] for e in events]


# --- round trips ---------------------------------------------------------------------------

SHAPES: list[dict[str, Any]] = [
    {"type": "empty"},
    {"type": "unicode", "text": "héllo wörld ✓ 日本語 🚀 עברית \u0301e", "ключ": "значение"},
    {"type": "nul and escapes", "s": 'a\x00b\n\t"\\/', "ctrl": "\x01\x1f"},
    {"type": "numbers", "big": 2**62, "neg": -(2**40), "float": 1.5e-300, "zero": 0.0},
    {"type": "literals", "t": True, "f": False, "none": None, "empty": [], "obj": {}},
    {"type": "nested", "a": {"b": {"c": [1, [2, [3, {"d": ["e"] * 10}]]]}}},
    {"type": "large", "blob": "x" * 1_000_000, "list": list(range(10_000))},
    {"type": "ünïcödé type ✓", "resource": {"props": {"region": "us-east-1"}}},
]


def test_round_trip_of_many_shapes(jr: Journal) -> None:
    written = jr.append("app/dev", SHAPES)
    assert [e.seq for e in written] == list(range(1, len(SHAPES) + 1))
    assert [e.version for e in written] == list(range(1, len(SHAPES) + 1))
    assert [e.payload for e in written] == SHAPES
    read = list(jr.read())
    assert read == written
    for event in read:
        assert event.stream == "app/dev"
        assert len(event.hash) == 64 and int(event.hash, 16) >= 0
        assert event.key_id == written[0].key_id
        assert jr.event(event.seq) == event
    assert jr.head() == (len(SHAPES), written[-1].hash)


def test_payload_round_trip_survives_reopen(target: Target) -> None:
    with target.open() as journal:
        written = journal.append("app/dev", SHAPES[:4])
    with target.open(create=False) as journal:
        assert list(journal.read()) == written


def test_empty_journal(jr: Journal) -> None:
    seq, digest = jr.head()
    assert seq == 0 and digest == genesis_hash(jr.journal_id).hex()
    assert jr.streams() == [] and jr.stream_version("app/dev") == 0
    assert list(jr.read()) == [] and jr.latest_snapshot("app/dev") is None
    assert jr.verify() == VerifyReport(events=0, head_seq=0, head_hash=digest, streams=0)
    assert len(jr.journal_id) == 32
    assert "://" in jr.location or jr.location == os.path.abspath(jr.location)


def test_invalid_payloads_write_nothing(jr: Journal) -> None:
    jr.append("app/dev", [{"type": "first"}])
    bad: list[list[Any]] = [
        [{"type": "ok"}, {"no": "type"}],
        [{"type": "ok"}, {"type": "set", "v": {1, 2}}],
        [{"type": "ok"}, {"type": "nan", "v": float("nan")}],
        [{"type": "ok"}, {"type": "secret", "v": Secret("hidden")}],
        [{"type": 3}],
        ["not a mapping"],
    ]
    for payloads in bad:
        with pytest.raises(UsageError):
            jr.append("app/dev", payloads)
    with pytest.raises(UsageError):
        jr.append("app/dev", {"type": "single mapping"})  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        jr.append("", [{"type": "x"}])
    assert jr.head()[0] == 1 and jr.verify().events == 1
    assert jr.append("app/dev", []) == []


def test_read_filters(jr: Journal) -> None:
    # 1300 events (more than one page) interleaved over two streams, in a few appends
    for i in range(13):
        stream = "app/a" if i % 2 == 0 else "app/b"
        jr.append(stream, [{"type": "e", "i": i, "j": j} for j in range(100)])
    assert jr.head()[0] == 1300
    assert jr.streams() == ["app/a", "app/b"]
    assert jr.stream_version("app/a") == 700 and jr.stream_version("app/b") == 600

    every = list(jr.read())
    assert [e.seq for e in every] == list(range(1, 1301))
    a = list(jr.read("app/a"))
    assert [e.version for e in a] == list(range(1, 701))
    assert all(e.stream == "app/a" for e in a)
    assert [e.seq for e in a] == sorted(e.seq for e in every if e.stream == "app/a")

    assert [e.seq for e in jr.read(after_seq=1295)] == [1296, 1297, 1298, 1299, 1300]
    assert [e.seq for e in jr.read(upto_seq=3)] == [1, 2, 3]
    assert [e.seq for e in jr.read(after_seq=10, upto_seq=12)] == [11, 12]
    assert [e.seq for e in jr.read(reverse=True, limit=3)] == [1300, 1299, 1298]
    assert [e.seq for e in jr.read(reverse=True, after_seq=1297)] == [1300, 1299, 1298]
    rev = [e.seq for e in jr.read(reverse=True)]
    assert rev == list(range(1300, 0, -1))
    assert [e.seq for e in jr.read(upto_seq=700, reverse=True, limit=2)] == [700, 699]
    assert [e.seq for e in jr.read(limit=600)] == list(range(1, 601))
    assert list(jr.read(limit=0)) == []
    b_rev = list(jr.read("app/b", reverse=True, limit=1000))
    assert [e.version for e in b_rev] == list(range(600, 0, -1))
    assert [e.seq for e in jr.read("app/b", after_seq=100, upto_seq=205)] == list(range(101, 201))
    assert list(jr.read("app/none")) == []
    with pytest.raises(UsageError):
        jr.read(limit=-1)
    with pytest.raises(UsageError):
        jr.read(after_seq=-1)


def test_event_by_seq(jr: Journal) -> None:
    with pytest.raises(UnknownSequenceError, match="empty"):
        jr.event(1)
    jr.append("app/dev", [{"type": "a"}, {"type": "b"}])
    assert jr.event(2).payload == {"type": "b"}
    with pytest.raises(UnknownSequenceError, match=r"no event 3 .* events 1 to 2") as err:
        jr.event(3)
    assert err.value.exit_code == 2


def test_read_is_lazy_and_sees_appends_made_while_iterating(jr: Journal) -> None:
    jr.append("app/dev", [{"type": "e"} for _ in range(600)])
    it = jr.read()
    first = next(it)
    jr.append("app/dev", [{"type": "late"}])
    rest = list(it)
    assert first.seq == 1 and rest[-1].payload["type"] == "late" and len(rest) == 600


# --- optimistic concurrency ----------------------------------------------------------------


def test_expected_version(jr: Journal) -> None:
    jr.append("app/dev", [{"type": "a"}], expected_version=0)
    jr.append("app/dev", [{"type": "b"}, {"type": "c"}], expected_version=1)
    jr.append("app/other", [{"type": "x"}], expected_version=0)
    before = jr.head()
    for stale in (0, 1, 2, 4):
        with pytest.raises(ConflictError) as err:
            jr.append("app/dev", [{"type": "stale"}], expected_version=stale)
        assert (err.value.stream, err.value.expected, err.value.actual) == ("app/dev", stale, 3)
        assert "expected version" in str(err.value) and err.value.exit_code == 1
    with pytest.raises(ConflictError):
        jr.append("app/dev", [], expected_version=2)
    assert jr.head() == before and jr.stream_version("app/dev") == 3
    assert jr.append("app/dev", [{"type": "d"}], expected_version=3)[0].version == 4


def test_store_append_batch_member_fails_alone(jr: Journal) -> None:
    """The store contract behind group commit: one stale request in a batch fails alone."""
    from journal._store import AppendRequest

    jr.append("app/dev", [{"type": "a"}])
    plain = b'{"type":"b"}'
    results = jr.store.append(
        [
            AppendRequest("app/dev", 1, [plain]),
            AppendRequest("app/dev", 1, [plain]),  # stale: the first moved it to 2
            AppendRequest("app/other", None, [plain, plain]),
            AppendRequest("app/dev", 2, [plain]),
        ],
        jr._seal,
        genesis_hash(jr.journal_id),
    )
    assert isinstance(results[1], ConflictError) and results[1].actual == 2
    ok = [r for r in results if isinstance(r, list)]
    assert [[row.seq for row in rows] for rows in ok] == [[2], [3, 4], [5]]
    assert jr.verify().events == 5 and jr.stream_version("app/dev") == 3


# --- snapshots -----------------------------------------------------------------------------


def test_snapshots(jr: Journal) -> None:
    jr.append("app/dev", [{"type": "e", "i": i} for i in range(10)])
    jr.append("app/other", [{"type": "e"}])
    assert jr.latest_snapshot("app/dev") is None
    jr.put_snapshot("app/dev", 3, {"resources": {"a": 1}, "ü": "✓"})
    jr.put_snapshot("app/dev", 8, {"resources": {"a": 2}})
    jr.put_snapshot("app/other", 11, {"other": True})
    assert jr.latest_snapshot("app/dev") == (8, {"resources": {"a": 2}})
    assert jr.latest_snapshot("app/dev", upto_seq=7) == (3, {"resources": {"a": 1}, "ü": "✓"})
    assert jr.latest_snapshot("app/dev", upto_seq=2) is None
    assert jr.latest_snapshot("app/other") == (11, {"other": True})
    jr.put_snapshot("app/dev", 8, {"resources": {"a": 3}})  # replaces
    assert jr.latest_snapshot("app/dev") == (8, {"resources": {"a": 3}})
    with pytest.raises(UnknownSequenceError):
        jr.put_snapshot("app/dev", 12, {})
    with pytest.raises(UnknownSequenceError):
        jr.put_snapshot("app/dev", 0, {})
    with pytest.raises(UsageError):
        jr.put_snapshot("app/dev", 5, {"bad": {1, 2}})
    assert jr.verify().events == 11
    assert jr.store.snapshot_streams() == ["app/dev", "app/other"]


def test_snapshots_are_anchors_of_the_chain(jr: Journal) -> None:
    """The newest snapshot is where the chain check starts (journal._chain), on every store."""
    assert jr.store.snapshot_streams() == []
    jr.append("app/dev", [{"type": "e", "i": i} for i in range(5)])
    report = jr.check_chain()
    assert (report.anchor_seq, report.anchored, report.opened) == (0, False, 5)
    jr.put_snapshot("app/dev", 4, {"s": 4})
    jr.append("app/zzz", [{"type": "e"}])
    report = jr.check_chain()
    assert (report.anchor_seq, report.anchored, report.hashed, report.opened) == (4, True, 4, 2)
    assert (report.head_seq, report.head_hash.hex()) == jr.head()
    assert jr.store.snapshot_streams() == ["app/dev"]


# --- passwords and opening -----------------------------------------------------------------


def test_missing_password_creates_nothing(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_PASSWORD", raising=False)
    monkeypatch.delenv("ALCHEMY_PASSWORD", raising=False)
    with pytest.raises(MissingPasswordError) as err:
        target.open(password=None)
    assert str(err.value) == (
        "no password for the journal: set JOURNAL_PASSWORD (or ALCHEMY_PASSWORD) in the environment"
    )
    assert err.value.exit_code == 2
    with pytest.raises(MissingPasswordError, match="empty"):
        target.open(password="")
    assert list(target.root.iterdir()) == []


def test_missing_password_on_existing_journal_writes_nothing(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    with target.open() as journal:
        journal.append("app/dev", [{"type": "a"}])
    before = target.fingerprint()
    monkeypatch.delenv("JOURNAL_PASSWORD", raising=False)
    monkeypatch.delenv("ALCHEMY_PASSWORD", raising=False)
    with pytest.raises(MissingPasswordError):
        target.open(password=None)
    assert target.fingerprint() == before


def test_password_from_environment(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_PASSWORD", "from-journal-env")
    with target.open(password=None) as journal:
        journal.append("app/dev", [{"type": "a"}])
    monkeypatch.delenv("JOURNAL_PASSWORD")
    monkeypatch.setenv("ALCHEMY_PASSWORD", "from-journal-env")
    with target.open(password=None) as journal:
        assert journal.head()[0] == 1
    monkeypatch.setenv("JOURNAL_PASSWORD", "something else")  # JOURNAL_PASSWORD wins
    with pytest.raises(WrongPasswordError):
        target.open(password=None)


@pytest.mark.parametrize("keep_open", [False, True], ids=["closed", "open-elsewhere"])
def test_wrong_password_writes_nothing(target: Target, keep_open: bool) -> None:
    other = target.open()
    other.append("app/dev", [{"type": "a"}, {"type": "b"}])
    if not keep_open:
        other.close()
    try:
        before = target.fingerprint()
        with pytest.raises(WrongPasswordError) as err:
            target.open(password="not the password")
        assert str(err.value) == (
            "the password does not open this journal: check JOURNAL_PASSWORD "
            "(or ALCHEMY_PASSWORD); nothing was written"
        )
        assert err.value.exit_code == 2
        with pytest.raises(WrongPasswordError):
            target.open(password="not the password", create=False)
        assert target.fingerprint() == before
    finally:
        other.close()
    with target.open() as journal:
        assert journal.verify().events == 2


def test_create_false_without_journal(target: Target) -> None:
    with pytest.raises(UsageError) as err:
        target.open(create=False)
    assert str(err.value).startswith(f"no journal at {target.location}: deploy first")
    assert "--journal" in str(err.value)
    assert list(target.root.iterdir()) == []


def test_kdf_params_are_stored_at_creation(target: Target) -> None:
    with target.open(kdf=KdfParams.minimum()) as journal:
        assert journal.kdf == KdfParams.minimum()
    with target.open(kdf=KdfParams.moderate()) as journal:  # ignored: the journal exists
        assert journal.kdf == KdfParams.minimum()


def test_kdf_runs_once_per_process(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    import nacl.pwhash.argon2id

    calls: list[int] = []
    real = nacl.pwhash.argon2id.kdf

    def counting(*args: Any, **kw: Any) -> bytes:
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", counting)
    for _ in range(3):
        with target.open() as journal:
            journal.append("app/dev", [{"type": "a"}])
    assert len(calls) == 1
    with pytest.raises(WrongPasswordError):
        target.open(password="other")
    assert len(calls) == 2


def test_kdf_params_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_KDF", raising=False)
    assert KdfParams.from_env() == KdfParams.interactive()
    for name, params in [
        ("minimum", KdfParams.minimum()),
        ("Moderate", KdfParams.moderate()),
        ("interactive", KdfParams.interactive()),
    ]:
        monkeypatch.setenv("JOURNAL_KDF", name)
        assert KdfParams.from_env() == params
    monkeypatch.setenv("JOURNAL_KDF", "fast")
    with pytest.raises(UsageError, match=r"JOURNAL_KDF='fast' .* minimum, interactive or moderate"):
        KdfParams.from_env()
    with pytest.raises(UsageError):
        KdfParams(0, 1)


def test_rekey(target: Target) -> None:
    with target.open() as journal:
        journal.append("app/dev", [{"type": "a", "i": i} for i in range(20)])
        journal.put_snapshot("app/dev", 10, {"s": 1})
        rows_before = list(journal.store.read())
        snaps_before = list(journal.store.snapshots())
        journal.rekey("the new password")
        journal.append("app/dev", [{"type": "after rekey"}])  # the open journal keeps working
    with pytest.raises(WrongPasswordError):
        target.open()
    with target.open(password="the new password") as journal:
        assert list(journal.store.read(upto_seq=20)) == rows_before
        assert list(journal.store.snapshots()) == snaps_before
        assert journal.verify().events == 21
        assert journal.latest_snapshot("app/dev") == (10, {"s": 1})
        with pytest.raises(MissingPasswordError):
            journal.rekey("")


def test_unsupported_files(target: Target) -> None:
    if target.kind != "sqlite":
        pytest.skip("file formats are an SQLite matter")
    path = Path(target.location)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database " * 100)
    before = target.fingerprint()
    with pytest.raises(UnsupportedJournalError, match="is not a journal") as err:
        target.open()
    assert err.value.exit_code == 2
    assert target.fingerprint() == before

    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE todo (item TEXT)")
    conn.commit()
    conn.close()
    before = target.fingerprint()
    with pytest.raises(UnsupportedJournalError, match="SQLite database but not a journal"):
        target.open()
    assert target.fingerprint() == before


def test_newer_format_is_refused(target: Target) -> None:
    if target.kind != "sqlite":
        pytest.skip("edits the file directly")
    with target.open() as journal:
        journal.append("app/dev", [{"type": "a"}])
    conn = sqlite3.connect(target.location)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'format_version'")
    conn.commit()
    conn.close()
    with pytest.raises(UnsupportedJournalError, match=r"format 2, newer .*: upgrade journal"):
        target.open()


def test_an_empty_file_is_refused_unless_new(target: Target) -> None:
    if target.kind != "sqlite":
        pytest.skip("file specific")
    Path(target.location).parent.mkdir(parents=True)
    Path(target.location).touch()
    before = target.fingerprint()
    with pytest.raises(UnsupportedJournalError, match="empty file, not a journal"):
        target.open()
    assert target.fingerprint() == before
    with target.open(new=True) as journal:
        assert journal.append("app/dev", [{"type": "a"}])[0].seq == 1


# --- locations -----------------------------------------------------------------------------


def test_default_location_and_journal_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOURNAL_URL", raising=False)
    with Journal.open(password=PASSWORD, kdf=KdfParams.minimum()) as journal:
        assert journal.location == str(tmp_path / ".journal" / "journal.db")
    monkeypatch.setenv("JOURNAL_URL", str(tmp_path / "elsewhere.db"))
    with Journal.open(password=PASSWORD, kdf=KdfParams.minimum()) as journal:
        assert journal.location == str(tmp_path / "elsewhere.db")
    with Journal.open(
        f"sqlite:///{tmp_path}/third.db", password=PASSWORD, kdf=KdfParams.minimum()
    ) as journal:
        assert journal.location == str(tmp_path / "third.db")


def test_store_selection() -> None:
    from journal._store._postgres import PostgresStore

    for url in ("postgresql://user:pw@db.example/journal", "postgres://h/j"):
        store = open_store(url)  # connects to nothing yet
        assert isinstance(store, PostgresStore) and "pw" not in store.location
    with pytest.raises(UsageError, match="unsupported journal URL scheme 'mysql'"):
        open_store("mysql://x/y")
    assert isinstance(open_store("some/file.db"), SQLiteStore)


# --- locks ---------------------------------------------------------------------------------


def test_lock_names_holder_and_is_released(target: Target) -> None:
    with target.open() as one, target.open() as two:
        with one.lock("app/dev", holder={"actor": "alice", "command": "deploy"}):
            with pytest.raises(LockedError) as err, two.lock("app/dev", holder={"actor": "bob"}):
                pass
            holder = err.value.holder
            assert holder["actor"] == "alice" and holder["pid"] == os.getpid()
            assert {"host", "since", "command"} <= set(holder)
            assert str(err.value).startswith("stage 'app/dev' is locked by another run (")
            assert "actor=alice" in str(err.value) and "wait for it to finish" in str(err.value)
            with two.lock("app/prod", holder={"actor": "bob"}):  # other streams are free
                pass
        with two.lock("app/dev", holder={"actor": "bob"}):
            pass


def test_lock_waits_up_to_timeout(target: Target) -> None:
    import threading
    import time

    with target.open() as one, target.open() as two:
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with one.lock("app/dev", holder={"actor": "alice"}):
                held.set()
                release.wait(5)
                time.sleep(0.2)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(5)
        t0 = time.monotonic()
        with pytest.raises(LockedError), two.lock("app/dev", holder={"actor": "bob"}, timeout=0.15):
            pass
        assert time.monotonic() - t0 >= 0.15
        release.set()
        with two.lock("app/dev", holder={"actor": "bob"}, timeout=5):
            pass
        thread.join()


def test_lock_holder_must_not_hold_secrets(jr: Journal) -> None:
    with pytest.raises(UsageError, match="Secret"):
        jr.lock("app/dev", holder={"token": Secret("x")})
    with pytest.raises(UsageError, match="plain value"):
        jr.lock("app/dev", holder={"nested": {"a": 1}})


# --- lifetime and storage failures ----------------------------------------------------------


def test_closed_journal_refuses_work(target: Target) -> None:
    journal = target.open()
    journal.close()
    journal.close()
    for call in (
        lambda: journal.append("app/dev", [{"type": "a"}]),
        lambda: journal.head(),
        lambda: journal.read(),
        lambda: journal.verify(),
    ):
        with pytest.raises(UsageError, match="closed"):
            call()


def test_disk_full_and_read_only_roll_back(target: Target) -> None:
    if target.kind != "sqlite":
        pytest.skip("simulates a full disk with SQLite's max_page_count")
    with target.open() as journal:
        journal.append("app/dev", [{"type": "a"}])
        store = journal.store
        assert isinstance(store, SQLiteStore)
        conn = store._writer()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError, match=r"disk is full .* nothing was written"):
            journal.append("app/dev", [{"type": "big", "blob": secrets.token_hex(100_000)}])
        conn.execute("PRAGMA max_page_count = 1073741823")
        conn.execute("PRAGMA query_only = 1")
        with pytest.raises(StorageError, match="read-only"):
            journal.append("app/dev", [{"type": "b"}])
        conn.execute("PRAGMA query_only = 0")
        assert journal.head()[0] == 1
        assert journal.append("app/dev", [{"type": "c"}], expected_version=1)[0].seq == 2
        assert journal.verify().events == 2


@pytest.mark.parametrize(
    ("code", "message", "cls", "text"),
    [
        (13, "database or disk is full", StorageError, "disk is full"),
        (8, "attempt to write a readonly database", StorageError, "read-only"),
        (10 | (13 << 8), "disk I/O error", StorageError, "I/O error"),
        (26, "file is not a database", NotAJournalError, "is not a journal"),
        (14, "unable to open database file", StorageError, "cannot open"),
        (5, "database is locked", StorageError, "locked by another process"),
        (1, "no such table: x", StorageError, "SQLite error while"),
    ],
)
def test_sqlite_errors_are_translated(code: int, message: str, cls: type, text: str) -> None:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    translated = translate_error(exc, "/x/journal.db", "appending to")
    assert type(translated) is cls and text in str(translated)


# --- no plaintext on disk (SQLite: scans the files) ----------------------------------------


def _needles(*values: str) -> list[bytes]:
    out: list[bytes] = []
    for value in values:
        out += [
            value.encode("utf-8"),
            json.dumps(value)[1:-1].encode("ascii"),  # the ensure_ascii JSON form
            value.encode("utf-16-le"),
        ]
    return out


def _scan(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {n!r}" for n in needles if n in data]
    return found


def test_no_plaintext_reaches_disk(target: Target, tmp_path: Path) -> None:
    if target.kind != "sqlite":
        pytest.skip("scans files")
    secret = "hunter2-" + secrets.token_hex(16) + "-geheimnis-ü✓"
    type_name = "resource.secret-type-" + secrets.token_hex(6)
    needles = _needles(secret, type_name)
    payloads: list[dict[str, Any]] = [
        {"type": type_name, "outputs": {"connection_string": {"$secret": secret}}},
        {"type": "other", "nested": [{"deep": secret}], secret: "as a key"},
    ]
    journal = target.open()
    try:
        for _ in range(3):
            journal.append("app/dev", payloads)
        journal.put_snapshot("app/dev", 6, {"resources": {"db": {"password": secret}}})
        journal.rekey("a new password " + secrets.token_hex(4))
        with journal.lock("app/dev", holder={"actor": "ci"}):
            wal = Path(target.location + "-wal")
            assert wal.exists() and wal.stat().st_size > 0  # not checkpointed yet
            assert [e.payload for e in journal.read(upto_seq=2)] == payloads
            assert _scan(tmp_path, needles) == []
    finally:
        journal.close()
    assert not Path(target.location + "-wal").exists()
    assert _scan(tmp_path, needles) == []
    # the scan itself works: the needles are found where they are in clear
    (tmp_path / "probe.txt").write_text(json.dumps({"s": secret}))
    assert _scan(tmp_path, needles)


def test_stale_writer_fails_at_schema_level(target: Target) -> None:
    if target.kind != "sqlite":
        pytest.skip("raw SQL")
    with target.open() as journal:
        journal.append("app/dev", [{"type": "a"}])
    conn = sqlite3.connect(target.location)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(
            "INSERT INTO events (seq, stream, version, key_id, prev_hash, hash, data) "
            "VALUES (2, 'app/dev', 1, 'k', x'00', x'00', x'00')"
        )
    conn.close()
