"""Issue 13 through the CLI, on the in-memory provider: drift (`journal refresh`,
`plan --refresh`), exports of removed resources, and state surgery (forget, resolve) recorded
as events with who did it, replayable from scratch."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from cli_harness import make_project, run

from journal._events import make_event
from journal._journal import Journal
from journal._projection import load_state, rebuild_and_check

PARENT_ONLY = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("parent", tag="v1")
"""

BOTH = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag="v1")
    child = Thing("child", parent=parent)
    app.export(child_id=child.id, child_name=child.name)
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JOURNAL_ACTOR", "alice")
    write(make_project(tmp_path, monkeypatch), BOTH)
    return tmp_path


def write(folder: Path, source: str) -> None:
    (folder / "alchemy.run.py").write_text(textwrap.dedent(source))


def journal_file(project: Path) -> Path:
    return project / ".journal" / "journal.db"


def history(*args: str) -> list[dict[str, Any]]:
    out = run("history", "--json", *args, code=0).stdout
    return [json.loads(line) for line in out.splitlines()]


def replayable(project: Path) -> None:
    with Journal.open(journal_file(project)) as jr:
        same, _ = rebuild_and_check(jr, "demo/dev")
    assert same, "a fold from scratch gives the state the snapshots give"


def by_name(cloud: mp.Cloud) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in cloud.all()}


def test_a_deleted_object_is_found_by_refresh_and_created_again(
    project: Path, cloud: mp.Cloud
) -> None:
    run("deploy", code=0)
    cloud.remove(by_name(cloud)["demo-child-dev"]["id"])
    # the reported defect: without a refresh the journal does not know
    assert "2 unchanged" in run("plan", code=0).stdout

    planned = run("plan", "--refresh", code=0)
    assert "! child (memory.Thing): gone" in planned.stdout
    assert "+ child (memory.Thing): create" in planned.stdout
    assert "refresh demo/dev: 2 checked, 1 gone, 0 changed" in planned.stdout
    shown = run("outputs", code=0).stdout
    assert "child_id" not in shown, "the export of a gone object is not printed"

    drifted = [r for r in history("--resource", "child") if r["action"] == "drifted"]
    assert len(drifted) == 1 and drifted[0]["actor"] == "alice"
    assert "gone" in drifted[0]["detail"]

    redo = run("deploy", code=0)
    assert "created child (memory.Thing)" in redo.stdout
    assert "demo-child-dev" in by_name(cloud)
    assert "child_id" in run("outputs", code=0).stdout
    replayable(project)


def test_a_changed_object_is_recorded_and_put_back(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    obj = by_name(cloud)["demo-parent-dev"]
    cloud.put({**obj, "tag": "edited-by-hand"})
    out = run("refresh", code=0).stdout
    assert "~ parent (memory.Thing): changed outside journal" in out
    assert 'props.tag: "v1" -> "edited-by-hand"' in out
    assert "1 changed" in out
    assert "~ parent (memory.Thing): update" in run("plan", code=0).stdout
    run("deploy", code=0)
    assert by_name(cloud)["demo-parent-dev"]["tag"] == "v1"
    assert "0 changed" in run("refresh", code=0).stdout
    replayable(project)


def test_outputs_after_a_rollback_deleted_the_resource(project: Path, cloud: mp.Cloud) -> None:
    write(project, PARENT_ONLY)
    run("deploy", code=0)
    with Journal.open(journal_file(project)) as jr:
        before = jr.head()[0]
    write(project, BOTH)
    run("deploy", code=0)
    assert "child_id" in run("outputs", code=0).stdout
    run("rollback", str(before), "--yes", code=0)
    assert "demo-child-dev" not in by_name(cloud)
    out = run("outputs", "--json", code=0).stdout
    assert json.loads(out) == {}, "no export of the deleted child is printed"
    replayable(project)


def test_state_forget_keeps_the_remote_object(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    refused = run("state", "forget", "child", code=2)
    assert "pass --yes" in refused.stderr
    blocked = run("state", "forget", "parent", "--yes", code=2)
    assert "child depend(s) on 'parent': forget them first" in blocked.stderr
    unknown = run("state", "forget", "nope", "--yes", code=2)
    assert "has no resource 'nope' (it has: child, parent)" in unknown.stderr

    done = run("state", "forget", "child", "--yes", code=0)
    assert "forgot child (memory.Thing) in demo/dev; the remote object is kept" in done.stdout
    assert "demo-child-dev" in by_name(cloud), "the remote object is untouched"
    with Journal.open(journal_file(project)) as jr:
        assert set(load_state(jr, "demo/dev").resources) == {"parent"}
    records = history()
    forgotten = next(r for r in records if r["action"] == "forgotten")
    assert forgotten["actor"] == "alice" and "journal state forget" in forgotten["detail"]
    started = [r for r in records if r["action"] == "run.started"]
    assert started[-1]["detail"] == "state forget"
    replayable(project)
    calls = len(cloud.calls)
    # still declared: the next deploy makes a new object (the old one is not ours any more)
    assert "1 created" in run("deploy", code=0).stdout
    assert len(cloud.calls) > calls


def _pending_create(project: Path, rid: str, props: dict[str, Any]) -> None:
    """What a run killed between its create intent and the answer leaves."""
    with Journal.open(journal_file(project)) as jr:
        jr.append(
            "demo/dev",
            [
                make_event(
                    "resource.create.requested",
                    resource=rid,
                    resource_type="memory.Thing",
                    props=props,
                    deps=[],
                    options={},
                )
            ],
        )


def test_state_resolve_by_hand(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    props = {"name": "made-by-hand", "size": 1, "tag": None, "parent": None}
    _pending_create(project, "extra", props)
    cloud.put({"id": "th_hand", "name": "made-by-hand", "size": 1, "tag": None, "parent": None})
    assert "pending create" in run("show", code=0).stdout

    wrong = run("state", "resolve", "extra", "--created", "th_nothere", "--yes", code=1)
    assert "has no memory.Thing with id 'th_nothere'" in wrong.stderr
    both = run("state", "resolve", "extra", "--created", "x", "--absent", "--yes", code=2)
    assert "exactly one of --created ID and --absent" in both.stderr

    done = run("state", "resolve", "extra", "--created", "th_hand", "--yes", code=0)
    assert "resolved the pending create of extra as created with id th_hand" in done.stdout
    with Journal.open(journal_file(project)) as jr:
        extra = load_state(jr, "demo/dev").resources["extra"]
    assert extra.pending is None and extra.outputs is not None
    assert extra.outputs["id"] == "th_hand"
    assert run("state", "resolve", "extra", "--absent", "--yes", code=2).stderr.endswith(
        "has no pending operation: nothing to resolve (see `journal show`)\n"
    )

    _pending_create(project, "ghost", {**props, "name": "ghost"})
    run("state", "resolve", "ghost", "--absent", "--yes", code=0)
    with Journal.open(journal_file(project)) as jr:
        assert "ghost" not in load_state(jr, "demo/dev").resources
    resolved = [r for r in history() if r["action"] == "resolved"]
    assert [r["resource"] for r in resolved] == ["extra", "ghost"]
    assert all(r["actor"] == "alice" and "by hand" in r["detail"] for r in resolved)
    replayable(project)


def test_state_import_records_an_existing_object(project: Path, cloud: mp.Cloud) -> None:
    run("deploy", code=0)
    child_id = by_name(cloud)["demo-child-dev"]["id"]
    already = run("state", "import", "child", child_id, "--yes", code=2)
    assert "'child' is already recorded in demo/dev: forget it first" in already.stderr
    run("state", "forget", "child", "--yes", code=0)

    undeclared = run("state", "import", "stranger", child_id, "--yes", code=2)
    assert "does not declare 'stranger' (it declares: child, parent)" in undeclared.stderr
    missing = run("state", "import", "child", "th_missing", "--yes", code=1)
    assert "has no memory.Thing with id 'th_missing'" in missing.stderr

    done = run("state", "import", "child", child_id, "--yes", code=0)
    assert f"imported {child_id} as child (memory.Thing) in demo/dev" in done.stdout
    with Journal.open(journal_file(project)) as jr:
        child = load_state(jr, "demo/dev").resources["child"]
    assert child.outputs is not None and child.outputs["id"] == child_id
    assert child.deps == ["parent"] and child.refs == {"parent": "parent"}
    calls = len(cloud.calls)
    assert "2 unchanged" in run("deploy", code=0).stdout, "the imported object is ours again"
    assert [c for c in cloud.calls[calls:] if c[0] != "read"] == []
    imported = [r for r in history() if r["action"] == "imported"]
    assert imported[0]["actor"] == "alice"
    assert imported[0]["detail"] == f"from journal state import {child_id}"
    replayable(project)
