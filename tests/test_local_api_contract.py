"""Contract: every endpoint and every error status of the local API, each answer validated
against the Prisma Management API's OpenAPI document. Runs against both implementations of the
store: real PostgreSQL (the shared server) and metadata-only."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from journal.resources.prisma_postgres.local import Faults, LocalPrismaApi

sys.path.insert(0, str(Path(__file__).parent))
from _openapi import OpenApi, default_document_path

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: every operation the local API implements (the rest of the document is out of scope)
IMPLEMENTED = {
    ("GET", "/v1/workspaces"),
    ("GET", "/v1/workspaces/{id}"),
    ("GET", "/v1/projects"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects/{id}"),
    ("PATCH", "/v1/projects/{id}"),
    ("DELETE", "/v1/projects/{id}"),
    ("GET", "/v1/projects/{projectId}/databases"),
    ("POST", "/v1/projects/{projectId}/databases"),
    ("GET", "/v1/databases"),
    ("POST", "/v1/databases"),
    ("GET", "/v1/databases/{databaseId}"),
    ("PATCH", "/v1/databases/{databaseId}"),
    ("DELETE", "/v1/databases/{databaseId}"),
    ("GET", "/v1/databases/{databaseId}/connections"),
    ("POST", "/v1/databases/{databaseId}/connections"),
    ("GET", "/v1/connections"),
    ("POST", "/v1/connections"),
    ("GET", "/v1/connections/{id}"),
    ("DELETE", "/v1/connections/{id}"),
    ("POST", "/v1/connections/{id}/rotate"),
    ("GET", "/v1/regions"),
    ("GET", "/v1/regions/postgres"),
}

#: answers the document does not list for the operation, on purpose (validated as the error
#: envelope): validation errors where the document has no 400, 404 for a missing parent, and
#: the injected faults
UNDOCUMENTED = {
    ("POST", "/v1/projects", 400),
    ("POST", "/v1/projects/{projectId}/databases", 404),
    ("PATCH", "/v1/databases/{databaseId}", 400),
    ("GET", "/v1/databases/{databaseId}/connections", 404),
    ("POST", "/v1/databases/{databaseId}/connections", 400),
    ("POST", "/v1/connections", 400),
    ("GET", "/v1/projects", 400),
    ("GET", "/v1/regions", 400),
    ("GET", "/v1/projects", 429),
    ("POST", "/v1/projects", 500),
    ("POST", "/v1/projects", 502),
    ("POST", "/v1/projects", 503),
}


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    assert default_document_path().exists(), f"no OpenAPI document at {default_document_path()}"
    return OpenApi()


@pytest.fixture(params=["postgres", "metadata-only"])
def api(request: pytest.FixtureRequest) -> Iterator[LocalPrismaApi]:
    prefix = "t" + uuid.uuid4().hex[:12]
    if request.param == "postgres":
        try:
            with psycopg.connect(PG_URL, connect_timeout=3):
                pass
        except psycopg.OperationalError as exc:
            pytest.fail(f"no PostgreSQL at {PG_URL} (.ci/run starts it): {exc}")
        server = LocalPrismaApi(postgres_url=PG_URL, prefix=prefix)
    else:
        server = LocalPrismaApi(metadata_only=True, prefix=prefix)
    server.start()
    try:
        yield server
    finally:
        server.purge()


class Checked:
    """An HTTP client that validates every answer against the document and records coverage."""

    def __init__(self, api: LocalPrismaApi, openapi: OpenApi, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=api.url, headers=headers, timeout=30)
        self.openapi = openapi
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        template = self.openapi.template_for(method, path.split("?")[0])
        body = response.json() if response.content else None
        undocumented = (method, template, expect) in UNDOCUMENTED
        self.openapi.validate(method, template, expect, body, undocumented_ok=undocumented)
        self.seen.add((method, template, expect))
        return body

    def close(self) -> None:
        self.http.close()


def test_every_endpoint_and_error_matches_the_document(
    api: LocalPrismaApi, openapi: OpenApi
) -> None:
    assert openapi.operations() >= IMPLEMENTED
    a = Checked(api, openapi, "token-a")
    b = Checked(api, openapi, "token-b")
    anon = Checked(api, openapi, None)
    try:
        _exercise(api, a, b, anon)
    finally:
        for client in (a, b, anon):
            client.close()
    seen = a.seen | b.seen | anon.seen
    assert {(m, t) for m, t, _ in seen} == IMPLEMENTED
    assert {s for s in seen if (s[0], s[1], s[2]) in UNDOCUMENTED} == UNDOCUMENTED
    # every documented status the local API can produce was produced
    statuses = {status for _, _, status in seen}
    assert statuses >= {200, 201, 204, 400, 401, 403, 404, 422, 429, 500, 502, 503}


def _exercise(api: LocalPrismaApi, a: Checked, b: Checked, anon: Checked) -> None:
    # -- auth and workspaces
    for path in ("/v1/workspaces", "/v1/projects", "/v1/regions", "/v1/connections"):
        anon.call("GET", path, 401)
    ws_a = a.call("GET", "/v1/workspaces", 200)["data"][0]
    ws_b = b.call("GET", "/v1/workspaces", 200)["data"][0]
    assert ws_a["id"] != ws_b["id"]
    a.call("GET", f"/v1/workspaces/{ws_a['id']}", 200)
    a.call("GET", f"/v1/workspaces/{ws_b['id']}", 404)

    # -- regions
    a.call("GET", "/v1/regions/postgres", 200)
    assert a.call("GET", "/v1/regions", 200)["data"]
    assert a.call("GET", "/v1/regions?product=postgres", 200)["data"]
    a.call("GET", "/v1/regions?product=accelerate", 200)
    a.call("GET", "/v1/regions?product=nope", 400)

    # -- projects
    created = a.call("POST", "/v1/projects", 201, json={"name": "alpha", "region": "eu-west-3"})
    project = created["data"]
    assert project["database"]["isDefault"] is True
    assert project["defaultRegion"] == "eu-west-3"
    default_db = project["database"]
    bare = a.call("POST", "/v1/projects", 201, json={"name": "beta", "createDatabase": False})
    assert bare["data"]["database"] is None
    a.call("POST", "/v1/projects", 400, json={"name": "x", "region": "mars-1"})
    a.call("POST", "/v1/projects", 400, json={"name": ""})
    a.call("POST", "/v1/projects", 400, content=b"{not json", headers=_json())
    other = b.call("POST", "/v1/projects", 201, json={"createDatabase": False})["data"]

    a.call("GET", "/v1/projects", 200)
    a.call("GET", "/v1/projects?limit=1", 200)
    a.call("GET", "/v1/projects?limit=0", 400)
    a.call("GET", f"/v1/projects/{project['id']}", 200)
    a.call("GET", "/v1/projects/proj_cdoesnotexist0", 404)
    a.call("GET", f"/v1/projects/{other['id']}", 404)
    renamed = a.call("PATCH", f"/v1/projects/{project['id']}", 200, json={"name": "alpha2"})
    assert renamed["data"]["name"] == "alpha2"
    a.call("PATCH", f"/v1/projects/{project['id']}", 422, json={"name": ""})
    a.call("PATCH", f"/v1/projects/{other['id']}", 403, json={"name": "mine"})
    a.call("PATCH", "/v1/projects/proj_cdoesnotexist0", 404, json={"name": "x"})

    # -- databases
    pid = project["id"]
    db = a.call("POST", f"/v1/projects/{pid}/databases", 201, json={"name": "second"})["data"]
    assert db["isDefault"] is False and db["apiKeys"][0]["connectionString"]
    a.call("POST", f"/v1/projects/{pid}/databases", 400, json={"region": "nowhere"})
    a.call("POST", f"/v1/projects/{other['id']}/databases", 403, json={})
    a.call("POST", "/v1/projects/proj_cdoesnotexist0/databases", 404, json={})
    inherit = {"projectId": pid, "name": "third", "region": "inherit"}
    third = a.call("POST", "/v1/databases", 201, json=inherit)["data"]
    assert third["region"]["id"] == "eu-west-3"
    a.call("POST", "/v1/databases", 400, json={"name": "no project"})
    a.call("POST", "/v1/databases", 400, json={"projectId": pid, "source": {"type": "backup"}})
    a.call("POST", "/v1/databases", 403, json={"projectId": other["id"]})
    a.call("POST", "/v1/databases", 404, json={"projectId": "proj_cdoesnotexist0"})

    listed = a.call("GET", f"/v1/projects/{pid}/databases", 200)["data"]
    assert {d["id"] for d in listed} == {default_db["id"], db["id"], third["id"]}
    a.call("GET", "/v1/projects/proj_cdoesnotexist0/databases", 404)
    a.call("GET", f"/v1/projects/{other['id']}/databases", 404)
    assert len(a.call("GET", "/v1/databases", 200)["data"]) == 3
    a.call("GET", f"/v1/databases?projectId={pid}&limit=2", 200)
    a.call("GET", f"/v1/databases?projectId={other['id']}", 403)

    a.call("GET", f"/v1/databases/{db['id']}", 200)
    b.call("GET", f"/v1/databases/{db['id']}", 403)
    a.call("GET", "/v1/databases/db_cdoesnotexist0", 404)
    a.call("PATCH", f"/v1/databases/{db['id']}", 200, json={"name": "renamed"})
    a.call("PATCH", f"/v1/databases/{db['id']}", 400, json={"name": 5})
    b.call("PATCH", f"/v1/databases/{db['id']}", 403, json={"name": "x"})
    a.call("PATCH", "/v1/databases/db_cdoesnotexist0", 404, json={"name": "x"})

    # -- connections
    a.call("GET", f"/v1/databases/{db['id']}/connections", 200)
    a.call("GET", "/v1/databases/db_cdoesnotexist0/connections", 404)
    con = a.call("POST", f"/v1/databases/{db['id']}/connections", 200, json={"name": "app"})
    con = con["data"]
    assert con["endpoints"]["direct"]["connectionString"].startswith("postgresql://")
    a.call("POST", f"/v1/databases/{db['id']}/connections", 400, json={})
    a.call("POST", "/v1/databases/db_cdoesnotexist0/connections", 404, json={"name": "x"})
    b.call("POST", f"/v1/databases/{db['id']}/connections", 404, json={"name": "x"})
    con2 = a.call("POST", "/v1/connections", 201, json={"databaseId": third["id"], "name": "c2"})
    a.call("POST", "/v1/connections", 400, json={"databaseId": third["id"]})
    a.call("POST", "/v1/connections", 404, json={"databaseId": "db_cdoesnotexist0", "name": "x"})
    assert len(a.call("GET", "/v1/connections", 200)["data"]) == 5  # 3 defaults + 2
    a.call("GET", f"/v1/connections?databaseId={third['id']}&limit=1", 200)
    assert b.call("GET", "/v1/connections", 200)["data"] == []
    got = a.call("GET", f"/v1/connections/{con['id']}", 200)["data"]
    assert "pass" not in got and "connectionString" not in got["endpoints"]["direct"]
    a.call("GET", "/v1/connections/con_cdoesnotexist0", 404)
    b.call("GET", f"/v1/connections/{con['id']}", 404)
    rotated = a.call("POST", f"/v1/connections/{con['id']}/rotate", 200)["data"]
    assert rotated["pass"] != con["pass"]
    a.call("POST", "/v1/connections/con_cdoesnotexist0/rotate", 404)
    a.call("DELETE", f"/v1/connections/{con2['data']['id']}", 204)
    a.call("DELETE", f"/v1/connections/{con2['data']['id']}", 404)

    # -- deletes
    a.call("DELETE", f"/v1/databases/{default_db['id']}", 403)  # the default database
    b.call("DELETE", f"/v1/databases/{db['id']}", 403)
    a.call("DELETE", f"/v1/databases/{db['id']}", 204)
    a.call("DELETE", f"/v1/databases/{db['id']}", 404)
    a.call("DELETE", f"/v1/projects/{other['id']}", 404)
    a.call("DELETE", f"/v1/projects/{pid}", 204)
    a.call("DELETE", f"/v1/projects/{pid}", 404)

    # -- injected faults
    api.set_faults(Faults(rate_429=1.0, retry_after_s=1))
    a.call("GET", "/v1/projects", 429)
    for seed in range(40):
        api.set_faults(Faults(rate_5xx=1.0, seed=seed))
        response = a.http.post("/v1/projects", json={"createDatabase": False})
        if (("POST", "/v1/projects", response.status_code)) not in a.seen:
            a.openapi.validate(
                "POST", "/v1/projects", response.status_code, response.json(), undocumented_ok=True
            )
            a.seen.add(("POST", "/v1/projects", response.status_code))
    api.set_faults(Faults())


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_unknown_route_and_method_answer_the_error_envelope(
    api: LocalPrismaApi, openapi: OpenApi
) -> None:
    with httpx.Client(base_url=api.url, headers={"Authorization": "Bearer t"}) as http:
        missing = http.get("/v1/nothing-here")
        assert missing.status_code == 404
        openapi.validate_error(missing.json())
        wrong = http.put("/v1/projects")
        assert wrong.status_code == 405
        openapi.validate_error(wrong.json())


def _raw(api: LocalPrismaApi, request: bytes) -> tuple[int, Any]:
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_bodies_without_length_or_too_large_are_refused(
    api: LocalPrismaApi, openapi: OpenApi
) -> None:
    start = b"POST /v1/projects HTTP/1.1\r\nAuthorization: Bearer t\r\nHost: x\r\n"
    status, body = _raw(api, start + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 411
    openapi.validate_error(body)
    status, body = _raw(api, start + b"Content-Length: 9999999\r\n\r\n")
    assert status == 413
    openapi.validate_error(body)
