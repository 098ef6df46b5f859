"""The Hyperdrive and Worker providers: origin parsing, and (on ``httpx.MockTransport``, with
the client tests' helpers) adoption on a name conflict and a changed origin password seen as
a change without reading the config back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cloudflare_client import ACCOUNT, Api, fail, hyperdrive_json, ok

from journal import RunError
from journal._journal import Journal
from journal._program.app import RunSettings, app, run_settings
from journal._provider import Endpoint, get_provider, make_context
from journal._secret import Secret
from journal.provider import ProviderError, ValidationError
from journal.resources.cloudflare import Hyperdrive, parse_origin
from journal.resources.cloudflare import _resources as resources

PASSWORD = "p@ss:w/rd%"
ENCODED = "p%40ss%3Aw%2Frd%25"
DSN = f"postgresql://us%40er:{ENCODED}@db.example.com/app%20db?sslmode=require"


# --- parsing ---------------------------------------------------------------------------------


def test_a_connection_string_is_parsed_percent_decoded_with_defaults() -> None:
    origin, sslmode = parse_origin(Secret(DSN))
    assert (origin.user, origin.database, origin.host) == ("us@er", "app db", "db.example.com")
    assert origin.password == Secret(PASSWORD)
    assert (origin.port, origin.scheme, sslmode) == (5432, "postgresql", "require")
    bare, mode = parse_origin(f"postgres://u:{ENCODED}@h:6543")
    assert (bare.port, bare.database, mode) == (6543, "postgres", None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u:p@h/db", "postgres:// or postgresql://"),
        ("postgres://u@h/db", "has no password"),
        ("postgres://:p@h/db", "has no user"),
        ("postgres://u:p@h:99999/db", "check the port"),
        ("postgres://u:p@h/db?sslmode=sometimes", "not a PostgreSQL sslmode"),
        ({"host": "h", "user": "u"}, "needs 'password'"),
        ({"host": "h", "user": "u", "password": "p", "pass": 1}, "unknown keys"),
    ],
)
def test_a_bad_origin_is_refused_by_name(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        parse_origin(value, resource="db")
    assert "db.origin" in str(info.value) or "origin" in str(info.value)
    assert "p@" not in str(info.value)


# --- against a scripted API ------------------------------------------------------------------


@pytest.fixture
def cf(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The providers' client on a MockTransport (account id given: no discovery)."""
    server = Api()
    client = server.client()
    monkeypatch.setattr(resources, "_client", lambda ctx: client)
    yield server
    for http in server.clients:
        http.close()


def _ctx(adopt: bool = False) -> Any:
    return make_context(
        "cloudflare.Hyperdrive",
        app="demo",
        stage="dev",
        resource="db",
        endpoints={"cloudflare": Endpoint("https://cf.test/client/v4")},
        adopt=adopt,
    )


def _props(password: str = ENCODED) -> Any:
    provider = get_provider("cloudflare.Hyperdrive")
    dsn = f"postgres://u1:{password}@db.prisma.io:5432/postgres"
    props = provider.props_type(origin=Secret(dsn), name="demo-db-dev")
    return provider, provider.prepare(props, _ctx())


def test_a_name_conflict_with_adopt_takes_the_config_over(cf: Api) -> None:
    provider, props = _props()
    existing = hyperdrive_json(7, name="demo-db-dev")
    cf.script.extend(
        [
            fail(409, (2017, "A Hyperdrive config with that name already exists")),
            ok([existing], result_info={"page": 1, "per_page": 20, "count": 1, "total_count": 1}),
            ok(existing),
        ]
    )
    out = provider.create(props, _ctx(adopt=True))
    assert out.id == existing["id"]
    methods = [(r.method, r.url.path.split(ACCOUNT)[1]) for r in cf.requests]
    assert methods == [
        ("POST", "/hyperdrive/configs"),
        ("GET", "/hyperdrive/configs"),
        ("PUT", f"/hyperdrive/configs/{existing['id']}"),
    ]
    body = cf.body()
    assert body["name"] == "demo-db-dev"
    assert body["origin"]["password"] == PASSWORD  # the full body: ours now


def test_a_name_conflict_without_adopt_says_what_to_do(cf: Api) -> None:
    provider, props = _props()
    cf.script.append(fail(409, (2017, "A Hyperdrive config with that name already exists")))
    with pytest.raises(ProviderError, match="pass adopt=True to take it over"):
        provider.create(props, _ctx())
    assert len(cf.requests) == 1


def test_a_changed_password_is_an_update_without_reading_the_config(
    cf: Api, tmp_path: Path
) -> None:
    """The API never returns the password: the change is seen in the props (the origin and
    its keyed digest), and the update sends the full body with the new password."""
    created = hyperdrive_json(3, name="demo-db-dev")
    cf.handler = lambda request: ok(created)
    journal = Journal.open(tmp_path / "j.db", password="resources-test-password")

    def deploy(password: str) -> Any:
        settings = RunSettings(
            journal=journal,
            stage="dev",
            endpoints={"cloudflare": Endpoint("https://cf.test/client/v4")},
        )
        dsn = f"postgres://u1:{password}@db.prisma.io/postgres"
        with run_settings(settings), app("demo"):
            Hyperdrive("db", origin=dsn)
        return settings.results[-1]

    try:
        assert deploy("first-password").counts == {"create": 1}
        assert deploy("first-password").counts == {"noop": 1}
        before = len(cf.requests)
        second = deploy("second-password")
        assert second.counts == {"update": 1}
        assert set(second.changes[0].diff) >= {"origin", "origin_hash"}
        assert "second-password" not in json.dumps(second.changes[0].diff)
        sent = cf.requests[before:]
        assert [(r.method, r.url.path.rsplit("/", 1)[1]) for r in sent] == [("PUT", created["id"])]
        assert json.loads(sent[0].content)["origin"]["password"] == "second-password"
    finally:
        journal.close()


def test_the_origin_hash_hides_the_password_and_follows_it() -> None:
    _, a = _props("one-password")
    _, b = _props("one-password")
    _, c = _props("another-password")
    assert a.origin_hash == b.origin_hash != c.origin_hash
    assert "one-password" not in a.origin_hash


def test_a_failed_adopt_leaves_nothing_recorded(cf: Api, tmp_path: Path) -> None:
    cf.handler = lambda request: httpx.Response(
        403, json={"success": False, "errors": [{"code": 10000, "message": "denied"}]}
    )
    journal = Journal.open(tmp_path / "j.db", password="resources-test-password")
    settings = RunSettings(
        journal=journal,
        stage="dev",
        endpoints={"cloudflare": Endpoint("https://cf.test/client/v4")},
    )
    try:
        with pytest.raises(RunError), run_settings(settings), app("demo"):
            Hyperdrive("db", origin=f"postgres://u:{ENCODED}@h/db", adopt=True)
        assert settings.results[-1].status == "failed"
    finally:
        journal.close()
