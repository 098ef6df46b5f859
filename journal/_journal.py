"""``Journal``: the encrypted, hash-chained, append-only event log.

A journal is a sequence of events, each in one stream (``"app/stage"``), numbered globally
(``seq``, 1-based, gapless) and within its stream (``version``, 1-based, gapless). The whole
payload of every event is sealed with the journal's data key (see ``_crypto``); only ``seq``,
``stream``, ``version``, ``key_id`` and the chain hashes are stored in clear.

Writes go through group commit: concurrent ``append`` calls from threads of one process are
gathered into one store transaction (one durable flush) by whichever caller gets there first,
the *leader*; everyone returns once their own events are durable. A request whose
``expected_version`` is stale fails alone with ``ConflictError``.

``verify`` walks the whole chain and reports the first bad sequence; ``expect_head`` (a hash,
or ``SEQ:HASH``) must be found on the chain (at ``SEQ`` if given): a journal that lost its tail
no longer holds the head that was pinned before. A journal that merely grew past the pinned head
passes, since every later event is chained to it.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import nacl.exceptions
import nacl.pwhash.argon2id

from . import _chain, _crypto, _settings
from ._errors import (
    ConflictError,
    IncompleteJournalError,
    IntegrityError,
    MissingPasswordError,
    NoJournalError,
    NotAJournalError,
    StoreError,
    UnknownSequenceError,
    UsageError,
    WeakPasswordError,
)
from ._secret import Secret
from ._store import (
    FORMAT_VERSION,
    AppendRequest,
    AppendResult,
    Meta,
    Row,
    SnapshotRow,
    Store,
    open_store,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ChainCheck",
    "Event",
    "Journal",
    "KdfParams",
    "VerifyReport",
    "check_new_password",
]

ChainCheck = _chain.ChainCheck

#: most append requests / rows one group-commit transaction takes (a bigger request goes alone)
MAX_GROUP: Final = 256
MAX_GROUP_ROWS: Final = 20_000
#: the shortest password a new journal or a rekey accepts (leading/trailing blanks not counted)
MIN_PASSWORD_LENGTH: Final = 8

_argon = nacl.pwhash.argon2id


@dataclass(frozen=True)
class Event:
    """One decrypted event. ``hash`` is the hex chain hash; ``payload`` always has "type"."""

    seq: int
    stream: str
    version: int
    key_id: str
    hash: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. Chosen when a journal is created and stored in it."""

    opslimit: int
    memlimit: int

    def __post_init__(self) -> None:
        if not _argon.OPSLIMIT_MIN <= self.opslimit <= _argon.OPSLIMIT_MAX:
            raise UsageError(
                f"Argon2id opslimit {self.opslimit} is out of range "
                f"[{_argon.OPSLIMIT_MIN}, {_argon.OPSLIMIT_MAX}]"
            )
        if not _argon.MEMLIMIT_MIN <= self.memlimit <= _argon.MEMLIMIT_MAX:
            raise UsageError(
                f"Argon2id memlimit {self.memlimit} is out of range "
                f"[{_argon.MEMLIMIT_MIN}, {_argon.MEMLIMIT_MAX}]"
            )

    @classmethod
    def interactive(cls) -> KdfParams:
        """The default: libsodium's interactive limits (64 MiB)."""
        return cls(_argon.OPSLIMIT_INTERACTIVE, _argon.MEMLIMIT_INTERACTIVE)

    @classmethod
    def moderate(cls) -> KdfParams:
        return cls(_argon.OPSLIMIT_MODERATE, _argon.MEMLIMIT_MODERATE)

    @classmethod
    def minimum(cls) -> KdfParams:
        """Fast and weak: for tests and benchmarks only."""
        return cls(_argon.OPSLIMIT_MIN, _argon.MEMLIMIT_MIN)

    @classmethod
    def from_env(cls) -> KdfParams:
        """``JOURNAL_KDF=minimum|interactive|moderate`` (default interactive)."""
        raw = os.environ.get("JOURNAL_KDF", "").strip()
        choices = {"minimum": cls.minimum, "interactive": cls.interactive, "moderate": cls.moderate}
        if not raw:
            return cls.interactive()
        try:
            return choices[raw.lower()]()
        except KeyError:
            raise UsageError(
                f"JOURNAL_KDF={raw!r} is not a key-derivation profile: "
                "use minimum, interactive or moderate"
            ) from None


@dataclass(frozen=True)
class VerifyReport:
    events: int
    head_seq: int
    head_hash: str
    streams: int


# --- group commit --------------------------------------------------------------------------


class _Pending:
    """One caller's request in the queue, and how its thread is woken: a lock held from the
    start, released once by whoever hands this caller its result or the lead."""

    __slots__ = ("_wake", "abandoned", "done", "error", "lead", "request", "rows")

    def __init__(self, request: AppendRequest) -> None:
        self.request = request
        self.done = False
        #: this caller leads (commits batches) rather than waits
        self.lead = False
        #: its caller stopped waiting (interrupted): it is committed, but never leads
        self.abandoned = False
        self.rows: list[Row] = []
        self.error: BaseException | None = None
        self._wake = threading.Lock()
        self._wake.acquire()

    def wait(self) -> None:
        self._wake.acquire()

    def wake(self) -> None:
        self._wake.release()

    def outcome(self) -> list[Row]:
        if self.error is not None:
            raise self.error
        return self.rows


class _GroupCommit:
    """Leader/follower batching of appends into one transaction.

    A caller queues its request; if no leader is committing, it becomes the leader: it takes
    the queued requests (up to ``MAX_GROUP`` requests / ``MAX_GROUP_ROWS`` rows, at least one),
    commits them in one store call, hands every caller its own result and wakes them. Callers
    that queued meanwhile form the next batch. A leader serves batches until its own request
    is done, then hands the lead to the oldest waiting caller (or steps down if none waits).

    Each waiting caller sleeps on its own lock and is woken exactly once, by the leader that
    finished its request or handed it the lead: a batch wakes only its own members, not
    every thread waiting (a shared condition's ``notify_all`` woke them all, and every
    wake-up is a context switch and a GIL hand-over).
    """

    def __init__(self, commit: Callable[[Sequence[AppendRequest]], list[AppendResult]]) -> None:
        self._store_commit = commit
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False

    def submit(self, request: AppendRequest) -> list[Row]:
        mine = _Pending(request)
        with self._lock:
            self._queue.append(mine)
            mine.lead = not self._leading
            self._leading = True
        if not mine.lead:
            try:
                mine.wait()
            except BaseException:
                self._abandon(mine)
                raise
            if mine.done:
                return mine.outcome()
        try:
            # `mine` is still queued: every earlier leader finished its batches before leaving
            while not mine.done:
                self._commit(self._take())
        finally:
            self._hand_over()
        return mine.outcome()

    def _hand_over(self) -> None:
        """The leader leaves: the oldest caller still waiting leads next, if any."""
        with self._lock:
            heir = self._heir()
        if heir is not None:
            heir.wake()

    def _heir(self) -> _Pending | None:
        """(Under the lock.) Give the lead to the oldest caller still waiting; with none,
        nobody leads (requests left queued by interrupted callers wait for the next one)."""
        heir = next((p for p in self._queue if not p.abandoned), None)
        if heir is None:
            self._leading = False
        else:
            heir.lead = True
        return heir

    def _abandon(self, mine: _Pending) -> None:
        """A waiting caller was interrupted (KeyboardInterrupt in the main thread). Its
        request stays queued, as a leader may be committing it already, and is committed
        with the next batch; if it had just been handed the lead, the lead goes on."""
        with self._lock:
            mine.abandoned = True
            heir = self._heir() if mine.lead and not mine.done else None
        if heir is not None:
            heir.wake()

    def _take(self) -> list[_Pending]:
        with self._lock:
            count = rows = 0
            for pending in self._queue:
                size = len(pending.request.plaintexts)
                if count and (count >= MAX_GROUP or rows + size > MAX_GROUP_ROWS):
                    break
                count += 1
                rows += size
            batch = self._queue[:count]
            del self._queue[:count]
            return batch

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = self._store_commit([p.request for p in batch])
        except Exception as exc:
            self._finish(batch, [exc] * len(batch))
        except BaseException as exc:
            # Interrupted (KeyboardInterrupt, ...): the store rolled back if it could; the
            # followers get a StoreError, the leader's own thread sees the interruption.
            failure = StoreError(
                "the append was interrupted in another thread; check the journal's head "
                "before retrying"
            )
            failure.__cause__ = exc
            self._finish(batch, [failure] * len(batch))
            raise
        else:
            self._finish(batch, results)

    @staticmethod
    def _finish(batch: list[_Pending], results: Sequence[AppendResult | Exception]) -> None:
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, list):
                pending.rows = result
            else:
                pending.error = result
            pending.done = True
            if not pending.lead:  # the leader's own request: nobody waits for it
                pending.wake()


# --- the journal ---------------------------------------------------------------------------


_resolve_password = _settings.password


def check_new_password(password: str, what: str = "the new journal password") -> None:
    """Refuse a password being chosen (a new journal, a rekey) that is blank or shorter than
    ``MIN_PASSWORD_LENGTH`` characters. Existing journals open with whatever they have."""
    if not password:
        raise MissingPasswordError(f"{what} is empty: give a non-empty password")
    if not password.strip():
        raise WeakPasswordError(f"{what} is blank (only spaces): choose a real password")
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"{what} is too short: use at least {MIN_PASSWORD_LENGTH} characters "
            "(a passphrase of a few words is best); nothing was changed"
        )


_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")


def _parse_expect_head(text: str) -> tuple[int | None, bytes]:
    seq_text, sep, hash_text = text.strip().rpartition(":")
    if not _HEX64.fullmatch(hash_text) or (sep and not seq_text.isdigit()):
        raise UsageError(
            f"--expect-head {text!r} is not a head: give the 64-hex-digit hash, or SEQ:HASH"
        )
    return (int(seq_text) if sep else None), bytes.fromhex(hash_text)


class Journal:
    """An open journal. Create with ``Journal.open``; thread-safe; close when done."""

    def __init__(self, store: Store, meta: Meta, data_keys: Mapping[str, bytes]) -> None:
        self._store = store
        self._meta = meta
        self._codecs = {kid: _crypto.Codec.for_key(key) for kid, key in data_keys.items()}
        self._data_keys = dict(data_keys)
        self._key_id = meta.current_key_id
        self._genesis = _crypto.genesis_hash(meta.journal_id)
        self._group = _GroupCommit(self._commit)
        self._closed = False
        # the chain as this object last checked it (None: not yet), and the hashes of the
        # rows it appended since (they need no opening to be trusted); see ``_writable``
        self._chain_lock = threading.Lock()
        self._verified: tuple[int, bytes] | None = None
        self._own: dict[int, bytes] = {}

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        password: str | None = None,
        create: bool = True,
        kdf: KdfParams | None = None,
        new: bool = False,
        allow_incomplete: bool = False,
    ) -> Journal:
        """Open the journal at ``location``, creating it if ``create`` and there is none.

        ``location``: a file path (SQLite) or a ``postgresql://`` URL; None means
        ``$JOURNAL_URL``, else ``.journal/journal.db`` under the current directory.
        ``password``: None means ``$JOURNAL_PASSWORD``, else ``$ALCHEMY_PASSWORD``.
        ``kdf``: Argon2id cost of a *new* journal (default ``KdfParams.from_env()``); an
        existing journal always uses the parameters stored in it.
        ``new``: (with ``create``) something at the location that is not a journal, such as an
        empty file, is moved aside and replaced by a new journal; without it, it is refused
        (``NotAJournalError``), so that a journal that lost its contents is never re-created.
        ``allow_incomplete``: open a journal that ``journal migrate`` has not finished (only
        ``migrate`` itself does); otherwise such a journal is refused.

        Raises ``MissingPasswordError``, ``WeakPasswordError`` (creating with a short password),
        ``WrongPasswordError``, ``NoJournalError`` (no journal and ``create=False``),
        ``UnsupportedJournalError`` (not a journal, an incomplete one, or a newer format) or
        ``StorageError``; in every one of these cases nothing has been written.
        """
        secret = _resolve_password(password)
        store = open_store(location)
        try:
            try:
                meta = store.read_meta()
            except NotAJournalError:
                if not (create and new):
                    raise
                meta = None
            if meta is None:
                if not create:
                    raise NoJournalError(
                        f"no journal at {store.location}: deploy first, or check --journal "
                        "(or JOURNAL_URL) points at the right journal"
                    )
                source = " (from JOURNAL_PASSWORD or ALCHEMY_PASSWORD)" if password is None else ""
                check_new_password(
                    secret, f"the password of the new journal at {store.location}{source}"
                )
                fresh = cls._new_meta(secret, kdf or KdfParams.from_env())
                meta = store.create(fresh, replace=new)
            if meta.incomplete and not allow_incomplete:
                raise IncompleteJournalError(
                    f"the journal at {store.location} is an incomplete copy left by an "
                    "interrupted `journal migrate` and cannot be used: delete it (a PostgreSQL "
                    "target: drop its schema) and re-run `journal migrate` into a fresh target; "
                    "the source journal is unchanged"
                )
            keys = cls._unwrap(meta, secret)
            return cls(store, meta, keys)
        except BaseException:
            store.close()
            raise

    @staticmethod
    def _new_meta(password: str, kdf: KdfParams) -> Meta:
        journal_id = secrets.token_hex(16)
        salt = _crypto.new_salt()
        key_id = _crypto.new_key_id()
        kek = _crypto.derive_kek(
            password,
            salt=salt,
            opslimit=kdf.opslimit,
            memlimit=kdf.memlimit,
            journal_id=journal_id,
        )
        wrapped = _crypto.wrap_key(
            kek, _crypto.new_data_key(), journal_id=journal_id, key_id=key_id
        )
        return Meta(
            journal_id=journal_id,
            format_version=FORMAT_VERSION,
            kdf_opslimit=kdf.opslimit,
            kdf_memlimit=kdf.memlimit,
            salt=salt,
            current_key_id=key_id,
            wrapped_keys={key_id: wrapped},
        )

    @staticmethod
    def _unwrap(meta: Meta, password: str) -> dict[str, bytes]:
        kek = _crypto.derive_kek(
            password,
            salt=meta.salt,
            opslimit=meta.kdf_opslimit,
            memlimit=meta.kdf_memlimit,
            journal_id=meta.journal_id,
        )
        return {
            kid: _crypto.unwrap_key(kek, wrapped, journal_id=meta.journal_id, key_id=kid)
            for kid, wrapped in meta.wrapped_keys.items()
        }

    # --- properties ----------------------------------------------------------------------

    @property
    def journal_id(self) -> str:
        return self._meta.journal_id

    @property
    def location(self) -> str:
        return self._store.location

    @property
    def kdf(self) -> KdfParams:
        """The Argon2id parameters stored in this journal."""
        return KdfParams(self._meta.kdf_opslimit, self._meta.kdf_memlimit)

    @property
    def store(self) -> Store:
        """The underlying store (instrumentation: ``store.stats``)."""
        return self._store

    @property
    def genesis(self) -> bytes:
        """The hash the chain starts from (the ``prev_hash`` of event 1)."""
        return self._genesis

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the journal at {self.location} is closed")

    # --- reading -------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        self._check_open()
        found = self._store.head()
        return (0, self._genesis.hex()) if found is None else (found[0], found[1].hex())

    def stream_version(self, stream: str) -> int:
        self._check_open()
        return self._store.stream_version(stream)

    def streams(self) -> list[str]:
        self._check_open()
        return self._store.streams()

    def read(
        self,
        stream: str | None = None,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Event]:
        """Events with ``after_seq < seq <= upto_seq`` (of one stream if given), in seq order
        (newest first if ``reverse``), at most ``limit`` of them."""
        self._check_open()
        if after_seq < 0 or (upto_seq is not None and upto_seq < 0):
            raise UsageError("sequence bounds cannot be negative")
        if limit is not None and limit < 0:
            raise UsageError("limit cannot be negative")
        rows = self._store.read(
            stream, after_seq=after_seq, upto_seq=upto_seq, reverse=reverse, limit=limit
        )
        return (self._open_row(row) for row in rows)

    def event(self, seq: int) -> Event:
        self._check_open()
        row = self._store.get(seq)
        if row is None:
            head = self.head()[0]
            raise UnknownSequenceError(
                f"there is no event {seq} in the journal at {self.location} "
                f"(it holds events 1 to {head})"
                if head
                else f"there is no event {seq}: the journal at {self.location} is empty"
            )
        return self._open_row(row)

    def _codec(self, key_id: str, seq: int | None, what: str) -> _crypto.Codec:
        codec = self._codecs.get(key_id)
        if codec is None:
            raise IntegrityError(f"{what} uses unknown key id {key_id!r}", seq=seq)
        return codec

    def open_row(self, row: Row) -> Event:
        """Open (authenticate and decrypt) a stored row; ``IntegrityError`` if it fails."""
        return self._open_row(row)

    def _open_row(self, row: Row) -> Event:
        codec = self._codec(row.key_id, row.seq, "the event")
        ad = _crypto.event_ad(
            self.journal_id, row.stream, row.seq, row.version, row.key_id, row.prev_hash
        )
        try:
            payload = codec.decode(row.data, ad)
        except ValueError as exc:
            raise IntegrityError(
                f"the event does not open ({exc}): it was modified, moved or re-keyed",
                seq=row.seq,
            ) from exc
        if not isinstance(payload.get("type"), str):
            raise IntegrityError("the event's payload has no 'type'", seq=row.seq)
        return Event(row.seq, row.stream, row.version, row.key_id, row.hash.hex(), payload)

    # --- appending -----------------------------------------------------------------------

    def append(
        self,
        stream: str,
        payloads: Sequence[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> list[Event]:
        """Append ``payloads`` to ``stream`` atomically and durably; see the module docstring."""
        self._check_open()
        self._check_stream(stream)
        if expected_version is not None and expected_version < 0:
            raise UsageError("expected_version cannot be negative")
        if isinstance(payloads, Mapping):
            raise UsageError("append takes a sequence of payloads, not a single payload")
        codec = self._codecs[self._key_id]
        plaintexts: list[bytes] = []
        for payload in payloads:
            if not isinstance(payload, Mapping) or not isinstance(payload.get("type"), str):
                raise UsageError("an event payload must be a JSON object with a string 'type'")
            plaintexts.append(codec.serialize(payload))
        if not plaintexts:
            if expected_version is not None:
                actual = self._store.stream_version(stream)
                if actual != expected_version:
                    raise ConflictError(stream, expected_version, actual)
            return []
        self._writable()
        rows = self._group.submit(AppendRequest(stream, expected_version, plaintexts))
        with self._chain_lock:
            self._own.update((r.seq, r.hash) for r in rows)
        return [
            Event(r.seq, r.stream, r.version, r.key_id, r.hash.hex(), codec.deserialize(p))
            for r, p in zip(rows, plaintexts, strict=True)
        ]

    @staticmethod
    def _check_stream(stream: str) -> None:
        if not isinstance(stream, str) or not stream or "\x00" in stream:
            raise UsageError(f"invalid stream name {stream!r}: expected 'app/stage'")

    def _commit(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """One store transaction for a batch of requests (called by the group-commit leader)."""
        self._check_open()
        return self._store.append(requests, self._seal, self._genesis)

    def _seal(self, stream: str, seq: int, version: int, prev_hash: bytes, plain: bytes) -> Row:
        key_id = self._key_id
        ad = _crypto.event_ad(self.journal_id, stream, seq, version, key_id, prev_hash)
        data = self._codecs[key_id].seal(plain, ad)
        return Row(
            seq=seq,
            stream=stream,
            version=version,
            key_id=key_id,
            prev_hash=prev_hash,
            hash=_crypto.chain_hash(prev_hash, seq, ad, data),
            data=data,
        )

    # --- snapshots -----------------------------------------------------------------------

    def put_snapshot(self, stream: str, seq: int, state: Mapping[str, Any]) -> None:
        """Store ``state`` as the state of ``stream`` after event ``seq``, encrypted and bound
        to the chain hash of event ``seq`` (the snapshot is then an anchor, see ``_chain``)."""
        self._check_open()
        self._check_stream(stream)
        head = self._store.head()
        if seq < 1 or head is None or seq > head[0]:
            raise UnknownSequenceError(
                f"cannot snapshot stream {stream!r} at sequence {seq}: "
                f"the journal holds events 1 to {head[0] if head else 0}"
            )
        self._writable()
        chain_hash = self._verified_hash(seq)
        key_id = self._key_id
        data = self._codecs[key_id].encode(
            state, _crypto.snapshot_ad(self.journal_id, stream, seq, key_id, chain_hash)
        )
        self._store.put_snapshot(SnapshotRow(stream, seq, key_id, data))

    def latest_snapshot(
        self, stream: str, upto_seq: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """The newest snapshot of ``stream`` at or before ``upto_seq`` (default: the head; a
        snapshot past the head of a truncated journal is not used)."""
        self._check_open()
        if upto_seq is None:
            upto_seq = self.head()[0]
        snap = self._store.latest_snapshot(stream, upto_seq)
        return None if snap is None else (snap.seq, self._open_snapshot(snap))

    def unseal_snapshot(self, snap: SnapshotRow, chain_hash: bytes) -> bool:
        """Authenticate a snapshot against the chain hash of event ``snap.seq``: True if it is
        bound to it (an anchor), False for a snapshot written before anchors existed.
        ``IntegrityError`` if it opens neither way."""
        return self._unseal_snapshot(snap, chain_hash)[1]

    def _unseal_snapshot(self, snap: SnapshotRow, chain_hash: bytes) -> tuple[bytes, bool]:
        what = f"the snapshot of stream {snap.stream!r}"
        codec = self._codec(snap.key_id, snap.seq, what)
        for bound in (chain_hash, None):
            ad = _crypto.snapshot_ad(self.journal_id, snap.stream, snap.seq, snap.key_id, bound)
            try:
                return codec.unseal(snap.data, ad), bound is not None
            except nacl.exceptions.CryptoError:
                continue
        raise IntegrityError(
            f"{what} does not open with the chain's hash at its sequence: the snapshot was "
            "modified or moved, or the events under it were rewritten",
            seq=snap.seq,
        )

    def _open_snapshot(self, snap: SnapshotRow) -> dict[str, Any]:
        row = self._store.get(snap.seq)
        if row is None:
            head = self.head()[0]
            raise IntegrityError(
                f"the snapshot of stream {snap.stream!r} is past the journal's head {head}"
                if snap.seq > head
                else f"event {snap.seq} is missing (the snapshot of stream {snap.stream!r} "
                "was taken there)",
                seq=snap.seq,
            )
        plain, _ = self._unseal_snapshot(snap, row.hash)
        try:
            return self._codecs[snap.key_id].deserialize(plain)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(
                f"the snapshot of stream {snap.stream!r} does not decode ({exc})", seq=snap.seq
            ) from exc

    # --- the chain before a write --------------------------------------------------------

    def check_chain(self) -> ChainCheck:
        """The bounded chain check of ``_chain`` (what writes run first; reading commands run
        it to warn). Raises ``IntegrityError`` naming the first bad sequence it finds."""
        self._check_open()
        with self._chain_lock:
            return self._check_chain()

    def _check_chain(self) -> ChainCheck:
        report = _chain.check_chain(self)
        self._verified = (report.head_seq, report.head_hash)
        self._own = {s: h for s, h in self._own.items() if s > report.head_seq}
        return report

    def ensure_writable(self) -> None:
        """The chain check, once, before this object's first write (every write calls it):
        a broken chain raises ``IntegrityError`` naming the first bad sequence found and
        ``journal verify``, and nothing is written."""
        self._check_open()
        self._writable()

    def _writable(self) -> None:
        if self._verified is not None:
            return
        with self._chain_lock:
            if self._verified is not None:
                return
            try:
                self._check_chain()
            except IntegrityError as exc:
                raise _chain.refusal(exc) from exc

    def _verified_hash(self, seq: int) -> bytes:
        """The chain hash of event ``seq``, checked from where this object last checked the
        chain: rows it appended itself by their hashes, others' rows in full (a snapshot
        bound to it must not vouch for a row nobody opened)."""
        with self._chain_lock:
            assert self._verified is not None
            done, prev = self._verified
            if seq <= done:
                row = self._store.get(seq)
                if row is None:
                    raise IntegrityError(f"event {seq} is missing", seq=seq)
                return row.hash
            expected = done + 1
            hasher = _crypto.event_hasher(self.journal_id)
            for row in self._store.read(after_seq=done, upto_seq=seq):
                mine = self._own.pop(row.seq, None)
                if mine is not None and row.seq == expected and row.prev_hash == prev:
                    if row.hash != mine:
                        raise IntegrityError(
                            "the event's hash is not the one this process wrote", seq=row.seq
                        )
                    prev = row.hash
                else:
                    prev = _chain.step(hasher, prev, expected, row)
                    self._open_row(row)
                expected += 1
            if expected <= seq:
                raise IntegrityError(f"event {expected} is missing", seq=expected)
            self._verified = (seq, prev)
            return prev

    # --- locking -------------------------------------------------------------------------

    def lock(
        self, stream: str, *, holder: Mapping[str, Any], timeout: float = 0.0
    ) -> AbstractContextManager[None]:
        """The per-stream run lock; ``LockedError`` names the holder after ``timeout`` s.

        ``holder`` (actor, command, …) is stored in clear text; pid, host and since are added
        when missing. It must not contain secrets."""
        self._check_open()
        self._check_stream(stream)
        info: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        for key, value in holder.items():
            if isinstance(value, Secret):
                raise UsageError(
                    f"lock holder field {key!r} is a Secret; lock files are clear text"
                )
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise UsageError(f"lock holder field {key!r} must be a plain value")
            info[str(key)] = value
        return self._store.lock(stream, info, timeout)

    # --- verification --------------------------------------------------------------------

    def verify(
        self,
        *,
        expect_head: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute the chain and open every event and snapshot; see the module docstring.

        ``progress`` is called with the last verified sequence every 1,000 events."""
        self._check_open()
        pinned = None if expect_head is None else _parse_expect_head(expect_head)
        prev = self._genesis
        seq = 0
        pinned_seen = False
        versions: dict[str, int] = {}
        for row in self._store.read():
            expected_seq = seq + 1
            if row.seq != expected_seq:
                raise IntegrityError(
                    f"event {expected_seq} is missing (the next event is {row.seq})",
                    seq=expected_seq,
                )
            if row.prev_hash != prev:
                raise IntegrityError(
                    "the event's previous-hash does not match the chain", seq=row.seq
                )
            ad = _crypto.event_ad(
                self.journal_id, row.stream, row.seq, row.version, row.key_id, row.prev_hash
            )
            if _crypto.chain_hash(prev, row.seq, ad, row.data) != row.hash:
                raise IntegrityError(
                    "the event's hash does not match its contents (modified, moved or swapped)",
                    seq=row.seq,
                )
            want_version = versions.get(row.stream, 0) + 1
            if row.version != want_version:
                raise IntegrityError(
                    f"stream {row.stream!r} jumps to version {row.version} "
                    f"(expected {want_version})",
                    seq=row.seq,
                )
            self._open_row(row)
            versions[row.stream] = row.version
            prev = row.hash
            seq = row.seq
            if progress is not None and seq % 1000 == 0:
                progress(seq)
            if pinned is not None and row.hash == pinned[1]:
                if pinned[0] is not None and pinned[0] != row.seq:
                    raise IntegrityError(
                        f"the expected head was pinned at sequence {pinned[0]} "
                        f"but is found at {row.seq}",
                        seq=min(row.seq, pinned[0]),
                    )
                pinned_seen = True
        if pinned is not None and not pinned_seen:
            at, digest = pinned
            if at is not None and at <= seq:
                raise IntegrityError(
                    f"the event does not have the expected head hash {digest.hex()}", seq=at
                )
            raise IntegrityError(
                f"the expected head {digest.hex()}"
                + (f" (sequence {at})" if at is not None else "")
                + f" is not in the journal, which ends at sequence {seq}: "
                "events were removed from its end",
                seq=seq + 1,
            )
        for snap in self._store.snapshots():
            if snap.seq > seq:
                raise IntegrityError(
                    f"the snapshot of stream {snap.stream!r} is past the journal's head {seq}",
                    seq=snap.seq,
                )
            self._open_snapshot(snap)
        return VerifyReport(events=seq, head_seq=seq, head_hash=prev.hex(), streams=len(versions))

    # --- keys ----------------------------------------------------------------------------

    def rekey(self, new_password: str) -> None:
        """Re-wrap the data keys under ``new_password`` (new salt); events stay as they are.

        Compare-and-swap: if the stored key material is no longer what this journal read when
        it was opened (another rekey won meanwhile), raises ``KeysChangedError`` and changes
        nothing. Raises ``WeakPasswordError`` for a blank or too short new password."""
        self._check_open()
        check_new_password(new_password)
        self._writable()
        meta = self._meta
        salt = _crypto.new_salt()
        kek = _crypto.derive_kek(
            new_password,
            salt=salt,
            opslimit=meta.kdf_opslimit,
            memlimit=meta.kdf_memlimit,
            journal_id=meta.journal_id,
        )
        wrapped = {
            kid: _crypto.wrap_key(kek, key, journal_id=meta.journal_id, key_id=kid)
            for kid, key in self._data_keys.items()
        }
        new_meta = Meta(
            journal_id=meta.journal_id,
            format_version=meta.format_version,
            kdf_opslimit=meta.kdf_opslimit,
            kdf_memlimit=meta.kdf_memlimit,
            salt=salt,
            current_key_id=meta.current_key_id,
            wrapped_keys=wrapped,
        )
        self._store.replace_keys(meta, new_meta)  # compare-and-swap on the keys we read
        self._meta = new_meta

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.location!r}, id={self.journal_id})"
