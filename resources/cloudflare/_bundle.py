"""Bundle a Worker's entrypoint with esbuild into one ES module, as Cloudflare runs it.

    b = bundle_worker(Path("src/worker.ts"), Path(".journal/build/worker"), project=Path("."))
    b.main_module, b.modules, b.hash          # "worker.js", (Module(...),), "sha256 hex"

Options (what makes CommonJS packages such as ``pg`` work in workerd):

- ESM output for the ``workerd``/``worker`` conditions (without ``workerd``, ``pg-cloudflare``
  resolves to an empty module and no socket is ever opened), ``cloudflare:*`` external;
- ``platform=node``: Node's built-in modules stay imports, served by workerd's
  ``nodejs_compat``;
- a ``require`` for the bundle (``createRequire`` from ``node:module``): esbuild turns a bundled
  CommonJS ``require("events")`` into a call that throws ``Dynamic require of "events" is not
  supported`` unless the module has a ``require`` in scope;
- ``pg-native`` external (``pg`` only loads it on request).

The hash covers every module's name, type and bytes: a change to the entrypoint or anything it
imports changes it. Paths that esbuild writes into the bundle are made independent of where the
dependencies were installed (the project's ``node_modules`` or the npm cache), so the same
sources give the same hash on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from journal import UsageError

from ._npm import Progress
from ._toolchain import Toolchain, project_dependencies, toolchain

__all__ = ["JS_MODULE", "Bundle", "BundleError", "Module", "bundle_worker"]

JS_MODULE: Final = "application/javascript+module"
MAIN_MODULE: Final = "worker.js"
BANNER: Final = (
    'import { createRequire as __journalCreateRequire } from "node:module";\n'
    'const require = __journalCreateRequire("/");'
)
BUNDLE_TIMEOUT_S: Final = 120.0


class BundleError(UsageError):
    """The entrypoint, or what it imports, does not bundle (esbuild's messages say where)."""


@dataclass(frozen=True)
class Module:
    """One module of a Worker upload: the multipart part name, its content type, its file."""

    name: str
    content_type: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class Bundle:
    directory: Path
    main_module: str
    modules: tuple[Module, ...]
    #: sha256 over the modules (names, types, bytes), hex
    hash: str
    #: the project's source files that went into it (what ``journal dev`` watches), absolute;
    #: installed packages are left out
    inputs: tuple[Path, ...] = ()


def bundle_hash(modules: tuple[Module, ...]) -> str:
    digest = hashlib.sha256()
    for m in sorted(modules, key=lambda m: m.name):
        data = m.read()
        for part in (m.name.encode(), m.content_type.encode(), str(len(data)).encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def bundle_worker(
    entrypoint: Path,
    out_dir: Path,
    *,
    project: Path | None = None,
    tools: Toolchain | None = None,
    minify: bool = False,
    progress: Progress | None = None,
) -> Bundle:
    """Bundle ``entrypoint`` into ``out_dir/worker.js``; the bundle with its hash.

    ``project`` (default: the folder above ``src/`` when the entrypoint is in one, else the
    entrypoint's folder) is where ``package.json`` is; its dependencies come from its own
    ``node_modules`` or are installed from npm into the cache (see
    :func:`~._toolchain.project_dependencies`). ``out_dir`` is replaced.
    """
    entry = entrypoint.resolve()
    if not entry.is_file():
        raise BundleError(f"the Worker's entrypoint {entrypoint} does not exist")
    if project is None:
        project = entry.parent.parent if entry.parent.name == "src" else entry.parent
    project = project.resolve()
    tools = tools or toolchain(progress=progress)
    node_modules = project_dependencies(project, progress=progress)
    out_dir = out_dir.resolve()
    staging = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [
        str(tools.esbuild),
        os.path.relpath(entry, project),
        "--bundle",
        "--format=esm",
        "--platform=node",
        "--target=es2022",
        "--conditions=workerd,worker",
        "--external:cloudflare:*",
        "--external:pg-native",
        f"--banner:js={BANNER}",
        "--charset=utf8",
        "--legal-comments=none",
        "--log-level=warning",
        "--color=false",
        f"--outfile={staging / MAIN_MODULE}",
        f"--metafile={staging / 'meta.json'}",
    ]
    if minify:
        argv.append("--minify")
    env = {k: v for k, v in os.environ.items() if k != "NODE_PATH"}
    if node_modules is not None:
        env["NODE_PATH"] = str(node_modules)
    try:
        proc = subprocess.run(
            argv,
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUNDLE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"esbuild could not bundle {entrypoint}: {exc}") from exc
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"{entrypoint} does not bundle:\n{proc.stderr.strip()}")
    main = staging / MAIN_MODULE
    meta = json.loads((staging / "meta.json").read_text())
    (staging / "meta.json").unlink()
    inputs = tuple(
        sorted(
            (project / name).resolve()
            for name in meta.get("inputs", {})
            if "node_modules" not in Path(name).parts and not name.startswith("<")
        )
    )
    if node_modules is not None:
        prefix = os.path.relpath(node_modules, project).replace(os.sep, "/") + "/"
        text = main.read_text(encoding="utf-8")
        main.write_text(text.replace(prefix, "node_modules/"), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    modules = (Module(MAIN_MODULE, JS_MODULE, out_dir / MAIN_MODULE),)
    return Bundle(out_dir, MAIN_MODULE, modules, bundle_hash(modules), inputs)
