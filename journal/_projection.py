"""Current state as a fold over events, with encrypted snapshots.

``StreamState`` is what one stage (stream ``app/stage``) holds after some event: its
resources (type, props, outputs, dependencies, delete policy, pending operation, retired
objects awaiting deletion) and the program's exports. :func:`apply` folds one event into it;
:func:`load_state` starts from the newest snapshot at or before the wanted point and folds
only the events after it, so loading costs the same whatever the journal's length.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ._errors import UnknownSequenceError
from ._events import (
    Created,
    CreateFailed,
    CreateRequested,
    Deleted,
    DeleteFailed,
    DeleteRequested,
    Drifted,
    EventTable,
    Failed,
    Forgotten,
    Imported,
    OutputsRecorded,
    PolicyChanged,
    Recovered,
    Replaced,
    ReplaceFailed,
    ReplaceRequested,
    Requested,
    Resolved,
    ResourceEvent,
    RunFinished,
    RunStarted,
    StageBound,
    Updated,
    UpdateFailed,
    UpdateRequested,
    decode,
)
from ._protocols import JournalLike as _Journal
from ._protocols import StoredEvent as _Event

__all__ = [
    "SNAPSHOT_EVERY",
    "ResourceState",
    "StreamState",
    "apply",
    "fold",
    "load_state",
    "rebuild_and_check",
    "snapshot_state",
    "stream_name",
]

Json = dict[str, Any]

#: bump when the snapshot shape (or the fold) changes; older snapshots are then ignored and
#: rebuilt. 2: the stage's binding, and exports of removed resources dropped (issue 13)
SNAPSHOT_FORMAT = 2


def stream_name(app: str, stage: str) -> str:
    return f"{app}/{stage}"


@dataclass
class ResourceState:
    id: str
    type: str
    props: Json
    outputs: Json | None = None
    deps: list[str] = field(default_factory=list)
    #: props fields that hold another resource's reference: {field: logical id}
    refs: dict[str, str] = field(default_factory=dict)
    delete: bool = True
    options: Json = field(default_factory=dict)
    #: an operation whose intent is recorded but whose outcome is not: {"op", "seq", "props"...}
    pending: Json | None = None
    #: old objects left by a replace, deleted at finalize: [{"props", "outputs"}]
    retired: list[Json] = field(default_factory=list)
    created_seq: int = 0
    updated_seq: int = 0

    @property
    def exists(self) -> bool:
        return self.outputs is not None

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "type": self.type,
            "props": self.props,
            "outputs": self.outputs,
            "deps": self.deps,
            "refs": self.refs,
            "delete": self.delete,
            "options": self.options,
            "pending": self.pending,
            "retired": self.retired,
            "created_seq": self.created_seq,
            "updated_seq": self.updated_seq,
        }

    @classmethod
    def from_json(cls, data: Json) -> ResourceState:
        return cls(**data)


@dataclass
class StreamState:
    stream: str
    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: Json = field(default_factory=dict)
    #: stream version and global sequence of the last event folded in
    version: int = 0
    seq: int = 0
    last_run: Json | None = None
    #: where the stage lives (``stage.bound``): {"target": "local" | origin, "seq": N}
    binding: Json | None = None
    #: the sequence of the snapshot this state was loaded from (0: none); not part of it
    snapshot_seq: int = field(default=0, compare=False)

    def to_json(self) -> Json:
        return {
            "format": SNAPSHOT_FORMAT,
            "stream": self.stream,
            "resources": {k: r.to_json() for k, r in sorted(self.resources.items())},
            "outputs": self.outputs,
            "version": self.version,
            "seq": self.seq,
            "last_run": self.last_run,
            "binding": self.binding,
        }

    @classmethod
    def from_json(cls, data: Json) -> StreamState:
        return cls(
            stream=data["stream"],
            resources={k: ResourceState.from_json(v) for k, v in data["resources"].items()},
            outputs=data["outputs"],
            version=data["version"],
            seq=data["seq"],
            last_run=data["last_run"],
            binding=data.get("binding"),
        )

    def copy(self) -> StreamState:
        return copy.deepcopy(self)

    def pending(self) -> list[ResourceState]:
        return [r for r in self.resources.values() if r.pending is not None]


#: how each event type changes the state: the fold's dispatch table (types absent: no change)
_Fold = Callable[[StreamState, int, Any], None]
_FOLD: EventTable[_Fold] = EventTable("fold")
_folds = _FOLD.on


def apply(state: StreamState, seq: int, version: int, raw: Json) -> None:
    """Fold one event into ``state`` (in place)."""
    ev = decode(raw)
    # concurrent appenders of one run may fold their events slightly out of order
    state.seq = max(state.seq, seq)
    state.version = max(state.version, version)
    fold_one = _FOLD.get(type(ev))
    if fold_one is not None:
        fold_one(state, seq, ev)


def _resource(state: StreamState, ev: ResourceEvent, seq: int) -> ResourceState:
    res = state.resources.get(ev.resource)
    if res is None:
        res = ResourceState(
            id=ev.resource, type=ev.resource_type, props=ev.get("props", {}), created_seq=seq
        )
        state.resources[ev.resource] = res
    return res


@_folds(RunStarted)
def _run_started(state: StreamState, seq: int, ev: RunStarted) -> None:
    state.last_run = {k: ev.get(k) for k in ("run", "command", "actor", "host", "time")}
    state.last_run["seq"] = seq


@_folds(RunFinished)
def _run_finished(state: StreamState, seq: int, ev: RunFinished) -> None:
    if state.last_run is not None and state.last_run.get("run") == ev.get("run"):
        state.last_run["status"] = ev.status


@_folds(OutputsRecorded)
def _outputs_recorded(state: StreamState, seq: int, ev: OutputsRecorded) -> None:
    state.outputs = ev.outputs


@_folds(CreateRequested, UpdateRequested, ReplaceRequested)
def _requested(state: StreamState, seq: int, ev: Requested) -> None:
    res = _resource(state, ev, seq)
    res.pending = {"op": ev.OP, "seq": seq, "props": ev.props}
    if isinstance(ev, CreateRequested):
        res.deps = ev.deps
        res.refs = ev.get("refs", {})
        res.delete = ev.get("delete", res.delete)
        res.options = ev.get("options", res.options)
        res.type = ev.resource_type
        if not res.exists:
            res.props = ev.props


@_folds(DeleteRequested)
def _delete_requested(state: StreamState, seq: int, ev: DeleteRequested) -> None:
    res = _resource(state, ev, seq)
    res.pending = {"op": "delete", "seq": seq, "target": ev.target, "outputs": ev.outputs}


@_folds(Created, Imported, Updated, Replaced)
def _succeeded(state: StreamState, seq: int, ev: Created | Imported | Updated | Replaced) -> None:
    # an imported object is recorded exactly like one this engine created
    created = isinstance(ev, Created | Imported)
    res = _resource(state, ev, seq) if created else state.resources.get(ev.resource)
    if res is None:
        return
    res.pending = None
    res.props = ev.props
    res.outputs = ev.outputs
    res.updated_seq = seq
    extra = ev.extra
    if ev.has("deps"):
        res.deps = ev.get("deps")
        res.refs = extra.get("refs", {})
    if created:
        res.created_seq = seq
        res.delete = extra.get("delete", res.delete)
        res.options = extra.get("options", res.options)
    if isinstance(ev, Replaced) and ev.retired is not None:
        res.retired.append(ev.retired)


def _existing(fn: Callable[[StreamState, ResourceState, Any], None]) -> _Fold:
    """A fold of an event about a resource the state must already hold (else: no change)."""

    def fold_one(state: StreamState, seq: int, ev: ResourceEvent) -> None:
        res = state.resources.get(ev.resource)
        if res is not None:
            fn(state, res, ev)

    return fold_one


def _drop_retired(res: ResourceState, outputs: Any) -> None:
    res.retired = [r for r in res.retired if r.get("outputs") != outputs]


@_folds(CreateFailed, UpdateFailed, ReplaceFailed)
@_existing
def _failed(state: StreamState, res: ResourceState, ev: Failed) -> None:
    if ev.get("ambiguous"):
        return  # outcome unknown: stays pending until the next run reads the remote object
    res.pending = None
    if not res.exists and not res.retired:
        del state.resources[res.id]


@_folds(Deleted)
@_existing
def _deleted(state: StreamState, res: ResourceState, ev: Deleted) -> None:
    if ev.target == "retired":
        _drop_retired(res, ev.outputs)
        res.pending = None
    else:
        _remove(state, res.id)


@_folds(DeleteFailed)
@_existing
def _delete_failed(state: StreamState, res: ResourceState, ev: DeleteFailed) -> None:
    res.pending = None


@_folds(Forgotten)
@_existing
def _forgotten(state: StreamState, res: ResourceState, ev: Forgotten) -> None:
    if ev.get("target") == "retired":
        _drop_retired(res, ev.get("outputs"))
    else:
        _remove(state, res.id)


@_folds(PolicyChanged)
@_existing
def _policy_changed(state: StreamState, res: ResourceState, ev: PolicyChanged) -> None:
    res.delete = ev.delete
    res.options = ev.get("options", res.options)


@_folds(Recovered, Resolved)
@_existing
def _recovered(state: StreamState, res: ResourceState, ev: Recovered | Resolved) -> None:
    op, found = ev.op, ev.found
    res.pending = None
    if op == "create":
        if found:
            res.outputs = ev.get("outputs")
            res.props = ev.get("props")
        elif not res.exists:
            del state.resources[res.id]
    elif op in ("update", "replace"):
        if found:
            res.outputs = ev.get("outputs")
            if op == "replace":
                res.props = ev.get("props")
                if ev.get("retired"):
                    res.retired.append(ev.get("retired"))
    elif op == "delete" and not found:
        if ev.get("target") == "retired":
            _drop_retired(res, ev.get("outputs"))
        else:
            _remove(state, res.id)


@_folds(StageBound)
def _stage_bound(state: StreamState, seq: int, ev: StageBound) -> None:
    state.binding = {"target": ev.target, "seq": seq}


# --- drift, and exports that outlive their resource -----------------------------------------


def _remove(state: StreamState, rid: str) -> None:
    """The resource's current object is gone from the stage: so are the exports that held
    one of its values (and no live resource's), e.g. the connection string of a connection
    a rollback deleted."""
    res = state.resources.pop(rid)
    dead = _values(res.outputs)
    if not dead or not state.outputs:
        return
    live = [v for r in state.resources.values() for v in _values(r.outputs)]
    state.outputs = {k: v for k, v in state.outputs.items() if not (v in dead and v not in live)}


def _values(outputs: Json | None) -> list[Any]:
    """The values of an object's outputs an export can hold (not None, not booleans)."""
    return [v for v in (outputs or {}).values() if v is not None and not isinstance(v, bool)]


@_folds(Drifted)
@_existing
def _drifted(state: StreamState, res: ResourceState, ev: Drifted) -> None:
    """``journal refresh`` found the remote object gone (the stage forgets it, so the next
    deploy creates it again), or changed (its outputs, and the props they mirror, become
    what the API says: the next deploy puts the props back)."""
    if ev.gone:
        _remove(state, res.id)
        return
    if ev.get("outputs") is not None:
        res.outputs = ev.get("outputs")
    if ev.get("props") is not None:
        res.props = ev.get("props")


def fold(stream: str, events: Iterable[_Event], state: StreamState | None = None) -> StreamState:
    state = state if state is not None else StreamState(stream=stream)
    for ev in events:
        apply(state, ev.seq, ev.version, ev.payload)
    return state


#: states a reader loaded with ``share=True``, each handed to the next load of its stream at
#: the same head, then forgotten (``journal deploy`` reads the stage's binding, then its run
#: loads the state again under the stage's lock: the fold and the snapshot's decryption are
#: paid once). Keyed by journal id, stream and head; a few at most.
_SHARED: dict[tuple[str, str, int, str], StreamState] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_MAX: Final = 4


def load_state(
    journal: _Journal, stream: str, upto_seq: int | None = None, *, share: bool = False
) -> StreamState:
    """The state of ``stream`` after global sequence ``upto_seq`` (default: now).

    ``share``: the caller only reads the state; the next load of the same stream at the
    same head gets this very object instead of loading it again (once)."""
    journal_id = getattr(journal, "journal_id", None)
    key: tuple[str, str, int, str] | None = None
    if upto_seq is None and isinstance(journal_id, str):
        head_seq, head_hash = journal.head()
        key = (journal_id, stream, head_seq, head_hash)
        if not share:
            with _SHARED_LOCK:
                kept = _SHARED.pop(key, None)
            if kept is not None:
                return kept
    state = _load_state(journal, stream, upto_seq)
    if share and key is not None:
        with _SHARED_LOCK:
            _SHARED[key] = state
            while len(_SHARED) > _SHARED_MAX:
                del _SHARED[next(iter(_SHARED))]
    return state


def _load_state(journal: _Journal, stream: str, upto_seq: int | None) -> StreamState:
    if upto_seq is not None:
        head, _ = journal.head()
        if upto_seq < 0 or upto_seq > head:
            raise UnknownSequenceError(
                f"sequence {upto_seq} is not in the journal (it holds 1..{head}); "
                "see `journal history` for valid sequence numbers"
            )
    state: StreamState | None = None
    snap = journal.latest_snapshot(stream, upto_seq)
    if snap is not None and snap[1].get("format") == SNAPSHOT_FORMAT:
        state = StreamState.from_json(snap[1])
        state.snapshot_seq = snap[0]
    after = state.seq if state is not None else 0
    return fold(stream, journal.read(stream, after_seq=after, upto_seq=upto_seq), state)


#: a run ends with a snapshot once the journal holds this many events past the state's last
#: one: below it, folding them (and the chain check opening them) costs less than writing it
SNAPSHOT_EVERY: Final = 64


def snapshot_state(journal: _Journal, state: StreamState, *, every: int = 1) -> None:
    """Write an encrypted snapshot of ``state`` (derivable; safe to lose); with ``every``,
    only once ``state`` is that many events past the snapshot it was loaded from."""
    if state.seq > 0 and state.seq - state.snapshot_seq >= every:
        journal.put_snapshot(state.stream, state.seq, state.to_json())
        state.snapshot_seq = state.seq


def rebuild_and_check(journal: _Journal, stream: str) -> tuple[bool, StreamState]:
    """Full fold from the first event, compared with what the snapshots give."""
    full = fold(stream, journal.read(stream))
    fast = load_state(journal, stream)
    return full.to_json() == fast.to_json(), full
