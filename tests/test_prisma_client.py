"""Unit tests of the Prisma Management API client, on ``httpx.MockTransport`` only."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

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
from journal._secret import Secret
from journal.resources.prisma_postgres._client import (
    DEFAULT_API_URL,
    MISSING_TOKEN_MESSAGE,
    PAGE_SIZE,
    Database,
    PrismaClient,
    Project,
    Region,
    Workspace,
)

TOKEN = "prsc_unit_test_token_7f3a9c"
BASE = "https://api.test"
NOW = "2025-01-02T03:04:05.000Z"

Handler = Callable[[httpx.Request], httpx.Response]


# --- response bodies in the shapes of the OpenAPI document --------------------------------


def workspace_json(i: int = 1, name: str | None = None) -> dict[str, Any]:
    return {
        "id": f"wksp_{i}",
        "type": "workspace",
        "url": f"https://console.prisma.io/wksp_{i}",
        "name": name or f"workspace-{i}",
        "createdAt": NOW,
    }


def project_json(i: int = 1, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"proj_{i}",
        "type": "project",
        "url": f"https://api.test/v1/projects/proj_{i}",
        "name": name or f"project-{i}",
        "createdAt": NOW,
        "defaultRegion": "us-east-1",
        "workspace": {"id": "wksp_1", "url": "https://api.test/v1/workspaces/wksp_1", "name": "w"},
        **extra,
    }


def endpoint(host: str, port: int, cs: str | None = None) -> dict[str, Any]:
    return {"host": host, "port": port} | ({} if cs is None else {"connectionString": cs})


def connection_json(
    i: int = 1, name: str | None = None, *, db: int = 1, credentials: bool = False
) -> dict[str, Any]:
    """The current shape; ``credentials``: as in a create or rotate answer."""
    direct_cs = f"postgres://u{i}:p%40ss{i}@db.prisma.io:5432/postgres?sslmode=require"
    pooled_cs = f"postgres://u{i}:p%40ss{i}@pooled.db.prisma.io:5432/postgres?sslmode=require"
    accel_cs = f"prisma+postgres://accelerate.prisma-data.net/?api_key=key{i}"
    deprecated: dict[str, Any] = {}
    if credentials:  # create and rotate answers still carry the deprecated fields
        deprecated = {"connectionString": direct_cs, "host": None, "user": None, "pass": None}
    return deprecated | {
        "id": f"con_{i}",
        "type": "connection",
        "url": f"https://api.test/v1/connections/con_{i}",
        "name": name or f"connection-{i}",
        "createdAt": NOW,
        "kind": "postgres",
        "endpoints": {
            "direct": endpoint("db.prisma.io", 5432, direct_cs if credentials else None),
            "pooled": endpoint("pooled.db.prisma.io", 5432, pooled_cs if credentials else None),
            "accelerate": endpoint(
                "accelerate.prisma-data.net", 443, accel_cs if credentials else None
            ),
        },
        "database": {
            "id": f"db_{db}",
            "url": f"https://api.test/v1/databases/db_{db}",
            "name": "d",
        },
    }


def database_json(
    i: int = 1, name: str | None = None, *, status: str = "ready", project: int = 1
) -> dict[str, Any]:
    return {
        "id": f"db_{i}",
        "type": "database",
        "url": f"https://api.test/v1/databases/db_{i}",
        "name": name or f"database-{i}",
        "status": status,
        "createdAt": NOW,
        "isDefault": False,
        "defaultConnectionId": None,
        "connections": [],
        "project": {"id": f"proj_{project}", "url": "https://api.test/v1/projects/p", "name": "p"},
        "region": {"id": "us-east-1", "name": "US East (N. Virginia)"},
        "source": None,
    }


def region_json(i: int = 1) -> dict[str, Any]:
    return {"id": f"region-{i}", "type": "region", "name": f"Region {i}", "status": "available"}


def data(value: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"data": value})


def error(
    status: int, code: str = "E", message: str = "it failed", **headers: str
) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "hint": "try again"}}
    return httpx.Response(status, json=body, headers=headers)


# --- harness -------------------------------------------------------------------------------


@dataclass
class Api:
    """A scripted server: answers come from ``handler`` or, in order, from ``script``."""

    handler: Handler | None = None
    script: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.handler is not None:
            return self.handler(request)
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kw: Any) -> PrismaClient:
        kw.setdefault("token", TOKEN)
        kw.setdefault("base_url", BASE)
        kw.setdefault("sleep", self.sleeps.append)
        http = httpx.Client(transport=httpx.MockTransport(self))
        self.clients.append(http)
        return PrismaClient(http=http, **kw)

    def body(self, n: int = -1) -> Any:
        return json.loads(self.requests[n].content)


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    for http in server.clients:
        http.close()


def scripted(api: Api, *answers: httpx.Response | Exception) -> Api:
    api.script.extend(answers)
    return api


def assert_clean(exc: BaseException) -> None:
    """The token appears nowhere in what an error shows."""
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)
    assert all(TOKEN not in str(arg) for arg in exc.args)


# --- credentials, headers, base URL --------------------------------------------------------


def test_bearer_header_and_url(api: Api) -> None:
    client = scripted(api, data(project_json())).client()
    project = client.get_project("proj_1")
    assert project == Project(
        id="proj_1",
        name="project-1",
        workspace_id="wksp_1",
        created_at=NOW,
        default_region="us-east-1",
    )
    request = api.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/projects/proj_1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


def test_token_from_secret_and_from_env(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "from-env-token")
    scripted(api, data(project_json()), data(project_json()))
    api.client(token=None).get_project("proj_1")
    api.client(token=Secret("secret-token")).get_project("proj_1")
    assert [r.headers["Authorization"] for r in api.requests] == [
        "Bearer from-env-token",
        "Bearer secret-token",
    ]


def test_missing_token_fails_at_first_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRISMA_SERVICE_TOKEN", raising=False)
    client = api.client(token=None)  # constructing is fine
    with pytest.raises(MissingCredentialsError) as info:
        client.list_projects()
    assert str(info.value) == MISSING_TOKEN_MESSAGE
    assert str(info.value) == (
        "no Prisma service token: set PRISMA_SERVICE_TOKEN (or pass service_token= to the "
        "resource, or run `journal configure`); to work without one, run against the local "
        "API: `journal deploy --local` or `journal dev`"
    )
    assert api.requests == []
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "   ")
    with pytest.raises(MissingCredentialsError):
        api.client(token=None).get_project("proj_1")


def test_base_url_from_env(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISMA_API_URL", "http://127.0.0.1:4010/")
    scripted(api, data(project_json()), data(project_json()))
    client = api.client(base_url=None)
    assert client.base_url == "http://127.0.0.1:4010"
    client.get_project("proj_1")
    assert str(api.requests[0].url) == "http://127.0.0.1:4010/v1/projects/proj_1"
    api.client(base_url="http://override.test/v1").get_project("proj_1")  # the argument wins
    assert str(api.requests[1].url) == "http://override.test/v1/projects/proj_1"
    monkeypatch.delenv("PRISMA_API_URL")
    assert api.client(base_url=None).base_url == DEFAULT_API_URL == "https://api.prisma.io"


def test_repr_hides_the_token(api: Api) -> None:
    client = api.client()
    assert TOKEN not in repr(client)
    assert "token=set" in repr(client)


def test_ids_are_one_path_segment(api: Api) -> None:
    scripted(api, data(project_json())).client().get_project("../x?y=1")
    assert api.requests[0].url.raw_path == b"/v1/projects/..%2Fx%3Fy%3D1"


def test_owned_http_client_is_closed_injected_one_is_not(api: Api) -> None:
    with PrismaClient(token=TOKEN) as owned:
        http = owned._http
    assert http.is_closed
    client = api.client()
    client.close()
    assert not client._http.is_closed


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, RequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, RequestError),
        (422, RequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_error_mapping(api: Api, status: int, cls: type[ApiError]) -> None:
    client = scripted(api, error(status, code="SomeCode", message="went wrong")).client(
        max_retries=0
    )
    with pytest.raises(cls) as info:
        client.get_project("proj_1")
    exc = info.value
    assert type(exc) is cls
    assert (exc.status, exc.method, exc.path) == (status, "GET", "/v1/projects/proj_1")
    assert (exc.code, exc.hint) == ("SomeCode", "try again")
    assert exc.operation == "get_project"
    assert str(exc).startswith(f"GET /v1/projects/proj_1 -> {status} SomeCode: went wrong")
    assert "(hint: try again)" in str(exc)
    assert_clean(exc)


def test_401_message_gives_the_guides_troubleshooting(api: Api) -> None:
    client = scripted(api, error(401, "Unauthorized", "invalid token")).client()
    with pytest.raises(AuthenticationError) as info:
        client.list_workspaces()
    text = str(info.value)
    assert "PRISMA_SERVICE_TOKEN is set for the process" in text
    assert "workspace" in text
    assert len(api.requests) == 1  # auth errors are not retried


def test_non_json_error_body(api: Api) -> None:
    answer = httpx.Response(502, text="<html><body>Bad gateway\n from proxy</body></html>")
    client = scripted(api, answer).client(max_retries=0)
    with pytest.raises(ServerError) as info:
        client.get_database("db_1")
    exc = info.value
    assert (exc.status, exc.method, exc.path, exc.code) == (502, "GET", "/v1/databases/db_1", None)
    assert str(exc).startswith("GET /v1/databases/db_1 -> 502: Bad Gateway: <html><body>Bad")
    assert "\n" not in str(exc)


def test_empty_and_odd_error_bodies(api: Api) -> None:
    scripted(
        api,
        httpx.Response(409),
        httpx.Response(400, json={"error": "plain string"}),
        httpx.Response(400, json=["not", "an", "object"]),
    )
    client = api.client()
    with pytest.raises(RequestError, match=r"-> 409: Conflict$"):
        client.create_project(name="x")
    with pytest.raises(RequestError, match=r"-> 400: plain string$"):
        client.create_project(name="x")
    with pytest.raises(RequestError, match=r"-> 400: Bad Request: \[.not"):
        client.create_project(name="x")


def test_error_path_has_no_query_and_echoed_token_is_masked(api: Api) -> None:
    answer = error(400, message=f"bad token {TOKEN} given", code="Bad")
    client = scripted(api, answer).client()
    with pytest.raises(RequestError) as info:
        client.list_databases(project_id="proj_secret_filter")
    exc = info.value
    assert exc.path == "/v1/databases"
    assert "proj_secret_filter" not in str(exc)
    assert "limit" not in str(exc)
    assert "bad token ******** given" in str(exc)
    assert_clean(exc)


def test_malformed_success_body_is_an_api_error(api: Api) -> None:
    scripted(
        api,
        httpx.Response(200, text="not json"),
        data({"id": "proj_1"}),
        httpx.Response(200, json={"data": {"not": "a list"}}),
    )
    client = api.client()
    with pytest.raises(ApiError, match=r"GET /v1/projects/proj_1 -> 200 invalid_response: .*JSON"):
        client.get_project("proj_1")
    with pytest.raises(ApiError, match="project has no 'name'"):
        client.get_project("proj_1")
    with pytest.raises(ApiError, match="'data' is not a list"):
        client.list_projects()


# --- retries -------------------------------------------------------------------------------


def test_429_honours_retry_after_seconds(api: Api) -> None:
    scripted(
        api,
        error(429, "TooManyRequests", **{"Retry-After": "2"}),
        error(429, "TooManyRequests", **{"Retry-After": "0.5"}),
        data(project_json()),
    )
    assert api.client().get_project("proj_1").id == "proj_1"
    assert api.sleeps == [2.0, 0.5]
    assert len(api.requests) == 3


def test_429_retry_after_http_date_and_cap(api: Api) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    scripted(
        api,
        error(429, **{"Retry-After": when}),
        error(429, **{"Retry-After": "120"}),
        data(project_json()),
    )
    api.client(max_backoff_s=10.0).get_project("proj_1")
    assert 3.0 <= api.sleeps[0] <= 5.0
    assert api.sleeps[1] == 10.0  # capped by max_backoff_s


def test_429_without_retry_after_backs_off_and_error_carries_retry_after(api: Api) -> None:
    scripted(api, error(429), error(429, **{"Retry-After": "7"}))
    client = api.client(max_retries=1, backoff_s=0.2)
    with pytest.raises(RateLimitedError) as info:
        client.list_projects()
    assert info.value.retry_after == 7.0
    assert 0.1 <= api.sleeps[0] <= 0.2
    assert "gave up after 2 attempts" in str(info.value)


def test_post_is_retried_on_429(api: Api) -> None:
    scripted(api, error(429, **{"Retry-After": "1"}), data(project_json(), status=201))
    assert api.client().create_project(name="project-1").id == "proj_1"
    assert [r.method for r in api.requests] == ["POST", "POST"]
    assert api.sleeps == [1.0]


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("GET", lambda c: c.get_project("proj_1")),
        ("DELETE", lambda c: c.delete_project("proj_1")),
        ("PATCH", lambda c: c.update_project("proj_1", name="n")),
    ],
    ids=["GET", "DELETE", "PATCH"],
)
def test_idempotent_methods_are_retried_on_5xx(
    api: Api, method: str, call: Callable[[PrismaClient], object]
) -> None:
    ok = httpx.Response(204) if method == "DELETE" else data(project_json())
    scripted(api, error(503), error(500), ok)
    call(api.client(backoff_s=0.2, max_backoff_s=10.0))
    assert [r.method for r in api.requests] == [method] * 3
    assert len(api.sleeps) == 2
    assert 0.1 <= api.sleeps[0] <= 0.2  # equal jitter: half fixed, half random
    assert 0.2 <= api.sleeps[1] <= 0.4


def test_delete_is_retried_on_5xx_then_404_means_gone(api: Api) -> None:
    scripted(api, error(500), error(404))
    assert api.client().delete_database("db_1") is False
    assert [r.method for r in api.requests] == ["DELETE", "DELETE"]


def test_post_is_retried_on_503_the_server_did_not_act(api: Api) -> None:
    scripted(api, error(503), data(project_json(), status=201))
    assert api.client().create_project(name="p").id == "proj_1"
    assert [r.method for r in api.requests] == ["POST", "POST"]


def test_rotate_is_retried_after_5xx_and_lost_answers(api: Api) -> None:
    ok = httpx.Response(200, json={"data": connection_json(credentials=True)})
    scripted(api, error(500), httpx.RemoteProtocolError("no answer"), ok)
    assert api.client().rotate_connection("con_1").password is not None
    assert [r.method for r in api.requests] == ["POST", "POST", "POST"]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_is_not_retried_on_5xx(api: Api, status: int) -> None:
    scripted(api, error(status))
    with pytest.raises(ServerError) as info:
        api.client().create_database(project_id="proj_1", name="d", region="us-east-1")
    assert len(api.requests) == 1
    assert api.sleeps == []
    assert "not retried" in str(info.value)
    assert info.value.method == "POST"


def test_post_is_not_retried_after_a_timeout(api: Api) -> None:
    scripted(api, httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError, match="not retried"):
        api.client().create_connection(database_id="db_1", name="c")
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), httpx.PoolTimeout("t")]
)
def test_post_is_retried_when_the_request_was_not_sent(api: Api, exc: Exception) -> None:
    scripted(api, exc, httpx.Response(201, json={"data": connection_json(credentials=True)}))
    connection = api.client().create_connection(database_id="db_1", name="connection-1")
    assert connection.id == "con_1"
    assert len(api.requests) == 2


def test_gives_up_after_max_retries_with_the_last_error(api: Api) -> None:
    scripted(api, error(500, "A"), error(502, "B"), error(503, "C"), error(504, "D"))
    client = api.client(max_retries=3, backoff_s=1.0, max_backoff_s=1.5)
    with pytest.raises(ServerError) as info:
        client.get_database("db_1")
    assert (info.value.status, info.value.code) == (504, "D")
    assert "gave up after 4 attempts" in str(info.value)
    assert len(api.requests) == 4
    assert len(api.sleeps) == 3
    assert all(s <= 1.5 for s in api.sleeps)
    assert 0.5 <= api.sleeps[0] <= 1.0
    assert 0.75 <= api.sleeps[2] <= 1.5


def test_max_retries_zero_means_one_attempt(api: Api) -> None:
    scripted(api, error(503))
    with pytest.raises(ServerError):
        api.client(max_retries=0).list_workspaces()
    assert len(api.requests) == 1


# --- transport errors ----------------------------------------------------------------------


def _all_subclasses(cls: type[Exception]) -> list[type[Exception]]:
    found: list[type[Exception]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


HTTPX_TRANSPORT_ERRORS = _all_subclasses(httpx.TransportError)


def test_the_subclass_list_is_complete() -> None:
    names = {c.__name__ for c in HTTPX_TRANSPORT_ERRORS}
    assert {
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ConnectError",
        "ReadError",
        "WriteError",
        "CloseError",
        "RemoteProtocolError",
        "LocalProtocolError",
        "ProxyError",
        "UnsupportedProtocol",
    } <= names


@pytest.mark.parametrize("cls", HTTPX_TRANSPORT_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_transport_error_is_mapped(api: Api, cls: type[httpx.TransportError]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise cls(f"boom with {request.headers['Authorization']}", request=request)

    api.handler = fail
    with pytest.raises(TransportError) as info:
        api.client(max_retries=2).get_connection("con_1")
    exc = info.value
    assert isinstance(exc.__cause__, cls)
    assert str(exc).startswith(f"GET /v1/connections/con_1: {cls.__name__}: boom")
    assert exc.operation == "get_connection"
    assert_clean(exc)
    local = cls in (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
    assert len(api.requests) == (1 if local else 3)  # our own protocol errors are not retried


def test_dropped_response_is_retried_for_get(api: Api) -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    scripted(api, dropped, data(database_json()))
    assert api.client().get_database("db_1").id == "db_1"
    assert len(api.requests) == 2


# --- deletes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete_project", "/v1/projects/proj_1"),
        ("delete_database", "/v1/databases/proj_1"),
        ("delete_connection", "/v1/connections/proj_1"),
    ],
)
def test_delete_204_true_404_false(api: Api, method: str, path: str) -> None:
    scripted(api, httpx.Response(204), error(404, "NotFound"))
    client = api.client()
    assert getattr(client, method)("proj_1") is True
    assert getattr(client, method)("proj_1") is False
    assert [(r.method, r.url.path) for r in api.requests] == [("DELETE", path)] * 2


def test_delete_other_errors_raise(api: Api) -> None:
    scripted(api, error(403, "Forbidden", "Cannot delete the default environment."))
    with pytest.raises(AuthenticationError, match="Cannot delete the default environment"):
        api.client().delete_database("db_1")


# --- pagination ----------------------------------------------------------------------------


def paged(make: Callable[[int], dict[str, Any]]) -> Handler:
    """Three pages of two items: cursors c1 and c2."""

    def handle(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        page = {None: 0, "c1": 1, "c2": 2}[cursor]
        items = [make(page * 2 + 1), make(page * 2 + 2)]
        more = page < 2
        pagination = {"nextCursor": f"c{page + 1}" if more else None, "hasMore": more}
        return httpx.Response(200, json={"data": items, "pagination": pagination})

    return handle


LISTS: list[tuple[str, Callable[[PrismaClient], list[Any]], str, dict[str, str], Any]] = [
    ("workspaces", lambda c: c.list_workspaces(), "/v1/workspaces", {}, workspace_json),
    ("projects", lambda c: c.list_projects(), "/v1/projects", {}, project_json),
    ("databases", lambda c: c.list_databases(), "/v1/databases", {}, database_json),
    (
        "project-databases",
        lambda c: c.list_databases(project_id="proj_1"),
        "/v1/databases",
        {"projectId": "proj_1"},
        database_json,
    ),
    (
        "connections",
        lambda c: c.list_connections(database_id="db_1"),
        "/v1/connections",
        {"databaseId": "db_1"},
        connection_json,
    ),
    ("regions", lambda c: c.list_postgres_regions(), "/v1/regions/postgres", {}, region_json),
]


@pytest.mark.parametrize(
    ("call", "path", "params", "make"), [x[1:] for x in LISTS], ids=[x[0] for x in LISTS]
)
def test_list_methods_follow_cursors(
    api: Api,
    call: Callable[[PrismaClient], list[Any]],
    path: str,
    params: dict[str, str],
    make: Callable[[int], dict[str, Any]],
) -> None:
    api.handler = paged(make)
    items = call(api.client())
    assert isinstance(items, list)
    assert [item.id for item in items] == [make(i)["id"] for i in range(1, 7)]
    assert [r.url.path for r in api.requests] == [path] * 3
    sent = [dict(r.url.params) for r in api.requests]
    limit = str(PAGE_SIZE)
    assert sent == [
        {**params, "limit": limit},
        {**params, "limit": limit, "cursor": "c1"},
        {**params, "limit": limit, "cursor": "c2"},
    ]


def test_regions_without_pagination_is_one_page(api: Api) -> None:
    scripted(api, data([region_json(1), region_json(2)]))
    assert api.client().list_postgres_regions() == [
        Region("region-1", "Region 1", "available"),
        Region("region-2", "Region 2", "available"),
    ]
    assert len(api.requests) == 1


def test_has_more_false_stops_even_with_a_cursor(api: Api) -> None:
    body = {"data": [project_json()], "pagination": {"nextCursor": "c1", "hasMore": False}}
    scripted(api, httpx.Response(200, json=body))
    assert len(api.client().list_projects()) == 1
    assert len(api.requests) == 1


def test_a_repeated_cursor_stops_with_an_error(api: Api) -> None:
    body = {"data": [project_json()], "pagination": {"nextCursor": "same", "hasMore": True}}
    api.handler = lambda request: httpx.Response(200, json=body)
    with pytest.raises(ProviderError, match="cursor 'same' twice"):
        api.client().list_projects()
    assert len(api.requests) == 2


FINDS: list[tuple[str, Callable[[PrismaClient, str], Any], Any]] = [
    ("project", lambda c, n: c.find_project_by_name(n), lambda i: project_json(i)),
    ("database", lambda c, n: c.find_database_by_name("proj_1", n), lambda i: database_json(i)),
    (
        "connection",
        lambda c, n: c.find_connection_by_name("db_1", n),
        lambda i: connection_json(i),
    ),
]


@pytest.mark.parametrize(("find", "make"), [x[1:] for x in FINDS], ids=[x[0] for x in FINDS])
def test_find_by_name_reads_all_pages(
    api: Api, find: Callable[[PrismaClient, str], Any], make: Callable[[int], dict[str, Any]]
) -> None:
    api.handler = paged(make)
    client = api.client()
    found = find(client, make(6)["name"])
    assert found is not None
    assert found.id == make(6)["id"]
    assert len(api.requests) == 3
    assert find(client, "no-such-name") is None
    assert len(api.requests) == 6
    scope = {"database": ("projectId", "proj_1"), "connection": ("databaseId", "db_1")}
    for kind, (key, value) in scope.items():
        if make(1)["type"] == kind:
            assert all(r.url.params[key] == value for r in api.requests)


def test_find_by_name_refuses_to_guess_between_duplicates(api: Api) -> None:
    body = {
        "data": [project_json(1, "same"), project_json(2, "same")],
        "pagination": {"nextCursor": None, "hasMore": False},
    }
    scripted(api, httpx.Response(200, json=body))
    with pytest.raises(ProviderError, match=r"2 projects are named 'same' \(proj_1, proj_2\)"):
        api.client().find_project_by_name("same")


# --- workspaces ----------------------------------------------------------------------------


def test_resolve_workspace_by_name_and_by_id_across_pages(api: Api) -> None:
    api.handler = paged(lambda i: workspace_json(i, name=f"team-{i}"))
    client = api.client()
    assert client.resolve_workspace("team-5") == Workspace("wksp_5", "team-5")
    assert client.resolve_workspace("wksp_6") == Workspace("wksp_6", "team-6")


def test_resolve_workspace_not_found_lists_what_exists(api: Api) -> None:
    api.handler = paged(lambda i: workspace_json(i, name=f"team-{i}"))
    with pytest.raises(NotFoundError) as info:
        api.client().resolve_workspace("nope")
    text = str(info.value)
    assert "no workspace has the id or name 'nope'" in text
    for i in range(1, 7):
        assert f"'team-{i}' (wksp_{i})" in text
    assert info.value.path == "/v1/workspaces"
    assert_clean(info.value)


def test_get_workspace(api: Api) -> None:
    scripted(api, data(workspace_json(3, "ops")))
    assert api.client().get_workspace("wksp_3") == Workspace("wksp_3", "ops")
    assert api.requests[0].url.path == "/v1/workspaces/wksp_3"


# --- request bodies (checked against the OpenAPI document's field names) -------------------


def test_create_project_body(api: Api) -> None:
    embedded = {k: v for k, v in database_json(9).items() if k != "project"} | {
        "apiKeys": [],  # deprecated, still sent
        "connectionString": None,
        "directConnection": None,
    }
    created = project_json(database=embedded)
    scripted(api, data(project_json(), 201), data(created, 201))
    client = api.client()
    project = client.create_project(name="project-1")
    assert project.database is None
    assert (api.requests[0].method, api.requests[0].url.path) == ("POST", "/v1/projects")
    assert api.body(0) == {"name": "project-1", "createDatabase": False}
    project = client.create_project(name="p", region="eu-west-3", create_database=True)
    assert api.body(1) == {"name": "p", "createDatabase": True, "region": "eu-west-3"}
    assert project.database is not None
    assert (project.database.id, project.database.project_id) == ("db_9", "proj_1")


def test_update_bodies(api: Api) -> None:
    scripted(api, data(project_json(name="new")), data(database_json(name="newdb")))
    client = api.client()
    assert client.update_project("proj_1", name="new").name == "new"
    assert client.update_database("db_1", name="newdb").name == "newdb"
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("PATCH", "/v1/projects/proj_1"),
        ("PATCH", "/v1/databases/db_1"),
    ]
    assert api.body(0) == {"name": "new"}
    assert api.body(1) == {"name": "newdb"}


def test_create_database_body(api: Api) -> None:
    scripted(api, data(database_json(status="provisioning"), 201))
    database = api.client().create_database(
        project_id="proj_1", name="database-1", region="us-east-1", is_default=True
    )
    assert (api.requests[0].method, api.requests[0].url.path) == ("POST", "/v1/databases")
    assert api.body() == {
        "projectId": "proj_1",
        "name": "database-1",
        "region": "us-east-1",
        "isDefault": True,
    }
    assert database == Database(
        id="db_1",
        name="database-1",
        project_id="proj_1",
        region="us-east-1",
        status="provisioning",
        created_at=NOW,
        is_default=False,
    )
    assert not database.is_ready


def test_create_and_rotate_connection(api: Api) -> None:
    scripted(
        api,
        data(connection_json(credentials=True), 201),
        data(connection_json(2, credentials=True)),
    )
    client = api.client()
    client.create_connection(database_id="db_1", name="connection-1")
    assert (api.requests[0].method, api.requests[0].url.path) == ("POST", "/v1/connections")
    assert api.body(0) == {"databaseId": "db_1", "name": "connection-1"}
    rotated = client.rotate_connection("con_1")
    assert (api.requests[1].method, api.requests[1].url.path) == (
        "POST",
        "/v1/connections/con_1/rotate",
    )
    assert rotated.password == Secret("p@ss2")


# --- response shapes -----------------------------------------------------------------------


def test_connection_current_shape_with_credentials(api: Api) -> None:
    scripted(api, data(connection_json(credentials=True), 201))
    c = api.client().create_connection(database_id="db_1", name="connection-1")
    assert (c.id, c.name, c.database_id, c.created_at, c.kind) == (
        "con_1",
        "connection-1",
        "db_1",
        NOW,
        "postgres",
    )
    assert (c.host, c.port) == ("db.prisma.io", 5432)
    assert c.user == Secret("u1")
    assert c.password == Secret("p@ss1")
    assert c.connection_string == Secret(
        "postgres://u1:p%40ss1@db.prisma.io:5432/postgres?sslmode=require"
    )
    assert c.pooled_connection_string == Secret(
        "postgres://u1:p%40ss1@pooled.db.prisma.io:5432/postgres?sslmode=require"
    )
    assert c.prisma_connection_string == Secret(
        "prisma+postgres://accelerate.prisma-data.net/?api_key=key1"
    )
    assert "p@ss1" not in repr(c)
    assert "u1:" not in repr(c)


def test_connection_from_get_has_no_credentials(api: Api) -> None:
    scripted(api, data(connection_json()))
    c = api.client().get_connection("con_1")
    assert (c.host, c.port) == ("db.prisma.io", 5432)
    assert (c.user, c.password, c.connection_string) == (None, None, None)
    assert (c.pooled_connection_string, c.prisma_connection_string) == (None, None)


def test_connection_deprecated_shape(api: Api) -> None:
    legacy = {
        "id": "con_1",
        "type": "connection",
        "url": "https://api.test/v1/connections/con_1",
        "name": "old",
        "createdAt": NOW,
        "kind": "postgres",
        "endpoints": {},
        "connectionString": "prisma+postgres://accelerate.prisma-data.net/?api_key=old",
        "database": {"id": "db_1", "url": "https://api.test/v1/databases/db_1", "name": "d"},
        "host": "db.prisma.io:6543",
        "user": "olduser",
        "pass": "old/pass",
    }
    scripted(api, data(legacy, 201))
    c = api.client().create_connection(database_id="db_1", name="old")
    assert (c.host, c.port) == ("db.prisma.io", 6543)
    assert (c.user, c.password) == (Secret("olduser"), Secret("old/pass"))
    assert c.connection_string == Secret(
        "postgres://olduser:old%2Fpass@db.prisma.io:6543/postgres?sslmode=require"
    )
    assert c.prisma_connection_string == Secret(
        "prisma+postgres://accelerate.prisma-data.net/?api_key=old"
    )
    assert c.pooled_connection_string is None


def test_connection_direct_connection_only(api: Api) -> None:
    legacy = connection_json() | {"endpoints": {}}
    legacy["directConnection"] = {"host": "h.example", "user": "du", "pass": "dp"}
    scripted(api, data(legacy))
    c = api.client().get_connection("con_1")
    assert (c.host, c.port, c.user, c.password) == ("h.example", 5432, Secret("du"), Secret("dp"))


def test_connection_prefers_the_current_shape(api: Api) -> None:
    both = connection_json(credentials=True) | {
        "host": "old.example:1",
        "user": "olduser",
        "pass": "oldpass",
        "connectionString": "prisma+postgres://old.example/?api_key=old",
        "directConnection": {"host": "old.example", "user": "x", "pass": "y"},
    }
    scripted(api, data(both, 201))
    c = api.client().create_connection(database_id="db_1", name="c")
    assert (c.host, c.port, c.user, c.password) == (
        "db.prisma.io",
        5432,
        Secret("u1"),
        Secret("p@ss1"),
    )
    assert c.prisma_connection_string == Secret(
        "prisma+postgres://accelerate.prisma-data.net/?api_key=key1"
    )


def test_database_current_shape_with_connections(api: Api) -> None:
    body = database_json() | {
        "connections": [connection_json(7, credentials=True)],
        "defaultConnectionId": "con_7",
        "isDefault": True,
    }
    scripted(api, data(body, 201))
    d = api.client().create_database(project_id="proj_1", name="d", region="us-east-1")
    assert (d.region, d.is_default, d.default_connection_id) == ("us-east-1", True, "con_7")
    assert [c.id for c in d.connections] == ["con_7"]
    assert d.connections[0].password == Secret("p@ss7")
    assert d.connections[0].database_id == "db_1"


def test_database_deprecated_shape(api: Api) -> None:
    key = connection_json(7)
    del key["database"]
    key["endpoints"] = {}
    body = {
        "id": "db_1",
        "type": "database",
        "url": "https://api.test/v1/databases/db_1",
        "name": "legacy",
        "status": "ready",
        "createdAt": NOW,
        "isDefault": False,
        "defaultConnectionId": "con_7",
        "projectId": "proj_1",
        "region": "eu-central-1",
        "apiKeys": [key],
        "connectionString": "prisma+postgres://accelerate.prisma-data.net/?api_key=dbkey",
        "directConnection": {"host": "db.prisma.io:5432", "user": "lu", "pass": "lp"},
    }
    scripted(api, data(body))
    d = api.client().get_database("db_1")
    assert (d.project_id, d.region, d.status) == ("proj_1", "eu-central-1", "ready")
    (c,) = d.connections
    assert (c.id, c.database_id, c.host, c.port) == ("con_7", "db_1", "db.prisma.io", 5432)
    assert (c.user, c.password) == (Secret("lu"), Secret("lp"))
    assert c.connection_string == Secret(
        "postgres://lu:lp@db.prisma.io:5432/postgres?sslmode=require"
    )
    assert c.prisma_connection_string == Secret(
        "prisma+postgres://accelerate.prisma-data.net/?api_key=dbkey"
    )


def test_database_without_region(api: Api) -> None:
    scripted(api, data(database_json() | {"region": None}))
    assert api.client().get_database("db_1").region is None


# --- waiting for provisioning --------------------------------------------------------------


def test_wait_database_ready_polls_until_ready(api: Api) -> None:
    scripted(
        api,
        data(database_json(status="provisioning")),
        data(database_json(status="provisioning")),
        data(database_json(status="ready")),
    )
    database = api.client().wait_database_ready("db_1", poll_s=0.25)
    assert database.is_ready
    assert [r.url.path for r in api.requests] == ["/v1/databases/db_1"] * 3
    assert api.sleeps == [0.25, 0.25]


def test_wait_database_ready_times_out(api: Api) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        api.sleeps.append(seconds)
        now[0] += seconds

    api.handler = lambda request: data(database_json(status="provisioning"))
    client = api.client(sleep=sleep, clock=lambda: now[0])
    with pytest.raises(
        ProviderError, match=r"db_1 is not ready after 2s \(status 'provisioning'\)"
    ):
        client.wait_database_ready("db_1", timeout_s=2.0, poll_s=0.75)
    assert api.sleeps == [0.75, 0.75, 0.5]
    assert len(api.requests) == 4


def test_wait_database_ready_stops_on_failure(api: Api) -> None:
    scripted(api, data(database_json(status="provisioning")), data(database_json(status="failure")))
    with pytest.raises(ProviderError, match="failed to provision"):
        api.client().wait_database_ready("db_1")
