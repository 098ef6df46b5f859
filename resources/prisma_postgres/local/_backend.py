"""The objects behind the local API: workspaces, projects, databases and connections.

Records are frozen dataclasses kept in a :class:`Store`: ``PgStore`` (in ``_postgres``: tables
in the ``<prefix>_meta`` database, so a restarted server sees the same objects and several
servers on one prefix stay consistent) or :class:`MemoryStore` (``metadata_only`` benchmarks).
Ids sort in creation order, and list endpoints page by id (the cursor is the last id of a page).

:class:`Backend` holds the rules (who sees what, defaults, cascades) and drives
``PgAdmin`` for the real work. Passwords exist only in the :class:`Issued` values it returns
from create and rotate; nothing here stores them. :class:`Views` renders records as the API's
JSON.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
import logging
import math
import re
import secrets
import string
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import psycopg

from journal.provider import LocalServerError, UsageError

__all__ = [
    "REGIONS",
    "Backend",
    "Connection",
    "CreatedDatabase",
    "Database",
    "Inventory",
    "Issued",
    "MemoryStore",
    "Page",
    "Problem",
    "Project",
    "Store",
    "Views",
    "Workspace",
    "boolean_field",
    "checked_text",
    "database_name",
    "generate_password",
    "invalid",
    "json_body",
    "login_role",
    "meta_database",
    "new_id",
    "owner_role",
    "paging",
    "query_value",
    "string_field",
    "validate_prefix",
]

Json = dict[str, Any]

_log = logging.getLogger(__name__.rsplit(".", 1)[0])

#: the regions of the OpenAPI document's enums, with display names
REGIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-1": "US West (N. California)",
    "eu-west-3": "Europe (Paris)",
    "eu-central-1": "Europe (Frankfurt)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
}


class Problem(Exception):
    """An error answer of the API (status, code, message, optional hint)."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


# --- ids and time -----------------------------------------------------------------------------

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_id_lock = threading.Lock()
_id_state = [0, 0]  # last millisecond, sequence within it


def _b36(value: int, width: int) -> str:
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = _B36[digit] + out
    return out.rjust(width, "0")[-width:]


def new_id(prefix: str) -> str:
    """``prefix`` + a cuid-like body (``c`` + time + sequence + random): ids sort by creation."""
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _id_state[0]:
            ms = _id_state[0]
            _id_state[1] += 1
        else:
            _id_state[:] = [ms, 0]
        seq = _id_state[1]
    rand = "".join(secrets.choice(_B36) for _ in range(8))
    return f"{prefix}c{_b36(ms, 9)}{_b36(seq, 4)}{rand}"


def utcnow() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# --- names and secrets ----------------------------------------------------------------------

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def validate_prefix(prefix: str) -> str:
    """A prefix is 1-20 lowercase letters/digits starting with a letter (no ``_``, so that one
    prefix is never the start of another's names)."""
    if not _PREFIX_RE.match(prefix):
        raise UsageError(
            f"invalid prefix {prefix!r}: use 1-20 lowercase letters or digits, "
            "starting with a letter"
        )
    return prefix


def _body(object_id: str) -> str:
    return object_id.split("_", 1)[-1].lower()


def meta_database(prefix: str) -> str:
    return f"{prefix}_meta"


def database_name(prefix: str, database_id: str) -> str:
    return f"{prefix}_d_{_body(database_id)}"


def owner_role(prefix: str, database_id: str) -> str:
    return f"{prefix}_o_{_body(database_id)}"


def login_role(prefix: str, connection_id: str) -> str:
    return f"{prefix}_c_{_body(connection_id)}"


def generate_password(length: int = 32) -> str:
    """A random password of letters and digits (safe in a URL without escaping)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


# --- input validation -----------------------------------------------------------------------

_MAX_LIMIT = 100
_CURSOR_RE = re.compile(r"^[a-z]+_[a-z0-9]+$")


#: the longest string any field, path segment or query value may hold
MAX_TEXT = 256


def invalid(message: str, status: int = 400, hint: str | None = None) -> Problem:
    return Problem(status, "VALIDATION_ERROR", message, hint)


def checked_text(value: str, what: str, status: int = 400) -> str:
    """``value`` if PostgreSQL can store it and a person can read it: no NUL or other control
    character, no lone surrogate (JSON's ``\\ud800`` is not UTF-8), at most ``MAX_TEXT``
    characters. Every string from a request passes here before it reaches a query, so bad
    input is a 400, never a 500 from the database."""
    if len(value) > MAX_TEXT:
        raise invalid(f"{what} must be at most {MAX_TEXT} characters long.", status)
    if any(ch < " " or "\x7f" <= ch < "\xa0" for ch in value):
        raise invalid(f"{what} must not contain control characters (such as NUL).", status)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{what} is not valid Unicode text (a lone surrogate).", status) from None
    return value


def json_body(raw: bytes, status: int = 400) -> Json:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise invalid("The request body is not valid JSON.", status) from None
    if not isinstance(value, dict):
        raise invalid("The request body must be a JSON object.", status)
    return value


def string_field(
    body: Json,
    key: str,
    *,
    required: bool = False,
    min_len: int = 0,
    max_len: int | None = None,
    status: int = 400,
) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise invalid(f"`{key}` is required.", status)
        return None
    if not isinstance(value, str):
        raise invalid(f"`{key}` must be a string.", status)
    checked_text(value, f"`{key}`", status)
    if len(value) < min_len:
        raise invalid(f"`{key}` must be at least {min_len} character(s) long.", status)
    if max_len is not None and len(value) > max_len:
        raise invalid(f"`{key}` must be at most {max_len} characters long.", status)
    return value


def boolean_field(body: Json, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise invalid(f"`{key}` must be a boolean.")
    return value


def query_value(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return checked_text(values[-1], f"`{key}`") if values else None


def paging(query: Mapping[str, list[str]]) -> tuple[str | None, int]:
    cursor = query_value(query, "cursor")
    if cursor in (None, "", "null"):
        cursor = None
    elif not _CURSOR_RE.match(str(cursor)):
        raise invalid("`cursor` is not a valid cursor.")
    raw_limit = query_value(query, "limit")
    if raw_limit in (None, ""):
        return cursor, _MAX_LIMIT
    try:
        number = float(str(raw_limit))
    except ValueError:
        raise invalid("`limit` must be a number.") from None
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise invalid("`limit` must be a positive integer.")
    return cursor, min(int(number), _MAX_LIMIT)


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    id: str
    key: str  # "name:<workspace name>" for configured tokens, "token:<sha256>" for others
    name: str
    created_at: dt.datetime

    @property
    def workspace_id(self) -> str:
        return self.id


@dataclass(frozen=True)
class Project:
    id: str
    workspace_id: str
    name: str
    region: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Database:
    id: str
    workspace_id: str
    project_id: str
    name: str
    region: str
    is_default: bool
    pg_name: str
    owner_role: str
    created_at: dt.datetime
    ready_at: dt.datetime
    default_connection_id: str | None
    state: str  # creating | ready | failed

    def status(self, now: dt.datetime | None = None) -> str:
        if self.state == "failed":
            return "failure"
        if self.state == "ready" and (now or utcnow()) >= self.ready_at:
            return "ready"
        return "provisioning"


@dataclass(frozen=True)
class Connection:
    id: str
    workspace_id: str
    project_id: str
    database_id: str
    name: str
    role_name: str
    created_at: dt.datetime


Record = Workspace | Project | Database | Connection
R = TypeVar("R", Workspace, Project, Database, Connection)


@dataclass(frozen=True)
class Issued:
    """A connection with the password just set: only create and rotate answers carry one."""

    connection: Connection
    password: str = field(repr=False)


@dataclass(frozen=True)
class CreatedDatabase:
    database: Database
    default: Issued | None


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None


@dataclass(frozen=True)
class Inventory:
    """What this instance really has: its metadata, and the prefixed objects in PostgreSQL."""

    workspaces: tuple[Workspace, ...]
    projects: tuple[Project, ...]
    databases: tuple[Database, ...]
    connections: tuple[Connection, ...]
    pg_databases: tuple[str, ...]
    pg_roles: tuple[str, ...]


# --- stores -----------------------------------------------------------------------------------


class Store(abc.ABC):
    """Where the records live. ``page`` filters by equality and returns up to ``limit`` records
    with ids after ``after``, in id order. ``instance_id`` names the store for good: two
    servers that share it are one API (the same objects); any other store is another API."""

    instance_id: str

    @abc.abstractmethod
    def workspace(self, key: str, name: str) -> Workspace:
        """The workspace with this key, created now if missing."""

    @abc.abstractmethod
    def get(self, kind: type[R], object_id: str) -> R | None: ...

    @abc.abstractmethod
    def page(self, kind: type[R], *, after: str | None, limit: int | None, **where: str) -> list[R]:
        """Records of ``kind`` matching ``where``, by id."""

    @abc.abstractmethod
    def select(self, kind: type[R], column: str, values: Sequence[str]) -> list[R]:
        """Records whose ``column`` is one of ``values``, by id."""

    @abc.abstractmethod
    def insert(self, *records: Record) -> None:
        """Insert all records, atomically."""

    @abc.abstractmethod
    def update(self, *records: Record) -> None:
        """Replace all records (by id), atomically."""

    @abc.abstractmethod
    def delete(self, *records: Record) -> None:
        """Delete all records (by id, in the order given), atomically; and their work."""

    # -- work in progress: records whose PostgreSQL objects are being created

    def begin_work(self, *records: Record) -> None:
        """Insert records whose PostgreSQL objects this server is about to create, marked as
        its work in progress, atomically. Work left by a server that is gone (stopped part
        way, killed) is found by ``abandoned_work`` and repaired when a server starts."""
        self.insert(*records)

    def end_work(self, done: Sequence[Record], *changes: Record) -> None:
        """The work on ``done`` is complete: apply ``changes`` and unmark it, atomically."""
        if changes:
            self.update(*changes)

    def abandoned_work(self) -> list[tuple[str, str]]:
        """(kind, id) of work in progress whose server is gone."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class MemoryStore(Store):
    """Records in dictionaries: for ``metadata_only`` mode (benchmarks), lost on stop."""

    def __init__(self) -> None:
        self.instance_id = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._data: dict[type[Any], dict[str, Any]] = {
            kind: {} for kind in (Workspace, Project, Database, Connection)
        }

    def workspace(self, key: str, name: str) -> Workspace:
        with self._lock:
            for ws in self._data[Workspace].values():
                if ws.key == key:
                    return ws  # type: ignore[no-any-return]
            ws = Workspace(id=new_id("wksp_"), key=key, name=name, created_at=utcnow())
            self._data[Workspace][ws.id] = ws
            return ws

    def get(self, kind: type[R], object_id: str) -> R | None:
        with self._lock:
            found: R | None = self._data[kind].get(object_id)
            return found

    def page(self, kind: type[R], *, after: str | None, limit: int | None, **where: str) -> list[R]:
        with self._lock:
            rows: list[R] = [
                r
                for r in self._data[kind].values()
                if (after is None or r.id > after)
                and all(getattr(r, k) == v for k, v in where.items())
            ]
        rows.sort(key=lambda r: r.id)
        return rows if limit is None else rows[:limit]

    def select(self, kind: type[R], column: str, values: Sequence[str]) -> list[R]:
        wanted = set(values)
        with self._lock:
            rows: list[R] = [r for r in self._data[kind].values() if getattr(r, column) in wanted]
        return sorted(rows, key=lambda r: r.id)

    def insert(self, *records: Record) -> None:
        with self._lock:
            for record in records:
                self._data[type(record)][record.id] = record

    def update(self, *records: Record) -> None:
        self.insert(*records)

    def delete(self, *records: Record) -> None:
        with self._lock:
            for record in records:
                self._data[type(record)].pop(record.id, None)


# --- the rules --------------------------------------------------------------------------------

_NOUNS: dict[type[Any], str] = {
    Workspace: "Workspace",
    Project: "Project",
    Database: "Database",
    Connection: "Connection",
}
_ID_PREFIXES: dict[type[Any], str] = {
    Workspace: "wksp_",
    Project: "proj_",
    Database: "db_",
    Connection: "con_",
}


def _not_found(kind: type[Any], object_id: str) -> Problem:
    return Problem(404, "NOT_FOUND", f"{_NOUNS[kind]} {object_id} was not found.")


class PoolBusy(LocalServerError):
    """Every connection of a pool stayed in use for its whole wait: the server is busy (the
    request did nothing yet; the API answers 503 with Retry-After, which clients retry)."""


class Admin(Protocol):
    """The PostgreSQL work behind the API, as the backend asks for it (``PgAdmin`` in
    ``_postgres`` does it; this module does not import that one, which imports this)."""

    def create_database(self, name: str, owner: str) -> None: ...

    def drop_database(
        self, name: str, owner: str, logins: Sequence[str], *, direct: bool = False
    ) -> None: ...

    def create_login(self, role: str, password: str, database: str, owner: str) -> None: ...

    def set_password(self, role: str, password: str) -> None: ...

    def drop_login(self, role: str, database: str, owner: str) -> None: ...

    def drop_role(self, role: str) -> None: ...

    def list_owned(self, prefix: str) -> tuple[list[str], list[str]]: ...


class Backend:
    """The API's rules over a store and (unless metadata-only) a PostgreSQL admin."""

    def __init__(
        self,
        store: Store,
        admin: Admin | None,
        *,
        prefix: str,
        provisioning_delay_s: float = 0.0,
    ) -> None:
        self.store = store
        self.admin = admin
        self.prefix = prefix
        self.provisioning_delay_s = provisioning_delay_s
        #: set when the server stops: work cut short by it is expected (repaired on start)
        self.stopping = False

    def _failed(self, message: str, *args: object) -> None:
        (_log.debug if self.stopping else _log.error)(message, *args)

    # -- lookups

    def owned(self, kind: type[R], object_id: str, ws: Workspace, *, foreign: int = 404) -> R:
        """The record if it exists and belongs to ``ws``; else 404 (or ``foreign`` for another
        workspace's record). Ids are accepted with or without their prefix."""
        prefix = _ID_PREFIXES[kind]
        full = object_id if object_id.startswith(prefix) else prefix + object_id
        record = self.store.get(kind, full)
        if record is None:
            raise _not_found(kind, object_id)
        if record.workspace_id != ws.id:
            if foreign == 404:
                raise _not_found(kind, object_id)
            raise Problem(
                foreign,
                "FORBIDDEN",
                f"{_NOUNS[kind]} {object_id} does not belong to this token's workspace.",
            )
        return record

    def page(self, kind: type[R], *, after: str | None, limit: int, **where: str) -> Page[R]:
        rows = self.store.page(kind, after=after, limit=limit + 1, **where)
        if len(rows) > limit:
            return Page(rows[:limit], rows[limit - 1].id)
        return Page(rows, None)

    def projects_by_id(self, ids: Sequence[str]) -> dict[str, Project]:
        return {p.id: p for p in self.store.select(Project, "id", sorted(set(ids)))}

    def connections_by_database(self, ids: Sequence[str]) -> dict[str, list[Connection]]:
        out: dict[str, list[Connection]] = {i: [] for i in ids}
        for con in self.store.select(Connection, "database_id", sorted(set(ids))):
            out.setdefault(con.database_id, []).append(con)
        return out

    # -- projects

    def create_project(
        self, ws: Workspace, *, name: str, region: str, create_database: bool
    ) -> tuple[Project, CreatedDatabase | None]:
        project = Project(
            id=new_id("proj_"), workspace_id=ws.id, name=name, region=region, created_at=utcnow()
        )
        self.store.insert(project)
        if not create_database:
            return project, None
        try:
            created = self._provision(project, name=name, region=region, is_default=True)
        except BaseException:
            self.store.delete(project)
            raise
        return project, created

    def rename_project(self, ws: Workspace, project_id: str, name: str | None) -> Project:
        project = self.owned(Project, project_id, ws, foreign=403)
        if name is not None and name != project.name:
            project = replace(project, name=name)
            self.store.update(project)
        return project

    def delete_project(self, ws: Workspace, project_id: str) -> None:
        project = self.owned(Project, project_id, ws)
        for db in self.store.page(Database, after=None, limit=None, project_id=project.id):
            self._drop(db)
        self.store.delete(project)

    # -- databases

    def create_database(
        self,
        ws: Workspace,
        project_id: str,
        *,
        name: str | None,
        region: str,
        is_default: bool,
    ) -> CreatedDatabase:
        project = self.owned(Project, project_id, ws, foreign=403)
        if region == "inherit":
            region = project.region
        return self._provision(project, name=name or region, region=region, is_default=is_default)

    def _provision(
        self, project: Project, *, name: str, region: str, is_default: bool
    ) -> CreatedDatabase:
        db_id, con_id = new_id("db_"), new_id("con_")
        now = utcnow()
        db = Database(
            id=db_id,
            workspace_id=project.workspace_id,
            project_id=project.id,
            name=name,
            region=region,
            is_default=is_default,
            pg_name=database_name(self.prefix, db_id),
            owner_role=owner_role(self.prefix, db_id),
            created_at=now,
            ready_at=now + dt.timedelta(seconds=self.provisioning_delay_s),
            default_connection_id=con_id,
            state="creating",
        )
        con = Connection(
            id=con_id,
            workspace_id=project.workspace_id,
            project_id=project.id,
            database_id=db_id,
            name="default",
            role_name=login_role(self.prefix, con_id),
            created_at=now,
        )
        password = generate_password()
        # the intent first, marked as this server's work: if the work is cut short (the
        # server stops or dies), the next server to start removes what was half made
        self.store.begin_work(db, con)
        try:
            if self.admin is not None:
                self.admin.create_database(db.pg_name, db.owner_role)
                self.admin.create_login(con.role_name, password, db.pg_name, db.owner_role)
        except Exception as exc:  # PostgreSQL, or no connection to it: nothing half made stays
            code = exc.sqlstate if isinstance(exc, psycopg.Error) else None
            self._failed("creating database %s failed: %s", db.id, code or exc)
            if self._forget_failed(db, con) and isinstance(exc, PoolBusy):
                # nothing is left of it: the same request may simply be sent again
                raise Problem(
                    503, "SERVICE_UNAVAILABLE", "The local API is busy; retry shortly."
                ) from exc
            raise Problem(
                500, "INTERNAL_SERVER_ERROR", "The database could not be created."
            ) from exc
        ready_at = utcnow() + dt.timedelta(seconds=self.provisioning_delay_s)
        db = replace(db, state="ready", ready_at=ready_at)
        changes: list[Record] = [db]
        if is_default:
            for other in self.store.page(Database, after=None, limit=None, project_id=project.id):
                if other.is_default and other.id != db.id:
                    changes.append(replace(other, is_default=False))
        self.store.end_work([db, con], *changes)
        return CreatedDatabase(db, Issued(con, password))

    def _forget_failed(self, db: Database, con: Connection) -> bool:
        """Remove what a failed creation made; False if that failed too (then the record
        stays, marked failed, and the next start repairs it)."""
        try:
            if self.admin is not None:
                # not through the pool, which may be what was busy
                self.admin.drop_database(db.pg_name, db.owner_role, [con.role_name], direct=True)
            self.store.delete(con, db)
        except Exception as exc:  # keep the first error; the next start repairs it
            self._failed("cleaning up database %s failed: %s", db.id, exc)
            with contextlib.suppress(Exception):
                self.store.update(replace(db, state="failed"))
            return False
        return True

    def rename_database(self, ws: Workspace, database_id: str, name: str | None) -> Database:
        db = self.owned(Database, database_id, ws, foreign=403)
        if name is not None and name != db.name:
            db = replace(db, name=name)
            self.store.update(db)
        return db

    def delete_database(self, ws: Workspace, database_id: str) -> None:
        db = self.owned(Database, database_id, ws, foreign=403)
        if db.is_default:
            raise Problem(
                403,
                "FORBIDDEN",
                "The default database of a project cannot be deleted.",
                hint="Delete the project to delete its default database.",
            )
        self._drop(db)

    def _drop(self, db: Database) -> None:
        cons = self.store.page(Connection, after=None, limit=None, database_id=db.id)
        if self.admin is not None:
            try:
                self.admin.drop_database(db.pg_name, db.owner_role, [c.role_name for c in cons])
            except psycopg.Error as exc:
                _log.error("dropping database %s failed: %s", db.id, exc.sqlstate or type(exc))
                raise Problem(
                    500, "INTERNAL_SERVER_ERROR", "The database could not be deleted."
                ) from exc
        self.store.delete(*cons, db)

    # -- connections

    def create_connection(self, ws: Workspace, database_id: str, name: str) -> Issued:
        db = self.owned(Database, database_id, ws)
        con_id = new_id("con_")
        con = Connection(
            id=con_id,
            workspace_id=db.workspace_id,
            project_id=db.project_id,
            database_id=db.id,
            name=name,
            role_name=login_role(self.prefix, con_id),
            created_at=utcnow(),
        )
        password = generate_password()
        self.store.begin_work(con)
        try:
            if self.admin is not None:
                self.admin.create_login(con.role_name, password, db.pg_name, db.owner_role)
        except Exception as exc:  # PostgreSQL, or no connection to it: nothing half made stays
            code = exc.sqlstate if isinstance(exc, psycopg.Error) else None
            self._failed("creating connection %s failed: %s", con.id, code or exc)
            with contextlib.suppress(Exception):  # else the next start repairs it
                self.store.delete(con)
            raise Problem(
                500, "INTERNAL_SERVER_ERROR", "The connection could not be created."
            ) from exc
        self.store.end_work([con])
        return Issued(con, password)

    # -- repair

    def repair(self) -> int:
        """Remove what servers that are gone left half made: a database or connection whose
        creation was cut short (its records and whatever PostgreSQL objects exist). Its
        create was never answered, so to a client it never existed. Returns how many."""
        repaired = 0
        for kind, object_id in self.store.abandoned_work():
            if kind == "databases":
                db = self.store.get(Database, object_id)
                if db is not None:
                    cons = self.store.page(Connection, after=None, limit=None, database_id=db.id)
                    if self.admin is not None:
                        logins = [c.role_name for c in cons]
                        self.admin.drop_database(db.pg_name, db.owner_role, logins)
                    self.store.delete(*cons, db)
                    repaired += 1
            elif kind == "connections":
                con = self.store.get(Connection, object_id)
                if con is not None:
                    if self.admin is not None:
                        self.admin.drop_role(con.role_name)
                    self.store.delete(con)
                    repaired += 1
        if repaired:
            _log.info("removed %d object(s) left half-created by a stopped server", repaired)
        return repaired

    def rotate_connection(self, ws: Workspace, connection_id: str) -> Issued:
        con = self.owned(Connection, connection_id, ws)
        password = generate_password()
        if self.admin is not None:
            try:
                self.admin.set_password(con.role_name, password)
            except psycopg.Error as exc:
                _log.error("rotating connection %s failed: %s", con.id, exc.sqlstate or type(exc))
                raise Problem(
                    500, "INTERNAL_SERVER_ERROR", "The credentials could not be rotated."
                ) from exc
        return Issued(con, password)

    def delete_connection(self, ws: Workspace, connection_id: str) -> None:
        con = self.owned(Connection, connection_id, ws)
        db = self.store.get(Database, con.database_id)
        if self.admin is not None and db is not None:
            try:
                self.admin.drop_login(con.role_name, db.pg_name, db.owner_role)
            except psycopg.Error as exc:
                _log.error("deleting connection %s failed: %s", con.id, exc.sqlstate or type(exc))
                raise Problem(
                    500, "INTERNAL_SERVER_ERROR", "The connection could not be deleted."
                ) from exc
        changes: list[Record] = []
        if db is not None and db.default_connection_id == con.id:
            changes.append(replace(db, default_connection_id=None))
        self.store.delete(con)
        if changes:
            self.store.update(*changes)

    # -- inspection

    def inventory(self) -> Inventory:
        def every(kind: type[R]) -> tuple[R, ...]:
            return tuple(self.store.page(kind, after=None, limit=None))

        pg_dbs: list[str] = []
        pg_roles: list[str] = []
        if self.admin is not None:
            pg_dbs, pg_roles = self.admin.list_owned(self.prefix)
        return Inventory(
            workspaces=every(Workspace),
            projects=every(Project),
            databases=every(Database),
            connections=every(Connection),
            pg_databases=tuple(pg_dbs),
            pg_roles=tuple(pg_roles),
        )


# --- rendering ----------------------------------------------------------------------------------


def _ts(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class Views:
    """Turns records into the API's JSON shapes (absolute urls on the server's origin)."""

    def __init__(self, origin: str, pg_host: str, pg_port: int) -> None:
        self.origin = origin
        self.pg_host = pg_host
        self.pg_port = pg_port

    def url(self, collection: str, object_id: str) -> str:
        return f"{self.origin}/v1/{collection}/{object_id}"

    def workspace(self, ws: Workspace) -> Json:
        return {
            "id": ws.id,
            "type": "workspace",
            "url": self.url("workspaces", ws.id),
            "name": ws.name,
            "createdAt": _ts(ws.created_at),
        }

    def project(self, project: Project, ws: Workspace) -> Json:
        return {
            "id": project.id,
            "type": "project",
            "url": self.url("projects", project.id),
            "name": project.name,
            "createdAt": _ts(project.created_at),
            "defaultRegion": project.region,
            "workspace": {"id": ws.id, "url": self.url("workspaces", ws.id), "name": ws.name},
        }

    def connection_string(self, con: Connection, db: Database, password: str) -> str:
        return (
            f"postgresql://{con.role_name}:{password}@{self.pg_host}:{self.pg_port}"
            f"/{db.pg_name}?sslmode=disable"
        )

    def connection(self, con: Connection, db: Database, issued: Issued | None = None) -> Json:
        endpoint: Json = {"host": self.pg_host, "port": self.pg_port}
        out: Json = {
            "id": con.id,
            "type": "connection",
            "url": self.url("connections", con.id),
            "name": con.name,
            "createdAt": _ts(con.created_at),
            "kind": "postgres",
            "endpoints": {"direct": dict(endpoint), "pooled": dict(endpoint)},
            "database": {"id": db.id, "url": self.url("databases", db.id), "name": db.name},
        }
        if issued is not None and issued.connection.id == con.id:
            dsn = self.connection_string(con, db, issued.password)
            host = f"{self.pg_host}:{self.pg_port}"
            for kind in ("direct", "pooled"):
                out["endpoints"][kind]["connectionString"] = dsn
            out["connectionString"] = dsn
            out["directConnection"] = {"host": host, "pass": issued.password, "user": con.role_name}
            out.update(host=host, user=con.role_name)
            out["pass"] = issued.password
        return out

    def database(
        self,
        db: Database,
        project: Project,
        connections: list[Connection],
        issued: Issued | None = None,
    ) -> Json:
        out: Json = {
            "id": db.id,
            "type": "database",
            "url": self.url("databases", db.id),
            "name": db.name,
            "status": db.status(),
            "createdAt": _ts(db.created_at),
            "isDefault": db.is_default,
            "defaultConnectionId": db.default_connection_id,
            "connections": [self.connection(c, db, issued) for c in connections],
            "project": {
                "id": project.id,
                "url": self.url("projects", project.id),
                "name": project.name,
            },
            "region": {"id": db.region, "name": REGIONS.get(db.region, db.region)},
            "source": {"type": "empty"},
        }
        if issued is not None:  # a create answer: the deprecated fields with the new secret
            key = self.connection(issued.connection, db, issued)
            out["apiKeys"] = [key]
            out["connectionString"] = key["connectionString"]
            out["directConnection"] = key["directConnection"]
        return out
