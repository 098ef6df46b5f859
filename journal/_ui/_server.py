"""The HTTP side of ``journal ui``: Python's ``ThreadingHTTPServer`` on 127.0.0.1.

Every URL starts with a random token (``/<token>/runs``); a request without it, or with
another, gets 403 and nothing else, and so does a request whose ``Host`` is not the loopback
address it was served on (DNS rebinding). Only GET and HEAD exist: the server has no way to
change the journal, and the rollback preview runs on a read-only view of it. Responses are
``no-store`` and carry a Content-Security-Policy that allows the package's own script and
stylesheet only (no CDN, no inline script).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from .._credentials import profile_credentials
from .._errors import JournalError, UnknownSequenceError, UsageError
from .._history import _split_stream, parse_since
from .._journal import Journal
from .._ops import rollback_stage
from . import _pages
from ._model import EventFilter, Model, ReadOnlyJournal, RunFilter

__all__ = ["UIServer"]

STATIC: Final = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: events of a run shown per page of the run
RUN_PAGE: Final = 200


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None


def _asset(name: str) -> bytes:
    return resources.files("journal._ui").joinpath("static", name).read_bytes()


class UIServer:
    """Serve ``journal`` (already open) until ``shutdown``; thread-safe."""

    def __init__(
        self,
        journal: Journal,
        *,
        port: int = 0,
        show_secrets: bool = False,
        token: str | None = None,
    ) -> None:
        self.model = Model(journal, show_secrets=show_secrets)
        self.token = token or secrets.token_urlsafe(24)
        handler = _handler_class(self)
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.token}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> UIServer:
        """Serve in a background thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="journal-ui")
        self._thread.daemon = True
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        self.model.verify.wait(30)

    def __enter__(self) -> UIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- routing ---------------------------------------------------------------------

    def handle(self, path: str, query: Mapping[str, str]) -> _Response:
        routes: dict[str, Callable[[Mapping[str, str]], _Response]] = {
            "": lambda q: _Response(HTTPStatus.FOUND, b"", location="runs"),
            "runs": self._runs,
            "run": self._run,
            "events": self._events,
            "stages": lambda q: self._html(_pages.stages_page(self.model)),
            "stage": self._stage,
            "resource": self._resource,
            "integrity": self._integrity,
            "integrity.json": self._integrity_json,
            "rollback": self._rollback,
        }
        if path.startswith("static/"):
            name = path[len("static/") :]
            if name not in STATIC:
                raise _HttpError(HTTPStatus.NOT_FOUND, f"no asset {name}")
            return _Response(HTTPStatus.OK, _asset(name), STATIC[name])
        route = routes.get(path)
        if route is None:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"no page {path!r}")
        return route(query)

    @staticmethod
    def _html(text: str) -> _Response:
        return _Response(HTTPStatus.OK, text.encode())

    def _runs(self, q: Mapping[str, str]) -> _Response:
        flt = RunFilter(
            stage=q.get("stage") or None,
            app=q.get("app") or None,
            actor=q.get("actor") or None,
            command=q.get("command") or None,
            status=q.get("status") or None,
            since=_when(q, "since"),
            until=_when(q, "until"),
        )
        page = self.model.runs(flt, before=_int(q, "before"))
        values = {k: q.get(k) for k in ("stage", "app", "actor", "command", "status")}
        values |= {"since": q.get("since"), "until": q.get("until")}
        return self._html(_pages.runs_page(self.model, page, values))

    def _run(self, q: Mapping[str, str]) -> _Response:
        stream = _required(q, "stream")
        first = _int(q, "first")
        if first is None:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "which run? give first=SEQ")
        block = self.model.run_block(stream, first)
        after = max(_int(q, "after") or block.first_seq - 1, block.first_seq - 1)
        upto = min(block.last_seq, _page_end(self.model, stream, after, block.last_seq))
        records = self.model.records(stream, after, upto)
        more = ""
        if upto < block.last_seq:
            params = {"stream": stream, "first": first, "after": upto}
            if q.get("fragment"):
                params["fragment"] = 1
            more = f"run?{urlencode(params)}"
        if q.get("fragment"):
            return self._html(_pages.run_fragment(self.model, block, records, more))
        return self._html(_pages.run_page(self.model, block, records, more))

    def _events(self, q: Mapping[str, str]) -> _Response:
        flt = EventFilter(
            stage=q.get("stage") or None,
            app=q.get("app") or None,
            resource=q.get("resource") or None,
            actor=q.get("actor") or None,
            action=q.get("action") or None,
            since=_when(q, "since"),
            until=_when(q, "until"),
        )
        page = self.model.events(flt, before=_int(q, "before"))
        keys = ("stage", "app", "resource", "actor", "action", "since", "until")
        return self._html(_pages.events_page(self.model, page, {k: q.get(k) for k in keys}))

    def _stream(self, q: Mapping[str, str]) -> tuple[str, str, str]:
        app, stage = _required(q, "app"), _required(q, "stage")
        stream = f"{app}/{stage}"
        if stream not in self.model.journal.streams():
            raise _HttpError(HTTPStatus.NOT_FOUND, f"the journal has no stage {stream}")
        return app, stage, stream

    def _stage(self, q: Mapping[str, str]) -> _Response:
        app, stage, stream = self._stream(q)
        state = self.model.state(stream)
        failed = self.model.last_failures(stream)
        return self._html(_pages.stage_page(self.model, app, stage, state, failed))

    def _resource(self, q: Mapping[str, str]) -> _Response:
        app, stage, stream = self._stream(q)
        rid = _required(q, "id")
        state = self.model.state(stream)
        failed = self.model.last_failures(stream)
        page = self.model.events(EventFilter(stream=stream, resource=rid), size=100)
        res = state.resources.get(rid)
        return self._html(_pages.resource_page(self.model, app, stage, rid, res, failed, page))

    def _integrity(self, q: Mapping[str, str]) -> _Response:
        job = self.model.verify
        if job.state == "idle" or (q.get("again") and job.state != "running"):
            job.start()
        return self._html(_pages.integrity_page(self.model))

    def _integrity_json(self, q: Mapping[str, str]) -> _Response:
        job = self.model.verify.to_json()
        job["html"] = _pages.verify_html(job)
        return _Response(HTTPStatus.OK, json.dumps(job).encode(), "application/json")

    def _rollback(self, q: Mapping[str, str]) -> _Response:
        seq = _int(q, "seq")
        if seq is None:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "which event? give seq=N")
        ev = self.model.journal.event(seq)
        app, stage = _split_stream(ev.stream)
        if app is None or stage is None:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST, f"event {seq} belongs to no stage: nothing to roll back"
            )
        command = f"journal rollback {seq} --stage {stage} --app {app}"
        changes = None
        problem = None
        view = ReadOnlyJournal(self.model.journal)
        try:
            creds = profile_credentials(view, None)
            result = rollback_stage(view, app, stage, seq, plan_only=True, credentials=creds)
            changes = result.changes
        except JournalError as exc:
            problem = str(exc)
        return self._html(
            _pages.rollback_page(self.model, seq, ev.stream, changes, problem, command)
        )


def _required(q: Mapping[str, str], name: str) -> str:
    value = q.get(name)
    if not value:
        raise _HttpError(HTTPStatus.BAD_REQUEST, f"missing parameter {name!r}")
    return value


def _int(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _HttpError(HTTPStatus.BAD_REQUEST, f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise _HttpError(HTTPStatus.BAD_REQUEST, f"{name} cannot be negative")
    return value


def _when(q: Mapping[str, str], name: str) -> datetime | None:
    raw = q.get(name)
    if not raw:
        return None
    try:
        return parse_since(raw)
    except UsageError:
        raise _HttpError(
            HTTPStatus.BAD_REQUEST,
            f"{name}={raw!r} is not a time: give an ISO 8601 time (2024-05-01T10:00) "
            "or a relative one (30m, 1h, 2d, 1w)",
        ) from None


def _page_end(model: Model, stream: str, after: int, last: int) -> int:
    """The sequence of the RUN_PAGE-th event of ``stream`` after ``after`` (or ``last``)."""
    seq = last
    for n, ev in enumerate(model.journal.read(stream, after_seq=after, upto_seq=last)):
        if n + 1 >= RUN_PAGE:
            return ev.seq
        seq = ev.seq
    return seq


def _handler_class(server: UIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "journal-ui"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            if os.environ.get("JOURNAL_DEBUG"):
                super().log_message(format, *args)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _allowed(self, token: str) -> bool:
            host = self.headers.get("Host", "")
            hosts = (f"127.0.0.1:{server.port}", f"localhost:{server.port}")
            return host in hosts and hmac.compare_digest(token.encode(), server.token.encode())

        def _serve(self, *, head: bool) -> None:
            parts = urlsplit(self.path)
            token, _, rest = parts.path.lstrip("/").partition("/")
            if not self._allowed(token):
                self._send(
                    _Response(
                        HTTPStatus.FORBIDDEN,
                        b"forbidden: open the URL that `journal ui` printed (it carries the "
                        b"access token)\n",
                        "text/plain; charset=utf-8",
                    ),
                    head,
                )
                return
            if not parts.path.lstrip("/").count("/"):
                self._send(_Response(HTTPStatus.FOUND, b"", location=f"/{token}/"), head)
                return
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            try:
                response = server.handle(rest, query)
            except _HttpError as exc:
                response = self._error(exc.status, str(exc))
            except UnknownSequenceError as exc:
                response = self._error(HTTPStatus.NOT_FOUND, str(exc))
            except JournalError as exc:
                response = self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except Exception as exc:
                if os.environ.get("JOURNAL_DEBUG"):
                    traceback.print_exception(exc, file=sys.stderr)
                response = self._error(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"internal error: {type(exc).__name__} (run with JOURNAL_DEBUG=1 for more)",
                )
            self._send(response, head)

        @staticmethod
        def _error(status: int, message: str) -> _Response:
            try:
                text = _pages.error_page(server.model, status, message)
            except Exception:
                text = _pages.error_page(None, status, message)
            return _Response(status, text.encode())

        def _send(self, response: _Response, head: bool) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            if response.location is not None:
                self.send_header("Location", response.location)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)

    return Handler
