"""The program API: ``journal.app(...)`` as a context manager, and resource handles.

    with journal.app("prisma-postgres-example") as app:
        project = Project("project")
        database = Database("database", project=project, region="us-east-1")
        app.export(project_id=project.id)

Declaring a resource returns a handle at once; nothing is sent until the program reads a
handle (``project.id``) or leaves the block, so a validation error anywhere before that
sends nothing. Leaving the block normally finalizes (orphans are deleted); leaving it with an
exception deletes nothing and records the failure.

How a run is configured when the CLI drives the program (command, stage, journal, progress)
travels in :class:`RunSettings`, set by the runner around the program's execution.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from .. import _settings
from .._engine import Desired, Ref, Reporter, Run, RunResult
from .._errors import ProgramError, RunError, RunInterrupted, ValidationError
from .._provider import Endpoint, get_provider
from .._refs import tag_output, to_refs
from .._secret import Secret

__all__ = ["App", "Resource", "RunSettings", "app", "current_app", "run_settings"]

O = TypeVar("O")  # noqa: E741 - the outputs type

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(
            f"{kind} {value!r} is not valid: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


@dataclass
class RunSettings:
    """What the CLI (or a test) decides about the runs a program makes."""

    command: str = "deploy"
    stage: str | None = None
    journal: Any = None  # an open Journal; else `location` is opened
    location: str | None = None
    password: str | None = None
    reporter: Reporter | None = None
    concurrency: int | None = None
    lock_timeout: float = 0.0
    program: str | None = None
    program_hash: str | None = None
    #: provider credentials from `journal configure` (variable name -> Secret)
    credentials: dict[str, Secret] = field(default_factory=dict)
    #: where providers' calls go instead of their default API (service name -> Endpoint):
    #: the local emulators under ``--local``
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    #: files providers build resources from (``Context.watch``): ``journal dev`` watches them
    watched: list[Path] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    apps: list[tuple[str, str]] = field(default_factory=list)


_SETTINGS: contextvars.ContextVar[RunSettings | None] = contextvars.ContextVar(
    "journal_run_settings", default=None
)
_CURRENT: list[App] = []
_CURRENT_LOCK = threading.Lock()


@contextmanager
def run_settings(settings: RunSettings) -> Iterator[RunSettings]:
    token = _SETTINGS.set(settings)
    try:
        yield settings
    finally:
        _SETTINGS.reset(token)


def current_app() -> App:
    with _CURRENT_LOCK:
        if not _CURRENT:
            raise ProgramError(
                "a resource was declared outside an app: declare resources inside "
                '`with journal.app("name") as app:`'
            )
        return _CURRENT[-1]


class App:
    """One app at one stage, for the duration of a ``with`` block."""

    def __init__(
        self,
        name: str,
        *,
        stage: str | None = None,
        password: str | None = None,
        journal: str | os.PathLike[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.name = check_name("app name", name)
        self._stage = stage
        self._password = password
        self._journal_location = os.fspath(journal) if journal is not None else None
        self._concurrency = concurrency
        self._run: Run | None = None
        self._owns_journal = False
        self._journal: Any = None
        self.result: RunResult | None = None

    @property
    def stage(self) -> str:
        return self._require_run().stage

    @property
    def run(self) -> Run:
        return self._require_run()

    def _require_run(self) -> Run:
        if self._run is None:
            raise ProgramError("the app is not open: use it as `with journal.app(...) as app:`")
        return self._run

    def __enter__(self) -> App:
        from .._journal import Journal

        settings = _SETTINGS.get() or RunSettings()
        stage = settings.stage or self._stage or _settings.stage()
        check_name("stage", stage)
        if settings.journal is not None:
            self._journal = settings.journal
        else:
            self._journal = Journal.open(
                self._journal_location or settings.location,
                password=self._password or settings.password,
            )
            self._owns_journal = True
        run: Run | None = None
        try:
            run = Run(
                self._journal,
                self.name,
                stage,
                command=settings.command,
                concurrency=self._concurrency or settings.concurrency,
                lock_timeout=settings.lock_timeout,
                reporter=settings.reporter,
                program=settings.program,
                program_hash=settings.program_hash,
                credentials=settings.credentials,
                endpoints=settings.endpoints,
                watch=settings.watched.extend,
            )
            run.begin()
        except BaseException:
            if run is not None and run.result is not None:  # it began, then its recovery failed
                self._store(run.result)
            self._close_journal()
            raise
        self._run = run
        settings.apps.append((self.name, stage))
        with _CURRENT_LOCK:
            _CURRENT.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _CURRENT_LOCK:
            if self in _CURRENT:
                _CURRENT.remove(self)
        run = self._require_run()
        try:
            if self.result is None:
                if exc is None:
                    self.finalize()
                else:
                    self._store(run.fail(exc))
        except KeyboardInterrupt:
            # abandoned part way: the run recorded its end; keep its result for the caller
            if self.result is None and run.result is not None:
                self._store(run.result)
            raise
        finally:
            self._close_journal()

    def _close_journal(self) -> None:
        if self._owns_journal and self._journal is not None:
            self._journal.close()
            self._journal = None

    def _store(self, result: RunResult) -> RunResult:
        self.result = result
        settings = _SETTINGS.get()
        if settings is not None:
            settings.results.append(result)
        return result

    def finalize(self) -> RunResult:
        """Reconcile everything declared, delete orphans if all succeeded, end the run.
        Raises RunError if a resource failed."""
        if self.result is not None:
            return self.result
        result = self._store(self._require_run().finalize())
        if result.status == "failed":
            raise RunError([(r, RuntimeError(e)) for r, e in result.failures])
        if result.status == "interrupted":
            raise RunInterrupted(
                f"the run was interrupted: {len(result.not_started)} resource(s) not started"
            )
        return result

    def export(self, **values: Any) -> None:
        """Record the program's outputs (Secrets stay encrypted, masked when shown)."""
        self._require_run().export(values)

    def _declare(self, desired: Desired) -> None:
        self._require_run().declare(desired)

    def _wait(self, rid: str) -> Any:
        return self._require_run().wait(rid)


def app(
    name: str,
    *,
    stage: str | None = None,
    password: str | None = None,
    journal: str | os.PathLike[str] | None = None,
    concurrency: int | None = None,
) -> App:
    """Open an app: ``with journal.app("name") as app: ...``.

    ``stage`` defaults to the CLI's ``--stage``, then JOURNAL_STAGE, then the OS user name.
    ``journal`` is a SQLite path or PostgreSQL URL (default: the CLI's ``--journal``, then
    JOURNAL_URL, then ``.journal/journal.db``); ``password`` defaults to JOURNAL_PASSWORD,
    then ALCHEMY_PASSWORD; ``concurrency`` bounds parallel provider calls (default 64,
    or JOURNAL_CONCURRENCY)."""
    return App(name, stage=stage, password=password, journal=journal, concurrency=concurrency)


class Resource(Generic[O]):
    """Base of every resource handle. Subclasses set ``type_name`` and define a typed
    ``__init__`` that calls ``super().__init__`` with their props, and properties that read
    ``self.outputs``.

    Props may hold handles, outputs read from handles (``db.id``) and Secrets inside dicts,
    lists and tuples at any depth: each handle or output is a reference (``_refs``).
    ``credentials`` are per-resource overrides of the provider's declared credentials, by
    name; ``service_token=`` is the same as ``credentials={"service_token": ...}``."""

    type_name: ClassVar[str]

    def __init__(
        self,
        id: str,
        props: Mapping[str, Any],
        *,
        delete: bool | None = None,
        adopt: bool = False,
        service_token: str | Secret | None = None,
        credentials: Mapping[str, str | Secret | None] | None = None,
    ) -> None:
        check_name("resource id", id)
        owner = current_app()
        provider = get_provider(self.type_name)
        if delete is not None and not isinstance(delete, bool):
            raise ValidationError("must be True or False", resource=id, field="delete")
        if not isinstance(adopt, bool):
            raise ValidationError("must be True or False", resource=id, field="adopt")
        overrides: dict[str, Secret] = {}
        given = {**(credentials or {}), "service_token": service_token}
        for name, value in given.items():
            if value is None:
                continue
            if not isinstance(value, str | Secret):
                raise ValidationError("must be a str or Secret", resource=id, field=name)
            overrides[name] = value if isinstance(value, Secret) else Secret(value)
        try:
            values = to_refs(props, owner)
        except TypeError as exc:
            raise ValidationError(str(exc), resource=id) from None
        self._logical_id = id
        self._app = owner
        self._tagged: Any = None
        owner._declare(
            Desired(
                id=id,
                type=self.type_name,
                props=values,
                delete=provider.default_delete if delete is None else delete,
                adopt=adopt,
                credentials=overrides,
            )
        )

    @property
    def logical_id(self) -> str:
        return self._logical_id

    @property
    def outputs(self) -> O:
        """The resource's outputs; blocks until it is reconciled, raises if it failed.
        Its str and Secret values remember this resource: passed in another resource's
        props they are references (a dependency, re-resolved on rollback)."""
        if self._tagged is None:
            out = self._app._wait(self._logical_id)
            if dataclasses.is_dataclass(out) and not isinstance(out, type):
                out = dataclasses.replace(
                    out,
                    **{
                        f.name: tag_output(
                            getattr(out, f.name), Ref(self._logical_id, f.name), self._app
                        )
                        for f in dataclasses.fields(out)
                        if f.init
                    },
                )
            self._tagged = out
        return self._tagged  # type: ignore[no-any-return]

    def ref(self, output: str | None = None) -> Ref:
        """A reference to one of this resource's outputs (None: the one the handle stands
        for), without waiting for it: pass it in props, the engine resolves it."""
        if output is not None:
            provider = get_provider(self.type_name)
            names = {f.name for f in dataclasses.fields(provider.outputs_type)}
            if output not in names:
                raise ValidationError(
                    f"has no output {output!r}; its outputs are {', '.join(sorted(names))}",
                    resource=self._logical_id,
                )
        return Ref(self._logical_id, output)

    def __journal_ref__(self) -> tuple[Ref, object]:
        return Ref(self._logical_id), self._app

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._logical_id!r})"
