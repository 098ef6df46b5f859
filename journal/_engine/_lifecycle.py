"""The intent/outcome lifecycle of one provider operation.

Every provider call that changes something is bracketed in the journal: the intent event
(``resource.<op>.requested``) is appended before the call, the outcome event
(``resource.created`` / ``.updated`` / ``.replaced`` / ``.deleted``, or
``resource.<op>.failed``) after it. An intent without an outcome is a *pending* operation,
which the next run resolves first (``_recovery``).

The failure-event rules (:meth:`Lifecycle.guarded`):

- a call that failed with an answer records ``resource.<op>.failed`` with the error;
- a create (or a replace's create) whose answer was lost (a transport error or a 5xx) may
  have happened: the new object is looked up by name at once; found, it is the result; not
  found, the failure is recorded *ambiguous* and the intent stays pending;
- an outcome that cannot be recorded is noted on the call's own error, never raised instead;
- once the run is abandoned (a second signal) nothing more is appended (:class:`Abandoned`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .._codec import encode
from .._errors import NotFoundError, ProviderError, ServerError, TransportError
from .._identity import gone_for_others
from .._projection import ResourceState
from .._provider import Context, Provider


class Abandoned(KeyboardInterrupt):
    """Raised in a thread waiting for a run whose calls in flight were abandoned."""


class AppendEvent(Protocol):
    def __call__(self, name: str, rid: str, tname: str, **fields: Any) -> None: ...


class Lifecycle:
    """Intents, provider calls and outcomes for one run.

    ``event`` appends one resource event to the run's stream (and raises :class:`Abandoned`
    once the run is abandoned); ``abandoned`` says whether it is."""

    def __init__(self, event: AppendEvent, abandoned: Callable[[], bool]) -> None:
        self._event = event
        self._abandoned = abandoned

    def apply(
        self,
        action: str,
        provider: Provider[Any, Any],
        ctx: Context,
        props: Any,
        pj: dict[str, Any],
        cur: ResourceState | None,
        common: dict[str, Any],
    ) -> Any:
        """Adopt, create, update or replace one resource; its outputs."""
        rid, tname = ctx.resource, provider.type_name
        if action == "adopt":
            found = provider.find(props, ctx)
            if found is not None:
                self._event(
                    "resource.created",
                    rid,
                    tname,
                    props=pj,
                    outputs=encode(found),
                    adopted=True,
                    **common,
                )
                return found
            action = "create"
        if action == "create":
            self._event("resource.create.requested", rid, tname, props=pj, **common)
            out = self.guarded(
                "create",
                rid,
                tname,
                lambda: provider.create(props, ctx),
                lookup=lambda: provider.find(props, ctx),
            )
            self._event("resource.created", rid, tname, props=pj, outputs=encode(out), **common)
            return out
        assert cur is not None and cur.outputs is not None
        old_props = provider.load_props(cur.props)
        old_out = provider.load_outputs(cur.outputs)
        if action == "update":
            self._event("resource.update.requested", rid, tname, props=pj, old_props=cur.props)
            out = self.guarded(
                "update", rid, tname, lambda: provider.update(props, old_props, old_out, ctx)
            )
            self._event("resource.updated", rid, tname, props=pj, outputs=encode(out), **common)
            return out
        # replace
        self._event("resource.replace.requested", rid, tname, props=pj, old_props=cur.props)
        retired: dict[str, Any] | None
        if provider.delete_first and cur.delete:
            self.guarded("replace", rid, tname, lambda: provider.delete(old_props, old_out, ctx))
            retired = None
        else:
            retired = {"props": cur.props, "outputs": cur.outputs, "deps": cur.deps}
        old_ref = frozenset({str(cur.outputs.get(provider.ref_field))})
        out = self.guarded(
            "replace",
            rid,
            tname,
            lambda: provider.create(props, ctx),
            lookup=lambda: provider.find(props, ctx, exclude=old_ref),
        )
        self._event(
            "resource.replaced",
            rid,
            tname,
            props=pj,
            outputs=encode(out),
            retired=retired,
            **common,
        )
        return out

    def delete(
        self,
        provider: Provider[Any, Any],
        ctx: Context,
        *,
        target: str,
        props_json: dict[str, Any],
        outputs: dict[str, Any],
        tname: str,
        options: Mapping[str, Any],
        endpoint: str | None,
    ) -> None:
        """Delete one object (a resource's ``current`` one or a ``retired`` one) of a
        resource recorded with type ``tname``."""
        rid = ctx.resource

        def attempt() -> bool:
            try:
                provider.delete(
                    provider.load_props(props_json), provider.load_outputs(outputs), ctx
                )
            except NotFoundError:
                return False
            return True

        self._event("resource.delete.requested", rid, tname, target=target, outputs=outputs)
        if self.guarded("delete", rid, tname, attempt, target=target):
            self._event("resource.deleted", rid, tname, target=target, outputs=outputs)
            return
        # a 404 proves the object gone only for the credentials that created it
        why = gone_for_others(options, endpoint, provider.credential(ctx))
        if why is not None:
            self._event("resource.delete.failed", rid, tname, target=target, error=why)
            raise ProviderError(why, resource=rid, operation="delete")
        self._event(
            "resource.deleted", rid, tname, target=target, outputs=outputs, already_gone=True
        )

    def guarded(
        self,
        op: str,
        rid: str,
        tname: str,
        call: Callable[[], Any],
        *,
        lookup: Callable[[], Any] | None = None,
        **intent: Any,
    ) -> Any:
        """Run a provider call; on failure record the outcome event and re-raise.

        A create whose answer was lost (a transport error) may have happened, or may still
        happen (the server can act after the client gave up): ``lookup`` looks for the new
        object by name at once; found, it is the result. Not found (or the lookup failed
        too), the outcome is recorded as *ambiguous*: the intent stays pending and the next
        run resolves it by reading again before doing anything else.

        ``intent`` holds the fields of the intent event that its outcome repeats (a delete's
        ``target``): the failure event is built from the same fields as the intent, so it is
        valid whenever the intent was."""
        try:
            return call()
        except (TransportError, ServerError) as exc:
            # no answer, or a 5xx: the server may have acted (a create may even act later)
            if lookup is not None:
                if not self._abandoned():
                    with contextlib.suppress(Exception):
                        found = lookup()
                        if found is not None:
                            return found
                self.failed(op, rid, tname, exc, intent, ambiguous=True)
                raise
            self.failed(op, rid, tname, exc, intent)
            raise
        except Exception as exc:
            self.failed(op, rid, tname, exc, intent)
            raise

    def failed(
        self,
        op: str,
        rid: str,
        tname: str,
        exc: BaseException,
        intent: Mapping[str, Any],
        *,
        ambiguous: bool = False,
    ) -> None:
        """Record a failed outcome; the call's own error is what the caller raises (an
        outcome that cannot be recorded is reported with it, never instead of it)."""
        fields = dict(intent, error=str(exc) or type(exc).__name__)
        if ambiguous:
            fields["ambiguous"] = True
        try:
            self._event(f"resource.{op}.failed", rid, tname, **fields)
        except Abandoned:
            raise
        except Exception as record_exc:
            exc.add_note(f"(its failure could not be recorded: {record_exc})")
