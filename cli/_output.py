"""Terminal or plain output, and the progress reporter the engine calls during a run.

On a terminal (stdout is a TTY and ``CI`` is not set) a run shows a live ``done/total`` counter
on one line rewritten in place, with a line above it for each resource that changed or failed;
lines carry symbols and, unless ``NO_COLOR`` is set (https://no-color.org) or ``TERM=dumb``,
colour. Elsewhere (a pipe, a CI log) every line is plain text, one per resource that changed or
failed, so logs read well and diff cleanly; unchanged resources print nothing either way.
Everything shown goes through ``journal._codec.mask`` first: secrets appear only when the user
asks for them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from journal import _settings

if TYPE_CHECKING:
    from journal._engine import Change, RunResult

DEBUG_ENV = "JOURNAL_DEBUG"
#: ``ctx.meta`` key set by ``-v/--verbose``
VERBOSE_KEY = "journal.verbose"
#: ``ctx.meta`` key: the command line asked for Terraform's exit codes (errors exit 1)
DETAILED_KEY = "journal.detailed_exitcode"
#: the version of the ``--json`` document of deploy and plan (docs/schemas/run.schema.json)
RUN_SCHEMA_VERSION = 1
PROGRAM_FAILURE = "(program)"


def exit_code(code: int) -> int:
    """The exit status of a failure with ``code``: with ``--detailed-exitcode`` (Terraform's
    codes) every error is 1, as 2 means "changes pending"."""
    ctx = click.get_current_context(silent=True)
    detailed = ctx is not None and bool(ctx.meta.get(DETAILED_KEY))
    return 1 if detailed and code not in (0, 130) else code


def debug() -> bool:
    """Tracebacks wanted: ``-v/--verbose`` on this command line, or ``JOURNAL_DEBUG=1``."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(VERBOSE_KEY):
        return True
    return _truthy_env(os.environ.get(DEBUG_ENV))


class AlreadyShown(Exception):
    """A failure whose message the output already showed (a progress line, a plan line):
    the CLI exits with ``exit_code`` without repeating it (the traceback with --verbose)."""

    def __init__(self, error: BaseException, exit_code: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.exit_code = exit_code


MASK = _settings.MASK

#: action -> (doing, done)
VERBS: dict[str, tuple[str, str]] = {
    "create": ("creating", "created"),
    "adopt": ("adopting", "adopted"),
    "update": ("updating", "updated"),
    "replace": ("replacing", "replaced"),
    "delete": ("deleting", "deleted"),
    "forget": ("forgetting", "forgotten"),
    "recover": ("recovering", "recovered"),
    "noop": ("checking", "unchanged"),
}
#: plan symbols and colours
PLAN_MARK: dict[str, tuple[str, str]] = {
    "create": ("+", "green"),
    "adopt": ("=", "green"),
    "update": ("~", "yellow"),
    "replace": ("-/+", "magenta"),
    "delete": ("-", "red"),
    "forget": ("-", "yellow"),
    "noop": (" ", "white"),
}
_ORDER = ("create", "adopt", "update", "replace", "delete", "forget", "recover", "noop", "failed")


def _truthy_env(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


class Output:
    """Where and how the CLI writes. One per command invocation.

    ``progress_to_stderr`` (``--json``): progress lines go to stderr, so stdout holds only
    the document."""

    progress_to_stderr = False

    def __init__(self) -> None:
        env = os.environ
        out_tty = _isatty(sys.stdout)
        self.terminal = out_tty and not _truthy_env(env.get("CI"))
        self.color = self.terminal and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
        self.interactive = _isatty(sys.stdin)
        encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        self.unicode = self.terminal and encoding.startswith("utf")
        self._dumb = env.get("TERM") == "dumb"
        # re-entrant: a signal handler (``journal._interrupt``) prints from the main thread,
        # possibly while that thread is inside echo(); the one lock of the progress output too
        self._lock = threading.RLock()
        #: the reporter whose counter line is on screen (or whose lines wait to be written)
        self._live: ProgressReporter | None = None

    @property
    def live(self) -> bool:
        """Progress as a counter line rewritten in place (a terminal that moves its cursor;
        with ``--json``, only if stderr is one too)."""
        return (
            self.terminal
            and not self._dumb
            and (not self.progress_to_stderr or _isatty(sys.stderr))
        )

    # --- writing -----------------------------------------------------------------------

    def echo(self, text: str = "") -> None:
        with self._lock:
            self.clear_live()
            click.echo(text, color=self.color)

    def err(self, text: str) -> None:
        with self._lock:
            self.clear_live()
            click.echo(text, err=True, color=self.color)

    def clear_live(self) -> None:
        """Before any other line: write the progress lines still waiting and take the
        counter line off the screen (the next progress draws it again)."""
        with self._lock:
            live, self._live = self._live, None
            if live is not None:
                live.suspend()

    def warn(self, text: str) -> None:
        self.err(self.style("warning: ", fg="yellow", bold=True) + text)

    def style(self, text: str, **styles: Any) -> str:
        return click.style(text, **styles) if self.color else text

    def symbol(self, fancy: str, plain: str) -> str:
        return fancy if self.unicode else plain

    def reporter(self) -> ProgressReporter:
        return ProgressReporter(self)


#: the Output whose counter line may be on screen: ``clear_live()`` for code that prints
#: without an Output (the error handler of ``journal.cli._main``)
_on_screen: Output | None = None


def clear_live() -> None:
    """Take a run's counter line off the screen, if one is there, before printing."""
    if _on_screen is not None:
        _on_screen.clear_live()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


#: at most this often (seconds) the counter line is redrawn; a change waits for the next draw
REDRAW_INTERVAL = 0.1
#: carriage return + clear to the end of the line: the counter line is rewritten in place
_CLEAR = "\r\x1b[K"
#: the redraws' clock and timer (tests replace them to count redraws)
_clock = time.monotonic
_Timer = threading.Timer


class ProgressReporter:
    """The engine's ``Reporter`` (and ``Progress``), one per run (or per command).

    On a terminal (``Output.live``): a ``done/total`` counter on one line rewritten in place
    at most every ``REDRAW_INTERVAL`` (and once more when the last resource settles), with a
    line above it for each resource that changed or failed, written with the next redraw: one
    write per redraw, whatever N. Elsewhere: one line per resource that changed or failed,
    as it ends. Nothing when a call starts; nothing for an unchanged resource.

    Everything happens under the Output's lock (calls come from the engine's worker threads);
    ``Output.echo``/``err`` take the counter off the screen before writing their line."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.live = out.live
        self.total = 0
        self.done = 0
        self.running = 0
        self.failed = 0
        #: calls started and not ended, by (resource, action) (a forget makes no call)
        self._started: dict[tuple[str, str], int] = {}
        self._waiting: list[str] = []
        self._shown = False
        self._dirty = False
        self._drawn_at = -REDRAW_INTERVAL
        self._timer: threading.Timer | None = None
        #: a counter wider than the terminal would wrap, and ``\r`` only rewrites its last row
        self._width = shutil.get_terminal_size().columns - 1 if self.live else 0

    # --- Reporter ------------------------------------------------------------------------

    def resource(
        self,
        resource: str,
        type_name: str,
        action: str,
        phase: str,
        seconds: float,
        error: str | None,
    ) -> None:
        if phase == "start":
            if self.live:
                with self.out._lock:
                    key = (resource, action)
                    self._started[key] = self._started.get(key, 0) + 1
                    self.running += 1
                    self._changed()
            return
        failed = phase == "failed" or error is not None
        line = self._line(resource, type_name, action, seconds, error if failed else None)
        if not self.live:
            self._echo(line)
            return
        with self.out._lock:
            key = (resource, action)
            started = self._started.pop(key, 0)
            if started:
                self.running -= 1
                if started > 1:
                    self._started[key] = started - 1
            self.failed += failed
            self._waiting.append(line)
            self._changed()

    def message(self, text: str) -> None:
        self._echo(self.out.style(text, dim=True) if self.out.terminal else text)

    # --- Progress ------------------------------------------------------------------------

    def expect(self, count: int) -> None:
        if self.live and count:
            with self.out._lock:
                self.total += count
                self._changed()

    def settled(self) -> None:
        if self.live:
            with self.out._lock:
                self.done += 1
                self._changed(final=self.done >= self.total)

    # --- lines -----------------------------------------------------------------------------

    def _line(
        self, resource: str, type_name: str, action: str, seconds: float, error: str | None
    ) -> str:
        what = f"{resource} ({type_name})"
        timing = f"{seconds:.2f}s"
        out = self.out
        if error is not None:
            if out.terminal:
                mark = out.style(out.symbol("✗", "x"), fg="red", bold=True)
                return f"  {mark} {action} failed: {what} after {timing}: {error}"
            return f"{action} failed: {what} after {timing}: {error}"
        done = VERBS.get(action, (action, action))[1]
        if out.terminal:
            color = PLAN_MARK.get(action, ("", "green"))[1]
            mark = out.style(out.symbol("✓", "ok"), fg=color, bold=True)
            return f"  {mark} {done} {what} " + out.style(timing, dim=True)
        return f"{done} {what} in {timing}"

    def counter_text(self) -> str:
        """``  412/1000 done, 64 in progress, 1 failed``"""
        text = f"  {self.done}/{self.total} done"
        if self.running:
            text += f", {self.running} in progress"
        if self.failed:
            text += f", {self.failed} failed"
        return self.out.style(text[: max(self._width, 20)], dim=True)

    def _echo(self, text: str) -> None:
        if self.out.progress_to_stderr:
            self.out.err(text)
        else:
            self.out.echo(text)

    # --- the counter line (terminal; under the Output's lock) --------------------------------

    def _changed(self, final: bool = False) -> None:
        global _on_screen
        out = self.out
        if out._live is not self:
            out.clear_live()  # another run's counter (journal dev): its lines first
            out._live = self  # what waits here is written before any other line
            _on_screen = out
        self._dirty = True
        now = _clock()
        wait = self._drawn_at + REDRAW_INTERVAL - now
        if final or wait <= 0:
            self._draw(now)
        elif self._timer is None:
            # draw what changed in the meantime even if nothing else happens (a long call)
            timer = self._timer = _Timer(wait, self._tick)
            timer.args = (timer,)
            timer.daemon = True
            timer.start()

    def _tick(self, timer: threading.Timer) -> None:
        with self.out._lock:
            if timer is not self._timer:
                return  # cancelled, or replaced, while it waited for the lock
            self._timer = None
            if self._dirty:
                self._draw(_clock())

    def _draw(self, now: float) -> None:
        if self._timer is not None:  # this draw shows what it was waiting for
            self._timer.cancel()
            self._timer = None
        parts = [_CLEAR] if self._shown else []
        parts += [line + "\n" for line in self._waiting]
        self._waiting.clear()
        self._shown = self.total > 0
        if self._shown:
            parts.append(self.counter_text())
        self._write("".join(parts))
        if not self._shown and self.out._live is self:
            self.out._live = None
        self._dirty = False
        self._drawn_at = now

    def suspend(self) -> None:
        """Write the lines still waiting and clear the counter line (``Output.clear_live``)."""
        with self.out._lock:
            parts = [_CLEAR] if self._shown else []
            parts += [line + "\n" for line in self._waiting]
            self._waiting.clear()
            self._shown = self._dirty = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if parts:
                self._write("".join(parts))

    def _write(self, text: str) -> None:
        if not text:
            return
        stream = sys.stderr if self.out.progress_to_stderr else sys.stdout
        stream.write(text)
        stream.flush()


# --- formatting ----------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """One JSON value as a short readable text (masked values stay masked)."""
    if value == MASK:
        return MASK
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def reveal(value: Any) -> Any:
    """JSON with ``{"$secret": ...}`` replaced by the plaintext (``--show-secrets`` only)."""
    if isinstance(value, dict):
        if len(value) == 1 and "$secret" in value:
            return value["$secret"]
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def shown(value: Any, show_secrets: bool) -> Any:
    from journal._codec import mask

    return reveal(value) if show_secrets else mask(value)


def counts_text(counts: Mapping[str, int], *, plan: bool = False) -> str:
    parts = []
    for key in sorted(counts, key=lambda k: (_ORDER.index(k) if k in _ORDER else 99, k)):
        n = counts[key]
        if plan:
            label = "unchanged" if key == "noop" else f"to {key}"
        else:
            label = VERBS.get(key, (key, key))[1]
        parts.append(f"{n} {label}")
    return ", ".join(parts) if parts else "nothing to do"


def summary_text(result: RunResult) -> str:
    """``demo/dev: deploy succeeded in 1.23s: 2 created, 1 unchanged``; a failed run says
    what failed first: ``demo/dev: deploy failed in 0.10s: project failed; 1 created``."""
    plan = result.status == "planned"
    verb = "plan" if plan else f"{result.command} {result.status}"
    head = f"{result.stream}: {verb} in {result.duration_s:.2f}s: "
    what = failed_text(result.failures)
    counts = {k: v for k, v in result.counts.items() if k != "failed"} if what else result.counts
    if what:
        return head + what + (f"; {counts_text(counts, plan=plan)}" if counts else "")
    return head + counts_text(counts, plan=plan)


def failed_text(failures: Sequence[tuple[str, str]]) -> str:
    """What failed, causes first: ``project failed (skipped: connection, database)``,
    ``the program failed``.

    A resource skipped because one it depends on failed is listed as skipped; the program
    failing because it read a failed resource (its error is that resource's) is not named."""
    causes = sorted({rid for rid, err in failures if rid != PROGRAM_FAILURE and not _skipped(err)})
    skipped = sorted({rid for rid, err in failures if rid != PROGRAM_FAILURE and _skipped(err)})
    resource_errors = {err for rid, err in failures if rid != PROGRAM_FAILURE}
    program = any(
        rid == PROGRAM_FAILURE and not any(err.endswith(": " + e) for e in resource_errors)
        for rid, err in failures
    )
    parts = ["the program"] if program else []
    parts += [_names(causes)] if causes else []
    what = " and ".join(parts) + " failed" if parts else ""
    if skipped:
        listed = f"skipped: {_names(skipped)}" if len(skipped) <= 3 else f"{len(skipped)} skipped"
        what = f"{what} ({listed})" if what else listed
    return what


def _names(names: list[str]) -> str:
    if len(names) > 3:
        return f"{len(names)} resources ({', '.join(names[:3])}, ...)"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _skipped(error: str) -> bool:
    return error.startswith("skipped: ")


def change_lines(out: Output, change: Change, *, plan: bool) -> list[str]:
    """A resource's line and, for a plan, its field-level diff (already masked)."""
    mark, color = PLAN_MARK.get(change.action, ("?", "white"))
    if change.action == "noop":
        label = "unchanged"
    elif plan:
        label = change.action
    else:
        label = VERBS.get(change.action, (change.action, change.action))[1]
    if change.action == "forget":
        label = "forget (delete protection: the remote object is kept)"
    head = f"{mark:>3} {change.resource} ({change.type}): {label}"
    if change.error is not None:
        head += f": failed: {change.error}"
    lines = [out.style(head, fg=color) if change.action != "noop" else head]
    if plan and change.action in ("create", "adopt"):
        for field, (_old, new) in change.diff.items():
            if new is not None:
                lines.append(f"      {field} = {value_text(new)}")
    elif plan and change.action in ("update", "replace"):
        for field, (old, new) in change.diff.items():
            lines.append(f"      {field}: {value_text(old)} -> {value_text(new)}")
    return lines


def outputs_lines(outputs: Mapping[str, Any], *, show_secrets: bool = False) -> list[str]:
    values = shown(dict(outputs), show_secrets)
    width = max((len(k) for k in values), default=0)
    return [f"  {k.ljust(width)} = {value_text(v)}" for k, v in values.items()]


# --- machine-readable forms --------------------------------------------------------------


def change_json(change: Change) -> dict[str, Any]:
    """A change as JSON: the diff as ``{field: {"old": ..., "new": ...}}`` (already masked)."""
    from journal._codec import mask

    return {
        "resource": change.resource,
        "type": change.type,
        "action": change.action,
        "diff": {f: {"old": mask(old), "new": mask(new)} for f, (old, new) in change.diff.items()},
        "error": change.error,
    }


def result_json(result: RunResult) -> dict[str, Any]:
    from journal._codec import mask

    app, _, stage = result.stream.rpartition("/")
    return {
        "app": app,
        "stage": stage,
        "status": result.status,
        "duration_s": round(result.duration_s, 3),
        "counts": dict(sorted(result.counts.items())),
        "changes": [change_json(c) for c in result.changes],
        "failures": [{"resource": rid, "error": err} for rid, err in result.failures],
        "outputs": mask(result.outputs),
        "pending": list(result.pending),
        "not_started": list(result.not_started),
    }


def run_document(
    command: str,
    results: Sequence[RunResult],
    *,
    error: BaseException | None = None,
    exit_code: int = 0,
) -> dict[str, Any]:
    """The one JSON document ``deploy --json`` / ``plan --json`` print on stdout
    (docs/schemas/run.schema.json). ``status``: ``succeeded``, ``planned``, ``failed``
    (a resource or the program failed), ``error`` (nothing ran: a bad password, no program)
    or ``interrupted``; ``changes_pending``: a plan found something to do."""
    runs = [result_json(r) for r in results]
    statuses = {r.status for r in results}
    if "interrupted" in statuses or exit_code == 130:
        status = "interrupted"
    elif "failed" in statuses or (error is not None and results):
        status = "failed"
    elif error is not None:
        status = "error"
    else:
        status = "planned" if command == "plan" else "succeeded"
    counts: dict[str, int] = {}
    for r in results:
        for key, n in r.counts.items():
            counts[key] = counts.get(key, 0) + n
    return {
        "version": RUN_SCHEMA_VERSION,
        "command": command,
        "status": status,
        "changes_pending": any(c.action != "noop" for r in results for c in r.changes),
        "counts": dict(sorted(counts.items())),
        "runs": runs,
        "error": None if error is None else {"message": str(error), "exit_code": exit_code},
    }
