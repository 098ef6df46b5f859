"""The lean transport (``journal._transport``) over real loopback HTTP: each test starts its own
small threaded server on its own port and scripts what it answers."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from journal import _transport
from journal._errors import TransportError, UsageError
from journal._http import HttpClient, default_http_client, http_transport
from journal._transport import LeanTransport, environment_proxy_mounts, lean_http_client

# --- a scripted loopback server -------------------------------------------------------------

Behaviour = Callable[["_Handler"], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    behaviour: Behaviour
    http10 = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, int, bytes]] = []  # method, path, client port, body
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def ports(self) -> set[int]:
        with self.lock:
            return {port for _, _, port, _ in self.requests}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    disable_nagle_algorithm = True  # no delayed-ACK wait between headers and body

    @property
    def protocol_version(self) -> str:  # type: ignore[override]
        return "HTTP/1.0" if self.server.http10 else "HTTP/1.1"

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.client_address[1], body))
        self.server.behaviour(self)

    do_GET = do_POST = do_HEAD = do_DELETE = _any

    def answer(self, status: int = 200, body: bytes = b"{}", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Content_Length" not in headers and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection now, whatever was (not) sent."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _ok(handler: _Handler) -> None:
    handler.answer(200, b'{"ok": true}', Content_Type="application/json")


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    s.behaviour = _ok
    thread = threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield s
    s.release.set()
    s.shutdown()
    s.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(transport=LeanTransport(), timeout=10.0) as c:
        yield c


def _lean(c: httpx.Client) -> LeanTransport:
    transport = c._transport
    assert isinstance(transport, LeanTransport)
    return transport


def _idle_socket(c: httpx.Client) -> socket.socket:
    (stack,) = _lean(c)._idle.values()
    (conn,) = stack
    assert conn.sock is not None
    return conn.sock


def _wait_for_eof(sock: socket.socket) -> None:
    """Block until the server's close of ``sock`` has reached this side."""
    sock.settimeout(10.0)
    assert sock.recv(1, socket.MSG_PEEK) == b""


# --- keep-alive ------------------------------------------------------------------------------


def test_one_thread_reuses_one_connection(server: _Server, client: httpx.Client) -> None:
    for _ in range(5):
        assert client.get(server.url + "/x").json() == {"ok": True}
    assert client.post(server.url + "/x", json={"a": 1}).status_code == 200
    assert len(server.requests) == 6
    assert len(server.ports()) == 1
    assert server.requests[-1][3] == b'{"a":1}'
    assert _lean(client).idle_connections() == 1


def test_connections_outlive_the_threads_that_used_them(
    server: _Server, client: httpx.Client
) -> None:
    """The engine starts a new thread pool per run: its connections carry over."""
    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: client.get(server.url).raise_for_status(), range(4)))
    assert 1 <= len(server.ports()) <= 4 < len(server.requests)


def test_many_threads_at_once_each_get_a_connection(server: _Server) -> None:
    gate = threading.Barrier(32)

    def slow(handler: _Handler) -> None:
        if handler.path == "/wait":
            gate.wait(timeout=30)
        _ok(handler)

    server.behaviour = slow
    with HttpClient(server.url, max_retries=0) as api:

        def call(i: int) -> int:
            return api.request("op", "POST", "/wait", json={"i": i}).status_code

        with ThreadPoolExecutor(32) as pool:
            assert set(pool.map(call, range(32))) == {200}
        # all 32 were in flight together, on 32 connections, now all idle and reused
        assert len(server.ports()) == 32
        with ThreadPoolExecutor(32) as pool:
            assert set(pool.map(lambda i: api.request("op", "GET", "/").status_code, range(64)))
        assert len(server.ports()) == 32


def test_head_204_304_and_empty_bodies_keep_the_connection(
    server: _Server, client: httpx.Client
) -> None:
    def by_path(handler: _Handler) -> None:
        status = int(handler.path.strip("/") or 200)
        handler.answer(status, b"" if status != 200 else b"hello", ETag='"1"')

    server.behaviour = by_path
    head = client.head(server.url + "/200")
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", "5")
    assert client.get(server.url + "/204").status_code == 204
    assert client.get(server.url + "/304").content == b""
    assert client.get(server.url + "/200").content == b"hello"
    assert len(server.ports()) == 1


def test_chunked_answer_is_decoded_and_the_connection_reused(
    server: _Server, client: httpx.Client
) -> None:
    def chunked(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in (b'{"a": ', b"1" * 70000, b"}"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")

    server.behaviour = chunked
    for _ in range(2):
        assert client.get(server.url).content == b'{"a": ' + b"1" * 70000 + b"}"
    assert len(server.ports()) == 1


def test_a_chunked_request_body_is_sent_chunked(server: _Server, client: httpx.Client) -> None:
    def echo(handler: _Handler) -> None:
        assert handler.headers["Transfer-Encoding"] == "chunked"
        body = b""
        while size := int(handler.rfile.readline().strip(), 16):
            body += handler.rfile.read(size)
            handler.rfile.readline()
        handler.rfile.readline()
        handler.answer(200, body)

    server.behaviour = echo
    parts = iter([b"ab", b"cd"])
    assert client.post(server.url, content=parts).content == b"abcd"
    assert client.post(server.url, content=iter([b""])).content == b""


def test_connection_close_answers_are_not_reused(server: _Server, client: httpx.Client) -> None:
    def closing(handler: _Handler) -> None:
        handler.answer(200, b"bye", Connection="close")
        handler.close_connection = True

    server.behaviour = closing
    for _ in range(3):
        assert client.get(server.url).content == b"bye"
    assert len(server.ports()) == 3
    assert _lean(client).idle_connections() == 0


def test_http10_answer_read_until_close(server: _Server, client: httpx.Client) -> None:
    def until_close(handler: _Handler) -> None:
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(b"no length")

    server.http10 = True
    server.behaviour = until_close
    for _ in range(2):
        response = client.get(server.url)
        assert (response.content, response.http_version) == (b"no length", "HTTP/1.0")
    assert len(server.ports()) == 2


def test_a_response_closed_early_closes_its_connection(
    server: _Server, client: httpx.Client
) -> None:
    server.behaviour = lambda h: h.answer(200, b"x" * 300_000)
    with client.stream("GET", server.url) as response:
        first = next(response.iter_raw())
        assert first and len(first) < 300_000
    assert _lean(client).idle_connections() == 0
    assert len(client.get(server.url).content) == 300_000
    assert len(server.ports()) == 2


def test_reason_phrase_and_headers_come_through(server: _Server, client: httpx.Client) -> None:
    server.behaviour = lambda h: h.answer(418, b"tea", X_Thing="a")
    response = client.get(server.url + "/p?q=1%202")
    assert (response.status_code, response.reason_phrase) == (418, "I'm a Teapot")
    assert response.headers["x-thing"] == "a"
    assert server.requests[0][1] == "/p?q=1%202"


# --- a connection the server closed ----------------------------------------------------------


def _close_after_answer(handler: _Handler) -> None:
    """Answer as if keeping the connection alive, then close it (an idle timeout)."""
    _ok(handler)
    handler.drop()


def test_an_idle_connection_the_server_closed_is_not_used(
    server: _Server, client: httpx.Client
) -> None:
    server.behaviour = _close_after_answer
    client.get(server.url).raise_for_status()
    _wait_for_eof(_idle_socket(client))
    server.behaviour = _ok
    assert client.post(server.url, json={"n": 1}).status_code == 200
    assert [m for m, *_ in server.requests] == ["GET", "POST"]
    assert len(server.ports()) == 2


def test_reuse_failing_before_a_byte_is_written_is_sent_again(
    server: _Server, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server closes between the idle check and the write (here: the check misses it
    and the socket cannot write): nothing went out, so a POST goes on a new connection."""
    client.get(server.url).raise_for_status()
    sock = _idle_socket(client)
    sock.shutdown(socket.SHUT_WR)  # the next write fails with EPIPE, nothing written
    monkeypatch.setattr("journal._transport._poll_readable", lambda sock: False)
    assert client.post(server.url, json={"n": 1}).status_code == 200
    assert [m for m, *_ in server.requests] == ["GET", "POST"]
    assert len(server.ports()) == 2


def test_a_post_written_to_a_closed_connection_is_not_sent_again(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request went out on a connection the server had closed (the idle check missed
    it): the server may have read it, so neither the transport nor HttpClient repeats it."""
    server.behaviour = _close_after_answer
    with HttpClient(server.url, max_retries=3, sleep=lambda s: None) as api:
        api.request("read", "GET", "/").raise_for_status()
        _wait_for_eof(_idle_socket(api.http))
        monkeypatch.setattr("journal._transport._poll_readable", lambda sock: False)
        with pytest.raises(TransportError, match="not retried") as info:
            api.request("create", "POST", "/things", json={"n": 1})
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError | httpx.WriteError)
    assert [m for m, *_ in server.requests] == ["GET"]


def test_a_new_connection_failing_before_a_byte_is_written_is_a_connect_error(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the request left: as a refused connection, so HttpClient may send a POST
    again."""
    connect = _transport._Connection.connect
    broken: list[int] = []

    def connect_once_broken(self: _transport._Connection) -> None:
        connect(self)
        if not broken:
            assert self.sock is not None
            self.sock.shutdown(socket.SHUT_WR)
            broken.append(1)

    monkeypatch.setattr(_transport._Connection, "connect", connect_once_broken)
    sleeps: list[float] = []
    with HttpClient(server.url, max_retries=2, sleep=sleeps.append) as api:
        assert api.request("create", "POST", "/things", json={"n": 1}).status_code == 200
    assert [m for m, *_ in server.requests] == ["POST"]
    assert len(sleeps) == 1  # one ConnectError, retried


def test_server_closing_without_an_answer(server: _Server) -> None:
    server.behaviour = _Handler.drop
    with HttpClient(server.url, max_retries=2, sleep=lambda s: None) as api:
        with pytest.raises(TransportError, match="not retried") as info:
            api.request("create", "POST", "/things", json={"n": 1})
        assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
        assert "without sending a response" in str(info.value)
        assert len(server.requests) == 1
        with pytest.raises(TransportError, match="gave up after 3 attempts"):
            api.request("read", "GET", "/things")  # idempotent: retried by HttpClient
    assert len(server.requests) == 4


def test_server_closing_in_the_middle_of_a_body(server: _Server, client: httpx.Client) -> None:
    def short(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"only ten..")
        handler.drop()

    server.behaviour = short
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        client.get(server.url)
    assert _lean(client).idle_connections() == 0


def test_server_closing_in_the_middle_of_a_chunked_body(
    server: _Server, client: httpx.Client
) -> None:
    def short(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"10\r\nonly five")
        handler.drop()

    server.behaviour = short
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url)


def test_a_malformed_chunk_is_a_protocol_error(server: _Server, client: httpx.Client) -> None:
    def bad(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"zz\r\nnot a size\r\n0\r\n\r\n")

    server.behaviour = bad
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url)
    assert _lean(client).idle_connections() == 0


def test_a_malformed_answer_is_a_protocol_error(server: _Server, client: httpx.Client) -> None:
    def garbage(handler: _Handler) -> None:
        handler.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
        handler.drop()

    server.behaviour = garbage
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url)


# --- timeouts and connect failures -----------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_listening_is_a_connect_error_and_a_post_is_retried() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    sleeps: list[float] = []
    api = HttpClient(url, max_retries=2, sleep=sleeps.append)
    with api, pytest.raises(TransportError, match=r"ConnectError.*after 3 attempts") as info:
        api.request("create", "POST", "/things", json={})
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(sleeps) == 2


def test_a_server_that_never_answers_is_a_read_timeout(server: _Server) -> None:
    server.behaviour = lambda h: server.release.wait(30)
    c = httpx.Client(transport=LeanTransport(), timeout=httpx.Timeout(10.0, read=0.2))
    with c, pytest.raises(httpx.ReadTimeout):
        c.post(server.url, json={})
    api = HttpClient(server.url, timeout_s=0.2, max_retries=2)
    with api, pytest.raises(TransportError, match=r"ReadTimeout.*not retried"):
        api.request("create", "POST", "/things", json={})
    assert len(server.requests) == 2


def test_a_body_that_stops_coming_is_a_read_timeout(server: _Server, client: httpx.Client) -> None:
    def stall(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "10")
        handler.end_headers()
        handler.wfile.write(b"12345")
        handler.wfile.flush()
        server.release.wait(30)

    server.behaviour = stall
    with pytest.raises(httpx.ReadTimeout):
        client.get(server.url, timeout=httpx.Timeout(10.0, read=0.2))


def test_bad_requests_are_ours(server: _Server, client: httpx.Client) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        _lean(client).handle_request(httpx.Request("GET", "ftp://127.0.0.1/x"))
    with pytest.raises(httpx.LocalProtocolError):
        client.get(server.url, headers={"X-Bad": "a\r\nInjected: 1"})
    assert client.get(server.url).status_code == 200


def test_close_closes_idle_connections(server: _Server) -> None:
    transport = LeanTransport()
    with httpx.Client(transport=transport) as c:
        c.get(server.url).raise_for_status()
        sock = _idle_socket(c)
    assert sock.fileno() == -1
    assert transport.idle_connections() == 0
    with pytest.raises(RuntimeError, match="closed"):
        transport.handle_request(httpx.Request("GET", server.url))


# --- TLS ------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(server: _Server, tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield server, cert


def test_tls_uses_the_certificates_httpx_would_trust(
    tls_server: tuple[_Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    url = server.url.replace("http://", "https://")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    c = httpx.Client(transport=LeanTransport(), timeout=10.0)  # certifi's bundle
    with c, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        c.get(url)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as httpx: trusted with trust_env
    with httpx.Client(transport=LeanTransport(), timeout=10.0) as c:
        for _ in range(3):
            assert c.get(url).json() == {"ok": True}
    assert len(server.ports()) == 1
    c = httpx.Client(transport=LeanTransport(trust_env=False), timeout=10.0)
    with c, pytest.raises(httpx.ConnectError):
        c.get(url)
    monkeypatch.delenv("SSL_CERT_FILE")
    with httpx.Client(transport=LeanTransport(verify=False), timeout=10.0) as c:
        assert c.get(url).status_code == 200
    context = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(transport=LeanTransport(verify=context), timeout=10.0) as c:
        assert c.get(url).status_code == 200


# --- proxies --------------------------------------------------------------------------------


def test_proxies_from_the_environment_go_through_httpx(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``httpx.Client(transport=...)`` ignores the proxy variables: the client that
    ``default_http_client`` builds mounts httpx's proxy transport itself; NO_PROXY hosts
    and every other URL use the lean transport."""
    proxy = _Server()
    proxy.behaviour = lambda h: h.answer(200, b"via proxy")
    threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        monkeypatch.delenv("ALL_PROXY", raising=False)
        monkeypatch.delenv("all_proxy", raising=False)
        monkeypatch.delenv("HTTPS_PROXY", raising=False)
        monkeypatch.delenv("https_proxy", raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        with default_http_client(10.0) as c:
            assert isinstance(c._transport, LeanTransport)
            far = httpx.URL("http://api.example.test/v1/x")
            assert isinstance(c._transport_for_url(far), httpx.HTTPTransport)
            assert c._transport_for_url(httpx.URL(server.url)) is c._transport
            assert c.get("http://api.example.test/v1/x").content == b"via proxy"
            assert c.get(server.url).json() == {"ok": True}
        assert [(m, p) for m, p, *_ in proxy.requests] == [("GET", "http://api.example.test/v1/x")]
        assert [(m, p) for m, p, *_ in server.requests] == [("GET", "/")]
        monkeypatch.setenv("NO_PROXY", "*")
        monkeypatch.setenv("no_proxy", "*")
        assert environment_proxy_mounts() == {}
        with lean_http_client(httpx.Timeout(5.0), limits=httpx.Limits(), trust_env=False) as c:
            assert c._mounts == {}
    finally:
        proxy.shutdown()
        proxy.server_close()


# --- choosing the transport ------------------------------------------------------------------


def test_the_transport_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_HTTP_TRANSPORT", raising=False)
    assert http_transport() == "lean"
    with default_http_client(5.0) as c:
        assert isinstance(c._transport, LeanTransport)
    monkeypatch.setenv("JOURNAL_HTTP_TRANSPORT", "httpx")
    with default_http_client(5.0) as c:
        assert isinstance(c._transport, httpx.HTTPTransport)
    monkeypatch.setenv("JOURNAL_HTTP_TRANSPORT", "pycurl")
    with pytest.raises(UsageError, match="JOURNAL_HTTP_TRANSPORT must be one of httpx, lean"):
        default_http_client(5.0)
