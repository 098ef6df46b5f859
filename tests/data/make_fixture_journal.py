"""Regenerate ``journal-format1.db``: a journal in the format of December 2026 (format 1).

Not run by the tests: the committed file is the point (journals written before a change must
open, fold and verify after it; ``tests/test_fixture_journal.py``). Re-running writes new
random keys, ids and times, so the test's concrete values would have to be updated too: do it
only to add a new kind of event, and never to paper over a format change.

    JOURNAL_ACTOR=fixture .venv/bin/python tests/data/make_fixture_journal.py

Password: ``fixture journal password`` (Argon2id at the minimum cost).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

PASSWORD = "fixture journal password"
TARGET = HERE / "journal-format1.db"


def main() -> None:
    os.environ["JOURNAL_PASSWORD"] = PASSWORD
    os.environ["JOURNAL_KDF"] = "minimum"
    os.environ.setdefault("JOURNAL_ACTOR", "fixture")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{TARGET}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(f"{TARGET}.locks", ignore_errors=True)

    import memory_provider as mp
    from memory_provider import Thing

    import journal
    from journal._credentials import store_credential
    from journal._journal import Journal

    mp.reset_cloud()

    def run(build, stage: str = "prod") -> None:  # type: ignore[no-untyped-def]
        with journal.app("shop", stage=stage, journal=TARGET) as app:
            build(app)

    def v1(app: journal.App) -> None:
        net = Thing("net", tag="blue")
        Thing("db", parent=net, size=1, delete=False)
        cache = Thing("cache", size=2)
        app.export(net_id=net.id, cache=cache.name, token=journal.Secret("s3cret-token"))

    def v2(app: journal.App) -> None:  # update net in place, replace cache (size), drop db
        net = Thing("net", tag="green")
        cache = Thing("cache", size=3)
        Thing("db", parent=net, size=1, delete=True)  # policy change alone
        app.export(net_id=net.id, cache=cache.name, token=journal.Secret("s3cret-token"))

    def v3(app: journal.App) -> None:  # db no longer declared: deleted; a create fails
        net = Thing("net", tag="green")
        Thing("cache", size=3)
        Thing("broken", parent=net)
        app.export(net_id=net.id)

    def v4(app: journal.App) -> None:  # db and broken gone: db deleted; vault protected
        net = Thing("net", tag="green")
        Thing("cache", size=3)
        Thing("vault", delete=False)
        app.export(net_id=net.id)

    def v5(app: journal.App) -> None:  # vault gone: forgotten, its remote object kept
        net = Thing("net", tag="green")
        Thing("cache", size=3)
        app.export(net_id=net.id)

    run(v1)
    run(v2)
    mp.CLOUD.fail_names = {"shop-broken-prod"}
    with contextlib.suppress(journal.RunError):
        run(v3)
    mp.CLOUD.fail_names = set()
    run(v4)
    run(v5)
    run(lambda app: Thing("solo", tag="t"), stage="dev")
    with Journal.open(TARGET) as jr:
        store_credential(jr, "default", "tok-123", provider="prisma", name="service_token")
    for suffix in ("-wal", "-shm"):
        Path(f"{TARGET}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(f"{TARGET}.locks", ignore_errors=True)


if __name__ == "__main__":
    main()
