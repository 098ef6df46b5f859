"""The ``journal`` click application: the group, global options and error handling.

Exit codes: 0 success, 1 an operation failed (a resource, the store, a provider), 2 bad usage
(click's own usage errors, and every ``JournalError`` whose ``exit_code`` is 2: a bad program,
a missing or wrong password, an unknown sequence, a journal from a newer version). With
``plan --detailed-exitcode`` every error exits 1 (2 means "changes pending"). Errors are
printed as ``error: <message>`` on stderr without a traceback; ``-v/--verbose`` (anywhere on
the command line) or ``JOURNAL_DEBUG=1`` adds it: the program's own exception for a program
that raised, the internal one for an internal error.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from journal import __version__
from journal._errors import JournalError

from . import (
    _commands_import,
    _commands_local,
    _commands_migrate,
    _commands_run,
    _commands_state,
    _commands_ui,
)
from ._commands_common import journal_option, profile_option, stage_option, yes_option
from ._output import (
    DEBUG_ENV,
    DETAILED_KEY,
    VERBOSE_KEY,
    AlreadyShown,
    clear_live,
    debug,
    exit_code,
)

__all__ = ["cli", "main"]


def _debug() -> bool:
    return debug()


def _fail(message: str | None, exit_code: int, original: BaseException) -> click.exceptions.Exit:
    """Print ``error: <message>`` (after the traceback with --verbose); the exit."""
    if _debug():
        traceback.print_exception(original, file=sys.stderr)
    if message is not None:
        click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(exit_code)


def _verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[VERBOSE_KEY] = True
    return value


def verbose_option() -> click.Option:
    return click.Option(
        ["--verbose", "-v"],
        is_flag=True,
        default=False,
        expose_value=False,
        is_eager=True,
        callback=_verbose,
        help=f"Show the traceback of a failure (the program's exception, or an internal "
        f"error) [env: {DEBUG_ENV}=1].",
    )


class JournalGroup(click.Group):
    """Translates the project's exceptions into messages and exit codes, once, here."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[DETAILED_KEY] = "--detailed-exitcode" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        detailed = bool(ctx.meta.get(DETAILED_KEY))
        try:
            try:
                return super().invoke(ctx)
            finally:
                clear_live()  # a run's counter line is not left under what follows
        except AlreadyShown as exc:
            raise _fail(None, exit_code(exc.exit_code), exc.error) from exc
        except JournalError as exc:
            raise _fail(str(exc), exit_code(exc.exit_code), exc) from exc
        except click.exceptions.ClickException as exc:
            if not detailed:
                raise
            exc.show()
            raise click.exceptions.Exit(1) from exc
        except click.Abort:
            if not detailed:
                raise
            click.echo("Aborted!", err=True)
            raise click.exceptions.Exit(1) from None
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:
            # the reader went away (`journal history | head`): stop quietly, like cat does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            hint = "" if _debug() else f" (-v or {DEBUG_ENV}=1 for the traceback)"
            raise _fail(f"internal error: {type(exc).__name__}: {exc}{hint}", 1, exc) from exc


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("journal", cls=JournalGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", "-V", prog_name="journal")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    default=False,
    expose_value=False,
    is_eager=True,
    callback=_verbose,
    help=f"Show tracebacks of failures [env: {DEBUG_ENV}=1].",
)
@journal_option
@stage_option
@profile_option
@yes_option
def cli() -> None:
    """journal: infrastructure as code in plain Python, with an encrypted, hash-chained,
    event-sourced journal.

    The journal password comes from JOURNAL_PASSWORD (or ALCHEMY_PASSWORD). Options
    --journal, --stage, --profile, --yes and -v/--verbose can be given before or after the
    command. Exit status: 0 success, 1 an operation failed, 2 bad usage.

    Shell completion: eval "$(_JOURNAL_COMPLETE=bash_source journal)" in ~/.bashrc
    (zsh_source, fish_source for the other shells)."""


for _command in (
    *_commands_run.COMMANDS,
    *_commands_state.COMMANDS,
    *_commands_migrate.COMMANDS,
    *_commands_import.COMMANDS,
    *_commands_ui.COMMANDS,
    *_commands_local.COMMANDS,
):
    cli.add_command(_command)
    # -v/--verbose after the command too (`journal deploy -v`)
    _command.params.append(verbose_option())
    # the same -h/--help however a command is invoked (click caches a command's help
    # option on first use, so one invoked alone first would otherwise lose -h everywhere)
    _command.context_settings.setdefault("help_option_names", CONTEXT_SETTINGS["help_option_names"])


def main(argv: list[str] | None = None) -> None:
    """The console script ``journal``."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="journal")
