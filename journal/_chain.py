"""The chain check a command runs before it writes (and before it reads, to warn).

``Journal.verify`` opens every event, so its cost grows with the journal (about 2.6 s at 100k
events). A write cannot pay that every time; it checks, in this order:

1. **The anchor.** A snapshot's associated data binds the chain hash of the event it was taken
   at (``_crypto.snapshot_ad``): a snapshot that opens proves that a key holder saw the chain
   hold that hash there. The newest snapshot of the journal (over all streams) is the anchor
   (sequence A); older ones are not tried, so a damaged newest snapshot refuses writes until
   `journal verify` has been read. A snapshot past the head means events were removed from
   the end (a truncated journal); one that no longer opens means the snapshot, or the chain
   under it, was rewritten.
2. **The window under the anchor**, hash only: the ``WINDOW`` events up to A are rehashed from
   their stored bytes (nothing is decrypted) and must chain into the anchor's hash.
3. **The tail**, in full: every event after A is rehashed and opened, as ``verify`` does.

A snapshot written before anchors existed (v1: no hash bound) is still the starting point,
but proves nothing about the chain: re-chaining under it is not seen until the next run writes
an anchored snapshot. Without any snapshot the whole journal is the tail. The cost is bounded
by ``WINDOW`` plus the events since the newest snapshot, whatever the journal's length.

What this does not see, and ``journal verify`` does: a change to an event older than the
window that leaves the stored hashes as they were (a flipped ciphertext byte, a row deleted
without renumbering the rest). A change that re-chains the hashes to hide itself must reach
the anchor, and is seen. Reading such an event (``history``, ``rollback`` to it) fails too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import _crypto
from ._errors import IntegrityError
from ._store import Row

if TYPE_CHECKING:
    from ._journal import Journal

__all__ = ["WINDOW", "ChainCheck", "check_chain", "first_damage", "refusal", "warning_text"]

#: events under the anchor rehashed (hash only) by every check
WINDOW: Final = 2_048

VERIFY_HINT: Final = "run `journal verify` to see the damage"
TRUNCATED_HINT: Final = (
    "run `journal verify --expect-head SEQ:HASH` with a head you pinned earlier to see what "
    "is missing"
)


@dataclass(frozen=True)
class ChainCheck:
    """What a passing check covered."""

    head_seq: int
    head_hash: bytes
    #: the anchor's sequence (0: no snapshot, checked from the start)
    anchor_seq: int
    #: False when the anchor is a snapshot from before anchors (no chain hash bound to it)
    anchored: bool
    #: events rehashed without being opened (the window)
    hashed: int
    #: events rehashed and opened (the tail)
    opened: int


class TruncatedError(IntegrityError):
    """A snapshot is past the journal's head: its newest events are gone."""


def refusal(exc: IntegrityError) -> IntegrityError:
    """The error a writing command stops with."""
    hint = TRUNCATED_HINT if isinstance(exc, TruncatedError) else VERIFY_HINT
    error = IntegrityError(
        f"{exc.detail}; the journal is damaged, so nothing was written: {hint}", seq=exc.seq
    )
    error.__cause__ = exc
    return error


def first_damage(location: str | None, found: IntegrityError) -> IntegrityError:
    """What the check finds in the journal at ``location`` (its first bad sequence), else
    ``found``: for a read that failed before any check ran."""
    from ._journal import Journal

    with Journal.open(location, create=False) as journal:
        try:
            journal.check_chain()
        except IntegrityError as exc:
            return exc
    return found


def warning_text(exc: IntegrityError) -> str:
    """The warning a reading command prints before it goes on."""
    hint = TRUNCATED_HINT if isinstance(exc, TruncatedError) else VERIFY_HINT
    return f"the journal is damaged ({exc}); what follows may be wrong: {hint}"


Hasher = Callable[[bytes, int, str, int, str, bytes], bytes]


def step(hasher: Hasher, prev: bytes | None, expected_seq: int, row: Row) -> bytes:
    """Check one row against the chain (hash only); its hash. ``prev`` None: not known.
    ``hasher``: ``_crypto.event_hasher`` of the journal."""
    if row.seq != expected_seq:
        raise IntegrityError(
            f"event {expected_seq} is missing (the next event is {row.seq})", seq=expected_seq
        )
    if prev is not None and row.prev_hash != prev:
        raise IntegrityError("the event's previous-hash does not match the chain", seq=row.seq)
    digest = hasher(row.prev_hash, row.seq, row.stream, row.version, row.key_id, row.data)
    if digest != row.hash:
        raise IntegrityError(
            "the event's hash does not match its contents (modified, moved or swapped)",
            seq=row.seq,
        )
    return row.hash


def _end(expected_seq: int, upto: int) -> None:
    if expected_seq <= upto:
        raise IntegrityError(
            f"event {expected_seq} is missing (the journal ends before {upto})", seq=expected_seq
        )


def anchor(journal: Journal) -> tuple[int, int, bytes, bool]:
    """(head seq, seq, hash, bound) of the newest snapshot; bound: it opens with that chain
    hash (False: a snapshot from before anchors). Without snapshots: (head seq, 0, genesis,
    False). Raises ``TruncatedError`` when a snapshot is past the head."""
    store = journal.store
    names = store.snapshot_streams()
    found = [s for s in (store.latest_snapshot(name) for name in names) if s is not None]
    found.sort(key=lambda s: s.seq, reverse=True)
    # the head is read after the snapshots: a snapshot another writer takes meanwhile is at
    # or below the head it reaches first, so only a journal that lost events has one past it
    head = store.head()
    head_seq = 0 if head is None else head[0]
    if found and found[0].seq > head_seq:
        snap = found[0]
        raise TruncatedError(
            f"the journal ends at sequence {head_seq}, but the snapshot of stream "
            f"{snap.stream!r} was taken at sequence {snap.seq}: events were removed from its "
            "end (a truncated journal)",
            seq=head_seq + 1,
        )
    for snap in found[:1]:
        row = store.get(snap.seq)
        if row is None:
            raise IntegrityError(
                f"event {snap.seq} is missing (the snapshot of stream {snap.stream!r} was "
                "taken there)",
                seq=snap.seq,
            )
        try:
            bound = journal.unseal_snapshot(snap, row.hash)
        except IntegrityError:
            _locate(journal, snap.seq)  # name the first bad event under it, if it can be found
            raise
        return head_seq, snap.seq, row.hash, bound
    return head_seq, 0, journal.genesis, False


def _locate(journal: Journal, upto: int) -> None:
    """Rehash and open the window up to ``upto``: raises at the first bad event in it."""
    start = max(1, upto - WINDOW + 1)
    prev: bytes | None = journal.genesis if start == 1 else None
    expected = start
    hasher = _crypto.event_hasher(journal.journal_id)
    for row in journal.store.read(after_seq=start - 1, upto_seq=upto):
        prev = step(hasher, prev, expected, row)
        journal.open_row(row)
        expected += 1
    _end(expected, upto)


def check_chain(journal: Journal) -> ChainCheck:
    """Anchor, window and tail (see the module docstring); raises ``IntegrityError`` naming
    the first bad sequence found."""
    store = journal.store
    hasher = _crypto.event_hasher(journal.journal_id)
    head_seq, anchor_seq, anchor_hash, bound = anchor(journal)
    hashed = 0
    if anchor_seq:
        start = max(1, anchor_seq - WINDOW + 1)
        prev: bytes | None = journal.genesis if start == 1 else None
        expected = start
        for row in store.read(after_seq=start - 1, upto_seq=anchor_seq):
            prev = step(hasher, prev, expected, row)
            expected += 1
        _end(expected, anchor_seq)
        if prev != anchor_hash:  # the row changed between two reads: someone is writing it
            raise IntegrityError("the event changed while it was checked", seq=anchor_seq)
        hashed = anchor_seq - start + 1
    tail = anchor_hash
    expected = anchor_seq + 1
    for row in store.read(after_seq=anchor_seq, upto_seq=head_seq):
        tail = step(hasher, tail, expected, row)
        journal.open_row(row)
        expected += 1
    _end(expected, head_seq)
    return ChainCheck(head_seq, tail, anchor_seq, bound, hashed, head_seq - anchor_seq)
