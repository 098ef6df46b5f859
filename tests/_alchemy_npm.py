"""Real Alchemy 0.94 for the import tests: pytest's side of ``bench/_alchemy.py``.

``alchemy_home()`` returns the cached install of the pinned packages (see ``bench/_alchemy.py``:
installed from npm once, into ``~/.cache/journal/npm``), skipping the test with the reason when
Node.js or npm is missing. ``run_alchemy`` runs a TypeScript program with it, its ``fetch`` to
https://api.prisma.io rewritten to the local API and every other origin refused, so nothing
reaches the internet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

import _alchemy  # noqa: E402  (bench/, shared with bench_alchemy.py)

ALCHEMY_VERSION: Final = _alchemy.ALCHEMY_VERSION
MARK: Final = "JOURNAL-TEST-EXPORTS "

#: runs the program (unchanged) and prints its exports in clear on one marked stdout line
EXPORTS: Final = """\
const mod = await import("./alchemy.run.ts");
const plain = (v) => (v && typeof v === "object" && "unencrypted" in v ? v.unencrypted : v);
const out = Object.fromEntries(Object.entries(mod).map(([k, v]) => [k, plain(v)]));
console.log("MARK" + JSON.stringify(out));
""".replace("MARK", MARK)


def alchemy_home() -> Path:
    try:
        return _alchemy.alchemy_home()
    except _alchemy.AlchemyUnavailable as exc:
        pytest.skip(str(exc))
    except _alchemy.AlchemyInstallFailed as exc:
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
    alchemy_home()  # skips or fails here, with the reason
    _alchemy.prepare_project(project, program, {"exports.ts": EXPORTS})
    proc = subprocess.run(
        _alchemy.node_command("exports.ts"),
        cwd=project,
        env=_alchemy.node_env(api_url, env, stage),
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
