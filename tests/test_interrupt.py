"""Interruption and failure paths of the engine, in process, against the memory provider.

- A *stop* (first SIGINT/SIGTERM) launches nothing new, lets the calls in flight finish and
  record their outcomes, and ends the run ``interrupted``: nothing is left pending, and the
  next run creates the rest, nothing twice.
- An *abandon* (second signal) stops waiting: the intents of the calls in flight stay
  pending, their late answers are never recorded, and the next run resolves them first.
- Every failure path appends a valid event (a failed delete used to crash on its own event).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from memory_provider import Thing, ThingProvider

import journal
from journal._errors import (
    AuthenticationError,
    ProviderError,
    RunInterrupted,
    ServerError,
    TransportError,
)
from journal._events import EVENT_TYPES, make_event, upcast
from journal._interrupt import Interruption, reset
from journal._journal import Journal
from journal._projection import load_state, rebuild_and_check

N = 40


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def intr() -> Iterator[Interruption]:
    yield reset()
    reset()


def many(app: journal.App) -> None:
    for i in range(N):
        Thing(f"t{i}")


def deploy(path: Path, build: Any = many, **kw: Any) -> journal.RunResult:
    with journal.app("demo", stage="dev", journal=path, concurrency=8, **kw) as app:
        build(app)
    assert app.result is not None
    return app.result


def payloads(path: Path) -> list[dict[str, Any]]:
    with Journal.open(path) as jr:
        return [e.payload for e in jr.read("demo/dev")]


def assert_valid(events: list[dict[str, Any]]) -> None:
    """Every event is of a known type with all the fields its type requires."""
    for p in events:
        current = upcast(p)
        fields = {k: v for k, v in current.items() if k not in ("type", "v")}
        make_event(current["type"], **fields)  # raises if a required field is missing


def test_a_stop_lets_calls_in_flight_finish_and_launches_nothing_new(
    journal_path: Path, cloud: mp.Cloud, intr: Interruption, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    lock = threading.Lock()
    real_create = ThingProvider.create

    def create(self: ThingProvider, props: Any, ctx: Any) -> Any:
        with lock:
            started.append(props.name)
            if len(started) == 10:
                intr.stop()  # the first Ctrl-C, while 8 calls are in flight
        time.sleep(0.05)
        return real_create(self, props, ctx)

    monkeypatch.setattr(ThingProvider, "create", create)
    with pytest.raises(RunInterrupted):
        deploy(journal_path)
    events = payloads(journal_path)
    assert_valid(events)
    finished = events[-1]
    assert finished["type"] == "run.finished" and finished["status"] == "interrupted"
    created = {p["resource"] for p in events if p["type"] == "resource.created"}
    intents = {p["resource"] for p in events if p["type"] == "resource.create.requested"}
    assert intents == created, "every call launched recorded its outcome"
    assert len(created) == len(started) == len(cloud.all()), "no call after the stop"
    assert 10 <= len(created) < N
    assert finished["pending"] == [] and len(finished["not_started"]) == N - len(created)
    with Journal.open(journal_path) as jr:
        assert load_state(jr, "demo/dev").pending() == []

    monkeypatch.setattr(ThingProvider, "create", real_create)
    reset()
    again = deploy(journal_path)
    assert again.counts == {"create": N - len(created), "noop": len(created)}
    assert len(cloud.all()) == N and len({o["name"] for o in cloud.all()}) == N


def test_an_abandon_keeps_intents_pending_and_records_no_late_answer(
    journal_path: Path, cloud: mp.Cloud, intr: Interruption, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    blocked: list[str] = []
    lock = threading.Lock()
    count = [0]
    real_create = ThingProvider.create

    def create(self: ThingProvider, props: Any, ctx: Any) -> Any:
        with lock:
            count[0] += 1
            late = count[0] > 10
            if late:
                blocked.append(props.name)
        if late:
            gate.wait(60)  # answers only after the run was abandoned
        return real_create(self, props, ctx)

    def interrupt_twice() -> None:
        deadline = time.monotonic() + 60
        while len(blocked) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        intr.stop()
        intr.abandon()

    monkeypatch.setattr(ThingProvider, "create", create)
    threading.Thread(target=interrupt_twice, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        deploy(journal_path)
    events = payloads(journal_path)
    assert_valid(events)
    finished = events[-1]
    assert finished["type"] == "run.finished" and finished["status"] == "interrupted"
    assert finished["abandoned"] is True
    assert sorted(finished["pending"]) == sorted(b.split("-")[1] for b in blocked)
    assert len(blocked) == 8

    gate.set()  # the abandoned calls answer now: nothing of it is recorded
    deadline = time.monotonic() + 30
    while len(cloud.all()) < 18 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert len(cloud.all()) == 18
    assert payloads(journal_path) == events, "a late answer is never recorded"

    monkeypatch.setattr(ThingProvider, "create", real_create)
    reset()
    creates_before = cloud.count("create")
    again = deploy(journal_path)
    assert again.counts == {"recover": 8, "noop": 18, "create": N - 18}
    assert cloud.count("create") - creates_before == N - 18, "nothing is created twice"
    assert len(cloud.all()) == N and len({o["name"] for o in cloud.all()}) == N
    with Journal.open(journal_path) as jr:
        jr.verify()
        ok, state = rebuild_and_check(jr, "demo/dev")
        assert ok and state.pending() == []


def test_a_stop_before_the_run_begins_sends_nothing(
    journal_path: Path, cloud: mp.Cloud, intr: Interruption
) -> None:
    intr.stop()
    with pytest.raises(RunInterrupted):
        deploy(journal_path)
    assert cloud.calls == []
    events = payloads(journal_path)
    assert [p["type"] for p in events] == ["run.started", "run.finished"]
    assert sorted(events[-1]["not_started"]) == sorted(f"t{i}" for i in range(N))


# --- every failure path appends a valid event -------------------------------------------------


def one(app: journal.App, tag: str = "a", size: int = 1) -> None:
    Thing("x", tag=tag, size=size)


def test_every_failure_path_appends_a_valid_event(
    journal_path: Path, cloud: mp.Cloud, intr: Interruption
) -> None:
    seen: set[str] = set()

    def new_events(before: int) -> list[dict[str, Any]]:
        events = payloads(journal_path)
        assert_valid(events)
        fresh = events[before:]
        seen.update(p["type"] for p in fresh)
        return fresh

    # create failed
    cloud.fail_names = {"demo-x-dev"}
    with pytest.raises(journal.RunError, match="injected failure"):
        deploy(journal_path, one)
    cloud.fail_names = set()
    deploy(journal_path, one)
    # update failed, replace failed
    cloud.fail_names = {"demo-x-dev"}
    with pytest.raises(journal.RunError):
        deploy(journal_path, lambda app: one(app, tag="b"))
    with pytest.raises(journal.RunError):
        deploy(journal_path, lambda app: one(app, size=2))
    cloud.fail_names = set()
    new_events(0)
    assert {"resource.create.failed", "resource.update.failed", "resource.replace.failed"} <= seen

    # delete failed: a 403 and a 5xx; the real error is reported and recorded
    patch = pytest.MonkeyPatch()
    for error in (
        AuthenticationError("forbidden", status=403, method="DELETE", path="/v1/things/x"),
        ServerError("unavailable", status=503, method="DELETE", path="/v1/things/x"),
    ):

        def refuse(self: ThingProvider, props: Any, outputs: Any, ctx: Any, e: Any = error) -> None:
            raise e

        patch.setattr(ThingProvider, "delete", refuse)
        before = len(payloads(journal_path))
        with pytest.raises(journal.RunError, match=str(error.status)):
            deploy(journal_path, lambda app: None)
        failed = [p for p in new_events(before) if p["type"] == "resource.delete.failed"]
        assert len(failed) == 1 and failed[0]["target"] == "current"
        assert str(error.status) in failed[0]["error"]
        with Journal.open(journal_path) as jr:
            assert "x" in load_state(jr, "demo/dev").resources, "a failed delete forgets nothing"

    # ambiguous create (the answer was lost), then a recovery that fails too
    patch.undo()
    deploy(journal_path, lambda app: None)  # x is deleted

    def lost(self: ThingProvider, props: Any, ctx: Any) -> Any:
        raise TransportError("the connection dropped")

    def unreadable(self: ThingProvider, props: Any, ctx: Any, **kw: Any) -> Any:
        raise ProviderError("the API is down", operation="read")

    patch.setattr(ThingProvider, "create", lost)
    patch.setattr(ThingProvider, "find", unreadable)
    before = len(payloads(journal_path))
    with pytest.raises(journal.RunError):
        deploy(journal_path, one)
    ambiguous = [p for p in new_events(before) if p["type"] == "resource.create.failed"]
    assert ambiguous and ambiguous[0]["ambiguous"] is True
    before = len(payloads(journal_path))
    # the unresolved resource fails this run (and stays pending); the others would go on
    with pytest.raises(journal.RunError, match="could not be resolved: the API is down"):
        deploy(journal_path, one)
    fresh = new_events(before)
    assert [p["type"] for p in fresh] == [
        "run.started",
        "resource.recover.failed",
        "run.finished",
    ]
    assert fresh[-1]["status"] == "failed"

    # interrupted
    patch.undo()
    intr.stop()
    before = len(payloads(journal_path))
    with pytest.raises(RunInterrupted):
        deploy(journal_path, one)
    assert new_events(before)[-1]["status"] == "interrupted"
    reset()
    deploy(journal_path, one)
    assert len(cloud.all()) == 1

    failure_types = {name for name in EVENT_TYPES if name.endswith(".failed")}
    assert failure_types <= seen, f"failure events never emitted: {failure_types - seen}"


def test_the_grace_period_bounds_the_wait_for_calls_in_flight(
    journal_path: Path,
    cloud: mp.Cloud,
    intr: Interruption,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One SIGINT, and calls that never answer: after JOURNAL_STOP_GRACE the run is
    abandoned as if the signal came twice (the handlers are the CLI's, in this process)."""
    import os
    import signal

    monkeypatch.setenv("JOURNAL_STOP_GRACE", "0.5")
    gate = threading.Event()
    blocked: list[str] = []
    lock = threading.Lock()
    real_create = ThingProvider.create

    def create(self: ThingProvider, props: Any, ctx: Any) -> Any:
        with lock:
            blocked.append(props.name)
        gate.wait(60)
        return real_create(self, props, ctx)

    def signal_once() -> None:
        deadline = time.monotonic() + 60
        while len(blocked) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ThingProvider, "create", create)
    messages: list[str] = []
    threading.Thread(target=signal_once, daemon=True).start()
    with intr.installed(on_message=messages.append), pytest.raises(KeyboardInterrupt):
        deploy(journal_path)
    gate.set()
    assert intr.signals == 2 and intr.abandoned, "the grace timer abandoned the run"
    assert any("at most 0.5s" in m for m in messages)
    assert "the grace period is over" in messages
    finished = payloads(journal_path)[-1]
    assert finished["type"] == "run.finished" and finished["abandoned"] is True
    assert len(finished["pending"]) == 8


def test_the_line_after_an_interruption_repeats_what_was_given() -> None:
    """The command it says to type finishes the same run: same program, journal, stage, app
    and API (a rollback of a local prod stage must not go to the default stage)."""
    from journal.cli._commands_common import State
    from journal.cli._commands_run import _again

    state = State(journal="/srv/j.db", stage="prod")
    assert (
        _again("rollback", state, True, "12", app="shop")
        == "journal rollback 12 --journal /srv/j.db --stage prod --app shop --local"
    )
    assert _again("deploy", State(), False, program=Path("apps/my app")) == (
        "journal deploy 'apps/my app'"
    )
    assert _again("dev", State(), False, "--no-local") == "journal dev --no-local"
