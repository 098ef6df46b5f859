"""A complete small provider: ``Bucket`` and ``Function`` on the Tiny API (``tiny_api.py``).

    with journal.app("shop") as app:
        photos = Bucket("photos")
        Function("resize", env={"PHOTOS": photos, "LIMITS": {"max_mb": 5}})

A Function's ``env`` may hold handles and their outputs at any depth: the engine records each
as a dependency with its path (``env.PHOTOS``) and resolves it (a Bucket stands for its id)
before ``create`` sees the props.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from journal.provider import (
    ApiError,
    Context,
    Credential,
    MissingCredentialsError,
    NotFoundError,
    Provider,
    Resource,
    Service,
    TransportError,
    ValidationError,
    check_props,
    register_provider,
    register_service,
)

# Declared once for the package: its credential, where its API is (TINY_API_URL overrides).
SERVICE = register_service(
    Service(
        name="tiny",
        title="Tiny API",
        credentials=(Credential("api_token", env="TINY_API_TOKEN", help="a Tiny API token"),),
        api_url_env="TINY_API_URL",
        default_api_url="https://tiny.invalid",
    )
)


def _call(ctx: Context, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One API call; foreign errors become the SDK's (404 -> NotFoundError)."""
    token = ctx.credential("api_token")
    if token is None:
        raise MissingCredentialsError("no token: set TINY_API_TOKEN", resource=ctx.resource)
    url = ctx.api_url or ""
    key = "tiny:" + url + hashlib.blake2b(token.unencrypted.encode(), digest_size=8).hexdigest()
    auth = {"Authorization": f"Bearer {token.unencrypted}"}
    client: httpx.Client = ctx.shared(
        key, lambda: httpx.Client(base_url=url, headers=auth, timeout=10.0)
    )
    try:
        answer = client.request(method, path, json=body)
    except httpx.TransportError as exc:
        raise TransportError(f"{method} {path}: {exc}", resource=ctx.resource) from exc
    if answer.status_code == 404:
        raise NotFoundError("not found", status=404, method=method, path=path)
    if answer.status_code >= 400:
        raise ApiError(answer.text, status=answer.status_code, method=method, path=path)
    return answer.json() if answer.content else None


class _Tiny:
    """What both types share: the kind in the URL, the outputs, name lookup, the identity."""

    kind: str

    def prepare(self, props: Any, ctx: Context) -> Any:
        return props if props.name is not None else replace(props, name=ctx.default_name)

    def endpoint(self, ctx: Context) -> str | None:
        return ctx.api_url

    def credential(self, ctx: Context) -> Any:
        return ctx.credential("api_token")

    def delete(self, props: Any, outputs: Any, ctx: Context) -> None:
        _call(ctx, "DELETE", f"/v1/{self.kind}/{outputs.id}")

    def _outputs(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def read(self, props: Any, outputs: Any, ctx: Context) -> Any:
        if outputs is None:
            return self.find(props, ctx)
        try:
            return self._outputs(_call(ctx, "GET", f"/v1/{self.kind}/{outputs.id}"))
        except NotFoundError:
            return None

    def find(self, props: Any, ctx: Context, *, exclude: frozenset[str] = frozenset()) -> Any:
        name = props.name or ctx.default_name
        items = _call(ctx, "GET", f"/v1/{self.kind}", None)["items"]
        found = [i for i in items if i["name"] == name and i["id"] not in exclude]
        return self._outputs(found[0]) if found else None


# --- Bucket: a name (updated in place) and a storage class (a change replaces) ---------------


@dataclass(frozen=True)
class BucketProps:
    name: str | None = None
    storage: str = "standard"


@dataclass(frozen=True)
class BucketOutputs:
    id: str
    name: str
    storage: str


@register_provider
class BucketProvider(_Tiny, Provider[BucketProps, BucketOutputs]):
    type_name = "tiny.Bucket"
    props_type = BucketProps
    outputs_type = BucketOutputs
    updatable = frozenset({"name"})
    kind = "buckets"

    def validate(self, props: BucketProps, *, resource: str) -> None:
        check_props(props, resource, name=str, storage=str)
        if props.storage not in ("standard", "archive"):
            raise ValidationError(
                "must be 'standard' or 'archive'", resource=resource, field="storage"
            )

    def _outputs(self, data: dict[str, Any]) -> BucketOutputs:
        return BucketOutputs(data["id"], data["name"], data["storage"])

    def create(self, props: BucketProps, ctx: Context) -> BucketOutputs:
        body = {"name": props.name, "storage": props.storage}
        return self._outputs(_call(ctx, "POST", "/v1/buckets", body))

    def update(
        self, props: BucketProps, old_props: BucketProps, outputs: BucketOutputs, ctx: Context
    ) -> BucketOutputs:
        body = {"name": props.name}
        return self._outputs(_call(ctx, "PATCH", f"/v1/buckets/{outputs.id}", body))


class Bucket(Resource[BucketOutputs]):
    type_name = "tiny.Bucket"

    def __init__(
        self, id: str, *, name: str | None = None, storage: str = "standard", **options: Any
    ) -> None:
        super().__init__(id, {"name": name, "storage": storage}, **options)

    @property
    def id(self) -> str:
        return self.outputs.id


# --- Function: a name and an env that may hold references at any depth ----------------------


@dataclass(frozen=True)
class FunctionProps:
    name: str | None = None
    env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionOutputs:
    id: str
    name: str
    env: dict[str, Any]


@register_provider
class FunctionProvider(_Tiny, Provider[FunctionProps, FunctionOutputs]):
    type_name = "tiny.Function"
    props_type = FunctionProps
    outputs_type = FunctionOutputs
    updatable = frozenset({"env"})
    kind = "functions"

    def validate(self, props: FunctionProps, *, resource: str) -> None:
        check_props(props, resource, name=str, env=dict)

    def _outputs(self, data: dict[str, Any]) -> FunctionOutputs:
        return FunctionOutputs(data["id"], data["name"], data["env"])

    def create(self, props: FunctionProps, ctx: Context) -> FunctionOutputs:
        body = {"name": props.name, "env": props.env}
        return self._outputs(_call(ctx, "POST", "/v1/functions", body))

    def update(
        self, props: FunctionProps, old_props: FunctionProps, outputs: FunctionOutputs, ctx: Context
    ) -> FunctionOutputs:
        return self._outputs(_call(ctx, "PATCH", f"/v1/functions/{outputs.id}", {"env": props.env}))


class Function(Resource[FunctionOutputs]):
    type_name = "tiny.Function"

    def __init__(
        self, id: str, *, name: str | None = None, env: dict[str, Any] | None = None, **options: Any
    ) -> None:
        super().__init__(id, {"name": name, "env": env or {}}, **options)

    @property
    def id(self) -> str:
        return self.outputs.id
