"""Where a stage lives: bound to its target by its first deploy (issue 13).

A target is ``"local"`` (the providers' local APIs the CLI starts, whatever their ports) or
``"remote"`` (the real APIs; which origin each object lives on is recorded with the object
itself and checked by the engine, see ``_identity``). The first run that deploys a stage
appends ``stage.bound`` ``{"target": ...}`` to the stage's stream; every later command on the
stage goes there without being told, and one that asks for another target is refused with a
message that says what to type (the CLI words it: it knows the flags). Stages recorded before
bindings existed have no such event: their binding is inferred from the endpoints their objects
recorded (``local:<id>`` or ``local`` -> local, else the origin), when they all agree.

The engine knows no provider by name and nothing here does either: the CLI names targets.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ._events import make_event
from ._projection import StreamState, load_state

__all__ = [
    "LOCAL",
    "REMOTE",
    "Binding",
    "binding_of",
    "describe",
    "record_binding",
    "stage_binding",
    "target_of_endpoint",
]

LOCAL: Final = "local"
REMOTE: Final = "remote"


@dataclass(frozen=True)
class Binding:
    """A stage's target, and how it is known."""

    target: str
    #: the ``stage.bound`` event's sequence; None: inferred from the objects' endpoints
    seq: int | None = None

    @property
    def recorded(self) -> bool:
        return self.seq is not None

    @property
    def local(self) -> bool:
        return self.target == LOCAL


def describe(target: str) -> str:
    return "the local APIs" if target == LOCAL else "the real APIs"


def target_of_endpoint(endpoint: str) -> str:
    """The target an object's recorded endpoint belongs to."""
    return LOCAL if endpoint == LOCAL or endpoint.startswith(LOCAL + ":") else REMOTE


def binding_of(state: StreamState) -> Binding | None:
    """The stage's binding: recorded, else inferred from its objects (None: not known)."""
    if state.binding is not None:
        target = target_of_endpoint(str(state.binding["target"]))
        return Binding(target, int(state.binding["seq"]))
    targets = {
        target_of_endpoint(str(r.options["endpoint"]))
        for r in state.resources.values()
        if r.options.get("endpoint")
    }
    return Binding(targets.pop()) if len(targets) == 1 else None


def _streams_of(journal: Any, stage: str, app: str | None) -> list[str]:
    out = []
    for stream in journal.streams():
        a, _, s = stream.rpartition("/")
        if a and not a.startswith("_") and s == stage and (app is None or a == app):
            out.append(stream)
    return sorted(out)


def stage_binding(journal: Any, stage: str, app: str | None = None) -> Binding | None:
    """The binding of ``stage`` (of ``app``, else of whichever apps hold it: a journal
    usually holds one). Apps whose bindings disagree give the recorded one of the first."""
    found: list[Binding] = []
    for stream in _streams_of(journal, stage, app):
        # read only: the run that follows takes this state over instead of loading it again
        binding = binding_of(load_state(journal, stream, share=True))
        if binding is not None:
            found.append(binding)
    recorded = [b for b in found if b.recorded]
    chosen = recorded or found
    return chosen[0] if chosen else None


def record_binding(journal: Any, streams: Iterable[str], target: str) -> list[str]:
    """Append ``stage.bound`` to each stream that has none recorded yet; the streams bound."""
    bound = []
    for stream in sorted(set(streams)):
        state = load_state(journal, stream)
        if state.binding is not None:
            continue
        event = make_event(
            "stage.bound",
            target=target,
            actor=_actor(),
            host=socket.gethostname(),
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        journal.append(stream, [event])
        bound.append(stream)
    return bound


def _actor() -> str:
    from ._engine import actor

    return actor()
