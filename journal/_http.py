"""One HTTP layer for providers, on ``httpx``: retries, error mapping, pagination.

A provider's API client holds an :class:`HttpClient` and keeps only what is its API's own
(paths, request bodies, how its error bodies read, its response shapes). Public surface:

- ``ApiClient``: a base for a provider's client holding its ``HttpClient`` as ``self._api``
  (``close()`` and ``with`` close it).
- ``HttpClient(base_url, *, http=None, headers=None, secrets=(),
  describe_error=json_error_detail, status_notes=None, idempotent_methods=IDEMPOTENT_METHODS,
  max_retries=8, backoff_s=0.2, max_backoff_s=10.0, timeout_s=30.0, sleep=time.sleep,
  label="http", logger=None, owns_http=None)``

  * ``request(op, method, path, *, params=None, json=None, content=None, files=None,
    headers=None, idempotent=None, secrets=(), retries=None, check=True) -> httpx.Response``:
    one logical request (``base_url + path``), retried as below; returns a 2xx answer or
    raises one of ours (``check=False``: returns the first answer, whatever its status).
  * ``json(op, response)``: the body as a JSON object, else ``ApiError`` ``invalid_response``;
    ``invalid(op, response, why)`` builds that error for a body the caller cannot use;
    ``api_error(op, response, ...)`` the error for an answer (e.g. a 200 whose envelope says
    it failed).
  * ``scrub(text)``: the text with every known secret masked; ``base_url``, ``http``,
    ``is_idempotent(method)``, ``delay(attempt, retry_after)``; ``close()`` / ``with``.
- ``paginate_cursor(client, op, path, ...)`` (``nextCursor`` style, by default Prisma's
  ``pagination`` object: ``prisma_next_cursor``) and ``paginate_pages(client, op, path, ...)``
  (``page``/``per_page`` style, as Cloudflare's ``result_info``): lazy iterators of
  ``Page(response, payload, items)``.
- ``ErrorDetail(message, code, hint)``: what ``describe_error(response)`` reads from an error
  body (``json_error_detail`` reads ``{"error": {"message", "code", "hint"}}``);
  ``parse_retry_after(value)``; ``segment(value)`` (an id as one path segment); ``short(text)``;
  ``default_http_client(timeout_s)`` (httpx on ``journal._transport.LeanTransport``, or on
  httpx's own pool with ``JOURNAL_HTTP_TRANSPORT=httpx``).

**Retries** use exponential backoff with "equal jitter" (``backoff_s * 2**n``, capped by
``max_backoff_s``: half of it fixed, half random), or exactly the server's ``Retry-After``
(seconds or an HTTP date, also capped) when it sends one, for at most ``max_retries`` retries;
then the last error is raised (its message says how many attempts were made).

* An idempotent request (by default GET, HEAD, OPTIONS, PUT and DELETE; a client may name
  other methods, or mark one request with ``idempotent=``) is retried on 429, on 5xx and on
  every transport failure except our own protocol errors (``LocalProtocolError``,
  ``UnsupportedProtocol``), which would fail again.
* A non-idempotent request (POST, PATCH) is retried only when the server certainly did
  nothing: on 429 and 503 (RFC 9110: "unable to handle the request") and on failures before
  the request was sent (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``). After a read
  timeout, a dropped connection or another 5xx the server may have acted: the error is raised
  at once and says so; recovering (reading the object back by name) is the engine's job.

**Errors** are translated here and nowhere else: 401/403 ``AuthenticationError``, 404
``NotFoundError``, 429 ``RateLimitedError`` (with ``retry_after``), 5xx ``ServerError``, other
4xx ``RequestError`` (a 409 too: ``ConflictError`` is the journal store's stale-writer error),
every httpx failure ``TransportError`` (``raise ... from exc``). A message
names the method and the path (never the query string nor the base URL), the API's code and
hint as ``describe_error`` reads them, and a provider's note for the status (``status_notes``).
Every secret the client knows (``secrets=``, and a request's own ``secrets=``) is masked in
what an error shows; nothing is logged but the method, the path and why a retry happens.

The interruption of a run (``journal._interrupt``) needs nothing from this layer: the engine
stops launching calls and abandons those in flight; a request is never cut short here.
An ``HttpClient`` holds no mutable state and may be shared between threads (as
``httpx.Client`` may).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self
from urllib.parse import quote

import httpx

from journal._errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RequestError,
    ServerError,
    TransportError,
    UsageError,
)
from journal._secret import MASK, Secret

__all__ = [
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
]

#: methods that are safe to send twice (RFC 9110, section 9.2.2)
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# answers that say the server did not act (RFC 9110: 503 "unable to handle the request"):
# a non-idempotent request is retried on these too
_DID_NOTHING: Final = frozenset({429, 503})
# failures that happen before a single byte of the request left this process
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# our own mistakes: sending the same request again would fail the same way
_NEVER_RETRY: Final = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
#: selects the transport of ``default_http_client``
TRANSPORT_ENV: Final = "JOURNAL_HTTP_TRANSPORT"
_TRANSPORTS: Final = frozenset({"lean", "httpx"})
_MAY_HAVE_ACTED: Final = " (not retried: the server may have acted on this request)"

_JsonBody = Mapping[str, object] | Sequence[object]
_Files = Sequence[tuple[str, tuple[str | None, bytes, str]]]


# --- small helpers -------------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from a number of seconds or an HTTP date (None when absent
    or unreadable; never negative)."""
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


def segment(value: str) -> str:
    """An id as one path segment (an id can never add segments or a query)."""
    return quote(value, safe="")


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def http_transport() -> str:
    """The transport ``default_http_client`` builds: ``JOURNAL_HTTP_TRANSPORT`` (``lean``,
    the default, or ``httpx``)."""
    raw = os.environ.get(TRANSPORT_ENV, "").strip().lower() or "lean"
    if raw not in _TRANSPORTS:
        raise UsageError(
            f"{TRANSPORT_ENV} must be one of {', '.join(sorted(_TRANSPORTS))}, got {raw!r}"
        )
    return raw


def default_http_client(timeout_s: float) -> httpx.Client:
    """The ``httpx.Client`` an API client creates when none is injected: ``timeout_s`` for
    every phase, keep-alive connections, proxies from the environment.

    By default its transport is ``journal._transport.LeanTransport`` (keep-alive
    ``http.client`` connections, no pool: about a third of the CPU per request), with httpx's
    own transport mounted for the URLs a proxy variable covers. ``JOURNAL_HTTP_TRANSPORT=httpx``
    selects httpx's own pool instead, sized for the engine's concurrency.

    Every connection httpx's pool may open is also kept alive (``max_keepalive_connections
    == max_connections``): httpcore 1.0.x compares the number of *all* its connections with
    ``max_keepalive_connections`` and, above it, closes idle connections, including one it
    has just handed to a request that has not started yet (encode/httpcore#1110). With the
    engine's 64 calls in flight and 20 kept alive, a request then failed with ``ReadError``
    (a POST, which is not retried) or hung until its read timeout; it also paid a new
    connection for most requests. Neither is limited: the engine's concurrency
    (``--concurrency``, ``JOURNAL_CONCURRENCY``) bounds the requests in flight, and a pool
    smaller than it would make requests wait for a connection, the state in which
    encode/httpcore#1110 also shows (seen with 256 calls on a pool of 100)."""
    limits = httpx.Limits(
        max_connections=None, max_keepalive_connections=None, keepalive_expiry=30.0
    )
    timeout = httpx.Timeout(timeout_s)
    if http_transport() == "httpx":
        return httpx.Client(timeout=timeout, limits=limits)
    from journal._transport import lean_http_client

    return lean_http_client(timeout, limits=limits)


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What an API's error body says: a message, its code and hint (each may be missing)."""

    message: str | None = None
    code: str | None = None
    hint: str | None = None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def json_error_detail(response: httpx.Response) -> ErrorDetail:
    """Leniently: ``{"error": {"message", "code", "hint"}}``, ``{"error": "..."}`` or
    ``{"message": "..."}``; otherwise nothing (the reason phrase and the body are used)."""
    try:
        payload = response.json()
    except ValueError:
        return ErrorDetail()
    if not isinstance(payload, dict):
        return ErrorDetail()
    error = payload.get("error")
    message = code = hint = None
    if isinstance(error, dict):
        message, code, hint = (_text(error.get(k)) for k in ("message", "code", "hint"))
    elif isinstance(error, str) and error:
        message = error
    return ErrorDetail(message or _text(payload.get("message")), code, hint)


# --- the client ----------------------------------------------------------------------------


class _Closing:
    """``with`` closes the object."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HttpClient(_Closing):
    """Requests to one API with the project's retry and error rules (see the module docstring).

    ``http``: an ``httpx.Client`` to send with (its own timeouts apply); without one, a client
    from ``default_http_client(timeout_s)`` is created, and closed by ``close()`` (as an
    injected one is with ``owns_http=True``). ``headers``
    go with every request (``Accept: application/json`` unless given). ``secrets``: values to
    mask in errors (tokens, keys). ``describe_error(response)`` reads an error body.
    ``status_notes``: text appended to the message of an error with that status (e.g. what to
    check on a 401). ``label``: the API's name in log lines. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | Secret] = (),
        describe_error: Callable[[httpx.Response], ErrorDetail] = json_error_detail,
        status_notes: Mapping[int, str] | None = None,
        idempotent_methods: Iterable[str] = IDEMPOTENT_METHODS,
        max_retries: int = 8,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        label: str = "http",
        logger: logging.Logger | None = None,
        owns_http: bool | None = None,
    ) -> None:
        self._base_url = base_url.strip().rstrip("/")
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._secrets = tuple(_plain(s) for s in secrets if len(_plain(s)) >= 4)
        self._describe_error = describe_error
        self._status_notes = dict(status_notes or {})
        self._idempotent_methods = frozenset(m.upper() for m in idempotent_methods)
        self.max_retries = max(0, max_retries)
        self.backoff_s = max(0.0, backoff_s)
        self.max_backoff_s = max(0.0, max_backoff_s)
        self._sleep = sleep
        self._label = label
        self._log = logger or logging.getLogger(__name__)
        self._owns_http = http is None if owns_http is None else owns_http
        self._http = http if http is not None else default_http_client(timeout_s)

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def http(self) -> httpx.Client:
        """The ``httpx.Client`` requests go through."""
        return self._http

    def __repr__(self) -> str:
        return f"HttpClient(base_url={self._base_url!r}, label={self._label!r})"

    def close(self) -> None:
        """Close the httpx client if this object created it (an injected one is left open)."""
        if self._owns_http:
            self._http.close()

    def is_idempotent(self, method: str) -> bool:
        return method.upper() in self._idempotent_methods

    # --- sending ---------------------------------------------------------------------

    def request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: _JsonBody | None = None,
        content: bytes | None = None,
        files: _Files | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        secrets: Iterable[str | Secret] = (),
        retries: int | None = None,
        check: bool = True,
    ) -> httpx.Response:
        """One logical request to ``base_url + path``, with retries; returns a 2xx answer or
        raises ours. ``op`` names the operation in errors; ``idempotent``: whether sending it
        twice is safe (default: by its method); ``secrets``: values of this request's body
        to mask in an error (a password the API might echo); ``retries``: this request's
        ``max_retries``; ``check=False`` returns whatever answer comes first (only transport
        failures are retried)."""
        method = method.upper()
        if idempotent is None:
            idempotent = self.is_idempotent(method)
        extra = tuple(_plain(s) for s in secrets if len(_plain(s)) >= 4)
        all_headers = {**self._headers, **(headers or {})}
        url = self._base_url + path
        attempts = (self.max_retries if retries is None else max(0, retries)) + 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    content=content,
                    files=files,
                    headers=all_headers,
                )
            except httpx.HTTPError as exc:
                retry = isinstance(exc, httpx.TransportError) and not isinstance(exc, _NEVER_RETRY)
                if not idempotent:
                    retry = retry and isinstance(exc, _NOT_SENT)
                if not retry or last:
                    error = self._transport_error(op, method, path, exc, attempt, idempotent, extra)
                    raise error from exc
                delay = self.delay(attempt, None)
                why = type(exc).__name__
            else:
                if response.is_success or not check:
                    return response
                status = response.status_code
                retry = status in _DID_NOTHING or (idempotent and status >= 500)
                if not retry or last:
                    raise self.api_error(
                        op,
                        response,
                        path=path,
                        attempts=attempt,
                        idempotent=idempotent,
                        secrets=extra,
                    )
                delay = self.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                why = f"HTTP {status}"
            self._log.info(
                "%s: %s %s failed (%s); retry %d of %d in %.2fs",
                self._label,
                method,
                path,
                why,
                attempt,
                attempts - 1,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt`` (1-based): the server's ``Retry-After``
        (capped), else exponential backoff with equal jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0 ** min(attempt - 1, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # --- answers ---------------------------------------------------------------------

    def json(self, op: str, response: httpx.Response) -> Mapping[str, Any]:
        """The body as a JSON object, else ``ApiError`` (code ``invalid_response``)."""
        try:
            payload = response.json()
        except ValueError as exc:
            raise self.invalid(op, response, "the body is not JSON") from exc
        if not isinstance(payload, dict):
            raise self.invalid(op, response, "the body is not a JSON object")
        return payload

    def invalid(self, op: str, response: httpx.Response, why: str) -> ApiError:
        """The error for an answer whose body cannot be used."""
        return ApiError(
            f"unexpected response: {self.scrub(why)}",
            status=response.status_code,
            method=response.request.method,
            path=self.path_of(response),
            code="invalid_response",
            operation=op,
        )

    def path_of(self, response: httpx.Response) -> str:
        """The request's path as this client's callers write it (without the base URL's
        path, and without the query)."""
        path = response.request.url.path
        prefix = httpx.URL(self._base_url).path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            return path[len(prefix) :]
        return path

    # --- errors ----------------------------------------------------------------------

    def scrub(self, text: str, extra: Iterable[str] = ()) -> str:
        """``text`` with every secret this client (or the request) knows masked."""
        for secret in (*self._secrets, *extra):
            text = text.replace(secret, MASK)
        return text

    def api_error(
        self,
        op: str,
        response: httpx.Response,
        *,
        path: str | None = None,
        attempts: int = 1,
        idempotent: bool | None = None,
        secrets: Iterable[str] = (),
        detail: ErrorDetail | None = None,
    ) -> ApiError:
        """The one place where an error answer becomes an exception of ours."""
        status = response.status_code
        method = response.request.method
        if idempotent is None:
            idempotent = self.is_idempotent(method)
        extra = tuple(secrets)
        if detail is None:
            detail = self._describe_error(response)
        message = detail.message
        if message is None:
            text = short(response.text)
            message = response.reason_phrase or "error"
            if text:
                message += f": {text}"
        message = self.scrub(short(message, 500), extra)
        note = self._status_notes.get(status)
        if note:
            message = f"{message}; {note}"
        if attempts > 1:
            message += f" (gave up after {attempts} attempts)"
        elif status >= 500 and not idempotent:
            message += _MAY_HAVE_ACTED
        common: dict[str, Any] = dict(
            status=status,
            method=method,
            path=self.path_of(response) if path is None else path,
            code=None if detail.code is None else self.scrub(detail.code, extra),
            hint=None if detail.hint is None else self.scrub(short(detail.hint, 500), extra),
            operation=op,
        )
        if status in (401, 403):
            return AuthenticationError(message, **common)
        if status == 404:
            return NotFoundError(message, **common)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitedError(message, retry_after=retry_after, **common)
        if status >= 500:
            return ServerError(message, **common)
        return RequestError(message, **common)

    def _transport_error(
        self,
        op: str,
        method: str,
        path: str,
        exc: httpx.HTTPError,
        attempts: int,
        idempotent: bool,
        extra: Sequence[str],
    ) -> TransportError:
        detail = self.scrub(short(str(exc)), extra) or "no details"
        message = f"{method} {path}: {type(exc).__name__}: {detail}"
        if attempts > 1:
            message += f" (gave up after {attempts} attempts)"
        elif (
            not idempotent
            and isinstance(exc, httpx.TransportError)
            and not isinstance(exc, _NOT_SENT + _NEVER_RETRY)
        ):
            message += _MAY_HAVE_ACTED
        return TransportError(message, operation=op)


class ApiClient(_Closing):
    """Base of a provider's API client: it keeps its ``HttpClient`` in ``self._api``;
    ``close()`` and leaving a ``with`` block close it."""

    _api: HttpClient

    def close(self) -> None:
        """Close the HTTP client if this object created it (an injected one is left open)."""
        self._api.close()


def _plain(value: str | Secret) -> str:
    return value.unencrypted if isinstance(value, Secret) else value


# --- pagination ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the answer, its JSON body, and the items it holds (unparsed)."""

    response: httpx.Response
    payload: Mapping[str, Any]
    items: list[object]


def _items(client: HttpClient, op: str, response: httpx.Response, key: str) -> Page:
    payload = client.json(op, response)
    items = payload.get(key)
    if not isinstance(items, list):
        raise client.invalid(op, response, f"{key!r} is not a list")
    return Page(response, payload, items)


def prisma_next_cursor(payload: Mapping[str, Any]) -> str | None:
    """``pagination.nextCursor`` unless ``pagination.hasMore`` is false."""
    pagination = payload.get("pagination")
    if not isinstance(pagination, dict) or pagination.get("hasMore") is False:
        return None
    cursor = pagination.get("nextCursor")
    return cursor if isinstance(cursor, str) and cursor else None


def paginate_cursor(
    client: HttpClient,
    op: str,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    limit: int | None = None,
    items_key: str = "data",
    cursor_param: str = "cursor",
    limit_param: str = "limit",
    next_cursor: Callable[[Mapping[str, Any]], str | None] = prisma_next_cursor,
) -> Iterator[Page]:
    """The pages of a cursor-paged list (``GET path``), lazily. The first request sends
    ``params`` and ``limit``; each next one adds the cursor that ``next_cursor(payload)``
    reads (by default Prisma's ``pagination.nextCursor`` / ``hasMore``). A cursor the API
    gives twice stops the walk with ``ProviderError`` rather than looping."""
    query: dict[str, str | int] = dict(params or {})
    if limit is not None:
        query[limit_param] = limit
    seen: set[str] = set()
    while True:
        response = client.request(op, "GET", path, params=query, headers=headers)
        page = _items(client, op, response, items_key)
        yield page
        cursor = next_cursor(page.payload)
        if cursor is None:
            return
        if cursor in seen:
            raise ProviderError(
                f"GET {path}: the API returned the cursor {cursor!r} twice; "
                "stopped paging to avoid a loop",
                operation=op,
            )
        seen.add(cursor)
        query[cursor_param] = cursor


def paginate_pages(
    client: HttpClient,
    op: str,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    per_page: int | None = None,
    items_key: str = "result",
    info_key: str = "result_info",
    page_param: str = "page",
    per_page_param: str = "per_page",
) -> Iterator[Page]:
    """The pages of a numbered-page list (``GET path?page=N&per_page=M``), lazily, as
    Cloudflare's ``result_info`` (``page``, ``per_page``, ``count``, ``total_count``,
    ``total_pages``) describes them. The walk ends at an empty page, a page shorter than
    ``per_page``, when ``total_pages`` or ``total_count`` is reached, or when the answer has
    no ``result_info``. An API that answers another page than asked for stops the walk with
    ``ProviderError`` (it ignores the parameter, and would be read forever)."""
    number = 1
    while True:
        query: dict[str, str | int] = {**(params or {}), page_param: number}
        if per_page is not None:
            query[per_page_param] = per_page
        response = client.request(op, "GET", path, params=query, headers=headers)
        page = _items(client, op, response, items_key)
        info = page.payload.get(info_key)
        if isinstance(info, dict) and _int(info.get("page")) not in (None, number):
            raise ProviderError(
                f"GET {path}: asked for page {number}, the API answered page "
                f"{info.get('page')!r}; stopped paging to avoid a loop",
                operation=op,
            )
        yield page
        if not isinstance(info, dict) or not page.items:
            return
        size = _int(info.get("per_page")) or per_page
        total_pages = _int(info.get("total_pages"))
        total_count = _int(info.get("total_count"))
        if total_pages is not None and number >= total_pages:
            return
        if total_count is not None and size and number * size >= total_count:
            return
        if size and len(page.items) < size:
            return
        if total_pages is None and total_count is None and not size:
            return  # nothing says there is more
        number += 1


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
