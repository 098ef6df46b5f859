"""Progress output of a run: on a pipe one line per resource that changed or failed; on a
terminal a ``done/total`` counter rewritten in place, cleared before any other line.

The terminal is a captured stream with ``Output`` told it is a terminal; the redraw clock and
its timer are replaced where the number of redraws is what is checked."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from click.testing import CliRunner, Result

from journal.cli import _output, cli

CLEAR = "\r\x1b[K"

PROGRAM = """
import os
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag=os.environ.get("TAG", "v1"))
    for i in range({n}):
        Thing(f"t{{i}}", parent=parent)
    if os.environ.get("BAD"):
        Thing("bad")
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM.format(n=4)))
    return tmp_path


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    return result


RIDS = ("parent", "t0", "t1", "t2", "t3")


def starting_with(text: str, *prefixes: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefixes)]


def resources(lines: list[str], pattern: str) -> list[str]:
    """The resource of each line, every line matching ``pattern`` (its ``{rid}``)."""
    regex = re.compile(pattern.replace("{rid}", r"(\w+)"))
    found = [regex.fullmatch(line) for line in lines]
    assert all(found), lines
    return sorted(m.group(1) for m in found if m is not None)


# --- a pipe -----------------------------------------------------------------------------------


def test_a_pipe_gets_one_line_per_changed_resource_and_none_when_a_call_starts(
    project: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run("deploy").stdout
    created = starting_with(first, "created ")
    assert resources(created, r"created {rid} \(memory.Thing\) in \d+\.\d\ds") == list(RIDS)
    assert len(first.splitlines()) == 6, "a line per resource, then the summary"
    assert "creating" not in first and CLEAR not in first
    assert first.splitlines()[-1].startswith("demo/dev: deploy succeeded in ")

    monkeypatch.setenv("TAG", "v2")
    second = run("deploy").stdout
    lines = second.splitlines()
    assert resources(lines[:-1], r"updated {rid} \(memory.Thing\) in \d+\.\d\ds") == ["parent"]
    assert lines[-1].endswith(": 1 updated, 4 unchanged"), "unchanged: no line"

    gone = run("destroy", "--yes").stdout
    deleted = starting_with(gone, "deleted ")
    assert resources(deleted, r"deleted {rid} \(memory.Thing\) in \d+\.\d\ds") == list(RIDS)
    assert "deleting" not in gone


def test_a_pipe_tells_a_failure_once(
    project: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAD", "1")
    cloud.fail_names = {"demo-bad-dev"}
    result = run("deploy", code=1)
    failed = starting_with(result.stdout, "create failed: ")
    assert len(failed) == 1 and failed[0].startswith("create failed: bad (memory.Thing) after ")
    assert result.output.count("injected failure for 'demo-bad-dev'") == 1
    assert len(starting_with(result.stdout, "created ")) == 5
    assert result.stdout.rstrip().endswith(": bad failed; 5 created")


def test_a_real_pipe_outside_ci(tmp_path: Path) -> None:
    """The console's own choice (stdout is not a TTY), not ``CI``: plain lines."""
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM.format(n=2)))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    tests = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    env["JOURNAL_STAGE"] = "dev"
    done = subprocess.run(
        [sys.executable, "-c", "from journal.cli import main; main()", "deploy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    pattern = r"created {rid} \(memory.Thing\) in \d+\.\d\ds"
    assert resources(lines[:-1], pattern) == ["parent", "t0", "t1"]
    assert lines[-1].startswith("demo/dev: deploy succeeded in ")
    assert "\r" not in done.stdout and "\x1b" not in done.stdout


# --- a terminal -------------------------------------------------------------------------------


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout (CliRunner's capture) counts as a terminal, without colour."""
    monkeypatch.setattr(_output, "_isatty", lambda stream: True)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.usefixtures("terminal")
def test_a_terminal_shows_a_counter_cleared_before_the_summary(
    project: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAD", "1")
    cloud.fail_names = {"demo-bad-dev"}
    result = run("deploy", code=1)
    out = result.stdout
    summary = out.index("demo/dev: deploy failed in ")
    before, after = out[:summary], out[summary:]
    assert before.endswith("  6/6 done, 1 failed" + CLEAR), "the final count, then cleared"
    assert "/6 done" in before.split("\n")[0], "the counter from the start"
    assert CLEAR not in after and "done" not in after, "no counter after the summary"
    # the permanent lines: one per created resource and one for the failure, none at start
    lines = [chunk.rpartition(CLEAR)[2] for chunk in before.split("\n")[:-1]]
    created = [line for line in lines if "created" in line]
    assert resources(created, r"  ✓ created {rid} \(memory.Thing\) \d+\.\d\ds") == list(RIDS)
    failed = [line for line in lines if "failed" in line]
    assert len(lines) == 6 and len(failed) == 1
    assert failed[0].startswith("  ✗ create failed: bad (memory.Thing) after ")
    assert "creating" not in out
    assert result.output.count("injected failure for 'demo-bad-dev'") == 1


@pytest.mark.usefixtures("terminal")
def test_a_terminal_no_op_prints_only_the_counter_and_the_summary(project: Path) -> None:
    run("deploy")
    again = run("deploy").stdout
    assert again.endswith(": 5 unchanged\n")
    counter, _, summary = again.rpartition(CLEAR)
    assert counter.startswith("  ") and "\n" not in counter, "no line: nothing changed"
    assert counter.endswith("5/5 done")
    assert summary.startswith("demo/dev: deploy succeeded in ")


@pytest.mark.usefixtures("terminal")
def test_progress_with_json_goes_to_stderr(project: Path) -> None:
    result = run("deploy", "--json")
    assert result.stdout.lstrip().startswith("{") and CLEAR not in result.stdout
    assert len(starting_with(result.stderr.replace(CLEAR, "\n"), "  ✓ created ")) == 5


# --- the reporter alone: redraws ------------------------------------------------------------


class Screen(io.StringIO):
    """A captured terminal that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


class Timers:
    """``threading.Timer`` that never fires by itself: ``fire()`` runs what is waiting."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def __call__(self, wait: float, fn: Callable[..., Any]) -> Any:
        timers = self

        class Fake:
            daemon = False
            args: tuple[Any, ...] = ()

            def start(self) -> None:
                timers.waiting.append((fn, self.args))

            def cancel(self) -> None:
                timers.waiting = [w for w in timers.waiting if w[1] != self.args]

        return Fake()

    def fire(self) -> None:
        waiting, self.waiting = self.waiting, []
        for fn, args in waiting:
            fn(*args)


class Terminal:
    """An Output forced to be a terminal, writing stdout and stderr to one Screen, with a
    clock the test moves and timers it fires."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.clock = [1000.0]
        self.timers = Timers()
        self.tty = Screen()
        monkeypatch.setenv("TERM", "xterm")
        monkeypatch.setenv("NO_COLOR", "1")
        monkeypatch.setattr(_output, "_clock", lambda: self.clock[0])
        monkeypatch.setattr(_output, "_Timer", self.timers)

    def output(self) -> _output.Output:
        """Call it in the test itself (pytest puts its own capture back between phases)."""
        self.monkeypatch.setattr(sys, "stdout", self.tty)
        self.monkeypatch.setattr(sys, "stderr", self.tty)
        out = _output.Output()
        out.terminal = True
        return out


@pytest.fixture
def term(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    return Terminal(monkeypatch)


def churn(reporter: _output.ProgressReporter, n: int, clock: list[float], step: float) -> None:
    reporter.expect(n)
    for i in range(n):
        reporter.resource(f"r{i}", "memory.Thing", "create", "start", 0.0, None)
        clock[0] += step
        reporter.resource(f"r{i}", "memory.Thing", "create", "done", 0.01, None)
        reporter.settled()


def test_a_thousand_resources_in_one_instant_are_two_writes(
    term: Terminal,
) -> None:
    out, tty, clock = term.output(), term.tty, term.clock
    churn(out.reporter(), 1000, clock, 0.0)
    text = tty.getvalue()
    assert (tty.writes, tty.flushes) == (2, 2), "the first draw, and the last resource's"
    assert text.startswith("  0/1000 done" + CLEAR)
    assert text.count("ok created r") == 1000
    assert text.endswith("ok created r999 (memory.Thing) 0.01s\n  1000/1000 done")


def test_redraws_are_at_most_ten_a_second(
    term: Terminal,
) -> None:
    out, tty, clock = term.output(), term.tty, term.clock
    churn(out.reporter(), 1000, clock, 0.003)  # 3 s of resources
    draws = tty.getvalue().count(" done")
    assert 25 <= draws <= 3 / _output.REDRAW_INTERVAL + 2, draws
    assert tty.getvalue().count("ok created r") == 1000
    assert tty.getvalue().endswith("  1000/1000 done")


def test_what_waits_is_drawn_by_the_timer(
    term: Terminal,
) -> None:
    out, tty, clock = term.output(), term.tty, term.clock
    timers = term.timers
    reporter = out.reporter()
    reporter.expect(2)
    reporter.resource("slow", "memory.Thing", "create", "start", 0.0, None)
    reporter.resource("fast", "memory.Thing", "update", "start", 0.0, None)
    clock[0] += 0.01
    reporter.resource("fast", "memory.Thing", "update", "done", 0.01, None)
    reporter.settled()
    assert tty.getvalue() == "  0/2 done", "within the interval: nothing yet"
    assert len(timers.waiting) == 1
    clock[0] += _output.REDRAW_INTERVAL
    timers.fire()
    assert tty.getvalue() == (
        f"  0/2 done{CLEAR}  ok updated fast (memory.Thing) 0.01s\n  1/2 done, 1 in progress"
    )


def test_the_counter_is_cleared_before_any_other_line(
    term: Terminal,
) -> None:
    out, tty, clock = term.output(), term.tty, term.clock
    timers = term.timers
    reporter = out.reporter()
    reporter.expect(3)
    reporter.resource("a", "memory.Thing", "create", "start", 0.0, None)
    reporter.resource("a", "memory.Thing", "create", "done", 0.01, None)
    reporter.settled()
    # an interruption's message (journal._interrupt prints through Output.err)
    out.err("stopping (SIGINT): waiting for 1 call in flight")
    assert tty.getvalue() == (
        f"  0/3 done{CLEAR}  ok created a (memory.Thing) 0.01s\n"
        "stopping (SIGINT): waiting for 1 call in flight\n"
    ), "the line that waited first, then the message, on a line of its own"
    assert timers.waiting == [], "nothing is redrawn under the message by itself"
    clock[0] += 1
    reporter.resource("b", "memory.Thing", "delete", "failed", 0.5, "boom")
    reporter.settled()
    out.warn("something")
    _output.clear_live()  # what the error handler does before it prints: nothing to clear
    assert tty.getvalue().endswith(
        f"call in flight\n  x delete failed: b (memory.Thing) after 0.50s: boom\n"
        f"  1/3 done, 1 failed{CLEAR}warning: something\n"
    ), "drawn with the failure; the count that came in the same instant waited"
    clock[0] += 1
    reporter.settled()
    _output.clear_live()
    assert tty.getvalue().endswith(f"warning: something\n  3/3 done, 1 failed{CLEAR}")


def test_no_counter_where_the_cursor_does_not_move(
    term: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "dumb")
    dumb = term.output()
    churn(dumb.reporter(), 2, term.clock, 0.0)
    assert term.tty.getvalue() == (
        "  ok created r0 (memory.Thing) 0.01s\n  ok created r1 (memory.Thing) 0.01s\n"
    )


def test_the_counter_fits_the_terminal_width(
    term: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "25")  # a wrapped counter would leave its first row behind
    reporter = term.output().reporter()
    reporter.expect(1000)
    reporter.resource("a", "memory.Thing", "create", "start", 0.0, None)
    term.clock[0] += 1
    reporter.resource("a", "memory.Thing", "create", "failed", 0.5, "boom")
    assert term.tty.getvalue().endswith("boom\n  0/1000 done, 1 failed")
    assert reporter.counter_text() == "  0/1000 done, 1 failed"
    reporter.resource("b", "memory.Thing", "create", "start", 0.0, None)
    assert reporter.counter_text() == "  0/1000 done, 1 in prog"
