"""Durable event types: names that never change, an explicit schema version, and upcasters.

Every payload appended to the journal is ``{"type": NAME, "v": VERSION, ...fields}``. The
name is a durable identifier (renaming a Python class never renames an event); the version
changes when the fields change, and an upcaster turns the stored older shape into the
current one on read. Stored rows are never rewritten.

Each type is one frozen dataclass (a ``DomainEvent`` subclass): its fields are the type's
required fields; anything else the payload holds (optional fields such as ``run``, ``time``,
``refs``, ``ambiguous``) is kept, untouched, in ``extra`` and read with ``event.get(name)``.
So ``decode(payload).to_payload() == payload`` for every stored payload: the encoding of an
event never changes (``tests/test_fixture_journal.py`` checks it on a journal written before
the classes existed). The projection (``_projection.py``) and the audit trail
(``_history.py``) dispatch on the class through a table; a type they have no entry for folds
to nothing and shows as its name.

Lifecycle (DESIGN.md §4): every provider call is bracketed by an intent event
(``*.requested``) appended before the call and an outcome event after it.

Adding an event type is one change, here:

    @event_type("stage.bound", "stage bound to a journal")
    @dataclass(frozen=True, kw_only=True)
    class StageBound(DomainEvent):
        app: str
        stage: str

or, without a class of your own (its fields are then typed ``Any``)::

    _register("stage.bound", "stage bound to a journal", ("app", "stage"))

Emit it with ``StageBound(app=..., stage=...).to_payload()`` or ``make_event("stage.bound",
app=..., stage=...)`` (the same bytes). Only if it changes the state of a stage, give it a fold
function in ``_projection.py`` (``@_folds(StageBound)``); only if ``journal history`` should
say more than its name, a describer in ``_history.py`` (``@_describes(StageBound)``). Changing
the fields of an existing type: bump its version and add an upcaster from the old one
(``upcasters={1: fn}``); never edit stored rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Generic, TypeVar

from ._errors import UnsupportedJournalError

__all__ = [
    "EVENT_TYPES",
    "CreateFailed",
    "CreateRequested",
    "Created",
    "CredentialStored",
    "DeleteFailed",
    "DeleteRequested",
    "Deleted",
    "DomainEvent",
    "Drifted",
    "EventTable",
    "EventType",
    "Failed",
    "Forgotten",
    "Imported",
    "OutputsRecorded",
    "PolicyChanged",
    "RecoverFailed",
    "Recovered",
    "ReplaceFailed",
    "ReplaceRequested",
    "Replaced",
    "Requested",
    "Resolved",
    "ResourceEvent",
    "RunFinished",
    "RunStarted",
    "StageBound",
    "UpdateFailed",
    "UpdateRequested",
    "Updated",
    "decode",
    "event_type",
    "make_event",
    "upcast",
]

Payload = dict[str, Any]
Json = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
E = TypeVar("E", bound="DomainEvent")
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    required: frozenset[str]
    summary: str
    # upcasters[v] turns a version-v payload into version v+1
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)
    #: the dataclass of this type
    cls: type[DomainEvent] | None = None


EVENT_TYPES: dict[str, EventType] = {}
_CLASSES: dict[str, type[DomainEvent]] = {}


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """One event of a known type, in its current version (see the module docstring)."""

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    #: the required fields, in declaration order (set by ``event_type``)
    FIELDS: ClassVar[tuple[str, ...]] = ()
    #: the payload keys that are not ``extra``: the fields, "type" and "v"
    _NOT_EXTRA: ClassVar[frozenset[str]] = frozenset({"type", "v"})

    #: every other field of the payload, as stored
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls: type[E], payload: Mapping[str, Any]) -> E:
        """The event from a payload of the current version (``decode`` upcasts first)."""
        skip = cls._NOT_EXTRA
        try:
            fields_ = {k: payload[k] for k in cls.FIELDS}
        except KeyError as exc:
            raise UnsupportedJournalError(
                f"event {cls.NAME!r} lacks its field {exc.args[0]!r}: the journal was not "
                "written by journal or is damaged"
            ) from None
        # what the dataclass __init__ would do, minus a frozen __setattr__ per field (this is
        # on the fold's path for every event)
        event = object.__new__(cls)
        event.__dict__.update(fields_)
        extra = dict(payload)
        for key in skip:
            extra.pop(key, None)
        event.__dict__["extra"] = extra
        return event

    def to_payload(self) -> Payload:
        """The payload as stored: ``{"type", "v", fields..., extra...}``."""
        out: Payload = {"type": self.NAME, "v": self.VERSION}
        for name in self.FIELDS:
            out[name] = getattr(self, name)
        out.update(self.extra)
        return out

    def get(self, name: str, default: Any = None) -> Any:
        """A field by name, required or optional; ``default`` when the event has none."""
        if name in self._NOT_EXTRA:
            return self.__dict__.get(name, default)  # a field ("type" and "v" are not kept)
        return self.extra.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.extra or (name in self._NOT_EXTRA and name in self.__dict__)


class EventTable(Generic[H]):
    """Handlers keyed by event class: the fold and the history each keep one and dispatch
    on it. ``inherit``: a class with no handler of its own takes its nearest base's."""

    def __init__(self, what: str, *, inherit: bool = False) -> None:
        self._what = what
        self._inherit = inherit
        self._handlers: dict[type[DomainEvent], H] = {}

    def on(self, *classes: type[DomainEvent]) -> Callable[[H], H]:
        """Decorator: register the function as the handler of ``classes``."""

        def register(fn: H) -> H:
            for cls in classes:
                if cls in self._handlers:
                    raise ValueError(f"{cls.__name__} already has a {self._what}")
                self._handlers[cls] = fn
            return fn

        return register

    def get(self, cls: type[DomainEvent]) -> H | None:
        if not self._inherit:
            return self._handlers.get(cls)
        for base in cls.__mro__:
            found = self._handlers.get(base)
            if found is not None:
                return found
        return None


def event_type(
    name: str,
    summary: str,
    *,
    version: int = 1,
    upcasters: Mapping[int, Upcaster] | None = None,
) -> Callable[[type[E]], type[E]]:
    """Register a ``DomainEvent`` dataclass under the durable ``name``."""

    def register(cls: type[E]) -> type[E]:
        if name in EVENT_TYPES:
            raise ValueError(f"event type {name!r} registered twice")
        missing = [v for v in range(1, version) if not upcasters or v not in upcasters]
        if missing:
            raise ValueError(f"event type {name!r} v{version} lacks upcasters from {missing}")
        params = cls.__dict__.get("__dataclass_params__")  # the class itself, not a base
        if params is None or not params.frozen:
            raise ValueError(f"event type {name!r}: {cls.__name__} must be a frozen dataclass")
        fields_ = tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")
        reserved = {"type", "v"} & set(fields_)
        if reserved:
            raise ValueError(f"event type {name!r}: fields {sorted(reserved)} are reserved")
        cls.NAME, cls.VERSION, cls.FIELDS = name, version, fields_
        cls._NOT_EXTRA = frozenset({"type", "v", *fields_})
        EVENT_TYPES[name] = EventType(
            name, version, frozenset(fields_), summary, upcasters or {}, cls
        )
        _CLASSES[name] = cls
        return cls

    return register


def _register(
    name: str,
    summary: str,
    required: tuple[str, ...] = (),
    version: int = 1,
    upcasters: Mapping[int, Upcaster] | None = None,
) -> None:
    """Register an event type without writing its class: one is made with ``required`` as
    its fields (typed ``Any``)."""
    cls_name = "".join(part.capitalize() for part in name.replace("_", ".").split("."))
    cls = dataclasses.make_dataclass(
        cls_name,
        [(f, Any) for f in required],
        bases=(DomainEvent,),
        frozen=True,
        kw_only=True,
    )
    cls.__module__ = __name__
    event_type(name, summary, version=version, upcasters=upcasters)(cls)


# --- runs ------------------------------------------------------------------------------------


@event_type("run.started", "a run began")
@dataclass(frozen=True, kw_only=True)
class RunStarted(DomainEvent):
    app: str
    stage: str
    command: str
    actor: str
    host: str
    pid: int


@event_type("run.finished", "a run ended")
@dataclass(frozen=True, kw_only=True)
class RunFinished(DomainEvent):
    status: str
    counts: dict[str, int]
    duration_s: float


# --- resources -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ResourceEvent(DomainEvent):
    """An event about one resource of the stage (logical id and provider type)."""

    resource: str
    resource_type: str


@dataclass(frozen=True, kw_only=True)
class Requested(ResourceEvent):
    """An intent: a provider call is about to be made (``op`` names it)."""

    OP: ClassVar[str] = ""
    props: Json


@dataclass(frozen=True, kw_only=True)
class Failed(ResourceEvent):
    """The provider call, or the read of a pending one, failed (``ambiguous``: the call may
    have happened; the outcome stays unknown until the next run)."""

    error: str


@event_type("resource.create.requested", "about to create")
@dataclass(frozen=True, kw_only=True)
class CreateRequested(Requested):
    OP: ClassVar[str] = "create"
    deps: list[str]


@event_type("resource.created", "created")
@dataclass(frozen=True, kw_only=True)
class Created(ResourceEvent):
    props: Json
    outputs: Json
    deps: list[str]


@event_type("resource.create.failed", "create failed")
@dataclass(frozen=True, kw_only=True)
class CreateFailed(Failed):
    pass


# update in place
@event_type("resource.update.requested", "about to update")
@dataclass(frozen=True, kw_only=True)
class UpdateRequested(Requested):
    OP: ClassVar[str] = "update"
    old_props: Json


@event_type("resource.updated", "updated in place")
@dataclass(frozen=True, kw_only=True)
class Updated(ResourceEvent):
    props: Json
    outputs: Json


@event_type("resource.update.failed", "update failed")
@dataclass(frozen=True, kw_only=True)
class UpdateFailed(Failed):
    pass


# replace: a new object is created, the old one is retired and deleted at finalize
@event_type("resource.replace.requested", "about to replace")
@dataclass(frozen=True, kw_only=True)
class ReplaceRequested(Requested):
    OP: ClassVar[str] = "replace"
    old_props: Json


@event_type("resource.replaced", "replaced")
@dataclass(frozen=True, kw_only=True)
class Replaced(ResourceEvent):
    props: Json
    outputs: Json
    #: the old object ({"props", "outputs", "deps"}), None when it was deleted first
    retired: Json | None


@event_type("resource.replace.failed", "replace failed")
@dataclass(frozen=True, kw_only=True)
class ReplaceFailed(Failed):
    pass


# delete (target "current" or "retired")
@event_type("resource.delete.requested", "about to delete")
@dataclass(frozen=True, kw_only=True)
class DeleteRequested(ResourceEvent):
    target: str
    outputs: Json | None


@event_type("resource.deleted", "deleted")
@dataclass(frozen=True, kw_only=True)
class Deleted(ResourceEvent):
    target: str
    outputs: Json | None


@event_type("resource.delete.failed", "delete failed")
@dataclass(frozen=True, kw_only=True)
class DeleteFailed(Failed):
    target: str


# no provider call
@event_type("resource.forgotten", "forgotten, remote object kept")
@dataclass(frozen=True, kw_only=True)
class Forgotten(ResourceEvent):
    reason: str


@event_type("resource.policy.changed", "delete policy or options changed")
@dataclass(frozen=True, kw_only=True)
class PolicyChanged(ResourceEvent):
    delete: bool


@event_type("resource.recovered", "pending operation resolved")
@dataclass(frozen=True, kw_only=True)
class Recovered(ResourceEvent):
    op: str
    found: bool


# brought over from another tool's state (journal import-alchemy): folds like "created"
@event_type("resource.imported", "imported, remote object unchanged")
@dataclass(frozen=True, kw_only=True)
class Imported(ResourceEvent):
    props: Json
    outputs: Json
    deps: list[str]
    source: str


# reading the remote object failed: the operation stays pending for the next run
@event_type("resource.recover.failed", "pending operation not resolved")
@dataclass(frozen=True, kw_only=True)
class RecoverFailed(Failed):
    op: str


# --- the program's exports and stored credentials --------------------------------------------


@event_type("outputs.recorded", "program outputs recorded")
@dataclass(frozen=True, kw_only=True)
class OutputsRecorded(DomainEvent):
    outputs: Json


# provider credentials stored by `journal configure`
@event_type("credential.stored", "credential stored")
@dataclass(frozen=True, kw_only=True)
class CredentialStored(DomainEvent):
    profile: str
    provider: str
    name: str


# --- where a stage lives, drift, state surgery (journal._binding, _refresh, _surgery) --------


# the stage's target, recorded by its first deploy: "local" (or an API origin)
@event_type("stage.bound", "the stage is bound to where it lives")
@dataclass(frozen=True, kw_only=True)
class StageBound(DomainEvent):
    target: str


# `journal refresh`: what the API says now about a recorded object (gone, or its outputs and
# the props they mirror)
@event_type("resource.drifted", "drift found by a refresh")
@dataclass(frozen=True, kw_only=True)
class Drifted(ResourceEvent):
    gone: bool


# `journal state resolve`: a pending operation resolved by hand (folds like "recovered");
# `journal state forget` and `journal local reset` use "resource.forgotten"/"resource.deleted"
# (with a reason), `journal state import` uses "resource.imported" (with its source)
@event_type("resource.resolved", "pending operation resolved by hand")
@dataclass(frozen=True, kw_only=True)
class Resolved(ResourceEvent):
    op: str
    found: bool


#: lifecycle actions as shown by `history` (event type -> short verb)
INTENT_SUFFIX: Final = ".requested"


def make_event(name: str, /, **fields: Any) -> Payload:
    """Build a payload of the current version of ``name``, checking its required fields.

    The same payload as ``Class(**fields).to_payload()``, without building the object (this
    is on the engine's path for every event)."""
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
    if version == et.version:
        return dict(payload)
    out = dict(payload)
    while version < et.version:
        out = et.upcasters[version](out)
        version += 1
        out["v"] = version
    return out


def decode(payload: Mapping[str, Any]) -> DomainEvent:
    """The typed event of a stored payload, upcast to the current version of its type.
    ``UnsupportedJournalError`` for an unknown type or a newer version."""
    name = payload.get("type")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is not None and payload.get("v", 1) == cls.VERSION:
        return cls.from_payload(payload)  # the current version: nothing to upcast or copy
    current = upcast(payload)
    return _CLASSES[current["type"]].from_payload(current)
