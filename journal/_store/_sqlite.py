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

Creation: the journal is built complete (schema, metadata, WAL mode) in a private file next to
its location, then hard-linked into place (``link`` fails if the name exists: the first creator
wins, the others read what it wrote). So a journal file is never seen half-made, and a file at
the location that is empty or holds no journal is not a creation in progress: it is refused.

A journal on a read-only file system (or a file this process may not write) is opened
read-only: reads work, writes fail with a ``StorageError`` that says why.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:  # imported where a journal is created: opening one does not need it
    import sqlite_utils

from .._errors import (
    IntegrityError,
    KeysChangedError,
    LockedError,
    NotAJournalError,
    StorageError,
    StoreError,
    UnsupportedJournalError,
    UsageError,
)
from ._base import (
    PAGE_SIZE,
    AppendRequest,
    AppendResult,
    Meta,
    Row,
    RowSealer,
    SnapshotRow,
    Store,
    keys_changed_message,
    paged_read,
    paged_snapshots,
)
from ._rows import (
    EVENT_COLUMNS,
    INCOMPLETE_KEY,
    SNAPSHOT_COLUMNS,
    as_bytes,
    event_params,
    meta_from,
    meta_values,
    plan_append,
    row_from,
    snapshot_from,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

#: SQLite's own wait for a lock held by another connection, per attempt
BUSY_TIMEOUT_MS: Final = 5_000
#: how long a write keeps retrying while the database stays busy
BUSY_DEADLINE_S: Final = 60.0
#: idle reader connections kept open
MAX_IDLE_READERS: Final = 8
#: how often creation re-reads a location that changes under it before giving up
_CREATE_ATTEMPTS: Final = 50
#: what ``link`` answers on a file system without hard links (then creation renames instead)
_NO_HARD_LINKS: Final = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
)

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
_VERSION_SQL: Final = "SELECT MAX(version) FROM events WHERE stream = ?"
# An append reads the head and the version of its (first) stream in one statement, and
# inserts its rows in multi-row statements: Python's sqlite3 releases the GIL around every
# statement step, and under group commit each release hands the GIL (and the core) to another
# thread that the leader then waits to get it back from. One step per row made that a thread
# switch or more per event.
_APPEND_HEAD_SQL: Final = (
    "SELECT (SELECT seq FROM events ORDER BY seq DESC LIMIT 1), "
    "(SELECT hash FROM events ORDER BY seq DESC LIMIT 1), "
    "(SELECT MAX(version) FROM events WHERE stream = ?)"
)
#: rows per INSERT statement (7 parameters each: well under SQLite's variable limit)
_INSERT_ROWS: Final = 64
_INSERT_SQL: Final = [
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * count)
    for count in range(_INSERT_ROWS + 1)
]

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


def translate_error(
    exc: sqlite3.Error, location: str, action: str, waited: float | None = None
) -> StoreError:
    """Map an sqlite3 exception to the project's tree. ``action`` reads "… while {action}";
    ``waited``: how long the caller kept trying before giving up (reported if it was busy)."""
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
        return NotAJournalError(f"{location} is not a journal (not an SQLite database)")
    if code == _SQLITE_CORRUPT or "malformed" in text:
        return IntegrityError(f"the journal database at {location} is corrupt: {text}")
    if code in (_SQLITE_CANTOPEN, _SQLITE_PERM) or "unable to open" in text:
        return StorageError(f"cannot open the journal at {location}: {text}")
    if _is_busy(exc):
        how_long = "" if waited is None else f" for {waited:.1f} s"
        return StorageError(
            f"the journal at {location} stayed locked by another process{how_long} while "
            f"{action} it; nothing was written, try again"
        )
    return StorageError(f"SQLite error while {action} the journal at {location}: {text}")


def _transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], location: str, action: str
) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction; retry while the db is busy, for up
    to ``BUSY_DEADLINE_S``; an error reports how long it really waited."""
    started = time.monotonic()
    deadline = started + BUSY_DEADLINE_S
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
            raise translate_error(exc, location, action, waited=time.monotonic() - started) from exc


def _stream_version(conn: sqlite3.Connection, stream: str) -> int:
    found = conn.execute(_VERSION_SQL, (stream,)).fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _on_read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(_existing_ancestor(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _why_read_only(path: str) -> str | None:
    """Why this process cannot write the journal at ``path`` (None: it can, as far as the
    system says: root may write a file without write permission)."""
    if _on_read_only_fs(path):
        return "it is on a read-only file system"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the file is not writable"
    folder = _existing_ancestor(os.path.dirname(path))
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable"
    return None


def _empty_file_message(path: str, what: str = "an empty file") -> str:
    return (
        f"{path} is {what}, not a journal: it is refused rather than started again, so that "
        "a journal that lost its contents is never silently re-created (restore it from a "
        "backup); to start a new journal here, run `journal deploy --new` (or `dev --new`, "
        "`configure --new`): the file is moved aside, not deleted"
    )


class SQLiteStore(Store):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = os.path.abspath(os.fspath(path))
        self._write_lock = threading.Lock()
        self._writer_conn: sqlite3.Connection | None = None
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        #: why this journal can only be read (None: it can be written), found at first use
        self._read_only: str | None = None
        self._access_checked = False

    # --- connections ---------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._path

    @property
    def path(self) -> str:
        return self._path

    def _check_access(self) -> str | None:
        """Why the journal cannot be written by this process, or None if it can."""
        if not self._access_checked:
            self._read_only = _why_read_only(self._path)
            self._access_checked = True
        return self._read_only

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        query = "?mode=ro" if readonly else "?mode=rw"
        if self._check_access() is not None:
            query = "?mode=ro"
            # Nobody can write to a read-only file system: SQLite may read the file without the
            # shared-memory index it cannot create there (a WAL left behind is still honoured
            # through mode=ro when its files exist).
            if _on_read_only_fs(self._path) and not os.path.exists(self._path + "-wal"):
                query += "&immutable=1"
        uri = Path(self._path).as_uri() + query
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

    def _writer(self, action: str = "writing") -> sqlite3.Connection:
        self._check_open()
        why = self._check_access()
        if why is not None:
            raise StorageError(
                f"the journal at {self._path} is read-only ({why}) while {action} it: "
                "it can be read (verify, show, history) but not written; nothing was written"
            )
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
        started = time.monotonic()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise translate_error(
                exc, self._path, action, waited=time.monotonic() - started
            ) from exc
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
        conn = self._writer(action)
        return _transaction(conn, fn, self._path, action)

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
            if os.path.isdir(self._path):
                raise NotAJournalError(f"{self._path} is a folder, not a journal file")
            if os.path.getsize(self._path) == 0:
                raise NotAJournalError(_empty_file_message(self._path), empty=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the journal at {self._path}: {exc}") from exc
        # A read-only connection never checkpoints, so a WAL left by another process is not
        # folded into the file; but it creates -wal/-shm files if they are missing, which a
        # read-write connection removes again when it closes. Use whichever changes nothing.
        readonly = os.path.exists(self._path + "-wal")
        conn = self._connect(readonly=readonly)
        started = time.monotonic()
        try:
            return self._read_meta(conn)
        except sqlite3.Error as exc:
            raise translate_error(
                exc, self._path, "reading", waited=time.monotonic() - started
            ) from exc
        finally:
            conn.close()

    def _read_meta(self, conn: sqlite3.Connection) -> Meta:
        tables = {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            raise NotAJournalError(
                _empty_file_message(self._path, "an empty SQLite database"), empty=True
            )
        if not {"meta", "keys", "events", "snapshots"} <= tables:
            raise NotAJournalError(
                f"{self._path} is an SQLite database but not a journal (no journal tables): "
                "point --journal (or JOURNAL_URL) at the journal, or move this file away"
            )
        values = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        keys = conn.execute("SELECT key_id, wrapped FROM keys")
        return meta_from(values, {str(k): as_bytes(v) for k, v in keys}, self._path)

    def create(self, meta: Meta, *, replace: bool = False) -> Meta:
        self._check_open()
        folder = os.path.dirname(self._path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        why = _why_read_only(self._path)
        if why is not None:
            raise StorageError(f"cannot create the journal at {self._path}: {why}")
        staged = self._stage(meta)
        try:
            for _ in range(_CREATE_ATTEMPTS):
                if self._publish(staged):
                    _fsync_dir(folder)
                    return meta
                # someone was first, or something else is there: read it
                try:
                    existing = self.read_meta()
                except NotAJournalError:
                    if not replace:
                        raise
                    self._set_aside()
                    continue
                if existing is not None:
                    return existing  # another process created it first
            raise StorageError(
                f"cannot create the journal at {self._path}: the file kept changing under "
                "other processes; try again"
            )
        finally:
            _remove_staged(staged)

    def _publish(self, staged: str) -> bool:
        """Put the staged journal at the location unless something is there; True if done.

        ``link`` is atomic and fails if the name exists. Where a file system has no hard
        links, an exclusive lock on ``<db>.create-lock`` serializes check-then-rename."""
        try:
            os.link(staged, self._path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        lock_path = self._path + ".create-lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a rename only: never long
            if os.path.lexists(self._path):
                return False
            os.rename(staged, self._path)
            return True
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        finally:
            os.close(fd)

    def _stage(self, meta: Meta) -> str:
        """Build the complete journal in a private file next to the location; its path."""
        folder, name = os.path.split(self._path)
        staged = os.path.join(folder, f".{name}.creating-{secrets.token_hex(8)}")
        try:
            os.close(os.open(staged, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc
        try:
            self._build(staged, meta)
        except BaseException:
            _remove_staged(staged)  # a failed creation leaves nothing behind
            raise
        return staged

    def _build(self, staged: str, meta: Meta) -> None:
        try:
            conn = sqlite3.connect(
                Path(staged).as_uri() + "?mode=rw", uri=True, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, self._path, "creating") from exc
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_mode = WAL")  # stored in the file: every opener uses it
            import sqlite_utils

            db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)

            def tx(conn: sqlite3.Connection) -> None:
                self._create_schema(db)
                self._write_meta(conn, meta)

            _transaction(conn, tx, self._path, "creating")
        except sqlite3.Error as exc:
            raise translate_error(exc, self._path, "creating") from exc
        finally:
            conn.close()  # checkpoints the WAL into the file and removes it
        try:
            fd = os.open(staged, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot create the journal at {self._path}: {exc}") from exc

    def _set_aside(self) -> None:
        """Rename what is at the location (not a journal) out of the way; never delete it."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = f"{self._path}.replaced-{stamp}-{secrets.token_hex(3)}"
        try:
            os.rename(self._path, aside)
        except FileNotFoundError:
            return  # another process set it aside first
        except OSError as exc:
            raise StorageError(
                f"cannot move {self._path} out of the way for a new journal: {exc}"
            ) from exc
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.rename(self._path + suffix, aside + suffix)
        self.set_aside = aside
        _fsync_dir(os.path.dirname(self._path))

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
        values = meta_values(meta)
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())
        conn.execute("DELETE FROM keys")
        conn.executemany(
            "INSERT INTO keys (key_id, wrapped) VALUES (?, ?)", meta.wrapped_keys.items()
        )

    def replace_keys(self, expected: Meta, meta: Meta) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            current = self._read_meta(conn)
            if current.journal_id != meta.journal_id:
                raise UnsupportedJournalError(
                    f"the journal at {self._path} changed identity while it was open"
                )
            if not current.same_keys(expected):
                raise KeysChangedError(keys_changed_message(self._path))
            self._write_meta(conn, replace(meta, incomplete=current.incomplete))

        with self._write_lock:
            self._write(tx, "rekeying")

    def mark_complete(self) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM meta WHERE key = ?", (INCOMPLETE_KEY,))

        with self._write_lock:
            self._write(tx, "completing")

    # --- events --------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes] | None:
        with self._reader("reading") as conn:
            found = conn.execute(_HEAD_SQL).fetchone()
        return None if found is None else (int(found[0]), as_bytes(found[1]))

    def stream_version(self, stream: str) -> int:
        with self._reader("reading") as conn:
            return _stream_version(conn, stream)

    def streams(self) -> list[str]:
        with self._reader("reading") as conn:
            rows = conn.execute(_STREAMS_SQL)
            return [str(r[0]) for r in rows]

    def append(
        self, requests: Sequence[AppendRequest], seal: RowSealer, genesis: bytes
    ) -> list[AppendResult]:
        def tx(conn: sqlite3.Connection) -> tuple[list[AppendResult], list[Row]]:
            first = requests[0].stream if requests else ""
            seq, hash_, version = conn.execute(_APPEND_HEAD_SQL, (first,)).fetchone()
            versions = {first: 0 if version is None else int(version)}

            def stream_version(stream: str) -> int:
                found = versions.get(stream)
                return _stream_version(conn, stream) if found is None else found

            head = None if seq is None else (seq, hash_)
            planned = plan_append(requests, seal, head, genesis, stream_version)
            params = event_params(planned[1])
            for start in range(0, len(params), _INSERT_ROWS):
                chunk = params[start : start + _INSERT_ROWS]
                conn.execute(_INSERT_SQL[len(chunk)], [value for row in chunk for value in row])
            return planned

        with self._write_lock:
            results, rows = self._write(tx, "appending to")
            self._count_append(results, len(rows))
        return results

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
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
                f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {size}"
            )
            params = [v for _, v in conditions]
            with self._reader("reading") as conn:
                page = conn.execute(sql, params).fetchall()
            return [row_from(values) for values in page]

        return paged_read(fetch, stream, after_seq, upto_seq, reverse, limit)

    def get(self, seq: int) -> Row | None:
        with self._reader("reading") as conn:
            found = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)
            ).fetchone()
        return None if found is None else row_from(found)

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
        sql = f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE stream = ?"
        params: list[Any] = [stream]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        with self._reader("reading") as conn:
            found = conn.execute(sql + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        return None if found is None else snapshot_from(found)

    def snapshot_streams(self) -> list[str]:
        with self._reader("reading") as conn:
            return [str(r[0]) for r in conn.execute(_SNAPSHOT_STREAMS_SQL)]

    def snapshots(self) -> Iterator[SnapshotRow]:
        self._check_open()

        def fetch(last: tuple[str, int] | None) -> list[SnapshotRow]:
            sql = f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots"
            params: tuple[Any, ...] = ()
            if last is not None:
                sql += " WHERE (stream, seq) > (?, ?)"
                params = last
            with self._reader("reading") as conn:
                page = conn.execute(
                    sql + f" ORDER BY stream, seq LIMIT {PAGE_SIZE}", params
                ).fetchall()
            return [snapshot_from(values) for values in page]

        return paged_snapshots(fetch)

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
        raise StorageError(
            f"cannot create the run lock file {path} of stage {stream!r}: "
            f"{exc.strerror or exc}; nothing was changed"
        ) from exc
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StorageError(
                        f"cannot lock the run lock file {path} of stage {stream!r}: "
                        f"{exc.strerror or exc}; nothing was changed"
                    ) from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(stream, _read_holder(fd))
            time.sleep(min(0.05, remaining))
        # Write in place, then cut: a reader never sees an empty file while we hold the lock
        # (except in the instant between our flock and this write; _read_holder retries).
        try:
            os.pwrite(fd, info, 0)
            os.ftruncate(fd, len(info))
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise StorageError(
                f"cannot write the run lock file {path} of stage {stream!r}: "
                f"{exc.strerror or exc}; nothing was changed (free some space, or check the "
                "folder's permissions)"
            ) from exc
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


def _remove_staged(staged: str) -> None:
    """Remove a staged journal file and SQLite's side files of it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(staged + suffix)
