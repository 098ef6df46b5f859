"""Recovery: resolve the operations a crashed (or abandoned) run left pending.

An intent recorded without its outcome is a pending operation (``_lifecycle``). Before a
run changes anything, each one is resolved by reading the remote object through the API
the operation was started on, and recording what is there (``resource.recovered``): a
create or replace found by name (a replace's new object is one that is not the old one), an
update's object read again, a deleted object read to see whether it is gone (a 404 proves a
delete only for the credentials that created the object).

A resource whose API does not answer now does not hold back the others: it stays pending,
and it (with what depends on it) fails this run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from typing import Any

from .._codec import encode
from .._errors import ProviderError, RunInterrupted
from .._identity import check_endpoint, gone_for_others
from .._projection import ResourceState
from .._provider import Context, Provider, get_provider
from .._results import Change, Reporter
from ._lifecycle import AppendEvent


def read_pending(res: ResourceState, provider: Provider[Any, Any], ctx: Context) -> dict[str, Any]:
    """The fields of ``resource.recovered`` for ``res``'s pending operation: what the API
    holds now (reads only; nothing is appended)."""
    # read only through the API the operation was started on: another one would answer
    # "not there" for an object that lives elsewhere (and a create would be made twice)
    endpoint = provider.endpoint(ctx)
    check_endpoint(res.id, res.options, endpoint)
    pending = res.pending or {}
    op = pending["op"]
    fields: dict[str, Any] = {"op": op}
    if op in ("create", "replace"):
        props = provider.load_props(pending["props"])
        # a replace may keep the name: the new object is one that is not the old one
        old_ref = (res.outputs or {}).get(provider.ref_field)
        exclude = frozenset({old_ref}) if op == "replace" and old_ref else frozenset()
        found = provider.find(props, ctx, exclude=exclude)
        new = found is not None
        fields.update(found=new, props=pending["props"])
        if new:
            fields["outputs"] = encode(found)
            if op == "replace" and res.outputs is not None:
                fields["retired"] = {
                    "props": res.props,
                    "outputs": res.outputs,
                    "deps": res.deps,
                }
    elif op == "update":
        out = provider.read(
            provider.load_props(res.props), provider.load_outputs(res.outputs or {}), ctx
        )
        fields.update(found=out is not None, outputs=encode(out) if out is not None else None)
    else:  # delete
        target_outputs = pending["outputs"]
        props = provider.load_props(res.props)
        out = provider.read(props, provider.load_outputs(target_outputs), ctx)
        if out is None:  # not found: proof of a delete only for the creator's credentials
            why = gone_for_others(res.options, endpoint, provider.credential(ctx))
            if why is not None:
                raise ProviderError(why, resource=res.id, operation="recover")
        fields.update(found=out is not None, target=pending["target"], outputs=target_outputs)
    return fields


class Recovery:
    """Resolves a run's pending operations on its pool, reporting each one.

    ``context`` builds a resource's provider context from its recorded options; ``wait``
    waits for a future the way the run does (an abandoned run stops waiting); ``check_launch``
    raises ``RunInterrupted`` once the run launches nothing new."""

    def __init__(
        self,
        *,
        pool: Executor,
        wait: Callable[[Future[Any]], BaseException | None],
        context: Callable[[str, str, Mapping[str, Any]], Context],
        event: AppendEvent,
        check_launch: Callable[[], None],
        reporter: Reporter,
        record: Callable[[Change], None],
    ) -> None:
        self._pool = pool
        self._wait = wait
        self._context = context
        self._event = event
        self._check_launch = check_launch
        self._reporter = reporter
        self._record = record

    def resolve(self, pending: list[ResourceState], unresolved: dict[str, ProviderError]) -> None:
        """Resolve every pending operation; those that cannot be resolved now go into
        ``unresolved`` (by resource). Raises ``RunInterrupted`` if the run was interrupted."""
        if not pending:
            return
        self._reporter.message(f"resolving {len(pending)} interrupted operation(s)")
        interrupted = False
        for res, fut in [(r, self._pool.submit(self._one, r)) for r in pending]:
            exc = self._wait(fut)
            if isinstance(exc, RunInterrupted):
                interrupted = True
            elif isinstance(exc, Exception):
                # one resource whose API does not answer now must not hold back the others:
                # it (and what depends on it) fails this run and stays pending for the next
                error = ProviderError(
                    f"its interrupted operation could not be resolved: {exc}; it stays "
                    "pending, run again when the API answers",
                    resource=res.id,
                    operation="recover",
                )
                error.__cause__ = exc
                unresolved[res.id] = error
            elif exc is not None:
                raise exc
        if interrupted:
            raise RunInterrupted(
                "interrupted while resolving the operations an earlier run left pending"
            )
        if unresolved:
            self._reporter.message(
                f"{len(unresolved)} interrupted operation(s) could not be resolved yet; "
                "those resources, and what depends on them, wait for the next run"
            )

    def _one(self, res: ResourceState) -> None:
        self._check_launch()
        pending = res.pending or {}
        t0 = time.monotonic()
        self._reporter.resource(res.id, res.type, "recover", "start", 0.0, None)
        try:
            provider = get_provider(res.type)
            fields = read_pending(res, provider, self._context(res.id, res.type, res.options))
            self._event("resource.recovered", res.id, res.type, **fields)
        except Exception as exc:
            secs = time.monotonic() - t0
            self._event(
                "resource.recover.failed", res.id, res.type, op=pending["op"], error=str(exc)
            )
            self._reporter.resource(res.id, res.type, "recover", "failed", secs, str(exc))
            raise
        secs = time.monotonic() - t0
        self._reporter.resource(res.id, res.type, "recover", "done", secs, None)
        self._record(Change(res.id, res.type, "recover", seconds=secs))
