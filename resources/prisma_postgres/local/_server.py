"""The HTTP layer: a Prisma Management API v1 compatible server on loopback.

Requests and answers follow the OpenAPI document of the real API (paths under ``/v1``, bearer
tokens, ``{"data": ...}`` bodies, cursor pagination, ``{"error": {code, message, hint}}``).
Each token gets a workspace and sees only that workspace's objects. Access log lines carry the
method, path, status and duration only: never a body, a header, a token or a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import psycopg

from journal.provider import LocalServerError

from ._backend import (
    REGIONS,
    Backend,
    Connection,
    Database,
    Inventory,
    Issued,
    Json,
    MemoryStore,
    PoolBusy,
    Problem,
    Project,
    Store,
    Views,
    Workspace,
    boolean_field,
    checked_text,
    invalid,
    json_body,
    meta_database,
    paging,
    query_value,
    string_field,
    validate_prefix,
)
from ._faults import Fault, FaultInjector, Faults
from ._postgres import EmbeddedPostgres, PgAdmin, PgStore

__all__ = ["LocalPrismaApi", "serve_forever"]

_log = logging.getLogger(__name__.rsplit(".", 1)[0])

_MAX_BODY = 1 << 20
_DEFAULT_DATA_DIR = Path(".journal") / "postgres"


# --- request parsing ----------------------------------------------------------------------------


def _region(body: Json, *, allow_inherit: bool) -> str:
    value = body.get("region", "us-east-1")
    allowed = [*REGIONS, "inherit"] if allow_inherit else list(REGIONS)
    if value not in allowed:
        raise invalid(
            f"`region` must be one of: {', '.join(allowed)}.", hint="GET /v1/regions/postgres"
        )
    return str(value)


def _source(body: Json) -> None:
    if body.get("fromDatabase") is not None:
        raise invalid("`fromDatabase` is not supported by the local API.")
    source = body.get("source")
    if source is None:
        return
    if not isinstance(source, dict) or source.get("type") not in ("empty", "backup", "database"):
        raise invalid("`source.type` must be one of: empty, backup, database.")
    if source["type"] != "empty":
        raise invalid(
            "Only `source.type` `empty` is supported by the local API.",
            hint="Create an empty database and load the data yourself.",
        )


@dataclass(frozen=True)
class _Request:
    ws: Workspace
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes


Answer = tuple[int, Json | None]


# --- endpoints ----------------------------------------------------------------------------------


class _Endpoints:
    """One method per operation of the OpenAPI document that the local API implements."""

    def __init__(self, backend: Backend, views: Views) -> None:
        self.b = backend
        self.v = views
        self.routes: list[tuple[str, re.Pattern[str], Callable[[_Request], Answer]]] = []
        for method, template, handler in (
            ("GET", "/v1/workspaces", self.list_workspaces),
            ("GET", "/v1/workspaces/{id}", self.get_workspace),
            ("GET", "/v1/projects", self.list_projects),
            ("POST", "/v1/projects", self.create_project),
            ("GET", "/v1/projects/{id}", self.get_project),
            ("PATCH", "/v1/projects/{id}", self.patch_project),
            ("DELETE", "/v1/projects/{id}", self.delete_project),
            ("GET", "/v1/projects/{projectId}/databases", self.list_project_databases),
            ("POST", "/v1/projects/{projectId}/databases", self.create_project_database),
            ("GET", "/v1/databases", self.list_databases),
            ("POST", "/v1/databases", self.create_database),
            ("GET", "/v1/databases/{databaseId}", self.get_database),
            ("PATCH", "/v1/databases/{databaseId}", self.patch_database),
            ("DELETE", "/v1/databases/{databaseId}", self.delete_database),
            ("GET", "/v1/databases/{databaseId}/connections", self.list_database_connections),
            ("POST", "/v1/databases/{databaseId}/connections", self.create_database_connection),
            ("GET", "/v1/connections", self.list_connections),
            ("POST", "/v1/connections", self.create_connection),
            ("GET", "/v1/connections/{id}", self.get_connection),
            ("DELETE", "/v1/connections/{id}", self.delete_connection),
            ("POST", "/v1/connections/{id}/rotate", self.rotate_connection),
            ("GET", "/v1/regions", self.list_regions),
            ("GET", "/v1/regions/postgres", self.list_postgres_regions),
        ):
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
            self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def allowed(self, path: str) -> list[str]:
        return [m for m, pattern, _ in self.routes if pattern.match(path)]

    def match(self, method: str, path: str) -> tuple[Callable[[_Request], Answer], dict[str, str]]:
        for route_method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found is not None and route_method == method:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                for key, value in params.items():
                    checked_text(value, f"`{key}`")
                return handler, params
        if self.allowed(path):
            raise Problem(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}.")
        raise Problem(404, "NOT_FOUND", f"No route for {method} {path}.")

    # -- helpers

    @staticmethod
    def _listing(items: list[Json], next_cursor: str | None) -> Json:
        pagination = {"nextCursor": next_cursor, "hasMore": next_cursor is not None}
        return {"data": items, "pagination": pagination}

    def _databases_json(self, dbs: list[Database]) -> list[Json]:
        projects = self.b.projects_by_id([d.project_id for d in dbs])
        cons = self.b.connections_by_database([d.id for d in dbs])
        return [self.v.database(d, projects[d.project_id], cons[d.id]) for d in dbs]

    def _created_database(self, ws: Workspace, project_id: str, body: Json) -> Json:
        name = string_field(body, "name", min_len=1)
        region = _region(body, allow_inherit=True)
        is_default = boolean_field(body, "isDefault", False)
        _source(body)
        created = self.b.create_database(
            ws, project_id, name=name, region=region, is_default=is_default
        )
        project = self.b.owned(Project, created.database.project_id, ws)
        db = created.database
        cons = self.b.connections_by_database([db.id])[db.id]
        return self.v.database(db, project, cons, created.default)

    def _issued(self, issued: Issued, ws: Workspace) -> Json:
        db = self.b.owned(Database, issued.connection.database_id, ws)
        return self.v.connection(issued.connection, db, issued)

    # -- workspaces

    def list_workspaces(self, r: _Request) -> Answer:
        after, _limit = paging(r.query)
        items = [] if after is not None and after >= r.ws.id else [self.v.workspace(r.ws)]
        return 200, self._listing(items, None)

    def get_workspace(self, r: _Request) -> Answer:
        return 200, {"data": self.v.workspace(self.b.owned(Workspace, r.params["id"], r.ws))}

    # -- projects

    def list_projects(self, r: _Request) -> Answer:
        after, limit = paging(r.query)
        page = self.b.page(Project, after=after, limit=limit, workspace_id=r.ws.id)
        return 200, self._listing([self.v.project(p, r.ws) for p in page.items], page.next_cursor)

    def create_project(self, r: _Request) -> Answer:
        body = json_body(r.body)
        name = string_field(body, "name", min_len=1) or "Untitled project"
        region = _region(body, allow_inherit=False)
        create_database = boolean_field(body, "createDatabase", True)
        project, created = self.b.create_project(
            r.ws, name=name, region=region, create_database=create_database
        )
        data = self.v.project(project, r.ws)
        data["database"] = None
        if created is not None:
            db = created.database
            cons = self.b.connections_by_database([db.id])[db.id]
            data["database"] = self.v.database(db, project, cons, created.default)
        return 201, {"data": data}

    def get_project(self, r: _Request) -> Answer:
        return 200, {"data": self.v.project(self.b.owned(Project, r.params["id"], r.ws), r.ws)}

    def patch_project(self, r: _Request) -> Answer:
        body = json_body(r.body, status=422)
        name = string_field(body, "name", min_len=1, max_len=256, status=422)
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            raise invalid("`settings` must be an object.", 422)
        project = self.b.rename_project(r.ws, r.params["id"], name)
        return 200, {"data": self.v.project(project, r.ws)}

    def delete_project(self, r: _Request) -> Answer:
        self.b.delete_project(r.ws, r.params["id"])
        return 204, None

    # -- databases

    def list_project_databases(self, r: _Request) -> Answer:
        after, limit = paging(r.query)
        project = self.b.owned(Project, r.params["projectId"], r.ws)
        page = self.b.page(Database, after=after, limit=limit, project_id=project.id)
        return 200, self._listing(self._databases_json(page.items), page.next_cursor)

    def create_project_database(self, r: _Request) -> Answer:
        data = self._created_database(r.ws, r.params["projectId"], json_body(r.body))
        return 201, {"data": data}

    def list_databases(self, r: _Request) -> Answer:
        after, limit = paging(r.query)
        where = {"workspace_id": r.ws.id}
        project_id = query_value(r.query, "projectId")
        if project_id:
            try:
                where["project_id"] = self.b.owned(Project, project_id, r.ws, foreign=403).id
            except Problem as problem:
                if problem.status != 404:
                    raise
                return 200, self._listing([], None)  # a filter that matches nothing
        page = self.b.page(Database, after=after, limit=limit, **where)
        return 200, self._listing(self._databases_json(page.items), page.next_cursor)

    def create_database(self, r: _Request) -> Answer:
        body = json_body(r.body)
        project_id = string_field(body, "projectId", required=True, min_len=1)
        assert project_id is not None
        return 201, {"data": self._created_database(r.ws, project_id, body)}

    def get_database(self, r: _Request) -> Answer:
        db = self.b.owned(Database, r.params["databaseId"], r.ws, foreign=403)
        return 200, {"data": self._databases_json([db])[0]}

    def patch_database(self, r: _Request) -> Answer:
        name = string_field(json_body(r.body), "name", min_len=1)
        db = self.b.rename_database(r.ws, r.params["databaseId"], name)
        return 200, {"data": self._databases_json([db])[0]}

    def delete_database(self, r: _Request) -> Answer:
        self.b.delete_database(r.ws, r.params["databaseId"])
        return 204, None

    # -- connections

    def _connections_page(self, r: _Request, **where: str) -> Answer:
        after, limit = paging(r.query)
        page = self.b.page(Connection, after=after, limit=limit, **where)
        db_ids = sorted({c.database_id for c in page.items})
        dbs = {d.id: d for d in self.b.store.select(Database, "id", db_ids)}
        items = [self.v.connection(c, dbs[c.database_id]) for c in page.items]
        return 200, self._listing(items, page.next_cursor)

    def list_database_connections(self, r: _Request) -> Answer:
        db = self.b.owned(Database, r.params["databaseId"], r.ws)
        return self._connections_page(r, database_id=db.id)

    def create_database_connection(self, r: _Request) -> Answer:
        name = string_field(json_body(r.body), "name", required=True)
        assert name is not None
        issued = self.b.create_connection(r.ws, r.params["databaseId"], name)
        return 200, {"data": self._issued(issued, r.ws)}

    def list_connections(self, r: _Request) -> Answer:
        where = {"workspace_id": r.ws.id}
        database_id = query_value(r.query, "databaseId")
        if database_id:
            if not database_id.startswith("db_"):
                database_id = f"db_{database_id}"
            where["database_id"] = database_id
        return self._connections_page(r, **where)

    def create_connection(self, r: _Request) -> Answer:
        body = json_body(r.body)
        database_id = string_field(body, "databaseId", required=True, min_len=1)
        name = string_field(body, "name", required=True, min_len=1)
        assert database_id is not None and name is not None
        issued = self.b.create_connection(r.ws, database_id, name)
        return 201, {"data": self._issued(issued, r.ws)}

    def get_connection(self, r: _Request) -> Answer:
        con = self.b.owned(Connection, r.params["id"], r.ws)
        return 200, {"data": self.v.connection(con, self.b.owned(Database, con.database_id, r.ws))}

    def delete_connection(self, r: _Request) -> Answer:
        self.b.delete_connection(r.ws, r.params["id"])
        return 204, None

    def rotate_connection(self, r: _Request) -> Answer:
        return 200, {"data": self._issued(self.b.rotate_connection(r.ws, r.params["id"]), r.ws)}

    # -- regions

    def list_regions(self, r: _Request) -> Answer:
        product = query_value(r.query, "product")
        if product not in (None, "postgres", "accelerate"):
            raise invalid("`product` must be one of: postgres, accelerate.")
        if product == "accelerate":  # nothing local serves Accelerate
            return 200, {"data": []}
        data = [
            {"id": k, "type": "region", "name": v, "product": "postgres", "status": "available"}
            for k, v in REGIONS.items()
        ]
        return 200, {"data": data}

    def list_postgres_regions(self, r: _Request) -> Answer:
        data = [
            {"id": k, "type": "region", "name": v, "status": "available"}
            for k, v in REGIONS.items()
        ]
        return 200, {"data": data}


# --- the wire -----------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: LocalPrismaApi) -> None:
        self.api = api
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection error from %s", client_address[0], exc_info=True)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "journal-local-prisma-api/1"
    timeout = 120  # seconds an idle keep-alive connection stays open
    disable_nagle_algorithm = True  # headers and body go out at once on keep-alive sockets
    server: _HttpServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the access log is written by _handle

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise Problem(411, "LENGTH_REQUIRED", "Send the body with a Content-Length.")
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            raise Problem(413, "PAYLOAD_TOO_LARGE", "The request body is too large.")
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        api = self.server.api
        started = time.monotonic()
        path = self.path.split("?", 1)[0]
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path else {}
        if len(path) > 1:
            path = path.rstrip("/")
        status: int | str = "-"
        api._enter()
        try:
            try:
                body = self._read_body()
            except (Problem, ValueError) as exc:
                self.close_connection = True
                problem = exc if isinstance(exc, Problem) else invalid("Malformed request body.")
                status = self._send_problem(problem)
                return
            fault = Fault.NONE
            if path == "/v1" or path.startswith("/v1/"):
                faults, fault, five = api._injector.roll()
                if faults.latency_s:
                    time.sleep(faults.latency_s)
                if fault is Fault.RATE_LIMITED:
                    problem = Problem(429, "RATE_LIMITED", "Too many requests (injected fault).")
                    status = self._send_problem(
                        problem, [("Retry-After", faults.retry_after_header())]
                    )
                    return
                if fault is Fault.SERVER_ERROR:
                    codes = {
                        500: "INTERNAL_SERVER_ERROR",
                        502: "BAD_GATEWAY",
                        503: "SERVICE_UNAVAILABLE",
                    }
                    status = self._send_problem(Problem(five, codes[five], "Injected fault."))
                    return
                if fault is Fault.TIMEOUT:
                    time.sleep(faults.timeout_s)
            code, payload, headers = api._dispatch(method, path, query, body, self.headers)
            if fault is Fault.LOST:
                self.close_connection = True  # performed, then hang up without an answer
                status = "lost"
                return
            status = self._send(code, payload, headers)
        except Exception:
            if api.running:
                _log.exception("unexpected error in %s %s", method, path)
            else:  # stopping: work cut short is repaired by the next start
                _log.debug("%s %s cut short by the server stopping", method, path, exc_info=True)
            status = self._send_problem(
                Problem(500, "INTERNAL_SERVER_ERROR", "Unexpected server error.")
            )
        finally:
            api._leave()
            _log.info("%s %s %s %.1fms", method, path, status, (time.monotonic() - started) * 1000)

    def _send_problem(self, problem: Problem, headers: list[tuple[str, str]] | None = None) -> int:
        return self._send(problem.status, _problem_json(problem), headers or [])

    def _send(self, status: int, payload: Json | None, headers: list[tuple[str, str]]) -> int:
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            if status != 204:
                self.send_header("Content-Length", str(len(data)))
            for key, value in headers:
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client went away (e.g. it timed out first)
            self.close_connection = True
        return status


def _problem_json(problem: Problem) -> Json:
    error: Json = {"code": problem.code, "message": problem.message}
    if problem.hint:
        error["hint"] = problem.hint
    return {"error": error}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- the public object --------------------------------------------------------------------------


class LocalPrismaApi:
    """A Prisma Management API v1 compatible server on ``host:port``, backed by real PostgreSQL.

    PostgreSQL is, in this order: the server at ``postgres_url`` (a superuser connection), or an
    embedded server in ``data_dir`` (default ``.journal/postgres``; see
    :class:`~._postgres.EmbeddedPostgres`), unless ``metadata_only``.

    ``metadata_only=True`` is for engine BENCHMARKS only: objects live in memory, nothing is
    created in PostgreSQL, and the connection strings returned point at databases that do not
    exist (``127.0.0.1:5432``, never created).

    Every database, role and the metadata database ``<prefix>_meta`` are named with ``prefix``
    (1-20 lowercase letters/digits), so instances with different prefixes never collide;
    ``purge()`` drops everything with the prefix.

    ``tokens`` maps service tokens to workspace names (tokens naming the same workspace share
    it); with ``accept_any_token`` any other bearer token gets a workspace of its own.
    ``provisioning_delay_s`` keeps new databases in ``provisioning`` that long.
    """

    def __init__(
        self,
        *,
        postgres_url: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        metadata_only: bool = False,
        prefix: str = "pp",
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Mapping[str, str] | None = None,
        accept_any_token: bool = True,
        faults: Faults | None = None,
        provisioning_delay_s: float = 0.0,
        pool_size: int = 4,
    ) -> None:
        self.prefix = validate_prefix(prefix)
        self.postgres_url = postgres_url
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.metadata_only = metadata_only
        self.host = host
        self._requested_port = port
        self._tokens = {_token_hash(t): name for t, name in (tokens or {}).items()}
        self.accept_any_token = accept_any_token
        self.provisioning_delay_s = provisioning_delay_s
        self.pool_size = pool_size
        self._injector = FaultInjector(faults)
        self.postgres: EmbeddedPostgres | None = None
        self._admin: PgAdmin | None = None
        self._store: Store | None = None
        self._backend: Backend | None = None
        self._endpoints: _Endpoints | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._workspaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)

    # -- lifecycle

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise LocalServerError("the local API is not started")
        return int(self._httpd.server_address[1])

    @property
    def instance_id(self) -> str:
        """This API's identity: made once in its metadata database (servers sharing it are one
        API), answered by ``GET /health``. Clients record it instead of the changing port."""
        if self._store is None:
            raise LocalServerError("the local API is not started")
        return self._store.instance_id

    @property
    def url(self) -> str:
        """The origin (``http://127.0.0.1:PORT``); clients append ``/v1/...``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def _admin_conninfo(self) -> str:
        if self.postgres_url is not None:
            return self.postgres_url
        if self.postgres is None:
            self.postgres = EmbeddedPostgres(self.data_dir or _DEFAULT_DATA_DIR)
        self.postgres.start()
        return self.postgres.conninfo()

    def start(self) -> LocalPrismaApi:
        """Connect to (or start) PostgreSQL, create the metadata database, start serving."""
        if self._httpd is not None:
            return self
        try:
            if self.metadata_only:
                self._store = MemoryStore()
                pg_host, pg_port = "127.0.0.1", 5432
            else:
                self._admin = PgAdmin(self._admin_conninfo(), pool_size=self.pool_size)
                self._admin.check()
                meta = meta_database(self.prefix)
                self._admin.ensure_database(meta)
                self._store = PgStore(self._admin.conninfo_for(meta), pool_size=self.pool_size)
                pg_host, pg_port = self._admin.public_endpoint()
                if self.postgres is not None:
                    pg_host, pg_port = self.postgres.host, self.postgres.port
            self._backend = Backend(
                self._store,
                self._admin,
                prefix=self.prefix,
                provisioning_delay_s=self.provisioning_delay_s,
            )
            # what a server that is gone left half made never stays in a transitional state
            self._backend.repair()
            self._httpd = _HttpServer((self.host, self._requested_port), self)
        except (psycopg.Error, OSError) as exc:
            self._close_backends()
            raise LocalServerError(f"the local API could not start: {exc}") from exc
        except BaseException:
            self._close_backends()
            raise
        self._endpoints = _Endpoints(self._backend, Views(self.url, pg_host, pg_port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"local-prisma-api-{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("local Prisma Management API listening on %s", self.url)
        return self

    def stop(self, *, stop_postgres: bool = False, drain_s: float = 2.0) -> None:
        """Stop serving (in-flight requests get ``drain_s`` to finish). The embedded PostgreSQL
        keeps running for the next start unless ``stop_postgres``."""
        httpd, self._httpd = self._httpd, None
        if self._backend is not None:
            self._backend.stopping = True
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            with self._idle:
                self._idle.wait_for(lambda: self._inflight == 0, timeout=drain_s)
            httpd.close_open_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._close_backends()
        if stop_postgres and self.postgres is not None:
            self.postgres.stop()

    def _close_backends(self) -> None:
        for closeable in (self._store, self._admin):
            if closeable is not None:
                closeable.close()
        self._store = self._admin = self._backend = None
        self._endpoints = None
        self._workspaces.clear()

    def __enter__(self) -> LocalPrismaApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults at runtime (applies to the next request)."""
        self._injector.set(faults)

    # -- inspection and cleanup

    def inventory(self) -> Inventory:
        """What is really there: the metadata records and the prefixed PostgreSQL objects."""
        if self._backend is None:
            raise LocalServerError("the local API is not started")
        return self._backend.inventory()

    def purge(self) -> None:
        """Stop, then drop every database and role with this prefix (metadata included)."""
        self.stop()
        if self.metadata_only:
            return
        admin = PgAdmin(self._admin_conninfo(), pool_size=1)
        try:
            admin.purge(self.prefix)
        finally:
            admin.close()

    # -- request plumbing (used by the handler)

    def _enter(self) -> None:
        with self._lock:
            self._inflight += 1

    def _leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def _workspace_for(self, token: str) -> Workspace | None:
        digest = _token_hash(token)
        with self._lock:
            cached = self._workspaces.get(digest)
        if cached is not None:
            return cached
        name = self._tokens.get(digest)
        if name is not None:
            key = f"name:{name}"
        elif self.accept_any_token:
            key, name = f"token:{digest}", f"Local workspace {digest[:8]}"
        else:
            return None
        backend = self._backend
        if backend is None:
            raise Problem(503, "SERVICE_UNAVAILABLE", "The local API is stopping.")
        ws = backend.store.workspace(key, name)
        with self._lock:
            self._workspaces[digest] = ws
        return ws

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, headers: Any
    ) -> tuple[int, Json | None, list[tuple[str, str]]]:
        try:
            endpoints = self._endpoints
            if endpoints is None:
                raise Problem(503, "SERVICE_UNAVAILABLE", "The local API is stopping.")
            if method == "GET" and path == "/health":
                store = self._store
                instance = store.instance_id if store is not None else None
                return 200, {"status": "ok", "instance": instance}, []
            auth = str(headers.get("Authorization") or "")
            scheme, _, token = auth.partition(" ")
            ws = None
            if scheme.lower() == "bearer" and token.strip():
                ws = self._workspace_for(token.strip())
            if ws is None:
                raise Problem(
                    401,
                    "UNAUTHORIZED",
                    "Missing or invalid authorization token.",
                    hint="Send `Authorization: Bearer <service token>`.",
                )
            handler, params = endpoints.match(method, path)
            try:
                status, payload = handler(_Request(ws, params, query, body))
            except PoolBusy as exc:
                _log.warning("%s %s: %s", method, path, exc)
                if method == "POST":
                    # a create may have done part of its work before the pool ran dry: only
                    # the backend can say "nothing was made" (it answers 503 itself then)
                    raise Problem(
                        500, "INTERNAL_SERVER_ERROR", "The local API is busy; it may have acted."
                    ) from exc
                # reads, renames and deletes may simply be sent again
                raise Problem(
                    503, "SERVICE_UNAVAILABLE", "The local API is busy; retry shortly."
                ) from exc
            except (psycopg.errors.DataError, UnicodeError) as exc:
                # input validation should have refused it; the request, not the server, is
                # at fault: a 400 with a body, never a 500
                _log.warning("%s %s: a value PostgreSQL cannot take: %s", method, path, exc)
                raise invalid("The request holds a value the local API cannot store.") from exc
            return status, payload, []
        except Problem as problem:
            extra: list[tuple[str, str]] = []
            if problem.status == 405 and self._endpoints is not None:
                extra.append(("Allow", ", ".join(self._endpoints.allowed(path))))
            if problem.status == 503:
                extra.append(("Retry-After", "1"))
            return problem.status, _problem_json(problem), extra


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    postgres_url: str | None = None,
    faults: Faults | None = None,
    prefix: str = "pp",
    tokens: Mapping[str, str] | None = None,
    accept_any_token: bool = True,
    provisioning_delay_s: float = 0.0,
    metadata_only: bool = False,
    stop_postgres: bool = False,
    on_ready: Callable[[LocalPrismaApi], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Run the local API in the foreground until Ctrl-C, SIGTERM or ``stop_event`` is set.

    ``on_ready(api)`` is called once it listens (``api.url`` has the origin). The embedded
    PostgreSQL keeps running afterwards unless ``stop_postgres``.
    """
    stop = stop_event or threading.Event()
    api = LocalPrismaApi(
        postgres_url=postgres_url,
        data_dir=data_dir,
        metadata_only=metadata_only,
        prefix=prefix,
        host=host,
        port=port,
        tokens=tokens,
        accept_any_token=accept_any_token,
        faults=faults,
        provisioning_delay_s=provisioning_delay_s,
    )
    previous: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        api.start()
        if on_ready is not None:
            on_ready(api)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        api.stop(stop_postgres=stop_postgres)
        if in_main:
            signal.signal(signal.SIGTERM, previous)
