"""journal: infrastructure as code in plain Python, with an encrypted, hash-chained,
event-sourced journal.

    import journal
    from journal.resources.prisma_postgres import Connection, Database, Project

    with journal.app("prisma-postgres-example") as app:
        project = Project("project")
        ...

Heavy parts load on first use, so ``import journal`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    IncompleteJournalError,
    IntegrityError,
    JournalError,
    KeysChangedError,
    LocalServerError,
    LockedError,
    MissingCredentialsError,
    MissingPasswordError,
    NoJournalError,
    NotAJournalError,
    NotFoundError,
    PasswordError,
    ProgramError,
    ProviderError,
    RateLimitedError,
    RequestError,
    RunError,
    RunInterrupted,
    ServerError,
    StorageError,
    StoreError,
    TransportError,
    UnknownSequenceError,
    UnsupportedJournalError,
    UsageError,
    ValidationError,
    WeakPasswordError,
    WrongPasswordError,
)
from ._secret import Secret

if TYPE_CHECKING:
    from ._engine import Change, RunResult
    from ._journal import Event, Journal
    from ._program.app import App, Resource, RunSettings, app
    from ._program.env import env
    from ._provider import Context, Provider, register_provider

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "App",
    "AuthenticationError",
    "Change",
    "ConflictError",
    "Context",
    "Event",
    "IncompleteJournalError",
    "IntegrityError",
    "Journal",
    "JournalError",
    "KeysChangedError",
    "LocalServerError",
    "LockedError",
    "MissingCredentialsError",
    "MissingPasswordError",
    "NoJournalError",
    "NotAJournalError",
    "NotFoundError",
    "PasswordError",
    "ProgramError",
    "Provider",
    "ProviderError",
    "RateLimitedError",
    "RequestError",
    "Resource",
    "RunError",
    "RunInterrupted",
    "RunResult",
    "RunSettings",
    "Secret",
    "ServerError",
    "StorageError",
    "StoreError",
    "TransportError",
    "UnknownSequenceError",
    "UnsupportedJournalError",
    "UsageError",
    "ValidationError",
    "WeakPasswordError",
    "WrongPasswordError",
    "__version__",
    "app",
    "env",
    "register_provider",
]

_LAZY = {
    "App": "._program.app",
    "Resource": "._program.app",
    "RunSettings": "._program.app",
    "app": "._program.app",
    "Change": "._engine",
    "RunResult": "._engine",
    "env": "._program.env",
    "Event": "._journal",
    "Journal": "._journal",
    "Context": "._provider",
    "Provider": "._provider",
    "register_provider": "._provider",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'journal' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
