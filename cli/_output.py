"""Terminal or plain output, and the progress reporter the engine calls during a run.

On a terminal (stdout is a TTY and ``CI`` is not set) progress lines carry symbols and, unless
``NO_COLOR`` is set (https://no-color.org) or ``TERM=dumb``, colour. Elsewhere every line is
plain text, one event per line, so logs read well and diff cleanly. Everything shown goes
through ``journal._codec.mask`` first: secrets appear only when the user asks for them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
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
        # re-entrant: a signal handler (``journal._interrupt``) prints from the main thread,
        # possibly while that thread is inside echo()
        self._lock = threading.RLock()

    # --- writing -----------------------------------------------------------------------

    def echo(self, text: str = "") -> None:
        with self._lock:
            click.echo(text, color=self.color)

    def err(self, text: str) -> None:
        with self._lock:
            click.echo(text, err=True, color=self.color)

    def warn(self, text: str) -> None:
        self.err(self.style("warning: ", fg="yellow", bold=True) + text)

    def style(self, text: str, **styles: Any) -> str:
        return click.style(text, **styles) if self.color else text

    def symbol(self, fancy: str, plain: str) -> str:
        return fancy if self.unicode else plain

    def reporter(self) -> ProgressReporter:
        return ProgressReporter(self)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressReporter:
    """The engine's ``Reporter``: one line when a provider call starts, one when it ends."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.finished: list[tuple[str, str, float, str | None]] = []

    def resource(
        self,
        resource: str,
        type_name: str,
        action: str,
        phase: str,
        seconds: float,
        error: str | None,
    ) -> None:
        doing, done = VERBS.get(action, (action, action))
        what = f"{resource} ({type_name})"
        out = self.out
        if phase == "start":
            if out.terminal:
                mark = out.style(out.symbol("…", "..."), dim=True)
                self._echo(f"  {mark} {doing} {what}")
            else:
                self._echo(f"{doing} {what}")
            return
        self.finished.append((resource, action, seconds, error))
        timing = f"{seconds:.2f}s"
        if phase == "failed" or error is not None:
            if out.terminal:
                mark = out.style(out.symbol("✗", "x"), fg="red", bold=True)
                self._echo(f"  {mark} {action} failed: {what} after {timing}: {error}")
            else:
                self._echo(f"{action} failed: {what} after {timing}: {error}")
            return
        if out.terminal:
            color = PLAN_MARK.get(action, ("", "green"))[1]
            mark = out.style(out.symbol("✓", "ok"), fg=color, bold=True)
            self._echo(f"  {mark} {done} {what} " + out.style(timing, dim=True))
        else:
            self._echo(f"{done} {what} in {timing}")

    def message(self, text: str) -> None:
        self._echo(self.out.style(text, dim=True) if self.out.terminal else text)

    def _echo(self, text: str) -> None:
        if self.out.progress_to_stderr:
            self.out.err(text)
        else:
            self.out.echo(text)


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
