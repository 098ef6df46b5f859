"""Cloudflare resources: ``Hyperdrive`` (a connection pool in front of a PostgreSQL origin)
and ``Worker`` (a TypeScript/JavaScript entrypoint bundled with esbuild, uploaded as a module
Worker, served on workers.dev).

- ``Hyperdrive``: ``origin`` is a connection string (a ``Secret``, e.g. a Prisma
  ``Connection``'s ``connection_string``, or its ``.unencrypted``: a plain string is kept as
  a ``Secret`` too) or the structured form ``{"host", "port", "database", "user",
  "password", "scheme", "sslmode"}``. The user and password are percent-decoded, the port
  defaults to 5432, the database comes from the path (default ``postgres``), ``sslmode`` is
  kept (``require``/``verify-ca``/``verify-full`` go to Cloudflare as ``mtls.sslmode``).
  The password is write-only in the API: the origin is kept (encrypted, in the journal) in
  the props, with ``origin_hash``, a keyed digest of it that shows a changed password as a
  change without showing the password; every update sends the full body (``PUT``). Any
  change updates in place. Outputs: ``id``, ``name`` and the ``origin`` without its
  password. A name taken by another config fails (Cloudflare's code 2017) unless
  ``adopt=True``, which takes that config over (and writes this origin into it).
- ``Worker``: ``entrypoint`` (relative to the program's folder) is bundled in ``prepare``
  (``_bundle``): the bundle's hash is a prop (``bundle_hash``), so a change to the
  entrypoint or anything it imports is an update, and the bundle's source files are what
  ``journal dev`` watches (``Context.watch``). ``bindings`` maps names to ``Hyperdrive``
  handles, strings (``plain_text``) and ``Secret``s (``secret_text``); handles are
  references recorded at their path (``bindings.HYPERDRIVE``). ``url=True`` enables the
  workers.dev route and outputs its address (the local API's own address under ``--local``).
  A change of name replaces; deleted with ``force``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from journal.provider import (
    ApiError,
    Context,
    NotFoundError,
    Provider,
    ProviderError,
    Ref,
    Resource,
    Secret,
    ValidationError,
    register_provider,
)

from . import _client as api
from ._service import LOCAL_TOKEN, SERVICE

__all__ = [
    "Hyperdrive",
    "HyperdriveOutputs",
    "HyperdriveProps",
    "Worker",
    "WorkerOutputs",
    "WorkerProps",
    "parse_origin",
]

DEFAULT_PORT: Final = 5432
DEFAULT_DATABASE: Final = "postgres"
#: the compatibility date a Worker gets when none is given (from it on, nodejs_compat is on)
DEFAULT_COMPATIBILITY_DATE: Final = "2026-11-17"
#: sslmodes Cloudflare takes in ``mtls.sslmode``
_CF_SSLMODES: Final = frozenset({"require", "verify-ca", "verify-full"})
_SSLMODES: Final = frozenset({"disable", "allow", "prefer", *_CF_SSLMODES})
_BINDING_NAME: Final = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,127}$")
_SCRIPT_NAME: Final = re.compile(r"^[a-z0-9_][a-z0-9-_]{0,62}$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HASH_KEY: Final = b"journal.cloudflare.hyperdrive.origin"


# --- the client and the identity --------------------------------------------------------------


def _url(ctx: Context) -> str:
    return (ctx.api_url or SERVICE.default_api_url or api.DEFAULT_API_URL).strip()


def _token(ctx: Context) -> Secret | None:
    """The API token; for a local API on loopback that was given none (one the user runs:
    ``CLOUDFLARE_API_URL`` from ``journal local serve``), the token it is started with (it
    takes any)."""
    token = ctx.credential("api_token")
    if token is None and ctx.credential("api_key") is None and _is_loopback(_url(ctx)):
        return Secret(LOCAL_TOKEN)
    return token


def _client(ctx: Context) -> api.CloudflareClient:
    token, key = _token(ctx), ctx.credential("api_key")
    email, account = ctx.credential("email"), ctx.credential("account_id")
    url = _url(ctx)
    ident = "\0".join(
        s.unencrypted if s is not None else "" for s in (token, key, email, account)
    ).encode()
    cache_key = "cloudflare:" + url + ":" + hashlib.blake2b(ident, digest_size=8).hexdigest()

    def make() -> api.CloudflareClient:
        return api.CloudflareClient(
            api_token=token,
            api_key=key,
            email=email.unencrypted if email is not None else None,
            account_id=account.unencrypted if account is not None else None,
            base_url=url,
        )

    client: api.CloudflareClient = ctx.shared(cache_key, make)
    return client


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


class _Cloudflare:
    """What both types share (mixed in before Provider): the endpoint (the API, with the
    account: a local API's account id names its data for good) and the credential."""

    def endpoint(self, ctx: Context) -> str | None:
        url = _url(ctx).rstrip("/")
        if ctx.offline:
            return "local" if _is_loopback(url) else url
        account = _client(ctx).account_id()
        if _is_loopback(url):
            return f"local:{account}"
        return f"{url}#account={account}"

    def credential(self, ctx: Context) -> Secret | None:
        return _token(ctx) or ctx.credential("api_key")


def _check_name(value: object, resource: str, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationError(
            f"must be a non-empty string of at most {limit} characters",
            resource=resource,
            field="name",
        )


# --- Hyperdrive -------------------------------------------------------------------------------


def _fail(resource: str | None, message: str) -> ValidationError:
    return ValidationError(message, resource=resource, field="origin")


def parse_origin(value: Secret | str | Mapping[str, Any], *, resource: str | None = None) -> Any:
    """The origin as the client sends it (``api.Origin``, password included) and its
    sslmode (None when not given), from a connection string or the structured form."""
    if isinstance(value, Mapping):
        return _origin_from_mapping(value, resource)
    text = value.unencrypted if isinstance(value, Secret) else value
    if not isinstance(text, str):
        raise _fail(resource, "must be a connection string or a mapping")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise _fail(resource, "is not a valid connection string (check the port)") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise _fail(
            resource, "must be a postgres:// or postgresql:// connection string (its scheme)"
        )
    if not parts.hostname:
        raise _fail(resource, "the connection string has no host")
    if not parts.username:
        raise _fail(resource, "the connection string has no user")
    if parts.password is None:
        raise _fail(resource, "the connection string has no password (Hyperdrive needs one)")
    query = parse_qs(parts.query)
    sslmode = query.get("sslmode", [None])[-1]
    if sslmode is not None and sslmode not in _SSLMODES:
        raise _fail(resource, f"sslmode {sslmode!r} is not a PostgreSQL sslmode")
    database = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    origin = api.Origin(
        host=parts.hostname,
        database=database,
        user=unquote(parts.username),
        scheme=parts.scheme,
        port=port or DEFAULT_PORT,
        password=Secret(unquote(parts.password)),
    )
    return origin, sslmode


def _origin_from_mapping(value: Mapping[str, Any], resource: str | None) -> Any:
    known = {"host", "port", "database", "user", "password", "scheme", "sslmode"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise _fail(resource, f"has unknown keys {unknown}; use {sorted(known)}")
    for key in ("host", "user", "password"):
        if value.get(key) in (None, ""):
            raise _fail(resource, f"needs {key!r}")
    password = value["password"]
    if not isinstance(password, str | Secret):
        raise _fail(resource, "'password' must be a str or Secret")
    port = value.get("port", DEFAULT_PORT)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise _fail(resource, "'port' must be a port number (1-65535)")
    scheme = value.get("scheme", "postgres")
    if scheme not in ("postgres", "postgresql"):
        raise _fail(resource, "'scheme' must be postgres or postgresql")
    sslmode = value.get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise _fail(resource, f"sslmode {sslmode!r} is not a PostgreSQL sslmode")
    origin = api.Origin(
        host=str(value["host"]),
        database=str(value.get("database") or DEFAULT_DATABASE),
        user=str(value["user"]),
        scheme=scheme,
        port=port,
        password=password if isinstance(password, Secret) else Secret(password),
    )
    return origin, sslmode


def _origin_hash(origin: api.Origin, sslmode: str | None, name: str) -> str:
    """A digest of the whole origin (password included), keyed with a key derived from the
    password and salted with the config's name: it changes with any part of the origin and
    shows none of it (no unsalted hash of a password to look up). It lives, like the origin,
    only inside the encrypted journal; plans and history show that it changed."""
    assert origin.password is not None
    canonical = json.dumps({**origin.to_json(), "sslmode": sslmode}, sort_keys=True)
    key = hashlib.blake2b(
        origin.password.unencrypted.encode(), key=_HASH_KEY, person=b"hd-origin"
    ).digest()
    return hashlib.blake2b(
        canonical.encode() + b"\0" + name.encode(), key=key, digest_size=16
    ).hexdigest()


@dataclass(frozen=True)
class HyperdriveProps:
    origin: Any
    name: str | None = None
    caching: dict[str, Any] | None = None
    mtls: dict[str, Any] | None = None
    origin_connection_limit: int | None = None
    #: filled by prepare: a keyed digest of the origin (see the module's doc)
    origin_hash: str | None = None


@dataclass(frozen=True)
class HyperdriveOutputs:
    id: str
    name: str
    #: the origin without its password: scheme, host, port, database, user (and sslmode)
    origin: dict[str, Any] = field(default_factory=dict)


def _public_origin(origin: api.Origin, sslmode: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scheme": origin.scheme,
        "host": origin.host,
        "port": origin.port,
        "database": origin.database,
        "user": origin.user,
    }
    if sslmode is not None:
        out["sslmode"] = sslmode
    return out


def _caching(raw: Mapping[str, Any] | None) -> api.Caching | None:
    if raw is None:
        return None
    return api.Caching(
        disabled=bool(raw.get("disabled", False)),
        max_age=raw.get("max_age"),
        stale_while_revalidate=raw.get("stale_while_revalidate"),
    )


def _mtls(raw: Mapping[str, Any] | None, sslmode: str | None) -> api.Mtls | None:
    if raw is not None:
        return api.Mtls(
            ca_certificate_id=raw.get("ca_certificate_id"),
            mtls_certificate_id=raw.get("mtls_certificate_id"),
            sslmode=raw.get("sslmode", sslmode if sslmode in _CF_SSLMODES else None),
        )
    if sslmode in _CF_SSLMODES:
        return api.Mtls(sslmode=sslmode)
    return None


def _hd_outputs(cfg: api.HyperdriveConfig, sslmode: str | None) -> HyperdriveOutputs:
    return HyperdriveOutputs(cfg.id, cfg.name, _public_origin(cfg.origin, sslmode))


@register_provider
class HyperdriveProvider(_Cloudflare, Provider[HyperdriveProps, HyperdriveOutputs]):
    type_name = "cloudflare.Hyperdrive"
    props_type = HyperdriveProps
    outputs_type = HyperdriveOutputs
    updatable = frozenset(
        {"origin", "name", "caching", "mtls", "origin_connection_limit", "origin_hash"}
    )

    def validate(self, props: HyperdriveProps, *, resource: str) -> None:
        _check_name(props.name, resource, 64)
        if not isinstance(props.origin, Ref) and not _holds_ref(props.origin):
            parse_origin(props.origin, resource=resource)
        for fname in ("caching", "mtls"):
            value = getattr(props, fname)
            if value is not None and not isinstance(value, Mapping):
                raise ValidationError("must be a mapping", resource=resource, field=fname)
        if props.caching is not None:
            unknown = set(props.caching) - {"disabled", "max_age", "stale_while_revalidate"}
            if unknown:
                raise ValidationError(
                    f"has unknown keys {sorted(unknown)}", resource=resource, field="caching"
                )
        limit = props.origin_connection_limit
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ValidationError(
                "must be a whole number", resource=resource, field="origin_connection_limit"
            )

    def prepare(self, props: HyperdriveProps, ctx: Context) -> HyperdriveProps:
        name = props.name or ctx.default_name
        origin, sslmode = parse_origin(props.origin, resource=ctx.resource)
        return replace(props, name=name, origin_hash=_origin_hash(origin, sslmode, name))

    def _send(self, props: HyperdriveProps, ctx: Context, config_id: str | None) -> Any:
        assert props.name is not None
        origin, sslmode = parse_origin(props.origin, resource=ctx.resource)
        body: dict[str, Any] = {
            "name": props.name,
            "origin": origin,
            "caching": _caching(props.caching),
            "mtls": _mtls(props.mtls, sslmode),
            "origin_connection_limit": props.origin_connection_limit,
        }
        client = _client(ctx)
        if config_id is None:
            return _hd_outputs(client.create_hyperdrive(**body), sslmode)
        return _hd_outputs(client.update_hyperdrive(config_id, **body), sslmode)

    def create(self, props: HyperdriveProps, ctx: Context) -> HyperdriveOutputs:
        try:
            out: HyperdriveOutputs = self._send(props, ctx, None)
            return out
        except ApiError as exc:
            if not api.has_error_code(exc, api.NAME_CONFLICT):
                raise
            if not ctx.adopt:
                raise ProviderError(
                    f"a Hyperdrive config named {props.name!r} exists already: pass "
                    "adopt=True to take it over, or choose another name",
                    resource=ctx.resource,
                    operation="create",
                ) from None
        found = _client(ctx).find_hyperdrive_by_name(str(props.name))
        if found is None:
            raise ProviderError(
                f"the API says the name {props.name!r} is taken, but lists no such config",
                resource=ctx.resource,
                operation="create",
            )
        taken: HyperdriveOutputs = self._send(props, ctx, found.id)
        return taken

    def update(
        self,
        props: HyperdriveProps,
        old_props: HyperdriveProps,
        outputs: HyperdriveOutputs,
        ctx: Context,
    ) -> HyperdriveOutputs:
        out: HyperdriveOutputs = self._send(props, ctx, outputs.id)
        return out

    def delete(self, props: HyperdriveProps, outputs: HyperdriveOutputs, ctx: Context) -> None:
        _client(ctx).delete_hyperdrive(outputs.id, missing_ok=False)

    def read(
        self, props: HyperdriveProps, outputs: HyperdriveOutputs | None, ctx: Context
    ) -> HyperdriveOutputs | None:
        if outputs is None:
            return self.find(props, ctx)
        try:
            cfg = _client(ctx).get_hyperdrive(outputs.id)
        except NotFoundError:
            return None
        return _hd_outputs(cfg, outputs.origin.get("sslmode"))

    def find(
        self, props: HyperdriveProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> HyperdriveOutputs | None:
        found = _client(ctx).find_hyperdrive_by_name(props.name or ctx.default_name)
        if found is None or found.id in exclude:
            return None
        if ctx.adopt and not ctx.offline and not isinstance(props.origin, Ref):
            # taken over: it gets this program's origin (the password cannot be compared)
            taken: HyperdriveOutputs = self._send(props, ctx, found.id)
            return taken
        return _hd_outputs(found, None)


def _holds_ref(value: Any) -> bool:
    if isinstance(value, Ref):
        return True
    if isinstance(value, Mapping):
        return any(_holds_ref(v) for v in value.values())
    return False


class Hyperdrive(Resource[HyperdriveOutputs]):
    """A Hyperdrive config in front of a PostgreSQL origin (see the module's doc)."""

    type_name = "cloudflare.Hyperdrive"

    def __init__(
        self,
        id: str,
        *,
        origin: Secret | str | Mapping[str, Any],
        name: str | None = None,
        caching: Mapping[str, Any] | None = None,
        mtls: Mapping[str, Any] | None = None,
        origin_connection_limit: int | None = None,
        adopt: bool = False,
        delete: bool = True,
        api_token: str | Secret | None = None,
        account_id: str | None = None,
    ) -> None:
        if isinstance(origin, str) and type(origin) is str:
            origin = Secret(origin)  # a connection string holds a password: never shown
        elif isinstance(origin, Mapping):
            origin = {
                k: Secret(v) if k == "password" and type(v) is str else v for k, v in origin.items()
            }
        super().__init__(
            id,
            {
                "origin": origin,
                "name": name,
                "caching": dict(caching) if caching is not None else None,
                "mtls": dict(mtls) if mtls is not None else None,
                "origin_connection_limit": origin_connection_limit,
            },
            adopt=adopt,
            delete=delete,
            credentials={"api_token": api_token, "account_id": account_id},
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name

    @property
    def origin(self) -> dict[str, Any]:
        return self.outputs.origin


# --- Worker -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerProps:
    #: the entrypoint's absolute path
    entrypoint: str
    name: str | None = None
    bindings: dict[str, Any] = field(default_factory=dict)
    #: what each binding is: ``hyperdrive``, ``plain_text`` or ``secret_text``
    binding_kinds: dict[str, str] = field(default_factory=dict)
    compatibility_date: str | None = None
    compatibility_flags: list[str] = field(default_factory=list)
    url: bool = True
    #: filled by prepare: the bundle's sha256
    bundle_hash: str | None = None


@dataclass(frozen=True)
class WorkerOutputs:
    id: str
    name: str
    url: str | None = None


def _script_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:63] or "worker"


def _build_dir(entry: Path, name: str) -> Path:
    project = entry.parent.parent if entry.parent.name == "src" else entry.parent
    return project / ".journal" / "build" / name


def _bundle(props: WorkerProps, ctx: Context) -> Any:
    """The Worker's bundle (made once per run and name; cached in the run)."""
    from ._bundle import bundle_worker

    assert props.name is not None
    entry = Path(props.entrypoint)
    out_dir = _build_dir(entry, props.name)
    try:
        return ctx.shared(f"cloudflare:bundle:{out_dir}", lambda: bundle_worker(entry, out_dir))
    except Exception as exc:
        ctx.cache.pop(f"cloudflare:bundle:{out_dir}", None)
        if isinstance(exc, ProviderError | ValidationError):
            raise
        raise ProviderError(str(exc), resource=ctx.resource, operation="bundle") from exc


def _bindings(props: WorkerProps) -> list[api.Binding]:
    out: list[api.Binding] = []
    for name in sorted(props.bindings):
        value = props.bindings[name]
        kind = props.binding_kinds.get(name)
        if kind == "hyperdrive":
            out.append(api.HyperdriveBinding(name, str(value)))
        elif kind == "secret_text" or isinstance(value, Secret):
            secret = value if isinstance(value, Secret) else Secret(str(value))
            out.append(api.SecretTextBinding(name, secret))
        else:
            out.append(api.PlainTextBinding(name, str(value)))
    return out


@register_provider
class WorkerProvider(_Cloudflare, Provider[WorkerProps, WorkerOutputs]):
    type_name = "cloudflare.Worker"
    props_type = WorkerProps
    outputs_type = WorkerOutputs
    updatable = frozenset(
        {
            "entrypoint",
            "bindings",
            "binding_kinds",
            "compatibility_date",
            "compatibility_flags",
            "url",
            "bundle_hash",
        }
    )

    def validate(self, props: WorkerProps, *, resource: str) -> None:
        _check_name(props.name, resource, 63)
        if props.name is not None and not _SCRIPT_NAME.match(props.name):
            raise ValidationError(
                "must be lowercase letters, digits, '-' and '_' (at most 63)",
                resource=resource,
                field="name",
            )
        if not isinstance(props.entrypoint, str) or not props.entrypoint:
            raise ValidationError("must be a file path", resource=resource, field="entrypoint")
        if not isinstance(props.bindings, Mapping):
            raise ValidationError("must be a mapping", resource=resource, field="bindings")
        for key in props.bindings:
            if not isinstance(key, str) or not _BINDING_NAME.match(key):
                raise ValidationError(
                    f"{key!r} is not a JavaScript identifier", resource=resource, field="bindings"
                )
        date = props.compatibility_date
        if date is not None and (not isinstance(date, str) or not _DATE.match(date)):
            raise ValidationError(
                "must be YYYY-MM-DD", resource=resource, field="compatibility_date"
            )
        flags = props.compatibility_flags
        if not isinstance(flags, list | tuple) or not all(isinstance(f, str) for f in flags):
            raise ValidationError(
                "must be a list of strings", resource=resource, field="compatibility_flags"
            )
        if not isinstance(props.url, bool):
            raise ValidationError("must be True or False", resource=resource, field="url")

    def prepare(self, props: WorkerProps, ctx: Context) -> WorkerProps:
        name = props.name or _script_name(ctx.default_name)
        props = replace(
            props,
            name=name,
            compatibility_date=props.compatibility_date or DEFAULT_COMPATIBILITY_DATE,
            compatibility_flags=list(props.compatibility_flags),
        )
        bundle = _bundle(props, ctx)
        watch = getattr(ctx, "watch", None)
        if callable(watch):
            watch(bundle.inputs)
        return replace(props, bundle_hash=bundle.hash)

    def _upload(self, props: WorkerProps, ctx: Context) -> WorkerOutputs:
        assert props.name is not None and props.compatibility_date is not None
        bundle = _bundle(props, ctx)
        if bundle.hash != props.bundle_hash:
            raise ProviderError(
                "the Worker's sources changed while it was deployed: run again",
                resource=ctx.resource,
                operation="upload",
            )
        client = _client(ctx)
        modules = [api.WorkerModule(m.name, m.read(), m.content_type) for m in bundle.modules]
        client.upload_worker(
            props.name,
            modules=modules,
            main_module=bundle.main_module,
            compatibility_date=props.compatibility_date,
            compatibility_flags=props.compatibility_flags,
            bindings=_bindings(props),
        )
        return WorkerOutputs(props.name, props.name, self._route(props, client))

    def _route(self, props: WorkerProps, client: api.CloudflareClient) -> str | None:
        assert props.name is not None
        sub = client.set_script_subdomain(props.name, enabled=props.url)
        if not props.url:
            return None
        return sub.url or api.workers_dev_url(props.name, client.get_account_subdomain())

    def create(self, props: WorkerProps, ctx: Context) -> WorkerOutputs:
        assert props.name is not None
        if not ctx.adopt and _client(ctx).script_exists(props.name):
            raise ProviderError(
                f"a Worker named {props.name!r} exists already: pass adopt=True to take it "
                "over, or choose another name",
                resource=ctx.resource,
                operation="create",
            )
        return self._upload(props, ctx)

    def update(
        self, props: WorkerProps, old_props: WorkerProps, outputs: WorkerOutputs, ctx: Context
    ) -> WorkerOutputs:
        return self._upload(props, ctx)

    def delete(self, props: WorkerProps, outputs: WorkerOutputs, ctx: Context) -> None:
        _client(ctx).delete_script(outputs.name, force=True, missing_ok=False)

    def read(
        self, props: WorkerProps, outputs: WorkerOutputs | None, ctx: Context
    ) -> WorkerOutputs | None:
        name = outputs.name if outputs is not None else props.name or ctx.default_name
        client = _client(ctx)
        if not client.script_exists(name):
            return None
        sub = client.get_script_subdomain(name)
        url = (
            (sub.url or api.workers_dev_url(name, client.get_account_subdomain()))
            if (sub.enabled)
            else None
        )
        return WorkerOutputs(name, name, url)

    def find(
        self, props: WorkerProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> WorkerOutputs | None:
        found = self.read(props, None, ctx)
        if found is None or found.id in exclude:
            return None
        if ctx.adopt and not ctx.offline:
            return self._upload(props, ctx)  # taken over: it runs this program's code
        return found


def _caller_folder() -> Path:
    """The folder of the file that declared the resource (the program's), else the cwd."""
    frame = sys._getframe(2)
    source = frame.f_globals.get("__file__")
    return Path(source).resolve().parent if isinstance(source, str) else Path.cwd()


class Worker(Resource[WorkerOutputs]):
    """A module Worker built from ``entrypoint`` (see the module's doc)."""

    type_name = "cloudflare.Worker"

    def __init__(
        self,
        id: str,
        *,
        entrypoint: str | Path = "src/worker.ts",
        bindings: Mapping[str, Any] | None = None,
        compatibility_date: str | None = None,
        compatibility_flags: list[str] | tuple[str, ...] = (),
        url: bool = True,
        name: str | None = None,
        adopt: bool = False,
        delete: bool = True,
        api_token: str | Secret | None = None,
        account_id: str | None = None,
    ) -> None:
        entry = Path(entrypoint)
        if not entry.is_absolute():
            entry = _caller_folder() / entry
        kinds: dict[str, str] = {}
        for key, value in (bindings or {}).items():
            if isinstance(value, Hyperdrive):
                kinds[str(key)] = "hyperdrive"
            elif isinstance(value, Secret):
                kinds[str(key)] = "secret_text"
            elif isinstance(value, str):
                kinds[str(key)] = "plain_text"
            else:
                raise ValidationError(
                    f"binding {key!r}: use a Hyperdrive handle, a str or a Secret, "
                    f"not {type(value).__name__}",
                    resource=id,
                    field="bindings",
                )
        super().__init__(
            id,
            {
                "entrypoint": str(entry),
                "name": name,
                "bindings": dict(bindings or {}),
                "binding_kinds": kinds,
                "compatibility_date": compatibility_date,
                "compatibility_flags": list(compatibility_flags),
                "url": url,
            },
            adopt=adopt,
            delete=delete,
            credentials={"api_token": api_token, "account_id": account_id},
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name

    @property
    def url(self) -> str | None:
        return self.outputs.url
