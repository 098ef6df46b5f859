"""The guide's programs against the local Prisma-compatible API on real PostgreSQL."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from journal._journal import Journal
from journal._ops import destroy_stage
from journal._program.app import RunSettings
from journal._program.runner import ProgramRun, run_program
from journal._projection import load_state
from journal._secret import Secret
from journal.resources.prisma_postgres.local import Faults, LocalPrismaApi

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOG = "journal.resources.prisma_postgres.local"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = LocalPrismaApi(postgres_url=SHARED_PG, prefix="e2e" + uuid.uuid4().hex[:8])
    server.start()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "token-workspace-a")
    try:
        yield server
    finally:
        server.purge()
        server.stop()


def run(example: str, tmp_path: Path, stage: str = "test", command: str = "deploy") -> ProgramRun:
    program = tmp_path / example / "alchemy.run.py"
    if not program.exists():
        program.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / example / "alchemy.run.py", program)
    settings = RunSettings(command=command, stage=stage, location=str(tmp_path / "journal.db"))
    return run_program(program, settings)


def mutations(records: list[logging.LogRecord]) -> list[str]:
    lines = [r.getMessage() for r in records if r.name.startswith(LOG)]
    return [ln for ln in lines if ln.split(" ")[0] in ("POST", "PATCH", "DELETE")]


def test_minimal_example_connects_and_redeploys_as_a_noop(
    api: LocalPrismaApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = run("minimal", tmp_path)
    result = first.results[0]
    assert result.status == "succeeded", result.failures
    assert result.counts == {"create": 3}
    outputs = result.outputs
    dsn = Secret(outputs["connection_string"]["$secret"]).unencrypted
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute("SELECT * FROM pg_tables").fetchall()
        assert rows, "pg_tables answers through the connection we handed out"
        conn.execute("CREATE TABLE app_check (id int)")
    assert outputs["host"] == "127.0.0.1"

    caplog.set_level(logging.INFO, logger=LOG)
    second = run("minimal", tmp_path).results[0]
    assert second.counts == {"noop": 3}
    assert mutations(caplog.records) == [], "a re-deploy changes nothing remotely"


def test_a_connection_reaches_only_its_own_database(api: LocalPrismaApi, tmp_path: Path) -> None:
    a = run("minimal", tmp_path / "a", stage="a").results[0].outputs
    b = run("minimal", tmp_path / "b", stage="b").results[0].outputs
    dsn_a = Secret(a["connection_string"]["$secret"]).unencrypted
    dsn_b = Secret(b["connection_string"]["$secret"]).unencrypted
    db_a = psycopg.conninfo.conninfo_to_dict(dsn_a)["dbname"]
    foreign = psycopg.conninfo.make_conninfo(dsn_b, dbname=db_a)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(foreign, connect_timeout=10)


def test_destroy_keeps_protected_objects_and_ephemeral_removes_them(
    api: LocalPrismaApi, tmp_path: Path
) -> None:
    run("minimal", tmp_path)
    with Journal.open(tmp_path / "journal.db") as jr:
        result = destroy_stage(jr, "prisma-postgres-example", "test")
        assert result.status == "succeeded"
        assert result.counts == {"delete": 1, "forget": 2}
        assert load_state(jr, "prisma-postgres-example/test").resources == {}
    inv = api.inventory()
    assert len(inv.projects) == 1 and len(inv.databases) == 1
    assert "app-connection" not in [c.name for c in inv.connections]

    eph = run("ephemeral", tmp_path, stage="pr-1").results[0]
    assert eph.status == "succeeded"
    db_names_before = set(api.inventory().pg_databases)
    with Journal.open(tmp_path / "journal.db") as jr:
        result = destroy_stage(jr, "prisma-postgres-ephemeral", "pr-1")
    assert result.counts == {"delete": 3}
    inv = api.inventory()
    assert len(inv.projects) == 1, "only the protected minimal project remains"
    assert len(set(inv.pg_databases)) == len(db_names_before) - 1, "the database was dropped"


def test_lost_create_answers_do_not_duplicate(api: LocalPrismaApi, tmp_path: Path) -> None:
    api.set_faults(Faults(rate_lost=1.0))
    with pytest.raises(Exception):  # noqa: B017 - whichever way the run fails, it must converge
        run("minimal", tmp_path)
    api.set_faults(Faults())
    result = run("minimal", tmp_path).results[0]
    assert result.status == "succeeded", result.failures
    inv = api.inventory()
    assert len(inv.projects) == 1 and len(inv.databases) == 1
    assert [c.name for c in inv.connections].count("app-connection") == 1
    with Journal.open(tmp_path / "journal.db") as jr:
        jr.verify()


def test_no_secret_reaches_the_journal_files_or_the_logs(
    api: LocalPrismaApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = run("minimal", tmp_path).results[0].outputs
    secrets = [
        Secret(outputs[k]["$secret"]).unencrypted
        for k in ("connection_string", "prisma_connection_string")
    ]
    assert isinstance(outputs["user"], str), "the login name is not a credential"
    password = psycopg.conninfo.conninfo_to_dict(secrets[0])["password"]
    assert isinstance(password, str)
    secrets += [password, "token-workspace-a"]
    blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    logs = caplog.text
    for s in secrets:
        assert s.encode() not in blobs, "a secret is in the journal's files"
        assert s not in logs, "a secret is in the logs"


def test_multi_workspace_example_puts_each_project_in_its_tokens_workspace(
    api: LocalPrismaApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN_WORKSPACE_A", "token-a")
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN_WORKSPACE_B", "token-b")
    monkeypatch.delenv("PRISMA_SERVICE_TOKEN")
    result = run("multi-workspace", tmp_path).results[0]
    assert result.status == "succeeded", result.failures
    projects = {p.id: p for p in api.inventory().projects}
    a = projects[result.outputs["workspace_a_project"]]
    b = projects[result.outputs["workspace_b_project"]]
    assert a.workspace_id != b.workspace_id
    workspaces = {w.id: w.name for w in api.inventory().workspaces}
    assert result.outputs["workspace_a"] == workspaces[a.workspace_id]


def test_a_stage_deployed_locally_is_not_managed_through_another_api(
    api: LocalPrismaApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("minimal", tmp_path)
    monkeypatch.setenv("PRISMA_API_URL", "https://api.example.invalid")
    created = r"created through the local API [0-9a-f]{16}, but this run talks to https"
    with pytest.raises(Exception, match=created):
        run("minimal", tmp_path)
    with Journal.open(tmp_path / "journal.db") as jr:
        result = destroy_stage(jr, "prisma-postgres-example", "test")
    assert result.status == "failed"
    assert "created through the local API " in result.failures[0][1]
    assert len(api.inventory().projects) == 1
