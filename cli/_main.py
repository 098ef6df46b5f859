"""The ``journal`` click application: the group, global options and error handling.

Exit codes: 0 success, 1 an operation failed (a resource, the store, a provider), 2 bad usage
(click's own usage errors, and every ``JournalError`` whose ``exit_code`` is 2: a bad program,
a missing or wrong password, an unknown sequence, a journal from a newer version). Errors are
printed as ``error: <message>`` on stderr without a traceback; ``JOURNAL_DEBUG=1`` adds it.
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

__all__ = ["cli", "main"]

DEBUG_ENV = "JOURNAL_DEBUG"


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fail(message: str, exit_code: int, original: BaseException) -> click.exceptions.Exit:
    """Print ``error: <message>`` (after the traceback with JOURNAL_DEBUG=1); the exit."""
    if _debug():
        traceback.print_exception(original, file=sys.stderr)
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(exit_code)


class JournalGroup(click.Group):
    """Translates the project's exceptions into messages and exit codes, once, here."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JournalError as exc:
            raise _fail(str(exc), exc.exit_code, exc) from exc
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # the reader went away (`journal history | head`): stop quietly, like cat does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            hint = "" if _debug() else f" (set {DEBUG_ENV}=1 for the traceback)"
            raise _fail(f"internal error: {type(exc).__name__}: {exc}{hint}", 1, exc) from exc


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("journal", cls=JournalGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", "-V", prog_name="journal")
@journal_option
@stage_option
@profile_option
@yes_option
def cli() -> None:
    """journal: infrastructure as code in plain Python, with an encrypted, hash-chained,
    event-sourced journal.

    The journal password comes from JOURNAL_PASSWORD (or ALCHEMY_PASSWORD). Options
    --journal, --stage, --profile and --yes can be given before or after the command.
    Exit status: 0 success, 1 an operation failed, 2 bad usage."""


for _command in (
    *_commands_run.COMMANDS,
    *_commands_state.COMMANDS,
    *_commands_migrate.COMMANDS,
    *_commands_import.COMMANDS,
    *_commands_ui.COMMANDS,
    *_commands_local.COMMANDS,
):
    cli.add_command(_command)
    # the same -h/--help however a command is invoked (click caches a command's help
    # option on first use, so one invoked alone first would otherwise lose -h everywhere)
    _command.context_settings.setdefault("help_option_names", CONTEXT_SETTINGS["help_option_names"])


def main(argv: list[str] | None = None) -> None:
    """The console script ``journal``."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="journal")
