"""Real Alchemy 0.94 for the import tests: installed from npm once, into a cache we own.

``alchemy_home()`` returns a folder whose ``node_modules`` holds the pinned packages
(installed on first use into ``~/.cache/journal/npm/alchemy-0.94.0``, or under
``$JOURNAL_CACHE_DIR``, by the locked, atomic installer that also brings workerd and esbuild),
or skips the test with the reason when Node.js or npm is missing. ``run_alchemy`` runs a TypeScript
program with it, its ``fetch`` to https://api.prisma.io rewritten to the local API (Alchemy
0.94's Prisma client has no base-URL setting) and every other origin refused, so nothing
reaches the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from journal.resources.cloudflare._npm import NodeMissingError, NpmInstallError, npm_install

ALCHEMY_VERSION: Final = "0.94.0"
#: exact pins: Alchemy, a TypeScript runner for Node 20, and the SQLite client its
#: SQLiteStateStore loads (an optional peer dependency)
PACKAGES: Final = {"alchemy": ALCHEMY_VERSION, "tsx": "4.19.2", "@libsql/client": "0.15.15"}
MARK: Final = "JOURNAL-TEST-EXPORTS "

PRELOAD: Final = """\
// test preload: Alchemy's calls to the Prisma API go to the local API; nothing else leaves
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
  throw new Error(`test preload: refused a request to ${url.origin}`);
};
"""

#: runs the program (unchanged) and prints its exports in clear on one marked stdout line
EXPORTS: Final = """\
const mod = await import("./alchemy.run.ts");
const plain = (v) => (v && typeof v === "object" && "unencrypted" in v ? v.unencrypted : v);
const out = Object.fromEntries(Object.entries(mod).map(([k, v]) => [k, plain(v)]));
console.log("MARK" + JSON.stringify(out));
""".replace("MARK", MARK)


def alchemy_home() -> Path:
    try:
        return npm_install(
            f"alchemy-{ALCHEMY_VERSION}",
            PACKAGES,
            purpose=f"alchemy@{ALCHEMY_VERSION}",
            progress=lambda line: print(line, file=sys.__stderr__, flush=True),
        )
    except NodeMissingError as exc:
        pytest.skip(str(exc))
    except NpmInstallError as exc:
        pytest.fail(str(exc))


def run_alchemy(
    project: Path,
    program: str,
    *,
    api_url: str,
    env: Mapping[str, str],
    stage: str = "test",
) -> dict[str, Any]:
    """Run ``program`` (an alchemy.run.ts) in ``project`` with real Alchemy; its exports."""
    home = alchemy_home()
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    link = project / "node_modules"
    if not link.exists():
        link.symlink_to(home / "node_modules", target_is_directory=True)
    (project / "alchemy.run.ts").write_text(program)
    (project / "redirect.mjs").write_text(PRELOAD)
    (project / "exports.ts").write_text(EXPORTS)
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    full_env = {k: os.environ[k] for k in keep if k in os.environ}
    full_env |= {
        "JOURNAL_TEST_PRISMA_URL": api_url,
        "STAGE": stage,
        "DO_NOT_TRACK": "1",
        "ALCHEMY_TELEMETRY_DISABLED": "1",
        "ALCHEMY_CI_STATE_STORE_CHECK": "false",
        "NO_COLOR": "1",
        **env,
    }
    proc = subprocess.run(
        ["node", "--import", "./redirect.mjs", "--import", "tsx", "exports.ts"],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"alchemy failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            exports: dict[str, Any] = json.loads(line[len(MARK) :])
            return exports
    raise AssertionError(f"the program printed no exports:\n{proc.stdout}")
