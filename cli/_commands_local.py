"""Issue 13: `journal local status | stop`: the embedded PostgreSQL servers a project's
local runs started (they keep running between runs, so the connection strings handed out
keep working)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from journal._errors import UsageError

from ._commands_common import (
    State,
    app_option,
    common_options,
    journal_option,
    pass_state,
    stage_target,
)
from ._commands_state import local

__all__ = ["ServerInfo", "server_info"]


@dataclass(frozen=True)
class ServerInfo:
    data_dir: Path
    pid: int | None
    port: int | None
    running: bool
    size_bytes: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def server_info(data_dir: Path) -> ServerInfo | None:
    """What ``data_dir`` holds (None: no PostgreSQL cluster there). ``postmaster.pid``'s
    first line is the server's pid, its fourth the port."""
    if not (data_dir / "PG_VERSION").exists():
        return None
    pid = port = None
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        pass
    size = 0
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    running = pid is not None and _alive(pid)
    return ServerInfo(data_dir, pid if running else None, port if running else None, running, size)


def _data_dirs(state: State, data_dir: Path | None) -> list[Path]:
    if data_dir is not None:
        return [data_dir.absolute()]
    location = state.location()
    base = Path.cwd() / ".journal" if "://" in location else Path(location).absolute().parent
    return [base / "postgres"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The embedded PostgreSQL's data folder [default: postgres/ next to the journal, "
    "i.e. .journal/postgres].",
)


@local.command("status")
@journal_option
@data_dir_option
@pass_state
def status(state: State, data_dir: Path | None) -> None:
    """List the embedded PostgreSQL of this project: data folder, running or not, port,
    PID and size on disk. (The local API itself runs inside each command: nothing else
    stays behind.)"""
    found = False
    for folder in _data_dirs(state, data_dir):
        info = server_info(folder)
        if info is None:
            continue
        found = True
        if info.running:
            state.out.echo(
                f"{info.data_dir}: running on 127.0.0.1:{info.port} (pid {info.pid}), "
                f"{_size(info.size_bytes)}"
            )
        else:
            state.out.echo(f"{info.data_dir}: stopped, {_size(info.size_bytes)}")
    if not found:
        state.out.echo("no embedded PostgreSQL in this project")


@local.command("stop")
@journal_option
@data_dir_option
@pass_state
def stop(state: State, data_dir: Path | None) -> None:
    """Stop the embedded PostgreSQL of this project (its data is kept; the next local run
    starts it again). Connection strings it handed out stop working until then."""
    from journal.resources.prisma_postgres.local import EmbeddedPostgres

    stopped = 0
    for folder in _data_dirs(state, data_dir):
        info = server_info(folder)
        if info is None or not info.running:
            continue
        EmbeddedPostgres(folder).stop()
        state.out.echo(f"stopped the PostgreSQL of {folder} (pid {info.pid})")
        stopped += 1
    if not stopped:
        state.out.echo("no embedded PostgreSQL of this project is running")


@local.command("reset")
@common_options(yes=True, profile=True)
@app_option
@pass_state
def reset(state: State, app_name: str | None) -> None:
    """Wipe the local data of a stage that lives on the local API.

    Deletes every object of the stage in the local API (its databases and their data too,
    delete protection or not) and records each as deleted: the stage is empty, and the next
    deploy starts afresh. Asks first (--yes for scripts). Other stages are not touched."""
    from journal._credentials import profile_credentials
    from journal._ops import find_app
    from journal._surgery import reset_stage, stage_session

    from ._commands_run import LOCAL_POSTGRES_ENV, _journal_dir, _maybe_local

    location = state.location()
    where = stage_target(state, "local reset", None, location=location, app=app_name)
    stage = where.stage
    if where.target != "local":
        raise UsageError(
            f"stage {stage!r} lives on {where.target}, not on the local API: `journal local "
            f"reset` only wipes local data; use `journal destroy --stage {stage}`"
        )
    with state.open_journal(check="write") as jr:
        app = find_app(jr, stage, app_name)
        state.confirm(f"delete every local object of {app}/{stage}, with its data?", action="reset")
        credentials = profile_credentials(jr, state.profile)
        postgres_url = os.environ.get(LOCAL_POSTGRES_ENV) or None
        with (
            _maybe_local(state, _journal_dir(state), where.start_local, postgres_url),
            stage_session(
                jr, app, stage, "local reset", credentials=credentials, endpoints=state.endpoints
            ) as session,
        ):
            done = reset_stage(session)
    state.out.echo(f"reset {app}/{stage}: {len(done)} local object(s) deleted with their data")


COMMANDS: list[click.Command] = []
