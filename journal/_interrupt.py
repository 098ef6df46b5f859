"""Interruption as a first-class path: what SIGINT (Ctrl-C) and SIGTERM do to runs in flight.

The first signal *stops* every active run: no new provider call is launched (resources not
started yet fail with ``RunInterrupted``, nothing is recorded for them), calls in flight
finish and their outcomes are recorded, then the run ends with ``run.finished`` status
``interrupted``. That wait is bounded: after the grace period (``JOURNAL_STOP_GRACE``
seconds, default 30) the run is abandoned as if the signal came twice.

The second signal *abandons* the calls in flight: the runs stop waiting for them, record
``run.finished`` and close. Their intents are already in the journal, so they stay pending
(no outcome is invented) and the next run resolves them first. A late answer of an
abandoned call is never recorded. Appending ``run.finished`` is never torn by a signal: the
second signal is deferred until the append is done (:meth:`Interruption.critical`).

    with interruption().installed(on_message=print):   # the CLI, around one command
        ...                                            # runs register themselves

Library users without the handlers get the same abandon path from a plain
``KeyboardInterrupt``: a run that sees one never waits for its calls in flight.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

__all__ = ["DEFAULT_GRACE_S", "GRACE_ENV", "Interruption", "grace_period", "interruption"]

GRACE_ENV: Final = "JOURNAL_STOP_GRACE"
#: how long calls in flight get to finish after the first signal (seconds)
DEFAULT_GRACE_S: Final = 30.0


class _Stoppable(Protocol):
    def stop_launching(self) -> None: ...

    def abandon(self) -> None: ...


def grace_period() -> float:
    raw = os.environ.get(GRACE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_GRACE_S
    except ValueError:
        value = DEFAULT_GRACE_S
    return max(0.0, value)


class Interruption:
    """The process's interruption state: which runs are active, how many signals came."""

    def __init__(self) -> None:
        # re-entrant: the signal handler runs on the main thread, which may hold it already
        self._lock = threading.RLock()
        self._runs: list[_Stoppable] = []
        self.signals = 0
        self.signal_name: str | None = None
        self.stopping = False
        self.abandoned = False
        self._critical = 0
        self._deferred = False
        self._timer: threading.Timer | None = None
        self._on_message: Callable[[str], None] = lambda text: None

    # --- runs ------------------------------------------------------------------------

    def register(self, run: _Stoppable) -> None:
        with self._lock:
            self._runs.append(run)
            stopping, abandoned = self.stopping, self.abandoned
        if abandoned:
            run.abandon()
        elif stopping:
            run.stop_launching()

    def unregister(self, run: _Stoppable) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._runs.remove(run)

    def stop(self) -> None:
        """Stop launching provider calls (every active run, and runs that begin later)."""
        with self._lock:
            self.stopping = True
            runs = list(self._runs)
        for run in runs:
            run.stop_launching()

    def abandon(self) -> None:
        """Stop waiting for calls in flight (their intents stay pending)."""
        with self._lock:
            self.stopping = self.abandoned = True
            runs = list(self._runs)
        for run in runs:
            run.abandon()

    @property
    def requested(self) -> bool:
        return self.signals > 0 or self.stopping

    # --- signals ---------------------------------------------------------------------

    def _handle(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        if self.signals == 1:
            self.stop()
            grace = grace_period()
            self._on_message(
                f"stopping ({self.signal_name}): no new calls; letting the calls in flight "
                f"finish (at most {grace:g}s; Ctrl-C again to abandon them)"
            )
            self._timer = threading.Timer(grace, self._grace_over)
            self._timer.daemon = True
            self._timer.start()
            return
        if not self.abandoned:
            self._on_message(
                "abandoning the calls in flight: their intents stay recorded as pending, "
                "and the next run resolves them first"
            )
        self.abandon()
        if self._critical:
            self._deferred = True
            return
        raise KeyboardInterrupt

    def _grace_over(self) -> None:
        if not self.abandoned:
            self._on_message("the grace period is over")
            _thread.interrupt_main(signal.SIGINT)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A section of the main thread that a second signal must not tear (it is raised
        at the end of the section instead)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
            if not self._critical and self._deferred:
                self._deferred = False
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self, on_message: Callable[[str], None] | None = None) -> Iterator[Interruption]:
        """Handle SIGINT and SIGTERM this way for the duration of the block (main thread
        only; elsewhere the block runs with the handlers it has)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._on_message = on_message or (lambda text: None)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self._timer is not None:
                self._timer.cancel()


_CURRENT = Interruption()
_CURRENT_LOCK = threading.Lock()


def interruption() -> Interruption:
    """The process's interruption state (runs register here when they begin)."""
    return _CURRENT


def reset() -> Interruption:
    """A fresh state (a new command in the same process, e.g. tests through CliRunner)."""
    global _CURRENT
    with _CURRENT_LOCK:
        _CURRENT = Interruption()
    return _CURRENT
