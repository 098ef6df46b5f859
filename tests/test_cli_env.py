"""The environment of a program: ``journal.env``, ``.env`` next to the program and
``--env-file``, from a fresh folder through the CLI; and the scaffold's programs against the
local Prisma API with their ``.env`` (a .env written by ``outputs --format env`` connects)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import memory_provider as mp
import psycopg
import pytest
from cli_harness import make_project, run
from dotenv import dotenv_values

import journal
from journal._errors import ProgramError
from journal._journal import Journal
from journal._projection import load_state
from journal.resources.prisma_postgres.local import LocalPrismaApi

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "tok-from-dotenv-0123456789"

PROGRAM = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("one", tag=journal.env("THING_TAG"))
    app.export(token=journal.env("THING_TOKEN", default="none", secret=True))
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("THING_TAG", "THING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return make_project(tmp_path, monkeypatch, PROGRAM)


def tag(cloud: mp.Cloud) -> str:
    (obj,) = cloud.all()
    return str(obj["tag"])


# --- journal.env -----------------------------------------------------------------------------


def test_env_reads_defaults_and_wraps_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("J_SET", "value")
    monkeypatch.setenv("J_EMPTY", "")
    monkeypatch.delenv("J_UNSET", raising=False)
    assert journal.env("J_SET") == "value"
    assert journal.env("J_UNSET", default="fallback") == "fallback"
    assert journal.env("J_EMPTY", "fallback") == "fallback", "an empty value counts as unset"
    secret = journal.env("J_SET", secret=True)
    assert isinstance(secret, journal.Secret) and secret.unencrypted == "value"
    assert "value" not in repr(secret)
    with pytest.raises(ProgramError) as info:
        journal.env("J_UNSET")
    assert str(info.value) == (
        "the environment variable J_UNSET is not set: set it in the environment or in .env "
        "next to the program (or choose the file with --env-file), or give a default: "
        'journal.env("J_UNSET", default=...)'
    )


# --- .env and --env-file through the CLI ------------------------------------------------------


def test_dotenv_next_to_the_program_is_loaded_and_the_environment_wins(
    project: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = run("deploy", code=2)
    assert "the environment variable THING_TAG is not set" in missing.stderr
    assert cloud.all() == [], "nothing is created when a variable is missing"

    dotenv = f"# tokens\nexport THING_TAG=from-dotenv\nTHING_TOKEN='{TOKEN}'\n"
    (project / ".env").write_text(dotenv)
    deployed = run("deploy", code=0)
    assert tag(cloud) == "from-dotenv"
    assert TOKEN not in deployed.output, "values of .env are never printed"
    assert run("outputs", "token", "--raw", "--show-secrets", code=0).stdout == TOKEN + "\n"
    assert "THING_TAG" not in os.environ, "the variables of .env are gone after the command"

    monkeypatch.setenv("THING_TAG", "from-environment")
    run("deploy", code=0)
    assert tag(cloud) == "from-environment", "a variable set in the environment wins"
    monkeypatch.delenv("THING_TAG")

    other = project / "prod.env"
    other.write_text('THING_TAG="from-env-file"\n')
    run("plan", "--env-file", str(other), code=0)
    run("deploy", "--env-file", str(other), code=0)
    assert tag(cloud) == "from-env-file"
    with Journal.open(project / ".journal" / "journal.db") as jr:
        recorded = load_state(jr, "demo/dev").resources["one"].props
    assert recorded is not None and recorded["tag"] == "from-env-file"

    gone = run("deploy", "--env-file", str(project / "nope.env"), code=2)
    assert f"no environment file at {project / 'nope.env'}: check --env-file" in gone.stderr


def test_a_bad_dotenv_line_is_named_without_its_value(project: Path, cloud: mp.Cloud) -> None:
    (project / ".env").write_text(f"THING_TAG=ok\n{TOKEN} is not an assignment\n")
    bad = run("deploy", code=2)
    assert f"{project / '.env'}:2: not a KEY=value line; fix or remove it" in bad.stderr
    assert TOKEN not in bad.output
    assert cloud.all() == []


# --- the scaffold against the local Prisma API -------------------------------------------------


@pytest.fixture
def prisma(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = LocalPrismaApi(postgres_url=SHARED_PG, prefix="env" + uuid.uuid4().hex[:8])
    server.start()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    try:
        yield server
    finally:
        server.purge()
        server.stop()


def test_multi_workspace_scaffold_reads_its_tokens_from_dotenv(
    prisma: LocalPrismaApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    for var in ("PRISMA_SERVICE_TOKEN", "PRISMA_SERVICE_TOKEN_WORKSPACE_A"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("PRISMA_SERVICE_TOKEN_WORKSPACE_B", raising=False)
    run("init", "--template", "multi-workspace", code=0)
    missing = run("deploy", code=2)
    assert "the environment variable PRISMA_SERVICE_TOKEN_WORKSPACE_A is not set" in (
        missing.stderr
    )
    assert not prisma.inventory().projects

    Path(".env").write_text(
        "PRISMA_SERVICE_TOKEN_WORKSPACE_A=token-a\nPRISMA_SERVICE_TOKEN_WORKSPACE_B=token-b\n"
    )
    deployed = run("deploy", code=0)
    assert "token-a" not in deployed.output and "token-b" not in deployed.output
    projects = prisma.inventory().projects
    assert len(projects) == 2 and len({p.workspace_id for p in projects}) == 2


def test_scaffold_outputs_user_in_clear_and_a_dotenv_that_connects(
    prisma: LocalPrismaApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "local-token")
    run("init", code=0)
    run("deploy", code=0)

    listed = run("outputs", code=0).stdout
    user = run("outputs", "user", "--raw", code=0).stdout.strip()
    assert user and user != "********", "the login name is not a credential"
    assert f"user                     = {user}" in listed
    assert "connection_string        = ********" in listed
    assert "is a secret" in run("outputs", "connection_string", code=2).stderr

    app_env = tmp_path / "app" / ".env"
    app_env.parent.mkdir()
    app_env.write_text(run("outputs", "--format", "env", "--show-secrets", code=0).stdout)
    values = dotenv_values(app_env, interpolate=False)
    assert values["USER"] == user
    dsn = values["CONNECTION_STRING"]
    assert dsn is not None
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT session_user").fetchone() == (user,)
