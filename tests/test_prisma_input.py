"""Bad input never reaches the local API as a 500 (issue 10, item 9).

A NUL byte in a name used to travel to the local API, which passed it to PostgreSQL and
answered 500. Now the provider refuses such a name before anything is sent (a ValidationError
naming the resource and the field), and the local API answers every malformed input with a
4xx and a proper error body: control characters, lone surrogates, over-long text, wrong JSON
types, JSON nested too deep, non-finite numbers.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import journal
from journal._program.app import RunSettings, run_settings
from journal.resources.prisma_postgres import Connection, Database, Project
from journal.resources.prisma_postgres.local import LocalPrismaApi

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LOG = "journal.resources.prisma_postgres.local"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = LocalPrismaApi(postgres_url=PG_URL, prefix="inp" + uuid.uuid4().hex[:10]).start()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "token-input")
    try:
        yield server
    finally:
        server.purge()


@pytest.mark.parametrize(
    ("declare", "where"),
    [
        (lambda: Project("p", name="bad\x00name"), "p: field 'name'"),
        (lambda: Project("p", name="tab\there"), "p: field 'name'"),
        (lambda: Project("p", name="\ud800"), "p: field 'name'"),
        (lambda: Database("d", project="proj_\x00", name="ok"), "d: field 'project'"),
        (
            lambda: Connection("c", database=Database("d", project=Project("p")), name="a\x00"),
            "c: field 'name'",
        ),
    ],
    ids=["nul", "tab", "surrogate", "nul-in-ref", "nul-in-connection"],
)
def test_a_bad_name_is_refused_before_anything_is_sent(
    api: LocalPrismaApi,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    declare: Any,
    where: str,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    settings = RunSettings(stage="input")
    with (
        pytest.raises(journal.ValidationError) as info,
        run_settings(settings),
        journal.app("inp", journal=str(tmp_path / "j.db")),
    ):
        declare()
    message = str(info.value)
    assert message.startswith(where), message
    assert "control characters" in message or "Unicode" in message
    assert "\x00" not in message, "the message itself stays printable"
    requests = [r.getMessage() for r in caplog.records if r.name.startswith(LOG)]
    assert not [r for r in requests if r.split(" ")[0] in ("POST", "PATCH", "DELETE")]
    assert api.inventory().projects == ()


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/projects", {"json": {"name": "a\x00b"}}),
    ("POST", "/v1/projects", {"json": {"name": "a\x01b"}}),
    ("POST", "/v1/projects", {"json": {"name": "x" * 5000}}),
    ("POST", "/v1/projects", {"content": b'{"name": "\\ud800"}'}),
    ("POST", "/v1/projects", {"content": b"[" * 100_000}),
    ("POST", "/v1/projects", {"json": {"name": 5}}),
    ("POST", "/v1/projects", {"json": {"name": "ok", "region": ["x"]}}),
    ("POST", "/v1/projects", {"json": {"name": "ok", "createDatabase": "yes"}}),
    ("POST", "/v1/projects", {"content": b'{"name": NaN}'}),
    ("POST", "/v1/projects", {"content": b"\xff\xfe"}),
    ("POST", "/v1/databases", {"json": {"projectId": "{project}", "name": "a\x00"}}),
    ("POST", "/v1/databases", {"json": {"projectId": "a\x00", "name": "x"}}),
    ("POST", "/v1/databases", {"json": {"projectId": 5, "name": "x"}}),
    ("POST", "/v1/databases", {"json": {"projectId": "{project}", "isDefault": None}}),
    ("POST", "/v1/projects/{project}/databases", {"json": {"name": "a\x00"}}),
    ("PATCH", "/v1/projects/{project}", {"json": {"name": "a\x00"}}),
    ("PATCH", "/v1/databases/{database}", {"json": {"name": "a\x00"}}),
    ("POST", "/v1/connections", {"json": {"databaseId": "{database}", "name": "a\x00"}}),
    ("POST", "/v1/connections", {"json": {"databaseId": "db_\x00", "name": "a"}}),
    ("POST", "/v1/databases/{database}/connections", {"json": {"name": "a\x00"}}),
    ("GET", "/v1/projects/a%00b", {}),
    ("GET", "/v1/workspaces/%00", {}),
    ("GET", "/v1/databases/db_%00", {}),
    ("DELETE", "/v1/connections/con_%00", {}),
    ("DELETE", "/v1/projects/" + "x" * 5000, {}),
    ("GET", "/v1/databases?projectId=%00", {}),
    ("GET", "/v1/connections?databaseId=%00", {}),
    ("GET", "/v1/projects?cursor=%00", {}),
    ("GET", "/v1/projects?limit=1e400", {}),
    ("GET", "/v1/projects?limit=nan", {}),
]


def test_malformed_requests_get_a_4xx_with_an_error_body(api: LocalPrismaApi) -> None:
    with httpx.Client(
        base_url=api.url, headers={"Authorization": "Bearer token-input"}, timeout=30
    ) as http:
        made = http.post("/v1/projects", json={"name": "p", "createDatabase": False})
        project = made.json()["data"]["id"]
        made = http.post("/v1/databases", json={"projectId": project, "name": "d"})
        database = made.json()["data"]["id"]
        ids = {"{project}": project, "{database}": database}
        wrong = []
        for method, path, kw in BAD_REQUESTS:
            for key, value in ids.items():
                path = path.replace(key, value)
            if "json" in kw:
                body = {
                    k: ids.get(v, v) if isinstance(v, str) else v for k, v in kw["json"].items()
                }
                kw = {"json": body}
            answer = http.request(method, path, **kw)
            error = answer.json().get("error", {}) if answer.content else {}
            if not (400 <= answer.status_code < 500 and error.get("code") and error.get("message")):
                wrong.append(f"{method} {path[:60]} {kw!r:.60}: {answer.status_code} {answer.text}")
        assert wrong == []
        # and nothing was made by any of them
        inv = api.inventory()
        assert [p.name for p in inv.projects] == ["p"]
        assert [d.name for d in inv.databases] == ["d"]
