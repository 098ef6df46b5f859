"""Take the README's screenshots of `journal ui` (docs/ui-runs.png, ui-resources.png,
ui-integrity.png) from a demo journal built by real deploys.

    .venv/bin/python scripts/ui_screenshots.py [--out docs]

Needs Debian's chromium (/usr/bin/chromium) and playwright (the `dev` extra). The demo uses the
tests' in-memory provider, so nothing outside the machine is touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PROGRAM = """
import os
import journal
from memory_provider import Thing

with journal.app("shop") as app:
    project = Thing("project", tag=os.environ["TAG"], delete=False)
    for region in ("eu", "us", "ap"):
        db = Thing(f"db-{region}", parent=project, delete=False)
        Thing(f"conn-{region}", parent=db, tag=os.environ["TAG"])
    if os.environ["TAG"] != "v1":
        Thing("cache", size=2)
    app.export(project_id=project.id, url=journal.Secret("postgres://app:hunter2@db/shop"))
"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def deploy(folder: Path, tag: str, stage: str, actor: str, fail: str = "") -> None:
    import memory_provider as mp
    from click.testing import CliRunner

    from journal.cli import cli

    os.environ.update(TAG=tag, JOURNAL_ACTOR=actor)
    mp.CLOUD.fail_names = {fail} if fail else set()
    CliRunner().invoke(cli, ["deploy", str(folder / "alchemy.run.py"), "--stage", stage, "--yes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    os.environ.setdefault("JOURNAL_PASSWORD", "screenshots")
    os.environ["JOURNAL_KDF"] = "minimum"
    from playwright.sync_api import sync_playwright

    from journal._journal import Journal
    from journal._ui import UIServer

    folder = Path(tempfile.mkdtemp(prefix="journal-ui-")) / "shop"
    folder.mkdir()
    (folder / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    os.chdir(folder)
    deploy(folder, "v1", "prod", "alice")
    deploy(folder, "v1", "staging", "bob")
    deploy(folder, "v2", "staging", "bob")
    deploy(folder, "v2", "prod", "alice")
    deploy(folder, "v3", "prod", "carol", fail="shop-conn-ap-prod")
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        Journal.open(folder / ".journal" / "journal.db") as jr,
        UIServer(jr).start() as srv,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(srv.url + "runs")
        run = page.locator("details.run").nth(1)
        run.locator("summary").click()
        run.locator("table.events").wait_for()
        page.screenshot(path=str(args.out / "ui-runs.png"), full_page=False)
        page.goto(srv.url + "stage?app=shop&stage=prod")
        page.screenshot(path=str(args.out / "ui-resources.png"), full_page=True)
        page.goto(srv.url + "integrity")
        page.locator(".verify.ok").wait_for()
        page.screenshot(path=str(args.out / "ui-integrity.png"), full_page=False)
        browser.close()
    print(f"wrote {args.out}/ui-runs.png, ui-resources.png, ui-integrity.png")


if __name__ == "__main__":
    main()
