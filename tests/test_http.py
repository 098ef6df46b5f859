"""Unit tests of the shared HTTP layer (``journal._http``), on ``httpx.MockTransport`` only."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from _scripted import Handler, Scripted

from journal._errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RequestError,
    ServerError,
    TransportError,
)
from journal._http import (
    IDEMPOTENT_METHODS,
    ErrorDetail,
    HttpClient,
    default_http_client,
    paginate_cursor,
    paginate_pages,
    parse_retry_after,
    segment,
)
from journal._secret import Secret

BASE = "https://api.test/client/v4"
KEY = "k3y-that-must-stay-hidden"


class Server(Scripted):
    def client(self, *answers: httpx.Response | Exception, **kw: Any) -> HttpClient:
        kw.setdefault("sleep", self.sleeps.append)
        kw.setdefault("secrets", [Secret(KEY)])
        return HttpClient(BASE, http=self.http(*answers), **kw)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def err(status: int, message: str = "it failed", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "code": "E"}}, headers=headers
    )


OK = httpx.Response(200, json={"ok": True})


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(IDEMPOTENT_METHODS))
def test_idempotent_methods_are_retried_on_5xx_and_429(server: Server, method: str) -> None:
    client = server.client(err(500), err(502), err(429), OK, backoff_s=0.2, max_backoff_s=10.0)
    assert client.request("op", method, "/x").status_code == 200
    assert [r.method for r in server.requests] == [method] * 4
    assert len(server.sleeps) == 3
    assert 0.1 <= server.sleeps[0] <= 0.2  # equal jitter: half fixed, half random
    assert 0.2 <= server.sleeps[1] <= 0.4
    assert 0.4 <= server.sleeps[2] <= 0.8


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("status", [500, 502, 504])
def test_non_idempotent_is_not_retried_on_5xx(server: Server, method: str, status: int) -> None:
    client = server.client(err(status))
    with pytest.raises(ServerError) as info:
        client.request("create", method, "/things", json={"name": "a"})
    assert len(server.requests) == 1
    assert server.sleeps == []
    assert "(not retried: the server may have acted on this request)" in str(info.value)


@pytest.mark.parametrize("status", [429, 503])
def test_non_idempotent_is_retried_when_the_server_did_nothing(server: Server, status: int) -> None:
    client = server.client(err(status), httpx.Response(201, json={"id": "a"}))
    assert client.request("create", "POST", "/things", json={}).status_code == 201
    assert [r.method for r in server.requests] == ["POST", "POST"]


def _all_subclasses(cls: type[Exception]) -> list[type[Exception]]:
    found: list[type[Exception]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


TRANSPORT_ERRORS = _all_subclasses(httpx.TransportError)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
OURS = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)


@pytest.mark.parametrize("cls", TRANSPORT_ERRORS, ids=lambda c: c.__name__)
def test_post_is_retried_only_when_it_was_never_sent(
    server: Server, cls: type[httpx.TransportError]
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise cls(f"boom {KEY}", request=request)

    server.handler = fail
    with pytest.raises(TransportError) as info:
        server.client(max_retries=2).request("create", "POST", "/things", json={"a": 1})
    exc = info.value
    assert isinstance(exc.__cause__, cls)
    assert str(exc).startswith(f"POST /things: {cls.__name__}: boom ********")
    assert KEY not in str(exc)
    never_sent = issubclass(cls, NOT_SENT) and not issubclass(cls, OURS)
    assert len(server.requests) == (3 if never_sent else 1)
    if never_sent:
        assert "gave up after 3 attempts" in str(exc)
    elif not issubclass(cls, OURS):
        assert "not retried: the server may have acted" in str(exc)


@pytest.mark.parametrize("cls", TRANSPORT_ERRORS, ids=lambda c: c.__name__)
def test_get_is_retried_after_every_transport_error_but_ours(
    server: Server, cls: type[httpx.TransportError]
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise cls("boom", request=request)

    server.handler = fail
    with pytest.raises(TransportError):
        server.client(max_retries=2).request("read", "GET", "/things/1")
    assert len(server.requests) == (1 if issubclass(cls, OURS) else 3)


def test_read_timeout_after_a_post_body_went_out_is_not_retried(server: Server) -> None:
    client = server.client(httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError, match="not retried"):
        client.request("create", "POST", "/things", json={"name": "a"})
    assert len(server.requests) == 1


def test_a_request_can_be_marked_idempotent_and_methods_configured(server: Server) -> None:
    client = server.client(err(500), OK, err(500), OK, idempotent_methods={"GET", "PATCH"})
    client.request("rotate", "POST", "/rotate", idempotent=True)
    client.request("rename", "PATCH", "/things/1", json={"name": "b"})
    assert [r.method for r in server.requests] == ["POST", "POST", "PATCH", "PATCH"]
    assert server.client(err(500), idempotent_methods={"GET"}).is_idempotent("PUT") is False


def test_gives_up_after_max_retries_with_the_last_error(server: Server) -> None:
    client = server.client(
        err(500, "a"), err(502, "b"), err(503, "c"), err(504, "d"), max_retries=3, backoff_s=1.0
    )
    with pytest.raises(ServerError) as info:
        client.request("read", "GET", "/things/1")
    assert info.value.status == 504
    assert "d (gave up after 4 attempts)" in str(info.value)
    assert len(server.requests) == 4
    assert len(server.sleeps) == 3


def test_max_retries_zero_and_per_request_retries(server: Server) -> None:
    client = server.client(err(503), err(503), err(503), max_retries=0)
    with pytest.raises(ServerError):
        client.request("read", "GET", "/x")
    assert len(server.requests) == 1
    with pytest.raises(ServerError):
        client.request("read", "GET", "/x", retries=1)
    assert len(server.requests) == 3


def test_check_false_returns_the_first_answer_and_retries_only_transport(server: Server) -> None:
    client = server.client(httpx.ConnectError("refused"), err(500))
    response = client.request("probe", "GET", "/health", check=False)
    assert response.status_code == 500
    assert len(server.requests) == 2


# --- Retry-After -----------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured_exactly(server: Server) -> None:
    client = server.client(err(429, **{"Retry-After": "2"}), err(503, **{"Retry-After": "0.5"}), OK)
    client.request("read", "GET", "/x")
    assert server.sleeps == [2.0, 0.5]


def test_retry_after_http_date_and_the_cap(server: Server) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    client = server.client(
        err(429, **{"Retry-After": when}),
        err(429, **{"Retry-After": "120"}),
        err(429, **{"Retry-After": past}),
        err(429, **{"Retry-After": "soon"}),
        OK,
        max_backoff_s=10.0,
        backoff_s=0.2,
    )
    client.request("create", "POST", "/x", json={})
    assert 3.0 <= server.sleeps[0] <= 5.0
    assert server.sleeps[1] == 10.0  # capped by max_backoff_s
    assert server.sleeps[2] == 0.0  # a date in the past: at once
    assert 0.8 <= server.sleeps[3] <= 1.6  # unreadable: backoff (4th attempt)


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("  ") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("not a date") is None


def test_rate_limited_error_carries_retry_after(server: Server) -> None:
    client = server.client(err(429, **{"Retry-After": "7"}), max_retries=0)
    with pytest.raises(RateLimitedError) as info:
        client.request("read", "GET", "/x")
    assert info.value.retry_after == 7.0


# --- mapping ---------------------------------------------------------------------------------


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
def test_status_mapping(server: Server, status: int, cls: type[ApiError]) -> None:
    client = server.client(err(status, "went wrong"), max_retries=0)
    with pytest.raises(cls) as info:
        client.request("get_thing", "GET", "/things/a", params={"filter": "hidden-query"})
    exc = info.value
    assert type(exc) is cls
    assert (exc.status, exc.method, exc.path, exc.code) == (status, "GET", "/things/a", "E")
    assert exc.operation == "get_thing"
    assert str(exc) == f"GET /things/a -> {status} E: went wrong"


def test_status_notes_custom_error_bodies_and_scrubbing(server: Server) -> None:
    def describe(response: httpx.Response) -> ErrorDetail:
        body = response.json()
        return ErrorDetail(body["why"], str(body["n"]), f"hint with {KEY}")

    answer = httpx.Response(401, json={"why": f"bad key {KEY} and pw hunter22", "n": 9103})
    client = server.client(answer, describe_error=describe, status_notes={401: "check the key"})
    with pytest.raises(AuthenticationError) as info:
        client.request("op", "POST", "/x", json={"password": "hunter22"}, secrets=["hunter22"])
    text = str(info.value)
    assert text == (
        "POST /x -> 401 9103: bad key ******** and pw ********; check the key "
        "(hint: hint with ********)"
    )


def test_bodies_that_say_nothing_use_the_reason_and_text(server: Server) -> None:
    client = server.client(
        httpx.Response(502, text="<html>\n Bad gateway</html>"), httpx.Response(409), max_retries=0
    )
    with pytest.raises(ServerError, match=r"^GET /x -> 502: Bad Gateway: <html> Bad gateway"):
        client.request("op", "GET", "/x")
    with pytest.raises(RequestError, match=r"-> 409: Conflict$"):
        client.request("op", "GET", "/x")


def test_invalid_success_bodies(server: Server) -> None:
    client = server.client(httpx.Response(200, text="nope"), httpx.Response(200, json=[1]))
    for why in ("the body is not JSON", "the body is not a JSON object"):
        response = client.request("op", "GET", "/things/1")
        with pytest.raises(ApiError) as info:
            client.json("op", response)
        assert (
            str(info.value) == f"GET /things/1 -> 200 invalid_response: unexpected response: {why}"
        )


def test_retry_log_names_method_and_path_only(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="journal._http")
    client = server.client(err(500), OK, headers={"Authorization": f"Bearer {KEY}"}, label="cf")
    client.request("op", "GET", "/things", params={"q": "private-filter"})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "journal._http"]
    assert line.startswith("cf: GET /things failed (HTTP 500); retry 1 of 8 in ")
    assert KEY not in caplog.text
    assert "private-filter" not in caplog.text
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert server.requests[0].headers["Accept"] == "application/json"


def test_owned_client_is_closed_injected_one_is_not(server: Server) -> None:
    with HttpClient(BASE) as owned:
        http = owned.http
    assert http.is_closed
    injected = server.client()
    injected.close()
    assert not injected.http.is_closed
    assert segment("../a?b") == "..%2Fa%3Fb"
    assert KEY not in repr(injected)


# --- pagination ------------------------------------------------------------------------------


def cursor_pages(request: httpx.Request) -> httpx.Response:
    page = {None: 0, "c1": 1, "c2": 2}[request.url.params.get("cursor")]
    more = page < 2
    return httpx.Response(
        200,
        json={
            "data": [page * 2 + 1, page * 2 + 2],
            "pagination": {"nextCursor": f"c{page + 1}" if more else None, "hasMore": more},
        },
    )


def test_cursor_pagination_follows_next_cursor(server: Server) -> None:
    server.handler = cursor_pages
    client = server.client()
    pages = paginate_cursor(client, "list", "/items", params={"owner": "a"}, limit=2)
    assert [item for page in pages for item in page.items] == [1, 2, 3, 4, 5, 6]
    assert [dict(r.url.params) for r in server.requests] == [
        {"owner": "a", "limit": "2"},
        {"owner": "a", "limit": "2", "cursor": "c1"},
        {"owner": "a", "limit": "2", "cursor": "c2"},
    ]


def test_cursor_pagination_is_lazy_and_stops_on_has_more_false(server: Server) -> None:
    server.handler = cursor_pages
    pages = paginate_cursor(server.client(), "list", "/items")
    assert next(pages).items == [1, 2]
    assert len(server.requests) == 1
    body = {"data": [1], "pagination": {"nextCursor": "c9", "hasMore": False}}
    server.handler = lambda request: httpx.Response(200, json=body)
    assert len(list(paginate_cursor(server.client(), "list", "/items"))) == 1


def test_cursor_pagination_refuses_a_loop(server: Server) -> None:
    body = {"data": [1], "pagination": {"nextCursor": "same", "hasMore": True}}
    server.handler = lambda request: httpx.Response(200, json=body)
    with pytest.raises(ProviderError, match="GET /items: the API returned the cursor 'same' twice"):
        list(paginate_cursor(server.client(), "list", "/items"))
    assert len(server.requests) == 2


def test_pagination_rejects_a_body_without_a_list(server: Server) -> None:
    server.handler = lambda request: httpx.Response(200, json={"data": {"x": 1}})
    with pytest.raises(ApiError, match="'data' is not a list"):
        list(paginate_cursor(server.client(), "list", "/items"))


def numbered(total: int, *, info: Callable[[int, int, int], dict[str, Any]]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        per_page = int(request.url.params.get("per_page", "3"))
        first = (page - 1) * per_page
        items = list(range(first + 1, min(total, first + per_page) + 1))
        return httpx.Response(
            200, json={"success": True, "result": items, "result_info": info(page, per_page, total)}
        )

    return handle


def full_info(page: int, per_page: int, total: int) -> dict[str, Any]:
    count = max(0, min(per_page, total - (page - 1) * per_page))
    pages = -(-total // per_page)
    return {
        "page": page,
        "per_page": per_page,
        "count": count,
        "total_count": total,
        "total_pages": pages,
    }


@pytest.mark.parametrize("total", [0, 1, 3, 7, 9])
def test_page_pagination_reads_every_page_and_no_more(server: Server, total: int) -> None:
    server.handler = numbered(total, info=full_info)
    pages = paginate_pages(server.client(), "list", "/accounts", per_page=3, params={"a": "b"})
    assert [item for page in pages for item in page.items] == list(range(1, total + 1))
    expected = max(1, -(-total // 3))
    assert [dict(r.url.params) for r in server.requests] == [
        {"a": "b", "page": str(n), "per_page": "3"} for n in range(1, expected + 1)
    ]


def test_page_pagination_without_totals_stops_at_a_short_or_empty_page(server: Server) -> None:
    def partial(page: int, per_page: int, total: int) -> dict[str, Any]:
        return {"page": page, "per_page": per_page}

    server.handler = numbered(6, info=partial)
    items = [i for p in paginate_pages(server.client(), "list", "/x", per_page=3) for i in p.items]
    assert items == [1, 2, 3, 4, 5, 6]
    assert len(server.requests) == 3  # the third page is empty
    server.requests.clear()
    server.handler = numbered(5, info=partial)
    assert len(list(paginate_pages(server.client(), "list", "/x", per_page=3))) == 2
    assert len(server.requests) == 2


def test_page_pagination_without_result_info_is_one_page(server: Server) -> None:
    client = server.client(httpx.Response(200, json={"result": [1, 2, 3]}))
    assert [p.items for p in paginate_pages(client, "list", "/x")] == [[1, 2, 3]]


def test_page_pagination_refuses_an_api_that_ignores_the_page(server: Server) -> None:
    body = {"result": [1, 2], "result_info": {"page": 1, "per_page": 2, "total_count": 10}}
    server.handler = lambda request: httpx.Response(200, json=body)
    with pytest.raises(ProviderError, match="asked for page 2, the API answered page 1"):
        list(paginate_pages(server.client(), "list", "/x"))
    assert len(server.requests) == 2


def test_the_public_surface_is_pinned() -> None:
    import journal._http as http_layer

    assert set(http_layer.__all__) == {
        "IDEMPOTENT_METHODS",
        "ApiClient",
        "ErrorDetail",
        "HttpClient",
        "Page",
        "default_http_client",
        "json_error_detail",
        "paginate_cursor",
        "paginate_pages",
        "parse_retry_after",
        "prisma_next_cursor",
        "segment",
        "short",
    }
    assert all(hasattr(http_layer, name) for name in http_layer.__all__)


# --- the default pool under the engine's concurrency (real loopback HTTP) ---------------------


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"data": {"id": "x"}}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Loopback(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


def test_default_pool_keeps_every_connection_it_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore 1.0.x counts *all* connections against ``max_keepalive_connections``: with
    more requests in flight than that, an idle connection already handed to a waiting
    request is closed under it (encode/httpcore#1110), which surfaces as a ``ReadError``
    ("Bad file descriptor") or a request hanging until its read timeout: fatal for a POST,
    which is not retried. The default pool must never have a surplus to close, nor make a
    request wait for a connection (``JOURNAL_HTTP_TRANSPORT=httpx``; the default transport
    has no pool)."""
    monkeypatch.setenv("JOURNAL_HTTP_TRANSPORT", "httpx")
    with default_http_client(5.0) as http:
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_keepalive_connections >= pool._max_connections
        assert pool._max_connections >= 100_000  # unlimited: the engine's concurrency caps it


@pytest.mark.parametrize("transport", ["lean", "httpx"])
@pytest.mark.parametrize("in_flight", [64, 256])
def test_many_posts_at_a_time_on_the_default_client_all_succeed(
    monkeypatch: pytest.MonkeyPatch, transport: str, in_flight: int
) -> None:
    monkeypatch.setenv("JOURNAL_HTTP_TRANSPORT", transport)
    server = _Loopback(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with HttpClient(f"http://127.0.0.1:{server.server_address[1]}", max_retries=0) as api:

            def create(i: int) -> int:
                return api.request("create", "POST", "/v1/things", json={"i": i}).status_code

            with ThreadPoolExecutor(in_flight) as pool:
                assert set(pool.map(create, range(in_flight * 3))) == {201}
    finally:
        server.shutdown()
        server.server_close()
