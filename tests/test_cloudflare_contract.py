"""The provider contract suite (``journal.testing``) for Cloudflare's Hyperdrive, against the
local Cloudflare API over real loopback HTTP (its origins: a real PostgreSQL login). The
dependent resource is a Worker bound to the Hyperdrive (``bindings.HYPERDRIVE``), run in
workerd."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _cloudflare import example_project, pg_login, tools

from journal.provider import Endpoint, Resource, Secret
from journal.resources.cloudflare import Hyperdrive, Worker
from journal.resources.cloudflare.local import LocalCloudflareApi
from journal.testing import ProviderContract

pytestmark = pytest.mark.slow


class TestHyperdriveContract(ProviderContract):
    type_name = "cloudflare.Hyperdrive"

    @pytest.fixture(autouse=True)
    def _local_api(self, tmp_path: Path) -> Iterator[None]:
        self.tools = tools()
        self.project = example_project(tmp_path)
        with (
            pg_login() as login,
            LocalCloudflareApi(data_dir=tmp_path / "cloudflare", tools=self.tools) as server,
        ):
            self.api = server
            self.dsn = (
                f"postgresql://{login.user}:{quote(login.password, safe='')}"
                f"@{login.host}:{login.port}/{login.database}"
            )
            yield

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"cloudflare": Endpoint(self.api.base_url, {"api_token": Secret("ct-token")})}

    def declare(self, id: str, name: str, **options: Any) -> Resource[Any]:
        return Hyperdrive(id, name=name, origin=Secret(self.dsn), **options)

    def declare_dependent(self, id: str, target: Resource[Any], **options: Any) -> Resource[Any]:
        assert isinstance(target, Hyperdrive)
        return Worker(
            id,
            entrypoint=self.project / "src" / "worker.ts",
            bindings={"HYPERDRIVE": target},
            compatibility_flags=["nodejs_compat"],
            **options,
        )
