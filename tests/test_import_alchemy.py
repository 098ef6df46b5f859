"""`journal import-alchemy` against the state real Alchemy 0.94 writes.

Alchemy (pinned, from npm, cached: see ``_alchemy_npm``) deploys the guide's programs against
the local Prisma-compatible API on real PostgreSQL; the import brings them over, and the
Python translations in ``examples/`` then deploy as no-ops (no mutating request reaches the
API), export what Alchemy exported, and destroy as Alchemy would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _alchemy_npm import run_alchemy
from click.testing import CliRunner, Result

from journal._journal import Journal
from journal._projection import load_state
from journal.cli import cli
from journal.resources.prisma_postgres.local import LocalPrismaApi

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOG = "journal.resources.prisma_postgres.local"
PASSWORD = "alchemy-test-password"
APP = "prisma-postgres-example"

# the guide's programs, as Alchemy users run them
MINIMAL_TS = """\
import alchemy from "alchemy";
import { Connection, Database, Project } from "alchemy/prisma-postgres";

const app = await alchemy("prisma-postgres-example");

const project = await Project("project");

const database = await Database("database", {
  project,
  region: "us-east-1",
});

const connection = await Connection("connection", {
  database,
  name: "app-connection",
});

export const projectId = project.id;
export const databaseId = database.id;
export const host = connection.host;
export const user = connection.user;
export const connectionString = connection.connectionString;
export const prismaConnectionString = connection.prismaConnectionString;

await app.finalize();
"""

WORKSPACES_TS = """\
import alchemy from "alchemy";
import { Project } from "alchemy/prisma-postgres";

const app = await alchemy("prisma-workspaces");

const workspaceAProject = await Project("workspace-a-project", {
  serviceToken: alchemy.env.PRISMA_SERVICE_TOKEN_WORKSPACE_A,
});

const workspaceBProject = await Project("workspace-b-project", {
  serviceToken: alchemy.env.PRISMA_SERVICE_TOKEN_WORKSPACE_B,
});

await app.finalize();
"""

#: the same program with Alchemy's SQLite state store
MINIMAL_SQLITE_TS = MINIMAL_TS.replace(
    'const app = await alchemy("prisma-postgres-example");',
    'import { SQLiteStateStore } from "alchemy/state";\n'
    'const app = await alchemy("prisma-postgres-example", {\n'
    "  stateStore: (scope) => new SQLiteStateStore(scope),\n"
    "});",
)


def _server() -> LocalPrismaApi:
    return LocalPrismaApi(postgres_url=SHARED_PG, prefix="imp" + uuid.uuid4().hex[:8]).start()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = _server()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "token-a")
    monkeypatch.setenv("ALCHEMY_PASSWORD", PASSWORD)
    monkeypatch.delenv("JOURNAL_PASSWORD", raising=False)
    monkeypatch.delenv("JOURNAL_URL", raising=False)
    try:
        yield server
    finally:
        server.purge()
        server.stop()


@pytest.fixture(scope="module")
def deployed_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LocalPrismaApi]]:
    """One Alchemy deployment of the minimal example, for tests that read its state (and the
    local API it lives on)."""
    server = _server()
    try:
        project = tmp_path_factory.mktemp("alchemy") / "app"
        env = {"PRISMA_SERVICE_TOKEN": "token-a", "ALCHEMY_PASSWORD": PASSWORD}
        run_alchemy(project, MINIMAL_TS, api_url=server.url, env=env)
        yield project, server
    finally:
        server.purge()
        server.stop()


@pytest.fixture
def deployed(deployed_on: tuple[Path, LocalPrismaApi]) -> Path:
    return deployed_on[0]


def copy_of(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(project / ".alchemy", dest / ".alchemy")
    return dest


def journal(*args: str, code: int = 0, **kw: Any) -> Result:
    result = CliRunner().invoke(cli, list(args), **kw)
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    return result


def checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def mutations(records: list[logging.LogRecord]) -> list[str]:
    lines = [r.getMessage() for r in records if r.name.startswith(LOG)]
    return [ln for ln in lines if ln.split(" ")[0] in ("POST", "PATCH", "PUT", "DELETE")]


def last_run_events(db: Path, stream: str) -> list[str]:
    """The event types of the stream's last run (a no-op deploy records no resource event:
    not even a change of delete policy or options)."""
    with Journal.open(db) as jr:
        events = list(jr.read(stream))
    run = events[-1].payload["run"]
    return [e.payload["type"] for e in events if e.payload.get("run") == run]


def translate(example: str, project: Path) -> Path:
    program = project / "alchemy.run.py"
    shutil.copy(EXAMPLES / example / "alchemy.run.py", program)
    return program


# --- the guide's programs, end to end --------------------------------------------------------


def test_minimal_example_comes_over_and_redeploys_as_a_noop(
    api: LocalPrismaApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / "app"
    exported = run_alchemy(
        project,
        MINIMAL_TS,
        api_url=api.url,
        env={"PRISMA_SERVICE_TOKEN": "token-a", "ALCHEMY_PASSWORD": PASSWORD},
    )
    before = checksum(project / ".alchemy")

    imported = journal("import-alchemy", str(project), "--yes")
    assert "prisma-postgres-example/test: 3 resource(s) to import" in imported.stdout
    assert exported["connectionString"] not in imported.output, "secrets are masked"
    assert "imported prisma-postgres-example/test: 3 resource(s)" in imported.stdout
    assert checksum(project / ".alchemy") == before, "nothing written to the Alchemy folder"

    caplog.set_level(logging.INFO, logger=LOG)
    caplog.clear()
    program = translate("minimal", project)
    deployed = journal("deploy", str(program), "--stage", "test")
    assert "deploy succeeded" in deployed.stdout and "3 unchanged" in deployed.stdout
    assert mutations(caplog.records) == [], "the first deploy changes nothing remotely"
    db = project / ".journal" / "journal.db"
    assert last_run_events(db, f"{APP}/test") == ["run.started", "outputs.recorded", "run.finished"]

    at = ["--journal", str(project / ".journal" / "journal.db"), "--stage", "test"]
    shown = json.loads(journal("outputs", *at, "--show-secrets", "--json").stdout)
    assert shown["project_id"] == exported["projectId"]
    assert shown["database_id"] == exported["databaseId"]
    assert shown["user"] == exported["user"]
    assert shown["connection_string"] == exported["connectionString"]
    assert shown["prisma_connection_string"] == exported["prismaConnectionString"]
    # Alchemy's host is the API's "host:port"; ours is the host, with the port beside it
    with Journal.open(project / ".journal" / "journal.db") as jr:
        state = load_state(jr, f"{APP}/test")
    conn = state.resources["connection"].outputs or {}
    assert f"{shown['host']}:{conn['port']}" == exported["host"]

    history = journal("history", *at).stdout
    runs = [ln for ln in history.splitlines() if "run.started" in ln]
    assert len(runs) == 2
    assert f"import-alchemy ({project / '.alchemy'})" in runs[0]
    assert str(project / ".alchemy" / APP / "test" / "connection.json") in history

    # the import is a point to roll back to like any other: references re-resolve to the
    # imported objects (the new connection is made on the imported database)
    with Journal.open(db) as jr:
        imported_at = next(
            e.seq for e in jr.read(f"{APP}/test") if e.payload["type"] == "run.finished"
        )
    program.write_text(program.read_text().replace('"app-connection"', '"app-connection-2"'))
    changed = journal("deploy", str(program), "--stage", "test")
    assert "1 replaced" in changed.stdout and "2 unchanged" in changed.stdout, changed.stdout
    rolled = journal("rollback", str(imported_at), *at, "--yes")
    assert "1 replaced" in rolled.stdout, rolled.stdout
    conns = [c for c in api.inventory().connections if c.name.startswith("app-connection")]
    assert [c.name for c in conns] == ["app-connection"]
    assert conns[0].database_id == exported["databaseId"]

    destroyed = journal("destroy", *at, "--yes")
    assert "1 deleted" in destroyed.stdout and "2 forgotten" in destroyed.stdout
    inventory = api.inventory()
    assert [p.id for p in inventory.projects] == [exported["projectId"]]
    assert [d.id for d in inventory.databases] == [exported["databaseId"]]
    assert inventory.connections == [] or all(
        c.name != "app-connection" for c in inventory.connections
    )


def test_multi_workspace_example_keeps_each_projects_token(
    api: LocalPrismaApi,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "app"
    tokens = {
        "PRISMA_SERVICE_TOKEN_WORKSPACE_A": "token-a",
        "PRISMA_SERVICE_TOKEN_WORKSPACE_B": "token-b",
    }
    run_alchemy(
        project,
        WORKSPACES_TS,
        api_url=api.url,
        env={"PRISMA_SERVICE_TOKEN": "token-a", "ALCHEMY_PASSWORD": PASSWORD, **tokens},
    )
    imported = journal("import-alchemy", str(project), "--yes").stdout
    assert "prisma-workspaces/test: 2 resource(s) to import" in imported
    # the guide passes plain strings, which Alchemy 0.94 ignores: the import says so
    assert imported.count("serviceToken was a plain string") == 2

    for name, value in tokens.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger=LOG)
    caplog.clear()
    deployed = journal("deploy", str(translate("multi-workspace", project)), "--stage", "test")
    assert "2 unchanged" in deployed.stdout, deployed.stdout
    assert mutations(caplog.records) == []
    db = project / ".journal" / "journal.db"
    stream = "prisma-workspaces/test"
    assert last_run_events(db, stream) == ["run.started", "outputs.recorded", "run.finished"]
    with Journal.open(db) as jr:
        res = load_state(jr, stream).resources
    assert res["workspace-b-project"].options["service_token"] == {"$secret": "token-b"}
    assert res["workspace-a-project"].delete is False


def test_the_sqlite_state_store_comes_over_too(
    api: LocalPrismaApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / "app"
    env = {"PRISMA_SERVICE_TOKEN": "token-a", "ALCHEMY_PASSWORD": PASSWORD}
    exported = run_alchemy(project, MINIMAL_SQLITE_TS, api_url=api.url, env=env)
    store = project / ".alchemy" / "state.sqlite"
    assert store.is_file() and not list((project / ".alchemy").rglob("*.json"))
    before = checksum(project / ".alchemy")
    imported = journal("import-alchemy", str(store), "--yes").stdout
    assert "SQLite store" in imported
    assert checksum(project / ".alchemy") == before

    caplog.set_level(logging.INFO, logger=LOG)
    caplog.clear()
    deployed = journal("deploy", str(translate("minimal", project)), "--stage", "test")
    assert "3 unchanged" in deployed.stdout
    assert mutations(caplog.records) == []
    at = ["--journal", str(project / ".journal" / "journal.db"), "--stage", "test"]
    shown = json.loads(journal("outputs", *at, "--show-secrets", "--json").stdout)
    assert shown["connection_string"] == exported["connectionString"]


# --- bad input: a clear error or report, and nothing written --------------------------------


def test_a_wrong_password_is_refused_and_writes_nothing(
    deployed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_of(deployed, tmp_path)
    db = tmp_path / "journal.db"
    monkeypatch.setenv("JOURNAL_PASSWORD", "journal-password")
    Journal.open(db).close()
    before = db.read_bytes()
    monkeypatch.setenv("ALCHEMY_PASSWORD", "not-the-password")
    result = journal("import-alchemy", str(project), "--journal", str(db), "--yes", code=2)
    assert "ALCHEMY_PASSWORD does not decrypt the secrets in" in result.stderr
    assert "connection.json" in result.stderr and "nothing was written" in result.stderr
    assert db.read_bytes() == before
    assert not (project / ".journal").exists()


def test_a_truncated_file_is_named(deployed: Path, tmp_path: Path) -> None:
    project = copy_of(deployed, tmp_path)
    file = project / ".alchemy" / APP / "test" / "database.json"
    file.write_text(file.read_text()[:200])
    result = journal("import-alchemy", str(project), "--yes", code=2, env=_env())
    assert f"error: {file}: not valid JSON" in result.stderr
    assert "truncated" in result.stderr
    assert not (project / ".journal").exists()


def test_an_unknown_kind_is_listed_not_dropped(deployed: Path, tmp_path: Path) -> None:
    project = copy_of(deployed, tmp_path)
    folder = project / ".alchemy" / APP / "test"
    worker = {
        "kind": "cloudflare::Worker",
        "id": "worker",
        "fqn": f"{APP}/test/worker",
        "seq": 3,
        "status": "created",
        "data": {},
        "props": {"name": "w"},
        "output": {"id": "w", "url": "https://w.example.workers.dev"},
    }
    (folder / "worker.json").write_text(json.dumps(worker))
    nested = json.loads((folder / "project.json").read_text())
    nested["fqn"] = f"{APP}/test/team/project"
    (folder / "team").mkdir()
    (folder / "team" / "project.json").write_text(json.dumps(nested))
    # what else Alchemy keeps in .alchemy (local dev, logs) is not state
    other = project / ".alchemy" / "miniflare" / "v3" / "d1"
    other.mkdir(parents=True)
    (other / "meta.json").write_text("{not state")
    result = journal("import-alchemy", str(project), "--yes", env=_env())
    assert "left out, not supported:" in result.stdout
    assert "worker (cloudflare::Worker): kind not supported yet" in result.stdout
    assert "team/project (prisma::Project): in a nested scope" in result.stdout
    assert "imported prisma-postgres-example/test: 3 resource(s)" in result.stdout


def test_unfinished_records_are_reported_or_recorded_as_pending(
    deployed_on: tuple[Path, LocalPrismaApi], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed, server = deployed_on
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "token-a")
    project = copy_of(deployed, tmp_path)
    file = project / ".alchemy" / APP / "test" / "connection.json"
    record = json.loads(file.read_text())
    record["status"] = "creating"  # what Alchemy writes before it calls the API
    record["output"] = {k: v for k, v in record["output"].items() if k.startswith("Symbol(")}
    file.write_text(json.dumps(record))

    a = tmp_path / "a.db"
    left = journal("import-alchemy", str(project), "--journal", str(a), "--yes", env=_env())
    assert "left out: Alchemy did not finish" in left.stdout
    assert "connection (prisma::Connection, creating)" in left.stdout
    assert "imported prisma-postgres-example/test: 2 resource(s)" in left.stdout

    b = tmp_path / "b.db"
    args = ["import-alchemy", str(project), "--journal", str(b), "--include-pending", "--yes"]
    kept = journal(*args, env=_env())
    assert (
        "connection (prisma-postgres.Connection, from prisma::Connection creating)" in kept.stdout
    )
    assert "2 resource(s), 1 pending" in kept.stdout
    with Journal.open(b, password=PASSWORD) as jr:
        state = load_state(jr, f"{APP}/test")
    pending = state.resources["connection"]
    assert pending.pending is not None and pending.pending["op"] == "create"
    assert pending.deps == ["database"] and pending.outputs is None

    # the next run resolves it: the connection Alchemy did create is found, not made twice
    program = translate("minimal", project)
    resolved = journal("deploy", str(program), "--journal", str(b), "--stage", "test", env=_env())
    assert "1 recovered" in resolved.stdout and "3 unchanged" in resolved.stdout, resolved.stdout
    names = [c.name for c in server.inventory().connections]
    assert names.count("app-connection") == 1


def test_a_stage_the_journal_holds_is_not_imported_twice(deployed: Path, tmp_path: Path) -> None:
    project = copy_of(deployed, tmp_path)
    journal("import-alchemy", str(project), "--yes", env=_env())
    db = project / ".journal" / "journal.db"
    before = db.read_bytes()
    again = journal("import-alchemy", str(project), "--yes", env=_env(), code=2)
    assert "the journal already holds prisma-postgres-example/test" in again.stderr
    assert db.read_bytes() == before


def test_the_preview_asks_first(deployed: Path, tmp_path: Path) -> None:
    project = copy_of(deployed, tmp_path)
    refused = journal("import-alchemy", str(project), env=_env(), code=2)
    assert "import needs confirmation: pass --yes" in refused.stderr
    assert "+ connection (prisma-postgres.Connection" in refused.stdout
    # the login name is not a credential: shown in clear (the connection string stays masked)
    assert 'user="' in refused.stdout and "user=********" not in refused.stdout


def test_sqlite_rows_read_like_files(deployed: Path, tmp_path: Path) -> None:
    """The SQLite reader and the folder reader agree on the same records."""
    from journal._alchemy_state import find_store, read_records

    project = copy_of(deployed, tmp_path)
    folder = read_records(find_store(project), lambda: PASSWORD)
    db = tmp_path / "state.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE resources (id TEXT, scope TEXT, status TEXT, kind TEXT, fqn TEXT, "
            "seq INTEGER, data TEXT, props TEXT, oldProps TEXT, output TEXT)"
        )
        for f in sorted((project / ".alchemy").rglob("*.json")):
            r = json.loads(f.read_text())
            conn.execute(
                "INSERT INTO resources VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    r["id"],
                    json.dumps([APP, "test"]),
                    r["status"],
                    r["kind"],
                    r["fqn"],
                    r["seq"],
                    json.dumps(r["data"]),
                    json.dumps(r.get("props")),
                    None,
                    json.dumps(r["output"]),
                ),
            )
    conn.close()
    rows = read_records(find_store(db), lambda: PASSWORD)
    key = lambda r: r.id  # noqa: E731
    assert [(r.id, r.kind, r.output, r.props) for r in sorted(rows, key=key)] == [
        (r.id, r.kind, r.output, r.props) for r in sorted(folder, key=key)
    ]


def _env() -> dict[str, str]:
    return {"ALCHEMY_PASSWORD": PASSWORD, "JOURNAL_PASSWORD": PASSWORD}


def test_no_password_or_an_unknown_stage_is_a_clear_usage_error(
    deployed: Path, tmp_path: Path
) -> None:
    project = copy_of(deployed, tmp_path)
    env = {"ALCHEMY_PASSWORD": "", "JOURNAL_PASSWORD": PASSWORD}
    result = journal("import-alchemy", str(project), "--yes", env=env, code=2)
    assert "the Alchemy state holds secrets: set ALCHEMY_PASSWORD" in result.stderr
    result = journal("import-alchemy", str(project), "--stage", "prod", env=_env(), code=2)
    assert "has no stage prod (it holds prisma-postgres-example/test)" in result.stderr
    assert not (project / ".journal").exists()


def test_both_of_alchemys_secret_formats_decrypt(tmp_path: Path) -> None:
    """Secrets encrypted by Alchemy's own code: v1 (scrypt + AES-256-GCM) and the older
    libsodium string; a wrong password is WrongPasswordError, never garbage."""
    from _alchemy_npm import alchemy_home

    from journal._alchemy_state import decrypt_secret
    from journal._errors import WrongPasswordError

    module = alchemy_home() / "node_modules" / "alchemy" / "lib" / "encrypt.js"
    script = tmp_path / "encrypt.mjs"
    script.write_text(
        f'import {{ encrypt, libsodiumEncrypt }} from "{module.as_uri()}";\n'
        'const value = "postgres://u:p\\u00e4ss@h:5432/db";\n'
        "console.log(JSON.stringify({ v1: await encrypt(value, process.argv[2]),\n"
        "  legacy: await libsodiumEncrypt(value, process.argv[2]) }));\n"
    )
    out = subprocess.run(
        ["node", str(script), PASSWORD], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    secrets = json.loads(out)
    for form in ("v1", "legacy"):
        assert decrypt_secret(secrets[form], PASSWORD) == "postgres://u:p\u00e4ss@h:5432/db"
        with pytest.raises(WrongPasswordError):
            decrypt_secret(secrets[form], "wrong")


# --- without Node.js: the same format, written here -----------------------------------------


def _alchemy_secret(value: str, password: str) -> dict[str, Any]:
    """A secret as Alchemy 0.94 writes it (src/encrypt.ts): scrypt, then AES-256-GCM."""
    import base64
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, iv = os.urandom(16), os.urandom(12)
    key = hashlib.scrypt(password.encode(), salt=salt, n=16384, r=8, p=1, dklen=32)
    sealed = AESGCM(key).encrypt(iv, value.encode(), None)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {"@secret": {"version": "v1", "ciphertext": b64(sealed[:-16]), "iv": b64(iv),
                        "salt": b64(salt), "tag": b64(sealed[-16:])}}  # fmt: skip


def test_an_imported_resource_folds_like_a_created_one(tmp_path: Path) -> None:
    from journal._events import make_event
    from journal._projection import fold

    fields = {
        "resource": "project",
        "resource_type": "prisma-postgres.Project",
        "props": {"name": "n", "region": None},
        "outputs": {"id": "p1", "name": "n", "workspace_id": "w", "region": None,
                    "created_at": ""},
        "deps": [],
        "refs": {},
        "delete": False,
        "options": {"adopt": False, "service_token": None, "endpoint": "local"},
    }  # fmt: skip

    class Ev:
        def __init__(self, payload: dict[str, Any]) -> None:
            self.seq, self.version, self.payload = 1, 1, payload

    created = fold("a/s", [Ev(make_event("resource.created", **fields))])
    imported = fold("a/s", [Ev(make_event("resource.imported", source="x.json", **fields))])
    assert imported.to_json() == created.to_json()


def test_a_state_written_without_node_imports(tmp_path: Path) -> None:
    """Runs everywhere: records in Alchemy 0.94's shape, written by this test."""
    folder = tmp_path / "app" / ".alchemy" / APP / "dev"
    folder.mkdir(parents=True)
    meta = {"Symbol(alchemy::ResourceKind)": "prisma::Project",
            "Symbol(alchemy::ResourceID)": "project",
            "Symbol(alchemy::ResourceFQN)": f"{APP}/dev/project",
            "Symbol(alchemy::ResourceScope)": {"@scope": None}}  # fmt: skip
    project_out = {**meta, "id": "proj_1", "name": f"{APP}-project-dev",
                   "createdAt": "2026-01-01T00:00:00.000Z",
                   "workspace": {"id": "wksp_1", "name": "W"}}  # fmt: skip
    records = {
        "project": {"kind": "prisma::Project", "id": "project", "fqn": f"{APP}/dev/project",
                    "seq": 0, "status": "created", "data": {}, "output": project_out,
                    "props": {"serviceToken": _alchemy_secret("tok-1", PASSWORD)}},
        "database": {"kind": "prisma::Database", "id": "database",
                     "fqn": f"{APP}/dev/database", "seq": 1, "status": "created", "data": {},
                     "props": {"project": project_out, "region": "eu-west-3", "delete": True},
                     "output": {"id": "db_1", "name": f"{APP}-database-dev",
                                "region": "eu-west-3", "status": "ready",
                                "createdAt": "2026-01-01T00:00:00.000Z",
                                "project": "proj_1"}},
    }  # fmt: skip
    for rid, body in records.items():
        (folder / f"{rid}.json").write_text(json.dumps(body))
    out = journal("import-alchemy", str(tmp_path / "app"), "--yes", env=_env()).stdout
    assert "service token: ********" in out and "tok-1" not in out
    with Journal.open(tmp_path / "app" / ".journal" / "journal.db", password=PASSWORD) as jr:
        state = load_state(jr, f"{APP}/dev")
    project, database = state.resources["project"], state.resources["database"]
    assert project.options["service_token"] == {"$secret": "tok-1"}
    assert project.delete is False and database.delete is True
    assert database.refs == {"project": "project"} and database.deps == ["project"]
    assert database.props == {"project": "proj_1", "region": "eu-west-3",
                              "name": f"{APP}-database-dev", "is_default": False}  # fmt: skip

    # an update Alchemy did not finish: the object as it was, and the replace as an intent
    body = records["database"]
    body |= {"status": "updating", "oldProps": dict(body["props"]), "seq": 2}
    body["props"] = {**body["props"], "name": "renamed"}
    (folder / "database.json").write_text(json.dumps(body))
    db = tmp_path / "pending.db"
    args = ["import-alchemy", str(tmp_path / "app"), "--journal", str(db), "--yes"]
    journal(*args, "--include-pending", env=_env())
    with Journal.open(db, password=PASSWORD) as jr:
        database = load_state(jr, f"{APP}/dev").resources["database"]
    assert database.props["name"] == f"{APP}-database-dev" and database.exists
    assert database.pending is not None and database.pending["op"] == "replace"
    assert database.pending["props"]["name"] == "renamed"


def test_on_a_terminal_the_password_is_asked_and_the_import_confirmed(
    deployed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import journal.cli._output as output

    monkeypatch.setattr(output, "_isatty", lambda stream: True)
    monkeypatch.delenv("JOURNAL_PASSWORD")
    project = copy_of(deployed, tmp_path)
    declined = journal("import-alchemy", str(project), input=f"{PASSWORD}\nn\n", code=1)
    assert "Import 3 resource(s) into" in declined.stderr
    assert not (project / ".journal").exists(), "declining writes nothing"
    journal("import-alchemy", str(project), input=f"{PASSWORD}\ny\n")
    # with neither JOURNAL_PASSWORD nor ALCHEMY_PASSWORD set, the journal takes the one asked
    with Journal.open(project / ".journal" / "journal.db", password=PASSWORD) as jr:
        assert len(load_state(jr, f"{APP}/test").resources) == 3
