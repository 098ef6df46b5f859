"""``credentials_at`` and ``check_journal``: what a run reads before it starts, opening the
journal once each (no separate look for it first), with the same answers as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from journal._credentials import credentials_at, store_credential
from journal._errors import MissingPasswordError, NotAJournalError, UsageError, WrongPasswordError
from journal._journal import Journal
from journal._program.dev import check_journal


def test_no_journal_holds_no_credentials_and_creates_nothing(journal_path: Path) -> None:
    assert credentials_at(journal_path, None) == {}
    with pytest.raises(UsageError, match="does not exist yet"):
        credentials_at(journal_path, "ci")
    check_journal(journal_path)
    assert not journal_path.exists()


def test_no_password_is_fine_only_while_there_is_no_journal(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_PASSWORD")
    assert credentials_at(journal_path, None) == {}
    with pytest.raises(MissingPasswordError):
        check_journal(journal_path)
    monkeypatch.setenv("JOURNAL_PASSWORD", "correct horse battery staple")
    Journal.open(journal_path).close()
    monkeypatch.delenv("JOURNAL_PASSWORD")
    with pytest.raises(MissingPasswordError):
        credentials_at(journal_path, None)
    with pytest.raises(MissingPasswordError):
        check_journal(journal_path)


def test_stored_credentials_are_read_and_a_wrong_password_refused(journal_path: Path) -> None:
    with Journal.open(journal_path) as jr:
        store_credential(
            jr, "ci", "tok-ci", provider="prisma-postgres", name="PRISMA_SERVICE_TOKEN"
        )
    found = credentials_at(journal_path, "ci")
    assert found["PRISMA_SERVICE_TOKEN"].unencrypted == "tok-ci"
    assert credentials_at(journal_path, None) == {}
    check_journal(journal_path)
    with pytest.raises(WrongPasswordError):
        check_journal(journal_path, password="not the password at all")


def test_something_else_at_the_location_is_refused(journal_path: Path) -> None:
    journal_path.parent.mkdir(parents=True)
    journal_path.write_bytes(b"")
    with pytest.raises(NotAJournalError):
        credentials_at(journal_path, None)
    with pytest.raises(NotAJournalError):
        check_journal(journal_path)
