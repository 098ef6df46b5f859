"""The "remote" side of the guide's example provider: a tiny JSON API on loopback.

Two kinds of objects, ``buckets`` and ``functions``, each ``{"id", "name", ...}``:
``GET /v1/<kind>?name=N`` lists (optionally by name), ``POST /v1/<kind>`` creates,
``GET``/``PATCH``/``DELETE /v1/<kind>/<id>`` read, change and delete one (404 when it is not
there). Every request needs ``Authorization: Bearer <token>`` with a token it accepts.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

KINDS = ("buckets", "functions")


class TinyApi:
    """``with TinyApi(token="t") as api: api.url`` (objects live in ``api.objects``)."""

    def __init__(self, *, token: str = "tiny-token", host: str = "127.0.0.1", port: int = 0):
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TinyApi:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(api: TinyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            with api.lock:
                api.requests.append((method, url.path))
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                return self._answer(401, {"error": "bad token"})
            if len(parts) < 2 or parts[0] != "v1" or parts[1] not in KINDS or len(parts) > 3:
                return self._answer(404, {"error": "no such path"})
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            store = api.objects[parts[1]]
            with api.lock:
                if len(parts) == 2 and method == "GET":
                    name = parse_qs(url.query).get("name", [None])[0]
                    items = [o for o in store.values() if name is None or o["name"] == name]
                    return self._answer(200, {"items": items})
                if len(parts) == 2 and method == "POST":
                    obj = {**body, "id": parts[1][0] + "-" + uuid.uuid4().hex[:12]}
                    store[obj["id"]] = obj
                    return self._answer(201, obj)
                found = store.get(parts[2]) if len(parts) == 3 else None
                if found is None:
                    return self._answer(404, {"error": "not found"})
                if method == "GET":
                    return self._answer(200, found)
                if method == "PATCH":
                    found.update({k: v for k, v in body.items() if k != "id"})
                    return self._answer(200, found)
                if method == "DELETE":
                    del store[parts[2]]
                    return self._answer(204)
            return self._answer(405, {"error": "method not allowed"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler
