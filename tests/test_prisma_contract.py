"""The provider contract suite (``journal.testing``) for Prisma Postgres, against the local
Prisma-compatible API over real loopback HTTP on the shared PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from journal.provider import Endpoint, Resource, Secret
from journal.resources.prisma_postgres import Database, Project
from journal.resources.prisma_postgres.local import LocalPrismaApi
from journal.testing import ProviderContract

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


class TestPrismaProjectContract(ProviderContract):
    type_name = "prisma-postgres.Project"

    @pytest.fixture(autouse=True)
    def _local_api(self) -> Iterator[None]:
        server = LocalPrismaApi(postgres_url=SHARED_PG, prefix="ct" + uuid.uuid4().hex[:8])
        server.start()
        self.api = server
        try:
            yield
        finally:
            server.purge()
            server.stop()

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"prisma-postgres": Endpoint(self.api.url, {"service_token": Secret("ct-token")})}

    def declare(self, id: str, name: str, **options: Any) -> Resource[Any]:
        return Project(id, name=name, **options)

    def declare_replaced(self, id: str, name: str, **options: Any) -> Resource[Any]:
        return Project(id, name=name, region="eu-west-3", **options)

    def declare_dependent(self, id: str, target: Resource[Any], **options: Any) -> Resource[Any]:
        assert isinstance(target, Project)
        return Database(id, project=target, **options)
