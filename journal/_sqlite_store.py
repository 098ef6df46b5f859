"""The SQLite store: one file per journal, WAL, ``synchronous=FULL``.

Schema (format 1), created through sqlite-utils::

    meta(key TEXT PRIMARY KEY, value TEXT)          journal_id, format_version, kdf_*, salt, ...
    keys(key_id TEXT PRIMARY KEY, wrapped BLOB)     data keys wrapped under the password's KEK
    events(seq INTEGER PRIMARY KEY, stream, version, key_id, prev_hash BLOB, hash BLOB, data BLOB)
        UNIQUE (stream, version)      a stale writer fails at the schema level too
        INDEX  (stream)               = (stream, seq): reads of one stream in order
    snapshots(stream, seq, key_id, data BLOB, PRIMARY KEY (stream, seq))

Connections: one writer (guarded by a lock; every write is ``BEGIN IMMEDIATE`` … ``COMMIT``
with the head read inside, retried while another process holds the database) and a small pool
of readers, so reads never see a write in progress and never hold a connection across
``yield``. Run locks are ``fcntl.flock`` on ``<db>.locks/<sha256(stream)[:32]>.lock``: the
kernel drops them when the holding process dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlite_utils

from ._errors import (
    ConflictError,
    IntegrityError,
    LockedError,
    StorageError,
    StoreError,
    UnsupportedJournalError,
    UsageError,
)
from ._store import (
    FORMAT_VERSION,
    PAGE_SIZE,
    AppendRequest,
    AppendResult,
    Meta,
    Row,
    RowSealer,
    SnapshotRow,
    Store,
    paged_read,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

#: SQLite's own wait for a lock held by another connection, per attempt
BUSY_TIMEOUT_MS: Final = 5_000
#: how long a write keeps retrying while the database stays busy
BUSY_DEADLINE_S: Final = 60.0
#: rows fetched per query when iterating
#: idle reader connections kept open
MAX_IDLE_READERS: Final = 8

_EVENT_COLUMNS: Final = "seq, stream, version, key_id, prev_hash, hash, data"
_HEAD_SQL: Final = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
# distinct streams by skipping through the (stream, seq) index: one seek per stream
_STREAMS_SQL: Final = """
WITH RECURSIVE s(name) AS (
    SELECT MIN(stream) FROM events
    UNION ALL
    SELECT (SELECT MIN(stream) FROM events WHERE stream > s.name) FROM s WHERE s.name IS NOT NULL
)
SELECT name FROM s WHERE name IS NOT NULL
"""
_SNAPSHOT_STREAMS_SQL: Final = _STREAMS_SQL.replace("events", "snapshots")

# Primary SQLite result codes (https://www.sqlite.org/rescode.html)
_SQLITE_PERM: Final = 3
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_READONLY: Final = 8
_SQLITE_IOERR: Final = 10
_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_NOTADB: Final = 26


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_busy(exc: sqlite3.Error) -> bool:
    if _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def translate_error(exc: sqlite3.Error, location: str, action: str) -> StoreError:
    """Map an sqlite3 exception to the project's tree. ``action`` reads "… while {action}"."""
    code = _primary_code(exc)
    text = str(exc)
    if code == _SQLITE_FULL or "disk is full" in text:
        return StorageError(
            f"the disk is full while {action} the journal at {location}; "
            "the transaction was rolled back, nothing was written"
        )
    if code == _SQLITE_READONLY or "readonly database" in text:
        return StorageError(
            f"the journal at {location} is read-only (while {action} it): "
            "check the file's and its folder's permissions"
        )
    if code == _SQLITE_IOERR or "disk I/O error" in text:
        return StorageError(f"I/O error while {action} the journal at {location}: {text}")
    if code == _SQLITE_NOTADB or "not a database" in text:
        return UnsupportedJournalError(f"{location} is not a journal (not an SQLite database)")
    if code == _SQLITE_CORRUPT or "malformed" in text:
        return IntegrityError(f"the journal database at {location} is corrupt: {text}")
    if code in (_SQLITE_CANTOPEN, _SQLITE_PERM) or "unable to open" in text:
        return StorageError(f"cannot open the journal at {location}: {text}")
    if _is_busy(exc):
        return StorageError(
            f"the journal at {location} stayed locked by another process for more than "
            f"{BUSY_DEADLINE_S:.0f} s while {action} it; try again"
        )
    return StorageError(f"SQLite error while {action} the journal at {location}: {text}")


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return str(value).encode("utf-8")


def _row(values: Sequence[Any]) -> Row:
    seq, stream, version, key_id, prev_hash, hash_, data = values
    try:
        return Row(
            seq=int(seq),
            stream=stream if isinstance(stream, str) else _as_bytes(stream).decode("latin-1"),
            version=int(version),
            key_id=str(key_id),
            prev_hash=_as_bytes(prev_hash),
            hash=_as_bytes(hash_),
            data=_as_bytes(data),
        )
    except (TypeError, ValueError) as exc:
        raise IntegrityError("the stored row has malformed columns", seq=seq) from exc


def _snapshot(values: Sequence[Any]) -> SnapshotRow:
    stream, seq, key_id, data = values
    try:
        return SnapshotRow(
            stream=str(stream), seq=int(seq), key_id=str(key_id), data=_as_bytes(data)
        )
    except (TypeError, ValueError) as exc:
        raise IntegrityError(
            f"the snapshot of stream {stream!r} has malformed columns", seq=None
        ) from exc


class SQLiteStore(Store):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = os.path.abspath(os.fspath(path))
        self._write_lock = threading.Lock()
        self._writer_conn: sqlite3.Connection | None = None
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    # --- connections ---------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._path

    @property
    def path(self) -> str:
        return self._path

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        uri = Path(self._path).as_uri() + ("?mode=ro" if readonly else "?mode=rw")
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, self._path, "opening") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA trusted_schema = OFF")
        except sqlite3.Error as exc:
            conn.close()
            raise translate_error(exc, self._path, "opening") from exc
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the journal at {self._path} is closed")

    def _writer(self) -> sqlite3.Connection:
        self._check_open()
        if self._writer_conn is None:
            self._writer_conn = self._connect()
        return self._writer_conn

    @contextlib.contextmanager
    def _reader(self, action: str) -> Iterator[sqlite3.Connection]:
        self._check_open()
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise translate_error(exc, self._path, action) from exc
        finally:
            with self._pool_lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE_READERS
                if keep and not conn.in_transaction:
                    self._idle.append(conn)
                else:
                    conn.close()

    def _write(self, fn: Callable[[sqlite3.Connection], T], action: str) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction; retry while the db is busy.

        Callers hold ``self._write_lock``."""
        conn = self._writer()
        deadline = time.monotonic() + BUSY_DEADLINE_S
        delay = 0.002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.1)
                    continue
                raise translate_error(exc, self._path, action) from exc

    def close(self) -> None:
        with self._write_lock:
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None
            with self._pool_lock:
                self._closed = True
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()

    # --- metadata ------------------------------------------------------------------------

    def read_meta(self) -> Meta | None:
        self._check_open()
        try:
            if os.path.getsize(self._path) == 0:
                return None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the journal at {self._path}: {exc}") from exc
        if os.path.isdir(self._path):
            raise UnsupportedJournalError(f"{self._path} is a folder, not a journal file")
        # A read-only connection never checkpoints, so a WAL left by another process is not
        # folded into the file; but it creates -wal/-shm files if they are missing, which a
        # read-write connection removes again when it closes. Use whichever changes nothing.
        readonly = os.path.exists(self._path + "-wal")
        conn = self._connect(readonly=readonly)
        try:
            return self._read_meta(conn)
        except sqlite3.Error as exc:
            raise translate_error(exc, self._path, "reading") from exc
        finally:
            conn.close()

    def _read_meta(self, conn: sqlite3.Connection) -> Meta | None:
        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        tables = set(db.table_names())
        if not tables:
            return None  # an empty SQLite file, e.g. left by an interrupted creation
        if not {"meta", "keys", "events", "snapshots"} <= tables:
            raise UnsupportedJournalError(
                f"{self._path} is an SQLite database but not a journal (no journal tables)"
            )
        values = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        try:
            fmt = int(values["format_version"])
        except (KeyError, ValueError) as exc:
            raise UnsupportedJournalError(
                f"{self._path} is not a journal: its metadata has no format version"
            ) from exc
        if values.get("kdf", "argon2id") != "argon2id":
            raise UnsupportedJournalError(
                f"the journal at {self._path} uses key derivation {values['kdf']!r}, "
                "which this version of journal does not know: upgrade journal"
            )
        if fmt > FORMAT_VERSION:
            raise UnsupportedJournalError(
                f"the journal at {self._path} has format {fmt}, newer than this version of "
                f"journal reads (format {FORMAT_VERSION}): upgrade journal"
            )
        keys = conn.execute("SELECT key_id, wrapped FROM keys")
        wrapped = {str(k): _as_bytes(v) for k, v in keys}
        try:
            meta = Meta(
                journal_id=values["journal_id"],
                format_version=fmt,
                kdf_opslimit=int(values["kdf_opslimit"]),
                kdf_memlimit=int(values["kdf_memlimit"]),
                salt=bytes.fromhex(values["salt"]),
                current_key_id=values["current_key_id"],
                wrapped_keys=wrapped,
            )
        except (KeyError, ValueError) as exc:
            raise UnsupportedJournalError(
                f"the journal at {self._path} has incomplete metadata ({exc}); "
                "it was not written by journal or is damaged"
            ) from exc
        if meta.current_key_id not in wrapped:
            raise UnsupportedJournalError(
                f"the journal at {self._path} lacks its data key {meta.current_key_id!r}"
            )
        return meta

    def create(self, meta: Meta) -> Meta:
        self._check_open()
        folder = os.path.dirname(self._path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        with self._write_lock:
            conn = self._writer()
            db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
            try:
                db.enable_wal()
            except sqlite3.Error as exc:
                raise translate_error(exc, self._path, "creating") from exc

            def tx(conn: sqlite3.Connection) -> Meta:
                existing = self._read_meta(conn)
                if existing is not None:
                    return existing  # another process created it first
                self._create_schema(db)
                self._write_meta(conn, meta)
                return meta

            result = self._write(tx, "creating")
        _fsync_dir(folder)
        return result

    @staticmethod
    def _create_schema(db: sqlite_utils.Database) -> None:
        db.create_table("meta", {"key": str, "value": str}, pk="key", not_null=["value"])
        db.create_table(
            "keys", {"key_id": str, "wrapped": bytes}, pk="key_id", not_null=["wrapped"]
        )
        cols = ["stream", "version", "key_id", "prev_hash", "hash", "data"]
        events = db.create_table(
            "events",
            {
                "seq": int,
                "stream": str,
                "version": int,
                "key_id": str,
                "prev_hash": bytes,
                "hash": bytes,
                "data": bytes,
            },
            pk="seq",
            not_null=cols,
        )
        events.create_index(["stream", "version"], index_name="events_stream_version", unique=True)
        events.create_index(["stream"], index_name="events_stream_seq")
        db.create_table(
            "snapshots",
            {"stream": str, "seq": int, "key_id": str, "data": bytes},
            pk=("stream", "seq"),
            not_null=["stream", "seq", "key_id", "data"],
        )

    @staticmethod
    def _write_meta(conn: sqlite3.Connection, meta: Meta) -> None:
        values = {
            "journal_id": meta.journal_id,
            "format_version": str(meta.format_version),
            "kdf": "argon2id",
            "kdf_opslimit": str(meta.kdf_opslimit),
            "kdf_memlimit": str(meta.kdf_memlimit),
            "salt": meta.salt.hex(),
            "current_key_id": meta.current_key_id,
        }
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())
        conn.execute("DELETE FROM keys")
        conn.executemany(
            "INSERT INTO keys (key_id, wrapped) VALUES (?, ?)", meta.wrapped_keys.items()
        )

    def replace_keys(self, meta: Meta) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            current = self._read_meta(conn)
            if current is None or current.journal_id != meta.journal_id:
                raise UnsupportedJournalError(
                    f"the journal at {self._path} changed identity while it was open"
                )
            self._write_meta(conn, meta)

        with self._write_lock:
            self._write(tx, "rekeying")

    # --- events --------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes] | None:
        with self._reader("reading") as conn:
            found = conn.execute(_HEAD_SQL).fetchone()
        return None if found is None else (int(found[0]), _as_bytes(found[1]))

    def stream_version(self, stream: str) -> int:
        with self._reader("reading") as conn:
            found = conn.execute(
                "SELECT MAX(version) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def streams(self) -> list[str]:
        with self._reader("reading") as conn:
            rows = conn.execute(_STREAMS_SQL)
            return [str(r[0]) for r in rows]

    def append(
        self, requests: Sequence[AppendRequest], seal: RowSealer, genesis: bytes
    ) -> list[AppendResult]:
        with self._write_lock:
            results, rows = self._write(
                lambda conn: self._append(conn, requests, seal, genesis), "appending to"
            )
            self.stats.append_transactions += 1
            self.stats.append_requests += sum(1 for r in results if isinstance(r, list))
            self.stats.rows_appended += rows
        return results

    @staticmethod
    def _append(
        conn: sqlite3.Connection,
        requests: Sequence[AppendRequest],
        seal: RowSealer,
        genesis: bytes,
    ) -> tuple[list[AppendResult], int]:
        found = conn.execute(_HEAD_SQL).fetchone()
        seq, prev = (0, genesis) if found is None else (int(found[0]), _as_bytes(found[1]))
        versions: dict[str, int] = {}
        results: list[AppendResult] = []
        new_rows: list[Row] = []
        for request in requests:
            stream = request.stream
            if stream not in versions:
                got = conn.execute(
                    "SELECT MAX(version) FROM events WHERE stream = ?", (stream,)
                ).fetchone()
                versions[stream] = int(got[0]) if got and got[0] is not None else 0
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
        if new_rows:
            conn.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.seq, r.stream, r.version, r.key_id, r.prev_hash, r.hash, r.data)
                    for r in new_rows
                ],
            )
        return results, len(new_rows)

    def read(
        self,
        stream: str | None = None,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Row]:
        self._check_open()
        return self._pages(stream, after_seq, upto_seq, reverse, limit)

    def _pages(
        self,
        stream: str | None,
        after_seq: int,
        upto_seq: int | None,
        reverse: bool,
        limit: int | None,
    ) -> Iterator[Row]:
        def fetch(conditions: list[tuple[str, Any]], descending: bool, size: int) -> list[Row]:
            where = " AND ".join(f"{c} ?" for c, _ in conditions)
            sql = (
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} "
                f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {size}"
            )
            params = [v for _, v in conditions]
            with self._reader("reading") as conn:
                page = conn.execute(sql, params).fetchall()
            return [_row(values) for values in page]

        return paged_read(fetch, stream, after_seq, upto_seq, reverse, limit)

    def get(self, seq: int) -> Row | None:
        with self._reader("reading") as conn:
            found = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)
            ).fetchone()
        return None if found is None else _row(found)

    # --- snapshots -----------------------------------------------------------------------

    def put_snapshot(self, snapshot: SnapshotRow) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream, seq, key_id, data) VALUES (?, ?, ?, ?)",
                (snapshot.stream, snapshot.seq, snapshot.key_id, snapshot.data),
            )

        with self._write_lock:
            self._write(tx, "writing a snapshot to")

    def latest_snapshot(self, stream: str, upto_seq: int | None = None) -> SnapshotRow | None:
        sql = "SELECT stream, seq, key_id, data FROM snapshots WHERE stream = ?"
        params: list[Any] = [stream]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        with self._reader("reading") as conn:
            found = conn.execute(sql + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        return None if found is None else _snapshot(found)

    def snapshot_streams(self) -> list[str]:
        with self._reader("reading") as conn:
            return [str(r[0]) for r in conn.execute(_SNAPSHOT_STREAMS_SQL)]

    def snapshots(self) -> Iterator[SnapshotRow]:
        self._check_open()
        return self._snapshot_pages()

    def _snapshot_pages(self) -> Iterator[SnapshotRow]:
        last: tuple[str, int] | None = None
        while True:
            sql = "SELECT stream, seq, key_id, data FROM snapshots"
            params: tuple[Any, ...] = ()
            if last is not None:
                sql += " WHERE (stream, seq) > (?, ?)"
                params = last
            with self._reader("reading") as conn:
                page = conn.execute(
                    sql + f" ORDER BY stream, seq LIMIT {PAGE_SIZE}", params
                ).fetchall()
            snaps = [_snapshot(values) for values in page]
            yield from snaps
            if len(snaps) < PAGE_SIZE:
                return
            last = (snaps[-1].stream, snaps[-1].seq)

    # --- locks ---------------------------------------------------------------------------

    def lock(
        self, stream: str, holder: Mapping[str, Any], timeout: float
    ) -> AbstractContextManager[None]:
        self._check_open()
        name = hashlib.sha256(stream.encode("utf-8")).hexdigest()[:32] + ".lock"
        return _flock(os.path.join(self._path + ".locks", name), stream, holder, timeout)


@contextlib.contextmanager
def _flock(path: str, stream: str, holder: Mapping[str, Any], timeout: float) -> Iterator[None]:
    info = json.dumps(dict(holder), sort_keys=True).encode("utf-8")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot create the lock file {path}: {exc}") from exc
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StorageError(f"cannot lock {path}: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(stream, _read_holder(fd))
            time.sleep(min(0.05, remaining))
        # Write in place, then cut: a reader never sees an empty file while we hold the lock
        # (except in the instant between our flock and this write; _read_holder retries).
        os.pwrite(fd, info, 0)
        os.ftruncate(fd, len(info))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, object] | None:
    for _ in range(10):
        raw = os.pread(fd, 65536, 0)
        if raw:
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                value = None
            if isinstance(value, dict):
                return value
        time.sleep(0.01)
    return None


def _fsync_dir(folder: str) -> None:
    """Make the new file's directory entry durable (best effort)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
