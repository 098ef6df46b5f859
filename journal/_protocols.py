"""The shape of a journal as the rest of the package uses it, defined once.

``Journal`` (``_journal.py``) is the implementation; the projection, the audit trail, the
engine and the credential store are written against ``JournalLike`` so that read-only or
empty stand-ins (``plan`` without a journal, the UI's rollback preview) fit too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["JournalLike", "StoredEvent"]


class StoredEvent(Protocol):
    """One decrypted event as read back (``_journal.Event``)."""

    @property
    def seq(self) -> int: ...
    @property
    def stream(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def payload(self) -> dict[str, Any]: ...


class JournalLike(Protocol):
    def read(
        self,
        stream: str | None = None,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> Iterable[StoredEvent]: ...

    def streams(self) -> list[str]: ...

    def head(self) -> tuple[int, str]: ...

    def append(
        self,
        stream: str,
        payloads: Sequence[Mapping[str, Any]],
        *,
        expected_version: int | None = None,
    ) -> Sequence[StoredEvent]: ...

    def lock(
        self, stream: str, *, holder: Mapping[str, Any], timeout: float = 0.0
    ) -> AbstractContextManager[None]: ...

    def latest_snapshot(
        self, stream: str, upto_seq: int | None = None
    ) -> tuple[int, dict[str, Any]] | None: ...

    def put_snapshot(self, stream: str, seq: int, state: Mapping[str, Any]) -> None: ...

    def ensure_writable(self) -> None: ...
