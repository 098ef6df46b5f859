"""Tampering with a closed journal, with the database's own client: ``verify`` names the first
bad sequence, and reading a tampered event fails too; every command that writes refuses a
broken chain (naming the first bad sequence it finds and ``journal verify``) and writes
nothing, and commands that only read warn and go on (``journal._chain``)."""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from click.testing import CliRunner, Result

from journal import _chain
from journal._errors import IntegrityError, UsageError
from journal._journal import Journal, KdfParams
from journal.cli import cli as main_cli

PASSWORD = "tamper-test password"
STREAMS = ["app/dev", "app/prod"]


def _open(path: Path) -> Journal:
    return Journal.open(path, password=PASSWORD, kdf=KdfParams.minimum())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A closed journal of 10 events: seq 1-5 and 8-10 in app/dev, 6-7 in app/prod;
    a snapshot of app/dev at 5 and of app/prod at 7."""
    p = tmp_path / "journal.db"
    with _open(p) as journal:
        journal.append("app/dev", [{"type": "e", "i": i} for i in range(1, 6)])
        journal.append("app/prod", [{"type": "e", "i": i} for i in (6, 7)])
        journal.append("app/dev", [{"type": "e", "i": i} for i in (8, 9, 10)])
        journal.put_snapshot("app/dev", 5, {"upto": 5})
        journal.put_snapshot("app/prod", 7, {"upto": 7})
        assert journal.verify().events == 10
    return p


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _flip_py(path: Path, table: str, column: str, where: str, offset: int = 5) -> None:
    conn = sqlite3.connect(path)
    (value,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
    data = bytearray(value)
    data[offset] ^= 0x01
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (bytes(data),))
    conn.commit()
    conn.close()


def _bad_seq(path: Path, **kw: str) -> int | None:
    with _open(path) as journal, pytest.raises(IntegrityError) as err:
        journal.verify(**kw)
    assert str(err.value).startswith(f"sequence {err.value.seq}: ")
    return err.value.seq


def _read_fails_at(path: Path, seq: int) -> None:
    with _open(path) as journal:
        with pytest.raises(IntegrityError) as err:
            journal.event(seq)
        assert err.value.seq == seq


Tamper = Callable[[Path], None]

CASES: dict[str, tuple[Tamper, int, bool]] = {
    # name: (tampering, first bad seq, reading that event fails too)
    "ciphertext byte": (lambda p: _flip_py(p, "events", "data", "seq = 4", 30), 4, True),
    "nonce byte": (lambda p: _flip_py(p, "events", "data", "seq = 4", 3), 4, True),
    "hash byte": (lambda p: _flip_py(p, "events", "hash", "seq = 4"), 4, False),
    "prev hash byte": (lambda p: _flip_py(p, "events", "prev_hash", "seq = 4"), 4, True),
    "first event": (lambda p: _flip_py(p, "events", "data", "seq = 1"), 1, True),
    "last event": (lambda p: _flip_py(p, "events", "data", "seq = 10"), 10, True),
    "stream column": (lambda p: _sql(p, "UPDATE events SET stream='app/dex' WHERE seq=4"), 4, True),
    "version column": (lambda p: _sql(p, "UPDATE events SET version=40 WHERE seq=4"), 4, True),
    "key id column": (lambda p: _sql(p, "UPDATE events SET key_id='kother' WHERE seq=4"), 4, True),
    "moved to another stream": (
        # the last event of app/dev becomes the next of app/prod, versions kept gapless
        lambda p: _sql(p, "UPDATE events SET stream='app/prod', version=3 WHERE seq=10"),
        10,
        True,
    ),
    "swapped contents": (
        lambda p: _sql(
            p,
            "UPDATE events SET seq = -3 WHERE seq = 3",
            "UPDATE events SET seq = 3 WHERE seq = 8",
            "UPDATE events SET seq = 8 WHERE seq = -3",
        ),
        3,
        True,
    ),
    "swapped ciphertexts": (
        lambda p: _sql(
            p,
            "CREATE TEMP TABLE t AS SELECT seq, data FROM events WHERE seq IN (2, 9)",
            "UPDATE events SET data = (SELECT data FROM t WHERE t.seq = 11 - events.seq)"
            " WHERE seq IN (2, 9)",
        ),
        2,
        True,
    ),
    "deleted middle event": (lambda p: _sql(p, "DELETE FROM events WHERE seq = 6"), 6, False),
    "deleted first event": (lambda p: _sql(p, "DELETE FROM events WHERE seq = 1"), 1, False),
    "renumbered tail": (
        # delete 6 and shift everything after it down by one: seqs stay gapless
        lambda p: _sql(
            p,
            "DELETE FROM events WHERE seq = 6",
            "UPDATE events SET seq = -seq WHERE seq > 6",
            "UPDATE events SET seq = -seq - 1 WHERE seq < 0",
        ),
        6,
        True,
    ),
    "replaced ciphertext": (
        lambda p: _sql(
            p, "UPDATE events SET data = (SELECT data FROM events WHERE seq=8) WHERE seq=7"
        ),
        7,
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_at_the_first_bad_sequence(path: Path, case: str) -> None:
    tamper, seq, read_fails = CASES[case]
    tamper(path)
    assert _bad_seq(path) == seq
    if read_fails:
        _read_fails_at(path, seq)


def test_truncated_tail_is_detected_with_expect_head(path: Path) -> None:
    with _open(path) as journal:
        seq, head = journal.head()
        mid = journal.event(7).hash
    _sql(path, "DELETE FROM events WHERE seq > 8")
    with _open(path) as journal:
        assert journal.verify().head_seq == 8  # without a pinned head, nothing to compare
        assert journal.verify(expect_head=mid).head_seq == 8
        assert journal.verify(expect_head=f"7:{mid}").events == 8
    assert _bad_seq(path, expect_head=head) == 9
    assert _bad_seq(path, expect_head=f"{seq}:{head}") == 9
    assert _bad_seq(path, expect_head=f"6:{mid}") == 6  # found, but not where it was pinned
    with _open(path) as journal, pytest.raises(UsageError, match="not a head"):
        journal.verify(expect_head="abc")


def test_a_grown_journal_still_contains_its_pinned_head(path: Path) -> None:
    with _open(path) as journal:
        seq, head = journal.head()
        journal.append("app/dev", [{"type": "later"}])
        report = journal.verify(expect_head=f"{seq}:{head}")
        assert (report.events, report.head_seq, report.streams) == (11, 11, 2)
        assert report.head_hash == journal.head()[1]


def test_tampered_snapshot_is_named(path: Path) -> None:
    _flip_py(path, "snapshots", "data", "stream = 'app/prod'")
    with _open(path) as journal:
        with pytest.raises(IntegrityError, match=r"sequence 7: the snapshot of stream 'app/prod'"):
            journal.verify()
        with pytest.raises(IntegrityError) as err:
            journal.latest_snapshot("app/prod")
        assert err.value.seq == 7
        assert journal.latest_snapshot("app/dev") == (5, {"upto": 5})


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE snapshots SET stream = 'app/prod' WHERE stream = 'app/dev'",
        "UPDATE snapshots SET seq = 4 WHERE stream = 'app/dev'",
        "UPDATE snapshots SET key_id = 'kother' WHERE stream = 'app/dev'",
    ],
)
def test_moved_snapshot_does_not_open(path: Path, statement: str) -> None:
    _sql(path, "DELETE FROM snapshots WHERE stream = 'app/prod'", statement)
    with _open(path) as journal, pytest.raises(IntegrityError, match="snapshot of stream"):
        journal.verify()


def test_rows_from_another_journal_do_not_open(path: Path, tmp_path: Path) -> None:
    """Same password, same shape, different journal (so a different data key and id)."""
    other = tmp_path / "other.db"
    with _open(other) as journal:
        journal.append("app/dev", [{"type": "e", "i": i} for i in range(1, 6)])
        journal.put_snapshot("app/dev", 5, {"upto": "forged"})
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS other", (str(other),))
    conn.execute(
        "UPDATE snapshots SET data = (SELECT data FROM other.snapshots), "
        "key_id = (SELECT key_id FROM other.snapshots) WHERE stream = 'app/dev'"
    )
    conn.execute(
        "UPDATE events SET data = (SELECT data FROM other.events WHERE seq = 5) WHERE seq = 5"
    )
    conn.commit()
    conn.close()
    with _open(path) as journal:
        with pytest.raises(IntegrityError) as err:
            journal.latest_snapshot("app/dev")
        assert err.value.seq == 5
        with pytest.raises(IntegrityError) as err:
            journal.event(5)
        assert err.value.seq == 5
    assert _bad_seq(path) == 5


def test_untouched_journal_verifies(path: Path) -> None:
    with _open(path) as journal:
        report = journal.verify()
    assert (report.events, report.head_seq, report.streams) == (10, 10, 2)


def test_rechaining_without_the_key_is_still_detected(path: Path) -> None:
    """An attacker deletes event 6, renumbers the tail and recomputes every clear hash with the
    public chain formula. Without the data key the AEAD still fails where the AD changed."""
    from journal import _crypto

    _sql(
        path,
        "DELETE FROM events WHERE seq = 6",
        "UPDATE events SET seq = -seq WHERE seq > 6",
        "UPDATE events SET seq = -seq - 1 WHERE seq < 0",
        "UPDATE events SET version = 1 WHERE seq = 6",  # app/prod: versions stay gapless
    )
    conn = sqlite3.connect(path)
    (journal_id,) = conn.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()
    prev = _crypto.genesis_hash(journal_id)
    rows = conn.execute("SELECT seq, stream, version, key_id, data FROM events ORDER BY seq")
    for seq, stream, version, key_id, data in rows.fetchall():
        ad = _crypto.event_ad(journal_id, stream, seq, version, key_id, prev)
        digest = _crypto.chain_hash(prev, seq, ad, data)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = digest
    conn.commit()
    conn.close()
    with _open(path) as journal, pytest.raises(IntegrityError, match="does not open") as err:
        journal.verify()
    assert err.value.seq == 6
    _read_fails_at(path, 6)


# --- the chain check before a write, and before a read (journal._chain) --------------------

WRITE_REFUSED = (
    "; the journal is damaged, so nothing was written: run `journal verify` to see the damage"
)
TRUNCATED_REFUSED = (
    "; the journal is damaged, so nothing was written: run `journal verify --expect-head "
    "SEQ:HASH` with a head you pinned earlier to see what is missing"
)


def _dump(path: Path) -> tuple[bytes, list[tuple[object, ...]]]:
    """The file's bytes and every row of every table: what "nothing was written" compares."""
    conn = sqlite3.connect(path)
    rows = [
        row
        for table in ("meta", "keys", "events", "snapshots")
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
    ]
    conn.close()
    return path.read_bytes(), rows


@pytest.mark.parametrize("case", list(CASES))
def test_writes_refuse_a_broken_chain_at_its_first_bad_sequence(path: Path, case: str) -> None:
    """Every tamper verify catches in this journal (its newest snapshot is at 7, so most are
    under it) stops append, put_snapshot and rekey, naming verify's first bad sequence."""
    tamper, seq, _ = CASES[case]
    tamper(path)
    before = _dump(path)
    with _open(path) as journal:
        for write in (
            lambda: journal.append("app/dev", [{"type": "later"}]),
            lambda: journal.put_snapshot("app/dev", 5, {"upto": 5}),
            lambda: journal.rekey("another password"),
        ):
            with pytest.raises(IntegrityError) as err:
                write()
            assert err.value.seq == seq
            assert str(err.value).startswith(f"sequence {seq}: ")
            assert str(err.value).endswith(WRITE_REFUSED)
        with pytest.raises(IntegrityError) as err:
            journal.check_chain()
        assert err.value.seq == seq
    assert _dump(path) == before
    _open(path).close()  # the password was not changed


def test_a_snapshot_past_the_head_is_a_truncated_journal(path: Path) -> None:
    """Not "another run wrote to this stage": the error says what happened and what to run."""
    with _open(path) as journal:
        journal.put_snapshot("app/dev", 10, {"upto": 10})
    _sql(path, "DELETE FROM events WHERE seq > 8")
    before = _dump(path)
    with _open(path) as journal:
        with pytest.raises(IntegrityError) as err:
            journal.append("app/dev", [{"type": "later"}], expected_version=7)
        assert str(err.value) == (
            "sequence 9: the journal ends at sequence 8, but the snapshot of stream 'app/dev' "
            "was taken at sequence 10: events were removed from its end (a truncated journal)"
            + TRUNCATED_REFUSED
        )
        # reading goes on from the newest snapshot the journal still covers
        assert journal.latest_snapshot("app/dev") == (5, {"upto": 5})
    assert _dump(path) == before


def test_a_truncation_that_removed_a_whole_stream_is_seen(path: Path) -> None:
    """app/prod's events (6, 7) are all gone, but its snapshot at 7 is still there."""
    _sql(path, "DELETE FROM events WHERE seq > 5")
    with _open(path) as journal, pytest.raises(IntegrityError) as err:
        journal.append("app/dev", [{"type": "later"}])
    assert err.value.seq == 6
    assert "the snapshot of stream 'app/prod' was taken at sequence 7" in str(err.value)


def test_rechaining_under_the_anchor_is_refused(path: Path) -> None:
    """Re-chaining with the public formula makes the window hash-consistent, but the anchor
    (the snapshot bound to the hash at 7) no longer opens: the event that does not open is
    named."""
    test_rechaining_without_the_key_is_still_detected(path)  # tampers, and checks verify
    with _open(path) as journal, pytest.raises(IntegrityError) as err:
        journal.append("app/dev", [{"type": "later"}])
    assert err.value.seq == 6
    assert "does not open" in str(err.value) and str(err.value).endswith(WRITE_REFUSED)


def test_the_check_is_bounded_by_the_window_and_the_tail(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anchor at 7: the WINDOW events up to it are rehashed, the 3 after it opened."""
    monkeypatch.setattr(_chain, "WINDOW", 4)
    with _open(path) as journal:
        report = journal.check_chain()
        assert (report.anchor_seq, report.anchored, report.hashed, report.opened) == (
            7,
            True,
            4,
            3,
        )
        assert (report.head_seq, report.head_hash.hex()) == journal.head()
        journal.append("app/dev", [{"type": "later"}])
        journal.put_snapshot("app/dev", 11, {"upto": 11})
        assert journal.check_chain().anchor_seq == 11
    # what the bounded check does not see: an edit older than the window that keeps the
    # stored hashes (verify does, and so does reading that event)
    _flip_py(path, "events", "data", "seq = 2", 30)
    with _open(path) as journal:
        journal.append("app/dev", [{"type": "later still"}])
    assert _bad_seq(path) == 2
    monkeypatch.setattr(_chain, "WINDOW", 11)
    with _open(path) as journal, pytest.raises(IntegrityError) as err:
        journal.append("app/dev", [{"type": "refused"}])
    assert err.value.seq == 2


def test_snapshots_from_before_anchors_still_open_and_start_the_check(path: Path) -> None:
    """A v1 snapshot (no chain hash bound) is read as before and is where the check starts,
    without proving anything: re-chaining under it is not seen (verify sees it); the next
    snapshot a write takes is bound, and from then on it is."""
    from journal import _crypto

    with _open(path) as journal:
        kid = journal.store.read_meta().current_key_id  # type: ignore[union-attr]
        ad = _crypto.snapshot_ad(journal.journal_id, "app/dev", 9, kid, None)
        data = journal._codecs[kid].encode({"upto": "v1"}, ad)
    _sql(path, "DELETE FROM snapshots")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO snapshots VALUES ('app/dev', 9, ?, ?)", (kid, data))
    conn.commit()
    conn.close()
    with _open(path) as journal:
        assert journal.latest_snapshot("app/dev") == (9, {"upto": "v1"})
        report = journal.check_chain()
        assert (report.anchor_seq, report.anchored, report.hashed, report.opened) == (
            9,
            False,
            9,
            1,
        )
        assert journal.verify().events == 10
    _flip_py(path, "events", "data", "seq = 3", 30)
    with _open(path) as journal, pytest.raises(IntegrityError) as err:
        journal.append("app/dev", [{"type": "later"}])
    assert err.value.seq == 3


def test_a_snapshot_vouches_only_for_rows_that_were_checked(path: Path) -> None:
    """Rows another writer appended after this object checked the chain are opened before a
    snapshot is bound to them; this object's own rows are trusted by their hashes."""
    with _open(path) as journal, _open(path) as other:
        journal.check_chain()
        other.append("app/prod", [{"type": "e", "i": 11}])
        journal.append("app/dev", [{"type": "e", "i": 12}])
        _flip_py(path, "events", "data", "seq = 11", 30)
        with pytest.raises(IntegrityError) as err:
            journal.put_snapshot("app/dev", 12, {"upto": 12})
        assert err.value.seq == 11
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(seq) FROM snapshots").fetchone() == (7,)
    conn.close()


# --- through the CLI, on both stores: writing commands refuse, reading commands warn -------

PROGRAM = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("one")
    app.export(greeting="hello")
"""
PG_SERVER = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class Raw:
    """The journal's tables through the database's own client: what a tamperer has."""

    def __init__(self, location: str, schema: str | None) -> None:
        self.location = location
        self.schema = schema

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        if self.schema is None:
            conn = sqlite3.connect(self.location)
            try:
                rows = conn.execute(query, params).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        import psycopg

        options = f"-c search_path={self.schema}"
        with psycopg.connect(PG_SERVER, autocommit=True, options=options) as pg:
            cur = pg.execute(query.replace("?", "%s"), params)  # type: ignore[arg-type]
            return (
                [
                    tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                    for row in cur.fetchall()
                ]
                if cur.description
                else []
            )

    def dump(self) -> object:
        """Every row of the journal's tables (and the SQLite file's bytes): equal = unwritten."""
        rows = [
            self.sql(f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ("meta", "keys", "events", "snapshots")
        ]
        return (rows, Path(self.location).read_bytes() if self.schema is None else None)

    def flip(self, column: str, seq: int, offset: int = 30, table: str = "events") -> None:
        (value,) = self.sql(f"SELECT {column} FROM {table} WHERE seq = ?", seq)[0]
        data = bytearray(value)
        data[offset] ^= 0x01
        self.sql(f"UPDATE {table} SET {column} = ? WHERE seq = ?", bytes(data), seq)

    def rechain(self, start: int) -> None:
        """Recompute every clear hash from ``start`` on with the public chain formula."""
        from journal import _crypto

        ((journal_id,),) = self.sql("SELECT value FROM meta WHERE key = 'journal_id'")
        rows = self.sql(
            "SELECT seq, stream, version, key_id, prev_hash, data FROM events WHERE seq >= ? "
            "ORDER BY seq",
            start,
        )
        prev = rows[0][4]
        for seq, stream, version, key_id, _, data in rows:
            ad = _crypto.event_ad(journal_id, stream, seq, version, key_id, prev)
            digest = _crypto.chain_hash(prev, seq, ad, data)
            self.sql("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", prev, digest, seq)
            prev = digest


def cli(*args: str, code: int = 0, **kw: Any) -> Result:
    result = CliRunner().invoke(main_cli, list(args), **kw)
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    return result


@pytest.fixture(params=["sqlite", "postgres"])
def deployed(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Raw:
    """A deployed project: events 1-5 in demo/dev (its snapshot at 5, the anchor), then a
    `configure` at 6 in _profiles/default (the tail)."""
    mp.reset_cloud()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    (tmp_path / "alchemy.run.py").write_text(PROGRAM)
    if request.param == "sqlite":
        raw = Raw(str(tmp_path / ".journal" / "journal.db"), None)
    else:
        schema = "tamper_" + secrets.token_hex(6)
        monkeypatch.setenv("JOURNAL_URL", f"{PG_SERVER}?schema={schema}")
        request.addfinalizer(lambda: Raw("", "public").sql(f"DROP SCHEMA {schema} CASCADE"))
        raw = Raw("", schema)
    cli("deploy")
    cli("configure", "--provider", "prisma-postgres", input="prsc_token\n")
    assert raw.sql("SELECT max(seq) FROM events") == [(6,)]
    assert raw.sql("SELECT stream, seq FROM snapshots") == [("demo/dev", 5)]
    return raw


HASH_MISMATCH = "the event's hash does not match its contents (modified, moved or swapped)"
DOES_NOT_OPEN = (
    "the event does not open (authentication failed (tampered data or wrong key)): "
    "it was modified, moved or re-keyed"
)
SNAPSHOT_DOES_NOT_OPEN = (
    "the snapshot of stream 'demo/dev' does not open with the chain's hash at its sequence: "
    "the snapshot was modified or moved, or the events under it were rewritten"
)
TRUNCATED = (
    "the journal ends at sequence 4, but the snapshot of stream 'demo/dev' was taken at "
    "sequence 5: events were removed from its end (a truncated journal)"
)

# name: (tampering, "sequence N: detail" as named, whether `show` can still read the state)
CLI_CASES: dict[str, tuple[Callable[[Raw], object], str, bool]] = {
    "ciphertext under the snapshot": (lambda r: r.flip("data", 2), f"2: {HASH_MISMATCH}", True),
    "nonce under the snapshot": (lambda r: r.flip("data", 3, 2), f"3: {HASH_MISMATCH}", True),
    "hash under the snapshot": (lambda r: r.flip("hash", 4, 5), f"4: {HASH_MISMATCH}", True),
    "deleted under the snapshot": (
        lambda r: r.sql("DELETE FROM events WHERE seq = 2"),
        "2: event 2 is missing (the next event is 3)",
        True,
    ),
    "re-chained under the snapshot": (
        lambda r: (r.flip("data", 2), r.rechain(2)),
        f"2: {DOES_NOT_OPEN}",
        False,  # the snapshot no longer opens: its anchor changed
    ),
    "ciphertext after the snapshot": (lambda r: r.flip("data", 6), f"6: {HASH_MISMATCH}", True),
    "re-chained after the snapshot": (
        lambda r: (r.flip("data", 6), r.rechain(6)),
        f"6: {DOES_NOT_OPEN}",
        True,
    ),
    "snapshot modified": (
        lambda r: r.sql(
            "UPDATE snapshots SET data = (SELECT data FROM events WHERE seq = 5) WHERE seq = 5"
        ),
        f"5: {SNAPSHOT_DOES_NOT_OPEN}",
        False,
    ),
    "truncated under the snapshot": (
        lambda r: r.sql("DELETE FROM events WHERE seq >= 5"),
        f"5: {TRUNCATED}",
        True,
    ),
}


def _hint(case: str) -> str:
    if case.startswith("truncated"):
        return (
            "run `journal verify --expect-head SEQ:HASH` with a head you pinned earlier to see "
            "what is missing"
        )
    return "run `journal verify` to see the damage"


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_deploy_refuses_and_show_warns(deployed: Raw, case: str) -> None:
    tamper, named, readable = CLI_CASES[case]
    tamper(deployed)
    before = deployed.dump()

    refused = cli("deploy", code=1)
    assert refused.stderr == (
        f"error: sequence {named}; the journal is damaged, so nothing was written: {_hint(case)}\n"
    )
    assert deployed.dump() == before
    assert mp.CLOUD.calls == [("create", "demo-one-dev")]  # the first deploy's, nothing since

    warning = (
        f"warning: the journal is damaged (sequence {named}); what follows may be wrong: "
        f"{_hint(case)}\n"
    )
    shown = cli("show", code=0 if readable else 1)
    if readable:
        assert shown.stderr == warning
        assert "one (memory.Thing): ok" in shown.stdout
    else:
        assert shown.stderr.startswith(warning)
        assert shown.stderr.count("\n") == 2 and "\nerror: sequence " in shown.stderr
    assert deployed.dump() == before


@pytest.mark.parametrize(
    "command",
    [
        ["destroy", "--yes"],
        ["rollback", "1", "--yes"],
        ["rekey"],
        ["configure", "--provider", "prisma-postgres", "--from-env", "JOURNAL_NEW_PASSWORD"],
        ["dev", "--once", "--no-local"],
    ],
)
def test_every_writing_command_refuses(
    deployed: Raw, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_NEW_PASSWORD", "a new password")
    deployed.flip("data", 2)
    before = deployed.dump()
    refused = cli(*command, code=1)
    assert refused.stderr.endswith(
        f"error: sequence 2: {HASH_MISMATCH}; the journal is damaged, so nothing was written: "
        "run `journal verify` to see the damage\n"
    )
    assert deployed.dump() == before
    assert mp.CLOUD.calls == [("create", "demo-one-dev")]
    cli("verify", code=1)


@pytest.mark.parametrize(
    "command", [["outputs"], ["plan"], ["history"], ["show", "--json"], ["verify"]]
)
def test_every_reading_command_warns_and_goes_on(deployed: Raw, command: list[str]) -> None:
    deployed.flip("hash", 4, 5)  # nothing has to be decrypted to see it: history reads on
    before = deployed.dump()
    result = cli(*command, code=1 if command == ["verify"] else 0)
    if command == ["verify"]:  # unchanged: an error, no warning
        assert result.stderr == f"error: sequence 4: {HASH_MISMATCH}\n"
    else:
        assert result.stderr == (
            f"warning: the journal is damaged (sequence 4: {HASH_MISMATCH}); what follows may "
            "be wrong: run `journal verify` to see the damage\n"
        )
        assert result.stdout
    assert deployed.dump() == before


def test_migrate_refuses_a_broken_source(deployed: Raw, tmp_path: Path) -> None:
    deployed.flip("data", 2)
    refused = cli("migrate", "--to", str(tmp_path / "copy.db"), code=1)
    assert refused.stderr == (
        f"error: sequence 2: {HASH_MISMATCH}; the journal is damaged, so nothing was written: "
        "run `journal verify` to see the damage\n"
    )
    assert not (tmp_path / "copy.db").exists()


def test_a_snapshot_another_writer_takes_during_the_check_is_no_truncation(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministically: another writer appends and snapshots right after the check listed
    the snapshot streams. The head is read after the snapshots, so it covers that one."""
    with _open(path) as journal, _open(path) as other:
        listed = journal.store.snapshot_streams

        def list_then_another_writer_runs() -> list[str]:
            names = listed()
            other.append("app/prod", [{"type": "e", "i": 11}])
            other.put_snapshot("app/prod", 11, {"upto": 11})
            return names

        monkeypatch.setattr(journal.store, "snapshot_streams", list_then_another_writer_runs)
        report = journal.check_chain()
        assert (report.head_seq, report.anchor_seq, report.opened) == (11, 11, 0)
