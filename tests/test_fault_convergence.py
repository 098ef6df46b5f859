"""A deploy cycle converges in a few runs on a very sick API (issue 10, item 9).

Under 30% 5xx + 20% lost answers + 20% 429, one deploy cycle of 50 databases had not
converged after 10 runs. Three mechanisms held it back: recovery was all-or-nothing (one
interrupted connection whose lookup failed stopped every later run before it did anything
else), rotating a connection's credentials (how a lost connection create is recovered) was
never retried although repeating it is harmless, a POST answered 503 (the server did not act)
was not retried, a 500/502 answer to a create was taken as "nothing happened" without looking,
and five retries at a 70% failure rate leave 12% of reads failed. Now: recovery is per
resource, rotate is retried like a read, a POST is retried on 503, a create answered 500/502 is
tried again once a lookup shows it made nothing (else it is looked up like a lost answer and
left pending), and reads get eight retries.

The runs use one provider call at a time (JOURNAL_CONCURRENCY=1), so the sequence of requests,
and with the seeded fault injector the fault each one meets, is the same on every run of the
test: the counts below are not luck. Between phases the remote side is counted: exactly the
objects the journal records, no duplicate names, and the same databases and roles in
PostgreSQL.
"""

from __future__ import annotations

import collections
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import journal
from journal._journal import Journal
from journal._ops import destroy_stage
from journal._program.app import RunSettings, run_settings
from journal._projection import load_state
from journal.resources.prisma_postgres import Connection, Database, Project
from journal.resources.prisma_postgres import _client as client_module
from journal.resources.prisma_postgres.local import Faults, LocalPrismaApi
from journal.resources.prisma_postgres.local._backend import (
    database_name,
    login_role,
    meta_database,
    owner_role,
)

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
APP, STAGE = "sick", "test"
N = 50
MAX_RUNS = 10  # what the issue saw fail; each phase must converge well within it
SICK = Faults(rate_5xx=0.3, rate_lost=0.2, rate_429=0.2, seed=5)


class _QuickBackoff(client_module.PrismaClient):
    """The real client with short backoff sleeps: the faults, retries and their order are
    unchanged, only the test's wall-clock time shrinks."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(backoff_s=0.002, max_backoff_s=0.01, **kw)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPrismaApi]:
    server = LocalPrismaApi(postgres_url=PG_URL, prefix="sick" + uuid.uuid4().hex[:10]).start()
    monkeypatch.setenv("PRISMA_API_URL", server.url)
    monkeypatch.setenv("PRISMA_SERVICE_TOKEN", "token-sick")
    monkeypatch.setenv("JOURNAL_CONCURRENCY", "1")
    monkeypatch.setattr(client_module, "PrismaClient", _QuickBackoff)
    try:
        yield server
    finally:
        server.set_faults(Faults())
        server.purge()


def _deploy(location: str, gen: int) -> bool:
    settings = RunSettings(stage=STAGE, location=location)
    try:
        with run_settings(settings), journal.app(APP):
            project = Project("project", delete=True)
            for i in range(N):
                db = Database(f"db{i}", project=project, name=f"db{i}-g{gen}", delete=True)
                Connection(f"con{i}", database=db)
    except journal.JournalError:
        return False
    return settings.results[0].ok


def _destroy(location: str) -> bool:
    with Journal.open(location) as jr:
        return destroy_stage(jr, APP, STAGE).ok


def _check(api: LocalPrismaApi, location: str, want: int) -> None:
    with Journal.open(location, create=False) as jr:
        jr.verify()
        state = load_state(jr, f"{APP}/{STAGE}")
    assert [r.id for r in state.resources.values() if r.pending is not None] == []
    assert len(state.resources) == want
    recorded = {r.outputs["id"] for r in state.resources.values() if r.outputs is not None}
    inv = api.inventory()
    names = collections.Counter(
        [p.name for p in inv.projects]
        + [f"{d.project_id}/{d.name}" for d in inv.databases]
        + [f"{c.database_id}/{c.name}" for c in inv.connections]
    )
    assert [n for n, k in names.items() if k > 1] == [], "duplicates"
    ours = [c for c in inv.connections if c.name != "default"]
    remote = {p.id for p in inv.projects} | {d.id for d in inv.databases} | {c.id for c in ours}
    assert remote == recorded, "the API holds exactly what the journal records"
    prefix = api.prefix
    assert set(inv.pg_databases) == {meta_database(prefix)} | {
        database_name(prefix, d.id) for d in inv.databases
    }
    assert set(inv.pg_roles) == {owner_role(prefix, d.id) for d in inv.databases} | {
        login_role(prefix, c.id) for c in inv.connections
    }


def test_a_deploy_cycle_of_50_databases_converges_on_a_sick_api(
    api: LocalPrismaApi, tmp_path: Path
) -> None:
    location = str(tmp_path / ".journal" / "journal.db")
    runs: dict[str, int] = {}
    for phase, gen in (("create", 0), ("update", 1), ("destroy", -1)):
        api.set_faults(SICK)
        runs[phase] = 0
        while not (_destroy(location) if gen < 0 else _deploy(location, gen)):
            runs[phase] += 1
            if runs[phase] == MAX_RUNS:
                pytest.fail(f"{phase} did not converge in {MAX_RUNS} runs")
        runs[phase] += 1
        api.set_faults(Faults())
        _check(api, location, want=0 if gen < 0 else 2 * N + 1)
    print(f"runs needed per phase: {runs}")
    assert max(runs.values()) <= 4, runs  # 3, 2 and 2 runs (the issue saw > 10)
