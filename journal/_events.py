"""Durable event types: names that never change, an explicit schema version, and upcasters.

Every payload appended to the journal is ``{"type": NAME, "v": VERSION, ...fields}``. The
name is a durable identifier (renaming a Python class never renames an event); the version
changes when the fields change, and an upcaster turns the stored older shape into the
current one on read. Stored rows are never rewritten.

Lifecycle (DESIGN.md §4): every provider call is bracketed by an intent event
(``*.requested``) appended before the call and an outcome event after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._errors import UnsupportedJournalError

__all__ = [
    "EVENT_TYPES",
    "EventType",
    "make_event",
    "upcast",
]

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    required: frozenset[str]
    summary: str
    # upcasters[v] turns a version-v payload into version v+1
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)


EVENT_TYPES: dict[str, EventType] = {}


def _register(
    name: str,
    summary: str,
    required: tuple[str, ...] = (),
    version: int = 1,
    upcasters: Mapping[int, Upcaster] | None = None,
) -> None:
    if name in EVENT_TYPES:
        raise ValueError(f"event type {name!r} registered twice")
    missing = [v for v in range(1, version) if not upcasters or v not in upcasters]
    if missing:
        raise ValueError(f"event type {name!r} v{version} lacks upcasters from {missing}")
    EVENT_TYPES[name] = EventType(name, version, frozenset(required), summary, upcasters or {})


_RES = ("resource", "resource_type")

# runs
_register(
    "run.started",
    "a run began",
    ("app", "stage", "command", "actor", "host", "pid"),
)
_register("run.finished", "a run ended", ("status", "counts", "duration_s"))
# create
_register("resource.create.requested", "about to create", (*_RES, "props", "deps"))
_register("resource.created", "created", (*_RES, "props", "outputs", "deps"))
_register("resource.create.failed", "create failed", (*_RES, "error"))
# update in place
_register("resource.update.requested", "about to update", (*_RES, "props", "old_props"))
_register("resource.updated", "updated in place", (*_RES, "props", "outputs"))
_register("resource.update.failed", "update failed", (*_RES, "error"))
# replace: a new object is created, the old one is retired and deleted at finalize
_register("resource.replace.requested", "about to replace", (*_RES, "props", "old_props"))
_register("resource.replaced", "replaced", (*_RES, "props", "outputs", "retired"))
_register("resource.replace.failed", "replace failed", (*_RES, "error"))
# delete (target "current" or "retired")
_register("resource.delete.requested", "about to delete", (*_RES, "target", "outputs"))
_register("resource.deleted", "deleted", (*_RES, "target", "outputs"))
_register("resource.delete.failed", "delete failed", (*_RES, "target", "error"))
# no provider call
_register("resource.forgotten", "forgotten, remote object kept", (*_RES, "reason"))
_register("resource.policy.changed", "delete policy or options changed", (*_RES, "delete"))
_register("resource.recovered", "pending operation resolved", (*_RES, "op", "found"))
# brought over from another tool's state (journal import-alchemy): folds like "created"
_register(
    "resource.imported",
    "imported, remote object unchanged",
    (*_RES, "props", "outputs", "deps", "source"),
)
# reading the remote object failed: the operation stays pending for the next run
_register("resource.recover.failed", "pending operation not resolved", (*_RES, "op", "error"))
# the program's exports
_register("outputs.recorded", "program outputs recorded", ("outputs",))
# provider credentials stored by `journal configure`
_register("credential.stored", "credential stored", ("profile", "provider", "name"))


# --- issue 13: where a stage lives, drift, state surgery (journal._binding, _refresh, _surgery)
# the stage's target, recorded by its first deploy: "local" or an API origin
_register("stage.bound", "the stage is bound to where it lives", ("target",))
# `journal refresh`: what the API says now about a recorded object (gone, or its outputs and
# the props they mirror)
_register("resource.drifted", "drift found by a refresh", (*_RES, "gone"))
# `journal state resolve`: a pending operation resolved by hand (folds like "recovered")
_register("resource.resolved", "pending operation resolved by hand", (*_RES, "op", "found"))
# `journal state forget` and `journal local reset` use "resource.forgotten" (with a reason);
# `journal state import` uses "resource.imported" (with its source)

#: lifecycle actions as shown by `history` (event type -> short verb)
INTENT_SUFFIX: Final = ".requested"


def make_event(name: str, /, **fields: Any) -> Payload:
    """Build a payload of the current version of ``name``, checking its required fields."""
    et = EVENT_TYPES.get(name)
    if et is None:
        raise ValueError(f"unknown event type {name!r}")
    missing = et.required - fields.keys()
    if missing:
        raise ValueError(f"event {name!r} lacks fields {sorted(missing)}")
    return {"type": name, "v": et.version, **fields}


def upcast(payload: Mapping[str, Any]) -> Payload:
    """Return ``payload`` in the current version of its type (old versions are upcast)."""
    name = payload.get("type")
    et = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if et is None:
        raise UnsupportedJournalError(
            f"event type {name!r} is unknown to this version of journal: upgrade journal"
        )
    version = payload.get("v", 1)
    if not isinstance(version, int) or version > et.version:
        raise UnsupportedJournalError(
            f"event {name!r} v{version} was written by a newer journal "
            f"(this one reads up to v{et.version}): upgrade journal"
        )
    out = dict(payload)
    while version < et.version:
        out = et.upcasters[version](out)
        version += 1
        out["v"] = version
    return out
