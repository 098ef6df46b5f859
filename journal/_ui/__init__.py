"""``journal ui``: the audit trail, the stages' resources and the chain's integrity as local
web pages, read from the encrypted journal (see ``_server`` for how the page is guarded and
``_model`` for how pages are read from the store without loading the journal)."""

from ._model import EventFilter, Model, ReadOnlyJournal, RunFilter
from ._server import UIServer

__all__ = ["EventFilter", "Model", "ReadOnlyJournal", "RunFilter", "UIServer"]
