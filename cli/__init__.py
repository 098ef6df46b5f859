"""The ``journal`` command-line interface: a thin click application over the library.

    $ journal deploy            # run alchemy.run.py and reconcile
    $ journal history --json    # the audit trail

Command modules import the engine inside the commands, so ``journal --help`` stays fast.
"""

from __future__ import annotations

from ._main import cli, main

__all__ = ["cli", "main"]
