"""A local, Prisma Management API v1 compatible server backed by real PostgreSQL.

    from journal.resources.prisma_postgres.local import LocalPrismaApi

    with LocalPrismaApi(postgres_url="postgresql://postgres@127.0.0.1:5432/postgres") as api:
        ...  # a client with base URL api.url and any bearer token

A database is a real ``CREATE DATABASE``, a connection a LOGIN role with its own password, and
the connection strings returned connect over TCP on 127.0.0.1. Without ``postgres_url`` the
server runs an embedded PostgreSQL (the ``pgserver`` wheel's binaries) in ``data_dir``.
Faults (latency, 429, 5xx, lost answers, timeouts) can be injected for tests.
"""

from __future__ import annotations

from ._backend import Connection, Database, Inventory, Project, Workspace
from ._faults import Faults
from ._postgres import EmbeddedPostgres
from ._server import LocalPrismaApi, serve_forever

__all__ = [
    "Connection",
    "Database",
    "EmbeddedPostgres",
    "Faults",
    "Inventory",
    "LocalPrismaApi",
    "Project",
    "Workspace",
    "serve_forever",
]
