"""The engine: one run of one stage, from declared resources to reconciled infrastructure.

- ``_run.py``: :class:`Run`, one run of one stage: lock, state, declarations, finish; it
  orchestrates the parts below (and the interruption of ``journal._interrupt``).
- ``_decide.py``: ``decide(current, desired)``, pure: the action and the field diff.
- ``_schedule.py``: ``Scheduler`` on ``graphlib``: a task starts once what it waits for is
  done (dependencies first; dependents first for deletes); a cycle is refused.
- ``_lifecycle.py``: intent, provider call, outcome, and the failure-event rules.
- ``_recovery.py``: resolving the operations a crashed run left pending.

Every name other modules import from ``journal._engine`` is re-exported here.
"""

from __future__ import annotations

from .._projection import load_state, snapshot_state
from .._refs import Ref
from .._results import Change, Desired, Reporter, RunResult
from .._settings import actor
from ._lifecycle import Abandoned
from ._run import DEFAULT_CONCURRENCY, UNKNOWN, Run, default_concurrency

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
