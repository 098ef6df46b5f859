"""The audit trail: one record per journal event, with who, when, where and what changed.

    with Journal.open(path) as jr:
        for rec in history(jr, stage="prod", since=parse_since("2d")):
            print(rec.seq, rec.actor, rec.action, rec.resource, rec.changes)

Every event carries the id of the run that wrote it; the run's ``run.started`` names the actor
and the host, so each record shows them. ``changes`` is a field-level diff against what the
resource held before the event (``props.<field>`` / ``outputs.<field>``: ``[old, new]``), or
against the program's previous exports for ``outputs.recorded``. Secrets are always masked:
nothing here ever holds a plaintext secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ._codec import mask, reveal
from ._errors import UnsupportedJournalError, UsageError
from ._events import (
    Created,
    CreateRequested,
    CredentialStored,
    Deleted,
    DeleteRequested,
    DomainEvent,
    Drifted,
    EventTable,
    Failed,
    Forgotten,
    Imported,
    OutputsRecorded,
    PolicyChanged,
    Recovered,
    Replaced,
    ReplaceRequested,
    Resolved,
    ResourceEvent,
    RunFinished,
    RunStarted,
    StageBound,
    Updated,
    UpdateRequested,
    decode,
)
from ._protocols import JournalLike as _Journal
from ._protocols import StoredEvent as _Event
from ._secret import MASK

__all__ = ["HistoryRecord", "history", "parse_since", "records"]

Json = dict[str, Any]

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "sec": "seconds", "m": "minutes", "min": "minutes", "h": "hours"}
_UNITS |= {"d": "days", "w": "weeks"}


@dataclass(frozen=True)
class HistoryRecord:
    """One event as the audit trail shows it (secrets masked)."""

    seq: int
    time: str | None
    actor: str | None
    host: str | None
    stream: str
    app: str | None
    stage: str | None
    run: str | None
    #: the event type without its ``resource.`` prefix: created, delete.requested, run.started
    action: str
    resource: str | None
    resource_type: str | None
    #: ``{field: [old, new]}``, masked
    changes: dict[str, list[Any]] = field(default_factory=dict)
    #: a short human note: the run's command, an error, a status
    detail: str | None = None

    def to_json(self) -> Json:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "host": self.host,
            "app": self.app,
            "stage": self.stage,
            "run": self.run,
            "action": self.action,
            "resource": self.resource,
            "type": self.resource_type,
            "changes": self.changes,
            "detail": self.detail,
        }


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``1h``, ``30m``, ``2d``, ``1w``, ``45s`` (that long ago) or an ISO 8601 time (a time
    without a zone is local time)."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(text)
    if m:
        unit = m.group(2).lower()
        return now - timedelta(**{_UNITS[unit]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not a time: give an ISO 8601 time (2024-05-01T10:00) "
            "or a relative one (30m, 1h, 2d, 1w)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _prefixed(prefix: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Json:
    """Field-level difference, secrets still in their JSON form: ``record`` masks them.
    Nested dicts and lists are compared inside (``props.bindings.HYPERDRIVE``)."""
    from ._refs import flatten

    old, new = flatten(old or {}), flatten(new or {})
    return {
        f"{prefix}.{k}": [old.get(k), new.get(k)]
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    }


def _split_stream(stream: str) -> tuple[str | None, str | None]:
    app, _, stage = stream.rpartition("/")
    if not app or app.startswith("_"):
        return None, None  # a reserved stream (profiles ...), not an app's stage
    return app, stage


#: what a describer says of one event: (changes, detail, the resource it names if not its own)
_Said = tuple[Json, str | None, str | None]
_Describe = Callable[["_Folder", str, Any], _Said]
#: how each event type shows in the audit trail (types absent: their name, nothing more); a
#: class without a describer of its own takes its base's (every ``Failed`` shows its error)
_DESCRIBE: EventTable[_Describe] = EventTable("describer", inherit=True)
_describes = _DESCRIBE.on
#: types that name their own actor and host (the others take their run's)
_SELF_ATTRIBUTED: tuple[type[DomainEvent], ...] = (RunStarted, CredentialStored, StageBound)


class _Folder:
    """What the records need to remember while walking the events in order."""

    def __init__(self, *, show_secrets: bool = False) -> None:
        self.shown = reveal if show_secrets else mask
        self.runs: dict[str, Json] = {}
        self.props: dict[tuple[str, str], Json | None] = {}
        self.outputs: dict[tuple[str, str], Json | None] = {}
        self.delete: dict[tuple[str, str], bool] = {}
        self.exports: dict[str, Json] = {}

    def record(self, ev: _Event) -> HistoryRecord:
        p = ev.payload
        kind = str(p.get("type"))
        try:
            typed: DomainEvent | None = decode(p)
        except UnsupportedJournalError:
            typed = None  # a type this version does not know: shown by its name alone
        run_id = p.get("run")
        app, stage = _split_stream(ev.stream)
        rid = p.get("resource")
        changes: Json = {}
        detail: str | None = None
        describe = _DESCRIBE.get(type(typed)) if typed is not None else None
        if describe is not None:
            changes, detail, named = describe(self, ev.stream, typed)
            rid = named if named is not None else rid
        action = kind[len("resource.") :] if kind.startswith("resource.") else kind
        run = self.runs.get(run_id, {}) if isinstance(run_id, str) else {}
        own = isinstance(typed, _SELF_ATTRIBUTED)
        actor = p.get("actor") if own else None
        host = p.get("host") if own else None
        return HistoryRecord(
            seq=ev.seq,
            time=p.get("time"),
            actor=actor or run.get("actor"),
            host=host or run.get("host"),
            stream=ev.stream,
            app=app,
            stage=stage,
            run=run_id if isinstance(run_id, str) else None,
            action=action,
            resource=rid if isinstance(rid, str) else None,
            resource_type=p.get("resource_type"),
            changes=self.shown(changes),
            detail=detail,
        )


@_describes(RunStarted)
def _run_started(folder: _Folder, stream: str, ev: RunStarted) -> _Said:
    run_id = ev.get("run")
    if isinstance(run_id, str):
        folder.runs[run_id] = {k: ev.get(k) for k in ("actor", "host", "command", "stage")}
    detail = str(ev.command)
    if ev.get("target_seq") is not None:
        detail += f" to sequence {ev.get('target_seq')}"
    if ev.get("program"):
        detail += f" ({ev.get('program')})"
    return {}, detail, None


@_describes(RunFinished)
def _run_finished(folder: _Folder, stream: str, ev: RunFinished) -> _Said:
    counts = ev.counts or {}
    detail = str(ev.status)
    if counts:
        detail += ": " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    failures = ev.get("failures") or []
    if failures:
        detail += "; failed: " + "; ".join(
            f"{f.get('resource')}: {f.get('error')}" for f in failures
        )
    return {}, detail, None


@_describes(OutputsRecorded)
def _outputs_recorded(folder: _Folder, stream: str, ev: OutputsRecorded) -> _Said:
    new = ev.outputs or {}
    changes = _prefixed("outputs", folder.exports.get(stream), new)
    folder.exports[stream] = new
    return changes, None, None


@_describes(CredentialStored)
def _credential_stored(folder: _Folder, stream: str, ev: CredentialStored) -> _Said:
    detail = f"profile {ev.profile!r}: {ev.name} ({ev.provider})"
    return {str(ev.name): [None, MASK]}, detail, f"{ev.provider}:{ev.name}"


def _key(stream: str, ev: ResourceEvent) -> tuple[str, str]:
    return (stream, str(ev.resource))


@_describes(CreateRequested, ReplaceRequested)
def _requested(folder: _Folder, stream: str, ev: CreateRequested | ReplaceRequested) -> _Said:
    return _prefixed("props", folder.props.get(_key(stream, ev)), ev.props), None, None


@_describes(UpdateRequested)
def _update_requested(folder: _Folder, stream: str, ev: UpdateRequested) -> _Said:
    old = ev.get("old_props", folder.props.get(_key(stream, ev)))
    return _prefixed("props", old, ev.props), None, None


@_describes(Created, Updated, Replaced, Imported)
def _succeeded(folder: _Folder, stream: str, ev: Created | Updated | Replaced | Imported) -> _Said:
    key = _key(stream, ev)
    changes = _prefixed("props", folder.props.get(key), ev.props)
    changes |= _prefixed("outputs", folder.outputs.get(key), ev.outputs)
    folder.props[key] = ev.props
    folder.outputs[key] = ev.outputs
    detail: str | None = None
    if isinstance(ev, Created | Imported):
        folder.delete[key] = bool(ev.get("delete", True))
        detail = "adopted an existing object" if ev.get("adopted") else None
        if isinstance(ev, Imported):
            detail = f"from {ev.source}"
    elif isinstance(ev, Replaced) and ev.retired is None:
        detail = "the old object was deleted first"
    return changes, detail, None


@_describes(Failed)
def _failed(folder: _Folder, stream: str, ev: Failed) -> _Said:
    detail = str(ev.error)
    if ev.get("ambiguous"):
        detail += " (outcome unknown: the next run checks the remote object)"
    return {}, detail, None


@_describes(DeleteRequested)
def _delete_requested(folder: _Folder, stream: str, ev: DeleteRequested) -> _Said:
    return {}, ("retired object" if ev.target == "retired" else None), None


@_describes(Deleted, Forgotten)
def _gone(folder: _Folder, stream: str, ev: Deleted | Forgotten) -> _Said:
    key = _key(stream, ev)
    changes: Json
    detail: str | None = None
    if ev.get("target") == "retired":
        changes = _prefixed("outputs", ev.get("outputs"), None)
        detail = "retired object"
    else:
        old_out = folder.outputs.get(key)
        changes = _prefixed("props", folder.props.get(key), None)
        changes |= _prefixed("outputs", old_out if old_out else ev.get("outputs"), None)
        folder.props.pop(key, None)
        folder.outputs.pop(key, None)
    if isinstance(ev, Forgotten):
        note = f"{ev.reason}: the remote object is kept"
        detail = f"{detail}; {note}" if detail else note
    elif ev.get("reason"):  # `journal local reset`
        detail = f"{detail}; {ev.get('reason')}" if detail else str(ev.get("reason"))
    return changes, detail, None


@_describes(PolicyChanged)
def _policy_changed(folder: _Folder, stream: str, ev: PolicyChanged) -> _Said:
    key = _key(stream, ev)
    new_delete = bool(ev.delete)
    changes: Json = {"delete": [folder.delete.get(key), new_delete]}
    folder.delete[key] = new_delete
    return changes, None, None


@_describes(Recovered, Resolved)
def _recovered(folder: _Folder, stream: str, ev: Recovered | Resolved) -> _Said:
    key = _key(stream, ev)
    found = "found" if ev.found else "not found"
    detail = f"interrupted {ev.op}: remote object {found}"
    if isinstance(ev, Resolved):
        detail = f"pending {ev.op} resolved by hand: remote object {found}"
    changes: Json = {}
    outputs = ev.get("outputs")
    if ev.found and outputs is not None and ev.op != "delete":
        changes = _prefixed("outputs", folder.outputs.get(key), outputs)
        folder.outputs[key] = outputs
        if ev.get("props") is not None:
            changes |= _prefixed("props", folder.props.get(key), ev.get("props"))
            folder.props[key] = ev.get("props")
    return changes, detail, None


# --- drift, and where a stage lives ----------------------------------------------------------


@_describes(Drifted)
def _drifted(folder: _Folder, stream: str, ev: Drifted) -> _Said:
    key = _key(stream, ev)
    old_props, old_out = folder.props.get(key), folder.outputs.get(key)
    if ev.gone:
        changes = _prefixed("props", old_props, None)
        changes |= _prefixed("outputs", old_out if old_out else ev.get("outputs"), None)
        folder.props.pop(key, None)
        folder.outputs.pop(key, None)
        return changes, "refresh: the remote object is gone; the next deploy creates it", None
    changes = _prefixed("outputs", old_out, ev.get("outputs"))
    changes |= _prefixed("props", old_props, ev.get("props"))
    folder.outputs[key] = ev.get("outputs")
    if ev.get("props") is not None:
        folder.props[key] = ev.get("props")
    return changes, "refresh: the remote object changed", None


@_describes(StageBound)
def _stage_bound(folder: _Folder, stream: str, ev: StageBound) -> _Said:
    target = str(ev.target)
    return (
        {},
        "the stage lives on " + ("the local APIs" if target == "local" else "the real APIs"),
        None,
    )


def records(events: Iterable[_Event], *, show_secrets: bool = False) -> Iterable[HistoryRecord]:
    """Every event as a record, in order (``events`` must start at the stream's beginning
    for the diffs to be against the right previous values). Secrets are masked unless
    ``show_secrets``."""
    folder = _Folder(show_secrets=show_secrets)
    for ev in events:
        yield folder.record(ev)


def history(
    journal: _Journal,
    *,
    stage: str | None = None,
    app: str | None = None,
    resource: str | None = None,
    since: datetime | None = None,
    run: str | None = None,
    limit: int | None = None,
) -> list[HistoryRecord]:
    """The audit trail, oldest first, filtered; ``limit`` keeps the newest ``limit`` records.

    ``stage``/``app`` keep the events of those app streams only (reserved streams such as
    stored credentials are shown only without them); ``run`` matches a run id or its prefix."""
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    streams = journal.streams()
    wanted = [
        s
        for s in streams
        if (stage is None and app is None)
        or (
            _split_stream(s)[0] is not None
            and (stage is None or _split_stream(s)[1] == stage)
            and (app is None or _split_stream(s)[0] == app)
        )
    ]
    if not wanted:
        return []
    events: Iterable[_Event] = journal.read(wanted[0]) if len(wanted) == 1 else journal.read()
    keep = set(wanted)
    out: list[HistoryRecord] = []
    for rec in records(e for e in events if e.stream in keep):
        if resource is not None and rec.resource != resource:
            continue
        if run is not None and not (rec.run or "").startswith(run):
            continue
        if since is not None:
            when = _parse_time(rec.time)
            if when is None or when < since:
                continue
        out.append(rec)
    if limit is not None:
        out = out[-limit:] if limit else []
    return out
