"""A journal written by an earlier version opens, folds, verifies and reads unchanged.

``tests/data/journal-format1.db`` was made by ``tests/data/make_fixture_journal.py`` (format 1,
December 2026) and is committed: it must keep passing whatever the code's layout becomes.
Its password is ``fixture journal password``. Every check runs on a copy (opening a SQLite
journal may leave WAL files next to it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from journal._crypto import event_ad
from journal._events import EVENT_TYPES, decode
from journal._history import history
from journal._journal import Journal
from journal._projection import load_state, rebuild_and_check

FIXTURE = Path(__file__).parent / "data" / "journal-format1.db"
PASSWORD = "fixture journal password"
HEAD = "1f2049bbde114f72d05fbeb1132cf7c79f6ab094822ee25f8ad6c88ac58f0645"
NET_ID = "th_e409d8131459"


@pytest.fixture
def jr(tmp_path: Path) -> Iterator[Journal]:
    copy = tmp_path / "journal.db"
    shutil.copyfile(FIXTURE, copy)
    with Journal.open(copy, password=PASSWORD, create=False) as opened:
        yield opened


def test_it_verifies_with_its_head_pinned(jr: Journal) -> None:
    report = jr.verify(expect_head=f"37:{HEAD}")
    assert (report.events, report.streams, report.head_hash) == (37, 3, HEAD)
    assert jr.check_chain().head_seq == 37
    assert jr.streams() == ["_profiles/default", "shop/dev", "shop/prod"]


def test_it_folds_to_the_state_it_was_left_in(jr: Journal) -> None:
    state = load_state(jr, "shop/prod")
    assert (state.seq, state.version) == (32, 32)
    assert sorted(state.resources) == ["cache", "net"]
    net, cache = state.resources["net"], state.resources["cache"]
    assert net.props["tag"] == "green" and net.outputs == {
        "id": NET_ID,
        "name": "shop-net-prod",
        "parent": None,
        "size": 1,
        "tag": "green",
    }
    assert (net.created_seq, net.updated_seq) == (4, 13)
    assert cache.outputs is not None and cache.outputs["id"] == "th_c39df2c97999"
    assert cache.props["size"] == 3 and cache.retired == [] and cache.pending is None
    assert state.outputs == {"net_id": NET_ID}
    assert state.last_run is not None and state.last_run["status"] == "succeeded"
    ok, full = rebuild_and_check(jr, "shop/prod")
    assert ok and full.to_json() == state.to_json()
    dev = load_state(jr, "shop/dev")
    assert list(dev.resources) == ["solo"] and dev.resources["solo"].props["tag"] == "t"


def test_state_at_earlier_points(jr: Journal) -> None:
    first = load_state(jr, "shop/prod", upto_seq=9)
    assert sorted(first.resources) == ["cache", "db", "net"]
    db = first.resources["db"]
    assert db.delete is False and db.deps == ["net"] and db.refs == {"parent": "net"}
    assert first.outputs["token"] == {"$secret": "s3cret-token"}
    mid = load_state(jr, "shop/prod", upto_seq=15)  # replaced, the retired one not yet gone
    assert mid.resources["cache"].retired[0]["outputs"]["id"] == "th_026aeb9ba0eb"
    assert mid.resources["db"].delete is True
    failed = load_state(jr, "shop/prod", upto_seq=20)  # the create that will fail, pending
    assert failed.resources["broken"].pending == {
        "op": "create",
        "seq": 20,
        "props": {"name": "shop-broken-prod", "parent": NET_ID, "size": 1, "tag": None},
    }
    assert "broken" not in load_state(jr, "shop/prod", upto_seq=21).resources
    assert "vault" in load_state(jr, "shop/prod", upto_seq=29).resources


def test_history_reads_every_kind_of_event(jr: Journal) -> None:
    prod = history(jr, stage="prod")
    assert [(r.seq, r.action, r.resource) for r in prod if r.resource] == [
        (2, "create.requested", "net"),
        (3, "create.requested", "cache"),
        (4, "created", "net"),
        (5, "created", "cache"),
        (6, "create.requested", "db"),
        (7, "created", "db"),
        (11, "update.requested", "net"),
        (12, "replace.requested", "cache"),
        (13, "updated", "net"),
        (14, "policy.changed", "db"),
        (15, "replaced", "cache"),
        (16, "delete.requested", "cache"),
        (17, "deleted", "cache"),
        (20, "create.requested", "broken"),
        (21, "create.failed", "broken"),
        (24, "create.requested", "vault"),
        (25, "created", "vault"),
        (26, "delete.requested", "db"),
        (27, "deleted", "db"),
        (31, "forgotten", "vault"),
    ]
    by_seq = {r.seq: r for r in prod}
    assert all(r.actor == "fixture" for r in prod)
    assert by_seq[1].detail == "deploy" and by_seq[1].stage == "prod"
    assert by_seq[8].changes["outputs.token"] == [None, "********"]
    assert by_seq[13].changes == {
        "props.tag": ["blue", "green"],
        "outputs.tag": ["blue", "green"],
    }
    assert by_seq[14].changes == {"delete": [False, True]}
    assert by_seq[15].changes["props.size"] == [2, 3]
    assert by_seq[17].detail == "retired object"
    assert by_seq[21].detail == "injected failure for 'shop-broken-prod'"
    assert by_seq[22].detail == (
        "failed: 1 failed, 2 noop; failed: broken: injected failure for 'shop-broken-prod'"
    )
    assert by_seq[27].changes["props.name"] == ["shop-db-prod", None]
    assert by_seq[28].changes == {
        "outputs.cache": ["shop-cache-prod", None],
        "outputs.token": ["********", None],
    }
    assert by_seq[31].detail == "delete protection: the remote object is kept"
    everything = history(jr)
    cred = everything[-1]
    assert (cred.seq, cred.action) == (37, "credential.stored")
    assert cred.resource == "prisma:service_token"
    assert cred.changes == {"service_token": [None, "********"]}
    shown = history(jr, stage="prod", resource="cache")
    assert [r.seq for r in shown] == [3, 5, 12, 15, 16, 17]


def test_stored_bytes_are_the_canonical_encoding_of_the_payload(jr: Journal) -> None:
    """Re-encoding every decoded payload gives the exact plaintext that was sealed: the
    encoding of an event must never change for the same event."""
    codec = jr._codecs[jr._key_id]
    for row in jr.store.read():
        ad = event_ad(jr.journal_id, row.stream, row.seq, row.version, row.key_id, row.prev_hash)
        plain = codec.unseal(row.data, ad)
        assert codec.serialize(jr.open_row(row).payload) == plain, row.seq


def test_typed_events_encode_to_the_same_bytes(jr: Journal) -> None:
    """Each stored payload decodes to its type's dataclass, and that object encodes back to
    the very bytes that were sealed."""
    codec = jr._codecs[jr._key_id]
    seen: set[str] = set()
    for row in jr.store.read():
        ad = event_ad(jr.journal_id, row.stream, row.seq, row.version, row.key_id, row.prev_hash)
        plain = codec.unseal(row.data, ad)
        typed = decode(codec.deserialize(plain))
        assert type(typed) is EVENT_TYPES[typed.NAME].cls
        assert codec.serialize(typed.to_payload()) == plain, row.seq
        seen.add(typed.NAME)
    assert len(seen) == 15
