"""State surgery, as events (issue 13): forget, import, resolve by hand.

    with Journal.open(path) as jr:
        forget(jr, "demo", "prod", "database")            # like `terraform state rm`
        resolve(jr, "demo", "prod", "connection", created="con_123", credentials={})
        import_object(jr, "demo", "prod", "project", "prj_9", type_name=..., props=...)

Each is a short session of the stage (:class:`StageSession`): it holds the stage's run lock
(a deploy cannot interleave), refuses a damaged journal, and brackets its events with
``run.started`` (command ``state forget`` ..., actor, host) and ``run.finished``, so
``history`` shows who did it, and a fold from scratch gives the same state (the events are
the ordinary ``resource.forgotten`` / ``resource.imported`` and the new ``resource.resolved``,
which folds like the engine's own recovery). Nothing here calls an API to change anything:
``import`` and ``resolve --created`` only *read* the object through its provider.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._codec import encode
from ._errors import ProviderError, UsageError
from ._events import make_event
from ._identity import check_endpoint, credential_record, gone_for_others
from ._projection import ResourceState, StreamState, apply, load_state, snapshot_state, stream_name
from ._provider import Context, Endpoint, Provider, close_shared, get_provider, make_context
from ._secret import Secret, is_secret_json, secret_from_json

__all__ = [
    "Declaration",
    "StageSession",
    "capture_planned",
    "forget",
    "import_object",
    "note_planned",
    "read_by_id",
    "reset_stage",
    "resolve",
    "stage_session",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class StageSession:
    """One stage, locked, with its state; ``append`` records and folds an event."""

    journal: Any
    app: str
    stage: str
    state: StreamState
    run_id: str
    credentials: Mapping[str, Secret]
    #: the providers' APIs by service name (``--local``: the emulators'); others: defaults
    endpoints: Mapping[str, Endpoint] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def stream(self) -> str:
        return stream_name(self.app, self.stage)

    def append(self, name: str, res: ResourceState, **fields: Any) -> None:
        payload = make_event(name, resource=res.id, resource_type=res.type, **fields)
        self._append(payload)
        action = name.removeprefix("resource.")
        self.counts[action] = self.counts.get(action, 0) + 1

    def _append(self, payload: dict[str, Any]) -> None:
        payload.setdefault("run", self.run_id)
        payload["time"] = _now()
        for ev in self.journal.append(self.stream, [payload]):
            apply(self.state, ev.seq, ev.version, ev.payload)

    def resource(self, rid: str) -> ResourceState:
        res = self.state.resources.get(rid)
        if res is None:
            known = ", ".join(sorted(self.state.resources)) or "none"
            raise UsageError(
                f"the stage {self.stream} has no resource {rid!r} (it has: {known}); "
                "see `journal show`"
            )
        return res

    def context(self, res: ResourceState) -> Context:
        """The provider's context, as the engine makes it: the resource's own credentials
        are the secrets in its recorded options."""
        options = res.options
        return make_context(
            res.type,
            app=self.app,
            stage=self.stage,
            resource=res.id,
            overrides={k: secret_from_json(v) for k, v in options.items() if is_secret_json(v)},
            profile=self.credentials,
            endpoints=self.endpoints,
            cache=self.cache,
            cache_lock=self.cache_lock,
        )


@contextmanager
def stage_session(
    journal: Any,
    app: str,
    stage: str,
    command: str,
    *,
    credentials: Mapping[str, Secret] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    lock_timeout: float = 0.0,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[StageSession]:
    """Lock the stage, record ``run.started`` (``command``), yield, record ``run.finished``
    (``failed`` if the block raised) and a snapshot."""
    from ._engine import actor

    stream = stream_name(app, stage)
    holder = {"actor": actor(), "host": socket.gethostname(), "command": command}
    t0 = time.monotonic()
    with journal.lock(stream, holder=holder, timeout=lock_timeout):
        journal.ensure_writable()
        session = StageSession(
            journal,
            app,
            stage,
            load_state(journal, stream),
            uuid.uuid4().hex[:16],
            dict(credentials or {}),
            dict(endpoints or {}),
        )
        session._append(
            make_event(
                "run.started", app=app, stage=stage, pid=os.getpid(), **holder, **(extra or {})
            )
        )
        status, failures = "succeeded", []
        try:
            yield session
        except BaseException as exc:
            status, failures = "failed", [{"resource": None, "error": str(exc)}]
            raise
        finally:
            close_shared(session.cache)
            session._append(
                make_event(
                    "run.finished",
                    status=status,
                    counts=session.counts,
                    duration_s=round(time.monotonic() - t0, 4),
                    failures=failures,
                )
            )
            snapshot_state(journal, session.state)


def forget(session: StageSession, rid: str) -> ResourceState:
    """Drop ``rid`` from the stage, leaving its remote object as it is."""
    res = session.resource(rid)
    dependents = sorted(r.id for r in session.state.resources.values() if rid in r.deps)
    if dependents:
        raise UsageError(
            f"{', '.join(dependents)} depend(s) on {rid!r}: forget them first "
            "(or destroy them), so no recorded object points at a forgotten one"
        )
    for old in list(res.retired):
        session.append(
            "resource.forgotten",
            res,
            reason="journal state forget",
            target="retired",
            outputs=old["outputs"],
        )
    session.append(
        "resource.forgotten",
        res,
        reason="journal state forget",
        target="current",
        outputs=res.outputs,
    )
    return res


def _stub_outputs(provider: Provider[Any, Any], object_id: str) -> Any:
    """Outputs that hold only the object's id (what ``read`` needs to look it up)."""
    cls = provider.outputs_type
    stub = object.__new__(cls)
    for f in dataclasses.fields(cls):
        object.__setattr__(stub, f.name, object_id if f.name == provider.ref_field else None)
    return stub


def read_by_id(
    session: StageSession, res: ResourceState, object_id: str
) -> tuple[dict[str, Any], str]:
    """Read the object ``object_id`` of ``res``'s type through its provider (and the API the
    stage's objects live on): its outputs, and the endpoint it was read through."""
    provider = get_provider(res.type)
    ctx = session.context(res)
    endpoint = provider.endpoint(ctx)
    check_endpoint(res.id, res.options, endpoint)
    props = provider.load_props(res.props)
    found = provider.read(props, _stub_outputs(provider, object_id), ctx)
    if found is None:
        raise ProviderError(
            f"the API has no {res.type} with id {object_id!r} (read through "
            f"{endpoint or 'its API'}): nothing was recorded",
            resource=res.id,
            operation="read",
        )
    return encode(found), endpoint or ""


def resolve(session: StageSession, rid: str, *, created: str | None, absent: bool) -> str:
    """Resolve ``rid``'s pending operation by hand: the object exists with id ``created``
    (read through the provider, which must find it), or it does not exist (``absent``).
    Returns the operation resolved."""
    if (created is None) == (not absent):
        raise UsageError("give exactly one of --created ID and --absent")
    res = session.resource(rid)
    if res.pending is None:
        raise UsageError(
            f"{rid!r} has no pending operation: nothing to resolve (see `journal show`)"
        )
    op = str(res.pending["op"])
    fields: dict[str, Any] = {"op": op, "found": not absent, "by": "hand"}
    if op == "delete":
        if created is not None:
            raise UsageError(
                f"{rid!r} has a pending delete: --created does not apply; pass --absent if "
                "the object is gone, or run `journal deploy`/`journal destroy` to delete it again"
            )
        fields.update(target=res.pending["target"], outputs=res.pending["outputs"])
    elif created is not None:
        outputs, _ = read_by_id(session, res, created)
        fields.update(outputs=outputs, props=res.pending.get("props", res.props))
        if op == "replace" and res.outputs is not None:
            fields["retired"] = {"props": res.props, "outputs": res.outputs, "deps": res.deps}
    session.append("resource.resolved", res, **fields)
    return op


# --- what a plan declares (the engine's hook in its plan path calls note_planned) ----------


@dataclass(frozen=True)
class Declaration:
    """A resource as a program declares it (props resolved and prepared, as recorded)."""

    type_name: str
    props: dict[str, Any]
    deps: list[str]
    refs: dict[str, str]
    delete: bool
    #: the recorded options a declaration decides (adopt, service_token)
    options: dict[str, Any]


_PLANNED_LOCK = threading.Lock()
#: while :func:`capture_planned` is active: logical id -> its declaration
_planned: dict[str, Declaration] | None = None


def note_planned(rid: str, declared: Declaration) -> None:
    """Called by a planning run for every declared resource; kept only while captured."""
    with _PLANNED_LOCK:
        if _planned is not None:
            _planned[rid] = declared


@contextmanager
def capture_planned() -> Iterator[dict[str, Declaration]]:
    """Collect the declarations of the plans run in the block."""
    global _planned
    captured: dict[str, Declaration] = {}
    with _PLANNED_LOCK:
        _planned = captured
    try:
        yield captured
    finally:
        with _PLANNED_LOCK:
            _planned = None


def import_object(
    session: StageSession, rid: str, object_id: str, declared: Declaration
) -> dict[str, Any]:
    """Record the existing remote object ``object_id`` as ``rid`` (declared by the program
    with ``props``): read through its provider; the remote object is not changed."""
    if rid in session.state.resources and session.state.resources[rid].exists:
        raise UsageError(
            f"{rid!r} is already recorded in {session.stream}: forget it first "
            f"(`journal state forget {rid}`) to import another object"
        )
    type_name, props, deps = declared.type_name, declared.props, declared.deps
    options = declared.options
    missing = [d for d in deps if not getattr(session.state.resources.get(d), "exists", False)]
    if missing:
        raise UsageError(
            f"{rid!r} depends on {', '.join(missing)}, which the stage does not record: "
            "import (or deploy) those first"
        )
    res = ResourceState(id=rid, type=type_name, props=dict(props), options=dict(options))
    outputs, endpoint = read_by_id(session, res, object_id)
    recorded = dict(options)
    if endpoint:
        recorded["endpoint"] = endpoint
    provider = get_provider(type_name)
    credential = credential_record(provider.credential(session.context(res)), None)
    if credential is not None:
        recorded["credential"] = credential
    session.append(
        "resource.imported",
        res,
        props=dict(props),
        outputs=outputs,
        deps=deps,
        refs=declared.refs,
        delete=declared.delete,
        options=recorded,
        source=f"journal state import {object_id}",
    )
    return outputs


def gone_check(session: StageSession, res: ResourceState, endpoint: str | None) -> str | None:
    """Why a "not found" does not prove ``res`` gone (None: it does)."""
    provider = get_provider(res.type)
    return gone_for_others(res.options, endpoint, provider.credential(session.context(res)))


# --- journal local reset -------------------------------------------------------------------


def _dependents_first(resources: dict[str, ResourceState]) -> list[ResourceState]:
    left = dict(resources)
    ordered: list[ResourceState] = []
    while left:
        leaves = [r for r in left.values() if not any(r.id in o.deps for o in left.values())]
        for res in sorted(leaves or list(left.values()), key=lambda r: r.id):
            ordered.append(res)
            left.pop(res.id)
    return ordered


def reset_stage(session: StageSession) -> list[str]:
    """Delete every object of a stage that lives on a local API, delete protection or not
    (local data is disposable), dependents first, and record each as deleted (reason
    ``local reset``). An object already gone is recorded the same way. Returns the ids."""
    from ._errors import NotFoundError

    done = []
    for res in _dependents_first(session.state.resources):
        provider = get_provider(res.type)
        ctx = session.context(res)
        check_endpoint(res.id, res.options, provider.endpoint(ctx))
        props = provider.load_props(res.props)
        targets: list[tuple[str, Any]] = [("retired", old["outputs"]) for old in res.retired]
        current = res.outputs
        if current is None and res.pending is not None and res.pending.get("op") == "create":
            found = provider.find(provider.load_props(res.pending["props"]), ctx)
            current = encode(found) if found is not None else None
        targets.append(("current", current))
        for target, outputs in targets:
            if outputs is not None:
                with suppress(NotFoundError):  # already gone: recorded the same
                    provider.delete(props, provider.load_outputs(outputs), ctx)
            session.append(
                "resource.deleted", res, target=target, outputs=outputs, reason="local reset"
            )
        done.append(res.id)
    return done
