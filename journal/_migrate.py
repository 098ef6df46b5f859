"""Move a journal to another store: SQLite → PostgreSQL (a team outgrows one machine) and back.

    from journal._migrate import migrate
    report = migrate(".journal/journal.db", "postgresql://ci@db.internal/infra")

A copy is byte for byte: the metadata (journal id, KDF parameters, salt, wrapped data keys),
every event row (seq, stream, version, key id, previous hash, hash, sealed data) and every
snapshot row. Nothing is decrypted to be copied. The ciphertexts stay valid because their
associated data binds them to the journal id, the stream, the sequence, the version, the key id
and the previous hash, none of which depends on the store.

Steps: refuse a target that already holds anything; open the source with the password (so a
wrong password stops here, with nothing written) and hold the run lock of every stage it has
(no deploy can append meanwhile); verify the source; create the target with the source's
metadata, marked *incomplete* (a journal so marked refuses to open, and ``verify`` fails on
it); copy the events through the target's ordinary ``append`` (whose sealer hands back
the source's rows unchanged, after checking that the target gave each the same sequence,
version and previous hash), in batches of one transaction each; copy the snapshots; then open
the target with the password, compare it with the source row by row and snapshot by
snapshot, and run ``verify`` on it; only then clear the mark, in the very last write. The
source is only read.

A migration that fails, or is killed, after creating the target leaves an incomplete target
behind, which can never be mistaken for a good copy: it refuses to open and says to delete it
and migrate again; the error of a failed migration says the same. A target is never reused:
migrating into a location that holds a journal, even an empty one, is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from . import _crypto
from ._chain import refusal
from ._errors import IntegrityError, StorageError, StoreError, UsageError
from ._journal import Journal, VerifyReport
from ._store import AppendRequest, Row, RowSealer, Store, open_store, resolve_location

__all__ = ["MigrationReport", "migrate"]

#: rows per target transaction
BATCH_ROWS: Final = 5_000

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MigrationReport:
    source: str
    target: str
    journal_id: str
    events: int
    snapshots: int
    streams: int
    head_seq: int
    head_hash: str
    seconds: float


def _same_location(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a.strip().rstrip("/") == b.strip().rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _requests(batch: Sequence[Row]) -> list[AppendRequest]:
    """Consecutive rows of one stream become one request expecting that stream's version."""
    requests: list[AppendRequest] = []
    start = 0
    for i in range(1, len(batch) + 1):
        if i == len(batch) or batch[i].stream != batch[start].stream:
            first = batch[start]
            requests.append(AppendRequest(first.stream, first.version - 1, [b""] * (i - start)))
            start = i
    return requests


def _replaying(by_seq: dict[int, Row]) -> RowSealer:
    """A sealer that hands back the source's rows, checking the target's numbering."""

    def seal(stream: str, seq: int, version: int, prev: bytes, plain: bytes) -> Row:
        row = by_seq.get(seq)
        if row is None or (row.stream, row.version, row.prev_hash) != (stream, version, prev):
            raise IntegrityError(
                "the target's journal diverged from the source while copying", seq=seq
            )
        return row

    return seal


def _copy_events(
    source: Store,
    target: Store,
    genesis: bytes,
    head_seq: int,
    batch_rows: int,
    progress: Progress | None,
) -> int:
    copied = 0
    for batch in _batches(source.read(upto_seq=head_seq), batch_rows):
        seal = _replaying({row.seq: row for row in batch})
        results = target.append(_requests(batch), seal, genesis)
        for result in results:
            if not isinstance(result, list):
                raise result  # a ConflictError: someone else wrote to the new target
        copied += len(batch)
        if progress is not None:
            progress("events", copied, head_seq)
    return copied


def _compare(source: Journal, target: Journal, head_seq: int) -> int:
    """Row by row and snapshot by snapshot; returns the number of snapshots compared."""
    src_rows = source.store.read(upto_seq=head_seq)
    dst_rows = target.store.read()
    for expected, got in zip(src_rows, dst_rows, strict=False):
        if expected != got:
            raise IntegrityError(
                "the copied event differs from the source's (bytes or chain)", seq=got.seq
            )
    extra = next(iter(target.store.read(after_seq=head_seq, limit=1)), None)
    if extra is not None:
        raise IntegrityError("the target holds events the source does not", seq=extra.seq)
    if target.head()[0] != head_seq:
        raise IntegrityError(
            f"the target ends at sequence {target.head()[0]}, the source at {head_seq}"
        )
    src_snaps = [s for s in source.store.snapshots() if s.seq <= head_seq]
    dst_snaps = list(target.store.snapshots())
    if src_snaps != dst_snaps:
        raise IntegrityError("the copied snapshots differ from the source's")
    return len(dst_snaps)


def _removal(location: str) -> str:
    if "://" in location:
        return "drop its schema (DROP SCHEMA <schema> CASCADE; the default schema is `journal`)"
    return "delete the file"


def _cleanup_hint(location: str) -> str:
    return (
        f"the journal created at {location} is incomplete (it refuses to open): "
        f"{_removal(location)} before trying again"
    )


def migrate(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    *,
    password: str | None = None,
    lock_timeout: float = 0.0,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy the journal at ``source`` (None: ``$JOURNAL_URL``, else ``.journal/journal.db``)
    to the empty location ``target`` and verify the copy; see the module docstring.

    ``password``: None means ``$JOURNAL_PASSWORD``, else ``$ALCHEMY_PASSWORD``.
    ``lock_timeout``: how long to wait for runs in progress to finish (their stages' locks).
    Raises ``UsageError`` (same location, a target that is not empty, no source journal),
    ``PasswordError``, ``LockedError``, ``IntegrityError`` (a corrupt source, or a copy that
    does not match) or ``StorageError``."""
    t0 = time.monotonic()
    src_location = resolve_location(source)
    dst_location = resolve_location(target)
    if batch_rows < 1:
        raise UsageError("batch_rows must be at least 1")
    if _same_location(src_location, dst_location):
        raise UsageError(f"the source and the target are the same journal ({dst_location})")
    if os.path.isfile(dst_location) and os.path.getsize(dst_location) == 0:
        # an empty file (as `mktemp` makes) is an empty location: it holds nothing to lose
        os.unlink(dst_location)
    with contextlib.ExitStack() as stack:
        dst = open_store(dst_location)
        stack.callback(dst.close)
        existing = dst.read_meta()
        if existing is not None and existing.incomplete:
            raise UsageError(
                f"the target {dst.location} holds an incomplete copy left by an interrupted "
                f"migrate: {_removal(dst.location)}, then migrate again"
            )
        if existing is not None:
            raise UsageError(
                f"the target {dst.location} already holds a journal: migrate only into an "
                "empty location (a new file, or a database/schema without a journal)"
            )
        src = stack.enter_context(Journal.open(src_location, password=password, create=False))
        for stream in src.streams():
            stack.enter_context(
                src.lock(stream, holder={"command": "migrate"}, timeout=lock_timeout)
            )
        try:
            src_report: VerifyReport = src.verify()
        except IntegrityError as exc:
            raise refusal(exc) from exc  # names `journal verify`; nothing was written yet
        head_seq = src_report.head_seq
        meta = src.store.read_meta()
        if meta is None:  # pragma: no cover - it was just opened
            raise UsageError(f"no journal at {src.location}")
        created = dst.create(dataclasses.replace(meta, incomplete=True))
        if created.journal_id != meta.journal_id:
            raise UsageError(
                f"another process created a journal at {dst.location} meanwhile; nothing was copied"
            )
        try:
            genesis = _crypto.genesis_hash(meta.journal_id)
            _copy_events(src.store, dst, genesis, head_seq, batch_rows, progress)
            snaps = 0
            todo = sum(1 for snap in src.store.snapshots() if snap.seq <= head_seq)
            for snap in src.store.snapshots():
                if snap.seq <= head_seq:
                    dst.put_snapshot(snap)
                    snaps += 1
                    if progress is not None:
                        progress("snapshots", snaps, todo)
            dst.close()
            with Journal.open(
                dst_location, password=password, create=False, allow_incomplete=True
            ) as copy:
                compared = _compare(src, copy, head_seq)
                dst_report = copy.verify()
                if (dst_report.head_seq, dst_report.head_hash) != (
                    head_seq,
                    src_report.head_hash,
                ):
                    raise IntegrityError(
                        "the target's head differs from the source's after copying"
                    )
                if compared != snaps:
                    raise IntegrityError("the target's snapshots differ from the source's")
                now = src.store.head()
                if (now[0] if now is not None else 0) != head_seq:
                    raise StorageError(
                        f"the source {src.location} changed while it was copied "
                        "(a writer that does not take the stages' locks?)"
                    )
                copy.store.mark_complete()  # the very last write: the copy is good
        except IntegrityError as exc:
            error = IntegrityError(f"{exc}; {_cleanup_hint(dst.location)}")
            error.seq = exc.seq
            raise error from exc
        except StoreError as exc:
            raise StorageError(
                f"copying to {dst.location} failed: {exc}; {_cleanup_hint(dst.location)}"
            ) from exc
        return MigrationReport(
            source=src.location,
            target=dst.location,
            journal_id=meta.journal_id,
            events=head_seq,
            snapshots=snaps,
            streams=src_report.streams,
            head_seq=head_seq,
            head_hash=src_report.head_hash,
            seconds=time.monotonic() - t0,
        )
    raise AssertionError("unreachable")  # pragma: no cover
