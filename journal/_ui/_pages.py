"""HTML of the pages, rendered on the server from the model's records.

Every value from the journal goes through ``escape``; links are relative to the token
prefix (``/<token>/``) the page was served under, so none of them has to carry the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from .._engine import Change
from .._history import HistoryRecord
from .._projection import ResourceState, StreamState
from .._secret import MASK
from ._graph import Node, render_svg
from ._model import EventPage, Model, RunBlock, RunPage, status_of

__all__ = [
    "error_page",
    "events_page",
    "integrity_page",
    "resource_page",
    "rollback_page",
    "run_fragment",
    "run_page",
    "runs_page",
    "stage_page",
    "stages_page",
]

NAV = (("runs", "Runs"), ("events", "Events"), ("stages", "Resources"), ("integrity", "Integrity"))


def link(path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return escape(f"{path}?{query}" if query else path)


def _time(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return "-"
    try:
        return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return escape(text)


def _value(value: Any) -> str:
    if value == MASK:
        return f'<span class="masked">{MASK}</span>'
    if value is None:
        return '<span class="none">-</span>'
    return f"<code>{escape(json.dumps(value, ensure_ascii=False, sort_keys=True))}</code>"


def layout(model: Model, title: str, active: str, body: str) -> str:
    head_seq, head_hash = model.journal.head()
    nav = "".join(
        f'<a href="{path}"{" class=active" if path == active else ""}>{label}</a>'
        for path, label in NAV
    )
    banner = (
        '<div class="banner">secrets are shown in clear (started with --show-secrets)</div>'
        if model.show_secrets
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)} · journal</title>"
        '<link rel="stylesheet" href="static/ui.css"><script src="static/ui.js" defer></script>'
        "</head><body>"
        f'<header><span class="brand">journal</span><nav>{nav}</nav>'
        f'<span class="where" title="{escape(model.journal.location)}">'
        f"{escape(model.journal.location)} · head {head_seq} "
        f'<code class="hash">{escape(head_hash[:12])}</code></span></header>{banner}'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def _filters(
    model: Model, action: str, fields: Sequence[tuple[str, str, str]], values: Mapping[str, Any]
) -> str:
    inputs = []
    for name, label, hint in fields:
        current = str(values.get(name) or "")
        if name == "stage":  # a choice among the journal's stages
            stages = sorted({s for _a, s in model.stages()} | ({current} - {""}))
            options = "".join(
                f'<option value="{escape(s)}"{" selected" if s == current else ""}>'
                f"{escape(s or 'all stages')}</option>"
                for s in ["", *stages]
            )
            inputs.append(f'<label>{escape(label)} <select name="stage">{options}</select></label>')
            continue
        inputs.append(
            f'<label>{escape(label)} <input name="{name}" value="{escape(current)}"'
            f' placeholder="{escape(hint)}"></label>'
        )
    return (
        f'<form class="filters" method="get" action="{action}">{"".join(inputs)}'
        f'<button type="submit">Filter</button> <a href="{action}">clear</a></form>'
    )


def _changes(rec: HistoryRecord) -> str:
    if not rec.changes:
        return ""
    rows = "".join(
        f'<tr><td class="field">{escape(name)}</td><td class="old">{_value(old)}</td>'
        f'<td class="arrow">→</td><td class="new">{_value(new)}</td></tr>'
        for name, (old, new) in rec.changes.items()
    )
    return f'<table class="diff">{rows}</table>'


def _records(records: Iterable[HistoryRecord], *, with_stage: bool = True) -> str:
    rows = []
    for rec in records:
        where = f"{rec.app}/{rec.stage}" if rec.app else rec.stream
        res = ""
        if rec.resource and rec.app and rec.stage:
            res = (
                f'<a href="{link("resource", app=rec.app, stage=rec.stage, id=rec.resource)}">'
                f"{escape(rec.resource)}</a>"
            )
            if rec.resource_type:
                res += f' <span class="type">{escape(rec.resource_type)}</span>'
        detail = f'<div class="detail">{escape(rec.detail)}</div>' if rec.detail else ""
        preview = (
            f'<a class="preview" href="{link("rollback", seq=rec.seq)}">rollback preview</a>'
            if rec.app
            else ""
        )
        rows.append(
            f'<tr class="event action-{escape(rec.action.split(".")[0])}" data-seq="{rec.seq}">'
            f'<td class="seq">{rec.seq}</td><td>{_time(rec.time)}</td>'
            f"<td>{escape(rec.actor or '-')}@{escape(rec.host or '-')}</td>"
            + (f"<td>{escape(where)}</td>" if with_stage else "")
            + f'<td class="action">{escape(rec.action)}</td><td>{res}{detail}'
            f"{_changes(rec)}</td><td>{preview}</td></tr>"
        )
    if not rows:
        return '<p class="empty">No events match.</p>'
    stage_head = "<th>stage</th>" if with_stage else ""
    return (
        '<table class="events"><thead><tr><th>seq</th><th>time</th><th>who</th>'
        f"{stage_head}<th>action</th><th>resource and changes</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _counts(block: RunBlock) -> str:
    counts = (block.finished or {}).get("counts") or {}
    if not isinstance(counts, dict) or not counts:
        return "-"
    return escape(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def _duration(block: RunBlock) -> str:
    value = (block.finished or {}).get("duration_s")
    return f"{value:.2f} s" if isinstance(value, int | float) else "-"


def _run_summary(block: RunBlock) -> str:
    started = block.started or {}
    who = f"{escape(block.actor or '-')}@{escape(str(started.get('host') or '-'))}"
    target = started.get("target_seq")
    command = escape(block.command) + (f" to {int(target)}" if isinstance(target, int) else "")
    return (
        f'<span class="when">{_time(block.time)}</span>'
        f'<span class="stage">{escape(block.stream)}</span>'
        f'<span class="command">{command}</span>'
        f'<span class="who">{who}</span>'
        f'<span class="status status-{escape(block.status)}">{escape(block.status)}</span>'
        f'<span class="counts">{_counts(block)}</span>'
        f'<span class="duration">{_duration(block)}</span>'
        f'<span class="range">events {block.first_seq} to {block.last_seq} ({block.events})</span>'
    )


def runs_page(model: Model, page: RunPage, values: Mapping[str, Any]) -> str:
    fields = [
        ("stage", "stage", "any"),
        ("actor", "actor", "any"),
        ("command", "command", "deploy, destroy, rollback"),
        ("status", "status", "succeeded, failed"),
        ("since", "since", "2d or 2024-05-01T10:00"),
        ("until", "until", "1h or 2024-05-02"),
    ]
    items = []
    for block in page.runs:
        src = link("run", stream=block.stream, first=block.first_seq, fragment=1)
        full = link("run", stream=block.stream, first=block.first_seq)
        items.append(
            f'<details class="run" data-src="{src}" data-first="{block.first_seq}">'
            f"<summary>{_run_summary(block)}</summary>"
            f'<div class="run-events"><a href="{full}">open this run</a></div></details>'
        )
    body = _filters(model, "runs", fields, values)
    body += "".join(items) if items else '<p class="empty">No runs match.</p>'
    if page.older is not None:
        more = link("runs", **{**values, "before": page.older})
        body += f'<p class="more"><a href="{more}">older runs →</a></p>'
    return layout(model, "Runs", "runs", body)


def run_fragment(model: Model, block: RunBlock, records: list[HistoryRecord], more: str) -> str:
    html = _records(records, with_stage=False)
    if more:
        html += f'<p class="more"><a href="{escape(more)}">more events of this run →</a></p>'
    return html


def run_page(model: Model, block: RunBlock, records: list[HistoryRecord], more: str) -> str:
    body = f'<div class="run open">{_run_summary(block)}</div>'
    failures = (block.finished or {}).get("failures") or []
    if failures:
        body += '<ul class="failures">' + "".join(
            f"<li>{escape(str(f.get('resource')))}: {escape(str(f.get('error')))}</li>"
            for f in failures
            if isinstance(f, dict)
        )
        body += "</ul>"
    body += run_fragment(model, block, records, more)
    return layout(model, f"Run {block.run or '-'}", "runs", body)


def events_page(model: Model, page: EventPage, values: Mapping[str, Any]) -> str:
    fields = [
        ("stage", "stage", "any"),
        ("resource", "resource", "logical id"),
        ("actor", "actor", "any"),
        ("action", "action", "created, update, delete…"),
        ("since", "since", "2d or 2024-05-01T10:00"),
        ("until", "until", "1h or 2024-05-02"),
    ]
    body = _filters(model, "events", fields, values) + _records(page.records)
    if page.older is not None:
        more = link("events", **{**values, "before": page.older})
        body += (
            f'<p class="more">looked at {page.scanned} event(s), down to sequence {page.reached}: '
            f'<a href="{more}">older events →</a></p>'
        )
    return layout(model, "Events", "events", body)


def stages_page(model: Model) -> str:
    stages = model.stages()
    if not stages:
        return layout(model, "Resources", "stages", '<p class="empty">No stage yet.</p>')
    items = "".join(
        f'<li><a href="{link("stage", app=a, stage=s)}">{escape(a)}/{escape(s)}</a></li>'
        for a, s in stages
    )
    return layout(model, "Resources", "stages", f'<ul class="stages">{items}</ul>')


def _legend() -> str:
    return '<p class="legend">' + "".join(
        f'<span class="swatch status-{s}"></span>{s} '
        for s in ("ready", "pending", "failed", "protected")
    )


def stage_page(
    model: Model, app: str, stage: str, state: StreamState, failed: dict[str, str]
) -> str:
    nodes = [
        Node(r.id, r.type, status_of(r, failed), tuple(r.deps))
        for r in sorted(state.resources.values(), key=lambda r: r.id)
    ]
    svg = render_svg(
        nodes, lambda rid: f"resource?{urlencode({'app': app, 'stage': stage, 'id': rid})}"
    )
    last = state.last_run or {}
    summary = (
        f"<p>{len(state.resources)} resource(s) after event {state.seq}; last run: "
        f"{escape(str(last.get('command') or '-'))} by {escape(str(last.get('actor') or '-'))} "
        f"at {_time(last.get('time'))}: {escape(str(last.get('status') or 'unfinished'))}</p>"
        if last
        else f"<p>{len(state.resources)} resource(s)</p>"
    )
    rows = "".join(
        f'<tr><td><a href="{link("resource", app=app, stage=stage, id=n.id)}">{escape(n.id)}</a>'
        f'</td><td>{escape(n.type)}</td><td><span class="status status-{n.status}">'
        f"{n.status}</span></td><td>{escape(', '.join(n.deps) or '-')}</td></tr>"
        for n in nodes
    )
    table = (
        '<table class="resources"><thead><tr><th>resource</th><th>type</th><th>status</th>'
        f"<th>depends on</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    exports = ""
    if state.outputs:
        exports = "<h2>Outputs</h2>" + _kv(model.shown(state.outputs))
    history = link("runs", stage=stage)
    body = (
        f'{summary}<p><a href="{history}">runs of this stage</a></p>{_legend()}'
        f'<div class="graph-box">{svg}</div>{table}{exports}'
    )
    return layout(model, f"{app}/{stage}", "stages", body)


def _kv(values: Mapping[str, Any] | None) -> str:
    if not values:
        return '<p class="none">-</p>'
    rows = "".join(
        f'<tr><td class="field">{escape(k)}</td><td>{_value(v)}</td></tr>'
        for k, v in values.items()
    )
    return f'<table class="kv">{rows}</table>'


def resource_page(
    model: Model,
    app: str,
    stage: str,
    rid: str,
    res: ResourceState | None,
    failed: dict[str, str],
    page: EventPage,
) -> str:
    back = link("stage", app=app, stage=stage)
    body = f'<p><a href="{back}">← {escape(app)}/{escape(stage)}</a></p>'
    if res is None:
        body += '<p class="empty">Not in the stage now (deleted or never created).</p>'
    else:
        status = status_of(res, failed)
        body += (
            f'<p>{escape(res.type)} · <span class="status status-{status}">{status}</span> · '
            f"on delete: {'delete' if res.delete else 'keep (delete protection)'} · "
            f"depends on: {escape(', '.join(res.deps) or '-')} · created at event "
            f"{res.created_seq}, last changed at {res.updated_seq}</p>"
        )
        if rid in failed:
            body += f'<p class="error">last run: {escape(failed[rid])}</p>'
        if res.pending is not None:
            body += (
                f"<p>pending {escape(str(res.pending.get('op')))} since event "
                f"{escape(str(res.pending.get('seq')))}</p>"
            )
        body += "<h2>Props</h2>" + _kv(model.shown(res.props))
        body += "<h2>Outputs</h2>" + _kv(model.shown(res.outputs))
    body += "<h2>History</h2>" + _records(page.records, with_stage=False)
    if page.older is not None:
        more = link("events", app=app, stage=stage, resource=rid, before=page.older)
        body += f'<p class="more"><a href="{more}">older events of {escape(rid)} →</a></p>'
    return layout(model, rid, "stages", body)


def integrity_page(model: Model) -> str:
    head_seq, head_hash = model.journal.head()
    job = model.verify.to_json()
    body = (
        f'<dl class="head"><dt>journal</dt><dd>{escape(model.journal.location)}</dd>'
        f"<dt>head sequence</dt><dd id=head-seq>{head_seq}</dd>"
        f'<dt>head hash</dt><dd><code id="head-hash">{escape(head_hash)}</code></dd></dl>'
        f'<div id="verify" data-src="integrity.json">{verify_html(job)}</div>'
        f'<p><a href="integrity?again=1">verify again</a> · pin the head elsewhere and check it '
        f"later with <code>journal verify --expect-head {head_seq}:{escape(head_hash)}</code></p>"
    )
    return layout(model, "Integrity", "integrity", body)


def verify_html(job: Mapping[str, Any]) -> str:
    state = job["state"]
    total = max(int(job["total"]), 1)
    pct = min(100, int(100 * int(job["done"]) / total))
    if state == "running":
        return (
            f'<p class="verify running" data-state="running">verifying… {job["done"]} of '
            f'{job["total"]} events ({pct}%)</p><progress max="100" value="{pct}"></progress>'
        )
    if state == "ok":
        return (
            f'<p class="verify ok" data-state="ok">chain verified: {escape(job["message"])} '
            f"({job['seconds']} s)</p>"
        )
    if state == "broken":
        return (
            f'<p class="verify broken" data-state="broken">the chain is broken: first bad '
            f'sequence <strong id="bad-seq">{job["bad_seq"]}</strong></p>'
            f'<p class="error">{escape(job["message"])}</p>'
        )
    if state == "error":
        return f'<p class="verify error" data-state="error">{escape(job["message"])}</p>'
    return '<p class="verify" data-state="idle">not verified yet</p>'


def rollback_page(
    model: Model,
    seq: int,
    stream: str,
    changes: Sequence[Change] | None,
    problem: str | None,
    command: str,
) -> str:
    body = (
        f"<p>What <code>journal rollback {seq}</code> would do to <strong>{escape(stream)}"
        "</strong>: bring it back to its state after this event. This page changes nothing; "
        "to apply it, run:</p>"
        f'<pre class="command">{escape(command)}</pre>'
    )
    if problem is not None:
        body += f'<p class="error">The plan could not be computed here: {escape(problem)}</p>'
    elif changes is not None:
        todo = [c for c in changes if c.action != "noop"]
        if not todo:
            body += "<p>The stage already matches that state: nothing to do.</p>"
        rows = "".join(
            f'<tr class="plan-{escape(c.action)}"><td>{escape(c.action)}</td>'
            f"<td>{escape(c.resource)}</td><td>{escape(c.type)}</td><td>"
            + "".join(
                f"<div>{escape(k)}: {_value(v[0])} → {_value(v[1])}</div>"
                for k, v in c.diff.items()
            )
            + "</td></tr>"
            for c in changes
        )
        body += (
            '<table class="plan"><thead><tr><th>action</th><th>resource</th><th>type</th>'
            f"<th>changes</th></tr></thead><tbody>{rows}</tbody></table>"
            '<p class="warn">Data in a deleted database does not come back.</p>'
        )
    return layout(model, f"Rollback preview to event {seq}", "events", body)


def error_page(model: Model | None, status: int, message: str) -> str:
    body = f'<p class="error">{escape(message)}</p>'
    if model is None:
        return f"<!doctype html><title>{status}</title>{body}"
    return layout(model, f"Error {status}", "", body)
