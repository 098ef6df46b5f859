"""Pinned npm packages, installed once per machine into a cache the project owns.

    home = npm_install("cloudflare-toolchain-1", {"workerd": "1.20261117.1"})
    home / "node_modules" / "workerd"           # ready to use

The cache is ``$JOURNAL_CACHE_DIR/npm`` (default ``~/.cache/journal/npm``); each install is a
folder named by its caller, holding ``package.json``, ``node_modules`` and a ``.installed``
marker. Two processes installing the same folder at once install it once: the second waits on a
lock file, then finds the marker. An install runs in a staging folder that is renamed into place
only when npm succeeded, so a half-made install is never seen (a crash leaves only a staging
folder, removed by the next attempt). Nothing comes from anywhere but npm's registry: packages'
install scripts are not run (workerd's and esbuild's would fetch their binaries themselves; the
binaries come as npm packages of their own).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from journal import JournalError

__all__ = [
    "NodeMissingError",
    "NpmInstallError",
    "ToolchainError",
    "cache_root",
    "npm_install",
    "require_npm",
]

MARKER: Final = ".installed"
_NAME_OK: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,120}$")
#: seconds one ``npm install`` may take (a slow mirror, a cold npm cache)
INSTALL_TIMEOUT_S: Final = 900.0

Progress = Callable[[str], None]


class ToolchainError(JournalError):
    """Node.js, npm or a package from npm is missing or could not be installed."""


class NodeMissingError(ToolchainError):
    """``node`` or ``npm`` is not on PATH."""


class NpmInstallError(ToolchainError):
    """``npm install`` failed (the message has the end of npm's output)."""


def cache_root() -> Path:
    """Where installs live: ``$JOURNAL_CACHE_DIR/npm``, else ``~/.cache/journal/npm``."""
    base = os.environ.get("JOURNAL_CACHE_DIR") or str(Path.home() / ".cache" / "journal")
    return Path(base) / "npm"


def require_npm(purpose: str) -> str:
    """The path of ``npm``, or :class:`NodeMissingError` saying what to install for what."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        raise NodeMissingError(
            f"{purpose} needs Node.js and npm, and {missing} is not on PATH. Install Node.js "
            "20 or newer with npm (e.g. `apt-get install nodejs npm`, or from nodejs.org), "
            "then run the command again."
        )
    return npm


def _stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def npm_install(
    name: str,
    packages: Mapping[str, str],
    *,
    manifest: Mapping[str, Any] | None = None,
    lockfile: bytes | None = None,
    purpose: str | None = None,
    root: Path | None = None,
    progress: Progress | None = _stderr_progress,
) -> Path:
    """Install ``packages`` ({name: exact version}) into ``<root>/<name>`` once; that folder.

    With ``manifest`` (a package.json as a dict) its dependencies are installed instead of
    ``packages`` (``npm ci`` when ``lockfile``, the package-lock.json, is given). ``progress``
    gets one line before a real install (none when the cache already has it).
    """
    if not _NAME_OK.match(name):
        raise ValueError(f"not a cache folder name: {name!r}")
    root = root or cache_root()
    home = root / name
    if (home / MARKER).exists():
        return home
    specs = [f"{n}@{v}" for n, v in packages.items()]
    what = purpose or " ".join(specs) or name
    npm = require_npm(what)
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / MARKER).exists():
            return home
        staging = root / f".{name}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            body = dict(manifest) if manifest is not None else {}
            body.setdefault("name", "journal-npm-cache")
            body["private"] = True
            (staging / "package.json").write_text(json.dumps(body, indent=2) + "\n")
            if lockfile is not None:
                (staging / "package-lock.json").write_bytes(lockfile)
            if progress is not None:
                progress(f"installing {what} from npm into {home} (once)...")
            flags = ["--no-audit", "--no-fund", "--ignore-scripts", "--no-update-notifier"]
            if manifest is not None and lockfile is not None:
                argv = [npm, "ci", *flags]
            elif manifest is not None:
                argv = [npm, "install", *flags]
            else:
                argv = [npm, "install", "--save-exact", *flags, *specs]
            try:
                proc = subprocess.run(
                    argv,
                    cwd=staging,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT_S,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                raise NpmInstallError(
                    f"npm install of {what} took longer than {INSTALL_TIMEOUT_S:.0f}s; check "
                    "that npm reaches its registry (`npm ping`), then run the command again."
                ) from exc
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout)[-2000:].strip()
                raise NpmInstallError(
                    f"npm could not install {what} (exit {proc.returncode}); check that npm "
                    f"reaches its registry (`npm ping`), then run the command again.\n{tail}"
                )
            (staging / MARKER).write_text(" ".join(specs) + "\n")
            shutil.rmtree(home, ignore_errors=True)  # a folder without a marker: half made
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return home
