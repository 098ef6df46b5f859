"""The CLI end to end against the in-memory "memory.Thing" provider: deploy, plan, outputs,
show, history, destroy and rollback; state is checked through the library."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from click.testing import CliRunner, Result

from journal._journal import Journal
from journal._projection import load_state
from journal.cli import cli

SECRET = "pl41ntext-s3cret-value"

V1 = f"""
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag="v1")
    child = Thing("child", parent=parent)
    app.export(parent_id=parent.id, token=journal.Secret({SECRET!r}))
"""

V2 = f"""
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag="v2")
    child = Thing("child", parent=parent)
    Thing("extra")
    app.export(parent_id=parent.id, token=journal.Secret({SECRET!r}))
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    write(tmp_path, V1)
    return tmp_path


def write(folder: Path, source: str, name: str = "alchemy.run.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def run(*args: str, code: int = 0, **kw: Any) -> Result:
    result = CliRunner().invoke(cli, list(args), **kw)
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    return result


def head(project: Path) -> tuple[int, str]:
    with Journal.open(project / ".journal" / "journal.db") as jr:
        return jr.head()


def history_json(*args: str) -> list[dict[str, Any]]:
    out = run("history", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def names(cloud: mp.Cloud) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in cloud.all()}


def test_deploy_then_noop_outputs_history_destroy(project: Path, cloud: mp.Cloud) -> None:
    first = run("deploy")
    assert "created parent (memory.Thing)" in first.stdout
    assert "demo/dev: deploy succeeded" in first.stdout and "2 created" in first.stdout
    assert set(names(cloud)) == {"demo-parent-dev", "demo-child-dev"}
    assert (project / ".journal" / "journal.db").exists(), "the journal is next to the program"

    calls = len(cloud.calls)
    second = run("deploy")
    assert "2 unchanged" in second.stdout
    assert len(cloud.calls) == calls, "a no-op deploy calls nothing"

    masked = run("outputs").stdout
    assert "token     = ********" in masked and SECRET not in masked
    parent_id = names(cloud)["demo-parent-dev"]["id"]
    assert json.loads(run("outputs", "--json").stdout) == {
        "parent_id": parent_id,
        "token": "********",
    }
    assert json.loads(run("outputs", "--json", "--show-secrets").stdout)["token"] == SECRET

    records = history_json()
    runs = [r for r in records if r["action"] == "run.started"]
    assert len(runs) == 2
    for rec in records:
        assert {"seq", "time", "actor", "host", "stage", "action", "resource", "changes"} <= set(
            rec
        )
        assert rec["stage"] == "dev" and rec["actor"] and rec["host"]
    created = [r for r in records if r["action"] == "created"]
    assert [r["resource"] for r in created] == ["parent", "child"]
    assert created[0]["changes"]["props.tag"] == [None, "v1"]
    assert created[0]["changes"]["outputs.id"] == [None, parent_id]
    recorded = next(r for r in records if r["action"] == "outputs.recorded")
    assert recorded["changes"]["outputs.token"] == [None, "********"]
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    assert history_json("--resource", "child")[0]["action"] == "create.requested"
    assert len(history_json("--limit", "2")) == 2
    assert history_json("--run", runs[1]["run"])[0]["seq"] == runs[1]["seq"]
    assert history_json("--since", "1h") == records
    assert history_json("--since", "2999-01-01T00:00:00+00:00") == []
    text = run("history").stdout
    assert "created  parent (memory.Thing)" in text and 'props.tag: null -> "v1"' in text

    shown = run("show").stdout
    assert "parent (memory.Thing): ok" in shown and "depends on: parent" in shown

    gone = run("destroy", "--yes")
    assert "deleted child (memory.Thing)" in gone.stdout
    assert cloud.all() == []
    with Journal.open(project / ".journal" / "journal.db") as jr:
        assert load_state(jr, "demo/dev").resources == {}
    assert "nothing to destroy" in run("destroy", "--yes").stdout


def test_global_options_before_or_after_the_command(project: Path, cloud: mp.Cloud) -> None:
    run("--stage", "one", "deploy")
    run("deploy", "--stage", "two")
    assert set(names(cloud)) == {
        f"demo-{t}-{s}" for t in ("parent", "child") for s in ("one", "two")
    }
    journal_file = project / "elsewhere.db"
    run("deploy", "--journal", str(journal_file), "--stage", "three")
    assert journal_file.exists()
    assert run("--journal", str(journal_file), "outputs", "--stage", "three").stdout


def test_plan_writes_nothing(project: Path, cloud: mp.Cloud) -> None:
    fresh = run("plan")
    assert "+ parent (memory.Thing): create" in fresh.stdout
    assert 'tag = "v1"' in fresh.stdout
    assert not (project / ".journal" / "journal.db").exists(), "plan created no journal"
    run("deploy")
    before, calls = head(project), len(cloud.calls)
    write(project, V2)
    planned = run("plan").stdout
    assert "~ parent (memory.Thing): update" in planned
    assert 'tag: "v1" -> "v2"' in planned
    assert "+ extra (memory.Thing): create" in planned
    assert "plan: 1 to create, 1 to update" in planned
    assert SECRET not in planned
    assert head(project) == before
    assert len(cloud.calls) == calls


def test_rollback_to_the_end_of_an_earlier_deploy(project: Path, cloud: mp.Cloud) -> None:
    run("deploy")
    v1_seq = head(project)[0]
    v1_objects = names(cloud)
    with Journal.open(project / ".journal" / "journal.db") as jr:
        v1_state = load_state(jr, "demo/dev")
    write(project, V2)
    run("deploy")
    assert names(cloud)["demo-parent-dev"]["tag"] == "v2" and "demo-extra-dev" in names(cloud)
    v2_seq = head(project)[0]

    refused = run("rollback", str(v1_seq), code=2)
    assert "pass --yes" in refused.stderr
    assert head(project)[0] == v2_seq, "a refused rollback writes nothing"

    done = run("rollback", str(v1_seq), "--yes")
    assert "data in a deleted database does not come back" in done.stderr
    assert "- extra (memory.Thing): delete" in done.stdout
    assert names(cloud) == v1_objects, "the same objects as after v1, same ids"
    with Journal.open(project / ".journal" / "journal.db") as jr:
        now = load_state(jr, "demo/dev")
    assert {k: (r.props, r.outputs) for k, r in now.resources.items()} == {
        k: (r.props, r.outputs) for k, r in v1_state.resources.items()
    }
    assert now.outputs == v1_state.outputs

    after = [r for r in history_json() if r["seq"] > v2_seq]
    assert after[0]["action"] == "run.started"
    assert after[0]["detail"].startswith(f"rollback to sequence {v1_seq}")
    assert {(r["action"], r["resource"]) for r in after} >= {
        ("updated", "parent"),
        ("deleted", "extra"),
    }
    assert "already matches" in run("rollback", str(v1_seq), "--yes").stdout


def test_a_failing_resource_exits_1_and_names_itself(project: Path, cloud: mp.Cloud) -> None:
    write(
        project,
        """
        import journal
        from memory_provider import Thing

        with journal.app("demo") as app:
            Thing("good")
            Thing("bad")
        """,
    )
    cloud.fail_names = {"demo-bad-dev"}
    result = run("deploy", code=1)
    assert "create failed: bad (memory.Thing)" in result.stdout
    # the error is told once, where it happened; the summary names what failed
    assert result.output.count("injected failure for 'demo-bad-dev'") == 1
    assert result.stdout.rstrip().endswith(": bad failed; 1 created")
    assert result.stderr == ""


def test_secrets_never_shown_unless_asked(project: Path, cloud: mp.Cloud) -> None:
    outputs = [
        run("deploy"),
        run("plan"),
        run("outputs"),
        run("outputs", "--json"),
        run("show"),
        run("show", "--json"),
        run("history"),
        run("history", "--json"),
        run("verify"),
    ]
    write(project, V2)
    outputs.append(run("deploy"))
    outputs.append(run("rollback", "1", "--yes"))
    for result in outputs:
        assert SECRET not in result.output, result.output
    assert SECRET in run("outputs", "--show-secrets").stdout
    assert SECRET in run("show", "--show-secrets").stdout
    raw = (project / ".journal" / "journal.db").read_bytes()
    assert SECRET.encode() not in raw


def test_init_writes_a_project_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "My App"
    result = run("init", str(target), "--template", "ephemeral")
    assert "wrote" in result.stdout
    program = (target / "alchemy.run.py").read_text()
    assert 'journal.app("my-app")' in program and "delete=True" in program
    compile(program, "alchemy.run.py", "exec")
    assert ".journal/" in (target / ".gitignore").read_text()
    assert ".env" in (target / ".gitignore").read_text()
    assert "journal dev" in (target / "README.md").read_text()
    again = run("init", str(target), code=2)
    assert "not overwriting alchemy.run.py, .gitignore, README.md" in again.stderr
    for template in ("minimal", "multi-workspace"):
        folder = tmp_path / template
        run("init", str(folder), "--template", template, "--name", "guide")
        compile((folder / "alchemy.run.py").read_text(), "alchemy.run.py", "exec")
    guide = (tmp_path / "minimal" / "alchemy.run.py").read_text()
    assert 'Connection("connection", database=database, name="app-connection")' in guide
    assert "connection_string=connection.connection_string" in guide


def test_terminal_output_colour_and_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from journal.cli import _output

    monkeypatch.setattr(_output, "_isatty", lambda stream: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    out = _output.Output()
    assert out.terminal and out.color and out.interactive
    reporter = out.reporter()
    reporter.resource("db", "prisma-postgres.Database", "create", "start", 0.0, None)
    reporter.resource("db", "prisma-postgres.Database", "create", "done", 1.5, None)
    out.echo("summary")  # what waits for the next redraw is written before any other line
    fancy = capsys.readouterr().out
    assert "creating" not in fancy, "no line when a call starts"
    assert "created db (prisma-postgres.Database)" in fancy and "1.50s" in fancy
    assert fancy.endswith("summary\n")
    assert "\x1b[" in fancy, "colour on a terminal"

    monkeypatch.setenv("NO_COLOR", "1")
    assert _output.Output().terminal and not _output.Output().color
    monkeypatch.setenv("CI", "true")
    plain = _output.Output()
    assert not plain.terminal and not plain.color
    plain.reporter().resource("db", "prisma-postgres.Database", "delete", "failed", 0.25, "boom")
    assert capsys.readouterr().out == (
        "delete failed: db (prisma-postgres.Database) after 0.25s: boom\n"
    )
