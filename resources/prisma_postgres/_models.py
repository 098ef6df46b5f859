"""Typed results of the Prisma Management API client, and the parsers that build them.

The parsers accept the current response shape and the deprecated one, preferring the current
(see ``_client``). They raise ``MalformedError`` when a body lacks what the OpenAPI document
requires; the client turns that into an ``ApiError`` naming the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from journal.provider import Secret

__all__ = [
    "Connection",
    "Database",
    "MalformedError",
    "Project",
    "Region",
    "Workspace",
    "parse_connection",
    "parse_database",
    "parse_instance",
    "parse_project",
    "parse_region",
    "parse_workspace",
]

# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    name: str
    #: "available" | "unavailable" (None when the API does not say)
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    """A connection (a login to one database). Credentials come with the answers to create
    and rotate; a connection read with GET or listed normally has them set to ``None`` (only
    the deprecated ``directConnection`` field, when an API still sends it, carries them)."""

    id: str
    name: str
    database_id: str
    #: the direct endpoint ("" and 0 only if the API gave no endpoint at all)
    host: str
    port: int
    user: Secret | None
    password: Secret | None
    #: ``postgres://`` direct connection string
    connection_string: Secret | None
    pooled_connection_string: Secret | None
    created_at: str
    #: ``prisma+postgres://`` string (the Accelerate endpoint), Alchemy's prismaConnectionString
    prisma_connection_string: Secret | None = None
    #: "postgres" | "accelerate"
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Database:
    id: str
    name: str
    project_id: str
    #: region id, e.g. "us-east-1" (None when the API reports no region)
    region: str | None
    #: "provisioning" | "ready" | "failure" | "recovering"
    status: str
    created_at: str
    is_default: bool
    default_connection_id: str | None = None
    #: connections embedded in the answer (with credentials only in a create answer)
    connections: tuple[Connection, ...] = ()

    @property
    def is_ready(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    #: None only if the API omits the workspace (it should not)
    workspace_id: str | None
    created_at: str
    default_region: str | None
    #: the database created with the project (``create_project(create_database=True)``)
    database: Database | None = None


# --- parsing -------------------------------------------------------------------------------


class MalformedError(Exception):
    """A response body that does not have the documented shape (internal only)."""


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is not an object")
    return value


def _sub(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    value = None if obj is None else obj.get(key)
    return value if isinstance(value, dict) else None


def _opt_str(obj: Mapping[str, Any] | None, key: str) -> str | None:
    value = None if obj is None else obj.get(key)
    return value if isinstance(value, str) and value != "" else None


def _req_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = _opt_str(obj, key)
    if value is None:
        raise MalformedError(f"{what} has no {key!r}")
    return value


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v is not None), None)


def _id_of(value: object) -> str | None:
    """A reference given either as a string id or as an object with an ``id``."""
    if isinstance(value, str) and value:
        return value
    return _opt_str(value, "id") if isinstance(value, dict) else None


def _secret(value: str | None) -> Secret | None:
    return None if value is None else Secret(value)


def _port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _split_host(value: str) -> tuple[str, int | None]:
    """``"db.prisma.io:5432"`` -> ``("db.prisma.io", 5432)`` (the deprecated host shape)."""
    host, sep, port = value.rpartition(":")
    if sep and host and port.isdigit():
        return host, int(port)
    return value, None


def _url_parts(url: str | None) -> tuple[str | None, int | None, str | None, str | None]:
    """(host, port, user, password) of a connection string, each None if absent."""
    if url is None:
        return None, None, None, None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or None, port, user, password


def _is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(("postgres://", "postgresql://"))


def _endpoint(endpoints: Mapping[str, Any] | None, kind: str) -> tuple[str | None, int | None]:
    ep = _sub(endpoints, kind)
    return _opt_str(ep, "host"), _port(None if ep is None else ep.get("port"))


def parse_instance(body: bytes) -> str | None:
    """The identity in a journal local API's ``GET /health`` answer; None when it gives none
    (another API, or an answer that is not the JSON object it should be)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    instance = payload.get("instance") if isinstance(payload, dict) else None
    return instance if isinstance(instance, str) and instance else None


def parse_workspace(raw: object) -> Workspace:
    o = _obj(raw, "workspace")
    return Workspace(id=_req_str(o, "id", "workspace"), name=_req_str(o, "name", "workspace"))


def parse_region(raw: object) -> Region:
    o = _obj(raw, "region")
    rid = _req_str(o, "id", "region")
    return Region(id=rid, name=_opt_str(o, "name") or rid, status=_opt_str(o, "status"))


def parse_connection(raw: object, *, database_id: str | None = None) -> Connection:
    o = _obj(raw, "connection")
    endpoints = _sub(o, "endpoints")
    direct = _sub(endpoints, "direct")
    legacy = _sub(o, "directConnection")  # deprecated: {host, user, pass}
    legacy_cs = _opt_str(o, "connectionString")  # deprecated: postgres:// or prisma+postgres://

    direct_cs = _first(
        _opt_str(direct, "connectionString"),
        legacy_cs if _is_postgres_url(legacy_cs) else None,
    )
    prisma_cs = _first(
        _opt_str(_sub(endpoints, "accelerate"), "connectionString"),
        legacy_cs if legacy_cs is not None and not _is_postgres_url(legacy_cs) else None,
    )
    url_host, url_port, url_user, url_password = _url_parts(direct_cs)
    user = _first(url_user, _opt_str(o, "user"), _opt_str(legacy, "user"))
    password = _first(url_password, _opt_str(o, "pass"), _opt_str(legacy, "pass"))

    legacy_host, legacy_port = None, None
    legacy_host_port = _first(_opt_str(o, "host"), _opt_str(legacy, "host"))
    if legacy_host_port is not None:
        legacy_host, legacy_port = _split_host(legacy_host_port)
    host, port = _endpoint(endpoints, "direct")
    for alt_host, alt_port in (
        (url_host, url_port),
        (legacy_host, legacy_port),
        _endpoint(endpoints, "pooled"),
        _endpoint(endpoints, "accelerate"),
    ):
        if host is None and alt_host is not None:
            host, port = alt_host, port if port is not None else alt_port
    if host is not None and port is None:
        port = 5432

    if direct_cs is None and user and password and host:
        # the deprecated shape gives the parts only; this is the string Prisma documents
        direct_cs = (
            f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
            "/postgres?sslmode=require"
        )

    db_id = _first(_id_of(o.get("database")), _opt_str(o, "databaseId"), database_id)
    if db_id is None:
        raise MalformedError("connection has no database id")
    return Connection(
        id=_req_str(o, "id", "connection"),
        name=_req_str(o, "name", "connection"),
        database_id=db_id,
        host=host or "",
        port=port or 0,
        user=_secret(user),
        password=_secret(password),
        connection_string=_secret(direct_cs),
        pooled_connection_string=_secret(_opt_str(_sub(endpoints, "pooled"), "connectionString")),
        created_at=_opt_str(o, "createdAt") or "",
        prisma_connection_string=_secret(prisma_cs),
        kind=_opt_str(o, "kind"),
    )


def parse_database(raw: object, *, project_id: str | None = None) -> Database:
    o = _obj(raw, "database")
    db_id = _req_str(o, "id", "database")
    default_connection_id = _opt_str(o, "defaultConnectionId")
    raw_connections = o.get("connections")
    if not isinstance(raw_connections, list):
        raw_connections = o.get("apiKeys")  # deprecated name of the same list
    if not isinstance(raw_connections, list):
        raw_connections = []
    # deprecated: the default connection's credentials at the database's top level
    legacy = {k: o.get(k) for k in ("connectionString", "directConnection")}
    connections = []
    for item in raw_connections:
        item_obj = _obj(item, "connection")
        is_default = item_obj.get("id") == default_connection_id or len(raw_connections) == 1
        if is_default and any(v is not None for v in legacy.values()):
            merged = dict(item_obj)
            for key, value in legacy.items():
                if merged.get(key) is None and value is not None:
                    merged[key] = value
            item_obj = merged
        connections.append(parse_connection(item_obj, database_id=db_id))

    owner = _first(_id_of(o.get("project")), _opt_str(o, "projectId"), project_id)
    if owner is None:
        raise MalformedError("database has no project id")
    return Database(
        id=db_id,
        name=_req_str(o, "name", "database"),
        project_id=owner,
        region=_id_of(o.get("region")),
        status=_req_str(o, "status", "database"),
        created_at=_opt_str(o, "createdAt") or "",
        is_default=o.get("isDefault") is True,
        default_connection_id=default_connection_id,
        connections=tuple(connections),
    )


def parse_project(raw: object) -> Project:
    o = _obj(raw, "project")
    pid = _req_str(o, "id", "project")
    db = o.get("database")
    return Project(
        id=pid,
        name=_req_str(o, "name", "project"),
        workspace_id=_first(_id_of(o.get("workspace")), _opt_str(o, "workspaceId")),
        created_at=_opt_str(o, "createdAt") or "",
        default_region=_id_of(o.get("defaultRegion")),
        database=parse_database(db, project_id=pid) if isinstance(db, dict) else None,
    )
