"""Prisma Postgres resources: ``Project``, ``Database``, ``Connection`` and ``WorkspaceRef``.

Each managed type is a provider (registered under ``prisma-postgres.<Type>``) plus the handle
class a program declares. Names default to ``<app>-<id>-<stage>`` so stages never collide.

- ``Project``: a name change updates in place; a region change replaces. ``delete=False`` by
  default (delete protection: on destroy or orphan removal it is forgotten, not deleted).
- ``Database``: waits for ``ready``; a name change updates in place; a change of project or
  region replaces. ``delete=False`` by default. The region is checked against the known
  regions before any call, and against the API's own list before the create.
- ``Connection``: any change replaces; always deleted on destroy. Its credentials (``user``,
  ``password``, ``connection_string``, ``prisma_connection_string``) are ``Secret``s. The API
  returns them only when a connection is created or rotated, so taking over an existing
  connection (``adopt=True``, or recovering an interrupted create) rotates its password.
- ``WorkspaceRef``: a lookup by name or id, not a managed resource.

The service token is the credential ``service_token`` the package declares (``_service``):
the resource's ``service_token=``, else ``PRISMA_SERVICE_TOKEN``, else the token stored with
``journal configure`` (the engine resolves it into ``Context.credentials``); the API's URL is
``Context.api_url`` (``PRISMA_API_URL``, or the local API under ``--local``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from journal.provider import (
    ApiError,
    Context,
    NotFoundError,
    Provider,
    ProviderError,
    Ref,
    Resource,
    Secret,
    ServerError,
    TransportError,
    ValidationError,
    register_provider,
)

from ._models import parse_instance
from ._service import DEFAULT_API_URL, SERVICE

if TYPE_CHECKING:
    from . import _client as api

__all__ = [
    "REGIONS",
    "Connection",
    "ConnectionOutputs",
    "Database",
    "DatabaseOutputs",
    "Project",
    "ProjectOutputs",
    "WorkspaceRef",
]

#: Prisma Postgres regions (the Management API's enum)
REGIONS: Final = (
    "us-east-1",
    "us-west-1",
    "eu-west-3",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
)
DEFAULT_REGION: Final = "us-east-1"
T = TypeVar("T")
_MAX_NAME = 100


def _token(ctx: Context) -> Secret | None:
    """The service token, as the engine resolved it."""
    return ctx.credential("service_token")


def _url(ctx: Context) -> str:
    return (ctx.api_url or SERVICE.default_api_url or DEFAULT_API_URL).strip()


def _client(ctx: Context) -> api.PrismaClient:
    # imported here: a run that calls nothing (a no-op) never imports the client and httpx
    from . import _client as api

    token = _token(ctx)
    url = _url(ctx)
    plain = token.unencrypted if token is not None else ""
    key = "prisma:" + url + ":" + hashlib.blake2b(plain.encode(), digest_size=8).hexdigest()
    client: api.PrismaClient = ctx.shared(key, lambda: api.PrismaClient(token=token, base_url=url))
    return client


def _endpoint(ctx: Context) -> str:
    """The API's origin; for a loopback API (whose port changes between runs) ``local:<id>``
    with the id the local API keeps in its metadata database, so that two local APIs (two
    data folders, two PostgreSQL servers) are told apart. ``local`` if it gives no id."""
    url = _url(ctx).rstrip("/")
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return url.removesuffix("/v1")
    if ctx.offline:  # a plan asks nothing, not even the local API's identity
        return "local"
    if urlsplit(url).scheme == "http":
        instance = ctx.shared("prisma:instance:" + url, lambda: local_instance(url))
    else:  # TLS on loopback: the client, with httpx's certificate settings
        client = _client(ctx)  # not inside the factory: ctx.shared holds its lock meanwhile
        instance = ctx.shared("prisma:instance:" + url, client.local_instance)
    return f"local:{instance}" if instance else "local"


def local_instance(url: str, *, attempts: int = 3, timeout_s: float = 10.0) -> str | None:
    """The identity a journal local API at ``url`` (on loopback) answers on ``GET /health``:
    its port changes between runs, this does not. None for an API that gives none.

    Asked with the standard library's ``http.client``: a loopback API needs no proxy and no
    TLS, and a run that calls nothing else (a no-op) then never imports the client and httpx
    for it. A refused or dropped connection is tried ``attempts`` times."""
    import http.client

    parts = urlsplit(url)
    path = parts.path.rstrip("/").removesuffix("/v1") + "/health"
    for attempt in range(attempts):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            if attempt + 1 < attempts:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise TransportError(
                f"the local API at {url} does not answer ({exc})", operation="local_instance"
            ) from None
        finally:
            conn.close()
        return parse_instance(body) if response.status == 200 else None
    return None


class _Prisma:
    """What the three managed types share (mixed in before Provider): the endpoint and the
    credential they record, and the default name ``<app>-<id>-<stage>``."""

    def endpoint(self, ctx: Context) -> str | None:
        return _endpoint(ctx)

    def credential(self, ctx: Context) -> Secret | None:
        return _token(ctx)

    def prepare(self, props: Any, ctx: Context) -> Any:
        return props if props.name is not None else replace(props, name=ctx.default_name)


#: answers by which the server says a create failed (not a gateway that lost track of it)
_FAILED_STATUS: Final = frozenset({500, 502})
_CREATE_ATTEMPTS: Final = 3


def _created(create: Callable[[], T], find: Callable[[], T | None]) -> T:
    """``create()``, tried again (at most ``_CREATE_ATTEMPTS`` times) when the API answers
    500/502 *and* a lookup by name shows that nothing was made: then a second POST cannot
    make a duplicate. Anything else (no answer, 504, a lookup that fails) goes to the engine,
    which looks again or leaves the create pending for the next run to resolve."""
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            return create()
        except ServerError as exc:
            if exc.status not in _FAILED_STATUS or attempt == _CREATE_ATTEMPTS:
                raise
            try:
                found = find()
            except ProviderError:
                raise exc from None
            if found is not None:
                return found
    raise AssertionError("unreachable")  # pragma: no cover


def _or_none(get: Callable[[str], T], object_id: str) -> T | None:
    """A read by id; None when the object is gone."""
    try:
        return get(object_id)
    except NotFoundError:
        return None


def _check_text(value: str, resource: str, field: str) -> None:
    """Text the API can store and a person can read: no NUL or other control character
    (shown escaped, so the message itself stays printable), no lone surrogate."""
    bad = next((ch for ch in value if ch < " " or "\x7f" <= ch < "\xa0"), None)
    if bad is not None:
        raise ValidationError(
            f"must not contain control characters; found {bad!r} at position {value.index(bad)}",
            resource=resource,
            field=field,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"is not valid Unicode text (a lone surrogate at position {exc.start})",
            resource=resource,
            field=field,
        ) from None


def _check_name(value: object, resource: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a non-empty string", resource=resource, field="name")
    if len(value) > _MAX_NAME:
        raise ValidationError(
            f"must be at most {_MAX_NAME} characters", resource=resource, field="name"
        )
    _check_text(value, resource, "name")


def _check_region(value: object, resource: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if value not in REGIONS:
        raise ValidationError(
            f"{value!r} is not a Prisma Postgres region; use one of {', '.join(REGIONS)}",
            resource=resource,
            field="region",
        )


def _check_ref(value: object, resource: str, field: str, kind: str) -> None:
    if isinstance(value, Ref):
        return
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"must be a {kind} (the handle, or its id as a string)", resource=resource, field=field
        )
    _check_text(value, resource, field)


def _check_available_region(ctx: Context, region: str) -> None:
    """The API's own list of regions, read once per run."""
    client = _client(ctx)
    regions = ctx.shared("prisma:regions:" + client.base_url, client.list_postgres_regions)
    available = [r.id for r in regions if r.status in (None, "available")]
    if available and region not in available:
        raise ValidationError(
            f"{region!r} is not available; the API offers {', '.join(available)}",
            resource=ctx.resource,
            field="region",
        )


# --- Project -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectProps:
    name: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ProjectOutputs:
    id: str
    name: str
    workspace_id: str | None
    region: str | None
    created_at: str


def _project_outputs(p: api.Project) -> ProjectOutputs:
    return ProjectOutputs(p.id, p.name, p.workspace_id, p.default_region, p.created_at)


@register_provider
class ProjectProvider(_Prisma, Provider[ProjectProps, ProjectOutputs]):
    type_name = "prisma-postgres.Project"
    props_type = ProjectProps
    outputs_type = ProjectOutputs
    updatable = frozenset({"name"})
    default_delete = False

    def validate(self, props: ProjectProps, *, resource: str) -> None:
        _check_name(props.name, resource)
        _check_region(props.region, resource, required=False)

    def create(self, props: ProjectProps, ctx: Context) -> ProjectOutputs:
        assert props.name is not None
        if props.region is not None:
            _check_available_region(ctx, props.region)
        name, region = props.name, props.region
        return _created(
            lambda: _project_outputs(
                _client(ctx).create_project(name=name, region=region, create_database=False)
            ),
            lambda: self.find(props, ctx),
        )

    def update(
        self, props: ProjectProps, old_props: ProjectProps, outputs: ProjectOutputs, ctx: Context
    ) -> ProjectOutputs:
        assert props.name is not None
        return _project_outputs(_client(ctx).update_project(outputs.id, name=props.name))

    def delete(self, props: ProjectProps, outputs: ProjectOutputs, ctx: Context) -> None:
        _client(ctx).delete_project(outputs.id, missing_ok=False)

    def read(
        self, props: ProjectProps, outputs: ProjectOutputs | None, ctx: Context
    ) -> ProjectOutputs | None:
        client = _client(ctx)
        if outputs is not None:
            found_by_id = _or_none(client.get_project, outputs.id)
            return _project_outputs(found_by_id) if found_by_id is not None else None
        return self.find(props, ctx)

    def find(
        self, props: ProjectProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> ProjectOutputs | None:
        name = props.name or ctx.default_name
        for p in _client(ctx).list_projects():
            if p.name == name and p.id not in exclude:
                return _project_outputs(p)
        return None


class Project(Resource[ProjectOutputs]):
    """A Prisma Postgres project. ``delete`` defaults to False (delete protection)."""

    type_name = "prisma-postgres.Project"

    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        region: str | None = None,
        delete: bool = False,
        adopt: bool = False,
        service_token: str | Secret | None = None,
    ) -> None:
        super().__init__(
            id,
            {"name": name, "region": region},
            delete=delete,
            adopt=adopt,
            service_token=service_token,
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name

    @property
    def workspace_id(self) -> str | None:
        return self.outputs.workspace_id


# --- Database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseProps:
    project: str
    region: str = DEFAULT_REGION
    name: str | None = None
    is_default: bool = False


@dataclass(frozen=True)
class DatabaseOutputs:
    id: str
    name: str
    project_id: str
    region: str | None
    status: str
    created_at: str


def _database_outputs(d: api.Database) -> DatabaseOutputs:
    return DatabaseOutputs(d.id, d.name, d.project_id, d.region, d.status, d.created_at)


@register_provider
class DatabaseProvider(_Prisma, Provider[DatabaseProps, DatabaseOutputs]):
    type_name = "prisma-postgres.Database"
    props_type = DatabaseProps
    outputs_type = DatabaseOutputs
    updatable = frozenset({"name"})
    default_delete = False
    #: how long a create waits for the database to become ready
    ready_timeout_s: float = 300.0
    #: how long a lookup (recovery of an interrupted create, adopt) waits for a database it
    #: found provisioning; then the lookup fails and the operation stays pending, so that a
    #: database is never recorded before it is ready (a create cut short may still fail)
    find_wait_s: float = 20.0

    def validate(self, props: DatabaseProps, *, resource: str) -> None:
        _check_ref(props.project, resource, "project", "Project")
        _check_region(props.region, resource, required=True)
        _check_name(props.name, resource)
        if not isinstance(props.is_default, bool):
            raise ValidationError("must be True or False", resource=resource, field="is_default")

    def create(self, props: DatabaseProps, ctx: Context) -> DatabaseOutputs:
        assert props.name is not None
        _check_available_region(ctx, props.region)
        client = _client(ctx)
        name = props.name
        d = _created(
            lambda: client.create_database(
                project_id=props.project,
                name=name,
                region=props.region,
                is_default=props.is_default,
            ),
            lambda: client.find_database_by_name(props.project, name),
        )
        if not d.is_ready:
            d = client.wait_database_ready(d.id, timeout_s=self.ready_timeout_s)
        return _database_outputs(d)

    def update(
        self, props: DatabaseProps, old_props: DatabaseProps, outputs: DatabaseOutputs, ctx: Context
    ) -> DatabaseOutputs:
        assert props.name is not None
        return _database_outputs(_client(ctx).update_database(outputs.id, name=props.name))

    def delete(self, props: DatabaseProps, outputs: DatabaseOutputs, ctx: Context) -> None:
        _client(ctx).delete_database(outputs.id, missing_ok=False)

    def read(
        self, props: DatabaseProps, outputs: DatabaseOutputs | None, ctx: Context
    ) -> DatabaseOutputs | None:
        client = _client(ctx)
        if outputs is not None:
            found_by_id = _or_none(client.get_database, outputs.id)
            return _database_outputs(found_by_id) if found_by_id is not None else None
        return self.find(props, ctx)

    def find(
        self, props: DatabaseProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> DatabaseOutputs | None:
        client = _client(ctx)
        name = props.name or ctx.default_name
        try:
            candidates = client.list_databases(project_id=props.project)
        except NotFoundError:
            return None
        for found in candidates:
            if found.status == "failure":
                continue  # a create that failed: not an object anyone has
            if found.name == name and found.id not in exclude:
                if not found.is_ready:
                    try:
                        found = client.wait_database_ready(found.id, timeout_s=self.find_wait_s)
                    except ProviderError as exc:
                        raise ProviderError(
                            f"found database {found.id} ({name!r}) but it is not ready: {exc}; "
                            "nothing is recorded yet: run again in a moment",
                            resource=ctx.resource,
                            operation="find",
                        ) from exc
                return _database_outputs(found)
        return None


class Database(Resource[DatabaseOutputs]):
    """A Prisma Postgres database in a project. ``delete`` defaults to False."""

    type_name = "prisma-postgres.Database"

    def __init__(
        self,
        id: str,
        *,
        project: Project | str,
        region: str = DEFAULT_REGION,
        name: str | None = None,
        is_default: bool = False,
        delete: bool = False,
        adopt: bool = False,
        service_token: str | Secret | None = None,
    ) -> None:
        super().__init__(
            id,
            {"project": project, "region": region, "name": name, "is_default": is_default},
            delete=delete,
            adopt=adopt,
            service_token=service_token,
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name

    @property
    def project_id(self) -> str:
        return self.outputs.project_id

    @property
    def region(self) -> str | None:
        return self.outputs.region

    @property
    def status(self) -> str:
        return self.outputs.status


# --- Connection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionProps:
    database: str
    name: str | None = None


@dataclass(frozen=True)
class ConnectionOutputs:
    id: str
    name: str
    database_id: str
    host: str
    port: int
    #: the login name: not a credential, so shown in clear (journals written before it was
    #: plain hold it as a Secret: read back, it is plain too)
    user: str
    password: Secret
    connection_string: Secret
    prisma_connection_string: Secret
    created_at: str

    def __post_init__(self) -> None:
        if isinstance(self.user, Secret):
            object.__setattr__(self, "user", self.user.unencrypted)


def _connection_outputs(
    c: api.Connection, previous: ConnectionOutputs | None = None
) -> ConnectionOutputs:
    if c.connection_string is None or c.user is None or c.password is None:
        if previous is None:
            raise ApiError(
                "the API returned a connection without credentials",
                status=200,
                method="GET",
                path=f"/v1/connections/{c.id}",
            )
        return replace(previous, name=c.name, host=c.host or previous.host)
    return ConnectionOutputs(
        id=c.id,
        name=c.name,
        database_id=c.database_id,
        host=c.host,
        port=c.port,
        user=c.user.unencrypted,
        password=c.password,
        connection_string=c.connection_string,
        prisma_connection_string=c.prisma_connection_string or c.connection_string,
        created_at=c.created_at,
    )


@register_provider
class ConnectionProvider(_Prisma, Provider[ConnectionProps, ConnectionOutputs]):
    type_name = "prisma-postgres.Connection"
    props_type = ConnectionProps
    outputs_type = ConnectionOutputs
    default_delete = True

    def validate(self, props: ConnectionProps, *, resource: str) -> None:
        _check_ref(props.database, resource, "database", "Database")
        _check_name(props.name, resource)

    def create(self, props: ConnectionProps, ctx: Context) -> ConnectionOutputs:
        assert props.name is not None
        name = props.name
        return _created(
            lambda: _connection_outputs(
                _client(ctx).create_connection(database_id=props.database, name=name)
            ),
            lambda: self.find(props, ctx),
        )

    def delete(self, props: ConnectionProps, outputs: ConnectionOutputs, ctx: Context) -> None:
        _client(ctx).delete_connection(outputs.id, missing_ok=False)

    def read(
        self, props: ConnectionProps, outputs: ConnectionOutputs | None, ctx: Context
    ) -> ConnectionOutputs | None:
        client = _client(ctx)
        if outputs is not None:
            found_by_id = _or_none(client.get_connection, outputs.id)
            return _connection_outputs(found_by_id, outputs) if found_by_id is not None else None
        return self.find(props, ctx)

    def find(
        self, props: ConnectionProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> ConnectionOutputs | None:
        client = _client(ctx)
        name = props.name or ctx.default_name
        try:
            candidates = client.list_connections(database_id=props.database)
        except NotFoundError:
            return None
        for found in candidates:
            if found.name == name and found.id not in exclude:
                # the API never returns an existing password: new credentials are the only way in
                return _connection_outputs(client.rotate_connection(found.id))
        return None


class Connection(Resource[ConnectionOutputs]):
    """A connection (login) to a database; always deleted on destroy."""

    type_name = "prisma-postgres.Connection"

    def __init__(
        self,
        id: str,
        *,
        database: Database | str,
        name: str | None = None,
        adopt: bool = False,
        service_token: str | Secret | None = None,
    ) -> None:
        super().__init__(
            id,
            {"database": database, "name": name},
            delete=True,
            adopt=adopt,
            service_token=service_token,
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name

    @property
    def host(self) -> str:
        return self.outputs.host

    @property
    def port(self) -> int:
        return self.outputs.port

    @property
    def user(self) -> str:
        return self.outputs.user

    @property
    def password(self) -> Secret:
        return self.outputs.password

    @property
    def connection_string(self) -> Secret:
        return self.outputs.connection_string

    @property
    def prisma_connection_string(self) -> Secret:
        return self.outputs.prisma_connection_string


# --- WorkspaceRef --------------------------------------------------------------------------


class WorkspaceRef:
    """Resolve a workspace by name or id (a lookup, not a managed resource)."""

    def __init__(
        self,
        name_or_id: str,
        *,
        service_token: str | Secret | None = None,
        client: Any = None,
    ) -> None:
        if not isinstance(name_or_id, str) or not name_or_id.strip():
            raise ValidationError("must be a workspace name or id", resource="WorkspaceRef")
        if client is not None:
            ws = client.resolve_workspace(name_or_id)
        else:
            from ._client import PrismaClient

            with PrismaClient(token=service_token) as owned:
                ws = owned.resolve_workspace(name_or_id)
        self.id: str = ws.id
        self.name: str = ws.name

    def __repr__(self) -> str:
        return f"WorkspaceRef(id={self.id!r}, name={self.name!r})"
