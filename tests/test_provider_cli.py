"""The CLI knows no provider by name: `journal configure` stores any installed provider's
declared credentials, and `--local` points runs at every provider's emulator through the
engine (the environment is left alone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_harness import make_project, run

from journal._credentials import load_credentials
from journal._journal import Journal
from journal.provider import Credential, Service, register_service

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"

register_service(
    Service(
        name="twocred",
        title="Two-credential API",
        credentials=(
            Credential("api_token", env="TWOCRED_API_TOKEN"),
            Credential("account_id", env="TWOCRED_ACCOUNT_ID"),
        ),
        api_url_env="TWOCRED_API_URL",
    )
)


def test_configure_stores_a_named_credential_of_any_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path, monkeypatch)
    monkeypatch.setenv("ACCOUNT", "acc-123")
    out = run(
        "configure",
        "--provider",
        "twocred",
        "--credential",
        "account_id",
        "--from-env",
        "ACCOUNT",
        code=0,
    ).stdout
    assert "stored TWOCRED_ACCOUNT_ID (twocred) for profile 'default'" in out
    with Journal.open(tmp_path / ".journal" / "journal.db") as jr:
        assert load_credentials(jr, "default")["TWOCRED_ACCOUNT_ID"].unencrypted == "acc-123"


def test_configure_asks_which_credential_when_a_provider_has_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path, monkeypatch)
    monkeypatch.setenv("ACCOUNT", "acc-123")
    err = run("configure", "--provider", "twocred", "--from-env", "ACCOUNT", code=2).stderr
    assert "twocred has several credentials (api_token, account_id)" in err
    assert "--credential NAME" in err
    err = run("configure", "--provider", "nope", "--from-env", "ACCOUNT", code=2).stderr
    assert "no installed provider 'nope' declares credentials" in err
    assert not (tmp_path / ".journal" / "journal.db").exists()


def test_a_bare_configure_names_the_installed_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two installed providers declare credentials (Prisma Postgres, Cloudflare): without a
    terminal to ask on, a bare configure names them (the program's or a test's own
    providers do not count) and stores nothing; --provider picks one."""
    make_project(tmp_path, monkeypatch)
    monkeypatch.setenv("TOKEN", "prsc_abc")
    err = run("configure", "--from-env", "TOKEN", code=2).stderr
    assert "pass --provider NAME" in err and "cloudflare" in err and "prisma-postgres" in err
    assert not (tmp_path / ".journal" / "journal.db").exists()
    out = run("configure", "--provider", "prisma-postgres", "--from-env", "TOKEN", code=0).stdout
    assert "stored PRISMA_SERVICE_TOKEN (prisma-postgres)" in out


def test_local_points_runs_at_the_emulators_without_touching_the_environment(
    tmp_path: Path,
) -> None:
    from journal.cli._commands_common import State
    from journal.cli._commands_run import _maybe_local

    state = State()
    with _maybe_local(state, tmp_path / ".journal", True, SHARED_PG) as endpoints:
        assert set(endpoints) == {"cloudflare", "prisma-postgres"}
        assert state.endpoints == endpoints
        assert endpoints["prisma-postgres"].url.startswith("http://127.0.0.1:")
        assert "PRISMA_API_URL" not in os.environ
        assert "PRISMA_SERVICE_TOKEN" not in os.environ
    assert state.endpoints == {}
