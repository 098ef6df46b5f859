"""Validate answers against the Cloudflare API excerpt (``cloudflare-api-excerpt.openapi.json``).

The excerpt is OpenAPI 3.0 (``nullable``, ``4XX`` response keys), so it is read through
:class:`_openapi.OpenApi` after two translations: ``nullable: true`` becomes a type that also
allows null, and a status falls back to its ``4XX``/``5XX`` range key. The excerpt is the 2024
copy: what is newer (binding types ``hyperdrive``, ``plain_text``, ``secret_text`` in settings,
the per-script subdomain endpoint, ``GET /accounts``) is added here from
``cloudflare-notes.md``, each as the envelope the rest of the document uses.

Two more readings: the excerpt's ``4XX`` schemas combine a ``success: true`` envelope with the
failure envelope (nothing satisfies both), so an error answer is checked against the failure
envelope of its tag; a ``200`` with JSON but no schema (deleting a script) against the common
envelope. The document is ``CLOUDFLARE_OPENAPI_PATH``, else the copy in ``tests/data/``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from _openapi import DOC_URI, OpenApi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent


def document_path() -> Path:
    env = os.environ.get("CLOUDFLARE_OPENAPI_PATH")
    if env:
        return Path(env)
    return HERE / "data" / "cloudflare-api-excerpt.openapi.json"


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items()}
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


_COMMON = {"$ref": "#/components/schemas/workers_api-response-common"}
_FAILURE = {"$ref": "#/components/schemas/workers_api-response-common-failure"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}, "description": "added"}


def _newer(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    text = {"name": {"type": "string"}, "text": {"type": "string"}}
    for kind, props, required in (
        ("hyperdrive", {"name": {"type": "string"}, "id": {"type": "string"}}, ["id"]),
        ("plain_text", text, ["text"]),
        ("secret_text", {"name": {"type": "string"}}, []),
    ):
        schemas[f"workers_{kind}_binding"] = {
            "type": "object",
            "required": ["name", "type", *required],
            "properties": {**props, "type": {"enum": [kind]}},
        }
        schemas["workers_binding"]["oneOf"].append(
            {"$ref": f"#/components/schemas/workers_{kind}_binding"}
        )
    subdomain = {
        "type": "object",
        "required": ["enabled"],
        "properties": {"enabled": {"type": "boolean"}, "previews_enabled": {"type": "boolean"}},
    }
    accounts = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        },
    }
    paths = doc["paths"]
    one = {"allOf": [_COMMON, {"properties": {"result": subdomain}}]}
    failure = {"allOf": [_FAILURE]}
    paths["/accounts/{account_id}/workers/scripts/{script_name}/subdomain"] = {
        "get": {"responses": {"200": _json(one), "4XX": _json(failure)}},
        "post": {"responses": {"200": _json(one), "4XX": _json(failure)}},
    }
    listing = {"allOf": [_COMMON, {"properties": {"result": accounts}}]}
    paths["/accounts"] = {"get": {"responses": {"200": _json(listing), "4XX": _json(failure)}}}


class CloudflareApi(OpenApi):
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or document_path()
        raw = json.loads(self.path.read_text())
        doc = _nullable(copy.deepcopy(raw))
        _newer(doc)
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)
        self.error_schema = {
            "$ref": f"{DOC_URI}#/components/schemas/workers_api-response-common-failure"
        }

    def statuses(self, method: str, template: str) -> set[int]:
        return {int(s) for s in self.operation(method, template)["responses"] if s.isdigit()}

    def _schema_ref(self, method: str, template: str, status: int) -> str | None:
        responses = self.operation(method, template)["responses"]
        key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
        if key not in responses:
            raise KeyError(status)
        content = responses[key].get("content", {}).get("application/json")
        if content is None:
            return None
        if status >= 400:
            # the excerpt's 4XX schemas are allOf a success:true envelope and the failure
            # envelope, which nothing satisfies: an error is checked against the failure part
            tag = "hyperdrive" if "/hyperdrive/" in template else "workers"
            return f"{DOC_URI}#/components/schemas/{tag}_api-response-common-failure"
        if "schema" not in content:  # DELETE of a script: the common envelope
            return f"{DOC_URI}#/components/schemas/workers_api-response-common"
        tokens = ("paths", template, method.lower(), "responses", key, "content")
        pointer = "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)
        return f"{DOC_URI}#/{pointer}/application~1json/schema"
