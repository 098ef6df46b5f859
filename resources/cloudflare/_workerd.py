"""Run a bundled Worker in workerd on 127.0.0.1, with Hyperdrive, text and secret bindings.

    spec = WorkerSpec(
        name="worker",
        bundle=bundle,
        compatibility_date="2026-11-01",
        bindings=(
            HyperdriveBinding("HYPERDRIVE", host="127.0.0.1", port=5432, database="app",
                              user="app", password=Secret("...")),
            TextBinding("GREETING", "hello"),
            SecretBinding("API_KEY", Secret("...")),
        ),
    )
    with LocalWorker(spec) as worker:        # starts, and waits until workerd listens
        httpx.get(worker.url)
        worker.reload(new_spec)               # same url; requests meanwhile wait, none refused
    # stopped: the process is gone, its private folder removed

How it is run:

- The listening socket belongs to this process (127.0.0.1, a free port unless one is given)
  and is handed to workerd (``--socket-fd``): the port is known before workerd starts, no other
  program can take it, and across a reload connections wait in the socket's backlog.
- workerd's configuration (Cap'n Proto text) holds the bindings, secrets included, and is
  written owner-only (0600) into a private folder (0700) under ``$XDG_RUNTIME_DIR`` when there
  is one, else the temporary folder; it is removed as soon as workerd has read it. Nothing
  secret is ever in workerd's arguments or environment.
- Readiness comes from workerd itself (``--control-fd`` reports when the socket listens); a
  Worker that fails at start-up is an error with the end of workerd's log.
- No orphans: workerd gets SIGKILL when this process dies (Linux ``PR_SET_PDEATHSIG``; every
  workerd is started from one long-lived thread, since the signal follows the thread that
  started it), and every worker still running at interpreter exit is stopped.
- Hyperdrive is modelled as workerd models it locally: an ``external`` TCP service at the
  origin's address and a ``hyperdrive`` binding naming it with the database, user and password;
  inside the Worker ``env.HYPERDRIVE.connectionString`` is a ``postgresql://`` URL whose host
  workerd routes to that service.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from journal import LocalServerError, Secret

from ._bundle import Bundle
from ._toolchain import WORKERD_DATE, Toolchain, toolchain

__all__ = [
    "Binding",
    "HyperdriveBinding",
    "LocalWorker",
    "SecretBinding",
    "TextBinding",
    "WorkerSpec",
    "WorkerdError",
]

START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 5.0
_NAME_OK: Final = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,127}$")
_DATE_OK: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOG_TAIL: Final = 3000


class WorkerdError(LocalServerError):
    """workerd could not start the Worker, or stopped (the message has the end of its log)."""


# --- what to run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HyperdriveBinding:
    """``env.NAME`` is a Hyperdrive whose origin is the PostgreSQL at ``host:port``."""

    name: str
    host: str
    port: int
    database: str
    user: str
    password: Secret
    scheme: str = "postgresql"


@dataclass(frozen=True)
class TextBinding:
    """``env.NAME`` is the plain string ``text``."""

    name: str
    text: str


@dataclass(frozen=True)
class SecretBinding:
    """``env.NAME`` is the secret's plaintext (a string, as Cloudflare's ``secret_text``)."""

    name: str
    value: Secret


Binding = HyperdriveBinding | TextBinding | SecretBinding


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    bundle: Bundle
    compatibility_date: str = WORKERD_DATE
    compatibility_flags: tuple[str, ...] = ()
    bindings: tuple[Binding, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _DATE_OK.match(self.compatibility_date):
            raise ValueError(f"compatibility_date must be YYYY-MM-DD: {self.compatibility_date!r}")
        names = [b.name for b in self.bindings]
        for n in names:
            if not _NAME_OK.match(n):
                raise ValueError(f"binding name {n!r} is not a JavaScript identifier")
        if len(set(names)) != len(names):
            raise ValueError(f"binding names repeat: {sorted(names)}")


# --- the configuration --------------------------------------------------------------------------


def _q(text: str) -> str:
    """A Cap'n Proto text literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_config(spec: WorkerSpec) -> str:
    """workerd's configuration for ``spec`` (its modules embedded from the same folder)."""
    services = ['(name = "worker", worker = .worker)']
    bindings = []
    for i, b in enumerate(spec.bindings):
        if isinstance(b, HyperdriveBinding):
            origin = f"hyperdrive-origin-{i}"
            services.append(
                f"(name = {_q(origin)}, external = (address = "
                f"{_q(_address(b.host, b.port))}, tcp = ()))"
            )
            bindings.append(
                f"(name = {_q(b.name)}, hyperdrive = (designator = {_q(origin)}, "
                f"database = {_q(b.database)}, user = {_q(b.user)}, "
                f"password = {_q(b.password.unencrypted)}, scheme = {_q(b.scheme)}))"
            )
        elif isinstance(b, TextBinding):
            bindings.append(f"(name = {_q(b.name)}, text = {_q(b.text)})")
        else:
            bindings.append(f"(name = {_q(b.name)}, text = {_q(b.value.unencrypted)})")
    modules = [
        f"(name = {_q(m.name)}, esModule = embed {_q(m.name)})"
        for m in sorted(spec.bundle.modules, key=lambda m: m.name != spec.bundle.main_module)
    ]
    # workerd refuses dates after its own; a newer one runs as the newest it knows
    date = min(spec.compatibility_date, WORKERD_DATE)
    flags = ", ".join(_q(f) for f in spec.compatibility_flags)
    sep = ",\n    "
    return (
        'using Workerd = import "/workerd/workerd.capnp";\n\n'
        "const config :Workerd.Config = (\n"
        f"  services = [\n    {sep.join(services)}\n  ],\n"
        '  sockets = [(name = "http", http = (), service = "worker")],\n'
        ");\n\n"
        "const worker :Workerd.Worker = (\n"
        f"  modules = [\n    {sep.join(modules)}\n  ],\n"
        f"  compatibilityDate = {_q(date)},\n"
        f"  compatibilityFlags = [{flags}],\n"
        f"  bindings = [\n    {sep.join(bindings)}\n  ],\n"
        ");\n"
    )


# --- processes ----------------------------------------------------------------------------------

# every workerd is started from this one thread: PR_SET_PDEATHSIG follows the *thread* that
# started a child, and a request thread of a server ends long before the Worker should
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workerd-spawner")
_running: weakref.WeakSet[LocalWorker] = weakref.WeakSet()
_running_lock = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _popen(argv: Sequence[str], pass_fds: Sequence[int], log: int) -> subprocess.Popen[bytes]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    return subprocess.Popen(
        list(argv),
        pass_fds=tuple(pass_fds),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,  # Ctrl-C in a terminal is ours to handle, not workerd's
        preexec_fn=_die_with_parent,
    )


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        workers = list(_running)
    for w in workers:
        with contextlib.suppress(Exception):
            w.stop()


def _runtime_base() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg)
    return Path(tempfile.gettempdir())


class LocalWorker:
    """One Worker served by workerd at ``url`` until :meth:`stop` (see the module's doc)."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        tools: Toolchain | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.spec = spec
        self._tools = tools
        self._host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._lock = threading.RLock()

    # -- what it is

    @property
    def port(self) -> int:
        if self._sock is None:
            raise WorkerdError(f"the Worker {self.spec.name} is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{_address(self._host, self.port)}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """workerd's output (owner-only): the Worker's ``console`` lines and errors."""
        return self._dir / "workerd.log" if self._dir is not None else None

    # -- lifecycle

    def start(self, *, timeout_s: float = START_TIMEOUT_S) -> LocalWorker:
        """Start workerd and return once it listens; :class:`WorkerdError` if it does not."""
        with self._lock:
            if self.running:
                return self
            if self._sock is None:
                sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
                try:
                    sock.bind((self._host, self._requested_port))
                    sock.listen(512)
                except OSError as exc:
                    sock.close()
                    raise WorkerdError(
                        f"cannot listen on {_address(self._host, self._requested_port)} for "
                        f"the Worker {self.spec.name}: {exc}"
                    ) from exc
                self._sock = sock
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="journal-workerd-", dir=_runtime_base()))
            try:
                self._launch(timeout_s)
            except BaseException:
                self._teardown()
                raise
            with _running_lock:
                _running.add(self)
            return self

    def reload(self, spec: WorkerSpec, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Serve ``spec`` instead (same url). Requests meanwhile wait; on failure the Worker is
        stopped and :class:`WorkerdError` raised."""
        with self._lock:
            self.spec = spec
            if self._sock is None:
                self.start(timeout_s=timeout_s)
                return
            self._kill()
            try:
                self._launch(timeout_s)
            except BaseException:
                self._teardown()
                raise

    def stop(self) -> None:
        """Stop workerd (SIGTERM, then SIGKILL), close the socket, remove the private folder."""
        with self._lock:
            self._teardown()
        with _running_lock:
            _running.discard(self)

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals

    def _teardown(self) -> None:
        self._kill()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _write_files(self) -> Path:
        assert self._dir is not None
        os.chmod(self._dir, 0o700)
        for m in self.spec.bundle.modules:
            shutil.copyfile(m.path, self._dir / m.name)
        config = self._dir / "config.capnp"
        with contextlib.suppress(FileNotFoundError):
            config.unlink()
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_config(self.spec))
        return config

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        text = path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace").strip()
        return text

    def _launch(self, timeout_s: float) -> None:
        assert self._sock is not None and self._dir is not None
        tools = self._tools or toolchain()
        self._tools = tools
        config = self._write_files()
        ctl_r, ctl_w = os.pipe()
        log_fd = os.open(self._dir / "workerd.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sock_fd = self._sock.fileno()
        argv = [
            str(tools.workerd),
            "serve",
            str(config),
            "--socket-fd",
            f"http={sock_fd}",
            "--control-fd",
            str(ctl_w),
        ]
        try:
            self._proc = _spawner.submit(_popen, argv, (sock_fd, ctl_w), log_fd).result()
        except OSError as exc:
            os.close(ctl_r)
            raise WorkerdError(f"workerd could not be started: {exc}") from exc
        finally:
            os.close(ctl_w)
            os.close(log_fd)
        try:
            ready = self._await_listen(ctl_r, timeout_s)
        finally:
            os.close(ctl_r)
            with contextlib.suppress(FileNotFoundError):
                config.unlink()  # read by now (or never to be): the secrets leave the disk
        if not ready:
            self._kill()
            tail = self._log_tail()
            raise WorkerdError(
                f"the Worker {self.spec.name} did not start in workerd"
                + (f":\n{tail}" if tail else f" within {timeout_s:.0f}s")
            )

    def _await_listen(self, ctl: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([ctl], [], [], left)
            if not readable:
                return False
            chunk = os.read(ctl, 4096)
            if not chunk:  # workerd exited (or closed the pipe) without listening
                proc = self._proc
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=STOP_TIMEOUT_S)
                return False
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("event") == "listen":
                        return True
