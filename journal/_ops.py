"""Whole-stage operations that need no program: destroy, rollback, and finding a stage's app.

``destroy`` and ``rollback`` work from the journal alone (the program may be broken or gone):
the providers are found by the type names recorded with each resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._codec import decode
from ._engine import Desired, Reporter, Run, RunResult
from ._errors import UsageError
from ._projection import ResourceState, load_state
from ._provider import Endpoint
from ._refs import place, refs_from_json
from ._secret import Secret, is_secret_json, secret_from_json

__all__ = ["destroy_stage", "find_app", "rollback_stage", "stage_streams"]


def stage_streams(journal: Any) -> list[tuple[str, str]]:
    out = []
    for stream in journal.streams():
        app, _, stage = stream.rpartition("/")
        if app and not app.startswith("_"):
            out.append((app, stage))
    return sorted(out)


def find_app(journal: Any, stage: str, app: str | None = None) -> str:
    """The app whose stage ``stage`` the journal holds (``app`` given: checked)."""
    streams = stage_streams(journal)
    apps = sorted({a for a, s in streams if s == stage})
    if app is not None:
        if app not in apps:
            raise UsageError(
                f"the journal has no stage {stage!r} of app {app!r}"
                + (f"; it has: {', '.join(f'{a}/{s}' for a, s in streams)}" if streams else "")
            )
        return app
    if len(apps) == 1:
        return apps[0]
    if not apps:
        known = ", ".join(f"{a}/{s}" for a, s in streams) or "nothing yet"
        raise UsageError(f"the journal has no stage {stage!r} (it holds {known}); pass --stage")
    raise UsageError(f"several apps have a stage {stage!r} ({', '.join(apps)}); pass --app")


def destroy_stage(
    journal: Any,
    app: str,
    stage: str,
    *,
    reporter: Reporter | None = None,
    concurrency: int | None = None,
    lock_timeout: float = 0.0,
    plan_only: bool = False,
    credentials: Mapping[str, Secret] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    results: list[RunResult] | None = None,
) -> RunResult:
    """Delete every resource of the stage in reverse dependency order (protected ones are
    forgotten). A failed delete leaves that resource, and what depends on it, in the journal.
    ``results`` gets the run's result, also when an interruption raises KeyboardInterrupt."""
    run = Run(
        journal,
        app,
        stage,
        command="plan" if plan_only else "destroy",
        reporter=reporter,
        concurrency=concurrency,
        lock_timeout=lock_timeout,
        credentials=credentials,
        endpoints=endpoints,
    )
    try:
        run.begin()
        return run.destroy()
    finally:
        if results is not None and run.result is not None:
            results.append(run.result)


def _desired_from_state(res: ResourceState) -> Desired:
    """A recorded resource as a declaration: its props with each recorded reference put
    back at its path (``bindings.HYPERDRIVE``; top-level fields in older journals), and its
    own credentials (the secrets in its options)."""
    props: dict[str, Any] = {k: decode(v) for k, v in res.props.items()}
    recorded: Mapping[str, Any] = res.refs
    for path, ref in refs_from_json(recorded).items():
        place(props, path, ref)
    return Desired(
        id=res.id,
        type=res.type,
        props=props,
        delete=res.delete,
        adopt=False,
        credentials={k: secret_from_json(v) for k, v in res.options.items() if is_secret_json(v)},
    )


def _in_dependency_order(resources: dict[str, ResourceState]) -> list[ResourceState]:
    done: set[str] = set()
    ordered: list[ResourceState] = []
    pending = dict(resources)
    while pending:
        ready = [
            r for r in pending.values() if all(d in done or d not in resources for d in r.deps)
        ]
        if not ready:  # a cycle cannot be recorded, but never loop forever
            ready = list(pending.values())
        for r in sorted(ready, key=lambda r: r.id):
            ordered.append(r)
            done.add(r.id)
            del pending[r.id]
    return ordered


def rollback_stage(
    journal: Any,
    app: str,
    stage: str,
    seq: int,
    *,
    reporter: Reporter | None = None,
    concurrency: int | None = None,
    lock_timeout: float = 0.0,
    plan_only: bool = False,
    credentials: Mapping[str, Secret] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
    results: list[RunResult] | None = None,
) -> RunResult:
    """Bring the stage back to its state after global sequence ``seq``.

    The target's resources are declared with their recorded props (references re-resolved
    to today's objects) and reconciled through the same engine; resources created since are
    orphans and go (or are forgotten, if protected). New events record it all; history is
    never rewritten. Data in a deleted database does not come back."""
    stream = f"{app}/{stage}"
    target = load_state(journal, stream, upto_seq=seq)
    run = Run(
        journal,
        app,
        stage,
        command="plan" if plan_only else "rollback",
        reporter=reporter,
        concurrency=concurrency,
        lock_timeout=lock_timeout,
        extra={"target_seq": seq},
        credentials=credentials,
        endpoints=endpoints,
    )
    try:
        run.begin()
        try:
            for res in _in_dependency_order(
                {k: r for k, r in target.resources.items() if r.exists}
            ):
                run.declare(_desired_from_state(res))
            if target.outputs:
                run.export(decode(target.outputs))
        except BaseException as exc:
            run.fail(exc)
            raise
        return run.finalize()
    finally:
        if results is not None and run.result is not None:
            results.append(run.result)
