"""Several processes starting the local API at once on one fresh PostgreSQL (issue 10, item 4).

Concurrent first ``journal deploy --local`` runs in a fresh project used to fail with
``duplicate key ... (datname)=(pp_meta)``: two processes saw no metadata database and both ran
``CREATE DATABASE``, and PostgreSQL reports the loser of that race as a unique violation, not
as "already exists". Every process must start, and all of them must agree on one instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest

PG_URL = os.environ.get(
    "JOURNAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROCESSES = 6

STARTER = textwrap.dedent(
    """
    import json, sys, time
    from journal.resources.prisma_postgres.local import LocalPrismaApi

    url, prefix, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, go - time.time()))  # every process starts at the same moment
    api = LocalPrismaApi(postgres_url=url, prefix=prefix)
    try:
        api.start()
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps({"instance": api.instance_id}))
    api.stop()
    """
)


def _purge(prefix: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {prefix}_meta WITH (FORCE)")


@pytest.mark.parametrize("iteration", range(3))
def test_concurrent_first_starts_on_a_fresh_cluster_all_succeed(
    tmp_path: Path, iteration: int
) -> None:
    import time

    script = tmp_path / "start_local_api.py"
    script.write_text(STARTER)
    prefix = "race" + uuid.uuid4().hex[:10]
    go = time.time() + 2.0  # interpreter start-up differs; meet at a common instant
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), PG_URL, prefix, str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, out + err[-2000:]
            answers.append(json.loads(out.strip().splitlines()[-1]))
        instances = {a["instance"] for a in answers}
        assert len(instances) == 1, f"one metadata database, one instance id: {instances}"
    finally:
        _purge(prefix)
