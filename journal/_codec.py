"""Plain-JSON forms of props and outputs, and their masked forms for display.

Props and outputs live inside encrypted payloads as JSON. A ``Secret`` becomes
``{"$secret": "..."}`` there (the payload is sealed as a whole); anything shown to a person
goes through :func:`mask` first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ._secret import MASK, Secret, is_secret_json, secret_from_json, secret_to_json

__all__ = ["decode", "diff", "encode", "fingerprint", "mask", "reveal"]


def encode(value: Any) -> Any:
    """Python value (dataclasses, Secrets, containers, scalars) -> JSON value."""
    if isinstance(value, Secret):
        return secret_to_json(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if hasattr(type(value), "__journal_ref__"):
        raise TypeError(
            f"cannot store {value!r} here: a resource handle is a reference only inside the "
            "props of another resource of the same app; pass one of its outputs instead"
        )
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def decode(value: Any) -> Any:
    """JSON value -> Python value with Secrets restored (dicts stay dicts)."""
    if is_secret_json(value):
        return secret_from_json(value)
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def mask(value: Any) -> Any:
    """JSON value -> JSON value safe to show: every secret replaced by a mask."""
    if is_secret_json(value) or isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def reveal(value: Any) -> Any:
    """JSON value -> JSON value with every secret in clear (only for ``--show-secrets``)."""
    if is_secret_json(value):
        return value["$secret"]
    if isinstance(value, Secret):
        return value.unencrypted
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """Field-level difference of two JSON objects, masked: ``{path: [old, new]}``. Nested
    dicts and lists are compared inside (``bindings.HYPERDRIVE``; see ``_refs.flatten``)."""
    from ._refs import flatten

    old = flatten(old or {})
    new = flatten(new or {})
    out: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            out[key] = [mask(a), mask(b)]
    return out


def fingerprint(value: Any) -> str:
    """A stable short digest of a JSON value (for program hashes, not for secrets' sake)."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
