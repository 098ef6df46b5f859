"""The guide's complete example (examples/hyperdrive-worker) through the CLI, all local: a
fresh folder, ``journal deploy --local`` on the machine's PostgreSQL, the Worker served by
``journal local serve`` answering the guide's JSON, a no-op re-deploy, an edit of worker.ts
that updates the Worker alone, and a destroy; no secret in the journal files, the bundle
folder, workerd's arguments or the command output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _cloudflare import EXAMPLE, PG_URL, example_project, gone, tools, tree_bytes
from cli_harness import run
from psycopg import sql

from journal.resources.prisma_postgres._service import LOCAL_TOKEN

pytestmark = pytest.mark.slow

PASSWORD = "example-journal-password"


def _journal_exe() -> list[str]:
    exe = Path(sys.executable).parent / "journal"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "journal.cli"]


def _workerd_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(") ", 1)[1].split()[1])
        if ppid == pid and b"workerd" in cmdline:
            found.append(int(entry.name))
    return found


@contextmanager
def serving(project: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``journal local serve`` in ``project``: it restarts the deployed Workers from the local
    API's state (on the ports they had), until the block ends. Yields the process and the
    variables it printed (``CLOUDFLARE_API_URL``, ``PRISMA_API_URL``)."""
    proc = subprocess.Popen(
        [*_journal_exe(), "local", "serve", "--postgres-url", PG_URL],
        cwd=project,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    env: dict[str, str] = {}
    for line in proc.stdout:
        lines.append(line)
        if "export " in line:
            name, _, value = line.split("export ", 1)[1].strip().partition("=")
            env[name] = value
        if "Ctrl-C to stop" in line:
            break
    else:
        pytest.fail("journal local serve did not start:\n" + "".join(lines))
    try:
        yield proc, env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()


def _deploy_changes(result: Any) -> dict[str, str]:
    doc = json.loads(result.stdout)
    return {c["resource"]: c["action"] for r in doc["runs"] for c in r["changes"]}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tools()
    try:
        psycopg.connect(PG_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_URL}: {exc}")
    folder = example_project(tmp_path)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("JOURNAL_PASSWORD", PASSWORD)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    monkeypatch.setenv("JOURNAL_LOCAL_POSTGRES_URL", PG_URL)
    for name in ("CLOUDFLARE_API_URL", "PRISMA_API_URL", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return folder


def _drop(database: str) -> None:
    """Projects and databases are delete-protected: drop what the example made."""
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))


def test_the_complete_example_runs_locally_end_to_end(project: Path) -> None:
    outputs: list[str] = []
    first = run("deploy", "--local", code=0)
    outputs.append(first.output)
    assert "5 created" in first.stdout, first.output
    url = run("outputs", "url", "--raw", code=0).stdout.strip()
    assert url.startswith("http://127.0.0.1:")
    shown = json.loads(run("show", "--json", "--show-secrets", code=0).stdout)
    dsn = shown["resources"]["connection"]["outputs"]["connection_string"]
    password = shown["resources"]["connection"]["outputs"]["password"]
    origin = shown["resources"]["prisma-postgres"]["outputs"]["origin"]
    assert "password" not in origin and origin["port"] == 5432
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM pg_tables").fetchone()
            assert row is not None
            tables = int(row[0])

        with serving(project) as (serve, _env):
            answer = httpx.get(url, timeout=30)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["success"] is True
            assert len(body["result"]) == tables
            workerds = _workerd_children(serve.pid)
            assert workerds, "the Worker runs in workerd"
            for pid in workerds:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                assert password.encode() not in argv

        again = run("deploy", "--local", "--json", code=0)
        outputs.append(again.output)
        assert set(_deploy_changes(again).values()) == {"noop"}

        worker_ts = project / "src" / "worker.ts"
        worker_ts.write_text(
            worker_ts.read_text().replace("success: true,", "success: true,\n        edited: 1,")
        )
        edited = run("deploy", "--local", "--json", code=0)
        outputs.append(edited.output)
        changes = _deploy_changes(edited)
        assert changes.pop("worker") == "update"
        assert set(changes.values()) == {"noop"}, changes
        with serving(project):
            body = httpx.get(url, timeout=30).json()
            assert body["success"] is True and body["edited"] == 1

        for command in (("outputs",), ("show",), ("history",), ("plan", "--local")):
            outputs.append(run(*command, code=0).output)
        gone_ = run("destroy", "--local", "--yes", code=0)
        outputs.append(gone_.output)
        state = json.loads((project / ".journal" / "cloudflare" / "state.json").read_text())
        assert state["scripts"] == {} and state["hyperdrive"] == {}
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=5)
    finally:
        _drop(origin["database"])

    secrets = [password, dsn, PASSWORD]
    for text in outputs:
        assert all(s not in text for s in secrets)
    journal_files = b"".join(
        p.read_bytes() for p in (project / ".journal").glob("journal.db*") if p.is_file()
    )
    assert journal_files, "the journal is there"
    assert password.encode() not in journal_files
    assert password.encode() not in tree_bytes(project / ".journal" / "build")
    state_file = project / ".journal" / "cloudflare" / "state.json"
    assert password.encode() not in state_file.read_bytes()


def test_destroy_stops_the_local_worker_process(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a long-lived local API (``journal local serve``), a destroy stops the
    Worker's workerd while the API goes on serving."""
    run("deploy", "--local", code=0)
    shown = json.loads(run("show", "--json", code=0).stdout)
    origin = shown["resources"]["prisma-postgres"]["outputs"]["origin"]
    try:
        with serving(project) as (serve, env):
            pids = _workerd_children(serve.pid)
            assert len(pids) == 1
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            # the token `--local` deploys with (the local Prisma API scopes objects by token)
            monkeypatch.setenv("PRISMA_SERVICE_TOKEN", LOCAL_TOKEN)
            result = run("destroy", "--yes", code=0)
            assert "worker" in result.stdout
            assert gone(pids[0]), "the Worker's workerd was stopped"
            assert serve.poll() is None, "the local API serves on"
    finally:
        _drop(origin["database"])


def test_init_scaffolds_the_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``journal init --template hyperdrive-worker``: the example's program (under the
    folder's app name) and a Worker that bundles, with ``pg``, as the example's does."""
    from journal.resources.cloudflare._bundle import bundle_worker

    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    folder = tmp_path / "my-worker"
    result = run("init", str(folder), "--template", "hyperdrive-worker", code=0)
    for name in ("alchemy.run.py", "src/worker.ts", "package.json", ".gitignore"):
        assert str(folder / name) in result.stdout
    example = (EXAMPLE / "alchemy.run.py").read_text()
    program = (folder / "alchemy.run.py").read_text()
    body = example[example.index("with journal.app") :].replace(
        '"prisma-postgres-example"', '"my-worker"'
    )
    assert program.endswith(body)
    assert json.loads((folder / "package.json").read_text()) == json.loads(
        (EXAMPLE / "package.json").read_text()
    )
    bundle = bundle_worker(folder / "src" / "worker.ts", tmp_path / "out", tools=tools())
    assert b"pg_tables" in bundle.modules[0].read()
