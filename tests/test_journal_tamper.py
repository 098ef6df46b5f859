"""Tampering with a closed SQLite journal, with raw sqlite3: ``verify`` names the first bad
sequence, and reading a tampered event fails too."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from journal._errors import IntegrityError, UsageError
from journal._journal import Journal, KdfParams

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
