"""The guide's Worker, bundled with pg by esbuild and run in real workerd against the machine's
PostgreSQL through a Hyperdrive binding; reloads, stops, failures and where secrets are not."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from _cloudflare import bundle_example, example_project, gone, pg_login, tools, tree_bytes

from journal import Secret
from journal.resources.cloudflare._bundle import BANNER, JS_MODULE, Bundle, Module, bundle_hash
from journal.resources.cloudflare._workerd import (
    HyperdriveBinding,
    LocalWorker,
    SecretBinding,
    TextBinding,
    WorkerdError,
    WorkerSpec,
)

pytestmark = pytest.mark.slow


def _hyperdrive(login: object) -> HyperdriveBinding:
    from _cloudflare import Login

    assert isinstance(login, Login)
    return HyperdriveBinding(
        "HYPERDRIVE", login.host, login.port, login.database, login.user, Secret(login.password)
    )


def test_the_guides_worker_answers_with_every_pg_table(tmp_path: Path) -> None:
    bundle = bundle_example(example_project(tmp_path), tmp_path / "build")
    with pg_login() as login:
        spec = WorkerSpec("worker", bundle, "2026-11-01", ("nodejs_compat",), (_hyperdrive(login),))
        with LocalWorker(spec, tools=tools()) as worker:
            pid = worker.pid
            assert pid is not None
            answer = httpx.get(worker.url, timeout=30)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["success"] is True
            assert len(body["result"]) == login.count_pg_tables()
            # no secret in workerd's arguments or environment, nor in the bundle folder
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert login.password.encode() not in cmdline
            assert login.password.encode() not in environ
            assert login.password.encode() not in tree_bytes(bundle.directory)
            # the private folder: owner-only, and the configuration is gone once read
            log = worker.log_path
            assert log is not None
            assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
            assert not (log.parent / "config.capnp").exists()
            assert login.password.encode() not in tree_bytes(log.parent)
        assert gone(pid)
        assert not log.parent.exists()


def test_an_origin_that_refuses_answers_500_not_a_hang(tmp_path: Path) -> None:
    # the test server trusts loopback logins, so a database that does not exist is refused
    bundle = bundle_example(example_project(tmp_path), tmp_path / "build")
    with pg_login() as login:
        wrong = HyperdriveBinding(
            "HYPERDRIVE", login.host, login.port, "no_such_db", login.user, Secret("nope")
        )
        with LocalWorker(WorkerSpec("worker", bundle, bindings=(wrong,)), tools=tools()) as w:
            answer = httpx.get(w.url, timeout=30)
            assert answer.status_code == 500
            assert "Database error" in answer.text


def _module_bundle(folder: Path, source: str) -> Bundle:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "worker.js").write_text(textwrap.dedent(source))
    modules = (Module("worker.js", JS_MODULE, folder / "worker.js"),)
    return Bundle(folder, "worker.js", modules, bundle_hash(modules))


ECHO_ENV = """
    export default {
      async fetch(request, env) {
        return Response.json({ version: VERSION, greeting: env.GREETING, key: env.API_KEY });
      },
    };
"""


def test_text_and_secret_bindings_reach_the_worker_and_a_reload_serves_new_code(
    tmp_path: Path,
) -> None:
    secret = 'sk-"quoted"\\back\nline'
    bindings = (TextBinding("GREETING", "hello"), SecretBinding("API_KEY", Secret(secret)))
    v1 = _module_bundle(tmp_path / "v1", "const VERSION = 1;" + ECHO_ENV)
    v2 = _module_bundle(tmp_path / "v2", "const VERSION = 2;" + ECHO_ENV)
    with LocalWorker(WorkerSpec("echo", v1, bindings=bindings), tools=tools()) as worker:
        url, first_pid = worker.url, worker.pid
        assert first_pid is not None
        assert httpx.get(url).json() == {"version": 1, "greeting": "hello", "key": secret}
        assert secret.encode() not in Path(f"/proc/{first_pid}/cmdline").read_bytes()
        worker.reload(WorkerSpec("echo", v2, bindings=bindings))
        assert worker.url == url
        assert httpx.get(url).json()["version"] == 2
        assert gone(first_pid)


def test_a_worker_that_throws_at_start_up_is_an_error_with_workerds_message(
    tmp_path: Path,
) -> None:
    broken = _module_bundle(
        tmp_path / "b", 'throw new Error("boom at start-up");\nexport default {};'
    )
    worker = LocalWorker(WorkerSpec("broken", broken), tools=tools())
    with pytest.raises(WorkerdError, match="boom at start-up"):
        worker.start()
    assert worker.pid is None and not worker.running


def test_without_the_require_banner_pg_fails_with_dynamic_require(tmp_path: Path) -> None:
    """The known failure the bundler's banner fixes: a bundled CommonJS require("events")."""
    bundle = bundle_example(example_project(tmp_path), tmp_path / "build")
    main = bundle.directory / "worker.js"
    text = main.read_text()
    assert text.startswith(BANNER)
    main.write_text(text[len(BANNER) :])
    with pytest.raises(WorkerdError, match=r'Dynamic require of "events" is not supported'):
        LocalWorker(WorkerSpec("worker", bundle), tools=tools()).start()


ORPHAN = """
import sys, time
from pathlib import Path
from journal.resources.cloudflare._bundle import JS_MODULE, Bundle, Module, bundle_hash
from journal.resources.cloudflare._workerd import LocalWorker, WorkerSpec
folder = Path(sys.argv[1])
modules = (Module("worker.js", JS_MODULE, folder / "worker.js"),)
spec = WorkerSpec("w", Bundle(folder, "worker.js", modules, bundle_hash(modules)))
w = LocalWorker(spec).start()
print(w.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workerd_does_not_outlive_its_parent(tmp_path: Path, how: signal.Signals) -> None:
    tools()  # installed before the child needs it
    bundle = _module_bundle(
        tmp_path / "m", "export default { fetch() { return new Response('x'); } };"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(bundle.directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    pid = int(line)
    assert Path(f"/proc/{pid}").exists()
    child.send_signal(how)
    child.wait(timeout=30)
    child.stdout.close()
    assert gone(pid)


def test_stop_is_idempotent_and_the_port_is_released(tmp_path: Path) -> None:
    bundle = _module_bundle(
        tmp_path / "m", "export default { fetch() { return new Response('x'); } };"
    )
    worker = LocalWorker(WorkerSpec("w", bundle), tools=tools()).start()
    port = worker.port
    assert httpx.get(worker.url).text == "x"
    worker.stop()
    worker.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


def test_config_values_are_quoted_for_capnp() -> None:
    from journal.resources.cloudflare._workerd import render_config

    modules = (Module("worker.js", JS_MODULE, Path("/x/worker.js")),)
    bundle = Bundle(Path("/x"), "worker.js", modules, "h")
    spec = WorkerSpec("w", bundle, bindings=(TextBinding("T", 'a"b\\c\nd\x01'),))
    text = render_config(spec)
    assert '(name = "T", text = "a\\"b\\\\c\\nd\\x01")' in text
