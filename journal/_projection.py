"""Current state as a fold over events, with encrypted snapshots.

``StreamState`` is what one stage (stream ``app/stage``) holds after some event: its
resources (type, props, outputs, dependencies, delete policy, pending operation, retired
objects awaiting deletion) and the program's exports. :func:`apply` folds one event into it;
:func:`load_state` starts from the newest snapshot at or before the wanted point and folds
only the events after it, so loading costs the same whatever the journal's length.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._errors import UnknownSequenceError
from ._events import upcast

__all__ = [
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


class _Event(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def payload(self) -> dict[str, Any]: ...


def _resource(state: StreamState, p: Json, seq: int) -> ResourceState:
    rid = p["resource"]
    res = state.resources.get(rid)
    if res is None:
        res = ResourceState(
            id=rid, type=p["resource_type"], props=p.get("props", {}), created_seq=seq
        )
        state.resources[rid] = res
    return res


def apply(state: StreamState, seq: int, version: int, raw: Json) -> None:
    """Fold one event into ``state`` (in place)."""
    p = upcast(raw)
    kind = p["type"]
    # concurrent appenders of one run may fold their events slightly out of order
    state.seq = max(state.seq, seq)
    state.version = max(state.version, version)
    if kind == "run.started":
        state.last_run = {k: p.get(k) for k in ("run", "command", "actor", "host", "time")}
        state.last_run["seq"] = seq
        return
    if kind == "run.finished":
        if state.last_run is not None and state.last_run.get("run") == p["run"]:
            state.last_run["status"] = p["status"]
        return
    if kind == "outputs.recorded":
        state.outputs = p["outputs"]
        return
    if kind == "stage.bound":
        state.binding = {"target": p["target"], "seq": seq}
        return
    if not kind.startswith("resource."):
        return
    rid = p["resource"]
    action = kind[len("resource.") :]
    if action in ("create.requested", "update.requested", "replace.requested"):
        res = _resource(state, p, seq)
        op = action.split(".")[0]
        res.pending = {"op": op, "seq": seq, "props": p["props"]}
        if op == "create":
            res.deps = p["deps"]
            res.refs = p.get("refs", {})
            res.delete = p.get("delete", res.delete)
            res.options = p.get("options", res.options)
            res.type = p["resource_type"]
            if not res.exists:
                res.props = p["props"]
        return
    if action == "delete.requested":
        res = _resource(state, p, seq)
        res.pending = {"op": "delete", "seq": seq, "target": p["target"], "outputs": p["outputs"]}
        return
    # an imported object is recorded exactly like one this engine created
    created = action in ("created", "imported")
    res_or_none = _resource(state, p, seq) if created else state.resources.get(rid)
    if res_or_none is None:
        return
    res = res_or_none
    if created or action in ("updated", "replaced"):
        res.pending = None
        res.props = p["props"]
        res.outputs = p["outputs"]
        res.updated_seq = seq
        if "deps" in p:
            res.deps = p["deps"]
            res.refs = p.get("refs", {})
        if created:
            res.created_seq = seq
            res.delete = p.get("delete", res.delete)
            res.options = p.get("options", res.options)
        if action == "replaced" and p["retired"] is not None:
            res.retired.append(p["retired"])
        return
    if action in ("create.failed", "update.failed", "replace.failed"):
        if p.get("ambiguous"):
            return  # outcome unknown: stays pending until the next run reads the remote object
        res.pending = None
        if not res.exists and not res.retired:
            del state.resources[rid]
        return
    if action == "deleted":
        if p["target"] == "retired":
            res.retired = [r for r in res.retired if r.get("outputs") != p["outputs"]]
            res.pending = None
        else:
            _remove(state, rid)
        return
    if action == "delete.failed":
        res.pending = None
        return
    if action == "forgotten":
        if p.get("target") == "retired":
            res.retired = [r for r in res.retired if r.get("outputs") != p.get("outputs")]
        else:
            _remove(state, rid)
        return
    if action == "policy.changed":
        res.delete = p["delete"]
        res.options = p.get("options", res.options)
        return
    if action in ("recovered", "resolved"):
        _recovered(state, res, p)
        return
    if action == "drifted":
        _drifted(state, res, p)


# --- issue 13: drift, and exports that outlive their resource ------------------------------


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


def _drifted(state: StreamState, res: ResourceState, p: Json) -> None:
    """``journal refresh`` found the remote object gone (the stage forgets it, so the next
    deploy creates it again), or changed (its outputs, and the props they mirror, become
    what the API says: the next deploy puts the props back)."""
    if p["gone"]:
        _remove(state, res.id)
        return
    if p.get("outputs") is not None:
        res.outputs = p["outputs"]
    if p.get("props") is not None:
        res.props = p["props"]


def _recovered(state: StreamState, res: ResourceState, p: Json) -> None:
    op, found = p["op"], p["found"]
    res.pending = None
    if op == "create":
        if found:
            res.outputs = p["outputs"]
            res.props = p["props"]
        elif not res.exists:
            del state.resources[res.id]
    elif op in ("update", "replace"):
        if found:
            res.outputs = p["outputs"]
            if op == "replace":
                res.props = p["props"]
                if p.get("retired"):
                    res.retired.append(p["retired"])
    elif op == "delete" and not found:
        if p.get("target") == "retired":
            res.retired = [r for r in res.retired if r.get("outputs") != p.get("outputs")]
        else:
            _remove(state, res.id)


def fold(stream: str, events: Iterable[_Event], state: StreamState | None = None) -> StreamState:
    state = state if state is not None else StreamState(stream=stream)
    for ev in events:
        apply(state, ev.seq, ev.version, ev.payload)
    return state


class _Journal(Protocol):
    def read(
        self,
        stream: str | None = None,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> Iterable[_Event]: ...

    def latest_snapshot(
        self, stream: str, upto_seq: int | None = None
    ) -> tuple[int, dict[str, Any]] | None: ...

    def put_snapshot(self, stream: str, seq: int, state: dict[str, Any]) -> None: ...

    def head(self) -> tuple[int, str]: ...


def load_state(journal: _Journal, stream: str, upto_seq: int | None = None) -> StreamState:
    """The state of ``stream`` after global sequence ``upto_seq`` (default: now)."""
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
    after = state.seq if state is not None else 0
    return fold(stream, journal.read(stream, after_seq=after, upto_seq=upto_seq), state)


def snapshot_state(journal: _Journal, state: StreamState) -> None:
    """Write an encrypted snapshot of ``state`` (derivable; safe to lose)."""
    if state.seq > 0:
        journal.put_snapshot(state.stream, state.seq, state.to_json())


def rebuild_and_check(journal: _Journal, stream: str) -> tuple[bool, StreamState]:
    """Full fold from the first event, compared with what the snapshots give."""
    full = fold(stream, journal.read(stream))
    fast = load_state(journal, stream)
    return full.to_json() == fast.to_json(), full
