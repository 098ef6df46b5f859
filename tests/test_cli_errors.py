"""Bad input: each case asserts the exact exit code and the key part of the message."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import memory_provider as mp
import pytest
from cli_harness import make_project, run
from click.testing import CliRunner

from journal.cli import cli


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_command_and_flag(project: Path) -> None:
    assert "No such command 'frobnicate'" in run("frobnicate", code=2).stderr
    assert "No such option '--nope'" in run("deploy", "--nope", code=2).stderr


def test_missing_program(project: Path) -> None:
    result = run("deploy", "missing.py", code=2)
    assert result.stderr.startswith("error: no program at 'missing.py'")
    assert "journal init" in result.stderr


def test_program_without_app(project: Path) -> None:
    (project / "alchemy.run.py").write_text("x = 1\n")
    result = run("deploy", code=2)
    assert "error: alchemy.run.py declares no app" in result.stderr


def test_program_that_raises_and_syntax_error(project: Path) -> None:
    (project / "alchemy.run.py").write_text("raise RuntimeError('boom')\n")
    assert "the program raised RuntimeError: boom" in run("deploy", code=2).stderr
    (project / "alchemy.run.py").write_text("with journal.app(:\n")
    assert "syntax error" in run("plan", code=2).stderr


def test_wrong_password_exits_2_and_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("deploy", code=0)
    db = project / ".journal" / "journal.db"
    before = digest(db)
    monkeypatch.setenv("JOURNAL_PASSWORD", "not the password")
    for args in (("deploy",), ("plan",), ("history",), ("outputs",), ("destroy", "--yes")):
        result = run(*args, code=2)
        assert "error: the password does not open this journal" in result.stderr
    assert digest(db) == before


def test_missing_password(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_PASSWORD")
    for args in (("deploy",), ("plan",)):
        result = run(*args, code=2)
        assert "error: no password for the journal: set JOURNAL_PASSWORD" in result.stderr
    assert not (project / ".journal" / "journal.db").exists()


def test_unknown_sequence_for_rollback(project: Path) -> None:
    run("deploy", code=0)
    result = run("rollback", "999", "--yes", code=2)
    assert "error: sequence 999 is not in the journal: valid sequences are 1 to" in result.stderr
    assert "valid sequences are 1 to" in run("rollback", "0", "--yes", code=2).stderr


def test_journal_from_a_newer_version(project: Path) -> None:
    run("deploy", code=0)
    db = project / ".journal" / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    conn.close()
    for args in (("history",), ("deploy",), ("verify",)):
        result = run(*args, code=2)
        assert "has format 99, newer than this version of journal reads" in result.stderr


def test_no_journal_for_commands_that_need_one(project: Path) -> None:
    result = run("history", code=2)
    assert "error: no journal at" in result.stderr


def test_destroy_without_yes_and_without_a_terminal(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    result = run("destroy", code=2)
    assert "error: destroy needs confirmation: pass --yes" in result.stderr
    assert len(cloud.all()) == 1, "nothing was deleted"


def test_unknown_stage(project: Path) -> None:
    run("deploy", code=0)
    result = run("outputs", "--stage", "prod", code=2)
    assert "the journal has no stage 'prod' (it holds demo/dev)" in result.stderr


def test_bad_since_and_internal_errors_stay_short(project: Path) -> None:
    run("deploy", code=0)
    assert (
        "--since 'yesterday' is not a time" in run("history", "--since", "yesterday", code=2).stderr
    )


def test_debug_shows_the_traceback(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_DEBUG", "1")
    result = CliRunner().invoke(cli, ["deploy", "missing.py"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "error: no program at" in result.stderr
