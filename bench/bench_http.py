"""Client CPU per HTTP request: httpx's default pool against alternatives (a script, not a test).

    python bench/bench_http.py                        # 1,000 POSTs, 5 runs per variant
    python bench/bench_http.py --requests 2000 --runs 7 --concurrency 64
    python bench/bench_http.py --only pool,lean       # some variants (names in the table)

A server in its own process answers every ``POST`` with a small JSON body on 127.0.0.1: HTTP/1.1
with keep-alive (the standard library's ``ThreadingHTTPServer``, as the local API uses), and,
when the ``h2`` package is installed, HTTP/2 over cleartext (prior knowledge) from a small
asyncio server on ``h2``. Only the client process is measured: its CPU (user + system, every
thread) and the wall time around a batch of ``--requests`` POSTs, ``--concurrency`` at a time,
after a warm-up that opens the connections. Medians of ``--runs``, the variants interleaved
(one run of each in turn).

The variants (``transport`` and ``layer-lean`` are what ``PrismaClient`` and
``CloudflareClient`` use by default; ``pool`` and ``layer`` with ``JOURNAL_HTTP_TRANSPORT=httpx``):

* ``pool``: ``journal._http.default_http_client`` with ``JOURNAL_HTTP_TRANSPORT=httpx``
  (httpx's pool, every connection kept alive), one thread per request in flight (the
  engine's shape);
* ``pool-100``: the pool as it was until the lean transport (at most 100 connections);
* ``pool-ka20``: the pool as it was before (20 connections kept alive out of 100): it closes
  and reopens connections, and hits encode/httpcore#1110 (a run that fails is counted);
* ``layer``: ``HttpClient.request`` (the project's retry and error layer) on ``pool``;
* ``transport``: ``default_http_client`` as it is by default: ``httpx.Client`` on
  ``journal._transport.LeanTransport`` (keep-alive ``http.client`` connections on an idle
  stack per origin; httpx's request/response layer, not its pool);
* ``layer-lean``: ``HttpClient.request`` on ``transport`` (what the providers do);
* ``lean``: ``httpx.Client`` on a naive transport holding one keep-alive ``http.client``
  connection per thread (the first experiment: no TLS settings, no proxies, no stale
  connection handling);
* ``http.client``: one keep-alive connection per thread, no httpx (the floor);
* ``async``: one ``httpx.AsyncClient`` on one event loop, ``--concurrency`` worker tasks;
* ``async-sem``: the same with one task per request behind a semaphore;
* ``h2``: ``httpx.Client(http2=True)``, threads multiplexed on one HTTP/2 connection;
* ``h2-async``: ``httpx.AsyncClient(http2=True)``, worker tasks on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import Metric, environment, finish, parse_args, print_header, print_table

from journal._http import TRANSPORT_ENV, HttpClient, default_http_client

BODY = {"name": "database-1", "region": "us-east-1", "projectId": "proj_1", "isDefault": False}
ANSWER = json.dumps({"data": {"id": "db_1", "name": "database-1", "status": "ready"}}).encode()

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    HAVE_H2 = True
except ImportError:  # pragma: no cover - optional
    HAVE_H2 = False


# --- servers (run in a child process) ----------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body in two writes: without this a keep-alive connection waits for the
    # client's delayed ACK (~40 ms) on every answer, which made every variant's wall the same
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: 64 connections arrive at once


def _serve_h1() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class _H2Protocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 256})
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers = [
                    (b":status", b"200"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(ANSWER)).encode()),
                ]
                self.conn.send_headers(event.stream_id, headers)
                self.conn.send_data(event.stream_id, ANSWER, end_stream=True)
        self.transport.write(self.conn.data_to_send())


def _serve_h2() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_H2Protocol, "127.0.0.1", 0, backlog=256)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def server(kind: str) -> Iterator[str]:
    """A server process of ``kind`` (``h1`` or ``h2``); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1/databases"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- a lean transport: one keep-alive http.client connection per thread -------------------------


class KeepAliveTransport(httpx.BaseTransport):
    """httpx's request/response objects over ``http.client``: one keep-alive connection per
    thread and origin, no pool. (A benchmark subject, not the project's transport.)"""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._local = threading.local()
        self._timeout_s = timeout_s

    def _connection(self, url: httpx.URL) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str, int | None], http.client.HTTPConnection]
        conns = self._local.__dict__.setdefault("conns", {})
        key = (url.scheme, url.host, url.port)
        conn = conns.get(key)
        if conn is None:
            cls = (
                http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
            )
            conn = conns[key] = cls(url.host, url.port, timeout=self._timeout_s)
        return conn

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        conn = self._connection(request.url)
        body = request.read()
        try:
            conn.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
            conn.endheaders(body or None)
            response = conn.getresponse()
            content = response.read()
        except ConnectionRefusedError as exc:
            conn.close()
            raise httpx.ConnectError(str(exc), request=request) from exc
        except TimeoutError as exc:
            conn.close()
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
        for conn in self._local.__dict__.get("conns", {}).values():
            conn.close()


# --- the variants ------------------------------------------------------------------------------


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _threaded(send: Callable[[], None], n: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``n`` calls of ``send``, ``concurrency`` threads at a time."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: send(), range(concurrency * 2)))  # warm-up: open connections
        wall, cpu = time.perf_counter(), _cpu()
        list(pool.map(lambda _: send(), range(n)))
        return time.perf_counter() - wall, _cpu() - cpu


def _httpx_threads(client: httpx.Client, url: str, n: int, concurrency: int) -> tuple[float, float]:
    def send() -> None:
        client.post(url, json=BODY).raise_for_status()

    with client:
        return _threaded(send, n, concurrency)


@contextlib.contextmanager
def _transport(kind: str) -> Iterator[None]:
    """``JOURNAL_HTTP_TRANSPORT=kind`` meanwhile."""
    before = os.environ.get(TRANSPORT_ENV)
    os.environ[TRANSPORT_ENV] = kind
    try:
        yield
    finally:
        if before is None:
            del os.environ[TRANSPORT_ENV]
        else:
            os.environ[TRANSPORT_ENV] = before


def run_pool(url: str, n: int, concurrency: int) -> tuple[float, float]:
    with _transport("httpx"):
        client = default_http_client(30.0)
    return _httpx_threads(client, url, n, concurrency)


def run_transport(url: str, n: int, concurrency: int) -> tuple[float, float]:
    with _transport("lean"):
        client = default_http_client(30.0)
    return _httpx_threads(client, url, n, concurrency)


def run_pool_100(url: str, n: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30)
    client = httpx.Client(timeout=httpx.Timeout(30.0), limits=limits)
    return _httpx_threads(client, url, n, concurrency)


def run_pool_ka20(url: str, n: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
    client = httpx.Client(timeout=httpx.Timeout(30.0), limits=limits)
    return _httpx_threads(client, url, n, concurrency)


def run_layer(url: str, n: int, concurrency: int, kind: str = "httpx") -> tuple[float, float]:
    base, path = url.rsplit("/v1/", 1)
    with _transport(kind):
        api = HttpClient(base, max_retries=0)
    with api:

        def send() -> None:
            api.request("bench", "POST", f"/v1/{path}", json=BODY)

        return _threaded(send, n, concurrency)


def run_layer_lean(url: str, n: int, concurrency: int) -> tuple[float, float]:
    return run_layer(url, n, concurrency, "lean")


def run_lean(url: str, n: int, concurrency: int) -> tuple[float, float]:
    return _httpx_threads(httpx.Client(transport=KeepAliveTransport()), url, n, concurrency)


def run_http_client(url: str, n: int, concurrency: int) -> tuple[float, float]:
    parts = httpx.URL(url)
    local = threading.local()
    body = json.dumps(BODY).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def send() -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(parts.host, parts.port, timeout=30)
        conn.request("POST", parts.raw_path.decode(), body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    return _threaded(send, n, concurrency)


async def _async_batch(
    client: httpx.AsyncClient, url: str, n: int, concurrency: int, semaphore: bool
) -> tuple[float, float]:
    async def one() -> None:
        (await client.post(url, json=BODY)).raise_for_status()

    async def batch(count: int) -> None:
        if semaphore:
            gate = asyncio.Semaphore(concurrency)

            async def gated() -> None:
                async with gate:
                    await one()

            await asyncio.gather(*(gated() for _ in range(count)))
            return
        left = iter(range(count))

        async def worker() -> None:
            for _ in left:
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await batch(concurrency * 2)  # warm-up
    wall, cpu = time.perf_counter(), _cpu()
    await batch(n)
    return time.perf_counter() - wall, _cpu() - cpu


def _run_async(url: str, n: int, concurrency: int, *, semaphore: bool, http2: bool) -> Any:
    async def main() -> tuple[float, float]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=concurrency)
        options: dict[str, Any] = {"http1": False, "http2": True} if http2 else {}
        async with httpx.AsyncClient(timeout=30.0, limits=limits, **options) as client:
            return await _async_batch(client, url, n, concurrency, semaphore)

    return asyncio.run(main())


def run_async(url: str, n: int, concurrency: int) -> tuple[float, float]:
    result: tuple[float, float] = _run_async(url, n, concurrency, semaphore=False, http2=False)
    return result


def run_async_sem(url: str, n: int, concurrency: int) -> tuple[float, float]:
    result: tuple[float, float] = _run_async(url, n, concurrency, semaphore=True, http2=False)
    return result


def run_h2(url: str, n: int, concurrency: int) -> tuple[float, float]:
    client = httpx.Client(timeout=30.0, http1=False, http2=True)
    return _httpx_threads(client, url, n, concurrency)


def run_h2_async(url: str, n: int, concurrency: int) -> tuple[float, float]:
    result: tuple[float, float] = _run_async(url, n, concurrency, semaphore=False, http2=True)
    return result


# (name, server kind, function, what it is)
VARIANTS: list[tuple[str, str, Callable[[str, int, int], tuple[float, float]], str]] = [
    ("pool", "h1", run_pool, "httpx pool (JOURNAL_HTTP_TRANSPORT=httpx), threads"),
    ("pool-100", "h1", run_pool_100, "the pool as it was (100 connections, all kept alive)"),
    ("pool-ka20", "h1", run_pool_ka20, "the same, 20 of 100 kept alive (before), threads"),
    ("layer", "h1", run_layer, "journal._http.HttpClient on pool, threads"),
    ("transport", "h1", run_transport, "httpx on journal._transport.LeanTransport, threads"),
    ("layer-lean", "h1", run_layer_lean, "journal._http.HttpClient on transport, threads"),
    ("lean", "h1", run_lean, "httpx over a naive http.client connection per thread"),
    ("http.client", "h1", run_http_client, "http.client per thread, no httpx (floor)"),
    ("async", "h1", run_async, "httpx.AsyncClient, one loop, worker tasks"),
    ("async-sem", "h1", run_async_sem, "httpx.AsyncClient, a task per request + semaphore"),
    ("h2", "h2", run_h2, "httpx.Client HTTP/2 (h2c), threads on one connection"),
    ("h2-async", "h2", run_h2_async, "httpx.AsyncClient HTTP/2 (h2c), worker tasks"),
]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        (_serve_h2 if sys.argv[2] == "h2" else _serve_h1)()
        return 0

    def extra(parser: Any) -> None:
        parser.add_argument("--requests", type=int, default=1000, help="POSTs per run")
        parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
        parser.add_argument("--only", default="", help="comma-separated variant names")

    args = parse_args(__doc__.splitlines()[0], name="bench_http", extra=extra)
    env = environment()
    print_header("HTTP client CPU per request (client process only)", env)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    chosen = [v for v in VARIANTS if not wanted or v[0] in wanted]
    if not HAVE_H2 and any(kind == "h2" for _, kind, _, _ in chosen):
        print("HTTP/2 variants skipped: the `h2` package is not installed (pip install h2)\n")
        chosen = [v for v in chosen if v[1] != "h2"]
    socket.setdefaulttimeout(60)
    n, concurrency = args.requests, args.concurrency
    rows: list[list[object]] = []
    metrics: list[Metric] = []
    base_cpu: float | None = None
    for kind in ("h1", "h2"):
        group = [v for v in chosen if v[1] == kind]
        if not group:
            continue
        walls: dict[str, list[float]] = {v[0]: [] for v in group}
        cpus: dict[str, list[float]] = {v[0]: [] for v in group}
        failed: dict[str, int] = {v[0]: 0 for v in group}
        with server(kind) as url:
            for _ in range(args.runs):  # interleaved: A B C A B C ..., the machine is shared
                for name, _, fn, _ in group:
                    try:
                        wall, cpu = fn(url, n, concurrency)
                    except httpx.HTTPError as exc:
                        failed[name] += 1
                        print(f"  {name}: a run failed: {type(exc).__name__}: {exc}", flush=True)
                        continue
                    walls[name].append(wall)
                    cpus[name].append(cpu)
        for name, _, _, what in group:
            if not cpus[name]:
                rows.append([name, what, "-", "-", "-", "-", failed[name]])
                continue
            wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
            per_ms = cpu / n * 1000
            if name == "pool":
                base_cpu = cpu
            ratio = f"{cpu / base_cpu:.2f}x" if base_cpu else "-"
            row = [name, what, round(wall, 3), round(cpu, 3), round(per_ms, 3), ratio, failed[name]]
            rows.append(row)
            metrics.append(Metric(f"{name} cpu per request", per_ms, "ms", False))
            print(f"  {name}: {per_ms:.3f} ms CPU per request", flush=True)
    print()
    print(f"{n:,} POSTs, {concurrency} in flight, median of {args.runs} runs")
    print_table(
        [
            "variant",
            "what",
            "wall s",
            "client CPU s",
            "CPU ms/request",
            "CPU vs pool",
            "failed runs",
        ],
        rows,
    )
    return finish(
        args, env, metrics, {"http": (["variant", "what", "wall", "cpu", "ms", "ratio"], rows)}
    )


if __name__ == "__main__":
    raise SystemExit(main())
