"""One run of one stage, from declared resources to reconciled infrastructure.

:class:`Run` orchestrates the engine's parts: ``_decide`` (what to do with a resource),
``_schedule`` (when: dependencies first, dependents first for deletes), ``_lifecycle`` (the
intent and outcome events around each provider call) and ``_recovery`` (pending operations).

A :class:`Run` holds the stage's lock, loads its state, resolves operations a crashed run
left pending, then reconciles each declared resource on a bounded thread pool as soon as the
resources it depends on are done. Every provider call is bracketed by an intent event and an
outcome event. ``finalize`` deletes orphans (and objects retired by replaces) in reverse
dependency order, but only when the whole run succeeded; ``destroy`` deletes the whole stage.
In plan mode nothing is called and nothing is written: the run only computes what it would do.

Interruption (``_interrupt``): ``stop_launching`` makes every resource not started yet fail
with ``RunInterrupted`` (no event: nothing was sent) while calls in flight finish and record
their outcomes; ``abandon`` stops waiting for them (their intents stay pending, and a late
answer is never recorded). Either way the run ends with ``run.finished`` status
``interrupted``, listing what was not started and what is left pending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from .._codec import encode, mask
from .._errors import (
    JournalError,
    ProviderError,
    RunInterrupted,
    UsageError,
    ValidationError,
)
from .._events import make_event
from .._identity import check_endpoint, credential_record, identity
from .._interrupt import interruption
from .._projection import (
    SNAPSHOT_EVERY,
    ResourceState,
    StreamState,
    apply,
    load_state,
    snapshot_state,
    stream_name,
)
from .._protocols import JournalLike as _Journal
from .._provider import Context, Endpoint, Provider, close_shared, get_provider, make_context
from .._refs import Ref, ref_to_json, resolve
from .._results import Change, Desired, Progress, Reporter, RunResult, Silent
from .._secret import Secret, is_secret_json, secret_from_json, secret_to_json
from .._settings import actor
from .._surgery import Declaration, note_planned
from ._decide import Wanted, decide
from ._lifecycle import Abandoned, Lifecycle
from ._recovery import Recovery
from ._schedule import (
    DependencyCycle,
    OnPool,
    Scheduler,
    check_acyclic,
    delete_graph,
    resource_of,
)

__all__ = ["DEFAULT_CONCURRENCY", "UNKNOWN", "Run", "default_concurrency"]

#: how many provider calls run at once unless told otherwise (JOURNAL_CONCURRENCY): with an
#: API's latency, independent resources need about ceil(N / concurrency) round trips (N = 300
#: at 100 ms: 0.69 s at 128 against 1.14 s at 64); more threads cost CPU when the API answers
#: at once (N = 1,000: +10% at 128, +30% at 256; bench/bench_scale.py). Lower when the process
#: may open few files (``default_concurrency``)
DEFAULT_CONCURRENCY: Final = 128
#: the fewest calls at once the default goes down to on a low open-files limit
_MIN_DEFAULT_CONCURRENCY: Final = 16
#: what plan mode shows for a value only a deploy can know
UNKNOWN: Final = "(known after deploy)"


#: the events every run appends: a run that appended only these changed nothing
_RUN_EVENTS: Final = frozenset({"run.started", "run.finished"})

#: how long an abandoned run waits for appends already under way before run.finished
_APPEND_DRAIN_S: Final = 10.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_concurrency() -> int:
    """``JOURNAL_CONCURRENCY``, else ``DEFAULT_CONCURRENCY`` bounded by a quarter of the
    process's open-files limit (each call in flight holds a connection; macOS's default
    soft limit of 256 gives 64)."""
    raw = os.environ.get("JOURNAL_CONCURRENCY")
    if raw is None:
        files = _open_files_limit()
        if files is None:
            return DEFAULT_CONCURRENCY
        return max(_MIN_DEFAULT_CONCURRENCY, min(DEFAULT_CONCURRENCY, files // 4))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"JOURNAL_CONCURRENCY must be a whole number >= 1, got {raw!r}")
    return value


def _open_files_limit() -> int | None:
    """The soft limit on open files (None: unlimited or unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def _unknown_outputs(provider: Provider[Any, Any]) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(provider.outputs_type):
        values[f.name] = Secret(UNKNOWN) if "Secret" in str(f.type) else UNKNOWN
    return provider.outputs_type(**values)


def _same_options(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Options compare without their unset (None) entries: journals written before providers
    declared their credentials record ``service_token: None`` for "no override"."""
    return {k: v for k, v in a.items() if v is not None} == {
        k: v for k, v in b.items() if v is not None
    }


class _Pool(ThreadPoolExecutor):
    """The run's thread pool, whose threads can be started before work is queued.

    ``ThreadPoolExecutor`` starts a thread at each ``submit`` while it has fewer than its
    maximum and none idle, and ``Thread.start`` waits until the new thread runs: with the
    earlier threads busy on the GIL, each start waited a switch interval (5 ms), and 128
    of them held the thread that hands out the work for a large part of a second. Started
    together while nothing runs yet, they cost microseconds each."""

    def prestart(self, count: int) -> None:
        """Make sure ``count`` threads (at most the maximum) exist; no-op once shut down."""
        with self._shutdown_lock:
            if self._shutdown:
                return
            missing = min(count, self._max_workers) - len(self._threads)
            for _ in range(max(0, missing)):
                try:
                    self._adjust_thread_count()
                except RuntimeError:  # the system refuses more threads: submit tries again
                    return


class Run:
    """One run of one stage. Use ``begin()`` first, then declare, then finalize/fail/destroy."""

    def __init__(
        self,
        journal: _Journal,
        app: str,
        stage: str,
        *,
        command: str = "deploy",
        concurrency: int | None = None,
        lock_timeout: float = 0.0,
        reporter: Reporter | None = None,
        program: str | None = None,
        program_hash: str | None = None,
        extra: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Secret] | None = None,
        endpoints: Mapping[str, Endpoint] | None = None,
        watch: Callable[[Iterable[Path]], None] | None = None,
    ) -> None:
        self.journal = journal
        self.app = app
        self.stage = stage
        self.stream = stream_name(app, stage)
        self.command = command
        self.plan_only = command == "plan"
        self.concurrency = concurrency or default_concurrency()
        self.lock_timeout = lock_timeout
        self.reporter: Reporter = reporter or Silent()
        self.program = program
        self.program_hash = program_hash
        self.extra = dict(extra or {})
        #: the profile's credentials (``journal configure``), by environment variable name
        self.credentials = dict(credentials or {})
        #: providers' endpoints for this run (an emulator's under ``--local``), by service
        self.endpoints = dict(endpoints or {})
        #: where providers report files to watch (``Context.watch``; ``journal dev``)
        self.watch = watch
        self.run_id = uuid.uuid4().hex[:16]
        self.state = StreamState(stream=self.stream)
        self._state_lock = threading.Lock()
        self._desired: dict[str, Desired] = {}
        self._futures: dict[str, Future[Any]] = {}
        self._queued: list[str] = []
        self._changes: list[Change] = []
        self._changes_lock = threading.Lock()
        self._exports: dict[str, Any] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lifecycle = Lifecycle(self._event, lambda: self._abandoned)
        self._scheduler: Scheduler | None = None
        self._stack = contextlib.ExitStack()
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        #: resources whose pending operation recovery could not resolve: they fail this run
        self._unresolved: dict[str, ProviderError] = {}
        self._started = 0.0
        self._begun = False
        self._done = False
        self._interruption = interruption()
        #: set by a first signal: launch nothing new
        self._stopping = False
        #: set by a second signal: stop waiting for calls in flight, record nothing they answer
        self._abandoned = False
        self._gate = threading.Condition(threading.RLock())
        self._appending = 0
        #: this run appended an event other than its own start and end
        self._changed = False
        self._not_started: list[str] = []
        self._started_recorded = False
        self.result: RunResult | None = None

    # --- start -----------------------------------------------------------------------

    def begin(self) -> None:
        """Take the stage's lock, load state, record run.started, resolve pending operations."""
        self._started = time.monotonic()
        holder = {"actor": actor(), "host": socket.gethostname(), "pid": os.getpid()}
        failure: BaseException | None = None
        try:
            if not self.plan_only:
                holder["since"] = _now()
                holder["command"] = self.command
                self._stack.enter_context(
                    self.journal.lock(self.stream, holder=holder, timeout=self.lock_timeout)
                )
                # a broken chain refuses the run before its state is even loaded (journal._chain)
                self.journal.ensure_writable()
            self.state = load_state(self.journal, self.stream)
            self._pool = _Pool(self.concurrency, thread_name_prefix="journal-run")
            self._scheduler = Scheduler(self._pool, lambda: self._stopping, self._pool.prestart)
            self._stack.callback(self._shutdown_pool)
            self._interruption.register(self)
            self._stack.callback(self._interruption.unregister, self)
            if not self.plan_only:
                started = make_event(
                    "run.started",
                    app=self.app,
                    stage=self.stage,
                    program=self.program,
                    program_hash=self.program_hash,
                    **{**holder, "command": self.command},
                    **self.extra,
                )
                with self._interruption.critical():
                    self._append(started, expected_version=self.state.version)
                    self._started_recorded = True
        except BaseException as exc:
            if not self._started_recorded:
                self._stack.close()
                raise
            failure = exc  # a second signal deferred until run.started was recorded
        try:
            if failure is not None:
                raise failure
            if not self.plan_only:
                self._recover()
        except BaseException as exc:
            # the run began: it ends with run.finished, whatever stopped the recovery
            if isinstance(exc, KeyboardInterrupt):
                self.abandon()
            self._finish([("(recovery)", str(exc) or type(exc).__name__)])
            raise
        self._begun = True

    # --- interruption ----------------------------------------------------------------

    def stop_launching(self) -> None:
        """Launch no new provider call; calls in flight finish and record their outcome."""
        self._stopping = True

    def abandon(self) -> None:
        """Stop waiting for calls in flight: their intents stay pending, and what they
        answer later is not recorded (no outcome is invented either)."""
        with self._gate:
            self._stopping = self._abandoned = True
            self._gate.notify_all()

    @property
    def interrupted(self) -> bool:
        return self._stopping

    def _check_launch(self) -> None:
        if self._stopping:
            raise RunInterrupted("not started: the run was interrupted")

    def _result(self, fut: Future[Any]) -> Any:
        """``fut.result()``, but an abandoned run stops waiting (raises ``Abandoned``)."""
        while True:
            if self._abandoned and not fut.done():
                raise Abandoned()
            try:
                return fut.result(timeout=0.1)
            except FutureTimeout:
                continue

    def _exception(self, fut: Future[Any]) -> BaseException | None:
        try:
            self._result(fut)
        except Abandoned:
            raise
        except BaseException as exc:
            return exc
        return None

    def _recover(self) -> None:
        """Resolve operations whose intent a crashed run recorded without an outcome."""
        if self._pool is None:
            raise RuntimeError("run not begun")
        recovery = Recovery(
            pool=self._pool,
            wait=self._exception,
            context=self._context,
            event=self._event,
            check_launch=self._check_launch,
            reporter=self.reporter,
            record=self._record,
        )
        recovery.resolve(self.state.pending(), self._unresolved)

    # --- declare ---------------------------------------------------------------------

    def declare(self, desired: Desired) -> Future[Any]:
        """Queue a resource; validation happens now, provider calls only after ``flush``."""
        if desired.id in self._desired:
            raise ValidationError(
                "declared twice in this app; logical ids must be unique per stage",
                resource=desired.id,
            )
        for dep in desired.deps:
            if dep not in self._desired:
                raise ValidationError(
                    f"depends on {dep!r}, which is not declared", resource=desired.id
                )
        provider = get_provider(desired.type)
        provider.validate(provider.props_type(**desired.props), resource=desired.id)
        fut: Future[Any] = Future()
        self._desired[desired.id] = desired
        self._futures[desired.id] = fut
        self._queued.append(desired.id)
        return fut

    def flush(self) -> None:
        """Start every queued resource (each waits for its dependencies, not for the queue)."""
        queued, self._queued = self._queued, []
        if queued:
            graph = {rid: self._desired[rid].deps for rid in queued}
            self._count(queued)
            self._schedule().start(graph, self._futures, self._reconcile)

    def wait(self, rid: str) -> Any:
        """The outputs of a declared resource (blocks; raises the resource's error)."""
        self.flush()
        return self._result(self._futures[rid])

    def export(self, values: Mapping[str, Any]) -> None:
        self._exports = {k: encode(v) for k, v in values.items()}

    def _count(self, keys: list[str]) -> None:
        """A counting reporter (``Progress``) learns that ``keys`` will settle, then each
        one as its future does (whatever settles it: a call, a no-op, a failure, a skip)."""
        progress = self.reporter
        if not isinstance(progress, Progress):
            return
        progress.expect(len(keys))
        for key in keys:
            self._futures[key].add_done_callback(lambda _fut: progress.settled())

    def _schedule(self) -> Scheduler:
        if self._scheduler is None:
            raise RuntimeError("run not begun")
        return self._scheduler

    # --- reconcile one resource --------------------------------------------------------

    def _context(
        self, rid: str, type_name: str, options: Mapping[str, Any] | None = None
    ) -> Context:
        """The provider's context: the resource's own credentials are the secrets in its
        recorded options (``service_token``, ...)."""
        options = options or {}
        return make_context(
            type_name,
            app=self.app,
            stage=self.stage,
            resource=rid,
            overrides={k: secret_from_json(v) for k, v in options.items() if is_secret_json(v)},
            profile=self.credentials,
            endpoints=self.endpoints,
            adopt=bool(options.get("adopt")),
            offline=self.plan_only,
            cache=self._cache,
            cache_lock=self._cache_lock,
            watch=self.watch,
        )

    def _resolve(self, d: Desired) -> tuple[dict[str, Any], dict[str, Any]]:
        """The props with every reference (at any depth) replaced by the output it names,
        and the references as recorded: ``{path: resource | {resource, output}}``."""

        def value_of(ref: Ref) -> Any:
            dep_out = self._futures[ref.resource].result()
            field = ref.output or get_provider(self._desired[ref.resource].type).ref_field
            return getattr(dep_out, field)

        values, refs = resolve(d.props, value_of)
        return values, {path: ref_to_json(ref) for path, ref in refs.items()}

    def _reconcile(self, rid: str) -> Any:
        """Decide what ``rid`` needs (no I/O but the provider's ``prepare`` and
        ``endpoint``); what calls a provider or appends an event is returned as
        :class:`OnPool`."""
        if rid in self._unresolved:
            raise self._unresolved[rid]
        d = self._desired[rid]
        provider = get_provider(d.type)
        options: dict[str, Any] = {"adopt": d.adopt}
        for name, value in sorted(d.credentials.items()):
            options[name] = secret_to_json(value)
        ctx = self._context(rid, d.type, options)
        with self._state_lock:
            cur = self.state.resources.get(rid)
            cur = ResourceState.from_json(cur.to_json()) if cur is not None else None
        endpoint = provider.endpoint(ctx)
        if endpoint is not None:
            options["endpoint"] = endpoint
        credential = credential_record(
            provider.credential(ctx), cur.options if cur is not None else None
        )
        if credential is not None:
            options["credential"] = credential
        values, refs = self._resolve(d)
        props = provider.prepare(provider.props_type(**values), ctx)
        pj = encode(props)
        if cur is not None and cur.exists:
            check_endpoint(rid, cur.options, endpoint, offline=self.plan_only)
        deps = d.deps
        decision = decide(cur, Wanted(d.type, pj, d.adopt, provider.updatable))
        action, change_diff = decision.action, decision.diff
        if self.plan_only:
            # --- issue 13 hook: `journal state import` takes the declaration from a plan
            kept = {k: v for k, v in options.items() if k in ("adopt", "service_token")}
            note_planned(rid, Declaration(d.type, pj, d.deps, refs, d.delete, kept))
            self._record(Change(rid, d.type, action, change_diff))
            if action in ("noop", "update") and cur is not None and cur.outputs is not None:
                return provider.load_outputs(cur.outputs)  # an update keeps the object's id
            return _unknown_outputs(provider)
        if action == "noop":
            assert cur is not None and cur.outputs is not None
            same_identity = identity(cur.options) == identity(options)
            if same_identity and cur.delete == d.delete and _same_options(cur.options, options):
                # nothing to call, nothing to record: decided on this thread
                self._record(Change(rid, d.type, "noop"))
                return provider.load_outputs(cur.outputs)
            return OnPool(lambda: self._noop_recorded(provider, ctx, props, cur, d, options))
        common = {"deps": deps, "refs": refs, "delete": d.delete, "options": options}
        return OnPool(
            lambda: self._call(
                rid,
                d.type,
                action,
                change_diff,
                lambda: self._lifecycle.apply(action, provider, ctx, props, pj, cur, common),
            )
        )

    def _noop_recorded(
        self,
        provider: Provider[Any, Any],
        ctx: Context,
        props: Any,
        cur: ResourceState,
        d: Desired,
        options: dict[str, Any],
    ) -> Any:
        """An unchanged object whose identity or delete policy this run changes: confirm the
        new identity with the API, then record the policy."""
        assert cur.outputs is not None
        if identity(cur.options) != identity(options):
            options = self._confirmed_identity(provider, ctx, props, cur, options)
        if cur.delete != d.delete or not _same_options(cur.options, options):
            self._event("resource.policy.changed", d.id, d.type, delete=d.delete, options=options)
        self._record(Change(d.id, d.type, "noop"))
        return provider.load_outputs(cur.outputs)

    @staticmethod
    def _confirmed_identity(
        provider: Provider[Any, Any],
        ctx: Context,
        props: Any,
        cur: ResourceState,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """A run with other credentials (or a local API with an identity, where the object
        was recorded as "local") records them only once it sees the object with them; else
        the identity that created the object stays recorded."""
        assert cur.outputs is not None
        try:
            seen = provider.read(props, provider.load_outputs(cur.outputs), ctx) is not None
        except Exception:
            seen = False
        if seen:
            return options
        kept = {k: v for k, v in options.items() if k not in ("endpoint", "credential")}
        return {**kept, **identity(cur.options)}

    def _call(
        self,
        rid: str,
        type_name: str,
        action: str,
        change_diff: dict[str, Any],
        work: Callable[[], Any],
    ) -> Any:
        self._check_launch()
        t0 = time.monotonic()
        self.reporter.resource(rid, type_name, action, "start", 0.0, None)
        try:
            out = work()
        except Exception as exc:
            secs = time.monotonic() - t0
            self.reporter.resource(rid, type_name, action, "failed", secs, str(exc))
            self._record(Change(rid, type_name, action, change_diff, error=str(exc), seconds=secs))
            raise
        secs = time.monotonic() - t0
        self.reporter.resource(rid, type_name, action, "done", secs, None)
        self._record(Change(rid, type_name, action, change_diff, seconds=secs))
        return out

    # --- events ----------------------------------------------------------------------

    def _event(self, name: str, rid: str, tname: str, **fields: Any) -> None:
        self._append(make_event(name, resource=rid, resource_type=tname, **fields))

    def _append(
        self,
        payload: dict[str, Any],
        *,
        expected_version: int | None = None,
        final: bool = False,
    ) -> None:
        """Append one event. Once the run is abandoned only its ``final`` events (the run's
        end) are appended: a call in flight that answers late records nothing."""
        with self._gate:
            if self._abandoned and not final:
                raise Abandoned()
            self._appending += 1
        try:
            payload.setdefault("run", self.run_id)
            payload["time"] = _now()
            if payload.get("type") not in _RUN_EVENTS:
                self._changed = True
            events = self.journal.append(self.stream, [payload], expected_version=expected_version)
            with self._state_lock:
                for ev in events:
                    apply(self.state, ev.seq, ev.version, ev.payload)
        finally:
            with self._gate:
                self._appending -= 1
                self._gate.notify_all()

    def _record(self, change: Change) -> None:
        with self._changes_lock:
            self._changes.append(change)

    # --- finish ----------------------------------------------------------------------

    def finalize(self) -> RunResult:
        """Wait for every declared resource; if all succeeded, delete orphans and retired
        objects; record exports; end the run."""
        try:
            self.flush()
            failures = self._wait_declared()
            if not failures and not self._stopping:
                with self._state_lock:
                    orphans = [r for r in self.state.resources if r not in self._desired]
                failures += self._delete(orphans, include_retired=True)
        except KeyboardInterrupt:
            self.abandon()
            self._finish([])
            raise
        return self._finish(failures)

    def fail(self, exc: BaseException) -> RunResult:
        """The program failed: let what is in flight finish, delete nothing, record it.
        A KeyboardInterrupt abandons what is in flight instead of waiting for it."""
        if isinstance(exc, KeyboardInterrupt):
            self.abandon()
        try:
            failures = self._wait_declared(started_only=True)
        except KeyboardInterrupt:
            self.abandon()
            failures = []
        if not isinstance(exc, KeyboardInterrupt | RunInterrupted):
            failures.insert(0, ("(program)", f"{type(exc).__name__}: {exc}"))
        return self._finish(failures)

    def destroy(self) -> RunResult:
        """Delete every resource of the stage, in reverse dependency order."""
        with self._state_lock:
            everything = list(self.state.resources)
        try:
            failures = self._delete(everything, include_retired=True)
        except KeyboardInterrupt:
            self.abandon()
            self._finish([], record_outputs=False)
            raise
        return self._finish(failures, record_outputs=False)

    def _wait_declared(self, started_only: bool = False) -> list[tuple[str, str]]:
        if started_only:
            for rid in self._queued:
                self._futures[rid].cancel()
            self._queued = []
        failures: list[tuple[str, str]] = []
        for rid, fut in list(self._futures.items()):
            if fut.cancelled():
                continue
            exc = self._exception(fut)
            if isinstance(exc, RunInterrupted):
                self._not_started.append(rid)
            elif exc is not None:
                failures.append((rid, str(exc)))
        return failures

    def _delete(self, rids: list[str], *, include_retired: bool) -> list[tuple[str, str]]:
        """Delete (or forget) resources and retired objects, dependents first, concurrently."""
        tasks: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {}
        with self._state_lock:
            for rid in rids:
                res = self.state.resources[rid]
                if res.outputs is not None:
                    tasks[f"{rid}#current"] = (rid, "current", res.outputs, res.deps)
            if include_retired:
                for rid, res in self.state.resources.items():
                    for i, old in enumerate(res.retired):
                        tasks[f"{rid}#retired{i}"] = (
                            rid,
                            "retired",
                            old["outputs"],
                            old.get("deps", []),
                        )
        if not tasks:
            return []
        graph = delete_graph({key: (rid, deps) for key, (rid, _t, _o, deps) in tasks.items()})
        try:
            check_acyclic(graph)
        except DependencyCycle as cycle:  # a journal whose deps go round: delete none of them
            return [(rid, str(cycle)) for rid in cycle.resources]
        for key in tasks:
            self._futures[key] = Future()
        self._count(list(tasks))
        self._schedule().start(graph, self._futures, lambda key: self._delete_one(*tasks[key]))
        failures = []
        for key in tasks:
            exc = self._exception(self._futures[key])
            if isinstance(exc, RunInterrupted):
                self._not_started.append(tasks[key][0])
            elif exc is not None:
                failures.append((tasks[key][0], str(exc)))
        return failures

    def _delete_one(self, rid: str, target: str, outputs: dict[str, Any], deps: list[str]) -> Any:
        """Plan the delete of one object here; the call (or forgetting it) is :class:`OnPool`."""
        if rid in self._unresolved:
            raise self._unresolved[rid]
        with self._state_lock:
            res = self.state.resources[rid]
            protected = not res.delete
            tname, props_json, options = res.type, res.props, res.options
        if target == "retired":
            props_json = next(
                (r["props"] for r in res.retired if r["outputs"] == outputs), props_json
            )
        if self.plan_only:
            gone = decide(dataclasses.replace(res, props=props_json), None)
            self._record(Change(rid, tname, gone.action, gone.diff))
            return
        if protected:
            return OnPool(lambda: self._forget(rid, tname, target, outputs))
        provider = get_provider(tname)
        ctx = self._context(rid, tname, options)
        endpoint = provider.endpoint(ctx)
        check_endpoint(rid, options, endpoint)

        def work() -> None:
            self._lifecycle.delete(
                provider,
                ctx,
                target=target,
                props_json=props_json,
                outputs=outputs,
                tname=tname,
                options=options,
                endpoint=endpoint,
            )

        return OnPool(lambda: self._call(rid, tname, "delete", {}, work))

    def _forget(self, rid: str, tname: str, target: str, outputs: dict[str, Any]) -> None:
        """A delete-protected object leaves the stage without being deleted."""
        self._check_launch()
        self._event(
            "resource.forgotten",
            rid,
            tname,
            reason="delete protection",
            target=target,
            outputs=outputs,
        )
        self._record(Change(rid, tname, "forget"))
        self.reporter.resource(rid, tname, "forget", "done", 0.0, None)

    def _finish(self, failures: list[tuple[str, str]], record_outputs: bool = True) -> RunResult:
        if self.result is not None:
            return self.result
        # a second signal while the run records its end is raised after it (with the result)
        with self._interruption.critical():
            if self._stopping:
                status = "interrupted"
            else:
                status = "failed" if failures else ("planned" if self.plan_only else "succeeded")
            duration = time.monotonic() - self._started
            not_started = self._never_started() if self._stopping else []
            try:
                if not self.plan_only and self._started_recorded:
                    self._record_end(status, failures, not_started, duration, record_outputs)
            finally:
                self._close()
            with self._state_lock:
                pending = sorted(r.id for r in self.state.pending())
            outputs = self._exports if self._exports is not None else self.state.outputs
            self.result = RunResult(
                run_id=self.run_id,
                stream=self.stream,
                command=self.command,
                status=status,
                duration_s=duration,
                changes=sorted(self._changes, key=lambda c: c.resource),
                failures=failures,
                outputs=mask(outputs) if self.plan_only else outputs,
                not_started=not_started,
                pending=pending,
            )
        return self.result

    def _never_started(self) -> list[str]:
        """Resources (or objects to delete) whose call never started: interrupted before
        launch, or still waiting for a dependency when the run was abandoned."""
        with self._state_lock:
            pending = {r.id for r in self.state.pending()}
        out = set(self._not_started)
        for key, fut in list(self._futures.items()):
            rid = resource_of(key)
            if fut.cancelled() or rid in pending:
                continue
            if not fut.done() or isinstance(fut.exception(), RunInterrupted):
                out.add(rid)
        return sorted(out)

    def _record_end(
        self,
        status: str,
        failures: list[tuple[str, str]],
        not_started: list[str],
        duration: float,
        record_outputs: bool,
    ) -> None:
        if self._abandoned:
            # appends already under way finish first (bounded): run.finished comes last
            with self._gate:
                self._gate.wait_for(lambda: self._appending == 0, timeout=_APPEND_DRAIN_S)
        done = status in ("succeeded", "failed")
        exports = self._exports
        if done and record_outputs and not failures and exports not in (None, self.state.outputs):
            self._append(make_event("outputs.recorded", outputs=exports), final=True)
        if done and self.command == "destroy" and not failures and self.state.outputs:
            self._append(make_event("outputs.recorded", outputs={}), final=True)
        counts: dict[str, int] = {}
        with self._changes_lock:
            changes = list(self._changes)
        for c in changes:
            key = "failed" if c.error is not None else c.action
            counts[key] = counts.get(key, 0) + 1
        extra: dict[str, Any] = {}
        if status == "interrupted":
            with self._state_lock:
                pending = sorted(r.id for r in self.state.pending())
            extra = {"not_started": not_started, "pending": pending, "abandoned": self._abandoned}
        self._append(
            make_event(
                "run.finished",
                status=status,
                counts=counts,
                duration_s=round(duration, 4),
                failures=[{"resource": r, "error": e} for r, e in failures],
                **extra,
            ),
            final=True,
        )
        with contextlib.suppress(JournalError):
            # a run that changed nothing (a no-op) leaves the snapshot where it was until
            # the journal has moved on by SNAPSHOT_EVERY events
            every = 1 if self._changed else SNAPSHOT_EVERY
            snapshot_state(self.journal, self.state, every=every)

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            # an abandoned run leaves its calls in flight behind (they record nothing)
            self._pool.shutdown(wait=not self._abandoned, cancel_futures=True)

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._abandoned:
            self._shutdown_pool()  # calls in flight end before their clients are closed
        if self._abandoned:  # calls in flight may still use them: only forget them
            self._cache.clear()
        else:
            close_shared(self._cache)
        self._stack.close()
