"""Issue 13: a stage is bound to where it was first deployed. The README and scaffold path
`journal init` -> `journal deploy --local` -> `plan` / `deploy` / `refresh` / `rollback N` /
`destroy`, with no flags, on the local Prisma API over an embedded PostgreSQL; `journal dev`
on its own stage `dev-<user>`; a flag that would send the stage elsewhere is refused with
what to type."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_harness import run

from journal._journal import Journal
from journal._projection import load_state

pytest.importorskip("pgserver")


@pytest.fixture
def folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder the embedded PostgreSQL may use (short path: Unix socket limits; not
    under pytest's root-only tmp_path, which the pgserver system user cannot enter)."""
    from journal.resources.prisma_postgres.local import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="jb-"))
    root.chmod(0o755)
    monkeypatch.chdir(root)
    monkeypatch.setenv("JOURNAL_ACTOR", "bob")
    try:
        yield root
    finally:
        EmbeddedPostgres(root / "app" / ".journal" / "postgres").stop()
        shutil.rmtree(root, ignore_errors=True)


def state_of(project: Path, stream: str) -> dict[str, dict[str, object]]:
    with Journal.open(project / ".journal" / "journal.db") as jr:
        st = load_state(jr, stream)
    return {k: {"outputs": r.outputs, "options": r.options} for k, r in st.resources.items()}


def delete_connection_behind_our_back(project: Path, connection_id: str) -> None:
    from journal.resources.prisma_postgres.local import LocalPrismaApi

    with LocalPrismaApi(data_dir=project / ".journal" / "postgres") as api:
        headers = {"Authorization": "Bearer journal-local-token"}
        with httpx.Client(base_url=api.url, headers=headers) as http:
            answer = http.delete(f"/v1/connections/{connection_id}")
            assert answer.status_code in (200, 204), answer.text


def test_init_deploy_local_then_every_command_without_flags(folder: Path) -> None:
    run("init", "app", code=0)
    os.chdir(folder / "app")
    project = folder / "app"

    first = run("deploy", "--local", code=0)
    assert first.stderr.splitlines()[0] == (
        "stage bob: not deployed yet; deploying to the local APIs, where the stage will stay"
    )
    assert "3 created" in first.stdout
    bound = [json.loads(x) for x in run("history", "--json", code=0).stdout.splitlines()]
    assert [r["detail"] for r in bound if r["action"] == "stage.bound"] == [
        "the stage lives on the local API"
    ]
    after_first = max(r["seq"] for r in bound)

    planned = run("plan", code=0)
    assert planned.stderr.splitlines()[0].startswith("stage bob lives on the local APIs (bound:")
    assert "plan: 3 unchanged" in planned.stdout
    assert "3 unchanged" in run("deploy", code=0).stdout

    # the other way round is refused, saying what to type
    refused = run("deploy", "--no-local", code=2)
    assert "stage 'bob' lives on the local APIs (bound at its first deploy)" in refused.stderr
    assert "Run `journal deploy` without --no-local" in refused.stderr
    assert "`journal deploy --no-local --stage bob-real`" in refused.stderr

    # drift: the connection deleted through the API itself
    connection = state_of(project, "app/bob")["connection"]["outputs"]
    assert isinstance(connection, dict)
    delete_connection_behind_our_back(project, str(connection["id"]))
    refreshed = run("refresh", code=0)
    assert refreshed.stderr.splitlines()[0].startswith("stage bob lives on the local API")
    assert "! connection (prisma-postgres.Connection): gone" in refreshed.stdout
    assert "connection_string" not in run("outputs", code=0).stdout
    assert "+ connection (prisma-postgres.Connection): create" in run("plan", code=0).stdout
    assert "1 created" in run("deploy", code=0).stdout
    assert "connection_string" in run("outputs", code=0).stdout

    run("rollback", str(after_first), "--yes", code=0)
    gone = run("destroy", "--yes", code=0)
    assert gone.stderr.splitlines()[0].startswith("stage bob lives on the local API")
    assert state_of(project, "app/bob") == {}


def test_dev_has_its_own_stage_and_later_commands_follow_it(folder: Path) -> None:
    run("init", "app", "--template", "ephemeral", code=0)
    os.chdir(folder / "app")
    dev = run("dev", "--once", code=0)
    assert dev.stderr.splitlines()[0] == (
        "stage dev-bob: not deployed yet; deploying to the local APIs, where the stage will stay"
    )
    assert "app/dev-bob: deploy succeeded" in dev.stdout
    # the default stage is another one: a real deploy of it is not the dev loop's
    other = run("plan", code=0)
    assert "plan: 3 to create" in other.stdout and "dev-bob" not in other.stderr
    asks = run("local", "reset", "--stage", "dev-bob", code=2)
    assert "reset needs confirmation: pass --yes" in asks.stderr
    wiped = run("local", "reset", "--stage", "dev-bob", "--yes", code=0)
    assert "reset app/dev-bob: 3 local object(s) deleted with their data" in wiped.stdout
    assert state_of(folder / "app", "app/dev-bob") == {}
    records = [json.loads(x) for x in run("history", "--json", code=0).stdout.splitlines()]
    deleted = [r for r in records if r["action"] == "deleted"]
    assert [r["detail"] for r in deleted] == ["local reset"] * 3
    assert "3 created" in run("dev", "--once", code=0).stdout, "names are free again"
    refused = run("destroy", "--stage", "dev-bob", "--no-local", "--yes", code=2)
    assert "without --no-local" in refused.stderr
    run("destroy", "--stage", "dev-bob", "--yes", code=0)
    assert state_of(folder / "app", "app/dev-bob") == {}

    data = folder / "app" / ".journal" / "postgres"
    status = run("local", "status", code=0).stdout
    assert status.startswith(f"{data}: running on 127.0.0.1:") and " MB" in status
    assert run("local", "stop", code=0).stdout.startswith(f"stopped the PostgreSQL of {data}")
    assert run("local", "status", code=0).stdout.startswith(f"{data}: stopped, ")
    assert (
        "no embedded PostgreSQL of this project is running" in run("local", "stop", code=0).stdout
    )
