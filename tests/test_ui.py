"""``journal ui`` over real loopback HTTP, against journals built by real deploys (the
in-memory "memory.Thing" provider through the CLI), on SQLite and on PostgreSQL; the
browser test drives Debian's Chromium with playwright."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import memory_provider as mp
import psycopg
import pytest
from click.testing import CliRunner

from journal._history import history
from journal._journal import Journal
from journal._ui import EventFilter, Model, RunFilter, UIServer
from journal.cli import cli

SECRET = "pl41ntext-s3cret-value"

PROGRAM = f"""
import os
import journal
from memory_provider import Thing

with journal.app("demo") as app:
    parent = Thing("parent", tag=os.environ["TAG"], delete=False)
    child = Thing("child", parent=parent)
    if os.environ["TAG"] != "v1":
        Thing("extra")
    app.export(parent_id=parent.id, token=journal.Secret({SECRET!r}))
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


def deploy(folder: Path, tag: str, *, stage: str = "dev", code: int = 0, journal: str = "") -> None:
    os.environ["TAG"] = tag
    try:
        args = ["deploy", str(folder / "alchemy.run.py"), "--stage", stage, "--yes"]
        if journal:
            args += ["--journal", journal]
        result = CliRunner().invoke(cli, args)
    finally:
        del os.environ["TAG"]
    assert result.exit_code == code, result.output + result.stderr


def build(folder: Path, journal: str = "") -> None:
    """dev: v1, v2 (update + create), v3 whose update of parent fails; prod: v1."""
    (folder / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    deploy(folder, "v1", journal=journal)
    deploy(folder, "v2", journal=journal)
    mp.CLOUD.fail_names = {"demo-parent-dev"}
    deploy(folder, "v3", code=1, journal=journal)
    mp.CLOUD.fail_names = set()
    deploy(folder, "v1", stage="prod", journal=journal)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    build(tmp_path)
    return tmp_path


@pytest.fixture
def journal_db(project: Path) -> Path:
    return project / ".journal" / "journal.db"


@pytest.fixture
def server(journal_db: Path) -> Iterator[UIServer]:
    with Journal.open(journal_db) as jr, UIServer(jr).start() as srv:
        yield srv


def get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, timeout=60, **kw)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def crawl(start: str, limit: int = 400) -> dict[str, httpx.Response]:
    """Every page (and asset) reachable from ``start`` on the same origin."""
    origin = urlsplit(start).netloc
    seen: dict[str, httpx.Response] = {}
    todo = [start]
    while todo and len(seen) < limit:
        url = todo.pop()
        if url in seen:
            continue
        resp = get(url, follow_redirects=True)
        seen[url] = resp
        refs = re.findall(r'(?:href|src|data-src)="([^"]+)"', resp.text)
        for ref in refs:
            nxt = urljoin(url, ref.replace("&amp;", "&"))
            if urlsplit(nxt).netloc == origin and nxt not in seen and "again=1" not in nxt:
                todo.append(nxt)
    return seen


# --- access ----------------------------------------------------------------------------


def test_a_request_without_the_token_is_refused(server: UIServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert get(server.url + "runs").status_code == 200
    for path in ("/", "/runs", "/static/ui.css", f"/{secrets.token_urlsafe(24)}/runs"):
        resp = get(base + path)
        assert resp.status_code == 403, path
        assert "demo" not in resp.text and "parent" not in resp.text
    # right token, but a Host other than the loopback address (DNS rebinding)
    resp = get(server.url + "runs", headers={"Host": f"evil.example:{server.port}"})
    assert resp.status_code == 403
    # only GET and HEAD
    assert httpx.post(server.url + "runs", timeout=60).status_code == 501
    assert server.httpd.server_address[0] == "127.0.0.1"


def _rows(journal_db: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(journal_db)) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        snaps = conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    return events, snaps


def test_no_secret_in_any_response_unless_show_secrets(journal_db: Path) -> None:
    before = _rows(journal_db)
    with Journal.open(journal_db) as jr, UIServer(jr).start() as srv:
        pages = crawl(srv.url)
        assert any("/stage?" in u for u in pages) and any("/resource?" in u for u in pages)
        assert any("/run?" in u for u in pages) and any("/rollback?" in u for u in pages)
        for url, resp in pages.items():
            assert resp.status_code == 200, (url, resp.text[:500])
            assert SECRET not in resp.text, url
            assert resp.headers["Cache-Control"] == "no-store"
        outputs = get(srv.url + "stage?app=demo&stage=dev").text
        assert "token" in outputs and "********" in outputs
    assert _rows(journal_db) == before  # every page, rollback previews included, only read
    with Journal.open(journal_db) as jr, UIServer(jr, show_secrets=True).start() as srv:
        assert SECRET in get(srv.url + "stage?app=demo&stage=dev").text
        assert SECRET in get(srv.url + "events?action=outputs").text


# --- the pages' contents ------------------------------------------------------------------


def test_runs_page_lists_each_run_with_who_status_and_counts(server: UIServer) -> None:
    page = text_of(get(server.url + "runs").text)
    # newest first: prod v1, then dev's failed v3, v2, v1
    assert page.index("demo/prod") < page.index("failed") < page.index("1 create, 1 noop, 1 update")
    assert page.count("succeeded") == 3 and "2 create" in page
    dev = text_of(get(server.url + "runs?stage=dev&status=failed").text)
    assert "demo/dev" in dev and "succeeded" not in dev and "demo/prod" not in dev
    assert "No runs match" in text_of(get(server.url + "runs?actor=nobody").text)


def test_run_detail_shows_the_field_diffs(server: UIServer, journal_db: Path) -> None:
    with Journal.open(journal_db) as jr:
        v2 = next(
            r for r in history(jr, stage="dev") if r.action == "updated" and r.resource == "parent"
        )
    model_run = Model(Journal.open(journal_db))
    block = model_run.run_of(v2.seq)
    model_run.journal.close()
    html = get(server.url + f"run?stream=demo/dev&first={block.first_seq}").text
    page = text_of(html)
    assert "props.tag" in page and '"v1" → "v2"' in page
    assert "resource.update.requested" not in page and "update.requested" in page
    assert SECRET not in html


def test_stage_graph_colours_each_resource_by_status(server: UIServer) -> None:
    html = get(server.url + "stage?app=demo&stage=dev").text
    assert "<svg" in html and "<polyline" in html  # child depends on parent: one edge
    found = re.findall(r'<a class="node status-(\w+)"[^>]*data-resource="(\w+)"', html)
    statuses = {rid: status for status, rid in found}
    # parent's update failed, and child, which depends on it, failed with it
    assert statuses == {"parent": "failed", "child": "failed", "extra": "ready"}
    prod = get(server.url + "stage?app=demo&stage=prod").text
    assert 'status-protected" href="resource?app=demo&amp;stage=prod&amp;id=parent"' in prod


def test_resource_page_shows_its_own_history(server: UIServer) -> None:
    page = text_of(get(server.url + "resource?app=demo&stage=dev&id=parent").text)
    assert '"v1" → "v2"' in page and "update.failed" in page and "injected failure" in page
    assert "keep (delete protection)" in page
    assert "extra" not in page.split("History", 1)[1]


def test_event_filters_match_the_history_command(server: UIServer, journal_db: Path) -> None:
    with Journal.open(journal_db) as jr:
        everything = history(jr)
        model = Model(jr)
        for flt, want in [
            (EventFilter(resource="parent"), [r for r in everything if r.resource == "parent"]),
            (EventFilter(stage="prod"), [r for r in everything if r.stage == "prod"]),
            (
                EventFilter(action="update"),
                [r for r in everything if r.action.startswith("update.")],
            ),
            (EventFilter(actor="nobody"), []),
        ]:
            got = model.events(flt, size=1000).records
            assert [r.seq for r in got] == [r.seq for r in reversed(want)], flt
            assert all(r.actor for r in got)
        # paging: pages of 3 cover everything once, newest first
        seen: list[int] = []
        before = None
        while True:
            page = model.events(EventFilter(), before=before, size=3)
            seen += [r.seq for r in page.records]
            if page.older is None:
                break
            before = page.older
        assert seen == [r.seq for r in reversed(everything)]
        # a time range is located by binary search on seq
        mid = everything[len(everything) // 2]
        assert mid.time is not None
        since = model.events(EventFilter(since=_dt(mid.time)), size=1000).records
        assert min(r.seq for r in since) <= mid.seq
        assert all(_dt(r.time or "") >= _dt(mid.time) for r in since)
        until = model.events(EventFilter(until=_dt(mid.time)), size=1000).records
        assert all(_dt(r.time or "") <= _dt(mid.time) for r in until)
        assert len(since) + len(until) >= len(everything)


def _dt(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_runs_are_found_by_binary_search_and_paged(journal_db: Path) -> None:
    with Journal.open(journal_db) as jr:
        # ground truth: group the full history by run
        runs: dict[str, list[int]] = {}
        for rec in history(jr):
            if rec.run:
                runs.setdefault(rec.run, []).append(rec.seq)
        model = Model(jr)
        blocks = []
        before = None
        while True:
            page = model.runs(RunFilter(), before=before, size=1)
            blocks += page.runs
            if page.older is None:
                break
            before = page.older
        assert {b.run: (b.first_seq, b.last_seq, b.events) for b in blocks} == {
            run: (min(s), max(s), len(s)) for run, s in runs.items()
        }
        assert [b.last_seq for b in blocks] == sorted((b.last_seq for b in blocks), reverse=True)
        assert all(b.started is not None and b.finished is not None for b in blocks)
        # filters: by actor, command, status and start time (bounds found by binary search)
        third = sorted(blocks, key=lambda b: b.first_seq)[2]
        assert third.time is not None
        since = model.runs(RunFilter(since=_dt(third.time))).runs
        assert [b.first_seq for b in since] == sorted(
            (b.first_seq for b in blocks if b.first_seq >= third.first_seq), reverse=True
        )
        until = model.runs(RunFilter(until=_dt(third.time))).runs
        assert {b.first_seq for b in until} <= {b.first_seq for b in blocks}
        assert all(_dt(b.time or "") <= _dt(third.time) for b in until)
        assert model.runs(RunFilter(status="failed")).runs[0].stage == "dev"
        assert model.runs(RunFilter(actor="nobody")).runs == []


def test_rollback_preview_shows_the_plan_and_changes_nothing(
    server: UIServer, journal_db: Path
) -> None:
    with Journal.open(journal_db) as jr:
        first_run_end = next(r.seq for r in history(jr, stage="dev") if r.action == "run.finished")
        head = jr.head()
    calls = list(mp.CLOUD.calls)
    html = get(server.url + f"rollback?seq={first_run_end}").text
    page = text_of(html)
    assert f"journal rollback {first_run_end} --stage dev --app demo" in page
    # parent's recorded props are still v2 (the v3 update failed)
    assert 'update parent memory.Thing tag: "v2" → "v1"' in page
    assert "delete extra" in page
    with Journal.open(journal_db) as jr:
        assert jr.head() == head
    assert mp.CLOUD.calls == calls  # not one provider call


def test_a_tampered_journal_shows_the_first_bad_sequence(journal_db: Path) -> None:
    conn = sqlite3.connect(journal_db)
    (data,) = conn.execute("SELECT data FROM events WHERE seq = 5").fetchone()
    flipped = bytearray(data)
    flipped[30] ^= 0x01
    conn.execute("UPDATE events SET data = ? WHERE seq = 5", (bytes(flipped),))
    conn.commit()
    conn.close()
    with Journal.open(journal_db) as jr, UIServer(jr).start() as srv:
        assert "verif" in get(srv.url + "integrity").text
        job = _verified(srv)
        assert job["state"] == "broken" and job["bad_seq"] == 5
        page = text_of(get(srv.url + "integrity").text)
        assert "the chain is broken: first bad sequence 5" in page


def _verified(srv: UIServer) -> dict[str, Any]:
    srv.model.verify.wait(120)
    job: dict[str, Any] = get(srv.url + "integrity.json").json()
    return job


def test_integrity_page_verifies_the_chain(server: UIServer, journal_db: Path) -> None:
    page = get(server.url + "integrity").text
    with Journal.open(journal_db) as jr:
        seq, digest = jr.head()
    assert digest in page and f"journal verify --expect-head {seq}:{digest}" in page
    job = _verified(server)
    assert job["state"] == "ok" and job["done"] == seq


def test_bad_parameters_are_clear_errors(server: UIServer) -> None:
    resp = get(server.url + "events?since=yesterday-ish")
    assert resp.status_code == 400 and "is not a time" in resp.text
    resp = get(server.url + "rollback?seq=99999")
    assert resp.status_code == 404 and "there is no event 99999" in resp.text
    assert get(server.url + "stage?app=demo&stage=nope").status_code == 404
    assert get(server.url + "static/ui.py").status_code == 404


# --- PostgreSQL -----------------------------------------------------------------------------

PG = os.environ.get("JOURNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = "uit_" + secrets.token_hex(6)
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_the_team_journal_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    build(tmp_path, journal=pg_url)
    with Journal.open(pg_url) as jr, UIServer(jr).start() as srv:
        runs = text_of(get(srv.url + "runs").text)
        assert runs.count("succeeded") == 3 and "failed" in runs
        resource = text_of(get(srv.url + "resource?app=demo&stage=dev&id=parent").text)
        assert '"v1" → "v2"' in resource
        assert "verif" in get(srv.url + "integrity").text
        assert _verified(srv)["state"] == "ok"
        for url, resp in crawl(srv.url, limit=60).items():
            assert resp.status_code == 200 and SECRET not in resp.text, url


# --- the command ------------------------------------------------------------------------------


def test_journal_ui_prints_its_url_and_serves_until_stopped(journal_db: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    journal = shutil.which("journal", path=str(Path(sys.executable).parent)) or "journal"
    proc = subprocess.Popen(
        [journal, "ui", "--journal", str(journal_db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        url = lines[1].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[\w-]{20,}/", url), lines
        assert get(url + "runs").status_code == 200
        assert get(url.rsplit("/", 2)[0] + "/runs").status_code == 403
    finally:
        proc.terminate()
        proc.wait(60)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_journal_ui_without_a_password_is_a_clear_error(
    journal_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_PASSWORD")
    result = CliRunner().invoke(cli, ["ui", "--journal", str(journal_db)])
    assert result.exit_code == 2
    assert "JOURNAL_PASSWORD" in result.stderr


# --- the browser ----------------------------------------------------------------------------


def _browser() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}): `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    return sync_playwright


def test_a_real_browser_clicks_into_a_run_and_a_resource(journal_db: Path) -> None:
    sync_playwright = _browser()
    shots = os.environ.get("JOURNAL_UI_SCREENSHOTS")
    bodies: list[tuple[str, str]] = []
    with Journal.open(journal_db) as jr, UIServer(jr).start() as srv, sync_playwright() as pw:
        # playwright gives every launch a fresh temporary profile (--user-data-dir)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def keep(resp: Any) -> None:
                with contextlib.suppress(Exception):  # a redirect has no body
                    bodies.append((resp.url, resp.text()))

            page.on("response", keep)
            page.goto(srv.url)
            assert page.url.endswith("/runs")
            # expand dev's second deploy (v2): its events load with their diffs
            runs = page.locator("details.run")
            assert runs.count() == 4
            second = runs.nth(2)
            second.locator("summary").click()
            second.locator("table.events").wait_for()
            text = second.inner_text()
            assert "props.tag" in text and '"v1"' in text and '"v2"' in text
            assert "created" in text and "extra" in text
            if shots:
                page.screenshot(path=f"{shots}/ui-runs.png", full_page=True)
            # the stage's graph; click the parent node
            page.click("header nav >> text=Resources")
            page.click("text=demo/dev")
            page.locator("svg.graph").wait_for()
            assert page.locator("svg.graph a.node.status-failed").count() == 2
            if shots:
                page.screenshot(path=f"{shots}/ui-resources.png", full_page=True)
            page.locator('svg.graph a.node[data-resource="parent"]').click()
            page.wait_for_url(re.compile(r".*/resource\?.*id=parent"))
            history_text = page.locator("table.events").inner_text()
            assert '"v1"' in history_text and '"v2"' in history_text
            assert "update.failed" in history_text
            # integrity: verification runs in the background and the page follows it
            page.click("header nav >> text=Integrity")
            page.locator(".verify.ok").wait_for(timeout=120_000)
            if shots:
                page.screenshot(path=f"{shots}/ui-integrity.png", full_page=True)
        finally:
            browser.close()
    assert len(bodies) >= 8
    for url, body in bodies:
        assert SECRET not in body, url
    assert any(url.endswith("static/ui.js") for url, _ in bodies)


def test_a_real_browser_shows_a_broken_chain(journal_db: Path) -> None:
    sync_playwright = _browser()
    conn = sqlite3.connect(journal_db)
    conn.execute("UPDATE events SET hash = zeroblob(32) WHERE seq = 9")
    conn.commit()
    conn.close()
    with Journal.open(journal_db) as jr, UIServer(jr).start() as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(srv.url + "integrity")
            page.locator(".verify.broken").wait_for(timeout=120_000)
            assert page.locator("#bad-seq").inner_text() == "9"
        finally:
            browser.close()


# --- the graph layout ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, 2001])
def test_the_graph_places_every_resource_without_overlap(n: int) -> None:
    from journal._ui._graph import NODE_H, Node, _layout, render_svg

    dbs = (n - 1) // 2
    nodes = [Node("project", "x.Project", "protected", ())]
    nodes += [Node(f"db-{i}", "x.Database", "ready", ("project",)) for i in range(dbs)]
    nodes += [Node(f"conn-{i}", "x.Connection", "ready", (f"db-{i}",)) for i in range(dbs)]
    nodes.append(Node("lonely", "x.Thing", "failed", ()))
    boxes, lines, width, height = _layout(nodes)
    assert set(boxes) == {node.id for node in nodes}
    assert len(lines) == 2 * dbs  # one edge per dependency
    for x, y, w in boxes.values():
        assert x >= 0 and x + w <= width and y >= 0 and y + NODE_H <= height
    spans = sorted((y, x, x + w) for x, y, w in boxes.values())
    for (y1, _a1, b1), (y2, a2, _b2) in itertools.pairwise(spans):
        assert y1 != y2 or b1 <= a2, "two boxes overlap"
    # dependencies sit above what depends on them
    assert boxes["project"][1] < boxes["db-0"][1] < boxes["conn-0"][1]
    svg = render_svg(nodes, lambda rid: f"resource?id={rid}")
    assert svg.count("<a class=") == len(nodes) and 'data-resource="lonely"' in svg
