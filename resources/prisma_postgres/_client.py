"""A synchronous client for the Prisma Management API v1 (``https://api.prisma.io/v1``).

``PrismaClient`` wraps an injected ``httpx.Client`` (or one it creates and owns) and turns the
API's JSON into frozen dataclasses. It is the only place where this provider speaks HTTP:

- **Credentials.** The service token comes from ``token=`` or ``PRISMA_SERVICE_TOKEN`` and is
  sent as ``Authorization: Bearer <token>``. A missing token is reported at the first request,
  not at construction, so a client can be built before the environment is complete. The token
  never appears in an error message, a log line or a ``repr``.
- **Errors** are translated in one place (``_api_error`` / ``_transport_error``) into the
  project's tree: 401/403 ``AuthenticationError``, 404 ``NotFoundError``, 429
  ``RateLimitedError``, 5xx ``ServerError``, other 4xx ``RequestError``, and every httpx failure
  into ``TransportError`` (``raise ... from exc``). Each message names the method and the path
  (never the query string) and carries the API's ``error.code`` and ``error.hint``.
- **Retries** use exponential backoff with jitter (``backoff_s * 2**n``, capped by
  ``max_backoff_s``), or exactly the server's ``Retry-After`` (seconds or an HTTP date, also
  capped) when it sends one, for at most ``max_retries`` retries; then the last error is raised.

  * GET, DELETE and PATCH are idempotent here: they are retried on 429, on 5xx and on every
    transport failure except our own protocol errors (``LocalProtocolError``,
    ``UnsupportedProtocol``), which would fail again.
  * POST creates (projects, databases, connections) or rotates credentials, and the client
    cannot know whether a 5xx, a timeout or a dropped connection happened before or after the
    server acted. A POST is therefore retried only when the server certainly did nothing: on 429
    and 503 (RFC 9110: "unable to handle the request") and on failures before the request was
    sent (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``). Rotating credentials is the
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

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx

from journal._errors import (
    ApiError,
    AuthenticationError,
    MissingCredentialsError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RequestError,
    ServerError,
    TransportError,
)
from journal._secret import MASK, Secret

from ._models import (
    Connection,
    Database,
    MalformedError,
    Project,
    Region,
    Workspace,
    parse_connection,
    parse_database,
    parse_project,
    parse_region,
    parse_workspace,
)

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

DEFAULT_API_URL: Final = "https://api.prisma.io"
TOKEN_ENV: Final = "PRISMA_SERVICE_TOKEN"
API_URL_ENV: Final = "PRISMA_API_URL"
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

_IDEMPOTENT: Final = frozenset({"GET", "DELETE", "PATCH"})
# answers that say the server did not act (RFC 9110: 503 "unable to handle the request"):
# a POST is retried on these too
_DID_NOTHING: Final = frozenset({429, 503})
# failures that happen before a single byte of the request left this process
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# our own mistakes: sending the same request again would fail the same way
_NEVER_RETRY: Final = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)

_T = TypeVar("_T")


# --- HTTP helpers --------------------------------------------------------------------------


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from a number of seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _segment(value: str) -> str:
    """An id as one path segment (an id can never add segments or a query)."""
    return quote(value, safe="")


# --- the client ----------------------------------------------------------------------------


class PrismaClient:
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
        self._max_retries = max(0, max_retries)
        self._backoff_s = max(0.0, backoff_s)
        self._max_backoff_s = max(0.0, max_backoff_s)
        self._sleep = sleep
        self._clock = clock
        self._owns_http = http is None
        self._http = http if http is not None else self._default_http(timeout_s)

    @staticmethod
    def _default_http(timeout_s: float) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0
            ),
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        token = "set" if self._token is not None else "missing"
        return f"PrismaClient(base_url={self._base_url!r}, token={token})"

    def close(self) -> None:
        """Close the HTTP client if this object created it (an injected one is left open)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PrismaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- identity ------------------------------------------------------------------------

    def local_instance(self) -> str | None:
        """The identity a journal local API answers on ``GET /health`` (its port changes
        between runs, this does not); None for an API that gives none. Unauthenticated."""
        for attempt in range(1, 4):
            try:
                response = self._http.get(self._base_url + "/health")
                break
            except httpx.TransportError as exc:
                if attempt == 3 or isinstance(exc, _NEVER_RETRY):
                    error = self._transport_error("local_instance", "GET", "/health", exc, attempt)
                    raise error from exc
                self._sleep(self._delay(attempt, None))
        if not response.is_success:
            return None
        try:
            payload = response.json()
        except ValueError:
            return None
        instance = payload.get("instance") if isinstance(payload, dict) else None
        return instance if isinstance(instance, str) and instance else None

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
        payload = self._json(op, response)
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
        query: dict[str, str | int] = {**params, "limit": PAGE_SIZE}
        seen: set[str] = set()
        while True:
            response = self._send(op, "GET", path, params=query)
            payload = self._json(op, response)
            items = payload.get("data")
            if not isinstance(items, list):
                raise self._invalid(op, response, "'data' is not a list")
            for item in items:
                yield self._parse(op, response, parse, item)
            pagination = payload.get("pagination")
            if not isinstance(pagination, dict) or pagination.get("hasMore") is False:
                return
            cursor = pagination.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return
            if cursor in seen:
                raise ProviderError(
                    f"GET /v1{path}: the API returned the cursor {cursor!r} twice; "
                    "stopped paging to avoid a loop",
                    operation=op,
                )
            seen.add(cursor)
            query["cursor"] = cursor

    def _only(self, op: str, kind: str, name: str, matches: list[_T]) -> _T:
        if len(matches) == 1:
            return matches[0]
        ids = ", ".join(str(getattr(m, "id", "?")) for m in matches)
        raise ProviderError(
            f"{len(matches)} {kind}s are named {name!r} ({ids}); refer to the one you mean by id",
            operation=op,
        )

    def _json(self, op: str, response: httpx.Response) -> Mapping[str, Any]:
        try:
            payload = response.json()
        except ValueError as exc:
            raise self._invalid(op, response, "the body is not JSON") from exc
        if not isinstance(payload, dict):
            raise self._invalid(op, response, "the body is not a JSON object")
        return payload

    def _parse(
        self, op: str, response: httpx.Response, parse: Callable[[object], _T], raw: object
    ) -> _T:
        try:
            return parse(raw)
        except MalformedError as exc:
            raise self._invalid(op, response, str(exc)) from exc

    def _invalid(self, op: str, response: httpx.Response, why: str) -> ApiError:
        return ApiError(
            f"unexpected response: {why}",
            status=response.status_code,
            method=response.request.method,
            path=response.request.url.path,
            code="invalid_response",
            operation=op,
        )

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
        if self._token is None:
            raise MissingCredentialsError(MISSING_TOKEN_MESSAGE, operation=op)
        full_path = f"/v1{path}"
        headers = {
            "Authorization": f"Bearer {self._token.unencrypted}",
            "Accept": "application/json",
        }
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self._http.request(
                    method, self._base_url + full_path, params=params, json=body, headers=headers
                )
            except httpx.HTTPError as exc:
                retry = isinstance(exc, httpx.TransportError) and not isinstance(exc, _NEVER_RETRY)
                if not idempotent:
                    retry = retry and isinstance(exc, _NOT_SENT)
                if not retry or last:
                    raise self._transport_error(op, method, full_path, exc, attempt) from exc
                delay = self._delay(attempt, None)
                why = type(exc).__name__
            else:
                if response.is_success:
                    return response
                status = response.status_code
                retry = status in _DID_NOTHING or (idempotent and status >= 500)
                if not retry or last:
                    raise self._api_error(op, method, full_path, response, attempt)
                delay = self._delay(
                    attempt, _parse_retry_after(response.headers.get("Retry-After"))
                )
                why = f"HTTP {status}"
            log.info(
                "prisma: %s %s failed (%s); retry %d of %d in %.2fs",
                method,
                full_path,
                why,
                attempt,
                self._max_retries,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self._max_backoff_s)
        ceiling = min(self._max_backoff_s, self._backoff_s * 2.0 ** min(attempt - 1, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"

    def _scrub(self, text: str) -> str:
        if self._token is not None and len(self._token.unencrypted) >= 4:
            text = text.replace(self._token.unencrypted, MASK)
        return text

    def _transport_error(
        self, op: str, method: str, path: str, exc: httpx.HTTPError, attempts: int
    ) -> TransportError:
        detail = self._scrub(_short(str(exc))) or "no details"
        message = f"{method} {path}: {type(exc).__name__}: {detail}"
        if attempts > 1:
            message += f" (gave up after {attempts} attempts)"
        elif (
            method not in _IDEMPOTENT
            and isinstance(exc, httpx.TransportError)
            and not isinstance(exc, _NOT_SENT + _NEVER_RETRY)
        ):
            message += " (not retried: the server may have acted on this request)"
        return TransportError(message, operation=op)

    def _api_error(
        self, op: str, method: str, path: str, response: httpx.Response, attempts: int
    ) -> ApiError:
        """The one place where an error answer becomes an exception of ours."""
        status = response.status_code
        message, code, hint = self._error_fields(response)
        if status == 401:
            message = f"{message}; {_AUTH_TROUBLESHOOTING}"
        elif status == 403:
            message = f"{message}; {_WORKSPACE_NOTE}"
        if attempts > 1:
            message += f" (gave up after {attempts} attempts)"
        elif status >= 500 and method not in _IDEMPOTENT:
            message += " (not retried: the server may have acted on this request)"
        common: dict[str, Any] = dict(
            status=status, method=method, path=path, code=code, hint=hint, operation=op
        )
        if status in (401, 403):
            return AuthenticationError(message, **common)
        if status == 404:
            return NotFoundError(message, **common)
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitedError(message, retry_after=retry_after, **common)
        if status >= 500:
            return ServerError(message, **common)
        return RequestError(message, **common)

    def _error_fields(self, response: httpx.Response) -> tuple[str, str | None, str | None]:
        """(message, code, hint) from ``{"error": {...}}``, leniently."""
        message = code = hint = None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict):
                message, code, hint = (_text(error.get(k)) for k in ("message", "code", "hint"))
            elif isinstance(error, str) and error:
                message = error
            message = message or _text(payload.get("message"))
        if message is None:
            text = _short(response.text)
            message = response.reason_phrase or "error"
            if text:
                message += f": {text}"
        return (
            self._scrub(_short(message, 500)),
            None if code is None else self._scrub(code),
            None if hint is None else self._scrub(_short(hint, 500)),
        )
