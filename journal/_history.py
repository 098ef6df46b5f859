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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ._codec import mask, reveal
from ._errors import UsageError
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


class _Event(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def stream(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


class _Journal(Protocol):
    def read(self, stream: str | None = None) -> Iterable[_Event]: ...

    def streams(self) -> list[str]: ...


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
    """Field-level difference, secrets still in their JSON form: ``record`` masks them."""
    old, new = old or {}, new or {}
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
        run_id = p.get("run")
        app, stage = _split_stream(ev.stream)
        rid = p.get("resource")
        key = (ev.stream, str(rid))
        changes: Json = {}
        detail: str | None = None
        if kind == "run.started":
            info = {k: p.get(k) for k in ("actor", "host", "command", "stage")}
            if isinstance(run_id, str):
                self.runs[run_id] = info
            detail = str(p.get("command"))
            if p.get("target_seq") is not None:
                detail += f" to sequence {p['target_seq']}"
            if p.get("program"):
                detail += f" ({p['program']})"
        elif kind == "run.finished":
            counts = p.get("counts") or {}
            detail = str(p.get("status"))
            if counts:
                detail += ": " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            failures = p.get("failures") or []
            if failures:
                detail += "; failed: " + "; ".join(
                    f"{f.get('resource')}: {f.get('error')}" for f in failures
                )
        elif kind == "outputs.recorded":
            new = p.get("outputs") or {}
            changes = _prefixed("outputs", self.exports.get(ev.stream), new)
            self.exports[ev.stream] = new
        elif kind == "credential.stored":
            detail = f"profile {p.get('profile')!r}: {p.get('name')} ({p.get('provider')})"
            changes = {str(p.get("name")): [None, MASK]}
            rid = f"{p.get('provider')}:{p.get('name')}"
        elif kind == "stage.bound":
            detail = _bound_detail(p)
        elif kind.startswith("resource."):
            changes, detail = self._resource(kind[len("resource.") :], key, p)
        action = kind[len("resource.") :] if kind.startswith("resource.") else kind
        run = self.runs.get(run_id, {}) if isinstance(run_id, str) else {}
        own = kind in ("run.started", "credential.stored", "stage.bound")
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

    def _resource(self, action: str, key: tuple[str, str], p: Json) -> tuple[Json, str | None]:
        old_props = self.props.get(key)
        old_out = self.outputs.get(key)
        changes: Json = {}
        detail: str | None = None
        if action in ("create.requested", "replace.requested"):
            changes = _prefixed("props", old_props, p.get("props"))
        elif action == "update.requested":
            changes = _prefixed("props", p.get("old_props", old_props), p.get("props"))
        elif action in ("created", "updated", "replaced", "imported"):
            changes = _prefixed("props", old_props, p.get("props"))
            changes |= _prefixed("outputs", old_out, p.get("outputs"))
            self.props[key] = p.get("props")
            self.outputs[key] = p.get("outputs")
            if action in ("created", "imported"):
                self.delete[key] = bool(p.get("delete", True))
                detail = "adopted an existing object" if p.get("adopted") else None
                if action == "imported":
                    detail = f"from {p.get('source')}"
            elif action == "replaced" and p.get("retired") is None:
                detail = "the old object was deleted first"
        elif action.endswith(".failed"):
            detail = str(p.get("error"))
            if p.get("ambiguous"):
                detail += " (outcome unknown: the next run checks the remote object)"
        elif action == "delete.requested":
            detail = "retired object" if p.get("target") == "retired" else None
        elif action in ("deleted", "forgotten"):
            if p.get("target") == "retired":
                changes = _prefixed("outputs", p.get("outputs"), None)
                detail = "retired object"
            else:
                changes = _prefixed("props", old_props, None)
                changes |= _prefixed("outputs", old_out if old_out else p.get("outputs"), None)
                self.props.pop(key, None)
                self.outputs.pop(key, None)
            if action == "forgotten":
                note = f"{p.get('reason')}: the remote object is kept"
                detail = f"{detail}; {note}" if detail else note
            elif p.get("reason"):  # issue 13: `journal local reset`
                detail = f"{detail}; {p['reason']}" if detail else str(p["reason"])
        elif action == "policy.changed":
            new_delete = bool(p.get("delete"))
            changes = {"delete": [self.delete.get(key), new_delete]}
            self.delete[key] = new_delete
        elif action == "drifted":
            changes, detail = self._drifted(key, p, old_props, old_out)
        elif action in ("recovered", "resolved"):
            found = "found" if p.get("found") else "not found"
            detail = f"interrupted {p.get('op')}: remote object {found}"
            if action == "resolved":
                detail = f"pending {p.get('op')} resolved by hand: remote object {found}"
            if p.get("found") and p.get("outputs") is not None and p.get("op") != "delete":
                changes = _prefixed("outputs", old_out, p.get("outputs"))
                self.outputs[key] = p.get("outputs")
                if p.get("props") is not None:
                    changes |= _prefixed("props", old_props, p.get("props"))
                    self.props[key] = p.get("props")
        return changes, detail

    # --- issue 13: drift -------------------------------------------------------------------

    def _drifted(
        self, key: tuple[str, str], p: Json, old_props: Json | None, old_out: Json | None
    ) -> tuple[Json, str]:
        if p.get("gone"):
            changes = _prefixed("props", old_props, None)
            changes |= _prefixed("outputs", old_out if old_out else p.get("outputs"), None)
            self.props.pop(key, None)
            self.outputs.pop(key, None)
            return changes, "refresh: the remote object is gone; the next deploy creates it"
        changes = _prefixed("outputs", old_out, p.get("outputs"))
        changes |= _prefixed("props", old_props, p.get("props"))
        self.outputs[key] = p.get("outputs")
        if p.get("props") is not None:
            self.props[key] = p.get("props")
        return changes, "refresh: the remote object changed"


def _bound_detail(p: Json) -> str:
    target = str(p.get("target"))
    return "the stage lives on " + ("the local API" if target == "local" else target)


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
