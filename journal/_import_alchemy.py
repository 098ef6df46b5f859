"""``journal import-alchemy``: bring an Alchemy project's state into the journal, touching
no infrastructure and writing nothing to the Alchemy folder.

    plan = plan_import(Path("."), password=lambda: os.environ["ALCHEMY_PASSWORD"])
    for stage in plan.stages: ...          # the preview (secrets masked by the printer)
    with Journal.open(location) as jr:
        results = apply_import(jr, plan)

Each supported Alchemy kind is mapped by a function a provider registers
(:func:`register_alchemy_kind`; the Prisma Postgres package registers its four kinds), so
this module knows no provider by name. A mapped resource is recorded exactly as the engine
records one it created (type, props as ``prepare`` fills them, outputs, dependencies and the
references they come from, delete policy, options with the endpoint the provider reports):
the first deploy of the translated program finds every prop equal and calls nothing.

One stage is one run: ``run.started`` (command ``import-alchemy``, the source named as the
program), a ``resource.imported`` per resource, ``run.finished``, appended atomically under
the stage's lock, and only into a stage the journal does not hold yet. Records whose
operation Alchemy had not finished (status creating, updating, deleting, deleted) are left
out and reported, unless ``include_pending``: then they are recorded as the intent of that
operation, which the next run resolves first by reading the remote object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ._alchemy_state import (
    SETTLED,
    AlchemyRecord,
    AlchemyRef,
    AlchemyStateError,
    RawRecord,
    Store,
    find_store,
    raw_records,
    read_records,
)
from ._codec import encode
from ._engine import actor
from ._entry_points import entry_points
from ._errors import JournalError, UsageError, ValidationError
from ._events import make_event
from ._identity import credential_record
from ._projection import apply, load_state, snapshot_state, stream_name
from ._provider import Context, Provider, close_shared, get_provider, make_context
from ._secret import Secret

__all__ = [
    "AlchemyStateError",
    "ImportPlan",
    "Linker",
    "Mapped",
    "StagePlan",
    "apply_import",
    "plan_import",
    "register_alchemy_kind",
]

COMMAND: Final = "import-alchemy"
_ID_OK: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


# --- the registry of kinds -------------------------------------------------------------------


@dataclass
class Mapped:
    """What a kind's mapper makes of one record: our type, typed props and outputs."""

    type_name: str
    props: Any
    #: None when Alchemy recorded no object yet (a record still ``creating``)
    outputs: Any | None
    #: props fields that held another resource: {field: logical id}
    refs: dict[str, str] = field(default_factory=dict)
    #: other resources this one depends on (refs, and string ids that name one)
    deps: list[str] = field(default_factory=list)
    delete: bool = True
    service_token: Secret | None = None
    notes: list[str] = field(default_factory=list)


Mapper = Callable[[AlchemyRecord, "Linker"], Mapped]


@dataclass(frozen=True)
class _Kind:
    kind: str
    mapper: Mapper | None
    #: why a kind maps to nothing (a lookup, not a managed resource)
    note: str


_KINDS: dict[str, _Kind] = {}


def register_alchemy_kind(kind: str, mapper: Mapper | None, *, note: str = "") -> None:
    """Map Alchemy's ``kind`` with ``mapper``; ``None`` with a ``note``: nothing to import."""
    if mapper is None and not note:
        raise TypeError(f"alchemy kind {kind!r}: give a mapper, or a note saying why not")
    _KINDS[kind] = _Kind(kind, mapper, note)


def _load_kinds() -> None:
    """Every installed provider, and the modules that map their Alchemy kinds (the
    ``journal.alchemy`` entry points: kept apart so that a deploy never imports them)."""
    for group in ("journal.providers", "journal.alchemy"):
        for ep in entry_points(group=group):
            ep.load()


# --- references between records ----------------------------------------------------------


class Linker:
    """What a mapper needs to know about the other records of its stage."""

    def __init__(self, records: Iterable[AlchemyRecord], importable: set[str]) -> None:
        self.by_output_id: dict[str, str] = {}
        self.importable = importable
        for r in records:
            oid = r.output.get("id")
            if isinstance(oid, str) and r.id in importable:
                self.by_output_id[oid] = r.id

    def ref(self, rec: AlchemyRecord, value: object, name: str, mapped: Mapped) -> str:
        """The id a reference prop stands for; records the dependency in ``mapped``."""
        if isinstance(value, AlchemyRef):
            target = value.values.get("id")
            if not isinstance(target, str):
                raise AlchemyStateError(f"{rec.source}: props.{name} is a resource without an id")
            same_stage = value.fqn == "/".join((rec.app, rec.stage, value.id))
            if same_stage and value.id in self.importable:
                mapped.refs[name] = value.id
                mapped.deps.append(value.id)
            else:
                mapped.notes.append(
                    f"{name} refers to {value.fqn or value.id}, which is not imported with "
                    f"this stage: recorded as the id {target}"
                )
            return target
        if isinstance(value, str) and value:
            dep = self.by_output_id.get(value)
            if dep is not None:
                mapped.deps.append(dep)
            return value
        raise AlchemyStateError(f"{rec.source}: props.{name} is neither a resource nor an id")

    @staticmethod
    def physical_name(rec: AlchemyRecord) -> str:
        """Alchemy's default name: ``<app>-<scopes>-<id>-<stage>`` (createPhysicalName)."""
        parts = (rec.app, *rec.scope, rec.id, rec.stage)
        return "-".join(re.sub(r"[^a-z0-9_-]", "-", p, flags=re.IGNORECASE) for p in parts)


# --- the plan ----------------------------------------------------------------------------


@dataclass
class Planned:
    """One resource as it will be recorded."""

    id: str
    type_name: str
    kind: str
    status: str
    source: str
    props: dict[str, Any]
    outputs: dict[str, Any] | None
    deps: list[str]
    refs: dict[str, str]
    delete: bool
    options: dict[str, Any]
    #: an unfinished Alchemy operation recorded as our intent: create | replace | delete
    pending: str | None = None
    #: the props before an unfinished replace (what the imported object has)
    old_props: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LeftOut:
    id: str
    kind: str
    status: str
    source: str
    reason: str


@dataclass
class StagePlan:
    app: str
    stage: str
    resources: list[Planned] = field(default_factory=list)
    #: records whose Alchemy operation had not finished (without --include-pending)
    pending: list[LeftOut] = field(default_factory=list)
    #: kinds not supported (yet), and records that cannot be mapped
    unsupported: list[LeftOut] = field(default_factory=list)
    #: records that map to nothing on purpose (lookups)
    skipped: list[LeftOut] = field(default_factory=list)

    @property
    def stream(self) -> str:
        return stream_name(self.app, self.stage)


@dataclass
class ImportPlan:
    store: Store
    stages: list[StagePlan]


def _endpoint(provider: Provider[Any, Any], ctx: Context) -> str | None:
    """The API an imported object is recorded against: what the provider reports now, as
    the engine does for every object it creates. Alchemy 0.94 always talks to the real
    API, so run the import with the same API settings the translated program will use."""
    return provider.endpoint(ctx)


def _options(provider: Provider[Any, Any], ctx: Context, token: Secret | None) -> dict[str, Any]:
    # the engine's options for a declared resource (Run._reconcile), key for key: the API and
    # the fingerprint of the credential it is reached with, so that a 404 on a later delete
    # proves the object gone only for the credentials it was imported with
    options: dict[str, Any] = {
        "adopt": False,
        "service_token": encode(token) if token is not None else None,
    }
    endpoint = _endpoint(provider, ctx)
    if endpoint is not None:
        options["endpoint"] = endpoint
    credential = credential_record(provider.credential(ctx), None)
    if credential is not None:
        options["credential"] = credential
    return options


def _plan_resource(
    rec: AlchemyRecord, mapper: Mapper, link: Linker, cache: dict[str, Any]
) -> Planned:
    settled = rec.status in SETTLED
    source_rec = rec
    if rec.status == "updating" and rec.old_props is not None:
        source_rec = dataclasses.replace(rec, props=rec.old_props)
    mapped = mapper(source_rec, link)
    provider = get_provider(mapped.type_name)
    ctx = make_context(
        provider.type_name,
        app=rec.app,
        stage=rec.stage,
        resource=rec.id,
        overrides={"service_token": mapped.service_token} if mapped.service_token else {},
        cache=cache,
    )
    try:
        provider.validate(mapped.props, resource=rec.id)
    except ValidationError as exc:
        raise _Unmappable(f"its props are not valid here: {exc}") from None
    props = encode(provider.prepare(mapped.props, ctx))
    outputs = encode(mapped.outputs) if mapped.outputs is not None else None
    planned = Planned(
        id=rec.id,
        type_name=mapped.type_name,
        kind=rec.kind,
        status=rec.status,
        source=rec.source,
        props=props,
        outputs=outputs,
        deps=sorted(set(mapped.deps)),
        refs=mapped.refs,
        delete=mapped.delete,
        options=_options(provider, ctx, mapped.service_token),
        notes=mapped.notes,
    )
    if settled:
        if outputs is None:
            raise _Unmappable("Alchemy recorded it as created but holds no id for it")
        return planned
    if rec.status == "creating" or outputs is None:
        planned.pending = "create"
    elif rec.status == "updating":
        planned.pending = "replace"
        planned.old_props = props
        new = mapper(rec, link)
        planned.props = encode(provider.prepare(new.props, ctx))
    else:  # deleting, deleted
        planned.pending = "delete"
    return planned


class _Unmappable(Exception):
    pass


def _stage_plan(
    app: str,
    stage: str,
    recs: list[AlchemyRecord],
    include_pending: bool,
    cache: dict[str, Any],
) -> StagePlan:
    plan = StagePlan(app, stage)
    candidates: dict[str, tuple[AlchemyRecord, Mapper]] = {}
    for rec in sorted(recs, key=lambda r: (r.seq, r.id)):
        kind = _KINDS.get(rec.kind)
        where = "/".join((*rec.scope, rec.id))
        if kind is None:
            plan.unsupported.append(
                LeftOut(where, rec.kind, rec.status, rec.source, "kind not supported yet")
            )
        elif kind.mapper is None:
            plan.skipped.append(LeftOut(where, rec.kind, rec.status, rec.source, kind.note))
        elif rec.scope:
            plan.unsupported.append(
                LeftOut(where, rec.kind, rec.status, rec.source, "in a nested scope")
            )
        elif not _ID_OK.match(rec.id):
            plan.unsupported.append(
                LeftOut(rec.id, rec.kind, rec.status, rec.source, "id is not a journal id")
            )
        elif rec.status not in SETTLED and not include_pending:
            plan.pending.append(
                LeftOut(
                    rec.id,
                    rec.kind,
                    rec.status,
                    rec.source,
                    f"Alchemy's operation did not finish ({rec.status})",
                )
            )
        else:
            candidates[rec.id] = (rec, kind.mapper)
    link = Linker([r for r, _ in candidates.values()], set(candidates))
    for rid, (rec, mapper) in candidates.items():
        try:
            plan.resources.append(_plan_resource(rec, mapper, link, cache))
        except _Unmappable as exc:
            plan.unsupported.append(LeftOut(rid, rec.kind, rec.status, rec.source, str(exc)))
    # a dependency that could not be imported: keep the id, drop the link
    imported = {p.id for p in plan.resources}
    for p in plan.resources:
        for name, dep in list(p.refs.items()):
            if dep not in imported:
                del p.refs[name]
                p.notes.append(f"{name}: {dep} is not imported, recorded as a plain id")
        p.deps = [d for d in p.deps if d in imported]
    plan.resources = _dependency_order(plan.resources)
    return plan


def _dependency_order(items: list[Planned]) -> list[Planned]:
    done: set[str] = set()
    out: list[Planned] = []
    rest = list(items)
    while rest:
        ready = [p for p in rest if all(d in done for d in p.deps)] or rest[:1]
        for p in ready:
            out.append(p)
            done.add(p.id)
            rest.remove(p)
    return out


def plan_import(
    path: Path,
    *,
    password: Callable[[], str],
    stages: Iterable[str] = (),
    app: str | None = None,
    include_pending: bool = False,
) -> ImportPlan:
    """Read and decrypt the Alchemy state at ``path`` and map it; nothing is written.

    ``password`` is called once, only if a selected record holds a secret; a wrong one
    raises ``WrongPasswordError``. A file that is not valid JSON raises
    ``AlchemyStateError`` naming it."""
    _load_kinds()
    store = find_store(path)
    wanted = set(stages)

    def keep(r: RawRecord) -> bool:
        return (not wanted or r.stage in wanted) and (app is None or r.app == app)

    raws = raw_records(store)
    found = sorted({(r.app, r.stage) for r in raws})
    missing = [s for s in sorted(wanted) if s not in {st for a, st in found if app in (None, a)}]
    if missing or (app is not None and app not in {a for a, _ in found}):
        what = f"stage {', '.join(missing)}" if missing else f"app {app}"
        have = ", ".join(f"{a}/{s}" for a, s in found) or "nothing"
        raise UsageError(f"{store.path} has no {what} (it holds {have})")
    records = read_records(store, password, keep=keep)
    by_stage: dict[tuple[str, str], list[AlchemyRecord]] = {}
    for rec in records:
        by_stage.setdefault((rec.app, rec.stage), []).append(rec)
    # providers' per-run objects (HTTP clients asked for the endpoint), closed at the end
    cache: dict[str, Any] = {}
    try:
        return ImportPlan(
            store=store,
            stages=[
                _stage_plan(a, s, recs, include_pending, cache)
                for (a, s), recs in sorted(by_stage.items())
            ],
        )
    finally:
        close_shared(cache)


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageResult:
    app: str
    stage: str
    imported: int
    pending: int
    run_id: str


def check_free(journal: Any, plan: ImportPlan) -> None:
    """Refuse stages the journal already holds (an import never merges into live state)."""
    taken = []
    for sp in plan.stages:
        if sp.resources and load_state(journal, sp.stream).resources:
            taken.append(sp.stream)
    if taken:
        raise UsageError(
            f"the journal already holds {', '.join(taken)}: an import only fills a stage the "
            "journal does not manage yet (use another --journal, or `journal destroy` that "
            "stage first); nothing was written"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _stage_events(sp: StagePlan, store: Store, run_id: str, started: float) -> list[dict[str, Any]]:
    host = socket.gethostname()
    events = [
        make_event(
            "run.started",
            app=sp.app,
            stage=sp.stage,
            command=COMMAND,
            actor=actor(),
            host=host,
            pid=os.getpid(),
            program=str(store.path),
            program_hash=None,
            source={"tool": "alchemy", "store": store.kind, "path": str(store.path)},
        )
    ]
    counts: dict[str, int] = {}
    for p in sp.resources:
        common = {
            "resource": p.id,
            "resource_type": p.type_name,
            "deps": p.deps,
            "refs": p.refs,
            "delete": p.delete,
            "options": p.options,
        }
        alchemy = {"kind": p.kind, "status": p.status, "source": p.source}
        if p.pending == "create":
            events.append(
                make_event("resource.create.requested", props=p.props, alchemy=alchemy, **common)
            )
        else:
            events.append(
                make_event(
                    "resource.imported",
                    props=p.old_props if p.old_props is not None else p.props,
                    outputs=p.outputs,
                    source=p.source,
                    alchemy=alchemy,
                    **common,
                )
            )
            if p.pending == "replace":
                events.append(
                    make_event(
                        "resource.replace.requested",
                        resource=p.id,
                        resource_type=p.type_name,
                        props=p.props,
                        old_props=p.old_props,
                    )
                )
            elif p.pending == "delete":
                events.append(
                    make_event(
                        "resource.delete.requested",
                        resource=p.id,
                        resource_type=p.type_name,
                        target="current",
                        outputs=p.outputs,
                    )
                )
        key = "pending" if p.pending else "imported"
        counts[key] = counts.get(key, 0) + 1
    events.append(
        make_event(
            "run.finished",
            status="succeeded",
            counts=counts,
            duration_s=round(time.monotonic() - started, 4),
            failures=[],
        )
    )
    now = _now()
    for ev in events:
        ev["run"] = run_id
        ev["time"] = now
    return events


def apply_import(journal: Any, plan: ImportPlan, *, lock_timeout: float = 0.0) -> list[StageResult]:
    """Append each stage's run (all its events in one atomic append, under its lock)."""
    import uuid

    check_free(journal, plan)
    results = []
    for sp in plan.stages:
        if not sp.resources:
            continue
        started = time.monotonic()
        run_id = uuid.uuid4().hex[:16]
        holder = {"actor": actor(), "command": COMMAND}
        with journal.lock(sp.stream, holder=holder, timeout=lock_timeout):
            state = load_state(journal, sp.stream)
            if state.resources:
                check_free(journal, ImportPlan(plan.store, [sp]))
            events = _stage_events(sp, plan.store, run_id, started)
            written = journal.append(sp.stream, events, expected_version=state.version)
            for ev in written:
                apply(state, ev.seq, ev.version, ev.payload)
            # a snapshot is derivable: without it the next load folds the events instead
            with contextlib.suppress(JournalError):
                snapshot_state(journal, state)
        results.append(
            StageResult(
                sp.app,
                sp.stage,
                imported=sum(1 for p in sp.resources if not p.pending),
                pending=sum(1 for p in sp.resources if p.pending),
                run_id=run_id,
            )
        )
    return results
