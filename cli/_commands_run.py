"""Commands that change infrastructure: init, deploy, plan, dev, destroy, rollback."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journal._codec import mask
from journal._errors import JournalError, RunError, RunInterrupted, UnknownSequenceError
from journal._program.scaffold import TEMPLATES

from ._commands_common import (
    State,
    app_option,
    bind_stages,
    common_options,
    concurrency_option,
    dev_stage,
    new_option,
    pass_state,
    program_argument,
    stage_target,
)
from ._output import (
    AlreadyShown,
    change_lines,
    counts_text,
    debug,
    exit_code,
    outputs_lines,
    run_document,
    summary_text,
)

if TYPE_CHECKING:
    from journal._engine import RunResult
    from journal._program.app import RunSettings
    from journal._program.dev import DevRun
    from journal._program.runner import ProgramRun
    from journal._provider import Endpoint
    from journal._refresh import RefreshReport

LOCAL_POSTGRES_ENV = "JOURNAL_LOCAL_POSTGRES_URL"
#: a local API as a plan names it: loopback, never contacted (a plan makes no call)
PLAN_LOCAL_URL = "http://127.0.0.1:9"

postgres_url_option = click.option(
    "--postgres-url",
    metavar="URL",
    envvar=LOCAL_POSTGRES_ENV,
    default=None,
    help="With the local API: use this PostgreSQL server (a superuser URL) instead of the "
    f"embedded one in .journal/postgres [env: {LOCAL_POSTGRES_ENV}].",
)


# --- init ----------------------------------------------------------------------------------


@click.command()
@click.argument(
    "directory",
    required=False,
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--template",
    type=click.Choice(list(TEMPLATES)),
    default="minimal",
    show_default=True,
    help="; ".join(f"{t.name}: {t.summary}" for t in TEMPLATES.values()) + ".",
)
@click.option("--name", metavar="APP", default=None, help="The app name [default: the folder's].")
@pass_state
def init(state: State, directory: Path, template: str, name: str | None) -> None:
    """Create a project in DIRECTORY (default: the current folder).

    Writes alchemy.run.py, .gitignore (ignores .journal/ and .env) and README.md; never
    overwrites a file."""
    from journal._program.scaffold import scaffold

    written = scaffold(directory, template, app=name)
    for path in written:
        state.out.echo(f"wrote {path}")
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    state.out.echo(f"next: {where}journal dev   (or: journal deploy)")


# --- running a program ---------------------------------------------------------------------


@contextmanager
def local_api(
    state: State, journal_dir: Path, postgres_url: str | None
) -> Iterator[dict[str, Endpoint]]:
    """Start the local emulator of every installed provider that has one and point runs at
    them (``state.endpoints``, which runs pass to providers through their Context) until the
    block ends. Their PostgreSQL is the server at ``postgres_url``, else an embedded one
    with its data in ``journal_dir/postgres`` (kept running afterwards, so the connection
    strings it handed out keep working)."""
    from journal._provider import LocalOptions, services

    options = LocalOptions(journal_dir=journal_dir, postgres_url=postgres_url)
    where = (
        "the PostgreSQL server given"
        if postgres_url
        else f"embedded PostgreSQL in {options.postgres_data}"
    )
    endpoints: dict[str, Endpoint] = {}
    with contextlib.ExitStack() as stack:
        for service in services():
            if service.local is None:
                continue
            state.out.err(f"starting the local {service.title} ({where}) ...")
            stack.enter_context(_local_log(state, service.local_logger))
            endpoint = stack.enter_context(service.local(options))
            state.out.err(f"local {service.title} at {endpoint.url}")
            endpoints[service.name] = endpoint
        with _pointed_at(state, endpoints):
            yield endpoints


@contextmanager
def _pointed_at(state: State, endpoints: dict[str, Endpoint]) -> Iterator[None]:
    """Runs made in the block send each provider's calls to its endpoint here."""
    saved, state.endpoints = state.endpoints, endpoints
    try:
        yield
    finally:
        state.endpoints = saved


class _OneLine(logging.Handler):
    """The local API's warnings and errors as one line each on stderr (the traceback only
    with JOURNAL_DEBUG=1): terminal output is for people."""

    def __init__(self, state: State) -> None:
        super().__init__(logging.WARNING)
        self.state = state
        # records come from the server's threads, where the command's context is not current
        self.verbose = debug()

    def emit(self, record: logging.LogRecord) -> None:
        text = f"local API: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
            if self.verbose:
                text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
        self.state.out.warn(text)


@contextmanager
def _local_log(state: State, name: str | None) -> Iterator[None]:
    if name is None:
        yield
        return
    logger = logging.getLogger(name)
    handler = _OneLine(state)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextmanager
def _maybe_local(
    state: State, journal_dir: Path, local: bool, postgres_url: str | None
) -> Iterator[dict[str, Endpoint]]:
    if not local:
        yield {}
        return
    with local_api(state, journal_dir, postgres_url) as endpoints:
        yield endpoints


@contextmanager
def interruptible(state: State, again: str) -> Iterator[list[RunResult]]:
    """Run a command under the interruption handlers (``journal._interrupt``): the first
    SIGINT/SIGTERM stops launching calls and lets those in flight finish, the second
    abandons them. Everything inside (the engine, then the local API) has closed when the
    block ends; then one line says what is left and what to type (``again``), exit 130.

    The caller appends the results of its runs to the list it gets."""
    from journal._interrupt import reset

    results: list[RunResult] = []
    intr = reset()
    with intr.installed(on_message=state.out.err):
        try:
            yield results
        except (KeyboardInterrupt, RunInterrupted, RunError, AlreadyShown):
            # what the interruption itself caused; any other error (a full disk while the
            # run records its end ...) is the user's to see, interrupted or not
            if not intr.requested:
                raise
    if not intr.requested:
        return
    state.out.err(interrupted_line(results, again))
    if intr.abandoned:
        # calls abandoned in flight still block their threads: leave without joining them
        # (the journal and the local API are closed; their intents are recorded as pending)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise click.exceptions.Exit(130)


def interrupted_line(results: list[RunResult], again: str) -> str:
    """``interrupted: ...`` with what is left pending and what to type."""
    not_started = sum(len(r.not_started) for r in results)
    pending = sum(len(r.pending) for r in results)
    parts = []
    if not_started:
        parts.append(f"{not_started} resource(s) not started")
    if pending:
        parts.append(
            f"{pending} operation(s) left pending (their outcome is unknown; "
            "the next run resolves them first)"
        )
    if not results:
        parts.append("no run had begun")
    what = ", ".join(parts) if parts else "nothing left pending"
    return f"interrupted: {what}; to finish, run `{again}`"


def _again(
    command: str,
    state: State,
    local: bool,
    *args: str,
    program: Path | None = None,
    app: str | None = None,
) -> str:
    """The command line that finishes an interrupted run: the same program, journal, stage,
    app and API as this one (what was given explicitly; the defaults stay defaults)."""
    import shlex

    words = ["journal", command, *args]
    if program is not None:
        words.append(str(program))
    if state.journal:
        words += ["--journal", state.journal]
    if state.stage:
        words += ["--stage", state.stage]
    if app:
        words += ["--app", app]
    if local:
        words.append("--local")
    return shlex.join(words)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM does what Ctrl-C does (for ``dev``, whose loop handles KeyboardInterrupt)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_journal(state: State, program: Path) -> None:
    """A wrong password (or a journal this version cannot read) fails before the local API
    or its PostgreSQL is started."""
    from journal._program.dev import check_journal

    check_journal(state.program_location(program))


@contextmanager
def _local_endpoint(state: State) -> Iterator[None]:
    """What a ``plan --local`` needs of the local APIs: only to be *named* as the endpoints
    (plan makes no call), so nothing is started. The URL is loopback and never contacted."""
    from journal._provider import Endpoint, services

    endpoints = {s.name: Endpoint(PLAN_LOCAL_URL) for s in services() if s.local is not None}
    with _pointed_at(state, endpoints):
        yield


def _project_dir(program: Path) -> Path:
    """The program's .journal folder (the local APIs keep their data under it)."""
    return program.parent / ".journal"


def _settings(state: State, program: Path, command: str, concurrency: int | None) -> RunSettings:
    from journal._program.app import RunSettings

    return RunSettings(
        command=command,
        stage=state.explicit_stage(),
        location=state.program_location(program),
        reporter=state.out.reporter() if command != "plan" else None,
        concurrency=concurrency,
        endpoints=dict(state.endpoints),
    )


def _print_result(state: State, result: RunResult) -> None:
    out = state.out
    if result.status == "planned":
        out.echo(f"{result.stream}:")
        _print_plan(state, result, noop=True)
        if result.outputs:
            out.echo("outputs:")
            for line in outputs_lines(result.outputs):
                out.echo(line)
        out.echo(f"plan: {counts_text(result.counts, plan=True)}")
        return
    color = "green" if result.ok else "red"
    out.echo(out.style(summary_text(result), fg=color, bold=True))
    if result.ok and result.outputs:
        out.echo("outputs:")
        for line in outputs_lines(result.outputs):
            out.echo(line)


def _run(
    state: State,
    program: Path,
    command: str,
    concurrency: int | None,
    results: list[RunResult] | None = None,
    *,
    as_json: bool = False,
) -> ProgramRun:
    """Run the program once and print its results (``as_json``: nothing; the caller prints
    the document). A failure whose message a progress or plan line already showed is raised
    as :class:`AlreadyShown`, so it is not printed twice."""
    from journal._program.dev import run_once

    settings = _settings(state, program, command, concurrency)
    try:
        return run_once(program, settings, profile=state.profile)
    except JournalError as exc:
        if not as_json and _shown(exc, settings.results):
            raise AlreadyShown(exc, exc.exit_code) from exc
        raise
    finally:
        if not as_json:
            for result in settings.results:
                _print_result(state, result)
        if results is not None:
            results.extend(settings.results)


# --- issue 13: drift (journal._refresh) ------------------------------------------------------

refresh_option = click.option(
    "--refresh",
    is_flag=True,
    default=False,
    help="First read every recorded object from its API and record what drifted (as "
    "`journal refresh`): an object found gone is planned for re-creation.",
)


def _print_drift(state: State, report: RefreshReport) -> None:
    from ._output import value_text

    out = state.out
    for drift in report.drifts:
        if drift.kind == "gone":
            out.echo(f"  ! {drift.resource} ({drift.type}): gone (the next deploy creates it)")
            continue
        out.echo(f"  ~ {drift.resource} ({drift.type}): changed outside journal")
        for name, (old, new) in sorted(drift.changes.items()):
            out.echo(f"      {name}: {value_text(mask(old))} -> {value_text(mask(new))}")
    for rid, why in report.skipped:
        out.warn(f"{rid}: not checked: {why}")
    gone = sum(1 for d in report.drifts if d.kind == "gone")
    out.echo(
        f"refresh {report.stream}: {report.checked} checked, {gone} gone, "
        f"{len(report.drifts) - gone} changed, {len(report.skipped)} not checked"
    )


def _refresh_stage(
    state: State, location: str, app_name: str | None = None, *, required: bool = False
) -> None:
    """Refresh the chosen stage of the journal at ``location`` (the API is set up by the
    caller); a stage not in the journal yet has nothing to read (an error if ``required``)."""
    from journal._credentials import profile_credentials
    from journal._journal import Journal
    from journal._ops import find_app, stage_streams
    from journal._program.dev import journal_exists
    from journal._refresh import refresh_stage

    stage = state.stage_name()
    if not journal_exists(location) and not required:
        return
    with Journal.open(location, create=False) as jr:
        if not required and not any(s == stage for _, s in stage_streams(jr)):
            return
        app = find_app(jr, stage, app_name)
        report = refresh_stage(
            jr,
            app,
            stage,
            credentials=profile_credentials(jr, state.profile),
            endpoints=state.endpoints,
        )
    _print_drift(state, report)


def _refresh_first(state: State, location: str) -> None:
    """``--refresh`` on plan and deploy (a stage not in the journal has nothing to read)."""
    _refresh_stage(state, location)


@click.command()
@common_options(profile=True)
@app_option
@click.option(
    "--local/--no-local",
    default=None,
    help="Not needed: the stage's objects are read where the stage lives.",
)
@postgres_url_option
@pass_state
def refresh(
    state: State, app_name: str | None, local: bool | None, postgres_url: str | None
) -> None:
    """Read every recorded object from its API and record what drifted.

    Works from the journal alone. An object the API no longer has is recorded as gone (the
    next deploy creates it again); one whose name, region or other outputs changed is
    recorded as it is now (the next deploy puts the program's props back). Objects with a
    pending operation are left to the next run. Changes nothing remotely."""
    location = state.location()
    where = stage_target(state, "refresh", local, location=location, app=app_name)
    with _maybe_local(state, _journal_dir(state), where.start_local, postgres_url):
        _refresh_stage(state, location, app_name, required=True)


def _shown(exc: JournalError, results: list[RunResult]) -> bool:
    """Every message of ``exc`` is a resource's failure the output showed (progress lines
    for a deploy, plan lines for a plan)."""
    shown = {err for r in results for rid, err in r.failures if rid != "(program)"}
    if isinstance(exc, RunError):
        return bool(exc.failures) and all(str(e) in shown for _rid, e in exc.failures)
    return str(exc) in shown


@contextmanager
def _json_document(state: State, command: str, results: list[RunResult]) -> Iterator[None]:
    """``--json``: progress to stderr, and one document on stdout however the block ends
    (the error, if any, also goes to stderr as usual)."""
    import json

    state.out.progress_to_stderr = True
    error: BaseException | None = None
    code = 0
    try:
        yield
    except JournalError as exc:
        error, code = exc, exit_code(exc.exit_code)
        raise
    except click.exceptions.Exit as exc:
        code = exc.exit_code
        raise
    finally:
        document = run_document(command, results, error=error, exit_code=code)
        state.out.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _pending_exit(results: list[RunResult]) -> None:
    """``--detailed-exitcode``: exit 2 when the plan has something to do."""
    if any(c.action != "noop" for r in results for c in r.changes):
        raise click.exceptions.Exit(2)


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    default=False,
    help="Print one JSON document on stdout (docs/schemas/run.schema.json): status, counts, "
    "each resource's change with its field diff, secrets masked; progress goes to stderr.",
)

env_file_option = click.option(
    "--env-file",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Load variables for the program from this file [default: .env next to the program, "
    "if there is one]. Variables already set in the environment win; values are never shown.",
)


@contextmanager
def _program_env(program: Path, env_file: Path | None) -> Iterator[None]:
    from journal._program.env import program_environment

    with program_environment(program, env_file):
        yield


def _program(program: Path | None) -> Path:
    from journal._program.runner import resolve_program

    return resolve_program(program)


@click.command()
@program_argument
@common_options(yes=True, profile=True)
@click.option(
    "--local/--no-local",
    default=None,
    help="A stage's first deploy: to the providers' local APIs (started for the run), "
    "or (--no-local, the default) the real ones. The stage stays there: later runs go there "
    "without the flag.",
)
@postgres_url_option
@concurrency_option
@new_option
@refresh_option
@json_option
@env_file_option
@pass_state
def deploy(
    state: State,
    program: Path | None,
    local: bool | None,
    postgres_url: str | None,
    concurrency: int | None,
    refresh: bool,
    as_json: bool,
    env_file: Path | None,
) -> None:
    """Run the program and reconcile its resources.

    PROGRAM is a file or a folder holding alchemy.run.py [default: ./alchemy.run.py].
    Creates what is new, updates or replaces what changed, and deletes the stage's resources
    the program no longer declares (only if every resource succeeded). Exits 1 if a resource
    failed. Deploy never asks for confirmation; --yes is accepted for scripts."""
    results: list[RunResult] = []
    with _json_document(state, "deploy", results) if as_json else _nothing():
        state.warm_key(program)
        path = _program(program)
        location = state.program_location(path)
        state.prepare_new_journal(location)
        _check_journal(state, path)
        where = stage_target(state, "deploy", local, location=location)
        fresh_local = where.start_local and where.binding is None
        again = _again("deploy", state, fresh_local, program=program)
        with (
            interruptible(state, again) as run_results,
            _program_env(path, env_file),
            _maybe_local(state, _project_dir(path), where.start_local, postgres_url),
        ):
            if refresh:
                _refresh_first(state, location)
            try:
                _run(state, path, "deploy", concurrency, run_results, as_json=as_json)
            finally:
                results.extend(run_results)
                bind_stages(location, [r.stream for r in run_results], where)


@click.command()
@program_argument
@common_options(profile=True)
@click.option(
    "--local/--no-local",
    default=None,
    help="For a stage not deployed yet: plan for the local APIs (which are not started: a plan "
    "makes no call) or the real ones [default: where the stage lives, else the real API].",
)
@postgres_url_option
@refresh_option
@json_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    default=False,
    help="Exit 0 when there is nothing to do, 2 when changes are pending, 1 on any error "
    "(as Terraform's -detailed-exitcode).",
)
@env_file_option
@pass_state
def plan(
    state: State,
    program: Path | None,
    local: bool | None,
    postgres_url: str | None,
    refresh: bool,
    as_json: bool,
    detailed_exitcode: bool,
    env_file: Path | None,
) -> None:
    """Show what a deploy would do, changing nothing.

    Lists each resource as create (+), update (~), replace (-/+), delete (-) or unchanged,
    with a field-level diff; secrets are masked. Nothing is called and nothing is written.
    With --local nothing is started either: a plan makes no call to the API."""
    results: list[RunResult] = []
    with _json_document(state, "plan", results) if as_json else _nothing():
        state.warm_key(program)
        path = _program(program)
        location = state.program_location(path)
        state.warn_if_damaged(location)
        where = stage_target(state, "plan", local, location=location)
        if refresh:
            # reading the remote objects needs the APIs: the local ones are started for it
            with _maybe_local(state, _project_dir(path), where.start_local, postgres_url):
                _refresh_first(state, location)
        with (
            _program_env(path, env_file),
            _local_endpoint(state) if where.start_local else _nothing(),
        ):
            _run(state, path, "plan", None, results, as_json=as_json)
    if detailed_exitcode:
        _pending_exit(results)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@click.command()
@program_argument
@common_options(profile=True)
@click.option(
    "--local/--no-local",
    default=None,
    help="A stage's first run: the providers' local APIs (the default) or the real ones "
    "(--no-local); later runs go where the stage lives. The stage is dev-<user> unless "
    "--stage or JOURNAL_STAGE says otherwise.",
)
@postgres_url_option
@concurrency_option
@click.option("--once", is_flag=True, default=False, help="Deploy once and exit (no watching).")
@new_option
@env_file_option
@pass_state
def dev(
    state: State,
    program: Path | None,
    local: bool | None,
    postgres_url: str | None,
    concurrency: int | None,
    once: bool,
    env_file: Path | None,
) -> None:
    """Deploy, then re-deploy on every save.

    Watches PROGRAM and the local modules it imports; each change re-runs it.
    Uses the local API unless --no-local. A program that fails (a syntax error, an
    exception) is reported and deletes nothing; the next good save converges. Ctrl-C lets a
    run in flight finish, then stops."""
    state.warm_key(program)
    from journal._program.dev import DevLoop

    path = _program(program)
    location = state.program_location(path)
    state.prepare_new_journal(location)
    out = state.out
    if state.explicit_stage() is None:
        state.stage = dev_stage()

    def make_settings() -> RunSettings:
        return _settings(state, path, "deploy", concurrency)

    bound: list[str] = []

    def on_run(run: DevRun) -> None:
        if not bound and run.results:  # the first run that reached the stage binds it
            bind_stages(location, [r.stream for r in run.results], where)
            bound.extend(r.stream for r in run.results)
        for result in run.results:
            _print_result(state, result)
        if run.error is not None:
            out.err(out.style("error: ", fg="red", bold=True) + str(run.error))
            out.err("nothing was deleted; fix the program and save to run again")
        origin = "from save" if run.saved_at is not None else "first run"
        verb = "reconciled" if run.ok else "failed"
        out.echo(f"{verb} in {run.since_save_ms:.0f} ms ({origin})")

    from journal._interrupt import reset

    reset()
    _check_journal(state, path)
    where = stage_target(state, "dev", local, location=location, default_local=True)
    local = where.start_local
    loop = DevLoop(
        path,
        make_settings,
        profile=state.profile,
        on_run=on_run,
        on_message=out.reporter().message,
        max_runs=1 if once else None,
    )
    abandoned = False
    with (
        _sigterm_as_interrupt(),
        _program_env(path, env_file),
        _maybe_local(state, _project_dir(path), local, postgres_url),
    ):
        try:
            runs = loop.run()
        except KeyboardInterrupt:
            abandoned = True
    if abandoned:
        # the abandoned run recorded its end and the local API is stopped; its calls in
        # flight still block their threads: leave without joining them
        current = loop.current.results if loop.current is not None else []
        out.err(
            interrupted_line(
                current,
                _again("dev", state, False, program=program),
            )
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if not runs:
        return
    last = runs[-1]
    if once and last.error is not None:
        raise click.exceptions.Exit(last.error.exit_code)
    if not once:
        out.echo("stopped")


# --- from the journal alone ----------------------------------------------------------------


def _print_plan(state: State, result: RunResult, *, noop: bool = False) -> None:
    """Each change with its field-level diff (unchanged resources too if ``noop``)."""
    for change in result.changes:
        if change.action == "noop" and not noop:
            continue
        for line in change_lines(state.out, change, plan=True):
            state.out.echo(line)


def _check_preview(state: State, preview: RunResult) -> None:
    """A plan that could not be computed stops the command before anything is asked."""
    if preview.failures:
        state.out.echo("the plan could not be computed; nothing was changed")
        _check_failures(preview)


def _check_failures(result: RunResult, *, shown: bool = False) -> None:
    """``shown``: the progress lines already told each failure; exit without repeating."""
    if result.failures:
        error = RunError([(rid, RuntimeError(err)) for rid, err in result.failures])
        if shown:
            raise AlreadyShown(error, error.exit_code)
        raise error


local_option = click.option(
    "--local/--no-local",
    default=None,
    help="Not needed: the command goes where the stage lives (the local APIs are started for "
    "it). Given, it must agree with the stage's target.",
)


def _journal_dir(state: State) -> Path:
    """The folder of the journal (where the local APIs keep their data by default)."""
    location = state.location()
    if "://" in location:
        return Path.cwd() / ".journal"
    return Path(location).parent


@click.command()
@common_options(yes=True, profile=True)
@app_option
@local_option
@postgres_url_option
@concurrency_option
@pass_state
def destroy(
    state: State,
    app_name: str | None,
    local: bool | None,
    postgres_url: str | None,
    concurrency: int | None,
) -> None:
    """Delete every resource of the stage.

    Works from the journal alone (the program is not run).
    Dependents go first. Resources with delete protection (Project and Database by default)
    are forgotten: the remote object is kept. Asks for confirmation on a terminal; without
    one, pass --yes. Exits 1 if a delete failed (the rest stays in the journal)."""
    state.warm_key(None)
    from journal._credentials import profile_credentials
    from journal._ops import destroy_stage, find_app

    stage = state.stage_name()
    out = state.out
    where = stage_target(state, "destroy", local, location=state.location(), app=app_name)
    with (
        interruptible(state, _again("destroy", state, False, app=app_name)) as results,
        state.open_journal(check="write") as jr,
    ):
        app = find_app(jr, stage, app_name)
        credentials = profile_credentials(jr, state.profile)
        with _maybe_local(state, _journal_dir(state), where.start_local, postgres_url) as endpoints:
            preview = destroy_stage(
                jr, app, stage, plan_only=True, credentials=credentials, endpoints=endpoints
            )
            _check_preview(state, preview)
            if not preview.changes:
                out.echo(f"{app}/{stage} holds no resources: nothing to destroy")
                return
            out.echo(f"destroying {app}/{stage} will:")
            _print_plan(state, preview)
            state.confirm(
                f"destroy {len(preview.changes)} resource(s) of {app}/{stage}?", action="destroy"
            )
            result = destroy_stage(
                jr,
                app,
                stage,
                reporter=out.reporter(),
                concurrency=concurrency,
                credentials=credentials,
                endpoints=endpoints,
                results=results,
            )
            if result.status == "interrupted":
                _print_result(state, result)
    _print_result(state, result)
    _check_failures(result, shown=True)


@click.command()
@click.argument("seq", type=int, metavar="SEQ")
@common_options(yes=True, profile=True)
@app_option
@local_option
@postgres_url_option
@concurrency_option
@pass_state
def rollback(
    state: State,
    seq: int,
    app_name: str | None,
    local: bool | None,
    postgres_url: str | None,
    concurrency: int | None,
) -> None:
    """Roll the stage back to its state after event SEQ.

    SEQ is a sequence number from `journal history`.
    Shows the plan, asks (on a terminal; else pass --yes), then applies it through the
    engine, recording new events: history is never rewritten. Data in a deleted database
    does not come back."""
    state.warm_key(None)
    from journal._credentials import profile_credentials
    from journal._ops import find_app, rollback_stage

    stage = state.stage_name()
    out = state.out
    where = stage_target(state, "rollback", local, location=state.location(), app=app_name)
    again = _again("rollback", state, False, str(seq), app=app_name)
    with (
        interruptible(state, again) as results,
        state.open_journal(check="write") as jr,
    ):
        head = jr.head()[0]
        if not 1 <= seq <= head:
            raise UnknownSequenceError(
                f"sequence {seq} is not in the journal: valid sequences are 1 to {head}"
                if head
                else f"sequence {seq} is not in the journal: it is empty"
            )
        app = find_app(jr, stage, app_name)
        credentials = profile_credentials(jr, state.profile)
        with _maybe_local(state, _journal_dir(state), where.start_local, postgres_url) as endpoints:
            preview = rollback_stage(
                jr,
                app,
                stage,
                seq,
                plan_only=True,
                credentials=credentials,
                endpoints=endpoints,
            )
            _check_preview(state, preview)
            if all(c.action == "noop" for c in preview.changes):
                out.echo(f"{app}/{stage} already matches its state after sequence {seq}")
                return
            out.echo(f"rolling {app}/{stage} back to its state after sequence {seq} will:")
            _print_plan(state, preview)
            out.warn(
                "data in a deleted database does not come back: a database the rollback "
                "deletes or re-creates loses its data"
            )
            state.confirm(f"roll {app}/{stage} back to sequence {seq}?", action="roll back")
            result = rollback_stage(
                jr,
                app,
                stage,
                seq,
                reporter=out.reporter(),
                concurrency=concurrency,
                credentials=credentials,
                endpoints=endpoints,
                results=results,
            )
            if result.status == "interrupted":
                _print_result(state, result)
    _print_result(state, result)
    _check_failures(result, shown=True)


COMMANDS = [init, deploy, plan, dev, destroy, rollback, refresh]
