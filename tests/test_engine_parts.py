"""The engine's parts on their own: ``decide`` (pure) and the scheduler."""

from __future__ import annotations

import ast
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from memory_provider import Thing

import journal
from journal._engine import Run
from journal._engine._decide import Decision, Wanted, decide
from journal._engine._schedule import (
    DependencyCycle,
    DependencyFailed,
    Scheduler,
    check_acyclic,
    delete_graph,
)
from journal._errors import RunInterrupted
from journal._journal import Journal
from journal._projection import ResourceState


def recorded(
    props: dict[str, Any],
    *,
    type_name: str = "test.Thing",
    exists: bool = True,
    delete: bool = True,
) -> ResourceState:
    return ResourceState(
        id="db",
        type=type_name,
        props=props,
        outputs={"id": "x1"} if exists else None,
        delete=delete,
    )


UPDATABLE = frozenset({"tag", "bindings"})

DECIDE_CASES: list[tuple[str, ResourceState | None, Wanted | None, Decision]] = [
    (
        "never recorded: create",
        None,
        Wanted("test.Thing", {"name": "a"}),
        Decision("create", {"name": [None, "a"]}),
    ),
    (
        "never recorded, adopt asked: adopt",
        None,
        Wanted("test.Thing", {"name": "a"}, adopt=True),
        Decision("adopt", {"name": [None, "a"]}),
    ),
    (
        "recorded but its object is gone: create, diffed from nothing",
        recorded({"name": "a"}, exists=False),
        Wanted("test.Thing", {"name": "a"}),
        Decision("create", {"name": [None, "a"]}),
    ),
    (
        "same props: noop",
        recorded({"name": "a", "tag": "v1"}),
        Wanted("test.Thing", {"name": "a", "tag": "v1"}, updatable=UPDATABLE),
        Decision("noop", {}),
    ),
    (
        "an updatable field changed: update",
        recorded({"name": "a", "tag": "v1"}),
        Wanted("test.Thing", {"name": "a", "tag": "v2"}, updatable=UPDATABLE),
        Decision("update", {"tag": ["v1", "v2"]}),
    ),
    (
        "a field that is not updatable changed: replace",
        recorded({"name": "a", "tag": "v1"}),
        Wanted("test.Thing", {"name": "b", "tag": "v1"}, updatable=UPDATABLE),
        Decision("replace", {"name": ["a", "b"]}),
    ),
    (
        "both kinds changed: replace",
        recorded({"name": "a", "tag": "v1"}),
        Wanted("test.Thing", {"name": "b", "tag": "v2"}, updatable=UPDATABLE),
        Decision("replace", {"name": ["a", "b"], "tag": ["v1", "v2"]}),
    ),
    (
        "a field removed that is not updatable: replace",
        recorded({"name": "a", "region": "eu"}),
        Wanted("test.Thing", {"name": "a"}, updatable=UPDATABLE),
        Decision("replace", {"region": ["eu", None]}),
    ),
    (
        "a change deep inside an updatable field: update, diffed by path",
        recorded({"name": "a", "bindings": {"DB": {"id": "1"}}}),
        Wanted("test.Thing", {"name": "a", "bindings": {"DB": {"id": "2"}}}, updatable=UPDATABLE),
        Decision("update", {"bindings.DB.id": ["1", "2"]}),
    ),
    (
        "another type under the same id: replace even with equal props",
        recorded({"name": "a"}, type_name="test.Other"),
        Wanted("test.Thing", {"name": "a"}, updatable=UPDATABLE),
        Decision("replace", {}),
    ),
    (
        "no longer declared: delete",
        recorded({"name": "a"}),
        None,
        Decision("delete", {"name": ["a", None]}),
    ),
    (
        "no longer declared, protected: forget",
        recorded({"name": "a"}, delete=False),
        None,
        Decision("forget", {"name": ["a", None]}),
    ),
]


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [case[1:] for case in DECIDE_CASES],
    ids=[case[0] for case in DECIDE_CASES],
)
def test_decide(current: ResourceState | None, desired: Wanted | None, expected: Decision) -> None:
    assert decide(current, desired) == expected


def test_decide_masks_secrets_in_the_diff() -> None:
    secret = {"$secret": "hunter2"}
    got = decide(recorded({"password": secret}), Wanted("test.Thing", {"password": "x"}))
    assert "hunter2" not in repr(got.diff)


def test_decide_needs_something_to_compare() -> None:
    with pytest.raises(ValueError, match="recorded state, a declaration"):
        decide(None, None)


def test_decide_does_not_touch_its_inputs() -> None:
    cur = recorded({"name": "a", "tag": "v1"})
    want = Wanted("test.Thing", {"name": "a", "tag": "v2"}, updatable=UPDATABLE)
    before = (cur.to_json(), dict(want.props))
    decide(cur, want)
    assert (cur.to_json(), dict(want.props)) == before


# --- the scheduler -------------------------------------------------------------------


class Recorder:
    """Tasks that note when they start and end; those in ``fail`` raise."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, key: str) -> str:
        with self.lock:
            self.log.append(("start", key))
        if key in self.fail:
            with self.lock:
                self.log.append(("end", key))
            raise RuntimeError(f"{key} broke")
        with self.lock:
            self.log.append(("end", key))
        return f"done {key}"

    def position(self, kind: str, key: str) -> int:
        return self.log.index((kind, key))


def run_batch(
    graph: dict[str, list[str]],
    work: Recorder,
    *,
    futures: dict[str, Future[Any]] | None = None,
    workers: int = 4,
) -> dict[str, Future[Any]]:
    futures = futures if futures is not None else {}
    for key in graph:
        futures[key] = Future()
    with ThreadPoolExecutor(workers) as pool:
        Scheduler(pool, lambda: False).start(graph, futures, work)
        wait([futures[k] for k in graph], timeout=30)
    return futures


#: db <- (api, worker) <- site; cache alone
DIAMOND = {
    "db": [],
    "cache": [],
    "api": ["db"],
    "worker": ["db", "cache"],
    "site": ["api", "worker"],
}


@pytest.mark.parametrize("workers", [1, 4])
def test_each_task_starts_after_what_it_waits_for(workers: int) -> None:
    work = Recorder()
    futures = run_batch(DIAMOND, work, workers=workers)
    assert {k: f.result() for k, f in futures.items()} == {k: f"done {k}" for k in DIAMOND}
    for key, deps in DIAMOND.items():
        for dep in deps:
            assert work.position("end", dep) < work.position("start", key), (dep, key, work.log)


def test_a_failed_dependency_skips_what_waits_for_it_only() -> None:
    futures = run_batch(DIAMOND, Recorder(fail=frozenset({"api"})))
    assert isinstance(futures["api"].exception(), RuntimeError)
    skipped = futures["site"].exception()
    assert isinstance(skipped, DependencyFailed)
    assert (str(skipped), skipped.resource) == ("skipped: 'api' failed", "site")
    assert [futures[k].result() for k in ("db", "cache", "worker")] == [
        "done db",
        "done cache",
        "done worker",
    ]


def test_a_task_waits_for_an_earlier_batch() -> None:
    work = Recorder()
    futures = run_batch({"db": []}, work)
    run_batch({"api": ["db"], "site": ["api"]}, work, futures=futures)
    assert futures["site"].result() == "done site"
    # an earlier task not done yet: the later batch starts when it is
    held: Future[Any] = Future()
    futures["slow"] = held
    with ThreadPoolExecutor(2) as pool:
        futures["late"] = Future()
        Scheduler(pool, lambda: False).start({"late": ["slow"]}, futures, work)
        assert not futures["late"].done()
        held.set_result("done slow")
        assert futures["late"].result(timeout=30) == "done late"
    assert work.position("start", "late") > work.position("end", "site")


def test_nothing_starts_once_the_run_stops_launching() -> None:
    work = Recorder()
    futures = {"a": Future[Any]()}
    with ThreadPoolExecutor(2) as pool:
        Scheduler(pool, lambda: True).start({"a": []}, futures, work)
    assert isinstance(futures["a"].exception(), RunInterrupted)
    assert work.log == []


def test_deletes_run_dependents_first() -> None:
    # the site depends on the api, which depends on the db; the db's retired object too
    tasks = {
        "db#current": ("db", []),
        "db#retired0": ("db", []),
        "api#current": ("api", ["db"]),
        "site#current": ("site", ["api", "db"]),
    }
    graph = delete_graph(tasks)
    assert graph == {
        "db#current": ["api#current", "site#current"],
        "db#retired0": ["api#current", "site#current"],
        "api#current": ["site#current"],
        "site#current": [],
    }
    work = Recorder()
    run_batch(graph, work)
    assert work.position("end", "site#current") < work.position("start", "api#current")
    assert work.position("end", "api#current") < work.position("start", "db#current")
    assert work.position("end", "api#current") < work.position("start", "db#retired0")


def test_a_cycle_is_refused_naming_its_resources() -> None:
    graph = delete_graph(
        {"a#current": ("a", ["b"]), "b#current": ("b", ["c"]), "c#current": ("c", ["a"])}
    )
    with pytest.raises(DependencyCycle) as caught:
        check_acyclic(graph)
    assert sorted(caught.value.resources) == ["a", "b", "c"]
    assert "dependency cycle" in str(caught.value)
    for name in ("a", "b", "c"):
        assert name in str(caught.value)
    assert "#" not in str(caught.value)
    # and the scheduler starts none of them
    work = Recorder()
    futures = {k: Future[Any]() for k in graph}
    with ThreadPoolExecutor(2) as pool, pytest.raises(DependencyCycle):
        Scheduler(pool, lambda: False).start(graph, futures, work)
    assert work.log == []


def test_a_run_with_recorded_deps_in_a_cycle_deletes_nothing_and_names_them(
    journal_path: Path,
) -> None:
    """Declarations cannot form a cycle (a dependency is declared first), but a journal's
    recorded deps can (edited, or written by a bug): destroy refuses instead of waiting."""
    cloud = mp.reset_cloud()
    with journal.app("demo", stage="dev", journal=journal_path) as app:
        parent = Thing("parent")
        Thing("child", parent=parent)
    assert app.result is not None and app.result.status == "succeeded"
    with Journal.open(journal_path) as jr:
        run = Run(jr, "demo", "dev", command="destroy")
        run.begin()
        run.state.resources["parent"].deps = ["child"]
        result = run.destroy()
    assert result.status == "failed"
    assert sorted(r for r, _ in result.failures) == ["child", "parent"]
    assert all("dependency cycle" in error for _, error in result.failures)
    assert len(cloud.all()) == 2
    assert not [op for op, _ in cloud.calls if op == "delete"]


def test_the_engine_parts_do_not_import_the_run() -> None:
    """The parts point one way: ``_run`` imports them, never the reverse."""
    root = Path(journal.__file__).parent / "_engine"
    for name in ("_decide.py", "_schedule.py", "_lifecycle.py", "_recovery.py"):
        found = {
            "." * node.level + (node.module or "")
            for node in ast.walk(ast.parse((root / name).read_text()))
            if isinstance(node, ast.ImportFrom) and node.level
        }
        assert not found & {".", "._run"}, (name, found)


def test_default_concurrency_follows_the_environment_and_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from journal._engine import _run
    from journal._errors import UsageError

    monkeypatch.delenv("JOURNAL_CONCURRENCY", raising=False)
    monkeypatch.setattr(_run, "_open_files_limit", lambda: None)
    assert _run.default_concurrency() == _run.DEFAULT_CONCURRENCY == 128
    monkeypatch.setattr(_run, "_open_files_limit", lambda: 20_000)
    assert _run.default_concurrency() == 128
    monkeypatch.setattr(_run, "_open_files_limit", lambda: 256)  # macOS's default soft limit
    assert _run.default_concurrency() == 64
    monkeypatch.setattr(_run, "_open_files_limit", lambda: 20)
    assert _run.default_concurrency() == 16
    monkeypatch.setenv("JOURNAL_CONCURRENCY", "500")  # said outright: as said
    assert _run.default_concurrency() == 500
    monkeypatch.setenv("JOURNAL_CONCURRENCY", "0")
    with pytest.raises(UsageError, match="JOURNAL_CONCURRENCY"):
        _run.default_concurrency()


def test_the_open_files_limit_is_read() -> None:
    import resource

    from journal._engine._run import _open_files_limit

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert _open_files_limit() == (None if soft == resource.RLIM_INFINITY else soft)
