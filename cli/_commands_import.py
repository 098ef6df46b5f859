"""``journal import-alchemy``: preview, confirm, then record an Alchemy project's state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journal._errors import MissingPasswordError

from ._commands_common import State, journal_option, pass_state, yes_option
from ._output import shown, value_text

if TYPE_CHECKING:
    from journal._import_alchemy import ImportPlan, Planned, StagePlan

ALCHEMY_PASSWORD_ENV = "ALCHEMY_PASSWORD"
#: outputs shown in the preview (the rest is in `journal show` after the import)
_PREVIEW_OUTPUTS = ("id", "workspace_id", "project_id", "database_id", "region", "host", "user")


def _ask_password(state: State) -> str:
    env = os.environ.get(ALCHEMY_PASSWORD_ENV)
    if env:
        return env
    if not state.out.interactive:
        raise MissingPasswordError(
            "the Alchemy state holds secrets: set ALCHEMY_PASSWORD to the password Alchemy "
            "encrypted them with (or run on a terminal to be asked)"
        )
    value: str = click.prompt("ALCHEMY_PASSWORD", hide_input=True, err=True)
    return value


def _resource_lines(p: Planned) -> list[str]:
    mark = {"create": "pending create", "replace": "pending replace", "delete": "pending delete"}
    policy = "delete on destroy" if p.delete else "keep on destroy (delete protection)"
    head = f"  + {p.id} ({p.type_name}, from {p.kind} {p.status})"
    if p.pending:
        head += f": {mark[p.pending]}, resolved by the next run"
    lines = [head, f"      {policy}; depends on: {', '.join(p.deps) or '-'}"]
    props = shown(p.props, False)
    lines.append("      props: " + ", ".join(f"{k}={value_text(v)}" for k, v in props.items()))
    if p.outputs is not None:
        outs = shown(p.outputs, False)
        picked = {k: outs[k] for k in _PREVIEW_OUTPUTS if k in outs}
        lines.append(
            "      outputs: " + ", ".join(f"{k}={value_text(v)}" for k, v in picked.items())
        )
    token = p.options.get("service_token")
    if token is not None:
        lines.append("      service token: ********")
    lines += [f"      note: {n}" for n in p.notes]
    return lines


def _stage_lines(sp: StagePlan) -> list[str]:
    lines = [f"{sp.stream}: {len(sp.resources)} resource(s) to import"]
    for p in sp.resources:
        lines += _resource_lines(p)
    if sp.pending:
        lines.append(
            "  left out: Alchemy did not finish their last operation "
            "(--include-pending records them for the next run to resolve):"
        )
        lines += [f"    {x.id} ({x.kind}, {x.status})  {x.source}" for x in sp.pending]
    if sp.unsupported:
        lines.append("  left out, not supported:")
        lines += [f"    {x.id} ({x.kind}): {x.reason}  {x.source}" for x in sp.unsupported]
    if sp.skipped:
        lines.append("  nothing to import:")
        lines += [f"    {x.id} ({x.kind}): {x.reason}" for x in sp.skipped]
    return lines


def _preview(state: State, plan: ImportPlan, location: str) -> int:
    kind = "SQLite store" if plan.store.kind == "sqlite" else "JSON files"
    out = state.out
    out.echo(f"Alchemy state: {plan.store.path} ({kind}); it is only read")
    out.echo(f"journal: {location}")
    total = 0
    for sp in plan.stages:
        for line in _stage_lines(sp):
            out.echo(line)
        total += len(sp.resources)
    return total


def _journal_password(asked: list[str]) -> str | None:
    """The journal's password is JOURNAL_PASSWORD, else ALCHEMY_PASSWORD (None: from the
    environment); with neither set, the Alchemy password asked on the terminal."""
    if os.environ.get("JOURNAL_PASSWORD") or os.environ.get(ALCHEMY_PASSWORD_ENV):
        return None
    return asked[-1] if asked else None


@click.command("import-alchemy")
@click.argument(
    "path", required=False, default=".", type=click.Path(path_type=Path), metavar="[PATH]"
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="STAGE",
    help="Import only this Alchemy stage (repeat for several) [default: every stage].",
)
@click.option(
    "--app",
    "app_name",
    metavar="APP",
    default=None,
    help="Import only this Alchemy app [default: every app in the state].",
)
@click.option(
    "--include-pending",
    is_flag=True,
    default=False,
    help="Also record resources whose Alchemy operation did not finish, as pending "
    "operations the next run resolves by reading the remote object.",
)
@journal_option
@yes_option
@pass_state
def import_alchemy(
    state: State,
    path: Path,
    stages: tuple[str, ...],
    app_name: str | None,
    include_pending: bool,
) -> None:
    """Bring an Alchemy project's resources into the journal, as they are.

    PATH is the folder where you run Alchemy (with .alchemy/ in it), its .alchemy folder, or
    .alchemy/state.sqlite [default: the current folder]. Secrets are decrypted with
    ALCHEMY_PASSWORD (asked on a terminal when unset). Nothing is created, changed or deleted,
    and nothing is written to the Alchemy folder: each stage becomes one run in the journal
    (`journal history` names the source), and the first `journal deploy` of the translated
    program finds every resource unchanged. Shows what it will import (secrets masked) and
    asks first, unless --yes. The journal is --journal, else $JOURNAL_URL, else
    .journal/journal.db in the Alchemy project's folder."""
    from journal._import_alchemy import apply_import, check_free, plan_import
    from journal._journal import Journal
    from journal._program.dev import journal_exists, program_journal

    if not stages and state.stage:
        stages = (state.stage,)
    asked: list[str] = []

    def password() -> str:
        asked.append(_ask_password(state))
        return asked[-1]

    plan = plan_import(
        path, password=password, stages=stages, app=app_name, include_pending=include_pending
    )
    location = program_journal(plan.store.project / "alchemy.run.py", state.journal)
    total = _preview(state, plan, location)
    if total == 0:
        state.out.echo("nothing to import: the journal was not touched")
        return
    journal_password = _journal_password(asked)
    if journal_exists(location):
        with Journal.open(location, password=journal_password, create=False) as jr:
            check_free(jr, plan)
    state.confirm(f"Import {total} resource(s) into {location}?", action="import")
    with Journal.open(location, password=journal_password) as jr:
        results = apply_import(jr, plan)
    for r in results:
        extra = f", {r.pending} pending" if r.pending else ""
        state.out.echo(f"imported {r.app}/{r.stage}: {r.imported} resource(s){extra}")
    pending = sum(r.pending for r in results)
    stage = f" --stage {results[0].stage}" if len(results) == 1 else ""
    if pending:
        state.out.echo(
            f"next: `journal deploy{stage}` resolves the {pending} pending operation(s) first, "
            "by reading the remote objects"
        )
    else:
        state.out.echo(
            f"next: `journal deploy{stage}` of the translated program should report every "
            "resource unchanged"
        )


COMMANDS = [import_alchemy]
