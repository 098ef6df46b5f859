"""The journal's storage seam: a small abstract ``Store`` of bytes-level operations.

A store knows rows, not events: it never sees a key or a plaintext. ``Journal`` (in
``_journal.py``) owns the crypto and hands the store opaque, already sealed bytes, except for
appends, where sealing needs the head of the journal as read *inside* the write transaction:
there the store calls back a ``RowSealer`` once per new row.

The package::

    _base.py       Store (the ABC), Meta, Row, SnapshotRow, AppendRequest, paged reads
    _rows.py       what both stores share: columns <-> records, metadata rows, append planning
    _sqlite.py     SQLiteStore: one file, WAL, flock run locks
    _postgres.py   PostgresStore: one schema, advisory locks, a psycopg_pool of readers
    _open.py       open_store(location): picks and imports one of the two, lazily

Dependencies point one way: ``_open`` -> ``_sqlite``/``_postgres`` -> ``_rows`` -> ``_base``.
Every implementation must pass the contract suite in ``tests/test_journal_store.py``.

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

from ._base import (
    FORMAT_VERSION,
    PAGE_SIZE,
    AppendRequest,
    AppendResult,
    Meta,
    Row,
    RowSealer,
    SnapshotRow,
    Store,
    StoreStats,
    keys_changed_message,
    paged_read,
)
from ._open import DEFAULT_LOCATION, open_store, resolve_location

__all__ = [
    "DEFAULT_LOCATION",
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
    "open_store",
    "paged_read",
    "resolve_location",
]
