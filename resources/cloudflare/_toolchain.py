"""workerd and esbuild from npm, pinned, and a Worker project's own npm dependencies.

    tools = toolchain()                       # installs on first use, then reads the cache
    tools.esbuild, tools.workerd              # native binaries (no Node.js needed to run them)
    modules = project_dependencies(Path("examples/hyperdrive-worker"))   # node_modules or None

Both go through :func:`~._npm.npm_install` (one cache per machine, locked, atomic).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ._npm import NpmInstallError, Progress, ToolchainError, npm_install

__all__ = [
    "ESBUILD_VERSION",
    "WORKERD_VERSION",
    "Toolchain",
    "project_dependencies",
    "toolchain",
]

WORKERD_VERSION: Final = "1.20261117.1"
ESBUILD_VERSION: Final = "0.28.2"
PACKAGES: Final = {"workerd": WORKERD_VERSION, "esbuild": ESBUILD_VERSION}
#: the newest compatibility date this workerd knows (its version's date part)
WORKERD_DATE: Final = "2026-11-17"


@dataclass(frozen=True)
class Toolchain:
    home: Path
    esbuild: Path
    workerd: Path
    workerd_version: str = WORKERD_VERSION
    esbuild_version: str = ESBUILD_VERSION


def _platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None or sys.platform not in ("linux", "darwin"):
        raise ToolchainError(
            f"workerd and esbuild from npm have no build for {sys.platform}/{machine}; "
            "run on Linux or macOS (x86-64 or arm64)."
        )
    return sys.platform, arch


def _binary(home: Path, package: str, tool: str) -> Path:
    path = home / "node_modules" / package / "bin" / tool
    if not path.is_file():
        raise NpmInstallError(
            f"npm installed {tool} without its binary for this platform ({package} is "
            f"missing from {home}); remove that folder and run the command again."
        )
    return path


def toolchain(*, progress: Progress | None = None) -> Toolchain:
    """The pinned workerd and esbuild, installed from npm on first use (one progress line)."""
    osname, arch = _platform()
    kwargs: dict[str, Any] = {} if progress is None else {"progress": progress}
    home = npm_install(
        f"cloudflare-toolchain-workerd{WORKERD_VERSION}-esbuild{ESBUILD_VERSION}",
        PACKAGES,
        purpose=f"workerd@{WORKERD_VERSION} and esbuild@{ESBUILD_VERSION}",
        **kwargs,
    )
    workerd_arch = "64" if arch == "x64" else arch
    return Toolchain(
        home=home,
        esbuild=_binary(home, f"@esbuild/{osname}-{arch}", "esbuild"),
        workerd=_binary(home, f"@cloudflare/workerd-{osname}-{workerd_arch}", "workerd"),
    )


def project_dependencies(project: Path, *, progress: Progress | None = None) -> Path | None:
    """A ``node_modules`` folder with the dependencies of ``project/package.json``.

    None when the project has no package.json, or its own ``node_modules`` (then esbuild finds
    it by itself). Otherwise the dependencies are installed into the cache, keyed by the
    package.json's dependencies and the package-lock.json: projects naming the same versions
    share one install, and an edited package.json makes a new one.
    """
    manifest_path = project / "package.json"
    if not manifest_path.is_file() or (project / "node_modules").is_dir():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ToolchainError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ToolchainError(f"{manifest_path} must hold a JSON object")
    keep = {
        k: manifest[k]
        for k in ("dependencies", "devDependencies", "optionalDependencies", "overrides")
        if k in manifest
    }
    if not keep:
        return None
    lock_path = project / "package-lock.json"
    lockfile = lock_path.read_bytes() if lock_path.is_file() else None
    digest = hashlib.sha256(json.dumps(keep, sort_keys=True).encode())
    digest.update(lockfile or b"")
    deps = sorted({**keep.get("dependencies", {}), **keep.get("devDependencies", {})})
    kwargs: dict[str, Any] = {} if progress is None else {"progress": progress}
    home = npm_install(
        f"deps-{digest.hexdigest()[:20]}",
        {},
        manifest={"name": "journal-worker-deps", **keep},
        lockfile=lockfile,
        purpose=f"the dependencies of {manifest_path} ({', '.join(deps)})",
        **kwargs,
    )
    return home / "node_modules"
