"""The provider seam: what a resource type implements, and the registry that validates it.

A provider implements, for one resource type (registered under a stable type name such as
``"prisma-postgres.Database"``): ``validate`` (static checks, before any API call),
``prepare`` (fill defaults such as the physical name), ``create``, ``update`` (only for the
fields in ``updatable``; a change to any other field replaces), ``delete`` and ``read`` (used by
adopt, pending-operation recovery and drift checks). Props and outputs are frozen
dataclasses; they travel through the journal as JSON (see ``_codec``).

Providers are found by type name: first among those registered in this process, then through
the ``journal.providers`` entry-point group (so ``journal destroy`` can delete a stage from its
journal alone, without running the program). The engine knows no provider by name.

A provider package also registers a :class:`Service` (its credentials, its API URL variable
and default, its local emulator). The engine resolves them per call into the
:class:`Context` (:func:`make_context`); the CLI's ``configure``, ``--local`` and
``local serve`` read them from :func:`services`. The public face of all this is
``journal.provider``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Generic, TypeVar

from ._entry_points import entry_points
from ._errors import UsageError, ValidationError
from ._secret import Secret

__all__ = [
    "Context",
    "Credential",
    "Emulator",
    "Endpoint",
    "LocalOptions",
    "Provider",
    "Service",
    "check_props",
    "close_shared",
    "get_provider",
    "get_service",
    "make_context",
    "physical_name",
    "register_provider",
    "register_service",
    "services",
]

P = TypeVar("P")
O = TypeVar("O")  # noqa: E741 - the outputs type


def physical_name(app: str, logical_id: str, stage: str) -> str:
    """The default name of a remote object: ``<app>-<id>-<stage>``, so stages never collide."""
    return f"{app}-{logical_id}-{stage}"


@dataclass(frozen=True)
class Credential:
    """A credential a provider declares: ``name`` is the per-resource keyword
    (``service_token=``) and the key in :attr:`Context.credentials`; ``env`` is the
    environment variable it is read from, and the name ``journal configure`` stores it under."""

    name: str
    env: str
    help: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where a provider's calls go in a run when not to its default API: an emulator's URL,
    and the credentials it accepts (used when none is configured)."""

    url: str
    credentials: Mapping[str, Secret] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalOptions:
    """What the CLI tells a provider's local emulator (``--local``, ``journal local serve``)."""

    #: the project's ``.journal`` folder: emulators keep their data under it
    journal_dir: Path
    #: a PostgreSQL server (superuser URL) to use instead of the embedded one
    postgres_url: str | None = None
    #: the embedded PostgreSQL's data folder (default ``journal_dir / "postgres"``)
    postgres_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    #: injected faults (``journal local serve``): delay, and shares of answers 429 / 5xx / lost
    latency_s: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_lost: float = 0.0
    seed: int | None = None
    #: stop the embedded PostgreSQL when the emulator stops (default: keep it for next time)
    stop_postgres: bool = False

    @property
    def postgres_data(self) -> Path:
        return self.postgres_dir if self.postgres_dir is not None else self.journal_dir / "postgres"


#: a provider's local emulator: started for the block, it yields where it listens
Emulator = Callable[[LocalOptions], AbstractContextManager[Endpoint]]

_RESERVED_NAMES: Final = frozenset({"adopt", "credential", "delete", "endpoint"})
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class Service:
    """What a provider package declares once for all its resource types (those whose type
    name starts with ``name.``): its credentials, its API's URL and its local emulator."""

    #: the type-name prefix: ``"prisma-postgres"`` for ``"prisma-postgres.Database"``
    name: str
    #: how people call its API: ``"Prisma Management API"``
    title: str
    credentials: tuple[Credential, ...] = ()
    #: the environment variable that overrides the API's URL, and the default URL
    api_url_env: str | None = None
    default_api_url: str | None = None
    #: starts a local API that behaves like the real one (``--local``, ``journal local serve``)
    local: Emulator | None = None
    #: the logger of the emulator: the CLI shows its warnings
    local_logger: str | None = None

    def credential(self, name: str) -> Credential:
        for c in self.credentials:
            if c.name == name:
                return c
        raise KeyError(name)


def _check_service(service: Service) -> list[str]:
    problems = []
    if not _SERVICE_NAME.match(service.name):
        problems.append("name must be lowercase letters, digits and '-'")
    names = [c.name for c in service.credentials]
    if len(set(names)) != len(names):
        problems.append("credential names must be unique")
    for c in service.credentials:
        if c.name in _RESERVED_NAMES or not c.name.isidentifier():
            problems.append(f"credential name {c.name!r} is not a usable keyword")
        if not _ENV_NAME.match(c.env):
            problems.append(f"credential env {c.env!r} is not an environment variable name")
    if service.api_url_env is not None and not _ENV_NAME.match(service.api_url_env):
        problems.append(f"api_url_env {service.api_url_env!r} is not a variable name")
    return problems


@dataclass(frozen=True)
class Context:
    """What a provider call knows about where it runs.

    ``credentials`` are this provider's, by the names its :class:`Service` declares, already
    resolved (the resource's own override, else the environment variable, else the local
    emulator's, else the ``journal configure`` profile's). ``api_url`` is where its API is
    (an emulator's under ``--local``, else the ``api_url_env`` variable, else the default).
    """

    app: str
    stage: str
    resource: str
    adopt: bool = False
    credentials: Mapping[str, Secret] = field(default_factory=dict)
    api_url: str | None = None
    #: a plan: the run makes no call, so ``endpoint()`` answers without any I/O
    offline: bool = False
    #: shared per-run objects (HTTP clients ...) keyed by the provider
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    cache_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    #: where ``watch`` reports files (``journal dev`` re-runs when they change); None: nowhere
    watch_sink: Callable[[Iterable[Path]], None] | None = field(
        default=None, compare=False, repr=False
    )

    def watch(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Files besides the program's modules that this resource is built from (a Worker's
        sources): ``journal dev`` re-runs the program when one of them changes."""
        if self.watch_sink is not None:
            self.watch_sink([Path(p) for p in paths])

    @property
    def default_name(self) -> str:
        return physical_name(self.app, self.resource, self.stage)

    def credential(self, name: str) -> Secret | None:
        """The credential ``name`` (blank counts as unset), or None."""
        value = self.credentials.get(name)
        if value is None or not value.unencrypted.strip():
            return None
        return Secret(value.unencrypted.strip())

    @property
    def service_token(self) -> Secret | None:
        """``credential("service_token")`` (the first API's name for it)."""
        return self.credential("service_token")

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """A per-run object shared by all calls (created once, thread-safe)."""
        with self.cache_lock:
            if key not in self.cache:
                self.cache[key] = factory()
            return self.cache[key]


def make_context(
    type_name: str,
    *,
    app: str,
    stage: str,
    resource: str,
    overrides: Mapping[str, Secret] | None = None,
    profile: Mapping[str, Secret] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    adopt: bool = False,
    offline: bool = False,
    cache: dict[str, Any] | None = None,
    cache_lock: threading.Lock | None = None,
    environ: Mapping[str, str] | None = None,
    watch: Callable[[Iterable[Path]], None] | None = None,
) -> Context:
    """The context of a call on a resource of ``type_name``: its service's credentials
    resolved (``overrides`` by credential name, then the environment, then the endpoint's,
    then ``profile``, which is keyed by environment variable name) and its API's URL
    (``endpoints`` by service name, then the environment, then the default)."""
    env = os.environ if environ is None else environ
    creds: dict[str, Secret] = {}
    api_url: str | None = None
    service = get_service(type_name.split(".", 1)[0])
    endpoint = (endpoints or {}).get(service.name) if service is not None else None
    overrides = overrides or {}
    if service is not None:
        for c in service.credentials:
            found: Secret | None = overrides.get(c.name)
            if found is None and env.get(c.env, "").strip():
                found = Secret(env[c.env])
            if found is None and endpoint is not None:
                found = endpoint.credentials.get(c.name)
            if found is None:
                found = (profile or {}).get(c.env)
            if found is not None:
                creds[c.name] = found
        if endpoint is not None:
            api_url = endpoint.url
        elif service.api_url_env and env.get(service.api_url_env, "").strip():
            api_url = env[service.api_url_env].strip()
        else:
            api_url = service.default_api_url
    for name, value in overrides.items():
        creds.setdefault(name, value)
    return Context(
        app=app,
        stage=stage,
        resource=resource,
        adopt=adopt,
        credentials=creds,
        api_url=api_url,
        offline=offline,
        cache=cache if cache is not None else {},
        cache_lock=cache_lock if cache_lock is not None else threading.Lock(),
        watch_sink=watch,
    )


def close_shared(cache: dict[str, Any]) -> None:
    """Close the per-run objects providers made through ``Context.shared`` (HTTP clients
    ...) and empty the cache; one that fails to close does not stop the others."""
    for key, obj in list(cache.items()):
        closer = getattr(obj, "close", None)
        if callable(closer):
            with contextlib.suppress(Exception):
                closer()
        cache.pop(key, None)


class Provider(ABC, Generic[P, O]):
    """One resource type's lifecycle. Subclasses set the class attributes and methods."""

    type_name: ClassVar[str]
    props_type: ClassVar[type[Any]]
    outputs_type: ClassVar[type[Any]]
    #: fields that can change in place; a change to any other field replaces the object
    updatable: ClassVar[frozenset[str]] = frozenset()
    #: name-bound objects are deleted before their replacement is created
    delete_first: ClassVar[bool] = False
    #: default delete policy (False = delete protection: forget, keep the remote object)
    default_delete: ClassVar[bool] = True
    #: the outputs field a handle of this type stands for when passed to another resource
    ref_field: ClassVar[str] = "id"

    def validate(self, props: P, *, resource: str) -> None:
        """Static checks; raise ValidationError(resource=..., field=...). No I/O."""

    def prepare(self, props: P, ctx: Context) -> P:
        """Fill defaults that depend on the context (the physical name ...). No I/O."""
        return props

    @abstractmethod
    def create(self, props: P, ctx: Context) -> O: ...

    def update(self, props: P, old_props: P, outputs: O, ctx: Context) -> O:
        raise NotImplementedError(f"{self.type_name} cannot be updated in place")

    @abstractmethod
    def delete(self, props: P, outputs: O, ctx: Context) -> None:
        """Delete the object. Raise ``NotFoundError`` when the API says it does not exist:
        the engine decides whether that means "already gone" (see ``credential``)."""

    @abstractmethod
    def read(self, props: P, outputs: O | None, ctx: Context) -> O | None:
        """The remote object's outputs, or None if it does not exist. ``outputs`` None: look
        it up by the name in ``props`` (adopt, recovery of an interrupted create)."""

    def find(self, props: P, ctx: Context, *, exclude: frozenset[str] = frozenset()) -> O | None:
        """An object with the name in ``props`` whose ``ref_field`` is not in ``exclude``
        (adopt; recovering a create or a name-keeping replace). The default reads by name;
        providers whose names are not unique should override it."""
        found = self.read(props, None, ctx)
        if found is None or str(getattr(found, self.ref_field)) in exclude:
            return None
        return found

    def endpoint(self, ctx: Context) -> str | None:
        """Which API this provider talks to now (recorded with each object; the engine
        refuses to manage an object through another one). None: not applicable.

        Make it precise: an API's origin, or for an emulator on loopback (whose port changes
        between runs) ``local:<id>`` with an id that names that emulator's data for good.
        ``local`` alone (what older versions recorded) matches any ``local:<id>``."""
        return None

    def credential(self, ctx: Context) -> Secret | None:
        """The credential calls under ``ctx`` use (a token), or None. The engine never
        stores it: it keeps a short keyed fingerprint with each object (inside the encrypted
        journal) and takes a ``NotFoundError`` from ``delete`` as "already gone" only under
        the endpoint and credential that created the object; under others it is an error."""
        return None

    def close(self, ctx_cache: Mapping[str, Any]) -> None:
        """Release shared objects at the end of a run."""

    # --- JSON forms ------------------------------------------------------------------

    def load_props(self, data: Mapping[str, Any]) -> P:
        return _load(self.props_type, data)  # type: ignore[no-any-return]

    def load_outputs(self, data: Mapping[str, Any]) -> O:
        return _load(self.outputs_type, data)  # type: ignore[no-any-return]


def _load(cls: type[Any], data: Mapping[str, Any]) -> Any:
    from ._codec import decode

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: decode(v) for k, v in data.items() if k in names})


_REGISTRY: dict[str, Provider[Any, Any]] = {}
_LOCK = threading.Lock()


def register_provider(cls: type[Provider[Any, Any]]) -> type[Provider[Any, Any]]:
    """Register a provider class (usable as a decorator); it is validated here."""
    problems = []
    name = getattr(cls, "type_name", None)
    if not isinstance(name, str) or "." not in name:
        problems.append("type_name must be a 'provider.Type' string")
    for attr in ("props_type", "outputs_type"):
        t = getattr(cls, attr, None)
        if not (isinstance(t, type) and dataclasses.is_dataclass(t)):
            problems.append(f"{attr} must be a dataclass")
    if not problems:
        prop_fields = {f.name for f in dataclasses.fields(cls.props_type)}
        out_fields = {f.name for f in dataclasses.fields(cls.outputs_type)}
        extra = set(cls.updatable) - prop_fields
        if extra:
            problems.append(f"updatable names unknown props {sorted(extra)}")
        if cls.ref_field not in out_fields:
            problems.append(f"ref_field {cls.ref_field!r} is not an outputs field")
        if cls.updatable and cls.update is Provider.update:
            problems.append("declares updatable fields but does not implement update()")
    abstract: frozenset[str] = getattr(cls, "__abstractmethods__", frozenset())
    if abstract:
        problems.append(f"does not implement {sorted(abstract)}")
    if problems:
        raise TypeError(f"provider {cls.__name__}: " + "; ".join(problems))
    with _LOCK:
        existing = _REGISTRY.get(str(name))
        if existing is not None and _qualified(type(existing)) != _qualified(cls):
            raise TypeError(
                f"provider type {name!r} is registered twice "
                f"({_qualified(type(existing))} and {_qualified(cls)})"
            )
        _REGISTRY[str(name)] = cls()
    return cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def get_provider(type_name: str) -> Provider[Any, Any]:
    with _LOCK:
        found = _REGISTRY.get(type_name)
    if found is not None:
        return found
    _load_entry_point(type_name.split(".", 1)[0])
    with _LOCK:
        found = _REGISTRY.get(type_name)
    if found is None:
        raise UsageError(
            f"no provider for resource type {type_name!r}: install the package that "
            "provides it (entry point group 'journal.providers')"
        )
    return found


_SERVICES: dict[str, Service] = {}


def register_service(service: Service) -> Service:
    """Register what a provider package declares (its credentials, API URL and emulator);
    validated here. Registering the same declaration again is a no-op."""
    problems = _check_service(service)
    if problems:
        raise TypeError(f"service {service.name!r}: " + "; ".join(problems))
    with _LOCK:
        existing = _SERVICES.get(service.name)
        if existing is not None and existing != service:
            raise TypeError(f"service {service.name!r} is registered twice, differently")
        _SERVICES[service.name] = service
    return service


#: prefixes whose entry points were looked up (and loaded) already: the installed packages
#: do not change under a running process, and a scan costs milliseconds (a provider with no
#: service, or no entry point, would otherwise pay one per resource)
_SCANNED: set[str] = set()


def _load_entry_point(prefix: str) -> None:
    with _LOCK:
        if prefix in _SCANNED:
            return
    for ep in entry_points(group="journal.providers"):
        if ep.name == prefix:
            ep.load()
    with _LOCK:
        _SCANNED.add(prefix)  # only once loaded: a failure is raised again next time


def get_service(name: str) -> Service | None:
    """The service registered as ``name`` (loading its entry point), or None."""
    with _LOCK:
        found = _SERVICES.get(name)
    if found is None:
        _load_entry_point(name)
        with _LOCK:
            found = _SERVICES.get(name)
    return found


def services() -> list[Service]:
    """Every service: those registered in this process and those installed. An installed
    provider's ``journal.services`` entry point names the module that declares its service
    alone, so finding services imports no client or resource type; a provider without one
    is found by loading its package (``journal.providers``)."""
    light = entry_points(group="journal.services")
    for ep in light:
        with contextlib.suppress(Exception):
            ep.load()
    declared = {ep.name for ep in light}
    for ep in entry_points(group="journal.providers"):
        if ep.name not in declared:
            with contextlib.suppress(Exception):
                ep.load()
    with _LOCK:
        return [_SERVICES[k] for k in sorted(_SERVICES)]


def check_props(props: Any, resource: str, **expected: type | tuple[type, ...]) -> None:
    """A small helper for validate(): the listed fields have the listed types (or None)."""
    for name, kind in expected.items():
        value = getattr(props, name)
        if value is not None and not isinstance(value, kind):
            want = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise ValidationError(
                f"must be {want}, got {type(value).__name__}", resource=resource, field=name
            )
