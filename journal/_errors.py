"""The project's exception tree: one root, one subclass per kind of failure.

Every error the engine, a store, a provider or the CLI raises on purpose derives from
``JournalError``. Foreign exceptions (sqlite3, psycopg, httpx, nacl) are translated at the
boundary with ``raise Ours(...) from exc``.

    JournalError
    ├── UsageError                 bad input from the user (exit 2)
    │   ├── ValidationError        a resource's props are invalid (names resource and field)
    │   ├── ProgramError           the program cannot be loaded, defines no app, or raised
    │   ├── UnknownSequenceError   rollback/state_at to a sequence that does not exist
    │   └── NoJournalError         no journal at the location (and none may be created)
    ├── PasswordError              (exit 2: the user must fix the environment)
    │   ├── MissingPasswordError   neither JOURNAL_PASSWORD nor ALCHEMY_PASSWORD set
    │   ├── WrongPasswordError     the password does not unwrap the journal's data key
    │   └── WeakPasswordError      a new password that is blank or too short
    ├── StoreError                 the journal store failed (exit 1)
    │   ├── ConflictError          optimistic concurrency: the stream moved on (stale writer)
    │   ├── LockedError            another run holds the stream's lock (names the holder)
    │   ├── IntegrityError         verification failed (names the first bad sequence)
    │   ├── UnsupportedJournalError  written by a newer version of journal, or not a journal
    │   │   ├── NotAJournalError     an empty file, or one that holds something else
    │   │   └── IncompleteJournalError  a copy left unfinished by an interrupted migrate
    │   ├── KeysChangedError       a rekey lost the race to another rekey (nothing changed)
    │   └── StorageError           disk full, read-only, unreachable database, ...
    ├── ProviderError              a provider call failed (names resource and operation)
    │   ├── MissingCredentialsError  no service token (says which variable to set)
    │   ├── TransportError         timeouts, refused connections, dropped responses
    │   └── ApiError               the remote API answered with an error (status, method, path)
    │       ├── AuthenticationError  401 / 403
    │       ├── NotFoundError        404
    │       ├── RateLimitedError     429 (carries retry_after)
    │       ├── ServerError          5xx
    │       └── RequestError         other 4xx (400, 409, 422 ...)
    ├── RunError                   a run finished with failed resources (lists them)
    ├── RunInterrupted             SIGINT/SIGTERM: a resource was not started (exit 130)
    └── LocalServerError           the local Prisma-compatible API or its PostgreSQL failed
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "IncompleteJournalError",
    "IntegrityError",
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
    "ProviderError",
    "RateLimitedError",
    "RequestError",
    "RunError",
    "RunInterrupted",
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
]


class JournalError(Exception):
    """Root of every error this project raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code: int = 1


# --- usage -------------------------------------------------------------------------------


class UsageError(JournalError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ValidationError(UsageError):
    """A resource's props are invalid; raised before any API call."""

    def __init__(self, message: str, *, resource: str | None = None, field: str | None = None):
        self.resource = resource
        self.field = field
        where = ""
        if resource is not None and field is not None:
            where = f"{resource}: field {field!r}: "
        elif resource is not None:
            where = f"{resource}: "
        super().__init__(f"{where}{message}")


class ProgramError(UsageError):
    """The user's program could not be loaded or run."""


class UnknownSequenceError(UsageError):
    """A sequence number that the journal does not hold."""


class NoJournalError(UsageError):
    """There is no journal at the location, and the command does not create one."""


# --- passwords -----------------------------------------------------------------------------


class PasswordError(JournalError):
    exit_code = 2


class MissingPasswordError(PasswordError):
    def __init__(self, message: str | None = None):
        super().__init__(
            message
            or "no password for the journal: set JOURNAL_PASSWORD (or ALCHEMY_PASSWORD) "
            "in the environment"
        )


class WrongPasswordError(PasswordError):
    def __init__(self, message: str | None = None):
        super().__init__(
            message
            or "the password does not open this journal: check JOURNAL_PASSWORD "
            "(or ALCHEMY_PASSWORD); nothing was written"
        )


class WeakPasswordError(PasswordError):
    """A password being chosen (new journal, rekey) is blank or too short."""


# --- store ---------------------------------------------------------------------------------


class StoreError(JournalError):
    """The journal store failed."""


class ConflictError(StoreError):
    """Optimistic concurrency: another writer appended to the stream first."""

    def __init__(self, stream: str, expected: int, actual: int):
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r} moved on: expected version {expected}, found {actual}; "
            "another run wrote to this stage at the same time, run again"
        )


class LockedError(StoreError):
    """Another run holds the stream's lock."""

    def __init__(self, stream: str, holder: dict[str, object] | None):
        self.stream = stream
        self.holder = holder or {}
        who = ", ".join(f"{k}={v}" for k, v in self.holder.items()) or "unknown holder"
        super().__init__(
            f"stage {stream!r} is locked by another run ({who}); wait for it to finish"
        )


class IntegrityError(StoreError):
    """Verification failed; ``seq`` is the first bad sequence number (None: whole journal)."""

    def __init__(self, message: str, *, seq: int | None = None):
        self.seq = seq
        #: the message without its "sequence N: " prefix
        self.detail = message
        super().__init__(message if seq is None else f"sequence {seq}: {message}")


class UnsupportedJournalError(StoreError):
    exit_code = 2


class NotAJournalError(UnsupportedJournalError):
    """The location holds a file that is not a journal: empty (``empty``), not an SQLite
    database, or a database without the journal's tables. Never re-created silently."""

    def __init__(self, message: str, *, empty: bool = False):
        self.empty = empty
        super().__init__(message)


class IncompleteJournalError(UnsupportedJournalError):
    """A journal whose creation by ``journal migrate`` never finished: refused."""

    exit_code = 1


class KeysChangedError(StoreError):
    """A rekey found other key material than it read: another rekey won; nothing changed."""


class StorageError(StoreError):
    """The storage under the journal failed (disk full, read-only, database unreachable)."""


# --- providers -----------------------------------------------------------------------------


class ProviderError(JournalError):
    """A provider call failed."""

    def __init__(self, message: str, *, resource: str | None = None, operation: str | None = None):
        self.resource = resource
        self.operation = operation
        super().__init__(message)


class MissingCredentialsError(ProviderError):
    exit_code = 2


class TransportError(ProviderError):
    """The request did not get an answer (timeout, connection refused, dropped response)."""


class ApiError(ProviderError):
    """The remote API answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        code: str | None = None,
        hint: str | None = None,
        resource: str | None = None,
        operation: str | None = None,
    ):
        self.status = status
        self.method = method
        self.path = path
        self.code = code
        self.hint = hint
        text = f"{method} {path} -> {status}"
        if code:
            text += f" {code}"
        text += f": {message}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text, resource=resource, operation=operation)


class AuthenticationError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class RateLimitedError(ApiError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object):
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ServerError(ApiError):
    pass


class RequestError(ApiError):
    pass


# --- runs ----------------------------------------------------------------------------------


class RunError(JournalError):
    """A run finished with one or more failed resources."""

    def __init__(self, failures: Sequence[tuple[str, BaseException]]):
        self.failures = list(failures)
        lines = [
            f"  {exc}" if str(exc).startswith(f"{rid}:") else f"  {rid}: {exc}"
            for rid, exc in self.failures
        ]
        super().__init__(
            f"{len(self.failures)} resource(s) failed:\n" + "\n".join(lines)
            if lines
            else "the run failed"
        )


class RunInterrupted(JournalError):
    """The run was interrupted (Ctrl-C, SIGTERM) before this resource's provider call was
    started: nothing was sent for it and nothing is pending."""

    exit_code = 130


# --- local API -----------------------------------------------------------------------------


class LocalServerError(JournalError):
    """The local Prisma-compatible API or the PostgreSQL behind it failed to start or serve."""
