"""The dev loop: re-run on change in one process; broken programs delete nothing."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import memory_provider as mp
import pytest
from click.testing import CliRunner

from journal._errors import ProgramError
from journal._journal import Journal
from journal._program.app import RunSettings
from journal._program.dev import DevLoop, DevRun, watch_changes
from journal._projection import load_state
from journal.cli import cli

ONE = """
import journal
from memory_provider import Thing
import helpers

with journal.app("demo") as app:
    Thing("first", tag=helpers.TAG)
"""

TWO = """
import journal
from memory_provider import Thing
import helpers

with journal.app("demo") as app:
    Thing("first", tag=helpers.TAG)
    Thing("second")
"""

BROKEN = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("first"
"""

RAISES = """
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("first")
    raise RuntimeError("half way")
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # each test's program imports its own `helpers`: never another test's
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(ONE))
    (tmp_path / "helpers.py").write_text('TAG = "a"\n')
    return tmp_path


def settings_for(project: Path) -> RunSettings:
    return RunSettings(stage="dev", location=str(project / ".journal" / "journal.db"))


def event_types(project: Path) -> list[str]:
    with Journal.open(project / ".journal" / "journal.db") as jr:
        return [e.payload["type"] for e in jr.read("demo/dev")]


def test_edits_converge_and_broken_programs_delete_nothing(project: Path, cloud: mp.Cloud) -> None:
    program = project / "alchemy.run.py"
    helpers = project / "helpers.py"
    seen: list[DevRun] = []

    def edits(root: Path, stop: threading.Event) -> Iterator[set[Path]]:
        assert root == project.resolve()
        program.write_text(textwrap.dedent(TWO))  # add a resource
        yield {program}
        (project / "notes.txt").write_text("not a module")
        yield {project / "notes.txt"}  # irrelevant: no run
        program.write_text(textwrap.dedent(BROKEN))  # syntax error
        yield {program}
        program.write_text(textwrap.dedent(RAISES))  # an exception half way
        yield {program}
        program.write_text(textwrap.dedent(TWO))  # fixed
        yield {program}
        helpers.write_text('TAG = "b"\n')  # a local module the program imports
        yield {helpers}

    loop = DevLoop(program, lambda: settings_for(project), changes=edits, on_run=seen.append)
    runs = loop.run()
    assert runs == seen and len(runs) == 6
    assert [r.ok for r in runs] == [True, True, False, False, True, True]
    assert runs[0].results[0].counts == {"create": 1}
    assert runs[1].results[0].counts == {"noop": 1, "create": 1}
    assert runs[1].trigger == {program.resolve()}
    assert isinstance(runs[2].error, ProgramError) and "syntax error" in str(runs[2].error)
    assert isinstance(runs[3].error, ProgramError) and "half way" in str(runs[3].error)
    assert runs[4].results[0].counts == {"noop": 2}
    assert runs[5].results[0].counts == {"update": 1, "noop": 1}
    assert runs[5].trigger == {helpers.resolve()}
    assert helpers.resolve() in runs[0].modules
    assert all(r.since_save_ms >= 0 for r in runs)

    assert not any(".delete" in t or t.endswith("deleted") for t in event_types(project))
    assert sorted(o["name"] for o in cloud.all()) == ["demo-first-dev", "demo-second-dev"]
    assert next(o for o in cloud.all() if o["name"] == "demo-first-dev")["tag"] == "b"
    with Journal.open(project / ".journal" / "journal.db") as jr:
        assert set(load_state(jr, "demo/dev").resources) == {"first", "second"}


def test_a_module_that_failed_to_import_is_watched_after_the_failure(project: Path) -> None:
    helpers = project / "helpers.py"
    helpers.write_text("TAG = (\n")  # broken from the start

    def fix(root: Path, stop: threading.Event) -> Iterator[set[Path]]:
        helpers.write_text('TAG = "fixed"\n')
        yield {helpers}

    runs = DevLoop(project / "alchemy.run.py", lambda: settings_for(project), changes=fix).run()
    assert [r.ok for r in runs] == [False, True]


def test_the_real_watcher_picks_up_a_save(project: Path, cloud: mp.Cloud) -> None:
    program = project / "alchemy.run.py"
    timer = threading.Timer(30, lambda: loop.stop())  # never hang

    def after(run: DevRun) -> None:
        if run.number == 1:
            threading.Timer(0.3, lambda: program.write_text(textwrap.dedent(TWO))).start()

    loop = DevLoop(program, lambda: settings_for(project), on_run=after, max_runs=2)
    timer.start()
    try:
        runs = loop.run()
    finally:
        timer.cancel()
    assert len(runs) == 2 and runs[1].ok
    assert runs[1].trigger == {program.resolve()}
    assert runs[1].saved_at is not None and 0 <= runs[1].since_save_ms < 10_000
    assert len(cloud.all()) == 2


def test_watch_changes_merges_a_burst(tmp_path: Path) -> None:
    stop = threading.Event()
    batches = watch_changes(tmp_path, stop)
    threading.Timer(0.3, lambda: [(tmp_path / f"m{i}.py").write_text("") for i in range(3)]).start()
    guard = threading.Timer(20, stop.set)
    guard.start()
    try:
        first = next(batches)
    finally:
        stop.set()
        guard.cancel()
    assert {p.name for p in first} <= {"m0.py", "m1.py", "m2.py"} and first


def test_dev_command_once(project: Path, cloud: mp.Cloud) -> None:
    result = CliRunner().invoke(cli, ["dev", "--no-local", "--once", "--stage", "dev"])
    assert result.exit_code == 0, result.output
    assert "created first (memory.Thing)" in result.stdout
    assert "reconciled in" in result.stdout and "(first run)" in result.stdout
    assert len(cloud.all()) == 1
    (project / "alchemy.run.py").write_text(textwrap.dedent(BROKEN))
    broken = CliRunner().invoke(cli, ["dev", "--no-local", "--once", "--stage", "dev"])
    assert broken.exit_code == 2
    assert "syntax error" in broken.stderr and "nothing was deleted" in broken.stderr
    assert len(cloud.all()) == 1
