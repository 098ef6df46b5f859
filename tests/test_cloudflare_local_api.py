"""The local Cloudflare API end to end over loopback HTTP: a Hyperdrive config for a real
PostgreSQL login, the guide's Worker uploaded and *run* in workerd, its workers.dev URL served
locally, updated, restarted with the server, deleted. Every answer is validated against the
Cloudflare schema excerpt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _cf_openapi import CloudflareApi
from _cloudflare import Login, bundle_example, example_project, gone, pg_login, tools, tree_bytes

from journal.resources.cloudflare._bundle import Bundle
from journal.resources.cloudflare.local import LocalCloudflareApi

pytestmark = pytest.mark.slow

SECRET_TEXT = "sk-local-secret-binding-0123456789"


@pytest.fixture(scope="module")
def openapi() -> CloudflareApi:
    return CloudflareApi()


class Client:
    """An httpx client on the local API that checks every JSON answer against the excerpt."""

    def __init__(self, api: LocalCloudflareApi, openapi: CloudflareApi) -> None:
        self.openapi = openapi
        self.seen: set[tuple[str, str, int]] = set()
        self.http = httpx.Client(
            base_url=api.base_url,
            headers={"Authorization": "Bearer local-test-token"},
            timeout=60,
            event_hooks={"response": [self._check]},
        )
        self.account = api.account_id

    def _check(self, response: httpx.Response) -> None:
        response.read()
        path = response.request.url.path.removeprefix("/client/v4")
        template = self.openapi.template_for(response.request.method, path)
        self.seen.add((response.request.method, template, response.status_code))
        if response.headers.get("content-type") != "application/json":
            assert template.endswith("{script_name}") and response.request.method == "GET"
            return
        self.openapi.validate(
            response.request.method, template, response.status_code, response.json()
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def acct(self, path: str) -> str:
        return f"/accounts/{self.account}{path}"

    def upload(self, name: str, bundle: Bundle, bindings: list[dict[str, Any]]) -> httpx.Response:
        metadata = {
            "main_module": bundle.main_module,
            "compatibility_date": "2026-11-01",
            "compatibility_flags": ["nodejs_compat"],
            "bindings": bindings,
        }
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            (m.name, (m.name, m.read(), m.content_type)) for m in bundle.modules
        ]
        files.append(("metadata", ("blob", json.dumps(metadata).encode(), "application/json")))
        return self.http.put(self.acct(f"/workers/scripts/{name}"), files=files)


@pytest.fixture
def login() -> Iterator[Login]:
    with pg_login() as made:
        yield made


def _origin(login: Login, **changes: Any) -> dict[str, Any]:
    origin = {
        "scheme": "postgresql",
        "host": login.host,
        "port": login.port,
        "database": login.database,
        "user": login.user,
        "password": login.password,
    }
    return {**origin, **changes}


def test_hyperdrive_and_worker_deploy_serve_update_restart_and_delete(
    tmp_path: Path, openapi: CloudflareApi, login: Login
) -> None:
    project = example_project(tmp_path)
    bundle = bundle_example(project, tmp_path / "build-1")
    data = tmp_path / "cf"
    with LocalCloudflareApi(data_dir=data, tools=tools()) as api, Client(api, openapi) as c:
        accounts = c.http.get("/accounts").json()["result"]
        assert [a["id"] for a in accounts] == [api.account_id]

        made = c.http.post(
            c.acct("/hyperdrive/configs"),
            json={"name": "prisma-postgres", "origin": _origin(login)},
        )
        assert made.status_code == 200, made.text
        config = made.json()["result"]
        assert config["origin"] == {
            "scheme": "postgresql",
            "host": login.host,
            "port": login.port,
            "database": login.database,
            "user": login.user,
        }  # the password is never read back
        assert c.http.get(c.acct(f"/hyperdrive/configs/{config['id']}")).json()["result"] == config
        assert [h["id"] for h in c.http.get(c.acct("/hyperdrive/configs")).json()["result"]] == [
            config["id"]
        ]

        bindings = [
            {"type": "hyperdrive", "name": "HYPERDRIVE", "id": config["id"]},
            {"type": "plain_text", "name": "GREETING", "text": "hello"},
            {"type": "secret_text", "name": "API_KEY", "text": SECRET_TEXT},
        ]
        uploaded = c.upload("worker", bundle, bindings)
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["result"]["id"] == "worker"
        sub = c.http.post(c.acct("/workers/scripts/worker/subdomain"), json={"enabled": True})
        url = sub.json()["result"]["url"]
        assert url.startswith("http://127.0.0.1:")
        assert c.http.get(c.acct("/workers/subdomain")).json()["result"]["subdomain"]

        answer = httpx.get(url, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
        assert len(answer.json()["result"]) == login.count_pg_tables()

        settings = c.http.get(c.acct("/workers/scripts/worker/settings")).json()["result"]
        assert {"type": "secret_text", "name": "API_KEY"} in settings["bindings"]
        assert SECRET_TEXT not in json.dumps(settings)
        assert c.http.get(c.acct("/workers/scripts/worker")).content == bundle.modules[0].read()

        # an edited worker.ts is new code at the same url
        src = project / "src" / "worker.ts"
        src.write_text(src.read_text().replace("success: true,", "success: true, version: 2,"))
        bundle2 = bundle_example(project, tmp_path / "build-2")
        assert bundle2.hash != bundle.hash
        assert c.upload("worker", bundle2, bindings).status_code == 200
        assert httpx.get(url, timeout=30).json()["version"] == 2

        # no secret in the state, the stored modules, or workerd's arguments
        worker = api.worker("worker")
        assert worker is not None and worker.pid is not None
        pid = worker.pid
        for secret in (login.password, SECRET_TEXT):
            assert secret.encode() not in api.state_path.read_bytes()
            assert secret.encode() not in tree_bytes(data / "scripts")
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert gone(pid)

    # a restarted server runs its Workers again, at the same address
    with LocalCloudflareApi(data_dir=data, tools=tools()) as api, Client(api, openapi) as c:
        sub = c.http.get(c.acct("/workers/scripts/worker/subdomain")).json()["result"]
        assert sub["url"] == url
        assert httpx.get(url, timeout=30).json()["version"] == 2
        worker = api.worker("worker")
        assert worker is not None and worker.pid is not None
        pid = worker.pid

        deleted = c.http.delete(c.acct("/workers/scripts/worker"), params={"force": "true"})
        assert deleted.status_code == 200
        assert gone(pid)
        assert c.http.get(c.acct("/workers/scripts/worker/settings")).status_code == 404
        assert c.http.get(c.acct("/workers/scripts")).json()["result"] == []
        assert not (data / "scripts" / "worker").exists()
        assert c.http.delete(c.acct(f"/hyperdrive/configs/{config['id']}")).status_code == 200
        missing = c.http.get(c.acct(f"/hyperdrive/configs/{config['id']}"))
        assert missing.status_code == 404
        assert missing.json()["success"] is False


def test_errors_are_cloudflares_envelope_and_a_failed_upload_keeps_the_old_version(
    tmp_path: Path, openapi: CloudflareApi, login: Login
) -> None:
    project = example_project(tmp_path)
    bundle = bundle_example(project, tmp_path / "build")
    with (
        LocalCloudflareApi(data_dir=tmp_path / "cf", tools=tools()) as api,
        Client(api, openapi) as c,
    ):
        unauth = httpx.get(api.base_url + "/accounts")
        assert unauth.status_code == 400 and unauth.json()["errors"][0]["code"] == 10000

        body = {"name": "hd", "origin": _origin(login)}
        first = c.http.post(c.acct("/hyperdrive/configs"), json=body).json()["result"]
        conflict = c.http.post(c.acct("/hyperdrive/configs"), json=body)
        assert conflict.status_code == 409
        assert conflict.json()["errors"][0]["code"] == 2017

        no_db = c.http.post(
            c.acct("/hyperdrive/configs"),
            json={"name": "other", "origin": _origin(login, database="no_such_database")},
        )
        assert no_db.status_code == 400
        assert no_db.json()["errors"][0]["code"] == 2014

        partial = c.http.put(c.acct(f"/hyperdrive/configs/{first['id']}"), json={"name": "x"})
        assert partial.status_code == 400
        renamed = c.http.patch(c.acct(f"/hyperdrive/configs/{first['id']}"), json={"name": "hd2"})
        assert renamed.json()["result"]["name"] == "hd2"

        binding = [{"type": "hyperdrive", "name": "HYPERDRIVE", "id": first["id"]}]
        assert c.upload("worker", bundle, binding).status_code == 200
        url = c.http.post(
            c.acct("/workers/scripts/worker/subdomain"), json={"enabled": True}
        ).json()["result"]["url"]

        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "worker.js").write_text('throw new Error("broken at start-up");')
        bad = Bundle(
            broken,
            "worker.js",
            (
                bundle.modules[0].__class__(
                    "worker.js", "application/javascript+module", broken / "worker.js"
                ),
            ),
            "x",
        )
        refused = c.upload("worker", bad, binding)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == 10021
        assert "broken at start-up" in refused.json()["errors"][0]["message"]
        assert httpx.get(url, timeout=30).json()["success"] is True  # the old version serves on

        unknown = c.upload("other", bundle, [{"type": "hyperdrive", "name": "H", "id": "0" * 32}])
        assert unknown.status_code == 400
        assert c.http.get(c.acct("/workers/scripts/nope/settings")).status_code == 404
        assert c.http.delete(c.acct("/workers/scripts/nope")).status_code == 404
        no_route = httpx.get(api.base_url + "/no/such/route", headers=c.http.headers)
        assert no_route.status_code == 404
        openapi.validate_error(no_route.json())


def test_a_changed_origin_password_restarts_the_bound_worker(
    tmp_path: Path, openapi: CloudflareApi, login: Login
) -> None:
    bundle = bundle_example(example_project(tmp_path), tmp_path / "build")
    with (
        LocalCloudflareApi(data_dir=tmp_path / "cf", tools=tools()) as api,
        Client(api, openapi) as c,
    ):
        cfg = c.http.post(
            c.acct("/hyperdrive/configs"), json={"name": "hd", "origin": _origin(login)}
        ).json()["result"]
        c.upload("worker", bundle, [{"type": "hyperdrive", "name": "HYPERDRIVE", "id": cfg["id"]}])
        worker = api.worker("worker")
        assert worker is not None and worker.pid is not None
        before = worker.pid
        new = {"name": "hd", "origin": _origin(login, password="rotated-password")}
        assert c.http.put(c.acct(f"/hyperdrive/configs/{cfg['id']}"), json=new).status_code == 200
        assert worker.pid != before and gone(before)
        assert b"rotated-password" not in api.state_path.read_bytes()
