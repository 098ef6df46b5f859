"""Typed events: a class per durable type, the tables that dispatch on them, and adding one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass
from typing import Any

import pytest

from journal import _events
from journal._errors import UnsupportedJournalError
from journal._events import (
    EVENT_TYPES,
    Created,
    CreateFailed,
    DomainEvent,
    Failed,
    decode,
    event_type,
    make_event,
)
from journal._history import records
from journal._projection import StreamState, apply


@dataclass(frozen=True)
class Ev:
    seq: int
    stream: str
    version: int
    payload: dict[str, Any]


@pytest.fixture
def scratch_types() -> Iterator[list[str]]:
    """Event types a test registers are removed again afterwards."""
    added: list[str] = []
    yield added
    for name in added:
        EVENT_TYPES.pop(name, None)
        _events._CLASSES.pop(name, None)


def test_every_type_has_its_class_and_round_trips() -> None:
    assert len(EVENT_TYPES) == 24  # 21, then stage.bound, resource.drifted, resource.resolved
    for name, et in EVENT_TYPES.items():
        assert et.cls is not None and name == et.cls.NAME
        payload = make_event(name, **{f: f"<{f}>" for f in et.required}, run="r1", extra_x=[1])
        typed = decode(payload)
        assert type(typed) is et.cls
        assert typed.to_payload() == payload
        assert typed.get("run") == "r1" and typed.has("extra_x") and not typed.has("nothing")


def test_a_typed_event_is_frozen_and_emits_what_make_event_emits() -> None:
    fields: dict[str, Any] = {
        "resource": "db",
        "resource_type": "memory.Thing",
        "props": {"size": 1},
        "outputs": {"id": "x"},
        "deps": [],
    }
    created = Created(**fields, extra={"delete": False})
    assert created.to_payload() == make_event("resource.created", **fields, delete=False)
    with pytest.raises(FrozenInstanceError):
        created.props = {}  # type: ignore[misc]


def test_a_payload_missing_a_required_field_is_refused_clearly() -> None:
    with pytest.raises(UnsupportedJournalError, match="lacks its field 'error'"):
        decode({"type": "resource.create.failed", "v": 1, "resource": "a", "resource_type": "t"})


def test_adding_a_type_is_one_registration(scratch_types: list[str]) -> None:
    scratch_types.append("test.noted")
    _events._register("test.noted", "something noted", ("note",))
    payload = make_event("test.noted", note="hello")
    state = StreamState("a/s")
    apply(state, 1, 1, payload)  # no fold of its own: the state only advances
    assert (state.seq, state.version, state.resources) == (1, 1, {})
    [rec] = records([Ev(1, "a/s", 1, payload)])
    assert (rec.action, rec.changes, rec.detail) == ("test.noted", {}, None)
    assert decode(payload).to_payload() == payload

    with pytest.raises(ValueError, match="registered twice"):
        _events._register("test.noted", "again", ("note",))


def test_a_new_failure_type_shows_its_error_like_the_others(scratch_types: list[str]) -> None:
    scratch_types.append("resource.refresh.failed")

    @event_type("resource.refresh.failed", "refresh failed")
    @dataclass(frozen=True, kw_only=True)
    class RefreshFailed(Failed):
        pass

    payload = RefreshFailed(resource="db", resource_type="t", error="boom").to_payload()
    [rec] = records([Ev(1, "a/s", 1, payload)])
    assert (rec.action, rec.resource, rec.detail) == ("refresh.failed", "db", "boom")
    assert isinstance(decode(payload), Failed) and not isinstance(decode(payload), CreateFailed)


def test_a_registration_must_be_a_frozen_dataclass_with_its_upcasters(
    scratch_types: list[str],
) -> None:
    scratch_types.extend(["test.loose", "test.v2"])

    class Loose(DomainEvent):
        pass

    with pytest.raises(ValueError, match="frozen dataclass"):
        event_type("test.loose", "loose")(Loose)
    with pytest.raises(ValueError, match="lacks upcasters from"):
        _events._register("test.v2", "v2", ("a",), version=2)


def test_history_still_shows_an_event_type_it_does_not_know() -> None:
    payload = {"type": "from.the.future", "v": 1, "run": "r", "time": "2026-01-01T00:00:00+00:00"}
    [rec] = records([Ev(7, "a/s", 1, payload)])
    assert (rec.seq, rec.action, rec.changes, rec.detail) == (7, "from.the.future", {}, None)
