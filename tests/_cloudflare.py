"""Helpers for the Cloudflare tests: the real toolchain from npm, and PostgreSQL logins.

``tools()`` is the pinned workerd and esbuild, installed once per machine into the npm cache
(``~/.cache/journal/npm``, or ``$JOURNAL_CACHE_DIR``) and shared by every test and worker; a
test is skipped with the reason when Node.js or npm is missing. ``pg_login()`` makes a role
with a password (quotes and a backslash in it) and a database of its own on the machine's
PostgreSQL, and drops both afterwards.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql

from journal.resources.cloudflare._bundle import Bundle, bundle_worker
from journal.resources.cloudflare._toolchain import Toolchain, toolchain

PG_URL: Final = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
EXAMPLE: Final = Path(__file__).resolve().parent.parent / "examples" / "hyperdrive-worker"


def tools() -> Toolchain:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed to install workerd and esbuild (not on PATH)")
    return toolchain()


def example_project(tmp_path: Path) -> Path:
    """A copy of examples/hyperdrive-worker (its package.json, package-lock.json, src/)."""
    dest = tmp_path / "hyperdrive-worker"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("node_modules", ".journal"))
    return dest


def bundle_example(project: Path, out: Path) -> Bundle:
    return bundle_worker(project / "src" / "worker.ts", out, tools=tools())


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    database: str
    host: str = "127.0.0.1"
    port: int = 5432

    def count_pg_tables(self) -> int:
        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
        ) as conn:
            row = conn.execute("SELECT count(*) FROM pg_tables").fetchone()
            assert row is not None
            return int(row[0])


@contextmanager
def pg_login() -> Iterator[Login]:
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_URL}: {exc}")
    name = f"cft_{uuid.uuid4().hex[:12]}"
    password = f"pw'\"\\{uuid.uuid4().hex}"
    with admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
        try:
            yield Login(name, password, name)
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (bounded wait: a killed process takes a moment to go)."""
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def tree_bytes(folder: Path) -> bytes:
    """Every file's bytes below ``folder`` (to look for a secret in it)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())
