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

import json
import os
import shutil
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


def missing_node() -> str | None:
    """Why Alchemy cannot run here (Node.js or npm not on PATH), or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are needed to run real Alchemy 0.94 (not found on PATH)"
    return None


def alchemy_home() -> Path:
    """The cached install of the pinned packages, made on first use by the project's npm
    installer (locked and atomic: parallel workers install once)."""
    from journal.resources.cloudflare._npm import NodeMissingError, NpmInstallError, npm_install

    try:
        return npm_install(
            f"alchemy-{ALCHEMY_VERSION}",
            PACKAGES,
            purpose=f"alchemy@{ALCHEMY_VERSION}",
            progress=lambda line: print(line, file=sys.__stderr__, flush=True),
        )
    except NodeMissingError as exc:
        raise AlchemyUnavailable(str(exc)) from exc
    except NpmInstallError as exc:
        raise AlchemyInstallFailed(str(exc)) from exc


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
