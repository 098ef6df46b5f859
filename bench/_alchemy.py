"""Real Alchemy 0.94, installed from npm once into a cache we own (tests and benchmarks).

``alchemy_home()`` returns a folder whose ``node_modules`` holds the pinned packages
(installed on first use into ``~/.cache/journal/npm/alchemy-0.94.0``, or under
``$JOURNAL_CACHE_DIR``; a lock file makes parallel workers install it once). It raises
``AlchemyUnavailable`` (with the reason) when Node.js or npm is missing and
``AlchemyInstallFailed`` when npm fails. ``prepare_project`` writes a folder that runs a
TypeScript program with it, its ``fetch`` to https://api.prisma.io rewritten to the local API
(Alchemy 0.94's Prisma client has no base-URL setting) and every other origin refused, so
nothing reaches the internet; ``node_command`` and ``node_env`` run it.

``tests/_alchemy_npm.py`` wraps this for pytest (skip / fail); ``bench/bench_alchemy.py``
uses it directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ALCHEMY_VERSION: Final = "0.94.0"
#: exact pins: Alchemy, a TypeScript runner for Node 20, and the SQLite client its
#: SQLiteStateStore loads (an optional peer dependency)
PACKAGES: Final = {"alchemy": ALCHEMY_VERSION, "tsx": "4.19.2", "@libsql/client": "0.15.15"}
#: the environment variable the preload reads the local API's URL from
TARGET_VARIABLE: Final = "JOURNAL_TEST_PRISMA_URL"

PRELOAD: Final = """\
// preload: Alchemy's calls to the Prisma API go to the local API; nothing else leaves
const target = process.env.JOURNAL_TEST_PRISMA_URL;
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const req = new Request(input, init);
  const url = new URL(req.url);
  if (url.origin === "https://api.prisma.io") {
    const body = ["GET", "HEAD"].includes(req.method) ? undefined : await req.arrayBuffer();
    return realFetch(new URL(url.pathname + url.search, target), {
      method: req.method,
      headers: req.headers,
      body,
    });
  }
  if (url.hostname === "127.0.0.1" || url.hostname === "localhost") return realFetch(input, init);
  throw new Error(`preload: refused a request to ${url.origin}`);
};
"""


class AlchemyUnavailable(Exception):
    """Node.js or npm is not installed: Alchemy cannot run here."""


class AlchemyInstallFailed(Exception):
    """``npm install`` of the pinned packages failed (the message holds npm's output)."""


def cache_root() -> Path:
    base = os.environ.get("JOURNAL_CACHE_DIR") or str(Path.home() / ".cache" / "journal")
    return Path(base) / "npm"


def missing_node() -> str | None:
    """Why Alchemy cannot run here (Node.js or npm not on PATH), or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are needed to run real Alchemy 0.94 (not found on PATH)"
    return None


def alchemy_home() -> Path:
    """The cached install of the pinned packages, made on first use."""
    reason = missing_node()
    if reason is not None:
        raise AlchemyUnavailable(reason)
    npm = shutil.which("npm")
    assert npm is not None
    root = cache_root()
    home = root / f"alchemy-{ALCHEMY_VERSION}"
    done = home / ".installed"
    if done.exists():
        return home
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".alchemy-{ALCHEMY_VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return home
        staging = root / f".alchemy-{ALCHEMY_VERSION}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        manifest = {"name": "journal-alchemy-cache", "private": True, "type": "module"}
        (staging / "package.json").write_text(json.dumps(manifest))
        print(
            f"installing alchemy@{ALCHEMY_VERSION} from npm into {home} (once)...",
            file=sys.__stderr__,
            flush=True,
        )
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--ignore-scripts", *specs],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise AlchemyInstallFailed(
                f"npm install {' '.join(specs)} failed:\n{proc.stderr[-3000:]}"
            )
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
        done.write_text(" ".join(specs) + "\n")
    return home


def prepare_project(project: Path, program: str, extra: Mapping[str, str] | None = None) -> None:
    """``project`` ready to run ``program`` (its alchemy.run.ts) with the cached Alchemy:
    package.json, node_modules (a link into the cache), the redirecting preload, and any
    ``extra`` files (name -> text)."""
    home = alchemy_home()
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    link = project / "node_modules"
    if not link.exists():
        link.symlink_to(home / "node_modules", target_is_directory=True)
    (project / "alchemy.run.ts").write_text(program)
    (project / "redirect.mjs").write_text(PRELOAD)
    for name, text in (extra or {}).items():
        (project / name).write_text(text)


def node_command(entry: str, *args: str) -> list[str]:
    """Node running ``entry`` (a .ts file in the project) behind the preload, through tsx."""
    return ["node", "--import", "./redirect.mjs", "--import", "tsx", entry, *args]


def node_env(api_url: str, env: Mapping[str, str], stage: str) -> dict[str, str]:
    """A small, explicit environment for Alchemy: no telemetry, no colour, the local API."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    full = {k: os.environ[k] for k in keep if k in os.environ}
    full |= {
        TARGET_VARIABLE: api_url,
        "STAGE": stage,
        "DO_NOT_TRACK": "1",
        "ALCHEMY_TELEMETRY_DISABLED": "1",
        "ALCHEMY_CI_STATE_STORE_CHECK": "false",
        "NO_COLOR": "1",
        **env,
    }
    return full
