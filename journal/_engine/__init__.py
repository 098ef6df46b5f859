"""The engine: one run of one stage, from declared resources to reconciled infrastructure.

- ``_run.py``: :class:`Run`, which orchestrates the parts below for one run of one stage.

Every name other modules import from ``journal._engine`` is re-exported here.
"""

from __future__ import annotations

from .._projection import load_state, snapshot_state
from .._refs import Ref
from .._results import Change, Desired, Reporter, RunResult
from .._settings import actor
from ._run import DEFAULT_CONCURRENCY, UNKNOWN, Abandoned, Run, default_concurrency

__all__ = [
    "DEFAULT_CONCURRENCY",
    "UNKNOWN",
    "Abandoned",
    "Change",
    "Desired",
    "Ref",
    "Reporter",
    "Run",
    "RunResult",
    "actor",
    "default_concurrency",
    "load_state",
    "snapshot_state",
]
