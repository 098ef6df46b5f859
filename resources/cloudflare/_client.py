"""A synchronous client for Cloudflare's REST API v4: Hyperdrive configs, Worker scripts, the
workers.dev subdomain, accounts.

``CloudflareClient`` speaks through the project's HTTP layer (``journal.provider``): retries with
backoff and jitter or the server's ``Retry-After``, a POST retried only when it was never
sent (or answered 429/503), every failure mapped onto the project's errors. What is
Cloudflare's own lives here:

- **Base URL** ``https://api.cloudflare.com/client/v4``, else ``base_url=``, else
  ``CLOUDFLARE_API_URL`` (the argument wins over the variable).
- **Credentials** are constructor arguments (resolving them from the environment or a
  ``journal configure`` profile is the provider's job; ``credentials_from_env(environ)`` reads
  the usual variables): an API token (``Authorization: Bearer``), or the legacy global API key
  with its e-mail (``X-Auth-Key`` + ``X-Auth-Email``). The token wins when both are given.
  Missing credentials are reported at the first request (``MissingCredentialsError``).
- **The envelope** ``{"success", "errors": [{"code", "message"}], "messages", "result"}``: an
  answer is used only when ``success`` is true; otherwise, and for every error status, the
  error carries Cloudflare's codes (``exc.code``, e.g. ``"2017"``, comma-separated when there
  are several) and messages, so that ``str(exc)`` reads
  ``POST /accounts/<id>/hyperdrive/configs -> 409 2017: ...``. ``has_error_code(exc, 2017)``
  asks for one code.
- **The account** is ``account_id=``, else discovered once from ``GET /accounts``: exactly one
  account is used; none, or several (listed by name and id), is a ``MissingCredentialsError``
  saying to set ``CLOUDFLARE_ACCOUNT_ID``.
- **Secrets** (the token, the API key, an origin's password, ``secret_text`` bindings) travel
  as ``Secret`` and are masked in every error; no ``repr`` of this module's objects shows one.
  The origin password is write-only in the API: read answers come back with
  ``Origin.password`` set to ``None``.

Hyperdrive updates use ``PUT`` with the full body (password included), as the API requires
for a changed origin. Worker scripts are uploaded as module Workers (multipart: a
``metadata`` part, then one part per module). A script is deleted with ``force=true``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import httpx

from journal.provider import (
    ApiClient,
    ApiError,
    ErrorDetail,
    HttpClient,
    MissingCredentialsError,
    NotFoundError,
    ProviderError,
    Secret,
    default_http_client,
    paginate_pages,
    segment,
)

from ._service import ACCOUNT_ENV, API_URL_ENV, DEFAULT_API_URL, EMAIL_ENV, KEY_ENV, TOKEN_ENV

__all__ = [
    "ACCOUNT_ENV",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "EMAIL_ENV",
    "KEY_ENV",
    "MISSING_CREDENTIALS_MESSAGE",
    "NAME_CONFLICT",
    "TOKEN_ENV",
    "Account",
    "Binding",
    "BindingInfo",
    "Caching",
    "CloudflareClient",
    "CloudflareCredentials",
    "HyperdriveBinding",
    "HyperdriveConfig",
    "Mtls",
    "Origin",
    "PlainTextBinding",
    "ScriptSubdomain",
    "SecretTextBinding",
    "WorkerModule",
    "WorkerScript",
    "WorkerSettings",
    "credentials_from_env",
    "has_error_code",
    "workers_dev_url",
]

log = logging.getLogger(__name__)

#: Hyperdrive's error code for "a config with this name already exists"
NAME_CONFLICT: Final = 2017
#: ``per_page`` for ``GET /accounts`` (the API's maximum)
ACCOUNTS_PAGE_SIZE: Final = 50
MISSING_CREDENTIALS_MESSAGE: Final = (
    "no Cloudflare credentials: set CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_KEY with "
    "CLOUDFLARE_EMAIL), or run `journal configure`"
)
_KEY_WITHOUT_EMAIL: Final = (
    "CLOUDFLARE_API_KEY is set but CLOUDFLARE_EMAIL is not: the global API key needs the "
    "account's e-mail (or use an API token, CLOUDFLARE_API_TOKEN)"
)
_AUTH_NOTE: Final = (
    "check that CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL) is set for "
    "the process running journal and is still valid"
)
_PERMISSION_NOTE: Final = (
    "the credentials lack a permission for this call: an API token needs Account Settings: "
    "Read, Hyperdrive: Edit and Workers Scripts: Edit on the account"
)
_ACCOUNT_HINT: Final = "set CLOUDFLARE_ACCOUNT_ID (or account_id= on the resource)"

_T = TypeVar("_T")


class _Malformed(ValueError):
    """A result that does not have the documented shape."""


# --- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloudflareCredentials:
    """How to authenticate, and the account to use (None: discover it)."""

    api_token: Secret | None = None
    api_key: Secret | None = None
    email: str | None = None
    account_id: str | None = None

    def __repr__(self) -> str:
        def state(value: object) -> str:
            return "set" if value is not None else "missing"

        return (
            f"CloudflareCredentials(api_token={state(self.api_token)}, "
            f"api_key={state(self.api_key)}, email={self.email!r}, "
            f"account_id={self.account_id!r})"
        )


def _secret(value: str | Secret | None) -> Secret | None:
    plain = value.unencrypted if isinstance(value, Secret) else value
    return Secret(plain.strip()) if plain and plain.strip() else None


def _clean(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def credentials_from_env(environ: Mapping[str, str] | None = None) -> CloudflareCredentials:
    """``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_API_KEY``, ``CLOUDFLARE_EMAIL`` and
    ``CLOUDFLARE_ACCOUNT_ID`` from ``environ`` (default ``os.environ``); blank means unset."""
    env = os.environ if environ is None else environ
    return CloudflareCredentials(
        api_token=_secret(env.get(TOKEN_ENV)),
        api_key=_secret(env.get(KEY_ENV)),
        email=_clean(env.get(EMAIL_ENV)),
        account_id=_clean(env.get(ACCOUNT_ENV)),
    )


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Origin:
    """A Hyperdrive origin database. ``password`` is sent on create and update and never
    comes back (None in read answers)."""

    host: str
    database: str
    user: str
    scheme: str = "postgres"
    port: int | None = 5432
    password: Secret | None = None
    access_client_id: str | None = None
    access_client_secret: Secret | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "scheme": self.scheme,
            "host": self.host,
            "database": self.database,
            "user": self.user,
        }
        if self.port is not None:
            body["port"] = self.port
        if self.password is not None:
            body["password"] = self.password.unencrypted
        if self.access_client_id is not None:
            body["access_client_id"] = self.access_client_id
        if self.access_client_secret is not None:
            body["access_client_secret"] = self.access_client_secret.unencrypted
        return body

    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.password, self.access_client_secret) if s is not None)


@dataclass(frozen=True, slots=True)
class Caching:
    disabled: bool = False
    max_age: int | None = None
    stale_while_revalidate: int | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"disabled": self.disabled}
        if self.max_age is not None:
            body["max_age"] = self.max_age
        if self.stale_while_revalidate is not None:
            body["stale_while_revalidate"] = self.stale_while_revalidate
        return body


@dataclass(frozen=True, slots=True)
class Mtls:
    ca_certificate_id: str | None = None
    mtls_certificate_id: str | None = None
    sslmode: str | None = None

    def to_json(self) -> dict[str, object]:
        fields = ("ca_certificate_id", "mtls_certificate_id", "sslmode")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class HyperdriveConfig:
    id: str
    name: str
    origin: Origin
    caching: Caching | None = None
    mtls: Mtls | None = None
    origin_connection_limit: int | None = None
    created_on: str | None = None
    modified_on: str | None = None


@dataclass(frozen=True, slots=True)
class HyperdriveBinding:
    name: str
    id: str

    def to_json(self) -> dict[str, object]:
        return {"type": "hyperdrive", "name": self.name, "id": self.id}


@dataclass(frozen=True, slots=True)
class PlainTextBinding:
    name: str
    text: str

    def to_json(self) -> dict[str, object]:
        return {"type": "plain_text", "name": self.name, "text": self.text}


@dataclass(frozen=True, slots=True)
class SecretTextBinding:
    name: str
    text: Secret

    def to_json(self) -> dict[str, object]:
        return {"type": "secret_text", "name": self.name, "text": self.text.unencrypted}


Binding = HyperdriveBinding | PlainTextBinding | SecretTextBinding


@dataclass(frozen=True, slots=True)
class WorkerModule:
    """One module of a Worker: its name (the part name, e.g. ``worker.js``), its bytes, and
    its content type (``application/javascript+module`` for ESM, ``application/source-map``
    for a source map)."""

    name: str
    content: bytes = field(repr=False)
    content_type: str = "application/javascript+module"


@dataclass(frozen=True, slots=True)
class WorkerScript:
    id: str
    etag: str | None = None
    created_on: str | None = None
    modified_on: str | None = None
    handlers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BindingInfo:
    """A binding as the API reports it (a secret's text never comes back)."""

    type: str
    name: str
    id: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    compatibility_date: str | None
    compatibility_flags: tuple[str, ...]
    bindings: tuple[BindingInfo, ...]


@dataclass(frozen=True, slots=True)
class ScriptSubdomain:
    enabled: bool
    previews_enabled: bool | None = None
    #: the script's address when the API tells it (the local API does; Cloudflare does not:
    #: there it is ``workers_dev_url(script, account subdomain)``)
    url: str | None = None


def workers_dev_url(script: str, subdomain: str) -> str:
    """The script's workers.dev address: ``https://{script}.{subdomain}.workers.dev``."""
    return f"https://{script}.{subdomain}.workers.dev"


def has_error_code(exc: BaseException, code: int) -> bool:
    """Whether an error of this client carries Cloudflare error ``code``."""
    codes = exc.code if isinstance(exc, ApiError) else None
    return bool(codes) and str(code) in (codes or "").split(",")


# --- parsing -------------------------------------------------------------------------------


def _obj(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _Malformed(f"{what} is not an object")
    return raw


def _str(raw: Mapping[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{what} has no {key!r}")
    return value


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _opt_int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if isinstance(value, str) and value.isdigit():  # the schema's example gives "5432"
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_account(raw: object) -> Account:
    obj = _obj(raw, "account")
    return Account(id=_str(obj, "id", "account"), name=_opt_str(obj, "name") or "")


def _parse_hyperdrive(raw: object) -> HyperdriveConfig:
    obj = _obj(raw, "hyperdrive config")
    config_id = _str(obj, "id", "hyperdrive config")
    name = _str(obj, "name", "hyperdrive config")
    origin = _obj(obj.get("origin"), "hyperdrive config's origin")
    caching = obj.get("caching")
    mtls = obj.get("mtls")
    return HyperdriveConfig(
        id=config_id,
        name=name,
        origin=Origin(
            host=_str(origin, "host", "origin"),
            database=_opt_str(origin, "database") or "",
            user=_opt_str(origin, "user") or "",
            scheme=_opt_str(origin, "scheme") or "postgres",
            port=_opt_int(origin, "port"),
            access_client_id=_opt_str(origin, "access_client_id"),
        ),
        caching=Caching(
            disabled=caching.get("disabled") is True,
            max_age=_opt_int(caching, "max_age"),
            stale_while_revalidate=_opt_int(caching, "stale_while_revalidate"),
        )
        if isinstance(caching, dict)
        else None,
        mtls=Mtls(
            ca_certificate_id=_opt_str(mtls, "ca_certificate_id"),
            mtls_certificate_id=_opt_str(mtls, "mtls_certificate_id"),
            sslmode=_opt_str(mtls, "sslmode"),
        )
        if isinstance(mtls, dict)
        else None,
        origin_connection_limit=_opt_int(obj, "origin_connection_limit"),
        created_on=_opt_str(obj, "created_on"),
        modified_on=_opt_str(obj, "modified_on"),
    )


def _parse_script(raw: object) -> WorkerScript:
    obj = _obj(raw, "script")
    handlers = obj.get("handlers")
    return WorkerScript(
        id=_str(obj, "id", "script"),
        etag=_opt_str(obj, "etag"),
        created_on=_opt_str(obj, "created_on"),
        modified_on=_opt_str(obj, "modified_on"),
        handlers=tuple(h for h in handlers if isinstance(h, str))
        if isinstance(handlers, list)
        else (),
    )


def _parse_settings(raw: object) -> WorkerSettings:
    obj = _obj(raw, "script settings")
    flags = obj.get("compatibility_flags")
    bindings = obj.get("bindings")
    infos = []
    for item in bindings if isinstance(bindings, list) else []:
        b = _obj(item, "binding")
        infos.append(
            BindingInfo(
                type=_str(b, "type", "binding"),
                name=_str(b, "name", "binding"),
                id=_opt_str(b, "id"),
                text=_opt_str(b, "text") if b.get("type") != "secret_text" else None,
            )
        )
    return WorkerSettings(
        compatibility_date=_opt_str(obj, "compatibility_date"),
        compatibility_flags=tuple(f for f in flags if isinstance(f, str))
        if isinstance(flags, list)
        else (),
        bindings=tuple(infos),
    )


def _parse_subdomain(raw: object) -> ScriptSubdomain:
    obj = _obj(raw, "script subdomain")
    previews = obj.get("previews_enabled")
    return ScriptSubdomain(
        enabled=obj.get("enabled") is True,
        previews_enabled=previews if isinstance(previews, bool) else None,
        url=_opt_str(obj, "url"),
    )


def _describe_error(response: httpx.Response) -> ErrorDetail:
    """Codes and messages from the envelope's ``errors`` (leniently: any JSON or none)."""
    try:
        payload = response.json()
    except ValueError:
        return ErrorDetail()
    if not isinstance(payload, dict):
        return ErrorDetail()
    errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
    codes = [str(e["code"]) for e in errors if isinstance(e.get("code"), int | str)]
    texts = [str(e.get("message") or "").strip() for e in errors]
    if not errors:
        message = payload.get("message") if isinstance(payload.get("message"), str) else None
        return ErrorDetail(message or None)
    if len(errors) == 1:
        message = texts[0] or None
    else:
        message = "; ".join(
            f"{text or 'error'} ({e.get('code')})" for text, e in zip(texts, errors, strict=True)
        )
    return ErrorDetail(message, ",".join(codes) or None)


# --- the client ----------------------------------------------------------------------------


class CloudflareClient(ApiClient):
    """Synchronous Cloudflare API v4 client; see the module docstring for the rules.

    ``http``: an ``httpx.Client`` to send with (its own timeouts apply); without one, the
    client creates one with ``timeout_s`` and closes it in ``close()`` / on leaving a ``with``
    block. ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        api_token: str | Secret | None = None,
        api_key: str | Secret | None = None,
        email: str | None = None,
        account_id: str | None = None,
        base_url: str | None = None,
        http: httpx.Client | None = None,
        max_retries: int = 8,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = _secret(api_token)
        self._key = _secret(api_key)
        self._email = _clean(email)
        self._account_id = _clean(account_id)
        self._account_lock = threading.Lock()
        url = base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
        self._http = http if http is not None else default_http_client(timeout_s)
        self._api = HttpClient(
            url,
            http=self._http,
            owns_http=http is None,
            secrets=[s for s in (self._token, self._key) if s is not None],
            describe_error=_describe_error,
            status_notes={401: _AUTH_NOTE, 403: _PERMISSION_NOTE},
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            sleep=sleep,
            label="cloudflare",
            logger=log,
        )

    @classmethod
    def from_credentials(cls, credentials: CloudflareCredentials, **kw: Any) -> CloudflareClient:
        return cls(
            api_token=credentials.api_token,
            api_key=credentials.api_key,
            email=credentials.email,
            account_id=credentials.account_id,
            **kw,
        )

    @property
    def base_url(self) -> str:
        return self._api.base_url

    def __repr__(self) -> str:
        auth = "token" if self._token else "key" if self._key else "missing"
        return (
            f"CloudflareClient(base_url={self.base_url!r}, auth={auth}, "
            f"account_id={self._account_id!r})"
        )

    # --- accounts ------------------------------------------------------------------------

    def list_accounts(self) -> list[Account]:
        return list(
            self._paginate("list_accounts", "/accounts", _parse_account, ACCOUNTS_PAGE_SIZE)
        )

    def account_id(self) -> str:
        """The account in use: the one given, else the only one the credentials can see
        (asked once, then remembered)."""
        if self._account_id is not None:
            return self._account_id
        with self._account_lock:
            if self._account_id is None:
                accounts = self.list_accounts()
                if not accounts:
                    raise MissingCredentialsError(
                        "the Cloudflare credentials can see no account: give the API token "
                        f"access to one (Account Settings: Read), or {_ACCOUNT_HINT}",
                        operation="account_id",
                    )
                if len(accounts) > 1:
                    seen = ", ".join(f"{a.name!r} ({a.id})" for a in accounts)
                    raise MissingCredentialsError(
                        f"the Cloudflare credentials can see {len(accounts)} accounts: {seen}; "
                        f"choose one: {_ACCOUNT_HINT}",
                        operation="account_id",
                    )
                self._account_id = accounts[0].id
            return self._account_id

    # --- Hyperdrive ----------------------------------------------------------------------

    def list_hyperdrives(self) -> list[HyperdriveConfig]:
        path = self._account_path("list_hyperdrives", "/hyperdrive/configs")
        return list(self._paginate("list_hyperdrives", path, _parse_hyperdrive))

    def get_hyperdrive(self, config_id: str) -> HyperdriveConfig:
        path = self._account_path("get_hyperdrive", f"/hyperdrive/configs/{segment(config_id)}")
        return self._one("get_hyperdrive", "GET", path, _parse_hyperdrive)

    def find_hyperdrive_by_name(self, name: str) -> HyperdriveConfig | None:
        matches = [c for c in self.list_hyperdrives() if c.name == name]
        if len(matches) > 1:
            ids = ", ".join(c.id for c in matches)
            raise ProviderError(
                f"{len(matches)} Hyperdrive configs are named {name!r} ({ids}); refer to the "
                "one you mean by id",
                operation="find_hyperdrive_by_name",
            )
        return matches[0] if matches else None

    def create_hyperdrive(
        self,
        *,
        name: str,
        origin: Origin,
        caching: Caching | None = None,
        mtls: Mtls | None = None,
        origin_connection_limit: int | None = None,
    ) -> HyperdriveConfig:
        """A new config (Cloudflare test-connects to the origin first: codes 2008-2016 say
        why it could not; ``NAME_CONFLICT`` when the name is taken)."""
        op = "create_hyperdrive"
        body = _hyperdrive_body(op, name, origin, caching, mtls, origin_connection_limit)
        path = self._account_path(op, "/hyperdrive/configs")
        return self._one(op, "POST", path, _parse_hyperdrive, json=body, secrets=origin.secrets())

    def update_hyperdrive(
        self,
        config_id: str,
        *,
        name: str,
        origin: Origin,
        caching: Caching | None = None,
        mtls: Mtls | None = None,
        origin_connection_limit: int | None = None,
    ) -> HyperdriveConfig:
        """Replace the config (``PUT``, the full body with the password)."""
        op = "update_hyperdrive"
        body = _hyperdrive_body(op, name, origin, caching, mtls, origin_connection_limit)
        path = self._account_path(op, f"/hyperdrive/configs/{segment(config_id)}")
        return self._one(op, "PUT", path, _parse_hyperdrive, json=body, secrets=origin.secrets())

    def delete_hyperdrive(self, config_id: str, *, missing_ok: bool = True) -> bool:
        """True if deleted now, False if the API answered 404 (``NotFoundError`` instead
        when not ``missing_ok``)."""
        op = "delete_hyperdrive"
        path = self._account_path(op, f"/hyperdrive/configs/{segment(config_id)}")
        return self._delete(op, path, missing_ok)

    # --- Worker scripts ------------------------------------------------------------------

    def list_scripts(self) -> list[WorkerScript]:
        op = "list_scripts"
        response = self._send(op, "GET", self._account_path(op, "/workers/scripts"))
        result = self._result(op, response)
        if not isinstance(result, list):
            raise self._api.invalid(op, response, "'result' is not a list")
        return [self._parse(op, response, _parse_script, item) for item in result]

    def script_exists(self, name: str) -> bool:
        """Whether the script exists (``GET`` on it: 404 when absent)."""
        op = "script_exists"
        path = self._account_path(op, f"/workers/scripts/{segment(name)}")
        try:
            self._send(op, "GET", path, accept="*/*")
        except NotFoundError:
            return False
        return True

    def get_script_settings(self, name: str) -> WorkerSettings:
        """The script's compatibility date and flags and its bindings (``NotFoundError`` when
        there is no such script)."""
        op = "get_script_settings"
        path = self._account_path(op, f"/workers/scripts/{segment(name)}/settings")
        return self._one(op, "GET", path, _parse_settings)

    def upload_worker(
        self,
        name: str,
        *,
        modules: Sequence[WorkerModule],
        compatibility_date: str,
        main_module: str | None = None,
        compatibility_flags: Iterable[str] = (),
        bindings: Iterable[Binding] = (),
    ) -> WorkerScript:
        """Create or replace the script as a module Worker. ``main_module``: the part that
        exports the handlers (default: the first module)."""
        op = "upload_worker"
        if not modules:
            raise ProviderError(f"worker {name!r}: no module to upload", operation=op)
        names = [m.name for m in modules]
        main = main_module or names[0]
        if main not in names or len(set(names)) != len(names) or "metadata" in names:
            raise ProviderError(
                f"worker {name!r}: the modules {names} must have distinct names other than "
                f"'metadata' and include the main module {main!r}",
                operation=op,
            )
        bound = list(bindings)
        metadata = {
            "main_module": main,
            "compatibility_date": compatibility_date,
            "compatibility_flags": list(compatibility_flags),
            "bindings": [b.to_json() for b in bound],
        }
        files: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("metadata", (None, json.dumps(metadata).encode(), "application/json"))
        ]
        files += [(m.name, (m.name, m.content, m.content_type)) for m in modules]
        secrets = [b.text for b in bound if isinstance(b, SecretTextBinding)]
        path = self._account_path(op, f"/workers/scripts/{segment(name)}")
        response = self._send(op, "PUT", path, files=files, secrets=secrets)
        return self._parse(op, response, _parse_script, self._result(op, response))

    def delete_script(self, name: str, *, force: bool = True, missing_ok: bool = True) -> bool:
        """Delete the script (``force``: with what is bound to it). True if deleted now,
        False if the API answered 404 (``NotFoundError`` instead when not ``missing_ok``)."""
        op = "delete_script"
        path = self._account_path(op, f"/workers/scripts/{segment(name)}")
        return self._delete(op, path, missing_ok, params={"force": "true" if force else "false"})

    # --- workers.dev ---------------------------------------------------------------------

    def get_account_subdomain(self) -> str:
        """The account's workers.dev subdomain (``NotFoundError`` when it has none yet)."""
        op = "get_account_subdomain"
        response = self._send(op, "GET", self._account_path(op, "/workers/subdomain"))
        result = self._result(op, response)
        subdomain = result.get("subdomain") if isinstance(result, dict) else None
        if not isinstance(subdomain, str) or not subdomain:
            raise self._api.invalid(op, response, "the result has no 'subdomain'")
        return subdomain

    def get_script_subdomain(self, name: str) -> ScriptSubdomain:
        op = "get_script_subdomain"
        path = self._account_path(op, f"/workers/scripts/{segment(name)}/subdomain")
        return self._one(op, "GET", path, _parse_subdomain)

    def set_script_subdomain(
        self, name: str, *, enabled: bool = True, previews_enabled: bool | None = None
    ) -> ScriptSubdomain:
        """Enable (or disable) the script's workers.dev route; safe to repeat."""
        op = "set_script_subdomain"
        body: dict[str, object] = {"enabled": enabled}
        if previews_enabled is not None:
            body["previews_enabled"] = previews_enabled
        path = self._account_path(op, f"/workers/scripts/{segment(name)}/subdomain")
        return self._one(op, "POST", path, _parse_subdomain, json=body, idempotent=True)

    # --- plumbing ------------------------------------------------------------------------

    def _account_path(self, op: str, rest: str) -> str:
        self._check_credentials(op)
        return f"/accounts/{segment(self.account_id())}{rest}"

    def _check_credentials(self, op: str) -> None:
        if self._token is None and self._key is None:
            raise MissingCredentialsError(MISSING_CREDENTIALS_MESSAGE, operation=op)
        if self._token is None and self._email is None:
            raise MissingCredentialsError(_KEY_WITHOUT_EMAIL, operation=op)

    def _auth(self) -> dict[str, str]:
        if self._token is not None:
            return {"Authorization": f"Bearer {self._token.unencrypted}"}
        assert self._key is not None and self._email is not None
        return {"X-Auth-Key": self._key.unencrypted, "X-Auth-Email": self._email}

    def _send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, object] | None = None,
        files: Any = None,
        idempotent: bool | None = None,
        secrets: Iterable[Secret] = (),
        accept: str | None = None,
    ) -> httpx.Response:
        self._check_credentials(op)
        headers = self._auth()
        if accept is not None:
            headers["Accept"] = accept
        return self._api.request(
            op,
            method,
            path,
            params=params,
            json=json,
            files=files,
            headers=headers,
            idempotent=idempotent,
            secrets=secrets,
        )

    def _result(self, op: str, response: httpx.Response) -> object:
        """The envelope's ``result``; an envelope without ``success: true`` is an error."""
        payload = self._api.json(op, response)
        if payload.get("success") is not True:
            detail = _describe_error(response)
            if detail.message is None and detail.code is None:
                raise self._api.invalid(op, response, "the envelope's 'success' is not true")
            raise self._api.api_error(op, response, detail=detail)
        return payload.get("result")

    def _one(
        self,
        op: str,
        method: str,
        path: str,
        parse: Callable[[object], _T],
        *,
        json: Mapping[str, object] | None = None,
        idempotent: bool | None = None,
        secrets: Iterable[Secret] = (),
    ) -> _T:
        response = self._send(op, method, path, json=json, idempotent=idempotent, secrets=secrets)
        return self._parse(op, response, parse, self._result(op, response))

    def _parse(
        self, op: str, response: httpx.Response, parse: Callable[[object], _T], raw: object
    ) -> _T:
        try:
            return parse(raw)
        except _Malformed as exc:
            raise self._api.invalid(op, response, str(exc)) from exc

    def _delete(
        self, op: str, path: str, missing_ok: bool, params: Mapping[str, str] | None = None
    ) -> bool:
        try:
            self._send(op, "DELETE", path, params=params)
        except NotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    def _paginate(
        self, op: str, path: str, parse: Callable[[object], _T], per_page: int | None = None
    ) -> Iterator[_T]:
        self._check_credentials(op)
        for page in paginate_pages(self._api, op, path, per_page=per_page, headers=self._auth()):
            if page.payload.get("success") is not True:
                self._result(op, page.response)  # raises the envelope's error
            for item in page.items:
                yield self._parse(op, page.response, parse, item)


def _hyperdrive_body(
    op: str,
    name: str,
    origin: Origin,
    caching: Caching | None,
    mtls: Mtls | None,
    origin_connection_limit: int | None,
) -> dict[str, object]:
    if origin.password is None:
        raise ProviderError(
            f"Hyperdrive config {name!r}: the origin has no password (the API needs it on "
            "every create and update)",
            operation=op,
        )
    body: dict[str, object] = {"name": name, "origin": origin.to_json()}
    if caching is not None:
        body["caching"] = caching.to_json()
    if mtls is not None:
        body["mtls"] = mtls.to_json()
    if origin_connection_limit is not None:
        body["origin_connection_limit"] = origin_connection_limit
    return body
