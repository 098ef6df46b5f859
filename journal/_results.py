"""What the engine takes and gives: desired resources, the changes a run made, its result,
and the progress reporter it calls. Plain records, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from ._refs import Ref, find_refs
from ._secret import Secret

__all__ = ["Change", "Desired", "Progress", "Ref", "Reporter", "RunResult", "Silent"]


@dataclass
class Desired:
    """A resource as the program (or a rollback target) wants it."""

    id: str
    type: str
    props: dict[str, Any]
    delete: bool
    adopt: bool = False
    #: the resource's own ``service_token=`` (kept for callers of the first API; it goes
    #: into ``credentials``)
    service_token: Secret | None = None
    #: per-resource credentials (a credential name the provider declares -> value)
    credentials: dict[str, Secret] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.credentials = dict(self.credentials)
        if self.service_token is not None:
            self.credentials.setdefault("service_token", self.service_token)

    @cached_property
    def deps(self) -> list[str]:
        """The resources referenced anywhere in the props (``_refs.find_refs``); found once:
        the engine asks for them at declaration, scheduling and recording."""
        return sorted({ref.resource for _path, ref in find_refs(self.props)})


@dataclass(frozen=True)
class Change:
    resource: str
    type: str
    action: str  # create | adopt | update | replace | delete | forget | noop | recover
    diff: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    run_id: str
    stream: str
    command: str
    status: str  # succeeded | failed | planned | interrupted
    duration_s: float
    changes: list[Change]
    failures: list[tuple[str, str]]
    outputs: dict[str, Any]
    #: interrupted runs: resources whose call was never started (nothing sent, nothing pending)
    not_started: list[str] = field(default_factory=list)
    #: resources whose intent is recorded without an outcome (the next run resolves them)
    pending: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            key = "failed" if c.error is not None else c.action
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "interrupted")


class Reporter(Protocol):
    """Progress sink (the CLI prints; tests collect).

    ``resource`` is called when a provider call starts (``phase`` ``"start"``) and when it
    ends (``"done"`` or ``"failed"``, with its duration and error); a resource found unchanged
    makes no call and is not reported. A reporter that also wants to count every resource
    implements :class:`Progress` as well (optional)."""

    def resource(
        self,
        resource: str,
        type_name: str,
        action: str,
        phase: str,
        seconds: float,
        error: str | None,
    ) -> None: ...

    def message(self, text: str) -> None: ...


@runtime_checkable
class Progress(Protocol):
    """Optional for a :class:`Reporter`: how many resources a run will settle, and each one
    settled (changed, unchanged, failed or skipped), for a ``done/total`` counter.

    ``expect`` may be called more than once in a run (a program declares in batches, then
    orphans are deleted); ``settled`` is called from the engine's worker threads."""

    def expect(self, count: int) -> None: ...

    def settled(self) -> None: ...


class Silent:
    def resource(
        self,
        resource: str,
        type_name: str,
        action: str,
        phase: str,
        seconds: float,
        error: str | None,
    ) -> None:
        pass

    def message(self, text: str) -> None:
        pass
