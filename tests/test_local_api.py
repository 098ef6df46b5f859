"""The local Prisma-compatible API against the shared PostgreSQL server (trust auth): real
databases and roles, isolation, cascades, persistence across restarts, auth, pagination,
faults, concurrency, and no secret in logs."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import journal.resources.prisma_postgres.local as local
from journal._errors import LocalServerError, UsageError
from journal.resources.prisma_postgres.local import Faults, LocalPrismaApi

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

MakeApi = Callable[..., LocalPrismaApi]


@pytest.fixture(scope="module")
def pg_url() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {PG_URL} (.ci/run starts it): {exc}")
    return PG_URL


@pytest.fixture
def prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def make_api(pg_url: str, prefix: str) -> Iterator[MakeApi]:
    """Servers on this test's prefix (or another given one); all purged at the end."""
    made: list[LocalPrismaApi] = []

    def make(**kw: Any) -> LocalPrismaApi:
        kw.setdefault("postgres_url", pg_url)
        kw.setdefault("prefix", prefix)
        api = LocalPrismaApi(**kw).start()
        made.append(api)
        return api

    yield make
    for api in made:
        api.stop()
    for api in made:
        api.purge()


def client(api: LocalPrismaApi, token: str | None = "token-a", **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api.url, headers=headers, timeout=kw.pop("timeout", 30), **kw)


def pg_objects(prefix: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(PG_URL) as conn:
        dbs = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        db_names = {r[0] for r in dbs.fetchall()}
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
        return db_names, {r[0] for r in roles.fetchall()}


def with_dbname(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


# --- real PostgreSQL ----------------------------------------------------------------------------


def test_connection_string_connects_and_roles_are_confined(make_api: MakeApi) -> None:
    api = make_api()
    with client(api) as http:
        one = http.post("/v1/projects", json={"name": "one"}).json()["data"]["database"]
        two = http.post("/v1/projects", json={"name": "two"}).json()["data"]["database"]
        dsn1 = one["connections"][0]["endpoints"]["direct"]["connectionString"]
        dsn2 = two["connectionString"]
        assert dsn1.startswith("postgresql://") and "@127.0.0.1:" in dsn1
        assert dsn1.endswith("?sslmode=disable")
        extra = http.post(f"/v1/databases/{one['id']}/connections", json={"name": "x"}).json()

    with psycopg.connect(dsn1) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM pg_tables").fetchone() == (True,)
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('hello')")
    # another connection of the same database shares the objects
    with psycopg.connect(extra["data"]["endpoints"]["pooled"]["connectionString"]) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("hello",)]
    # a role of another project's database may not connect to this one
    target = conninfo_to_dict(dsn1)["dbname"]
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(with_dbname(dsn2, str(target)), connect_timeout=5).close()


def test_rotate_keeps_the_role_and_returns_working_strings(make_api: MakeApi) -> None:
    api = make_api()
    with client(api) as http:
        db = http.post("/v1/projects", json={"name": "p"}).json()["data"]["database"]
        con_id = db["defaultConnectionId"]
        old = db["directConnection"]["pass"]
        rotated = http.post(f"/v1/connections/{con_id}/rotate").json()["data"]
    assert rotated["pass"] != old and rotated["user"] == db["directConnection"]["user"]
    with psycopg.connect(rotated["connectionString"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() is not None
    # the server stores only SCRAM verifiers, never the password
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (rotated["user"],)
        ).fetchone()
    assert row is not None and row[0].startswith("SCRAM-SHA-256$") and rotated["pass"] not in row[0]


def test_deletes_drop_the_real_databases_and_roles(make_api: MakeApi, prefix: str) -> None:
    api = make_api()
    with client(api) as http:
        project = http.post("/v1/projects", json={"name": "p"}).json()["data"]
        body = {"projectId": project["id"], "name": "second"}
        second = http.post("/v1/databases", json=body).json()["data"]
        con = http.post("/v1/connections", json={"databaseId": second["id"], "name": "c"}).json()
        dbs, roles = pg_objects(prefix)
        assert len(dbs) == 3 and len(roles) == 5  # meta + 2 dbs; 2 owners + 3 logins
        inv = api.inventory()
        assert set(inv.pg_databases) == dbs and set(inv.pg_roles) == roles

        assert http.delete(f"/v1/connections/{con['data']['id']}").status_code == 204
        assert con["data"]["user"] not in pg_objects(prefix)[1]

        assert http.delete(f"/v1/databases/{second['id']}").status_code == 204
        dbs, roles = pg_objects(prefix)
        assert len(dbs) == 2 and len(roles) == 2

        assert http.delete(f"/v1/projects/{project['id']}").status_code == 204
        assert pg_objects(prefix) == ({f"{prefix}_meta"}, set())
        inv = api.inventory()
        assert (inv.projects, inv.databases, inv.connections) == ((), (), ())
    api.purge()
    assert pg_objects(prefix) == (set(), set())


def test_objects_survive_a_restart(make_api: MakeApi) -> None:
    first = make_api()
    with client(first) as http:
        project = http.post("/v1/projects", json={"name": "kept"}).json()["data"]
        ws = http.get("/v1/workspaces").json()["data"][0]
    first.stop()

    second = make_api()
    with client(second) as http:
        assert http.get("/v1/workspaces").json()["data"][0]["id"] == ws["id"]
        projects = http.get("/v1/projects").json()["data"]
        assert [p["id"] for p in projects] == [project["id"]]
        dbs = http.get(f"/v1/projects/{project['id']}/databases").json()["data"]
        assert [d["id"] for d in dbs] == [project["database"]["id"]]
        assert dbs[0]["connections"][0]["id"] == project["database"]["defaultConnectionId"]
        assert http.delete(f"/v1/projects/{project['id']}").status_code == 204


def test_two_servers_on_one_prefix_see_the_same_objects(make_api: MakeApi) -> None:
    one, two = make_api(), make_api()
    with client(one) as h1, client(two) as h2:
        created = h1.post("/v1/projects", json={"createDatabase": False}).json()["data"]
        assert h2.get(f"/v1/projects/{created['id']}").status_code == 200


# --- auth ---------------------------------------------------------------------------------------


def test_tokens_are_required_and_scoped_to_workspaces(make_api: MakeApi) -> None:
    api = make_api(tokens={"tok-a": "Acme", "tok-a2": "Acme", "tok-b": "Beta"})
    with client(api, None) as anon:
        assert anon.get("/v1/projects").status_code == 401
        basic = anon.get("/v1/projects", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401 and basic.json()["error"]["code"] == "UNAUTHORIZED"
        assert anon.get("/v1/projects", headers={"Authorization": "Bearer"}).status_code == 401
    with client(api, "tok-a") as a, client(api, "tok-a2") as a2, client(api, "tok-b") as b:
        assert a.get("/v1/workspaces").json()["data"][0]["name"] == "Acme"
        project = a.post("/v1/projects", json={"createDatabase": False}).json()["data"]
        assert a2.get(f"/v1/projects/{project['id']}").status_code == 200  # same workspace
        assert b.get(f"/v1/projects/{project['id']}").status_code == 404
        assert b.patch(f"/v1/projects/{project['id']}", json={"name": "x"}).status_code == 403
        assert b.delete(f"/v1/projects/{project['id']}").status_code == 404
        assert b.get("/v1/projects").json()["data"] == []
        assert a.get(f"/v1/projects/{project['id']}").status_code == 200


def test_unknown_tokens_are_refused_when_not_accepted(make_api: MakeApi) -> None:
    api = make_api(tokens={"known": "Known"}, accept_any_token=False)
    with client(api, "stranger") as http:
        assert http.get("/v1/workspaces").status_code == 401
    with client(api, "known") as http:
        assert http.get("/v1/workspaces").status_code == 200


# --- pagination ---------------------------------------------------------------------------------


def _walk(http: httpx.Client, path: str, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = http.get(path, params=params).json()
        pages += 1
        ids += [item["id"] for item in body["data"]]
        assert len(body["data"]) <= limit
        assert body["pagination"]["hasMore"] is (body["pagination"]["nextCursor"] is not None)
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return ids, pages


def test_small_pages_return_every_item_once(make_api: MakeApi) -> None:
    api = make_api()
    with client(api) as http:
        made = [
            http.post("/v1/projects", json={"name": f"p{i}", "createDatabase": False}).json()
            for i in range(7)
        ]
        ids, pages = _walk(http, "/v1/projects", 3)
        assert ids == sorted(p["data"]["id"] for p in made) and pages == 3
        project = made[0]["data"]["id"]
        for i in range(4):
            http.post(f"/v1/projects/{project}/databases", json={"name": f"d{i}"})
        db_ids, _ = _walk(http, "/v1/databases", 2)
        assert len(db_ids) == len(set(db_ids)) == 4
        assert _walk(http, f"/v1/projects/{project}/databases", 3)[0] == db_ids
        con_ids, pages = _walk(http, "/v1/connections", 1)
        assert len(set(con_ids)) == 4 and pages == 4
        ids, pages = _walk(http, "/v1/projects", 7)
        assert len(ids) == 7 and pages == 1


# --- faults -------------------------------------------------------------------------------------


def test_fault_429_carries_retry_after_and_does_nothing(make_api: MakeApi) -> None:
    api = make_api(faults=Faults(rate_429=1.0, retry_after_s=7))
    with client(api) as http:
        answer = http.post("/v1/projects", json={"createDatabase": False})
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
        assert answer.json()["error"]["code"] == "RATE_LIMITED"
        assert http.get("/health").status_code == 200  # faults apply to /v1 only
    assert api.inventory().projects == ()


def test_fault_5xx_answers_500_502_503(make_api: MakeApi) -> None:
    api = make_api(faults=Faults(rate_5xx=1.0, seed=1))
    with client(api) as http:
        statuses = {http.get("/v1/projects").status_code for _ in range(30)}
    assert statuses == {500, 502, 503}


def test_fault_lost_response_performs_the_action(make_api: MakeApi) -> None:
    api = make_api()
    with client(api) as http:
        api.set_faults(Faults(rate_lost=1.0))
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/projects", json={"name": "ghost"})
        api.set_faults(Faults())
        names = [p["name"] for p in http.get("/v1/projects").json()["data"]]
        assert names == ["ghost"]
        assert api.inventory().pg_databases  # its database was created too


def test_fault_latency_and_timeout(make_api: MakeApi) -> None:
    api = make_api(metadata_only=True, faults=Faults(latency_s=0.3))
    with client(api) as http:
        started = time.monotonic()
        assert http.get("/v1/projects").status_code == 200
        assert time.monotonic() - started >= 0.3
    api.set_faults(Faults(rate_timeout=1.0, timeout_s=0.8))
    with client(api, timeout=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/projects", json={"name": "late"})
    api.set_faults(Faults())
    time.sleep(1.0)
    with client(api) as http:
        assert [p["name"] for p in http.get("/v1/projects").json()["data"]] == ["late"]


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="rate_429"):
        Faults(rate_429=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        Faults(rate_429=0.6, rate_5xx=0.6)
    with pytest.raises(UsageError, match="prefix"):
        LocalPrismaApi(prefix="Bad_Prefix")


# --- behaviour ----------------------------------------------------------------------------------


def test_provisioning_then_ready(make_api: MakeApi) -> None:
    api = make_api(provisioning_delay_s=0.5)
    with client(api) as http:
        db = http.post("/v1/projects", json={"name": "slow"}).json()["data"]["database"]
        assert db["status"] == "provisioning"
        deadline = time.monotonic() + 5
        while http.get(f"/v1/databases/{db['id']}").json()["data"]["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_ids_are_accepted_without_their_prefix(make_api: MakeApi) -> None:
    api = make_api(metadata_only=True)
    with client(api) as http:
        project = http.post("/v1/projects", json={}).json()["data"]
        bare = project["id"].removeprefix("proj_")
        assert http.get(f"/v1/projects/{bare}").json()["data"]["id"] == project["id"]


def test_hundreds_of_concurrent_requests(make_api: MakeApi, prefix: str) -> None:
    api = make_api()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    clients = [client(api, f"token-{i}", limits=limits) for i in range(5)]
    project = clients[0].post("/v1/projects", json={"createDatabase": False}).json()["data"]

    def create_db(i: int) -> int:
        body = {"projectId": project["id"], "name": f"db{i}"}
        return clients[0].post("/v1/databases", json=body).status_code

    def read(i: int) -> int:
        return clients[i % 5].get("/v1/projects").status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            creates = pool.map(create_db, range(12))
            reads = pool.map(read, range(400))
            assert list(creates) == [201] * 12 and list(reads) == [200] * 400
    finally:
        for http in clients:
            http.close()
    assert len(pg_objects(prefix)[0]) == 13


def test_metadata_only_creates_nothing_in_postgres(make_api: MakeApi, prefix: str) -> None:
    api = make_api(metadata_only=True)
    with client(api) as http:
        db = http.post("/v1/projects", json={"name": "bench"}).json()["data"]["database"]
        assert db["connectionString"].startswith("postgresql://")
    inv = api.inventory()
    assert len(inv.databases) == 1 and inv.pg_databases == () and inv.pg_roles == ()
    assert pg_objects(prefix) == (set(), set())


def test_no_secret_reaches_the_logs(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "tok-" + uuid.uuid4().hex
    api = make_api()
    with client(api, token) as http:
        db = http.post("/v1/projects", json={"name": "p"}).json()["data"]["database"]
        con = http.post("/v1/connections", json={"databaseId": db["id"], "name": "c"}).json()
        rotated = http.post(f"/v1/connections/{con['data']['id']}/rotate").json()
        http.get("/v1/nope")
    secrets = [token, db["directConnection"]["pass"], con["data"]["pass"], rotated["data"]["pass"]]
    assert "POST /v1/connections 201" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text
    # nor the metadata database
    with psycopg.connect(with_dbname(PG_URL, f"{api.prefix}_meta")) as conn:
        dump = "".join(
            str(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("workspaces", "projects", "databases", "connections")
        )
    for secret in secrets:
        assert secret not in dump


# --- package hygiene ----------------------------------------------------------------------------


def test_public_surface() -> None:
    assert sorted(local.__all__) == [
        "Connection",
        "Database",
        "EmbeddedPostgres",
        "Faults",
        "Inventory",
        "LocalPrismaApi",
        "Project",
        "Workspace",
        "serve_forever",
    ]


def test_the_engine_never_imports_the_local_api() -> None:
    code = (
        "import sys, journal, journal._errors\n"
        "local = 'journal.resources.prisma_postgres.local'\n"
        "assert not [m for m in sys.modules if m.startswith(local)], sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serve_forever_runs_until_stopped() -> None:
    ready: list[LocalPrismaApi] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=local.serve_forever,
        kwargs={"metadata_only": True, "on_ready": ready.append, "stop_event": stop},
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not ready:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        with client(ready[0]) as http:
            assert http.get("/v1/regions/postgres").status_code == 200
            wrong = http.delete("/v1/projects")
            assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, POST"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not ready[0].running


def test_unreachable_postgres_is_a_clear_error() -> None:
    api = LocalPrismaApi(postgres_url="postgresql://postgres@127.0.0.1:1/postgres", prefix="tx")
    with pytest.raises(LocalServerError, match="cannot connect to PostgreSQL"):
        api.start()
    assert not api.running


def test_a_busy_pool_answers_503_with_retry_after_and_leaves_nothing(make_api: MakeApi) -> None:
    """Every PostgreSQL connection busy for the pool's whole wait: the request did nothing,
    so the API says 503 + Retry-After (clients send it again), not 500."""
    from journal.resources.prisma_postgres.local._postgres import ConnectionPool

    api = make_api()
    admin = api._admin
    assert admin is not None
    admin.pool.close()
    admin.pool = ConnectionPool(admin._conninfo, max_size=1, timeout_s=0.2)
    with admin.pool.connection(), client(api) as http:  # hold the only connection
        busy = http.post("/v1/projects", json={"name": "busy"})
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    with client(api) as http:
        assert http.post("/v1/projects", json={"name": "busy"}).status_code == 201
        names = [p["name"] for p in http.get("/v1/projects").json()["data"]]
    assert names.count("busy") == 1


def test_a_create_whose_records_cannot_be_finished_is_not_called_undone(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool runs dry *after* the database was made: a 503 ("nothing was done") would make
    the client send the create again; the answer is a 500, which clients resolve by lookup."""
    from journal.resources.prisma_postgres.local._backend import PoolBusy

    api = make_api()
    store = api._store
    assert store is not None

    def busy(*records: Any) -> None:
        raise PoolBusy("every PostgreSQL connection stayed busy for 30 s")

    monkeypatch.setattr(store, "end_work", busy)
    with client(api) as http:
        answer = http.post("/v1/projects", json={"name": "half"})
    assert answer.status_code == 500, answer.text
