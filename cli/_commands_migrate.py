"""``journal migrate --to URL``: copy the journal to another store and verify the copy."""

from __future__ import annotations

import click

from ._commands_common import State, journal_option, pass_state

__all__ = ["COMMANDS", "migrate"]


@click.command()
@journal_option
@click.option(
    "--to",
    "target",
    required=True,
    metavar="PATH|URL",
    help="Where the copy goes: a new SQLite file, or a postgresql:// URL whose database (or "
    "?schema=NAME) holds no journal yet.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for runs in progress (their stages' locks) before giving up.",
)
@pass_state
def migrate(state: State, target: str, lock_timeout: float) -> None:
    """Copy the journal to another store (SQLite <-> PostgreSQL) and verify the copy.

    Copies from --journal (else JOURNAL_URL, else .journal/journal.db) to --to: the metadata,
    every event and every snapshot, byte for byte (nothing is decrypted), while holding every
    stage's lock so no run writes meanwhile. Then opens the copy with the password, compares it
    with the source event by event and verifies its chain. The source is left as it was;
    point JOURNAL_URL (or --journal) at the new location afterwards. A target that already
    holds a journal is refused."""
    from journal._migrate import migrate as run_migration

    out = state.out

    def progress(what: str, done: int, total: int) -> None:
        if out.terminal:
            out.err(f"copied {done}/{total} {what}")

    report = run_migration(state.location(), target, lock_timeout=lock_timeout, progress=progress)
    out.echo(
        f"migrated {report.events} event(s) in {report.streams} stream(s) and "
        f"{report.snapshots} snapshot(s) from {report.source} to {report.target} "
        f"in {report.seconds:.1f} s"
    )
    out.echo(f"verified: head {report.head_seq}:{report.head_hash}")
    out.echo(f"the source is unchanged; use the copy with --journal or JOURNAL_URL={report.target}")


COMMANDS = [migrate]
