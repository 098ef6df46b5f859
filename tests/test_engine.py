"""The engine against the in-memory test provider: lifecycle, events, isolation, failures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from memory_provider import Thing

import journal
from journal._engine import _run
from journal._journal import Journal
from journal._program.app import RunSettings, run_settings
from journal._projection import load_state, rebuild_and_check


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


def types(jr: Journal, stream: str, run_index: int = -1) -> list[str]:
    """Event types of one run (by index among the stream's runs)."""
    runs: list[list[str]] = []
    for ev in jr.read(stream):
        if ev.payload["type"] == "run.started":
            runs.append([])
        runs[-1].append(
            ev.payload["type"]
            + ("" if "resource" not in ev.payload else ":" + ev.payload["resource"])
        )
    return runs[run_index]


def deploy(path: Path, build: Any, stage: str = "dev", **kw: Any) -> journal.RunResult:
    with journal.app("demo", stage=stage, journal=path, **kw) as app:
        build(app)
    assert app.result is not None
    return app.result


def two_things(app: journal.App) -> None:
    parent = Thing("parent")
    child = Thing("child", parent=parent, tag="v1")
    app.export(parent_id=parent.id, child=child.name)


def test_create_then_noop(journal_path: Path, cloud: mp.Cloud) -> None:
    r1 = deploy(journal_path, two_things)
    assert r1.status == "succeeded"
    assert r1.counts == {"create": 2}
    assert sorted(o["name"] for o in cloud.all()) == ["demo-child-dev", "demo-parent-dev"]
    child = next(o for o in cloud.all() if o["name"] == "demo-child-dev")
    parent = next(o for o in cloud.all() if o["name"] == "demo-parent-dev")
    assert child["parent"] == parent["id"]

    calls_before = len(cloud.calls)
    r2 = deploy(journal_path, two_things)
    assert r2.counts == {"noop": 2}
    assert len(cloud.calls) == calls_before, "a no-op run calls nothing"
    with Journal.open(journal_path) as jr:
        assert types(jr, "demo/dev", 0) == [
            "run.started",
            "resource.create.requested:parent",
            "resource.created:parent",
            "resource.create.requested:child",
            "resource.created:child",
            "outputs.recorded",
            "run.finished",
        ]
        assert types(jr, "demo/dev", 1) == ["run.started", "run.finished"]
        state = load_state(jr, "demo/dev")
        assert state.resources["child"].deps == ["parent"]
        assert state.outputs == {"parent_id": parent["id"], "child": "demo-child-dev"}
        ok, _ = rebuild_and_check(jr, "demo/dev")
        assert ok


def test_update_in_place_and_replace(journal_path: Path, cloud: mp.Cloud) -> None:
    deploy(journal_path, lambda app: Thing("a", tag="one", size=1))
    first_id = cloud.all()[0]["id"]
    r = deploy(journal_path, lambda app: Thing("a", tag="two", size=1))
    assert r.counts == {"update": 1}
    assert cloud.all()[0]["id"] == first_id and cloud.all()[0]["tag"] == "two"
    assert r.changes[0].diff == {"tag": ["one", "two"]}

    r = deploy(journal_path, lambda app: Thing("a", tag="two", size=5))
    assert r.counts == {"replace": 1, "delete": 1}
    objs = cloud.all()
    assert len(objs) == 1 and objs[0]["id"] != first_id and objs[0]["size"] == 5
    with Journal.open(journal_path) as jr:
        assert types(jr, "demo/dev") == [
            "run.started",
            "resource.replace.requested:a",
            "resource.replaced:a",
            "resource.delete.requested:a",
            "resource.deleted:a",
            "run.finished",
        ]
        assert load_state(jr, "demo/dev").resources["a"].retired == []


def test_replacing_a_parent_replaces_its_child(journal_path: Path, cloud: mp.Cloud) -> None:
    deploy(journal_path, lambda app: Thing("child", parent=Thing("parent", size=1)))
    r = deploy(journal_path, lambda app: Thing("child", parent=Thing("parent", size=2)))
    assert r.counts == {"replace": 2, "delete": 2}
    deletes = [name for op, name in cloud.calls if op == "delete"]
    assert deletes == ["demo-child-dev", "demo-parent-dev"], "old child goes before old parent"
    assert len(cloud.all()) == 2


def test_orphans_are_deleted_and_destroy_goes_in_reverse_order(
    journal_path: Path, cloud: mp.Cloud
) -> None:
    def three(app: journal.App) -> None:
        p = Thing("parent")
        Thing("child", parent=p)
        Thing("loner")

    deploy(journal_path, three)
    r = deploy(journal_path, two_things)  # loner is no longer declared
    assert r.counts["delete"] == 1
    assert "demo-loner-dev" not in [o["name"] for o in cloud.all()]

    with Journal.open(journal_path) as jr:
        from journal._engine import Run

        run = Run(jr, "demo", "dev", command="destroy")
        run.begin()
        result = run.destroy()
    assert result.status == "succeeded"
    assert cloud.all() == []
    deletes = [name for op, name in cloud.calls if op == "delete"]
    assert deletes[-2:] == ["demo-child-dev", "demo-parent-dev"]


def test_stage_isolation(journal_path: Path, cloud: mp.Cloud) -> None:
    deploy(journal_path, two_things, stage="dev")
    deploy(journal_path, two_things, stage="prod")
    with Journal.open(journal_path) as jr:
        prod_events = [e.hash for e in jr.read("demo/prod")]
    deploy(journal_path, lambda app: None, stage="dev")  # finalize: dev's orphans go
    names = sorted(o["name"] for o in cloud.all())
    assert names == ["demo-child-prod", "demo-parent-prod"]
    with Journal.open(journal_path) as jr:
        assert [e.hash for e in jr.read("demo/prod")] == prod_events
        assert load_state(jr, "demo/dev").resources == {}


def test_program_that_raises_deletes_nothing(journal_path: Path, cloud: mp.Cloud) -> None:
    deploy(journal_path, two_things)

    def broken(app: journal.App) -> None:
        Thing("parent")
        raise RuntimeError("boom halfway")

    with pytest.raises(RuntimeError, match="boom halfway"):
        deploy(journal_path, broken)
    assert len(cloud.all()) == 2, "child was not declared, but nothing is deleted"
    with Journal.open(journal_path) as jr:
        finished = [e.payload for e in jr.read("demo/dev") if e.payload["type"] == "run.finished"]
        assert finished[-1]["status"] == "failed"
        assert "boom halfway" in finished[-1]["failures"][0]["error"]
    r = deploy(journal_path, two_things)
    assert r.status == "succeeded" and r.counts == {"noop": 2}


def test_failed_resource_blocks_orphan_removal_and_names_itself(
    journal_path: Path, cloud: mp.Cloud
) -> None:
    deploy(journal_path, lambda app: (Thing("keep"), Thing("old")))
    cloud.fail_names = {"demo-bad-dev"}
    with pytest.raises(journal.RunError, match="bad: injected failure"):
        deploy(journal_path, lambda app: (Thing("keep"), Thing("bad")))
    assert "demo-old-dev" in [o["name"] for o in cloud.all()], "orphan kept: the run failed"
    cloud.fail_names = set()
    r = deploy(journal_path, lambda app: (Thing("keep"), Thing("bad")))
    assert r.counts == {"noop": 1, "create": 1, "delete": 1}


def test_dependents_of_a_failed_resource_are_skipped(journal_path: Path, cloud: mp.Cloud) -> None:
    cloud.fail_names = {"demo-parent-dev"}
    with pytest.raises(journal.RunError) as info:
        deploy(journal_path, lambda app: Thing("child", parent=Thing("parent")))
    text = str(info.value)
    assert "parent: injected failure" in text and "child: skipped: 'parent' failed" in text
    assert cloud.count("create") == 1


def test_validation_error_sends_nothing(journal_path: Path, cloud: mp.Cloud) -> None:
    def bad(app: journal.App) -> None:
        Thing("ok")
        Thing("bad", size=0)

    with pytest.raises(journal.ValidationError, match="bad: field 'size': must be a whole number"):
        deploy(journal_path, bad)
    assert cloud.calls == []


def test_delete_protection_forgets_and_policy_change_alone_replaces_nothing(
    journal_path: Path, cloud: mp.Cloud
) -> None:
    deploy(journal_path, lambda app: Thing("db", delete=False))
    r = deploy(journal_path, lambda app: Thing("db", delete=True))
    assert r.counts == {"noop": 1}
    assert cloud.count("create") == 1 and cloud.count("delete") == 0
    with Journal.open(journal_path) as jr:
        assert types(jr, "demo/dev") == [
            "run.started",
            "resource.policy.changed:db",
            "run.finished",
        ]
    deploy(journal_path, lambda app: Thing("db", delete=False))
    r = deploy(journal_path, lambda app: None)
    assert r.counts == {"forget": 1}
    assert len(cloud.all()) == 1, "protected object kept"
    with Journal.open(journal_path) as jr:
        assert load_state(jr, "demo/dev").resources == {}


def test_adopt_takes_over_an_existing_object(journal_path: Path, cloud: mp.Cloud) -> None:
    cloud.put({"id": "th_existing", "name": "demo-x-dev", "size": 1, "tag": None, "parent": None})
    r = deploy(journal_path, lambda app: Thing("x", adopt=True))
    assert r.counts == {"adopt": 1}
    assert cloud.count("create") == 0
    with Journal.open(journal_path) as jr:
        assert load_state(jr, "demo/dev").resources["x"].outputs["id"] == "th_existing"  # type: ignore[index]


def test_plan_writes_nothing_and_calls_nothing(journal_path: Path, cloud: mp.Cloud) -> None:
    deploy(journal_path, lambda app: (Thing("a", tag="x"), Thing("gone")))
    calls = len(cloud.calls)
    with Journal.open(journal_path) as jr:
        head = jr.head()
    settings = RunSettings(command="plan")
    with run_settings(settings):
        deploy(journal_path, lambda app: (Thing("a", tag="y"), Thing("new", parent=Thing("p"))))
    plan = settings.results[0]
    assert plan.status == "planned"
    assert {c.resource: c.action for c in plan.changes} == {
        "a": "update",
        "gone": "delete",
        "new": "create",
        "p": "create",
    }
    assert len(cloud.calls) == calls
    with Journal.open(journal_path) as jr:
        assert jr.head() == head


def test_many_resources_run_concurrently(journal_path: Path, cloud: mp.Cloud) -> None:
    # every call is held until 32 are in flight at once: the run succeeds only if the engine
    # keeps that many going (no timing involved; a stuck engine fails after the gate's wait)
    cloud.gate = 32

    def many(app: journal.App) -> None:
        for i in range(200):
            Thing(f"t{i}")

    r = deploy(journal_path, many, concurrency=64)
    assert r.counts == {"create": 200}, r.failures[:3]
    assert 32 <= cloud.max_in_flight <= 64


def test_concurrency_caps_calls_in_flight(journal_path: Path, cloud: mp.Cloud) -> None:
    # a gate above the cap never opens: each call fails after the gate's wait, having seen
    # at most `concurrency` calls in flight
    cloud.gate, cloud.gate_timeout = 9, 1.0

    def some(app: journal.App) -> None:
        for i in range(20):
            Thing(f"t{i}")

    with pytest.raises(journal.RunError):
        deploy(journal_path, some, concurrency=8)
    assert cloud.max_in_flight == 8


class _CountingPool(_run._Pool):
    submitted = 0
    prestarted: list[int] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        type(self).submitted += 1
        return super().submit(fn, *args, **kwargs)

    def prestart(self, count: int) -> None:
        type(self).prestarted.append(count)
        super().prestart(count)
        assert len(self._threads) >= min(count, self._max_workers)


def test_unchanged_resources_are_decided_without_the_pool(
    journal_path: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run hands the pool only what calls a provider or appends an event: an unchanged
    resource is decided on the thread that finds it ready, and a long chain of them (each
    ready once the previous one is decided) nests no calls."""
    monkeypatch.setattr(_run, "_Pool", _CountingPool)

    def chain(tag: str) -> Any:
        def build(app: journal.App) -> None:
            prev = Thing("t0", tag=tag)
            for i in range(1, 400):
                prev = Thing(f"t{i}", parent=prev, tag=tag if i == 399 else None)

        return build

    assert deploy(journal_path, chain("v1")).counts == {"create": 400}
    _CountingPool.submitted = 0
    calls = len(cloud.calls)
    r = deploy(journal_path, chain("v1"))
    assert r.counts == {"noop": 400}
    assert (_CountingPool.submitted, len(cloud.calls)) == (0, calls)
    # two changed (the head and the tail of the chain): two tasks on the pool
    r = deploy(journal_path, chain("v2"))
    assert r.counts == {"noop": 398, "update": 2}
    assert _CountingPool.submitted == 2
    assert [op for op, _ in cloud.calls[calls:]] == ["update", "update"]


def test_crash_between_intent_and_outcome_is_resolved(tmp_path: Path, journal_path: Path) -> None:
    remote = tmp_path / "cloud.db"
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import journal
            from memory_provider import Thing
            with journal.app("demo", stage="dev", journal={str(journal_path)!r}):
                Thing("slow")
            """
        )
    )
    env = dict(os.environ, MEMORY_CLOUD=str(remote), MEMORY_AFTER_CREATE="30")
    proc = subprocess.Popen([sys.executable, str(program)], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if remote.exists() and mp.Cloud(str(remote)).by_name("demo-slow-dev"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the object was never created")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Journal.open(journal_path) as jr:
        assert load_state(jr, "demo/dev").resources["slow"].pending is not None

    cloud = mp.reset_cloud(str(remote))
    r = deploy(journal_path, lambda app: Thing("slow"))
    assert r.status == "succeeded"
    assert cloud.count("create") == 0, "nothing is created twice"
    assert len(cloud.by_name("demo-slow-dev")) == 1
    with Journal.open(journal_path) as jr:
        kinds = types(jr, "demo/dev")
        assert kinds[:2] == ["run.started", "resource.recovered:slow"]
        state = load_state(jr, "demo/dev")
        assert state.resources["slow"].pending is None and state.resources["slow"].exists
        jr.verify()


def test_no_op_runs_leave_the_snapshot_until_the_journal_moves_on(journal_path: Path) -> None:
    """A run that changed something ends with a snapshot; a no-op run (only its start and
    end recorded) does not write one until SNAPSHOT_EVERY events have passed it; the state
    loads the same either way."""
    from journal._projection import SNAPSHOT_EVERY

    def snapshot_seq() -> int:
        with Journal.open(journal_path) as jr:
            snap = jr.latest_snapshot("demo/dev")
            assert snap is not None
            return snap[0]

    deploy(journal_path, two_things)
    first = snapshot_seq()
    with Journal.open(journal_path) as jr:
        assert first == jr.head()[0]
    runs = 0
    while snapshot_seq() == first:
        assert deploy(journal_path, two_things).counts == {"noop": 2}
        runs += 1
        assert runs <= SNAPSHOT_EVERY // 2, "no snapshot after SNAPSHOT_EVERY events"
    # two events per no-op run: the snapshot comes with the run that reaches SNAPSHOT_EVERY
    assert runs == SNAPSHOT_EVERY // 2
    with Journal.open(journal_path) as jr:
        assert snapshot_seq() == jr.head()[0]
        ok, _ = rebuild_and_check(jr, "demo/dev")
        assert ok


def test_a_state_read_for_its_binding_is_handed_to_the_run_once(journal_path: Path) -> None:
    """`load_state(..., share=True)` (the CLI reading a stage's binding) keeps the state for
    the next load of the same stream at the same head, once; another head loads afresh."""
    deploy(journal_path, two_things)
    with Journal.open(journal_path) as jr:
        shared = load_state(jr, "demo/dev", share=True)
        assert load_state(jr, "demo/dev") is shared
        again = load_state(jr, "demo/dev")
        assert again is not shared and again.to_json() == shared.to_json()
        load_state(jr, "demo/dev", share=True)
    deploy(journal_path, two_things)  # moves the head: the kept state is stale
    with Journal.open(journal_path) as jr:
        fresh = load_state(jr, "demo/dev")
        assert fresh.seq == jr.head()[0]
        ok, _ = rebuild_and_check(jr, "demo/dev")
        assert ok


class Counting:
    """A reporter that also counts (``journal._results.Progress``)."""

    def __init__(self) -> None:
        self.expected = 0
        self.settled_count = 0
        self.lines: list[tuple[str, str, str]] = []

    def resource(
        self, resource: str, type_name: str, action: str, phase: str, s: float, e: str | None
    ) -> None:
        self.lines.append((resource, action, phase))

    def message(self, text: str) -> None:
        pass

    def expect(self, count: int) -> None:
        self.expected += count

    def settled(self) -> None:
        self.settled_count += 1


def test_a_counting_reporter_is_told_every_resource_that_settles(
    journal_path: Path, cloud: mp.Cloud
) -> None:
    def build(app: journal.App) -> None:
        Thing("child", parent=Thing("parent"))
        Thing("ok")
        Thing("same")

    def counted(build: Any) -> Counting:
        reporter = Counting()
        with run_settings(RunSettings(reporter=reporter)), contextlib.suppress(journal.RunError):
            deploy(journal_path, build)
        return reporter

    deploy(journal_path, lambda app: (Thing("same"), Thing("old")))
    cloud.fail_names = {"demo-parent-dev"}
    # a failure, a skip (its dependent), a creation, a no-op: four settle; no orphan deleted
    failing = counted(build)
    assert (failing.expected, failing.settled_count) == (4, 4)
    assert ("same", "noop", "done") not in failing.lines, "an unchanged resource: no line"
    cloud.fail_names = set()
    # then the orphan's deletion is counted too, once the declared ones settled
    fixed = counted(build)
    assert (fixed.expected, fixed.settled_count) == (5, 5)
    assert ("old", "delete", "done") in fixed.lines

    with Journal.open(journal_path) as jr:
        from journal._engine import Run

        reporter = Counting()
        run = Run(jr, "demo", "dev", command="destroy", reporter=reporter)
        run.begin()
        run.destroy()
    assert (reporter.expected, reporter.settled_count) == (4, 4)


def test_the_pool_starts_its_threads_before_the_work_goes_to_it(
    journal_path: Path, cloud: mp.Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's tasks for the pool are counted before the first is queued, and as many
    threads (at most the cap) are started then, while none is busy."""
    monkeypatch.setattr(_run, "_Pool", _CountingPool)
    _CountingPool.prestarted = []

    def many(app: journal.App) -> None:
        for i in range(40):
            Thing(f"t{i}")

    assert deploy(journal_path, many, concurrency=16).counts == {"create": 40}
    assert _CountingPool.prestarted == [40]
