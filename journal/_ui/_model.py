"""What the pages show, read from the journal's store a page at a time.

Only ``seq``, ``stream`` and ``version`` are in clear in the store; everything else (type,
run, actor, time, resource) is inside the sealed payload. So every query here is a walk over
a *seq range* of one stream or of the whole journal, decrypting as it goes, and stops as
soon as a page is full or a scan budget is spent (the page then offers "older"): nothing ever
loads the whole journal.

Two facts make the walks short:

* A run holds its stage's lock, so the events of one run are contiguous within their stream.
  A run's first event is found by binary search on seq (``first S event after x belongs to
  run R`` is monotone in x), in O(log n) single-row reads, however long the run.
* Events are appended in time order (up to clock skew between writers), so the sequence
  bounds of a time range are found by binary search too.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from .._codec import mask, reveal
from .._errors import IntegrityError, JournalError, UnknownSequenceError
from .._history import HistoryRecord, _Folder, _parse_time, _split_stream
from .._journal import Event, Journal
from .._projection import ResourceState, StreamState, load_state

__all__ = [
    "EventFilter",
    "EventPage",
    "Model",
    "ReadOnlyJournal",
    "RunBlock",
    "RunFilter",
    "RunPage",
    "VerifyJob",
]

Json = dict[str, Any]

#: events one request may decrypt while looking for matches before it offers "older" ...
SCAN_BUDGET: Final = 10_000
#: ... and seconds it may spend on it (the page stays quick on a slow or busy machine)
SCAN_SECONDS: Final = 0.3
#: runs one request may look at while filtering before it offers "older" (or SCAN_SECONDS)
RUN_BUDGET: Final = 400


@dataclass(frozen=True)
class RunBlock:
    """The contiguous events of one run in one stream (or of events that name no run)."""

    stream: str
    run: str | None
    first_seq: int
    last_seq: int
    events: int
    started: Json | None
    finished: Json | None

    @property
    def app(self) -> str | None:
        return _split_stream(self.stream)[0]

    @property
    def stage(self) -> str | None:
        return _split_stream(self.stream)[1]

    @property
    def command(self) -> str:
        return str((self.started or {}).get("command") or "-")

    @property
    def actor(self) -> str | None:
        value = (self.started or {}).get("actor")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str:
        if self.finished is None:
            return "unfinished" if self.started is not None else "-"
        return str(self.finished.get("status"))

    @property
    def time(self) -> str | None:
        value = (self.started or self.finished or {}).get("time")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RunFilter:
    stage: str | None = None
    app: str | None = None
    actor: str | None = None
    command: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EventFilter:
    stage: str | None = None
    app: str | None = None
    resource: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    stream: str | None = None


@dataclass
class RunPage:
    runs: list[RunBlock]
    #: pass as ``before`` for the next (older) page; None: there is nothing older
    older: int | None
    scanned: int = 0


@dataclass
class EventPage:
    records: list[HistoryRecord]
    older: int | None
    scanned: int = 0
    #: the lowest sequence the scan reached (the page says how far it looked)
    reached: int = 0


class ReadOnlyJournal:
    """A journal that can be read and nothing else: the rollback preview runs the engine's
    plan on it, so a bug there could not append, lock or snapshot."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def read(self, *args: Any, **kwargs: Any) -> Iterator[Event]:
        return self._journal.read(*args, **kwargs)

    def head(self) -> tuple[int, str]:
        return self._journal.head()

    def streams(self) -> list[str]:
        return self._journal.streams()

    def latest_snapshot(
        self, stream: str, upto_seq: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        return self._journal.latest_snapshot(stream, upto_seq)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("the journal ui is read only")

    append = put_snapshot = lock = rekey = ensure_writable = _refuse


class VerifyJob:
    """``journal verify`` in a background thread, with progress for the integrity page."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self.state = "idle"  # idle | running | ok | broken | error
        self.done_seq = 0
        self.total = 0
        self.message = ""
        self.bad_seq: int | None = None
        self.started = 0.0
        self.seconds = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self.state == "running":
                return
            self.state, self.done_seq, self.bad_seq, self.message = "running", 0, None, ""
            self.total = self._journal.head()[0]
            self.started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="journal-ui-verify")
            self._thread.daemon = True
            self._thread.start()

    def _progress(self, seq: int) -> None:
        self.done_seq = seq

    def _run(self) -> None:
        try:
            report = self._journal.verify(progress=self._progress)
        except IntegrityError as exc:
            self.state, self.bad_seq, self.message = "broken", exc.seq, str(exc)
        except JournalError as exc:
            self.state, self.message = "error", str(exc)
        else:
            self.done_seq = report.head_seq
            self.state = "ok"
            self.message = (
                f"{report.events} event(s) in {report.streams} stream(s) verified; "
                f"head {report.head_seq}:{report.head_hash}"
            )
        self.seconds = time.monotonic() - self.started

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def to_json(self) -> Json:
        elapsed = time.monotonic() - self.started if self.state == "running" else self.seconds
        return {
            "state": self.state,
            "done": self.done_seq,
            "total": self.total,
            "message": self.message,
            "bad_seq": self.bad_seq,
            "seconds": round(elapsed, 2),
        }


class Model:
    """Read-only queries for the pages; thread-safe (the journal is)."""

    def __init__(self, journal: Journal, *, show_secrets: bool = False) -> None:
        self.journal = journal
        self.show_secrets = show_secrets
        self.verify = VerifyJob(journal)
        self._firsts: OrderedDict[tuple[str, str], Event] = OrderedDict()
        self._runs_lock = threading.Lock()

    # --- display ---------------------------------------------------------------------

    def shown(self, value: Any) -> Any:
        """JSON as the page shows it: secrets masked, or in clear with ``--show-secrets``."""
        return reveal(value) if self.show_secrets else mask(value)

    # --- streams ---------------------------------------------------------------------

    def stages(self) -> list[tuple[str, str]]:
        """(app, stage) of every app stream, sorted."""
        out = []
        for stream in self.journal.streams():
            app, stage = _split_stream(stream)
            if app is not None and stage is not None:
                out.append((app, stage))
        return sorted(out)

    def _streams(self, app: str | None, stage: str | None) -> list[str]:
        return [
            f"{a}/{s}"
            for a, s in self.stages()
            if (app is None or a == app) and (stage is None or s == stage)
        ]

    # --- single-row probes -----------------------------------------------------------

    def _next(self, stream: str | None, after: int) -> Event | None:
        return next(iter(self.journal.read(stream, after_seq=after, limit=1)), None)

    def _prev(self, stream: str | None, below: int) -> Event | None:
        if below <= 1:
            return None
        found = self.journal.read(stream, upto_seq=below - 1, reverse=True, limit=1)
        return next(iter(found), None)

    # --- runs ------------------------------------------------------------------------

    def _first_of(self, ev: Event) -> Event:
        """The first event of ``ev``'s run in its stream (the run's block is contiguous).

        Galloping then binary search on x for "the first event of the stream after x is
        in the run", which is false below the block and true inside it: O(log length)
        single-row reads."""
        stream, run = ev.stream, ev.payload.get("run")
        key = (stream, run) if isinstance(run, str) else None
        if key is not None:
            with self._runs_lock:
                cached = self._firsts.get(key)
            if cached is not None and cached.seq <= ev.seq:
                return cached
        first = ev
        lo, hi = -1, ev.seq - 1  # f(lo) false (-1: below everything), f(hi) true
        step = 1
        while hi - lo > 1:  # gallop down
            x = max(ev.seq - 1 - step, lo + 1)
            probe = self._next(stream, x)
            assert probe is not None  # `ev` comes after x
            if probe.payload.get("run") == run:
                hi, first = x, probe
                step *= 2
            else:
                lo = max(x, probe.seq - 1)
                break
        while hi - lo > 1:  # then bisect
            mid = (lo + hi) // 2
            probe = self._next(stream, mid)
            assert probe is not None
            if probe.payload.get("run") == run:
                hi, first = mid, probe
            else:
                lo = max(mid, probe.seq - 1)
        if key is not None:
            with self._runs_lock:
                self._firsts[key] = first
                while len(self._firsts) > 4096:
                    self._firsts.popitem(last=False)
        return first

    def _block_at(self, last: Event) -> RunBlock:
        """The run block that ends with ``last``."""
        first = self._first_of(last)
        started = first.payload if first.payload.get("type") == "run.started" else None
        finished = last.payload if last.payload.get("type") == "run.finished" else None
        run = last.payload.get("run")
        return RunBlock(
            stream=last.stream,
            run=run if isinstance(run, str) else None,
            first_seq=first.seq,
            last_seq=last.seq,
            events=last.version - first.version + 1,
            started=_run_fields(started),
            finished=_run_fields(finished),
        )

    def _stream_runs(self, stream: str, before: int | None) -> Iterator[RunBlock]:
        """Run blocks of one stream that end before ``before``, newest first."""
        cursor = before if before is not None else self.journal.head()[0] + 1
        last = self._prev(stream, cursor)
        if last is not None and before is not None:
            after = self._next(stream, last.seq)
            if after is not None and after.payload.get("run") == last.payload.get("run"):
                # this run goes on past the cursor: an earlier page showed it
                last = self._prev(stream, self._first_of(last).seq)
        while last is not None:
            block = self._block_at(last)
            yield block
            last = self._prev(stream, block.first_seq)

    def _run_end(self, ev: Event) -> Event:
        """The newest event of ``ev``'s run (walking forward; runs end in a few pages)."""
        run = ev.payload.get("run")
        last = ev
        for nxt in self.journal.read(ev.stream, after_seq=ev.seq):
            if nxt.payload.get("run") != run:
                break
            last = nxt
        return last

    def runs(self, flt: RunFilter, *, before: int | None = None, size: int = 25) -> RunPage:
        """A page of runs, newest first (by their last event), across the kept stages."""
        streams = self._streams(flt.app, flt.stage)
        if flt.until is not None:
            bound = self.seq_at_time(flt.until, after=True)
            before = bound if before is None else min(before, bound)
        floor = self.seq_at_time(flt.since) if flt.since is not None else 0
        deadline = time.monotonic() + SCAN_SECONDS
        iters = {s: self._stream_runs(s, before) for s in streams}
        heads: dict[str, RunBlock] = {}
        for s, it in iters.items():
            nxt = next(it, None)
            if nxt is not None:
                heads[s] = nxt
        out: list[RunBlock] = []
        looked: list[RunBlock] = []
        older: int | None = None
        while heads:
            stream = max(heads, key=lambda s: heads[s].last_seq)
            block = heads[stream]
            if block.last_seq < floor or (flt.since is not None and _before(block.time, flt.since)):
                del heads[stream]
                continue
            if looked and (
                len(out) >= size or len(looked) >= RUN_BUDGET or time.monotonic() > deadline
            ):
                older = looked[-1].last_seq
                break
            looked.append(block)
            if _keep_run(block, flt):
                out.append(block)
            nxt = next(iters[stream], None)
            if nxt is None:
                del heads[stream]
            else:
                heads[stream] = nxt
        return RunPage(out, older, len(looked))

    def run_block(self, stream: str, first_seq: int) -> RunBlock:
        """The run of ``stream`` that starts at ``first_seq`` (as the runs page links it)."""
        ev = self._next(stream, first_seq - 1)
        if ev is None or ev.seq != first_seq:
            raise UnknownSequenceError(f"no event {first_seq} in stage {stream}")
        return self._block_at(self._run_end(ev))

    def run_of(self, seq: int) -> RunBlock:
        ev = self.journal.event(seq)
        return self._block_at(self._run_end(ev))

    # --- events ----------------------------------------------------------------------

    def records(self, stream: str, after: int, upto: int) -> list[HistoryRecord]:
        """Records of ``stream``'s events in ``after < seq <= upto``, with field diffs
        against the state before ``after``, and actor/host from their run."""
        return self._records(
            stream, after, self.journal.read(stream, after_seq=after, upto_seq=upto)
        )

    def _records(self, stream: str, after: int, events: Iterable[Event]) -> list[HistoryRecord]:
        folder = _Folder(show_secrets=self.show_secrets)
        _seed(folder, load_state(self.journal, stream, upto_seq=after), stream)
        out: list[HistoryRecord] = []
        for ev in events:
            rec = folder.record(ev)
            if rec.actor is None and rec.run is not None:
                started = self._first_of(ev).payload
                rec = dataclasses.replace(rec, actor=started.get("actor"), host=started.get("host"))
            out.append(rec)
        return out

    def events(self, flt: EventFilter, *, before: int | None = None, size: int = 50) -> EventPage:
        """A page of events matching ``flt``, newest first; the scan stops after SCAN_BUDGET
        events or SCAN_SECONDS, and the page then offers the older ones."""
        if flt.stream:
            streams = [flt.stream]
        elif flt.app is None and flt.stage is None:
            streams = self.journal.streams()  # stored credentials too, as `journal history`
        else:
            streams = self._streams(flt.app, flt.stage)
        if not streams:
            return EventPage([], None)
        upper = before if before is not None else self.journal.head()[0] + 1
        if flt.until is not None:
            upper = min(upper, self.seq_at_time(flt.until, after=True))
        floor = self.seq_at_time(flt.since) if flt.since is not None else 0
        one = streams[0] if len(streams) == 1 else None
        keep = set(streams)
        matched: list[Event] = []
        seen: dict[str, list[Event]] = {}  # the scanned events of the kept streams
        # actor filter: an event's actor is on its run's run.started, which a backward scan
        # meets a little later (a run is contiguous): events wait for it here
        waiting: dict[tuple[str, str], list[Event]] = {}
        scanned = 0
        reached = upper
        exhausted = True
        after = max(floor - 1, 0)  # floor is the first sequence in the time range
        deadline = time.monotonic() + SCAN_SECONDS
        for ev in self.journal.read(one, after_seq=after, upto_seq=upper - 1, reverse=True):
            scanned += 1
            reached = ev.seq
            if ev.stream in keep:
                seen.setdefault(ev.stream, []).append(ev)
                p = ev.payload
                run = p.get("run")
                if self._matches(ev, flt):
                    actor = p.get("actor")
                    if flt.actor is None:
                        matched.append(ev)
                    elif actor is None and isinstance(run, str):
                        waiting.setdefault((ev.stream, run), []).append(ev)
                    elif actor == flt.actor:
                        matched.append(ev)
                if flt.actor is not None and p.get("type") == "run.started":
                    if isinstance(run, str):
                        with self._runs_lock:
                            self._firsts[(ev.stream, run)] = ev
                    if p.get("actor") == flt.actor:
                        matched += waiting.pop((ev.stream, str(run)), [])
                    else:
                        waiting.pop((ev.stream, str(run)), None)
            if len(matched) >= size and not waiting:
                exhausted = False
                break
            if scanned >= SCAN_BUDGET or (scanned % 256 == 0 and time.monotonic() > deadline):
                exhausted = ev.seq <= after + 1
                break
        for (_stream, _run), evs in waiting.items():  # runs that began before the scan's end
            if self._first_of(evs[0]).payload.get("actor") == flt.actor:
                matched += evs
        matched.sort(key=lambda e: e.seq, reverse=True)
        older: int | None = None
        if len(matched) > size:
            matched = matched[:size]
            older = matched[-1].seq
        elif len(matched) == size and not exhausted:
            older = matched[-1].seq
        elif not exhausted:
            older = reached
        records: list[HistoryRecord] = []
        wanted = {ev.seq for ev in matched}
        for stream in {ev.stream for ev in matched}:
            lowest = min(ev.seq for ev in matched if ev.stream == stream)
            span = [ev for ev in reversed(seen[stream]) if ev.seq >= lowest]
            records += [r for r in self._records(stream, lowest - 1, span) if r.seq in wanted]
        records.sort(key=lambda r: r.seq, reverse=True)
        return EventPage(records, older, scanned, reached)

    def _matches(self, ev: Event, flt: EventFilter) -> bool:
        p = ev.payload
        if flt.resource is not None and p.get("resource") != flt.resource:
            return False
        if flt.action is not None:
            kind = str(p.get("type"))
            action = kind[len("resource.") :] if kind.startswith("resource.") else kind
            if not (action == flt.action or action.startswith(flt.action + ".")):
                return False
        if flt.since is not None and _before(p.get("time"), flt.since):
            return False
        # the actor is checked by `events`, which knows the runs it walked
        return flt.until is None or _before(p.get("time"), flt.until, inclusive=True)

    # --- time ------------------------------------------------------------------------

    def seq_at_time(self, when: datetime, *, after: bool = False) -> int:
        """The first sequence whose event's time is >= ``when`` (``after``: > ``when``), by
        binary search on seq; head + 1 when there is none."""
        head = self.journal.head()[0]
        lo, hi = 0, head + 1  # times at lo are before, at hi after (virtual ends)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            t = self._time_near(mid, hi)
            if t is None:
                hi = mid
                continue
            late = t > when if after else t >= when
            if late:
                hi = mid
            else:
                lo = mid
        return hi

    def _time_near(self, seq: int, below: int) -> datetime | None:
        for ev in self.journal.read(after_seq=seq - 1, upto_seq=below - 1, limit=8):
            t = _parse_time(ev.payload.get("time"))
            if t is not None:
                return t
        return None

    # --- state -----------------------------------------------------------------------

    def state(self, stream: str, upto: int | None = None) -> StreamState:
        return load_state(self.journal, stream, upto_seq=upto)

    def last_failures(self, stream: str) -> dict[str, str]:
        """Resources that failed in the stage's latest finished run: {resource: error}."""
        for block in self._stream_runs(stream, None):
            if block.finished is not None:
                failures = block.finished.get("failures") or []
                return {
                    str(f.get("resource")): str(f.get("error"))
                    for f in failures
                    if isinstance(f, dict)
                }
        return {}


def status_of(res: ResourceState, failures: dict[str, str]) -> str:
    """ready | pending | failed | protected | absent, as the graph colours them."""
    if res.id in failures:
        return "failed"
    if res.pending is not None:
        return "pending"
    if not res.exists:
        return "absent"
    return "protected" if not res.delete else "ready"


_RUN_KEYS: Final = (
    "type",
    "run",
    "command",
    "actor",
    "host",
    "time",
    "program",
    "target_seq",
    "status",
    "counts",
    "duration_s",
    "failures",
)


def _run_fields(payload: Json | None) -> Json | None:
    return None if payload is None else mask({k: payload.get(k) for k in _RUN_KEYS})


def _seed(folder: _Folder, state: StreamState, stream: str) -> None:
    for rid, res in state.resources.items():
        key = (stream, rid)
        folder.props[key] = res.props
        folder.outputs[key] = res.outputs
        folder.delete[key] = res.delete
    folder.exports[stream] = state.outputs


def _before(text: Any, when: datetime, *, inclusive: bool = False) -> bool:
    t = _parse_time(text)
    if t is None:
        return False
    return t <= when if inclusive else t < when


def _keep_run(block: RunBlock, flt: RunFilter) -> bool:
    if flt.actor is not None and block.actor != flt.actor:
        return False
    if flt.command is not None and block.command != flt.command:
        return False
    if flt.status is not None and block.status != flt.status:
        return False
    return not (flt.until is not None and not _before(block.time, flt.until, inclusive=True))


def now() -> datetime:
    return datetime.now(UTC)
