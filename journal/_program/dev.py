"""Running a program the way the CLI does (``deploy``, ``plan``), and the ``dev`` loop.

``run_once`` resolves the program and its journal, loads the profile's credentials and runs the
program once under :class:`RunSettings`. :class:`DevLoop` runs it, then waits for the program or
a local module it imports to change, and runs it again, in the same process (the runner drops
the program's modules first, and the journal's key derivation is cached per process):

    loop = DevLoop(program, make_settings, on_run=print_it)
    loop.run()            # until Ctrl-C

A run that fails (a syntax error, an exception, a failed resource) is reported and deletes
nothing: the engine records a failed run and never finalizes it. The next good save converges.
Ctrl-C while a run is in flight lets that run finish (a second Ctrl-C abandons its calls in
flight: the run records its end with their intents pending, which the next run resolves).

Where changes come from is injectable (``changes=``): the default watches the program's folder
with ``watchfiles`` (debounced); tests pass a generator that edits files and yields their paths.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._chain import first_damage, refusal
from .._engine import RunResult
from .._errors import (
    IntegrityError,
    JournalError,
    MissingPasswordError,
    PasswordError,
    UnsupportedJournalError,
)
from .._settings import journal_location, password_from_env
from .app import RunSettings
from .runner import ProgramRun, local_modules, resolve_program, run_program

__all__ = [
    "DEBOUNCE_MS",
    "ChangeSource",
    "DevLoop",
    "DevRun",
    "check_journal",
    "journal_exists",
    "program_journal",
    "run_once",
    "watch_changes",
]

#: how long a burst of file events is gathered into one change (ms)
DEBOUNCE_MS: Final = 50
#: how long an abandoned run gets to record its end before the loop gives up on it (s)
ABANDON_WAIT_S: Final = 15.0
#: folders whose files never trigger a run
_IGNORED_DIRS: Final = frozenset(
    {".journal", ".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache"}
)


def program_journal(program: Path, explicit: str | None = None) -> str:
    """Where a program's journal is: ``explicit`` (``--journal``), else ``JOURNAL_URL``, else
    ``.journal/journal.db`` next to the program."""
    return explicit or journal_location(beside=program.resolve().parent)


def journal_exists(location: str | os.PathLike[str] | None) -> bool:
    """True when a journal is there (reads its metadata only; writes nothing)."""
    from .._store import open_store

    store = open_store(location)
    try:
        return store.read_meta() is not None
    finally:
        store.close()


def check_journal(location: str | os.PathLike[str] | None, password: str | None = None) -> None:
    """Fail now, before anything slow or lasting starts (the local API, initdb), if the
    journal cannot be opened: a wrong or missing password, a journal of a newer version.
    Opens an existing journal and closes it (its key derivation is cached for the run);
    creates nothing."""
    from .._errors import NoJournalError
    from .._journal import Journal, _resolve_password

    try:  # one opening of the store: no separate look for the journal first
        Journal.open(location, password=password, create=False).close()
    except NoJournalError:
        _resolve_password(password)


class _NoJournal:
    """The journal of a project that has none yet, for ``plan``: empty, and never written."""

    def read(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())

    def latest_snapshot(self, *args: Any, **kwargs: Any) -> None:
        return None

    def head(self) -> tuple[int, str]:
        return (0, "")

    def streams(self) -> list[str]:
        return []

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("plan never writes to the journal")

    append = put_snapshot = lock = _refuse

    def close(self) -> None:
        pass


def run_once(
    program: str | os.PathLike[str] | None,
    settings: RunSettings,
    *,
    profile: str | None = None,
) -> ProgramRun:
    """Run the program once under ``settings`` (``settings.location`` is its journal).

    The profile's stored credentials are loaded into ``settings.credentials`` unless it has
    some already. A ``plan`` of a project without a journal runs against an empty state and
    creates nothing. Raises like :func:`journal._program.runner.run_program`; the results of the
    runs that did finish are in ``settings.results``."""
    from .._credentials import credentials_at

    path = resolve_program(program)
    if not settings.credentials:
        try:
            settings.credentials = credentials_at(settings.location, profile)
        except IntegrityError as exc:  # a damaged profile event: refused like any broken chain
            if settings.command == "plan":
                raise
            raise refusal(first_damage(settings.location, exc)) from exc
    if (
        settings.command == "plan"
        and settings.journal is None
        and not journal_exists(settings.location)
    ):
        if not (settings.password or password_from_env()):
            raise MissingPasswordError()
        settings.journal = _NoJournal()
    return run_program(path, settings)


# --- the dev loop --------------------------------------------------------------------------

#: (folder to watch, stop event) -> batches of changed files (absolute paths)
ChangeSource = Callable[[Path, threading.Event], Iterable[set[Path]]]


def _watch_filter(_change: Any, path: str) -> bool:
    # any file: which ones re-run the program is the loop's choice (``DevLoop.relevant``:
    # the program's modules and the files its resources are built from, ``Context.watch``)
    return not (_IGNORED_DIRS & set(Path(path).parts))


def watch_changes(
    root: Path, stop: threading.Event, *, debounce_ms: int = DEBOUNCE_MS
) -> Iterator[set[Path]]:
    """Batches of changed files under ``root`` (``watchfiles``, debounced).

    Watching starts at once, in a background thread, so a save made while a run is in flight
    is not lost: it is the next batch (batches that piled up are merged into one)."""
    import watchfiles

    pending: queue.Queue[set[Path] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for batch in watchfiles.watch(
                root,
                watch_filter=_watch_filter,
                debounce=debounce_ms,
                step=10,
                stop_event=stop,
                raise_interrupt=False,
            ):
                pending.put({Path(path).resolve() for _, path in batch})
        except BaseException as exc:  # handed to the consuming thread
            pending.put(exc)
        finally:
            pending.put(None)

    threading.Thread(target=pump, name="journal-dev-watch", daemon=True).start()
    return _drain(pending, stop)


def _drain(
    pending: queue.Queue[set[Path] | BaseException | None], stop: threading.Event
) -> Iterator[set[Path]]:
    while not stop.is_set():
        try:
            item = pending.get(timeout=0.1)
        except queue.Empty:
            continue
        while item is not None and not isinstance(item, BaseException):
            try:
                more = pending.get_nowait()
            except queue.Empty:
                break
            if more is None or isinstance(more, BaseException):
                pending.put(more)
                break
            item |= more
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


@dataclass
class DevRun:
    """One run of the dev loop."""

    number: int
    #: the files whose change started this run (empty for the first run)
    trigger: frozenset[Path]
    program_run: ProgramRun | None
    #: the runs that finished (also when the program failed part way)
    results: list[RunResult]
    error: JournalError | None
    #: wall-clock time of the save that triggered the run (None for the first run)
    saved_at: float | None
    finished_at: float
    duration_ms: float
    modules: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def since_save_ms(self) -> float:
        """From the save to the end of the reconcile (the run's duration for the first run)."""
        if self.saved_at is None:
            return self.duration_ms
        return max(0.0, (self.finished_at - self.saved_at) * 1000.0)


def _saved_at(paths: Iterable[Path], detected: float) -> float:
    """When the triggering files were saved: their newest mtime, if it is plausible."""
    times = []
    for p in paths:
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            continue
    newest = max(times, default=detected)
    return newest if detected - 60.0 <= newest <= detected else detected


class DevLoop:
    """Run a program, then re-run it whenever it or a local module it imports changes."""

    #: errors that no edit of the program can fix: the loop stops on them
    FATAL: Final = (PasswordError, UnsupportedJournalError, IntegrityError)

    def __init__(
        self,
        program: str | os.PathLike[str] | None,
        make_settings: Callable[[], RunSettings],
        *,
        profile: str | None = None,
        changes: ChangeSource | None = None,
        on_run: Callable[[DevRun], None] | None = None,
        on_message: Callable[[str], None] | None = None,
        max_runs: int | None = None,
    ) -> None:
        self.program = resolve_program(program)
        self.root = self.program.parent
        self.make_settings = make_settings
        self.profile = profile
        self.changes: ChangeSource = changes or watch_changes
        self.on_run = on_run or (lambda run: None)
        self.on_message = on_message or (lambda text: None)
        self.max_runs = max_runs
        self.stop_event = threading.Event()
        self.runs: list[DevRun] = []
        self._watched: set[Path] = {self.program}
        self._last_ok = True
        #: a second Ctrl-C gave up on a run in flight (``run`` then raises KeyboardInterrupt)
        self.abandoned = False
        #: SIGINT/SIGTERM received while the loop runs
        self._signals = 0
        #: the settings of the run in flight (or the last one): its results as they come
        self.current: RunSettings | None = None

    # --- what triggers a run -----------------------------------------------------------

    @property
    def watched(self) -> frozenset[Path]:
        """The files whose change re-runs the program (after a failed run: any .py file of
        the program's folder, since a module that failed to import is not known yet)."""
        return frozenset(self._watched)

    def relevant(self, path: Path) -> bool:
        path = path.resolve()
        if path in self._watched:
            return True
        if self._last_ok or path.suffix != ".py":
            return False
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        return not (_IGNORED_DIRS & set(rel.parts))

    # --- the loop ----------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()

    def _done(self) -> bool:
        return self.stop_event.is_set() or (
            self.max_runs is not None and len(self.runs) >= self.max_runs
        )

    def run(self) -> list[DevRun]:
        """Run until Ctrl-C, ``stop()``, ``max_runs`` runs, or a fatal error (raised).

        Ctrl-C (or SIGTERM) returns normally (after the run in flight, if any, finished); a
        second one during that run abandons its calls in flight and raises
        KeyboardInterrupt. In the main thread the signals are only counted by the handler
        and acted on by the loop, so a second signal can never land inside the first one's
        handling."""
        with self._signals_counted():
            try:
                # the change source starts before the first run: a save during it is not lost
                batches = iter(self.changes(self.root, self.stop_event))
                self._run_in_thread(frozenset(), None)
                while not self._done():
                    self.on_message("watching for changes")
                    trigger: frozenset[Path] = frozenset()
                    while not trigger:
                        batch = next(batches, None)
                        if batch is None or self.stop_event.is_set():
                            return self.runs
                        detected = time.time()
                        trigger = frozenset(p for p in batch if self.relevant(p))
                    self._run_in_thread(trigger, _saved_at(trigger, detected))
            except KeyboardInterrupt:
                if self.abandoned:
                    raise
            finally:
                self.stop_event.set()  # stops the change source too
        return self.runs

    @contextlib.contextmanager
    def _signals_counted(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def count(signum: int, frame: Any) -> None:
            self._signals += 1
            self.stop_event.set()  # stops watching; a run in flight finishes first

        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, count)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run_in_thread(self, trigger: frozenset[Path], saved_at: float | None) -> None:
        """One run in a worker thread, so Ctrl-C in the main thread lets it finish cleanly."""
        box: list[DevRun | BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                box.append(self._run_once(trigger, saved_at))
            except BaseException as exc:  # handed to the main thread
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="journal-dev-run", daemon=True).start()
        seen = self._signals
        announced = False
        # wait on an Event, not Thread.join(): a KeyboardInterrupt inside join() can leave
        # the thread looking finished on Python < 3.13
        while not done.is_set():
            try:
                done.wait(0.05)
            except KeyboardInterrupt:  # no handler of ours (not the main thread's loop)
                self._signals += 1
                self.stop_event.set()
            if self._signals - seen >= 2:
                self._abandon(done, box)
                raise KeyboardInterrupt
            if self._signals > seen and not announced:
                announced = True
                self.on_message(
                    "stopping: letting the current run finish (Ctrl-C again to abandon it)"
                )
        outcome = box[0]
        if isinstance(outcome, BaseException):
            raise outcome
        self.runs.append(outcome)
        self.on_run(outcome)
        if self._signals > seen:
            raise KeyboardInterrupt

    def _abandon(self, done: threading.Event, box: list[DevRun | BaseException]) -> None:
        from .._interrupt import interruption

        self.abandoned = True
        self.on_message(
            "abandoning the calls in flight: their intents stay recorded as "
            "pending, and the next run resolves them first"
        )
        # the run stops waiting for its calls, records its end and closes
        interruption().abandon()
        done.wait(ABANDON_WAIT_S)
        if box and isinstance(box[0], DevRun):
            self.runs.append(box[0])

    def _run_once(self, trigger: frozenset[Path], saved_at: float | None) -> DevRun:
        settings = self.current = self.make_settings()
        started = time.monotonic()
        program_run: ProgramRun | None = None
        error: JournalError | None = None
        try:
            program_run = run_once(self.program, settings, profile=self.profile)
        except self.FATAL:
            raise
        except JournalError as exc:
            error = exc
        finished = time.time()
        duration = (time.monotonic() - started) * 1000.0
        modules = program_run.modules if program_run is not None else local_modules(self.root)
        # files the resources are built from (a Worker's sources: ``Context.watch``)
        modules = [*modules, *(p.resolve() for p in settings.watched)]
        if error is None:
            self._watched = {self.program, *modules}
        else:
            self._watched |= {self.program, *modules}
        self._last_ok = error is None
        return DevRun(
            number=len(self.runs) + 1,
            trigger=trigger,
            program_run=program_run,
            results=list(settings.results),
            error=error,
            saved_at=saved_at,
            finished_at=finished,
            duration_ms=duration,
            modules=sorted(self._watched),
        )
