"""What both stores do the same way with rows: columns to records, metadata to and from its
key/value rows, and the planning of an append inside the write transaction.

Every store keeps the same four tables (``meta``, ``keys``, ``events``, ``snapshots``) with
the same columns; only the SQL dialect, the connections and the locks differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .._errors import ConflictError, IntegrityError, UnsupportedJournalError
from ._base import FORMAT_VERSION, AppendRequest, AppendResult, Meta, Row, RowSealer, SnapshotRow

__all__ = [
    "EVENT_COLUMNS",
    "INCOMPLETE_KEY",
    "SNAPSHOT_COLUMNS",
    "as_bytes",
    "event_params",
    "meta_from",
    "meta_values",
    "plan_append",
    "row_from",
    "snapshot_from",
]

#: the meta key of a journal that ``journal migrate`` has not finished (see ``Meta``)
INCOMPLETE_KEY: Final = "incomplete"
EVENT_COLUMNS: Final = "seq, stream, version, key_id, prev_hash, hash, data"
SNAPSHOT_COLUMNS: Final = "stream, seq, key_id, data"


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return str(value).encode("utf-8")


def _text(value: object) -> str:
    # SQLite hands back TEXT stored as BLOB as bytes; keep every byte (latin-1 is lossless)
    return value if isinstance(value, str) else as_bytes(value).decode("latin-1")


def row_from(values: Sequence[Any]) -> Row:
    """An ``events`` row (``EVENT_COLUMNS``) as a ``Row``; ``IntegrityError`` if malformed."""
    seq, stream, version, key_id, prev_hash, hash_, data = values
    try:
        return Row(
            seq=int(seq),
            stream=_text(stream),
            version=int(version),
            key_id=str(key_id),
            prev_hash=as_bytes(prev_hash),
            hash=as_bytes(hash_),
            data=as_bytes(data),
        )
    except (TypeError, ValueError) as exc:
        raise IntegrityError("the stored row has malformed columns", seq=seq) from exc


def snapshot_from(values: Sequence[Any]) -> SnapshotRow:
    """A ``snapshots`` row (``SNAPSHOT_COLUMNS``) as a ``SnapshotRow``."""
    stream, seq, key_id, data = values
    try:
        return SnapshotRow(
            stream=str(stream), seq=int(seq), key_id=str(key_id), data=as_bytes(data)
        )
    except (TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the snapshot of stream {stream!r} has malformed columns", seq=None
        ) from exc


def event_params(rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The rows as ``INSERT INTO events (EVENT_COLUMNS)`` parameters."""
    return [(r.seq, r.stream, r.version, r.key_id, r.prev_hash, r.hash, r.data) for r in rows]


def meta_from(values: Mapping[str, str], wrapped: Mapping[str, bytes], where: str) -> Meta:
    """The metadata from its ``meta`` key/values and ``keys`` rows; ``where`` names the
    journal in errors. Refuses a newer format, an unknown KDF and incomplete metadata."""
    try:
        fmt = int(values["format_version"])
    except (KeyError, ValueError) as exc:
        raise UnsupportedJournalError(
            f"{where} is not a journal: its metadata has no format version"
        ) from exc
    if values.get("kdf", "argon2id") != "argon2id":
        raise UnsupportedJournalError(
            f"the journal at {where} uses key derivation {values['kdf']!r}, "
            "which this version of journal does not know: upgrade journal"
        )
    if fmt > FORMAT_VERSION:
        raise UnsupportedJournalError(
            f"the journal at {where} has format {fmt}, newer than this version of "
            f"journal reads (format {FORMAT_VERSION}): upgrade journal"
        )
    try:
        meta = Meta(
            journal_id=values["journal_id"],
            format_version=fmt,
            kdf_opslimit=int(values["kdf_opslimit"]),
            kdf_memlimit=int(values["kdf_memlimit"]),
            salt=bytes.fromhex(values["salt"]),
            current_key_id=values["current_key_id"],
            wrapped_keys=dict(wrapped),
            incomplete=INCOMPLETE_KEY in values,
        )
    except (KeyError, ValueError) as exc:
        raise UnsupportedJournalError(
            f"the journal at {where} has incomplete metadata ({exc}); "
            "it was not written by journal or is damaged"
        ) from exc
    if meta.current_key_id not in wrapped:
        raise UnsupportedJournalError(
            f"the journal at {where} lacks its data key {meta.current_key_id!r}"
        )
    return meta


def meta_values(meta: Meta) -> dict[str, str]:
    """The ``meta`` table's key/values for ``meta`` (its wrapped keys go to ``keys``)."""
    values = {
        "journal_id": meta.journal_id,
        "format_version": str(meta.format_version),
        "kdf": "argon2id",
        "kdf_opslimit": str(meta.kdf_opslimit),
        "kdf_memlimit": str(meta.kdf_memlimit),
        "salt": meta.salt.hex(),
        "current_key_id": meta.current_key_id,
    }
    if meta.incomplete:
        values[INCOMPLETE_KEY] = "journal migrate"
    return values


def plan_append(
    requests: Sequence[AppendRequest],
    seal: RowSealer,
    head: Sequence[Any] | None,
    genesis: bytes,
    stream_version: Callable[[str], int],
) -> tuple[list[AppendResult], list[Row]]:
    """Inside a write transaction: number, chain and seal the new rows of ``requests``.

    ``head`` is the (seq, hash) of the last row as read in the transaction (None: empty);
    ``stream_version`` reads a stream's current version in it. A request whose
    ``expected_version`` is stale gets a ``ConflictError`` and takes no numbers. Returns the
    per-request results and every new row, to insert in one statement."""
    seq, prev = (0, genesis) if head is None else (int(head[0]), as_bytes(head[1]))
    versions: dict[str, int] = {}
    results: list[AppendResult] = []
    new_rows: list[Row] = []
    for request in requests:
        stream = request.stream
        if stream not in versions:
            versions[stream] = stream_version(stream)
        version = versions[stream]
        expected = request.expected_version
        if expected is not None and expected != version:
            results.append(ConflictError(stream, expected, version))
            continue
        rows: list[Row] = []
        for plain in request.plaintexts:
            seq += 1
            version += 1
            row = seal(stream, seq, version, prev, plain)
            prev = row.hash
            rows.append(row)
        versions[stream] = version
        results.append(rows)
        new_rows.extend(rows)
    return results, new_rows
