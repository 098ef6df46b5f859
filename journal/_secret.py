"""``Secret``: a value that never shows itself by accident."""

from __future__ import annotations

from typing import Any

from ._settings import MASK

__all__ = ["MASK", "Secret", "is_secret_json", "secret_from_json", "secret_to_json"]


class Secret:
    """Wraps a sensitive string. ``.unencrypted`` gives the plaintext; ``str()`` and
    ``repr()`` never do. Secrets are stored only inside the journal's encrypted payloads."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.unencrypted
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value

    @property
    def unencrypted(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


# JSON form inside encrypted payloads: {"$secret": "plaintext"}


def secret_to_json(secret: Secret) -> dict[str, str]:
    return {"$secret": secret.unencrypted}


def is_secret_json(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$secret" in value


def secret_from_json(value: dict[str, str]) -> Secret:
    return Secret(value["$secret"])
