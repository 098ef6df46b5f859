"""A synchronous client for the Prisma Management API v1 (``https://api.prisma.io/v1``).

``PrismaClient`` wraps an injected ``httpx.Client`` (or one it creates and owns) and turns the
API's JSON into frozen dataclasses. It is the only place where this provider speaks HTTP:

- **Credentials.** The service token comes from ``token=`` or ``PRISMA_SERVICE_TOKEN`` and is
  sent as ``Authorization: Bearer <token>``. A missing token is reported at the first request,
  not at construction, so a client can be built before the environment is complete. The token
  never appears in an error message, a log line or a ``repr``.
- **Errors and retries** follow the shared HTTP layer (exported by ``journal.provider``): 401/403
  ``AuthenticationError``, 404 ``NotFoundError``, 429 ``RateLimitedError``, 5xx
  ``ServerError``, other 4xx ``RequestError``, every httpx failure ``TransportError``; each
  message names the method and the path (never the query string) and carries the API's
  ``error.code`` and ``error.hint`` (read here, ``{"error": {...}}``), and a 401 or 403 says what
  to check. Retries use backoff with jitter or the server's ``Retry-After``, at most
  ``max_retries`` of them.

  * GET, DELETE and PATCH are idempotent here (the PATCHes only rename): they are retried on
    429, on 5xx and on every transport failure except our own protocol errors.
  * POST creates (projects, databases, connections) or rotates credentials, and the client
    cannot know whether a 5xx, a timeout or a dropped connection happened before or after the
    server acted. A POST is therefore retried only when the server certainly did nothing: on
    429 and 503 and on failures before the request was sent. Rotating credentials is the
    exception: doing it twice is harmless, so it is retried like a read. Any other POST
    failure is raised at once; the engine recovers by reading the object by name
    (``find_*_by_name``), which is its job, not the client's.
- **Deletes** that answer 404 return ``False`` from ``delete_*`` ("not there"), or raise
  ``NotFoundError`` with ``missing_ok=False``: the provider does, so that the engine decides
  whether a 404 means "already gone" (only for the credentials and API that created it).
- **Lists** follow ``pagination.nextCursor`` / ``hasMore`` with the ``cursor`` and ``limit``
  query parameters. ``list_*`` methods return complete ``list`` objects (every page read);
  ``find_*_by_name`` read page by page through all pages.
- **Response shapes**: the current one and the deprecated one are both accepted, the current
  preferred (a connection's ``endpoints.direct`` over ``host``/``user``/``pass``/
  ``connectionString``/``directConnection``; a database's ``connections`` over ``apiKeys`` and
  its top-level ``connectionString``/``directConnection``).

Only create and rotate answers carry credentials; a connection read with GET normally has
its ``user``/``password``/``connection_string`` set to ``None``. Timestamps are kept as the
API's ISO 8601 strings. The client holds no mutable state
and may be shared between threads (as ``httpx.Client`` may).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeVar

import httpx

from journal.provider import (
    ApiClient,
    ApiError,
    HttpClient,
    MissingCredentialsError,
    NotFoundError,
    ProviderError,
    Secret,
    default_http_client,
    json_error_detail,
    paginate_cursor,
    segment,
)

from ._models import (
    Connection,
    Database,
    MalformedError,
    Project,
    Region,
    Workspace,
    parse_connection,
    parse_database,
    parse_instance,
    parse_project,
    parse_region,
    parse_workspace,
)
from ._service import API_URL_ENV, DEFAULT_API_URL, TOKEN_ENV

__all__ = [
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "MISSING_TOKEN_MESSAGE",
    "PAGE_SIZE",
    "TOKEN_ENV",
    "Connection",
    "Database",
    "PrismaClient",
    "Project",
    "Region",
    "Workspace",
]

log = logging.getLogger(__name__)

#: ``limit`` sent with every list request (the API's default and documented page size)
PAGE_SIZE: Final = 100
MISSING_TOKEN_MESSAGE: Final = (
    "no Prisma service token: set PRISMA_SERVICE_TOKEN (or pass service_token= to the "
    "resource, or run `journal configure`); to work without one, run against the local API: "
    "`journal deploy --local` or `journal dev`"
)
_AUTH_TROUBLESHOOTING: Final = (
    "confirm PRISMA_SERVICE_TOKEN is set for the process running journal (or service_token= "
    "on the resource), and that the token belongs to the right workspace: service tokens are "
    "workspace-scoped"
)
_WORKSPACE_NOTE: Final = (
    "service tokens are workspace-scoped: if the object belongs to another workspace, pass "
    "that workspace's token with service_token="
)

# the PATCHes only rename: sending one twice is harmless
_IDEMPOTENT: Final = frozenset({"GET", "DELETE", "PATCH"})

_T = TypeVar("_T")


_segment = segment


# --- the client ----------------------------------------------------------------------------


class PrismaClient(ApiClient):
    """Synchronous Prisma Management API v1 client; see the module docstring for the rules.

    ``http``: an ``httpx.Client`` to send requests with (its own timeouts apply). Without one,
    the client creates one with ``timeout_s`` and connection pooling, and closes it in
    ``close()`` / on leaving a ``with`` block. ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        token: str | Secret | None = None,
        base_url: str | None = None,
        http: httpx.Client | None = None,
        max_retries: int = 8,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if token is None:
            token = os.environ.get(TOKEN_ENV)
        plain = token.unencrypted if isinstance(token, Secret) else token
        self._token: Secret | None = Secret(plain.strip()) if plain and plain.strip() else None
        url = (base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).strip().rstrip("/")
        self._base_url = url.removesuffix("/v1")  # tolerate an origin given with /v1
        self._sleep = sleep
        self._clock = clock
        self._http = http if http is not None else self._default_http(timeout_s)
        self._api = HttpClient(
            self._base_url,
            http=self._http,
            owns_http=http is None,
            secrets=() if self._token is None else (self._token,),
            describe_error=json_error_detail,
            status_notes={401: _AUTH_TROUBLESHOOTING, 403: _WORKSPACE_NOTE},
            idempotent_methods=_IDEMPOTENT,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            sleep=sleep,
            label="prisma",
            logger=log,
        )

    @staticmethod
    def _default_http(timeout_s: float) -> httpx.Client:
        return default_http_client(timeout_s)

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        token = "set" if self._token is not None else "missing"
        return f"PrismaClient(base_url={self._base_url!r}, token={token})"

    # --- identity ------------------------------------------------------------------------

    def local_instance(self) -> str | None:
        """The identity a journal local API answers on ``GET /health`` (its port changes
        between runs, this does not); None for an API that gives none. Unauthenticated."""
        response = self._api.request("local_instance", "GET", "/health", retries=2, check=False)
        return parse_instance(response.content) if response.is_success else None

    # --- workspaces and regions ----------------------------------------------------------

    def list_workspaces(self) -> list[Workspace]:
        return list(self._paginate("list_workspaces", "/workspaces", {}, parse_workspace))

    def get_workspace(self, workspace_id: str) -> Workspace:
        path = f"/workspaces/{_segment(workspace_id)}"
        return self._one("get_workspace", "GET", path, parse_workspace)

    def resolve_workspace(self, name_or_id: str) -> Workspace:
        """The workspace whose id, else whose name, is ``name_or_id`` (all pages searched).

        Raises ``NotFoundError`` (status 404, listing the workspaces the token can see) when
        none matches, and ``ProviderError`` when several share that name."""
        workspaces = self.list_workspaces()
        for workspace in workspaces:
            if workspace.id == name_or_id:
                return workspace
        named = [w for w in workspaces if w.name == name_or_id]
        if named:
            return self._only("resolve_workspace", "workspace", name_or_id, named)
        seen = ", ".join(f"{w.name!r} ({w.id})" for w in workspaces) or "none"
        raise NotFoundError(
            f"no workspace has the id or name {name_or_id!r}; workspaces this token can see: "
            f"{seen}",
            status=404,
            method="GET",
            path="/v1/workspaces",
            code="workspace_not_found",
            hint=_WORKSPACE_NOTE,
            operation="resolve_workspace",
        )

    def list_postgres_regions(self) -> list[Region]:
        return list(self._paginate("list_postgres_regions", "/regions/postgres", {}, parse_region))

    # --- projects ------------------------------------------------------------------------

    def list_projects(self) -> list[Project]:
        return list(self._paginate("list_projects", "/projects", {}, parse_project))

    def get_project(self, project_id: str) -> Project:
        path = f"/projects/{_segment(project_id)}"
        return self._one("get_project", "GET", path, parse_project)

    def find_project_by_name(self, name: str) -> Project | None:
        matches = [
            p
            for p in self._paginate("find_project_by_name", "/projects", {}, parse_project)
            if p.name == name
        ]
        return self._only("find_project_by_name", "project", name, matches) if matches else None

    def create_project(
        self, *, name: str, region: str | None = None, create_database: bool = False
    ) -> Project:
        body: dict[str, object] = {"name": name, "createDatabase": create_database}
        if region is not None:
            body["region"] = region
        return self._one("create_project", "POST", "/projects", parse_project, body=body)

    def update_project(self, project_id: str, *, name: str) -> Project:
        path = f"/projects/{_segment(project_id)}"
        return self._one("update_project", "PATCH", path, parse_project, body={"name": name})

    def delete_project(self, project_id: str, *, missing_ok: bool = True) -> bool:
        """True if deleted now, False if the API answered 404 (``NotFoundError`` instead
        when not ``missing_ok``)."""
        return self._delete("delete_project", f"/projects/{_segment(project_id)}", missing_ok)

    # --- databases -----------------------------------------------------------------------

    def list_databases(self, *, project_id: str | None = None) -> list[Database]:
        params = {} if project_id is None else {"projectId": project_id}
        return list(self._paginate("list_databases", "/databases", params, parse_database))

    def get_database(self, database_id: str) -> Database:
        path = f"/databases/{_segment(database_id)}"
        return self._one("get_database", "GET", path, parse_database)

    def find_database_by_name(self, project_id: str, name: str) -> Database | None:
        pages = self._paginate(
            "find_database_by_name", "/databases", {"projectId": project_id}, parse_database
        )
        matches = [d for d in pages if d.name == name]
        return self._only("find_database_by_name", "database", name, matches) if matches else None

    def create_database(
        self, *, project_id: str, name: str, region: str, is_default: bool = False
    ) -> Database:
        body = {"projectId": project_id, "name": name, "region": region, "isDefault": is_default}
        return self._one("create_database", "POST", "/databases", parse_database, body=body)

    def update_database(self, database_id: str, *, name: str) -> Database:
        path = f"/databases/{_segment(database_id)}"
        return self._one("update_database", "PATCH", path, parse_database, body={"name": name})

    def delete_database(self, database_id: str, *, missing_ok: bool = True) -> bool:
        """True if deleted now, False if the API answered 404 (``NotFoundError`` instead
        when not ``missing_ok``)."""
        return self._delete("delete_database", f"/databases/{_segment(database_id)}", missing_ok)

    def wait_database_ready(
        self, database_id: str, *, timeout_s: float = 300.0, poll_s: float = 0.5
    ) -> Database:
        """Poll GET until the status is "ready"; ``ProviderError`` on "failure" or timeout."""
        deadline = self._clock() + timeout_s
        while True:
            database = self.get_database(database_id)
            if database.status == "ready":
                return database
            if database.status == "failure":
                raise ProviderError(
                    f"database {database_id} failed to provision (status 'failure')",
                    operation="wait_database_ready",
                )
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ProviderError(
                    f"database {database_id} is not ready after {timeout_s:g}s "
                    f"(status {database.status!r})",
                    operation="wait_database_ready",
                )
            self._sleep(min(poll_s, remaining))

    # --- connections ---------------------------------------------------------------------

    def list_connections(self, *, database_id: str) -> list[Connection]:
        return list(self._iter_connections("list_connections", database_id))

    def get_connection(self, connection_id: str) -> Connection:
        """The connection, normally without credentials (GET answers do not carry them)."""
        path = f"/connections/{_segment(connection_id)}"
        return self._one("get_connection", "GET", path, parse_connection)

    def find_connection_by_name(self, database_id: str, name: str) -> Connection | None:
        op = "find_connection_by_name"
        matches = [c for c in self._iter_connections(op, database_id) if c.name == name]
        return self._only(op, "connection", name, matches) if matches else None

    def create_connection(self, *, database_id: str, name: str) -> Connection:
        body = {"databaseId": database_id, "name": name}
        return self._one("create_connection", "POST", "/connections", parse_connection, body=body)

    def rotate_connection(self, connection_id: str) -> Connection:
        """New credentials for the connection (the old ones are revoked, best-effort)."""
        path = f"/connections/{_segment(connection_id)}/rotate"
        # rotating twice is harmless (the last answer holds the password that works), so a
        # lost or failed rotate is retried like a read
        return self._one("rotate_connection", "POST", path, parse_connection, idempotent=True)

    def delete_connection(self, connection_id: str, *, missing_ok: bool = True) -> bool:
        """True if deleted now, False if the API answered 404 (``NotFoundError`` instead
        when not ``missing_ok``)."""
        return self._delete(
            "delete_connection", f"/connections/{_segment(connection_id)}", missing_ok
        )

    def _iter_connections(self, op: str, database_id: str) -> Iterator[Connection]:
        def parse(raw: object) -> Connection:
            return parse_connection(raw, database_id=database_id)

        return self._paginate(op, "/connections", {"databaseId": database_id}, parse)

    # --- plumbing ------------------------------------------------------------------------

    def _one(
        self,
        op: str,
        method: str,
        path: str,
        parse: Callable[[object], _T],
        *,
        body: Mapping[str, object] | None = None,
        idempotent: bool | None = None,
    ) -> _T:
        response = self._send(op, method, path, body=body, idempotent=idempotent)
        payload = self._api.json(op, response)
        return self._parse(op, response, parse, payload.get("data"))

    def _delete(self, op: str, path: str, missing_ok: bool) -> bool:
        try:
            self._send(op, "DELETE", path)
        except NotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    def _paginate(
        self, op: str, path: str, params: Mapping[str, str], parse: Callable[[object], _T]
    ) -> Iterator[_T]:
        self._check_token(op)
        pages = paginate_cursor(
            self._api, op, f"/v1{path}", params=params, limit=PAGE_SIZE, headers=self._auth()
        )
        for page in pages:
            for item in page.items:
                yield self._parse(op, page.response, parse, item)

    def _only(self, op: str, kind: str, name: str, matches: list[_T]) -> _T:
        if len(matches) == 1:
            return matches[0]
        ids = ", ".join(str(getattr(m, "id", "?")) for m in matches)
        raise ProviderError(
            f"{len(matches)} {kind}s are named {name!r} ({ids}); refer to the one you mean by id",
            operation=op,
        )

    def _parse(
        self, op: str, response: httpx.Response, parse: Callable[[object], _T], raw: object
    ) -> _T:
        try:
            return parse(raw)
        except MalformedError as exc:
            raise self._invalid(op, response, str(exc)) from exc

    def _invalid(self, op: str, response: httpx.Response, why: str) -> ApiError:
        return self._api.invalid(op, response, why)

    def _check_token(self, op: str) -> None:
        if self._token is None:
            raise MissingCredentialsError(MISSING_TOKEN_MESSAGE, operation=op)

    def _auth(self) -> dict[str, str]:
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token.unencrypted}"}

    def _send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, object] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One logical request, with retries; returns a 2xx response or raises ours.
        ``idempotent``: whether sending it twice is safe (default: by its method)."""
        self._check_token(op)
        return self._api.request(
            op,
            method,
            f"/v1{path}",
            params=params,
            json=body,
            headers=self._auth(),
            idempotent=idempotent,
        )
