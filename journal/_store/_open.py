"""Where a journal is and which store opens it. Creates no connection and touches no file.

The two implementations are imported only when chosen (each pulls in its driver), and neither
imports this module: dependencies point from here to them, never back.
"""

from __future__ import annotations

import os
from typing import Final

from .._errors import UsageError
from .._settings import DEFAULT_LOCATION, journal_location
from ._base import Store

__all__ = ["DEFAULT_LOCATION", "open_store", "resolve_location"]


def resolve_location(location: str | os.PathLike[str] | None) -> str:
    """None -> ``$JOURNAL_URL`` if set, else ``.journal/journal.db`` under the cwd."""
    return journal_location(location)


_PG_SCHEMES: Final = ("postgresql://", "postgres://")
_SQLITE_SCHEME: Final = "sqlite:///"


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """Pick the store for a location. Creates no connection and touches no file.

    * ``postgresql://…`` / ``postgres://…``: the PostgreSQL store.
    * a plain file path, or ``sqlite:///relative/path`` / ``sqlite:////absolute/path``
      (SQLAlchemy's spelling): the SQLite store.
    """
    text = resolve_location(location)
    lowered = text.lower()
    if lowered.startswith(_PG_SCHEMES):
        from ._postgres import PostgresStore

        return PostgresStore(text)
    if lowered.startswith(_SQLITE_SCHEME):
        text = text[len(_SQLITE_SCHEME) :]  # as SQLAlchemy: sqlite:///rel.db, sqlite:////abs.db
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise UsageError(
            f"unsupported journal URL scheme {scheme!r}: use a file path or a postgresql:// URL"
        )
    from ._sqlite import SQLiteStore

    return SQLiteStore(text)
