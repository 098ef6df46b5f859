"""A 404 on delete means "gone" only for the credentials and API that created the object
(issue 10, item 2).

A destroy with another workspace's token, or against another local API (every loopback URL
used to be recorded as the same "local"), printed "1 deleted", exited 0, forgot the object
and left it running, its connection password included. Now the engine records where each
object was created (the API's origin, or the local API's instance id) and a keyed fingerprint
of the credential, and a 404 under anything else is an error naming both.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

import journal
from journal._events import make_event
from journal._journal import Journal
from journal._ops import destroy_stage
from journal._program.app import RunSettings, run_settings
from journal._projection import load_state
from journal._secret import Secret
from journal.cli import cli
from journal.resources.prisma_postgres import Connection, Database, Project
from journal.resources.prisma_postgres.local import LocalPrismaApi

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
APP = "ident"
STAGE = "test"
STREAM = f"{APP}/{STAGE}"
TOKEN_A = "token-of-workspace-a"
TOKEN_B = "token-of-workspace-b"

PROGRAM = """
import journal
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("ident") as app:
    project = Project("project", delete=True)
    database = Database("database", project=project, delete=True)
    connection = Connection("connection", database=database)
    app.export(connection_string=connection.connection_string)
"""


def _api() -> LocalPrismaApi:
    return LocalPrismaApi(postgres_url=PG_URL, prefix="id" + uuid.uuid4().hex[:10]).start()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = _api()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", TOKEN_A)
    try:
        yield server
    finally:
        server.purge()


@pytest.fixture
def location(tmp_path: Path) -> str:
    return str(tmp_path / ".journal" / "journal.db")


def deploy(location: str) -> dict[str, Any]:
    settings = RunSettings(stage=STAGE, location=location)
    with run_settings(settings), journal.app(APP) as app:
        project = Project("project", delete=True)
        database = Database("database", project=project, delete=True)
        connection = Connection("connection", database=database)
        app.export(connection_string=connection.connection_string)
    result = settings.results[0]
    assert result.status == "succeeded", result.failures
    return dict(result.outputs)


def recorded(location: str) -> dict[str, Any]:
    with Journal.open(location, create=False) as jr:
        return {rid: res for rid, res in load_state(jr, STREAM).resources.items()}


def destroy(location: str) -> Any:
    with Journal.open(location, create=False) as jr:
        return destroy_stage(jr, APP, STAGE)


def get(api: LocalPrismaApi, path: str, token: str = TOKEN_A) -> int:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        return http.get(path, headers={"Authorization": f"Bearer {token}"}).status_code


def still_connects(outputs: dict[str, Any]) -> bool:
    dsn = Secret(outputs["connection_string"]["$secret"]).unencrypted
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def test_the_identity_is_recorded_precisely_and_never_the_token(
    api: LocalPrismaApi, location: str
) -> None:
    deploy(location)
    for res in recorded(location).values():
        assert res.options["endpoint"] == f"local:{api.instance_id}"
        fp = res.options["credential"]
        assert set(fp) == {"key", "fingerprint"} and len(fp["fingerprint"]) == 16
    raw = b"".join(p.read_bytes() for p in Path(location).parent.glob("journal.db*") if p.is_file())
    assert TOKEN_A.encode() not in raw, "the token never reaches the journal file in clear"


def test_destroy_with_another_workspaces_token_fails_and_forgets_nothing(
    api: LocalPrismaApi, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = deploy(location)
    before = recorded(location)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", TOKEN_B)
    result = destroy(location)
    assert result.status == "failed"
    errors = dict(result.failures)
    assert "404 (not found), but this run used credentials" in errors["connection"]
    assert "created through the local API " + api.instance_id in errors["connection"]
    assert TOKEN_A not in str(errors) and TOKEN_B not in str(errors)
    assert set(recorded(location)) == set(before), "the journal still has every object"
    con_id = before["connection"].outputs["id"]
    assert get(api, f"/v1/connections/{con_id}") == 200, "the object is still there"
    assert still_connects(outputs), "and its password still works"
    # with the right token the same destroy goes through
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", TOKEN_A)
    assert destroy(location).status == "succeeded"
    assert recorded(location) == {}
    assert get(api, f"/v1/connections/{con_id}") == 404
    assert not still_connects(outputs)


def _destroy_through_another_local_api(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str]:
    """``destroy`` with PRISMA_API_URL pointed at a second, fresh local API (purged after);
    the result and that API's instance id."""
    other = _api()
    other_id = other.instance_id
    try:
        monkeypatch.setenv("PRISMA_API_URL", other.url)
        return destroy(location), other_id
    finally:
        other.purge()


def test_destroy_against_another_local_api_fails_and_forgets_nothing(
    api: LocalPrismaApi, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = deploy(location)
    before = recorded(location)
    result, other_id = _destroy_through_another_local_api(location, monkeypatch)
    assert result.status == "failed"
    errors = dict(result.failures)
    assert (
        f"was created through the local API {api.instance_id}, but this run talks to "
        f"the local API {other_id}" in errors["connection"]
    )
    assert set(recorded(location)) == set(before)
    assert still_connects(outputs)
    inv = api.inventory()
    assert len(inv.projects) == 1 and len(inv.databases) == 1


def test_the_same_local_api_on_a_new_port_is_the_same_api(
    api: LocalPrismaApi, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(location)
    again = LocalPrismaApi(postgres_url=PG_URL, prefix=api.prefix).start()
    try:
        assert again.url != api.url and again.instance_id == api.instance_id
        monkeypatch.setenv("PRISMA_API_URL", again.url)
        assert destroy(location).status == "succeeded"
    finally:
        again.stop()
    assert recorded(location) == {}


def test_right_credentials_and_object_already_gone_is_recorded_deleted(
    api: LocalPrismaApi, location: str
) -> None:
    deploy(location)
    con_id = recorded(location)["connection"].outputs["id"]
    with httpx.Client(base_url=api.url, timeout=30) as http:
        gone = http.delete(
            f"/v1/connections/{con_id}", headers={"Authorization": f"Bearer {TOKEN_A}"}
        )
        assert gone.status_code == 204
    result = destroy(location)
    assert result.status == "succeeded", result.failures
    assert recorded(location) == {}
    with Journal.open(location, create=False) as jr:
        deleted = [
            e.payload
            for e in jr.read(STREAM)
            if e.payload["type"] == "resource.deleted" and e.payload["resource"] == "connection"
        ]
    assert deleted[-1].get("already_gone") is True


def _deployed_with_a_pending_delete(location: str) -> Any:
    """Deploy, then record what a destroy killed after its delete intent leaves: the
    connection's delete pending. Returns the connection's recorded state."""
    deploy(location)
    con = recorded(location)["connection"]
    with Journal.open(location, create=False) as jr:
        jr.append(
            STREAM,
            [
                make_event(
                    "resource.delete.requested",
                    resource="connection",
                    resource_type=con.type,
                    target="current",
                    outputs=con.outputs,
                )
            ],
        )
    return con


def test_a_pending_delete_is_not_resolved_as_gone_under_other_credentials(
    api: LocalPrismaApi, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = _deployed_with_a_pending_delete(location)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", TOKEN_B)
    result = destroy(location)
    assert result.status == "failed"
    assert "404 (not found), but this run used" in dict(result.failures)["connection"]
    assert "connection" in recorded(location)
    assert recorded(location)["connection"].pending is not None, "still to be resolved"
    assert get(api, f"/v1/connections/{con.outputs['id']}") == 200


def test_a_pending_delete_is_not_resolved_as_gone_through_another_local_api(
    api: LocalPrismaApi, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery reads only through the API the operation was started on: another local API
    (same default token) would answer 404 for an object that lives in the first one."""
    con = _deployed_with_a_pending_delete(location)
    result, other_id = _destroy_through_another_local_api(location, monkeypatch)
    assert result.status == "failed"
    error = dict(result.failures)["connection"]
    assert f"this run talks to the local API {other_id}" in error
    assert recorded(location)["connection"].pending is not None, "still to be resolved"
    assert get(api, f"/v1/connections/{con.outputs['id']}") == 200


def _downgrade_to_legacy(location: str) -> None:
    """Make the journal look written before this change: endpoint "local", no fingerprint."""
    with Journal.open(location, create=False) as jr:
        state = load_state(jr, STREAM)
        events = []
        for rid, res in state.resources.items():
            options = {k: v for k, v in res.options.items() if k != "credential"}
            options["endpoint"] = "local"
            events.append(
                make_event(
                    "resource.policy.changed",
                    resource=rid,
                    resource_type=res.type,
                    delete=res.delete,
                    options=options,
                )
            )
        jr.append(STREAM, events)


def test_journals_recorded_with_endpoint_local_keep_working(
    api: LocalPrismaApi, location: str
) -> None:
    deploy(location)
    _downgrade_to_legacy(location)
    assert all(r.options["endpoint"] == "local" for r in recorded(location).values())
    deploy(location)  # a no-op run sees each object with its identity and records it
    for res in recorded(location).values():
        assert res.options["endpoint"] == f"local:{api.instance_id}"
        assert "fingerprint" in res.options["credential"]
    _downgrade_to_legacy(location)
    assert destroy(location).status == "succeeded"  # taken at the API's word, as before
    assert recorded(location) == {}


def test_cli_destroy_with_the_wrong_token_exits_1_and_says_why(
    api: LocalPrismaApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    runner = CliRunner()
    first = runner.invoke(cli, ["deploy", "--stage", STAGE, "--yes"])
    assert first.exit_code == 0, first.output
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", TOKEN_B)
    second = runner.invoke(cli, ["destroy", "--stage", STAGE, "--yes"])
    assert second.exit_code == 1, second.output
    text = second.output + (second.stderr or "")
    assert "404 (not found), but this run used credentials" in text
    assert "deleted" not in text.split("404")[0].lower() or "0 deleted" in text
    assert TOKEN_A not in text and TOKEN_B not in text
    assert "Traceback" not in text
    assert len(recorded(str(tmp_path / ".journal" / "journal.db"))) == 3
