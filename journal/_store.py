"""The journal's storage seam: a small abstract ``Store`` of bytes-level operations.

A store knows rows, not events: it never sees a key or a plaintext. ``Journal`` (in
``_journal.py``) owns the crypto and hands the store opaque, already sealed bytes, except for
appends, where sealing needs the head of the journal as read *inside* the write transaction:
there the store calls back a ``RowSealer`` once per new row.

Implementations: ``SQLiteStore`` (``_sqlite_store.py``) and ``PostgresStore``
(``_pg_store.py``), chosen by ``open_store`` below. Every implementation must pass the
contract suite in ``tests/test_journal_store.py``.

Rules for implementations:

* The public method owns the transaction; a private one holds the SQL.
* ``append`` reads the head and the stream versions inside its write transaction; a request
  whose ``expected_version`` does not match fails alone (its slot in the result is a
  ``ConflictError``), the others in the same call are committed together, atomically, once.
* The schema itself rejects a second row with the same ``(stream, version)``.
* Foreign exceptions are translated at the boundary into ``StoreError`` subclasses.
* Nothing is written before the caller asks for a write: ``read_meta`` has no side effects.
* Creation is atomic and safe under any number of concurrent creators: the first one wins,
  the others get its metadata back. Something at the location that is not a journal (an
  empty file, another database) is refused with ``NotAJournalError``, never re-created,
  unless the caller asks to ``replace`` it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from ._errors import ConflictError, UsageError

__all__ = [
    "DEFAULT_LOCATION",
    "FORMAT_VERSION",
    "AppendRequest",
    "AppendResult",
    "Meta",
    "Row",
    "RowSealer",
    "SnapshotRow",
    "Store",
    "StoreStats",
    "open_store",
    "resolve_location",
]

#: the newest journal format this code reads and writes
FORMAT_VERSION: Final = 1

#: where a journal lives when neither a location nor JOURNAL_URL is given (relative to the cwd)
DEFAULT_LOCATION: Final = os.path.join(".journal", "journal.db")


@dataclass(frozen=True)
class Meta:
    """What a journal knows about itself; everything needed to derive and unwrap its keys."""

    journal_id: str
    format_version: int
    kdf_opslimit: int
    kdf_memlimit: int
    salt: bytes
    current_key_id: str
    wrapped_keys: Mapping[str, bytes]
    #: set while ``journal migrate`` is still filling a new journal; such a journal is refused
    incomplete: bool = False

    def same_keys(self, other: Meta) -> bool:
        """The same key material (KDF parameters, salt, wrapped keys): what a rekey swaps."""
        return (
            self.journal_id,
            self.kdf_opslimit,
            self.kdf_memlimit,
            self.salt,
            self.current_key_id,
            dict(self.wrapped_keys),
        ) == (
            other.journal_id,
            other.kdf_opslimit,
            other.kdf_memlimit,
            other.salt,
            other.current_key_id,
            dict(other.wrapped_keys),
        )


@dataclass(frozen=True)
class Row:
    """One stored event. ``data`` is sealed (nonce ‖ ciphertext); the rest is clear."""

    seq: int
    stream: str
    version: int
    key_id: str
    prev_hash: bytes
    hash: bytes
    data: bytes


@dataclass(frozen=True)
class SnapshotRow:
    stream: str
    seq: int
    key_id: str
    data: bytes


@dataclass(frozen=True)
class AppendRequest:
    """Append ``plaintexts`` (serialized, not yet sealed) to ``stream``."""

    stream: str
    expected_version: int | None
    plaintexts: Sequence[bytes]


#: (stream, seq, version, prev_hash, plaintext) -> the sealed row to insert
RowSealer = Callable[[str, int, int, bytes, bytes], Row]

#: per request: the rows written, or the ConflictError that rejected it alone
AppendResult = list[Row] | ConflictError


@dataclass
class StoreStats:
    """Instrumentation counters (monotonic, per store object)."""

    #: committed write transactions of appends (each one is one durable flush)
    append_transactions: int = 0
    #: append requests committed (several per transaction under group commit)
    append_requests: int = 0
    #: rows appended
    rows_appended: int = 0


class Store(ABC):
    """Bytes-level persistence of one journal."""

    stats: StoreStats

    def __init__(self) -> None:
        self.stats = StoreStats()
        #: where ``create(replace=True)`` moved what was at the location (None: nothing moved)
        self.set_aside: str | None = None

    # --- identity and metadata -----------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Human-readable location (a path, or a URL without its password)."""

    @abstractmethod
    def read_meta(self) -> Meta | None:
        """The journal's metadata; None when there is no journal here yet. Writes nothing.

        Raises ``NotAJournalError`` for something that is not a journal (an empty file
        included) and ``UnsupportedJournalError`` for a journal of a newer format than
        ``FORMAT_VERSION``. An incomplete journal (``meta.incomplete``) is returned as such.
        """

    @abstractmethod
    def create(self, meta: Meta, *, replace: bool = False) -> Meta:
        """Create the journal with ``meta``, atomically. If another process created it first,
        return the existing metadata instead (the caller then checks its password).

        ``replace``: something that is not a journal at the location (``NotAJournalError``) is
        set aside (SQLite: renamed, never deleted) and replaced; without it, it is refused."""

    @abstractmethod
    def replace_keys(self, expected: Meta, meta: Meta) -> None:
        """Store new KDF parameters, salt and wrapped keys (rekey), atomically, if and only if
        the stored key material is still ``expected`` (compare-and-swap); else raise
        ``KeysChangedError`` and change nothing."""

    @abstractmethod
    def mark_complete(self) -> None:
        """Clear the ``incomplete`` mark of a journal created with it (the end of a migrate)."""

    # --- events --------------------------------------------------------------------------

    @abstractmethod
    def head(self) -> tuple[int, bytes] | None:
        """(seq, hash) of the last row, None when empty."""

    @abstractmethod
    def stream_version(self, stream: str) -> int: ...

    @abstractmethod
    def streams(self) -> list[str]: ...

    @abstractmethod
    def append(
        self, requests: Sequence[AppendRequest], seal: RowSealer, genesis: bytes
    ) -> list[AppendResult]:
        """Append every request in one durable transaction (see the module docstring)."""

    @abstractmethod
    def read(
        self,
        stream: str | None = None,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Row]:
        """Rows in ``after_seq < seq <= upto_seq``, ordered by seq (descending if reverse)."""

    @abstractmethod
    def get(self, seq: int) -> Row | None: ...

    # --- snapshots -----------------------------------------------------------------------

    @abstractmethod
    def put_snapshot(self, snapshot: SnapshotRow) -> None:
        """Insert or replace the snapshot of ``(stream, seq)``."""

    @abstractmethod
    def latest_snapshot(self, stream: str, upto_seq: int | None = None) -> SnapshotRow | None:
        """The snapshot of ``stream`` with the highest ``seq <= upto_seq``."""

    @abstractmethod
    def snapshots(self) -> Iterator[SnapshotRow]:
        """Every snapshot, ordered by (stream, seq)."""

    def snapshot_streams(self) -> list[str]:
        """The streams that have a snapshot, sorted (also those whose events are gone).
        Stores override this with an index probe per stream; this fallback reads them all."""
        return sorted({snap.stream for snap in self.snapshots()})

    # --- locking -------------------------------------------------------------------------

    @abstractmethod
    def lock(
        self, stream: str, holder: Mapping[str, Any], timeout: float
    ) -> AbstractContextManager[None]:
        """A per-stream run lock across processes, released if the holder dies.

        ``holder`` is stored in clear text and shown to whoever is refused the lock.
        Raises ``LockedError(stream, holder)`` after ``timeout`` seconds.
        """

    # --- lifetime ------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""


#: rows per page when a store reads events
PAGE_SIZE: Final = 512

#: one page query: (conditions as ("seq >", value) pairs, descending?, page size) -> rows
PageFetch = Callable[[list[tuple[str, Any]], bool, int], list[Row]]


def paged_read(
    fetch: PageFetch,
    stream: str | None,
    after_seq: int,
    upto_seq: int | None,
    reverse: bool,
    limit: int | None,
) -> Iterator[Row]:
    """Events in pages of PAGE_SIZE by a seq cursor, forward or backward, for any store;
    ``fetch`` renders the conditions in its own SQL dialect."""
    remaining = limit
    # forward: the cursor is the last seq seen (exclusive lower bound);
    # reverse: the last seq seen (exclusive upper bound), None = from the head
    cursor: int | None = (
        after_seq if not reverse else (upto_seq + 1 if upto_seq is not None else None)
    )
    while remaining is None or remaining > 0:
        size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
        conditions: list[tuple[str, Any]] = []
        if reverse:
            conditions.append(("seq >", after_seq))
            if cursor is not None:
                conditions.append(("seq <", cursor))
        else:
            conditions.append(("seq >", cursor))
            if upto_seq is not None:
                conditions.append(("seq <=", upto_seq))
        if stream is not None:
            conditions.append(("stream =", stream))
        rows = fetch(conditions, reverse, size)
        yield from rows
        if len(rows) < size:
            return
        if remaining is not None:
            remaining -= len(rows)
        cursor = rows[-1].seq


def keys_changed_message(location: str) -> str:
    """What a rekey that lost the compare-and-swap says (both stores)."""
    return (
        f"the password of the journal at {location} was changed by another process since it "
        "was opened (a concurrent rekey won); nothing was changed: open it with the new "
        "password and rekey again if needed"
    )


def resolve_location(location: str | os.PathLike[str] | None) -> str:
    """None -> ``$JOURNAL_URL`` if set, else ``.journal/journal.db`` under the cwd."""
    if location is None:
        env = os.environ.get("JOURNAL_URL", "").strip()
        return env if env else os.path.abspath(DEFAULT_LOCATION)
    text = os.fspath(location)
    if not text:
        raise UsageError("the journal location is empty: give a file path or a postgresql:// URL")
    return text


_PG_SCHEMES: Final = ("postgresql://", "postgres://")
_SQLITE_SCHEME: Final = "sqlite:///"


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """Pick the store for a location. Creates no connection and touches no file.

    * ``postgresql://…`` / ``postgres://…``: the PostgreSQL store.
    * a plain file path, or ``sqlite:///relative/path`` / ``sqlite:////absolute/path``
      (SQLAlchemy's spelling): the SQLite store.
    """
    text = resolve_location(location)
    lowered = text.lower()
    if lowered.startswith(_PG_SCHEMES):
        from ._pg_store import PostgresStore

        return PostgresStore(text)
    if lowered.startswith(_SQLITE_SCHEME):
        text = text[len(_SQLITE_SCHEME) :]  # as SQLAlchemy: sqlite:///rel.db, sqlite:////abs.db
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise UsageError(
            f"unsupported journal URL scheme {scheme!r}: use a file path or a postgresql:// URL"
        )
    from ._sqlite_store import SQLiteStore

    return SQLiteStore(text)
