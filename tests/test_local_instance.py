"""The local API's identity, asked with the standard library (``_resources.local_instance``)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from journal.provider import TransportError
from journal.resources.prisma_postgres._resources import local_instance


def _serve(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def answers(request: pytest.FixtureRequest) -> Iterator[str]:
    status, body = request.param
    yield from _serve(status, body)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((200, json.dumps({"status": "ok", "instance": "0123abcd"}).encode()), "0123abcd"),
        ((200, b'{"status": "ok"}'), None),  # an API that gives no identity
        ((200, b"not json"), None),
        ((500, b"{}"), None),
    ],
    indirect=["answers"],
)
def test_the_identity_or_none(answers: str, expected: str | None) -> None:
    assert local_instance(answers) == expected
    assert local_instance(answers + "/v1/") == expected  # the API's URL may end in /v1


def test_nothing_listening_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError, match="does not answer"):
        local_instance(f"http://127.0.0.1:{port}", attempts=2)
