"""Unit tests of the Cloudflare API client, on ``httpx.MockTransport`` only.

Request bodies (and the answers the tests script) are checked against the excerpt of
Cloudflare's OpenAPI schema kept in ``tests/data/`` (its newer fields, ``mtls`` and
``origin_connection_limit``, are allowed by it: the schema lists no ``additionalProperties``).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _openapi import DOC_URI, OpenApi, _pointer_token
from _scripted import Handler, Scripted
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from journal._errors import (
    ApiError,
    AuthenticationError,
    MissingCredentialsError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RequestError,
    ServerError,
    TransportError,
)
from journal._secret import Secret
from journal.resources.cloudflare._client import (
    DEFAULT_API_URL,
    MISSING_CREDENTIALS_MESSAGE,
    NAME_CONFLICT,
    Account,
    BindingInfo,
    Caching,
    CloudflareClient,
    CloudflareCredentials,
    HyperdriveBinding,
    HyperdriveConfig,
    Mtls,
    Origin,
    PlainTextBinding,
    ScriptSubdomain,
    SecretTextBinding,
    WorkerModule,
    WorkerScript,
    WorkerSettings,
    credentials_from_env,
    has_error_code,
    workers_dev_url,
)

TOKEN = "cf-unit-test-token-5d1e"
API_KEY = "cf-global-key-9a8b7c"
PASSWORD = "origin-p@ss/word"
SECRET_VAR = "worker-secret-value-42"
ACCOUNT = "0123456789abcdef0123456789abcdef"
BASE = "https://cf.test/client/v4"
NOW = "2025-01-02T03:04:05.000000Z"
SCHEMA = Path(__file__).resolve().parent / "data" / "cloudflare-api-excerpt.openapi.json"

# --- the schema --------------------------------------------------------------------------------


class CloudflareDoc(OpenApi):
    """``tests/_openapi.OpenApi`` on the Cloudflare excerpt (the Prisma error envelope it looks
    up in ``__init__`` does not exist there), plus request bodies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = json.loads(path.read_text())
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def _body_pointer(self, method: str, template: str, media: str) -> list[str]:
        tokens = ["paths", template, method.lower(), "requestBody"]
        body = self.operation(method, template)["requestBody"]
        if "$ref" in body:  # a shared request body: follow it
            tokens = body["$ref"].removeprefix("#/").split("/")
        return [*tokens, "content", media, "schema"]

    def validate_request(self, method: str, template: str, body: Any) -> None:
        tokens = self._body_pointer(method, template, "application/json")
        ref = f"{DOC_URI}#/" + "/".join(_pointer_token(t) for t in tokens)
        self._check({"$ref": ref}, body, f"{method} {template} request")

    def validate_metadata(self, template: str, metadata: Any) -> None:
        tokens = self._body_pointer("PUT", template, "multipart/form-data")
        tokens += ["oneOf", "0", "properties", "metadata"]
        ref = f"{DOC_URI}#/" + "/".join(_pointer_token(t) for t in tokens)
        self._check({"$ref": ref}, metadata, f"PUT {template} metadata part")


@pytest.fixture(scope="module")
def doc() -> CloudflareDoc:
    return CloudflareDoc(SCHEMA)


CONFIGS = "/accounts/{account_id}/hyperdrive/configs"
CONFIG = "/accounts/{account_id}/hyperdrive/configs/{hyperdrive_id}"
SCRIPT = "/accounts/{account_id}/workers/scripts/{script_name}"


# --- answers ---------------------------------------------------------------------------------


def ok(result: Any, status: int = 200, **extra: Any) -> httpx.Response:
    body = {"success": True, "errors": [], "messages": [], "result": result, **extra}
    return httpx.Response(status, json=body)


def fail(status: int, *errors: tuple[int, str], **headers: str) -> httpx.Response:
    body = {
        "success": False,
        "errors": [{"code": c, "message": m} for c, m in errors],
        "messages": [],
        "result": None,
    }
    return httpx.Response(status, json=body, headers=headers)


def hyperdrive_json(i: int = 1, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{i:032x}",
        "name": name or f"hd-{i}",
        "origin": {
            "scheme": "postgres",
            "host": "db.prisma.io",
            "port": 5432,
            "database": "postgres",
            "user": "u1",
        },
        "caching": {"disabled": False, "max_age": 60, "stale_while_revalidate": 15},
        "created_on": NOW,
        "modified_on": NOW,
        **extra,
    }


def account_json(i: int) -> dict[str, Any]:
    return {"id": f"{i:032x}", "name": f"team-{i}", "type": "standard"}


def accounts(n: int, per_page: int = 50) -> Handler:
    """``GET /accounts`` over ``n`` accounts, paged as the API pages."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/client/v4/accounts"
        page = int(request.url.params["page"])
        size = int(request.url.params.get("per_page", per_page))
        items = [account_json(i) for i in range(1, n + 1)][(page - 1) * size : page * size]
        info = {"page": page, "per_page": size, "count": len(items), "total_count": n}
        return ok(items, result_info=info)

    return handle


# --- harness -------------------------------------------------------------------------------


class Api(Scripted):
    def client(self, *answers: httpx.Response | Exception, **kw: Any) -> CloudflareClient:
        if "api_key" not in kw:
            kw.setdefault("api_token", TOKEN)
        kw.setdefault("account_id", ACCOUNT)
        kw.setdefault("base_url", BASE)
        kw.setdefault("sleep", self.sleeps.append)
        return CloudflareClient(http=self.http(*answers), **kw)

    def body(self, n: int = -1) -> Any:
        return json.loads(self.requests[n].content)


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.close()


def assert_clean(text: str) -> None:
    for secret in (TOKEN, API_KEY, PASSWORD, SECRET_VAR):
        assert secret not in text


def origin(password: str | None = PASSWORD) -> Origin:
    return Origin(
        host="db.prisma.io",
        database="postgres",
        user="u1",
        port=5432,
        password=None if password is None else Secret(password),
    )


# --- credentials and base URL ----------------------------------------------------------------


def test_bearer_token_base_url_and_account_path(api: Api) -> None:
    client = api.client(ok(hyperdrive_json()))
    config = client.get_hyperdrive("abc")
    request = api.requests[0]
    assert str(request.url) == f"{BASE}/accounts/{ACCOUNT}/hyperdrive/configs/abc"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Auth-Key" not in request.headers
    assert config == HyperdriveConfig(
        id=f"{1:032x}",
        name="hd-1",
        origin=Origin(host="db.prisma.io", database="postgres", user="u1", port=5432),
        caching=Caching(disabled=False, max_age=60, stale_while_revalidate=15),
        created_on=NOW,
        modified_on=NOW,
    )
    assert config.origin.password is None  # write-only: never read back


def test_api_key_and_email_headers(api: Api) -> None:
    client = api.client(ok(hyperdrive_json()), api_key=Secret(API_KEY), email="ops@example.com")
    client.get_hyperdrive("abc")
    headers = api.requests[0].headers
    assert (headers["X-Auth-Key"], headers["X-Auth-Email"]) == (API_KEY, "ops@example.com")
    assert "Authorization" not in headers


def test_missing_credentials_fail_at_first_request(api: Api) -> None:
    client = api.client(api_token=None)  # constructing is fine
    with pytest.raises(MissingCredentialsError) as info:
        client.list_hyperdrives()
    assert str(info.value) == MISSING_CREDENTIALS_MESSAGE
    with pytest.raises(MissingCredentialsError, match="CLOUDFLARE_EMAIL is not"):
        api.client(api_key=API_KEY, api_token=None).get_hyperdrive("x")
    with pytest.raises(MissingCredentialsError):  # before discovering the account
        api.client(api_token="  ", account_id=None).list_scripts()
    assert api.requests == []


def test_base_url_default_env_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_URL", raising=False)
    assert CloudflareClient(api_token=TOKEN).base_url == DEFAULT_API_URL
    assert DEFAULT_API_URL == "https://api.cloudflare.com/client/v4"
    monkeypatch.setenv("CLOUDFLARE_API_URL", "http://127.0.0.1:8787/client/v4/")
    with CloudflareClient(api_token=TOKEN) as client:
        assert client.base_url == "http://127.0.0.1:8787/client/v4"
    with CloudflareClient(api_token=TOKEN, base_url="http://other.test/v4") as client:
        assert client.base_url == "http://other.test/v4"
    assert client._http.is_closed  # it made its httpx client, so it closed it


def test_an_injected_http_client_is_left_open(api: Api) -> None:
    client = api.client()
    with client:
        pass
    assert not client._http.is_closed


def test_credentials_from_env_and_reprs() -> None:
    env = {
        "CLOUDFLARE_API_TOKEN": f" {TOKEN} ",
        "CLOUDFLARE_API_KEY": "",
        "CLOUDFLARE_EMAIL": "ops@example.com",
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "PATH": "/usr/bin",
    }
    creds = credentials_from_env(env)
    assert creds == CloudflareCredentials(
        api_token=Secret(TOKEN), api_key=None, email="ops@example.com", account_id=ACCOUNT
    )
    assert credentials_from_env({}) == CloudflareCredentials()
    client = CloudflareClient.from_credentials(creds, base_url=BASE)
    for text in (
        repr(creds),
        repr(client),
        repr(origin()),
        repr(SecretTextBinding("S", Secret(SECRET_VAR))),
    ):
        assert_clean(text)
    assert "auth=token" in repr(client)
    client.close()


# --- account discovery -----------------------------------------------------------------------


def test_the_only_account_is_discovered_once(api: Api) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/client/v4/accounts":
            return accounts(1)(request)
        return ok([])

    api.handler = handle
    client = api.client(account_id=None)
    assert client.list_hyperdrives() == []
    assert client.list_scripts() == []
    assert client.account_id() == f"{1:032x}"
    assert [r.url.path for r in api.requests] == [
        "/client/v4/accounts",
        f"/client/v4/accounts/{1:032x}/hyperdrive/configs",
        f"/client/v4/accounts/{1:032x}/workers/scripts",
    ]


def test_several_accounts_are_listed_in_the_error(api: Api) -> None:
    api.handler = accounts(3)
    with pytest.raises(MissingCredentialsError) as info:
        api.client(account_id=None).list_hyperdrives()
    text = str(info.value)
    assert text.startswith("the Cloudflare credentials can see 3 accounts: 'team-1' (")
    for i in (1, 2, 3):
        assert f"'team-{i}' ({i:032x})" in text
    assert "CLOUDFLARE_ACCOUNT_ID" in text
    assert info.value.exit_code == 2
    assert len(api.requests) == 1  # nothing else was asked


def test_no_account_is_an_error(api: Api) -> None:
    api.handler = accounts(0)
    with pytest.raises(MissingCredentialsError, match=r"can see no account.*CLOUDFLARE_ACCOUNT_ID"):
        api.client(account_id=None).get_account_subdomain()


def test_list_accounts_reads_every_page(api: Api) -> None:
    api.handler = accounts(120)
    found = api.client().list_accounts()
    assert found[0] == Account(f"{1:032x}", "team-1")
    assert len(found) == 120
    assert [r.url.params["page"] for r in api.requests] == ["1", "2", "3"]
    assert {r.url.params["per_page"] for r in api.requests} == {"50"}


# --- the envelope and errors -----------------------------------------------------------------


def test_envelope_error_codes_are_in_the_message(api: Api) -> None:
    answer = fail(409, (NAME_CONFLICT, "A Hyperdrive config with that name already exists"))
    client = api.client(answer)
    with pytest.raises(RequestError) as info:
        client.create_hyperdrive(name="hd-1", origin=origin())
    exc = info.value
    assert (exc.status, exc.method, exc.code) == (409, "POST", "2017")
    assert exc.path == f"/accounts/{ACCOUNT}/hyperdrive/configs"
    assert str(exc) == (
        f"POST /accounts/{ACCOUNT}/hyperdrive/configs -> 409 2017: "
        "A Hyperdrive config with that name already exists"
    )
    assert has_error_code(exc, NAME_CONFLICT)
    assert not has_error_code(exc, 2013)
    assert not has_error_code(ValueError("2017"), NAME_CONFLICT)
    assert exc.operation == "create_hyperdrive"


def test_several_errors_keep_every_code(api: Api) -> None:
    answer = fail(400, (2008, "origin unreachable"), (2013, "bad credentials"))
    with pytest.raises(RequestError) as info:
        api.client(answer).create_hyperdrive(name="h", origin=origin())
    assert info.value.code == "2008,2013"
    assert str(info.value).endswith("origin unreachable (2008); bad credentials (2013)")
    assert has_error_code(info.value, 2013)


@pytest.mark.parametrize(
    ("status", "cls", "note"),
    [
        (401, AuthenticationError, "CLOUDFLARE_API_TOKEN"),
        (403, AuthenticationError, "Hyperdrive: Edit"),
        (404, NotFoundError, None),
        (429, RateLimitedError, None),
        (500, ServerError, None),
    ],
)
def test_statuses_map_onto_our_errors(
    api: Api, status: int, cls: type[ApiError], note: str | None
) -> None:
    client = api.client(fail(status, (10000, "nope")), max_retries=0)
    with pytest.raises(cls) as info:
        client.get_hyperdrive("abc")
    assert type(info.value) is cls
    assert info.value.code == "10000"
    if note is not None:
        assert note in str(info.value)


def test_success_false_on_a_2xx_is_an_error(api: Api) -> None:
    client = api.client(fail(200, (7003, "No route for the URI")), httpx.Response(200, json={}))
    with pytest.raises(ApiError, match=r"-> 200 7003: No route for the URI"):
        client.get_hyperdrive("abc")
    with pytest.raises(ApiError, match=r"invalid_response: .*'success' is not true"):
        client.get_hyperdrive("abc")


def test_non_json_error_and_malformed_result(api: Api) -> None:
    client = api.client(
        httpx.Response(502, text="<html>Bad gateway</html>"), ok({"name": "x"}), max_retries=0
    )
    with pytest.raises(ServerError, match=r"-> 502: Bad Gateway: <html>Bad gateway</html>$"):
        client.get_hyperdrive("abc")
    with pytest.raises(ApiError, match=r"invalid_response: unexpected response: .* no 'id'"):
        client.get_hyperdrive("abc")


def test_secrets_echoed_in_errors_are_masked(api: Api) -> None:
    echo = fail(400, (2013, f"password {PASSWORD} rejected for token {TOKEN}"))
    with pytest.raises(RequestError) as info:
        api.client(echo).create_hyperdrive(name="h", origin=origin())
    assert "password ******** rejected for token ********" in str(info.value)
    assert_clean(str(info.value))
    echo = fail(400, (10021, f"bad env value {SECRET_VAR}"))
    with pytest.raises(RequestError) as info:
        api.client(echo).upload_worker(
            "w",
            modules=[WorkerModule("worker.js", b"export default {}")],
            compatibility_date="2026-08-04",
            bindings=[SecretTextBinding("API_SECRET", Secret(SECRET_VAR))],
        )
    assert_clean(str(info.value))


# --- retries ---------------------------------------------------------------------------------


def test_reads_are_retried_and_honour_retry_after(api: Api) -> None:
    client = api.client(
        fail(429, (10429, "slow down"), **{"Retry-After": "3"}),
        fail(500, (10002, "internal")),
        httpx.ConnectError("refused"),
        ok(hyperdrive_json()),
    )
    assert client.get_hyperdrive("abc").name == "hd-1"
    assert len(api.requests) == 4
    assert api.sleeps[0] == 3.0
    assert len(api.sleeps) == 3


def test_create_is_not_retried_after_a_5xx_or_a_lost_answer(api: Api) -> None:
    client = api.client(fail(500, (10002, "internal")), httpx.ReadTimeout("timed out"))
    with pytest.raises(ServerError, match="not retried: the server may have acted"):
        client.create_hyperdrive(name="h", origin=origin())
    with pytest.raises(TransportError, match="not retried"):
        client.create_hyperdrive(name="h", origin=origin())
    assert len(api.requests) == 2
    assert api.sleeps == []


def test_create_is_retried_when_never_sent_or_rate_limited(api: Api) -> None:
    client = api.client(
        httpx.ConnectError("refused"),
        fail(429, (971, "rate limited"), **{"Retry-After": "1"}),
        ok(hyperdrive_json()),
    )
    assert client.create_hyperdrive(name="hd-1", origin=origin()).id == f"{1:032x}"
    assert [r.method for r in api.requests] == ["POST"] * 3
    assert api.body(0) == api.body(2)


def test_upload_is_retried_with_the_same_body(api: Api) -> None:
    script = {"id": "w", "etag": "e1", "created_on": NOW, "modified_on": NOW, "handlers": ["fetch"]}
    client = api.client(fail(503, (10002, "busy")), httpx.ReadTimeout("t"), ok(script))
    result = client.upload_worker(
        "w",
        modules=[WorkerModule("worker.js", b"export default {}")],
        compatibility_date="2026-08-04",
    )
    assert result == WorkerScript("w", "e1", NOW, NOW, ("fetch",))
    assert [r.method for r in api.requests] == ["PUT"] * 3
    assert parts(api.requests[0]) == parts(api.requests[2])  # (the boundary is new each time)


# --- Hyperdrive ------------------------------------------------------------------------------


def test_create_body_follows_the_schema(api: Api, doc: CloudflareDoc) -> None:
    answer = ok(hyperdrive_json(name="hd"))
    doc.validate("POST", CONFIGS, 200, json.loads(answer.content))
    client = api.client(answer, ok(hyperdrive_json(name="hd")))
    client.create_hyperdrive(name="hd", origin=origin())
    assert (api.requests[0].method, api.requests[0].url.path) == (
        "POST",
        f"/client/v4/accounts/{ACCOUNT}/hyperdrive/configs",
    )
    assert api.body(0) == {
        "name": "hd",
        "origin": {
            "scheme": "postgres",
            "host": "db.prisma.io",
            "port": 5432,
            "database": "postgres",
            "user": "u1",
            "password": PASSWORD,
        },
    }
    doc.validate_request("POST", CONFIGS, api.body(0))
    client.create_hyperdrive(
        name="hd",
        origin=origin(),
        caching=Caching(disabled=False, max_age=30, stale_while_revalidate=5),
        mtls=Mtls(sslmode="verify-full", ca_certificate_id="ca1"),
        origin_connection_limit=20,
    )
    body = api.body(1)
    assert body["caching"] == {"disabled": False, "max_age": 30, "stale_while_revalidate": 5}
    assert body["mtls"] == {"ca_certificate_id": "ca1", "sslmode": "verify-full"}
    assert body["origin_connection_limit"] == 20
    doc.validate_request("POST", CONFIGS, body)


def test_the_schema_check_can_fail(doc: CloudflareDoc) -> None:
    body = {"name": "hd", "origin": origin(password=None).to_json()}  # no password
    with pytest.raises(AssertionError, match="'password' is a required property"):
        doc.validate_request("POST", CONFIGS, body)


def test_update_is_a_put_with_the_full_body(api: Api, doc: CloudflareDoc) -> None:
    client = api.client(ok(hyperdrive_json(name="renamed")))
    updated = client.update_hyperdrive(
        "abc", name="renamed", origin=origin("new-password"), caching=Caching(disabled=True)
    )
    assert updated.name == "renamed"
    request = api.requests[0]
    assert (request.method, request.url.path) == (
        "PUT",
        f"/client/v4/accounts/{ACCOUNT}/hyperdrive/configs/abc",
    )
    assert api.body()["origin"]["password"] == "new-password"
    assert api.body()["caching"] == {"disabled": True}
    doc.validate_request("PUT", CONFIG, api.body())


def test_create_and_update_refuse_an_origin_without_password(api: Api) -> None:
    client = api.client()
    with pytest.raises(ProviderError, match="the origin has no password"):
        client.create_hyperdrive(name="h", origin=origin(password=None))
    with pytest.raises(ProviderError, match="the origin has no password"):
        client.update_hyperdrive("abc", name="h", origin=origin(password=None))
    assert api.requests == []


def test_delete_hyperdrive_404_means_gone(api: Api) -> None:
    client = api.client(ok(None), fail(404, (10007, "not found")), fail(404, (10007, "not found")))
    assert client.delete_hyperdrive("abc") is True
    assert client.delete_hyperdrive("abc") is False
    with pytest.raises(NotFoundError):
        client.delete_hyperdrive("abc", missing_ok=False)
    assert {r.method for r in api.requests} == {"DELETE"}


def test_list_and_find_hyperdrives_across_pages(api: Api, doc: CloudflareDoc) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        items = [hyperdrive_json(i) for i in range(1, 6)][(page - 1) * 2 : page * 2]
        info = {"page": page, "per_page": 2, "count": len(items), "total_count": 5}
        answer = ok(items, result_info=info)
        doc.validate("GET", CONFIGS, 200, json.loads(answer.content))
        return answer

    api.handler = handle
    client = api.client()
    assert [c.name for c in client.list_hyperdrives()] == [f"hd-{i}" for i in range(1, 6)]
    assert len(api.requests) == 3
    found = client.find_hyperdrive_by_name("hd-5")
    assert found is not None and found.id == f"{5:032x}"
    assert client.find_hyperdrive_by_name("nope") is None


def test_find_hyperdrive_refuses_to_guess(api: Api) -> None:
    client = api.client(ok([hyperdrive_json(1, "same"), hyperdrive_json(2, "same")]))
    with pytest.raises(ProviderError, match=r"2 Hyperdrive configs are named 'same'"):
        client.find_hyperdrive_by_name("same")


def test_newer_fields_are_read(api: Api) -> None:
    answer = hyperdrive_json(
        mtls={"sslmode": "require", "ca_certificate_id": "ca"}, origin_connection_limit=15
    )
    config = api.client(ok(answer)).get_hyperdrive("abc")
    assert config.mtls == Mtls(ca_certificate_id="ca", sslmode="require")
    assert config.origin_connection_limit == 15


# --- Worker scripts --------------------------------------------------------------------------


def parts(request: httpx.Request) -> list[tuple[str | None, str | None, str, bytes]]:
    """(name, filename, content type, bytes) of each part of a multipart request, in order."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    assert message.get_content_type() == "multipart/form-data"
    found = []
    for part in message.iter_parts():
        disposition = part.get("Content-Disposition")
        assert disposition.startswith("form-data;")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found.append(
            (
                part.get_param("name", header="content-disposition"),
                part.get_filename(),
                part.get_content_type(),
                payload,
            )
        )
    return found


def test_upload_sends_the_exact_parts(api: Api, doc: CloudflareDoc) -> None:
    code = b'import "./lib.js";\nexport default { fetch() { return new Response("ok") } };\n'
    lib = b"export const x = 1;\n"
    source_map = b'{"version":3,"sources":[],"mappings":""}'
    script = {"id": "api", "etag": "e", "created_on": NOW, "modified_on": NOW}
    client = api.client(ok(script))
    client.upload_worker(
        "api",
        modules=[
            WorkerModule("worker.js", code),
            WorkerModule("lib.js", lib),
            WorkerModule("worker.js.map", source_map, "application/source-map"),
        ],
        main_module="worker.js",
        compatibility_date="2026-08-04",
        compatibility_flags=["nodejs_compat"],
        bindings=[
            HyperdriveBinding("HYPERDRIVE", "hd-id-1"),
            PlainTextBinding("MODE", "production"),
            SecretTextBinding("API_SECRET", Secret(SECRET_VAR)),
        ],
    )
    request = api.requests[0]
    assert (request.method, request.url.path) == (
        "PUT",
        f"/client/v4/accounts/{ACCOUNT}/workers/scripts/api",
    )
    sent = parts(request)
    assert [(name, filename, ctype) for name, filename, ctype, _ in sent] == [
        ("metadata", None, "application/json"),
        ("worker.js", "worker.js", "application/javascript+module"),
        ("lib.js", "lib.js", "application/javascript+module"),
        ("worker.js.map", "worker.js.map", "application/source-map"),
    ]
    assert [content for *_, content in sent[1:]] == [code, lib, source_map]
    metadata = json.loads(sent[0][3])
    assert metadata == {
        "main_module": "worker.js",
        "compatibility_date": "2026-08-04",
        "compatibility_flags": ["nodejs_compat"],
        "bindings": [
            {"type": "hyperdrive", "name": "HYPERDRIVE", "id": "hd-id-1"},
            {"type": "plain_text", "name": "MODE", "text": "production"},
            {"type": "secret_text", "name": "API_SECRET", "text": SECRET_VAR},
        ],
    }
    doc.validate_metadata(SCRIPT, metadata)


def test_upload_refuses_bad_module_lists(api: Api) -> None:
    client = api.client()
    module = WorkerModule("worker.js", b"")
    with pytest.raises(ProviderError, match="no module"):
        client.upload_worker("w", modules=[], compatibility_date="2026-08-04")
    with pytest.raises(ProviderError, match=r"include the main module 'main\.js'"):
        client.upload_worker("w", modules=[module], main_module="main.js", compatibility_date="x")
    with pytest.raises(ProviderError, match="distinct names"):
        client.upload_worker("w", modules=[module, module], compatibility_date="x")
    assert api.requests == []
    assert "content=" not in repr(module)


def test_script_settings_exists_and_delete(api: Api, doc: CloudflareDoc) -> None:
    settings = {
        "compatibility_date": "2026-08-04",
        "compatibility_flags": ["nodejs_compat"],
        "bindings": [
            {"type": "hyperdrive", "name": "HYPERDRIVE", "id": "hd1"},
            {"type": "plain_text", "name": "MODE", "text": "production"},
            {"type": "secret_text", "name": "API_SECRET"},
        ],
    }
    client = api.client(
        ok(settings),
        httpx.Response(
            200, text="export default {}", headers={"Content-Type": "application/javascript"}
        ),
        fail(404, (10007, "This Worker does not exist on your account.")),
        ok(None),
        fail(404, (10007, "not found")),
    )
    assert client.get_script_settings("api") == WorkerSettings(
        compatibility_date="2026-08-04",
        compatibility_flags=("nodejs_compat",),
        bindings=(
            BindingInfo("hyperdrive", "HYPERDRIVE", id="hd1"),
            BindingInfo("plain_text", "MODE", text="production"),
            BindingInfo("secret_text", "API_SECRET"),
        ),
    )
    assert api.requests[0].url.path.endswith("/workers/scripts/api/settings")
    assert client.script_exists("api") is True
    assert client.script_exists("api") is False
    assert client.delete_script("api") is True
    assert client.delete_script("api") is False
    deletes = api.requests[3:]
    assert [(r.method, r.url.path, dict(r.url.params)) for r in deletes] == [
        ("DELETE", f"/client/v4/accounts/{ACCOUNT}/workers/scripts/api", {"force": "true"})
    ] * 2


# --- workers.dev -----------------------------------------------------------------------------


def test_account_subdomain_and_script_route(api: Api) -> None:
    client = api.client(
        ok({"subdomain": "my-team"}),
        fail(500, (10002, "internal")),
        ok({"enabled": True, "previews_enabled": True}),
        ok({"enabled": True, "previews_enabled": False}),
        ok({"name": None}),
    )
    assert client.get_account_subdomain() == "my-team"
    assert api.requests[0].url.path == f"/client/v4/accounts/{ACCOUNT}/workers/subdomain"
    assert client.set_script_subdomain("api") == ScriptSubdomain(True, True)
    # enabling twice is harmless: a lost answer is retried like a read
    assert [(r.method, r.url.path) for r in api.requests[1:3]] == [
        ("POST", f"/client/v4/accounts/{ACCOUNT}/workers/scripts/api/subdomain")
    ] * 2
    assert api.body(2) == {"enabled": True}
    assert client.get_script_subdomain("api") == ScriptSubdomain(True, False)
    with pytest.raises(ApiError, match="no 'subdomain'"):
        client.get_account_subdomain()
    assert workers_dev_url("api", "my-team") == "https://api.my-team.workers.dev"


def test_names_are_one_path_segment(api: Api) -> None:
    api.client(ok(None)).delete_script("../x?y")
    assert api.requests[0].url.raw_path.startswith(
        f"/client/v4/accounts/{ACCOUNT}/workers/scripts/..%2Fx%3Fy?".encode()
    )
