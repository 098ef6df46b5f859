"""PostgreSQL for the local API: the embedded server, the real DDL and the metadata store.

Two ways to reach PostgreSQL:

- :class:`EmbeddedPostgres` manages a cluster with the binaries bundled in the ``pgserver``
  wheel. It runs ``initdb`` once in the data directory, rewrites ``pg_hba.conf`` (trust on the
  Unix socket, ``scram-sha-256`` on TCP, so role passwords are really checked), and starts the
  server with ``-h 127.0.0.1 -p PORT -k SOCKETDIR``. The port is chosen free on the first start
  and remembered in ``DATA_DIR/journal-local.json``; a server already running on the data
  directory (from an earlier process) is reused. As root it runs PostgreSQL as the ``pgserver``
  system user, through pgserver's own helpers.
- any server given by URL (its admin role must be a superuser).

:class:`PgAdmin` does the work behind the API on either: a database is ``CREATE DATABASE``
owned by a NOLOGIN owner role, with ``CONNECT`` revoked from ``PUBLIC``; a connection is a
LOGIN role that is a member of the owner role (so it may connect and owns nothing itself: its
sessions start as the owner role). Passwords never reach PostgreSQL in plaintext: the role gets
a SCRAM-SHA-256 verifier computed by libpq on this side (``scram_verifier``).

:class:`PgStore` keeps the API's records in the ``<prefix>_meta`` database. Records whose
PostgreSQL objects are being created are marked as work in progress of the server doing it
(table ``journal_local_work``); each server holds a session advisory lock on its instance id
while it runs, so the work of a server that is gone (stopped part way, killed) is told apart
from work still under way, and is repaired by the next server that starts.

Every object's name starts with ``<prefix>_`` (``<prefix>_meta``, ``<prefix>_d_…``,
``<prefix>_o_…``, ``<prefix>_c_…``), so instances with different prefixes never collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row

from journal.provider import LocalServerError

from ._backend import (
    Connection,
    Database,
    PoolBusy,
    Project,
    R,
    Record,
    Store,
    Workspace,
    new_id,
    utcnow,
)

__all__ = [
    "ConnectionPool",
    "EmbeddedPostgres",
    "PgAdmin",
    "PgStore",
    "scram_verifier",
]

_log = logging.getLogger(__name__)

_SYSTEM_USER = "pgserver"
_STATE_FILE = "journal-local.json"
_LOG_FILE = "journal-postgres.log"


# --- secrets -------------------------------------------------------------------------------


def _owned_pattern(prefix: str) -> str:
    return f"^{prefix}_(meta|[dco]_[a-z0-9]+)$"


def _drop(conn: Conn, statement: sql.Composed) -> None:
    """Run a ``DROP ... IF EXISTS``. Two sessions dropping the same object at once (a server
    repairing what a stopped one is still removing) make the loser fail with "tuple
    concurrently deleted/updated": the object is gone or going, so the statement is run again
    and its ``IF EXISTS`` settles it."""
    for attempt in range(5):
        try:
            conn.execute(statement)
            return
        except psycopg.errors.InternalError_ as exc:
            if "concurrently" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def scram_verifier(conn: Conn, password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password``, computed by libpq on
    this side of ``conn`` (``PQencryptPasswordConn``), as ``psql``'s ``\\password`` does.

    PostgreSQL accepts it in ``PASSWORD '...'`` as is, so the plaintext never reaches the
    server, its logs or its statistics.
    """
    # the user name only salts the old md5 scheme; SCRAM draws a random salt
    verifier = conn.pgconn.encrypt_password(password.encode(), b"", b"scram-sha-256")
    return verifier.decode("ascii")


# --- the connection pool --------------------------------------------------------------------

Conn = psycopg.Connection[tuple[Any, ...]]


class ConnectionPool:
    """Autocommit connections to one database through ``psycopg_pool``: at most ``max_size``,
    opened on demand; a caller who waits ``timeout_s`` for one gets ``PoolBusy`` (the API
    answers 503 with Retry-After). A connection returned broken is dropped, not reused (no
    check on checkout: that would be a round trip more per metadata query)."""

    def __init__(self, conninfo: str, *, max_size: int = 4, timeout_s: float = 30.0) -> None:
        self._conninfo = conninfo
        self._timeout_s = timeout_s
        self._pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=0,
            max_size=max(1, max_size),
            kwargs={"autocommit": True, "connect_timeout": 10},
            timeout=timeout_s,
            name="journal-local",
            open=True,
        )

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        errors = self._pool.get_stats().get("connections_errors", 0)
        try:
            conn = self._pool.getconn()
        except psycopg_pool.PoolClosed as exc:
            raise LocalServerError("the PostgreSQL connection pool is closed") from exc
        except psycopg_pool.PoolTimeout as exc:
            if self._pool.get_stats().get("connections_errors", 0) > errors:
                # not busy: PostgreSQL refuses new connections; say why, as libpq does
                psycopg.connect(self._conninfo, connect_timeout=10).close()
            raise PoolBusy(
                f"every PostgreSQL connection stayed busy for {self._timeout_s:g} s"
            ) from exc
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def close(self) -> None:
        self._pool.close()


# --- the embedded server --------------------------------------------------------------------


def _pgserver() -> tuple[Any, Any]:
    """pgserver's command wrappers and utils (imported on first use; its import warns about
    XDG_RUNTIME_DIR on some systems, which is noise here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            commands = importlib.import_module("pgserver._commands")
            utils = importlib.import_module("pgserver.utils")
    except ImportError as exc:
        raise LocalServerError(
            "the embedded PostgreSQL needs the pgserver package (pip install 'journal-iac[local]'),"
            " or give a server with postgres_url="
        ) from exc
    return commands, utils


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like PostgreSQL's own listener: connections in TIME_WAIT do not make it busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir`` run with pgserver's binaries, on TCP 127.0.0.1.

    ``start()`` is idempotent and safe across processes (a file lock next to the data
    directory); the server keeps running after this object is gone, until ``stop()``.
    """

    host = "127.0.0.1"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self._port: int | None = None
        self._socket_dir: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalServerError("the embedded PostgreSQL is not started")
        return self._port

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise LocalServerError("the embedded PostgreSQL is not started")
        return self._socket_dir

    @property
    def state_file(self) -> Path:
        """Where the chosen port is remembered."""
        return self.data_dir / _STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / _LOG_FILE

    def conninfo(self, dbname: str = "postgres") -> str:
        """The superuser's connection (over the Unix socket, trusted)."""
        return make_conninfo(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname
        )

    def _system_user(self) -> str | None:
        return _SYSTEM_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None

    def _default_socket_dir(self) -> Path:
        # a Unix socket path must stay under ~100 bytes: the data dir if short and plain,
        # else a short directory in /tmp named after the data dir
        candidate = self.data_dir / ".s.PGSQL.65535"
        if len(str(candidate).encode()) < 100 and " " not in str(candidate):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"journal-pg-{digest}"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        import fcntl

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running(self, utils: Any) -> tuple[int, Path] | None:
        try:
            info = utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):
            return None
        if info is None or not info.is_running() or info.port is None:
            return None
        if info.socket_dir is None:
            return None
        return int(info.port), Path(info.socket_dir)

    def is_running(self) -> bool:
        return self._running(_pgserver()[1]) is not None

    def start(self) -> None:
        commands, utils = _pgserver()
        user = self._system_user()
        with self._lock():
            if user is not None:
                self._prepare_system_user(commands, utils, user)
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(commands, utils, user)
            running = self._running(utils)
            if running is not None:
                self._port, self._socket_dir = running
                _log.info("reusing the embedded PostgreSQL on port %d", self._port)
            else:
                self._start(commands, utils, user)
            self._wait_connectable()
            # connection roles may reach their own database only (idempotent)
            with psycopg.connect(self.conninfo(), autocommit=True) as conn:
                for db in ("postgres", "template1"):
                    revoke = sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC")
                    conn.execute(revoke.format(sql.Identifier(db)))

    @staticmethod
    def _prepare_system_user(commands: Any, utils: Any, user: str) -> None:
        """pgserver's own preparation for running its binaries as another system user."""
        import pwd

        try:
            utils.ensure_user_exists(user)
        except (subprocess.CalledProcessError, OSError) as exc:
            try:  # another process may have created it at the same moment
                pwd.getpwnam(user)
            except KeyError:
                raise LocalServerError(f"cannot create the system user {user!r}") from exc
        utils.ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
        read = 0o044
        utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH, read | 0o011)
        utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", read)

    def _prepare_dir(self, path: Path, utils: Any, user: str | None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            utils.ensure_prefix_permissions(path)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)

    def _initdb(self, commands: Any, utils: Any, user: str | None) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise LocalServerError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster (no PG_VERSION)"
            )
        self._prepare_dir(self.data_dir, utils, user)
        _log.info("initializing an embedded PostgreSQL cluster in %s", self.data_dir)
        initdb = commands.initdb
        try:
            initdb(
                ["--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres"],
                pgdata=self.data_dir,
                user=user,
                cwd="/",
            )
        except (subprocess.CalledProcessError, OSError) as exc:
            shutil.rmtree(self.data_dir, ignore_errors=True)  # let the next start retry
            raise LocalServerError(f"initdb failed in {self.data_dir}: {exc}") from exc
        (self.data_dir / "pg_hba.conf").write_text(
            "# written by journal: trust on the Unix socket, passwords over TCP\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )

    def _remembered_port(self) -> int | None:
        try:
            port = json.loads(self.state_file.read_text())["port"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return port if isinstance(port, int) and 0 < port < 65536 else None

    def _start(self, commands: Any, utils: Any, user: str | None) -> None:
        port = self._remembered_port()
        for attempt in range(2):
            if port is None or not _port_is_free(port):
                if port is not None:
                    _log.warning("port %d is taken: the embedded PostgreSQL moves", port)
                port = int(utils.find_suitable_port("127.0.0.1"))
            try:
                self._pg_ctl_start(commands, utils, user, port)
                return
            except LocalServerError:
                if attempt or _port_is_free(port):  # retry only a port lost to a race
                    raise

    def _pg_ctl_start(self, commands: Any, utils: Any, user: str | None, port: int) -> None:
        self.state_file.write_text(json.dumps({"port": port}) + "\n")
        socket_dir = self._default_socket_dir()
        if socket_dir != self.data_dir:
            self._prepare_dir(socket_dir, utils, user)
        options = f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(socket_dir))}"
        _log.info("starting the embedded PostgreSQL on 127.0.0.1:%d", port)
        try:
            commands.pg_ctl(
                ["-w", "-t", "60", "-l", str(self.log_file), "-o", options, "start"],
                pgdata=self.data_dir,
                user=user,
                cwd="/",
                timeout=90,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            tail = ""
            with contextlib.suppress(OSError):
                tail = "\n".join(self.log_file.read_text().splitlines()[-5:])
            raise LocalServerError(
                f"the embedded PostgreSQL did not start (log: {self.log_file}):\n{tail}"
            ) from exc
        self._port, self._socket_dir = port, socket_dir

    def _wait_connectable(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"cannot connect to the embedded PostgreSQL in {self.data_dir}: {exc}"
                    ) from exc
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (fast shutdown); nothing happens if it is not running."""
        commands, utils = _pgserver()
        with self._lock():
            if self._running(utils) is None:
                return
            try:
                commands.pg_ctl(
                    ["-w", "-m", "fast", "stop"],
                    pgdata=self.data_dir,
                    user=self._system_user(),
                    cwd="/",
                    timeout=60,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise LocalServerError(f"could not stop the PostgreSQL in {self.data_dir}") from exc


# --- administration -------------------------------------------------------------------------


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


class PgAdmin:
    """The DDL behind the API, through a small pool of superuser connections."""

    def __init__(self, conninfo: str, *, pool_size: int = 4) -> None:
        self._conninfo = conninfo
        self.pool = ConnectionPool(conninfo, max_size=pool_size)

    def conninfo_for(self, dbname: str) -> str:
        return make_conninfo(self._conninfo, dbname=dbname)

    def public_endpoint(self) -> tuple[str, int]:
        """Host and port clients use over TCP (a socket directory becomes 127.0.0.1)."""
        params = conninfo_to_dict(self._conninfo)
        host = str(params.get("hostaddr") or params.get("host") or "127.0.0.1").split(",")[0]
        if not host or host.startswith("/") or host == "localhost":
            host = "127.0.0.1"
        port = str(params.get("port") or "5432").split(",")[0]
        return host, int(port)

    def check(self) -> None:
        """Fail early if the admin role cannot create databases and roles."""
        try:
            with self.pool.connection() as conn:
                row = conn.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error as exc:
            raise LocalServerError(f"cannot connect to PostgreSQL: {exc}") from exc
        if not row or not row[0]:
            raise LocalServerError("the local API needs a PostgreSQL superuser connection")

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` if missing; True when it was created now.

        Safe when several processes start at once on a fresh server: they queue on an
        advisory lock named after the database (``CREATE DATABASE`` cannot run in a
        transaction, so the lock is the session's, released at the end). A process that
        reaches the server another way (another admin database, so another lock space) and
        loses the race gets a unique violation on ``pg_database``, not "already exists":
        that too means the database is there."""
        key = f"journal-local-create-database:{name}"
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            try:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if found.fetchone():
                    return False
                try:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(_ident(name))
                    )
                except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    return False
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(_ident(name)))
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
        return True

    def create_database(self, name: str, owner: str) -> None:
        """A database owned by a NOLOGIN owner role; nobody else may connect."""
        with self.pool.connection() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(_ident(owner)))
            try:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                        _ident(name), _ident(owner)
                    )
                )
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(_ident(name)))
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(_ident(name)))
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(_ident(owner)))
                raise

    def drop_database(
        self, name: str, owner: str, logins: Sequence[str], *, direct: bool = False
    ) -> None:
        """Drop the database (ending its sessions), its login roles and its owner role.
        ``direct``: on a connection of its own, not the pool's (cleaning up after a failure
        that may have been the pool's being busy)."""
        session = (
            psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
            if direct
            else self.pool.connection()
        )
        with session as conn:
            _drop(conn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_ident(name)))
            for role in logins:
                self._drop_role(conn, role)
            self._drop_role(conn, owner)

    def create_login(self, role: str, password: str, database: str, owner: str) -> None:
        """A LOGIN role for ``database``: member of its owner, sessions start as the owner."""
        with self.pool.connection() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    _ident(role), sql.Literal(scram_verifier(conn, password)), _ident(owner)
                )
            )
            try:
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET role TO {}").format(
                        _ident(role), _ident(database), sql.Literal(owner)
                    )
                )
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    self._drop_role(conn, role)
                raise

    def set_password(self, role: str, password: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    _ident(role), sql.Literal(scram_verifier(conn, password))
                )
            )

    def drop_login(self, role: str, database: str, owner: str) -> None:
        """End the role's sessions and drop it; objects it owns go to the database's owner."""
        with self.pool.connection() as conn:
            try:
                self._drop_role(conn, role)
                return
            except psycopg.errors.DependentObjectsStillExist:
                pass
        with psycopg.connect(self.conninfo_for(database), autocommit=True) as conn:
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(_ident(role), _ident(owner)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(_ident(role)))
        with self.pool.connection() as conn:
            self._drop_role(conn, role)

    def drop_role(self, role: str) -> None:
        """End the role's sessions and drop it, if it exists."""
        with self.pool.connection() as conn:
            self._drop_role(conn, role)

    @staticmethod
    def _drop_role(conn: Conn, role: str) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        _drop(conn, sql.SQL("DROP ROLE IF EXISTS {}").format(_ident(role)))

    def list_owned(self, prefix: str) -> tuple[list[str], list[str]]:
        """The databases and roles that really exist with this prefix."""
        pattern = _owned_pattern(prefix)
        with self.pool.connection() as conn:
            dbs = conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ %s ORDER BY 1", (pattern,)
            ).fetchall()
            roles = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname ~ %s ORDER BY 1", (pattern,)
            ).fetchall()
        return [r[0] for r in dbs], [r[0] for r in roles]

    def purge(self, prefix: str) -> None:
        """Drop every database and role with this prefix."""
        dbs, roles = self.list_owned(prefix)
        with self.pool.connection() as conn:
            for db in dbs:
                _drop(conn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_ident(db)))
            # login roles first: they are members of the owner roles
            for role in sorted(roles, key=lambda r: r.startswith(f"{prefix}_o_")):
                self._drop_role(conn, role)

    def close(self) -> None:
        self.pool.close()


# --- metadata store --------------------------------------------------------------------------

_TABLES: dict[type[Any], str] = {
    Workspace: "workspaces",
    Project: "projects",
    Database: "databases",
    Connection: "connections",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_local_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces (
    id text COLLATE "C" PRIMARY KEY,
    key text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id),
    name text NOT NULL,
    region text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_workspace ON projects (workspace_id, id);
CREATE TABLE IF NOT EXISTS databases (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id),
    project_id text NOT NULL REFERENCES projects (id),
    name text NOT NULL,
    region text NOT NULL,
    is_default boolean NOT NULL,
    pg_name text NOT NULL UNIQUE,
    owner_role text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    ready_at timestamptz NOT NULL,
    default_connection_id text,
    state text NOT NULL
);
CREATE INDEX IF NOT EXISTS databases_workspace ON databases (workspace_id, id);
CREATE INDEX IF NOT EXISTS databases_project ON databases (project_id, id);
CREATE TABLE IF NOT EXISTS connections (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id),
    project_id text NOT NULL REFERENCES projects (id),
    database_id text NOT NULL REFERENCES databases (id),
    name text NOT NULL,
    role_name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS connections_workspace ON connections (workspace_id, id);
CREATE INDEX IF NOT EXISTS connections_database ON connections (database_id, id);
CREATE TABLE IF NOT EXISTS journal_local_work (
    object_id text COLLATE "C" PRIMARY KEY,
    kind text NOT NULL,
    instance text NOT NULL,
    started_at timestamptz NOT NULL
);
"""
#: advisory lock class of a running server's instance id (the second key is its hash)
_INSTANCE_LOCK = "journal-local-instance"
_SCHEMA_VERSION = 1
#: one row: this metadata database's identity (``instance_id``), made once, never changed
_INSTANCE = """
CREATE TABLE IF NOT EXISTS journal_local_instance (
    id text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


class PgStore(Store):
    """Records in the tables of the ``<prefix>_meta`` database (created by the caller)."""

    def __init__(self, conninfo: str, *, pool_size: int = 4) -> None:
        self.pool = ConnectionPool(conninfo, max_size=pool_size)
        #: this metadata database's identity (recorded with each object), read in _migrate
        self.instance_id = ""
        #: this server process's own id: the work it has in progress is marked with it
        self.instance = new_id("inst_")
        self._holder: Conn | None = None
        try:
            self._migrate()
            # held while this server runs: its work in progress is not anybody's to repair
            self._holder = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
            self._holder.execute(
                "SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))",
                (_INSTANCE_LOCK, self.instance),
            )
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('journal-local-meta'))")
            conn.execute(_SCHEMA)
            row = conn.execute("SELECT max(version) FROM journal_local_schema").fetchone()
            version = row[0] if row else None
            if version is None:
                conn.execute(
                    "INSERT INTO journal_local_schema (version) VALUES (%s)", (_SCHEMA_VERSION,)
                )
            elif version > _SCHEMA_VERSION:
                raise LocalServerError(
                    f"the local API metadata has schema version {version}, newer than this "
                    f"version of journal understands ({_SCHEMA_VERSION})"
                )
            # an older metadata database gets its identity on its first start with this code
            conn.execute(_INSTANCE)
            found = conn.execute("SELECT id FROM journal_local_instance").fetchone()
            if found is None:
                found = (secrets.token_hex(8),)
                conn.execute("INSERT INTO journal_local_instance (id) VALUES (%s)", found)
            self.instance_id = str(found[0])

    @staticmethod
    def _columns(kind: type[Any]) -> list[str]:
        return [f.name for f in fields(kind)]

    def workspace(self, key: str, name: str) -> Workspace:
        ws = Workspace(id=new_id("wksp_"), key=key, name=name, created_at=utcnow())
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO workspaces (id, key, name, created_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (ws.id, ws.key, ws.name, ws.created_at),
            )
            cur = conn.cursor(row_factory=class_row(Workspace))
            found = cur.execute(
                "SELECT id, key, name, created_at FROM workspaces WHERE key = %s", (key,)
            ).fetchone()
        assert found is not None
        return found

    def _select(
        self,
        kind: type[R],
        where: sql.Composable,
        params: Sequence[Any],
        limit: int | None = None,
    ) -> list[R]:
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id{}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in self._columns(kind)),
            sql.Identifier(_TABLES[kind]),
            where,
            sql.SQL("") if limit is None else sql.SQL(" LIMIT {}").format(sql.Literal(limit)),
        )
        with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(kind))
            return cur.execute(query, params).fetchall()

    def get(self, kind: type[R], object_id: str) -> R | None:
        rows = self._select(kind, sql.SQL("id = %s"), (object_id,))
        return rows[0] if rows else None

    def page(self, kind: type[R], *, after: str | None, limit: int | None, **where: str) -> list[R]:
        parts: list[sql.Composable] = [sql.SQL("TRUE")]
        params: list[Any] = []
        for column, value in where.items():
            parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
        if after is not None:
            parts.append(sql.SQL("id > %s"))
            params.append(after)
        return self._select(kind, sql.SQL(" AND ").join(parts), params, limit)

    def select(self, kind: type[R], column: str, values: Sequence[str]) -> list[R]:
        if not values:
            return []
        where = sql.SQL("{} = ANY(%s)").format(sql.Identifier(column))
        return self._select(kind, where, (list(values),))

    def insert(self, *records: Record) -> None:
        with self.pool.connection() as conn, conn.transaction():
            self._insert(conn, records)

    def _insert(self, conn: Conn, records: Sequence[Record]) -> None:
        for record in records:
            columns = self._columns(type(record))
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(_TABLES[type(record)]),
                    sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    sql.SQL(", ").join(sql.Placeholder() for _ in columns),
                ),
                [getattr(record, c) for c in columns],
            )

    def update(self, *records: Record) -> None:
        with self.pool.connection() as conn, conn.transaction():
            self._update(conn, records)

    def _update(self, conn: Conn, records: Sequence[Record]) -> None:
        for record in records:
            columns = [c for c in self._columns(type(record)) if c != "id"]
            conn.execute(
                sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                    sql.Identifier(_TABLES[type(record)]),
                    sql.SQL(", ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns
                    ),
                ),
                [*(getattr(record, c) for c in columns), record.id],
            )

    def delete(self, *records: Record) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for record in records:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = %s").format(
                        sql.Identifier(_TABLES[type(record)])
                    ),
                    (record.id,),
                )
            conn.execute(
                "DELETE FROM journal_local_work WHERE object_id = ANY(%s)",
                ([r.id for r in records],),
            )

    def begin_work(self, *records: Record) -> None:
        now = utcnow()
        with self.pool.connection() as conn, conn.transaction():
            self._insert(conn, records)
            for record in records:
                conn.execute(
                    "INSERT INTO journal_local_work (object_id, kind, instance, started_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (record.id, _TABLES[type(record)], self.instance, now),
                )

    def end_work(self, done: Sequence[Record], *changes: Record) -> None:
        with self.pool.connection() as conn, conn.transaction():
            self._update(conn, changes)
            conn.execute(
                "DELETE FROM journal_local_work WHERE object_id = ANY(%s)",
                ([r.id for r in done],),
            )

    def abandoned_work(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT instance, kind, object_id FROM journal_local_work ORDER BY object_id"
            ).fetchall()
            alive: dict[str, bool] = {self.instance: True}
            for instance, kind, object_id in rows:
                if instance not in alive:
                    # free (we get it) only if that server's session is gone
                    key = (_INSTANCE_LOCK, instance)
                    got = conn.execute(
                        "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", key
                    ).fetchone()
                    alive[instance] = not (got and got[0])
                    if not alive[instance]:
                        conn.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", key)
                if not alive[instance]:
                    out.append((kind, object_id))
            # left 'creating' by a version of the local API that did not mark its work
            legacy = conn.execute(
                "SELECT id FROM databases d WHERE state = 'creating' AND NOT EXISTS"
                " (SELECT 1 FROM journal_local_work w WHERE w.object_id = d.id) ORDER BY id"
            ).fetchall()
            out += [("databases", row[0]) for row in legacy]
        return out

    def close(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.close()
        self.pool.close()
