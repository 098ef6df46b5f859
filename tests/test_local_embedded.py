"""The local API on the EMBEDDED PostgreSQL (pgserver's binaries, TCP 127.0.0.1, SCRAM
passwords enforced): credentials really work, rotation invalidates the old password, roles are
confined to their database, and the server and its port are reused across starts."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from journal.resources.prisma_postgres.local import EmbeddedPostgres, LocalPrismaApi

pytest.importorskip("pgserver")


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    """One embedded cluster for the session (initdb takes a moment); stopped and removed at
    the end. A short private temporary directory: Unix socket paths are limited in length."""
    root = Path(tempfile.mkdtemp(prefix="journal-emb-"))
    try:
        yield root / "postgres"
    finally:
        EmbeddedPostgres(root / "postgres").stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def api(data_dir: Path) -> Iterator[LocalPrismaApi]:
    server = LocalPrismaApi(data_dir=data_dir, prefix="e" + uuid.uuid4().hex[:12]).start()
    try:
        yield server
    finally:
        server.purge()


def post(api: LocalPrismaApi, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=api.url, headers={"Authorization": "Bearer t"}) as http:
        answer = http.post(path, json=body)
        assert answer.status_code in (200, 201), answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data


def with_password(dsn: str, password: str) -> str:
    return make_conninfo(dsn, password=password)


def test_passwords_are_checked_and_rotation_invalidates_the_old_one(api: LocalPrismaApi) -> None:
    db = post(api, "/v1/projects", {"name": "emb"})["database"]
    dsn = db["connectionString"]
    assert api.postgres is not None
    assert f"@127.0.0.1:{api.postgres.port}/" in dsn
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM pg_tables").fetchone() == (True,)
        conn.execute("CREATE TABLE t (x int)")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(dsn, "wrong-password"), connect_timeout=5).close()

    rotated = post(api, f"/v1/connections/{db['defaultConnectionId']}/rotate", {})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, connect_timeout=5).close()
    with psycopg.connect(rotated["endpoints"]["direct"]["connectionString"]) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_roles_reach_only_their_own_database(api: LocalPrismaApi) -> None:
    one = post(api, "/v1/projects", {"name": "one"})["database"]
    two = post(api, "/v1/projects", {"name": "two"})["database"]
    target = str(conninfo_to_dict(one["connectionString"])["dbname"])
    for dbname in (target, "postgres", "template1"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(make_conninfo(two["connectionString"], dbname=dbname)).close()
    # the superuser has no password: it cannot log in over TCP at all
    assert api.postgres is not None
    port = api.postgres.port
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=5)


def test_server_and_port_are_reused_and_remembered(data_dir: Path) -> None:
    prefix = "e" + uuid.uuid4().hex[:12]
    first = LocalPrismaApi(data_dir=data_dir, prefix=prefix).start()
    try:
        project = post(first, "/v1/projects", {"name": "kept"})
        assert first.postgres is not None
        port = first.postgres.port
        state = json.loads((data_dir / "journal-local.json").read_text())
        assert state == {"port": port}
        assert first.postgres.is_running()
    finally:
        first.stop(stop_postgres=True)
    assert not EmbeddedPostgres(data_dir).is_running()

    second = LocalPrismaApi(data_dir=data_dir, prefix=prefix).start()  # starts it again
    try:
        assert second.postgres is not None and second.postgres.port == port
        again = EmbeddedPostgres(data_dir)
        again.start()  # already running: reused
        assert again.port == port
        with httpx.Client(base_url=second.url, headers={"Authorization": "Bearer t"}) as http:
            ids = [p["id"] for p in http.get("/v1/projects").json()["data"]]
        assert ids == [project["id"]]
        with psycopg.connect(project["database"]["connectionString"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.purge()
