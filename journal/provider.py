"""The provider SDK: the one module a provider imports (nothing private).

A provider package declares, for its API, a :class:`Service` (credentials, API URL, local
emulator), and for each resource type a :class:`Provider` (the lifecycle) plus a handle class
(a :class:`Resource` subclass the user's program instantiates)::

    from dataclasses import dataclass, replace
    from journal.provider import (
        Context, Credential, NotFoundError, Provider, Resource, Service,
        register_provider, register_service,
    )

    register_service(Service(
        name="kv",                                  # type names are "kv.<Type>"
        title="KV API",
        credentials=(Credential("api_token", env="KV_API_TOKEN"),),
        api_url_env="KV_API_URL",
        default_api_url="https://kv.example",
    ))

    @dataclass(frozen=True)
    class BucketProps:
        name: str | None = None
        tags: dict[str, object] | None = None       # may hold handles: references

    @dataclass(frozen=True)
    class BucketOutputs:
        id: str
        name: str

    @register_provider
    class BucketProvider(Provider[BucketProps, BucketOutputs]):
        type_name = "kv.Bucket"
        props_type = BucketProps
        outputs_type = BucketOutputs
        def prepare(self, props, ctx): return replace(props, name=props.name or ctx.default_name)
        def create(self, props, ctx): ...           # ctx.api_url, ctx.credential("api_token")
        def delete(self, props, outputs, ctx): ...  # raise NotFoundError on 404
        def read(self, props, outputs, ctx): ...    # outputs None: look up by props.name

    class Bucket(Resource[BucketOutputs]):
        type_name = "kv.Bucket"
        def __init__(self, id, *, name=None, tags=None, **options):
            super().__init__(id, {"name": name, "tags": tags}, **options)
        @property
        def id(self) -> str: return self.outputs.id

The API, in full:

- ``Provider[P, O]``: class attributes ``type_name`` (``"<service>.<Type>"``), ``props_type``
  and ``outputs_type`` (frozen dataclasses), ``updatable`` (fields changed in place; any other
  change replaces), ``delete_first`` (name-bound: delete the old object before creating its
  replacement), ``default_delete`` (False: delete protection by default), ``ref_field`` (the
  output a handle stands for, default ``"id"``). Methods: ``validate(props, *, resource)``
  (no I/O; references appear as :class:`Ref`), ``prepare(props, ctx)`` (defaults, no I/O),
  ``create(props, ctx) -> O``, ``update(props, old_props, outputs, ctx) -> O``,
  ``delete(props, outputs, ctx)`` (raise :class:`NotFoundError` when it is not there),
  ``read(props, outputs | None, ctx) -> O | None`` and ``find(props, ctx, *, exclude)``
  (look up by name: adopt, recovery of an interrupted create), ``endpoint(ctx)`` and
  ``credential(ctx)`` (which API and which credential an object is reached through, recorded
  so that a 404 proves an object gone only for its own API and credential).
- ``Context``: ``app``, ``stage``, ``resource``, ``adopt``, ``offline`` (a plan: no I/O),
  ``api_url`` (the emulator's under ``--local``, else the ``api_url_env`` variable, else
  ``default_api_url``), ``credentials`` (a mapping by credential name, resolved: the
  resource's own ``credentials=``/``service_token=``, else the environment variable, else the
  emulator's, else the ``journal configure`` profile's), ``credential(name)``,
  ``default_name`` (``<app>-<id>-<stage>``), ``shared(key, factory)`` (one object per run,
  e.g. an HTTP client; closed at the end of the run if it has ``close()``).
  Providers never read ``os.environ``: the engine resolves everything into the Context.
- ``Service(name, title, credentials=(Credential(name, env, help),), api_url_env,
  default_api_url, local, local_logger)`` with ``register_service``. ``local`` is the
  emulator hook: ``local(LocalOptions) -> context manager yielding Endpoint(url,
  credentials)``; ``journal deploy --local``, ``journal dev`` and ``journal local serve`` call
  it for every registered service. ``journal configure --provider NAME`` stores its
  credentials, encrypted, under their ``env`` names.
- ``Resource[O]``: the handle base. ``super().__init__(id, props, *, delete, adopt,
  service_token, credentials)``; ``outputs`` (blocks until reconciled), ``ref(output=None)``.
  Props may hold handles, outputs read from handles (str and Secret values: ``db.id``,
  ``conn.connection_string``) and Secrets inside dicts, lists and tuples at any depth: each
  handle or output is a reference, recorded with its path (``bindings.HYPERDRIVE``), ordered
  by, and resolved before the provider sees the props.
- Helpers: ``Secret``, ``physical_name``, ``check_props``; the error tree (``ProviderError``
  and its subclasses, ``ValidationError``, ...); providers register entry points in the
  ``journal.providers`` group (name: the service name) so that ``journal destroy`` finds
  them from the journal alone. ``journal.testing`` is the contract suite every provider
  should pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ApiError,
    AuthenticationError,
    JournalError,
    LocalServerError,
    MissingCredentialsError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RequestError,
    ServerError,
    TransportError,
    UsageError,
    ValidationError,
)
from ._program.app import Resource
from ._provider import (
    Context,
    Credential,
    Emulator,
    Endpoint,
    LocalOptions,
    Provider,
    Service,
    check_props,
    get_provider,
    get_service,
    physical_name,
    register_provider,
    register_service,
    services,
)
from ._refs import Ref
from ._secret import MASK, Secret

if TYPE_CHECKING:
    from ._alchemy_state import AlchemyRecord, AlchemyStateError
    from ._http import (
        ApiClient,
        ErrorDetail,
        HttpClient,
        Page,
        default_http_client,
        json_error_detail,
        paginate_cursor,
        paginate_pages,
        segment,
    )
    from ._import_alchemy import Linker, Mapped, register_alchemy_kind

#: names imported on first use, by the module that defines them: the HTTP layer (a program
#: that makes no call never imports httpx) and what ``journal import-alchemy`` needs of a
#: provider (a deploy never reads Alchemy's state)
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "ApiClient",
            "ErrorDetail",
            "HttpClient",
            "Page",
            "default_http_client",
            "json_error_detail",
            "paginate_cursor",
            "paginate_pages",
            "segment",
        ),
        "_http",
    ),
    "AlchemyRecord": "_alchemy_state",
    "AlchemyStateError": "_alchemy_state",
    "Linker": "_import_alchemy",
    "Mapped": "_import_alchemy",
    "register_alchemy_kind": "_import_alchemy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


#: the handle base under the name the SDK's guide uses
Handle = Resource

__all__ = [
    "MASK",
    "AlchemyRecord",
    "AlchemyStateError",
    "ApiClient",
    "ApiError",
    "AuthenticationError",
    "Context",
    "Credential",
    "Emulator",
    "Endpoint",
    "ErrorDetail",
    "Handle",
    "HttpClient",
    "JournalError",
    "Linker",
    "LocalOptions",
    "LocalServerError",
    "Mapped",
    "MissingCredentialsError",
    "NotFoundError",
    "Page",
    "Provider",
    "ProviderError",
    "RateLimitedError",
    "Ref",
    "RequestError",
    "Resource",
    "Secret",
    "ServerError",
    "Service",
    "TransportError",
    "UsageError",
    "ValidationError",
    "check_props",
    "default_http_client",
    "get_provider",
    "get_service",
    "json_error_detail",
    "paginate_cursor",
    "paginate_pages",
    "physical_name",
    "register_alchemy_kind",
    "register_provider",
    "register_service",
    "segment",
    "services",
]
