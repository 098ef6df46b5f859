"""Settings with one home: each is decided by one function here, and every caller asks it.

=====================  ==============================================================
who is acting          ``actor()``: ``JOURNAL_ACTOR``, else the OS user name
the journal password   ``password()``: given, else ``JOURNAL_PASSWORD``, else
                       ``ALCHEMY_PASSWORD`` (Alchemy's name, so one variable serves both)
where the journal is   ``journal_location()``: given (``--journal``), else ``JOURNAL_URL``,
                       else ``.journal/journal.db`` next to the program (or in the cwd)
the stage              ``stage()``: given (``--stage``), else ``JOURNAL_STAGE``, else
                       ``actor()``, as Alchemy defaults to the user name
how a secret shows     ``MASK``
=====================  ==============================================================

Nothing here is read at import time: a test or a long-lived process may change the
environment between calls.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Final

from ._errors import MissingPasswordError, UsageError

__all__ = [
    "ACTOR_ENV",
    "DEFAULT_LOCATION",
    "LOCATION_ENV",
    "MASK",
    "PASSWORD_ENVS",
    "STAGE_ENV",
    "actor",
    "journal_location",
    "journal_url",
    "password",
    "password_from_env",
    "stage",
    "stage_from_env",
]

ACTOR_ENV: Final = "JOURNAL_ACTOR"
#: in order of precedence
PASSWORD_ENVS: Final = ("JOURNAL_PASSWORD", "ALCHEMY_PASSWORD")
LOCATION_ENV: Final = "JOURNAL_URL"
STAGE_ENV: Final = "JOURNAL_STAGE"

#: what a secret shows as, everywhere (terminal, history, the UI, JSON output)
MASK: Final = "********"

#: where a journal lives when neither a location nor JOURNAL_URL is given (relative)
DEFAULT_LOCATION: Final = os.path.join(".journal", "journal.db")


def actor() -> str:
    """Who is acting, as recorded in ``run.started`` and run locks."""
    env = os.environ.get(ACTOR_ENV)
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def password_from_env() -> str | None:
    """``JOURNAL_PASSWORD``, else ``ALCHEMY_PASSWORD``; None when neither is set (or empty)."""
    for name in PASSWORD_ENVS:
        value = os.environ.get(name)
        if value:
            return value
    return None


def password(explicit: str | None = None) -> str:
    """The journal password: ``explicit``, else from the environment.
    ``MissingPasswordError`` when there is none or it is empty."""
    if explicit is None:
        found = password_from_env()
        if not found:
            raise MissingPasswordError()
        return found
    if not explicit:
        raise MissingPasswordError("the journal password is empty: give a non-empty password")
    return explicit


def journal_url() -> str | None:
    """``JOURNAL_URL`` (trimmed), None when unset or blank."""
    return os.environ.get(LOCATION_ENV, "").strip() or None


def journal_location(
    explicit: str | os.PathLike[str] | None = None, *, beside: str | os.PathLike[str] | None = None
) -> str:
    """``explicit`` (a path or URL; empty is an error), else ``JOURNAL_URL``, else
    ``.journal/journal.db`` in the folder ``beside`` (a program's folder) or the cwd."""
    if explicit is not None:
        text = os.fspath(explicit)
        if not text:
            raise UsageError(
                "the journal location is empty: give a file path or a postgresql:// URL"
            )
        return text
    env = journal_url()
    if env:
        return env
    if beside is not None:
        return str(Path(beside).resolve() / DEFAULT_LOCATION)
    return os.path.abspath(DEFAULT_LOCATION)


def stage_from_env() -> str | None:
    """``JOURNAL_STAGE`` (trimmed), None when unset or blank."""
    return os.environ.get(STAGE_ENV, "").strip() or None


def stage(explicit: str | None = None) -> str:
    """``explicit`` (``--stage``), else ``JOURNAL_STAGE``, else the OS user name."""
    return explicit or stage_from_env() or actor()
