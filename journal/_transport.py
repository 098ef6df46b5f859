"""A lean ``httpx`` transport: keep-alive ``http.client`` connections, no connection pool.

``httpx`` stays the client (its request and response objects, timeouts, redirects, auth, event
hooks, proxies); this is only the layer below it, its documented extension point
(``httpx.BaseTransport``). It exists because httpcore's pool costs about 0.8 ms of CPU per
request (it scans every connection on every request and response), about half of our client
CPU at N = 1,000 (``bench/bench_http.py``).

**Connections.** Idle connections wait on a stack per origin (scheme, host, port); a request
takes the most recently used one (LIFO: the warmest; the surplus of a burst ages out) and
puts it back once its response has been read to the end. Taking and putting back are single
``list.pop`` / ``list.append`` calls, atomic under the GIL: no lock, no scan. A stack per
origin rather than a connection per thread (``threading.local``): a connection is held only
while a request uses it, so a thread busy with something else (the engine's bookkeeping, a
provider's wait between polls) holds none and the connections open are at most the requests
in flight, not the threads that ever sent one; connections do not depend on which threads
send (threads come and go: the engine starts a pool per run, other callers their own), and
``close()`` closes every idle one at once, where connections in thread-local storage would
wait for their threads to end. At most ``max_idle_per_origin`` are kept, each for
``keepalive_expiry`` seconds. There is no pool to wait for, so no
``PoolTimeout`` and no encode/httpcore#1110.

**TLS** uses the context ``httpx`` would build (``httpx.create_ssl_context(verify, cert,
trust_env)``: certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` with ``trust_env``; ``verify``
may be False or an ``ssl.SSLContext``), made on the first ``https`` connection only, with ALPN
``http/1.1``. HTTP/2 is not offered.

**Timeouts** come from the request (``httpx`` puts its ``Timeout`` in the request's
extensions): ``connect`` for the TCP connect and the TLS handshake, then ``write`` while the
request is sent and ``read`` for every wait on the answer.

**A connection the server closed while idle** is found before use: a socket that is readable
while no request is outstanding has seen the server's FIN (or stray bytes): it is closed and
another is taken. When reusing an idle connection still fails before one byte of the request
was written, the request is sent once more on a new connection (nothing can have been
processed). Any failure after a byte was written is raised, never retried here: whether to
send a request again (a ``POST`` the server may have acted on) is ``journal._http``'s decision.

**Errors** are httpx's, as its own transport raises them: ``ConnectError`` /
``ConnectTimeout`` (nothing of the request was sent: also a new connection that fails before
the first byte is written), ``WriteError`` / ``WriteTimeout`` (while
sending), ``ReadTimeout``, ``RemoteProtocolError`` (the server closed the connection without an
answer, or in the middle of one), ``ReadError`` (another failure while reading),
``LocalProtocolError`` (a request ``http.client`` refuses to write).

**Answers**: ``Content-Length``, chunked and read-until-close bodies, ``HEAD`` / 204 / 304
without a body, ``Connection: close`` (the connection is not reused), HTTP/1.0 servers. The
body is streamed: ``httpx`` reads it (``Client.send(stream=True)`` iterates it); a response
closed before its end closes its connection.

Proxies are not this transport's: ``lean_http_client`` mounts ``httpx.HTTPTransport(proxy=)``
for the proxies the environment names (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``), as ``httpx.Client`` does for its own transport: ``httpx`` reads the environment's
proxies only when no ``transport=`` is given.
"""

from __future__ import annotations

import http.client
import math
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

import httpx
from httpx._utils import get_environment_proxies

__all__ = ["LeanTransport", "environment_proxy_mounts", "lean_http_client"]

#: read size for response bodies
_CHUNK: Final = 64 * 1024
_Origin = tuple[str, str, int]


def _poll_readable(sock: socket.socket) -> bool:
    """True when ``sock`` has something to read (or is at EOF / in error) right now."""
    try:
        poller = select.poll()
    except AttributeError:  # pragma: no cover - platforms without poll()
        readable, _, errored = select.select([sock], [], [sock], 0)
        return bool(readable or errored)
    poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class _Connection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` that counts the bytes it wrote for the current
    request and connects with the connect timeout."""

    sent: int = 0
    idle_since: float = 0.0

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        view = memoryview(data).cast("B")
        while view:
            count = self.sock.send(view)
            self.sent += count
            view = view[count:]


class _TLSConnection(_Connection):
    def __init__(
        self, host: str, port: int, *, timeout: float | None, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class _Body(httpx.SyncByteStream):
    """A response body read from its connection; the connection goes back to its stack at
    the end of a complete body (closed otherwise)."""

    def __init__(
        self,
        transport: LeanTransport,
        origin: _Origin,
        conn: _Connection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._conn: _Connection | None = conn
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            if self._request.method == "HEAD" or response.length == 0:
                response.close()  # HEAD, 204, 304, Content-Length: 0: nothing to read
            elif response.chunked or response.length is None:
                # chunked (http.client decodes it and raises IncompleteRead on a short
                # body), or read until the server closes (HTTP/1.0 style)
                while chunk := response.read1(_CHUNK):
                    yield chunk
            else:
                while response.length:
                    chunk = response.read(min(_CHUNK, response.length))
                    if not chunk:  # EOF before Content-Length bytes
                        raise http.client.IncompleteRead(b"", response.length)
                    yield chunk
        except http.client.IncompleteRead as exc:
            self._discard()
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({_describe(exc)})",
                request=self._request,
            ) from exc
        except (http.client.HTTPException, ValueError) as exc:  # a malformed chunk
            self._discard()
            raise httpx.RemoteProtocolError(_describe(exc), request=self._request) from exc
        except TimeoutError as exc:
            self._discard()
            raise httpx.ReadTimeout(_describe(exc), request=self._request) from exc
        except OSError as exc:
            self._discard()
            raise httpx.ReadError(_describe(exc), request=self._request) from exc
        self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._response.isclosed() and not self._response.will_close:
            self._transport._put(self._origin, conn)
        else:
            conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._response.close()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        # complete: the connection is reused; read in part: it has unread bytes, close it
        if self._conn is not None and self._response.isclosed():
            self._release()
        else:
            self._discard()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class LeanTransport(httpx.BaseTransport):
    """HTTP/1.1 over keep-alive ``http.client`` connections (see the module docstring).

    ``verify``, ``cert`` and ``trust_env`` mean what they mean to ``httpx.HTTPTransport``.
    ``max_idle_per_origin``: idle connections kept per origin (None: every one, so at most as
    many as requests were in flight at once); ``keepalive_expiry``: seconds an idle
    connection is kept."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        max_idle_per_origin: int | None = None,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._verify = verify
        self._cert = cert
        self._trust_env = trust_env
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()
        self._idle: dict[_Origin, list[_Connection]] = {}
        self.max_idle_per_origin = (
            sys.maxsize if max_idle_per_origin is None else max_idle_per_origin
        )
        self.keepalive_expiry = keepalive_expiry
        self._closed = False

    # --- connections -----------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context (made once, on first use: building one costs ~30 ms)."""
        context = self._ssl_context
        if context is None:
            with self._ssl_lock:
                context = self._ssl_context
                if context is None:
                    context = httpx.create_ssl_context(
                        verify=self._verify, cert=self._cert, trust_env=self._trust_env
                    )
                    context.set_alpn_protocols(["http/1.1"])
                    self._ssl_context = context
        return context

    def idle_connections(self) -> int:
        """How many connections wait idle (all origins)."""
        return sum(len(stack) for stack in list(self._idle.values()))

    def _take(self, origin: _Origin) -> _Connection | None:
        """An idle connection to ``origin`` that the server has not closed, if any."""
        stack = self._idle.get(origin)
        if not stack:
            return None
        now = time.monotonic()
        while True:
            try:
                conn = stack.pop()
            except IndexError:
                return None
            sock = conn.sock
            if (
                sock is None
                or now - conn.idle_since > self.keepalive_expiry
                or _poll_readable(sock)
            ):
                conn.close()
                continue
            return conn

    def _new(self, origin: _Origin, connect_timeout: float | None) -> _Connection:
        scheme, host, port = origin
        if scheme == "https":
            return _TLSConnection(host, port, timeout=connect_timeout, context=self.ssl_context())
        return _Connection(host, port, timeout=connect_timeout)

    def _put(self, origin: _Origin, conn: _Connection) -> None:
        stack = self._idle.get(origin)
        if stack is None:
            stack = self._idle.setdefault(origin, [])
        if self._closed or conn.sock is None or len(stack) >= self.max_idle_per_origin:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        stack.append(conn)
        if self._closed:  # closed meanwhile: close() may have missed it
            self._close_idle()

    def _close_idle(self) -> None:
        for stack in list(self._idle.values()):
            while True:
                try:
                    stack.pop().close()
                except IndexError:
                    break

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when their response
        ends."""
        self._closed = True
        self._close_idle()

    # --- requests --------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'.", request=request
            )
        if not url.host:
            raise httpx.UnsupportedProtocol("Request URL is missing a host.", request=request)
        if self._closed:
            raise RuntimeError("Cannot send a request, as the transport has been closed.")
        origin: _Origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        body = _body(request)
        conn = self._take(origin)
        if conn is not None:
            try:
                response = self._exchange(conn, request, body, timeouts)
            except _NothingSent:
                pass  # the server closed it under us: no byte went out, use a new one
            else:
                return self._response(origin, conn, response, request)
        conn = self._new(origin, timeouts.get("connect"))
        self._connect(conn, request)
        try:
            response = self._exchange(conn, request, body, timeouts)
        except _NothingSent as exc:
            # dropped right after connecting: not one byte went out, as a refused connection
            message = f"connection closed before the request was sent: {_describe(exc.cause)}"
            raise httpx.ConnectError(message, request=request) from exc.cause
        return self._response(origin, conn, response, request)

    def _connect(self, conn: _Connection, request: httpx.Request) -> None:
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(_describe(exc), request=request) from exc
        except (OSError, ValueError) as exc:  # refused, DNS, TLS handshake or certificate
            conn.close()
            raise httpx.ConnectError(_describe(exc), request=request) from exc

    def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> http.client.HTTPResponse:
        """Send the request on an open connection and read the answer's head."""
        sock = conn.sock
        assert sock is not None
        conn.sent = 0
        try:
            sock.settimeout(timeouts.get("write"))
            conn.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                conn.putheader(name, value)
            conn.endheaders(body)
        except (ValueError, http.client.CannotSendRequest) as exc:
            conn.close()
            raise httpx.LocalProtocolError(_describe(exc), request=request) from exc
        except OSError as exc:
            conn.close()
            if conn.sent == 0 and not isinstance(exc, TimeoutError):
                raise _NothingSent(exc) from exc
            if isinstance(exc, TimeoutError):
                raise httpx.WriteTimeout(_describe(exc), request=request) from exc
            raise httpx.WriteError(_describe(exc), request=request) from exc
        try:
            sock.settimeout(timeouts.get("read"))
            return conn.getresponse()
        except http.client.RemoteDisconnected as exc:
            conn.close()
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from exc
        except TimeoutError as exc:
            conn.close()
            raise httpx.ReadTimeout(_describe(exc), request=request) from exc
        except (http.client.HTTPException, ValueError) as exc:  # a malformed answer
            conn.close()
            raise httpx.RemoteProtocolError(_describe(exc), request=request) from exc
        except OSError as exc:
            conn.close()
            raise httpx.ReadError(_describe(exc), request=request) from exc

    def _response(
        self,
        origin: _Origin,
        conn: _Connection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> httpx.Response:
        version = b"HTTP/1.0" if response.version == 10 else b"HTTP/1.1"
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_Body(self, origin, conn, response, request),
            extensions={
                "http_version": version,
                "reason_phrase": response.reason.encode("latin-1", "replace"),
            },
        )


class _NothingSent(Exception):
    """Sending failed before a byte of the request was written."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _body(request: httpx.Request) -> bytes | None:
    """The request body as bytes, chunk-encoded when the request says so (a generator body
    is read first: ``journal._http`` sends bytes)."""
    content = request.read()
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        if not content:
            return b"0\r\n\r\n"
        return b"%x\r\n%s\r\n0\r\n\r\n" % (len(content), content)
    return content or None


# --- a client ------------------------------------------------------------------------------


def environment_proxy_mounts(
    *, verify: ssl.SSLContext | str | bool = True, limits: httpx.Limits | None = None
) -> dict[str, httpx.BaseTransport | None]:
    """What ``httpx.Client(trust_env=True)`` mounts for the environment's proxies when it
    builds its own transport: an ``httpx.HTTPTransport(proxy=...)`` for each proxied pattern,
    and ``None`` (the client's default transport) for each ``NO_PROXY`` pattern."""
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for pattern, proxy_url in get_environment_proxies().items():
        if proxy_url is None:
            mounts[pattern] = None
        else:
            mounts[pattern] = httpx.HTTPTransport(
                verify=verify, proxy=proxy_url, limits=limits or httpx.Limits()
            )
    return mounts


def lean_http_client(
    timeout: httpx.Timeout, *, limits: httpx.Limits, trust_env: bool = True
) -> httpx.Client:
    """``httpx.Client`` on a :class:`LeanTransport` (direct connections) and httpx's own
    transport for proxied URLs (``limits`` applies to those)."""
    mounts = environment_proxy_mounts(limits=limits) if trust_env else {}
    transport = LeanTransport(
        trust_env=trust_env,
        max_idle_per_origin=limits.max_keepalive_connections,
        keepalive_expiry=math.inf if limits.keepalive_expiry is None else limits.keepalive_expiry,
    )
    return httpx.Client(timeout=timeout, transport=transport, mounts=mounts, trust_env=trust_env)
