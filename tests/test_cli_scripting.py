"""The CLI for scripts, from a fresh folder: one output value (`outputs NAME`), a .env
(`outputs --format env`, parsed back), `deploy/plan --json` against the committed schema,
`plan --detailed-exitcode`, `-v/--verbose`, and messages without internal ids."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import memory_provider as mp
import pytest
from cli_harness import make_project, run, write
from dotenv import dotenv_values

from journal._program.env import format_env

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schemas" / "run.schema.json"
SECRET = "s3cr3t-'quote' $HOME \\back"

PROGRAM = f"""
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag="v1")
    child = Thing("child", parent=parent)
    app.export(
        parent_id=parent.id,
        user="app_user",
        port=5432,
        tags=["a", "b"],
        token=journal.Secret({SECRET!r}),
    )
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch, PROGRAM)


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))


# --- outputs -------------------------------------------------------------------------------


def test_outputs_one_value(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    parent_id = next(o["id"] for o in cloud.all() if o["name"] == "demo-parent-dev")
    assert run("outputs", "parent_id", code=0).stdout == f'"{parent_id}"\n'
    assert run("outputs", "parent_id", "--raw", code=0).stdout == f"{parent_id}\n"
    assert run("outputs", "port", "--raw", code=0).stdout == "5432\n"
    assert json.loads(run("outputs", "tags", code=0).stdout) == ["a", "b"]

    refused = run("outputs", "token", "--raw", code=2)
    assert refused.stdout == "", "a secret is never printed masked where a value is expected"
    assert SECRET not in refused.output
    assert "token is a secret: pass --show-secrets to print it in clear" in refused.stderr
    shown = run("outputs", "token", "--raw", "--show-secrets", code=0)
    assert shown.stdout == SECRET + "\n"

    missing = run("outputs", "nope", code=2)
    assert "demo/dev has no output 'nope'; its outputs: parent_id, port, tags, token, user" in (
        missing.stderr
    )
    nested = run("outputs", "tags", "--raw", code=2)
    assert "tags is a JSON list: --raw prints strings, numbers and booleans" in nested.stderr
    assert "--raw prints one value" in run("outputs", "--raw", code=2).stderr


def test_outputs_env_file_parses_back(project: Path) -> None:
    run("deploy", code=0)
    refused = run("outputs", "--format", "env", code=2)
    assert refused.stdout == ""
    assert "the outputs token are secrets: a .env needs them in clear" in refused.stderr

    text = run("outputs", "--format", "env", "--show-secrets", code=0).stdout
    env_file = project / "app.env"
    env_file.write_text(text)
    parsed = dotenv_values(env_file, interpolate=False)
    assert parsed["TOKEN"] == SECRET
    assert parsed["USER"] == "app_user" and parsed["PORT"] == "5432"
    assert json.loads(parsed["TAGS"] or "") == ["a", "b"]
    # the same file read by a POSIX shell (values without a quote or backslash)
    simple = "".join(line + "\n" for line in text.splitlines() if not line.startswith("TOKEN="))
    env_file.write_text(simple)
    shell = subprocess.run(
        ["sh", "-c", f'set -a; . "{env_file}"; printf %s "$PARENT_ID|$USER|$TAGS"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shell.stdout == f"{parsed['PARENT_ID']}|app_user|{parsed['TAGS']}"

    as_json = json.loads(run("outputs", "--format", "json", code=0).stdout)
    assert as_json["token"] == "********" and as_json["user"] == "app_user"


@pytest.mark.parametrize(
    "value",
    ["plain", "it's", 'say "hi"', "back\\slash", "two\nlines", "$HOME ${HOME} `x`", "", "é ü"],
)
def test_format_env_round_trips(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(format_env({"v": value}))
    assert dotenv_values(path, interpolate=False) == {"V": value}


# --- --json --------------------------------------------------------------------------------


def test_deploy_and_plan_json_match_the_schema(project: Path) -> None:
    planned = run("plan", "--json", code=0)
    doc = json.loads(planned.stdout)
    validate(doc)
    assert doc["command"] == "plan" and doc["status"] == "planned"
    assert doc["changes_pending"] is True and doc["counts"] == {"create": 2}
    (run_doc,) = doc["runs"]
    assert (run_doc["app"], run_doc["stage"]) == ("demo", "dev")
    parent = next(c for c in run_doc["changes"] if c["resource"] == "parent")
    assert parent["action"] == "create"
    assert parent["diff"]["tag"] == {"old": None, "new": "v1"}

    deployed = run("deploy", "--json", code=0)
    doc = json.loads(deployed.stdout)  # stdout is the document alone
    validate(doc)
    assert doc["status"] == "succeeded" and doc["counts"] == {"create": 2}
    assert doc["runs"][0]["outputs"]["token"] == "********"
    assert SECRET not in deployed.output
    assert "created parent (memory.Thing)" in deployed.stderr, "progress goes to stderr"

    again = json.loads(run("plan", "--json", code=0).stdout)
    validate(again)
    assert again["changes_pending"] is False and again["counts"] == {"noop": 2}


def test_json_document_of_a_failed_run(
    project: Path, monkeypatch: pytest.MonkeyPatch, cloud: mp.Cloud
) -> None:
    cloud.fail_names.add("demo-child-dev")
    failed = run("deploy", "--json", code=1)
    doc = json.loads(failed.stdout)
    validate(doc)
    assert doc["status"] == "failed"
    assert doc["error"]["exit_code"] == 1
    (child,) = [c for c in doc["runs"][0]["changes"] if c["resource"] == "child"]
    assert child["error"] == "injected failure for 'demo-child-dev'"

    monkeypatch.delenv("JOURNAL_PASSWORD")
    monkeypatch.delenv("ALCHEMY_PASSWORD", raising=False)
    no_password = run("deploy", "--json", code=2)
    doc = json.loads(no_password.stdout)
    validate(doc)
    assert doc["status"] == "error" and doc["runs"] == []
    assert "no password for the journal" in doc["error"]["message"]


# --- --detailed-exitcode -------------------------------------------------------------------


def test_plan_detailed_exitcode(project: Path, cloud: mp.Cloud) -> None:
    assert "to create" in run("plan", "--detailed-exitcode", code=2).stdout
    run("plan", code=0)  # without the flag a pending plan is a success
    run("deploy", code=0)
    run("plan", "--detailed-exitcode", code=0)
    write(project, PROGRAM.replace('tag="v1"', 'tag="v2"'))
    run("plan", "--detailed-exitcode", code=2)
    assert json.loads(run("plan", "--json", "--detailed-exitcode", code=2).stdout)[
        "changes_pending"
    ]
    # errors are 1, never 2, even those that are usage errors without the flag
    write(project, "raise ValueError('broken')\n")
    assert "the program raised ValueError: broken" in (
        run("plan", "--detailed-exitcode", code=1).stderr
    )
    doc = json.loads(run("plan", "--json", "--detailed-exitcode", code=1).stdout)
    assert doc["status"] == "error" and doc["error"]["exit_code"] == 1
    run("plan", code=2)
    run("plan", "--detailed-exitcode", "--no-such-option", code=1)
    run("plan", "--detailed-exitcode", str(project / "missing.py"), code=1)


# --- verbose, messages ---------------------------------------------------------------------

BROKEN = """
import journal
from memory_provider import Thing


def helper():
    raise ValueError("the program's own bug")


with journal.app("demo") as app:
    Thing("one")
    helper()
"""


def test_verbose_shows_the_programs_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, BROKEN)
    monkeypatch.delenv("JOURNAL_DEBUG", raising=False)
    quiet = run("deploy", code=2)
    assert "Traceback" not in quiet.output
    assert quiet.stderr.count("the program raised ValueError: the program's own bug") == 1
    assert "demo/dev: deploy failed in" in quiet.stdout
    assert "the program failed" in quiet.stdout and "nothing to do" not in quiet.stdout

    for args in (["deploy", "-v"], ["--verbose", "deploy"]):
        loud = _invoke(*args)
        assert loud.exit_code == 2
        assert "Traceback" in loud.stderr
        assert 'in helper\n    raise ValueError("the program\'s own bug")' in loud.stderr
        assert loud.stderr.rstrip().endswith("the program raised ValueError: the program's own bug")
    monkeypatch.setenv("JOURNAL_DEBUG", "1")
    assert "in helper" in _invoke("deploy").stderr


def test_verbose_shows_an_internal_errors_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import journal._program.dev

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("internal")

    monkeypatch.setattr(journal._program.dev, "run_once", broken)
    quiet = run("deploy", code=1)
    assert quiet.stderr.strip().splitlines()[-1] == (
        "error: internal error: KeyError: 'internal' (-v or JOURNAL_DEBUG=1 for the traceback)"
    )
    loud = _invoke("deploy", "--verbose")
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr and "in broken" in loud.stderr


def _invoke(*args: str) -> Any:
    from click.testing import CliRunner

    from journal.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_a_skipped_delete_names_the_resource_not_an_internal_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("deploy", code=0)
    original = mp.ThingProvider.delete

    def delete(self: Any, props: Any, outputs: Any, ctx: Any) -> None:
        if outputs.name == "demo-child-dev":
            raise mp.ProviderError("the API refused", operation="delete")
        original(self, props, outputs, ctx)

    monkeypatch.setattr(mp.ThingProvider, "delete", delete)
    destroyed = run("destroy", "--yes", code=1)
    assert "#current" not in destroyed.output
    assert destroyed.output.count("the API refused") == 1, "told once"
    assert "demo/dev: destroy failed in" in destroyed.stdout
    assert "child failed (skipped: parent)" in destroyed.stdout


def test_a_failed_resource_is_told_once_and_summed_up(project: Path, cloud: mp.Cloud) -> None:
    cloud.fail_names.add("demo-parent-dev")
    failed = run("deploy", code=1)
    assert failed.output.count("injected failure for 'demo-parent-dev'") == 1
    summary = failed.stdout.strip().splitlines()[-1]
    assert summary.startswith("demo/dev: deploy failed in ")
    assert summary.endswith(": parent failed (skipped: child)")


def test_missing_token_is_told_once_and_names_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    for var in ("PRISMA_SERVICE_TOKEN", "PRISMA_API_URL"):
        monkeypatch.delenv(var, raising=False)
    run("init", code=0)
    failed = run("deploy", code=2)
    assert failed.output.count("no Prisma service token") == 1
    assert "`journal deploy --local` or `journal dev`" in failed.output
    assert "project failed (skipped: connection and database)" in failed.stdout
