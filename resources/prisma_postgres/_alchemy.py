"""Alchemy 0.94's Prisma Postgres records, mapped for ``journal import-alchemy``.

Alchemy names the kinds ``prisma::Project``, ``prisma::Database`` and ``prisma::Connection``
(``prisma-postgres::*`` is accepted too). Its props are what the program passed (``name``,
``delete``, ``serviceToken``, a Database's ``project`` and ``region``, a Connection's
``database``); its outputs are the API's answer. They become the props our resources record
after ``prepare`` (the name filled in: Alchemy's default name ``<app>-<id>-<stage>`` is ours
too) and our outputs. ``WorkspaceRef`` is a lookup in both tools: nothing to import.

Where the two differ: Alchemy's Connection ``host`` is ``host:port`` (ours splits it into
``host`` and ``port``). Alchemy 0.94 reads a
``serviceToken`` only when it is a secret (``alchemy.secret(...)``): given as a plain string
(as the guide's multi-workspace example does) it is ignored and PRISMA_SERVICE_TOKEN is used,
which the import reports.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from journal.provider import (
    AlchemyRecord,
    AlchemyStateError,
    Linker,
    Mapped,
    Secret,
    register_alchemy_kind,
)

from ._resources import (
    DEFAULT_REGION,
    ConnectionOutputs,
    ConnectionProps,
    DatabaseOutputs,
    DatabaseProps,
    ProjectOutputs,
    ProjectProps,
)

__all__: list[str] = []


def _str(rec: AlchemyRecord, values: dict[str, Any], key: str, default: str | None = None) -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise AlchemyStateError(f"{rec.source}: output.{key} is missing or not a string")
    return value


def _has_object(rec: AlchemyRecord) -> bool:
    return isinstance(rec.output.get("id"), str)


def _token(rec: AlchemyRecord, mapped: Mapped) -> None:
    token = rec.props.get("serviceToken")
    if isinstance(token, Secret):
        mapped.service_token = token
    elif isinstance(token, str) and token:
        # what the translated program passes; Alchemy itself used PRISMA_SERVICE_TOKEN
        mapped.service_token = Secret(token)
        mapped.notes.append(
            "serviceToken was a plain string, which Alchemy 0.94 ignores (it used "
            "PRISMA_SERVICE_TOKEN): the object is in that token's workspace"
        )


def _name(rec: AlchemyRecord) -> str:
    """As Alchemy decides it: the prop, else the object's name, else the default name."""
    for value in (rec.props.get("name"), rec.output.get("name")):
        if isinstance(value, str) and value:
            return value
    return Linker.physical_name(rec)


def _project(rec: AlchemyRecord, link: Linker) -> Mapped:
    mapped = Mapped(
        "prisma-postgres.Project",
        ProjectProps(name=_name(rec), region=None),
        None,
        delete=rec.props.get("delete") is True,
    )
    _token(rec, mapped)
    if _has_object(rec):
        out = rec.output
        workspace = out.get("workspace")
        ws_id = workspace.get("id") if isinstance(workspace, dict) else None
        mapped.outputs = ProjectOutputs(
            id=_str(rec, out, "id"),
            name=_str(rec, out, "name"),
            workspace_id=ws_id if isinstance(ws_id, str) else None,
            region=None,  # Alchemy does not record a project's default region
            created_at=_str(rec, out, "createdAt", ""),
        )
    return mapped


def _database(rec: AlchemyRecord, link: Linker) -> Mapped:
    mapped = Mapped("prisma-postgres.Database", None, None, delete=rec.props.get("delete") is True)
    project = link.ref(rec, rec.props.get("project"), "project", mapped)
    out = rec.output
    region = rec.props.get("region") or out.get("region") or DEFAULT_REGION
    if not rec.props.get("region") and region != DEFAULT_REGION:
        mapped.notes.append(f'pass region="{region}" in the program (Alchemy used the default)')
    mapped.props = DatabaseProps(project=project, region=str(region), name=_name(rec))
    _token(rec, mapped)
    if _has_object(rec):
        mapped.outputs = DatabaseOutputs(
            id=_str(rec, out, "id"),
            name=_str(rec, out, "name"),
            project_id=_str(rec, out, "project", project),
            region=out.get("region") if isinstance(out.get("region"), str) else None,
            status=_str(rec, out, "status", "ready"),
            created_at=_str(rec, out, "createdAt", ""),
        )
    return mapped


def _split_host(value: object) -> tuple[str, int]:
    """Alchemy's ``host`` is the API's ``host:port``."""
    if not isinstance(value, str) or not value:
        return "", 0
    host, sep, port = value.rpartition(":")
    if sep and host and port.isdigit():
        return host, int(port)
    return value, 5432


def _secret(rec: AlchemyRecord, key: str) -> Secret:
    value = rec.output.get(key)
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise AlchemyStateError(f"{rec.source}: output.{key} is missing")


def _connection(rec: AlchemyRecord, link: Linker) -> Mapped:
    mapped = Mapped("prisma-postgres.Connection", None, None, delete=True)
    database = link.ref(rec, rec.props.get("database"), "database", mapped)
    mapped.props = ConnectionProps(database=database, name=_name(rec))
    _token(rec, mapped)
    if _has_object(rec):
        out = rec.output
        host, port = _split_host(out.get("host"))
        dsn = _secret(rec, "connectionString")
        parts = urlsplit(dsn.unencrypted)
        user = out.get("user") or (unquote(parts.username) if parts.username else "")
        password = out.get("password")
        if not isinstance(password, Secret):
            password = Secret(unquote(parts.password) if parts.password else "")
        mapped.outputs = ConnectionOutputs(
            id=_str(rec, out, "id"),
            name=_str(rec, out, "name"),
            database_id=_str(rec, out, "database", database),
            host=host,
            port=port,
            user=user.unencrypted if isinstance(user, Secret) else str(user),
            password=password,
            connection_string=dsn,
            prisma_connection_string=_secret(rec, "prismaConnectionString"),
            created_at=_str(rec, out, "createdAt", ""),
        )
    return mapped


_LOOKUP = "a lookup (WorkspaceRef), not a managed resource: nothing to import"

for _prefix in ("prisma", "prisma-postgres"):
    register_alchemy_kind(f"{_prefix}::Project", _project)
    register_alchemy_kind(f"{_prefix}::Database", _database)
    register_alchemy_kind(f"{_prefix}::Connection", _connection)
    register_alchemy_kind(f"{_prefix}::WorkspaceRef", None, note=_LOOKUP)
