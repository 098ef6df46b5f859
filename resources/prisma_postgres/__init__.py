"""Prisma Postgres resources for journal: ``Project``, ``Database``, ``Connection``,
``WorkspaceRef``, and the Management API client they use.

    from journal.resources.prisma_postgres import Connection, Database, Project
"""

from __future__ import annotations

from . import (
    _alchemy,  # noqa: F401 - registers the Alchemy kinds for `journal import-alchemy`
    _service,  # noqa: F401 - registers the service: credentials, API URL, local API
)
from ._client import PrismaClient
from ._resources import (
    REGIONS,
    Connection,
    ConnectionOutputs,
    Database,
    DatabaseOutputs,
    Project,
    ProjectOutputs,
    WorkspaceRef,
)

__all__ = [
    "REGIONS",
    "Connection",
    "ConnectionOutputs",
    "Database",
    "DatabaseOutputs",
    "PrismaClient",
    "Project",
    "ProjectOutputs",
    "WorkspaceRef",
]
