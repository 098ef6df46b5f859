"""configure, verify, rekey, the README reference, and the real `journal` console script."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import memory_provider as mp
import pytest
from click.testing import CliRunner, Result

from journal._credentials import credentials_at
from journal.cli import cli
from journal.cli._reference import END, START, render, replace_block

REPO = Path(__file__).resolve().parent.parent
TOKEN = "prsc_configured-token-value"

PROGRAM = """
import journal
from journal._program.app import _SETTINGS
from memory_provider import Thing

with journal.app("demo") as app:
    Thing("one")
    settings = _SETTINGS.get()
    names = sorted(settings.credentials) if settings is not None else []
    app.export(credential_names=names)
"""


@pytest.fixture(autouse=True)
def cloud() -> mp.Cloud:
    return mp.reset_cloud()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    return tmp_path


def run(*args: str, code: int = 0, **kw: Any) -> Result:
    result = CliRunner().invoke(cli, list(args), **kw)
    assert result.exit_code == code, (
        f"exit {result.exit_code}, expected {code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    return result


# --- configure -----------------------------------------------------------------------------


def test_configure_stores_the_token_encrypted_and_runs_get_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = run("configure", "--provider", "prisma-postgres", input=TOKEN + "\n")
    assert "stored PRISMA_SERVICE_TOKEN (prisma-postgres) for profile 'default'" in stored.stdout
    db = project / ".journal" / "journal.db"
    assert TOKEN.encode() not in db.read_bytes()
    creds = credentials_at(str(db), None)
    assert creds["PRISMA_SERVICE_TOKEN"].unencrypted == TOKEN

    listed = run("configure", "--list").stdout
    assert "default: PRISMA_SERVICE_TOKEN (prisma-postgres)" in listed and TOKEN not in listed
    trail = run("history", "--json", env={"JOURNAL_STAGE": None}).stdout
    assert "credential.stored" in trail and TOKEN not in trail

    run("deploy")
    outputs = json.loads(run("outputs", "--json").stdout)
    assert outputs["credential_names"] == ["PRISMA_SERVICE_TOKEN"]

    monkeypatch.setenv("WORKSPACE_B_TOKEN", "prsc_other")
    run(
        "configure",
        "--provider",
        "prisma-postgres",
        "--profile",
        "b",
        "--from-env",
        "WORKSPACE_B_TOKEN",
    )
    assert credentials_at(str(db), "b")["PRISMA_SERVICE_TOKEN"].unencrypted == "prsc_other"
    assert credentials_at(str(db), None)["PRISMA_SERVICE_TOKEN"].unencrypted == TOKEN

    missing = run("deploy", "--profile", "nope", code=2)
    assert "no credentials stored for profile 'nope'" in missing.stderr
    assert (
        "no value for PRISMA_SERVICE_TOKEN"
        in run("configure", "--provider", "prisma-postgres", input="\n", code=2).stderr
    )
    unset = run(
        "configure", "--provider", "prisma-postgres", "--from-env", "UNSET_VARIABLE_X", code=2
    )
    assert "UNSET_VARIABLE_X is not set or empty" in unset.stderr


# --- verify / rekey ------------------------------------------------------------------------


def test_verify_reports_the_head_and_names_a_bad_sequence(project: Path) -> None:
    run("deploy")
    result = run("verify").stdout
    assert re.search(r"ok: \d+ event\(s\) in 1 stream\(s\) verified", result)
    pinned = re.search(r"head: (\d+:[0-9a-f]{64})", result)
    assert pinned is not None
    run("verify", "--expect-head", pinned.group(1))
    bad = run("verify", "--expect-head", "1:" + "0" * 64, code=1)
    assert "error: sequence 1:" in bad.stderr

    with sqlite3.connect(project / ".journal" / "journal.db") as conn:
        data = conn.execute("SELECT data FROM events WHERE seq = 3").fetchone()[0]
        tampered = bytes([data[0] ^ 1]) + data[1:]
        conn.execute("UPDATE events SET data = ? WHERE seq = 3", (tampered,))
    conn.close()
    broken = run("verify", code=1)
    assert broken.stderr.startswith("error: sequence 3: ")


def test_rekey_changes_the_password(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("deploy")
    refused = run("rekey", code=2)
    assert "no new password: set JOURNAL_NEW_PASSWORD" in refused.stderr
    monkeypatch.setenv("JOURNAL_NEW_PASSWORD", "a brand new password")
    assert "set JOURNAL_PASSWORD to the new one" in run("rekey").stdout
    assert "password does not open this journal" in run("history", code=2).stderr
    monkeypatch.setenv("JOURNAL_PASSWORD", "a brand new password")
    run("history")
    run("verify")


# --- the README reference ------------------------------------------------------------------


def test_reference_block_replacement() -> None:
    doc = f"# title\n\n{START}\nold\n{END}\n\nafter\n"
    block = render()
    updated = replace_block(doc, block)
    assert updated.startswith(f"# title\n\n{START}\n") and updated.endswith(f"{END}\n\nafter\n")
    assert replace_block(updated, block) == updated
    for name in ("deploy", "plan", "destroy", "dev", "history", "rollback", "local serve"):
        assert f"### `journal {name}`" in block
    assert "Usage: journal deploy [OPTIONS] [PROGRAM]" in block
    with pytest.raises(ValueError, match="no command reference block"):
        replace_block("# no markers\n", block)


def test_readme_reference_is_up_to_date() -> None:
    readme = REPO / "README.md"
    assert readme.exists(), f"{readme} is missing"
    text = readme.read_text(encoding="utf-8")
    assert START in text and END in text, (
        f"README.md has no CLI reference block: add the lines {START} and {END}, then run "
        "`python -m journal.cli._reference --write README.md`"
    )
    assert replace_block(text, render()) == text, (
        "the CLI reference in README.md is stale: "
        "run `python -m journal.cli._reference --write README.md`"
    )


# --- the console script, in real subprocesses ----------------------------------------------


def journal_cmd(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "journal"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "journal.cli"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_console_script_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "alchemy.run.py").write_text(textwrap.dedent(PROGRAM))
    env = {"MEMORY_CLOUD": str(tmp_path / "cloud.db"), "JOURNAL_STAGE": "ci", "CI": "true"}
    deployed = journal_cmd("deploy", cwd=tmp_path, env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert "created one (memory.Thing) in" in deployed.stdout
    assert "\x1b[" not in deployed.stdout, "plain output without a terminal"
    again = journal_cmd("deploy", cwd=tmp_path, env=env)
    assert "1 unchanged" in again.stdout
    lines = journal_cmd("history", "--json", cwd=tmp_path, env=env).stdout.splitlines()
    assert [json.loads(line)["action"] for line in lines].count("run.started") == 2
    bad = journal_cmd("frobnicate", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    missing = journal_cmd("deploy", "nope.py", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no program at")
    assert "Traceback" not in missing.stderr
    assert journal_cmd("--version", cwd=tmp_path).stdout.startswith("journal, version ")


def test_startup_is_lazy(tmp_path: Path) -> None:
    """What `journal --help` imports (its speed is measured in bench/bench_startup.py, never
    asserted here: the machines are shared and noisy)."""
    probe = (
        "import sys, journal.cli\n"
        "heavy = ['httpx', 'psycopg', 'nacl', 'watchfiles', 'sqlite_utils', 'journal._engine']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "", f"imported at start-up: {loaded.stdout.strip()}"
    assert journal_cmd("--help", cwd=tmp_path).returncode == 0


def test_a_no_op_deploy_imports_no_http_client(tmp_path: Path) -> None:
    """A deploy that calls nothing imports neither the Prisma client nor httpx: the provider
    package loads them on first use, and the local API's identity (the one request of a
    no-op on loopback) is asked with the standard library. Nor does it import
    importlib.metadata (~30 ms): the installed services are read by ``_entry_points``."""
    import threading

    from journal.resources.prisma_postgres import local
    from journal.resources.prisma_postgres._client import PrismaClient

    ready: list[Any] = []
    stop = threading.Event()
    server = threading.Thread(
        target=local.serve_forever,
        kwargs={"metadata_only": True, "on_ready": ready.append, "stop_event": stop, "port": 0},
        daemon=True,
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while not ready:
            assert time.monotonic() < deadline and server.is_alive()
            time.sleep(0.05)
        url = ready[0].url
        with PrismaClient(token="t", base_url=url) as api:
            project = api.create_project(name="p", region=None, create_database=False).id
        (tmp_path / "alchemy.run.py").write_text(
            "import journal\n"
            "from journal.resources.prisma_postgres import Database\n"
            "with journal.app('lazy'):\n"
            f"    for i in range(3):\n"
            f"        Database(f'db{{i}}', project={project!r}, delete=True)\n"
        )
        env = {"PRISMA_API_URL": url, "PRISMA_SERVICE_TOKEN": "t", "JOURNAL_STAGE": "dev"}
        assert "3 created" in journal_cmd("deploy", cwd=tmp_path, env=env).stdout
        probe = (
            "import sys\n"
            "from journal.cli import main\n"
            "try:\n"
            "    main(['deploy'])\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            "heavy = ['httpx', 'journal.resources.prisma_postgres._client', 'journal._http',\n"
            "         'importlib.metadata']\n"
            "print('imported:', ','.join(m for m in heavy if m in sys.modules))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "3 unchanged" in done.stdout
        assert done.stdout.strip().splitlines()[-1] == "imported:"
    finally:
        stop.set()
        server.join(10)


# --- the guide's program on the local Prisma-compatible API --------------------------------


@pytest.fixture
def guide(monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("pgserver")
    import shutil
    import tempfile

    from journal.resources.prisma_postgres.local import EmbeddedPostgres

    # outside pytest's temporary root: other pytest sessions reset it to mode 0700, which
    # locks out the embedded PostgreSQL's system user when the tests run as root
    root = Path(tempfile.mkdtemp(prefix="journal-guide-"))
    folder = root / "guide"
    monkeypatch.setenv("JOURNAL_STAGE", "dev")
    run("init", str(folder), "--name", "guide")
    monkeypatch.chdir(folder)
    try:
        yield folder
    finally:
        embedded = EmbeddedPostgres(folder / ".journal" / "postgres")
        if embedded.is_running():
            embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_guide_flow_on_the_local_api_never_shows_secrets(guide: Path) -> None:
    results = [run("deploy", "--local")]
    revealed = json.loads(run("outputs", "--json", "--show-secrets").stdout)
    secrets = [revealed["connection_string"], revealed["prisma_connection_string"]]
    assert all(s.startswith(("postgres://", "postgresql://")) for s in secrets)
    password = secrets[0].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert len(password) >= 16
    results += [
        run("deploy", "--local"),
        run("plan", "--local"),
        run("outputs"),
        run("outputs", "--json"),
        run("show"),
        run("show", "--json"),
        run("history"),
        run("history", "--json"),
        run("verify"),
        run("destroy", "--local", "--yes"),
    ]
    assert "1 deleted, 2 forgotten" in results[-1].stdout
    for result in results:
        assert password not in result.output
        assert all(s not in result.output for s in secrets)
    raw = (guide / ".journal" / "journal.db").read_bytes()
    assert password.encode() not in raw


@pytest.mark.slow
def test_local_serve_prints_its_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    pytest.importorskip("pgserver")
    import signal
    import urllib.request

    exe = Path(sys.executable).parent / "journal"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "journal.cli"]
    args = ["local", "serve", "--port", "0", "--data-dir", str(tmp_path / "pg"), "--stop-postgres"]
    proc = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        lines = []
        found = None
        while found is None and proc.stdout is not None:  # every provider's API has a line
            lines.append(proc.stdout.readline())
            if not lines[-1]:
                break
            found = re.search(
                r"local Prisma Management API at (http://127\.0\.0\.1:\d+)", lines[-1]
            )
        assert found, lines
        with urllib.request.urlopen(found.group(1) + "/health", timeout=10) as answer:
            health = json.loads(answer.read())
            assert health["status"] == "ok"
            assert re.fullmatch(r"[0-9a-f]{16}", health["instance"]), health
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and rest.rstrip().endswith("stopped")


def test_local_serve_stops_cleanly_on_ctrl_c_while_starting(tmp_path: Path) -> None:
    """Ctrl-C while the local APIs are still starting (the Cloudflare one is up, Prisma's is
    starting) stops what started and exits 0, as it does once they all run."""
    pytest.importorskip("pgserver")
    import signal

    exe = Path(sys.executable).parent / "journal"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "journal.cli"]
    args = ["local", "serve", "--port", "0", "--data-dir", str(tmp_path / "pg"), "--stop-postgres"]
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        lines = []
        while proc.stdout is not None:
            lines.append(proc.stdout.readline())
            if not lines[-1] or lines[-1].startswith("local Cloudflare API at"):
                break
        assert lines[-1].startswith("local Cloudflare API at"), lines
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in rest, rest
    assert proc.returncode == 0 and rest.rstrip().endswith("stopped"), rest
