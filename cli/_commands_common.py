"""What every command shares: the context object, the common options, confirmations.

One object travels in the click context (click's ``make_pass_decorator``): :class:`State`,
holding the global options. ``--journal``, ``--stage``, ``--yes`` and ``--profile`` are
accepted both before the command (``journal --stage prod deploy``) and after it
(``journal deploy --stage prod``); the later one wins.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import click

from journal import _settings
from journal._errors import IntegrityError, UsageError

from ._output import Output

if TYPE_CHECKING:
    from journal._binding import Binding
    from journal._journal import Journal

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """The global options of one invocation, and where output goes."""

    journal: str | None = None
    stage: str | None = None
    yes: bool = False
    profile: str | None = None
    #: --new: a file in the way of a new journal (empty, not a journal) may be moved aside
    new: bool = False
    out: Output = field(default_factory=Output)
    #: where providers' calls go under --local (service name -> Endpoint); set by the CLI
    endpoints: dict[str, Any] = field(default_factory=dict)

    def stage_name(self) -> str:
        """``--stage``, else JOURNAL_STAGE, else the OS user name."""
        return _settings.stage(self.stage)

    def explicit_stage(self) -> str | None:
        """The stage only if the user chose one (else the program's own choice applies)."""
        return self.stage or _settings.stage_from_env()

    def location(self) -> str:
        """The journal of a command that runs no program: ``--journal``, else JOURNAL_URL,
        else ``.journal/journal.db`` in the current folder."""
        from journal._store import resolve_location

        return resolve_location(self.journal)

    def warm_key(self, program: Path | None) -> None:
        """Derive the journal's key (Argon2id, ~65 ms) on a thread while the command imports
        what it runs: the derivation releases the GIL, so on a second core it costs no wall
        time. The command's own opening of the journal finds the key cached, or waits for
        this derivation (``journal._crypto`` derives under a lock); what fails here is left
        for that opening to report. Nothing is written: an existing journal is opened and
        closed; without a password in the environment nothing is done."""
        if _settings.password_from_env() is None:
            return
        try:
            folder = Path(program) if program is not None else Path.cwd()
            if not folder.is_dir():
                folder = folder.parent
            location = _settings.journal_location(self.journal, beside=folder)
        except (OSError, UsageError):
            return  # the command reports a bad path or location itself
        # imported here, not on the thread: both threads would import the same modules, one
        # waiting for the other's import locks, and the derivation would start only after
        from journal._journal import Journal

        threading.Thread(
            target=_open_once, args=(Journal, location), name="journal-key", daemon=True
        ).start()

    def program_location(self, program: Path) -> str:
        """The journal of a program: ``--journal``, else JOURNAL_URL, else next to it."""
        from journal._program.dev import program_journal

        return program_journal(program, self.journal)

    @contextmanager
    def open_journal(
        self, *, create: bool = False, check: Literal["read", "write"] | None = None
    ) -> Iterator[Journal]:
        """The journal; ``check``: run the chain check first (``journal._chain``): a broken
        chain refuses a command that will write ("write"), and a reading command ("read")
        is warned and goes on."""
        from journal._journal import Journal

        with Journal.open(self.location(), create=create, new=create and self.new) as jr:
            self._report_set_aside(jr)
            if check is not None:
                self.check_chain(jr, write=check == "write")
            yield jr

    def prepare_new_journal(self, location: str) -> None:
        """With --new, before a run: if what is at ``location`` is not a journal (an empty
        file, another database), move it aside and create the journal now."""
        if not self.new:
            return
        from journal._journal import Journal

        with Journal.open(location, create=True, new=True) as jr:
            self._report_set_aside(jr)

    def _report_set_aside(self, jr: Journal) -> None:
        if jr.store.set_aside is not None:
            self.out.err(
                f"--new: what was at {jr.location} is not a journal; it was moved to "
                f"{jr.store.set_aside} and a new journal was started"
            )

    def check_chain(self, jr: Journal, *, write: bool) -> None:
        from journal._chain import warning_text

        if write:
            jr.ensure_writable()
            return
        try:
            jr.check_chain()
        except IntegrityError as exc:
            self.out.warn(warning_text(exc))

    def warn_if_damaged(self, location: str) -> None:
        """For a reading command that opens the journal later (plan): warn now."""
        from journal._journal import Journal
        from journal._program.dev import journal_exists

        if journal_exists(location):
            with Journal.open(location, create=False) as jr:
                self.check_chain(jr, write=False)

    def confirm(self, question: str, *, action: str) -> None:
        """Ask on a terminal unless ``--yes``; without a terminal, refuse (exit 2)."""
        if self.yes:
            return
        if not self.out.interactive:
            raise UsageError(
                f"{action} needs confirmation: pass --yes to {action} without a terminal"
            )
        self.out.clear_live()  # a prompt never shares a line with a run's counter
        if not click.confirm(question, default=False, err=True):
            click.echo("cancelled: nothing was changed", err=True)
            raise click.exceptions.Exit(1)


pass_state = click.make_pass_decorator(State, ensure=True)


def _setter(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(State), name, value)
        return value

    return callback


def journal_option(f: F) -> F:
    return click.option(
        "--journal",
        metavar="PATH|URL",
        expose_value=False,
        callback=_setter("journal"),
        help="The journal: an SQLite file or postgresql:// URL "
        "[default: $JOURNAL_URL, else .journal/journal.db next to the program, "
        "or in the current folder for commands that run no program].",
    )(f)


def new_option(f: F) -> F:
    return click.option(
        "--new",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_setter("new"),
        help="Start a new journal even if a file that is not a journal (an empty file, "
        "another database) is at its location: that file is moved aside, never deleted. "
        "Without --new it is refused, so a journal that lost its contents is not re-created.",
    )(f)


def stage_option(f: F) -> F:
    return click.option(
        "--stage",
        metavar="STAGE",
        expose_value=False,
        callback=_setter("stage"),
        help="The stage [default: $JOURNAL_STAGE, else your OS user name].",
    )(f)


def yes_option(f: F) -> F:
    return click.option(
        "--yes",
        "-y",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_setter("yes"),
        help="Do not ask for confirmation (needed when there is no terminal).",
    )(f)


def profile_option(f: F) -> F:
    return click.option(
        "--profile",
        metavar="NAME",
        expose_value=False,
        callback=_setter("profile"),
        help="The credentials profile stored with `journal configure` [default: default].",
    )(f)


def common_options(*, yes: bool = False, profile: bool = False) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        if profile:
            f = profile_option(f)
        if yes:
            f = yes_option(f)
        return journal_option(stage_option(f))

    return decorate


def concurrency_option(f: F) -> F:
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        metavar="N",
        default=None,
        help="At most N provider calls at once [default: $JOURNAL_CONCURRENCY, else 128].",
    )(f)


def app_option(f: F) -> F:
    return click.option(
        "--app",
        "app_name",
        metavar="APP",
        default=None,
        help="The app, when the journal holds several with this stage.",
    )(f)


def _open_once(journal: type[Journal], location: str) -> None:
    with suppress(Exception):
        journal.open(location, create=False).close()


program_argument = click.argument(
    "program", required=False, type=click.Path(dir_okay=True, path_type=Path)
)


# --- issue 13: where a stage lives (journal._binding) ---------------------------------------


def external_local_apis() -> list[str]:
    """The local APIs the user runs (`journal local serve`): providers' URL variables (such
    as PRISMA_API_URL) set to a loopback address."""
    from journal._provider import services

    found = []
    for service in services():
        url = (os.environ.get(service.api_url_env) or "").strip() if service.api_url_env else ""
        if url and urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            found.append(url)
    return found


def dev_stage() -> str:
    """`journal dev`'s own stage when none is chosen: ``dev-<user>`` (as Alchemy's per-user
    dev stage), so a deploy of the default stage never waits on a running dev loop."""
    import re

    from journal._engine import actor

    user = re.sub(r"[^A-Za-z0-9_.-]+", "-", actor()).strip("-._") or "user"
    return f"dev-{user}"[:63]


@dataclass(frozen=True)
class Where:
    """The stage a command works on and the target it goes to."""

    stage: str
    target: str
    #: the binding found in the journal (None: a stage not deployed yet)
    binding: Binding | None
    #: start the local API for the command (False for a local stage reached through a
    #: PRISMA_API_URL on loopback: a `journal local serve` the user runs)
    start_local: bool = False


def stage_target(
    state: State,
    command: str,
    requested: bool | None,
    *,
    location: str,
    app: str | None = None,
    default_local: bool = False,
) -> Where:
    """Where ``command`` goes for the chosen stage: the target it is bound to; for a stage
    not deployed yet, ``--local``/``--no-local`` (``requested``), else the default. A flag
    that contradicts the binding is refused with what to type instead. The first line of
    the command's output says which it is."""
    from journal._binding import LOCAL, REMOTE, describe, stage_binding
    from journal._journal import Journal
    from journal._program.dev import journal_exists

    stage = state.stage_name()
    binding = None
    if journal_exists(location):
        with Journal.open(location, create=False) as jr, suppress(IntegrityError):
            # a damaged journal: the command's own check refuses (or warns) next
            binding = stage_binding(jr, stage, app)
    # a provider's URL variable on loopback: a local API the user runs (`journal local serve`)
    running = external_local_apis()
    external = bool(running)
    if binding is None:
        local = requested if requested is not None else (default_local or external)
        target = LOCAL if local else REMOTE
        where = Where(stage, target, None, local and not (external and requested is None))
        if command == "plan":
            line = f"stage {stage}: not deployed yet; planning for {describe(where.target)}"
        elif command in ("deploy", "dev", "state import"):
            line = (
                f"stage {stage}: not deployed yet; deploying to {describe(where.target)}, "
                "where the stage will stay"
            )
        else:
            line = f"stage {stage}: no target recorded; using {describe(where.target)}"
    else:
        _refuse_other_target(command, stage, binding, requested)
        start = binding.local and (requested is True or not external)
        where = Where(stage, binding.target, binding, start)
        how = f"event {binding.seq}" if binding.seq is not None else "its objects' endpoints"
        line = f"stage {stage} lives on {describe(binding.target)} (bound: {how})"
    # the default API is not announced: nothing differs there from a run without bindings
    if where.target != REMOTE:
        at = " at " + ", ".join(running) if running else ""
        state.out.err(line + ("" if where.start_local or not external else at))
    return where


def _refuse_other_target(
    command: str, stage: str, binding: Binding, requested: bool | None
) -> None:
    from journal._binding import describe

    lives = f"stage {stage!r} lives on {describe(binding.target)} (bound at its first deploy)"
    if binding.local:
        if requested is False:
            raise UsageError(
                f"{lives}; --no-local would send it to the real APIs. Run `journal {command}` "
                f"without --no-local, or use another stage for the real API: "
                f"`journal {command} --no-local --stage {_other(stage)}`"
            )
        return
    if requested is True:
        raise UsageError(
            f"{lives}; --local would send it to the local API. Run `journal {command}` "
            f"without --local, or use another stage for the local API: "
            f"`journal {command} --local --stage {dev_stage()}`"
        )


def _other(stage: str) -> str:
    return f"{stage}-real"[:63] if not stage.endswith("-real") else f"{stage}-2"[:63]


def bind_stages(location: str, streams: list[str], where: Where) -> None:
    """After a run that deployed a stage not deployed before: record its target. (A stage
    whose binding is inferred from its objects is left so: a no-op deploy writes nothing;
    nor is the default API recorded: it is where an unbound stage goes anyway.)"""
    from journal._binding import REMOTE, record_binding
    from journal._journal import Journal
    from journal._program.dev import journal_exists

    if where.binding is not None or where.target == REMOTE:
        return
    if not streams or not journal_exists(location):
        return
    with Journal.open(location, create=False) as jr:
        record_binding(jr, streams, where.target)
