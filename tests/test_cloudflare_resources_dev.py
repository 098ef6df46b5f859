"""``journal dev`` and a Worker: an edit of a module the entrypoint imports re-runs the program
and reloads the Worker (its bundle's inputs are watched through ``Context.watch``); an edit
elsewhere does not. Its bindings (plain text and a secret) reach the Worker, and the secret
stays out of the journal files, the bundle folder and workerd's arguments."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cloudflare import tools, tree_bytes

from journal._program.app import RunSettings
from journal._program.dev import DevLoop, DevRun, watch_changes
from journal.provider import Endpoint, Secret
from journal.resources.cloudflare.local import LocalCloudflareApi

pytestmark = pytest.mark.slow

SECRET = "sk-dev-secret-binding-7f3e9a"

PROGRAM = f"""
import journal
from journal.provider import Secret
from journal.resources.cloudflare import Worker

with journal.app("devworker") as app:
    worker = Worker(
        "worker",
        entrypoint="src/worker.ts",
        bindings={{"GREETING": "hello", "API_KEY": Secret("{SECRET}")}},
    )
    app.export(url=worker.url)
"""

WORKER = """
import { suffix } from "./lib";

export default {
  async fetch(_request: Request, env: { GREETING: string; API_KEY: string }) {
    return new Response(`${env.GREETING} ${suffix} ${env.API_KEY.length}`);
  },
};
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tools()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_PASSWORD", "dev-worker-test-password")
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.ts").write_text(textwrap.dedent(WORKER))
    (tmp_path / "src" / "lib.ts").write_text('export const suffix = "one";\n')
    (tmp_path / "src" / "unrelated.ts").write_text("export const x = 1;\n")
    return tmp_path


def test_an_edit_of_an_imported_module_reloads_the_worker(project: Path) -> None:
    lib = project / "src" / "lib.ts"
    answers: list[str] = []
    with LocalCloudflareApi(data_dir=project / ".journal" / "cloudflare") as api:

        def settings() -> RunSettings:
            return RunSettings(
                stage="dev",
                location=str(project / ".journal" / "journal.db"),
                endpoints={"cloudflare": Endpoint(api.base_url, {"api_token": Secret("t")})},
            )

        def edits(root: Path, stop: threading.Event) -> Iterator[set[Path]]:
            answers.append(httpx.get(url(), timeout=30).text)
            assert lib.resolve() in loop.watched
            (project / "src" / "unrelated.ts").write_text("export const x = 2;\n")
            yield {(project / "src" / "unrelated.ts").resolve()}  # not imported: no run
            lib.write_text('export const suffix = "two";\n')
            yield {lib.resolve()}

        def url() -> str:
            return str(runs[-1].results[-1].outputs["url"])

        runs: list[DevRun] = []
        loop = DevLoop(
            project / "alchemy.run.py", settings, changes=edits, on_run=runs.append, max_runs=2
        )
        loop.run()
        assert [r.ok for r in runs] == [True, True], [r.error for r in runs]
        assert runs[1].trigger == frozenset({lib.resolve()})
        assert runs[1].results[-1].counts == {"update": 1}
        answers.append(httpx.get(url(), timeout=30).text)
        worker = api.worker("devworker-worker-dev")
        assert worker is not None and worker.pid is not None
        argv = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
    assert answers == [f"hello one {len(SECRET)}", f"hello two {len(SECRET)}"]
    assert SECRET.encode() not in argv
    journal_files = b"".join(
        p.read_bytes() for p in (project / ".journal").glob("journal.db*") if p.is_file()
    )
    assert journal_files and SECRET.encode() not in journal_files
    assert SECRET.encode() not in tree_bytes(project / ".journal" / "build")
    assert SECRET.encode() not in tree_bytes(project / ".journal" / "cloudflare")


def test_the_watcher_reports_typescript_files(tmp_path: Path) -> None:
    stop = threading.Event()
    batches = watch_changes(tmp_path, stop)
    threading.Timer(0.3, lambda: (tmp_path / "worker.ts").write_text("export {}")).start()
    try:
        first = next(iter(batches))
    finally:
        stop.set()
    assert (tmp_path / "worker.ts").resolve() in first
