"""Scheduling: each task starts on the pool as soon as every task it waits for is done.

The order comes from :class:`graphlib.TopologicalSorter`: a batch of tasks (the resources a
``flush`` starts, or the objects a run deletes) is one graph whose edges point from a task
to the tasks it waits for. Creates and updates wait for their dependencies; deletes wait for
their dependents (:func:`delete_graph`). A task may also wait for a task of an earlier batch
(a resource declared after an earlier ``flush``): that one is a node of the graph too, done
when its future is.

Nothing here knows about providers or the journal: a task is a key, a future the caller
owns, and a callable. The callable runs on the thread that finds the task ready (the one that
started the batch, or the one that finished its last dependency): most tasks of a re-run are
decided there without any I/O (nothing changed), and paying a pool thread and a future's
hand-off for each of them would cost more than the decision itself. A task that must call a
provider or append an event returns :class:`OnPool` with the rest of its work, which runs on
the pool. A task whose dependency failed is skipped (``DependencyFailed``); once the run
stops launching, tasks not started yet fail with ``RunInterrupted``. A cycle is refused before
anything starts, naming the resources on it.
"""

from __future__ import annotations

import graphlib
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class OnPool:
    """What a task returns when the rest of its work blocks (a provider call, an append):
    ``call`` runs on the pool, and its result (or error) becomes the task's."""

    call: Callable[[], Any]


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

    ``stopping`` answers whether the run launches nothing new any more (a first signal);
    ``prestart(n)`` is told how many tasks are about to go to the pool, before they go."""

    def __init__(
        self,
        pool: Executor,
        stopping: Callable[[], bool],
        prestart: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._stopping = stopping
        self._prestart = prestart or (lambda count: None)

    def start(
        self,
        graph: Mapping[str, Sequence[str]],
        futures: MutableMapping[str, Future[Any]],
        work: Callable[[str], Any],
    ) -> None:
        """Start a batch: ``graph`` maps each new task to the tasks it waits for (new or
        earlier ones, all with a future in ``futures``); ``work(key)`` does a task on the thread
        that finds it ready, and its result (or error) becomes that task's future's, unless
        it returns :class:`OnPool`: then the rest runs on the pool."""
        waits = {key: list(dict.fromkeys(deps)) for key, deps in graph.items()}
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(waits)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            raise DependencyCycle(exc.args[1]) from None
        lock = threading.Lock()

        def advance(finished: str | None) -> None:
            # iterative, not recursive: a task decided on this thread makes its dependents
            # ready at once, and a chain of a thousand of them must not nest a thousand calls
            done: list[str | None] = [finished]
            while done:
                key_done = done.pop()
                with lock:
                    if key_done is not None:
                        sorter.done(key_done)
                    ready = sorter.get_ready()
                # every ready task is decided before any goes to the pool: a busy pool would
                # make this thread wait for the GIL between decisions
                queued: list[tuple[str, OnPool]] = []
                for key in ready:
                    if key not in waits:  # a task of an earlier batch: done when its future is
                        futures[key].add_done_callback(partial(_then, advance, key))
                        continue
                    step = self._launch(key, waits[key], futures, work)
                    if step is None:
                        done.append(key)
                    else:
                        queued.append((key, step))
                if queued:
                    self._prestart(len(queued))
                for key, step in queued:
                    if self._submit(futures[key], step):
                        futures[key].add_done_callback(partial(_then, advance, key))
                    else:
                        done.append(key)

        advance(None)

    def _launch(
        self,
        key: str,
        deps: Sequence[str],
        futures: Mapping[str, Future[Any]],
        work: Callable[[str], Any],
    ) -> OnPool | None:
        """Decide ``key``: None when it is done already (decided here, skipped or refused),
        else what is left for the pool."""
        fut = futures[key]
        if self._stopping():
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))
            return None
        failed = [d for d in deps if futures[d].exception() is not None]
        if failed:
            rid, first = resource_of(key), resource_of(failed[0])
            fut.set_exception(DependencyFailed(f"skipped: {first!r} failed", resource=rid))
            return None
        try:
            step = work(key)
        except Exception as exc:
            fut.set_exception(exc)
            return None
        except BaseException:  # Ctrl-C on the program's thread: this task never started
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))
            raise
        if not isinstance(step, OnPool):
            fut.set_result(step)
            return None
        return step

    def _submit(self, fut: Future[Any], step: OnPool) -> bool:
        """Hand ``step`` to the pool; False when the pool is shut down (an abandoned run)."""
        if self._stopping():
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))
            return False
        try:
            self._pool.submit(_complete, fut, step.call)
        except RuntimeError:
            fut.set_exception(RunInterrupted("not started: the run was interrupted"))
            return False
        return True


def _then(advance: Callable[[str], None], key: str, _done: Future[Any]) -> None:
    advance(key)


def _complete(fut: Future[Any], call: Callable[[], Any]) -> None:
    try:
        fut.set_result(call())
    except BaseException as exc:
        fut.set_exception(exc)
