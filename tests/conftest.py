"""Shared fixtures: every test gets its own journal file, password and fast key derivation."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _journal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("JOURNAL_PASSWORD", PASSWORD)
    monkeypatch.delenv("ALCHEMY_PASSWORD", raising=False)
    monkeypatch.delenv("JOURNAL_URL", raising=False)
    monkeypatch.delenv("JOURNAL_STAGE", raising=False)
    monkeypatch.delenv("PRISMA_SERVICE_TOKEN", raising=False)
    monkeypatch.delenv("PRISMA_API_URL", raising=False)
    monkeypatch.setenv("JOURNAL_KDF", "minimum")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    yield


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / ".journal" / "journal.db"
