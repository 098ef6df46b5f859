"""Prisma Postgres resources for journal: ``Project``, ``Database``, ``Connection``,
``WorkspaceRef``, and the Management API client they use.

    from journal.resources.prisma_postgres import Connection, Database, Project
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _service  # noqa: F401 - registers the service: credentials, API URL, local API

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """The resource types and the client, imported on first use: finding the installed
    services (the CLI does it on every run) registers only ``_service``."""
    if name == "PrismaClient":
        from . import _client

        return _client.PrismaClient
    if name in __all__:
        from . import _resources

        return getattr(_resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
