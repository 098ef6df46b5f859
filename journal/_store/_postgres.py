"""The PostgreSQL store: a team's journal in one schema of a PostgreSQL database.

Selected by a ``postgresql://`` (or ``postgres://``) URL, through ``--journal`` or
``JOURNAL_URL``. The tables live in the schema ``journal`` unless the URL says otherwise with
``?schema=NAME`` (a parameter this store reads and removes; everything else goes to libpq
as it is). The database must exist; the schema and its tables are created with the journal.

Schema (format 1, the same rows as the SQLite store)::

    meta(key TEXT PRIMARY KEY, value TEXT)           journal_id, format_version, kdf_*, salt, ...
    keys(key_id TEXT PRIMARY KEY, wrapped BYTEA)     data keys wrapped under the password's KEK
    events(seq BIGINT PRIMARY KEY, stream TEXT COLLATE "C", version BIGINT, key_id TEXT,
           prev_hash BYTEA, hash BYTEA, data BYTEA)
        UNIQUE (stream, version)       a stale writer fails at the schema level too
    snapshots(stream TEXT COLLATE "C", seq BIGINT, key_id TEXT, data BYTEA,
              PRIMARY KEY (stream, seq))
    locks(stream TEXT PRIMARY KEY, holder TEXT, backend_pid INT, acquired TIMESTAMPTZ)
        who holds each stage's run lock (clear text: actor, host, pid, since, command)

Appends serialize on the journal's head: every append transaction first takes
``pg_advisory_xact_lock(<head key of this schema>)``, then reads the head and the stream
versions (READ COMMITTED: each statement sees what the previous holder committed), seals and
inserts, and commits; the lock goes with the transaction. Group commit across threads is done
above the store, by ``Journal``: one call here is one transaction.

Run locks are session-level advisory locks (``pg_try_advisory_lock`` on a 64-bit hash of the
schema and the stream) held by a dedicated connection for the whole run: PostgreSQL releases
them when that connection closes, including when the holding process dies. The holder's
description goes into ``locks`` so a refused run can say who holds the stage; a row is only
believed when its ``backend_pid`` is the session PostgreSQL says holds the lock. An append to a
stream this store has locked checks, in its transaction, that the lock is still held (a lost
connection loses the lock: the run then stops instead of interleaving with another).

Connections: one writer (guarded by a lock), a small pool of autocommit readers (each page of
a read is one statement: reads never hold a connection across ``yield``), one connection per
held run lock. A broken connection is dropped and replaced at the next call; a read is
retried once on a fresh connection, a write only when it failed before its transaction began
(after that, its outcome is reported, never guessed). psycopg errors are translated at the
boundary; messages show the URL without its password.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import psycopg
import psycopg.conninfo
import psycopg.errors

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

__all__ = ["DEFAULT_SCHEMA", "PostgresStore", "redact_url", "translate_error"]

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

#: the schema of a journal whose URL names none
DEFAULT_SCHEMA: Final = "journal"
#: idle reader connections kept open
MAX_IDLE_READERS: Final = 4
#: seconds libpq waits for a connection unless the URL says (connect_timeout=)
CONNECT_TIMEOUT_S: Final = 10
#: how often a run waiting for a stage's lock tries again
LOCK_POLL_S: Final = 0.05
#: how long a write waits for the journal's head (another writer's transaction) at most
WRITE_LOCK_TIMEOUT_S: Final = 60

_TABLES: Final = frozenset({"meta", "keys", "events", "snapshots", "locks"})

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_DISK_FULL: Final = "53100"
_OUT_OF_MEMORY: Final = ("53200", "53000")
_READ_ONLY: Final = "25006"
_PRIVILEGE: Final = "42501"
_UNIQUE: Final = "23505"
_NO_DATABASE: Final = "3D000"
_BAD_LOGIN: Final = ("28P01", "28000")
_CORRUPT: Final = ("XX001", "XX002")
_UNDEFINED_TABLE: Final = "42P01"
_LOCK_NOT_AVAILABLE: Final = "55P03"


# --- URLs ----------------------------------------------------------------------------------


def _split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    if "@" not in netloc:
        return None, None, netloc
    userinfo, _, hosts = netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return user, (password if sep else None), hosts


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """``urlunsplit`` that keeps ``//`` with an empty host (``postgresql:///db``)."""
    text = f"{scheme}://{netloc}{path}"
    return text + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def redact_url(url: str) -> str:
    """``url`` without its password (in the user info or a ``password=`` parameter).

    A URL that has no password comes back exactly as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unparseable URL)"
    user, password, hosts = _split_userinfo(parts.netloc)
    query = parse_qsl(parts.query, keep_blank_values=True)
    has_query_password = any(k == "password" for k, _ in query)
    if password is None and not has_query_password:
        return url
    netloc = hosts if user is None else f"{user}@{hosts}"
    kept = urlencode([(k, v) for k, v in query if k != "password"], safe="/:,")
    return _unsplit(parts.scheme, netloc, parts.path, kept, parts.fragment)


def _parse(url: str) -> tuple[str, str, list[str]]:
    """(the URL libpq gets, the schema, the secrets to keep out of messages)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"{redact_url(url)} is not a valid PostgreSQL URL: {exc}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not schema or "\x00" in schema or len(schema.encode("utf-8")) > 63:
        raise UsageError(
            f"schema {schema!r} in the journal URL is not a valid PostgreSQL schema name "
            "(1-63 bytes)"
        )
    rest = [(k, v) for k, v in query if k != "schema"]
    libpq_url = url
    if schemas:
        libpq_url = _unsplit(
            parts.scheme, parts.netloc, parts.path, urlencode(rest, safe="/:,"), parts.fragment
        )
    secrets = [v for k, v in query if k == "password" and v]
    password = _split_userinfo(parts.netloc)[1]
    if password:
        secrets += [password, unquote(password)]
    try:
        psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.Error as exc:
        raise UsageError(
            f"{redact_url(url)} is not a valid PostgreSQL URL: {_scrub(str(exc), secrets)}"
        ) from None
    return libpq_url, schema, secrets


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text.strip()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def advisory_key(*parts: str) -> int:
    """A signed 64-bit key for ``pg_advisory_*`` from text parts (BLAKE2b, 8 bytes)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# --- errors --------------------------------------------------------------------------------


def translate_error(
    exc: psycopg.Error,
    location: str,
    action: str,
    secrets: Sequence[str] = (),
    waited: float | None = None,
) -> StoreError:
    """Map a psycopg exception to the project's tree. ``action`` reads "… while {action}";
    ``waited``: how long the failed statement or transaction had been running."""
    code = getattr(exc, "sqlstate", None) or ""
    text = _scrub(str(exc), secrets) or type(exc).__name__
    if not code:  # a failed connection carries no SQLSTATE: recognise libpq's words
        lowered = text.lower()
        if "database" in lowered and "does not exist" in lowered:
            code = _NO_DATABASE
        elif "password authentication failed" in lowered or "no password supplied" in lowered:
            code = _BAD_LOGIN[0]
        elif "read-only" in lowered and "transaction" in lowered:
            code = _READ_ONLY
    if code == _DISK_FULL:
        return StorageError(
            f"the disk of the PostgreSQL server is full while {action} the journal at "
            f"{location}; the transaction was rolled back, nothing was written"
        )
    if code == _READ_ONLY:
        return StorageError(
            f"the journal database at {location} is read-only (while {action} it): "
            "check default_transaction_read_only, a standby server, or the URL"
        )
    if code == _PRIVILEGE:
        return StorageError(
            f"PostgreSQL denied the journal's user while {action} the journal at {location}: {text}"
        )
    if code == _NO_DATABASE:
        return StorageError(
            f"cannot open the journal at {location}: {text}; create the database first "
            "(createdb), or fix --journal / JOURNAL_URL"
        )
    if code in _BAD_LOGIN:
        return StorageError(
            f"PostgreSQL refused the login to the journal at {location}: {text}; "
            "check the user and password of --journal / JOURNAL_URL"
        )
    if code in _CORRUPT:
        return IntegrityError(f"the journal database at {location} is corrupt: {text}")
    if code in _OUT_OF_MEMORY:
        return StorageError(f"the PostgreSQL server ran out of memory while {action} {location}")
    if code == _UNIQUE:
        return StorageError(
            f"another writer appended to the journal at {location} at the same time "
            f"(while {action} it: {text}); nothing was written, run again"
        )
    if code == _LOCK_NOT_AVAILABLE:
        how_long = "" if waited is None else f" for {waited:.1f} s"
        return StorageError(
            f"the journal at {location} stayed locked by another writer{how_long} while "
            f"{action} it; nothing was written, try again"
        )
    if code == _UNDEFINED_TABLE:
        return StorageError(
            f"the journal's tables at {location} are missing (while {action} it): {text}"
        )
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(
            f"the journal database at {location} is unreachable (while {action} it): {text}"
        )
    return StorageError(f"PostgreSQL error while {action} the journal at {location}: {text}")


def _is_connection_problem(exc: psycopg.Error, conn: Conn | None) -> bool:
    if conn is not None and (conn.closed or conn.broken):
        return True
    code = getattr(exc, "sqlstate", None) or ""
    return code.startswith("08") or code in ("57P01", "57P02", "57P03")


# --- the store -----------------------------------------------------------------------------


class PostgresStore(Store):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._location = redact_url(url)
        self._conninfo, self._schema, self._secrets = _parse(url)
        params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in params:
            self._connect_kwargs["application_name"] = "journal"
        s = _quote_ident(self._schema)
        self._t = {name: f"{s}.{name}" for name in _TABLES}
        self._head_key = advisory_key("journal-head", self._schema)
        self._create_key = advisory_key("journal-create", self._schema)
        self._write_lock = threading.Lock()
        self._writer_conn: Conn | None = None
        self._pool_lock = threading.Lock()
        self._idle: list[Conn] = []
        self._held: dict[str, Conn] = {}  # stream -> the connection holding its run lock
        self._closed = False

    # --- connections ---------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    @property
    def schema(self) -> str:
        return self._schema

    def _error(self, exc: psycopg.Error, action: str, waited: float | None = None) -> StoreError:
        return translate_error(exc, self._location, action, self._secrets, waited)

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
        except psycopg.Error as exc:
            # not `from exc`: libpq's connection errors may quote the connection string
            raise self._error(exc, "connecting to") from None
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the journal at {self._location} is closed")

    def _writer(self) -> Conn:
        self._check_open()
        conn = self._writer_conn
        if conn is not None and (conn.closed or conn.broken):
            with contextlib.suppress(psycopg.Error):
                conn.close()
            conn = self._writer_conn = None
        if conn is None:
            conn = self._connect()
            try:  # a writer stuck in a transaction must not hang every other one forever
                conn.execute(f"SET lock_timeout = '{WRITE_LOCK_TIMEOUT_S}s'")
            except psycopg.Error as exc:
                conn.close()
                raise self._error(exc, "connecting to") from exc
            self._writer_conn = conn
        return conn

    def _drop_writer(self) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _take_reader(self) -> Conn:
        self._check_open()
        while True:
            with self._pool_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if not (conn.closed or conn.broken):
                return conn
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _give_back(self, conn: Conn) -> None:
        with self._pool_lock:
            keep = (
                not self._closed
                and len(self._idle) < MAX_IDLE_READERS
                and not (conn.closed or conn.broken)
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
            if keep:
                self._idle.append(conn)
                return
        with contextlib.suppress(psycopg.Error):
            conn.close()

    def _read(self, fn: Callable[[Conn], T], action: str = "reading") -> T:
        """Run ``fn`` on a pooled reader; retried once on a fresh connection if the pooled
        one turned out to be dead (reads are safe to repeat)."""
        for attempt in (1, 2):
            conn = self._take_reader()
            try:
                result = fn(conn)
            except psycopg.Error as exc:
                dead = _is_connection_problem(exc, conn)
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                if dead and attempt == 1:
                    continue
                raise self._error(exc, action) from exc
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                raise
            self._give_back(conn)
            return result
        raise AssertionError("unreachable")

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    def _write(self, fn: Callable[[Conn], T], action: str) -> T:
        """Run ``fn`` in one transaction on the writer. Callers hold ``self._write_lock``.

        A failure before the transaction began (a connection that died while idle) is
        retried once on a new connection; any later failure rolls back and is raised."""
        for attempt in (1, 2):
            conn = self._writer()
            began = False
            started = time.monotonic()
            try:
                with conn.transaction():
                    began = True
                    result = fn(conn)
                return result
            except psycopg.Error as exc:
                dead = _is_connection_problem(exc, conn)
                if dead:
                    self._drop_writer()
                if dead and not began and attempt == 1:
                    continue
                error = self._error(exc, action, time.monotonic() - started)
                if dead and began:
                    error = StorageError(
                        f"{error}; the connection was lost inside the transaction: if it was "
                        "lost while committing, the write may have happened (check the head "
                        "with `journal history`/`journal verify`)"
                    )
                raise error from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._write_lock:
            self._drop_writer()
            with self._pool_lock:
                self._closed = True
                idle, self._idle = self._idle, []
                held, self._held = dict(self._held), {}
            for conn in [*idle, *held.values()]:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    # --- metadata ------------------------------------------------------------------------

    def _tables(self, conn: Conn) -> set[str] | None:
        """The tables of the schema; None when the schema does not exist."""
        found = conn.execute(
            "SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = %s", (self._schema,)
        ).fetchone()
        if found is None:
            return None
        rows = conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p')",
            (found[0],),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _where(self) -> str:
        return f"{self._location} (schema {self._schema})"

    def _read_meta(self, conn: Conn) -> Meta | None:
        tables = self._tables(conn)
        if not tables:
            return None  # no schema, or an empty one (e.g. created by hand for the journal)
        if not _TABLES.issubset(tables):
            raise NotAJournalError(
                f"the schema {self._schema!r} at {self._location} holds tables but not a "
                "journal; choose another schema with ?schema=NAME in the URL"
            )
        values = {
            str(k): str(v) for k, v in conn.execute(f"SELECT key, value FROM {self._t['meta']}")
        }
        wrapped = {
            str(k): as_bytes(v)
            for k, v in conn.execute(f"SELECT key_id, wrapped FROM {self._t['keys']}")
        }
        return meta_from(values, wrapped, self._where())

    def read_meta(self) -> Meta | None:
        def tx(conn: Conn) -> Meta | None:
            with conn.transaction():  # one snapshot for the tables, meta and keys
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return self._read_meta(conn)

        return self._read(tx)

    def create(self, meta: Meta, *, replace: bool = False) -> Meta:
        # ``replace`` does not apply: an empty schema already counts as no journal, and a
        # schema holding other tables is never touched (choose another one with ?schema=).
        def tx(conn: Conn) -> Meta:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._create_key,))
            existing = self._read_meta(conn)
            if existing is not None:
                return existing  # another process created it first
            self._create_schema(conn)
            self._write_meta(conn, meta)
            return meta

        with self._write_lock:
            return self._write(tx, "creating")

    def _create_schema(self, conn: Conn) -> None:
        t = self._t
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(self._schema)}")
        conn.execute(f"CREATE TABLE {t['meta']} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(f"CREATE TABLE {t['keys']} (key_id TEXT PRIMARY KEY, wrapped BYTEA NOT NULL)")
        conn.execute(
            f"""CREATE TABLE {t["events"]} (
                seq BIGINT PRIMARY KEY CHECK (seq > 0),
                stream TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL CHECK (version > 0),
                key_id TEXT NOT NULL,
                prev_hash BYTEA NOT NULL,
                hash BYTEA NOT NULL,
                data BYTEA NOT NULL,
                CONSTRAINT events_stream_version UNIQUE (stream, version)
            )"""
        )
        conn.execute(
            f"""CREATE TABLE {t["snapshots"]} (
                stream TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                data BYTEA NOT NULL,
                PRIMARY KEY (stream, seq)
            )"""
        )
        conn.execute(
            f"""CREATE TABLE {t["locks"]} (
                stream TEXT COLLATE "C" PRIMARY KEY,
                holder TEXT NOT NULL,
                backend_pid INTEGER NOT NULL,
                acquired TIMESTAMPTZ NOT NULL DEFAULT now()
            )"""
        )
        # ciphertexts do not compress; keep them out of TOAST's compression attempts
        for table, column in (("events", "data"), ("snapshots", "data")):
            conn.execute(f"ALTER TABLE {t[table]} ALTER COLUMN {column} SET STORAGE EXTERNAL")

    def _write_meta(self, conn: Conn, meta: Meta) -> None:
        t = self._t
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {t['meta']} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                list(meta_values(meta).items()),
            )
            cur.execute(f"DELETE FROM {t['keys']}")
            cur.executemany(
                f"INSERT INTO {t['keys']} (key_id, wrapped) VALUES (%s, %s)",
                list(meta.wrapped_keys.items()),
            )

    def replace_keys(self, expected: Meta, meta: Meta) -> None:
        def tx(conn: Conn) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._head_key,))
            current = self._read_meta(conn)
            if current is None or current.journal_id != meta.journal_id:
                raise UnsupportedJournalError(
                    f"the journal at {self._location} changed identity while it was open"
                )
            if not current.same_keys(expected):
                raise KeysChangedError(keys_changed_message(self._location))
            self._write_meta(conn, dataclasses.replace(meta, incomplete=current.incomplete))

        with self._write_lock:
            self._write(tx, "rekeying")

    def mark_complete(self) -> None:
        def tx(conn: Conn) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._head_key,))
            conn.execute(f"DELETE FROM {self._t['meta']} WHERE key = %s", (INCOMPLETE_KEY,))

        with self._write_lock:
            self._write(tx, "completing")

    # --- events --------------------------------------------------------------------------

    def _head_sql(self) -> str:
        return f"SELECT seq, hash FROM {self._t['events']} ORDER BY seq DESC LIMIT 1"

    def head(self) -> tuple[int, bytes] | None:
        found = self._read(lambda conn: conn.execute(self._head_sql()).fetchone())
        return None if found is None else (int(found[0]), as_bytes(found[1]))

    def _version_sql(self) -> str:
        return f"SELECT max(version) FROM {self._t['events']} WHERE stream = %s"

    def stream_version(self, stream: str) -> int:
        return self._read(lambda conn: self._version(conn, stream))

    def streams(self) -> list[str]:
        # distinct streams by skipping through the (stream, version) index: one probe each
        return self._distinct_streams(self._t["events"])

    def snapshot_streams(self) -> list[str]:
        return self._distinct_streams(self._t["snapshots"])  # through its (stream, seq) key

    def _distinct_streams(self, table: str) -> list[str]:
        sql = f"""
            WITH RECURSIVE s(name) AS (
                SELECT min(stream) FROM {table}
                UNION ALL
                SELECT (SELECT min(stream) FROM {table} WHERE stream > s.name)
                FROM s WHERE s.name IS NOT NULL
            )
            SELECT name FROM s WHERE name IS NOT NULL
        """
        return self._read(lambda conn: [str(r[0]) for r in conn.execute(sql)])

    def append(
        self, requests: Sequence[AppendRequest], seal: RowSealer, genesis: bytes
    ) -> list[AppendResult]:
        def tx(conn: Conn) -> tuple[list[AppendResult], list[Row]]:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._head_key,))
            self._check_locks_held(conn, {r.stream for r in requests})
            head = conn.execute(self._head_sql()).fetchone()
            results, rows = plan_append(
                requests, seal, head, genesis, lambda stream: self._version(conn, stream)
            )
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {self._t['events']} ({EVENT_COLUMNS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        event_params(rows),
                    )
            return results, rows

        with self._write_lock:
            results, rows = self._write(tx, "appending to")
            self._count_append(results, len(rows))
        return results

    def _version(self, conn: Conn, stream: str) -> int:
        found = conn.execute(self._version_sql(), (stream,)).fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def _check_locks_held(self, conn: Conn, streams: set[str]) -> None:
        """Inside an append: the run locks this store took on ``streams`` are still held."""
        with self._pool_lock:
            held = {s: c for s, c in self._held.items() if s in streams}
        for stream, lock_conn in held.items():
            pid = lock_conn.info.backend_pid if not lock_conn.closed else 0
            key = advisory_key("journal-lock", self._schema, stream)
            if self._lock_owner(conn, key) != pid or pid == 0:
                raise StorageError(
                    f"the lock of stage {stream!r} in the journal at {self._location} was "
                    "lost (its database connection closed); this run stops here so that it "
                    "cannot interleave with another: run again"
                )

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
            where = " AND ".join(f"{c} %s" for c, _ in conditions)
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM {self._t['events']} WHERE {where} "
                f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {size}"
            )
            params = [v for _, v in conditions]
            return [row_from(values) for values in self._fetchall(sql, params)]

        return paged_read(fetch, stream, after_seq, upto_seq, reverse, limit)

    def get(self, seq: int) -> Row | None:
        sql = f"SELECT {EVENT_COLUMNS} FROM {self._t['events']} WHERE seq = %s"
        found = self._read(lambda conn: conn.execute(sql, (seq,)).fetchone())
        return None if found is None else row_from(found)

    # --- snapshots -----------------------------------------------------------------------

    def put_snapshot(self, snapshot: SnapshotRow) -> None:
        def tx(conn: Conn) -> None:
            conn.execute(
                f"INSERT INTO {self._t['snapshots']} (stream, seq, key_id, data) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (stream, seq) DO UPDATE "
                "SET key_id = EXCLUDED.key_id, data = EXCLUDED.data",
                (snapshot.stream, snapshot.seq, snapshot.key_id, snapshot.data),
            )

        with self._write_lock:
            self._write(tx, "writing a snapshot to")

    def latest_snapshot(self, stream: str, upto_seq: int | None = None) -> SnapshotRow | None:
        sql = f"SELECT {SNAPSHOT_COLUMNS} FROM {self._t['snapshots']} WHERE stream = %s"
        params: list[Any] = [stream]
        if upto_seq is not None:
            sql += " AND seq <= %s"
            params.append(upto_seq)
        sql += " ORDER BY seq DESC LIMIT 1"
        found = self._read(lambda conn: conn.execute(sql, params).fetchone())
        return None if found is None else snapshot_from(found)

    def snapshots(self) -> Iterator[SnapshotRow]:
        self._check_open()

        def fetch(last: tuple[str, int] | None) -> list[SnapshotRow]:
            sql = f"SELECT {SNAPSHOT_COLUMNS} FROM {self._t['snapshots']}"
            params: tuple[Any, ...] = ()
            if last is not None:
                sql += " WHERE (stream, seq) > (%s, %s)"
                params = last
            sql += f" ORDER BY stream, seq LIMIT {PAGE_SIZE}"
            return [snapshot_from(values) for values in self._fetchall(sql, params)]

        return paged_snapshots(fetch)

    # --- locks ---------------------------------------------------------------------------

    def lock(
        self, stream: str, holder: Mapping[str, Any], timeout: float
    ) -> AbstractContextManager[None]:
        self._check_open()
        return self._run_lock(stream, holder, timeout)

    def _lock_owner(self, conn: Conn, key: int) -> int | None:
        """The backend pid of the session holding advisory lock ``key`` in this database."""
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        found = conn.execute(
            "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_catalog.pg_database "
            "WHERE datname = current_database()) "
            "AND classid = %s::oid AND objid = %s::oid AND objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        ).fetchone()
        return None if found is None else int(found[0])

    def _read_holder(self, conn: Conn, stream: str, key: int) -> dict[str, object] | None:
        """The holder's description, if the row is the live holder's (it writes the row just
        after it takes the lock: a few short retries cover that instant)."""
        sql = f"SELECT holder, backend_pid FROM {self._t['locks']} WHERE stream = %s"
        for _ in range(10):
            owner = self._lock_owner(conn, key)
            if owner is None:
                return None  # released meanwhile
            found = conn.execute(sql, (stream,)).fetchone()
            if found is not None and int(found[1]) == owner:
                try:
                    value = json.loads(str(found[0]))
                except json.JSONDecodeError:
                    value = None
                return value if isinstance(value, dict) else None
            time.sleep(0.01)
        return None

    @contextlib.contextmanager
    def _run_lock(self, stream: str, holder: Mapping[str, Any], timeout: float) -> Iterator[None]:
        info = json.dumps(dict(holder), sort_keys=True)
        key = advisory_key("journal-lock", self._schema, stream)
        conn = self._connect()
        try:
            try:
                deadline = time.monotonic() + max(0.0, timeout)
                while True:
                    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if got is not None and got[0]:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise LockedError(stream, self._read_holder(conn, stream, key))
                    time.sleep(min(LOCK_POLL_S, remaining))
                conn.execute(
                    f"INSERT INTO {self._t['locks']} (stream, holder, backend_pid, acquired) "
                    "VALUES (%s, %s, pg_backend_pid(), now()) ON CONFLICT (stream) DO UPDATE "
                    "SET holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid, "
                    "acquired = EXCLUDED.acquired",
                    (stream, info),
                )
            except psycopg.Error as exc:
                raise self._error(exc, f"locking stage {stream!r} in") from exc
            with self._pool_lock:
                if self._closed:
                    raise UsageError(f"the journal at {self._location} is closed")
                self._held[stream] = conn
            try:
                yield
            finally:
                with self._pool_lock:
                    if self._held.get(stream) is conn:
                        del self._held[stream]
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        f"DELETE FROM {self._t['locks']} "
                        "WHERE stream = %s AND backend_pid = pg_backend_pid()",
                        (stream,),
                    )
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.close()
