"""Scheduling: each task starts on the pool as soon as every task it waits for is done.

The order comes from :class:`graphlib.TopologicalSorter`: a batch of tasks (the resources a
``flush`` starts, or the objects a run deletes) is one graph whose edges point from a task
to the tasks it waits for. Creates and updates wait for their dependencies; deletes wait for
their dependents (:func:`delete_graph`). A task may also wait for a task of an earlier batch
(a resource declared after an earlier ``flush``): that one is a node of the graph too, done
when its future is.

Nothing here knows about providers or the journal: a task is a key, a future the caller
owns, and a callable. A task whose dependency failed is skipped (``DependencyFailed``); once
the run stops launching, tasks not started yet fail with ``RunInterrupted``. A cycle is
refused before anything starts, naming the resources on it.
"""

from __future__ import annotations

import graphlib
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import Executor, Future
from functools import partial
from typing import Any

from .._errors import JournalError, ProviderError, RunInterrupted


class DependencyFailed(ProviderError):
    """A task was skipped: a task it waits for failed."""


class DependencyCycle(JournalError):
    """Tasks wait for each other in a circle: none of them can start."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.resources = list(dict.fromkeys(resource_of(k) for k in cycle))
        path = " -> ".join(resource_of(k) for k in cycle)
        super().__init__(
            f"dependency cycle: {path}; each waits for the next, so none can start "
            "(remove one of these dependencies)"
        )


def resource_of(key: str) -> str:
    """The resource a task is about: a delete's key is ``<resource>#current`` or
    ``<resource>#retired<n>``; a declared resource's key is its id."""
    return key.split("#", 1)[0]


def delete_graph(tasks: Mapping[str, tuple[str, Iterable[str]]]) -> dict[str, list[str]]:
    """The deletes' graph, dependents first: ``tasks`` maps a key to the resource its object
    belongs to and the resources that object depends on; each task waits for every other
    task whose object depends on its resource."""
    dependents: dict[str, list[str]] = {}
    for key, (_rid, deps) in tasks.items():
        for dep in set(deps):
            dependents.setdefault(dep, []).append(key)
    return {
        key: [k for k in dependents.get(rid, []) if k != key] for key, (rid, _) in tasks.items()
    }


def check_acyclic(graph: Mapping[str, Iterable[str]]) -> None:
    """Raise :class:`DependencyCycle` when ``graph`` (``{task: tasks it waits for}``) has one."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise DependencyCycle(exc.args[1]) from None


class Scheduler:
    """Starts tasks on ``pool``, each once every task it waits for is done.

    ``stopping`` answers whether the run launches nothing new any more (a first signal)."""

    def __init__(self, pool: Executor, stopping: Callable[[], bool]) -> None:
        self._pool = pool
        self._stopping = stopping

    def start(
        self,
        graph: Mapping[str, Sequence[str]],
        futures: MutableMapping[str, Future[Any]],
        work: Callable[[str], Any],
    ) -> None:
        """Start a batch: ``graph`` maps each new task to the tasks it waits for (new or
        earlier ones, all with a future in ``futures``); ``work(key)`` does a task, and its
        result (or error) becomes that task's future's."""
        waits = {key: list(dict.fromkeys(deps)) for key, deps in graph.items()}
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(waits)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            raise DependencyCycle(exc.args[1]) from None
        lock = threading.Lock()

        def advance(finished: str | None) -> None:
            with lock:
                if finished is not None:
                    sorter.done(finished)
                ready = sorter.get_ready()
            for key in ready:
                if key in waits:
                    self._launch(key, waits[key], futures, work)
                # a task (of this batch or an earlier one) is done when its future is
                futures[key].add_done_callback(partial(_then, advance, key))

        advance(None)

    def _launch(
        self,
        key: str,
        deps: Sequence[str],
        futures: Mapping[str, Future[Any]],
        work: Callable[[str], Any],
    ) -> None:
        fut = futures[key]
        if self._stopping():
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))
            return
        failed = [d for d in deps if futures[d].exception() is not None]
        if failed:
            rid, first = resource_of(key), resource_of(failed[0])
            fut.set_exception(DependencyFailed(f"skipped: {first!r} failed", resource=rid))
            return
        try:
            self._pool.submit(_complete, fut, work, key)
        except RuntimeError:  # the pool was shut down: an abandoned run
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))


def _then(advance: Callable[[str], None], key: str, _done: Future[Any]) -> None:
    advance(key)


def _complete(fut: Future[Any], work: Callable[[str], Any], key: str) -> None:
    try:
        fut.set_result(work(key))
    except BaseException as exc:
        fut.set_exception(exc)
