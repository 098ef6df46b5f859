"""The abstract ``Store`` and the records it trades in (see the package docstring)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from .._errors import ConflictError

__all__ = [
    "FORMAT_VERSION",
    "PAGE_SIZE",
    "AppendRequest",
    "AppendResult",
    "Meta",
    "Row",
    "RowSealer",
    "SnapshotRow",
    "Store",
    "StoreStats",
    "keys_changed_message",
    "paged_read",
    "paged_snapshots",
]

#: the newest journal format this code reads and writes
FORMAT_VERSION: Final = 1


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

    def _count_append(self, results: Sequence[AppendResult], rows: int) -> None:
        """Instrumentation after one committed append transaction."""
        self.stats.append_transactions += 1
        self.stats.append_requests += sum(1 for r in results if isinstance(r, list))
        self.stats.rows_appended += rows

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


#: one page of snapshots after (stream, seq) (None: from the first) -> at most PAGE_SIZE of them
SnapshotFetch = Callable[[tuple[str, int] | None], list[SnapshotRow]]


def paged_snapshots(fetch: SnapshotFetch) -> Iterator[SnapshotRow]:
    """Every snapshot in (stream, seq) order, PAGE_SIZE per query, for any store."""
    last: tuple[str, int] | None = None
    while True:
        snaps = fetch(last)
        yield from snaps
        if len(snaps) < PAGE_SIZE:
            return
        last = (snaps[-1].stream, snaps[-1].seq)


def keys_changed_message(location: str) -> str:
    """What a rekey that lost the compare-and-swap says (both stores)."""
    return (
        f"the password of the journal at {location} was changed by another process since it "
        "was opened (a concurrent rekey won); nothing was changed: open it with the new "
        "password and rekey again if needed"
    )
