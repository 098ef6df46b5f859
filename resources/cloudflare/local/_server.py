"""The local Cloudflare-compatible API: accounts, Hyperdrive configs, Worker scripts, subdomains.

Paths are the real API's under ``/client/v4``; answers are its envelope
``{"success", "errors": [{"code", "message"}], "messages", "result"}``. Any bearer token (or
``X-Auth-Key`` + ``X-Auth-Email``) is accepted and sees the one local account.

An uploaded Worker *runs*: its modules go to ``scripts/<name>/`` under the data folder, and
workerd serves it on 127.0.0.1 (a port kept across restarts when free) with its Hyperdrive
bindings pointed at each config's origin through that origin's user and password. A script that
fails at start-up is refused as Cloudflare refuses one (code 10021, workerd's message), and the
previous version keeps running. Creating or updating a Hyperdrive config connects to its origin
first, as Cloudflare does (codes 2008-2016 on failure). The script's per-script subdomain answer
carries ``url``, the local address (the real API has no such field; a client uses it when
present, else ``https://<script>.<subdomain>.workers.dev``).

Access log lines carry method, path, status and duration only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import logging
import re
import secrets
import shutil
import signal
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import psycopg

from journal import LocalServerError, Secret

from .._bundle import JS_MODULE, Bundle, Module, bundle_hash
from .._toolchain import Toolchain
from .._workerd import (
    Binding,
    HyperdriveBinding,
    LocalWorker,
    SecretBinding,
    TextBinding,
    WorkerdError,
    WorkerSpec,
)
from ._state import StateFile

__all__ = ["LocalCloudflareApi", "serve_forever"]

_log = logging.getLogger(__name__.rsplit(".", 1)[0])

Json = dict[str, Any]
PREFIX: Final = "/client/v4"
_MAX_BODY: Final = 64 << 20
_DEFAULT_DATA_DIR: Final = Path(".journal") / "cloudflare"
_SCRIPT_NAME: Final = re.compile(r"^[a-z0-9_][a-z0-9-_]{0,62}$")
_MODULE_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ORIGIN_CONNECT_TIMEOUT_S: Final = 5
_MODULE_TYPES: Final = {
    "application/javascript+module": "esModule",
    "text/javascript+module": "esModule",
}


class Problem(Exception):
    """An error answer: HTTP status, Cloudflare error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_body(body: bytes) -> Json:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise Problem(400, 1001, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Problem(400, 1001, "The request body must be a JSON object.")
    return data


def _text(obj: Json, key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise Problem(400, 2001, f"`{where}{key}` must be a non-empty string.")
    return value


# --- Hyperdrive ---------------------------------------------------------------------------------


def _origin(body: Json, old: Json | None, state: StateFile) -> tuple[Json, str]:
    """The stored origin (no password) and the sealed password, from a request body."""
    raw = body.get("origin")
    if raw is None and old is not None:
        return old["origin"], old["password"]
    if not isinstance(raw, dict):
        raise Problem(400, 2001, "`origin` must be an object.")
    merged = {**(old["origin"] if old is not None else {}), **raw}
    scheme = merged.get("scheme", "postgres")
    if scheme not in ("postgres", "postgresql"):
        raise Problem(
            400,
            2001,
            "`origin.scheme` must be postgres or postgresql (the local API has no MySQL).",
        )
    origin: Json = {"scheme": scheme}
    for key in ("host", "database", "user"):
        origin[key] = _text(merged, key, "origin.")
    port = merged.get("port", 5432)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise Problem(400, 2001, "`origin.port` must be a port number (1-65535).")
    origin["port"] = port
    password = raw.get("password")
    if password is None and old is not None:
        return origin, old["password"]
    if not isinstance(password, str):
        raise Problem(400, 2001, "`origin.password` must be a string.")
    return origin, state.seal(Secret(password))


def _check_origin(origin: Json, password: Secret) -> None:
    """Connect to the origin once, as Cloudflare does before it saves a config."""
    try:
        with psycopg.connect(
            host=origin["host"],
            port=origin["port"],
            dbname=origin["database"],
            user=origin["user"],
            password=password.unencrypted,
            connect_timeout=_ORIGIN_CONNECT_TIMEOUT_S,
            sslmode="prefer",
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        text = str(exc)
        where = f"{origin['host']}:{origin['port']}"
        if "password authentication failed" in text or "no password" in text:
            raise Problem(
                400,
                2013,
                f"Failed to connect to the origin {where}: the user or password is wrong.",
            ) from None
        if "does not exist" in text:
            raise Problem(
                400, 2014, f"Failed to connect to the origin {where}: {text.splitlines()[-1]}"
            ) from None
        raise Problem(400, 2009, f"Failed to connect to the origin {where}.") from None


def _caching(body: Json, old: Json | None) -> Json:
    raw = body.get("caching", old["caching"] if old is not None else {"disabled": False})
    if not isinstance(raw, dict):
        raise Problem(400, 2001, "`caching` must be an object.")
    out: Json = {"disabled": bool(raw.get("disabled", False))}
    for key in ("max_age", "stale_while_revalidate"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise Problem(400, 2001, f"`caching.{key}` must be a whole number of seconds.")
            out[key] = value
    return out


def _hyperdrive_json(cfg: Json) -> Json:
    out = {k: cfg[k] for k in ("id", "name", "origin", "caching", "created_on", "modified_on")}
    for key in ("mtls", "origin_connection_limit"):
        if key in cfg:
            out[key] = cfg[key]
    return out


# --- Worker uploads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    metadata: Json
    parts: dict[str, tuple[str, bytes]]


def _multipart(content_type: str, body: bytes) -> _Upload:
    if not content_type.lower().startswith("multipart/form-data"):
        raise Problem(400, 10001, "Upload a module Worker as multipart/form-data.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise Problem(400, 10001, "The multipart body could not be read.")
    parts: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise Problem(400, 10001, "Every part needs a name in its Content-Disposition.")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts[name] = (part.get_content_type(), data)
    if "metadata" not in parts:
        raise Problem(400, 10001, "The upload has no `metadata` part.")
    try:
        metadata = json.loads(parts.pop("metadata")[1])
    except ValueError:
        raise Problem(400, 10001, "The `metadata` part is not valid JSON.") from None
    if not isinstance(metadata, dict):
        raise Problem(400, 10001, "The `metadata` part must be a JSON object.")
    return _Upload(metadata, parts)


# --- endpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    content_type: str


Answer = tuple[int, Any, str]  # status, result (JSON) or raw bytes, content type


class LocalCloudflareApi:
    """The local Cloudflare API on ``host:port`` (see the module's doc), state in ``data_dir``.

    ``url`` is the origin; clients use ``base_url`` (``url + "/client/v4"``) as the API's
    base URL. ``start()`` restarts the Workers the state holds; ``stop()`` stops them.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tools: Toolchain | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else _DEFAULT_DATA_DIR
        self.host = host
        self._requested_port = port
        self._tools = tools
        self._store = StateFile(self.data_dir)
        self._state: Json = {}
        self._workers: dict[str, LocalWorker] = {}
        self._lock = threading.RLock()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.routes: list[tuple[str, re.Pattern[str], Callable[[_Request], Answer]]] = []
        acct = "/accounts/{account_id}"
        scripts = f"{acct}/workers/scripts"
        for method, template, handler in (
            ("GET", "/accounts", self.list_accounts),
            ("GET", f"{acct}/hyperdrive/configs", self.list_hyperdrive),
            ("POST", f"{acct}/hyperdrive/configs", self.create_hyperdrive),
            ("GET", f"{acct}/hyperdrive/configs/{{id}}", self.get_hyperdrive),
            ("PUT", f"{acct}/hyperdrive/configs/{{id}}", self.put_hyperdrive),
            ("PATCH", f"{acct}/hyperdrive/configs/{{id}}", self.patch_hyperdrive),
            ("DELETE", f"{acct}/hyperdrive/configs/{{id}}", self.delete_hyperdrive),
            ("GET", scripts, self.list_scripts),
            ("GET", f"{scripts}/{{script}}", self.download_script),
            ("PUT", f"{scripts}/{{script}}", self.upload_script),
            ("DELETE", f"{scripts}/{{script}}", self.delete_script),
            ("GET", f"{scripts}/{{script}}/settings", self.get_settings),
            ("GET", f"{scripts}/{{script}}/subdomain", self.get_script_subdomain),
            ("POST", f"{scripts}/{{script}}/subdomain", self.set_script_subdomain),
            ("GET", f"{acct}/workers/subdomain", self.get_subdomain),
            ("PUT", f"{acct}/workers/subdomain", self.put_subdomain),
        ):
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", PREFIX + template)
            self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    # -- lifecycle

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise LocalServerError("the local Cloudflare API is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a Cloudflare client takes as its base URL (``CLOUDFLARE_API_URL``)."""
        return self.url + PREFIX

    @property
    def account_id(self) -> str:
        return str(self._state["account"]["id"])

    @property
    def state_path(self) -> Path:
        return self._store.path

    def worker(self, name: str) -> LocalWorker | None:
        """The running Worker of script ``name`` (for inspection)."""
        with self._lock:
            return self._workers.get(name)

    def start(self) -> LocalCloudflareApi:
        """Load the state, restart its Workers, start serving."""
        if self._httpd is not None:
            return self
        with self._lock:
            self._state = self._store.load()
            self._store.save(self._state)
            for name in sorted(self._state["scripts"]):
                try:
                    self._run(name, self._state["scripts"][name])
                except (Problem, WorkerdError, OSError) as exc:
                    _log.warning("the Worker %s could not be restarted: %s", name, exc)
            self._store.save(self._state)
        try:
            self._httpd = _HttpServer((self.host, self._requested_port), self)
        except OSError as exc:
            self._stop_workers()
            raise LocalServerError(f"the local Cloudflare API could not start: {exc}") from exc
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"local-cloudflare-api-{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("local Cloudflare API listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and stop every Worker (the state keeps them for the next start)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._stop_workers()

    def _stop_workers(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, {}
        for w in workers.values():
            w.stop()

    def __enter__(self) -> LocalCloudflareApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- routing

    def _allowed(self, path: str) -> list[str]:
        return [m for m, pattern, _ in self.routes if pattern.match(path)]

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, headers: Any
    ) -> Answer:
        auth = str(headers.get("Authorization") or "")
        scheme, _, token = auth.partition(" ")
        keyed = headers.get("X-Auth-Key") and headers.get("X-Auth-Email")
        if not ((scheme.lower() == "bearer" and token.strip()) or keyed):
            raise Problem(400, 10000, "Authentication error: send an API token.")
        for route_method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found is not None and route_method == method:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                acct = params.get("account_id")
                if acct is not None and acct != self.account_id:
                    raise Problem(403, 10000, "Authentication error: not your account.")
                ctype = str(headers.get("Content-Type") or "")
                with self._lock:
                    return handler(_Request(params, query, body, ctype))
        if self._allowed(path):
            raise Problem(405, 10000, f"{method} is not allowed on {path}.")
        raise Problem(404, 7003, "No route for the URI")

    # -- accounts

    def list_accounts(self, r: _Request) -> Answer:
        acct = self._state["account"]
        result = [{"id": acct["id"], "name": acct["name"], "type": "standard"}]
        return 200, result, "list"

    # -- Hyperdrive

    def _config(self, r: _Request) -> Json:
        cfg = self._state["hyperdrive"].get(r.params["id"])
        if cfg is None:
            raise Problem(404, 2007, f"Hyperdrive config {r.params['id']} not found.")
        return dict(cfg)

    def _save_hyperdrive(self, body: Json, old: Json | None) -> Json:
        name = old["name"] if old is not None and "name" not in body else body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise Problem(400, 2001, "`name` must be a string of 1 to 64 characters.")
        for other in self._state["hyperdrive"].values():
            if other["name"] == name and (old is None or other["id"] != old["id"]):
                raise Problem(409, 2017, f"A Hyperdrive config named {name!r} already exists.")
        origin, sealed = _origin(body, old, self._store)
        password = self._store.open(sealed)
        if password is None:
            raise Problem(400, 2001, "Send `origin.password` again (the local key was reset).")
        _check_origin(origin, password)
        now = _now()
        cfg: Json = {
            "id": old["id"] if old is not None else secrets.token_hex(16),
            "name": name,
            "origin": origin,
            "password": sealed,
            "caching": _caching(body, old),
            "created_on": old["created_on"] if old is not None else now,
            "modified_on": now,
        }
        for key in ("mtls", "origin_connection_limit"):
            value = body.get(key, old.get(key) if old is not None else None)
            if value is not None:
                cfg[key] = value
        self._state["hyperdrive"][cfg["id"]] = cfg
        self._store.save(self._state)
        if old is not None and (old["origin"], old["password"]) != (origin, sealed):
            self._restart_bound(cfg["id"])
        return cfg

    def _restart_bound(self, config_id: str) -> None:
        """Workers bound to a changed config connect with its new origin from now on."""
        for name, script in self._state["scripts"].items():
            if any(b.get("id") == config_id for b in script["bindings"]):
                try:
                    self._run(name, script)
                except (Problem, WorkerdError) as exc:
                    _log.warning("the Worker %s could not be restarted: %s", name, exc)

    def list_hyperdrive(self, r: _Request) -> Answer:
        items = sorted(self._state["hyperdrive"].values(), key=lambda c: c["created_on"])
        return 200, [_hyperdrive_json(c) for c in items], "list"

    def create_hyperdrive(self, r: _Request) -> Answer:
        return 200, _hyperdrive_json(self._save_hyperdrive(_json_body(r.body), None)), "one"

    def get_hyperdrive(self, r: _Request) -> Answer:
        return 200, _hyperdrive_json(self._config(r)), "one"

    def put_hyperdrive(self, r: _Request) -> Answer:
        old = self._config(r)
        body = _json_body(r.body)
        origin = body.get("origin")
        if "name" not in body or not isinstance(origin, dict) or "password" not in origin:
            raise Problem(
                400,
                2001,
                "PUT takes the full config: `name` and `origin` with its "
                "`password` (PATCH changes part of it).",
            )
        return 200, _hyperdrive_json(self._save_hyperdrive(body, old)), "one"

    def patch_hyperdrive(self, r: _Request) -> Answer:
        old = self._config(r)
        return 200, _hyperdrive_json(self._save_hyperdrive(_json_body(r.body), old)), "one"

    def delete_hyperdrive(self, r: _Request) -> Answer:
        cfg = self._config(r)
        del self._state["hyperdrive"][cfg["id"]]
        self._store.save(self._state)
        return 200, {}, "one"  # the schema's envelope for a delete has an object result

    # -- Worker scripts

    def _script(self, r: _Request) -> Json:
        name = r.params["script"]
        script = self._state["scripts"].get(name)
        if script is None:
            raise Problem(404, 10007, f"This Worker ({name}) does not exist on your account.")
        return dict(script)

    def _script_json(self, name: str, script: Json) -> Json:
        return {
            "id": name,
            "etag": script["etag"],
            "handlers": ["fetch"],
            "created_on": script["created_on"],
            "modified_on": script["modified_on"],
            "logpush": False,
            "tail_consumers": [],
        }

    def _bindings(self, raw: object) -> list[Json]:
        """The metadata's bindings as stored (secret texts sealed)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise Problem(400, 10021, "`metadata.bindings` must be a list.")
        out: list[Json] = []
        for b in raw:
            if not isinstance(b, dict):
                raise Problem(400, 10021, "Every binding must be an object.")
            kind, name = b.get("type"), b.get("name")
            if not isinstance(name, str) or not name:
                raise Problem(400, 10021, "Every binding needs a `name`.")
            if kind == "hyperdrive":
                config_id = b.get("id")
                if config_id not in self._state["hyperdrive"]:
                    raise Problem(
                        400, 10021, f"Binding {name}: Hyperdrive config {config_id} not found."
                    )
                out.append({"type": kind, "name": name, "id": config_id})
            elif kind in ("plain_text", "secret_text"):
                text = b.get("text")
                if not isinstance(text, str):
                    raise Problem(400, 10021, f"Binding {name}: `text` must be a string.")
                if kind == "plain_text":
                    out.append({"type": kind, "name": name, "text": text})
                else:
                    sealed = self._store.seal(Secret(text))
                    out.append({"type": kind, "name": name, "sealed": sealed})
            else:
                raise Problem(
                    400,
                    10021,
                    f"Binding {name}: the local API runs hyperdrive, plain_text and secret_text "
                    f"bindings, not {kind!r}.",
                )
        return out

    def _spec(self, name: str, script: Json) -> WorkerSpec:
        folder = self._store.script_dir(name) / script["etag"]
        modules = tuple(Module(m, t, folder / m) for m, t in script["modules"])
        bindings: list[Binding] = []
        for b in script["bindings"]:
            if b["type"] == "hyperdrive":
                cfg = self._state["hyperdrive"].get(b["id"])
                if cfg is None:
                    raise Problem(400, 10021, f"Binding {b['name']}: its config was deleted.")
                password = self._store.open(cfg["password"])
                if password is None:
                    raise Problem(400, 10021, f"Binding {b['name']}: send the origin password.")
                o = cfg["origin"]
                bindings.append(
                    HyperdriveBinding(
                        b["name"], o["host"], o["port"], o["database"], o["user"], password
                    )
                )
            elif b["type"] == "plain_text":
                bindings.append(TextBinding(b["name"], b["text"]))
            else:
                secret = self._store.open(b["sealed"])
                if secret is None:
                    raise Problem(400, 10021, f"Binding {b['name']}: send the secret again.")
                bindings.append(SecretBinding(b["name"], secret))
        bundle = Bundle(folder, script["main_module"], modules, bundle_hash(modules))
        return WorkerSpec(
            name=name,
            bundle=bundle,
            compatibility_date=script["compatibility_date"],
            compatibility_flags=tuple(script["compatibility_flags"]),
            bindings=tuple(bindings),
        )

    def _run(self, name: str, script: Json) -> LocalWorker:
        """Start or reload the Worker of ``script``; raises Problem 10021 when it fails."""
        try:
            spec = self._spec(name, script)
        except ValueError as exc:
            raise Problem(400, 10021, str(exc)) from None
        worker = self._workers.get(name)
        try:
            if worker is None:
                worker = LocalWorker(spec, tools=self._tools, port=script.get("port", 0))
                try:
                    worker.start()
                except WorkerdError:
                    if not script.get("port"):
                        raise
                    # the port it had is taken now: any free one
                    worker = LocalWorker(spec, tools=self._tools).start()
                self._workers[name] = worker
            else:
                worker.reload(spec)
        except WorkerdError as exc:
            self._workers.pop(name, None)
            raise Problem(400, 10021, f"Uncaught error at start-up of {name}: {exc}") from None
        script["port"] = worker.port
        return worker

    def list_scripts(self, r: _Request) -> Answer:
        scripts = self._state["scripts"]
        return 200, [self._script_json(n, scripts[n]) for n in sorted(scripts)], "list"

    def download_script(self, r: _Request) -> Answer:
        script = self._script(r)
        folder = self._store.script_dir(r.params["script"]) / script["etag"]
        return 200, (folder / script["main_module"]).read_bytes(), "application/javascript"

    def upload_script(self, r: _Request) -> Answer:
        name = r.params["script"]
        if not _SCRIPT_NAME.match(name):
            raise Problem(400, 10016, f"Invalid Worker name {name!r}: use a-z, 0-9, - and _.")
        up = _multipart(r.content_type, r.body)
        meta = up.metadata
        main = meta.get("main_module")
        if not isinstance(main, str) or main not in up.parts:
            raise Problem(400, 10021, "`metadata.main_module` must name one of the parts.")
        modules: list[tuple[str, str]] = []
        for part, (ctype, _data) in sorted(up.parts.items()):
            if not _MODULE_NAME.match(part):
                raise Problem(400, 10021, f"Invalid module name {part!r}.")
            if ctype not in _MODULE_TYPES and ctype != "application/source-map":
                raise Problem(400, 10021, f"Module {part}: unsupported type {ctype}.")
            if ctype in _MODULE_TYPES:
                modules.append((part, JS_MODULE))
        date = meta.get("compatibility_date", "2024-01-01")
        flags = meta.get("compatibility_flags", [])
        if not isinstance(date, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
            raise Problem(400, 10021, "`compatibility_date` must be YYYY-MM-DD.")
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise Problem(400, 10021, "`compatibility_flags` must be a list of strings.")
        digest = hashlib.sha256()
        for part, _t in modules:
            digest.update(part.encode() + b"\0" + up.parts[part][1])
        etag = digest.hexdigest()
        folder = self._store.script_dir(name) / etag
        folder.mkdir(parents=True, exist_ok=True)
        for part, _t in modules:
            (folder / part).write_bytes(up.parts[part][1])
        old = self._state["scripts"].get(name)
        now = _now()
        script: Json = {
            "etag": etag,
            "main_module": main,
            "modules": modules,
            "compatibility_date": date,
            "compatibility_flags": flags,
            "bindings": self._bindings(meta.get("bindings")),
            "created_on": old["created_on"] if old is not None else now,
            "modified_on": now,
            "subdomain": old["subdomain"] if old is not None else False,
            "port": old.get("port", 0) if old is not None else 0,
        }
        started = time.monotonic()
        try:
            self._run(name, script)
        except Problem:
            if old is not None and old["etag"] != etag:
                with contextlib.suppress(Problem):
                    self._run(name, old)  # the previous version serves on
            self._prune(name, old["etag"] if old is not None else None)
            raise
        startup_ms = int((time.monotonic() - started) * 1000)
        self._state["scripts"][name] = script
        self._store.save(self._state)
        self._prune(name, etag)
        return 200, {**self._script_json(name, script), "startup_time_ms": startup_ms}, "one"

    def _prune(self, name: str, keep: str | None) -> None:
        """Remove module folders of ``name`` other than ``keep``."""
        root = self._store.script_dir(name)
        if not root.is_dir():
            return
        for folder in root.iterdir():
            if folder.name != keep:
                _rmtree(folder)
        if keep is None:
            _rmtree(root)

    def delete_script(self, r: _Request) -> Answer:
        name = r.params["script"]
        self._script(r)
        worker = self._workers.pop(name, None)
        if worker is not None:
            worker.stop()
        del self._state["scripts"][name]
        self._store.save(self._state)
        self._prune(name, None)
        return 200, None, "one"

    def get_settings(self, r: _Request) -> Answer:
        script = self._script(r)
        bindings = [
            {k: v for k, v in b.items() if k != "sealed"} for b in script["bindings"]
        ]  # secret_text is never read back, as on Cloudflare
        result = {
            "bindings": bindings,
            "compatibility_date": script["compatibility_date"],
            "compatibility_flags": script["compatibility_flags"],
            "logpush": False,
            "tail_consumers": [],
        }
        return 200, result, "one"

    def _subdomain_json(self, name: str, script: Json) -> Json:
        out: Json = {"enabled": bool(script["subdomain"]), "previews_enabled": False}
        worker = self._workers.get(name)
        if script["subdomain"] and worker is not None and worker.running:
            out["url"] = worker.url
        return out

    def get_script_subdomain(self, r: _Request) -> Answer:
        return 200, self._subdomain_json(r.params["script"], self._script(r)), "one"

    def set_script_subdomain(self, r: _Request) -> Answer:
        name = r.params["script"]
        script = self._script(r)
        body = _json_body(r.body)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise Problem(400, 10021, "`enabled` must be true or false.")
        script["subdomain"] = enabled
        self._state["scripts"][name] = script
        self._store.save(self._state)
        return 200, self._subdomain_json(name, script), "one"

    def get_subdomain(self, r: _Request) -> Answer:
        return 200, {"subdomain": self._state["subdomain"]}, "one"

    def put_subdomain(self, r: _Request) -> Answer:
        value = _text(_json_body(r.body), "subdomain", "")
        assert value is not None
        if not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", value):
            raise Problem(400, 10032, "`subdomain` must be a DNS label (a-z, 0-9, -).")
        self._state["subdomain"] = value
        self._store.save(self._state)
        return 200, {"subdomain": value}, "one"


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- the wire -----------------------------------------------------------------------------------


def _envelope(result: Any, *, listing: bool = False) -> Json:
    out: Json = {"success": True, "errors": [], "messages": [], "result": result}
    if listing:
        n = len(result)
        out["result_info"] = {"page": 1, "per_page": max(n, 20), "count": n, "total_count": n}
    return out


def _failure(problem: Problem) -> Json:
    return {
        "success": False,
        "errors": [{"code": problem.code, "message": problem.message}],
        "messages": [],
        "result": None,
    }


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: LocalCloudflareApi) -> None:
        self.api = api
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection error from %s", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "journal-local-cloudflare-api/1"
    timeout = 120
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        path, _, qs = self.path.partition("?")
        if len(path) > 1:
            path = path.rstrip("/")
        status = 500
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length < 0 or length > _MAX_BODY:
                    self.close_connection = True
                    raise Problem(413, 10027, "The request body is too large.")
                body = self.rfile.read(length) if length else b""
                code, result, kind = self.server.api.dispatch(
                    method, path, parse_qs(qs), body, self.headers
                )
                if isinstance(result, bytes):
                    status = self._send(code, result, kind)
                else:
                    payload = _envelope(result, listing=kind == "list")
                    status = self._send(code, json.dumps(payload).encode(), "application/json")
            except Problem as problem:
                data = json.dumps(_failure(problem)).encode()
                status = self._send(problem.status, data, "application/json")
        except Exception:
            _log.exception("unexpected error in %s %s", method, path)
            internal = Problem(500, 10002, "Unexpected internal server error.")
            status = self._send(500, json.dumps(_failure(internal)).encode(), "application/json")
        finally:
            _log.info("%s %s %s %.1fms", method, path, status, (time.monotonic() - started) * 1000)

    def _send(self, status: int, data: bytes, content_type: str) -> int:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        return status


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    on_ready: Callable[[LocalCloudflareApi], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Run the local Cloudflare API in the foreground until Ctrl-C, SIGTERM or ``stop_event``;
    its Workers stop with it. ``on_ready(api)`` is called once it listens."""
    stop = stop_event or threading.Event()
    api = LocalCloudflareApi(data_dir=data_dir, host=host, port=port)
    in_main = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        api.start()
        if on_ready is not None:
            on_ready(api)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass
    finally:
        api.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
