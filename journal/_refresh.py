"""Drift (issue 13): read every recorded object from its API and record what changed.

    with Journal.open(path) as jr:
        report = refresh_stage(jr, "demo", "prod", credentials={})
        for drift in report.drifts:
            print(drift.resource, drift.kind, drift.changes)

Each recorded object is read through its provider's ``read`` (by id, through the API it was
created through: ``check_endpoint``). What differs is recorded as ``resource.drifted``:

- ``gone``: the API has no such object (and the credentials that created it say so: a 404
  under another workspace's token proves nothing). The stage forgets it, so the next deploy
  plans it for re-creation, and the exports that held its values are dropped.
- changed: the outputs now (renamed, another region ...) and the props that mirror them (a
  props field with the same name as an outputs field); the next deploy puts the props back
  (an update, or a replace where the field cannot change in place).

Objects with a pending operation are left to the next run's recovery. Nothing is written
when nothing drifted, except the session's ``run.started``/``run.finished``.

:func:`usable_outputs` is the other half of "outputs never prints a dead value": exports
whose value only a resource with a pending operation holds are withheld.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ._codec import encode
from ._errors import ProviderError
from ._identity import check_endpoint
from ._projection import ResourceState, StreamState
from ._provider import Endpoint, get_provider
from ._secret import Secret
from ._surgery import StageSession, gone_check, stage_session

__all__ = ["Drift", "RefreshReport", "refresh_stage", "usable_outputs"]

#: reads at once (an API's rate limit matters more than speed here)
_READERS = 8


@dataclass(frozen=True)
class Drift:
    resource: str
    type: str
    #: "gone" or "changed"
    kind: str
    #: ``{"outputs.name": [old, new], "props.name": [old, new]}`` (JSON values, not masked)
    changes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class RefreshReport:
    stream: str
    checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    #: resources not read: (id, why) — a pending operation, an API that did not answer
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _mirrored(props: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """``props`` with each field that the outputs also name set to the outputs' value."""
    return {
        k: (outputs[k] if k in outputs and v is not None and outputs[k] is not None else v)
        for k, v in props.items()
    }


def _diff(prefix: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {
        f"{prefix}.{k}": [old.get(k), new.get(k)]
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    }


def _read(session: StageSession, res: ResourceState) -> tuple[Any, str | None]:
    provider = get_provider(res.type)
    ctx = session.context(res)
    endpoint = provider.endpoint(ctx)
    check_endpoint(res.id, res.options, endpoint)
    assert res.outputs is not None
    found = provider.read(provider.load_props(res.props), provider.load_outputs(res.outputs), ctx)
    return found, endpoint


def refresh_stage(
    journal: Any,
    app: str,
    stage: str,
    *,
    credentials: Mapping[str, Secret] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    lock_timeout: float = 0.0,
    on_drift: Callable[[Drift], None] | None = None,
) -> RefreshReport:
    """Read every recorded object of the stage and record what drifted (see module doc)."""
    with stage_session(
        journal,
        app,
        stage,
        "refresh",
        credentials=credentials,
        endpoints=endpoints,
        lock_timeout=lock_timeout,
    ) as session:
        report = RefreshReport(session.stream)
        todo = []
        for res in sorted(session.state.resources.values(), key=lambda r: r.id):
            if res.pending is not None:
                report.skipped.append((res.id, f"a pending {res.pending.get('op')}"))
            elif res.outputs is not None:
                todo.append(res)
        with ThreadPoolExecutor(_READERS, thread_name_prefix="journal-refresh") as pool:
            reads = [(res, pool.submit(_read, session, res)) for res in todo]
        for res, fut in reads:
            try:
                found, endpoint = fut.result()
            except ProviderError as exc:
                report.skipped.append((res.id, str(exc)))
                continue
            report.checked += 1
            drift = _record(session, res, found, endpoint, report)
            if drift is not None:
                report.drifts.append(drift)
                if on_drift is not None:
                    on_drift(drift)
        return report


def _record(
    session: StageSession,
    res: ResourceState,
    found: Any,
    endpoint: str | None,
    report: RefreshReport,
) -> Drift | None:
    assert res.outputs is not None
    if found is None:
        why = gone_check(session, res, endpoint)
        if why is not None:
            report.skipped.append((res.id, why))
            return None
        session.append("resource.drifted", res, gone=True, outputs=res.outputs)
        return Drift(res.id, res.type, "gone", _diff("outputs", res.outputs, {}))
    outputs = encode(found)
    if outputs == res.outputs:
        return None
    props = _mirrored(res.props, outputs)
    changes = _diff("outputs", res.outputs, outputs) | _diff("props", res.props, props)
    session.append("resource.drifted", res, gone=False, outputs=outputs, props=props)
    return Drift(res.id, res.type, "changed", changes)


def usable_outputs(state: StreamState) -> tuple[dict[str, Any], dict[str, str]]:
    """The stage's exports that may be shown, and those withheld with why: a value that only
    a resource with a pending operation holds (its object may be half made or half gone).
    Exports of removed resources are already dropped by the fold."""
    live: list[Any] = []
    pending: dict[str, list[Any]] = {}
    for res in state.resources.values():
        values = [v for v in (res.outputs or {}).values() if v is not None]
        if res.pending is None:
            live += values
        else:
            pending[res.id] = values
    shown: dict[str, Any] = {}
    withheld: dict[str, str] = {}
    for key, value in state.outputs.items():
        owner = next(
            (rid for rid, values in pending.items() if value in values and value not in live),
            None,
        )
        if owner is None or isinstance(value, bool):
            shown[key] = value
        else:
            withheld[key] = (
                f"{owner} has a pending {(state.resources[owner].pending or {}).get('op')}"
            )
    return shown, withheld
