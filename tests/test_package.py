"""The package's shape: public names, one-way dependencies, event type registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import journal
from journal import _errors
from journal._events import EVENT_TYPES, make_event, upcast

ROOT = Path(__file__).resolve().parent.parent


def test_public_names_are_pinned() -> None:
    assert sorted(journal.__all__) == sorted(
        [
            "ApiError", "App", "AuthenticationError", "Change", "ConflictError", "Context",
            "Event", "IntegrityError", "Journal", "JournalError", "LocalServerError", "LockedError",
            "MissingCredentialsError", "MissingPasswordError", "NotFoundError", "PasswordError",
            "ProgramError", "Provider", "ProviderError", "RateLimitedError", "RequestError",
            "Resource", "RunError", "RunInterrupted", "RunResult", "RunSettings", "Secret",
            "ServerError", "StorageError", "StoreError", "TransportError", "UnknownSequenceError",
            "UnsupportedJournalError", "UsageError", "ValidationError", "WrongPasswordError",
            "__version__", "app", "env", "register_provider", "IncompleteJournalError",
            "KeysChangedError", "NoJournalError", "NotAJournalError", "WeakPasswordError",
        ]
    )  # fmt: skip
    for name in journal.__all__:
        assert getattr(journal, name) is not None


def test_every_error_class_is_exported_and_derives_from_the_root() -> None:
    classes = [
        v for v in vars(_errors).values() if isinstance(v, type) and issubclass(v, Exception)
    ]
    for cls in classes:
        assert issubclass(cls, journal.JournalError), cls
        assert cls.__name__ in journal.__all__, cls


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("journal", ("journal.resources", "journal.cli")),
        ("resources", ("journal.cli",)),
    ],
)
def test_dependencies_point_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in (ROOT / folder).rglob("*.py"):
        for name in _imports(path):
            if name.startswith(forbidden):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_event_types_have_durable_names_and_round_trip() -> None:
    assert "resource.create.requested" in EVENT_TYPES
    for name, et in EVENT_TYPES.items():
        fields = {f: f"value-{f}" for f in et.required}
        payload = make_event(name, **fields)
        assert payload["type"] == name and payload["v"] == et.version
        assert upcast(payload) == payload


def test_a_newer_event_version_is_refused_clearly() -> None:
    payload = make_event("outputs.recorded", outputs={})
    payload["v"] = 99
    with pytest.raises(journal.UnsupportedJournalError, match="newer journal"):
        upcast(payload)
