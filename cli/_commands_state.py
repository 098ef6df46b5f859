"""Commands that read or look after the journal: history, show, outputs, verify, rekey,
configure, and the standalone local API (``journal local serve``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from journal._errors import IntegrityError, NoJournalError, NotAJournalError, UsageError

from ._commands_common import (
    State,
    app_option,
    common_options,
    journal_option,
    new_option,
    pass_state,
    profile_option,
)
from ._output import shown, value_text

if TYPE_CHECKING:
    from journal._history import HistoryRecord
    from journal._projection import StreamState
    from journal._provider import Service

NEW_PASSWORD_ENV = "JOURNAL_NEW_PASSWORD"
#: provider -> the variable name its token is known by (what providers look up)
LOCAL_PORT = 4466


# --- history -------------------------------------------------------------------------------


def _local_time(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def _history_lines(rec: HistoryRecord) -> list[str]:
    who = f"{rec.actor or '-'}@{rec.host or '-'}"
    where = f"{rec.app}/{rec.stage}" if rec.app else rec.stream
    what = rec.resource or ""
    if rec.resource_type:
        what += f" ({rec.resource_type})"
    head = f"{rec.seq:>6}  {_local_time(rec.time)}  {who}  {where}  {rec.action}"
    if what:
        head += f"  {what}"
    if rec.detail:
        head += f"  [{rec.detail}]"
    lines = [head]
    for field, (old, new) in rec.changes.items():
        lines.append(f"{'':8}{field}: {value_text(old)} -> {value_text(new)}")
    return lines


@click.command()
@common_options()
@app_option
@click.option("--resource", metavar="ID", default=None, help="Only events of this resource.")
@click.option(
    "--since",
    metavar="TIME",
    default=None,
    help="Only events at or after TIME: ISO 8601 (2024-05-01T10:00) or relative (30m, 1h, 2d).",
)
@click.option("--run", "run_id", metavar="RUN", default=None, help="Only events of this run id.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="The newest N only.")
@click.option("--json", "as_json", is_flag=True, default=False, help="One JSON object per line.")
@pass_state
def history(
    state: State,
    app_name: str | None,
    resource: str | None,
    since: str | None,
    run_id: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Show the audit trail: who changed what, and when.

    Shows all stages unless --stage (or JOURNAL_STAGE) picks one. Each line has the
    sequence number (what `journal rollback` takes), time, actor@host, app/stage, action
    and resource, then the fields that changed (old -> new). Secrets are masked."""
    from journal._history import history as load_history
    from journal._history import parse_since

    when = parse_since(since) if since is not None else None
    with state.open_journal(check="read") as jr:
        records = load_history(
            jr,
            stage=state.explicit_stage(),
            app=app_name,
            resource=resource,
            since=when,
            run=run_id,
            limit=limit,
        )
    for rec in records:
        if as_json:
            state.out.echo(json.dumps(rec.to_json(), ensure_ascii=False, sort_keys=True))
        else:
            for line in _history_lines(rec):
                state.out.echo(line)


# --- show / outputs ------------------------------------------------------------------------


def _load(state: State, app_name: str | None) -> StreamState:
    from journal._ops import find_app
    from journal._projection import load_state, stream_name

    stage = state.stage_name()
    with state.open_journal(check="read") as jr:
        app = find_app(jr, stage, app_name)
        return _without_pending_exports(state, load_state(jr, stream_name(app, stage)))


def _without_pending_exports(state: State, st: StreamState) -> StreamState:
    """Issue 13: no export a resource with a pending operation holds is shown (those of
    deleted or gone resources are dropped by the fold)."""
    from journal._refresh import usable_outputs

    st.outputs, withheld = usable_outputs(st)
    for key, why in sorted(withheld.items()):
        state.out.warn(f"output {key} not shown: {why} (run `journal deploy` to settle it)")
    return st


def _fields(label: str, values: dict[str, Any] | None, show_secrets: bool) -> list[str]:
    if not values:
        return [f"    {label}: -"]
    shown_values = shown(values, show_secrets)
    width = max(len(k) for k in shown_values)
    lines = [f"    {label}:"]
    lines += [f"      {k.ljust(width)} = {value_text(v)}" for k, v in shown_values.items()]
    return lines


@click.command()
@common_options()
@app_option
@click.option("--json", "as_json", is_flag=True, default=False, help="The state as JSON.")
@click.option("--show-secrets", is_flag=True, default=False, help="Show secrets in clear.")
@pass_state
def show(state: State, app_name: str | None, as_json: bool, show_secrets: bool) -> None:
    """Show the stage's current state (secrets masked).

    Each resource's type, status, props, outputs, dependencies, delete policy and pending
    operation, as folded from the journal."""
    st = _load(state, app_name)
    out = state.out
    if as_json:
        out.echo(json.dumps(shown(st.to_json(), show_secrets), indent=2, sort_keys=True))
        return
    last = st.last_run or {}
    out.echo(f"{st.stream}  (event {st.seq}; {len(st.resources)} resource(s))")
    if last:
        out.echo(
            f"last run: {last.get('command')} by {last.get('actor')}@{last.get('host')} "
            f"at {_local_time(last.get('time'))}: {last.get('status', 'unfinished')}"
        )
    for rid in sorted(st.resources):
        res = st.resources[rid]
        if res.pending is not None:
            status = f"pending {res.pending.get('op')} (since event {res.pending.get('seq')})"
        else:
            status = "ok" if res.exists else "absent"
        out.echo(f"  {rid} ({res.type}): {status}")
        policy = "delete" if res.delete else "keep (delete protection)"
        out.echo(f"    on delete: {policy}; depends on: {', '.join(res.deps) or '-'}")
        out.echo(f"    created at event {res.created_seq}, last changed at {res.updated_seq}")
        for line in _fields("props", res.props, show_secrets):
            out.echo(line)
        for line in _fields("outputs", res.outputs, show_secrets):
            out.echo(line)
        if res.retired:
            out.echo(f"    retired objects awaiting deletion: {len(res.retired)}")
    if st.outputs:
        out.echo("outputs:")
        for line in _fields("", st.outputs, show_secrets)[1:]:
            out.echo(line[4:])


@click.command()
@click.argument("name", required=False, metavar="[NAME]")
@common_options()
@app_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "env"]),
    default=None,
    help="text (default); json: one object; env: KEY='value' lines for a .env file "
    "(names upper-cased; refused while a secret would be masked: add --show-secrets).",
)
@click.option("--json", "as_json", is_flag=True, default=False, help="Same as --format json.")
@click.option(
    "--raw",
    is_flag=True,
    default=False,
    help="With NAME: print a string as it is, without JSON quotes (for $(...) in scripts).",
)
@click.option("--show-secrets", is_flag=True, default=False, help="Show secrets in clear.")
@pass_state
def outputs(
    state: State,
    name: str | None,
    app_name: str | None,
    fmt: str | None,
    as_json: bool,
    raw: bool,
    show_secrets: bool,
) -> None:
    """Show the program's exports (secrets masked unless --show-secrets).

    The values of app.export(...) as recorded by the last successful deploy. With NAME, only
    that value, as JSON (a string in quotes; --raw: as it is); a secret is printed only with
    --show-secrets. `journal outputs --format env --show-secrets > .env` writes a .env for
    the app."""
    if as_json:
        if fmt not in (None, "json"):
            raise UsageError(f"--json and --format {fmt} contradict each other: choose one")
        fmt = "json"
    if raw and name is None:
        raise UsageError("--raw prints one value: give its NAME (journal outputs NAME --raw)")
    if name is not None and fmt is not None:
        raise UsageError(f"--format {fmt} is for all the outputs: drop NAME, or drop --format")
    st = _load(state, app_name)
    if name is not None:
        state.out.echo(_one_output(st.stream, st.outputs, name, raw=raw, show=show_secrets))
        return
    if fmt == "env":
        from journal._program.env import format_env

        secret = [k for k, v in st.outputs.items() if shown(v, False) != v]
        if secret and not show_secrets:
            raise UsageError(
                f"the outputs {', '.join(secret)} are secrets: a .env needs them in clear, so "
                "pass --show-secrets (and keep the file out of version control)"
            )
        click.echo(format_env(shown(st.outputs, show_secrets)), nl=False)
        return
    values = shown(st.outputs, show_secrets)
    if fmt == "json":
        state.out.echo(json.dumps(values, ensure_ascii=False, sort_keys=True))
        return
    width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        text = value if isinstance(value, str) else value_text(value)
        state.out.echo(f"{key.ljust(width)} = {text}")


def _one_output(stream: str, values: dict[str, Any], name: str, *, raw: bool, show: bool) -> str:
    """The text ``journal outputs NAME`` prints."""
    if name not in values:
        known = ", ".join(sorted(values)) or "none: deploy first"
        raise UsageError(f"{stream} has no output {name!r}; its outputs: {known}")
    value = values[name]
    if shown(value, False) != value and not show:
        raise UsageError(
            f"{name} is a secret: pass --show-secrets to print it in clear "
            f"(journal outputs {name} --raw --show-secrets)"
        )
    value = shown(value, show)
    if not raw:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, dict | list):
        raise UsageError(
            f"{name} is a JSON {'object' if isinstance(value, dict) else 'list'}: --raw prints "
            "strings, numbers and booleans; drop --raw to get it as JSON"
        )
    return value if isinstance(value, str) else json.dumps(value)


# --- verify / rekey ------------------------------------------------------------------------


@click.command()
@journal_option
@click.option(
    "--expect-head",
    metavar="[SEQ:]HASH",
    default=None,
    help="Fail unless this head (printed by an earlier verify) is on the chain: "
    "detects a journal that lost its newest events.",
)
@pass_state
def verify(state: State, expect_head: str | None) -> None:
    """Check the journal's hash chain and encryption.

    Walks the hash chain and opens every event and snapshot.
    Prints the number of events and the head (pin it somewhere safe and pass it back with
    --expect-head). Exits 1 naming the first bad sequence. With --expect-head, a journal
    that is missing or empty has lost its history: exits 1."""
    try:
        with state.open_journal() as jr:
            report = jr.verify(expect_head=expect_head)
    except (NoJournalError, NotAJournalError) as exc:
        if expect_head is None or (isinstance(exc, NotAJournalError) and not exc.empty):
            raise
        what = "missing" if isinstance(exc, NoJournalError) else "empty"
        raise IntegrityError(
            f"the journal at {state.location()} is {what}, but --expect-head says it held "
            f"history up to {expect_head.strip()}: its history is lost; restore the journal "
            "from a backup (do not deploy: that would create every resource again)"
        ) from exc
    state.out.echo(f"ok: {report.events} event(s) in {report.streams} stream(s) verified")
    state.out.echo(f"head: {report.head_seq}:{report.head_hash}")


@click.command()
@journal_option
@pass_state
def rekey(state: State) -> None:
    """Change the journal's password (events are not rewritten).

    The current password comes from JOURNAL_PASSWORD (or ALCHEMY_PASSWORD); the new one from
    JOURNAL_NEW_PASSWORD, or is asked twice on a terminal. Never pass it as an argument.
    The new password must have at least 8 characters (not counting leading or trailing
    spaces). If another rekey changed the password meanwhile, this one fails and changes
    nothing."""
    from journal._journal import check_new_password

    new = os.environ.get(NEW_PASSWORD_ENV)
    if not new:
        if not state.out.interactive:
            raise UsageError(
                f"no new password: set {NEW_PASSWORD_ENV}, or run on a terminal to be asked"
            )
        new = click.prompt(
            "new journal password", hide_input=True, confirmation_prompt=True, err=True
        )
    check_new_password(new)
    with state.open_journal(check="write") as jr:
        jr.rekey(new)
    state.out.echo(
        f"the password of {state.location()} was changed: set JOURNAL_PASSWORD to the new one"
    )


# --- configure -----------------------------------------------------------------------------


@click.command()
@journal_option
@profile_option
@new_option
@click.option(
    "--provider",
    metavar="NAME",
    default=None,
    help="Whose credentials these are: an installed provider's name (prisma-postgres, ...) "
    "[default: the only installed provider that declares credentials; with several, asked on a "
    "terminal].",
)
@click.option(
    "--credential",
    "credential_name",
    metavar="NAME",
    default=None,
    help="Store only this one of the provider's credentials [default: each in turn].",
)
@click.option(
    "--from-env",
    "from_env",
    metavar="VAR",
    default=None,
    help="Read the value from the environment variable VAR.",
)
@click.option(
    "--list", "list_only", is_flag=True, default=False, help="List what is stored (no values)."
)
@pass_state
def configure(
    state: State,
    provider: str | None,
    credential_name: str | None,
    from_env: str | None,
    list_only: bool,
) -> None:
    """Store a provider's credentials, encrypted, in the journal.

    Each provider declares its credentials and the environment variable of each (Prisma
    Postgres: its service token, PRISMA_SERVICE_TOKEN). A value is read from a hidden
    prompt on a terminal, else from standard input, or from --from-env VAR; never from the
    command line. Runs use, in order: a resource's own value (service_token= ...), the
    environment variable, then the profile's value (--profile, default "default")."""
    from journal._credentials import DEFAULT_PROFILE, list_credentials, store_credential

    profile = state.profile or DEFAULT_PROFILE
    if list_only:
        with state.open_journal() as jr:
            stored = list_credentials(jr, state.profile)
        for cred in stored:
            state.out.echo(
                f"{cred.profile}: {cred.name} ({cred.provider}) stored by {cred.actor} "
                f"at {_local_time(cred.time)} (event {cred.seq})"
            )
        if not stored:
            state.out.echo("no credentials stored")
        return
    service = _service_for(provider, interactive=state.out.interactive and from_env is None)
    wanted = list(service.credentials)
    if credential_name is not None:
        wanted = [c for c in wanted if credential_name in (c.name, c.env)]
        if not wanted:
            known = ", ".join(c.name for c in service.credentials)
            raise UsageError(
                f"{service.name} has no credential {credential_name!r}; it has: {known}"
            )
    if len(wanted) > 1 and (from_env is not None or not state.out.interactive):
        raise UsageError(
            f"{service.name} has several credentials "
            f"({', '.join(c.name for c in wanted)}): pass --credential NAME to store one"
        )
    values: list[tuple[str, str]] = []
    for wanted_one in wanted:
        name = wanted_one.env
        if from_env is not None:
            value = os.environ.get(from_env, "")
            if not value.strip():
                raise UsageError(f"{from_env} is not set or empty; nothing was stored")
        elif state.out.interactive:
            value = click.prompt(f"{name} for profile {profile!r}", hide_input=True, err=True)
        else:
            value = sys.stdin.read()
        if not value.strip():
            raise UsageError(f"no value for {name} was given; nothing was stored")
        values.append((name, value.strip()))
    with state.open_journal(create=True, check="write") as jr:
        for name, value in values:
            stored_one = store_credential(jr, profile, value, provider=service.name, name=name)
            state.out.echo(
                f"stored {name} ({service.name}) for profile {profile!r} in {jr.location} "
                f"(event {stored_one.seq}), encrypted"
            )


def _service_for(name: str | None, *, interactive: bool = False) -> Service:
    """The installed provider ``name`` that declares credentials (None: the only one; with
    several, on a terminal, the one the user picks)."""
    from journal._entry_points import entry_points
    from journal._provider import services

    known = [s for s in services() if s.credentials]
    if name is None:
        # installed packages first (a provider registered only by the program or a test
        # does not change what a bare `journal configure` means)
        installed = {ep.name for ep in entry_points(group="journal.providers")}
        for candidates in ([s for s in known if s.name in installed], known):
            if len(candidates) == 1:
                return candidates[0]
        choices = sorted(s.name for s in known if s.name in installed)
        if interactive and len(choices) > 1:
            picked = click.prompt(
                "whose credentials", type=click.Choice(choices), err=True, show_choices=True
            )
            return next(s for s in known if s.name == picked)
        raise UsageError(
            "pass --provider NAME: "
            + (
                f"installed providers with credentials are {', '.join(s.name for s in known)}"
                if known
                else "no installed provider declares credentials"
            )
        )
    for service in known:
        if service.name == name:
            return service
    raise UsageError(
        f"no installed provider {name!r} declares credentials"
        + (f"; installed: {', '.join(s.name for s in known)}" if known else "")
    )


# --- local API -----------------------------------------------------------------------------


@click.group()
def local() -> None:
    """The providers' local APIs (Prisma-compatible Management API on real PostgreSQL ...)."""


_rate = click.FloatRange(0.0, 1.0)


@local.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=LOCAL_PORT,
    show_default=True,
    help="Port of the first local API; the next ones take the ports after it (0: free ports).",
)
@click.option(
    "--postgres-url",
    metavar="URL",
    envvar="JOURNAL_LOCAL_POSTGRES_URL",
    default=None,
    help="Use this PostgreSQL server (a superuser URL) instead of the embedded one "
    "[env: JOURNAL_LOCAL_POSTGRES_URL].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder of the embedded PostgreSQL [default: .journal/postgres].",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0.0),
    default=0.0,
    help="Delay every API request by this long.",
)
@click.option("--rate-429", type=_rate, default=0.0, help="Share of requests answered 429.")
@click.option("--rate-5xx", type=_rate, default=0.0, help="Share of requests answered 5xx.")
@click.option(
    "--rate-lost",
    type=_rate,
    default=0.0,
    help="Share of requests performed but never answered (dropped connection).",
)
@click.option("--seed", type=int, default=None, help="Seed of the fault dice (reproducible).")
@click.option(
    "--stop-postgres",
    is_flag=True,
    default=False,
    help="Stop the embedded PostgreSQL on exit (default: keep it running for the next start).",
)
@pass_state
def serve(
    state: State,
    host: str,
    port: int,
    postgres_url: str | None,
    data_dir: Path | None,
    latency_ms: float,
    rate_429: float,
    rate_5xx: float,
    rate_lost: float,
    seed: int | None,
    stop_postgres: bool,
) -> None:
    """Run the local APIs in the foreground until Ctrl-C, and print their URLs.

    Every installed provider with a local API gets one. With --port N each takes a fixed port
    of its own from N (Prisma's N, Cloudflare's N+1); without it, free ports. Point programs
    at one with the variable printed under it; any credential is accepted."""
    from journal._provider import LocalOptions, services

    out = state.out
    emulators = [s for s in services() if s.local is not None]
    if not emulators:
        raise UsageError("no installed provider has a local API")
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        # Ctrl-C at any moment, starting included, stops what started and says so
        with contextlib.suppress(KeyboardInterrupt), contextlib.ExitStack() as stack:
            for service in emulators:
                assert service.local is not None
                options = LocalOptions(
                    journal_dir=Path.cwd() / ".journal",
                    postgres_url=postgres_url,
                    postgres_dir=data_dir,
                    host=host,
                    port=port,
                    latency_s=latency_ms / 1000.0,
                    rate_429=rate_429,
                    rate_5xx=rate_5xx,
                    rate_lost=rate_lost,
                    seed=seed,
                    stop_postgres=stop_postgres,
                )
                endpoint = stack.enter_context(service.local(options))
                out.echo(f"local {service.title} at {endpoint.url}")
                if service.api_url_env:
                    out.echo(f"  export {service.api_url_env}={endpoint.url}")
            out.echo("  any bearer token is accepted; Ctrl-C to stop")
            while not stop.wait(0.5):
                pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    out.echo("stopped")


# --- issue 13: state surgery, as events (journal._surgery) ----------------------------------


@click.group("state")
def state_group() -> None:
    """Change what the journal records about a stage, without touching remote objects.

    Each change is recorded as events (`journal history` shows who did it) after a
    confirmation (--yes for scripts)."""


@contextmanager
def _surgery(
    state: State, app_name: str | None, command: str, question: str
) -> Iterator[tuple[Any, Any]]:
    """Lock the stage and open a session (journal._surgery) after the confirmation."""
    from journal._credentials import profile_credentials
    from journal._ops import find_app
    from journal._surgery import stage_session

    stage = state.stage_name()
    with state.open_journal(check="write") as jr:
        app = find_app(jr, stage, app_name)
        state.confirm(f"{question} in {app}/{stage}?", action=command)
        credentials = profile_credentials(jr, state.profile)
        with stage_session(
            jr, app, stage, command, credentials=credentials, endpoints=state.endpoints
        ) as session:
            yield jr, session


@state_group.command("forget")
@click.argument("resource", metavar="RESOURCE")
@common_options(yes=True)
@app_option
@pass_state
def state_forget(state: State, app_name: str | None, resource: str) -> None:
    """Drop RESOURCE from the stage; its remote object is left as it is.

    Like `terraform state rm`: the next deploy of a program that still declares it creates
    a new object (or adopts the old one with adopt=True)."""
    from journal._surgery import forget

    with _surgery(
        state, app_name, "state forget", f"forget {resource} (the remote object is kept)"
    ) as (_, session):
        res = forget(session, resource)
    state.out.echo(f"forgot {resource} ({res.type}) in {session.stream}; the remote object is kept")


@state_group.command("resolve")
@click.argument("resource", metavar="RESOURCE")
@click.option("--created", metavar="ID", default=None, help="The object exists: its id.")
@click.option("--absent", is_flag=True, default=False, help="The object does not exist.")
@common_options(yes=True, profile=True)
@app_option
@pass_state
def state_resolve(
    state: State, app_name: str | None, resource: str, created: str | None, absent: bool
) -> None:
    """Resolve RESOURCE's pending operation by hand.

    A run interrupted between a call and its answer leaves the operation pending; the next
    run resolves it by reading the remote object. When that cannot work (the API cannot say),
    tell the journal: --created ID (the object exists; it is read through its provider and
    recorded) or --absent (it does not exist)."""
    from journal._surgery import resolve

    if (created is None) == (not absent):
        raise UsageError("give exactly one of --created ID and --absent")
    what = f"as created with id {created}" if created else "as absent"
    with _surgery(
        state, app_name, "state resolve", f"resolve the pending operation of {resource} {what}"
    ) as (_, session):
        op = resolve(session, resource, created=created, absent=absent)
    state.out.echo(f"resolved the pending {op} of {resource} {what} in {session.stream}")


@state_group.command("import")
@click.argument("resource", metavar="RESOURCE")
@click.argument("object_id", metavar="ID")
@click.argument("program", required=False, type=click.Path(dir_okay=True, path_type=Path))
@common_options(yes=True, profile=True)
@click.option(
    "--local/--no-local",
    default=None,
    help="For a stage not deployed yet: the object is in the local API, or (the default) "
    "the real one. Otherwise the stage's own target is used.",
)
@pass_state
def state_import(
    state: State, resource: str, object_id: str, program: Path | None, local: bool | None
) -> None:
    """Record the existing remote object ID as RESOURCE, which PROGRAM declares.

    The program is planned (nothing is called or written) to learn RESOURCE's type, props
    and dependencies; the object is then read through its provider, and recorded as it is:
    the remote object is not changed. The next deploy updates it where the program's props
    differ. What it depends on must be recorded already."""
    from journal._credentials import profile_credentials
    from journal._journal import Journal
    from journal._program.dev import run_once
    from journal._surgery import capture_planned, import_object, stage_session

    from ._commands_common import bind_stages, stage_target
    from ._commands_run import LOCAL_POSTGRES_ENV, _maybe_local, _program, _project_dir, _settings

    path = _program(program)
    location = state.program_location(path)
    where = stage_target(state, "state import", local, location=location)
    postgres_url = os.environ.get(LOCAL_POSTGRES_ENV) or None
    settings = _settings(state, path, "plan", None)
    with (
        _maybe_local(state, _project_dir(path), where.start_local, postgres_url),
        capture_planned() as planned,
    ):
        run_once(path, settings, profile=state.profile)
        declared = planned.get(resource)
        if declared is None or not settings.apps:
            raise UsageError(
                f"{path} does not declare {resource!r}"
                + (f" (it declares: {', '.join(sorted(planned))})" if planned else "")
            )
        app, stage = settings.apps[0]
        with Journal.open(location, create=True) as jr:
            state.confirm(f"record {object_id} as {resource} in {app}/{stage}?", action="import")
            credentials = profile_credentials(jr, state.profile)
            with stage_session(
                jr, app, stage, "state import", credentials=credentials, endpoints=state.endpoints
            ) as s:
                import_object(s, resource, object_id, declared)
    stream = f"{app}/{stage}"
    bind_stages(location, [stream], where)
    state.out.echo(f"imported {object_id} as {resource} ({declared.type_name}) in {stream}")


COMMANDS = [history, show, outputs, verify, rekey, configure, local, state_group]
