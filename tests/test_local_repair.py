"""The local API never leaves an object half made when its own work was cut short.

A creation is marked as work in progress of the running server; a server that stops (or
dies) part way leaves the mark, and the next server to start removes what was half made:
the records and whatever PostgreSQL objects exist. Work of a server still running is left
alone. Real PostgreSQL (the shared test server), a prefix of its own per test.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from journal.resources.prisma_postgres.local import LocalPrismaApi

SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = {"Authorization": "Bearer repair-token"}


@pytest.fixture
def prefix() -> Iterator[str]:
    name = "rp" + uuid.uuid4().hex[:10]
    yield name
    LocalPrismaApi(postgres_url=SHARED_PG, prefix=name).purge()


def _project(api: LocalPrismaApi) -> str:
    answer = httpx.post(
        f"{api.url}/v1/projects",
        json={"name": "p", "createDatabase": False},
        headers=TOKEN,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def _block_logins(api: LocalPrismaApi) -> tuple[threading.Event, threading.Event]:
    """Make the next database creation stop after CREATE DATABASE, before its login role."""
    assert api._backend is not None and api._backend.admin is not None
    admin = api._backend.admin
    reached, release = threading.Event(), threading.Event()
    real = admin.create_login

    def create_login(*args: Any, **kw: Any) -> None:
        reached.set()
        release.wait(60)
        real(*args, **kw)

    admin.create_login = create_login  # type: ignore[method-assign]
    return reached, release


def _create_in_background(api: LocalPrismaApi, project: str) -> threading.Thread:
    def post() -> None:
        # the server may go away first: then the client never gets an answer
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{api.url}/v1/projects/{project}/databases",
                json={"name": "half"},
                headers=TOKEN,
                timeout=60,
            )

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_a_creation_cut_short_by_a_stop_is_removed_by_the_next_start(prefix: str) -> None:
    first = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
    project = _project(first)
    reached, release = _block_logins(first)
    thread = _create_in_background(first, project)
    assert reached.wait(60)
    half = first.inventory()
    assert [d.state for d in half.databases] == ["creating"]
    assert any(n.startswith(f"{prefix}_d_") for n in half.pg_databases)
    first.stop(drain_s=0.1)  # the work is cut short: its pools are closed under it
    release.set()
    thread.join(30)

    second = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
    try:
        inv = second.inventory()
        assert inv.databases == () and inv.connections == ()
        assert inv.pg_databases == (f"{prefix}_meta",)
        assert inv.pg_roles == ()
        assert [p.id for p in inv.projects] == [project], "the project itself was complete"
        listed = httpx.get(
            f"{second.url}/v1/projects/{project}/databases", headers=TOKEN, timeout=30
        )
        assert listed.json()["data"] == []
    finally:
        second.stop()


def test_work_of_a_server_still_running_is_left_alone(prefix: str) -> None:
    first = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
    try:
        project = _project(first)
        reached, release = _block_logins(first)
        thread = _create_in_background(first, project)
        assert reached.wait(60)
        second = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
        try:
            assert [d.state for d in second.inventory().databases] == ["creating"]
        finally:
            second.stop()
        release.set()
        thread.join(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [d.state for d in first.inventory().databases]
            if states == ["ready"]:
                break
            time.sleep(0.05)
        inv = first.inventory()
        assert [d.state for d in inv.databases] == ["ready"]
        assert len(inv.pg_roles) == 2, "its owner role and its default login"
    finally:
        first.stop()


def test_a_record_left_creating_by_an_older_version_is_repaired(prefix: str) -> None:
    """Versions before the work marks left records 'creating' forever when cut short."""
    from dataclasses import replace

    first = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
    project = _project(first)
    answer = httpx.post(
        f"{first.url}/v1/projects/{project}/databases",
        json={"name": "whole"},
        headers=TOKEN,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert first._backend is not None
    store = first._backend.store
    (db,) = first.inventory().databases
    store.update(replace(db, state="creating"))  # what the old server left behind
    first.stop()

    second = LocalPrismaApi(postgres_url=SHARED_PG, prefix=prefix).start()
    try:
        inv = second.inventory()
        assert inv.databases == () and inv.pg_databases == (f"{prefix}_meta",)
        assert inv.pg_roles == ()
    finally:
        second.stop()


def test_two_servers_dropping_the_same_objects_at_once_both_succeed() -> None:
    """A server repairing what a stopped one is still removing drops the same databases and
    roles at the same moment; PostgreSQL fails the loser with "tuple concurrently deleted"
    (seen in CI), which must not stop the repair: the objects are gone either way."""
    import psycopg
    from psycopg import sql

    from journal.resources.prisma_postgres.local._postgres import PgAdmin

    name = f"rc{uuid.uuid4().hex[:10]}"
    admin = PgAdmin(SHARED_PG, pool_size=8)
    try:
        for round_ in range(15):
            db, role = f"{name}_{round_}", f"{name}_o{round_}"
            with psycopg.connect(SHARED_PG, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            start = threading.Barrier(4)
            errors: list[BaseException] = []

            def drop(
                db: str = db,
                role: str = role,
                start: threading.Barrier = start,
                errors: list[BaseException] = errors,
            ) -> None:
                start.wait()
                try:
                    admin.drop_database(db, role, (), direct=True)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=drop) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
            with psycopg.connect(SHARED_PG, autocommit=True) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM pg_database WHERE datname = %s", (db,)
                ).fetchone()
                roles = conn.execute(
                    "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
            assert left == (0,) and roles == (0,)
    finally:
        admin.close()
