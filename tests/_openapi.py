"""Validate API answers against the Prisma Management API's OpenAPI document.

``OpenApi(path).validate(method, template, status, body)`` checks ``body`` against the schema the
document gives for that operation and status (JSON Schema Draft 2020-12, ``$ref`` resolved
against the whole document, ``date-time`` and ``uri`` formats checked). A status the document
does not list for the operation fails, unless ``undocumented_ok`` is given: then the body must
be the document's common error envelope ``{"error": {"code", "message", "hint"?}}``.

The document is ``PRISMA_OPENAPI_PATH`` or the copy kept in ``tests/data/`` (the Management
API v1 document the client and the local server follow).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["DOC_URI", "OpenApi", "default_document_path"]

DOC_URI = "urn:prisma-management-api"


def default_document_path() -> Path:
    env = os.environ.get("PRISMA_OPENAPI_PATH")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "data" / "prisma-management-api.openapi.json"


def _pointer_token(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    dt.datetime.fromisoformat(value)
    return True


@_formats.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlparse(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URI: {value!r}")
    return True


class OpenApi:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_document_path()
        self.doc: dict[str, Any] = json.loads(self.path.read_text())
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        # the error envelope as the document writes it (GET /v1/projects' 401)
        unauthorized = self.operation("GET", "/v1/projects")["responses"]["401"]
        self.error_schema: dict[str, Any] = unauthorized["content"]["application/json"]["schema"]

    # -- lookups

    def operation(self, method: str, template: str) -> dict[str, Any]:
        try:
            op: dict[str, Any] = self.doc["paths"][template][method.lower()]
        except KeyError:
            raise AssertionError(f"{method} {template} is not in the OpenAPI document") from None
        return op

    def statuses(self, method: str, template: str) -> set[int]:
        return {int(s) for s in self.operation(method, template)["responses"]}

    def operations(self) -> set[tuple[str, str]]:
        return {
            (m.upper(), p)
            for p, ops in self.doc["paths"].items()
            for m in ops
            if m in ("get", "post", "put", "patch", "delete")
        }

    def template_for(self, method: str, path: str) -> str:
        """The document's path template matching a concrete path (literal segments win)."""
        best: tuple[int, str] | None = None
        for template in self.doc["paths"]:
            pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method.lower() in self.doc["paths"][template]:
                literal = len(re.sub(r"\{\w+\}", "", template))
                if best is None or literal > best[0]:
                    best = (literal, template)
        if best is None:
            raise AssertionError(f"no operation in the document for {method} {path}")
        return best[1]

    def _schema_ref(self, method: str, template: str, status: int) -> str | None:
        response = self.operation(method, template)["responses"].get(str(status))
        if response is None:
            raise KeyError(status)
        if "application/json" not in response.get("content", {}):
            return None
        pointer = "/".join(
            _pointer_token(t)
            for t in (
                "paths",
                template,
                method.lower(),
                "responses",
                str(status),
                "content",
                "application/json",
                "schema",
            )
        )
        return f"{DOC_URI}#/{pointer}"

    # -- validation

    def validate(
        self,
        method: str,
        template: str,
        status: int,
        body: Any,
        *,
        undocumented_ok: bool = False,
    ) -> None:
        """Assert that ``body`` (parsed JSON, or None for no body) is what the document says."""
        try:
            ref = self._schema_ref(method, template, status)
        except KeyError:
            if not undocumented_ok:
                documented = sorted(self.statuses(method, template))
                raise AssertionError(
                    f"{method} {template} answered {status}, the document lists {documented}"
                ) from None
            self.validate_error(body)
            return
        if ref is None:
            assert body is None, f"{method} {template} {status} must have no body, got {body!r}"
            return
        self._check({"$ref": ref}, body, f"{method} {template} {status}")

    def validate_error(self, body: Any) -> None:
        self._check(self.error_schema, body, "error envelope")

    def _check(self, schema: dict[str, Any], body: Any, what: str) -> None:
        validator = Draft202012Validator(schema, registry=self.registry, format_checker=_formats)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [
                f"  at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                for e in errors[:20]
            ]
            details = "\n".join(lines)
            raise AssertionError(f"{what}: the body does not match the schema:\n{details}")
